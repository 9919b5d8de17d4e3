//! Talks to OCI / Docker v2 registries through `oci-client`: resolves a base image (index →
//! platform → manifest → config), fetches blobs into the local store, and pushes images sending
//! only the blobs the registry lacks, with the manifest last so a failed push leaves no tag.

use std::collections::HashMap;
use std::str::FromStr;

use futures::{StreamExt, TryStreamExt};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde::Deserialize;

use super::blob_store::{BlobStore, BlobStoreError};
use super::digest::Digest;
use super::image::{BlobOrigin, Image, ImageLayer};
use super::media_types;
use super::platform::Platform;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("`{reference}` is not a valid image reference: {message}")]
    BadReference { reference: String, message: String },
    #[error("cannot reach registry {registry} while {action}: {message}")]
    Unreachable {
        registry: String,
        action: String,
        message: String,
    },
    #[error("registry {registry} denied access while {action}")]
    Denied { registry: String, action: String },
    #[error("image {reference} not found")]
    NotFound { reference: String },
    #[error("image {reference} has no manifest for {platform} (it has: {available})")]
    NoPlatform {
        reference: String,
        platform: String,
        available: String,
    },
    #[error("registry {registry} failed while {action}: {message}")]
    Protocol {
        registry: String,
        action: String,
        message: String,
    },
    #[error(transparent)]
    Store(#[from] BlobStoreError),
}

impl RegistryError {
    /// What the user can do about it, when there is something.
    pub fn hint(&self) -> Option<String> {
        match self {
            RegistryError::Denied { registry, .. } => Some(format!(
                "log in with `docker login {registry}` (lockship reads ~/.docker/config.json)"
            )),
            RegistryError::NotFound { .. } => {
                Some("check `base` in [tool.lockship] (or --base), and that the tag exists".into())
            }
            RegistryError::Unreachable { .. } => Some(
                "check the registry address and that it is up; plain-HTTP registries other than \
                 localhost go in LOCKSHIP_INSECURE_REGISTRIES"
                    .into(),
            ),
            RegistryError::NoPlatform { .. } => {
                Some("choose one of the listed platforms with --platform".into())
            }
            _ => None,
        }
    }
}

/// Parses an image reference (`python:3.12-slim`, `host:5000/team/app@sha256:…`).
pub fn parse_reference(text: &str) -> Result<Reference, RegistryError> {
    Reference::from_str(text).map_err(|e| RegistryError::BadReference {
        reference: text.to_string(),
        message: e.to_string(),
    })
}

/// A layer as a manifest lists it.
#[derive(Clone, Debug)]
pub struct RemoteLayer {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
}

/// A resolved single-platform image in a registry.
#[derive(Clone, Debug)]
pub struct RemoteImage {
    pub reference: Reference,
    pub manifest_digest: Digest,
    pub config: Vec<u8>,
    pub config_digest: Digest,
    pub layers: Vec<RemoteLayer>,
}

/// What a push did with each blob.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct PushReport {
    pub uploaded: usize,
    pub uploaded_bytes: u64,
    pub mounted: usize,
    pub skipped: usize,
}

#[derive(Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    size: u64,
    platform: Option<PlatformJson>,
}

#[derive(Deserialize)]
struct PlatformJson {
    os: String,
    architecture: String,
    variant: Option<String>,
}

#[derive(Deserialize)]
struct ManifestJson {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

/// A registry client for all registries a build touches.
pub struct Registry {
    client: Client,
}

/// Hosts spoken to over plain HTTP: loopback (as Docker does) and LOCKSHIP_INSECURE_REGISTRIES.
fn is_insecure(registry: &str) -> bool {
    let host = registry.rsplit_once(':').map_or(registry, |(h, port)| {
        if port.chars().all(|c| c.is_ascii_digit()) {
            h
        } else {
            registry
        }
    });
    if host == "localhost" || host.starts_with("127.") || host == "[::1]" {
        return true;
    }
    std::env::var("LOCKSHIP_INSECURE_REGISTRIES")
        .map(|list| list.split(',').any(|h| h.trim() == registry))
        .unwrap_or(false)
}

/// Credentials for `registry` from the Docker config (`~/.docker/config.json`, credential
/// helpers); anonymous when there are none.
fn auth_for(registry: &str) -> RegistryAuth {
    let server = if registry == "docker.io" || registry == "index.docker.io" {
        "https://index.docker.io/v1/"
    } else {
        registry
    };
    match docker_credential::get_credential(server) {
        Ok(docker_credential::DockerCredential::UsernamePassword(user, pass)) => {
            RegistryAuth::Basic(user, pass)
        }
        Ok(docker_credential::DockerCredential::IdentityToken(token)) => {
            RegistryAuth::Bearer(token)
        }
        Err(_) => RegistryAuth::Anonymous,
    }
}

impl Registry {
    /// A client that speaks plain HTTP to the insecure hosts among `registries` and HTTPS
    /// (trusting the platform's certificate store) to the rest.
    pub fn new(registries: &[&str]) -> Result<Registry, RegistryError> {
        let insecure: Vec<String> = registries
            .iter()
            .filter(|r| is_insecure(r))
            .map(|r| r.to_string())
            .collect();
        let config = ClientConfig {
            protocol: ClientProtocol::HttpsExcept(insecure),
            // One streamed PUT per blob: no buffering of whole layers, no chunk round trips.
            use_monolithic_push: true,
            connect_timeout: Some(std::time::Duration::from_secs(10)),
            ..Default::default()
        };
        let client = Client::try_from(config).map_err(|e| RegistryError::Protocol {
            registry: "(all)".into(),
            action: "setting up the HTTP client".into(),
            message: e.to_string(),
        })?;
        Ok(Registry { client })
    }

    async fn login(&self, reference: &Reference) {
        let registry = reference.resolve_registry();
        self.client
            .store_auth_if_needed(registry, &auth_for(registry))
            .await;
    }

    /// Resolves `reference` to the manifest for `platform` and fetches its config.
    pub async fn resolve(
        &self,
        reference: &Reference,
        platform: &Platform,
        store: &BlobStore,
    ) -> Result<RemoteImage, RegistryError> {
        self.login(reference).await;
        let accept = [
            media_types::OCI_INDEX,
            media_types::DOCKER_LIST,
            media_types::OCI_MANIFEST,
            media_types::DOCKER_MANIFEST,
        ];
        let action = format!("pulling the manifest of {reference}");
        let (bytes, digest) = self
            .client
            .pull_manifest_raw(reference, &auth_for(reference.resolve_registry()), &accept)
            .await
            .map_err(|e| classify(e, reference, &action))?;
        let mut manifest: ManifestJson = parse_json(&bytes, reference, &action)?;
        let mut manifest_digest =
            Digest::parse(&digest).unwrap_or_else(|| Digest::of_bytes(&bytes));
        let mut resolved = reference.clone();
        if !manifest.manifests.is_empty()
            || manifest.media_type == media_types::OCI_INDEX
            || manifest.media_type == media_types::DOCKER_LIST
        {
            let entry = manifest
                .manifests
                .iter()
                .find(|m| {
                    m.platform.as_ref().is_some_and(|p| {
                        platform.matches(&p.os, &p.architecture, p.variant.as_deref())
                    })
                })
                .ok_or_else(|| RegistryError::NoPlatform {
                    reference: reference.to_string(),
                    platform: platform.to_string(),
                    available: manifest
                        .manifests
                        .iter()
                        .filter_map(|m| m.platform.as_ref())
                        .filter(|p| p.os != "unknown")
                        .map(|p| match &p.variant {
                            Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
                            None => format!("{}/{}", p.os, p.architecture),
                        })
                        .collect::<Vec<_>>()
                        .join(", "),
                })?;
            resolved = reference.clone_with_digest(entry.digest.clone());
            let (bytes, _) = self
                .client
                .pull_manifest_raw(&resolved, &auth_for(reference.resolve_registry()), &accept)
                .await
                .map_err(|e| classify(e, reference, &action))?;
            manifest_digest = Digest::of_bytes(&bytes);
            manifest = parse_json(&bytes, reference, &action)?;
        }
        let config_desc = manifest.config.ok_or_else(|| RegistryError::Protocol {
            registry: reference.resolve_registry().to_string(),
            action: action.clone(),
            message: "manifest has no config".into(),
        })?;
        let config_digest = parse_digest(&config_desc.digest, reference, &action)?;
        // Configs are content-addressed: one pulled before never needs pulling again.
        self.fetch_blob(&resolved, &config_digest, store).await?;
        let config = store.read(&config_digest)?;
        let layers = manifest
            .layers
            .iter()
            .map(|l| {
                Ok(RemoteLayer {
                    media_type: l.media_type.clone(),
                    digest: parse_digest(&l.digest, reference, &action)?,
                    size: l.size,
                })
            })
            .collect::<Result<Vec<_>, RegistryError>>()?;
        Ok(RemoteImage {
            reference: resolved,
            manifest_digest,
            config,
            config_digest,
            layers,
        })
    }

    /// Downloads a blob of `reference`'s repository into `store`, verified against `digest`.
    pub async fn fetch_blob(
        &self,
        reference: &Reference,
        digest: &Digest,
        store: &BlobStore,
    ) -> Result<(), RegistryError> {
        if store.contains(digest) {
            return Ok(());
        }
        self.login(reference).await;
        let action = format!("pulling blob {digest} of {reference}");
        let mut stream = self
            .client
            .pull_blob_stream(reference, digest.as_str())
            .await
            .map_err(|e| classify(e, reference, &action))?;
        let mut pending = store.begin()?;
        // Blocking writes of ~64 KiB chunks into a local file: cheap next to the network.
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| RegistryError::Unreachable {
                registry: reference.resolve_registry().to_string(),
                action: action.clone(),
                message: e.to_string(),
            })?;
            std::io::Write::write_all(&mut pending, &chunk).map_err(|e| {
                RegistryError::Store(BlobStoreError::Io {
                    path: store.tmp_dir().to_path_buf(),
                    source: e,
                })
            })?;
        }
        store.commit(
            pending,
            Some(digest),
            &format!("blob {digest} of {reference}"),
        )?;
        Ok(())
    }

    /// Downloads the blobs `digests` of `reference`'s repository that `store` lacks, a few at
    /// a time.
    pub async fn fetch_blobs(
        &self,
        reference: &Reference,
        digests: impl Iterator<Item = &Digest>,
        store: &BlobStore,
    ) -> Result<(), RegistryError> {
        futures::stream::iter(digests)
            .map(|d| self.fetch_blob(reference, d, store))
            .buffer_unordered(4)
            .try_collect::<Vec<()>>()
            .await
            .map(|_| ())
    }

    /// Pushes one layer blob to `target`: skipped if the registry has it, mounted from `base`
    /// when that is another repository of the same registry, else uploaded (a base layer never
    /// pulled is fetched from `base` first). Builds call this as soon as a layer is written, so
    /// uploads overlap the rest of the build; the manifest still goes last, in [`Registry::push`].
    pub async fn push_layer(
        &self,
        layer: &ImageLayer,
        target: &Reference,
        base: Option<&Reference>,
        store: &BlobStore,
    ) -> Result<LayerPush, RegistryError> {
        self.login(target).await;
        let digest = &layer.info.digest;
        let action = format!("pushing layer {digest} to {target}");
        if self
            .client
            .blob_exists(target, digest.as_str())
            .await
            .map_err(|e| classify(e, target, &action))?
        {
            return Ok(LayerPush::Skipped);
        }
        if layer.origin == BlobOrigin::Base {
            if let Some(base) = base {
                self.login(base).await;
                if base.resolve_registry() == target.resolve_registry()
                    && base.repository() != target.repository()
                    && self
                        .client
                        .mount_blob(target, base, digest.as_str())
                        .await
                        .is_ok()
                {
                    return Ok(LayerPush::Mounted);
                }
                self.fetch_blob(base, digest, store).await?;
            }
        }
        self.upload(target, digest, store, &action).await?;
        Ok(LayerPush::Uploaded(layer.info.size))
    }

    /// Pushes `image` to `target`: every layer (see [`Registry::push_layer`]) except those in
    /// `done`, which were pushed already during the build, then the config, then the manifest.
    pub async fn push(
        &self,
        image: &Image,
        target: &Reference,
        base: Option<&Reference>,
        store: &BlobStore,
        done: &HashMap<Digest, LayerPush>,
    ) -> Result<PushReport, RegistryError> {
        self.login(target).await;
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
        if !self
            .client
            .blob_exists(target, image.config_digest.as_str())
            .await
            .map_err(|e| classify(e, target, &action))?
        {
            self.client
                .push_blob(target, image.config.clone(), image.config_digest.as_str())
                .await
                .map_err(|e| classify(e, target, &action))?;
            report.uploaded += 1;
            report.uploaded_bytes += image.config.len() as u64;
        }
        let action = format!("pushing the manifest to {target}");
        let content_type = media_types::OCI_MANIFEST
            .parse()
            .expect("a media type is a valid header value");
        self.client
            .push_manifest_raw(target, image.manifest.clone(), content_type)
            .await
            .map_err(|e| classify(e, target, &action))?;
        Ok(report)
    }

    async fn upload(
        &self,
        target: &Reference,
        digest: &Digest,
        store: &BlobStore,
        action: &str,
    ) -> Result<(), RegistryError> {
        let path = store.path(digest);
        let file = tokio::fs::File::open(&path).await.map_err(|source| {
            RegistryError::Store(BlobStoreError::Io {
                path: path.clone(),
                source,
            })
        })?;
        let size = file
            .metadata()
            .await
            .map_err(|source| {
                RegistryError::Store(BlobStoreError::Io {
                    path: path.clone(),
                    source,
                })
            })?
            .len();
        let stream = tokio_util::io::ReaderStream::with_capacity(file, 1 << 20)
            .map_err(OciDistributionError::IoError);
        self.client
            .push_blob_stream(target, stream, digest.as_str(), Some(size))
            .await
            .map_err(|e| classify(e, target, action))?;
        Ok(())
    }

    /// Whether the manifest `digest` exists under `reference`'s repository (for tests and checks).
    pub async fn list_tags(&self, reference: &Reference) -> Result<Vec<String>, RegistryError> {
        self.login(reference).await;
        let action = format!("listing tags of {}", reference.repository());
        let tags = self
            .client
            .list_tags(
                reference,
                &auth_for(reference.resolve_registry()),
                None,
                None,
            )
            .await
            .map_err(|e| classify(e, reference, &action))?;
        Ok(tags.tags)
    }
}

/// What pushing one layer came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerPush {
    /// The registry had it.
    Skipped,
    /// Mounted from the base's repository.
    Mounted,
    /// Uploaded, this many bytes.
    Uploaded(u64),
}

fn parse_json<T: for<'de> Deserialize<'de>>(
    bytes: &[u8],
    reference: &Reference,
    action: &str,
) -> Result<T, RegistryError> {
    serde_json::from_slice(bytes).map_err(|e| RegistryError::Protocol {
        registry: reference.resolve_registry().to_string(),
        action: action.to_string(),
        message: format!("invalid manifest JSON: {e}"),
    })
}

fn parse_digest(text: &str, reference: &Reference, action: &str) -> Result<Digest, RegistryError> {
    Digest::parse(text).ok_or_else(|| RegistryError::Protocol {
        registry: reference.resolve_registry().to_string(),
        action: action.to_string(),
        message: format!("unsupported digest `{text}` (lockship handles sha256)"),
    })
}

/// Turns oci-client's errors into ones that say what failed and why, in user terms.
fn classify(err: OciDistributionError, reference: &Reference, action: &str) -> RegistryError {
    let registry = reference.resolve_registry().to_string();
    let action = action.to_string();
    match &err {
        OciDistributionError::RequestError(e) if e.is_connect() || e.is_timeout() => {
            let mut message = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                message = s.to_string();
                source = s.source();
            }
            RegistryError::Unreachable {
                registry,
                action,
                message,
            }
        }
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => {
            RegistryError::Denied { registry, action }
        }
        OciDistributionError::ImageManifestNotFoundError(_) => RegistryError::NotFound {
            reference: reference.to_string(),
        },
        OciDistributionError::ServerError {
            code: 401 | 403, ..
        } => RegistryError::Denied { registry, action },
        OciDistributionError::ServerError { code: 404, .. } => RegistryError::NotFound {
            reference: reference.to_string(),
        },
        OciDistributionError::RegistryError { envelope, .. } => {
            use oci_client::errors::OciErrorCode as C;
            let codes: Vec<&C> = envelope.errors.iter().map(|e| &e.code).collect();
            if codes
                .iter()
                .any(|c| matches!(c, C::ManifestUnknown | C::NameUnknown | C::NotFound))
            {
                RegistryError::NotFound {
                    reference: reference.to_string(),
                }
            } else if codes
                .iter()
                .any(|c| matches!(c, C::Unauthorized | C::Denied))
            {
                RegistryError::Denied { registry, action }
            } else {
                RegistryError::Protocol {
                    registry,
                    action,
                    message: err.to_string(),
                }
            }
        }
        _ => RegistryError::Protocol {
            registry,
            action,
            message: err.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_plain_http() {
        assert!(is_insecure("127.0.0.1:5000"));
        assert!(is_insecure("localhost:5000"));
        assert!(!is_insecure("ghcr.io"));
    }
}
