//! Artifacts attached to an image as OCI 1.1 referrers (an SBOM, the wheels a build made): a
//! manifest whose `subject` is the image, put by its digest. A registry that serves the
//! referrers API says so with `OCI-Subject` in its answer; for one that does not (Distribution
//! 2.x), the spec's fallback is kept as well: the `sha256-HEX` tag names an index listing the
//! image's referrers, read, extended and put back. Reading goes the same two ways: the
//! referrers API, else that tag.

use std::collections::BTreeMap;

use oci_spec::distribution::Reference;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{net_error, parse_json, Registry, RegistryError, Scope};
use crate::canonical_json;
use crate::digest::Digest;
use crate::manifest::MAX_MANIFEST;
use crate::media_types;

/// The empty config an artifact manifest carries (`{}`), as the image spec defines it.
const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
const EMPTY: &[u8] = b"{}";

/// The image an artifact refers to.
#[derive(Clone, Debug)]
pub struct Subject {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
}

/// One blob of an artifact, as its manifest lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArtifactBlob {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    pub annotations: BTreeMap<String, String>,
}

/// An artifact manifest as read back: its blobs and annotations.
#[derive(Clone, Debug)]
pub struct ArtifactManifest {
    pub artifact_type: String,
    pub blobs: Vec<ArtifactBlob>,
    pub annotations: BTreeMap<String, String>,
}

/// At most this many blobs are taken from an artifact read back (a hostile registry's list is
/// not walked whole), and this many referrers looked at.
const MAX_ARTIFACT_BLOBS: usize = 1024;
const MAX_REFERRERS: usize = 256;

impl Registry {
    /// Pushes `blob` (of `artifact_type`) to `repository`'s registry as a referrer of `subject`,
    /// returning the referrer manifest's digest. Attaching the same bytes again changes nothing.
    pub async fn attach(
        &self,
        repository: &Reference,
        subject: &Subject,
        artifact_type: &str,
        blob: &[u8],
        annotations: &BTreeMap<String, String>,
    ) -> Result<Digest, RegistryError> {
        let action = format!("attaching {artifact_type} to {repository}");
        let blob_digest = Digest::of_bytes(blob);
        self.put_small_blob(repository, &blob_digest, blob, &action)
            .await?;
        let blobs = [ArtifactBlob {
            media_type: artifact_type.to_string(),
            digest: blob_digest,
            size: blob.len() as u64,
            annotations: BTreeMap::new(),
        }];
        self.attach_blobs(repository, subject, artifact_type, &blobs, annotations)
            .await
    }

    /// Puts an artifact listing `blobs` (in `repository` already) as a referrer of `subject`,
    /// returning its manifest's digest.
    pub async fn attach_blobs(
        &self,
        repository: &Reference,
        subject: &Subject,
        artifact_type: &str,
        blobs: &[ArtifactBlob],
        annotations: &BTreeMap<String, String>,
    ) -> Result<Digest, RegistryError> {
        let action = format!("attaching {artifact_type} to {repository}");
        let empty_digest = Digest::of_bytes(EMPTY);
        self.put_small_blob(repository, &empty_digest, EMPTY, &action)
            .await?;
        let layers: Vec<Value> = blobs
            .iter()
            .map(|b| {
                let mut layer = json!({
                    "mediaType": b.media_type,
                    "digest": b.digest.to_string(),
                    "size": b.size,
                });
                if !b.annotations.is_empty() {
                    layer["annotations"] = json!(b.annotations);
                }
                layer
            })
            .collect();
        let mut manifest = json!({
            "schemaVersion": 2,
            "mediaType": media_types::OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": {
                "mediaType": EMPTY_MEDIA_TYPE,
                "digest": empty_digest.to_string(),
                "size": EMPTY.len(),
            },
            "layers": layers,
            "subject": {
                "mediaType": subject.media_type,
                "digest": subject.digest.to_string(),
                "size": subject.size,
            },
        });
        if !annotations.is_empty() {
            manifest["annotations"] = json!(annotations);
        }
        let bytes = canonical_json::to_vec(&manifest);
        let digest = Digest::of_bytes(&bytes);
        let headers = self
            .put_manifest(
                repository,
                &digest.to_string(),
                media_types::OCI_MANIFEST,
                &bytes,
            )
            .await?;
        if !headers.contains_key("oci-subject") {
            let descriptor = json!({
                "mediaType": media_types::OCI_MANIFEST,
                "artifactType": artifact_type,
                "digest": digest.to_string(),
                "size": bytes.len(),
            });
            self.add_to_fallback_tag(repository, subject, descriptor, &action)
                .await?;
        }
        Ok(digest)
    }

    /// The manifests of `artifact_type` that refer to `subject` in `repository`: from the
    /// referrers API, else from the fallback tag; none when neither has any.
    pub async fn referrers(
        &self,
        repository: &Reference,
        subject: &Digest,
        artifact_type: &str,
    ) -> Result<Vec<Digest>, RegistryError> {
        let action = format!("reading the referrers of {repository}@{subject}");
        let query: String = ::url::form_urlencoded::Serializer::new(String::new())
            .append_pair("artifactType", artifact_type)
            .finish();
        let url = self.url(repository, &format!("referrers/{subject}?{query}"));
        let scope = Scope::pull(repository);
        let registry = repository.resolve_registry();
        let make = || {
            self.http
                .bare_request(Method::GET, &url)
                .header(reqwest::header::ACCEPT, media_types::OCI_INDEX)
        };
        let response = self.request(&scope, &action, &url, &make).await?;
        let index = if response.status().is_success() {
            self.http
                .body(&url, response, MAX_MANIFEST)
                .await
                .map_err(|f| net_error(registry, &action, f.error))?
                .to_vec()
        } else if matches!(response.status().as_u16(), 401 | 403) {
            return Err(RegistryError::Denied {
                registry: registry.to_string(),
                action,
            });
        } else {
            // No referrers API (404, 400, 405 from registries that predate it): the tag.
            let tagged = Reference::with_tag(
                repository.registry().to_string(),
                repository.repository().to_string(),
                format!("sha256-{}", subject.hex()),
            );
            match self.manifest(&tagged, &action).await {
                Ok((bytes, _)) => bytes,
                Err(RegistryError::NotFound { .. }) => return Ok(Vec::new()),
                Err(e) => return Err(e),
            }
        };
        #[derive(Deserialize)]
        struct Index {
            #[serde(default)]
            manifests: Vec<Entry>,
        }
        #[derive(Deserialize)]
        struct Entry {
            digest: String,
            #[serde(default, rename = "artifactType")]
            artifact_type: Option<String>,
        }
        let index: Index = parse_json(&index, repository, &action)?;
        Ok(index
            .manifests
            .into_iter()
            .filter(|m| m.artifact_type.as_deref() == Some(artifact_type))
            .filter_map(|m| Digest::parse(&m.digest))
            .take(MAX_REFERRERS)
            .collect())
    }

    /// The artifact manifest `digest` of `repository`, checked against its digest.
    pub async fn artifact(
        &self,
        repository: &Reference,
        digest: &Digest,
    ) -> Result<ArtifactManifest, RegistryError> {
        let action = format!("reading the artifact {repository}@{digest}");
        let reference = repository.clone_with_digest(digest.to_string());
        let (bytes, _) = self.manifest(&reference, &action).await?;
        #[derive(Deserialize)]
        struct Manifest {
            #[serde(default, rename = "artifactType")]
            artifact_type: String,
            #[serde(default)]
            layers: Vec<Layer>,
            #[serde(default)]
            annotations: BTreeMap<String, String>,
        }
        #[derive(Deserialize)]
        struct Layer {
            #[serde(rename = "mediaType")]
            media_type: String,
            digest: String,
            size: u64,
            #[serde(default)]
            annotations: BTreeMap<String, String>,
        }
        let manifest: Manifest = parse_json(&bytes, repository, &action)?;
        Ok(ArtifactManifest {
            artifact_type: manifest.artifact_type,
            blobs: manifest
                .layers
                .into_iter()
                .take(MAX_ARTIFACT_BLOBS)
                .filter_map(|l| {
                    Some(ArtifactBlob {
                        digest: Digest::parse(&l.digest)?,
                        media_type: l.media_type,
                        size: l.size,
                        annotations: l.annotations,
                    })
                })
                .collect(),
            annotations: manifest.annotations,
        })
    }

    /// Adds `descriptor` to the index under the referrers tag of `subject` (`sha256-HEX`).
    async fn add_to_fallback_tag(
        &self,
        repository: &Reference,
        subject: &Subject,
        descriptor: Value,
        action: &str,
    ) -> Result<(), RegistryError> {
        let tag = format!("sha256-{}", subject.digest.hex());
        let tagged = Reference::with_tag(
            repository.registry().to_string(),
            repository.repository().to_string(),
            tag.clone(),
        );
        let mut manifests: Vec<Value> = match self.manifest(&tagged, action).await {
            Ok((bytes, _)) => serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|v| v.get("manifests").and_then(Value::as_array).cloned())
                .unwrap_or_default(),
            Err(RegistryError::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(e),
        };
        if manifests
            .iter()
            .any(|m| m.get("digest") == descriptor.get("digest"))
        {
            return Ok(());
        }
        manifests.push(descriptor);
        let index = json!({
            "schemaVersion": 2,
            "mediaType": media_types::OCI_INDEX,
            "manifests": manifests,
        });
        self.put_manifest(
            &tagged,
            &tag,
            media_types::OCI_INDEX,
            &canonical_json::to_vec(&index),
        )
        .await
        .map(|_| ())
    }
}
