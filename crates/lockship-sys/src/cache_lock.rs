//! One lock per cache directory, and the "last used" time of its entries. Builds hold the lock
//! shared and `lockship cache prune` holds it alone, so a prune never removes what a running
//! build is about to read, while any number of builds share the cache. An entry's mtime says
//! when a build last used it (set on every use), which is what a prune goes by.

use std::fs::File;
use std::io;
use std::path::Path;
use std::time::SystemTime;

/// The lock file's name in the cache directory.
pub const LOCK_FILE: &str = ".lockship-cache-lock";

/// The cache directory's lock, held until dropped.
#[derive(Debug)]
pub struct CacheLock {
    _file: File,
}

impl CacheLock {
    /// Shares the cache with other builds; waits while a prune holds it.
    pub fn shared(cache_dir: &Path) -> io::Result<CacheLock> {
        let file = open(cache_dir)?;
        file.lock_shared()?;
        Ok(CacheLock { _file: file })
    }

    /// Holds the cache alone, or None while builds are using it.
    pub fn try_exclusive(cache_dir: &Path) -> io::Result<Option<CacheLock>> {
        let file = open(cache_dir)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(CacheLock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    /// Holds the cache alone, waiting for the builds using it to finish.
    pub fn exclusive(cache_dir: &Path) -> io::Result<CacheLock> {
        let file = open(cache_dir)?;
        file.lock()?;
        Ok(CacheLock { _file: file })
    }
}

fn open(cache_dir: &Path) -> io::Result<File> {
    std::fs::create_dir_all(cache_dir)?;
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(cache_dir.join(LOCK_FILE))
}

/// Marks a cache entry (a file or a directory) used now. Best effort: an entry that cannot be
/// touched is only pruned sooner.
pub fn touch(path: &Path) {
    if let Ok(file) = File::open(path) {
        let _ = file.set_modified(SystemTime::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_share_and_a_prune_waits_for_them() {
        let dir = tempfile::tempdir().unwrap();
        let a = CacheLock::shared(dir.path()).unwrap();
        let b = CacheLock::shared(dir.path()).unwrap();
        assert!(CacheLock::try_exclusive(dir.path()).unwrap().is_none());
        drop((a, b));
        let alone = CacheLock::try_exclusive(dir.path()).unwrap();
        assert!(alone.is_some());
    }

    #[test]
    fn touch_moves_the_mtime_forward() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("entry");
        std::fs::write(&file, b"x").unwrap();
        let old = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        File::open(&file).unwrap().set_modified(old).unwrap();
        touch(&file);
        let now = std::fs::metadata(&file).unwrap().modified().unwrap();
        assert!(now > old + std::time::Duration::from_secs(86_400));
        touch(dir.path());
    }
}
