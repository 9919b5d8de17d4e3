//! Manifests and indexes as lockship reads them, from a registry or an OCI layout: the fields
//! it uses, which entry of an index is for a platform, and whether a single-platform image's
//! config is for the platform asked for.

use serde::Deserialize;

use crate::digest::Digest;
use crate::media_types;
use crate::platform::Platform;

/// Manifests and indexes larger than this are refused (containerd's limit is 4 MiB as well).
pub(crate) const MAX_MANIFEST: u64 = 4 << 20;
/// Image configs larger than this are refused: a real one, history and all, is a few KB.
pub(crate) const MAX_CONFIG: u64 = 16 << 20;
/// Images one index may list when it is read whole (a multi-platform image has a handful).
pub(crate) const MAX_CHILDREN: usize = 256;

/// Refuses an index read whole that lists too many images or one image twice (each would be
/// fetched and held again).
pub(crate) fn check_children(index: &ManifestJson) -> Result<(), String> {
    if index.manifests.len() > MAX_CHILDREN {
        return Err(format!(
            "it lists {} images (lockship reads at most {MAX_CHILDREN})",
            index.manifests.len()
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for m in &index.manifests {
        if !seen.insert(m.digest.as_str()) {
            return Err(format!("it lists {} twice", m.digest));
        }
    }
    Ok(())
}

/// An image manifest or an index: lockship reads both through one shape and tells them apart
/// by media type or by which fields are present.
#[derive(Deserialize)]
pub(crate) struct ManifestJson {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub config: Option<Descriptor>,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    #[serde(default)]
    pub annotations: std::collections::BTreeMap<String, String>,
}

#[derive(Clone, Deserialize)]
pub(crate) struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    pub platform: Option<PlatformJson>,
    #[serde(default)]
    pub annotations: std::collections::BTreeMap<String, String>,
}

#[derive(Clone, Deserialize)]
pub(crate) struct PlatformJson {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl ManifestJson {
    /// Whether this is an index (a list of per-platform manifests) rather than one image.
    pub fn is_index(&self) -> bool {
        !self.manifests.is_empty()
            || self.media_type == media_types::OCI_INDEX
            || self.media_type == media_types::DOCKER_LIST
    }

    /// The index entry for `platform`, or (as the error) the platforms the index offers.
    pub fn entry_for(&self, platform: &Platform) -> Result<&Descriptor, String> {
        self.manifests
            .iter()
            .find(|m| {
                m.platform
                    .as_ref()
                    .is_some_and(|p| platform.matches(&p.os, &p.architecture, p.variant.as_deref()))
            })
            .ok_or_else(|| {
                self.manifests
                    .iter()
                    .filter_map(|m| m.platform.as_ref())
                    // Attestation manifests say `unknown/unknown`: not a platform to offer.
                    .filter(|p| p.os != "unknown")
                    .map(|p| match &p.variant {
                        Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
                        None => format!("{}/{}", p.os, p.architecture),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            })
    }
}

/// When a single-platform image's `config` says it is for another platform than `platform`,
/// that platform (`os/arch[/variant]`). A config without an architecture matches anything.
pub(crate) fn config_platform_mismatch(config: &[u8], platform: &Platform) -> Option<String> {
    #[derive(Deserialize)]
    struct ConfigPlatform {
        #[serde(default)]
        os: String,
        #[serde(default)]
        architecture: String,
        variant: Option<String>,
    }
    let has = serde_json::from_slice::<ConfigPlatform>(config).ok()?;
    if has.architecture.is_empty()
        || platform.matches(&has.os, &has.architecture, has.variant.as_deref())
    {
        return None;
    }
    Some(match &has.variant {
        Some(v) => format!("{}/{}/{v}", has.os, has.architecture),
        None => format!("{}/{}", has.os, has.architecture),
    })
}

/// Parses a manifest or index (for fuzzing the parser the build trusts with registry answers).
pub fn parse_manifest(bytes: &[u8]) -> Result<usize, String> {
    let m: ManifestJson = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let digests = m
        .layers
        .iter()
        .chain(&m.manifests)
        .chain(m.config.as_ref())
        .filter(|d| Digest::parse(&d.digest).is_some())
        .count();
    Ok(digests)
}
