//! Small JSON entries in the cache (layer infos, base facts, index answers), written atomically.

use std::path::Path;

use serde::Serialize;

use crate::error::Error;

pub(super) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads a small JSON cache entry; a missing or unreadable one is a miss. A hit is marked
/// used, for `lockship cache prune`.
pub(super) fn read_cached<T: for<'de> serde::Deserialize<'de>>(path: &Path) -> Option<T> {
    let value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    lockship_sys::cache_lock::touch(path);
    Some(value)
}

/// Writes a JSON cache entry atomically (temp file + rename), so readers never see half of one.
pub(crate) fn write_cached<T: Serialize>(path: &Path, value: &T) -> Result<(), Error> {
    let dir = path.parent().expect("cache entries live in a directory");
    fs_err::create_dir_all(dir).map_err(io_err(dir))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io_err(dir))?;
    serde_json::to_writer(&mut tmp, value).map_err(|e| io_err(path)(e.into()))?;
    tmp.persist(path).map_err(|e| io_err(path)(e.error))?;
    Ok(())
}
