//! What can go wrong with a registry, in the user's terms, with what to do about it.

use crate::blob_store::BlobStoreError;
use crate::digest::Digest;
use lockship_net::{Attempts, Failure, NetError};

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("`{reference}` is not a valid image reference: {message}")]
    BadReference { reference: String, message: String },
    #[error("cannot reach registry {registry} while {action}: {source}")]
    Unreachable {
        registry: String,
        action: String,
        #[source]
        source: NetError,
    },
    #[error("registry {registry} denied access while {action}")]
    Denied { registry: String, action: String },
    #[error("image {reference} not found")]
    NotFound { reference: String },
    /// A blob the image's manifest names is not there (a registry pruned it, or a proxy sent
    /// the request elsewhere): the image itself was found.
    #[error("registry {registry} has no {what}, which the image {reference} names (HTTP 404)")]
    BlobNotFound {
        registry: String,
        reference: String,
        what: String,
    },
    #[error("image {reference} has no manifest for {platform} (it has: {available})")]
    NoPlatform {
        reference: String,
        platform: String,
        available: String,
    },
    #[error("image {reference} is for {has} only, and --platform asks for {wanted}")]
    WrongPlatform {
        reference: String,
        wanted: String,
        has: String,
    },
    #[error("registry {registry} sent {what} with the wrong content: its digest is {actual}, expected {expected}")]
    Tampered {
        registry: String,
        what: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("registry {registry} failed while {action}: {message}")]
    Protocol {
        registry: String,
        action: String,
        message: String,
    },
    #[error("registry {registry} failed while {action}: {source}")]
    Failed {
        registry: String,
        action: String,
        #[source]
        source: NetError,
    },
    #[error(transparent)]
    Store(#[from] BlobStoreError),
}

impl RegistryError {
    /// Whether the error is a damaged local cache entry (evicted already; a rebuild repairs it).
    pub fn is_corrupt_cache(&self) -> bool {
        matches!(self, RegistryError::Store(e) if e.is_corrupt())
    }
}

impl Attempts for RegistryError {
    fn set_attempts(&mut self, n: u32) {
        if let RegistryError::Unreachable { source, .. } | RegistryError::Failed { source, .. } =
            self
        {
            source.set_attempts(n);
        }
    }
}

/// A network failure in registry terms.
pub(super) fn lift(registry: &str, action: &str, failure: Failure) -> Failure<RegistryError> {
    Failure {
        verdict: failure.verdict,
        error: net_error(registry, action, failure.error),
    }
}

pub(super) fn net_error(registry: &str, action: &str, e: NetError) -> RegistryError {
    let (registry, action) = (registry.to_string(), action.to_string());
    match e {
        NetError::Status { .. } | NetError::RetryTooLate { .. } | NetError::TooLarge { .. } => {
            RegistryError::Failed {
                registry,
                action,
                source: e,
            }
        }
        NetError::Transport { .. }
        | NetError::Stalled { .. }
        | NetError::Trickling { .. }
        | NetError::Tls { .. } => RegistryError::Unreachable {
            registry,
            action,
            source: e,
        },
    }
}
