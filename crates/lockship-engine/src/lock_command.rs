//! `lockship lock`: re-resolves the project's lock with the format's own tool (uv for uv.lock,
//! `uv pip compile` for requirements.txt and pylock.toml, poetry for poetry.lock, pipenv for
//! Pipfile.lock), for the Python of the image's base, and reports what changed. `--check` is the
//! CI guard: it fails, naming what differs, when the lock is stale.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;

use crate::builder::{self, BuildOptions, Reporter};
use crate::cache_dir::Bucket;
use crate::error::Error;
use crate::project::Project;
use lockship_net::Http;
use lockship_python::app::last_line;
use lockship_python::lock::Selection;
use lockship_python::lock::{freshness, LockFile, LockKind};
use lockship_python::lock_tool::{self, NoTool};
use lockship_python::target::{Libc, PythonTarget};
use lockship_python::uv::{self, NoUv, UV_VERSION};
use lockship_sys::interrupt::Children;

#[derive(Debug, thiserror::Error)]
pub enum RelockError {
    #[error("no {tool} on PATH, and installing {tool} {version} failed: {message}")]
    NoTool {
        tool: String,
        version: String,
        message: String,
    },
    #[error("{tool} could not resolve {project}:\n{message}")]
    Resolve {
        tool: String,
        project: PathBuf,
        message: String,
    },
    #[error(
        "{path} is out of date with {}: {message}",
        lockship_python::lock::made_from(path)
    )]
    Stale { path: PathBuf, message: String },
    #[error(
        "{path} is a symlink: `lockship lock` rewrites the lock in place and does not follow links"
    )]
    Symlink { path: PathBuf },
}

impl From<NoUv> for RelockError {
    fn from(e: NoUv) -> Self {
        RelockError::NoTool {
            tool: "uv".into(),
            version: e.version,
            message: e.message,
        }
    }
}

impl From<NoTool> for RelockError {
    fn from(e: NoTool) -> Self {
        RelockError::NoTool {
            tool: e.tool,
            version: e.version,
            message: e.message,
        }
    }
}

/// The command of the format's own tool that relocks it, for users who run it by hand.
pub(crate) fn own_relock(kind: LockKind) -> &'static str {
    match kind {
        LockKind::UvLock => "uv lock",
        LockKind::PoetryLock => "poetry lock",
        LockKind::PipfileLock => "pipenv lock",
        LockKind::PyLock => "uv pip compile pyproject.toml --format pylock.toml",
        LockKind::RequirementsTxt => "uv pip compile pyproject.toml --generate-hashes",
    }
}

/// The kind a lock's file name says, for hints that only have its path.
pub(crate) fn kind_of(path: &Path) -> Option<LockKind> {
    LockKind::of_file_name(path.file_name()?.to_str()?)
}

impl RelockError {
    pub fn hint(&self) -> Option<String> {
        match self {
            RelockError::NoTool { tool, .. } => Some(format!("install {tool} (`pipx install {tool}`) or put it on PATH")),
            RelockError::Resolve { .. } => {
                Some("loosen the conflicting requirements in pyproject.toml, then run `lockship lock` again".into())
            }
            RelockError::Stale { .. } => Some("run `lockship lock` and commit the result".into()),
            RelockError::Symlink { .. } => {
                Some("replace the link with the lock file itself, or set `lock` to the file".into())
            }
        }
    }
}

/// What `lockship lock` asked for.
#[derive(Clone, Debug, Default)]
pub struct LockOptions {
    pub upgrade: bool,
    pub upgrade_packages: Vec<String>,
    pub check: bool,
}

/// One row of the change table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    pub package: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

/// The outcome of `lockship lock`.
#[derive(Clone, Debug, Serialize)]
pub struct LockReport {
    pub lock: PathBuf,
    pub tool: String,
    pub python: String,
    pub changes: Vec<Change>,
}

/// uv was found but could not be started.
fn tool_failed(e: std::io::Error) -> RelockError {
    RelockError::NoTool {
        tool: "uv".into(),
        version: UV_VERSION.into(),
        message: e.to_string(),
    }
}

/// Why `uv lock --check` failed, in uv's words: its "due to …" reason when it gives one (a
/// changed requirement, option or cutoff), else its error line.
fn uv_check_reason(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    text.lines()
        .find_map(|l| {
            l.split_once("existing lockfile due to ")
                .map(|(_, why)| format!("uv lock --check: {}", why.trim()))
        })
        .or_else(|| {
            text.lines().find_map(|l| {
                l.strip_prefix("error: ")
                    .map(|e| format!("uv lock --check: {}", e.trim()))
            })
        })
        .unwrap_or_else(|| last_line(stderr))
}

/// `x86_64-manylinux_2_36`: uv's `--python-platform` for the target.
fn uv_platform(target: &PythonTarget) -> String {
    match target.libc {
        Libc::Glibc { major, minor } => format!("{}-manylinux_{major}_{minor}", target.machine()),
        Libc::Musl { .. } => format!("{}-unknown-linux-musl", target.machine()),
    }
}

/// The lock to write when there is none: the configured one, else the one the project's own
/// tool would write (a Pipfile's Pipfile.lock, a poetry project's poetry.lock), else uv.lock.
fn new_lock_name(project: &Project, configured: Option<&Path>) -> PathBuf {
    if let Some(configured) = configured {
        return configured.to_path_buf();
    }
    let poetry = project.pyproject.as_ref().is_some_and(|p| {
        p.get("tool").and_then(|t| t.get("poetry")).is_some()
            && p.get("tool").and_then(|t| t.get("uv")).is_none()
    });
    PathBuf::from(if project.dir.join("Pipfile").is_file() {
        "Pipfile.lock"
    } else if poetry {
        "poetry.lock"
    } else {
        "uv.lock"
    })
}

/// What the relocking command is made from.
struct RelockInputs<'a> {
    project: &'a Project,
    lock: &'a Path,
    python: &'a str,
    target: &'a PythonTarget,
    lock_opts: &'a LockOptions,
}

/// The command that relocks a lock of `kind`, and its name for the report.
fn relock_command(
    kind: LockKind,
    uv: &Path,
    tools: &Path,
    inputs: &RelockInputs<'_>,
) -> Result<(Command, String), RelockError> {
    let RelockInputs {
        project,
        lock,
        python,
        target,
        lock_opts,
    } = *inputs;
    // poetry and pipenv read the file the lock is made from, beside the lock.
    let lock_dir = lock.parent().unwrap_or(&project.dir);
    let lock_dir = std::path::absolute(lock_dir).unwrap_or_else(|_| lock_dir.to_path_buf());
    let upgrade_only = !lock_opts.upgrade && !lock_opts.upgrade_packages.is_empty();
    let (mut cmd, tool) = match kind {
        LockKind::UvLock => {
            let mut cmd = Command::new(uv);
            cmd.args(["lock", "--quiet", "--python", python, "--project"])
                .arg(&project.dir);
            uv_upgrades(&mut cmd, lock_opts);
            (cmd, "uv lock".to_string())
        }
        LockKind::RequirementsTxt | LockKind::PyLock => {
            // One environment's lock: the base's Python on the base's platform.
            let (format, tool) = if kind == LockKind::PyLock {
                (
                    ["--format", "pylock.toml"],
                    "uv pip compile --format pylock.toml",
                )
            } else {
                (["--generate-hashes", "--quiet"], "uv pip compile")
            };
            let mut cmd = Command::new(uv);
            cmd.args(["pip", "compile", "--quiet"])
                .args(format)
                .args(["--python-version", python, "--python-platform"])
                .arg(uv_platform(target))
                .arg(project.dir.join("pyproject.toml"))
                .arg("-o")
                .arg(lock);
            uv_upgrades(&mut cmd, lock_opts);
            (cmd, tool.to_string())
        }
        LockKind::PoetryLock => {
            let poetry = lock_tool::POETRY.find_or_install(uv, tools)?;
            let mut cmd = poetry.command();
            // poetry keeps what is locked unless told to regenerate; `update --lock NAME` moves
            // only the named packages and installs nothing.
            let tool = if upgrade_only {
                cmd.args(["update", "--lock", "--no-interaction", "--quiet", "--"])
                    .args(&lock_opts.upgrade_packages);
                "poetry update --lock"
            } else if lock_opts.upgrade {
                cmd.args(["lock", "--regenerate", "--no-interaction", "--quiet"]);
                "poetry lock --regenerate"
            } else {
                cmd.args(["lock", "--no-interaction", "--quiet"]);
                "poetry lock"
            };
            // poetry's caches go to lockship's unless the user chose a place.
            if std::env::var_os("POETRY_CACHE_DIR").is_none() {
                cmd.env("POETRY_CACHE_DIR", tools.join("poetry-cache"));
            }
            // poetry makes a virtual environment for `lock` too: in lockship's cache, never in
            // the project (a project's poetry.toml may ask for `in-project`; the variables win).
            cmd.env("POETRY_VIRTUALENVS_IN_PROJECT", "false")
                .env("POETRY_VIRTUALENVS_PATH", tools.join("poetry-venvs"));
            (cmd, format!("{tool} ({})", poetry.shown))
        }
        LockKind::PipfileLock => {
            let pipenv = lock_tool::PIPENV.find_or_install(uv, tools)?;
            let mut cmd = pipenv.command();
            // pipenv resolves afresh on `lock`; `upgrade --lock-only NAME` moves only the named
            // packages and leaves the Pipfile as it is.
            let tool = if upgrade_only {
                cmd.args(["upgrade", "--lock-only", "--python", python])
                    .args(&lock_opts.upgrade_packages);
                "pipenv upgrade --lock-only"
            } else {
                cmd.args(["lock", "--python", python]);
                "pipenv lock"
            };
            // pipenv resolves inside a virtual environment: lockship's, in its cache, never a
            // `.venv` written into the project or the user's active one.
            cmd.env("PIPENV_PIPFILE", lock_dir.join("Pipfile"))
                .env("PIPENV_NOSPIN", "1")
                .env("PIPENV_YES", "1")
                .env("PIPENV_IGNORE_VIRTUALENVS", "1")
                // Set, not removed: unset, a Pipfile's `[pipenv] venv_in_project` or an
                // existing `.venv` would decide, and PIPENV_YES would let pipenv replace it.
                .env("PIPENV_VENV_IN_PROJECT", "0")
                // No interpreter installed behind the user's back, no .env file read.
                .env("PIPENV_DONT_USE_PYENV", "1")
                .env("PIPENV_DONT_USE_ASDF", "1")
                .env("PIPENV_DONT_LOAD_ENV", "1")
                .env("WORKON_HOME", tools.join("pipenv-venvs"));
            if std::env::var_os("PIPENV_CACHE_DIR").is_none() {
                cmd.env("PIPENV_CACHE_DIR", tools.join("pipenv-cache"));
            }
            (cmd, format!("{tool} ({})", pipenv.shown))
        }
    };
    cmd.current_dir(match kind {
        LockKind::PoetryLock | LockKind::PipfileLock => &lock_dir,
        _ => &project.dir,
    });
    Ok((cmd, tool))
}

/// uv's upgrade flags.
fn uv_upgrades(cmd: &mut Command, lock_opts: &LockOptions) {
    if lock_opts.upgrade {
        cmd.arg("--upgrade");
    }
    for package in &lock_opts.upgrade_packages {
        cmd.args(["--upgrade-package", package]);
    }
}

/// Runs `lockship lock` for the project in `opts.project_dir`.
pub async fn run(
    opts: &BuildOptions,
    lock_opts: &LockOptions,
    reporter: &dyn Reporter,
) -> Result<LockReport, Error> {
    let project = Project::load(&opts.project_dir)?;
    let configured = project.config.lock.clone();
    let existing = match LockFile::find(&project.dir, configured.as_deref()) {
        Ok(lock) => Some(lock),
        Err(lockship_python::lock::LockError::Missing { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let path = existing
        .as_ref()
        .map(|l| l.path.clone())
        .unwrap_or_else(|| {
            project
                .dir
                .join(new_lock_name(&project, configured.as_deref()))
        });
    let kind = existing
        .as_ref()
        .map(|l| l.kind)
        .or_else(|| kind_of(&path))
        .unwrap_or(LockKind::UvLock);
    let _lock = builder::lock_cache(&opts.cache_dir)?;
    let store = builder::open_cache(&opts.cache_dir)?;
    let http = Http::new(&opts.net)?.observed(reporter.transfers());
    let target = builder::open_base(&project, &path, opts, &http, &store, reporter).await?;
    let env = target.marker_env();
    let python = format!("{}.{}", target.version.0, target.version.1);
    let vars = |name: &str| opts.url_vars.get(name).cloned();
    let versions = |lock: &LockFile| -> BTreeMap<String, String> {
        lock.packages(&env, Some(&project.name), &Selection::default(), &vars)
            .map(|pkgs| pkgs.into_iter().map(|p| (p.name, p.version)).collect())
            .unwrap_or_default()
    };

    if lock_opts.check {
        let lock = existing.ok_or_else(|| RelockError::Stale {
            path: path.clone(),
            message: "there is no lock".into(),
        })?;
        freshness::locked_and_fresh(&lock, &project.dependencies, &project.name, &env, &vars)
            .map_err(|e| match e {
                lockship_python::lock::LockError::Stale { path, problems } => {
                    Error::from(RelockError::Stale {
                        path,
                        message: problems,
                    })
                }
                other => other.into(),
            })?;
        if kind == LockKind::UvLock {
            let uv = uv::find_or_install(&opts.uv, &Bucket::Tools.under(&opts.cache_dir))
                .map_err(RelockError::from)?;
            let out = Children::default()
                .output(
                    Command::new(&uv)
                        .args([
                            "lock",
                            "--check",
                            "--quiet",
                            "--python",
                            &python,
                            "--project",
                        ])
                        .arg(&project.dir),
                )
                .map_err(tool_failed)?;
            if !out.status.success() {
                return Err(RelockError::Stale {
                    path,
                    message: uv_check_reason(&out.stderr),
                }
                .into());
            }
        }
        return Ok(LockReport {
            lock: path,
            tool: "check".into(),
            python,
            changes: Vec::new(),
        });
    }

    if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(RelockError::Symlink { path }.into());
    }
    let before = existing.as_ref().map(versions).unwrap_or_default();
    let tools = Bucket::Tools.under(&opts.cache_dir);
    let uv = uv::find_or_install(&opts.uv, &tools).map_err(RelockError::from)?;
    let (mut cmd, tool) = relock_command(
        kind,
        &uv,
        &tools,
        &RelockInputs {
            project: &project,
            lock: &path,
            python: &python,
            target: &target,
            lock_opts,
        },
    )?;
    reporter.step(&format!(
        "{tool} for Python {python} ({})",
        target.describe()
    ));
    // The tool runs as a child that lockship stops with itself.
    let out = Children::default()
        .output(&mut cmd)
        .map_err(|e| RelockError::Resolve {
            tool: tool.clone(),
            project: project.dir.clone(),
            message: format!("cannot start it: {e}"),
        })?;
    if !out.status.success() {
        // A tool may print an index URL with its credentials: never shown as it is.
        let message = lockship_net::url::redact_text(String::from_utf8_lossy(&out.stderr).trim());
        return Err(RelockError::Resolve {
            tool,
            project: project.dir.clone(),
            message,
        }
        .into());
    }
    let after = versions(&LockFile::find(&project.dir, Some(&path))?);
    let mut changes = Vec::new();
    for (name, new) in &after {
        match before.get(name) {
            Some(old) if old == new => {}
            old => changes.push(Change {
                package: name.clone(),
                old: old.cloned(),
                new: Some(new.clone()),
            }),
        }
    }
    for (name, old) in &before {
        if !after.contains_key(name) {
            changes.push(Change {
                package: name.clone(),
                old: Some(old.clone()),
                new: None,
            });
        }
    }
    changes.sort_by(|a, b| a.package.cmp(&b.package));
    Ok(LockReport {
        lock: path,
        tool,
        python,
        changes,
    })
}

/// The change table as text: `package  old → new`, `+ added`, `- removed`.
pub fn render(report: &LockReport) -> String {
    if report.changes.is_empty() {
        return format!("{}: no changes\n", report.lock.display());
    }
    let width = report
        .changes
        .iter()
        .map(|c| c.package.len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for c in &report.changes {
        let line = match (&c.old, &c.new) {
            (Some(old), Some(new)) => format!("  {:width$}  {old} → {new}", c.package),
            (None, Some(new)) => format!("+ {:width$}  {new}", c.package),
            (Some(old), None) => format!("- {:width$}  {old}", c.package),
            (None, None) => continue,
        };
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uv_check_reason_prefers_the_cause() {
        let stderr = b"Using CPython 3.11.7\nResolving despite existing lockfile due to removal of global exclude newer\nResolved 18 packages in 268ms\nerror: The lockfile at `uv.lock` needs to be updated, but `--check` was provided.\n\nhint: To update the lockfile, run `uv lock`.\n";
        assert_eq!(
            uv_check_reason(stderr),
            "uv lock --check: removal of global exclude newer"
        );
        assert_eq!(
            uv_check_reason(b"error: The lockfile needs to be updated\n\nhint: x\n"),
            "uv lock --check: The lockfile needs to be updated"
        );
    }
}
