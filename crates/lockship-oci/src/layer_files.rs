//! What a layer blob holds, read as a stream without unpacking anything: each entry's path,
//! kind and size (for `lockship inspect`, `diff` and `sbom`), and the contents of the few
//! small files a caller asks for (a wheel's `METADATA`). Names are taken as written, never
//! used as host paths.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::Path;

/// One tar entry of a layer.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LayerEntry {
    /// The path inside the image, without a leading `/` or `./`.
    pub path: String,
    pub kind: EntryKind,
    /// Bytes of a regular file; 0 for anything else.
    pub size: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    Hardlink,
    /// A `.wh.` entry: the path is deleted from the layers below.
    Whiteout,
    Other,
}

/// Files asked for larger than this are skipped (a METADATA is a few KB; a hostile layer must
/// not make the reader hold gigabytes).
pub const MAX_CONTENT: u64 = 1 << 20;
/// All the contents kept from one layer, together. A real layer's package metadata is a few
/// MB at most; more is refused rather than held.
pub const MAX_CONTENTS: u64 = 64 << 20;
/// Longer paths are refused: Linux allows 4096 bytes, and a hostile tar can claim far more.
pub const MAX_PATH: usize = 4096;

/// Why a layer could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LayerFilesError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("it holds a path of {0} bytes (at most {MAX_PATH})")]
    PathTooLong(usize),
    #[error("its package metadata passes {} MiB", MAX_CONTENTS >> 20)]
    TooMuchMetadata,
}

/// The diff id of the layer blob at `path`: the sha256 of its tar (gzip, zstd or plain, told
/// by its first bytes).
pub fn diff_id(path: &Path) -> io::Result<crate::digest::Digest> {
    let mut reader = crate::layer_stream::open(path)?;
    let mut hasher = crate::digest::Hasher::default();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finish())
}

/// Reads the layer blob at `path` (gzip, zstd or plain, told by its first bytes),
/// passing every entry to `each` as it streams by (nothing is kept), and returns the contents
/// of regular files whose path `want` accepts and that are at most [`MAX_CONTENT`] bytes.
pub fn read(
    path: &Path,
    want: &dyn Fn(&str) -> bool,
    each: &mut dyn FnMut(&LayerEntry),
) -> Result<BTreeMap<String, Vec<u8>>, LayerFilesError> {
    let mut archive = tar::Archive::new(crate::layer_stream::open(path)?);
    let mut contents = BTreeMap::new();
    let mut kept = 0u64;
    for entry in archive.entries()? {
        let mut entry = entry?;
        let raw = entry.path_bytes();
        if raw.len() > MAX_PATH {
            return Err(LayerFilesError::PathTooLong(raw.len()));
        }
        let path = String::from_utf8_lossy(&raw)
            .trim_start_matches("./")
            .trim_start_matches('/')
            .trim_end_matches('/')
            .to_string();
        if path.is_empty() {
            continue;
        }
        let name = path.rsplit('/').next().unwrap_or("");
        let header_type = entry.header().entry_type();
        let kind = if name.starts_with(".wh.") {
            EntryKind::Whiteout
        } else if header_type.is_file() {
            EntryKind::File
        } else if header_type.is_dir() {
            EntryKind::Dir
        } else if header_type.is_symlink() {
            EntryKind::Symlink
        } else if header_type.is_hard_link() {
            EntryKind::Hardlink
        } else {
            EntryKind::Other
        };
        let size = if kind == EntryKind::File {
            entry.size()
        } else {
            0
        };
        if kind == EntryKind::File && size <= MAX_CONTENT && want(&path) {
            kept += size;
            if kept > MAX_CONTENTS {
                return Err(LayerFilesError::TooMuchMetadata);
            }
            let mut bytes = Vec::with_capacity(size as usize);
            (&mut entry).take(MAX_CONTENT).read_to_end(&mut bytes)?;
            contents.insert(path.clone(), bytes);
        }
        each(&LayerEntry { path, kind, size });
    }
    Ok(contents)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tar_tree::TarTree;

    #[test]
    fn lists_entries_and_keeps_what_is_asked_for() {
        let mut tree = TarTree::new();
        tree.bytes("app/pkg-1.0.dist-info/METADATA", "Name: pkg\n", 0o644);
        tree.bytes("app/pkg/__init__.py", "x = 1\n", 0o644);
        tree.bytes("app/.wh.old", "", 0o644);
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("layer.tar");
        tree.write_tar(std::fs::File::create(&plain).unwrap(), 0)
            .unwrap();
        let gz = dir.path().join("layer.tar.gz");
        let mut enc = flate2::write::GzEncoder::new(
            std::fs::File::create(&gz).unwrap(),
            flate2::Compression::fast(),
        );
        io::copy(&mut std::fs::File::open(&plain).unwrap(), &mut enc).unwrap();
        enc.finish().unwrap();
        for path in [&plain, &gz] {
            let mut entries = Vec::new();
            let contents = read(path, &|p| p.ends_with("/METADATA"), &mut |e| {
                entries.push(e.clone())
            })
            .unwrap();
            let files: Vec<(&str, EntryKind, u64)> = entries
                .iter()
                .filter(|e| e.kind != EntryKind::Dir)
                .map(|e| (e.path.as_str(), e.kind, e.size))
                .collect();
            assert_eq!(
                files,
                [
                    ("app/.wh.old", EntryKind::Whiteout, 0),
                    ("app/pkg-1.0.dist-info/METADATA", EntryKind::File, 10),
                    ("app/pkg/__init__.py", EntryKind::File, 6),
                ]
            );
            assert_eq!(
                contents.keys().collect::<Vec<_>>(),
                ["app/pkg-1.0.dist-info/METADATA"]
            );
        }
    }
}
