//! Command-line arguments (clap), kept apart from what they do.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use lockship_engine::smoke::Runtime;

#[derive(Parser, Debug)]
#[command(
    name = "lockship",
    version,
    about = "Build slim, reproducible container images for Python projects from their lock file, with no Docker daemon"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Build the project's image and write it to a registry, an OCI layout or a docker tarball.
    Build(BuildArgs),
    /// Build the image and run the smoke commands (`smoke` in [tool.lockship]) inside it.
    Test(TestArgs),
    /// Re-resolve the lock with its own tool (uv, poetry, pipenv) for the base's Python.
    Lock(LockArgs),
    /// Show what an image holds: each layer's size and packages, the config, the base, the lock
    /// digest and the target (REF, oci:DIR[:TAG] or docker:FILE).
    Inspect(InspectArgs),
    /// Show what changed from image A to image B: packages, layers, size and config.
    Diff(DiffArgs),
    /// Write a CycloneDX or SPDX SBOM of an image (Python and OS packages), or attach it to
    /// the image in its registry.
    Sbom(SbomArgs),
    /// Push an image already built (oci:DIR, docker:FILE or a REF) to more references without
    /// rebuilding it, after the project's smoke commands pass on it.
    Push(PushArgs),
    /// Write a [tool.lockship] table for a project from its lock, console scripts and
    /// Dockerfile, and list what it could not carry over.
    Init(InitArgs),
    /// See what the local cache holds, or prune it.
    #[command(subcommand)]
    Cache(CacheCommand),
}

/// What every command that reads images takes.
#[derive(clap::Args, Debug)]
pub struct ReadArgs {
    /// The platform to read from a multi-platform image (default: this machine's, else the
    /// first).
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<String>,
    /// Cache directory (default: $LOCKSHIP_CACHE_DIR, else ~/.cache/lockship).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Print each step on stderr even when it is not a terminal.
    #[arg(long, short)]
    pub verbose: bool,
    #[command(flatten)]
    pub net: NetArgs,
}

/// Options of `lockship inspect`.
#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// The image: a registry reference, oci:DIR[:TAG|@DIGEST] or docker:FILE.
    pub image: String,
    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Also write a self-contained HTML page: a treemap of the image by layer and package and
    /// its biggest files.
    #[arg(long, value_name = "FILE.html")]
    pub report: Option<PathBuf>,
    #[command(flatten)]
    pub read: ReadArgs,
}

/// Options of `lockship init`.
#[derive(clap::Args, Debug)]
pub struct InitArgs {
    /// The project directory (with pyproject.toml).
    #[arg(default_value = ".")]
    pub project: PathBuf,
    /// The Dockerfile to read (default: Dockerfile, else Containerfile, in the project).
    #[arg(long, value_name = "FILE")]
    pub dockerfile: Option<PathBuf>,
    /// Print the table on stdout instead of adding it to pyproject.toml.
    #[arg(long)]
    pub print: bool,
    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// Options of `lockship sbom`.
#[derive(clap::Args, Debug)]
pub struct SbomArgs {
    /// The image: a registry reference, oci:DIR[:TAG|@DIGEST] or docker:FILE.
    pub image: String,
    /// The standard: CycloneDX 1.6 or SPDX 2.3, as JSON.
    #[arg(long, value_enum, default_value_t = SbomStandard::Cyclonedx)]
    pub format: SbomStandard,
    /// Write the document to this file instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Also push it to the image's registry as an OCI referrer of the image.
    #[arg(long)]
    pub attach: bool,
    #[command(flatten)]
    pub read: ReadArgs,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SbomStandard {
    Cyclonedx,
    Spdx,
}

/// Options of `lockship diff`.
#[derive(clap::Args, Debug)]
pub struct DiffArgs {
    /// The image before (a registry reference, oci:DIR[:TAG] or docker:FILE).
    pub from: String,
    /// The image after.
    pub to: String,
    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    #[command(flatten)]
    pub read: ReadArgs,
}

/// Options of `lockship push`.
#[derive(clap::Args, Debug)]
pub struct PushArgs {
    /// The image as built: oci:DIR[:TAG|@DIGEST], docker:FILE or a registry reference.
    pub source: String,
    /// Where to push it (one or more references, e.g. registry.example.com/app:staging).
    #[arg(required = true, value_name = "REF")]
    pub targets: Vec<String>,
    /// The project whose smoke commands gate the push (default: the current directory, when
    /// it is a project).
    #[arg(long, value_name = "DIR")]
    pub project: Option<PathBuf>,
    /// The target whose smoke commands run (default: the one the image was built for).
    #[arg(long, value_name = "NAME")]
    pub target: Option<String>,
    /// Push without running the smoke tests first.
    #[arg(long)]
    pub no_test: bool,
    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    #[command(flatten)]
    pub smoke: SmokeArgs,
    #[command(flatten)]
    pub read: ReadArgs,
}

/// `lockship cache …`.
#[derive(Subcommand, Debug)]
pub enum CacheCommand {
    /// The cache's size by kind of entry (blobs, layers, app wheels…).
    Info(CacheArgs),
    /// Remove app wheels a newer build replaced and records whose blob is gone; with
    /// --older-than or --max-size, also what builds used least recently. Waits for running
    /// builds.
    Prune(PruneArgs),
}

/// Where the cache is and how to report.
#[derive(clap::Args, Debug)]
pub struct CacheArgs {
    /// Cache directory (default: $LOCKSHIP_CACHE_DIR, else ~/.cache/lockship).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// Options of `lockship cache prune`.
#[derive(clap::Args, Debug)]
pub struct PruneArgs {
    #[command(flatten)]
    pub cache: CacheArgs,
    /// Remove the least recently used entries until the cache is at most this big (500M, 2G).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_size: Option<u64>,
    /// Remove what no build used in this many days.
    #[arg(long, value_name = "DAYS")]
    pub older_than: Option<u32>,
}

fn parse_size(text: &str) -> Result<u64, String> {
    lockship_engine::cache_command::parse_size(text)
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// What every command takes: the project, its base, the cache, and how to report.
#[derive(clap::Args, Debug)]
pub struct ProjectArgs {
    /// The project directory (with pyproject.toml or lockship.toml).
    #[arg(default_value = ".")]
    pub project: PathBuf,
    /// Base image, overriding `base` in [tool.lockship] (it decides the Python version).
    #[arg(long, value_name = "REF")]
    pub base: Option<String>,
    /// Platforms to build, e.g. linux/arm64 or linux/amd64,linux/arm64 (one image each under
    /// one index; default: `platforms` in [tool.lockship], else this machine's).
    #[arg(long, value_name = "OS/ARCH[,…]")]
    pub platform: Option<String>,
    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Cache directory (default: $LOCKSHIP_CACHE_DIR, else ~/.cache/lockship).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Print each step on stderr even when it is not a terminal.
    #[arg(long, short)]
    pub verbose: bool,
    #[command(flatten)]
    pub net: NetArgs,
}

/// How patient to be with registries, package indexes and mirrors.
#[derive(clap::Args, Debug)]
pub struct NetArgs {
    /// Seconds a request may go without a byte moving before it fails as stalled.
    #[arg(
        long,
        value_name = "SECONDS",
        env = "LOCKSHIP_HTTP_TIMEOUT",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    pub http_timeout: u64,
    /// How many times to retry a request that failed for a transient reason (5xx, 429, a
    /// dropped connection, a stall), with backoff.
    #[arg(
        long,
        value_name = "N",
        env = "LOCKSHIP_HTTP_RETRIES",
        default_value_t = 4,
        value_parser = clap::value_parser!(u32).range(0..=20)
    )]
    pub http_retries: u32,
}

/// How smoke commands run.
#[derive(clap::Args, Debug)]
pub struct SmokeArgs {
    /// Container runtime for smoke tests: docker or podman (default: whichever answers).
    #[arg(long, value_name = "NAME", value_parser = parse_runtime)]
    pub runtime: Option<Runtime>,
    /// Give smoke commands a network (they run with none by default).
    #[arg(long)]
    pub network: bool,
}

/// Options of `lockship build`.
#[derive(clap::Args, Debug)]
pub struct BuildArgs {
    #[command(flatten)]
    pub common: ProjectArgs,
    /// Push the image to this reference (e.g. registry.example.com/team/app:1.2).
    #[arg(long, value_name = "REF")]
    pub push: Vec<String>,
    /// Also write the image here: oci:DIR (OCI layout), docker:FILE (docker load tarball),
    /// registry:REF.
    #[arg(long, short, value_name = "SPEC")]
    pub output: Vec<String>,
    /// The target to build: `production` (default) or a [tool.lockship.targets.NAME].
    #[arg(long, default_value = "production", value_name = "NAME")]
    pub target: String,
    /// Name of the image in docker and OCI outputs (default: PROJECT:VERSION).
    #[arg(long, value_name = "NAME:TAG")]
    pub tag: Option<String>,
    /// Print the plan (target, wheels, layers) and stop: no wheel fetched, no layer or image
    /// written. Only the base is pulled and inspected (and, with bytecode on, its interpreter
    /// unpacked in that pass), as a build would, since the plan depends on it.
    #[arg(long)]
    pub dry_run: bool,
    /// Re-resolve the Debian-package base (`[tool.lockship.base] debian = …`) against the
    /// suite's current index and rewrite lockship-base.lock, showing what changed.
    #[arg(long)]
    pub upgrade_base: bool,
    /// Reuse the layers of this image whose inputs match (repeatable): no wheel downloaded,
    /// no layer written or uploaded for them. The push targets are always read this way.
    /// Trusted as the base image is: name only images your builds pushed.
    #[arg(long, value_name = "REF")]
    pub cache_from: Vec<String>,
    /// Push the image's layers and the record of how they were made to this reference, for
    /// later builds' --cache-from, without making it a push target (repeatable).
    #[arg(long, value_name = "REF")]
    pub cache_to: Vec<String>,
    /// Push without running the smoke tests first.
    #[arg(long)]
    pub no_test: bool,
    /// Put no .pyc files in the image, whatever `bytecode` in [tool.lockship] says.
    #[arg(long)]
    pub no_bytecode: bool,
    /// Also write a self-contained HTML page: a treemap of the image by layer and package, its
    /// biggest files, and the build's phases on a timeline.
    #[arg(long, value_name = "FILE.html")]
    pub report: Option<PathBuf>,
    #[command(flatten)]
    pub smoke: SmokeArgs,
}

/// Options of `lockship test`.
#[derive(clap::Args, Debug)]
pub struct TestArgs {
    #[command(flatten)]
    pub common: ProjectArgs,
    /// The target to build: `production` (default) or a [tool.lockship.targets.NAME].
    #[arg(long, default_value = "production", value_name = "NAME")]
    pub target: String,
    /// Put no .pyc files in the image, whatever `bytecode` in [tool.lockship] says.
    #[arg(long)]
    pub no_bytecode: bool,
    #[command(flatten)]
    pub smoke: SmokeArgs,
}

/// Options of `lockship lock`.
#[derive(clap::Args, Debug)]
pub struct LockArgs {
    #[command(flatten)]
    pub common: ProjectArgs,
    /// Upgrade every package to the newest allowed version.
    #[arg(long)]
    pub upgrade: bool,
    /// Upgrade this package (repeatable), keeping the others.
    #[arg(long, value_name = "NAME")]
    pub upgrade_package: Vec<String>,
    /// Change nothing; exit non-zero, naming what differs, when the lock is stale (for CI).
    #[arg(long, conflicts_with_all = ["upgrade", "upgrade_package"])]
    pub check: bool,
}

/// `--runtime`, checked when the arguments are parsed (even with `--no-test`), not after the
/// layers are built.
fn parse_runtime(name: &str) -> Result<Runtime, String> {
    Runtime::from_name(name).map_err(|e| e.to_string())
}

#[cfg(test)]
mod docs_commands {
    use super::*;

    /// Every `lockship …` command line in the docs' code blocks (continuations joined,
    /// comments, redirections and pipes cut off).
    fn commands_in(text: &str) -> Vec<String> {
        let mut found = Vec::new();
        let mut in_code = false;
        let mut lines = text.lines().peekable();
        while let Some(line) = lines.next() {
            if line.trim_start().starts_with("```") {
                in_code = !in_code;
                continue;
            }
            if !in_code {
                continue;
            }
            let Some(at) = line.find("lockship ") else {
                continue;
            };
            let before = line[..at].trim();
            if !(before.is_empty()
                || before.ends_with("run:")
                || before == "-"
                || before.ends_with("&&"))
            {
                continue;
            }
            let mut command = line[at..].to_string();
            while command.trim_end().ends_with('\\') {
                command = command.trim_end().trim_end_matches('\\').to_string();
                command.push(' ');
                command.push_str(lines.next().unwrap_or("").trim());
            }
            for cut in [" #", " >>", " > ", " | ", " && "] {
                if let Some(i) = command.find(cut) {
                    command.truncate(i);
                }
            }
            found.push(command.trim().to_string());
        }
        found
    }

    #[test]
    fn every_command_in_the_docs_parses() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut checked = 0;
        for page in [
            "README.md",
            "docs/recipes.md",
            "docs/migration.md",
            "docs/troubleshooting.md",
            "docs/how-it-works.md",
        ] {
            let text = std::fs::read_to_string(root.join(page)).unwrap();
            for command in commands_in(&text) {
                let words = shell_words::split(&command)
                    .unwrap_or_else(|e| panic!("{page}: `{command}`: {e}"));
                if let Err(e) = Cli::try_parse_from(&words) {
                    panic!("{page}: `{command}` does not parse:\n{e}");
                }
                checked += 1;
            }
        }
        assert!(checked >= 20, "only {checked} commands found in the docs");
    }
}
