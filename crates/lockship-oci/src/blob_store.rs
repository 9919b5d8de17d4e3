//! A content-addressed blob store on disk (`<root>/sha256/<hex>`), shared by layers, configs,
//! base image blobs and wheels. Entries appear atomically and only after their digest checks out,
//! so a crash or a bad download never leaves a corrupt entry behind; and an entry damaged on
//! disk afterwards is caught when it is read ([`BlobStore::verify`]), removed, and noted in
//! [`BlobStore::take_evictions`] so the caller can warn and fetch or build it again.

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use fs_err as fs;

use super::digest::{Digest, Hasher, HashingWriter};
use lockship_sys::scratch::{self, ScratchFile};

#[derive(Debug, thiserror::Error)]
pub enum BlobStoreError {
    #[error("cannot write to the cache at {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{what}: content digest is {actual}, expected {expected}")]
    DigestMismatch {
        what: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("cached blob {digest} ({what}) was damaged on disk; it has been removed")]
    Corrupt { digest: Digest, what: String },
}

/// A blob that failed verification when read, and was removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Eviction {
    pub digest: Digest,
    /// What the blob held (a wheel's file name, "layer", "base layer of …").
    pub what: String,
}

/// A directory of blobs named by their SHA-256.
#[derive(Clone, Debug)]
pub struct BlobStore {
    root: PathBuf,
    /// Blobs hashed (or written) by this process, so a blob read twice is hashed once.
    verified: Arc<Mutex<HashSet<Digest>>>,
    evictions: Arc<Mutex<Vec<Eviction>>>,
}

/// A blob being written: bytes go to a temporary file in the store and are hashed on the way.
pub struct PendingBlob {
    writer: HashingWriter<io::BufWriter<ScratchFile>>,
}

impl Write for PendingBlob {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

impl BlobStore {
    /// Opens (creating if needed) a store rooted at `root`, removing what killed processes left
    /// in its temporary directory.
    pub fn open(root: impl Into<PathBuf>) -> Result<BlobStore, BlobStoreError> {
        let root = root.into();
        for dir in [root.join("sha256"), root.join("tmp")] {
            fs::create_dir_all(&dir).map_err(|source| BlobStoreError::Io {
                path: dir.clone(),
                source,
            })?;
        }
        scratch::sweep(&root.join("tmp"));
        Ok(BlobStore {
            root,
            verified: Arc::default(),
            evictions: Arc::default(),
        })
    }

    /// Where the blob with this digest lives (whether or not it is there).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.root.join("sha256").join(digest.hex())
    }

    /// Whether a blob of this name is present (without reading it); a present one is marked
    /// used, for `lockship cache prune`.
    pub fn contains(&self, digest: &Digest) -> bool {
        let path = self.path(digest);
        let present = path.is_file();
        if present {
            lockship_sys::cache_lock::touch(&path);
        }
        present
    }

    /// A scratch directory on the store's file system, for staging that ends in a rename;
    /// what killed processes leave in it is swept when the store opens.
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Whether the blob is present and its bytes still hash to its name. A damaged blob is
    /// removed, recorded as an eviction (`what` says what it held), and reported absent, so the
    /// caller fetches or builds it again.
    pub fn verify(&self, digest: &Digest, what: &str) -> Result<bool, BlobStoreError> {
        if self.is_verified(digest) {
            return Ok(self.contains(digest));
        }
        let path = self.path(digest);
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(source) => return Err(BlobStoreError::Io { path, source }),
        };
        let actual = hash_reader(file).map_err(|source| BlobStoreError::Io {
            path: path.clone(),
            source,
        })?;
        if actual == *digest {
            self.mark_verified(digest);
            lockship_sys::cache_lock::touch(&path);
            return Ok(true);
        }
        self.evict(digest, what);
        Ok(false)
    }

    /// Removes a damaged blob and notes it (see [`BlobStore::take_evictions`]).
    pub fn evict(&self, digest: &Digest, what: &str) {
        let _ = std::fs::remove_file(self.path(digest));
        self.lock_verified().remove(digest);
        self.evictions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Eviction {
                digest: digest.clone(),
                what: what.to_string(),
            });
    }

    /// The blobs evicted since the last call, for the caller to warn about.
    pub fn take_evictions(&self) -> Vec<Eviction> {
        std::mem::take(&mut *self.evictions.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Starts writing a new blob whose digest is learned as it is written.
    pub fn begin(&self) -> Result<PendingBlob, BlobStoreError> {
        let tmp = self.tmp_dir();
        let file = ScratchFile::new_in(&tmp, ".partial")
            .map_err(|source| BlobStoreError::Io { path: tmp, source })?;
        Ok(PendingBlob {
            writer: HashingWriter::new(io::BufWriter::with_capacity(1 << 20, file)),
        })
    }

    /// Finishes a blob: if `expected` is given and differs, the bytes are discarded and an error
    /// names `what`. Returns the digest and size of what was stored.
    pub fn commit(
        &self,
        pending: PendingBlob,
        expected: Option<&Digest>,
        what: &str,
    ) -> Result<(Digest, u64), BlobStoreError> {
        let (buf, digest, size) = pending.writer.finish();
        let file = buf.into_inner().map_err(|e| BlobStoreError::Io {
            path: self.tmp_dir(),
            source: e.into_error(),
        })?;
        if let Some(expected) = expected {
            if *expected != digest {
                // Dropping the temp file deletes it: nothing unverified stays in the store.
                return Err(BlobStoreError::DigestMismatch {
                    what: what.to_string(),
                    expected: expected.clone(),
                    actual: digest,
                });
            }
        }
        let dest = self.path(&digest);
        // A blob already there may be one damaged on disk: the fresh bytes replace it.
        file.persist(&dest).map_err(|source| BlobStoreError::Io {
            path: dest.clone(),
            source,
        })?;
        self.mark_verified(&digest);
        Ok((digest, size))
    }

    /// Stores a small in-memory blob (configs, manifests).
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Digest, BlobStoreError> {
        let mut pending = self.begin()?;
        pending
            .write_all(bytes)
            .map_err(|source| BlobStoreError::Io {
                path: self.tmp_dir(),
                source,
            })?;
        Ok(self.commit(pending, None, "blob")?.0)
    }

    /// Reads a whole (small) blob into memory, checking it: configs and manifests. A damaged
    /// blob is evicted and reported as [`BlobStoreError::Corrupt`].
    pub fn read(&self, digest: &Digest, what: &str) -> Result<Vec<u8>, BlobStoreError> {
        let path = self.path(digest);
        let bytes = fs::read(&path).map_err(|source| BlobStoreError::Io { path, source })?;
        if Digest::of_bytes(&bytes) != *digest {
            self.evict(digest, what);
            return Err(BlobStoreError::Corrupt {
                digest: digest.clone(),
                what: what.to_string(),
            });
        }
        Ok(bytes)
    }

    /// Copies a blob to `dest` (a new file), checking its digest on the way; on a mismatch the
    /// blob is evicted, `dest` is removed, and the error is [`BlobStoreError::Corrupt`]. Copies
    /// never share an inode with the store, so changing an output cannot damage the cache.
    pub fn copy_to(
        &self,
        digest: &Digest,
        what: &str,
        dest: &mut impl Write,
    ) -> Result<u64, BlobStoreError> {
        let path = self.path(digest);
        let file = fs::File::open(&path).map_err(|source| BlobStoreError::Io {
            path: path.clone(),
            source,
        })?;
        let mut out = HashingWriter::new(dest);
        io::copy(&mut io::BufReader::with_capacity(1 << 20, file), &mut out).map_err(|source| {
            BlobStoreError::Io {
                path: path.clone(),
                source,
            }
        })?;
        let (_, actual, size) = out.finish();
        if actual != *digest {
            self.evict(digest, what);
            return Err(BlobStoreError::Corrupt {
                digest: digest.clone(),
                what: what.to_string(),
            });
        }
        self.mark_verified(digest);
        Ok(size)
    }

    fn lock_verified(&self) -> std::sync::MutexGuard<'_, HashSet<Digest>> {
        self.verified.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_verified(&self, digest: &Digest) -> bool {
        self.lock_verified().contains(digest)
    }

    fn mark_verified(&self, digest: &Digest) {
        self.lock_verified().insert(digest.clone());
    }
}

impl BlobStoreError {
    /// Whether this is a damaged cache entry (already evicted): building again repairs it.
    pub fn is_corrupt(&self) -> bool {
        matches!(self, BlobStoreError::Corrupt { .. })
    }
}

fn hash_reader(mut reader: impl Read) -> io::Result<Digest> {
    let mut hasher = Hasher::default();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok(hasher.finish());
        }
        hasher.update(&buf[..n]);
    }
}

/// Copies `digest` out of `store` into a file at `dest`, never as a link to the store's file.
pub fn copy_blob_file(
    store: &BlobStore,
    digest: &Digest,
    what: &str,
    dest: &Path,
) -> Result<(), BlobStoreError> {
    let parent = dest.parent().unwrap_or(Path::new("."));
    let mut tmp = ScratchFile::new_in(parent, "").map_err(|source| BlobStoreError::Io {
        path: parent.to_path_buf(),
        source,
    })?;
    {
        let mut out = io::BufWriter::with_capacity(1 << 20, &mut tmp);
        store.copy_to(digest, what, &mut out)?;
        out.flush().map_err(|source| BlobStoreError::Io {
            path: dest.to_path_buf(),
            source,
        })?;
    }
    tmp.persist(dest).map_err(|source| BlobStoreError::Io {
        path: dest.to_path_buf(),
        source,
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mismatch_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let mut p = store.begin().unwrap();
        p.write_all(b"abc").unwrap();
        let wrong = Digest::of_bytes(b"xyz");
        let err = store.commit(p, Some(&wrong), "test blob").unwrap_err();
        assert!(err.to_string().contains("test blob"), "{err}");
        assert_eq!(
            std::fs::read_dir(dir.path().join("sha256"))
                .unwrap()
                .count(),
            0
        );
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
        let ok = store.put_bytes(b"abc").unwrap();
        assert_eq!(ok, Digest::of_bytes(b"abc"));
        assert_eq!(store.read(&ok, "test").unwrap(), b"abc");
    }

    #[test]
    fn a_blob_damaged_on_disk_is_evicted_when_read() {
        let dir = tempfile::tempdir().unwrap();
        let digest = BlobStore::open(dir.path())
            .unwrap()
            .put_bytes(b"wheel bytes")
            .unwrap();
        // A fresh store (another run) has not hashed it yet.
        let store = BlobStore::open(dir.path()).unwrap();
        std::fs::write(store.path(&digest), b"wheel bytez").unwrap();
        assert!(store.contains(&digest));
        assert!(!store.verify(&digest, "demo.whl").unwrap());
        assert!(!store.contains(&digest), "the damaged blob is gone");
        assert_eq!(
            store.take_evictions(),
            [Eviction {
                digest: digest.clone(),
                what: "demo.whl".into()
            }]
        );
        assert!(store.take_evictions().is_empty());

        // Copying out checks too, and leaves no output behind.
        let digest = store.put_bytes(b"layer").unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        std::fs::write(store.path(&digest), b"layeR").unwrap();
        let dest = dir.path().join("out.blob");
        let err = copy_blob_file(&store, &digest, "layer", &dest).unwrap_err();
        assert!(err.is_corrupt(), "{err}");
        assert!(!dest.exists() && !store.contains(&digest));
    }

    #[test]
    fn copies_do_not_share_the_inode() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path().join("store")).unwrap();
        let digest = store.put_bytes(b"blob").unwrap();
        let dest = dir.path().join("copy");
        copy_blob_file(&store, &digest, "blob", &dest).unwrap();
        let (a, b) = (
            std::fs::metadata(store.path(&digest)).unwrap(),
            std::fs::metadata(&dest).unwrap(),
        );
        assert_ne!(a.ino(), b.ino());
        std::fs::write(&dest, b"changed").unwrap();
        assert_eq!(std::fs::read(store.path(&digest)).unwrap(), b"blob");
    }
}
