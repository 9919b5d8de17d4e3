//! HTTP downloads into the blob store, verified against an expected SHA-256 while streaming: a
//! mismatch or a broken transfer leaves nothing in the cache. Shared by wheels and Debian
//! packages; TLS trusts the platform's certificate store.

use futures::StreamExt;

use crate::oci::blob_store::{BlobStore, BlobStoreError};
use crate::oci::digest::Digest;

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("{url}: {message}")]
    Failed { url: String, message: String },
    #[error("{url}: content is {actual}, expected {expected}")]
    Mismatch {
        url: String,
        expected: Digest,
        actual: Digest,
    },
    #[error(transparent)]
    Store(BlobStoreError),
}

/// The HTTP client for package indexes and archives: platform certificate store (so corporate
/// and TLS-intercepting proxies' CAs are trusted), bounded connect time.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(concat!("lockship/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap_or_default()
}

/// The innermost cause of an error, which is what tells the user what went wrong.
pub fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        message = s.to_string();
        source = s.source();
    }
    message
}

/// Downloads `url` into `store` unless the blob `expected` is already there.
pub async fn fetch_verified(
    http: &reqwest::Client,
    url: &str,
    expected: &Digest,
    store: &BlobStore,
) -> Result<(), DownloadError> {
    if store.contains(expected) {
        return Ok(());
    }
    let failed = |message: String| DownloadError::Failed {
        url: url.to_string(),
        message,
    };
    let response = http
        .get(url)
        .send()
        .await
        .map_err(|e| failed(root_cause(&e)))?;
    if !response.status().is_success() {
        return Err(failed(format!("HTTP {}", response.status())));
    }
    let mut pending = store.begin().map_err(DownloadError::Store)?;
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| failed(root_cause(&e)))?;
        std::io::Write::write_all(&mut pending, &chunk).map_err(|e| {
            DownloadError::Store(BlobStoreError::Io {
                path: store.tmp_dir().to_path_buf(),
                source: e,
            })
        })?;
    }
    match store.commit(pending, Some(expected), url) {
        Ok(_) => Ok(()),
        Err(BlobStoreError::DigestMismatch {
            expected, actual, ..
        }) => Err(DownloadError::Mismatch {
            url: url.to_string(),
            expected,
            actual,
        }),
        Err(e) => Err(DownloadError::Store(e)),
    }
}
