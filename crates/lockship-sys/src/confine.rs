//! Whether a path from an input (a lock's wheel path, a path dependency) stays inside the
//! directory it may come from, after every link is followed: a lock from elsewhere does not get
//! to read the host's files.

use std::path::Path;

/// Whether `path` resolves (links followed) to `root` or a place under it. Fails when either
/// cannot be resolved (a missing file, a dangling link).
pub fn resolves_inside(path: &Path, root: &Path) -> std::io::Result<bool> {
    Ok(std::fs::canonicalize(path)?.starts_with(std::fs::canonicalize(root)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_followed_before_the_check() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("project");
        std::fs::create_dir_all(root.join("wheels")).unwrap();
        std::fs::write(root.join("wheels/a.whl"), b"").unwrap();
        std::fs::write(tmp.path().join("outside.whl"), b"").unwrap();
        std::os::unix::fs::symlink(tmp.path().join("outside.whl"), root.join("wheels/b.whl"))
            .unwrap();
        assert!(resolves_inside(&root.join("wheels/a.whl"), &root).unwrap());
        assert!(resolves_inside(&root.join("wheels/../wheels/a.whl"), &root).unwrap());
        assert!(!resolves_inside(&root.join("wheels/b.whl"), &root).unwrap());
        assert!(!resolves_inside(&root.join("../outside.whl"), &root).unwrap());
        assert!(resolves_inside(&root.join("missing.whl"), &root).is_err());
    }
}
