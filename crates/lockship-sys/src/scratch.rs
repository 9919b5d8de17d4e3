//! Temporary files and directories lockship can always clean up. Each is named `.lockship-tmp-*`,
//! made beside its destination (so finishing it is one rename), and locked (`flock`) by its
//! owner for as long as it lives. It is removed when dropped, when lockship is stopped by a
//! signal (see [`crate::interrupt`]), and, after a SIGKILL, by the next run's [`sweep`], which
//! removes only entries no live process holds: concurrent builds sharing a cache or an output
//! directory never lose each other's work.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::interrupt::{self, Registration};

/// The name every temporary entry starts with; [`sweep`] touches nothing else.
pub const PREFIX: &str = ".lockship-tmp-";

/// A live owner locks its entry right after creating it; an unlocked entry younger than this may
/// be in that instant, so it is left for a later sweep.
const GRACE: Duration = Duration::from_secs(10);

/// A temporary file, deleted unless persisted.
#[derive(Debug)]
pub struct ScratchFile {
    file: tempfile::NamedTempFile,
    _stop: Registration,
}

impl ScratchFile {
    /// A new, locked temporary file in `dir`, its name ending in `suffix`.
    pub fn new_in(dir: &Path, suffix: &str) -> io::Result<ScratchFile> {
        let file = tempfile::Builder::new()
            .prefix(PREFIX)
            .suffix(suffix)
            .tempfile_in(dir)?;
        file.as_file().lock()?;
        let stop = interrupt::remove_on_stop(file.path().to_path_buf());
        Ok(ScratchFile { file, _stop: stop })
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }

    pub fn as_file(&self) -> &File {
        self.file.as_file()
    }

    pub fn as_file_mut(&mut self) -> &mut File {
        self.file.as_file_mut()
    }

    /// Renames the file to `dest` (replacing a file there) and returns it, still open.
    pub fn persist(self, dest: &Path) -> io::Result<File> {
        self.file.persist(dest).map_err(|e| e.error)
    }
}

/// Writes `bytes` to `dest` whole or not at all: a temporary file beside it, renamed over it.
/// A `dest` that is a symlink keeps being one: its target is written (renaming over the link
/// would replace it with a file and leave the file it names unchanged). `mode` sets the new
/// file's permissions; None keeps those of the file replaced (or 0600 for a new one).
pub fn write_whole(dest: &Path, bytes: &[u8], mode: Option<u32>) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let target = match std::fs::symlink_metadata(dest) {
        Ok(meta) if meta.file_type().is_symlink() => std::fs::canonicalize(dest)?,
        _ => dest.to_path_buf(),
    };
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let mut tmp = ScratchFile::new_in(&dir, ".partial")?;
    tmp.write_all(bytes)?;
    let permissions = match mode {
        Some(mode) => Some(std::fs::Permissions::from_mode(mode)),
        None => std::fs::metadata(&target).ok().map(|m| m.permissions()),
    };
    if let Some(p) = permissions {
        tmp.as_file_mut().set_permissions(p)?;
    }
    tmp.persist(&target).map(|_| ())
}

impl Write for ScratchFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// A temporary directory, deleted with everything in it unless persisted.
#[derive(Debug)]
pub struct ScratchDir {
    dir: tempfile::TempDir,
    _lock: File,
    _stop: Registration,
}

impl ScratchDir {
    /// A new, locked temporary directory in `dir`.
    pub fn new_in(dir: &Path) -> io::Result<ScratchDir> {
        let tmp = tempfile::Builder::new().prefix(PREFIX).tempdir_in(dir)?;
        let lock = File::open(tmp.path())?;
        lock.lock()?;
        let stop = interrupt::remove_on_stop(tmp.path().to_path_buf());
        Ok(ScratchDir {
            dir: tmp,
            _lock: lock,
            _stop: stop,
        })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Renames the directory to `dest`, which must not exist (or be an empty directory).
    pub fn persist(self, dest: &Path) -> io::Result<()> {
        std::fs::rename(self.dir.path(), dest)?;
        // Renamed away: forget it rather than delete `dest`.
        let _ = self.dir.keep();
        Ok(())
    }
}

/// Removes the stale temporary entries in `dir` (those of processes that died without cleaning
/// up) and returns their paths. Entries of live processes, and anything not named by
/// [`ScratchFile`] or [`ScratchDir`], are left alone; errors are ignored (a sweep is a courtesy).
pub fn sweep(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let now = SystemTime::now();
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with(PREFIX) {
            continue;
        }
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        // lockship never makes temporary symlinks: such an entry is not its own.
        if meta.file_type().is_symlink() {
            continue;
        }
        let young = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .is_none_or(|age| age < GRACE);
        if young {
            continue;
        }
        let Ok(handle) = File::open(&path) else {
            continue;
        };
        if handle.try_lock().is_err() {
            continue; // its owner is alive
        }
        let gone = if meta.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        if gone.is_ok() {
            removed.push(path);
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn age(path: &Path) {
        let old = SystemTime::now() - Duration::from_secs(3600);
        File::options()
            .write(true)
            .open(path)
            .or_else(|_| File::open(path))
            .unwrap()
            .set_modified(old)
            .unwrap();
    }

    #[test]
    fn sweep_removes_only_dead_owners_entries() {
        let dir = tempfile::tempdir().unwrap();
        // A live file and directory (held by this process), aged past the grace period.
        let live = ScratchFile::new_in(dir.path(), ".partial").unwrap();
        let live_dir = ScratchDir::new_in(dir.path()).unwrap();
        age(live.path());
        age(live_dir.path());
        // What a killed process leaves: the same names, no lock.
        let dead = dir.path().join(format!("{PREFIX}dead.tar.partial"));
        std::fs::write(&dead, "half").unwrap();
        let dead_dir = dir.path().join(format!("{PREFIX}deaddir"));
        std::fs::create_dir_all(dead_dir.join("blobs")).unwrap();
        std::fs::write(dead_dir.join("blobs/x"), "x").unwrap();
        age(&dead);
        age(&dead_dir);
        // Young and unlocked: maybe a file its owner is about to lock.
        let young = dir.path().join(format!("{PREFIX}young"));
        std::fs::write(&young, "").unwrap();
        // Not lockship's.
        let users = dir.path().join("lockship-tmp-notes.txt");
        std::fs::write(&users, "mine").unwrap();
        age(&users);

        let mut removed = sweep(dir.path());
        removed.sort();
        let mut expected = vec![dead.clone(), dead_dir.clone()];
        expected.sort();
        assert_eq!(removed, expected);
        assert!(live.path().exists() && live_dir.path().exists());
        assert!(young.exists() && users.exists());
    }

    #[test]
    fn persisted_entries_stay_and_dropped_ones_go() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = ScratchFile::new_in(dir.path(), "").unwrap();
        file.write_all(b"done").unwrap();
        let dropped = ScratchFile::new_in(dir.path(), "").unwrap();
        let dropped_path = dropped.path().to_path_buf();
        drop(dropped);
        file.persist(&dir.path().join("out")).unwrap();
        let made = ScratchDir::new_in(dir.path()).unwrap();
        std::fs::write(made.path().join("f"), "f").unwrap();
        made.persist(&dir.path().join("outdir")).unwrap();
        assert!(!dropped_path.exists());
        assert_eq!(std::fs::read(dir.path().join("out")).unwrap(), b"done");
        assert!(dir.path().join("outdir/f").is_file());
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(PREFIX))
            .collect();
        assert!(names.is_empty(), "{names:?}");
    }
}
