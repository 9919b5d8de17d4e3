//! Wheels no runner should make twice, shared through the registry. A build that moves a tag
//! attaches to what it pushed (an OCI 1.1 referrer) an artifact holding the wheels it built
//! from sdists, each annotated with the keys the local cache files it under ((sdist, builder,
//! target), and (sdist, Python) for a pure one), and the wheel of the app's last real PEP 517
//! build with what that build was made from (`app_patch::WheelOrigin`). A later build with an
//! empty disk reads the artifacts of the images its registry cache read, and only when it
//! lacks one of those wheels: an sdist is then fetched instead of built, and an app edit is
//! patched onto the shared wheel instead of running the backend. The interpreter that compiled
//! the bytecode goes along too (the files `python::bytecode` unpacks from the base, as one
//! layer), so that a runner compiling a changed layer fetches that, not every base layer. Like
//! the layers, what those
//! references name is trusted as far as the user named them; every wheel is still checked
//! (its digest, its name against the package, its tags against the target).

use std::collections::{BTreeMap, HashMap};

use futures::{StreamExt, TryStreamExt};
use oci_spec::distribution::Reference;
use serde::{Deserialize, Serialize};

use lockship_oci::digest::Digest;
use lockship_oci::image_index::Artifact;
use lockship_oci::media_types;
use lockship_oci::registry::{declared_media_type, ArtifactBlob, Registry, Subject};
use lockship_python::app_patch::WheelOrigin;

use super::registry_cache::RegistryCache;
use super::{Reporter, Session};

/// The artifact type of the wheels a build shares.
pub(crate) const ARTIFACT_TYPE: &str = "application/vnd.dev.lockship.wheels.v1";
/// A wheel file, as is.
const WHEEL_TYPE: &str = "application/vnd.dev.lockship.wheel.v1+zip";
/// The app's shared wheel and what its build was made from ([`AppShared`], JSON).
const APP_TYPE: &str = "application/vnd.dev.lockship.app-wheel.v1+json";
/// The base's interpreter as one layer, filed under its key (`builder/bytecode`).
pub(super) const INTERPRETER_TYPE: &str = "application/vnd.dev.lockship.interpreter.v2.tar+zstd";
/// The same, as lockship packed it before zstd: still read, and shared on as it came.
pub(super) const INTERPRETER_TYPE_GZIP: &str =
    "application/vnd.dev.lockship.interpreter.v1.tar+gzip";
/// A wheel blob's file name.
const TITLE: &str = "org.opencontainers.image.title";
/// The cache keys a wheel blob is filed under, comma-separated.
const KEYS: &str = "dev.lockship.wheel.keys";
/// Artifacts read per image, and the size of an app record taken.
const MAX_ARTIFACTS: usize = 4;
const MAX_APP_RECORD: u64 = 16 << 20;

/// A wheel a build made from an sdist (or found made), filed under its cache keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SharedWheel {
    pub keys: Vec<String>,
    pub filename: String,
    pub sha256: Digest,
    pub size: u64,
}

/// The app's last real build: its wheel (a blob of the same artifact) and its origin.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct AppShared {
    pub filename: String,
    pub sha256: Digest,
    pub size: u64,
    pub origin: WheelOrigin,
}

/// What the artifacts of the images a build read hold.
#[derive(Default)]
pub(crate) struct Found {
    /// Each key → the repository holding the wheel, and the wheel.
    wheels: HashMap<String, (Reference, SharedWheel)>,
    /// App wheels, each with the repository holding it, in the order read.
    apps: Vec<(Reference, AppShared)>,
    /// Interpreters by key → the repository holding the layer, and the layer.
    interpreters: HashMap<String, (Reference, ArtifactBlob)>,
}

impl Found {
    pub(crate) fn wheel(&self, key: &str) -> Option<&(Reference, SharedWheel)> {
        self.wheels.get(key)
    }

    pub(crate) fn apps(&self) -> &[(Reference, AppShared)] {
        &self.apps
    }

    pub(crate) fn interpreter(&self, key: &str) -> Option<&(Reference, ArtifactBlob)> {
        self.interpreters.get(key)
    }
}

/// A file name that is a plain wheel name (no directory, nothing hidden).
pub(crate) fn plain_wheel_name(name: &str) -> bool {
    name.ends_with(".whl")
        && !name.starts_with('.')
        && !name.contains(['/', '\\'])
        && !name.chars().any(char::is_control)
        && name.len() <= 255
}

/// Reads the wheels artifacts attached to `images` (repository, digest its tag names). A
/// reference that cannot be read is no cache: said once, as a warning.
pub(crate) async fn read(
    registry: &Registry,
    store: &lockship_oci::blob_store::BlobStore,
    images: &[(Reference, Digest)],
    reporter: &dyn Reporter,
) -> Found {
    let mut found = Found::default();
    for (repository, digest) in images {
        if let Err(e) = read_one(registry, store, repository, digest, &mut found).await {
            reporter.warn(&format!(
                "not using the wheels shared with {repository}: {e}"
            ));
        }
    }
    found
}

async fn read_one(
    registry: &Registry,
    store: &lockship_oci::blob_store::BlobStore,
    repository: &Reference,
    digest: &Digest,
    found: &mut Found,
) -> Result<(), lockship_oci::registry::RegistryError> {
    let artifacts = registry
        .referrers(repository, digest, ARTIFACT_TYPE)
        .await?;
    for artifact in artifacts.iter().take(MAX_ARTIFACTS) {
        // One unreadable artifact (deleted since the index listed it) spoils no other.
        let Ok(manifest) = registry.artifact(repository, artifact).await else {
            continue;
        };
        for blob in &manifest.blobs {
            match blob.media_type.as_str() {
                WHEEL_TYPE => {
                    let Some(filename) = blob.annotations.get(TITLE) else {
                        continue;
                    };
                    if !plain_wheel_name(filename) {
                        continue;
                    }
                    let wheel = SharedWheel {
                        keys: Vec::new(),
                        filename: filename.clone(),
                        sha256: blob.digest.clone(),
                        size: blob.size,
                    };
                    for key in keys_of(blob) {
                        found
                            .wheels
                            .entry(key.to_string())
                            .or_insert_with(|| (repository.clone(), wheel.clone()));
                    }
                }
                INTERPRETER_TYPE | INTERPRETER_TYPE_GZIP => {
                    for key in keys_of(blob) {
                        found
                            .interpreters
                            .entry(key.to_string())
                            .or_insert_with(|| (repository.clone(), blob.clone()));
                    }
                }
                APP_TYPE if blob.size <= MAX_APP_RECORD => {
                    let what = format!("the shared app wheel record of {repository}");
                    let fetched = registry
                        .fetch_blob(repository, &blob.digest, Some(blob.size), &what, store)
                        .await;
                    if fetched.is_err() {
                        continue;
                    }
                    let Ok(bytes) = store.read(&blob.digest, &what) else {
                        continue;
                    };
                    if let Ok(app) = serde_json::from_slice::<AppShared>(&bytes) {
                        if plain_wheel_name(&app.filename) {
                            found.apps.push((repository.clone(), app));
                        }
                    }
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// The well-formed cache keys a blob is filed under.
fn keys_of(blob: &ArtifactBlob) -> impl Iterator<Item = &str> {
    blob.annotations
        .get(KEYS)
        .map(String::as_str)
        .unwrap_or("")
        .split(',')
        .filter(|k| is_key(k))
}

/// A cache key as lockship makes them: 64 lowercase hex digits.
fn is_key(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// What a build shares: the wheels its registry caches collected, and the app's last real
/// build (the local cache's, or the one taken from the registry).
pub(crate) struct ToShare {
    pub wheels: Vec<SharedWheel>,
    pub app: Option<AppShared>,
    /// The interpreter that compiled the bytecode: its key and its layer in the store.
    pub interpreter: Option<(String, super::bytecode::SharedLayer)>,
}

impl ToShare {
    /// The wheels of every platform's cache, each once with all its keys.
    pub(crate) fn gather(
        remotes: &[&RegistryCache],
        app: Option<AppShared>,
        interpreter: Option<(String, super::bytecode::SharedLayer)>,
    ) -> ToShare {
        let mut by_digest: BTreeMap<Digest, SharedWheel> = BTreeMap::new();
        for wheel in remotes.iter().flat_map(|r| r.made()) {
            let entry = by_digest
                .entry(wheel.sha256.clone())
                .or_insert_with(|| SharedWheel {
                    keys: Vec::new(),
                    ..wheel.clone()
                });
            for key in wheel.keys {
                if !entry.keys.contains(&key) {
                    entry.keys.push(key);
                }
            }
        }
        ToShare {
            wheels: by_digest.into_values().collect(),
            app,
            interpreter,
        }
    }

    fn is_empty(&self) -> bool {
        self.wheels.is_empty() && self.app.is_none() && self.interpreter.is_none()
    }
}

/// Attaches the wheels artifact to `artifact` in every target whose tag this build moved
/// (`moved`). Sharing is a cache: a target that refuses it gets a warning, not a failed build
/// (the image is pushed already).
pub(crate) async fn share(
    session: &Session<'_>,
    artifact: Artifact<'_>,
    moved: &[Reference],
    share: ToShare,
) {
    if share.is_empty() || moved.is_empty() {
        return;
    }
    let (registry, store) = (session.registry, session.store);
    let mut blobs: Vec<ArtifactBlob> = share
        .wheels
        .iter()
        .map(|w| ArtifactBlob {
            media_type: WHEEL_TYPE.to_string(),
            digest: w.sha256.clone(),
            size: w.size,
            annotations: [
                (TITLE.to_string(), w.filename.clone()),
                (KEYS.to_string(), w.keys.join(",")),
            ]
            .into(),
        })
        .collect();
    let mut small: Option<(Digest, Vec<u8>)> = None;
    if let Some(app) = &share.app {
        let bytes = serde_json::to_vec(app).expect("the app record serializes");
        let digest = Digest::of_bytes(&bytes);
        blobs.push(ArtifactBlob {
            media_type: WHEEL_TYPE.to_string(),
            digest: app.sha256.clone(),
            size: app.size,
            annotations: [(TITLE.to_string(), app.filename.clone())].into(),
        });
        blobs.push(ArtifactBlob {
            media_type: APP_TYPE.to_string(),
            digest: digest.clone(),
            size: bytes.len() as u64,
            annotations: BTreeMap::new(),
        });
        small = Some((digest, bytes));
    }
    if let Some((key, info)) = &share.interpreter {
        blobs.push(ArtifactBlob {
            media_type: info.media_type.clone(),
            digest: info.digest.clone(),
            size: info.size,
            annotations: [(KEYS.to_string(), key.clone())].into(),
        });
    }
    let subject = subject_of(artifact);
    for target in moved {
        session
            .reporter
            .step(&format!("sharing built wheels with {target}"));
        let result = async {
            // Wheels and the interpreter are in the store; the app record is sent below.
            futures::stream::iter(blobs.iter().filter(|b| b.media_type != APP_TYPE))
                .map(|b| registry.push_stored_blob(target, &b.digest, b.size, store))
                .buffer_unordered(4)
                .try_collect::<Vec<_>>()
                .await?;
            if let Some((digest, bytes)) = &small {
                let action = format!("sharing the app wheel record with {target}");
                registry
                    .put_small_blob(target, digest, bytes, &action)
                    .await?;
            }
            registry
                .attach_blobs(target, &subject, ARTIFACT_TYPE, &blobs, &BTreeMap::new())
                .await
        }
        .await;
        if let Err(e) = result {
            session.reporter.warn(&format!(
                "the built wheels were not shared with {target} (later builds there build them \
                 again): {e}"
            ));
        }
    }
}

/// The descriptor of what a tag names, as an artifact's subject.
fn subject_of(artifact: Artifact<'_>) -> Subject {
    match artifact {
        Artifact::Image(image) => Subject {
            media_type: declared_media_type(&image.manifest, media_types::OCI_MANIFEST),
            digest: image.manifest_digest.clone(),
            size: image.manifest.len() as u64,
        },
        Artifact::Index(index) => Subject {
            media_type: declared_media_type(&index.bytes, media_types::OCI_INDEX),
            digest: index.digest.clone(),
            size: index.bytes.len() as u64,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_wheel_names_are_taken() {
        assert!(plain_wheel_name("docopt-0.6.2-py2.py3-none-any.whl"));
        for bad in [
            "../docopt-0.6.2-py3-none-any.whl",
            "a/b-1-py3-none-any.whl",
            ".hidden-1-py3-none-any.whl",
            "docopt-0.6.2.tar.gz",
            "x\\y-1-py3-none-any.whl",
            "a\nb-1-py3-none-any.whl",
            "a\x1b[31m-1-py3-none-any.whl",
        ] {
            assert!(!plain_wheel_name(bad), "{bad}");
        }
    }

    #[test]
    fn wheels_of_several_platforms_are_shared_once_with_all_their_keys() {
        let cache = RegistryCache::default();
        let wheel = |keys: &[&str]| SharedWheel {
            keys: keys.iter().map(|k| k.to_string()).collect(),
            filename: "docopt-0.6.2-py3-none-any.whl".into(),
            sha256: Digest::of_bytes(b"wheel"),
            size: 5,
        };
        cache.made_wheel(wheel(&["a", "p"]));
        let other = RegistryCache::default();
        other.made_wheel(wheel(&["b", "p"]));
        let share = ToShare::gather(&[&cache, &other], None, None);
        assert_eq!(share.wheels.len(), 1);
        assert_eq!(share.wheels[0].keys, ["a", "p", "b"]);
        assert!(!share.is_empty());
        assert!(ToShare::gather(&[], None, None).is_empty());
    }
}
