//! Downloads chosen wheels into the content-addressed cache, verifying each against
//! the lock's SHA-256 as it streams; a mismatch aborts and caches nothing.

use super::select::ChosenWheel;
use crate::download::{self, DownloadError};
use crate::oci::blob_store::{BlobStore, BlobStoreError};
use crate::oci::digest::Digest;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("hash mismatch for {package} {version} ({url}): the lock says {expected}, the download is {actual}")]
    HashMismatch {
        package: String,
        version: String,
        url: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("cannot download {package} {version} from {url}: {message}")]
    Download {
        package: String,
        version: String,
        url: String,
        message: String,
    },
    #[error(transparent)]
    Store(BlobStoreError),
}

impl FetchError {
    pub fn hint(&self) -> Option<String> {
        match self {
            FetchError::HashMismatch { .. } => Some(
                "the file differs from the one locked: re-lock if the index legitimately changed, otherwise do not trust this index".into(),
            ),
            _ => None,
        }
    }
}

/// Downloads one wheel unless the store has it. Returns whether it was downloaded.
pub async fn fetch_one(
    http: &reqwest::Client,
    wheel: &ChosenWheel,
    store: &BlobStore,
) -> Result<bool, FetchError> {
    if store.contains(&wheel.wheel.sha256) {
        return Ok(false);
    }
    download::fetch_verified(http, &wheel.wheel.url, &wheel.wheel.sha256, store)
        .await
        .map_err(|e| in_context(e, wheel))?;
    Ok(true)
}

/// Adds which package a download failure concerns.
fn in_context(err: DownloadError, w: &ChosenWheel) -> FetchError {
    match err {
        DownloadError::Mismatch {
            url,
            expected,
            actual,
        } => FetchError::HashMismatch {
            package: w.name.clone(),
            version: w.version.clone(),
            url,
            expected,
            actual,
        },
        DownloadError::Failed { url, message } => FetchError::Download {
            package: w.name.clone(),
            version: w.version.clone(),
            url,
            message,
        },
        DownloadError::Store(e) => FetchError::Store(e),
    }
}
