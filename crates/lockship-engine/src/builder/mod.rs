//! Wires a build together: project → base facts → lock → wheels → plan → layers (cached by
//! inputs) → image → smoke tests → outputs. Each step is a call into `python`, `debian`, `oci` or
//! `smoke`; this module only decides the order, what to cache, and what runs in parallel. Its
//! files: `base` (which base, and the Python it implies), `index_files`, `layers`, `config`
//! (the image config), `smoke_gate`, `cache`, `report`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::cache_dir::Bucket;
use crate::error::Error;
use crate::output::Output;
use crate::plan::{self, AppPlan, PlanInputs, PlannedLayer};
use crate::project::{AppMode, Project};
use crate::smoke::{self, SmokeError, SmokeResult};
use crate::user::{self};
use lockship_net::{Http, NetOptions};
use lockship_oci::blob_store::BlobStore;
use lockship_oci::image::{self, BlobOrigin, ImageLayer};
use lockship_oci::layer::LayerInfo;
use lockship_oci::platform::Platform;
use lockship_oci::registry::Registry;
use lockship_oci::{docker_tar, layout};
use lockship_python::index::IndexSources;
use lockship_python::lock::uv_lock::Selection;
use lockship_python::lock::{freshness, LockFile, LockedPackage};
use lockship_python::{app, select};
use oci_spec::distribution::Reference;

mod app_wheel;
mod base;
mod cache;
mod config;
mod index_files;
mod layers;
mod pipeline;
mod report;
mod smoke_gate;

pub(crate) use base::open_base;
use cache::{read_cached, write_cached};
use config::{config_spec, default_tag, ImageSettings};
use index_files::resolve_index_files;
use layers::LayerContext;
pub use report::{BuildReport, LayerReport, PushedReport};
use smoke_gate::run_smoke;

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
    pub runtime: Option<smoke::Runtime>,
    /// Give smoke commands a network (off by default).
    pub network: bool,
    /// The `[tool.lockship.targets.NAME]` to build (`production` by default).
    pub target: String,
    /// Timeouts and retries for every server lockship talks to.
    pub net: NetOptions,
    /// Registries spoken to over plain HTTP besides loopback ones (LOCKSHIP_INSECURE_REGISTRIES).
    pub insecure_registries: Vec<String>,
    /// The uv program to run (LOCKSHIP_UV, else `uv` on PATH).
    pub uv: std::ffi::OsString,
    /// Where the user configured a package index (environment, uv.toml, pip.conf).
    pub index_sources: IndexSources,
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

/// Tells the user about cache entries found damaged (and removed) since the last call.
fn warn_evictions(store: &BlobStore, reporter: &dyn Reporter) {
    for e in store.take_evictions() {
        reporter.warn(&format!(
            "cached blob {} ({}) was damaged on disk: removed, and fetched or built again",
            e.digest, e.what
        ));
    }
}

/// Pushes `image` to every target: all blobs to all targets first, then the manifests, one
/// after another, so that a target that cannot take the blobs stops the push before any tag
/// moves. A manifest that fails after others went up leaves those tags moved (registries have
/// no transaction across repositories); the error names them.
async fn push_all(
    registry: &Registry,
    image: &image::Image,
    targets: &[Reference],
    base: Option<&Reference>,
    store: &BlobStore,
    early: &pipeline::EarlyPushes,
    reporter: &dyn Reporter,
) -> Result<Vec<PushedReport>, Error> {
    let none = std::collections::HashMap::new();
    let mut reports = Vec::new();
    for target in targets {
        reporter.step(&format!("pushing layers to {target}"));
        let done = early.get(&target.to_string()).unwrap_or(&none);
        reports.push(
            registry
                .push_blobs(image, target, base, store, done)
                .await?,
        );
    }
    let mut pushed: Vec<PushedReport> = Vec::new();
    for (target, report) in targets.iter().zip(reports) {
        reporter.step(&format!("pushing the manifest to {target}"));
        if let Err(source) = registry.push_manifest(image, target).await {
            if pushed.is_empty() {
                return Err(source.into());
            }
            return Err(Error::PartialPush {
                pushed: pushed
                    .iter()
                    .map(|p| p.reference.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                source: Box::new(source),
            });
        }
        pushed.push(PushedReport {
            reference: target.to_string(),
            report,
        });
    }
    Ok(pushed)
}

/// Builds the project's image and writes it to every output. A damaged cache entry found on
/// the way is removed, and the build runs once more to fetch or build it again.
pub async fn build_image(
    opts: &BuildOptions,
    reporter: &dyn Reporter,
) -> Result<BuildReport, Error> {
    let store = open_cache(&opts.cache_dir)?;
    let http = Http::new(&opts.net);
    let result = match build_once(opts, &http, &store, reporter).await {
        Err(e) if e.is_corrupt_cache() => {
            warn_evictions(&store, reporter);
            build_once(opts, &http, &store, reporter).await
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
    let mut timer = Timer {
        start: Instant::now(),
        timings: Vec::new(),
    };
    let project = Project::load(&opts.project_dir)?;
    let lock = LockFile::find(&project.dir, project.config.lock.as_deref())?;
    let store = store.clone();

    // The app's files and key come first: its wheel needs nothing from the base, so its build
    // starts now and runs alongside everything up to the app layer.
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
    let app_wheel = (app_mode == AppMode::Wheel && !opts.dry_run).then(|| {
        app_wheel::start(
            &project.dir,
            &app_key,
            app::BuildSystem::from_pyproject(project.pyproject.as_ref()),
            &opts.cache_dir,
            opts.source_date_epoch,
            &opts.uv,
        )
    });

    let (registry, base, push_refs, target) =
        open_base(&project, &lock.path, opts, http, &store, reporter).await?;
    let facts = base.facts.clone();
    timer.lap("base");
    let env = target.marker_env();
    let target_cfg = project.target(&opts.target)?;
    let packages = freshness::locked_and_fresh(&lock, &project.dependencies, &project.name, &env)?;
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
    let packages = resolve_index_files(&lock, &project, packages, http, opts).await?;
    let tags = target.tags()?;
    let chosen = select::choose(&packages, &tags, &target.describe())?;
    let target_chosen = select::choose(&target_packages, &tags, &target.describe())?;
    let all_chosen: Vec<select::ChosenWheel> =
        chosen.iter().chain(&target_chosen).cloned().collect();
    timer.lap("lock");

    // Plan.
    let user = user::resolve(project.config.user.as_deref(), &facts)?;
    let target_files = if target_cfg.include.is_empty() {
        None
    } else {
        let files = app::included(&project.dir, &sources, &target_cfg.include)?;
        let digest = app::digest_files(&project.dir, &files)?;
        Some((opts.target.clone(), files, format!("{workdir}:{digest}")))
    };
    let runtime_key = format!("{user:?}\n{workdir}");
    let plan = plan::plan_layers(
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

    // Layers: reuse what the cache has; the pipeline fetches, writes and caches the rest.
    let commands: Vec<Vec<String>> = project
        .config
        .smoke
        .iter()
        .chain(&target_cfg.smoke)
        .map(|c| c.to_vec())
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
    let locals: Vec<&Output> = opts
        .outputs
        .iter()
        .filter(|o| o.local_path().is_some())
        .collect();
    // Layers that outputs or smoke tests will read are checked now, so a damaged one is built
    // again rather than copied out; a push-only build checks what it uploads as it goes.
    let reads_layers = !locals.is_empty() || must_test;
    let layer_cache = Bucket::Layers.under(&opts.cache_dir);
    let cache_entries: Vec<PathBuf> = plan
        .layers
        .iter()
        .map(|l| layer_cache.join(format!("{}.json", l.key)))
        .collect();
    let mut cached: Vec<Option<LayerInfo>> = Vec::new();
    for (entry, layer) in cache_entries.iter().zip(&plan.layers) {
        let info = match read_cached::<LayerInfo>(entry) {
            Some(info) if reads_layers => store
                .verify(&info.digest, &layer.description)?
                .then_some(info),
            Some(info) => store.contains(&info.digest).then_some(info),
            None => None,
        };
        cached.push(info);
    }
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
        store: store.clone(),
        mtime: opts.source_date_epoch,
        project_dir: project.dir.clone(),
        user: user.clone(),
        workdir: workdir.clone(),
        facts: facts.clone(),
    });
    // Layers go to the registries as they are written, unless smoke tests must pass first.
    let early_push: &[_] = if must_test { &[] } else { &push_refs };
    let built = pipeline::run(
        pipeline::Jobs {
            to_build,
            cache_entries,
            chosen: &all_chosen,
            ctx,
            http,
            registry: &registry,
            early_push,
            app_wheel,
        },
        reporter,
    )
    .await?;
    let mut infos = cached;
    let mut fresh = vec![false; infos.len()];
    for (i, info) in built.layers {
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
    if let (true, Some(reference)) = (reads_layers, &base.reference) {
        registry
            .fetch_blobs(
                reference,
                base.layers.iter().map(|l| (&l.info.digest, l.info.size)),
                &format!("base layer of {}", base.name),
                &store,
            )
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

    // Outputs: registries (every blob to every target, then the manifests), then files.
    let pushed = push_all(
        &registry,
        &image,
        &push_refs,
        base.reference.as_ref(),
        &store,
        &built.pushed,
        reporter,
    )
    .await?;
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
