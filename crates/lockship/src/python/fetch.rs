//! Downloads chosen wheels in parallel into the content-addressed cache, verifying each against
//! the lock's SHA-256 as it streams; a mismatch aborts and caches nothing.

use futures::{StreamExt, TryStreamExt};

use super::select::ChosenWheel;
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

/// The HTTP client for package indexes: platform certificate store (so corporate and
/// TLS-intercepting proxies' CAs are trusted), bounded connect time.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(concat!("lockship/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap_or_default()
}

/// The innermost cause of an HTTP error, which is what tells the user what went wrong.
pub fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        message = s.to_string();
        source = s.source();
    }
    message
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
            fetch_one(http, w, store).await?;
            on_done(w);
            Ok::<_, FetchError>(())
        })
        .buffer_unordered(parallel.max(1))
        .try_collect::<Vec<()>>()
        .await?;
    Ok(count)
}

async fn fetch_one(
    http: &reqwest::Client,
    w: &ChosenWheel,
    store: &BlobStore,
) -> Result<(), FetchError> {
    let fail = |message: String| FetchError::Download {
        package: w.name.clone(),
        version: w.version.clone(),
        url: w.wheel.url.clone(),
        message,
    };
    let response = http
        .get(&w.wheel.url)
        .send()
        .await
        .map_err(|e| fail(root_cause(&e)))?;
    if !response.status().is_success() {
        return Err(fail(format!("HTTP {}", response.status())));
    }
    let mut pending = store.begin().map_err(FetchError::Store)?;
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| fail(root_cause(&e)))?;
        std::io::Write::write_all(&mut pending, &chunk).map_err(|e| {
            FetchError::Store(BlobStoreError::Io {
                path: store.tmp_dir().to_path_buf(),
                source: e,
            })
        })?;
    }
    match store.commit(pending, Some(&w.wheel.sha256), &w.wheel.filename) {
        Ok(_) => Ok(()),
        Err(BlobStoreError::DigestMismatch {
            expected, actual, ..
        }) => Err(FetchError::HashMismatch {
            package: w.name.clone(),
            version: w.version.clone(),
            url: w.wheel.url.clone(),
            expected,
            actual,
        }),
        Err(e) => Err(FetchError::Store(e)),
    }
}
