//! One sdist built into a wheel inside a builder container: `pip wheel --no-deps` on the sdist,
//! mounted read-only, with the project's index (credentials in an env file only this build
//! reads, never on a command line), the host's CA bundle, `SOURCE_DATE_EPOCH`, the host's
//! network (the index is reached the way lockship reaches it), and the calling user's ids, so
//! the wheel it writes belongs to lockship. The container is removed when the build ends,
//! and on a stop.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::smoke::Runtime;
use lockship_sys::interrupt::{self, Children};

/// Lines of the build's output shown when it fails.
const LOG_TAIL: usize = 25;

/// The exit codes `docker run` and `podman run` give for their own failures, as distinct from
/// the command's: the run itself failed (no such image, a pull refused, the container not
/// created), the command cannot be executed, the command was not found. pip's exit codes
/// never reach these.
const RUNTIME_FAILED: i32 = 125;
const CANNOT_EXECUTE: i32 = 126;
const NOT_FOUND: i32 = 127;

/// Run by the builder's Python: unpacks the sdist (argv[1]) at a fixed path and builds it there
/// with `pip wheel`, so the paths compilers record (debug info, `__FILE__`) are the same in
/// every build rather than pip's random temporary directory. Unpacking happens in the container,
/// which is the sandbox for whatever the archive holds.
const BUILD: &str = r#"
import os, subprocess, sys, tarfile, zipfile
sdist, src = sys.argv[1], "/tmp/lockship-src"
if sdist.endswith(".zip"):
    zipfile.ZipFile(sdist).extractall(src)
else:
    with tarfile.open(sdist) as archive:
        archive.extractall(src)
tops = os.listdir(src)
tree = os.path.join(src, tops[0]) if len(tops) == 1 else src
sys.exit(subprocess.call([sys.executable, "-m", "pip", "wheel", "--no-deps", "--progress-bar", "off", "-w", "/lockship/out", tree]))
"#;

#[derive(Debug, thiserror::Error)]
pub enum BuilderError {
    #[error("{package} {version} has no wheel for {target}, and building its sdist needs a builder image: [tool.lockship.builder] image is not set in {config}")]
    NoImage {
        package: String,
        version: String,
        target: String,
        config: PathBuf,
    },
    #[error("building sdists needs a container runtime, and neither docker nor podman answers ({tried})")]
    NoRuntime { tried: String },
    #[error("building sdists needs {runtime} (--runtime), which does not answer: {message}")]
    RuntimeDown {
        runtime: &'static str,
        message: String,
    },
    /// The runtime's own `run` failed (exit 125 in Docker and Podman alike): the image could
    /// not be pulled or the container not created, before anything ran in it.
    #[error("{runtime} cannot start the builder image {image}: {message}")]
    CannotStart {
        runtime: &'static str,
        image: String,
        message: String,
    },
    /// The container started, but its entrypoint, the target's Python, could not be run
    /// (exit 126 or 127, as Docker and Podman report it).
    #[error("the builder image {image} cannot run {python} (exit {code}): {message}")]
    NoPython {
        image: String,
        python: String,
        code: i32,
        message: String,
    },
    #[error("building {package} {version} for {platform} needs a builder for {platform}, which cannot run on this {host} machine without emulation (binfmt has no {machine} interpreter registered)")]
    NoEmulation {
        package: String,
        version: String,
        platform: String,
        host: String,
        machine: String,
    },
    /// The builder's packages (the base's, compilers, `[tool.lockship.builder] packages`) do
    /// not resolve; the base's own did, so the builder's list is the one to check.
    #[error("cannot assemble the builder from Debian packages: {0}")]
    Packages(#[source] lockship_debian::resolve::ResolveError),
    #[error("cannot prepare the build of {package} {version}: {message}")]
    Setup {
        package: String,
        version: String,
        message: String,
    },
    #[error("building {package} {version} from {sdist} in {image} failed (exit {code}):\n{log}")]
    Failed {
        package: String,
        version: String,
        sdist: String,
        image: String,
        code: i32,
        /// The last lines of pip's output.
        log: String,
    },
    #[error(
        "building {package} {version} in {image} gave {found} instead of one wheel of {package}"
    )]
    NoWheel {
        package: String,
        version: String,
        image: String,
        found: String,
    },
}

impl BuilderError {
    pub fn hint(&self) -> Option<String> {
        match self {
            BuilderError::NoImage { .. } => Some(
                "name an image with compilers and the base's Python, e.g. [tool.lockship.builder] image = \"python:3.12\" beside base = \"python:3.12-slim\"; or pin a version of the package that ships wheels".into(),
            ),
            BuilderError::NoRuntime { .. } => Some(
                "install Docker or Podman (only the builds of sdists need one), or pin versions that ship wheels for the target".into(),
            ),
            BuilderError::RuntimeDown { runtime, .. } => Some(format!(
                "start {runtime} (or check that this user may use it), or choose the other runtime with --runtime"
            )),
            BuilderError::CannotStart { runtime, image, .. } => Some(format!(
                "check the image's name and tag ([tool.lockship.builder] image), that `{runtime} pull {image}` works (log in if its registry needs it), and that {runtime} can run containers"
            )),
            BuilderError::Packages(_) => Some(
                "check `packages` in [tool.lockship.builder] against the suite (Debian package names, e.g. libpq-dev)".into(),
            ),
            BuilderError::NoPython { python, .. } => Some(format!(
                "the builder needs the base's Python as {python} on its PATH: use the full image of the base's Python version (python:3.12 beside python:3.12-slim)"
            )),
            BuilderError::NoEmulation { .. } => Some(
                "register QEMU with binfmt (Debian: apt-get install qemu-user-static binfmt-support), build on a machine of that architecture, or pin a version that ships a wheel for it (an sdist that builds to a pure-Python wheel for this machine's platform is reused for the others)".into(),
            ),
            BuilderError::Failed { .. } => Some(
                "the builder lacks what the build needs: add the -dev packages it names to [tool.lockship.builder] packages (Debian base) or use a fuller builder image".into(),
            ),
            _ => None,
        }
    }
}

/// One build to run.
pub struct ContainerBuild<'a> {
    pub runtime: Runtime,
    /// The builder image, as the runtime knows it.
    pub image: &'a str,
    /// `linux/arm64` when the builder is for another architecture than the host's.
    pub platform: Option<&'a str>,
    /// `python3.11`: the target's Python in the builder.
    pub python: String,
    pub package: &'a str,
    pub version: &'a str,
    /// The sdist on the host and its file name.
    pub sdist: &'a Path,
    pub sdist_name: &'a str,
    /// The index for build requirements, with its credentials (None: pip's default).
    pub index_url: Option<String>,
    pub ca_bundle: Option<&'a Path>,
    pub source_date_epoch: u64,
}

impl ContainerBuild<'_> {
    /// Runs the build in `work` (an empty private directory) and returns the wheel's path.
    pub fn run(&self, work: &Path, children: &Children) -> Result<PathBuf, BuilderError> {
        let setup = |e: &dyn std::fmt::Display| BuilderError::Setup {
            package: self.package.to_string(),
            version: self.version.to_string(),
            message: e.to_string(),
        };
        let (input, output) = (work.join("in"), work.join("out"));
        for dir in [&input, &output] {
            std::fs::create_dir_all(dir).map_err(|e| setup(&e))?;
        }
        // The name comes from a lock or an index: checked there, and again here, where it
        // becomes a path.
        if !lockship_python::lock::is_plain_file_name(self.sdist_name) {
            return Err(setup(&format!(
                "the sdist's name {:?} is not a plain file name",
                self.sdist_name
            )));
        }
        std::fs::copy(self.sdist, input.join(self.sdist_name)).map_err(|e| setup(&e))?;
        let env_file = work.join("env");
        let mut env = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&env_file)
            .map_err(|e| setup(&e))?;
        let mut lines = vec![
            format!("SOURCE_DATE_EPOCH={}", self.source_date_epoch),
            "HOME=/tmp".to_string(),
            "PIP_BREAK_SYSTEM_PACKAGES=1".to_string(),
            "PIP_DISABLE_PIP_VERSION_CHECK=1".to_string(),
            "PIP_NO_CACHE_DIR=1".to_string(),
            "PYTHONDONTWRITEBYTECODE=1".to_string(),
        ];
        if let Some(url) = &self.index_url {
            lines.push(format!("PIP_INDEX_URL={url}"));
        }
        if self.ca_bundle.is_some() {
            lines.push("PIP_CERT=/lockship/ca.crt".to_string());
            lines.push("SSL_CERT_FILE=/lockship/ca.crt".to_string());
        }
        env.write_all((lines.join("\n") + "\n").as_bytes())
            .map_err(|e| setup(&e))?;
        drop(env);
        let meta = std::fs::metadata(work).map_err(|e| setup(&e))?;
        let name = format!(
            "lockship-build-{}-{}",
            std::process::id(),
            work.file_name()
                .map(|n| n
                    .to_string_lossy()
                    .replace(|c: char| !c.is_ascii_alphanumeric(), ""))
                .unwrap_or_default()
        );
        let program = self.runtime.program();
        let mut cmd = Command::new(program);
        cmd.args(["run", "--rm", "--name", &name, "--network", "host"])
            .arg("--user")
            .arg(format!("{}:{}", meta.uid(), meta.gid()))
            .arg("--env-file")
            .arg(&env_file)
            .arg("-v")
            .arg(format!("{}:/lockship/in:ro", input.display()))
            .arg("-v")
            .arg(format!("{}:/lockship/out", output.display()));
        if let Some(ca) = self.ca_bundle {
            cmd.arg("-v")
                .arg(format!("{}:/lockship/ca.crt:ro", ca.display()));
        }
        if let Some(platform) = self.platform {
            cmd.args(["--platform", platform]);
        }
        cmd.arg("--entrypoint")
            .arg(&self.python)
            .arg(self.image)
            .args(["-c", BUILD])
            .arg(format!("/lockship/in/{}", self.sdist_name));
        let _remove = interrupt::run_on_stop(vec![
            program.to_string(),
            "rm".into(),
            "-f".into(),
            name.clone(),
        ]);
        let out = children.output(&mut cmd).map_err(|e| setup(&e))?;
        if !out.status.success() {
            let mut log = String::from_utf8_lossy(&out.stdout).into_owned();
            log.push_str(&String::from_utf8_lossy(&out.stderr));
            let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
            let code = out.status.code().unwrap_or(-1);
            // The runtime's own failures (pull, create, exec) are not the build's: the
            // "-dev packages" advice would send the user the wrong way.
            if let Some(e) = self.runtime_failure(code, &String::from_utf8_lossy(&out.stderr)) {
                return Err(e);
            }
            let tail = lines[lines.len().saturating_sub(LOG_TAIL)..]
                .iter()
                .map(|l| format!("  {l}"))
                .collect::<Vec<_>>()
                .join("\n");
            return Err(BuilderError::Failed {
                package: self.package.to_string(),
                version: self.version.to_string(),
                sdist: self.sdist_name.to_string(),
                image: self.image.to_string(),
                code,
                log: lockship_net::url::redact_text(&tail),
            });
        }
        let wheels: Vec<PathBuf> = std::fs::read_dir(&output)
            .map_err(|e| setup(&e))?
            .flatten()
            .map(|e| e.path())
            .collect();
        // What the container left is read on the host: only a regular file counts. A symbolic
        // link would have the host read whatever it points at (a file outside the container).
        let regular =
            |path: &Path| std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file());
        match wheels.as_slice() {
            [one] if one.extension().is_some_and(|e| e == "whl") && regular(one) => Ok(one.clone()),
            _ => Err(BuilderError::NoWheel {
                package: self.package.to_string(),
                version: self.version.to_string(),
                image: self.image.to_string(),
                found: if wheels.is_empty() {
                    "nothing".to_string()
                } else {
                    wheels
                        .iter()
                        .filter_map(|w| {
                            let name = w.file_name()?.to_string_lossy().escape_debug().to_string();
                            Some(if regular(w) {
                                name
                            } else {
                                format!("{name} (not a regular file)")
                            })
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            }),
        }
    }
}

impl ContainerBuild<'_> {
    /// The error for a `run` that failed with `code` before the build ran (see
    /// [`RUNTIME_FAILED`]), with the runtime's message from `stderr`; None for the build's own
    /// failure.
    fn runtime_failure(&self, code: i32, stderr: &str) -> Option<BuilderError> {
        let message = || runtime_message(stderr);
        match code {
            RUNTIME_FAILED => Some(BuilderError::CannotStart {
                runtime: self.runtime.program(),
                image: self.image.to_string(),
                message: message(),
            }),
            CANNOT_EXECUTE | NOT_FOUND => Some(BuilderError::NoPython {
                image: self.image.to_string(),
                python: self.python.clone(),
                code,
                message: message(),
            }),
            _ => None,
        }
    }
}

/// A runtime's whole error output on one line (see [`crate::smoke::runtime_message`]).
fn runtime_message(stderr: &str) -> String {
    crate::smoke::runtime_message(stderr, usize::MAX).unwrap_or_else(|| "(no output)".into())
}

/// Whether the host can run `machine` (uname name: aarch64, x86_64) binaries: natively, or
/// through an emulator registered with binfmt.
pub fn can_run(machine: &str) -> bool {
    std::env::consts::ARCH == machine
        || Path::new("/proc/sys/fs/binfmt_misc")
            .join(format!("qemu-{machine}"))
            .exists()
}

/// Whether the runtime has `image` locally.
pub fn has_image(runtime: Runtime, image: &str) -> bool {
    Command::new(runtime.program())
        .args(["image", "inspect", image])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runtimes_own_failures_are_not_the_builds() {
        let build = ContainerBuild {
            runtime: Runtime::Podman,
            image: "registry.example/builder:1",
            platform: None,
            python: "python3.11".into(),
            package: "docopt",
            version: "0.6.2",
            sdist: Path::new("docopt-0.6.2.tar.gz"),
            sdist_name: "docopt-0.6.2.tar.gz",
            index_url: None,
            ca_bundle: None,
            source_date_epoch: 0,
        };
        let docker = "Unable to find image 'registry.example/builder:1' locally\ndocker: Error response from daemon: manifest unknown\nRun 'docker run --help' for more information\n";
        let Some(BuilderError::CannotStart {
            runtime, message, ..
        }) = build.runtime_failure(125, docker)
        else {
            panic!("125 is the runtime's failure")
        };
        assert_eq!(runtime, "podman");
        assert_eq!(
            message,
            "docker: Error response from daemon: manifest unknown"
        );
        assert!(matches!(
            build.runtime_failure(127, "exec: \"python3.11\": executable file not found"),
            Some(BuilderError::NoPython { code: 127, .. })
        ));
        assert!(matches!(
            build.runtime_failure(126, ""),
            Some(BuilderError::NoPython { .. })
        ));
        // pip's own exit codes are the build's failure.
        assert!(build
            .runtime_failure(1, "error: subprocess-exited-with-error")
            .is_none());
        assert_eq!(runtime_message("\n"), "(no output)");
        assert_eq!(
            runtime_message(
                "Trying to pull x...\nError: pull https://u:secret@registry.example/v2/ failed\n"
            ),
            "Error: pull https://u:****@registry.example/v2/ failed"
        );
    }
}
