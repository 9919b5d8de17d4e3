//! The project's own wheel. Building it needs nothing from the base image (the PEP 517 backend
//! runs on the host), so it starts with the build and overlaps base resolution, downloads and
//! the other layers. Wheels are kept by the digest of the project's files, the build system and
//! SOURCE_DATE_EPOCH, so other targets and bases reuse them. If the build stops before the app
//! layer needs the wheel (an error elsewhere), dropping the handle kills the backend.

use std::path::{Path, PathBuf};

use tokio::task::JoinHandle;

use crate::cache_dir::Bucket;
use crate::error::Error;
use lockship_oci::digest::Digest;
use lockship_python::app::{self, BuildSystem};
use lockship_python::app_patch;
use lockship_sys::interrupt::Children;
use lockship_sys::scratch::ScratchDir;

use super::base::BaseSource;
use super::cache::{io_err, read_cached, write_cached};
use super::index_files::default_index;
use super::prepare::Prepared;
use super::sdists::{build_missing, BuildContext};
use super::shared_wheels::AppShared;
use super::Session;
use lockship_python::lock::LockedWheel;
use lockship_python::select::Unsatisfied;

/// The app wheel being built (or found built).
pub(super) struct AppWheel {
    handle: Option<JoinHandle<Result<PathBuf, Error>>>,
    children: Children,
}

impl AppWheel {
    /// Waits for the wheel.
    pub(super) async fn finish(mut self) -> Result<PathBuf, Error> {
        match self.handle.take() {
            Some(handle) => handle.await.map_err(super::pipeline::crashed)?,
            None => Err(Error::Usage("the app wheel was awaited twice".into())),
        }
    }
}

impl Drop for AppWheel {
    fn drop(&mut self) {
        // Still building and no longer wanted: stop the backend and whatever it started.
        if self.handle.is_some() {
            self.children.kill();
        }
    }
}

/// What lets an app wheel be patched instead of built (see `python::app_patch`): the files the
/// app's key is made from, and pyproject.toml's bytes. Given only for a project whose metadata
/// is static and whose backend has no hooks (`app_patch::patchable`).
pub(super) struct PatchInputs {
    pub sources: Vec<PathBuf>,
    pub pyproject: Vec<u8>,
    /// The files `[project]` makes metadata from (`app_patch::metadata_files`).
    pub metadata: Vec<String>,
}

/// The last wheel the backend built for a project, and what it was built from.
#[derive(serde::Serialize, serde::Deserialize)]
struct LastBuild {
    /// Its directory under the app-wheels bucket.
    dir: String,
    origin: app_patch::WheelOrigin,
}

/// Starts building the app wheel (or finds it built, or patches the last one the backend
/// built when only files it holds verbatim changed) on a blocking thread.
pub(super) fn start(
    project_dir: &Path,
    app_key: &str,
    build_system: BuildSystem,
    cache_dir: &Path,
    source_date_epoch: u64,
    uv: &std::ffi::OsStr,
    patch: Option<PatchInputs>,
) -> AppWheel {
    let key = Digest::of_parts([
        "lockship-app-wheel-v1",
        app_key,
        &format!("{build_system:?}"),
        &source_date_epoch.to_string(),
    ]);
    let wheels = Bucket::AppWheels.under(cache_dir);
    let build_envs = Bucket::BuildEnvs.under(cache_dir);
    let project_dir = project_dir.to_path_buf();
    let uv = uv.to_os_string();
    let children = Children::default();
    let running = children.clone();
    let handle = tokio::task::spawn_blocking(move || {
        let dir = wheels.join(&key.hex()[..32]);
        if let Some(wheel) = app::wheel_in(&dir) {
            lockship_sys::cache_lock::touch(&dir);
            return Ok(wheel);
        }
        fs_err::create_dir_all(&wheels).map_err(io_err(&wheels))?;
        // What the patch needs: the files' digests now and the last real build, by project.
        let last_entry = last_entry(&wheels, &project_dir);
        let now = match &patch {
            Some(p) => Some((
                app_patch::frame(&p.pyproject, &build_system, source_date_epoch),
                app_patch::source_digests(&project_dir, &p.sources)?,
            )),
            None => None,
        };
        // Built in a private directory and renamed into place: a failed or concurrent build
        // never leaves a half-written wheel under the key.
        let scratch = ScratchDir::new_in(&wheels).map_err(io_err(&wheels))?;
        let out = scratch.path().join("dist");
        fs_err::create_dir_all(&out).map_err(io_err(&out))?;
        let patched = match (&now, read_cached::<LastBuild>(&last_entry)) {
            (Some((frame, sources)), Some(last)) => {
                patch_last(&wheels, &last, frame, sources, &project_dir, &out)?
            }
            _ => None,
        };
        let real = patched.is_none();
        let wheel = match patched {
            Some(wheel) => wheel,
            None => app::build_wheel(
                &project_dir,
                &out,
                source_date_epoch,
                &build_system,
                &build_envs,
                &uv,
                &running,
            )?,
        };
        // A real build becomes what later edits are patched onto.
        let origin = match (&now, real) {
            (Some((frame, sources)), true) => Some(app_patch::record_origin(
                &wheel,
                frame.clone(),
                sources.clone(),
                &patch
                    .as_ref()
                    .map(|p| p.metadata.clone())
                    .unwrap_or_default(),
            )?),
            _ => None,
        };
        let name = wheel
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_default();
        if std::fs::rename(&out, &dir).is_err() {
            // Another build put the same wheel in place first.
            if let Some(existing) = app::wheel_in(&dir) {
                return Ok(existing);
            }
            return Err(io_err(&dir)(std::io::Error::other(
                "cannot move the built wheel into the cache",
            )));
        }
        drop(scratch);
        if let Some(origin) = origin {
            let last = LastBuild {
                dir: key.hex()[..32].to_string(),
                origin,
            };
            write_cached(&last_entry, &last)?;
        }
        Ok(dir.join(name))
    });
    AppWheel {
        handle: Some(handle),
        children,
    }
}

/// The cache entry naming the last real build of the project in `project_dir`.
fn last_entry(wheels: &Path, project_dir: &Path) -> PathBuf {
    wheels.join(format!(
        "last-{}.json",
        &Digest::of_parts(["lockship-app-last-v1", &project_dir.to_string_lossy()]).hex()[..32]
    ))
}

/// The wheel of a last build, when its entry names a plain directory that still has one.
fn last_wheel(wheels: &Path, last: &LastBuild) -> Option<PathBuf> {
    // The directory name comes from the cache entry: only a plain name is taken.
    if last.dir.is_empty() || !last.dir.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    app::wheel_in(&wheels.join(&last.dir))
}

/// The app's last real build, to share through the registry (see `shared_wheels`): its wheel
/// put in the store. None when this machine has none.
pub(super) fn last_for_sharing(session: &Session<'_>, project_dir: &Path) -> Option<AppShared> {
    let wheels = Bucket::AppWheels.under(&session.opts.cache_dir);
    let last = read_cached::<LastBuild>(&last_entry(&wheels, project_dir))?;
    let wheel = last_wheel(&wheels, &last)?;
    let bytes = std::fs::read(&wheel).ok()?;
    let sha256 = session.store.put_bytes(&bytes).ok()?;
    Some(AppShared {
        filename: wheel.file_name()?.to_string_lossy().into_owned(),
        sha256,
        size: bytes.len() as u64,
        // The project's other file names and contents stay here.
        origin: last.origin.shareable(),
    })
}

/// On a disk without the app's last real build, the one another build shared through the
/// registry becomes it, when it was made from the same frame (pyproject.toml, build system,
/// SOURCE_DATE_EPOCH) and its record agrees with its wheel: then an edit is patched onto it
/// instead of running the backend. Anything missing or wrong leaves the backend to build.
pub(super) async fn seed_from_registry(
    session: &Session<'_>,
    project_dir: &Path,
    patch: &PatchInputs,
    frame: &str,
) {
    let wheels = Bucket::AppWheels.under(&session.opts.cache_dir);
    let entry = last_entry(&wheels, project_dir);
    if read_cached::<LastBuild>(&entry).is_some_and(|last| last_wheel(&wheels, &last).is_some()) {
        return;
    }
    let found = session
        .remote
        .shared(session.registry, session.store, session.reporter)
        .await;
    let Some((from, app)) = found
        .apps()
        .iter()
        .find(|(_, a)| a.origin.frame == frame && a.origin.others.is_some())
    else {
        return;
    };
    if app.size > MAX_SHARED_APP_WHEEL {
        return;
    }
    let what = format!("the app wheel shared with {from}");
    // Anything wrong with it is a cache miss: the backend builds, as without the registry.
    if let Err(e) = seed(session, &wheels, &entry, from, app, patch).await {
        session
            .reporter
            .warn(&format!("{what} cannot be used ({e}): building the app"));
    }
}

/// The largest shared app wheel taken.
const MAX_SHARED_APP_WHEEL: u64 = 512 << 20;

/// Fetches the shared app wheel and files it as this machine's last real build, when its
/// record agrees with it.
async fn seed(
    session: &Session<'_>,
    wheels: &Path,
    entry: &Path,
    from: &oci_spec::distribution::Reference,
    app: &AppShared,
    patch: &PatchInputs,
) -> Result<(), Error> {
    let what = format!("the app wheel shared with {from}");
    let fetched = session
        .registry
        .fetch_blob(from, &app.sha256, Some(app.size), &what, session.store)
        .await;
    fetched?;
    // Filed as a real build's wheel is, in a directory of its own.
    let name = app.sha256.hex()[..32].to_string();
    let path = file_from_store(session, wheels, &name, &app.filename, &app.sha256)?;
    // The record must be what this machine would have recorded from that wheel.
    let again = app_patch::record_origin(
        &path,
        app.origin.frame.clone(),
        app.origin.sources.clone(),
        &patch.metadata,
    )?;
    if again.members != app.origin.members || again.sources != app.origin.sources {
        return Err(Error::Usage(format!("{what} does not match its record")));
    }
    write_cached(
        entry,
        &LastBuild {
            dir: name,
            origin: app.origin.clone(),
        },
    )
}

/// The last real build's wheel with the members for the files changed since replaced, written
/// into `out`; None when the change is not one a patch can make (the backend builds it).
fn patch_last(
    wheels: &Path,
    last: &LastBuild,
    frame: &str,
    sources: &std::collections::BTreeMap<String, String>,
    project_dir: &Path,
    out: &Path,
) -> Result<Option<PathBuf>, Error> {
    let Some(replace) = app_patch::replacements(&last.origin, frame, sources) else {
        return Ok(None);
    };
    let Some(old) = last_wheel(wheels, last) else {
        return Ok(None);
    };
    let Some(name) = old.file_name() else {
        return Ok(None);
    };
    let wheel = out.join(name);
    app_patch::patch(&old, project_dir, &replace, &wheel)?;
    Ok(Some(wheel))
}

/// The app wheel for the image's target: the one built on this machine when it is pure
/// Python (it runs anywhere: today's fast path), else the wheel the builder makes for the
/// target from the project's sources (a source archive of the files its key was made from),
/// cached like any wheel built from an sdist.
pub(super) async fn for_target(
    session: &Session<'_>,
    prepared: &Prepared,
    source: &dyn BaseSource,
    host: AppWheel,
) -> Result<PathBuf, Error> {
    let wheel = host.finish().await?;
    let filename = wheel
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if app::is_pure_wheel(&filename) {
        return Ok(wheel);
    }
    let project = &prepared.project;
    let version = lockship_python::index::file_version(&filename, &project.name)
        .map(|v| v.to_string())
        .unwrap_or_else(|| project.version.clone().unwrap_or_else(|| "0".into()));
    session.reporter.step(&format!(
        "{filename} has extension modules: building {} in the builder for {}",
        project.name,
        prepared.target.describe()
    ));
    let package = Unsatisfied {
        name: project.name.clone(),
        wheels: 1,
        sdist: Some(source_sdist(
            session,
            &project.dir,
            &prepared.sources,
            &project.name,
            &version,
        )?),
        version,
    };
    let ctx = BuildContext {
        project,
        target: &prepared.target,
        source,
        index_url: default_index(&prepared.lock, project, session.opts)
            .ok()
            .map(|url| session.http.add_credentials(&url)),
    };
    let built = build_missing(session, &ctx, vec![package]).await?;
    let built = built
        .first()
        .ok_or_else(|| Error::Usage(format!("the builder made no wheel of {}", project.name)))?;
    // The installer reads the wheel's tags from its file name: a copy under it, kept beside
    // the host-built wheels (written whole, then renamed into place).
    let wheels = Bucket::AppWheels.under(&session.opts.cache_dir);
    file_from_store(
        session,
        &wheels,
        &format!("built-{}", &built.wheel.sha256.hex()[..32]),
        &built.wheel.filename,
        &built.wheel.sha256,
    )
}

/// The store's blob `sha256` as `wheels/dir/filename` (the installer reads a wheel's tags
/// from its name), written whole and renamed into place unless it is there already.
fn file_from_store(
    session: &Session<'_>,
    wheels: &Path,
    dir: &str,
    filename: &str,
    sha256: &Digest,
) -> Result<PathBuf, Error> {
    let dir = wheels.join(dir);
    let path = dir.join(filename);
    if !path.is_file() {
        fs_err::create_dir_all(wheels).map_err(io_err(wheels))?;
        let scratch = ScratchDir::new_in(wheels).map_err(io_err(wheels))?;
        let staged = scratch.path().join(filename);
        fs_err::copy(session.store.path(sha256), &staged).map_err(io_err(&staged))?;
        if scratch.persist(&dir).is_err() && !path.is_file() {
            return Err(io_err(&dir)(std::io::Error::other(
                "cannot move the wheel into the cache",
            )));
        }
    }
    Ok(path)
}

/// The sources of the project in `dir` (`files`, relative) as an sdist of `name` `version` in
/// the store, for the builder: what a project with extension modules is built from.
pub(super) fn source_sdist(
    session: &Session<'_>,
    dir: &Path,
    files: &[PathBuf],
    name: &str,
    version: &str,
) -> Result<LockedWheel, Error> {
    let top = format!("{}-{version}", name.replace('-', "_"));
    let archive = app::source_archive(dir, files, &top, session.opts.source_date_epoch)?;
    let sha256 = session.store.put_bytes(&archive)?;
    Ok(LockedWheel {
        filename: format!("{top}.tar.gz"),
        url: String::new(),
        sha256,
        size: Some(archive.len() as u64),
    })
}
