//! Downloads chosen wheels in parallel into the content-addressed cache, verifying each against
//! the lock's SHA-256 as it streams; a mismatch aborts and caches nothing.

use futures::{StreamExt, TryStreamExt};

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

/// Downloads every wheel not yet cached, `parallel` at a time. Returns how many were fetched.
pub async fn fetch_all(
    http: &reqwest::Client,
    wheels: &[ChosenWheel],
    store: &BlobStore,
    parallel: usize,
    on_done: &(dyn Fn(&ChosenWheel) + Sync),
) -> Result<usize, FetchError> {
    let missing: Vec<&ChosenWheel> = wheels
        .iter()
        .filter(|w| !store.contains(&w.wheel.sha256))
        .collect();
    let count = missing.len();
    futures::stream::iter(missing)
        .map(|w| async move {
            download::fetch_verified(http, &w.wheel.url, &w.wheel.sha256, store)
                .await
                .map_err(|e| in_context(e, w))?;
            on_done(w);
            Ok::<_, FetchError>(())
        })
        .buffer_unordered(parallel.max(1))
        .try_collect::<Vec<()>>()
        .await?;
    Ok(count)
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
