//! SHA-256 content digests (`sha256:<hex>`) and a writer that hashes and counts what passes.

use std::fmt;
use std::io::{self, Write};

use sha2::{Digest as _, Sha256};

/// A `sha256:<64 hex>` content digest, as used for blobs, diff ids and wheel hashes.
#[derive(
    Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

impl TryFrom<String> for Digest {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        Digest::parse(&text).ok_or_else(|| format!("not a sha256 digest: {text}"))
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.0
    }
}

impl Digest {
    /// Parses `sha256:<hex>`; anything else (other algorithms, bad hex) is `None`.
    pub fn parse(text: &str) -> Option<Digest> {
        let hex = text.strip_prefix("sha256:")?;
        Self::from_hex(hex)
    }

    /// Builds a digest from 64 lowercase or uppercase hex characters.
    pub fn from_hex(hex: &str) -> Option<Digest> {
        if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            Some(Digest(format!("sha256:{}", hex.to_ascii_lowercase())))
        } else {
            None
        }
    }

    /// The digest of a byte slice.
    pub fn of_bytes(bytes: &[u8]) -> Digest {
        Digest(format!("sha256:{}", hex::encode(Sha256::digest(bytes))))
    }

    /// The digest of `parts`, each followed by a NUL byte: an unambiguous key over several
    /// strings (cache keys of layers, build environments, the Debian base).
    pub fn of_parts<S: AsRef<str>>(parts: impl IntoIterator<Item = S>) -> Digest {
        let mut h = Hasher::default();
        for part in parts {
            h.update(part.as_ref().as_bytes());
            h.update(&[0]);
        }
        h.finish()
    }

    /// The 64 hex characters, without the algorithm prefix.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }

    /// The full `sha256:<hex>` form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Passes writes through to `inner` while hashing them and counting bytes.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// Counts and hashes `buf` as if it had been written, without passing it on: for bytes the
    /// inner writer receives in another form (already compressed).
    pub fn observe(&mut self, buf: &[u8]) {
        self.hasher.update(buf);
        self.bytes += buf.len() as u64;
    }

    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// Returns the inner writer, the digest of everything written, and its length.
    pub fn finish(self) -> (W, Digest, u64) {
        let digest = Digest(format!("sha256:{}", hex::encode(self.hasher.finalize())));
        (self.inner, digest, self.bytes)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Incremental hashing for data that arrives in chunks (downloads).
#[derive(Default)]
pub struct Hasher(Sha256);

impl Hasher {
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub fn finish(self) -> Digest {
        Digest(format!("sha256:{}", hex::encode(self.0.finalize())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_sha256() {
        let d = Digest::of_bytes(b"");
        assert_eq!(
            d.as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(Digest::parse(d.as_str()), Some(d.clone()));
        assert_eq!(Digest::parse("md5:abc"), None);
        assert_eq!(Digest::parse("sha256:zz"), None);
    }

    #[test]
    fn parts_are_separated() {
        assert_eq!(Digest::of_parts(["ab", "c"]), Digest::of_bytes(b"ab\0c\0"));
        assert_ne!(Digest::of_parts(["ab", "c"]), Digest::of_parts(["a", "bc"]));
    }

    #[test]
    fn hashing_writer_matches_direct_digest() {
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"hello ").unwrap();
        w.write_all(b"world").unwrap();
        let (inner, digest, n) = w.finish();
        assert_eq!(inner, b"hello world");
        assert_eq!(n, 11);
        assert_eq!(digest, Digest::of_bytes(b"hello world"));
    }
}
