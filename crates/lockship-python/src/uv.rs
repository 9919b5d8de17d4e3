//! Finding uv, which runs the Python work lockship does not do itself (an app's build
//! environment, re-resolving a lock): the program the user named (the CLI reads LOCKSHIP_UV),
//! else a pinned uv that lockship installs once into its cache. And the cached virtual
//! environments uv makes for lockship (build backends, poetry, pipenv).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use lockship_sys::interrupt::Children;
use lockship_sys::scratch::ScratchDir;

use crate::app::last_line;

/// The uv lockship installs when none is on PATH (a real install from the package index).
pub const UV_VERSION: &str = "0.13.9";

#[derive(Debug, thiserror::Error)]
#[error("no uv on PATH, and installing uv {version} with pip failed: {message}")]
pub struct NoUv {
    pub version: String,
    pub message: String,
}

/// `named` (a program name looked up on PATH, or a path) if it starts and answers `--version`.
pub fn runnable(named: &OsStr, children: &Children) -> Option<PathBuf> {
    children
        .output(Command::new(named).arg("--version"))
        .is_ok_and(|o| o.status.success())
        .then(|| PathBuf::from(named))
}

/// `named` if it runs, else the pinned uv under `tools_dir`, installed there with pip the first
/// time (into a private directory renamed into place, so concurrent runs agree).
pub fn find_or_install(named: &OsStr, tools_dir: &Path) -> Result<PathBuf, NoUv> {
    let children = Children::default();
    if let Some(uv) = runnable(named, &children) {
        return Ok(uv);
    }
    let dir = tools_dir.join(format!("uv-{UV_VERSION}"));
    let bin = dir.join("bin").join("uv");
    if bin.is_file() {
        return Ok(bin);
    }
    let fail = |message: String| NoUv {
        version: UV_VERSION.to_string(),
        message,
    };
    std::fs::create_dir_all(tools_dir).map_err(|e| fail(e.to_string()))?;
    let staging = ScratchDir::new_in(tools_dir).map_err(|e| fail(e.to_string()))?;
    // No pip cache: lockship writes only to its own cache.
    let out = children
        .output(
            Command::new("python3")
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--no-deps",
                    "--no-cache-dir",
                    "--target",
                ])
                .arg(staging.path())
                .arg(format!("uv=={UV_VERSION}")),
        )
        .map_err(|e| fail(e.to_string()))?;
    if !out.status.success() {
        return Err(fail(last_line(&out.stderr)));
    }
    staging.persist(&dir).or_else(|e| {
        if bin.is_file() {
            Ok(())
        } else {
            Err(fail(e.to_string()))
        }
    })?;
    Ok(bin)
}

/// A virtual environment made by `uv` at `dir` with `packages` installed, unless one is there
/// already. Made in a private directory beside `dir` and renamed into place once complete, so
/// a finished `dir/bin/python` means a complete environment, and concurrent runs agree.
/// `venv_args` and `install_args` go to `uv venv` and `uv pip install`. A venv records its own
/// path; after the rename it still runs `python -m …`, which is all these are used for (their
/// scripts' shebangs name the staging directory).
pub fn cached_venv(
    uv: &OsStr,
    dir: &Path,
    venv_args: &[&str],
    install_args: &[&str],
    packages: &[String],
    children: &Children,
) -> Result<PathBuf, String> {
    if dir.join("bin").join("python").exists() {
        return Ok(dir.to_path_buf());
    }
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    let tmp = ScratchDir::new_in(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    // `uv venv` refuses an existing directory: the venv goes just inside the temp dir.
    let staging = tmp.path().join("env");
    let run = |cmd: &mut Command| -> Result<(), String> {
        let out = children.output(cmd).map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(last_line(&out.stderr))
        }
    };
    run(Command::new(uv).arg("venv").args(venv_args).arg(&staging))?;
    if !packages.is_empty() {
        run(Command::new(uv)
            .args(["pip", "install"])
            .args(install_args)
            .arg("--python")
            .arg(staging.join("bin").join("python"))
            .args(packages))?;
    }
    match std::fs::rename(&staging, dir) {
        Ok(()) => Ok(dir.to_path_buf()),
        Err(_) if dir.join("bin").join("python").exists() => Ok(dir.to_path_buf()), // another run won
        Err(e) => Err(format!("{}: {e}", dir.display())),
    }
}
