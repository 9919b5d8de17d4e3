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

/// An expected content hash in one of the SHA-2 sizes (a wheel's RECORD may use any of them),
/// checked against bytes as they stream past.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContentCheck {
    Sha256([u8; 32]),
    Sha384([u8; 48]),
    Sha512([u8; 64]),
}

impl ContentCheck {
    /// From an algorithm name (`sha256`, `sha384`, `sha512`) and the raw digest bytes.
    pub fn new(algorithm: &str, digest: &[u8]) -> Option<ContentCheck> {
        match algorithm {
            "sha256" => digest.try_into().ok().map(ContentCheck::Sha256),
            "sha384" => digest.try_into().ok().map(ContentCheck::Sha384),
            "sha512" => digest.try_into().ok().map(ContentCheck::Sha512),
            _ => None,
        }
    }

    /// A hasher of the same algorithm.
    pub fn hasher(&self) -> ContentHasher {
        match self {
            ContentCheck::Sha256(_) => ContentHasher::Sha256(Sha256::new()),
            ContentCheck::Sha384(_) => ContentHasher::Sha384(sha2::Sha384::new()),
            ContentCheck::Sha512(_) => ContentHasher::Sha512(sha2::Sha512::new()),
        }
    }
}

/// Hashes bytes for a [`ContentCheck`].
pub enum ContentHasher {
    Sha256(Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

impl ContentHasher {
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            ContentHasher::Sha256(h) => h.update(bytes),
            ContentHasher::Sha384(h) => h.update(bytes),
            ContentHasher::Sha512(h) => h.update(bytes),
        }
    }

    /// Whether the bytes seen hash to what `check` expects.
    pub fn matches(self, check: &ContentCheck) -> bool {
        match (self, check) {
            (ContentHasher::Sha256(h), ContentCheck::Sha256(d)) => h.finalize().as_slice() == d,
            (ContentHasher::Sha384(h), ContentCheck::Sha384(d)) => h.finalize().as_slice() == d,
            (ContentHasher::Sha512(h), ContentCheck::Sha512(d)) => h.finalize().as_slice() == d,
            _ => false,
        }
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
    fn content_checks_match_only_their_bytes() {
        let sha256 = Sha256::digest(b"abc");
        let check = ContentCheck::new("sha256", &sha256).unwrap();
        let mut h = check.hasher();
        h.update(b"a");
        h.update(b"bc");
        assert!(h.matches(&check));
        let mut h = check.hasher();
        h.update(b"abd");
        assert!(!h.matches(&check));
        let sha512 = sha2::Sha512::digest(b"abc");
        let check = ContentCheck::new("sha512", &sha512).unwrap();
        let mut h = check.hasher();
        h.update(b"abc");
        assert!(h.matches(&check));
        assert!(ContentCheck::new("md5", &[0; 16]).is_none());
        assert!(ContentCheck::new("sha256", &[0; 31]).is_none());
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
