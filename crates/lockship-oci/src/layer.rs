//! Turns a [`TarTree`] into a gzip-compressed layer blob in the [`BlobStore`], streaming:
//! tar → hash (diff id) → gzip → hash (digest) → file. Memory stays flat whatever the size.

use std::io::{self, Write};

use serde::{Deserialize, Serialize};

use super::blob_store::{BlobStore, BlobStoreError};
use super::digest::{Digest, HashingWriter};
use super::gzip_members::{inflate_verified, Inflated, MemberWriter};
use super::media_types;
use super::tar_tree::{TarSink, TarTree, TarTreeError};

/// What an image needs to know about a layer blob.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerInfo {
    pub media_type: String,
    /// Digest of the compressed blob.
    pub digest: Digest,
    /// Size of the compressed blob.
    pub size: u64,
    /// Digest of the uncompressed tar (the config's `rootfs.diff_ids`).
    pub diff_id: Digest,
    /// Size of the uncompressed tar.
    pub uncompressed_size: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error(transparent)]
    Tree(#[from] TarTreeError),
    #[error(transparent)]
    Store(#[from] BlobStoreError),
    #[error("cannot compress layer: {0}")]
    Compress(#[source] std::io::Error),
}

/// How a layer's tar is compressed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compression {
    /// gzip as a series of members, files that arrive deflated (from wheels) copied as
    /// members of their own: every runtime reads it, and it is written fastest.
    #[default]
    Gzip,
    /// gzip as one member, everything compressed again: for the few readers that stop after
    /// the first member (Python's `tarfile` in stream mode, Rust's `flate2::read::GzDecoder`).
    GzipSingle,
    /// zstd (level 3): smaller and faster to unpack, for runtimes that read it.
    Zstd,
}

impl Compression {
    /// The config's names: `gzip`, `gzip-single`, `zstd`.
    pub const NAMES: [&'static str; 3] = ["gzip", "gzip-single", "zstd"];

    pub fn parse(name: &str) -> Option<Compression> {
        match name {
            "gzip" => Some(Compression::Gzip),
            "gzip-single" => Some(Compression::GzipSingle),
            "zstd" => Some(Compression::Zstd),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::GzipSingle => "gzip-single",
            Compression::Zstd => "zstd",
        }
    }

    pub fn media_type(self) -> &'static str {
        match self {
            Compression::Gzip | Compression::GzipSingle => media_types::OCI_LAYER_GZIP,
            Compression::Zstd => media_types::OCI_LAYER_ZSTD,
        }
    }
}

/// The compressed stream under a layer's tar.
enum Compressor<W: Write> {
    Members(MemberWriter<W>),
    Single(flate2::write::GzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Write for Compressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Compressor::Members(w) => w.write(buf),
            Compressor::Single(w) => w.write(buf),
            Compressor::Zstd(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Compressor::Members(w) => w.flush(),
            Compressor::Single(w) => w.flush(),
            Compressor::Zstd(w) => w.flush(),
        }
    }
}

impl<W: Write> Compressor<W> {
    fn new(inner: W, compression: Compression, level: u32) -> io::Result<Compressor<W>> {
        Ok(match compression {
            Compression::Gzip => Compressor::Members(MemberWriter::new(inner, level)),
            // No name, no mtime, OS "unknown": fixed header bytes keep layers reproducible.
            Compression::GzipSingle => Compressor::Single(
                flate2::GzBuilder::new()
                    .operating_system(255)
                    .write(inner, flate2::Compression::new(level)),
            ),
            Compression::Zstd => Compressor::Zstd(zstd::stream::write::Encoder::new(inner, 3)?),
        })
    }

    fn finish(self) -> io::Result<W> {
        match self {
            Compressor::Members(w) => w.finish(),
            Compressor::Single(w) => w.finish(),
            Compressor::Zstd(w) => w.finish(),
        }
    }
}

/// Writes `tree` as a gzip layer into `store` with every mtime set to `mtime`.
pub fn write_layer(tree: &TarTree, mtime: u64, store: &BlobStore) -> Result<LayerInfo, LayerError> {
    write_layer_as(tree, mtime, store, Compression::Gzip)
}

/// [`write_layer`] compressed as `compression` says.
pub fn write_layer_as(
    tree: &TarTree,
    mtime: u64,
    store: &BlobStore,
    compression: Compression,
) -> Result<LayerInfo, LayerError> {
    // Level 6 is gzip's default: 1 gains ~30% speed but layers grow ~30% (DEPENDENCIES.md),
    // and layers are pushed and pulled far more often than they are built. With `Gzip`, files
    // that arrive deflated (from wheels) are not compressed again at all: see `TarSink` below.
    write_compressed(tree, mtime, store, compression, 6)
}

/// The one layer writer: tar → hash → compress → hash → store.
fn write_compressed(
    tree: &TarTree,
    mtime: u64,
    store: &BlobStore,
    compression: Compression,
    level: u32,
) -> Result<LayerInfo, LayerError> {
    let pending = store.begin()?;
    let out = Compressor::new(pending, compression, level).map_err(LayerError::Compress)?;
    let tar_out = HashingWriter::new(out);
    let tar_out = tree.write_tar_to(tar_out, mtime)?;
    let (out, diff_id, uncompressed_size) = tar_out.finish();
    let pending = out.finish().map_err(LayerError::Compress)?;
    let (digest, size) = store.commit(pending, None, "layer")?;
    Ok(LayerInfo {
        media_type: compression.media_type().to_string(),
        digest,
        size,
        diff_id,
        uncompressed_size,
    })
}

/// [`write_layer`] at gzip `level`: 1 for a layer that never leaves this machine (a builder
/// image loaded into the local runtime), where writing it is all it costs.
pub fn write_layer_at(
    tree: &TarTree,
    mtime: u64,
    store: &BlobStore,
    level: u32,
) -> Result<LayerInfo, LayerError> {
    write_compressed(tree, mtime, store, Compression::Gzip, level)
}

/// The layer's tar stream: every byte is hashed for the diff id. With `Gzip`, bytes that
/// arrive deflated become gzip members as they are, after inflating them once to hash and check
/// them; other compressions get the inflated bytes like any others.
impl<W: Write> TarSink for HashingWriter<Compressor<W>> {
    fn write_deflated(
        &mut self,
        deflated: &[u8],
        len: u64,
        crc: u32,
        seen: &mut dyn FnMut(&[u8]),
    ) -> io::Result<()> {
        let members = matches!(self.get_mut(), Compressor::Members(_));
        let check = inflate_verified(deflated, len, crc, &mut |chunk| {
            seen(chunk);
            if members {
                self.observe(chunk);
                Ok(())
            } else {
                self.write_all(chunk)
            }
        })?;
        match self.get_mut() {
            Compressor::Members(gz) => match check {
                Inflated::Exact => gz.raw_member(deflated, crc, len),
                Inflated::TrailingBytes => {
                    inflate_verified(deflated, len, crc, &mut |chunk| gz.write_all(chunk))?;
                    Ok(())
                }
            },
            // Written through above.
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn layer_digests_describe_the_stored_blob() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let mut tree = TarTree::new();
        tree.bytes("app/main.py", "print('hi')\n", 0o644);
        let a = write_layer(&tree, 0, &store).unwrap();
        let b = write_layer(&tree, 0, &store).unwrap();
        assert_eq!(a, b, "same tree, same layer");
        let blob = std::fs::read(store.path(&a.digest)).unwrap();
        assert_eq!(Digest::of_bytes(&blob), a.digest);
        assert_eq!(blob.len() as u64, a.size);
        let mut tar = Vec::new();
        flate2::read::MultiGzDecoder::new(blob.as_slice())
            .read_to_end(&mut tar)
            .unwrap();
        assert_eq!(Digest::of_bytes(&tar), a.diff_id);
        let other = write_layer(&tree, 1, &store).unwrap();
        assert_ne!(other.diff_id, a.diff_id, "mtime is part of the layer");
    }

    /// A zip with one large member (kept deflated in the layer), one small one (compressed
    /// again with its neighbours) and one stored uncompressed.
    fn zip_fixture(dir: &std::path::Path) -> (std::path::PathBuf, Vec<u8>) {
        use zip::write::SimpleFileOptions;
        let big: Vec<u8> = (0..60_000u32)
            .flat_map(|i| format!("{} ", i.wrapping_mul(2_654_435_761) % 10_007).into_bytes())
            .collect();
        let path = dir.join("pkg.whl");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        let deflated = SimpleFileOptions::default();
        zip.start_file("pkg/big.py", deflated).unwrap();
        zip.write_all(&big).unwrap();
        zip.start_file("pkg/small.py", deflated).unwrap();
        zip.write_all(b"x = 1\n").unwrap();
        let stored = deflated.compression_method(zip::CompressionMethod::Stored);
        zip.start_file("pkg/stored.bin", stored).unwrap();
        zip.write_all(b"stored bytes").unwrap();
        zip.finish().unwrap();
        (path, big)
    }

    /// A tree of the zip's members; `check` gives each the hash of `check(contents)`.
    fn zip_tree_checked(path: &std::path::Path, check: fn(&[u8]) -> Vec<u8>) -> TarTree {
        use sha2::Digest as _;
        let archive = std::sync::Arc::new(crate::tar_tree::ZipSource {
            path: path.to_path_buf(),
            name: "pkg.whl".into(),
        });
        let mut zip = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
        let mut tree = TarTree::new();
        for index in 0..zip.len() {
            let mut member = zip.by_index(index).unwrap();
            let mut contents = Vec::new();
            // A member corrupted on purpose cannot be read: it gets no check.
            let readable = member.read_to_end(&mut contents).is_ok();
            let hashed = sha2::Sha256::digest(check(&contents));
            tree.insert(
                &format!("site/{}", member.name().unwrap()),
                crate::tar_tree::Entry {
                    data: crate::tar_tree::EntryData::ZipMember {
                        archive: archive.clone(),
                        index,
                        size: member.size(),
                        check: readable
                            .then(|| crate::digest::ContentCheck::new("sha256", &hashed))
                            .flatten(),
                    },
                    mode: 0o644,
                    uid: 0,
                    gid: 0,
                },
            );
        }
        tree.bytes("site/after.txt", "a file after the members", 0o644);
        tree
    }

    fn zip_tree(path: &std::path::Path) -> TarTree {
        zip_tree_checked(path, |c| c.to_vec())
    }

    #[test]
    fn members_must_match_their_recorded_hash() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = zip_fixture(dir.path());
        let store = BlobStore::open(dir.path().join("store")).unwrap();
        // The big member is kept deflated, the small ones recompressed: both paths check.
        let tree = zip_tree_checked(&path, |c| {
            let mut other = c.to_vec();
            other.push(b'!');
            other
        });
        let err = write_layer(&tree, 0, &store).unwrap_err().to_string();
        assert!(
            err.starts_with(
                "pkg.whl: site/pkg/big.py: its contents do not match the hash RECORD gives"
            ),
            "{err}"
        );
        assert_eq!(
            std::fs::read_dir(dir.path().join("store/sha256"))
                .unwrap()
                .count(),
            0
        );
    }

    #[test]
    fn zip_members_keep_their_deflated_bytes_and_the_tar_is_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let (path, big) = zip_fixture(dir.path());
        let tree = zip_tree(&path);
        let store = BlobStore::open(dir.path().join("store")).unwrap();
        let info = write_layer(&tree, 0, &store).unwrap();
        let blob = std::fs::read(store.path(&info.digest)).unwrap();

        // The tar inside is exactly what a plain writer produces from the same tree.
        let plain = tree.write_tar(Vec::new(), 0).unwrap();
        let mut tar = Vec::new();
        flate2::read::MultiGzDecoder::new(blob.as_slice())
            .read_to_end(&mut tar)
            .unwrap();
        assert_eq!(tar, plain);
        assert_eq!(Digest::of_bytes(&tar), info.diff_id);
        assert_eq!(info.uncompressed_size, plain.len() as u64);
        let mut archive = tar::Archive::new(plain.as_slice());
        let big_entry = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap())
            .find(|e| e.path().unwrap().ends_with("big.py"))
            .map(|mut e| {
                let mut v = Vec::new();
                e.read_to_end(&mut v).unwrap();
                v
            })
            .unwrap();
        assert_eq!(big_entry, big);

        // The big member's deflated bytes sit in the blob verbatim: nothing compressed them again.
        let mut zip = zip::ZipArchive::new(std::fs::File::open(&path).unwrap()).unwrap();
        let mut raw = Vec::new();
        zip.by_index_raw(0).unwrap().read_to_end(&mut raw).unwrap();
        assert!(
            raw.len() as u64 >= 4096,
            "fixture member too small to splice"
        );
        assert!(blob.windows(raw.len()).any(|w| w == raw.as_slice()));

        // Same inputs, same blob.
        assert_eq!(write_layer(&tree, 0, &store).unwrap(), info);
    }

    #[test]
    fn a_corrupt_member_fails_the_layer_and_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = zip_fixture(dir.path());
        let mut bytes = std::fs::read(&path).unwrap();
        // Flip a byte inside the big member's deflated data (just past its local header).
        let at = 30 + "pkg/big.py".len() + 200;
        bytes[at] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let tree = zip_tree(&path);
        let store = BlobStore::open(dir.path().join("store")).unwrap();
        let err = write_layer(&tree, 0, &store).unwrap_err().to_string();
        assert!(err.contains("pkg.whl"), "{err}");
        let blobs = std::fs::read_dir(dir.path().join("store/sha256"))
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(blobs, 0, "a failed layer leaves no blob");
        let tmp = std::fs::read_dir(dir.path().join("store/tmp"))
            .unwrap()
            .count();
        assert_eq!(tmp, 0, "a failed layer leaves no temporary file");
    }

    #[test]
    fn every_compression_holds_the_same_tar_and_is_reproducible() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path().join("store")).unwrap();
        let (zip, _) = zip_fixture(dir.path());
        let tree = zip_tree(&zip);
        let gzip = write_layer_as(&tree, 0, &store, Compression::Gzip).unwrap();
        for compression in [Compression::GzipSingle, Compression::Zstd] {
            let info = write_layer_as(&tree, 0, &store, compression).unwrap();
            assert_eq!(info, write_layer_as(&tree, 0, &store, compression).unwrap());
            assert_eq!(info.diff_id, gzip.diff_id, "{compression:?}: another tar");
            assert_eq!(info.media_type, compression.media_type());
            assert_ne!(info.digest, gzip.digest);
            let blob = std::fs::read(store.path(&info.digest)).unwrap();
            let mut tar = Vec::new();
            match compression {
                // A reader that stops after the first member still gets the whole tar.
                Compression::GzipSingle => {
                    flate2::read::GzDecoder::new(blob.as_slice())
                        .read_to_end(&mut tar)
                        .unwrap();
                }
                _ => {
                    zstd::stream::read::Decoder::new(blob.as_slice())
                        .unwrap()
                        .read_to_end(&mut tar)
                        .unwrap();
                }
            }
            assert_eq!(tar.len() as u64, info.uncompressed_size);
            assert_eq!(crate::digest::Digest::of_bytes(&tar), info.diff_id);
        }
        assert_eq!(
            Compression::parse("gzip-single"),
            Some(Compression::GzipSingle)
        );
        assert_eq!(Compression::parse("lz4"), None);
    }
}
