//! The contents of one layer as a sorted tree of entries, and its deterministic tar encoding:
//! entries in byte order of their paths, every parent directory present, one fixed mtime,
//! numeric owners, modes normalised to 0755/0644 unless set on purpose.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fs_err as fs;

use super::digest::{ContentCheck, ContentHasher};
use super::gzip_members::inflate_verified;

/// The longest file name (one path component) Linux and every runtime accept: NAME_MAX.
pub const MAX_NAME_BYTES: usize = 255;

/// The longest path (or symlink target) lockship writes: PATH_MAX (4096) less 256 bytes for the
/// directory a runtime unpacks layers into (Docker's overlay2 and containerd's snapshots sit
/// some 100 bytes deep; rootless Podman deeper).
pub const MAX_PATH_BYTES: usize = 3840;

/// Whether `path` (relative, `/`-separated) is a name every runtime can create: no empty, `.`
/// or `..` component, no NUL, each component at most [`MAX_NAME_BYTES`], the whole at most
/// [`MAX_PATH_BYTES`].
pub fn check_path(path: &str) -> Result<(), String> {
    if path.len() > MAX_PATH_BYTES {
        return Err(format!(
            "path of {} bytes is longer than the {MAX_PATH_BYTES} runtimes can unpack",
            path.len()
        ));
    }
    if path.contains('\0') {
        return Err("a NUL byte in a file name".into());
    }
    for part in path.split('/') {
        match part {
            "" | "." | ".." => return Err(format!("a `{part}` component in {path:?}")),
            p if p.len() > MAX_NAME_BYTES => {
                return Err(format!(
                    "a file name of {} bytes (at most {MAX_NAME_BYTES}): {}…",
                    p.len(),
                    p.chars().take(40).collect::<String>()
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

/// A zip archive that entries are read from: its path and the name to show in messages (a
/// wheel's file name, not the cache path it is stored under).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ZipSource {
    pub path: PathBuf,
    pub name: String,
}

/// Zip members at least this large (compressed) are handed to the sink still deflated; smaller
/// ones are inflated and compressed again with their neighbours, which shares context and saves
/// the per-member overhead. Measured on the bench fixtures (bench/fixtures): at 16 KiB the
/// layers of 18 pure-Python wheels come out 1% smaller than one gzip -6 stream of the same tar
/// (at 4 KiB, 1% larger), and the data pipeline's 84% of bytes in such members keep the layer
/// phase at a third of full recompression.
const DEFLATED_MIN: u64 = 16 * 1024;

/// What an entry is and where its bytes come from.
#[derive(Clone, Debug)]
pub enum EntryData {
    Dir,
    /// A regular file copied from the host file system when the tar is written.
    File(PathBuf),
    /// A regular file whose (small) contents are held in memory.
    Bytes(Vec<u8>),
    Symlink(String),
    /// A regular file stored in a zip archive (a wheel), `size` bytes once inflated. Its bytes
    /// are read from the archive when the tar is written, never unpacked to disk; with a
    /// `check`, they must hash to it (a wheel's RECORD), or the tar fails.
    ZipMember {
        archive: Arc<ZipSource>,
        index: usize,
        size: u64,
        check: Option<ContentCheck>,
    },
}

/// One tar entry, minus the path (the tree's key).
#[derive(Clone, Debug)]
pub struct Entry {
    pub data: EntryData,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
}

/// Errors while reading a staged tree or writing a tar.
#[derive(Debug, thiserror::Error)]
pub enum TarTreeError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write layer entry {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{path}: not a regular file, directory or symlink")]
    Unsupported { path: PathBuf },
    #[error("{archive}: {message}")]
    Member { archive: String, message: String },
    #[error("layer entry {path}: {message}")]
    Unpackable { path: String, message: String },
}

/// Where a tar stream goes. Layers keep file data that is already deflated as it is (see
/// [`super::gzip_members`]); any other sink gets the inflated bytes.
pub trait TarSink: Write {
    /// Writes one file's contents, given as a raw deflate stream that inflates to `len` bytes
    /// with CRC-32 `crc`; `seen` gets the inflated bytes too (to check them against a hash).
    fn write_deflated(
        &mut self,
        deflated: &[u8],
        len: u64,
        crc: u32,
        seen: &mut dyn FnMut(&[u8]),
    ) -> io::Result<()> {
        inflate_verified(deflated, len, crc, &mut |chunk| {
            seen(chunk);
            self.write_all(chunk)
        })?;
        Ok(())
    }
}

/// A reader that hashes what passes through it.
struct Hashing<'a, R> {
    inner: R,
    hasher: &'a mut Option<ContentHasher>,
}

impl<R: Read> Read for Hashing<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(h) = self.hasher.as_mut() {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}

/// A plain writer as a [`TarSink`]: deflated data arrives inflated.
pub struct Plain<W>(pub W);

impl<W: Write> Write for Plain<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<W: Write> TarSink for Plain<W> {}

/// Reads exactly `expected` bytes from `inner`, failing if it yields more or fewer, so a
/// tar header's size always matches the data that follows it.
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "entry is longer than its recorded size",
                )),
            };
        }
        let max = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "entry is shorter than its recorded size",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// A layer's file tree keyed by relative path (no leading `/`).
#[derive(Clone, Debug, Default)]
pub struct TarTree {
    entries: BTreeMap<String, Entry>,
}

impl TarTree {
    pub fn new() -> TarTree {
        TarTree::default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Paths in the order they will be written.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Entries in the order they will be written.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.entries.iter().map(|(p, e)| (p.as_str(), e))
    }

    /// Adds an entry at `path` (leading `/` ignored), creating missing parents as root-owned 0755
    /// directories. A later insert at the same path replaces the earlier one.
    pub fn insert(&mut self, path: &str, entry: Entry) {
        let path = path
            .trim_start_matches('/')
            .trim_end_matches('/')
            .to_string();
        if path.is_empty() {
            return;
        }
        let mut parent = path.as_str();
        while let Some((dir, _)) = parent.rsplit_once('/') {
            self.entries.entry(dir.to_string()).or_insert(Entry {
                data: EntryData::Dir,
                mode: 0o755,
                uid: 0,
                gid: 0,
            });
            parent = dir;
        }
        self.entries.insert(path, entry);
    }

    /// Adds a root-owned directory.
    pub fn dir(&mut self, path: &str, mode: u32, uid: u64, gid: u64) {
        self.insert(
            path,
            Entry {
                data: EntryData::Dir,
                mode,
                uid,
                gid,
            },
        );
    }

    /// Adds a root-owned file with in-memory contents.
    pub fn bytes(&mut self, path: &str, contents: impl Into<Vec<u8>>, mode: u32) {
        self.insert(
            path,
            Entry {
                data: EntryData::Bytes(contents.into()),
                mode,
                uid: 0,
                gid: 0,
            },
        );
    }

    /// Adds a root-owned symlink.
    pub fn symlink(&mut self, path: &str, target: &str) {
        self.insert(
            path,
            Entry {
                data: EntryData::Symlink(target.to_string()),
                mode: 0o777,
                uid: 0,
                gid: 0,
            },
        );
    }

    /// Adds everything under the host directory `root` at `prefix` in the image, root-owned,
    /// with modes normalised: directories 0755, files 0755 if any execute bit is set, else 0644.
    pub fn add_host_dir(&mut self, root: &Path, prefix: &str) -> Result<(), TarTreeError> {
        self.walk_host_dir(root, prefix, false)
    }

    /// Like [`TarTree::add_host_dir`], but keeps each entry's permission bits as they are on disk
    /// (for trees that were unpacked with deliberate modes, like Debian packages).
    pub fn add_host_dir_exact(&mut self, root: &Path, prefix: &str) -> Result<(), TarTreeError> {
        self.walk_host_dir(root, prefix, true)
    }

    fn walk_host_dir(
        &mut self,
        root: &Path,
        prefix: &str,
        exact: bool,
    ) -> Result<(), TarTreeError> {
        for item in walkdir::WalkDir::new(root).min_depth(1) {
            let item = item.map_err(|e| TarTreeError::Read {
                path: e.path().unwrap_or(root).to_path_buf(),
                source: e.into(),
            })?;
            let rel = item
                .path()
                .strip_prefix(root)
                .expect("walkdir yields paths under its root");
            let image_path = format!("{}/{}", prefix.trim_end_matches('/'), rel.to_string_lossy());
            self.add_host_entry(item.path(), &image_path, exact)?;
        }
        Ok(())
    }

    /// Adds one host file, directory or symlink at `image_path`, with its mode as on disk.
    pub fn add_host_path_exact(
        &mut self,
        host: &Path,
        image_path: &str,
    ) -> Result<(), TarTreeError> {
        self.add_host_entry(host, image_path, true)
    }

    /// Adds one host file, directory or symlink at `image_path`, with normalised mode.
    pub fn add_host_path(&mut self, host: &Path, image_path: &str) -> Result<(), TarTreeError> {
        self.add_host_entry(host, image_path, false)
    }

    fn add_host_entry(
        &mut self,
        host: &Path,
        image_path: &str,
        exact: bool,
    ) -> Result<(), TarTreeError> {
        use std::os::unix::fs::PermissionsExt;
        let meta = fs::symlink_metadata(host).map_err(|e| TarTreeError::Read {
            path: host.to_path_buf(),
            source: e,
        })?;
        let kind = meta.file_type();
        let (data, normal_mode) = if kind.is_dir() {
            (EntryData::Dir, 0o755)
        } else if kind.is_symlink() {
            let target = fs::read_link(host).map_err(|e| TarTreeError::Read {
                path: host.to_path_buf(),
                source: e,
            })?;
            (
                EntryData::Symlink(target.to_string_lossy().into_owned()),
                0o777,
            )
        } else if kind.is_file() {
            let exec = meta.permissions().mode() & 0o111 != 0;
            (
                EntryData::File(host.to_path_buf()),
                if exec { 0o755 } else { 0o644 },
            )
        } else {
            return Err(TarTreeError::Unsupported {
                path: host.to_path_buf(),
            });
        };
        let mode = if exact && !kind.is_symlink() {
            meta.permissions().mode() & 0o7777
        } else {
            normal_mode
        };
        self.insert(
            image_path,
            Entry {
                data,
                mode,
                uid: 0,
                gid: 0,
            },
        );
        Ok(())
    }

    /// Writes the tree as a tar stream with every mtime set to `mtime` (seconds since epoch).
    pub fn write_tar<W: Write>(&self, out: W, mtime: u64) -> Result<W, TarTreeError> {
        self.write_tar_to(Plain(out), mtime).map(|p| p.0)
    }

    /// Checks that every runtime can unpack the tree: names within the limits (see
    /// [`check_path`]), and every entry's parent a directory. Entries are never written through
    /// a symlink or into a file, whatever the order in which they were added.
    pub fn validate(&self) -> Result<(), TarTreeError> {
        for (path, entry) in &self.entries {
            let unpackable = |message: String| TarTreeError::Unpackable {
                path: path.clone(),
                message,
            };
            check_path(path).map_err(unpackable)?;
            if let EntryData::Symlink(target) = &entry.data {
                if target.len() > MAX_PATH_BYTES || target.is_empty() || target.contains('\0') {
                    return Err(unpackable(format!(
                        "symlink target of {} bytes is empty, holds a NUL or is longer than {MAX_PATH_BYTES}",
                        target.len()
                    )));
                }
            }
            if let Some((parent, _)) = path.rsplit_once('/') {
                match self.entries.get(parent).map(|e| &e.data) {
                    Some(EntryData::Dir) => {}
                    Some(EntryData::Symlink(_)) => {
                        return Err(unpackable(format!(
                            "{parent} is a symlink; nothing may be written through one"
                        )))
                    }
                    Some(_) => {
                        return Err(unpackable(format!(
                            "{parent} is a file, so it cannot also be a directory"
                        )))
                    }
                    None => return Err(unpackable(format!("{parent} is missing"))),
                }
            }
        }
        Ok(())
    }

    /// Like [`TarTree::write_tar`], into a sink that may keep zip members' data deflated.
    pub fn write_tar_to<S: TarSink>(&self, out: S, mtime: u64) -> Result<S, TarTreeError> {
        self.validate()?;
        let mut builder = tar::Builder::new(out);
        builder.mode(tar::HeaderMode::Deterministic);
        let mut archives: HashMap<Arc<ZipSource>, zip::ZipArchive<io::BufReader<std::fs::File>>> =
            HashMap::new();
        let mut deflated = Vec::new();
        for (path, entry) in &self.entries {
            let werr = |source| TarTreeError::Write {
                path: path.clone(),
                source,
            };
            let mut header = tar::Header::new_gnu();
            header.set_mtime(mtime);
            header.set_uid(entry.uid);
            header.set_gid(entry.gid);
            header.set_mode(entry.mode);
            match &entry.data {
                EntryData::Dir => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_size(0);
                    builder
                        .append_data(&mut header, format!("{path}/"), io::empty())
                        .map_err(werr)?;
                }
                EntryData::Bytes(bytes) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(bytes.len() as u64);
                    builder
                        .append_data(&mut header, path, bytes.as_slice())
                        .map_err(werr)?;
                }
                EntryData::File(host) => {
                    let file = fs::File::open(host).map_err(|e| TarTreeError::Read {
                        path: host.clone(),
                        source: e,
                    })?;
                    let size = file
                        .metadata()
                        .map_err(|e| TarTreeError::Read {
                            path: host.clone(),
                            source: e,
                        })?
                        .len();
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(size);
                    builder
                        .append_data(&mut header, path, io::BufReader::new(file))
                        .map_err(werr)?;
                }
                EntryData::Symlink(target) => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_size(0);
                    builder
                        .append_link(&mut header, path, target)
                        .map_err(werr)?;
                }
                EntryData::ZipMember {
                    archive,
                    index,
                    size,
                    check,
                } => {
                    let merr = |message: String| TarTreeError::Member {
                        archive: archive.name.clone(),
                        message,
                    };
                    let zip = match archives.entry(archive.clone()) {
                        std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                        std::collections::hash_map::Entry::Vacant(v) => {
                            let file =
                                fs::File::open(&archive.path).map_err(|e| merr(e.to_string()))?;
                            v.insert(
                                zip::ZipArchive::new(io::BufReader::new(file.into_parts().0))
                                    .map_err(|e| merr(e.to_string()))?,
                            )
                        }
                    };
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(*size);
                    let mut hasher = check.as_ref().map(ContentCheck::hasher);
                    let mut raw = zip.by_index_raw(*index).map_err(|e| merr(e.to_string()))?;
                    let crc = raw.crc32();
                    if raw.compression() == zip::CompressionMethod::Deflated
                        && raw.compressed_size() >= DEFLATED_MIN
                    {
                        deflated.clear();
                        raw.read_to_end(&mut deflated)
                            .map_err(|e| merr(e.to_string()))?;
                        drop(raw);
                        // The header alone: tar pads by the bytes it copied, here none.
                        builder
                            .append_data(&mut header, path, io::empty())
                            .map_err(werr)?;
                        let sink = builder.get_mut();
                        sink.write_deflated(&deflated, *size, crc, &mut |chunk| {
                            if let Some(h) = hasher.as_mut() {
                                h.update(chunk);
                            }
                        })
                        .map_err(|e| merr(format!("{path}: {e}")))?;
                        let pad = (512 - size % 512) % 512;
                        sink.write_all(&[0u8; 512][..pad as usize]).map_err(werr)?;
                    } else {
                        drop(raw);
                        let member = zip.by_index(*index).map_err(|e| merr(e.to_string()))?;
                        let reader = Hashing {
                            inner: Exact {
                                inner: member,
                                left: *size,
                            },
                            hasher: &mut hasher,
                        };
                        builder
                            .append_data(&mut header, path, reader)
                            .map_err(|e| merr(format!("{path}: {e}")))?;
                    }
                    if let (Some(h), Some(check)) = (hasher, check) {
                        if !h.matches(check) {
                            return Err(merr(format!(
                                "{path}: its contents do not match the hash RECORD gives for it"
                            )));
                        }
                    }
                }
            }
        }
        builder.into_inner().map_err(|source| TarTreeError::Write {
            path: "(end of archive)".into(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_are_created_and_order_is_sorted() {
        let mut t = TarTree::new();
        t.bytes("/opt/venv/b.txt", "b", 0o644);
        t.bytes("opt/venv/a.txt", "a", 0o644);
        t.symlink("opt/venv/bin/python", "/usr/bin/python3.11");
        let paths: Vec<_> = t.paths().collect();
        assert_eq!(
            paths,
            [
                "opt",
                "opt/venv",
                "opt/venv/a.txt",
                "opt/venv/b.txt",
                "opt/venv/bin",
                "opt/venv/bin/python"
            ]
        );
    }

    #[test]
    fn trees_runtimes_cannot_unpack_are_refused() {
        let err = |t: &TarTree| t.write_tar(Vec::new(), 0).unwrap_err().to_string();
        // A symlink with entries under it: they would be written wherever it points.
        let mut t = TarTree::new();
        t.symlink("site/evil", "../../../etc");
        t.bytes("site/evil/passwd", "root::0:0::/:/bin/sh\n", 0o644);
        assert!(err(&t).contains("site/evil is a symlink"), "{}", err(&t));
        // A file and a directory of the same name.
        let mut t = TarTree::new();
        t.bytes("pkg/x/y.py", "", 0o644);
        t.bytes("pkg/x", "file", 0o644);
        assert!(err(&t).contains("pkg/x is a file"), "{}", err(&t));
        // Names past NAME_MAX and PATH_MAX.
        let mut t = TarTree::new();
        t.bytes(&format!("pkg/{}", "a".repeat(300)), "", 0o644);
        assert!(err(&t).contains("300 bytes"), "{}", err(&t));
        let mut t = TarTree::new();
        let deep = vec!["d".repeat(200); 20].join("/");
        t.bytes(&deep, "", 0o644);
        assert!(err(&t).contains("longer than"), "{}", err(&t));
        assert!(check_path("a/b/c.py").is_ok());
        assert!(check_path("a/../b").is_err());
    }

    #[test]
    fn same_tree_same_bytes_and_mtime_is_applied() {
        let mut t = TarTree::new();
        t.bytes("x/y", "hello", 0o600);
        let a = t.write_tar(Vec::new(), 1_700_000_000).unwrap();
        let b = t.write_tar(Vec::new(), 1_700_000_000).unwrap();
        assert_eq!(a, b);
        let mut archive = tar::Archive::new(a.as_slice());
        let entries: Vec<_> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    h.mtime().unwrap(),
                    h.mode().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            entries,
            [
                ("x/".to_string(), 1_700_000_000, 0o755),
                ("x/y".to_string(), 1_700_000_000, 0o600)
            ]
        );
    }
}
