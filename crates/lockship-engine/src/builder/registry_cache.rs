//! The registry as the build cache. Every image lockship writes says, in its manifest, what
//! each of its layers was made from (the key the local cache files it under) and its diff id,
//! and what the build learned on the way that a later build would otherwise download to learn
//! again: the base's facts, and the ELF facts of each wheel and of the app. A build reads the
//! manifests its push targets and `--cache-from` name now, and the image it last pushed to each
//! target's repository (`pushed`), and takes every layer whose key matches from there (the
//! local cache first): no wheel downloaded, no layer written, no blob uploaded. Each manifest
//! read also vouches for the blobs its repository holds, which a push then does not check.
//! What those references name is trusted as the base is: only what the user named.

use std::collections::{BTreeMap, HashMap};

use oci_spec::distribution::Reference;
use serde::{Deserialize, Serialize};

use lockship_oci::digest::Digest;
use lockship_oci::layer::LayerInfo;
use lockship_oci::platform::Platform;
use lockship_oci::registry::{Registry, RemoteManifest};
use lockship_python::native::NativeFacts;
use lockship_python::probe::BaseFacts;

use super::shared_wheels::{self, Found, SharedWheel};
use super::Reporter;
use crate::plan::{LayerContent, PlannedLayer};

/// A layer descriptor's annotation: the key over the layer's inputs.
pub(crate) const LAYER_KEY: &str = "dev.lockship.layer.key";
/// A layer descriptor's annotation: the layer's diff id (the config has it too, but reading
/// the config would cost a round trip more).
pub(crate) const LAYER_DIFF_ID: &str = "dev.lockship.layer.diff-id";
/// A layer descriptor's annotation: the size of the layer's tar.
pub(crate) const LAYER_TAR_SIZE: &str = "dev.lockship.layer.tar-size";
/// The manifest's annotation: the [`CacheRecord`], as JSON. Its version changes with the
/// record's format (a test pins the format to it).
pub(crate) const RECORD: &str = "dev.lockship.cache.v1";

/// What a build learned that is not a layer: a pure function of the build's inputs, so that
/// the manifest that carries it is the same however warm the cache was.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct CacheRecord {
    /// The base's facts, by its manifest digest (a registry base only).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub bases: BTreeMap<String, BaseFacts>,
    /// ELF facts by wheel sha256 (hex), and the app wheel's by `app-<its layer's key>`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub native: BTreeMap<String, NativeFacts>,
}

/// A layer an earlier build pushed, and the repository that has it.
#[derive(Clone, Debug)]
pub(crate) struct CachedLayer {
    pub info: LayerInfo,
    pub from: Reference,
}

/// What the registry knows, read once at the start of a build.
#[derive(Default)]
pub(crate) struct RegistryCache {
    layers: HashMap<String, CachedLayer>,
    record: CacheRecord,
    /// What each push target names now (by the target as written), when it exists.
    targets: HashMap<String, RemoteManifest>,
    /// Every manifest read, each proof that its repository holds its blobs.
    read: Vec<RemoteManifest>,
    /// The wheels shared with those images (`shared_wheels`), read on first need.
    shared: tokio::sync::OnceCell<Found>,
    /// The wheels this build made from sdists (or found made), to share with its targets.
    made: std::sync::Mutex<Vec<SharedWheel>>,
    /// The interpreter layer being packed to share with them, started once it was ready.
    packing: std::sync::Mutex<Option<(String, InterpreterPacking)>>,
}

/// The background packing of the interpreter's layer (its key and the layer; None when it
/// could not be packed).
pub(super) type InterpreterPacking =
    tokio::task::JoinHandle<Option<(String, super::bytecode::SharedLayer)>>;

/// How a reference is read.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// A push target: what it names now decides what a push must send.
    Target,
    /// `--cache-from`: named by the user, worth a warning when it cannot be read.
    CacheFrom,
    /// The image this machine last pushed to a target's repository (see `pushed`): gone
    /// quietly when it is gone.
    LastPushed,
}

impl RegistryCache {
    /// Reads what `targets` (the push targets) and `cache_from` name for `platform`. A
    /// reference that does not exist yet, or cannot be read, is no cache: a warning for a
    /// `--cache-from` at most, never a failed build.
    pub(crate) async fn load(
        registry: &Registry,
        refs: &[(Reference, Role)],
        platform: &Platform,
        reporter: &dyn Reporter,
    ) -> RegistryCache {
        let mut cache = RegistryCache::default();
        let mut seen = Vec::new();
        for (reference, role) in refs {
            let text = reference.to_string();
            if seen.contains(&text) {
                continue;
            }
            seen.push(text.clone());
            // The image last pushed, when a target names it now, was read already.
            if *role == Role::LastPushed && cache.has_read(reference) {
                continue;
            }
            let manifest = match registry.peek(reference, platform).await {
                Ok(Some(m)) => m,
                Ok(None) => continue,
                // A push target that cannot be read will fail its push with the real error:
                // said once, there. A `--cache-from` the user named is worth a warning.
                Err(e) if *role == Role::CacheFrom => {
                    reporter.warn(&format!("not using {text} as a cache: {e}"));
                    continue;
                }
                Err(_) => continue,
            };
            cache.add(&manifest, reporter);
            if *role == Role::Target {
                cache.targets.insert(text, manifest.clone());
            }
            cache.read.push(manifest);
        }
        cache
    }

    /// Whether a manifest read already is `reference` (a `repo@digest`) itself.
    fn has_read(&self, reference: &Reference) -> bool {
        let Some(digest) = reference.digest() else {
            return false;
        };
        self.read_from(reference)
            .any(|m| m.tag_digest.to_string() == digest || m.manifest_digest.to_string() == digest)
    }

    /// The manifests read from `reference`'s repository.
    fn read_from<'a>(
        &'a self,
        reference: &'a Reference,
    ) -> impl Iterator<Item = &'a RemoteManifest> {
        self.read
            .iter()
            .filter(|m| same_repository(&m.reference, reference))
    }

    /// The blobs `target`'s repository is known to hold: those of every manifest read from it
    /// (what the target names now, a `--cache-from` there, the image last pushed there).
    pub(crate) fn present_in(&self, target: &Reference) -> Vec<Digest> {
        self.read_from(target)
            .flat_map(|m| {
                m.layers
                    .iter()
                    .map(|l| l.digest.clone())
                    .chain([m.config_digest.clone()])
            })
            .collect()
    }

    /// Whether a manifest read from `target`'s repository is `digest` itself (the image was
    /// pushed there before, under another tag, and what it shares with it).
    pub(crate) fn holds(&self, target: &Reference, digest: &Digest) -> bool {
        self.read_from(target).any(|m| &m.tag_digest == digest)
    }

    /// Takes in what one manifest lists; the first reference to list a key keeps it.
    fn add(&mut self, manifest: &RemoteManifest, reporter: &dyn Reporter) {
        for layer in &manifest.layers {
            let a = &layer.annotations;
            let (Some(key), Some(diff_id)) = (a.get(LAYER_KEY), a.get(LAYER_DIFF_ID)) else {
                continue;
            };
            let Some(diff_id) = Digest::parse(diff_id) else {
                continue;
            };
            if !is_key(key) || self.layers.contains_key(key) {
                continue;
            }
            // Without its tar size the layer's annotations (and so the manifest) could not be
            // written again as they were: not taken.
            let Some(tar_size) = a.get(LAYER_TAR_SIZE).and_then(|s| s.parse::<u64>().ok()) else {
                continue;
            };
            self.layers.insert(
                key.clone(),
                CachedLayer {
                    info: LayerInfo {
                        media_type: layer.media_type.clone(),
                        digest: layer.digest.clone(),
                        size: layer.size,
                        diff_id,
                        uncompressed_size: tar_size,
                    },
                    from: manifest.reference.clone(),
                },
            );
        }
        if let Some(text) = manifest.annotations.get(RECORD) {
            match serde_json::from_str::<CacheRecord>(text) {
                Ok(record) => {
                    // Facts that name an interpreter the probe would never find are not
                    // believed (the path is joined under the unpacked base).
                    for (k, v) in record.bases.into_iter().filter(|(_, f)| plausible(f)) {
                        self.record.bases.entry(k).or_insert(v);
                    }
                    for (k, v) in record.native {
                        self.record.native.entry(k).or_insert(v);
                    }
                }
                Err(e) => reporter.warn(&format!(
                    "{} has an unreadable lockship cache record ({e}): its layers are still \
                     used",
                    manifest.reference
                )),
            }
        }
    }

    /// The layer an earlier build made for `planned`, by its key; the app's only when the
    /// record has its wheel's ELF facts too (the library check needs them, and the wheel is not
    /// built).
    pub(crate) fn planned(&self, planned: &PlannedLayer) -> Option<&CachedLayer> {
        if let LayerContent::AppWheel { .. } = planned.content {
            self.native(&app_record_key(&planned.key))?;
        }
        self.layers.get(&planned.key)
    }

    /// Whether any reference had any layer: the build is probably warm from the registry.
    pub(crate) fn has_layers(&self) -> bool {
        !self.layers.is_empty()
    }

    /// The facts of the base with this manifest digest, as an earlier build found them.
    pub(crate) fn base_facts(&self, manifest_digest: &Digest) -> Option<&BaseFacts> {
        self.record.bases.get(&manifest_digest.to_string())
    }

    /// The ELF facts filed under `key` (a wheel's sha256 hex, or `app-<layer key>`).
    pub(crate) fn native(&self, key: &str) -> Option<&NativeFacts> {
        self.record.native.get(key)
    }

    /// The wheels shared with the images read (see `shared_wheels`): read once, when a build
    /// first lacks a wheel that one of them may hold.
    pub(crate) async fn shared(
        &self,
        registry: &Registry,
        store: &lockship_oci::blob_store::BlobStore,
        reporter: &dyn Reporter,
    ) -> &Found {
        self.shared
            .get_or_init(|| async {
                let mut images: Vec<(Reference, Digest)> = Vec::new();
                for m in &self.read {
                    let image = (m.reference.clone(), m.tag_digest.clone());
                    if !images
                        .iter()
                        .any(|(r, d)| d == &image.1 && same_repository(r, &image.0))
                    {
                        images.push(image);
                    }
                }
                shared_wheels::read(registry, store, &images, reporter).await
            })
            .await
    }

    /// Files a wheel this build made (or found made) from an sdist for sharing.
    pub(crate) fn made_wheel(&self, wheel: SharedWheel) {
        self.made
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(wheel);
    }

    /// Files the background packing of the layer of the interpreter with `key`, for sharing.
    pub(super) fn packing_interpreter(&self, key: String, packing: InterpreterPacking) {
        *self.packing.lock().unwrap_or_else(|e| e.into_inner()) = Some((key, packing));
    }

    /// The layer of the interpreter with `key` being packed, if that was started (once).
    pub(super) fn take_packing(&self, key: &str) -> Option<InterpreterPacking> {
        let mut packing = self.packing.lock().unwrap_or_else(|e| e.into_inner());
        match packing.take() {
            Some((started, handle)) if started == key => Some(handle),
            other => {
                *packing = other;
                None
            }
        }
    }

    /// The wheels this build made from sdists, in the order made.
    pub(crate) fn made(&self) -> Vec<SharedWheel> {
        self.made.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// What the push target `target` names now, if it exists.
    pub(crate) fn target(&self, target: &Reference) -> Option<&RemoteManifest> {
        self.targets.get(&target.to_string())
    }
}

/// Whether two references name one repository of one registry.
pub(crate) fn same_repository(a: &Reference, b: &Reference) -> bool {
    a.resolve_registry() == b.resolve_registry() && a.repository() == b.repository()
}

/// The key of the app wheel's ELF facts in the record: by its layer's key, since the wheel
/// itself is not built when the layer is reused.
pub(crate) fn app_record_key(layer_key: &str) -> String {
    format!("app-{layer_key}")
}

/// Whether recorded base facts are ones the probe could have found: the interpreter at
/// `/usr/bin/python3.X` or `/usr/local/bin/python3.X` for the recorded version.
fn plausible(facts: &BaseFacts) -> bool {
    let (major, minor, _) = facts.python_version;
    let name = format!("python{major}.{minor}");
    major == 3
        && [format!("/usr/bin/{name}"), format!("/usr/local/bin/{name}")]
            .contains(&facts.interpreter)
}

/// A layer key as the plan makes them: 64 lowercase hex digits.
fn is_key(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The annotations of a layer made by this build.
pub(crate) fn layer_annotations(key: &str, info: &LayerInfo) -> BTreeMap<String, String> {
    let mut a = BTreeMap::new();
    a.insert(LAYER_KEY.to_string(), key.to_string());
    a.insert(LAYER_DIFF_ID.to_string(), info.diff_id.to_string());
    if info.uncompressed_size > 0 {
        a.insert(
            LAYER_TAR_SIZE.to_string(),
            info.uncompressed_size.to_string(),
        );
    }
    a
}

/// The manifest's annotations for `record`.
pub(crate) fn manifest_annotations(record: &CacheRecord) -> BTreeMap<String, String> {
    let mut a = BTreeMap::new();
    if *record != CacheRecord::default() {
        a.insert(
            RECORD.to_string(),
            serde_json::to_string(record).expect("the record serializes"),
        );
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockship_oci::registry::RemoteLayer;

    fn manifest(layers: Vec<BTreeMap<String, String>>, record: Option<&str>) -> RemoteManifest {
        let d = Digest::of_bytes(b"x");
        RemoteManifest {
            reference: "registry.test/app:1".parse().unwrap(),
            tag_digest: d.clone(),
            manifest_digest: d.clone(),
            config_digest: d.clone(),
            layers: layers
                .into_iter()
                .enumerate()
                .map(|(i, annotations)| RemoteLayer {
                    media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
                    digest: Digest::of_bytes(&[i as u8]),
                    size: 10 + i as u64,
                    annotations,
                })
                .collect(),
            annotations: record
                .map(|r| [(RECORD.to_string(), r.to_string())].into())
                .unwrap_or_default(),
        }
    }

    #[test]
    fn layers_are_taken_only_with_a_well_formed_key_and_diff_id() {
        let good = "a".repeat(64);
        let diff = Digest::of_bytes(b"tar").to_string();
        let annotated = |key: &str, diff: &str| -> BTreeMap<String, String> {
            [
                (LAYER_KEY.to_string(), key.to_string()),
                (LAYER_DIFF_ID.to_string(), diff.to_string()),
                (LAYER_TAR_SIZE.to_string(), "99".to_string()),
            ]
            .into()
        };
        let mut cache = RegistryCache::default();
        cache.add(
            &manifest(
                vec![
                    BTreeMap::new(),
                    annotated(&good, &diff),
                    annotated("../../etc", &diff),
                    annotated(&"b".repeat(64), "md5:nope"),
                ],
                Some("{not json"),
            ),
            &super::super::Silent,
        );
        let layer = cache.layers.get(&good).expect("the annotated layer");
        assert_eq!(layer.info.size, 11);
        assert_eq!(layer.info.uncompressed_size, 99);
        assert_eq!(layer.info.diff_id.to_string(), diff);
        assert!(!cache.layers.contains_key("../../etc"));
        assert!(!cache.layers.contains_key(&"b".repeat(64)));
        assert_eq!(cache.layers.len(), 1);
        assert_eq!(cache.record, CacheRecord::default());
    }

    #[test]
    fn records_round_trip_through_annotations() {
        let mut record = CacheRecord::default();
        record.native.insert("ab".into(), NativeFacts::default());
        let annotations = manifest_annotations(&record);
        let mut cache = RegistryCache::default();
        cache.add(
            &manifest(Vec::new(), annotations.get(RECORD).map(String::as_str)),
            &super::super::Silent,
        );
        assert_eq!(cache.record, record);
        assert!(manifest_annotations(&CacheRecord::default()).is_empty());
    }

    /// Records pushed by earlier versions are read by later ones: a change to what the record
    /// holds (a field of the base's facts or the ELF facts, renamed, added or changing its
    /// meaning) must come with a new version in [`RECORD`], or old records are misread.
    #[test]
    fn the_record_format_is_pinned_to_its_version() {
        let mut record = CacheRecord::default();
        record.bases.insert(
            "sha256:base".into(),
            BaseFacts {
                python_version: (3, 11, 2),
                interpreter: "/usr/bin/python3.11".into(),
                libc: lockship_python::target::Libc::Glibc {
                    major: 2,
                    minor: 36,
                },
                passwd: Some("root:x:0:0::/root:/bin/sh\n".into()),
                group: Some("root:x:0:\n".into()),
                libraries: Some(["libc.so.6".to_string()].into()),
            },
        );
        record.native.insert(
            "ab".into(),
            serde_json::from_str(
                r#"{"objects":[{"path":"m/_x.so","soname":null,"needed":["libm.so.6"]}]}"#,
            )
            .unwrap(),
        );
        assert_eq!(
            (RECORD, serde_json::to_string(&record).unwrap().as_str()),
            (
                "dev.lockship.cache.v1",
                concat!(
                    r#"{"bases":{"sha256:base":{"python_version":[3,11,2],"interpreter":"/usr/bin/python3.11","libc":{"family":"glibc","major":2,"minor":36},"passw"#,
                    r#"d":"root:x:0:0::/root:/bin/sh\n","group":"root:x:0:\n","libraries":["libc.so.6"]}},"native":{"ab":{"objects":[{"path":"m/_x.so","soname":null,"needed":["libm.so.6"]}]}}}"#
                )
            ),
            "the cache record's format changed: bump the version in RECORD"
        );
    }

    #[test]
    fn base_facts_naming_an_interpreter_the_probe_would_not_find_are_dropped() {
        let facts = |interpreter: &str| BaseFacts {
            python_version: (3, 11, 2),
            interpreter: interpreter.into(),
            libc: lockship_python::target::Libc::Glibc {
                major: 2,
                minor: 36,
            },
            passwd: None,
            group: None,
            libraries: Some(Default::default()),
        };
        let mut record = CacheRecord::default();
        record
            .bases
            .insert("sha256:good".into(), facts("/usr/bin/python3.11"));
        record
            .bases
            .insert("sha256:evil".into(), facts("/usr/bin/../../tmp/x"));
        record
            .bases
            .insert("sha256:other".into(), facts("/usr/local/bin/python3.12"));
        let annotations = manifest_annotations(&record);
        let mut cache = RegistryCache::default();
        cache.add(
            &manifest(Vec::new(), annotations.get(RECORD).map(String::as_str)),
            &super::super::Silent,
        );
        let kept: Vec<&String> = cache.record.bases.keys().collect();
        assert_eq!(kept, ["sha256:good"]);
    }
}
