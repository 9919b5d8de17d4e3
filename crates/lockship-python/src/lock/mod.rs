//! Lock files, read into one shape: the exact packages (name, version, candidate wheels and
//! their hashes) a target needs. Markers are evaluated for the target, never the host.

pub mod freshness;
pub mod pipfile_lock;
pub mod poetry_lock;
pub mod pylock;
mod python_json;
pub mod requirements_txt;
pub mod uv_lock;

use std::path::{Path, PathBuf};
use std::str::FromStr;

use uv_pep508::{MarkerEnvironment, MarkerTree};

use lockship_oci::digest::Digest;

/// A wheel the lock names for a package.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LockedWheel {
    pub filename: String,
    /// Never shown: an index URL may carry credentials.
    #[serde(skip)]
    pub url: String,
    pub sha256: Digest,
    pub size: Option<u64>,
}

/// Whether `name`, a file name a lock or an index gives, can be used as one: a single path
/// component (no `/`, `\\`, `.` or `..`), with no control characters, that a file system
/// takes. Files are saved and handed to builders under these names, so a name like
/// `../../etc/x` or `/tmp/x` must never reach a path.
pub fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\'])
        && !name.chars().any(char::is_control)
}

/// `sdist` of `package` when its name is a plain file name (see [`is_plain_file_name`]); else
/// the message of the lock's error.
pub(crate) fn plain_sdist(
    sdist: Option<LockedWheel>,
    package: &str,
) -> Result<Option<LockedWheel>, String> {
    match sdist {
        Some(s) if !is_plain_file_name(&s.filename) => Err(format!(
            "the sdist of {package} is named {:?}, which is not a plain file name",
            s.filename
        )),
        sdist => Ok(sdist),
    }
}

/// Where a package's files are to be found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Artifacts {
    /// The lock lists the wheels (uv.lock).
    Listed {
        wheels: Vec<LockedWheel>,
        /// The source distribution, when the lock (or the index) names one with a sha256: a
        /// file like a wheel (name, URL, hash), built into a wheel when no wheel fits.
        sdist: Option<LockedWheel>,
    },
    /// The lock lists only allowed hashes (requirements.txt, poetry.lock, Pipfile.lock): files
    /// come from a package index.
    FromIndex {
        hashes: Vec<Digest>,
        /// The package's own index (a poetry source, a Pipfile source), when the lock names
        /// one; None: the project's configured index. Never shown: it may carry credentials.
        index: Option<String>,
    },
    /// A workspace member or path dependency: a wheel built from this directory (the lock's
    /// directory joined with the path the lock gives) by its own PEP 517 backend.
    Local { dir: PathBuf },
    /// The lock pins a version but no hash (allowed only with `allow-unhashed = true`): files
    /// come from the package's index, checked against the sha256 the index gives for them.
    Unhashed {
        /// As for `FromIndex`. Never shown.
        index: Option<String>,
    },
}

/// One package pinned by the lock and needed on the target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockedPackage {
    /// Normalized name (PEP 503).
    pub name: String,
    pub version: String,
    pub artifacts: Artifacts,
}

/// Which optional parts of the project a target adds: extras and dependency groups.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    pub extras: Vec<String>,
    pub groups: Vec<String>,
}

/// The lock file formats lockship reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockKind {
    UvLock,
    PoetryLock,
    PyLock,
    PipfileLock,
    RequirementsTxt,
}

/// The lock files looked for when none is configured, in this order.
pub const LOOKED_FOR: [&str; 5] = [
    "uv.lock",
    "poetry.lock",
    "pylock.toml",
    "Pipfile.lock",
    "requirements.txt",
];

impl LockKind {
    /// The format's name, for messages and reports.
    pub fn name(self) -> &'static str {
        match self {
            LockKind::UvLock => "uv.lock",
            LockKind::PoetryLock => "poetry.lock",
            LockKind::PyLock => "pylock.toml",
            LockKind::PipfileLock => "Pipfile.lock",
            LockKind::RequirementsTxt => "requirements.txt",
        }
    }

    /// The format a lock file's name says it is in (`pylock.NAME.toml` is PEP 751's too).
    pub fn of_file_name(name: &str) -> Option<LockKind> {
        if name == "uv.lock" || (name.starts_with("uv") && name.ends_with(".lock")) {
            Some(LockKind::UvLock)
        } else if name == "pylock.toml" || (name.starts_with("pylock.") && name.ends_with(".toml"))
        {
            Some(LockKind::PyLock)
        } else if name == "poetry.lock" {
            Some(LockKind::PoetryLock)
        } else if name == "Pipfile.lock" {
            Some(LockKind::PipfileLock)
        } else if name.ends_with(".txt") || name.ends_with(".in") {
            Some(LockKind::RequirementsTxt)
        } else {
            None
        }
    }
}

/// A lock file read from disk.
#[derive(Clone, Debug)]
pub struct LockFile {
    pub path: PathBuf,
    pub kind: LockKind,
    pub text: String,
    /// Digest of the file's bytes, recorded in the image labels.
    pub digest: Digest,
    /// The file the lock was made from, when the format reads it or checks its freshness by
    /// it: a poetry.lock's pyproject.toml, a Pipfile.lock's Pipfile (beside the lock).
    pub made_from: Option<(PathBuf, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("no lock file in {dir} (looked for {})", LOOKED_FOR.join(", "))]
    Missing { dir: PathBuf },
    #[error("cannot read lock file {path}: {source}")]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error(
        "{path}: unsupported lock format (lockship reads {} and requirements.txt with --hash)", LOOKED_FOR[..LOOKED_FOR.len() - 1].join(", ")
    )]
    UnknownFormat { path: PathBuf },
    #[error("{path} is out of date with {}: {problems}", made_from(path))]
    Stale { path: PathBuf, problems: String },
    #[error("{path} is locked for Python `{allowed}`, and the base's Python is {python}")]
    WrongPython {
        path: PathBuf,
        allowed: String,
        python: String,
    },
    #[error("{path}: lock version {found} is not supported (lockship reads {supported})")]
    UnsupportedVersion {
        path: PathBuf,
        found: String,
        supported: String,
    },
    #[error("{path}: {} locked without hashes", unhashed_list(.packages))]
    Unhashed {
        path: PathBuf,
        /// `name==version` of each.
        packages: Vec<String>,
    },
    #[error("{path}: package {package} comes from {source_kind}, which lockship cannot build yet")]
    UnsupportedSource {
        path: PathBuf,
        package: String,
        source_kind: String,
    },
}

impl LockFile {
    /// Finds and reads the lock: `configured` (relative to `dir`) if given, else the first of
    /// [`LOOKED_FOR`] in `dir`.
    pub fn find(dir: &Path, configured: Option<&Path>) -> Result<LockFile, LockError> {
        let path = match configured {
            Some(p) => dir.join(p),
            None => LOOKED_FOR
                .iter()
                .map(|n| dir.join(n))
                .find(|p| p.is_file())
                .ok_or_else(|| LockError::Missing {
                    dir: dir.to_path_buf(),
                })?,
        };
        let bytes = fs_err::read(&path).map_err(|e| LockError::Unreadable {
            path: path.clone(),
            source: e,
        })?;
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let Some(kind) = LockKind::of_file_name(name) else {
            return Err(LockError::UnknownFormat { path });
        };
        let text = String::from_utf8(bytes.clone()).map_err(|_| LockError::Invalid {
            path: path.clone(),
            message: "not UTF-8 text".into(),
        })?;
        let made_from = match kind {
            LockKind::PoetryLock => Some("pyproject.toml"),
            LockKind::PipfileLock => Some("Pipfile"),
            _ => None,
        };
        let made_from = match made_from {
            Some(name) => {
                let source = path.with_file_name(name);
                let text = fs_err::read_to_string(&source).map_err(|e| LockError::Unreadable {
                    path: source.clone(),
                    source: e,
                })?;
                Some((source, text))
            }
            None => None,
        };
        Ok(LockFile {
            digest: Digest::of_bytes(&bytes),
            path,
            kind,
            text,
            made_from,
        })
    }

    /// The packages the target needs, excluding the project itself (`root`). `vars` answers
    /// for `${VAR}` in a Pipfile.lock's source URLs (the CLI passes the environment).
    pub fn packages(
        &self,
        env: &MarkerEnvironment,
        root: Option<&str>,
        selection: &Selection,
        vars: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Vec<LockedPackage>, LockError> {
        let mut packages = match self.kind {
            LockKind::UvLock => uv_lock::UvLock::parse(&self.path, &self.text)?
                .packages_for(&self.path, env, root, selection)?,
            LockKind::PyLock => pylock::parse(&self.path, &self.text, env, selection)?,
            LockKind::PipfileLock => {
                pipfile_lock::parse(&self.path, &self.text, env, selection, vars)?
            }
            LockKind::PoetryLock => {
                let pyproject = self.made_from.as_ref().map_or("", |(_, text)| text);
                poetry_lock::parse(&self.path, &self.text, pyproject, env, selection)?
            }
            LockKind::RequirementsTxt if *selection != Selection::default() => {
                return Err(LockError::Invalid {
                    path: self.path.clone(),
                    message:
                        "a requirements file has no extras or dependency groups to add for a target"
                            .into(),
                })
            }
            LockKind::RequirementsTxt => requirements_txt::parse(&self.path, &self.text, env)?,
        };
        packages.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(packages)
    }
}

/// Markers nested deeper than this are refused: uv-pep508 parses parentheses by recursion, and
/// a few thousand levels overflow the stack (hostile input; real markers nest two or three).
const MAX_MARKER_NESTING: usize = 64;

/// The marker `text` of `whose`, parsed.
pub(crate) fn marker_tree(path: &Path, text: &str, whose: &str) -> Result<MarkerTree, LockError> {
    parse_marker(text).map_err(|problem| LockError::Invalid {
        path: path.to_path_buf(),
        message: format!("{whose}: bad marker `{text}`: {problem}"),
    })
}

/// Parses a marker, refusing one nested past [`MAX_MARKER_NESTING`] before the parser sees it.
pub(crate) fn parse_marker(text: &str) -> Result<MarkerTree, String> {
    let mut depth = 0usize;
    for b in text.bytes() {
        match b {
            b'(' => {
                depth += 1;
                if depth > MAX_MARKER_NESTING {
                    return Err(format!(
                        "nested more than {MAX_MARKER_NESTING} parentheses deep"
                    ));
                }
            }
            b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    MarkerTree::from_str(text).map_err(|e| e.to_string())
}

/// Whether `python` satisfies the requires-python `spec` (PEP 440) of `whose`.
pub(crate) fn python_satisfies(
    path: &Path,
    spec: &str,
    python: &uv_pep440::Version,
    whose: &str,
) -> Result<bool, LockError> {
    let specifiers =
        uv_pep440::VersionSpecifiers::from_str(spec).map_err(|e| LockError::Invalid {
            path: path.to_path_buf(),
            message: format!("{whose}: bad requires-python `{spec}`: {e}"),
        })?;
    Ok(specifiers.contains(python))
}

/// `six==1.16.0 is` or `2 packages are (a==1, b==2)`, for the Unhashed message.
fn unhashed_list(packages: &[String]) -> String {
    match packages {
        [one] => format!("{one} is"),
        many => format!("{} packages are ({})", many.len(), many.join(", ")),
    }
}

/// `name==version` of every package the lock pins without a hash, sorted.
pub fn unhashed(packages: &[LockedPackage]) -> Vec<String> {
    let mut names: Vec<String> = packages
        .iter()
        .filter(|p| matches!(p.artifacts, Artifacts::Unhashed { .. }))
        .map(|p| format!("{}=={}", p.name, p.version))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The file a lock is made from, for messages: a Pipfile.lock's Pipfile, else pyproject.toml.
pub fn made_from(lock: &Path) -> &'static str {
    match lock.file_name().and_then(|n| n.to_str()) {
        Some(n) if n.eq_ignore_ascii_case("Pipfile.lock") => "Pipfile",
        _ => "pyproject.toml",
    }
}

/// PEP 503 name normalization: lowercase, runs of `-`, `_`, `.` become one `-`.
pub fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.trim().chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('-');
            }
            sep = false;
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn markers_nested_past_the_limit_are_refused_before_parsing() {
        let deep = format!(
            "{}python_version >= '3'{}",
            "(".repeat(5000),
            ")".repeat(5000)
        );
        assert_eq!(
            super::parse_marker(&deep).unwrap_err(),
            "nested more than 64 parentheses deep"
        );
        assert!(super::parse_marker("(python_version >= '3')").is_ok());
    }

    #[test]
    fn normalizes_names() {
        assert_eq!(super::normalize_name("Foo__Bar.baz"), "foo-bar-baz");
        assert_eq!(
            super::normalize_name("typing_extensions"),
            "typing-extensions"
        );
    }
}
