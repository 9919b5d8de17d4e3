//! Uploading a large blob in chunks (PATCH with `Content-Range`, then a PUT with the digest):
//! registries, and the proxies in front of them, cap request bodies, and a connection that
//! drops mid-upload costs one chunk, not the blob. After a failed chunk the upload session is
//! asked how much it holds (GET → `Range: 0-N`) and the upload goes on from there; a session
//! the registry lost starts over. The blob is hashed whole before the first byte goes, so a
//! damaged cache entry is never sent.

use std::io::{Read, Seek, SeekFrom};
use std::sync::Mutex;

use oci_spec::distribution::Reference;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::Method;

use super::push::{closing_url, location};
use super::{error_detail, Registry, RegistryError, Scope};
use crate::blob_store::{BlobStore, BlobStoreError};
use crate::digest::Digest;
use lockship_net::Failure;

/// Blobs larger than this go up in chunks of this size, unless `RegistryAccess` says other.
pub const DEFAULT_CHUNK: u64 = 16 << 20;

/// Where an upload stands: its session's URL, how many bytes the registry holds, and how many
/// went up in all (a registry that keeps losing them is given up on).
struct Position {
    location: String,
    offset: u64,
    sent: u64,
}

impl Registry {
    /// Uploads the stored blob `digest` to `target` in chunks of `chunk` bytes, in the upload
    /// session at `session` when the registry opened one already. Returns the blob's size.
    pub(super) async fn upload_chunked(
        &self,
        target: &Reference,
        digest: &Digest,
        store: &BlobStore,
        session: Option<String>,
        chunk: u64,
        action: &str,
    ) -> Result<u64, RegistryError> {
        if !store.verify(digest, "layer")? {
            return Err(BlobStoreError::Corrupt {
                digest: digest.clone(),
                what: "layer".into(),
            }
            .into());
        }
        let path = store.path(digest);
        let io = |source| BlobStoreError::Io {
            path: path.clone(),
            source,
        };
        let size = std::fs::metadata(&path).map_err(io)?.len();
        let scope = Scope::push(target);
        let start = match session {
            Some(l) => l,
            None => self.open_session(target, &scope, action).await?,
        };
        let position = Mutex::new(Position {
            location: start,
            offset: 0,
            sent: 0,
        });
        // Three times the blob: room for two restarts from scratch, and no more.
        let budget = size.saturating_mul(3).saturating_add(chunk);
        let current = || {
            let p = position.lock().unwrap_or_else(|e| e.into_inner());
            (p.location.clone(), p.offset)
        };
        // Borrowed, so that each attempt's `async move` takes references.
        let (scope, path, position, current, io) = (&scope, &path, &position, &current, &io);
        let short = digest.hex().get(..12).unwrap_or_default();
        let transfer = self
            .http
            .transfer_labelled(&format!("sha256:{short}"), Some(size), true);
        let mut shown = 0;
        while current().1 < size {
            let url = current().0;
            self.http
                .retry(&url, |attempt| async move {
                    let (mut at, mut offset) = current();
                    if attempt > 0 {
                        // What did the registry keep of the failed chunk?
                        match self.upload_status(scope, &at, action).await {
                            // A session cannot hold more than the blob: one that says so is
                            // not believed, and the upload starts over.
                            Some(held) if held <= size => offset = held,
                            _ => {
                                at = self
                                    .open_session(target, scope, action)
                                    .await
                                    .map_err(Failure::fatal)?;
                                offset = 0;
                            }
                        }
                    }
                    if offset == size {
                        // The registry has it all: only the closing PUT is left.
                        let mut p = position.lock().unwrap_or_else(|e| e.into_inner());
                        (p.location, p.offset) = (at, offset);
                        return Ok(());
                    }
                    let end = offset.saturating_add(chunk).min(size);
                    {
                        let mut p = position.lock().unwrap_or_else(|e| e.into_inner());
                        p.sent = p.sent.saturating_add(end - offset);
                        if p.sent > budget {
                            return Err(Failure::fatal(RegistryError::Protocol {
                                registry: target.resolve_registry().to_string(),
                                action: action.to_string(),
                                message: format!(
                                    "it kept losing the upload ({} bytes sent for a blob of {size})",
                                    p.sent
                                ),
                            }));
                        }
                    }
                    let bytes =
                        read_range(path, offset, end).map_err(|e| Failure::fatal(io(e).into()))?;
                    let make = || {
                        self.http
                            .bare_request(Method::PATCH, &at)
                            .header(CONTENT_TYPE, "application/octet-stream")
                            .header(CONTENT_LENGTH, bytes.len())
                            .header("Content-Range", format!("{offset}-{}", end - 1))
                            .body(bytes.clone())
                    };
                    let response = self.attempt(scope, action, &at, &make, None).await?;
                    let status = response.status().as_u16();
                    if status != 202 {
                        let detail = error_detail(response).await;
                        let error = RegistryError::Protocol {
                            registry: target.resolve_registry().to_string(),
                            action: action.to_string(),
                            message: format!("HTTP {status} to an upload chunk{detail}"),
                        };
                        // A session that lost its place (416) or itself (404): ask again.
                        return Err(match status {
                            404 | 416 => Failure::transient(error),
                            401 | 403 => Failure::fatal(RegistryError::Denied {
                                registry: target.resolve_registry().to_string(),
                                action: action.to_string(),
                            }),
                            _ => Failure::fatal(error),
                        });
                    }
                    let base = self.base_url(target.resolve_registry());
                    let mut p = position.lock().unwrap_or_else(|e| e.into_inner());
                    p.location = location(&response, &base).unwrap_or(at);
                    p.offset = end;
                    Ok(())
                })
                .await?;
            // A restart sends bytes again; the bar shows what the registry holds.
            let held = current().1;
            transfer.advance(held.saturating_sub(shown));
            shown = shown.max(held);
        }
        let put_url = closing_url(&current().0, digest);
        let make = || {
            self.http
                .bare_request(Method::PUT, &put_url)
                .header(CONTENT_LENGTH, "0")
        };
        let response = self.request(scope, action, &put_url, &make).await?;
        match response.status().as_u16() {
            201 => Ok(size),
            status => Err(RegistryError::Protocol {
                registry: target.resolve_registry().to_string(),
                action: action.to_string(),
                message: format!(
                    "HTTP {status} to the end of a chunked upload{}",
                    error_detail(response).await
                ),
            }),
        }
    }

    /// How many bytes the upload session at `at` holds; None when the registry no longer has
    /// the session (or will not say).
    async fn upload_status(&self, scope: &Scope, at: &str, action: &str) -> Option<u64> {
        let make = || self.http.bare_request(Method::GET, at);
        let response = self.request(scope, action, at, &make).await.ok()?;
        if response.status().as_u16() != 204 {
            return None;
        }
        let range = response.headers().get("Range")?.to_str().ok()?;
        // `0-N`: bytes 0 to N held. An empty session says `0--1` (or nothing): read as lost,
        // and the upload starts over in a new one.
        let (_, last) = range.trim_start_matches("bytes=").split_once('-')?;
        last.trim().parse::<u64>().ok()?.checked_add(1)
    }

    /// Opens an upload session in `target`'s repository ([`Registry::try_open_session`],
    /// retried while its failures are transient); its URL.
    async fn open_session(
        &self,
        target: &Reference,
        scope: &Scope,
        action: &str,
    ) -> Result<String, RegistryError> {
        let url = self.url(target, "blobs/uploads/");
        self.http
            .retry(&url, |_| self.try_open_session(target, scope, action))
            .await
    }
}

/// Bytes `start..end` of the file at `path`.
fn read_range(path: &std::path::Path, start: u64, end: u64) -> std::io::Result<Vec<u8>> {
    let mut file = std::fs::File::open(path)?;
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::with_capacity((end - start) as usize);
    file.take(end - start).read_to_end(&mut bytes)?;
    if bytes.len() as u64 != end - start {
        return Err(std::io::Error::other("the blob is shorter than it was"));
    }
    Ok(bytes)
}
