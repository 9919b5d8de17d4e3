//! A distroless Python base assembled from Debian packages, with no registry and no container:
//! verify the suite's signed InRelease, resolve the requested packages' closure from its
//! Packages index, fetch the .debs by the hashes that chain vouches for, unpack their data into
//! one layer, and write what maintainer scripts would have (passwd, CA bundle, os-release…).

pub mod base;
pub mod base_lock;
pub mod control;
pub mod deb;
pub mod mirror;
pub mod release;
pub mod resolve;
pub mod version;

use std::path::PathBuf;

use crate::download::DownloadError;
use crate::net::url::Redacted;
use crate::oci::blob_store::BlobStoreError;

#[derive(Debug, thiserror::Error)]
pub enum DebianError {
    #[error("no Debian mirror is configured and the host's apt sources name none")]
    NoMirror,
    #[error("cannot download {what}: {source}")]
    Download {
        what: String,
        #[source]
        source: DownloadError,
    },
    #[error("suite `{suite}` not found on {mirror} ({message})")]
    UnknownSuite {
        suite: String,
        mirror: Redacted,
        message: String,
    },
    #[error("{url}: the OpenPGP signature does not verify against {keyring}")]
    BadSignature { url: Redacted, keyring: String },
    #[error("cannot read the Debian archive keyring {path}: {message}")]
    Keyring { path: PathBuf, message: String },
    #[error("{url}: {message}")]
    BadRelease { url: Redacted, message: String },
    #[error(transparent)]
    Resolve(#[from] resolve::ResolveError),
    #[error("{package}: cannot unpack {path}: {message}")]
    Unpack {
        package: String,
        path: PathBuf,
        message: String,
    },
    #[error("{path}: {message}")]
    Lock { path: PathBuf, message: String },
    #[error("the Debian base has no python3.X package")]
    NoPython,
    #[error(transparent)]
    Store(#[from] BlobStoreError),
}

impl DebianError {
    pub fn hint(&self) -> Option<String> {
        match self {
            DebianError::NoMirror => Some("set `mirror` in [tool.lockship.base]".into()),
            DebianError::UnknownSuite { .. } => Some("check `debian` in [tool.lockship.base] (e.g. bookworm, trixie)".into()),
            DebianError::BadSignature { .. } => Some(
                "the mirror's Release file is not signed by a key in the keyring: check the mirror, or update debian-archive-keyring".into(),
            ),
            DebianError::Keyring { .. } => Some("install debian-archive-keyring, or set `keyring` in [tool.lockship.base]".into()),
            DebianError::Resolve(_) => Some("check `packages` in [tool.lockship.base] against the suite".into()),
            DebianError::NoPython => Some("add python3 to `packages` in [tool.lockship.base]".into()),
            DebianError::Download { source: DownloadError::Mismatch { .. }, .. } => Some(
                "the mirror served a file whose hash differs from the signed index or the base lock: do not trust this mirror, or refresh with --upgrade-base".into(),
            ),
            DebianError::Lock { .. } => Some("delete lockship-base.lock to resolve the base again".into()),
            _ => None,
        }
    }
}
