//! Finding uv, which runs the Python work lockship does not do itself (an app's build
//! environment, re-resolving a lock): the program the user named (the CLI reads LOCKSHIP_UV),
//! else a pinned uv that lockship installs once into its cache.

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
