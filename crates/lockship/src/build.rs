//! Wires a build together: project → base facts → lock → wheels → plan → layers (cached by
//! inputs) → image → outputs. Each step is a call into `python` or `oci`; this file only decides
//! the order, what to cache, and what runs in parallel.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use rayon::prelude::*;
use serde::Serialize;

use crate::debian::base::DebianSpec;
use crate::error::Error;
use crate::oci::blob_store::BlobStore;
use crate::oci::digest::{Digest, Hasher};
use crate::oci::image::{self, BlobOrigin, ConfigSpec, ImageLayer};
use crate::oci::layer::{self, LayerInfo};
use crate::oci::platform::Platform;
use crate::oci::registry::{self, PushReport, Registry, RemoteImage};
use crate::oci::tar_tree::TarTree;
use crate::oci::{docker_tar, layout, media_types};
use crate::output::Output;
use crate::plan::{
    self, AppPlan, ChosenWheelSummary, LayerContent, Plan, PlanInputs, PlannedLayer,
};
use crate::project::{AppMode, BaseSpec, Project, TargetConfig};
use crate::python::lock::uv_lock::Selection;
use crate::python::lock::{
    freshness, requirements_txt, Artifacts, LockFile, LockKind, LockedPackage,
};
use crate::python::probe::{self, BaseFacts};
use crate::python::target::PythonTarget;
use crate::python::{app, fetch, index, install, select};
use crate::smoke::{self, Runtime, SmokeError, SmokeResult};
use crate::user::{self, User};
use oci_client::Reference;

/// The default base image when the project names none.
pub const DEFAULT_BASE: &str = "python:3.12-slim";

/// What the command line asked for.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    pub project_dir: PathBuf,
    pub base: Option<String>,
    pub platform: Option<Platform>,
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
    pub runtime: Option<String>,
    /// Give smoke commands a network (off by default).
    pub network: bool,
    /// The `[tool.lockship.targets.NAME]` to build (`production` by default).
    pub target: String,
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
    /// A smoke command finished (its output included).
    fn smoke(&self, _result: &SmokeResult) {}
}

/// A reporter that drops everything (tests, `--quiet`).
pub struct Silent;
impl Reporter for Silent {
    fn step(&self, _: &str) {}
}

/// One layer of the result.
#[derive(Clone, Debug, Serialize)]
pub struct LayerReport {
    pub digest: String,
    pub size: u64,
    /// Size of the uncompressed tar; 0 when unknown (layers of a registry base).
    pub uncompressed_size: u64,
    pub description: String,
    /// Whether lockship wrote this layer in this build (false: base layer or cache hit).
    pub built: bool,
}

/// The result of a build.
#[derive(Clone, Debug, Serialize)]
pub struct BuildReport {
    /// Manifest digest (empty for a dry run).
    pub digest: String,
    pub base: String,
    /// How the Debian base lock changed in this build (`+ pkg ver`, `- pkg ver`, `pkg a → b`).
    pub base_changes: Vec<String>,
    pub target: PythonTarget,
    pub layers: Vec<LayerReport>,
    pub pushed: Vec<PushedReport>,
    /// The smoke commands run in this build.
    pub smoke: Vec<SmokeResult>,
    /// The image had already passed these smoke commands: they were not run again.
    pub smoke_remembered: bool,
    /// Seconds spent per phase, in order.
    pub timings: Vec<(String, f64)>,
    #[serde(skip)]
    pub plan: Plan,
}

#[derive(Clone, Debug, Serialize)]
pub struct PushedReport {
    pub reference: String,
    #[serde(flatten)]
    pub report: PushReport,
}

/// The cache directory: LOCKSHIP_CACHE_DIR, else $XDG_CACHE_HOME/lockship, else ~/.cache/lockship.
pub fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("LOCKSHIP_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("lockship");
    }
    std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".cache").join("lockship"))
        .unwrap_or_else(|| std::env::temp_dir().join("lockship-cache"))
}

struct Timer {
    start: Instant,
    timings: Vec<(String, f64)>,
}

impl Timer {
    fn lap(&mut self, phase: &str) {
        let now = Instant::now();
        self.timings
            .push((phase.to_string(), (now - self.start).as_secs_f64()));
        self.start = now;
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads a small JSON cache entry; a missing or unreadable one is a miss.
fn read_cached<T: for<'de> serde::Deserialize<'de>>(path: &Path) -> Option<T> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// Writes a JSON cache entry atomically (temp file + rename), so readers never see half of one.
fn write_cached<T: Serialize>(path: &Path, value: &T) -> Result<(), Error> {
    let dir = path.parent().expect("cache entries live in a directory");
    fs_err::create_dir_all(dir).map_err(io_err(dir))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io_err(dir))?;
    serde_json::to_writer(&mut tmp, value).map_err(|e| io_err(path)(e.into()))?;
    tmp.persist(path).map_err(|e| io_err(path)(e.error))?;
    Ok(())
}

/// Builds the project's image and writes it to every output.
pub async fn build(opts: &BuildOptions, reporter: &dyn Reporter) -> Result<BuildReport, Error> {
    let mut timer = Timer {
        start: Instant::now(),
        timings: Vec::new(),
    };
    let project = Project::load(&opts.project_dir)?;
    let lock = LockFile::find(&project.dir, project.config.lock.as_deref())?;
    let store = BlobStore::open(opts.cache_dir.join("blobs"))?;

    let (registry, base, push_refs, target) =
        open_base(&project, &lock.path, opts, &store, reporter).await?;
    let facts = base.facts.clone();
    timer.lap("base");
    let env = target.marker_env();
    let target_cfg = project.target(&opts.target)?;
    let packages = lock.packages(&env, Some(&project.name), &Selection::default())?;
    freshness::check(
        &lock,
        &project.dependencies,
        Some(&project.name),
        &packages,
        &env,
    )?;
    // What the target adds: the packages its groups and extras bring beyond production's.
    let selection = Selection {
        extras: target_cfg.extras.clone(),
        groups: target_cfg.groups.clone(),
    };
    let target_packages: Vec<LockedPackage> = if selection == Selection::default() {
        Vec::new()
    } else {
        lock.packages(&env, Some(&project.name), &selection)?
            .into_iter()
            .filter(|p| {
                !packages
                    .iter()
                    .any(|q| q.name == p.name && q.version == p.version)
            })
            .collect()
    };
    let packages = resolve_index_files(&lock, &project, packages, &opts.cache_dir).await?;
    let tags = target.tags()?;
    let chosen = select::choose(&packages, &tags, &target.describe())?;
    let target_chosen = select::choose(&target_packages, &tags, &target.describe())?;
    let all_chosen: Vec<select::ChosenWheel> =
        chosen.iter().chain(&target_chosen).cloned().collect();
    timer.lap("lock");

    // Plan.
    let user = user::resolve(project.config.user.as_deref(), &facts)?;
    let workdir = project
        .config
        .workdir
        .clone()
        .unwrap_or_else(|| "/app".to_string());
    let app_mode = project.app_mode()?;
    let excluded: Vec<PathBuf> = opts
        .outputs
        .iter()
        .filter_map(Output::local_path)
        .cloned()
        .collect();
    let sources = app::source_files(&project.dir, &excluded)?;
    let (app_plan, app_key) = match app_mode {
        AppMode::Wheel => (
            AppPlan::Wheel,
            format!("wheel:{}", app::digest_files(&project.dir, &sources)?),
        ),
        AppMode::Copy => {
            let globs = project
                .config
                .include
                .clone()
                .unwrap_or_else(|| vec!["**/*.py".to_string()]);
            let files = app::included(&project.dir, &sources, &globs)?;
            let key = format!(
                "copy:{workdir}:{}",
                app::digest_files(&project.dir, &files)?
            );
            (AppPlan::Files(files), key)
        }
    };
    let target_files = if target_cfg.include.is_empty() {
        None
    } else {
        let files = app::included(&project.dir, &sources, &target_cfg.include)?;
        let digest = app::digest_files(&project.dir, &files)?;
        Some((opts.target.clone(), files, format!("{workdir}:{digest}")))
    };
    let runtime_key = format!("{user:?}\n{workdir}");
    let plan = plan::plan(
        PlanInputs {
            target: &target,
            runtime_key,
            app_key,
            app: app_plan,
            target_files,
            mtime: opts.source_date_epoch,
        },
        &chosen,
        &target_chosen,
    );
    timer.lap("plan");
    if opts.dry_run {
        return Ok(BuildReport {
            digest: String::new(),
            base: base.pinned.clone(),
            base_changes: base.changes.clone(),
            target,
            layers: Vec::new(),
            pushed: Vec::new(),
            smoke: Vec::new(),
            smoke_remembered: false,
            timings: timer.timings,
            plan,
        });
    }

    // Layers: reuse what the cache has, fetch the wheels of the rest, build those in parallel.
    let layer_cache = opts.cache_dir.join("layers");
    let cached: Vec<Option<LayerInfo>> = plan
        .layers
        .iter()
        .map(|l| {
            read_cached::<LayerInfo>(&layer_cache.join(format!("{}.json", l.key)))
                .filter(|info| store.contains(&info.digest))
        })
        .collect();
    let needed_wheels: Vec<select::ChosenWheel> = plan
        .layers
        .iter()
        .zip(&cached)
        .filter(|(_, c)| c.is_none())
        .flat_map(|(l, _)| match &l.content {
            LayerContent::Wheels { wheels } => wheels.clone(),
            _ => Vec::new(),
        })
        .filter_map(|w| {
            all_chosen
                .iter()
                .find(|c| c.wheel.sha256 == w.sha256)
                .cloned()
        })
        .collect();
    if !needed_wheels.is_empty() {
        reporter.step(&format!("fetching {} wheels", needed_wheels.len()));
        let http = crate::download::http_client();
        fetch::fetch_all(&http, &needed_wheels, &store, 8, &|w| {
            reporter.step(&format!("fetched {} {}", w.name, w.version))
        })
        .await?;
    }
    timer.lap("fetch");

    let to_build: Vec<(usize, PlannedLayer)> = plan
        .layers
        .iter()
        .enumerate()
        .filter(|(i, _)| cached[*i].is_none())
        .map(|(i, l)| (i, l.clone()))
        .collect();
    if !to_build.is_empty() {
        reporter.step(&format!("writing {} layers", to_build.len()));
    }
    let ctx = Arc::new(LayerContext {
        target: target.clone(),
        build_system: app::BuildSystem::from_pyproject(project.pyproject.as_ref()),
        build_envs: opts.cache_dir.join("build-envs"),
        store: store.clone(),
        mtime: opts.source_date_epoch,
        project_dir: project.dir.clone(),
        user: user.clone(),
        workdir: workdir.clone(),
        facts: facts.clone(),
    });
    let built: Vec<(usize, LayerInfo)> = tokio::task::spawn_blocking(move || {
        to_build
            .into_par_iter()
            .map(|(i, l)| build_layer(&ctx, &l).map(|info| (i, info)))
            .collect::<Result<Vec<_>, Error>>()
    })
    .await
    .map_err(|e| Error::Usage(format!("layer writer crashed: {e}")))??;
    let mut infos = cached;
    let mut fresh = vec![false; infos.len()];
    for (i, info) in built {
        write_cached(
            &layer_cache.join(format!("{}.json", plan.layers[i].key)),
            &info,
        )?;
        infos[i] = Some(info);
        fresh[i] = true;
    }
    timer.lap("layers");

    // The image.
    let mut layers: Vec<ImageLayer> = base.layers.clone();
    for (l, info) in plan.layers.iter().zip(infos) {
        layers.push(ImageLayer {
            info: info.expect("every planned layer is cached or built"),
            created_by: l.description.clone(),
            origin: BlobOrigin::Local,
        });
    }
    let spec = config_spec(&ImageSettings {
        target_cfg: &target_cfg,
        target_name: &opts.target,
        project: &project,
        target: &target,
        user: &user,
        workdir: &workdir,
        base: &base,
        lock: &lock,
        created: opts.source_date_epoch,
    });
    let image = image::assemble(&base.config, layers, plan.layers.len(), &spec);
    timer.lap("image");

    // Smoke tests gate every push; local outputs and tests need the base layers on disk.
    let name = opts
        .tag
        .clone()
        .unwrap_or_else(|| default_tag(&project, &opts.target));
    let commands: Vec<Vec<String>> = project
        .config
        .smoke
        .iter()
        .chain(&target_cfg.smoke)
        .map(|c| c.to_vec())
        .collect();
    let locals: Vec<&Output> = opts
        .outputs
        .iter()
        .filter(|o| o.local_path().is_some())
        .collect();
    let must_test = match opts.smoke {
        SmokeMode::Always => true,
        SmokeMode::BeforePush => !push_refs.is_empty() && !commands.is_empty(),
        SmokeMode::Skip => false,
    };
    if opts.smoke == SmokeMode::Always && commands.is_empty() {
        return Err(SmokeError::NoCommands {
            config: project.config_path.clone(),
        }
        .into());
    }
    if let (true, Some(reference)) = (!locals.is_empty() || must_test, &base.reference) {
        futures::stream::iter(base.layers.iter())
            .map(|l| registry.fetch_blob(reference, &l.info.digest, &store))
            .buffer_unordered(4)
            .try_collect::<Vec<()>>()
            .await?;
    }
    let mut smoke_results = Vec::new();
    let mut smoke_remembered = false;
    if must_test {
        let marker = smoke::pass_marker(&opts.cache_dir, &image.manifest_digest, &commands);
        if opts.smoke == SmokeMode::BeforePush && marker.is_file() {
            smoke_remembered = true;
        } else {
            smoke_results = run_smoke(&image, &store, &commands, &name, opts, reporter)?;
            write_cached(&marker, &smoke_results.len())?;
        }
    }
    timer.lap("smoke");

    // Outputs: registries, then files.
    let mut pushed = Vec::new();
    for target_ref in &push_refs {
        reporter.step(&format!("pushing {target_ref}"));
        let report = registry
            .push(&image, target_ref, base.reference.as_ref(), &store)
            .await?;
        pushed.push(PushedReport {
            reference: target_ref.to_string(),
            report,
        });
    }
    for out in locals {
        match out {
            Output::OciLayout(dir) => {
                reporter.step(&format!("writing OCI layout {}", dir.display()));
                let tag = name.rsplit_once(':').map_or("latest", |(_, t)| t);
                layout::write(&image, &store, dir, tag)?;
            }
            Output::DockerTar(file) => {
                reporter.step(&format!("writing docker tarball {}", file.display()));
                docker_tar::write(&image, &store, file, &name)?;
            }
            Output::Registry(_) => {}
        }
    }
    timer.lap("output");

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
                fresh[i - base.layers.len()]
            },
        })
        .collect();
    Ok(BuildReport {
        digest: image.manifest_digest.to_string(),
        base: base.pinned.clone(),
        base_changes: base.changes.clone(),
        target,
        layers,
        pushed,
        smoke: smoke_results,
        smoke_remembered,
        timings: timer.timings,
        plan,
    })
}

/// Loads the image into the container runtime under a throwaway tag and runs each smoke command;
/// the first failure stops the build.
fn run_smoke(
    image: &image::Image,
    store: &BlobStore,
    commands: &[Vec<String>],
    name: &str,
    opts: &BuildOptions,
    reporter: &dyn Reporter,
) -> Result<Vec<SmokeResult>, Error> {
    let runtime = Runtime::detect(opts.runtime.as_deref())?;
    let repo = name.split(':').next().unwrap_or("app");
    let tag = format!(
        "lockship-smoke/{repo}:{}",
        &image.manifest_digest.hex()[..16]
    );
    let tmp = tempfile::Builder::new()
        .prefix("smoke-")
        .tempdir_in(store.tmp_dir())
        .map_err(io_err(store.tmp_dir()))?;
    let tar = tmp.path().join("image.tar");
    docker_tar::write(image, store, &tar, &tag)?;
    reporter.step(&format!(
        "loading the image into {runtime:?} for {} smoke commands",
        commands.len()
    ));
    runtime.load(&tar)?;
    let mut results = Vec::new();
    for argv in commands {
        reporter.step(&format!("smoke: {}", shell_words::join(argv)));
        let result = runtime.run(&tag, argv, opts.network);
        reporter.smoke(&result);
        let failed = result.exit_code != 0;
        let (command, code) = (result.command.clone(), result.exit_code);
        results.push(result);
        if failed {
            runtime.untag(&tag);
            return Err(SmokeError::Failed { command, code }.into());
        }
    }
    runtime.untag(&tag);
    Ok(results)
}

/// `name:version` (or `name:latest`; `-TARGET` appended for other targets) for local outputs,
/// in the lowercase form Docker accepts.
fn default_tag(project: &Project, target: &str) -> String {
    let name = crate::python::lock::normalize_name(&project.name);
    let version = project.version.as_deref().unwrap_or("latest");
    if target == crate::project::PRODUCTION {
        format!("{name}:{version}")
    } else {
        format!("{name}:{version}-{target}")
    }
}

/// The base as the rest of the build needs it, whichever kind it is.
pub(crate) struct ResolvedBase {
    /// For messages and the base.name label.
    name: String,
    /// The base pinned exactly: `ref@digest`, or the Debian base lock's digest.
    pinned: String,
    /// The label recording the exact base.
    digest_label: (String, String),
    config: serde_json::Value,
    layers: Vec<ImageLayer>,
    facts: BaseFacts,
    /// Where base layers live, for registry bases (mounts, fetches for local outputs).
    reference: Option<Reference>,
    /// Whether this build wrote the base layer (Debian bases only).
    built: bool,
    changes: Vec<String>,
}

/// Resolves the base (registry image or Debian packages) and the Python target it implies, and
/// opens the registry client for it and for the `--push` references (returned parsed).
pub(crate) async fn open_base(
    project: &Project,
    lock_path: &Path,
    opts: &BuildOptions,
    store: &BlobStore,
    reporter: &dyn Reporter,
) -> Result<(Registry, ResolvedBase, Vec<Reference>, PythonTarget), Error> {
    // The base: a registry image (facts probed, cached by manifest digest) or Debian packages.
    let spec = match &opts.base {
        Some(b) => BaseSpec::Image(b.clone()),
        None => project
            .base()?
            .unwrap_or_else(|| BaseSpec::Image(DEFAULT_BASE.to_string())),
    };
    let platform = opts.platform.clone().unwrap_or_else(Platform::host);
    let base_ref = match &spec {
        BaseSpec::Image(text) => Some(registry::parse_reference(text)?),
        BaseSpec::Debian(_) => None,
    };
    let mut registries: Vec<String> = base_ref
        .iter()
        .map(|r| r.resolve_registry().to_string())
        .collect();
    let mut push_refs = Vec::new();
    for out in &opts.outputs {
        if let Output::Registry(r) = out {
            let r = registry::parse_reference(r)?;
            registries.push(r.resolve_registry().to_string());
            push_refs.push(r);
        }
    }
    let registry = Registry::new(&registries.iter().map(String::as_str).collect::<Vec<_>>())?;
    let base = match (&spec, base_ref) {
        (BaseSpec::Image(text), Some(reference)) => {
            reporter.step(&format!("resolving base {text} for {platform}"));
            registry_base(
                &registry,
                reference,
                text,
                &platform,
                store,
                &opts.cache_dir,
                reporter,
            )
            .await?
        }
        (BaseSpec::Debian(debian), _) => {
            let lock_path = lock_path
                .parent()
                .unwrap_or(&project.dir)
                .join(crate::debian::base_lock::FILE_NAME);
            debian_base(debian, &platform, &lock_path, store, opts, reporter).await?
        }
        (BaseSpec::Image(_), None) => unreachable!("image bases always have a reference"),
    };

    let venv = project
        .config
        .venv
        .clone()
        .unwrap_or_else(|| "/opt/venv".to_string());
    let target = PythonTarget {
        version: base.facts.python_version,
        interpreter: base.facts.interpreter.clone(),
        libc: base.facts.libc,
        architecture: base
            .config
            .get("architecture")
            .and_then(|a| a.as_str())
            .unwrap_or(&platform.architecture)
            .to_string(),
        venv,
    };
    Ok((registry, base, push_refs, target))
}

/// A base image from a registry: its manifest and config, and its facts.
async fn registry_base(
    registry: &Registry,
    reference: Reference,
    text: &str,
    platform: &Platform,
    store: &BlobStore,
    cache_dir: &Path,
    reporter: &dyn Reporter,
) -> Result<ResolvedBase, Error> {
    let remote = registry.resolve(&reference, platform, store).await?;
    let config: serde_json::Value = serde_json::from_slice(&remote.config)
        .map_err(|e| Error::Usage(format!("base image {text} has an unreadable config: {e}")))?;
    let facts = base_facts(registry, &remote, &config, store, cache_dir, reporter).await?;
    let diff_ids: Vec<Digest> = config
        .pointer("/rootfs/diff_ids")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|d| d.as_str().and_then(Digest::parse))
                .collect()
        })
        .unwrap_or_default();
    if diff_ids.len() != remote.layers.len() {
        return Err(Error::Usage(format!(
            "base image {text} lists {} layers but {} diff ids",
            remote.layers.len(),
            diff_ids.len()
        )));
    }
    let layers = remote
        .layers
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
            origin: BlobOrigin::Base,
        })
        .collect();
    Ok(ResolvedBase {
        name: text.to_string(),
        pinned: format!("{text}@{}", remote.manifest_digest),
        digest_label: (
            "org.opencontainers.image.base.digest".into(),
            remote.manifest_digest.to_string(),
        ),
        config,
        layers,
        facts,
        reference: Some(remote.reference),
        built: false,
        changes: Vec::new(),
    })
}

/// Debian's architecture name for an OCI platform.
fn debian_arch(platform: &Platform) -> String {
    match (platform.architecture.as_str(), platform.variant.as_deref()) {
        ("arm", _) => "armhf".into(),
        ("386", _) => "i386".into(),
        ("ppc64le", _) => "ppc64el".into(),
        (other, _) => other.to_string(),
    }
}

/// A base assembled from Debian packages: lock, fetch, one layer (cached by the lock's text).
async fn debian_base(
    spec: &DebianSpec,
    platform: &Platform,
    lock_path: &Path,
    store: &BlobStore,
    opts: &BuildOptions,
    reporter: &dyn Reporter,
) -> Result<ResolvedBase, Error> {
    let arch = debian_arch(platform);
    let http = crate::download::http_client();
    reporter.step(&format!("Debian {} base for {arch}", spec.suite));
    let (base_lock, changes) =
        crate::debian::base::lock(spec, &arch, lock_path, &http, store, opts.upgrade_base).await?;
    let text = base_lock.to_text();
    let lock_digest = Digest::of_bytes(text.as_bytes());
    let mut h = Hasher::default();
    for part in [
        "lockship-debian-base-v1",
        &text,
        &opts.source_date_epoch.to_string(),
    ] {
        h.update(part.as_bytes());
        h.update(&[0]);
    }
    let cache_entry = opts
        .cache_dir
        .join("layers")
        .join(format!("{}.json", h.finish().hex()));
    let cached = read_cached::<LayerInfo>(&cache_entry).filter(|info| store.contains(&info.digest));
    let built = cached.is_none();
    let info = match cached {
        Some(info) => info,
        None => {
            reporter.step(&format!(
                "fetching {} Debian packages",
                base_lock.packages.len()
            ));
            crate::debian::base::fetch(spec, &base_lock, &http, store).await?;
            reporter.step("writing the Debian base layer");
            let (lock2, store2, mtime) = (base_lock.clone(), store.clone(), opts.source_date_epoch);
            let info = tokio::task::spawn_blocking(move || {
                crate::debian::base::write_layer(&lock2, &store2, mtime)
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
        facts: crate::debian::base::facts(&base_lock)?,
        config: crate::debian::base::config(&base_lock, &info, &created_by),
        layers: vec![ImageLayer {
            info,
            created_by,
            origin: BlobOrigin::Local,
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
    })
}

/// The base's facts: from the cache, or by pulling its layers and probing them.
async fn base_facts(
    registry: &Registry,
    base: &RemoteImage,
    base_config: &serde_json::Value,
    store: &BlobStore,
    cache_dir: &Path,
    reporter: &dyn Reporter,
) -> Result<BaseFacts, Error> {
    let path = cache_dir
        .join("bases")
        .join(format!("{}.json", base.manifest_digest.hex()));
    if let Some(facts) = read_cached::<BaseFacts>(&path) {
        return Ok(facts);
    }
    reporter.step(&format!(
        "pulling {} base layers to inspect them",
        base.layers.len()
    ));
    futures::stream::iter(base.layers.iter())
        .map(|l| registry.fetch_blob(&base.reference, &l.digest, store))
        .buffer_unordered(4)
        .try_collect::<Vec<()>>()
        .await?;
    let env: Vec<String> = base_config
        .pointer("/config/Env")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let paths: Vec<(PathBuf, bool)> = base
        .layers
        .iter()
        .map(|l| {
            (
                store.path(&l.digest),
                media_types::is_gzip_layer(&l.media_type),
            )
        })
        .collect();
    let name = base.reference.to_string();
    let facts = tokio::task::spawn_blocking(move || {
        let files: Vec<probe::LayerFile<'_>> = paths
            .iter()
            .map(|(p, gzip)| probe::LayerFile {
                path: p,
                gzip: *gzip,
            })
            .collect();
        probe::probe(&name, &files, &env)
    })
    .await
    .map_err(|e| Error::Usage(format!("base probe crashed: {e}")))??;
    write_cached(&path, &facts)?;
    Ok(facts)
}

/// Fills in wheel URLs for locks that list only hashes, from the configured index. Answers
/// are cached by (index, package, version, hashes): the hashes pin the files, so they cannot go
/// stale in a way that matters.
async fn resolve_index_files(
    lock: &LockFile,
    project: &Project,
    packages: Vec<LockedPackage>,
    cache_dir: &Path,
) -> Result<Vec<LockedPackage>, Error> {
    if lock.kind != LockKind::RequirementsTxt {
        return Ok(packages);
    }
    let from_lock = requirements_txt::options(&lock.text).index_url;
    let index_url =
        index::configured_index(&lock.path, from_lock.as_deref(), project.pyproject.as_ref())?;
    let http = crate::download::http_client();
    let cache = cache_dir.join("index");
    futures::stream::iter(packages)
        .map(|p| {
            let (http, index_url, cache) = (&http, &index_url, &cache);
            async move {
                let Artifacts::FromIndex { hashes } = &p.artifacts else {
                    return Ok(p);
                };
                let mut h = Hasher::default();
                for part in [index_url.as_str(), &p.name, &p.version] {
                    h.update(part.as_bytes());
                    h.update(&[0]);
                }
                for d in hashes {
                    h.update(d.as_str().as_bytes());
                }
                let path = cache.join(format!("{}.json", h.finish().hex()));
                if let Some(files) = read_cached::<CachedFiles>(&path) {
                    return Ok(LockedPackage {
                        artifacts: Artifacts::Listed {
                            wheels: files.wheels.into_iter().map(Into::into).collect(),
                            has_sdist: files.has_sdist,
                        },
                        ..p
                    });
                }
                let resolved = index::resolve_files(http, index_url, p).await?;
                if let Artifacts::Listed { wheels, has_sdist } = &resolved.artifacts {
                    write_cached(
                        &path,
                        &CachedFiles {
                            wheels: wheels.iter().cloned().map(Into::into).collect(),
                            has_sdist: *has_sdist,
                        },
                    )?;
                }
                Ok::<_, Error>(resolved)
            }
        })
        .buffered(8)
        .try_collect()
        .await
}

#[derive(Serialize, serde::Deserialize)]
struct CachedFiles {
    wheels: Vec<CachedWheel>,
    has_sdist: bool,
}

#[derive(Serialize, serde::Deserialize)]
struct CachedWheel {
    filename: String,
    url: String,
    sha256: Digest,
    size: Option<u64>,
}

impl From<crate::python::lock::LockedWheel> for CachedWheel {
    fn from(w: crate::python::lock::LockedWheel) -> Self {
        CachedWheel {
            filename: w.filename,
            url: w.url,
            sha256: w.sha256,
            size: w.size,
        }
    }
}

impl From<CachedWheel> for crate::python::lock::LockedWheel {
    fn from(w: CachedWheel) -> Self {
        crate::python::lock::LockedWheel {
            filename: w.filename,
            url: w.url,
            sha256: w.sha256,
            size: w.size,
        }
    }
}

/// What every layer builder needs; shared across the rayon workers.
struct LayerContext {
    target: PythonTarget,
    build_system: app::BuildSystem,
    build_envs: PathBuf,
    store: BlobStore,
    mtime: u64,
    project_dir: PathBuf,
    user: User,
    workdir: String,
    facts: BaseFacts,
}

fn build_layer(ctx: &LayerContext, planned: &PlannedLayer) -> Result<LayerInfo, Error> {
    let scratch = tempfile::tempdir_in(ctx.store.tmp_dir()).map_err(io_err(ctx.store.tmp_dir()))?;
    let root = scratch.path().join("root");
    fs_err::create_dir_all(&root).map_err(io_err(&root))?;
    let mut tree = TarTree::new();
    match &planned.content {
        LayerContent::Runtime => {
            install::venv_skeleton(&ctx.target, &mut tree);
            user::add_to_tree(&ctx.user, &ctx.facts, &mut tree);
            tree.dir(&ctx.workdir, 0o755, 0, 0);
        }
        LayerContent::Wheels { wheels } => {
            for w in wheels {
                install_cached(ctx, w, &root)?;
            }
            tree.add_host_dir(&root, "")
                .map_err(crate::oci::layer::LayerError::from)?;
        }
        LayerContent::AppWheel => {
            let out = scratch.path().join("dist");
            fs_err::create_dir_all(&out).map_err(io_err(&out))?;
            let wheel = app::build_wheel(
                &ctx.project_dir,
                &out,
                ctx.mtime,
                &ctx.build_system,
                &ctx.build_envs,
            )?;
            let filename = wheel
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            install::install(&wheel, &filename, &ctx.target, &root)?;
            tree.add_host_dir(&root, "")
                .map_err(crate::oci::layer::LayerError::from)?;
        }
        LayerContent::AppFiles { files } => {
            for f in files {
                let dest = format!(
                    "{}/{}",
                    ctx.workdir.trim_end_matches('/'),
                    f.to_string_lossy()
                );
                tree.add_host_path(&ctx.project_dir.join(f), &dest)
                    .map_err(crate::oci::layer::LayerError::from)?;
            }
        }
    }
    Ok(layer::write_layer(&tree, ctx.mtime, &ctx.store)?)
}

fn install_cached(ctx: &LayerContext, w: &ChosenWheelSummary, root: &Path) -> Result<(), Error> {
    Ok(install::install(
        &ctx.store.path(&w.sha256),
        &w.filename,
        &ctx.target,
        root,
    )?)
}

/// The entrypoint when the config gives none: the project's only console script, else Python.
fn default_entrypoint(project: &Project, target: &PythonTarget, mode: AppMode) -> Vec<String> {
    if mode == AppMode::Wheel && project.scripts.len() == 1 {
        let script = project.scripts.keys().next().expect("one script");
        return vec![format!("{}/bin/{script}", target.venv)];
    }
    vec![format!("{}/bin/python", target.venv)]
}

/// Everything the image config is derived from.
struct ImageSettings<'a> {
    target_cfg: &'a TargetConfig,
    target_name: &'a str,
    project: &'a Project,
    target: &'a PythonTarget,
    user: &'a User,
    workdir: &'a str,
    base: &'a ResolvedBase,
    lock: &'a LockFile,
    created: u64,
}

fn config_spec(settings: &ImageSettings<'_>) -> ConfigSpec {
    let ImageSettings {
        target_cfg,
        target_name,
        project,
        target,
        user,
        workdir,
        base,
        lock,
        created,
    } = *settings;
    let base_path = base
        .config
        .pointer("/config/Env")
        .and_then(|v| v.as_array())
        .and_then(|a| {
            a.iter()
                .filter_map(|s| s.as_str())
                .find_map(|s| s.strip_prefix("PATH="))
        })
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .to_string();
    let mut env = vec![
        (
            "PATH".to_string(),
            format!("{}/bin:{base_path}", target.venv),
        ),
        ("VIRTUAL_ENV".to_string(), target.venv.clone()),
        ("PYTHONUNBUFFERED".to_string(), "1".to_string()),
        // The image is read-only to its non-root user; writing bytecode would only fail.
        ("PYTHONDONTWRITEBYTECODE".to_string(), "1".to_string()),
    ];
    env.extend(
        project
            .config
            .env
            .iter()
            .chain(&target_cfg.env)
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    let mode = project.app_mode().unwrap_or(AppMode::Copy);
    let mut labels = BTreeMap::new();
    labels.insert(
        "org.opencontainers.image.created".into(),
        image::rfc3339(created),
    );
    labels.insert(
        "org.opencontainers.image.title".into(),
        project.name.clone(),
    );
    if let Some(v) = &project.version {
        labels.insert("org.opencontainers.image.version".into(), v.clone());
    }
    labels.insert(
        "org.opencontainers.image.base.name".into(),
        base.name.clone(),
    );
    let (key, value) = &base.digest_label;
    labels.insert(key.clone(), value.clone());
    labels.insert("dev.lockship.lock.digest".into(), lock.digest.to_string());
    labels.insert("dev.lockship.target".into(), target_name.to_string());
    let source = project
        .config
        .source
        .clone()
        .or_else(|| git(&project.dir, &["remote", "get-url", "origin"]));
    if let Some(source) = source {
        labels.insert("org.opencontainers.image.source".into(), source);
    }
    if let Some(rev) = git(&project.dir, &["rev-parse", "HEAD"]) {
        labels.insert("org.opencontainers.image.revision".into(), rev);
    }
    labels.extend(
        project
            .config
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    ConfigSpec {
        entrypoint: Some(
            target_cfg
                .entrypoint
                .as_ref()
                .or(project.config.entrypoint.as_ref())
                .map(|c| c.to_vec())
                .unwrap_or_else(|| default_entrypoint(project, target, mode)),
        ),
        cmd: target_cfg
            .cmd
            .as_ref()
            .or(project.config.cmd.as_ref())
            .map(|c| c.to_vec()),
        env,
        workdir: Some(workdir.to_string()),
        user: Some(user.config_value()),
        labels,
        created,
    }
}

/// Runs a read-only git query in `dir`; None outside a work tree or without git.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}
