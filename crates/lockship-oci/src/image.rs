//! An image as lockship assembles it: base layers plus new layers, a config derived from the
//! base's config, and an OCI manifest, all serialized canonically so equal inputs give equal
//! digests.

use std::collections::BTreeMap;

use oci_spec::distribution::Reference;
use serde_json::{json, Map, Value};

use super::canonical_json;
use super::digest::Digest;
use super::layer::LayerInfo;
use super::media_types;

/// Where a layer's bytes can be found when an output needs them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlobOrigin {
    /// Written by this build, or already in the local blob store.
    Local,
    /// A base image layer: in the local store if it was ever pulled, else in the base's registry.
    Base,
    /// A layer an earlier build pushed (the registry cache): in the repository of this
    /// reference, fetched from it only when an output or a smoke test reads the layer.
    Cached(Reference),
}

/// A layer in an assembled image.
#[derive(Clone, Debug)]
pub struct ImageLayer {
    pub info: LayerInfo,
    /// The history entry's `created_by`: what the layer holds, for `docker history` and humans.
    pub created_by: String,
    pub origin: BlobOrigin,
    /// The layer descriptor's annotations in the manifest (what a later build reads to reuse
    /// the layer from a registry alone).
    pub annotations: BTreeMap<String, String>,
}

/// The runtime settings lockship puts over the base's config.
#[derive(Clone, Debug, Default)]
pub struct ConfigSpec {
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    /// Variables set (in order), replacing the base's value of the same name.
    pub env: Vec<(String, String)>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// Seconds since the epoch for `created` and history (SOURCE_DATE_EPOCH).
    pub created: u64,
    /// The manifest's own annotations.
    pub annotations: BTreeMap<String, String>,
}

/// A complete image: its config and manifest bytes and the layers they name.
#[derive(Clone, Debug)]
pub struct Image {
    pub config: Vec<u8>,
    pub config_digest: Digest,
    pub manifest: Vec<u8>,
    pub manifest_digest: Digest,
    pub layers: Vec<ImageLayer>,
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

/// Builds the image from the base's config JSON, all layers (base first) and the settings.
/// Base layers must already be in `layers`; `new_layer_count` says how many at the end are new,
/// so that exactly those get history entries.
pub fn assemble(
    base_config: &Value,
    layers: Vec<ImageLayer>,
    new_layer_count: usize,
    spec: &ConfigSpec,
) -> Image {
    let mut config = match base_config {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    let created = rfc3339(spec.created);
    config.insert("created".into(), json!(created));
    // Fields describing how the base was built say nothing true about this image.
    for stale in [
        "container",
        "container_config",
        "docker_version",
        "id",
        "parent",
    ] {
        config.remove(stale);
    }

    let mut run = match config.remove("config") {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    };
    let mut env: Vec<String> = run
        .get("Env")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    for (key, value) in &spec.env {
        let prefix = format!("{key}=");
        env.retain(|e| !e.starts_with(&prefix) && e != key);
        env.push(format!("{key}={value}"));
    }
    run.insert("Env".into(), json!(env));
    if let Some(entrypoint) = &spec.entrypoint {
        run.insert("Entrypoint".into(), json!(entrypoint));
        // An explicit entrypoint makes the base's Cmd (often `python3`) meaningless as arguments.
        run.remove("Cmd");
    }
    if let Some(cmd) = &spec.cmd {
        run.insert("Cmd".into(), json!(cmd));
    }
    if let Some(workdir) = &spec.workdir {
        run.insert("WorkingDir".into(), json!(workdir));
    }
    if let Some(user) = &spec.user {
        run.insert("User".into(), json!(user));
    }
    let mut labels = match run.remove("Labels") {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    };
    for (k, v) in &spec.labels {
        labels.insert(k.clone(), json!(v));
    }
    if !labels.is_empty() {
        run.insert("Labels".into(), Value::Object(labels));
    }
    config.insert("config".into(), Value::Object(run));

    let diff_ids: Vec<String> = layers.iter().map(|l| l.info.diff_id.to_string()).collect();
    config.insert(
        "rootfs".into(),
        json!({ "type": "layers", "diff_ids": diff_ids }),
    );
    let mut history = match config.remove("history") {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    };
    let first_new = layers.len().saturating_sub(new_layer_count);
    for layer in &layers[first_new..] {
        history.push(json!({
            "created": created,
            "created_by": layer.created_by,
            "comment": "lockship",
        }));
    }
    config.insert("history".into(), Value::Array(history));

    let os = config
        .get("os")
        .and_then(Value::as_str)
        .unwrap_or("linux")
        .to_string();
    let architecture = config
        .get("architecture")
        .and_then(Value::as_str)
        .unwrap_or("amd64")
        .to_string();
    let variant = config
        .get("variant")
        .and_then(Value::as_str)
        .map(String::from);

    let config_bytes = canonical_json::to_vec(&Value::Object(config));
    let config_digest = Digest::of_bytes(&config_bytes);
    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": media_types::OCI_MANIFEST,
        "config": {
            "mediaType": media_types::OCI_CONFIG,
            "digest": config_digest.to_string(),
            "size": config_bytes.len(),
        },
        "layers": layers.iter().map(|l| {
            let mut descriptor = json!({
                "mediaType": media_types::to_oci_layer(&l.info.media_type),
                "digest": l.info.digest.to_string(),
                "size": l.info.size,
            });
            if !l.annotations.is_empty() {
                descriptor["annotations"] = json!(l.annotations);
            }
            descriptor
        }).collect::<Vec<_>>(),
    });
    if !spec.annotations.is_empty() {
        manifest["annotations"] = json!(spec.annotations);
    }
    let manifest_bytes = canonical_json::to_vec(&manifest);
    Image {
        manifest_digest: Digest::of_bytes(&manifest_bytes),
        manifest: manifest_bytes,
        config: config_bytes,
        config_digest,
        layers,
        os,
        architecture,
        variant,
    }
}

/// An image read back whole (from an OCI layout or a docker tarball) as its own bytes say, to
/// be inspected or pushed again unchanged: the manifest and config kept byte for byte, so the
/// digests stay; each layer's diff id and history entry taken from the config.
pub fn from_parts(
    manifest: Vec<u8>,
    config: Vec<u8>,
    config_digest: Digest,
    layers: &[crate::registry::RemoteLayer],
) -> Image {
    let parsed: Value = serde_json::from_slice(&config).unwrap_or(Value::Null);
    let text = |key: &str| parsed.get(key).and_then(Value::as_str).map(String::from);
    let diff_ids: Vec<Option<Digest>> = parsed
        .pointer("/rootfs/diff_ids")
        .and_then(Value::as_array)
        .map(|ids| {
            ids.iter()
                .map(|d| d.as_str().and_then(Digest::parse))
                .collect()
        })
        .unwrap_or_default();
    // History entries marked `empty_layer` made no layer; the rest are the layers, in order.
    let created_by: Vec<String> = parsed
        .get("history")
        .and_then(Value::as_array)
        .map(|h| {
            h.iter()
                .filter(|e| {
                    !e.get("empty_layer")
                        .and_then(Value::as_bool)
                        .unwrap_or(false)
                })
                .map(|e| {
                    e.get("created_by")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default();
    let layers = layers
        .iter()
        .enumerate()
        .map(|(i, l)| ImageLayer {
            info: LayerInfo {
                media_type: l.media_type.clone(),
                digest: l.digest.clone(),
                size: l.size,
                diff_id: diff_ids
                    .get(i)
                    .cloned()
                    .flatten()
                    .unwrap_or_else(|| l.digest.clone()),
                uncompressed_size: 0,
            },
            created_by: created_by.get(i).cloned().unwrap_or_default(),
            origin: BlobOrigin::Local,
            annotations: l.annotations.clone(),
        })
        .collect();
    Image {
        manifest_digest: Digest::of_bytes(&manifest),
        manifest,
        config,
        config_digest,
        layers,
        os: text("os").unwrap_or_else(|| "linux".into()),
        architecture: text("architecture").unwrap_or_else(|| "amd64".into()),
        variant: text("variant"),
    }
}

/// Formats seconds since the epoch as RFC 3339 UTC (`1970-01-01T00:00:00Z`).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm, public domain description).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    fn layer(n: u8) -> ImageLayer {
        let d = Digest::of_bytes(&[n]);
        ImageLayer {
            info: LayerInfo {
                media_type: media_types::DOCKER_LAYER_GZIP.into(),
                digest: d.clone(),
                size: 10,
                diff_id: d,
                uncompressed_size: 20,
            },
            created_by: format!("layer {n}"),
            origin: BlobOrigin::Local,
            annotations: BTreeMap::new(),
        }
    }

    #[test]
    fn env_overrides_and_history_counts() {
        let base = json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Env": ["PATH=/usr/bin", "LANG=C.UTF-8"], "Cmd": ["python3"]},
            "history": [{"created_by": "base"}],
            "container_config": {},
        });
        let spec = ConfigSpec {
            entrypoint: Some(vec!["hello".into()]),
            env: vec![("PATH".into(), "/opt/venv/bin:/usr/bin".into())],
            ..Default::default()
        };
        let img = assemble(&base, vec![layer(1), layer(2)], 1, &spec);
        let cfg: Value = serde_json::from_slice(&img.config).unwrap();
        assert_eq!(
            cfg["config"]["Env"],
            json!(["LANG=C.UTF-8", "PATH=/opt/venv/bin:/usr/bin"])
        );
        assert!(cfg["config"].get("Cmd").is_none());
        assert_eq!(cfg["history"].as_array().unwrap().len(), 2);
        assert_eq!(cfg["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
        assert!(cfg.get("container_config").is_none());
        let manifest: Value = serde_json::from_slice(&img.manifest).unwrap();
        assert_eq!(
            manifest["layers"][0]["mediaType"],
            media_types::OCI_LAYER_GZIP
        );
        assert_eq!(Digest::of_bytes(&img.manifest), img.manifest_digest);
        let again = assemble(&base, vec![layer(1), layer(2)], 1, &spec);
        assert_eq!(again.manifest_digest, img.manifest_digest);
    }
}
