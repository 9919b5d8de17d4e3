//! A Python project as lockship sees it: pyproject.toml's `[project]` facts and the
//! `[tool.lockship]` table (or a standalone lockship.toml) that says how to build its image.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use lockship_debian::base::DebianSpec;
use lockship_oci::platform::Platform;
use lockship_python::pyproject::string_list;

/// How the project's own code goes into the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppMode {
    /// Build the project with its PEP 517 backend and install the wheel like a dependency.
    Wheel,
    /// Copy the files matching `include` into the workdir.
    Copy,
}

/// A list of strings, also accepted as one whitespace-separated string.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged, expecting = "a command is a string or a list of strings")]
pub enum Command {
    List(Vec<String>),
    Line(String),
}

impl Command {
    /// The argv: a list as is, a line split with shell quoting rules (no shell runs it).
    pub fn to_vec(&self) -> Vec<String> {
        self.parse().unwrap_or_else(|_| {
            self.to_string()
                .split_whitespace()
                .map(String::from)
                .collect()
        })
    }

    fn parse(&self) -> Result<Vec<String>, String> {
        match self {
            Command::List(v) if v.is_empty() => Err("empty command".into()),
            Command::List(v) => Ok(v.clone()),
            Command::Line(s) => match shell_words::split(s) {
                Ok(v) if v.is_empty() => Err("empty command".into()),
                Ok(v) => Ok(v),
                Err(e) => Err(format!("{e} in `{s}`")),
            },
        }
    }
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Line(s) => f.write_str(s),
            Command::List(v) => f.write_str(&shell_words::join(v)),
        }
    }
}

/// The `[tool.lockship]` table. Unknown keys are errors, so typos do not pass silently.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub base: Option<toml::Value>,
    pub entrypoint: Option<Command>,
    pub cmd: Option<Command>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub app: Option<String>,
    pub include: Option<Vec<String>>,
    pub lock: Option<PathBuf>,
    /// Accept packages the lock pins without hashes, taking their files' sha256 from the index
    /// (listed in a warning). Off by default: every file is checked against the lock.
    #[serde(default, rename = "allow-unhashed")]
    pub allow_unhashed: bool,
    pub venv: Option<String>,
    pub source: Option<String>,
    /// Compile the packages' `.py` files into unchecked-hash `.pyc` files in their own layers
    /// (on unless set to false; `--no-bytecode` turns it off for one build).
    pub bytecode: Option<bool>,
    /// How lockship compresses the layers it writes: `gzip` (default), `gzip-single`, `zstd`.
    pub compression: Option<String>,
    /// Platforms to build (`["linux/amd64", "linux/arm64"]`): one image each, under one index.
    /// `--platform` overrides it; unset, the host's platform.
    #[serde(default)]
    pub platforms: Vec<String>,
    /// Commands run inside the built image before anything is pushed.
    #[serde(default)]
    pub smoke: Vec<Command>,
    /// Image variants (`dev`, `test`, …) that add to the production image.
    #[serde(default)]
    pub targets: BTreeMap<String, TargetConfig>,
    /// Where packages without a wheel for the target are built from their sdists.
    pub builder: Option<BuilderConfig>,
}

/// `[tool.lockship.builder]`: the container that builds sdists into wheels.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuilderConfig {
    /// For a registry base, the image with compilers and the same Python (`python:3.12` beside
    /// a `python:3.12-slim` base).
    pub image: Option<String>,
    /// For a Debian-package base, packages the builder gets beyond the base's, build-essential
    /// and pythonX.Y-dev (`libpq-dev`, …).
    #[serde(default)]
    pub packages: Vec<String>,
}

/// A `[tool.lockship.targets.NAME]` table: what a variant adds to the production image.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// Dependency groups (`[dependency-groups]`) to install too.
    #[serde(default)]
    pub groups: Vec<String>,
    /// The project's extras to install too.
    #[serde(default)]
    pub extras: Vec<String>,
    /// Project files (globs) copied into the workdir in a layer of their own, e.g. tests.
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub entrypoint: Option<Command>,
    pub cmd: Option<Command>,
    /// Smoke commands run after the production ones.
    #[serde(default)]
    pub smoke: Vec<Command>,
}

/// The default target: the image that ships.
pub const PRODUCTION: &str = "production";

/// A project directory with its parsed configuration.
#[derive(Clone, Debug)]
pub struct Project {
    pub dir: PathBuf,
    /// The file the configuration came from (pyproject.toml or lockship.toml).
    pub config_path: PathBuf,
    pub name: String,
    pub version: Option<String>,
    pub dependencies: Vec<String>,
    pub scripts: BTreeMap<String, String>,
    pub has_build_system: bool,
    pub pyproject: Option<toml::Value>,
    pub config: Config,
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error("{dir} is not a Python project (no pyproject.toml or lockship.toml)")]
    NotAProject { dir: PathBuf },
    #[error("{path}: [tool.lockship] {field} = {value:?}: {why}")]
    BadPath {
        path: PathBuf,
        field: String,
        value: String,
        why: String,
    },
    #[error("cannot read {path}: {message}")]
    Unreadable { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{path}: {key} = {value:?}: {why}")]
    BadMirror {
        path: PathBuf,
        /// `[tool.lockship.base] mirror`: the table and the key.
        key: String,
        value: String,
        why: String,
    },
    #[error("{path} has no target `{name}` (it has: {known})")]
    UnknownTarget {
        path: PathBuf,
        name: String,
        known: String,
    },
}

impl ProjectError {
    pub fn hint(&self) -> Option<String> {
        match self {
            ProjectError::NotAProject { .. } => {
                Some("pass the project directory, e.g. `lockship build path/to/project`".into())
            }
            ProjectError::UnknownTarget { .. } => Some(
                "declare it as [tool.lockship.targets.NAME], or pick a listed one with --target"
                    .into(),
            ),
            ProjectError::BadPath { .. } => Some(
                "paths in the image are absolute (venv = \"/opt/venv\"); paths in the project are relative to it and stay inside it".into(),
            ),
            ProjectError::BadMirror { .. } => Some(
                "a mirror is the http:// or https:// URL of a Debian archive's root, the directory that holds dists/ and pool/".into(),
            ),
            _ => None,
        }
    }
}

fn read_text(path: &Path) -> Result<String, ProjectError> {
    fs_err::read_to_string(path).map_err(|e| ProjectError::Unreadable {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

fn parse_toml(path: &Path, text: &str) -> Result<toml::Value, ProjectError> {
    toml::from_str(text).map_err(|e| ProjectError::Invalid {
        path: path.to_path_buf(),
        message: format!("invalid TOML: {}", e.message()),
    })
}

/// The config table of `text` (the file at `path`): `[tool.lockship]`, or in a standalone
/// lockship.toml also the bare top level. Its errors name the key (`[tool.lockship.builder]
/// imag: unknown field …`), and the Debian base table's are found here, not at first use.
fn read_config(path: &Path, text: &str) -> Result<Config, ProjectError> {
    let invalid = |message: String| ProjectError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let doc = crate::config_keys::Document::parse(text).map_err(&invalid)?;
    let standalone = path.file_name().is_some_and(|n| n == "lockship.toml");
    let nested: &[&str] = &["tool", "lockship"];
    let table = if !standalone || doc.get(nested).is_some() {
        nested
    } else {
        &[]
    };
    let config: Config = doc.read(table).map_err(&invalid)?.unwrap_or_default();
    if let Some(toml::Value::Table(_)) = &config.base {
        let at: Vec<&str> = table.iter().copied().chain(["base"]).collect();
        if let Some(base) = doc.read::<DebianBaseTable>(&at).map_err(&invalid)? {
            base.check_mirrors(path, &at.join("."))?;
        }
    }
    Ok(config)
}

impl Project {
    /// Reads the project in `dir`: lockship.toml wins over `[tool.lockship]` in pyproject.toml.
    pub fn load(dir: &Path) -> Result<Project, ProjectError> {
        let pyproject_path = dir.join("pyproject.toml");
        let standalone = dir.join("lockship.toml");
        if !pyproject_path.is_file() && !standalone.is_file() {
            return Err(ProjectError::NotAProject {
                dir: dir.to_path_buf(),
            });
        }
        let pyproject_text = if pyproject_path.is_file() {
            Some(read_text(&pyproject_path)?)
        } else {
            None
        };
        let pyproject = match &pyproject_text {
            Some(text) => Some(parse_toml(&pyproject_path, text)?),
            None => None,
        };
        let (config_path, text) = if standalone.is_file() {
            let text = read_text(&standalone)?;
            parse_toml(&standalone, &text)?;
            (standalone, text)
        } else {
            (pyproject_path.clone(), pyproject_text.unwrap_or_default())
        };
        let config = read_config(&config_path, &text)?;
        let project = pyproject.as_ref().and_then(|p| p.get("project"));
        let name = project
            .and_then(|p| p.get("name"))
            .and_then(|v| v.as_str())
            .map(String::from)
            .or_else(|| {
                std::path::absolute(dir)
                    .ok()?
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| "app".into());
        let scripts = project
            .and_then(|p| p.get("scripts"))
            .and_then(|v| v.as_table())
            .map(|t| {
                t.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        let p = Project {
            dir: dir.to_path_buf(),
            config_path,
            version: project
                .and_then(|p| p.get("version"))
                .and_then(|v| v.as_str())
                .map(String::from),
            dependencies: string_list(project, "dependencies"),
            scripts,
            has_build_system: pyproject
                .as_ref()
                .is_some_and(|p| p.get("build-system").is_some()),
            name,
            pyproject,
            config,
        };
        p.app_mode()?;
        p.validate_paths()?;
        p.platforms()?;
        let commands = p
            .config
            .entrypoint
            .iter()
            .chain(&p.config.cmd)
            .chain(&p.config.smoke);
        for command in commands {
            command.parse().map_err(|message| ProjectError::Invalid {
                path: p.config_path.clone(),
                message: format!("[tool.lockship]: {message}"),
            })?;
        }
        Ok(p)
    }

    /// The `platforms` the config asks for, parsed and without repeats.
    pub fn platforms(&self) -> Result<Vec<Platform>, ProjectError> {
        parse_platforms(self.config.platforms.iter().map(String::as_str)).map_err(|message| {
            ProjectError::Invalid {
                path: self.config_path.clone(),
                message: format!("[tool.lockship] platforms: {message}"),
            }
        })
    }

    /// Checks every path the config names before anything uses one: image paths (`venv`,
    /// `workdir`) absolute and plain, project paths (`lock`, `include` globs, targets' `include`,
    /// the base's `keyring`) relative and inside the project, target names and environment
    /// variable names usable as such. lockship writes files under the venv on the host while
    /// staging layers, and writes next to the lock: neither may be steered outside.
    fn validate_paths(&self) -> Result<(), ProjectError> {
        let bad = |field: &str, value: &str, why: String| ProjectError::BadPath {
            path: self.config_path.clone(),
            field: field.to_string(),
            value: value.to_string(),
            why,
        };
        for (field, value) in [
            ("venv", &self.config.venv),
            ("workdir", &self.config.workdir),
        ] {
            if let Some(v) = value {
                image_path(v).map_err(|why| bad(field, v, why))?;
            }
        }
        if let Some(lock) = &self.config.lock {
            let text = lock.to_string_lossy();
            project_path(&text).map_err(|why| bad("lock", &text, why))?;
        }
        for glob in self.config.include.iter().flatten() {
            project_path(glob).map_err(|why| bad("include", glob, why))?;
        }
        if let Some(toml::Value::Table(base)) = &self.config.base {
            if let Some(keyring) = base.get("keyring").and_then(|k| k.as_str()) {
                // An absolute keyring is a host file lockship only reads (/usr/share/keyrings/…).
                if !keyring.starts_with('/') {
                    project_path(keyring).map_err(|why| bad("base.keyring", keyring, why))?;
                }
            }
        }
        for key in self.config.env.keys() {
            env_name(key).map_err(|why| bad("env", key, why))?;
        }
        for (name, target) in &self.config.targets {
            let field = format!("targets.{name}");
            if name.is_empty()
                || name.len() > 64
                || !name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
                || !name.starts_with(|c: char| c.is_ascii_alphanumeric())
            {
                return Err(bad(
                    "targets",
                    name,
                    "a target name is lowercase letters, digits, `-`, `_` and `.`, starting with a letter or digit (it becomes part of image tags)".into(),
                ));
            }
            for glob in &target.include {
                project_path(glob).map_err(|why| bad(&format!("{field}.include"), glob, why))?;
            }
            for key in target.env.keys() {
                env_name(key).map_err(|why| bad(&format!("{field}.env"), key, why))?;
            }
        }
        Ok(())
    }

    /// The smoke commands of a target: production's, then the target's own.
    pub fn smoke_commands(&self, target: &TargetConfig) -> Vec<Vec<String>> {
        self.config
            .smoke
            .iter()
            .chain(&target.smoke)
            .map(|c| c.to_vec())
            .collect()
    }

    /// `compression` from the config (gzip when unset).
    pub fn compression(&self) -> Result<lockship_oci::layer::Compression, ProjectError> {
        use lockship_oci::layer::Compression;
        match self.config.compression.as_deref() {
            None => Ok(Compression::Gzip),
            Some(name) => Compression::parse(name).ok_or_else(|| ProjectError::Invalid {
                path: self.config_path.clone(),
                message: format!(
                    "[tool.lockship] compression = \"{name}\": expected \"gzip\", \"gzip-single\" or \"zstd\""
                ),
            }),
        }
    }

    /// `app` from the config; by default `wheel` when the project declares a build system.
    pub fn app_mode(&self) -> Result<AppMode, ProjectError> {
        match self.config.app.as_deref() {
            Some("wheel") => Ok(AppMode::Wheel),
            Some("copy") => Ok(AppMode::Copy),
            None if self.has_build_system => Ok(AppMode::Wheel),
            None => Ok(AppMode::Copy),
            Some(other) => Err(ProjectError::Invalid {
                path: self.config_path.clone(),
                message: format!(
                    "[tool.lockship] app = \"{other}\": expected \"wheel\" or \"copy\""
                ),
            }),
        }
    }

    /// The base from the config: an image reference (`base = "python:3.12-slim"`), or a
    /// Debian-package base (`[tool.lockship.base] debian = "bookworm"`).
    pub fn base(&self) -> Result<Option<BaseSpec>, ProjectError> {
        let invalid = |message: String| ProjectError::Invalid {
            path: self.config_path.clone(),
            message,
        };
        match &self.config.base {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(BaseSpec::from_text(s, &self.dir))),
            Some(toml::Value::Table(t)) => {
                let table: DebianBaseTable = toml::Value::Table(t.clone())
                    .try_into()
                    .map_err(|e: toml::de::Error| invalid(format!("[tool.lockship.base]: {}", e.message())))?;
                if table.packages.is_empty() {
                    return Err(invalid("[tool.lockship.base] packages is empty (it needs at least python3)".into()));
                }
                Ok(Some(BaseSpec::Debian(DebianSpec {
                    suite: table.debian,
                    packages: table.packages,
                    mirror: table.mirror,
                    security_mirror: table.security_mirror,
                    exclude: table.exclude,
                    keyring: table.keyring.map(|k| self.dir.join(k)),
                })))
            }
            Some(_) => Err(invalid(
                "[tool.lockship] base must be an image reference or a table with `debian` and `packages`".into(),
            )),
        }
    }
}

impl Project {
    /// The settings of target `name` (`production` need not be declared).
    pub fn target(&self, name: &str) -> Result<TargetConfig, ProjectError> {
        match self.config.targets.get(name) {
            Some(t) => Ok(t.clone()),
            None if name == PRODUCTION => Ok(TargetConfig::default()),
            None => {
                let mut known: Vec<&str> = self.config.targets.keys().map(String::as_str).collect();
                if !known.contains(&PRODUCTION) {
                    known.insert(0, PRODUCTION);
                }
                Err(ProjectError::UnknownTarget {
                    path: self.config_path.clone(),
                    name: name.to_string(),
                    known: known.join(", "),
                })
            }
        }
    }
}

/// Checks an absolute path in the image: `/`-rooted, no empty, `.` or `..` component, not `/`
/// itself, and short enough for every runtime.
pub fn image_path(path: &str) -> Result<(), String> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err("must be an absolute path in the image, like /opt/venv".into());
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Err("cannot be the image's root directory".into());
    }
    lockship_oci::tar_tree::check_path(rest)
        .map_err(|e| format!("must be a plain absolute path: {e}"))
}

/// Checks a path (or glob) relative to the project: not absolute, no `..` component, so it
/// names something inside the project.
pub fn project_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("is empty".into());
    }
    if path.starts_with('/') || path.starts_with('~') {
        return Err("must be relative to the project directory".into());
    }
    if path.split(['/', '\\']).any(|part| part == "..") {
        return Err("must stay inside the project (no `..`)".into());
    }
    if path.contains('\0') {
        return Err("holds a NUL byte".into());
    }
    Ok(())
}

/// Checks an environment variable name: not empty, no `=` and no NUL (the config's `Env`
/// entries are `NAME=value`).
fn env_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.contains(['=', '\0']) {
        return Err("an environment variable name must be non-empty, without `=` or NUL".into());
    }
    Ok(())
}

/// Where the image's base comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BaseSpec {
    /// An image in a registry, as a reference.
    Image(String),
    /// An image in an OCI layout directory: `oci-layout://PATH[:TAG|@sha256:…]`.
    Layout {
        /// As the user wrote it, for messages and the base.name label.
        text: String,
        dir: PathBuf,
        /// A tag or digest naming the image; None when the layout holds one.
        wanted: Option<String>,
    },
    Debian(DebianSpec),
}

/// The prefix that makes a base string an OCI layout rather than a registry reference (the
/// scheme BuildKit's named contexts use).
pub const LAYOUT_SCHEME: &str = "oci-layout://";

impl BaseSpec {
    /// A base given as a string: `oci-layout://PATH[:TAG|@DIGEST]` (a relative PATH starts at
    /// `dir`), else a registry reference.
    pub fn from_text(text: &str, dir: &Path) -> BaseSpec {
        let Some(rest) = text.strip_prefix(LAYOUT_SCHEME) else {
            return BaseSpec::Image(text.to_string());
        };
        // `@` starts a digest; else a `:` in the last path segment starts a tag.
        let (path, wanted) = match rest.rsplit_once('@') {
            Some((path, digest)) => (path, Some(digest)),
            None => {
                let segment_start = rest.rfind('/').map_or(0, |i| i + 1);
                match rest[segment_start..].rfind(':') {
                    Some(i) => (
                        &rest[..segment_start + i],
                        Some(&rest[segment_start + i + 1..]),
                    ),
                    None => (rest, None),
                }
            }
        };
        BaseSpec::Layout {
            text: text.to_string(),
            dir: dir.join(path),
            wanted: wanted.filter(|w| !w.is_empty()).map(String::from),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DebianBaseTable {
    debian: String,
    #[serde(default)]
    packages: Vec<String>,
    mirror: Option<String>,
    #[serde(rename = "security-mirror")]
    security_mirror: Option<String>,
    #[serde(default)]
    exclude: Vec<String>,
    keyring: Option<PathBuf>,
}

impl DebianBaseTable {
    /// `mirror` and `security-mirror`, when set, are http(s) URLs: checked when the config is
    /// read, so that the error names the key rather than a URL lockship made from it.
    fn check_mirrors(&self, path: &Path, table: &str) -> Result<(), ProjectError> {
        for (key, value) in [
            ("mirror", &self.mirror),
            ("security-mirror", &self.security_mirror),
        ] {
            let Some(value) = value else { continue };
            let why = match url::Url::parse(value) {
                Err(e) => format!("not a URL ({e})"),
                Ok(url) if !matches!(url.scheme(), "http" | "https") => format!(
                    "lockship reads an archive over http or https, not {}",
                    url.scheme()
                ),
                Ok(url) if url.host_str().is_none_or(str::is_empty) => {
                    "the URL names no host".into()
                }
                Ok(_) => continue,
            };
            return Err(ProjectError::BadMirror {
                path: path.to_path_buf(),
                key: format!("[{table}] {key}"),
                value: value.clone(),
                why,
            });
        }
        Ok(())
    }
}

/// Parses platforms as users write them (`linux/arm64`, `linux/arm/v7`); a repeated one is an
/// error, since it would put two entries for one platform in the index.
pub fn parse_platforms<'a>(
    texts: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<Platform>, String> {
    let mut platforms: Vec<Platform> = Vec::new();
    for text in texts {
        let text = text.trim();
        let platform = Platform::parse(text)
            .ok_or_else(|| format!("`{text}` is not OS/ARCH[/VARIANT], e.g. linux/arm64"))?;
        if platform.os != "linux" {
            return Err(format!("`{text}`: lockship builds Linux images only"));
        }
        if platforms.contains(&platform) {
            return Err(format!("`{text}` is listed twice"));
        }
        platforms.push(platform);
    }
    Ok(platforms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoke_commands_split_as_a_shell_would_without_running_one() {
        let line = |s: &str| Command::Line(s.into());
        assert_eq!(
            line(r#"python -c "import app; print('ok')""#).to_vec(),
            ["python", "-c", "import app; print('ok')"]
        );
        assert_eq!(
            line(r"app --name 'two words' a\ b").to_vec(),
            ["app", "--name", "two words", "a b"]
        );
        // No shell: `$HOME`, `;` and `|` are plain arguments.
        assert_eq!(
            line("echo $HOME; ls | wc").to_vec(),
            ["echo", "$HOME;", "ls", "|", "wc"]
        );
        let list = Command::List(vec!["app".into(), "--flag=a b".into()]);
        assert_eq!(list.to_vec(), ["app", "--flag=a b"]);
        assert_eq!(list.to_string(), "app '--flag=a b'");
        assert!(line("").parse().unwrap_err().contains("empty command"));
        assert!(Command::List(vec![]).parse().is_err());
        let unclosed = line("python -c 'print(1)").parse().unwrap_err();
        assert!(unclosed.ends_with("in `python -c 'print(1)`"), "{unclosed}");
    }

    #[test]
    fn a_smoke_command_that_cannot_be_split_fails_when_the_config_is_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("pyproject.toml"),
            "[project]\nname = \"demo\"\n[tool.lockship]\nsmoke = [\"python -c 'oops\"]\n",
        )
        .unwrap();
        let err = Project::load(dir.path()).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "{}: [tool.lockship]: ",
                dir.path().join("pyproject.toml").display()
            )) && err.contains("in `python -c 'oops`"),
            "{err}"
        );
    }

    #[test]
    fn standalone_lockship_toml_and_typos() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("pyproject.toml"),
            "[project]\nname = \"demo\"\ndependencies = [\"click\"]\n[project.scripts]\ndemo = \"demo:main\"\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("lockship.toml"),
            "base = \"python:3.11-slim\"\ncmd = \"--port 80\"\n",
        )
        .unwrap();
        let p = Project::load(dir.path()).unwrap();
        assert_eq!(
            p.base().unwrap(),
            Some(BaseSpec::Image("python:3.11-slim".into()))
        );
        assert_eq!(p.config.cmd.as_ref().unwrap().to_vec(), ["--port", "80"]);
        assert_eq!(p.dependencies, ["click"]);
        assert_eq!(
            p.app_mode().unwrap(),
            AppMode::Copy,
            "no build system: copy"
        );

        std::fs::write(
            dir.path().join("lockship.toml"),
            "[base]\ndebian = \"bookworm\"\npackages = [\"python3\", \"libpq5\"]\n",
        )
        .unwrap();
        let p = Project::load(dir.path()).unwrap();
        let Some(BaseSpec::Debian(spec)) = p.base().unwrap() else {
            panic!("a Debian base")
        };
        assert_eq!(
            (spec.suite.as_str(), spec.packages.len(), spec.mirror),
            ("bookworm", 2, None)
        );

        std::fs::write(dir.path().join("lockship.toml"), "entrypont = [\"x\"]\n").unwrap();
        let err = Project::load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains(
                "lockship.toml: entrypont: unknown field (expected one of base, entrypoint, "
            ),
            "{err}"
        );
        std::fs::write(dir.path().join("lockship.toml"), "[builder]\nimage = 3\n").unwrap();
        let err = Project::load(dir.path()).unwrap_err().to_string();
        assert!(
            err.ends_with("lockship.toml: [builder] image: expected a string, found integer `3`"),
            "{err}"
        );

        std::fs::write(dir.path().join("lockship.toml"), "app = \"zip\"\n").unwrap();
        let err = Project::load(dir.path()).unwrap_err().to_string();
        assert!(
            err.ends_with("app = \"zip\": expected \"wheel\" or \"copy\""),
            "{err}"
        );
    }

    #[test]
    fn config_errors_name_the_key_and_its_table() {
        let dir = tempfile::tempdir().unwrap();
        let load = |body: &str| {
            std::fs::write(
                dir.path().join("pyproject.toml"),
                format!("[project]\nname = \"x\"\n\n[tool.lockship]\n{body}\n"),
            )
            .unwrap();
            Project::load(dir.path()).map(|_| ()).map_err(|e| {
                let hint = e.hint();
                let text = e.to_string();
                (text[text.find(": ").unwrap() + 2..].to_string(), hint)
            })
        };
        for (body, want) in [
            ("bytecode = \"no\"", "[tool.lockship] bytecode: expected a boolean, found string \"no\""),
            ("platforms = \"linux/amd64\"", "[tool.lockship] platforms: expected a sequence, found string \"linux/amd64\""),
            ("compression = 5", "[tool.lockship] compression: expected a string, found integer `5`"),
            ("[tool.lockship.builder]\nimage = 3", "[tool.lockship.builder] image: expected a string, found integer `3`"),
            ("[tool.lockship.builder]\nimag = \"x\"", "[tool.lockship.builder] imag: unknown field (expected image or packages)"),
            ("[tool.lockship.base]\ndebian = \"bookworm\"\npackages = [\"python3\"]\nmirorr = \"x\"", "[tool.lockship.base] mirorr: unknown field (expected one of debian, packages, mirror, security-mirror, exclude, keyring)"),
            ("[tool.lockship.targets.dev]\nsmoke = [\"a\", 1]", "[tool.lockship.targets.dev] smoke: a command is a string or a list of strings"),
        ] {
            assert_eq!(load(body).unwrap_err().0, want, "{body}");
        }
        let base = |key: &str, url: &str| {
            load(&format!("[tool.lockship.base]\ndebian = \"bookworm\"\npackages = [\"python3\"]\n{key} = \"{url}\""))
        };
        let (err, hint) = base("mirror", "mirror.example/debian").unwrap_err();
        assert!(
            err.starts_with("[tool.lockship.base] mirror = \"mirror.example/debian\": not a URL"),
            "{err}"
        );
        assert!(hint.unwrap().contains("http:// or https://"));
        let (err, _) = base("security-mirror", "ftp://mirror.example/debian").unwrap_err();
        assert_eq!(err, "[tool.lockship.base] security-mirror = \"ftp://mirror.example/debian\": lockship reads an archive over http or https, not ftp");
        base("mirror", "https://user:pw@mirror.example/debian/").unwrap();
    }

    #[test]
    fn paths_that_leave_the_image_or_the_project_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("lockship.toml");
        let load = |text: &str| {
            std::fs::write(&config, text).unwrap();
            Project::load(dir.path())
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        for (text, field, why) in [
            (
                "venv = \"../../tmp/x\"\n",
                "venv",
                "must be an absolute path in the image",
            ),
            (
                "venv = \"/opt/../../etc\"\n",
                "venv",
                "must be a plain absolute path",
            ),
            ("venv = \"/\"\n", "venv", "cannot be the image's root"),
            ("workdir = \"app\"\n", "workdir", "must be an absolute path"),
            (
                "lock = \"../other/uv.lock\"\n",
                "lock",
                "must stay inside the project",
            ),
            (
                "lock = \"/etc/passwd\"\n",
                "lock",
                "must be relative to the project",
            ),
            (
                "include = [\"../**/*.py\"]\n",
                "include",
                "must stay inside the project",
            ),
            (
                "[targets.test]\ninclude = [\"/home/**\"]\n",
                "targets.test.include",
                "must be relative",
            ),
            (
                "[targets.\"Dev/x\"]\n",
                "targets",
                "a target name is lowercase",
            ),
            ("env = { \"A=B\" = \"1\" }\n", "env", "without `=`"),
            (
                "[base]\ndebian = \"bookworm\"\npackages = [\"python3\"]\nkeyring = \"../k.gpg\"\n",
                "base.keyring",
                "must stay inside",
            ),
        ] {
            let err = load(text).unwrap_err();
            assert!(
                err.contains(&format!("[tool.lockship] {field} = ")) && err.contains(why),
                "{text}: {err}"
            );
        }
        for ok in [
            "venv = \"/opt/venv\"\nworkdir = \"/srv/app/\"\n",
            "lock = \"locks/requirements.txt\"\ninclude = [\"src/**/*.py\"]\n",
            "[base]\ndebian = \"bookworm\"\npackages = [\"python3\"]\nkeyring = \"/usr/share/keyrings/x.gpg\"\n",
        ] {
            load(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }
}
