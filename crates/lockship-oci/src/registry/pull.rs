//! Pulling: a base resolved from its reference (an index narrowed to one platform, a manifest
//! checked against the reference's digest, the config fetched), and blobs fetched into the
//! store, no longer than the manifest says, retried when they break or arrive altered.

use futures::{StreamExt, TryStreamExt};
use oci_spec::distribution::Reference;
use reqwest::Method;

use super::{
    lift, media_types, parse_digest, parse_json, Registry, RegistryError, RemoteImage, RemoteLayer,
    RemoteManifest, Scope,
};
use crate::blob_store::{BlobStore, BlobStoreError};
use crate::digest::Digest;
use crate::download::{stream_body, BodyFailure};
use crate::image::{BlobOrigin, Image};
use crate::image_index::{ImageIndex, OwnedArtifact};
use crate::manifest::{config_platform_mismatch, ManifestJson, MAX_MANIFEST};
use crate::platform::Platform;
use lockship_net::Failure;

impl Registry {
    /// Resolves `reference` to the manifest for `platform` and fetches its config. A
    /// single-platform image must match `platform` when `platform_required` (the user asked).
    pub async fn resolve(
        &self,
        reference: &Reference,
        platform: &Platform,
        platform_required: bool,
        store: &BlobStore,
    ) -> Result<RemoteImage, RegistryError> {
        let action = format!("pulling the manifest of {reference}");
        let Located {
            resolved,
            manifest,
            manifest_digest,
            is_index,
            ..
        } = self.locate(reference, platform, &action).await?;
        let (config_digest, config) = self
            .fetch_config(&resolved, reference, &manifest, store, &action)
            .await?;
        if !is_index && platform_required {
            check_platform(&config, reference, platform)?;
        }
        let layers = remote_layers(&manifest, reference, &action)?;
        Ok(RemoteImage {
            reference: resolved,
            manifest_digest,
            config,
            config_digest,
            layers,
            annotations: manifest.annotations,
        })
    }

    /// What `reference` names now, narrowed to `platform`, without its config: what a build
    /// reads to reuse an earlier build's layers and to tell whether a push would change
    /// anything. None when the reference does not exist, or is an index without `platform`.
    pub async fn peek(
        &self,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<Option<RemoteManifest>, RegistryError> {
        let action = format!("reading the manifest of {reference}");
        let located = match self.locate(reference, platform, &action).await {
            Ok(located) => located,
            Err(RegistryError::NotFound { .. } | RegistryError::NoPlatform { .. }) => {
                return Ok(None)
            }
            Err(e) => return Err(e),
        };
        let config_digest = match &located.manifest.config {
            Some(config) => parse_digest(&config.digest, reference, &action)?,
            None => return Ok(None),
        };
        Ok(Some(RemoteManifest {
            layers: remote_layers(&located.manifest, reference, &action)?,
            reference: located.resolved,
            tag_digest: located.tag_digest,
            manifest_digest: located.manifest_digest,
            config_digest,
            annotations: located.manifest.annotations,
        }))
    }

    /// What `reference` names, whole: the image, or the index with every image it lists, each
    /// manifest kept byte for byte (so pushing it again keeps its digest) and each config
    /// fetched. Layers stay in the registry (`BlobOrigin::Cached`) until something reads them.
    pub async fn read_artifact(
        &self,
        reference: &Reference,
        store: &BlobStore,
    ) -> Result<OwnedArtifact, RegistryError> {
        let action = format!("reading the manifest of {reference}");
        let (bytes, digest) = self.manifest(reference, &action).await?;
        let manifest: ManifestJson = parse_json(&bytes, reference, &action)?;
        if !manifest.is_index() {
            let image = self
                .whole_image(reference, bytes, &manifest, store, &action)
                .await?;
            return Ok(OwnedArtifact::Image(image));
        }
        crate::manifest::check_children(&manifest).map_err(|message| RegistryError::Protocol {
            registry: reference.resolve_registry().to_string(),
            action: action.clone(),
            message,
        })?;
        let mut images = Vec::with_capacity(manifest.manifests.len());
        for child in &manifest.manifests {
            let child_digest = parse_digest(&child.digest, reference, &action)?;
            let child_ref = reference.clone_with_digest(child_digest.to_string());
            let (child_bytes, _) = self.manifest(&child_ref, &action).await?;
            let parsed: ManifestJson = parse_json(&child_bytes, reference, &action)?;
            if parsed.is_index() {
                return Err(RegistryError::Protocol {
                    registry: reference.resolve_registry().to_string(),
                    action,
                    message: "the index lists another index (lockship reads one level)".into(),
                });
            }
            images.push(
                self.whole_image(&child_ref, child_bytes, &parsed, store, &action)
                    .await?,
            );
        }
        Ok(OwnedArtifact::Index(ImageIndex {
            images,
            bytes,
            digest,
        }))
    }

    /// One image manifest of `reference` with its config fetched.
    async fn whole_image(
        &self,
        reference: &Reference,
        bytes: Vec<u8>,
        manifest: &ManifestJson,
        store: &BlobStore,
        action: &str,
    ) -> Result<Image, RegistryError> {
        let (config_digest, config) = self
            .fetch_config(reference, reference, manifest, store, action)
            .await?;
        let layers = remote_layers(manifest, reference, action)?;
        let mut image = crate::image::from_parts(bytes, config, config_digest, &layers);
        for layer in &mut image.layers {
            layer.origin = BlobOrigin::Cached(reference.clone());
        }
        Ok(image)
    }

    /// The config `manifest` names, fetched from `from`'s repository (`named`: the reference
    /// as the user gave it, for messages). At most [`MAX_CONFIG`](crate::manifest::MAX_CONFIG)
    /// bytes; configs are content-addressed, so one pulled before (and intact: `fetch_blob`
    /// checks) is not pulled again.
    async fn fetch_config(
        &self,
        from: &Reference,
        named: &Reference,
        manifest: &ManifestJson,
        store: &BlobStore,
        action: &str,
    ) -> Result<(Digest, Vec<u8>), RegistryError> {
        let protocol = |message: &str| RegistryError::Protocol {
            registry: named.resolve_registry().to_string(),
            action: action.to_string(),
            message: message.to_string(),
        };
        let config_desc = manifest
            .config
            .as_ref()
            .ok_or_else(|| protocol("manifest has no config"))?;
        let config_digest = parse_digest(&config_desc.digest, named, action)?;
        if config_desc.size > crate::manifest::MAX_CONFIG {
            return Err(protocol(
                "its config is larger than lockship reads (16 MiB)",
            ));
        }
        let what = format!("config of {named}");
        self.fetch_blob(from, &config_digest, Some(config_desc.size), &what, store)
            .await?;
        let config = store.read(&config_digest, &what)?;
        Ok((config_digest, config))
    }

    /// The manifest `reference` names for `platform` (through an index when it names one).
    async fn locate(
        &self,
        reference: &Reference,
        platform: &Platform,
        action: &str,
    ) -> Result<Located, RegistryError> {
        let (bytes, tag_digest) = self.manifest(reference, action).await?;
        let manifest: ManifestJson = parse_json(&bytes, reference, action)?;
        if !manifest.is_index() {
            return Ok(Located {
                resolved: reference.clone(),
                manifest,
                manifest_digest: tag_digest.clone(),
                tag_digest,
                is_index: false,
            });
        }
        let entry =
            manifest
                .entry_for(platform)
                .map_err(|available| RegistryError::NoPlatform {
                    reference: reference.to_string(),
                    platform: platform.to_string(),
                    available,
                })?;
        let digest = parse_digest(&entry.digest, reference, action)?;
        let resolved = reference.clone_with_digest(digest.to_string());
        let (bytes, manifest_digest) = self.manifest(&resolved, action).await?;
        Ok(Located {
            manifest: parse_json(&bytes, reference, action)?,
            resolved,
            manifest_digest,
            tag_digest,
            is_index: true,
        })
    }

    /// The manifest bytes of `reference` and their digest, checked against the reference's
    /// digest when it has one.
    pub(super) async fn manifest(
        &self,
        reference: &Reference,
        action: &str,
    ) -> Result<(Vec<u8>, Digest), RegistryError> {
        let tag_or_digest = reference
            .digest()
            .or(reference.tag())
            .unwrap_or("latest")
            .to_string();
        let url = self.url(reference, &format!("manifests/{tag_or_digest}"));
        let accept = [
            media_types::OCI_INDEX,
            media_types::DOCKER_LIST,
            media_types::OCI_MANIFEST,
            media_types::DOCKER_MANIFEST,
        ]
        .join(", ");
        let scope = Scope::pull(reference);
        let registry = reference.resolve_registry();
        let bytes = self
            .http
            .retry(&url, |_| async {
                let make = || {
                    self.http
                        .bare_request(Method::GET, &url)
                        .header(reqwest::header::ACCEPT, &accept)
                };
                let response = self.attempt(&scope, action, &url, &make, None).await?;
                let response = self.expect_success(response, reference, action).await?;
                self.http
                    .body(&url, response, MAX_MANIFEST)
                    .await
                    .map_err(|f| lift(registry, action, f))
            })
            .await?;
        let digest = Digest::of_bytes(&bytes);
        if let Some(expected) = reference.digest().and_then(Digest::parse) {
            if expected != digest {
                return Err(RegistryError::Tampered {
                    registry: registry.to_string(),
                    what: format!("the manifest of {reference}"),
                    expected,
                    actual: digest,
                });
            }
        }
        Ok((bytes.to_vec(), digest))
    }

    /// Downloads a blob of `reference`'s repository into `store`, verified against `digest` and,
    /// when known, its size: a body longer than the manifest says is cut off and refused. An
    /// intact copy already in the store is kept; a damaged one is evicted and fetched again.
    pub async fn fetch_blob(
        &self,
        reference: &Reference,
        digest: &Digest,
        size: Option<u64>,
        what: &str,
        store: &BlobStore,
    ) -> Result<(), RegistryError> {
        if store.verify(digest, what)? {
            return Ok(());
        }
        let action = format!("pulling {what} ({digest})");
        let url = self.url(reference, &format!("blobs/{digest}"));
        let scope = Scope::pull(reference);
        let registry = reference.resolve_registry();
        self.http
            .retry(&url, |attempt| {
                let (scope, action, url) = (&scope, &action, &url);
                async move {
                    let make = || self.http.bare_request(Method::GET, url);
                    let response = self.attempt(scope, action, url, &make, None).await?;
                    let mut response = match self.expect_success(response, reference, action).await
                    {
                        Ok(response) => response,
                        Err(Failure {
                            error: RegistryError::NotFound { .. },
                            ..
                        }) => {
                            return Err(Failure::fatal(RegistryError::BlobNotFound {
                                registry: registry.to_string(),
                                reference: reference.to_string(),
                                what: format!("{what} ({digest})"),
                            }))
                        }
                        Err(other) => return Err(other),
                    };
                    let pending =
                        match stream_body(&self.http, url, &mut response, store, size).await {
                            Ok(pending) => pending,
                            Err(BodyFailure::Net(f)) => return Err(lift(registry, action, f)),
                            Err(BodyFailure::Store(e)) => return Err(Failure::fatal(e.into())),
                            Err(BodyFailure::TooLong { limit }) => {
                                return Err(Failure::fatal(RegistryError::Protocol {
                                    registry: registry.to_string(),
                                    action: action.clone(),
                                    message: format!(
                                        "it sent more than the {limit} bytes the manifest lists"
                                    ),
                                }))
                            }
                        };
                    match store.commit(pending, Some(digest), what) {
                        Ok(_) => Ok(()),
                        Err(BlobStoreError::DigestMismatch { actual, .. }) => {
                            let error = RegistryError::Tampered {
                                registry: registry.to_string(),
                                what: format!("{what} ({digest})"),
                                expected: digest.clone(),
                                actual,
                            };
                            // A byte flipped in transit is worth one more try; twice is a pattern.
                            Err(if attempt == 0 {
                                Failure::transient(error)
                            } else {
                                Failure::fatal(error)
                            })
                        }
                        Err(e) => Err(Failure::fatal(e.into())),
                    }
                }
            })
            .await
    }

    /// Brings the layers of `image` that are still in a registry (`BlobOrigin::Cached`) into
    /// `store`, each from the repository whose manifest lists it, checked against its digest.
    /// The error names the layer and where it was to come from.
    pub async fn fetch_cached_layers(
        &self,
        image: &Image,
        store: &BlobStore,
    ) -> Result<(), CachedLayerError> {
        // Each blob's diff id, once worked out (a manifest may list one blob twice).
        let mut checked: std::collections::HashMap<Digest, Digest> = Default::default();
        for layer in &image.layers {
            if let BlobOrigin::Cached(from) = &layer.origin {
                let what = format!("cached layer of {from}");
                let error = |source| CachedLayerError {
                    from: from.clone(),
                    digest: layer.info.digest.clone(),
                    source,
                };
                self.fetch_blob(
                    from,
                    &layer.info.digest,
                    Some(layer.info.size),
                    &what,
                    store,
                )
                .await
                .map_err(error)?;
                // The diff id came from the manifest's annotation, and the image's config
                // says it: the blob must unpack to it, or runtimes refuse the image. (The blob
                // itself is intact: its digest was checked; it stays.)
                let actual = match checked.get(&layer.info.digest) {
                    Some(actual) => actual.clone(),
                    None => {
                        let path = store.path(&layer.info.digest);
                        let actual =
                            tokio::task::spawn_blocking(move || crate::layer_files::diff_id(&path))
                                .await
                                .map_err(std::io::Error::other)
                                .and_then(|r| r)
                                .map_err(|e| {
                                    error(RegistryError::Protocol {
                                        registry: from.resolve_registry().to_string(),
                                        action: format!("pulling {what} ({})", layer.info.digest),
                                        message: format!("it does not unpack: {e}"),
                                    })
                                })?;
                        checked.insert(layer.info.digest.clone(), actual.clone());
                        actual
                    }
                };
                if actual != layer.info.diff_id {
                    return Err(error(RegistryError::Tampered {
                        registry: from.resolve_registry().to_string(),
                        what: format!("{what} ({}) unpacked", layer.info.digest),
                        expected: layer.info.diff_id.clone(),
                        actual,
                    }));
                }
            }
        }
        Ok(())
    }

    /// Downloads the blobs of `reference`'s repository that `store` lacks, a few at a time.
    pub async fn fetch_blobs(
        &self,
        reference: &Reference,
        blobs: impl Iterator<Item = (&Digest, u64)>,
        what: &str,
        store: &BlobStore,
    ) -> Result<(), RegistryError> {
        futures::stream::iter(blobs)
            .map(|(d, size)| self.fetch_blob(reference, d, Some(size), what, store))
            .buffer_unordered(4)
            .try_collect::<Vec<()>>()
            .await
            .map(|_| ())
    }
}

/// A layer a registry's manifest listed that could not be fetched from it.
#[derive(Debug)]
pub struct CachedLayerError {
    pub from: Reference,
    pub digest: Digest,
    pub source: RegistryError,
}

/// Checks that a single-platform image's config is for `platform`.
fn check_platform(
    config: &[u8],
    reference: &Reference,
    platform: &Platform,
) -> Result<(), RegistryError> {
    match config_platform_mismatch(config, platform) {
        None => Ok(()),
        Some(has) => Err(RegistryError::WrongPlatform {
            reference: reference.to_string(),
            wanted: platform.to_string(),
            has,
        }),
    }
}

/// A manifest found for a platform.
struct Located {
    /// The reference, by digest when it went through an index.
    resolved: Reference,
    manifest: ManifestJson,
    manifest_digest: Digest,
    /// The digest of what the reference itself names (the index, or the manifest).
    tag_digest: Digest,
    is_index: bool,
}

/// The layers a manifest lists.
fn remote_layers(
    manifest: &ManifestJson,
    reference: &Reference,
    action: &str,
) -> Result<Vec<RemoteLayer>, RegistryError> {
    manifest
        .layers
        .iter()
        .map(|l| {
            Ok(RemoteLayer {
                media_type: l.media_type.clone(),
                digest: parse_digest(&l.digest, reference, action)?,
                size: l.size,
                annotations: l.annotations.clone(),
            })
        })
        .collect()
}
