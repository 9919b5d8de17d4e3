//! Finding poetry and pipenv, which relock the formats they own: the program on PATH when it
//! runs, else a pinned version that lockship installs once into its cache (into a virtual
//! environment made by uv, renamed into place so concurrent runs agree).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use lockship_sys::interrupt::Children;

/// A lock tool lockship can install for itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockTool {
    /// The program's name on PATH, and its package's name on the index.
    pub name: &'static str,
    /// The version installed when none is on PATH.
    pub version: &'static str,
}

/// poetry, for poetry.lock.
pub const POETRY: LockTool = LockTool {
    name: "poetry",
    version: "2.5.1",
};

/// pipenv, for Pipfile.lock.
pub const PIPENV: LockTool = LockTool {
    name: "pipenv",
    version: "2026.10.3",
};

#[derive(Debug, thiserror::Error)]
#[error("no {tool} on PATH, and installing {tool} {version} with uv failed: {message}")]
pub struct NoTool {
    pub tool: String,
    pub version: String,
    pub message: String,
}

/// How to start a lock tool: a program and the arguments before the tool's own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolCommand {
    pub program: PathBuf,
    pub prefix: Vec<OsString>,
    /// Where it came from, for the report: `poetry` (PATH) or `poetry 2.5.1 (installed)`.
    pub shown: String,
}

impl ToolCommand {
    /// A command that runs the tool.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.prefix);
        cmd
    }
}

impl LockTool {
    /// The tool on PATH if it answers `--version`, else the pinned one under `tools_dir`,
    /// installed there with `uv` the first time.
    pub fn find_or_install(&self, uv: &Path, tools_dir: &Path) -> Result<ToolCommand, NoTool> {
        let children = Children::default();
        if children
            .output(Command::new(self.name).arg("--version"))
            .is_ok_and(|o| o.status.success())
        {
            return Ok(ToolCommand {
                program: PathBuf::from(self.name),
                prefix: Vec::new(),
                shown: self.name.to_string(),
            });
        }
        let dir = tools_dir.join(format!("{}-{}", self.name, self.version));
        // A Python already on the machine: lockship downloads no interpreter behind the user's
        // back, and uv keeps nothing of the install outside lockship's cache.
        let env = crate::uv::cached_venv(
            uv.as_os_str(),
            &dir,
            &["--quiet", "--python-preference", "only-system"],
            &["--quiet", "--no-cache"],
            &[format!("{}=={}", self.name, self.version)],
            &children,
        )
        .map_err(|message| NoTool {
            tool: self.name.to_string(),
            version: self.version.to_string(),
            message,
        })?;
        // Run through its interpreter (`python -m poetry`): the scripts' shebangs name the
        // staging directory it was made in, its interpreter link does not.
        Ok(ToolCommand {
            program: env.join("bin").join("python"),
            prefix: vec!["-m".into(), self.name.into()],
            shown: format!("{} {} (installed by lockship)", self.name, self.version),
        })
    }
}
