//! Pushing an image: each layer skipped when the registry has it, mounted from the base's
//! repository, or uploaded (a fresh session and the file read afresh on every attempt, hashed as
//! it is sent, its last chunk held back until the hash is right); then the config; then, once
//! every target has every blob, the manifests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::{StreamExt, TryStreamExt};
use oci_spec::distribution::Reference;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{Method, Response};

use super::{error_detail, LayerPush, PushReport, Registry, RegistryError, Scope};
use crate::blob_store::{BlobStore, BlobStoreError};
use crate::digest::{Digest, Hasher};
use crate::image::{BlobOrigin, Image, ImageLayer};
use crate::image_index::ImageIndex;
use crate::media_types;
use lockship_net::{Failure, Progress};

impl Registry {
    /// Whether `target`'s repository has the blob `digest`.
    async fn has_blob(
        &self,
        target: &Reference,
        scope: &Scope,
        digest: &Digest,
        action: &str,
    ) -> Result<bool, RegistryError> {
        let url = self.url(target, &format!("blobs/{digest}"));
        let make = || self.http.bare_request(Method::HEAD, &url);
        let response = self.request(scope, action, &url, &make).await?;
        match response.status().as_u16() {
            200..=299 => Ok(true),
            404 => Ok(false),
            401 | 403 => Err(RegistryError::Denied {
                registry: target.resolve_registry().to_string(),
                action: action.to_string(),
            }),
            code => Err(RegistryError::Protocol {
                registry: target.resolve_registry().to_string(),
                action: action.to_string(),
                message: format!("HTTP {code} to a blob check"),
            }),
        }
    }

    /// Pushes one layer blob to `target`: skipped if the registry has it, mounted from `base`
    /// (or, for a cached layer, the repository that has it) when that is another repository of
    /// the same registry, else uploaded (a base or cached layer never pulled is fetched from
    /// where it is first). Builds call this as soon as a layer is written, so
    /// uploads overlap the rest of the build; the manifest still goes last.
    pub async fn push_layer(
        &self,
        layer: &ImageLayer,
        target: &Reference,
        base: Option<&Reference>,
        store: &BlobStore,
    ) -> Result<LayerPush, RegistryError> {
        let digest = &layer.info.digest;
        let action = format!("pushing layer {digest} to {target}");
        // Where the blob is, when it is not in the local store: the base's repository, or the
        // one whose manifest (pushed by an earlier build) lists it.
        let (remote, what) = match &layer.origin {
            BlobOrigin::Local => (None, ""),
            BlobOrigin::Base => (base, "base layer"),
            BlobOrigin::Cached(from) => (Some(from), "cached layer"),
        };
        let same_registry =
            remote.is_some_and(|r| r.resolve_registry() == target.resolve_registry());
        if let (true, BlobOrigin::Cached(from)) = (same_registry, &layer.origin) {
            // The manifest there lists it, so the repository has it: no need to ask.
            if from.repository() == target.repository() {
                return Ok(LayerPush::Skipped);
            }
        }
        let scope = Scope::push(target);
        if self.has_blob(target, &scope, digest, &action).await? {
            return Ok(LayerPush::Skipped);
        }
        let mut session = None;
        if let Some(remote) = remote {
            if same_registry && remote.repository() != target.repository() {
                match self.mount(target, remote, digest, &action).await? {
                    Mount::Mounted => return Ok(LayerPush::Mounted),
                    Mount::Upload(location) => session = location,
                }
            }
            let what = format!("{what} of {remote}");
            self.fetch_blob(remote, digest, Some(layer.info.size), &what, store)
                .await?;
        }
        self.upload_stored(target, digest, layer.info.size, store, session, &action)
            .await
    }

    /// Pushes a blob of the store that is not a layer (a wheel a build shares) to `target`
    /// unless its repository has it.
    pub async fn push_stored_blob(
        &self,
        target: &Reference,
        digest: &Digest,
        size: u64,
        store: &BlobStore,
    ) -> Result<LayerPush, RegistryError> {
        let action = format!("pushing blob {digest} to {target}");
        let scope = Scope::push(target);
        if self.has_blob(target, &scope, digest, &action).await? {
            return Ok(LayerPush::Skipped);
        }
        self.upload_stored(target, digest, size, store, None, &action)
            .await
    }

    /// Uploads a blob of the store: in chunks when it is large.
    async fn upload_stored(
        &self,
        target: &Reference,
        digest: &Digest,
        size: u64,
        store: &BlobStore,
        session: Option<String>,
        action: &str,
    ) -> Result<LayerPush, RegistryError> {
        let chunk = self
            .access
            .upload_chunk
            .unwrap_or(super::chunked::DEFAULT_CHUNK);
        let size = if size > chunk {
            self.upload_chunked(target, digest, store, session, chunk, action)
                .await?
        } else {
            self.upload(target, digest, Upload::Stored(store), session, action)
                .await?
        };
        Ok(LayerPush::Uploaded(size))
    }

    /// Tries a cross-repository mount of `digest` from `base` into `target`.
    async fn mount(
        &self,
        target: &Reference,
        base: &Reference,
        digest: &Digest,
        action: &str,
    ) -> Result<Mount, RegistryError> {
        let url = format!(
            "{}?mount={digest}&from={}",
            self.url(target, "blobs/uploads/"),
            base.repository()
        );
        let scope = Scope::push(target).and_pull(base);
        let make = || {
            self.http
                .bare_request(Method::POST, &url)
                .header(CONTENT_LENGTH, "0")
        };
        let response = self.request(&scope, action, &url, &make).await?;
        Ok(match response.status().as_u16() {
            201 => Mount::Mounted,
            // The registry could not mount and opened an upload instead.
            202 => Mount::Upload(location(
                &response,
                &self.base_url(target.resolve_registry()),
            )),
            _ => Mount::Upload(None),
        })
    }

    /// One attempt at opening an upload session in `target`'s repository (POST, 202 with a
    /// `Location`): the session's URL. Its failures say whether another attempt may help.
    pub(super) async fn try_open_session(
        &self,
        target: &Reference,
        scope: &Scope,
        action: &str,
    ) -> Result<String, Failure<RegistryError>> {
        let registry = target.resolve_registry();
        let url = self.url(target, "blobs/uploads/");
        let make = || {
            self.http
                .bare_request(Method::POST, &url)
                .header(CONTENT_LENGTH, "0")
        };
        let response = self.attempt(scope, action, &url, &make, None).await?;
        if response.status().as_u16() != 202 {
            return Err(match self.expect_success(response, target, action).await {
                Err(f) => f,
                Ok(_) => Failure::fatal(RegistryError::Protocol {
                    registry: registry.to_string(),
                    action: action.to_string(),
                    message: "it did not open an upload session (no 202)".into(),
                }),
            });
        }
        location(&response, &self.base_url(registry)).ok_or_else(|| {
            Failure::fatal(RegistryError::Protocol {
                registry: registry.to_string(),
                action: action.to_string(),
                message: "its upload session has no Location".into(),
            })
        })
    }

    /// Uploads a blob (POST for a session, one PUT with the whole body). Any failure of the PUT
    /// restarts from a new session, with the file read again from the start; the bytes are
    /// hashed as they go, so a blob damaged in the cache is caught (and evicted) rather than
    /// sent under the wrong name.
    async fn upload(
        &self,
        target: &Reference,
        digest: &Digest,
        source: Upload<'_>,
        session: Option<String>,
        action: &str,
    ) -> Result<u64, RegistryError> {
        let scope = Scope::push(target);
        let registry = target.resolve_registry();
        let start_url = self.url(target, "blobs/uploads/");
        let session = Mutex::new(session);
        self.http
            .retry(&start_url, |_| async {
                let given = session.lock().unwrap_or_else(|e| e.into_inner()).take();
                let location = match given {
                    Some(l) => l,
                    None => self.try_open_session(target, &scope, action).await?,
                };
                let put_url = closing_url(&location, digest);
                let progress = Progress::default();
                let (body, size, check) = source
                    .body(digest, &progress, &self.http)
                    .map_err(|e| Failure::fatal(e.into()))?;
                // `attempt` calls `make` once for a request with progress (no 401 replay).
                let body = Mutex::new(Some(body));
                let make = || {
                    let request = self
                        .http
                        .bare_request(Method::PUT, &put_url)
                        .header(CONTENT_TYPE, "application/octet-stream")
                        .header(CONTENT_LENGTH, size);
                    match body.lock().unwrap_or_else(|e| e.into_inner()).take() {
                        Some(b) => request.body(b),
                        None => request.body(Vec::new()),
                    }
                };
                let result = self
                    .attempt(&scope, action, &put_url, &make, Some(&progress))
                    .await;
                if let Some(UploadCheck::Corrupt) = check.result() {
                    if let Upload::Stored(store) = source {
                        store.evict(digest, "layer");
                    }
                    return Err(Failure::fatal(
                        BlobStoreError::Corrupt {
                            digest: digest.clone(),
                            what: "layer".into(),
                        }
                        .into(),
                    ));
                }
                let response = result?;
                if response.status().as_u16() == 201 {
                    return Ok(size);
                }
                let status = response.status().as_u16();
                let detail = error_detail(response).await;
                // The registry hashed something else than the name says: if the cached blob is
                // damaged (verify evicts it), say so, so that the build makes it again.
                if let (Upload::Stored(store), true) = (source, detail.contains("DIGEST_INVALID")) {
                    if !store.verify(digest, "layer").unwrap_or(true) {
                        return Err(Failure::fatal(
                            BlobStoreError::Corrupt {
                                digest: digest.clone(),
                                what: "layer".into(),
                            }
                            .into(),
                        ));
                    }
                }
                Err(match status {
                    401 | 403 => Failure::fatal(RegistryError::Denied {
                        registry: registry.to_string(),
                        action: action.to_string(),
                    }),
                    // The session may be gone (a 404 after a restart): open another.
                    404 | 416 => Failure::transient(RegistryError::Protocol {
                        registry: registry.to_string(),
                        action: action.to_string(),
                        message: format!("HTTP {status} to the upload{detail}"),
                    }),
                    _ => Failure::fatal(RegistryError::Protocol {
                        registry: registry.to_string(),
                        action: action.to_string(),
                        message: format!("HTTP {status} to the upload{detail}"),
                    }),
                })
            })
            .await
    }

    /// Sends every layer of `image` (see [`Registry::push_layer`]) except those in `done`
    /// (pushed already during the build, or known to be there), and then the config unless
    /// `done` has it: everything but the manifest.
    pub async fn push_blobs(
        &self,
        image: &Image,
        target: &Reference,
        base: Option<&Reference>,
        store: &BlobStore,
        done: &HashMap<Digest, LayerPush>,
    ) -> Result<PushReport, RegistryError> {
        let results: Vec<LayerPush> = futures::stream::iter(image.layers.iter())
            .map(|layer| async move {
                match done.get(&layer.info.digest) {
                    Some(outcome) => Ok(*outcome),
                    None => self.push_layer(layer, target, base, store).await,
                }
            })
            .buffer_unordered(4)
            .try_collect()
            .await?;
        let mut report = PushReport::default();
        for outcome in results {
            match outcome {
                LayerPush::Skipped => report.skipped += 1,
                LayerPush::Mounted => report.mounted += 1,
                LayerPush::Uploaded(bytes) => {
                    report.uploaded += 1;
                    report.uploaded_bytes += bytes;
                }
            }
        }
        let action = format!("pushing the config to {target}");
        let scope = Scope::push(target);
        if !done.contains_key(&image.config_digest)
            && !self
                .has_blob(target, &scope, &image.config_digest, &action)
                .await?
        {
            let size = self
                .upload(
                    target,
                    &image.config_digest,
                    Upload::Bytes(&image.config),
                    None,
                    &action,
                )
                .await?;
            report.uploaded += 1;
            report.uploaded_bytes += size;
        }
        Ok(report)
    }

    /// Puts the manifest under `target`'s tag (or digest): the step that makes the image exist.
    pub async fn push_manifest(
        &self,
        image: &Image,
        target: &Reference,
    ) -> Result<(), RegistryError> {
        let reference = target
            .tag()
            .map(String::from)
            .unwrap_or_else(|| image.manifest_digest.to_string());
        let media_type = declared_media_type(&image.manifest, media_types::OCI_MANIFEST);
        self.put_manifest(target, &reference, &media_type, &image.manifest)
            .await
            .map(|_| ())
    }

    /// Puts a multi-platform image under `target`: each platform's manifest by its digest
    /// (untagged, as an index requires them present), then the index under the tag (or its
    /// digest). The blobs must be there already ([`Registry::push_blobs`] for each image).
    pub async fn push_index(
        &self,
        index: &ImageIndex,
        target: &Reference,
    ) -> Result<(), RegistryError> {
        for image in &index.images {
            let media_type = declared_media_type(&image.manifest, media_types::OCI_MANIFEST);
            self.put_manifest(
                target,
                &image.manifest_digest.to_string(),
                &media_type,
                &image.manifest,
            )
            .await?;
        }
        let reference = target
            .tag()
            .map(String::from)
            .unwrap_or_else(|| index.digest.to_string());
        let media_type = declared_media_type(&index.bytes, media_types::OCI_INDEX);
        self.put_manifest(target, &reference, &media_type, &index.bytes)
            .await
            .map(|_| ())
    }

    pub(super) async fn put_manifest(
        &self,
        target: &Reference,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<reqwest::header::HeaderMap, RegistryError> {
        let action = format!("pushing the manifest to {target}");
        let url = self.url(target, &format!("manifests/{reference}"));
        let scope = Scope::push(target);
        let make = || {
            self.http
                .bare_request(Method::PUT, &url)
                .header(CONTENT_TYPE, media_type)
                .body(bytes.to_vec())
        };
        let response = self.request(&scope, &action, &url, &make).await?;
        let response = self
            .expect_success(response, target, &action)
            .await
            .map_err(|f| f.error)?;
        Ok(response.headers().clone())
    }

    /// Uploads `bytes` as a blob of `target`'s repository unless it has it already.
    pub async fn put_small_blob(
        &self,
        target: &Reference,
        digest: &Digest,
        bytes: &[u8],
        action: &str,
    ) -> Result<(), RegistryError> {
        let scope = Scope::push(target);
        if !self.has_blob(target, &scope, digest, action).await? {
            self.upload(target, digest, Upload::Bytes(bytes), None, action)
                .await?;
        }
        Ok(())
    }
}

/// The media type a manifest or index states (a Docker v2 one read back from a registry or a
/// layout keeps its own), else `default`: registries check the two agree.
pub fn declared_media_type(bytes: &[u8], default: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Declared {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
    }
    serde_json::from_slice::<Declared>(bytes)
        .ok()
        .and_then(|d| d.media_type)
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| default.to_string())
}

/// Where an upload's bytes come from.
#[derive(Clone, Copy)]
enum Upload<'a> {
    /// A blob in the store (read afresh for every attempt, hashed on the way).
    Stored(&'a BlobStore),
    /// Small bytes in memory (a config).
    Bytes(&'a [u8]),
}

/// How the bytes of an upload compared with the blob's name, once all were read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum UploadCheck {
    Intact,
    Corrupt,
}

/// The verdict of an upload's hashing, filled in when its body ends.
#[derive(Clone, Default)]
struct CheckSlot(Arc<Mutex<Option<UploadCheck>>>);

impl CheckSlot {
    fn result(&self) -> Option<UploadCheck> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Upload<'_> {
    /// A fresh request body, its length, and the slot its digest check will be reported in.
    fn body(
        &self,
        digest: &Digest,
        progress: &Progress,
        http: &lockship_net::Http,
    ) -> Result<(reqwest::Body, u64, CheckSlot), BlobStoreError> {
        let slot = CheckSlot::default();
        match self {
            Upload::Bytes(bytes) => {
                progress.tick();
                Ok((
                    reqwest::Body::from(bytes.to_vec()),
                    bytes.len() as u64,
                    slot,
                ))
            }
            Upload::Stored(store) => {
                let path = store.path(digest);
                let file = std::fs::File::open(&path).map_err(|source| BlobStoreError::Io {
                    path: path.clone(),
                    source,
                })?;
                let size = file
                    .metadata()
                    .map_err(|source| BlobStoreError::Io {
                        path: path.clone(),
                        source,
                    })?
                    .len();
                let reader = tokio_util::io::ReaderStream::with_capacity(
                    tokio::fs::File::from_std(file),
                    1 << 20,
                );
                let short = digest.hex().get(..12).unwrap_or_default();
                let transfer = http.transfer_labelled(&format!("sha256:{short}"), Some(size), true);
                // The last chunk is held back until the whole file has hashed to its name: a
                // body with a Content-Length is done once that many bytes went, so an error
                // after the last byte would never be read, and the registry would get the
                // damaged blob. Failing instead of the last chunk aborts the upload.
                let state = UploadBody {
                    reader,
                    held: None,
                    hasher: Some(Hasher::default()),
                    expected: digest.clone(),
                    slot: slot.clone(),
                    progress: progress.clone(),
                    transfer,
                };
                let chunks = futures::stream::unfold(state, UploadBody::next);
                Ok((reqwest::Body::wrap_stream(chunks), size, slot))
            }
        }
    }
}

/// The body of a blob upload read from the store, hashed as it goes (see [`Upload::body`]).
struct UploadBody {
    reader: tokio_util::io::ReaderStream<tokio::fs::File>,
    /// The chunk read but not yet sent.
    held: Option<bytes::Bytes>,
    /// None once the end was reached.
    hasher: Option<Hasher>,
    expected: Digest,
    slot: CheckSlot,
    progress: Progress,
    /// The bytes sent so far, for a progress bar.
    transfer: lockship_net::Transfer,
}

impl UploadBody {
    async fn next(mut self) -> Option<(std::io::Result<bytes::Bytes>, UploadBody)> {
        loop {
            let hasher = self.hasher.as_mut()?;
            match self.reader.next().await {
                Some(Ok(chunk)) => {
                    hasher.update(&chunk);
                    self.progress.tick();
                    self.transfer.advance(chunk.len() as u64);
                    if let Some(previous) = self.held.replace(chunk) {
                        return Some((Ok(previous), self));
                    }
                }
                Some(Err(e)) => {
                    self.hasher = None;
                    return Some((Err(e), self));
                }
                None => {
                    let intact =
                        self.hasher.take().map(Hasher::finish).as_ref() == Some(&self.expected);
                    *self.slot.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(if intact {
                        UploadCheck::Intact
                    } else {
                        UploadCheck::Corrupt
                    });
                    return match (intact, self.held.take()) {
                        (true, Some(last)) => Some((Ok(last), self)),
                        (true, None) => None,
                        (false, _) => Some((
                            Err(std::io::Error::other("the cached blob is damaged")),
                            self,
                        )),
                    };
                }
            }
        }
    }
}

/// What a mount attempt came to.
enum Mount {
    Mounted,
    /// Not mounted; the registry may have opened an upload session at this location.
    Upload(Option<String>),
}

/// The URL that closes the upload session at `location` with the blob's digest.
pub(super) fn closing_url(location: &str, digest: &Digest) -> String {
    let separator = if location.contains('?') { '&' } else { '?' };
    format!("{location}{separator}digest={digest}")
}

/// The `Location` of a response, made absolute against `base`.
pub(super) fn location(response: &Response, base: &str) -> Option<String> {
    let value = response.headers().get(LOCATION)?.to_str().ok()?;
    let base = ::url::Url::parse(&format!("{base}/")).ok()?;
    base.join(value).ok().map(|u| u.to_string())
}
