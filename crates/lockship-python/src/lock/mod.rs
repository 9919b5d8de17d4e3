//! Lock files, read into one shape: the exact packages (name, version, candidate wheels and
//! their hashes) a target needs. Markers are evaluated for the target, never the host.

pub mod freshness;
pub mod poetry_lock;
pub mod requirements_txt;
pub mod uv_lock;

use std::path::{Path, PathBuf};

use uv_pep508::MarkerEnvironment;

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

/// Where a package's files are to be found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Artifacts {
    /// The lock lists the wheels (uv.lock).
    Listed {
        wheels: Vec<LockedWheel>,
        has_sdist: bool,
    },
    /// The lock lists only allowed hashes (requirements.txt, poetry.lock, Pipfile.lock): files
    /// come from a package index.
    FromIndex {
        hashes: Vec<Digest>,
        /// The package's own index (a poetry source, a Pipfile source), when the lock names
        /// one; None: the project's configured index. Never shown: it may carry credentials.
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
    RequirementsTxt,
}

/// A lock file read from disk.
#[derive(Clone, Debug)]
pub struct LockFile {
    pub path: PathBuf,
    pub kind: LockKind,
    pub text: String,
    /// Digest of the file's bytes, recorded in the image labels.
    pub digest: Digest,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("no lock file in {dir} (looked for uv.lock and requirements.txt)")]
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
        "{path}: unsupported lock format (lockship reads uv.lock and requirements.txt with --hash)"
    )]
    UnknownFormat { path: PathBuf },
    #[error("{path} is out of date with pyproject.toml: {problems}")]
    Stale { path: PathBuf, problems: String },
    #[error("{path}: lock version {found} is not supported (lockship reads {supported})")]
    UnsupportedVersion {
        path: PathBuf,
        found: String,
        supported: String,
    },
    #[error("{path}: {package} is locked without hashes")]
    Unhashed { path: PathBuf, package: String },
    #[error("{path}: package {package} comes from {source_kind}, which lockship cannot build yet")]
    UnsupportedSource {
        path: PathBuf,
        package: String,
        source_kind: String,
    },
}

impl LockFile {
    /// Finds and reads the lock: `configured` (relative to `dir`) if given, else uv.lock, else
    /// requirements.txt in `dir`.
    pub fn find(dir: &Path, configured: Option<&Path>) -> Result<LockFile, LockError> {
        let path = match configured {
            Some(p) => dir.join(p),
            None => ["uv.lock", "requirements.txt"]
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
        let kind = if name.ends_with(".lock") && name.starts_with("uv") {
            LockKind::UvLock
        } else if name.ends_with(".txt") || name.ends_with(".in") {
            LockKind::RequirementsTxt
        } else {
            return Err(LockError::UnknownFormat { path });
        };
        let text = String::from_utf8(bytes.clone()).map_err(|_| LockError::Invalid {
            path: path.clone(),
            message: "not UTF-8 text".into(),
        })?;
        Ok(LockFile {
            digest: Digest::of_bytes(&bytes),
            path,
            kind,
            text,
        })
    }

    /// The packages the target needs, excluding the project itself (`root`).
    pub fn packages(
        &self,
        env: &MarkerEnvironment,
        root: Option<&str>,
        selection: &Selection,
    ) -> Result<Vec<LockedPackage>, LockError> {
        let mut packages = match self.kind {
            LockKind::UvLock => uv_lock::UvLock::parse(&self.path, &self.text)?
                .packages_for(&self.path, env, root, selection)?,
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
    fn normalizes_names() {
        assert_eq!(super::normalize_name("Foo__Bar.baz"), "foo-bar-baz");
        assert_eq!(
            super::normalize_name("typing_extensions"),
            "typing-extensions"
        );
    }
}
