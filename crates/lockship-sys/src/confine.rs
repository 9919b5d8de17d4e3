//! Whether a path from an input (a lock's wheel path, a path dependency) stays inside the
//! directory it may come from, after every link is followed: a lock from elsewhere does not get
//! to read the host's files; and reading what another party wrote without following its links.

use std::path::Path;

/// Whether `path` resolves (links followed) to `root` or a place under it. Fails when either
/// cannot be resolved (a missing file, a dangling link).
pub fn resolves_inside(path: &Path, root: &Path) -> std::io::Result<bool> {
    Ok(std::fs::canonicalize(path)?.starts_with(std::fs::canonicalize(root)?))
}

/// The bytes of the regular file at `path`, refusing a symbolic link as its last component:
/// for files another party wrote (a builder container's output), which must not get the host
/// to read a file of its choosing.
/// At most `limit` bytes (a sparse terabyte would not fit in memory).
pub fn read_regular_file(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let too_large = || std::io::Error::other(format!("larger than the {limit} bytes allowed"));
    if meta.len() > limit {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(bytes)
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

    #[test]
    fn only_regular_files_are_read() {
        let tmp = tempfile::tempdir().unwrap();
        let (file, link, fifo) = (
            tmp.path().join("a.whl"),
            tmp.path().join("b.whl"),
            tmp.path().join("c.whl"),
        );
        std::fs::write(&file, b"wheel").unwrap();
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert_eq!(read_regular_file(&file, 5).unwrap(), b"wheel");
        assert!(read_regular_file(&file, 4).is_err());
        assert!(read_regular_file(&link, 5).is_err());
        assert!(read_regular_file(&fifo, 5).is_err());
        assert!(read_regular_file(tmp.path(), 5).is_err());
    }
}
