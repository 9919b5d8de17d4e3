//! A build in four stages with typed hand-offs: `prepare` (the base from a `BaseSource`, the
//! packages and wheels for its Python, the plan) → `produce_layers` (cache or pipeline) →
//! `assemble` (the image, pure) → `publish` (smoke tests, pushes, local outputs). This
//! file holds the options and the order; each stage is a file, and so are its helpers: `base`,
//! `index_files`, `app_wheel`, `pipeline`, `layers`, `config`, `smoke_gate`, `cache`,
//! `report`.

use std::path::PathBuf;
use std::time::Instant;

use crate::cache_dir::Bucket;
use crate::error::Error;
use crate::output::Output;
use crate::project::Project;
use crate::smoke::{self, SmokeError, SmokeResult};
use lockship_net::{Http, NetOptions};
use lockship_oci::blob_store::BlobStore;
use lockship_oci::image::Image;
use lockship_oci::platform::Platform;
use lockship_oci::registry::{Registry, RegistryAccess};
use lockship_python::bytecode::PycMemo;
use lockship_python::credentials::IndexCredentials;
use lockship_python::index::IndexSources;
use lockship_python::lock::LockFile;
use oci_spec::distribution::Reference;

mod ahead;
mod app_wheel;
mod assemble;
mod base;
mod bytecode;
pub(crate) mod cache;
mod config;
mod credentials;
mod index_files;
mod layers;
mod local_packages;
mod native_libs;
mod pipeline;
mod platforms;
mod prepare;
mod produce;
pub(crate) mod publish;
pub(crate) mod pushed;
mod registry_cache;
mod report;
mod sdists;
mod shared_wheels;
pub(crate) mod smoke_gate;
#[cfg(test)]
mod tests;

use assemble::assemble;
pub(crate) use base::open_base;
use base::BaseSource;
use prepare::{prepare, Prepared};
use produce::{produce_layers, Produced};
use publish::{publish, Published};
pub use report::{counted, BuildReport, LayerReport, PushedReport};

/// The default base image when the project names none.
pub const DEFAULT_BASE: &str = "python:3.12-slim";

/// What the command line asked for.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    pub project_dir: PathBuf,
    pub base: Option<String>,
    /// The one platform this image is for (None: the host's, or a single-platform base's own).
    /// [`build_image`] sets it for each of `platforms`.
    pub platform: Option<Platform>,
    /// `--platform` as given (`linux/amd64,linux/arm64`); empty for the config's `platforms`.
    /// More than one builds an image per platform under one index.
    pub platforms: Vec<Platform>,
    pub outputs: Vec<Output>,
    pub cache_dir: PathBuf,
    pub source_date_epoch: u64,
    /// Name for docker/OCI outputs (`name:tag`); defaults to the project's name and version.
    pub tag: Option<String>,
    pub dry_run: bool,
    /// Re-resolve a Debian base even if its lock matches the request.
    pub upgrade_base: bool,
    /// When the smoke tests run.
    pub smoke: SmokeMode,
    /// `docker` or `podman`; auto-detected when None.
    pub runtime: Option<smoke::Runtime>,
    /// Give smoke commands a network (off by default).
    pub network: bool,
    /// The `[tool.lockship.targets.NAME]` to build (`production` by default).
    pub target: String,
    /// Timeouts and retries for every server lockship talks to.
    pub net: NetOptions,
    /// Plain-HTTP registries (LOCKSHIP_INSECURE_REGISTRIES) and the Docker config with
    /// registry credentials (DOCKER_CONFIG).
    pub registry: RegistryAccess,
    /// The uv program to run (LOCKSHIP_UV, else `uv` on PATH).
    pub uv: std::ffi::OsString,
    /// Where the user configured a package index (environment, uv.toml, pip.conf).
    pub index_sources: IndexSources,
    /// Index credentials from uv's and poetry's variables and netrc.
    pub index_credentials: IndexCredentials,
    /// Variables for `${VAR}` in a Pipfile's source URLs (the environment, in memory only).
    pub url_vars: std::collections::BTreeMap<String, String>,
    /// `--no-bytecode`: no `.pyc` files, whatever the config says.
    pub no_bytecode: bool,
    /// The host's CA bundle (SSL_CERT_FILE, else the system's), mounted into builder
    /// containers so that their pip trusts what lockship trusts.
    pub ca_bundle: Option<PathBuf>,
    /// `--cache-from`: images whose layers the build may reuse by key, besides the push
    /// targets (which it always reads).
    pub cache_from: Vec<String>,
    /// `--cache-to`: references that receive the image's layers and its cache record, smoke
    /// tests or not, without being push targets.
    pub cache_to: Vec<String>,
    /// Whether layers may be taken from the registry by key (off for the one retry after a
    /// layer the registry listed could not be fetched).
    pub registry_cache: bool,
}

/// When the smoke commands run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmokeMode {
    /// Before pushing, unless this image already passed the same commands.
    BeforePush,
    /// Always (`lockship test`); no commands is an error.
    Always,
    /// Never (`--no-test`).
    Skip,
}

/// Receives progress; the CLI draws it on stderr. Library code never prints.
pub trait Reporter: Sync {
    fn step(&self, message: &str);
    /// Something the user should know that does not stop the build (a damaged cache entry).
    fn warn(&self, _message: &str) {}
    /// A smoke command finished (its output included).
    fn smoke(&self, _result: &SmokeResult) {}
    /// Where the bytes of downloads and uploads are reported (None: nowhere).
    fn transfers(&self) -> Option<std::sync::Arc<dyn lockship_net::TransferObserver>> {
        None
    }
    /// Writing `count` layers begins, holding `bytes` of wheels between them.
    fn layers_begin(&self, _count: usize, _bytes: u64) {}
    /// One layer is written (`bytes`: the wheels it holds; 0 for the small ones).
    fn layer_written(&self, _description: &str, _bytes: u64) {}
}

/// A reporter that drops everything (tests, `--quiet`).
pub struct Silent;
impl Reporter for Silent {
    fn step(&self, _: &str) {}
}

struct Timer {
    start: Instant,
    timings: Vec<(String, f64)>,
}

impl Timer {
    fn new() -> Timer {
        Timer {
            start: Instant::now(),
            timings: Vec::new(),
        }
    }

    fn lap(&mut self, phase: &str) {
        let now = Instant::now();
        self.timings
            .push((phase.to_string(), (now - self.start).as_secs_f64()));
        self.start = now;
    }
}

/// Opens the cache's blob store and removes what killed runs left in the cache.
pub(crate) fn open_cache(cache_dir: &std::path::Path) -> Result<BlobStore, Error> {
    let store = BlobStore::open(Bucket::Blobs.under(cache_dir))?;
    // The blob store sweeps its own; interrupted runs may leave temporary entries in the rest.
    for bucket in Bucket::ALL.into_iter().filter(|b| *b != Bucket::Blobs) {
        lockship_sys::scratch::sweep(&bucket.under(cache_dir));
    }
    Ok(store)
}

/// Takes the cache directory's lock, shared with other builds (see `lockship_sys::cache_lock`).
pub(crate) fn lock_cache(
    cache_dir: &std::path::Path,
) -> Result<lockship_sys::cache_lock::CacheLock, Error> {
    lockship_sys::cache_lock::CacheLock::shared(cache_dir).map_err(|source| Error::Io {
        path: cache_dir.join(lockship_sys::cache_lock::LOCK_FILE),
        source,
    })
}

/// Tells the user about cache entries found damaged (and removed) since the last call.
fn warn_evictions(store: &BlobStore, reporter: &dyn Reporter) {
    for e in store.take_evictions() {
        reporter.warn(&format!(
            "cached blob {} ({}) was damaged on disk: removed, and fetched or built again",
            e.digest, e.what
        ));
    }
}

/// Builds the project's image and writes it to every output. A damaged cache entry found on
/// the way is removed, and the build runs once more to fetch or build it again.
pub async fn build_image(
    opts: &BuildOptions,
    reporter: &dyn Reporter,
) -> Result<BuildReport, Error> {
    // Shared with other builds; `lockship cache prune` waits for it.
    let _lock = lock_cache(&opts.cache_dir)?;
    let store = open_cache(&opts.cache_dir)?;
    let http = Http::new(&opts.net)?.observed(reporter.transfers());
    let result = match build_once(opts, &http, &store, reporter).await {
        Err(e) if e.is_corrupt_cache() => {
            warn_evictions(&store, reporter);
            build_once(opts, &http, &store, reporter).await
        }
        // A layer a registry's manifest lists but will not hand over (deleted, denied, a
        // broken --cache-from): the layers are made here instead, once.
        Err(e) if opts.registry_cache && e.is_cached_layer_gone() => {
            reporter.warn(&format!("{e}: building without the registry cache"));
            let without = BuildOptions {
                registry_cache: false,
                ..opts.clone()
            };
            build_once(&without, &http, &store, reporter).await
        }
        other => other,
    };
    warn_evictions(&store, reporter);
    result
}

async fn build_once(
    opts: &BuildOptions,
    http: &Http,
    store: &BlobStore,
    reporter: &dyn Reporter,
) -> Result<BuildReport, Error> {
    let project = Project::load(&opts.project_dir)?;
    if opts.upgrade_base {
        if let Some(base) = base::not_debian(&project, opts)? {
            reporter.warn(&format!(
                "--upgrade-base re-resolves a Debian-package base ([tool.lockship.base]) only; the base here is {base}, which it leaves as it is"
            ));
        }
    }
    let lock = LockFile::find(&project.dir, project.config.lock.as_deref())?;
    let registry = Registry::new(http.clone(), opts.registry.clone());
    let platforms = if opts.platforms.is_empty() {
        project.platforms()?
    } else {
        opts.platforms.clone()
    };
    if platforms.len() > 1 {
        return platforms::build_platforms(
            opts, http, &registry, store, reporter, project, lock, platforms,
        )
        .await;
    }
    let opts = &BuildOptions {
        platform: platforms
            .into_iter()
            .next()
            .or_else(|| opts.platform.clone()),
        ..opts.clone()
    };
    let bytecode = prepare::compiles_bytecode(&project, opts);
    let source = base::base_source(&project, &lock.path, opts, http, &registry, bytecode)?;
    let platform = opts.platform.clone().unwrap_or_else(Platform::host);
    let remote = load_registry_cache(opts, &registry, &platform, reporter).await?;
    let session = Session {
        opts,
        http,
        registry: &registry,
        store,
        reporter,
        pycs: None,
        single_platform: true,
        remote: &remote,
    };
    build_from(&session, project, lock, source.as_ref()).await
}

/// Reads what the push targets, `--cache-to` and `--cache-from` name for `platform` (nothing
/// for a dry run, which writes nothing and reads no layer).
async fn load_registry_cache(
    opts: &BuildOptions,
    registry: &Registry,
    platform: &Platform,
    reporter: &dyn Reporter,
) -> Result<registry_cache::RegistryCache, Error> {
    if opts.dry_run || !opts.registry_cache {
        return Ok(registry_cache::RegistryCache::default());
    }
    use registry_cache::Role;
    let (targets, cache_from) = cache_references(opts)?;
    let last_pushed = targets
        .iter()
        .filter_map(|t| pushed::last(&opts.cache_dir, t))
        .map(|r| (r, Role::LastPushed));
    let refs: Vec<_> = targets
        .iter()
        .map(|r| (r.clone(), Role::Target))
        .chain(cache_from.into_iter().map(|r| (r, Role::CacheFrom)))
        .chain(last_pushed)
        .collect();
    Ok(registry_cache::RegistryCache::load(registry, &refs, platform, reporter).await)
}

/// The references a build writes to (push targets, then `--cache-to`) and the ones it only
/// reads (`--cache-from`), parsed.
fn cache_references(opts: &BuildOptions) -> Result<(Vec<Reference>, Vec<Reference>), Error> {
    let (mut written, cache_to) = written_references(opts)?;
    written.extend(cache_to);
    Ok((written, parse_references(&opts.cache_from)?))
}

/// The `--push` targets (registry outputs) and the `--cache-to` references, parsed.
pub(super) fn written_references(
    opts: &BuildOptions,
) -> Result<(Vec<Reference>, Vec<Reference>), Error> {
    let targets: Vec<String> = opts
        .outputs
        .iter()
        .filter_map(|out| match out {
            Output::Registry(r) => Some(r.clone()),
            _ => None,
        })
        .collect();
    Ok((
        parse_references(&targets)?,
        parse_references(&opts.cache_to)?,
    ))
}

fn parse_references(texts: &[String]) -> Result<Vec<Reference>, Error> {
    texts
        .iter()
        .map(|r| Ok(lockship_oci::registry::parse_reference(r)?))
        .collect()
}

/// What every stage of one build works with.
#[derive(Clone, Copy)]
pub(super) struct Session<'a> {
    pub opts: &'a BuildOptions,
    pub http: &'a Http,
    pub registry: &'a Registry,
    pub store: &'a BlobStore,
    pub reporter: &'a dyn Reporter,
    /// Pycs compiled so far in this run, for the later platforms of a multi-platform build.
    pub pycs: Option<&'a PycMemo>,
    /// What the registry holds from earlier builds, for this platform.
    pub remote: &'a registry_cache::RegistryCache,
    /// Whether the build is of one platform: only then are layers written ahead of the plan
    /// and the interpreter shared.
    pub single_platform: bool,
}

/// The four stages of a build from a base `source`: prepare (base, packages, plan), produce
/// the layers, assemble the image, publish it.
async fn build_from(
    session: &Session<'_>,
    project: Project,
    lock: LockFile,
    source: &dyn BaseSource,
) -> Result<BuildReport, Error> {
    let mut timer = Timer::new();
    let mut prepared = prepare(session, project, lock, source, &mut timer).await?;
    if session.opts.dry_run {
        return Ok(planned(prepared, timer));
    }
    let (produced, image) = produce_image(session, &mut prepared, source, &mut timer).await?;
    let published = publish(session, &prepared, &image, &produced, source, &mut timer).await?;
    Ok(report(prepared, &image, produced, published, timer))
}

/// Layers, the library check and the image: the stages between the plan and publishing.
async fn produce_image(
    session: &Session<'_>,
    prepared: &mut Prepared,
    source: &dyn BaseSource,
    timer: &mut Timer,
) -> Result<(Produced, Image), Error> {
    let opts = session.opts;
    if opts.smoke == SmokeMode::Always && prepared.commands.is_empty() {
        return Err(SmokeError::NoCommands {
            config: prepared.project.config_path.clone(),
        }
        .into());
    }
    let produced = produce_layers(session, prepared, source).await?;
    timer.lap("layers");
    let record =
        native_libs::check_libraries(session, prepared, produced.app_facts.as_ref(), source)
            .await?;
    timer.lap("libraries");
    let image = assemble(opts, prepared, &produced, &record);
    timer.lap("image");
    Ok((produced, image))
}

/// The report of a `--dry-run`: the plan, nothing built.
fn planned(prepared: Prepared, timer: Timer) -> BuildReport {
    BuildReport {
        digest: String::new(),
        base: prepared.base.pinned.clone(),
        lock: prepared.lock_shown(),
        lock_format: prepared.lock.kind.name().into(),
        unhashed: prepared.unhashed.clone(),
        base_changes: prepared.base.changes.clone(),
        base_upgraded: prepared.base.upgraded,
        target: prepared.target,
        layers: Vec::new(),
        pushed: Vec::new(),
        smoke: Vec::new(),
        smoke_remembered: false,
        timings: timer.timings,
        plan: prepared.plan,
        platforms: Vec::new(),
    }
}

/// What the build did, for the CLI to show.
fn report(
    prepared: Prepared,
    image: &Image,
    produced: Produced,
    published: Published,
    timer: Timer,
) -> BuildReport {
    let base = &prepared.base;
    let layers = image
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| LayerReport {
            digest: l.info.digest.to_string(),
            size: l.info.size,
            uncompressed_size: l.info.uncompressed_size,
            description: if i < base.layers.len() && l.created_by.is_empty() {
                format!("base layer of {}", base.name)
            } else {
                l.created_by.clone()
            },
            built: if i < base.layers.len() {
                base.built
            } else {
                produced.fresh[i - base.layers.len()]
            },
        })
        .collect();
    BuildReport {
        digest: image.manifest_digest.to_string(),
        base: base.pinned.clone(),
        lock: prepared.lock_shown(),
        lock_format: prepared.lock.kind.name().into(),
        unhashed: prepared.unhashed.clone(),
        base_changes: base.changes.clone(),
        base_upgraded: base.upgraded,
        target: prepared.target,
        layers,
        pushed: published.pushed,
        smoke: published.smoke,
        smoke_remembered: published.smoke_remembered,
        timings: timer.timings,
        plan: prepared.plan,
        platforms: Vec::new(),
    }
}
