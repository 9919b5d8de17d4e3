//! Smoke tests: commands run inside the built image with a real container runtime (Docker or
//! Podman), network off by default, before anything is published. A passed (image, commands)
//! pair is remembered in the cache, so an unchanged image is not tested twice.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cache_dir::Bucket;
use std::time::Instant;

use serde::Serialize;

use lockship_oci::digest::{Digest, Hasher};
use lockship_sys::interrupt::{self, Children};

/// A container runtime lockship can load images into and run them with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    Docker,
    Podman,
}

#[derive(Debug, thiserror::Error)]
pub enum SmokeError {
    #[error("no container runtime to run the smoke tests in (tried {tried})")]
    NoRuntime { tried: String },
    #[error("{runtime} (--runtime) does not answer: {message}")]
    RuntimeDown {
        runtime: &'static str,
        message: String,
    },
    #[error("unknown container runtime `{0}` (expected docker or podman)")]
    UnknownRuntime(String),
    #[error("{runtime} cannot load the image: {message}")]
    Load {
        runtime: &'static str,
        message: String,
    },
    #[error("smoke test `{command}` failed with exit code {code}")]
    Failed { command: String, code: i32 },
    #[error("no smoke commands in {config}")]
    NoCommands { config: PathBuf },
    #[error("cannot run the smoke commands in the {platform} image: this {host} machine has no emulator for it")]
    CannotRun {
        platform: String,
        host: &'static str,
    },
}

impl SmokeError {
    pub fn hint(&self) -> Option<String> {
        match self {
            SmokeError::NoRuntime { .. } => Some(
                "install and start Docker or Podman, or pass --no-test to push without the smoke tests".into(),
            ),
            SmokeError::RuntimeDown { runtime, .. } => Some(format!(
                "start {runtime} (or check that this user may use it), or choose the other runtime with --runtime"
            )),
            SmokeError::Failed { .. } => {
                Some("nothing was pushed; fix the image or the command, or pass --no-test to push anyway".into())
            }
            SmokeError::CannotRun { .. } => Some(
                "register QEMU with binfmt (Debian: apt-get install qemu-user-static binfmt-support), or test on a machine of that architecture".into(),
            ),
            SmokeError::NoCommands { .. } => {
                Some("add smoke = [\"python -c 'import yourapp'\"] to [tool.lockship]".into())
            }
            _ => None,
        }
    }
}

/// The runtime [`Runtime::detect`] chose.
#[derive(Clone, Debug)]
pub struct Detected {
    pub runtime: Runtime,
    /// Why Docker did not answer, when Podman stands in for it (for a warning).
    pub passed_over: Option<String>,
}

impl Detected {
    /// The warning for a Podman that stands in for Docker: which runtime and why.
    pub fn fallback_note(&self) -> Option<String> {
        self.passed_over
            .as_ref()
            .map(|why| format!("using podman: docker does not answer ({why})"))
    }
}

/// At most `max` lines of a runtime's error output, on one line, credentials redacted,
/// without the lines around the error that say nothing of it (Docker's "Unable to find image …
/// locally" and "Run 'docker run --help'…", Podman's "Trying to pull …"); None when nothing is
/// left.
pub(crate) fn runtime_message(stderr: &str, max: usize) -> Option<String> {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| {
            let noise = l.is_empty()
                || l.starts_with("Unable to find image")
                || l.starts_with("Trying to pull")
                || (l.starts_with("Run '") && l.ends_with("for more information"));
            !noise
        })
        .take(max)
        .collect();
    (!lines.is_empty()).then(|| lockship_net::url::redact_text(&lines.join(" ")))
}

/// What one smoke command did.
#[derive(Clone, Debug, Serialize)]
pub struct SmokeResult {
    pub command: String,
    pub exit_code: i32,
    pub seconds: f64,
    /// stdout and stderr of the command, interleaved as the runtime reports them.
    pub output: String,
}

impl Runtime {
    pub fn program(self) -> &'static str {
        match self {
            Runtime::Docker => "docker",
            Runtime::Podman => "podman",
        }
    }

    /// Whether the runtime answers (`RUNTIME info` succeeds); if not, why, in its own words
    /// (`Cannot connect to the Docker daemon at …`), or that it cannot be started at all.
    fn answers(self) -> Result<(), String> {
        let out = Command::new(self.program())
            .arg("info")
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| format!("cannot run `{}`: {e}", self.program()))?;
        if out.status.success() {
            return Ok(());
        }
        Err(runtime_message(&String::from_utf8_lossy(&out.stderr), 3)
            .unwrap_or_else(|| format!("`{} info` failed ({})", self.program(), out.status)))
    }

    /// `docker` or `podman`, as `--runtime` names them.
    pub fn from_name(name: &str) -> Result<Runtime, SmokeError> {
        match name {
            "docker" => Ok(Runtime::Docker),
            "podman" => Ok(Runtime::Podman),
            other => Err(SmokeError::UnknownRuntime(other.to_string())),
        }
    }

    /// `choice` if given (an error saying why when it does not answer), else the first of
    /// Docker and Podman that answers, with why Docker did not when it is Podman.
    pub fn detect(choice: Option<Runtime>) -> Result<Detected, SmokeError> {
        if let Some(runtime) = choice {
            return match runtime.answers() {
                Ok(()) => Ok(Detected {
                    runtime,
                    passed_over: None,
                }),
                Err(message) => Err(SmokeError::RuntimeDown {
                    runtime: runtime.program(),
                    message,
                }),
            };
        }
        let docker = match Runtime::Docker.answers() {
            Ok(()) => {
                return Ok(Detected {
                    runtime: Runtime::Docker,
                    passed_over: None,
                })
            }
            Err(why) => why,
        };
        match Runtime::Podman.answers() {
            Ok(()) => Ok(Detected {
                runtime: Runtime::Podman,
                passed_over: Some(docker),
            }),
            Err(podman) => Err(SmokeError::NoRuntime {
                tried: format!("docker: {docker}; podman: {podman}"),
            }),
        }
    }

    /// Loads a docker tarball (named `name`) into the runtime.
    pub fn load(self, tar: &Path) -> Result<(), SmokeError> {
        let out = Children::default()
            .output(
                Command::new(self.program())
                    .args(["load", "-q", "-i"])
                    .arg(tar),
            )
            .map_err(|e| SmokeError::Load {
                runtime: self.program(),
                message: e.to_string(),
            })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(SmokeError::Load {
                runtime: self.program(),
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            })
        }
    }

    /// Runs `argv` in `image` (entrypoint replaced by `argv[0]`); `network` false means none.
    /// The container is named `name`, so that a stopped lockship removes it too (killing the
    /// client does not stop a container).
    pub fn run(self, image: &str, name: &str, argv: &[String], network: bool) -> SmokeResult {
        let start = Instant::now();
        let mut cmd = Command::new(self.program());
        // Never fall back to pulling: the image was just loaded, and a missing one must fail here
        // rather than reach out to a public registry.
        cmd.args(["run", "--rm", "--pull", "never", "--name", name]);
        if !network {
            cmd.args(["--network", "none"]);
        }
        cmd.arg("--entrypoint")
            .arg(&argv[0])
            .arg(image)
            .args(&argv[1..]);
        let _remove = interrupt::run_on_stop(vec![
            self.program().to_string(),
            "rm".into(),
            "-f".into(),
            name.to_string(),
        ]);
        let (exit_code, output) = match Children::default().output(&mut cmd) {
            Ok(out) => {
                let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
                text.push_str(&String::from_utf8_lossy(&out.stderr));
                (out.status.code().unwrap_or(-1), text)
            }
            Err(e) => (-1, format!("cannot run {}: {e}", self.program())),
        };
        SmokeResult {
            command: shell_words::join(argv),
            exit_code,
            seconds: start.elapsed().as_secs_f64(),
            output,
        }
    }

    /// Removes the tag used for testing (the image stays if anything else uses it).
    pub fn untag(self, image: &str) {
        let _ = Command::new(self.program())
            .args(["rmi", image])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// Where a pass of (image digest, commands) is remembered.
pub fn pass_marker(cache_dir: &Path, image: &Digest, commands: &[Vec<String>]) -> PathBuf {
    let mut h = Hasher::default();
    h.update(image.as_str().as_bytes());
    for argv in commands {
        h.update(shell_words::join(argv).as_bytes());
        h.update(&[0]);
    }
    Bucket::SmokePassed.under(cache_dir).join(h.finish().hex())
}

/// How smoke commands run: which runtime (None: whichever answers) and whether with a network.
#[derive(Clone, Copy, Debug)]
pub struct SmokeRun {
    pub runtime: Option<Runtime>,
    pub network: bool,
}

impl SmokeRun {
    pub fn of(opts: &crate::builder::BuildOptions) -> SmokeRun {
        SmokeRun {
            runtime: opts.runtime,
            network: opts.network,
        }
    }
}
