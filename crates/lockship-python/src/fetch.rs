//! Downloads chosen wheels into the content-addressed cache, verifying each against
//! the lock's SHA-256 as it streams; a mismatch aborts and caches nothing.

use super::select::ChosenWheel;
use lockship_net::url::Redacted;
use lockship_net::{Http, NetError};
use lockship_oci::blob_store::{BlobStore, BlobStoreError};
use lockship_oci::digest::Digest;
use lockship_oci::download::{self, DownloadError};

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
    #[error("{url} refused the download of {package} {version} (HTTP {status}); lockship sent {credentials}")]
    Refused {
        package: String,
        version: String,
        url: Redacted,
        status: u16,
        /// Which credentials went, or where lockship looked for them (never a secret).
        credentials: String,
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
        .map_err(|e| in_context(e, wheel, http))?;
    Ok(true)
}

/// Adds which package a download failure concerns.
fn in_context(err: DownloadError, w: &ChosenWheel, http: &Http) -> FetchError {
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
        DownloadError::Net(source) if matches!(source.status(), Some(401 | 403)) => {
            FetchError::Refused {
                package: w.name.clone(),
                version: w.version.clone(),
                url: http.shown(&w.wheel.url),
                status: source.status().unwrap_or_default(),
                credentials: http.credential_note(&w.wheel.url),
            }
        }
        DownloadError::Net(source) => FetchError::Download {
            package: w.name.clone(),
            version: w.version.clone(),
            source,
        },
        DownloadError::Store(e) => FetchError::Store(e),
    }
}
