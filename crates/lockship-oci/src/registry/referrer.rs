//! Attaching an artifact (an SBOM) to an image as an OCI 1.1 referrer: a manifest whose
//! `subject` is the image, put by its digest. A registry that serves the referrers API says so
//! with `OCI-Subject` in its answer; for one that does not (Distribution 2.x), the spec's
//! fallback is kept as well: the `sha256-HEX` tag names an index listing the image's
//! referrers, read, extended and put back.

use oci_spec::distribution::Reference;
use serde_json::{json, Value};

use super::{Registry, RegistryError};
use crate::canonical_json;
use crate::digest::Digest;
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

impl Registry {
    /// Pushes `blob` (of `artifact_type`) to `repository`'s registry as a referrer of `subject`,
    /// returning the referrer manifest's digest. Attaching the same bytes again changes nothing.
    pub async fn attach(
        &self,
        repository: &Reference,
        subject: &Subject,
        artifact_type: &str,
        blob: &[u8],
        annotations: &std::collections::BTreeMap<String, String>,
    ) -> Result<Digest, RegistryError> {
        let action = format!("attaching {artifact_type} to {repository}");
        let blob_digest = Digest::of_bytes(blob);
        let empty_digest = Digest::of_bytes(EMPTY);
        self.put_small_blob(repository, &blob_digest, blob, &action)
            .await?;
        self.put_small_blob(repository, &empty_digest, EMPTY, &action)
            .await?;
        let mut manifest = json!({
            "schemaVersion": 2,
            "mediaType": media_types::OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": {
                "mediaType": EMPTY_MEDIA_TYPE,
                "digest": empty_digest.to_string(),
                "size": EMPTY.len(),
            },
            "layers": [{
                "mediaType": artifact_type,
                "digest": blob_digest.to_string(),
                "size": blob.len(),
            }],
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
