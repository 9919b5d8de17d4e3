//! Checks that a lock still satisfies pyproject.toml: every dependency the project declares (for
//! the target) is locked at a version its specifier allows, and, for uv.lock, that the lock was
//! made from the same list of dependencies.

use std::collections::BTreeSet;
use std::str::FromStr;

use uv_pep440::Version;
use uv_pep508::{MarkerEnvironment, Requirement, VerbatimUrl, VersionOrUrl};

use super::uv_lock::UvLock;
use super::{normalize_name, LockError, LockFile, LockKind, LockedPackage};

/// The production packages `lock` pins for `env`, after checking the lock is still the one its
/// source file makes: the Pipfile's hash for a Pipfile.lock (as `pipenv verify` does), the
/// content-hash for a poetry.lock, and the project's `declared` dependencies against the locked
/// versions.
pub fn locked_and_fresh(
    lock: &LockFile,
    declared: &[String],
    root: &str,
    env: &MarkerEnvironment,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<LockedPackage>, LockError> {
    match (lock.kind, &lock.made_from) {
        (LockKind::PipfileLock, Some((_, pipfile))) => {
            super::pipfile_lock::check_fresh(&lock.path, &lock.text, pipfile)?;
            return lock.packages(env, Some(root), &super::Selection::default(), vars);
        }
        // poetry.lock records pyproject's content-hash (as `poetry check --lock` compares);
        // the declared-versions check below still runs, for the names it can give.
        (LockKind::PoetryLock, Some((_, pyproject))) => {
            super::poetry_lock::check_fresh(&lock.path, &lock.text, pyproject)?;
        }
        _ => {}
    }
    let packages = lock.packages(env, Some(root), &super::Selection::default(), vars)?;
    check(lock, declared, Some(root), &packages, env)?;
    Ok(packages)
}

/// Fails with [`LockError::Stale`] listing every declared dependency the lock does not satisfy.
pub fn check(
    lock: &LockFile,
    declared: &[String],
    root: Option<&str>,
    locked: &[LockedPackage],
    env: &MarkerEnvironment,
) -> Result<(), LockError> {
    let mut problems = Vec::new();
    let mut declared_names = BTreeSet::new();
    for text in declared {
        let req = Requirement::<VerbatimUrl>::from_str(text).map_err(|e| LockError::Invalid {
            path: lock.path.with_file_name("pyproject.toml"),
            message: format!("bad dependency `{text}`: {e}"),
        })?;
        let name = normalize_name(req.name.as_ref());
        declared_names.insert(name.clone());
        if !req.marker.evaluate(env, &[]) {
            continue;
        }
        match locked.iter().find(|p| p.name == name) {
            None => problems.push(format!("`{text}` is not in the lock")),
            Some(p) => {
                if let Some(VersionOrUrl::VersionSpecifier(spec)) = &req.version_or_url {
                    let ok = Version::from_str(&p.version)
                        .map(|v| spec.contains(&v))
                        .unwrap_or(false);
                    if !ok {
                        problems.push(format!(
                            "`{text}` does not allow the locked {} {}",
                            p.name, p.version
                        ));
                    }
                }
            }
        }
    }
    if lock.kind == LockKind::UvLock {
        if let Some(recorded) = UvLock::parse(&lock.path, &lock.text)?.root_requires_dist(root) {
            let recorded: BTreeSet<String> = recorded
                .iter()
                .filter(|r| !r.marker.as_deref().unwrap_or("").contains("extra"))
                .map(|r| normalize_name(&r.name))
                .collect();
            for gone in recorded.difference(&declared_names) {
                problems.push(format!(
                    "`{gone}` was removed from pyproject.toml but is still locked"
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(LockError::Stale {
            path: lock.path.clone(),
            problems: problems.join("; "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::uv_lock::tests::LOCK;
    use lockship_oci::digest::Digest;
    use std::path::PathBuf;

    fn uv_lock() -> LockFile {
        LockFile {
            path: PathBuf::from("/project/uv.lock"),
            kind: LockKind::UvLock,
            text: LOCK.into(),
            digest: Digest::of_bytes(LOCK.as_bytes()),
            made_from: None,
        }
    }

    fn stale(declared: &[&str]) -> String {
        let declared: Vec<String> = declared.iter().map(|d| d.to_string()).collect();
        let env = crate::target::bookworm().marker_env();
        match locked_and_fresh(&uv_lock(), &declared, "app", &env, &|_| None) {
            Err(LockError::Stale { problems, .. }) => problems,
            other => panic!("not stale: {other:?}"),
        }
    }

    #[test]
    fn a_lock_that_satisfies_the_project_gives_its_packages() {
        let env = crate::target::bookworm().marker_env();
        // Requirements for other platforms are not asked of the lock.
        let declared = ["click>=8", "rich", "pywin32; sys_platform == 'win32'"].map(String::from);
        let packages = locked_and_fresh(&uv_lock(), &declared, "app", &env, &|_| None).unwrap();
        let names: Vec<&str> = packages.iter().map(|p| p.name.as_str()).collect();
        // The app depends on rich[jupyter], which brings ipywidgets.
        assert_eq!(names, ["click", "ipywidgets", "pygments", "rich"]);
    }

    #[test]
    fn every_way_a_lock_falls_behind_is_listed() {
        assert_eq!(
            stale(&["click>=9", "rich"]),
            "`click>=9` does not allow the locked click 8.1.7"
        );
        assert_eq!(
            stale(&["click>=8", "rich", "httpx"]),
            "`httpx` is not in the lock"
        );
        assert_eq!(
            stale(&["click>=8"]),
            "`rich` was removed from pyproject.toml but is still locked"
        );
        assert_eq!(
            stale(&["click<8", "httpx"]),
            "`click<8` does not allow the locked click 8.1.7; `httpx` is not in the lock; `rich` was removed from pyproject.toml but is still locked"
        );
    }

    #[test]
    fn a_bad_dependency_names_pyproject() {
        let env = crate::target::bookworm().marker_env();
        let err = locked_and_fresh(&uv_lock(), &["click >=>= 8".into()], "app", &env, &|_| None)
            .unwrap_err();
        let LockError::Invalid { path, message } = err else {
            panic!("{err:?}");
        };
        assert_eq!(path, PathBuf::from("/project/pyproject.toml"));
        assert!(
            message.starts_with("bad dependency `click >=>= 8`"),
            "{message}"
        );
    }
}
