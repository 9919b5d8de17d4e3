//! Workspace members and path dependencies of a uv.lock: each is built into a wheel by its own
//! PEP 517 backend, as the app is, kept in the cache by the digest of its files (an unchanged
//! member is not built again), and put in the blob store, so that from here on it is planned,
//! layered and installed like any locked wheel. One whose wheel has extension modules (built
//! by this machine's Python, for this machine) becomes a source archive instead, which the
//! builder turns into the target's wheel like any sdist.

use std::path::Path;

use crate::error::Error;
use lockship_python::app::{self, AppError, BuildSystem};
use lockship_python::index::file_version;
use lockship_python::lock::{Artifacts, LockedPackage, LockedWheel};

use super::app_wheel;
use super::cache::io_err;
use super::Session;

/// Replaces every `Local` package with the wheel built from its directory.
pub(super) async fn build_local_packages(
    session: &Session<'_>,
    lock_path: &Path,
    packages: Vec<LockedPackage>,
) -> Result<Vec<LockedPackage>, Error> {
    let opts = session.opts;
    // Every build starts before any is awaited: they run side by side.
    let mut builds = Vec::new();
    for p in &packages {
        let Artifacts::Local { dir } = &p.artifacts else {
            builds.push(None);
            continue;
        };
        let not_a_project = || AppError::NotAProject {
            lock: lock_path.to_path_buf(),
            package: p.name.clone(),
            dir: dir.clone(),
        };
        if !dir.is_dir()
            || !(dir.join("pyproject.toml").is_file() || dir.join("setup.py").is_file())
        {
            return Err(not_a_project().into());
        }
        // Its backend runs there and its files go into the image: only under the lock's
        // directory (after links), never wherever a lock from elsewhere points.
        let root = match lock_path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        if !lockship_sys::confine::resolves_inside(dir, root).unwrap_or(false) {
            return Err(AppError::OutsideLock {
                lock: lock_path.to_path_buf(),
                package: p.name.clone(),
                dir: dir.clone(),
            }
            .into());
        }
        let pyproject = match std::fs::read_to_string(dir.join("pyproject.toml")) {
            Ok(text) => Some(
                toml::from_str::<toml::Value>(&text).map_err(|e| AppError::Read {
                    path: dir.join("pyproject.toml"),
                    message: e.message().to_string(),
                })?,
            ),
            Err(_) => None,
        };
        let files = app::source_files(dir, &[])?;
        let key = format!("local:{}:{}", p.name, app::digest_files(dir, &files)?);
        session
            .reporter
            .step(&format!("building {} from {}", p.name, dir.display()));
        builds.push(Some(app_wheel::start(
            dir,
            &key,
            BuildSystem::from_pyproject(pyproject.as_ref()),
            &opts.cache_dir,
            opts.source_date_epoch,
            &opts.uv,
            None,
        )));
    }
    let mut out = Vec::with_capacity(packages.len());
    for (p, build) in packages.into_iter().zip(builds) {
        let (Some(build), Artifacts::Local { dir }) = (build, &p.artifacts) else {
            out.push(p);
            continue;
        };
        let wheel = build.finish().await?;
        let filename = wheel
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let other_wheel = || AppError::OtherWheel {
            dir: dir.clone(),
            package: p.name.clone(),
            wheel: filename.clone(),
        };
        // The backend decides the name and version: the wheel must be the package the lock
        // says, and its version (dynamic versions are not in the lock) is the one installed.
        let version = file_version(&filename, &p.name).ok_or_else(other_wheel)?;
        if !app::is_pure_wheel(&filename) {
            // Extensions built by this machine's Python for this machine: the builder builds
            // the target's from the same sources, like any sdist.
            let files = app::source_files(dir, &[])?;
            let sdist =
                app_wheel::source_sdist(session, dir, &files, &p.name, &version.to_string())?;
            out.push(LockedPackage {
                version: version.to_string(),
                artifacts: Artifacts::Listed {
                    wheels: Vec::new(),
                    sdist: Some(sdist),
                },
                ..p
            });
            continue;
        }
        let bytes = fs_err::read(&wheel).map_err(io_err(&wheel))?;
        let sha256 = session.store.put_bytes(&bytes)?;
        out.push(LockedPackage {
            version: version.to_string(),
            artifacts: Artifacts::Listed {
                wheels: vec![LockedWheel {
                    filename,
                    // Never fetched: the wheel is in the store (a build that finds it gone
                    // runs again, and builds it again).
                    url: String::new(),
                    sha256,
                    size: Some(bytes.len() as u64),
                }],
                sdist: None,
            },
            ..p
        });
    }
    Ok(out)
}
