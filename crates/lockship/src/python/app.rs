//! The project's own code: its source files (for change detection), a wheel built with the
//! project's own PEP 517 backend (through `uv build`), or files copied by glob.

use std::path::{Path, PathBuf};
use std::process::Command;

use globset::{Glob, GlobSetBuilder};

use crate::oci::digest::Hasher;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("cannot build a wheel of {project}: no `uv` on PATH and `python3 -m build` is not available")]
    NoBuilder { project: PathBuf },
    #[error("building the wheel of {project} failed: {message}")]
    BuildFailed { project: PathBuf, message: String },
    #[error("cannot read project file {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("bad include glob `{glob}` in [tool.lockship]: {message}")]
    BadGlob { glob: String, message: String },
    #[error("the include globs {globs:?} match no file in {project}")]
    NothingIncluded {
        project: PathBuf,
        globs: Vec<String>,
    },
}

impl AppError {
    pub fn hint(&self) -> Option<String> {
        match self {
            AppError::NoBuilder { .. } => Some(
                "install uv (`pip install uv`), or set app = \"copy\" in [tool.lockship]".into(),
            ),
            AppError::NothingIncluded { .. } => Some(
                "fix `include` in [tool.lockship]; globs are relative to the project directory"
                    .into(),
            ),
            AppError::BuildFailed { .. } => {
                Some("run `uv build --wheel` in the project to see the full output".into())
            }
            _ => None,
        }
    }
}

/// Directories that never belong to an app's sources.
const SKIP_DIRS: [&str; 12] = [
    ".git",
    ".venv",
    "venv",
    "__pycache__",
    "target",
    "dist",
    "build",
    "node_modules",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".tox",
];

/// The project's source files, relative and sorted: git's view (tracked plus untracked, not
/// ignored) inside a work tree, else a walk that skips build and cache directories. Paths in
/// `exclude` (outputs written into the project) are left out.
pub fn source_files(project: &Path, exclude: &[PathBuf]) -> Result<Vec<PathBuf>, AppError> {
    let git = Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
            "--",
            ".",
        ])
        .current_dir(project)
        .output();
    let mut files: Vec<PathBuf> = match git {
        Ok(out) if out.status.success() => out
            .stdout
            .split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| PathBuf::from(String::from_utf8_lossy(s).into_owned()))
            .filter(|p| project.join(p).is_file())
            .collect(),
        _ => walkdir::WalkDir::new(project)
            .into_iter()
            .filter_entry(|e| {
                !(e.file_type().is_dir()
                    && e.file_name()
                        .to_str()
                        .is_some_and(|n| SKIP_DIRS.contains(&n) || n.ends_with(".egg-info")))
            })
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file())
            .filter_map(|e| e.path().strip_prefix(project).ok().map(Path::to_path_buf))
            .collect(),
    };
    let excluded: Vec<PathBuf> = exclude
        .iter()
        .filter_map(|p| std::path::absolute(p).ok())
        .collect();
    let abs_project = std::path::absolute(project).unwrap_or_else(|_| project.to_path_buf());
    files.retain(|f| {
        let abs = abs_project.join(f);
        f.extension().is_none_or(|e| e != "pyc")
            && !excluded.iter().any(|x| abs.starts_with(x))
            && !f.components().any(|c| {
                c.as_os_str()
                    .to_str()
                    .is_some_and(|n| SKIP_DIRS.contains(&n))
            })
    });
    files.sort();
    files.dedup();
    Ok(files)
}

/// A digest over the names and contents of `files` (relative to `project`).
pub fn digest_files(project: &Path, files: &[PathBuf]) -> Result<String, AppError> {
    let mut hasher = Hasher::default();
    for f in files {
        let path = project.join(f);
        let bytes = std::fs::read(&path).map_err(|e| AppError::Read {
            path: path.clone(),
            message: e.to_string(),
        })?;
        hasher.update(f.to_string_lossy().as_bytes());
        hasher.update(&[0]);
        hasher.update(&(bytes.len() as u64).to_le_bytes());
        hasher.update(&bytes);
    }
    Ok(hasher.finish().hex().to_string())
}

/// Builds the project's wheel into `out_dir` with its own PEP 517 backend and returns its path.
/// `uv build` is preferred (isolated, fast); `python3 -m build` is the fallback.
pub fn build_wheel(
    project: &Path,
    out_dir: &Path,
    source_date_epoch: u64,
) -> Result<PathBuf, AppError> {
    let uv = std::env::var_os("LOCKSHIP_UV").unwrap_or_else(|| "uv".into());
    let mut cmd = Command::new(&uv);
    cmd.args(["build", "--wheel", "--quiet", "--out-dir"])
        .arg(out_dir)
        .arg(project);
    let output = match cmd
        .env("SOURCE_DATE_EPOCH", source_date_epoch.to_string())
        .output()
    {
        Ok(out) => out,
        Err(_) => Command::new("python3")
            .args(["-m", "build", "--wheel", "--outdir"])
            .arg(out_dir)
            .arg(project)
            .env("SOURCE_DATE_EPOCH", source_date_epoch.to_string())
            .output()
            .map_err(|_| AppError::NoBuilder {
                project: project.to_path_buf(),
            })?,
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("(no output)");
        return Err(AppError::BuildFailed {
            project: project.to_path_buf(),
            message: last.trim().to_string(),
        });
    }
    std::fs::read_dir(out_dir)
        .ok()
        .and_then(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|e| e == "whl"))
        })
        .ok_or_else(|| AppError::BuildFailed {
            project: project.to_path_buf(),
            message: "the build backend produced no wheel".into(),
        })
}

/// The files among `files` that match `globs` (relative to the project).
pub fn included(
    project: &Path,
    files: &[PathBuf],
    globs: &[String],
) -> Result<Vec<PathBuf>, AppError> {
    let mut set = GlobSetBuilder::new();
    for g in globs {
        set.add(Glob::new(g).map_err(|e| AppError::BadGlob {
            glob: g.clone(),
            message: e.kind().to_string(),
        })?);
    }
    let set = set.build().map_err(|e| AppError::BadGlob {
        glob: globs.join(", "),
        message: e.to_string(),
    })?;
    let chosen: Vec<PathBuf> = files.iter().filter(|f| set.is_match(f)).cloned().collect();
    if chosen.is_empty() {
        return Err(AppError::NothingIncluded {
            project: project.to_path_buf(),
            globs: globs.to_vec(),
        });
    }
    Ok(chosen)
}
