//! What can go wrong with a registry, in the user's terms, with what to do about it.

use crate::net::{Attempts, Failure, NetError};
use crate::oci::blob_store::BlobStoreError;
use crate::oci::digest::Digest;

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
    /// What the user can do about it, when there is something.
    pub fn hint(&self) -> Option<String> {
        match self {
            RegistryError::Denied { registry, action } => Some(if action.starts_with("pushing") {
                format!("log in with `docker login {registry}` (lockship reads ~/.docker/config.json); the account needs write access to the repository")
            } else {
                format!(
                    "log in with `docker login {registry}` (lockship reads ~/.docker/config.json)"
                )
            }),
            RegistryError::NotFound { .. } => {
                Some("check `base` in [tool.lockship] (or --base), and that the tag exists".into())
            }
            RegistryError::Unreachable { .. } => Some(
                "check the registry address and that it is up; plain-HTTP registries other than \
                 loopback go in LOCKSHIP_INSECURE_REGISTRIES; --http-timeout and --http-retries \
                 set how patient lockship is"
                    .into(),
            ),
            RegistryError::NoPlatform { .. } => {
                Some("choose one of the listed platforms with --platform".into())
            }
            RegistryError::WrongPlatform { .. } => Some(
                "use a multi-platform base (an image index), or a base built for that platform"
                    .into(),
            ),
            RegistryError::Tampered { .. } => Some(
                "nothing was cached; the registry, or something between it and lockship, altered the data"
                    .into(),
            ),
            _ => None,
        }
    }

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
        NetError::Transport { .. } | NetError::Stalled { .. } => RegistryError::Unreachable {
            registry,
            action,
            source: e,
        },
    }
}
