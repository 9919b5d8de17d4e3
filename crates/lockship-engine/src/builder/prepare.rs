//! Stage one of a build: everything decided before a layer is written. The base and the Python
//! it implies, the packages the lock pins for that Python and their wheels, the image's user,
//! and the plan of layers. The app wheel's build starts here, since it needs nothing from the
//! base and can run alongside everything up to the app layer.

use std::path::PathBuf;
use std::sync::Arc;

use oci_spec::distribution::Reference;

use crate::error::Error;
use crate::output::Output;
use crate::plan::{self, AppPlan, Plan, PlanInputs};
use crate::project::{AppMode, Project, TargetConfig};
use crate::user::{self, User};
use lockship_python::lock::{self, Selection};
use lockship_python::lock::{freshness, LockFile, LockedPackage};
use lockship_python::select;
use lockship_python::target::PythonTarget;
use lockship_python::{app, app_patch};

use super::ahead::{self, write_ahead, Ahead, AheadInputs};
use super::app_wheel::{self, AppWheel, PatchInputs};
use super::base::{python_target, BaseSource, ResolvedBase};
use super::index_files::{default_index, resolve_index_files};
use super::layers::LayerContext;
use super::local_packages::build_local_packages;
use super::sdists::{build_missing, BuildContext};
use super::{Session, SmokeMode, Timer};

/// What the later stages build from.
pub(super) struct Prepared {
    pub project: Project,
    pub lock: LockFile,
    pub target_cfg: TargetConfig,
    pub workdir: String,
    pub user: User,
    pub target: PythonTarget,
    pub base: ResolvedBase,
    /// The base whose interpreter compiles the bytecode, when it is not `base` (an image of
    /// another architecture compiles with the base's variant for this machine).
    pub host_base: Option<ResolvedBase>,
    pub plan: Plan,
    /// The `--push` references, then the `--cache-to` ones, parsed.
    pub push_refs: Vec<Reference>,
    /// The smoke commands of the project and the target.
    pub commands: Vec<Vec<String>>,
    /// Whether the smoke commands run before anything is pushed or written.
    pub must_test: bool,
    /// The app wheel being built (not for `--dry-run`, nor when the app is copied).
    pub app_wheel: Option<AppWheel>,
    /// The project's source files (relative, sorted): what the app's key is made from, and
    /// what the builder gets when the app has extension modules.
    pub sources: Vec<PathBuf>,
    /// Packages locked without hashes, let in by `allow-unhashed` (`name==version`).
    pub unhashed: Vec<String>,
    /// The layers written while sdists were built.
    pub ahead: Ahead,
}

impl Prepared {
    /// The push targets that receive layers as they are written (see [`early_push`]).
    pub fn early_push(&self) -> &[Reference] {
        early_push(self.must_test, &self.push_refs)
    }

    /// The lock file as the user knows it: relative to the project.
    pub fn lock_shown(&self) -> String {
        self.lock
            .path
            .strip_prefix(&self.project.dir)
            .unwrap_or(&self.lock.path)
            .display()
            .to_string()
    }
}

/// Layers go to `push_refs` as they are written, unless smoke tests must pass first.
fn early_push(must_test: bool, push_refs: &[Reference]) -> &[Reference] {
    if must_test {
        &[]
    } else {
        push_refs
    }
}

/// Resolves the base from `source` and plans the image of `project` built from `lock`.
pub(super) async fn prepare(
    session: &Session<'_>,
    project: Project,
    lock: LockFile,
    source: &dyn BaseSource,
    timer: &mut Timer,
) -> Result<Prepared, Error> {
    let Session {
        opts,
        http,
        store,
        reporter,
        ..
    } = *session;
    reporter.step(&format!(
        "reading {} ({})",
        lock.path
            .strip_prefix(&project.dir)
            .unwrap_or(&lock.path)
            .display(),
        lock.kind.name()
    ));
    let (mut push_refs, cache_to) = super::written_references(opts)?;
    // The app's files and key come first, so that its wheel starts building at once.
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
    let mut sources = app::source_files(&project.dir, &excluded)?;
    // The Debian base's locks are lockship's, not the app's: writing one (the first build, a
    // second architecture) must not make the app look changed.
    sources.retain(|f| !lockship_debian::base_lock::is_base_lock(f));
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
    let app_inputs = |project: &Project| {
        let system = app::BuildSystem::from_pyproject(project.pyproject.as_ref());
        let pyproject = project.dir.join("pyproject.toml");
        let patch = app_patch::patchable(&project.dir, project.pyproject.as_ref(), &system)
            .then(|| std::fs::read(&pyproject).ok())
            .flatten()
            .map(|pyproject| PatchInputs {
                sources: sources.clone(),
                pyproject,
                metadata: app_patch::metadata_files(project.pyproject.as_ref()),
            });
        (system, patch)
    };
    let start_app = |project: &Project, app_key: &str, (system, patch)| {
        app_wheel::start(
            &project.dir,
            app_key,
            system,
            &opts.cache_dir,
            opts.source_date_epoch,
            &opts.uv,
            patch,
        )
    };
    // With layers in the registry the app's may well be there: its wheel is built only once
    // the plan says it is not (on a fresh runner, building it would fetch the backend).
    let wants_app = app_mode == AppMode::Wheel && !opts.dry_run;
    let mut app_wheel = (wants_app && !session.remote.has_layers())
        .then(|| start_app(&project, &app_key, app_inputs(&project)));

    let base = source.resolve(store, reporter, session.remote).await?;
    let target = python_target(&project, &base, opts);
    // The interpreter that compiles is part of the bytecode layers' keys: known before the plan.
    let bytecode = compiles_bytecode(&project, opts);
    let host_base = if bytecode {
        super::bytecode::host_variant(session, &target, source).await?
    } else {
        None
    };
    let compiled_by =
        bytecode.then(|| super::bytecode::identity(host_base.as_ref().unwrap_or(&base)));
    timer.lap("base");

    let env = target.marker_env();
    let target_cfg = project.target(&opts.target)?;
    let vars = |name: &str| opts.url_vars.get(name).cloned();
    let packages =
        freshness::locked_and_fresh(&lock, &project.dependencies, &project.name, &env, &vars)?;
    // What the target adds: the packages its groups and extras bring beyond production's.
    let selection = Selection {
        extras: target_cfg.extras.clone(),
        groups: target_cfg.groups.clone(),
    };
    let target_packages: Vec<LockedPackage> = if selection == Selection::default() {
        Vec::new()
    } else {
        lock.packages(&env, Some(&project.name), &selection, &vars)?
            .into_iter()
            .filter(|p| {
                !packages
                    .iter()
                    .any(|q| q.name == p.name && q.version == p.version)
            })
            .collect()
    };
    let unhashed = check_unhashed(&lock, &project, &packages, &target_packages)?;
    if !unhashed.is_empty() {
        reporter.warn(&format!(
            "{} locked without hashes (allow-unhashed = true): {}; their files are checked only \
             against the sha256 the index gives",
            if unhashed.len() == 1 {
                "1 package is".to_string()
            } else {
                format!("{} packages are", unhashed.len())
            },
            unhashed.join(", ")
        ));
    }
    let packages = build_local_packages(session, &lock.path, packages).await?;
    let target_packages = build_local_packages(session, &lock.path, target_packages).await?;
    let packages = resolve_index_files(&lock, &project, packages, http, opts).await?;
    let target_packages = resolve_index_files(&lock, &project, target_packages, http, opts).await?;
    let tags = target.tags()?;
    let (mut chosen, missing) = select::partition(&packages, &tags);
    let (mut target_chosen, target_missing) = select::partition(&target_packages, &tags);

    let user = user::resolve(project.config.user.as_deref(), &base.facts)?;
    let target_files = if target_cfg.include.is_empty() {
        None
    } else {
        let files = app::included(&project.dir, &sources, &target_cfg.include)?;
        let digest = app::digest_files(&project.dir, &files)?;
        Some((opts.target.clone(), files, format!("{workdir}:{digest}")))
    };
    // The runtime layer's /etc/passwd and /etc/group are the base's with the user added: the
    // base's files are inputs too (two bases with one Python must not share the layer).
    let accounts = lockship_oci::digest::Digest::of_parts([
        base.facts.passwd.as_deref().unwrap_or(""),
        "\0",
        base.facts.group.as_deref().unwrap_or(""),
    ]);
    let runtime_key = format!("{user:?}\n{workdir}\n{accounts}");
    let compression = project.compression()?;
    // An app with extension modules is built in the builder (its key cannot know whether it
    // has any before it is built): the builder as configured is part of the app layer's key, as
    // it is of a wheel built from an sdist.
    let app_layer_key = match app_mode {
        AppMode::Wheel => format!(
            "{app_key}\nbuilder: {}",
            builder_identity(&project, &base, source)
        ),
        AppMode::Copy => app_key.clone(),
    };
    // A Debian-package base's standard library has no pycs: the image gets them with the rest.
    let stdlib_bytecode = (compiled_by.is_some() && source.stdlib_without_bytecode()).then(|| {
        let digests = base.layers.iter().map(|l| l.info.digest.clone()).collect();
        (digests, stdlib_dir(&base.facts.interpreter, target.version))
    });
    let plan_inputs = |app: AppPlan| PlanInputs {
        target: &target,
        runtime_key: runtime_key.clone(),
        app_key: app_layer_key.clone(),
        app,
        target_files: target_files.clone(),
        mtime: opts.source_date_epoch,
        bytecode: compiled_by.clone(),
        compression,
        stdlib_bytecode: stdlib_bytecode.clone(),
    };
    let commands = project.smoke_commands(&target_cfg);
    let must_test = match opts.smoke {
        SmokeMode::Always => true,
        SmokeMode::BeforePush => !push_refs.is_empty() && !commands.is_empty(),
        SmokeMode::Skip => false,
    };
    // `--cache-to` references get what push targets get, but do not make the smoke tests run.
    push_refs.extend(cache_to);

    // Wheels named by a path are refused outside the project before anything reads them
    // (the layers written ahead below would).
    let inside = |wheels: &[select::ChosenWheel]| {
        wheels
            .iter()
            .try_for_each(|w| lockship_python::fetch::check_local(&project.dir, w))
    };
    inside(&chosen)?;
    inside(&target_chosen)?;
    let mut ahead = Ahead::default();
    if !missing.is_empty() || !target_missing.is_empty() {
        let ctx = BuildContext {
            project: &project,
            target: &target,
            source,
            index_url: default_index(&lock, &project, opts)
                .ok()
                .map(|url| http.add_credentials(&url)),
        };
        let exact = ahead::exact(
            chosen.len() + missing.len(),
            target_chosen.len() + target_missing.len(),
        );
        let sdists = async {
            let built = build_missing(session, &ctx, missing).await?;
            let target_built = build_missing(session, &ctx, target_missing).await?;
            Ok::<_, Error>((built, target_built))
        };
        let early_push = early_push(must_test, &push_refs);
        let write = async {
            // A multi-platform build writes one platform's layers at a time, so that what
            // platforms share is written once (see `platforms`).
            if opts.dry_run || !exact || !session.single_platform {
                return Ok(Ahead::default());
            }
            let planned = plan::plan_layers(plan_inputs(AppPlan::Wheel), &chosen, &target_chosen);
            let inputs = AheadInputs {
                target: &target,
                base: &base,
                host_base: host_base.as_ref(),
                source,
                ctx: Arc::new(LayerContext::new(
                    session,
                    &project,
                    &target,
                    &user,
                    &workdir,
                    &base.facts,
                )?),
                early_push,
            };
            write_ahead(session, inputs, planned.layers).await
        };
        // An sdist's failure stops the writing at once (what it committed is whole: blobs and
        // cache entries are renamed into place) and is the one reported; a failure to write
        // lets the sdists finish (a builder container is never left behind).
        let written = async { Ok::<_, Error>(write.await) };
        let ((built, target_built), written) = futures::future::try_join(sdists, written).await?;
        ahead = written?;
        inside(&built)?;
        inside(&target_built)?;
        chosen.extend(built);
        target_chosen.extend(target_built);
    }
    timer.lap("lock");

    let plan = plan::plan_layers(plan_inputs(app_plan), &chosen, &target_chosen);
    timer.lap("plan");
    if wants_app && app_wheel.is_none() {
        let in_registry = plan.layers.iter().any(|l| {
            matches!(l.content, plan::LayerContent::AppWheel { .. })
                && session.remote.planned(l).is_some()
        });
        if !in_registry {
            // On a fresh runner the last real build may be in the registry, shared by the
            // build that pushed the image there: an edit since is patched onto it.
            let (system, patch) = app_inputs(&project);
            if let Some(patch) = &patch {
                let frame = app_patch::frame(&patch.pyproject, &system, opts.source_date_epoch);
                app_wheel::seed_from_registry(session, &project.dir, patch, &frame).await;
            }
            app_wheel = Some(start_app(&project, &app_key, (system, patch)));
        }
    }

    Ok(Prepared {
        project,
        lock,
        target_cfg,
        workdir,
        user,
        target,
        base,
        host_base,
        plan,
        push_refs,
        commands,
        must_test,
        app_wheel,
        unhashed,
        sources,
        ahead,
    })
}

/// The packages the lock pins without hashes (`name==version`): refused unless the project
/// sets `allow-unhashed = true`.
fn check_unhashed(
    lock: &LockFile,
    project: &Project,
    packages: &[LockedPackage],
    target_packages: &[LockedPackage],
) -> Result<Vec<String>, Error> {
    let mut unhashed = lock::unhashed(packages);
    unhashed.extend(lock::unhashed(target_packages));
    if !unhashed.is_empty() && !project.config.allow_unhashed {
        return Err(lock::LockError::Unhashed {
            path: lock.path.clone(),
            packages: unhashed,
        }
        .into());
    }
    Ok(unhashed)
}

/// The standard library's directory in the image for the interpreter at `interpreter`
/// (`/usr/bin/python3.11` → `usr/lib/python3.11`: PREFIX/lib/pythonX.Y).
fn stdlib_dir(interpreter: &str, (major, minor, _): (u8, u8, u8)) -> String {
    let prefix = std::path::Path::new(interpreter)
        .parent()
        .and_then(|bin| bin.parent())
        .map(|p| p.to_string_lossy().trim_matches('/').to_string())
        .unwrap_or_default();
    let lib = format!("lib/python{major}.{minor}");
    if prefix.is_empty() {
        lib
    } else {
        format!("{prefix}/{lib}")
    }
}

/// What builds an app with extension modules, as configured: the `[tool.lockship.builder]`
/// image, else the builder assembled from a Debian base (its lock and extra packages), else
/// none (such an app then fails to build).
fn builder_identity(project: &Project, base: &ResolvedBase, source: &dyn BaseSource) -> String {
    let configured = super::sdists::configured_builder(project);
    let named = project
        .config
        .builder
        .as_ref()
        .is_some_and(|b| b.image.is_some());
    if named {
        configured
    } else if source.assembles_builder() {
        format!("{configured} from {}", base.pinned)
    } else {
        "none".to_string()
    }
}

/// Whether the build puts bytecode in the image: the config's `bytecode` (on unless set
/// off), unless `--no-bytecode`.
pub(super) fn compiles_bytecode(project: &Project, opts: &super::BuildOptions) -> bool {
    !opts.no_bytecode && project.config.bytecode.unwrap_or(true)
}
