//! A content-addressed blob store on disk (`<root>/sha256/<hex>`), shared by layers, configs,
//! base image blobs and wheels. Entries appear atomically and only after their digest checks out,
//! so a crash or a bad download never leaves a corrupt entry behind.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use fs_err as fs;
use tempfile::NamedTempFile;

use super::digest::{Digest, HashingWriter};

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
}

/// A directory of blobs named by their SHA-256.
#[derive(Clone, Debug)]
pub struct BlobStore {
    root: PathBuf,
}

/// A blob being written: bytes go to a temporary file in the store and are hashed on the way.
pub struct PendingBlob {
    writer: HashingWriter<io::BufWriter<NamedTempFile>>,
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
    /// Opens (creating if needed) a store rooted at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<BlobStore, BlobStoreError> {
        let root = root.into();
        for dir in [root.join("sha256"), root.join("tmp")] {
            fs::create_dir_all(&dir).map_err(|source| BlobStoreError::Io {
                path: dir.clone(),
                source,
            })?;
        }
        Ok(BlobStore { root })
    }

    /// Where the blob with this digest lives (whether or not it is there).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.root.join("sha256").join(digest.hex())
    }

    pub fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// A scratch directory inside the store's file system, for staging that ends in a rename.
    pub fn tmp_dir(&self) -> &Path {
        &self.root
    }

    /// Starts writing a new blob whose digest is learned as it is written.
    pub fn begin(&self) -> Result<PendingBlob, BlobStoreError> {
        let tmp = self.root.join("tmp");
        let file = NamedTempFile::new_in(&tmp).map_err(|source| BlobStoreError::Io {
            path: tmp.clone(),
            source,
        })?;
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
            path: self.root.join("tmp"),
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
        if !dest.exists() {
            file.persist(&dest).map_err(|e| BlobStoreError::Io {
                path: dest.clone(),
                source: e.error,
            })?;
        }
        Ok((digest, size))
    }

    /// Stores a small in-memory blob (configs, manifests).
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Digest, BlobStoreError> {
        let mut pending = self.begin()?;
        pending
            .write_all(bytes)
            .map_err(|source| BlobStoreError::Io {
                path: self.root.join("tmp"),
                source,
            })?;
        Ok(self.commit(pending, None, "blob")?.0)
    }

    /// Reads a whole blob into memory (only for small blobs: configs and manifests).
    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>, BlobStoreError> {
        let path = self.path(digest);
        fs::read(&path).map_err(|source| BlobStoreError::Io { path, source })
    }
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
        assert_eq!(store.read(&ok).unwrap(), b"abc");
    }
}
