//! `lockship-base.lock`: the exact Debian packages of the base (name, version, architecture,
//! pool path, SHA-256), written beside the project's lock. Builds use it as is, so the base is
//! as reproducible as the Python dependencies; `--upgrade-base` re-resolves it.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::DebianError;

pub const FILE_NAME: &str = "lockship-base.lock";

/// Where the base lock for `arch` lives in `dir`: `lockship-base.lock` when it is new or
/// already for `arch`, else `lockship-base.ARCH.lock`. A project built for a second
/// architecture (`--platform`, a multi-platform build) so keeps the lock it had, and each
/// architecture's packages stay pinned in a file of its own.
pub fn path_for(dir: &Path, arch: &str) -> std::path::PathBuf {
    let main = dir.join(FILE_NAME);
    match BaseLock::read(&main) {
        Ok(Some(lock)) if lock.architecture != arch => {
            dir.join(format!("lockship-base.{arch}.lock"))
        }
        _ => main,
    }
}

/// Whether `path` (relative to the directory of the project's lock) names a base lock there
/// (`lockship-base.lock`, `lockship-base.ARCH.lock`); one deeper is the project's own file.
pub fn is_base_lock(path: &Path) -> bool {
    path.components().count() == 1
        && path
            .to_str()
            .is_some_and(|n| n.starts_with("lockship-base.") && n.ends_with(".lock"))
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseLock {
    pub version: u32,
    pub suite: String,
    pub codename: String,
    /// The point release the index was taken from (e.g. 12.11), for os-release.
    pub release: Option<String>,
    pub architecture: String,
    /// The `packages` the closure was resolved from; a change re-resolves.
    pub requested: Vec<String>,
    /// The `exclude` it was resolved with; a change re-resolves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    #[serde(rename = "package", default)]
    pub packages: Vec<LockedDeb>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedDeb {
    pub name: String,
    pub version: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The archive it comes from (`bookworm`, `bookworm-updates`, `bookworm-security`); locks
    /// written before lockship read more than the suite have none (the suite).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive: Option<String>,
    pub filename: String,
    pub sha256: String,
    pub size: u64,
    /// Taken for its data only (the CA certificates), without its dependencies.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub data_only: bool,
}

impl BaseLock {
    pub fn read(path: &Path) -> Result<Option<BaseLock>, DebianError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(DebianError::Lock {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                })
            }
        };
        toml::from_str(&text)
            .map(Some)
            .map_err(|e| DebianError::Lock {
                path: path.to_path_buf(),
                message: format!("not a valid base lock: {}", e.message()),
            })
    }

    pub fn to_text(&self) -> String {
        let body = toml::to_string(self).expect("the base lock serializes");
        format!(
            "# Written by lockship: the Debian packages of the image's base. Do not edit.\n{body}"
        )
    }

    /// Writes the lock atomically.
    pub fn write(&self, path: &Path) -> Result<(), DebianError> {
        let err = |message: String| DebianError::Lock {
            path: path.to_path_buf(),
            message,
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        // A new file renamed over the old: a symlink planted at `path` is replaced, never
        // followed to wherever it points.
        let mut tmp =
            lockship_sys::scratch::ScratchFile::new_in(dir, "").map_err(|e| err(e.to_string()))?;
        std::io::Write::write_all(&mut tmp, self.to_text().as_bytes())
            .map_err(|e| err(e.to_string()))?;
        tmp.persist(path).map_err(|e| err(e.to_string()))?;
        Ok(())
    }

    /// What changed from `old` to `self`: `+ name version`, `- name version`, `name old → new`.
    pub fn changes_from(&self, old: Option<&BaseLock>) -> Vec<String> {
        let Some(old) = old else {
            return self
                .packages
                .iter()
                .map(|p| format!("+ {} {}", p.name, p.version))
                .collect();
        };
        let mut out = Vec::new();
        for p in &self.packages {
            match old.packages.iter().find(|o| o.name == p.name) {
                None => out.push(format!("+ {} {}", p.name, p.version)),
                Some(o) if o.version != p.version => out.push(format!(
                    "  {} {} → {}{}",
                    p.name,
                    o.version,
                    p.version,
                    match p.archive.as_deref() {
                        Some(a) if a.ends_with("-security") => " (security update)",
                        _ => "",
                    }
                )),
                Some(_) => {}
            }
        }
        for o in &old.packages {
            if !self.packages.iter().any(|p| p.name == o.name) {
                out.push(format!("- {} {}", o.name, o.version));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_locks_are_the_files_beside_the_projects_lock() {
        assert!(is_base_lock(Path::new("lockship-base.lock")));
        assert!(is_base_lock(Path::new("lockship-base.arm64.lock")));
        assert!(!is_base_lock(Path::new("data/lockship-base.prod.lock")));
        assert!(!is_base_lock(Path::new("lockship-base.lock.txt")));
    }

    #[test]
    fn a_second_architecture_gets_a_file_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(path_for(dir.path(), "arm64"), dir.path().join(FILE_NAME));
        lock(Vec::new()).write(&dir.path().join(FILE_NAME)).unwrap();
        assert_eq!(path_for(dir.path(), "amd64"), dir.path().join(FILE_NAME));
        assert_eq!(
            path_for(dir.path(), "arm64"),
            dir.path().join("lockship-base.arm64.lock")
        );
    }

    fn deb(name: &str, version: &str) -> LockedDeb {
        LockedDeb {
            name: name.into(),
            version: version.into(),
            architecture: "amd64".into(),
            source: None,
            archive: None,
            filename: format!("pool/main/{name}_{version}_amd64.deb"),
            sha256: "ab".repeat(32),
            size: 10,
            data_only: false,
        }
    }

    fn lock(packages: Vec<LockedDeb>) -> BaseLock {
        BaseLock {
            version: 1,
            suite: "bookworm".into(),
            codename: "bookworm".into(),
            release: Some("12.11".into()),
            architecture: "amd64".into(),
            requested: vec!["python3".into()],
            exclude: Vec::new(),
            packages,
        }
    }

    #[test]
    fn written_and_read_back_unchanged_and_replacing_a_planted_link() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        assert_eq!(BaseLock::read(&path).unwrap(), None);
        let elsewhere = dir.path().join("elsewhere");
        std::fs::write(&elsewhere, "keep").unwrap();
        std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
        let written = lock(vec![deb("python3.11", "3.11.2-6"), deb("libc6", "2.36-9")]);
        written.write(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), "keep");
        assert!(!path.is_symlink());
        assert_eq!(BaseLock::read(&path).unwrap(), Some(written.clone()));
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .starts_with("# Written by lockship"));
    }

    #[test]
    fn a_damaged_lock_names_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::write(&path, "version = \"one\"\n").unwrap();
        let err = BaseLock::read(&path).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{}: not a valid base lock", path.display())),
            "{err}"
        );
    }

    #[test]
    fn changes_list_additions_upgrades_and_removals() {
        let old = lock(vec![deb("libc6", "2.36-9"), deb("gone", "1")]);
        let new = lock(vec![deb("libc6", "2.36-9+deb12u1"), deb("fresh", "2")]);
        assert_eq!(
            new.changes_from(Some(&old)),
            ["  libc6 2.36-9 → 2.36-9+deb12u1", "+ fresh 2", "- gone 1"]
        );
        assert_eq!(
            new.changes_from(None),
            ["+ libc6 2.36-9+deb12u1", "+ fresh 2"]
        );
        // What a security update changed says so.
        let mut secured = new.clone();
        secured.packages[0].archive = Some("bookworm-security".into());
        assert_eq!(
            secured.changes_from(Some(&old))[0],
            "  libc6 2.36-9 → 2.36-9+deb12u1 (security update)"
        );
    }
}
