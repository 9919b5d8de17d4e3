//! HTTP downloads into the blob store, verified against an expected SHA-256 while streaming: a
//! mismatch or a broken transfer leaves nothing in the cache. A transfer that breaks or stalls
//! starts over (up to the retry policy); a mismatch gets one more try, since a flaky proxy can
//! flip a byte, before it is reported. Shared by wheels and Debian packages; registry pulls
//! stream their bodies through the same loop ([`stream_body`]).

use std::io::Write;

use crate::blob_store::{BlobStore, BlobStoreError, PendingBlob};
use crate::digest::Digest;
use lockship_net::{Attempts, Failure, Http, NetError};

/// Why a response body did not make it into the store.
pub enum BodyFailure {
    /// The transfer broke or stalled (retry verdict included).
    Net(Failure),
    /// The body ran past `limit` bytes.
    TooLong {
        limit: u64,
    },
    Store(BlobStoreError),
}

/// Streams `response`'s body into a new pending blob of `store` (hashed as it is written),
/// refusing more than `limit` bytes: the one loop behind every download, from a file host or a
/// registry. The caller commits the blob against the digest it expects.
pub async fn stream_body(
    http: &Http,
    url: &str,
    response: &mut reqwest::Response,
    store: &BlobStore,
    limit: Option<u64>,
) -> Result<PendingBlob, BodyFailure> {
    let mut pending = store.begin().map_err(BodyFailure::Store)?;
    let mut received = 0u64;
    let transfer = http.transfer(url, response.content_length().or(limit), false);
    let mut pace = lockship_net::Pace::default();
    while let Some(chunk) = http
        .chunk(url, response, &mut pace)
        .await
        .map_err(BodyFailure::Net)?
    {
        received += chunk.len() as u64;
        transfer.advance(chunk.len() as u64);
        if let Some(limit) = limit.filter(|l| received > *l) {
            return Err(BodyFailure::TooLong { limit });
        }
        pending.write_all(&chunk).map_err(|source| {
            BodyFailure::Store(BlobStoreError::Io {
                path: store.tmp_dir(),
                source,
            })
        })?;
    }
    Ok(pending)
}

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error(transparent)]
    Net(#[from] NetError),
    #[error("{url}: content is {actual}, expected {expected}")]
    Mismatch {
        url: lockship_net::url::Redacted,
        expected: Digest,
        actual: Digest,
    },
    #[error(transparent)]
    Store(BlobStoreError),
}

impl Attempts for DownloadError {
    fn set_attempts(&mut self, n: u32) {
        if let DownloadError::Net(e) = self {
            e.set_attempts(n);
        }
    }
}

/// Downloads `url` into `store` unless an intact blob `expected` is already there (one damaged
/// on disk is evicted and downloaded again). `what` names the file in messages.
pub async fn fetch_verified(
    http: &Http,
    url: &str,
    expected: &Digest,
    what: &str,
    store: &BlobStore,
) -> Result<(), DownloadError> {
    if store.verify(expected, what).map_err(DownloadError::Store)? {
        return Ok(());
    }
    http.retry(url, |attempt| async move {
        let request = http.request(reqwest::Method::GET, url);
        let response = http.send(url, request).await.map_err(Failure::lift)?;
        let mut response = http.success(url, response).map_err(Failure::lift)?;
        let pending = match stream_body(http, url, &mut response, store, None).await {
            Ok(pending) => pending,
            Err(BodyFailure::Net(f)) => return Err(f.lift()),
            Err(BodyFailure::Store(e)) => return Err(Failure::fatal(DownloadError::Store(e))),
            Err(BodyFailure::TooLong { .. }) => unreachable!("no limit was set"),
        };
        match store.commit(pending, Some(expected), what) {
            Ok(_) => Ok(()),
            Err(BlobStoreError::DigestMismatch {
                expected, actual, ..
            }) => {
                let error = DownloadError::Mismatch {
                    url: http.shown(url),
                    expected,
                    actual,
                };
                Err(if attempt == 0 {
                    Failure::transient(error)
                } else {
                    Failure::fatal(error)
                })
            }
            Err(e) => Err(Failure::fatal(DownloadError::Store(e))),
        }
    })
    .await
}
