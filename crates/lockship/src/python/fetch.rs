//! Downloads chosen wheels into the content-addressed cache, verifying each against
//! the lock's SHA-256 as it streams; a mismatch aborts and caches nothing.

use super::select::ChosenWheel;
use crate::download::{self, DownloadError};
use crate::net::url::Redacted;
use crate::net::{Http, NetError};
use crate::oci::blob_store::{BlobStore, BlobStoreError};
use crate::oci::digest::Digest;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("hash mismatch for {package} {version} ({url}): the lock says {expected}, the download is {actual}")]
    HashMismatch {
        package: String,
        version: String,
        url: Redacted,
        expected: Digest,
        actual: Digest,
    },
    #[error("cannot download {package} {version}: {source}")]
    Download {
        package: String,
        version: String,
        #[source]
        source: NetError,
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
            FetchError::Download { source, .. } if matches!(source.status(), Some(401 | 403)) => Some(
                "the file host wants credentials: put them in the index URL or your pip/uv configuration (they are sent only to the index's own host)".into(),
            ),
            _ => None,
        }
    }
}

/// Downloads one wheel unless the store has it intact. Returns whether it was downloaded.
pub async fn fetch_one(
    http: &Http,
    wheel: &ChosenWheel,
    store: &BlobStore,
) -> Result<bool, FetchError> {
    let what = &wheel.wheel.filename;
    if store
        .verify(&wheel.wheel.sha256, what)
        .map_err(FetchError::Store)?
    {
        return Ok(false);
    }
    download::fetch_verified(http, &wheel.wheel.url, &wheel.wheel.sha256, what, store)
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
        DownloadError::Net(source) => FetchError::Download {
            package: w.name.clone(),
            version: w.version.clone(),
            source,
        },
        DownloadError::Store(e) => FetchError::Store(e),
    }
}
