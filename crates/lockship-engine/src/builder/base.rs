//! The base of the image, from a registry or from Debian packages, and the Python it implies.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::cache_dir::Bucket;
use crate::error::Error;
use crate::project::{BaseSpec, Project};
use futures::future::LocalBoxFuture;
use lockship_debian::base::DebianSpec;
use lockship_debian::base_lock::BaseLock;
use lockship_net::Http;
use lockship_oci::blob_store::BlobStore;
use lockship_oci::digest::Digest;
use lockship_oci::image::{BlobOrigin, ImageLayer};
use lockship_oci::layer::LayerInfo;
use lockship_oci::layout_image;
use lockship_oci::platform::Platform;
use lockship_oci::registry::{self, Registry, RemoteImage, RemoteLayer};
use lockship_python::probe::{self, BaseFacts};
use lockship_python::target::{Libc, PythonTarget};
use oci_spec::distribution::Reference;

use super::cache::{read_cached, write_cached};
use super::registry_cache::RegistryCache;
use super::{BuildOptions, Reporter, DEFAULT_BASE};

/// The base as the rest of the build needs it, whichever kind it is.
#[derive(Clone, Debug)]
pub(crate) struct ResolvedBase {
    /// For messages and the base.name label.
    pub(super) name: String,
    /// The base pinned exactly: `ref@digest`, or the Debian base lock's digest.
    pub(super) pinned: String,
    /// The label recording the exact base.
    pub(super) digest_label: (String, String),
    pub(super) config: serde_json::Value,
    pub(super) layers: Vec<ImageLayer>,
    pub(super) facts: BaseFacts,
    /// Where base layers live, for registry bases (mounts, fetches for local outputs).
    pub(super) reference: Option<Reference>,
    /// Whether this build wrote the base layer (Debian bases only).
    pub(super) built: bool,
    pub(super) changes: Vec<String>,
    /// Whether `--upgrade-base` re-resolved this (Debian) base's lock against the archives.
    pub(super) upgraded: bool,
}

impl ResolvedBase {
    /// The base's layer blobs in `store` (fetched beforehand), for reading their files.
    pub(super) fn layer_files(&self, store: &BlobStore) -> Vec<PathBuf> {
        self.layers
            .iter()
            .map(|l| store.path(&l.info.digest))
            .collect()
    }
}

/// Where the image's base comes from. The engine asks it for the base (config, layers, facts)
/// and, when local outputs or smoke tests will read them, for the base's layer blobs in the
/// store. Registry images and Debian package bases implement it for real builds; tests hand the
/// engine an image already in the store ([`StoredBase`]), as ko's tests inject base images.
pub(crate) trait BaseSource: Send + Sync {
    /// The base, pinned. `remote` holds what earlier builds recorded in the registry (a
    /// registry base's facts, so that an empty cache need not pull its layers to learn them).
    fn resolve<'a>(
        &'a self,
        store: &'a BlobStore,
        reporter: &'a dyn Reporter,
        remote: &'a RegistryCache,
    ) -> LocalBoxFuture<'a, Result<ResolvedBase, Error>>;

    /// Puts the blobs of `base`'s layers in `store`; by default they are there already.
    fn fetch_layers<'a>(
        &'a self,
        _base: &'a ResolvedBase,
        _store: &'a BlobStore,
    ) -> LocalBoxFuture<'a, Result<(), Error>> {
        Box::pin(async { Ok(()) })
    }

    /// The same base for the host's architecture, whose interpreter runs here (to compile the
    /// bytecode of an image for another architecture); None when there is none to ask for.
    fn for_host(&self) -> Option<Box<dyn BaseSource + '_>> {
        None
    }

    /// A builder lockship can assemble itself from this base with `packages` added (a Debian
    /// base); None when the builder must be named (`[tool.lockship.builder] image`).
    fn builder(&self, _packages: &[String]) -> Option<Box<dyn BaseSource + '_>> {
        None
    }

    /// Whether [`BaseSource::builder`] gives a builder: asked without making one.
    fn assembles_builder(&self) -> bool {
        false
    }

    /// Whether the base's standard library comes without pycs, so that an image with bytecode
    /// gets them in a layer of its own: a base lockship assembles from Debian packages (whose
    /// install-time py3compile it does not run). Images are taken as they are.
    fn stdlib_without_bytecode(&self) -> bool {
        false
    }

    /// Which package of the base's distribution provides each of `libraries` (file names),
    /// for the shared-library check's error; empty when the source cannot tell. Best effort:
    /// a failure to look it up leaves the error as it was.
    fn library_providers<'a>(
        &'a self,
        _libraries: &'a BTreeSet<String>,
        _store: &'a BlobStore,
        _reporter: &'a dyn Reporter,
    ) -> LocalBoxFuture<'a, BTreeMap<String, String>> {
        Box::pin(async { BTreeMap::new() })
    }
}

/// A base image in a registry.
pub(crate) struct RegistryBase<'a> {
    pub registry: &'a Registry,
    pub reference: Reference,
    /// As the user wrote it, for messages.
    pub text: String,
    pub choice: PlatformChoice,
    pub cache_dir: &'a Path,
    /// The build compiles bytecode: a probe of the base unpacks its interpreter as it goes.
    pub unpack_interpreter: bool,
}

impl BaseSource for RegistryBase<'_> {
    fn resolve<'a>(
        &'a self,
        store: &'a BlobStore,
        reporter: &'a dyn Reporter,
        remote: &'a RegistryCache,
    ) -> LocalBoxFuture<'a, Result<ResolvedBase, Error>> {
        Box::pin(async move {
            reporter.step(&format!(
                "resolving base {} for {}",
                self.text, self.choice.platform
            ));
            registry_base(
                self.registry,
                self.reference.clone(),
                &self.text,
                &self.choice,
                store,
                self.cache_dir,
                reporter,
                remote,
                self.unpack_interpreter,
            )
            .await
        })
    }

    fn fetch_layers<'a>(
        &'a self,
        base: &'a ResolvedBase,
        store: &'a BlobStore,
    ) -> LocalBoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            self.registry
                .fetch_blobs(
                    &self.reference,
                    base.layers.iter().map(|l| (&l.info.digest, l.info.size)),
                    &format!("base layer of {}", base.name),
                    store,
                )
                .await?;
            Ok(())
        })
    }

    fn for_host(&self) -> Option<Box<dyn BaseSource + '_>> {
        Some(Box::new(RegistryBase {
            registry: self.registry,
            reference: self.reference.clone(),
            text: self.text.clone(),
            choice: PlatformChoice::host(),
            cache_dir: self.cache_dir,
            unpack_interpreter: self.unpack_interpreter,
        }))
    }
}

/// A base assembled from Debian packages; its one layer is written into the store.
pub(crate) struct DebianBase<'a> {
    pub spec: DebianSpec,
    pub platform: Platform,
    /// gzip level of its layer: 6, or 1 for a builder, which never leaves this machine.
    pub level: u32,
    /// A lock whose versions it keeps where it can: a builder's, the base's lock.
    pub pins: Option<BaseLock>,
    /// Where `lockship-base.lock` lives.
    pub lock_path: PathBuf,
    pub http: &'a Http,
    pub opts: &'a BuildOptions,
}

impl BaseSource for DebianBase<'_> {
    fn stdlib_without_bytecode(&self) -> bool {
        true
    }

    fn assembles_builder(&self) -> bool {
        true
    }

    fn resolve<'a>(
        &'a self,
        store: &'a BlobStore,
        reporter: &'a dyn Reporter,
        _remote: &'a RegistryCache,
    ) -> LocalBoxFuture<'a, Result<ResolvedBase, Error>> {
        Box::pin(debian_base(self, store, reporter))
    }

    fn for_host(&self) -> Option<Box<dyn BaseSource + '_>> {
        // The project's own lock for this machine's architecture (a multi-platform build that
        // includes it wrote one) pins exactly this variant: no index to read.
        let host = Platform::host();
        let arch = lockship_debian::dpkg_arch(&host.architecture, host.variant.as_deref());
        let dir = self.lock_path.parent().unwrap_or(Path::new("."));
        let project_lock = lockship_debian::base_lock::path_for(dir, &arch);
        if project_lock != self.lock_path
            && lockship_debian::base_lock::BaseLock::read(&project_lock)
                .ok()
                .flatten()
                .is_some_and(|l| l.architecture == arch)
        {
            return Some(Box::new(DebianBase {
                spec: self.spec.clone(),
                platform: host,
                level: 6,
                pins: None,
                lock_path: project_lock,
                http: self.http,
                opts: self.opts,
            }));
        }
        // Else a lock of its own in the cache: the project's is for the image's platform.
        Some(Box::new(self.variant(
            self.spec.clone(),
            Platform::host(),
            Bucket::Interpreters,
            "base",
            None,
        )))
    }

    fn builder(&self, packages: &[String]) -> Option<Box<dyn BaseSource + '_>> {
        let mut spec = self.spec.clone();
        // Compilers need what the image does without (build-essential pulls in dpkg-dev).
        spec.exclude.clear();
        for p in packages {
            if !spec.packages.contains(p) {
                spec.packages.push(p.clone());
            }
        }
        // Held to the base's versions: its Python headers match the image's Python exactly.
        let pins = BaseLock::read(&self.lock_path).ok().flatten();
        Some(Box::new(self.variant(
            spec,
            self.platform.clone(),
            Bucket::Bases,
            "builder",
            pins,
        )))
    }

    fn library_providers<'a>(
        &'a self,
        libraries: &'a BTreeSet<String>,
        store: &'a BlobStore,
        reporter: &'a dyn Reporter,
    ) -> LocalBoxFuture<'a, BTreeMap<String, String>> {
        Box::pin(async move {
            reporter.step(&format!(
                "looking up the Debian {} packages that provide {}",
                self.spec.suite,
                libraries.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
            let arch = lockship_debian::dpkg_arch(
                &self.platform.architecture,
                self.platform.variant.as_deref(),
            );
            lockship_debian::base::library_providers(&self.spec, &arch, libraries, self.http, store)
                .await
                .unwrap_or_else(|e| {
                    reporter.warn(&format!(
                        "cannot tell which Debian package provides it: {e}"
                    ));
                    BTreeMap::new()
                })
        })
    }
}

impl DebianBase<'_> {
    /// Another base from the same suite (`spec`, for `platform`) that lockship uses but does
    /// not ship: its lock lives in the cache under `bucket` (`NAME.KIND.lock`, named after the
    /// project's lock, the platform and the packages), pinned once resolved.
    fn variant(
        &self,
        spec: DebianSpec,
        platform: Platform,
        bucket: Bucket,
        kind: &str,
        pins: Option<BaseLock>,
    ) -> DebianBase<'_> {
        // A new pinning lock (the base upgraded) makes a new variant lock.
        let pinned = pins.as_ref().map(BaseLock::to_text).unwrap_or_default();
        let lock_name = Digest::of_parts(
            [
                "lockship-variant-lock",
                kind,
                &self.lock_path.to_string_lossy(),
                &platform.to_string(),
                &pinned,
            ]
            .into_iter()
            .chain(spec.packages.iter().map(String::as_str)),
        );
        DebianBase {
            spec,
            platform,
            // A builder is loaded into the local runtime and never pushed: speed over size.
            level: if kind == "builder" { 1 } else { 6 },
            pins,
            lock_path: bucket
                .under(&self.opts.cache_dir)
                .join(format!("{}.{kind}.lock", lock_name.hex())),
            http: self.http,
            opts: self.opts,
        }
    }
}

/// A base image in an OCI layout directory; its blobs are copied into the store (checked), so
/// every output and the smoke test find them there, and a push uploads them.
pub(crate) struct LayoutBase<'a> {
    pub text: String,
    pub dir: PathBuf,
    pub wanted: Option<String>,
    pub choice: PlatformChoice,
    pub cache_dir: &'a Path,
    /// As for [`RegistryBase`].
    pub unpack_interpreter: bool,
}

impl BaseSource for LayoutBase<'_> {
    fn resolve<'a>(
        &'a self,
        store: &'a BlobStore,
        reporter: &'a dyn Reporter,
        _remote: &'a RegistryCache,
    ) -> LocalBoxFuture<'a, Result<ResolvedBase, Error>> {
        Box::pin(async move {
            reporter.step(&format!(
                "reading base {} for {}",
                self.text, self.choice.platform
            ));
            let (dir, wanted, choice, store2) = (
                self.dir.clone(),
                self.wanted.clone(),
                self.choice.clone(),
                store.clone(),
            );
            let image = tokio::task::spawn_blocking(move || {
                layout_image::read(
                    &dir,
                    wanted.as_deref(),
                    &choice.platform,
                    choice.required,
                    &store2,
                )
            })
            .await
            .map_err(|e| Error::Usage(format!("layout reader crashed: {e}")))??;
            let config = parse_config(&self.text, &image.config)?;
            let entry = facts_entry(self.cache_dir, &image.manifest_digest);
            let facts = match read_cached::<BaseFacts>(&entry) {
                Some(facts) => facts,
                None => {
                    let unpack = interpreter_dest(
                        self.unpack_interpreter,
                        &config,
                        self.cache_dir,
                        &pinned(&self.text, &image.manifest_digest),
                    );
                    probe_stored(&self.text, &image.layers, &config, store, &entry, unpack).await?
                }
            };
            image_base(
                &self.text,
                &image.manifest_digest,
                config,
                &image.layers,
                facts,
                BlobOrigin::Local,
            )
        })
    }

    fn for_host(&self) -> Option<Box<dyn BaseSource + '_>> {
        Some(Box::new(LayoutBase {
            text: self.text.clone(),
            dir: self.dir.clone(),
            wanted: self.wanted.clone(),
            choice: PlatformChoice::host(),
            cache_dir: self.cache_dir,
            unpack_interpreter: self.unpack_interpreter,
        }))
    }
}

/// A base whose layers are already in the store, given whole.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct StoredBase(pub ResolvedBase);

impl BaseSource for StoredBase {
    fn resolve<'a>(
        &'a self,
        _: &'a BlobStore,
        _: &'a dyn Reporter,
        _: &'a RegistryCache,
    ) -> LocalBoxFuture<'a, Result<ResolvedBase, Error>> {
        Box::pin(async move { Ok(self.0.clone()) })
    }
}

/// The base the project or `--base` asks for, the default image when neither does.
fn base_spec(project: &Project, opts: &BuildOptions) -> Result<BaseSpec, Error> {
    Ok(match &opts.base {
        // A layout path on the command line starts where lockship runs.
        Some(b) => BaseSpec::from_text(b, Path::new("")),
        None => project
            .base()?
            .unwrap_or_else(|| BaseSpec::Image(DEFAULT_BASE.to_string())),
    })
}

/// The base as written, when it is not a Debian-package base (which `--upgrade-base` is for).
pub(super) fn not_debian(project: &Project, opts: &BuildOptions) -> Result<Option<String>, Error> {
    Ok(match base_spec(project, opts)? {
        BaseSpec::Debian(_) => None,
        BaseSpec::Image(text) | BaseSpec::Layout { text, .. } => Some(text),
    })
}

/// The base the project or `--base` asks for (the default image when neither does), as a
/// source for the build; `unpack_interpreter`: the build compiles bytecode (see
/// [`RegistryBase`]).
pub(crate) fn base_source<'a>(
    project: &Project,
    lock_path: &Path,
    opts: &'a BuildOptions,
    http: &'a Http,
    registry: &'a Registry,
    unpack_interpreter: bool,
) -> Result<Box<dyn BaseSource + 'a>, Error> {
    let spec = base_spec(project, opts)?;
    let platform = opts.platform.clone().unwrap_or_else(Platform::host);
    let choice = PlatformChoice {
        platform: platform.clone(),
        required: opts.platform.is_some(),
    };
    Ok(match spec {
        BaseSpec::Image(text) => Box::new(RegistryBase {
            registry,
            reference: registry::parse_reference(&text)?,
            text,
            choice,
            cache_dir: &opts.cache_dir,
            unpack_interpreter,
        }),
        BaseSpec::Layout { text, dir, wanted } => Box::new(LayoutBase {
            text,
            dir,
            wanted,
            choice,
            cache_dir: &opts.cache_dir,
            unpack_interpreter,
        }),
        BaseSpec::Debian(spec) => Box::new(DebianBase {
            spec,
            lock_path: lockship_debian::base_lock::path_for(
                lock_path.parent().unwrap_or(&project.dir),
                &lockship_debian::dpkg_arch(&platform.architecture, platform.variant.as_deref()),
            ),
            platform,
            level: 6,
            pins: None,
            http,
            opts,
        }),
    })
}

/// The Python the image will run: the base's interpreter, with the project's venv.
pub(crate) fn python_target(
    project: &Project,
    base: &ResolvedBase,
    opts: &BuildOptions,
) -> PythonTarget {
    let host = Platform::host();
    let platform = opts.platform.as_ref().unwrap_or(&host);
    PythonTarget {
        version: base.facts.python_version,
        interpreter: base.facts.interpreter.clone(),
        libc: base.facts.libc,
        architecture: base
            .config
            .get("architecture")
            .and_then(|a| a.as_str())
            .unwrap_or(&platform.architecture)
            .to_string(),
        venv: project
            .config
            .venv
            .clone()
            .unwrap_or_else(|| "/opt/venv".to_string()),
    }
}

/// Resolves the project's base and the Python target it implies (what `lockship lock` needs).
pub(crate) async fn open_base(
    project: &Project,
    lock_path: &Path,
    opts: &BuildOptions,
    http: &Http,
    store: &BlobStore,
    reporter: &dyn Reporter,
) -> Result<PythonTarget, Error> {
    let registry = Registry::new(http.clone(), opts.registry.clone());
    // Locking compiles nothing: no interpreter to unpack.
    let source = base_source(project, lock_path, opts, http, &registry, false)?;
    let base = source
        .resolve(store, reporter, &RegistryCache::default())
        .await?;
    Ok(python_target(project, &base, opts))
}

/// The platform to take from a base, and whether the user asked for it (then a single-platform
/// base must match it; by default such a base decides the platform itself).
#[derive(Clone)]
pub(crate) struct PlatformChoice {
    platform: Platform,
    required: bool,
}

impl PlatformChoice {
    /// The host's platform, which the base must have.
    fn host() -> PlatformChoice {
        PlatformChoice {
            platform: Platform::host(),
            required: true,
        }
    }
}

/// A base image from a registry: its manifest and config, and its facts.
#[allow(clippy::too_many_arguments)]
pub(super) async fn registry_base(
    registry: &Registry,
    reference: Reference,
    text: &str,
    choice: &PlatformChoice,
    store: &BlobStore,
    cache_dir: &Path,
    reporter: &dyn Reporter,
    known: &RegistryCache,
    unpack_interpreter: bool,
) -> Result<ResolvedBase, Error> {
    let remote = registry
        .resolve(&reference, &choice.platform, choice.required, store)
        .await?;
    let config = parse_config(text, &remote.config)?;
    let recorded = known.base_facts(&remote.manifest_digest);
    let unpack = interpreter_dest(
        unpack_interpreter,
        &config,
        cache_dir,
        &pinned(text, &remote.manifest_digest),
    );
    let facts = base_facts(
        registry, &remote, &config, store, cache_dir, reporter, recorded, unpack,
    )
    .await?;
    let mut base = image_base(
        text,
        &remote.manifest_digest,
        config,
        &remote.layers,
        facts,
        BlobOrigin::Base,
    )?;
    base.reference = Some(remote.reference);
    Ok(base)
}

fn parse_config(text: &str, bytes: &[u8]) -> Result<serde_json::Value, Error> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::Usage(format!("base image {text} has an unreadable config: {e}")))
}

/// A base image (from a registry or a layout) as the build takes it: its layers paired with
/// the config's diff ids, pinned by its manifest digest.
fn image_base(
    text: &str,
    manifest_digest: &Digest,
    config: serde_json::Value,
    layers: &[RemoteLayer],
    facts: BaseFacts,
    origin: BlobOrigin,
) -> Result<ResolvedBase, Error> {
    let diff_ids: Vec<Digest> = config
        .pointer("/rootfs/diff_ids")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|d| d.as_str().and_then(Digest::parse))
                .collect()
        })
        .unwrap_or_default();
    if diff_ids.len() != layers.len() {
        return Err(Error::Usage(format!(
            "base image {text} lists {} layers but {} diff ids",
            layers.len(),
            diff_ids.len()
        )));
    }
    let layers = layers
        .iter()
        .zip(diff_ids)
        .map(|(l, diff_id)| ImageLayer {
            info: LayerInfo {
                media_type: l.media_type.clone(),
                digest: l.digest.clone(),
                size: l.size,
                diff_id,
                uncompressed_size: 0,
            },
            created_by: String::new(),
            origin: origin.clone(),
            annotations: Default::default(),
        })
        .collect();
    Ok(ResolvedBase {
        name: text.to_string(),
        pinned: pinned(text, manifest_digest),
        digest_label: (
            "org.opencontainers.image.base.digest".into(),
            manifest_digest.to_string(),
        ),
        config,
        layers,
        facts,
        reference: None,
        built: false,
        changes: Vec::new(),
        upgraded: false,
    })
}

/// A base assembled from Debian packages: lock, fetch, one layer (cached by the lock's text).
async fn debian_base(
    source: &DebianBase<'_>,
    store: &BlobStore,
    reporter: &dyn Reporter,
) -> Result<ResolvedBase, Error> {
    let DebianBase {
        spec,
        platform,
        level,
        lock_path,
        http,
        opts,
        ..
    } = source;
    let (http, opts, level) = (*http, *opts, *level);
    let arch = lockship_debian::dpkg_arch(&platform.architecture, platform.variant.as_deref());
    reporter.step(&format!("Debian {} base for {arch}", spec.suite));
    // The project's directory, or a cache bucket (a builder's or a host variant's lock).
    if let Some(dir) = lock_path.parent() {
        fs_err::create_dir_all(dir).map_err(super::cache::io_err(dir))?;
    }
    let (base_lock, changes) = lockship_debian::base::lock(
        spec,
        &arch,
        lock_path,
        http,
        store,
        opts.upgrade_base,
        source.pins.as_ref(),
    )
    .await?;
    let text = base_lock.to_text();
    let lock_digest = Digest::of_bytes(text.as_bytes());
    let mut parts = vec![
        "lockship-debian-base-v1".to_string(),
        text.clone(),
        opts.source_date_epoch.to_string(),
    ];
    if level != 6 {
        parts.push(format!("gzip-{level}"));
    }
    let key = Digest::of_parts(&parts);
    let cache_entry = Bucket::Layers
        .under(&opts.cache_dir)
        .join(format!("{}.json", key.hex()));
    let cached = read_cached::<LayerInfo>(&cache_entry).filter(|info| store.contains(&info.digest));
    let built = cached.is_none();
    let info = match cached {
        Some(info) => info,
        None => {
            reporter.step(&format!(
                "fetching {} Debian packages",
                base_lock.packages.len()
            ));
            lockship_debian::base::fetch(spec, &base_lock, http, store).await?;
            reporter.step("writing the Debian base layer");
            let (lock2, store2, mtime) = (base_lock.clone(), store.clone(), opts.source_date_epoch);
            let info = tokio::task::spawn_blocking(move || {
                lockship_debian::base::write_layer(&lock2, &store2, mtime, level)
            })
            .await
            .map_err(|e| Error::Usage(format!("base writer crashed: {e}")))??;
            write_cached(&cache_entry, &info)?;
            info
        }
    };
    let name = format!(
        "debian:{} ({} packages)",
        spec.suite,
        base_lock.packages.len()
    );
    let created_by = format!(
        "lockship: Debian {} base: {}",
        spec.suite,
        spec.packages.join(", ")
    );
    Ok(ResolvedBase {
        facts: debian_facts(lockship_debian::base::facts(&base_lock)?),
        config: lockship_debian::base::config(&info, &created_by, platform),
        layers: vec![ImageLayer {
            info,
            created_by,
            origin: BlobOrigin::Local,
            annotations: Default::default(),
        }],
        pinned: format!("{name} lock {lock_digest}"),
        digest_label: (
            "dev.lockship.base.lock.digest".into(),
            lock_digest.to_string(),
        ),
        name,
        reference: None,
        built,
        changes,
        upgraded: opts.upgrade_base,
    })
}

/// The base's facts: from the local cache, else as an earlier build recorded them in the
/// registry (`recorded`), else by pulling its layers and probing them (unpacking the
/// interpreter on the way, with `unpack`).
#[allow(clippy::too_many_arguments)]
pub(super) async fn base_facts(
    registry: &Registry,
    base: &RemoteImage,
    base_config: &serde_json::Value,
    store: &BlobStore,
    cache_dir: &Path,
    reporter: &dyn Reporter,
    recorded: Option<&BaseFacts>,
    unpack: Option<InterpreterDest>,
) -> Result<BaseFacts, Error> {
    let path = facts_entry(cache_dir, &base.manifest_digest);
    // Facts an older lockship cached lack the library names; probed again, so that what the
    // image records of its base is the same whatever the cache held.
    if let Some(facts) = read_cached::<BaseFacts>(&path).filter(|f| f.libraries.is_some()) {
        return Ok(facts);
    }
    if let Some(facts) = recorded {
        return Ok(facts.clone());
    }
    reporter.step(&format!(
        "pulling {} base layers to inspect them",
        base.layers.len()
    ));
    let what = format!("base layer of {}", base.reference);
    registry
        .fetch_blobs(
            &base.reference,
            base.layers.iter().map(|l| (&l.digest, l.size)),
            &what,
            store,
        )
        .await?;
    probe_stored(
        &base.reference.to_string(),
        &base.layers,
        base_config,
        store,
        &path,
        unpack,
    )
    .await
}

/// How a base is pinned: as the user wrote it, at its manifest digest.
fn pinned(text: &str, manifest_digest: &Digest) -> String {
    format!("{text}@{manifest_digest}")
}

/// Where a probe unpacks the base's interpreter: the cache, and the base as pinned (which,
/// with the interpreter the probe finds, names its directory there).
pub(super) struct InterpreterDest {
    pub cache_dir: PathBuf,
    pub pinned: String,
}

/// Where the probe of a base with `config` unpacks its interpreter: nowhere unless the build
/// compiles bytecode (`wanted`) and the base runs on this machine (a foreign base's bytecode
/// is compiled by its variant for this machine, probed on its own).
fn interpreter_dest(
    wanted: bool,
    config: &serde_json::Value,
    cache_dir: &Path,
    pinned: &str,
) -> Option<InterpreterDest> {
    let arch = config.get("architecture").and_then(|a| a.as_str());
    (wanted && arch == Some(Platform::host().architecture.as_str())).then(|| InterpreterDest {
        cache_dir: cache_dir.to_path_buf(),
        pinned: pinned.to_string(),
    })
}

/// Where the facts of the image with this manifest digest are cached.
fn facts_entry(cache_dir: &Path, manifest_digest: &Digest) -> PathBuf {
    Bucket::Bases
        .under(cache_dir)
        .join(format!("{}.json", manifest_digest.hex()))
}

/// Probes a base whose layers are in the store, and caches what it found at `entry`. With
/// `unpack`, the base's interpreter is unpacked into the cache in the same pass (where the
/// bytecode step finds it), so the layers are decompressed once.
async fn probe_stored(
    name: &str,
    layers: &[RemoteLayer],
    base_config: &serde_json::Value,
    store: &BlobStore,
    entry: &Path,
    unpack: Option<InterpreterDest>,
) -> Result<BaseFacts, Error> {
    let env: Vec<String> = base_config
        .pointer("/config/Env")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let paths: Vec<PathBuf> = layers.iter().map(|l| store.path(&l.digest)).collect();
    let name = name.to_string();
    let facts = tokio::task::spawn_blocking(move || match unpack {
        Some(dest) => {
            super::bytecode::probe_unpacking(&dest.cache_dir, &dest.pinned, &name, &paths, &env)
        }
        None => Ok(probe::probe(&name, &paths, &env)?),
    })
    .await
    .map_err(|e| Error::Usage(format!("base probe crashed: {e}")))??;
    write_cached(entry, &facts)?;
    Ok(facts)
}

/// A Debian base's facts, known from its lock, in the form a probed base's take.
fn debian_facts(f: lockship_debian::base::DebianFacts) -> BaseFacts {
    BaseFacts {
        python_version: f.python_version,
        interpreter: f.interpreter,
        libc: Libc::Glibc {
            major: f.glibc.0,
            minor: f.glibc.1,
        },
        passwd: Some(f.passwd),
        group: Some(f.group),
        libraries: None,
    }
}
