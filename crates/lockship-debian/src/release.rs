//! The suite's `InRelease`: its OpenPGP signature checked against the Debian archive keyring,
//! and the SHA-256 list of index files it vouches for.

use std::collections::BTreeMap;
use std::path::Path;

use pgp::composed::{CleartextSignedMessage, Deserializable, SignedPublicKey};

use super::control::stanzas;
use super::DebianError;
use lockship_oci::digest::Digest;

/// What a verified Release file says.
#[derive(Clone, Debug)]
pub struct Release {
    /// `Suite` (`stable`, `stable-security`) and `Codename` (`bookworm`, `bookworm-security`):
    /// the archive asked for must be one of them.
    pub suite: String,
    pub codename: String,
    pub version: Option<String>,
    /// Debian's names of the architectures the suite has packages for (`Architectures:`).
    pub architectures: Vec<String>,
    /// Index path (e.g. `main/binary-amd64/Packages.gz`) → (sha256, size).
    pub files: BTreeMap<String, (Digest, u64)>,
}

/// Loads every public key of a binary (`.gpg`) or armored (`.asc`) keyring.
pub fn load_keyring(path: &Path) -> Result<Vec<SignedPublicKey>, DebianError> {
    let bytes = std::fs::read(path).map_err(|e| DebianError::Keyring {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let keys: Vec<SignedPublicKey> = if bytes.starts_with(b"-----BEGIN") {
        SignedPublicKey::from_armor_many(std::io::Cursor::new(bytes))
            .map(|(iter, _)| iter.filter_map(Result::ok).collect())
            .unwrap_or_default()
    } else {
        SignedPublicKey::from_reader_many(std::io::Cursor::new(bytes))
            .map(|(iter, _)| iter.filter_map(Result::ok).collect())
            .unwrap_or_default()
    };
    if keys.is_empty() {
        return Err(DebianError::Keyring {
            path: path.to_path_buf(),
            message: "no OpenPGP public keys in it".into(),
        });
    }
    Ok(keys)
}

/// Checks the clear-signed `text` (fetched from `url`) against `keys` and parses it.
pub fn verify(
    text: &str,
    url: &str,
    keys: &[SignedPublicKey],
    keyring: &Path,
) -> Result<Release, DebianError> {
    let bad = || DebianError::BadSignature {
        url: lockship_net::url::redact(url),
        keyring: keyring.display().to_string(),
    };
    let (message, _) = CleartextSignedMessage::from_string(text).map_err(|_| bad())?;
    let signed = keys.iter().any(|k| {
        message.verify(k).is_ok() || k.public_subkeys.iter().any(|s| message.verify(s).is_ok())
    });
    if !signed {
        return Err(bad());
    }
    // Parse only what the signature covers, never the text around it.
    parse(&message.signed_text().replace("\r\n", "\n"), url)
}

/// Parses the text of a Release file (already verified, or for tests and fuzzing).
pub fn parse(body: &str, url: &str) -> Result<Release, DebianError> {
    let (fields, _) = stanzas(body)
        .next()
        .ok_or_else(|| DebianError::BadRelease {
            url: lockship_net::url::redact(url),
            message: "empty Release file".into(),
        })?;
    let get = |k: &str| fields.iter().find(|(f, _)| *f == k).map(|(_, v)| v.clone());
    let mut files = BTreeMap::new();
    for line in get("SHA256").unwrap_or_default().lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        if let [hash, size, path] = parts[..] {
            if let (Some(d), Ok(size)) = (Digest::from_hex(hash), size.parse()) {
                files.insert(path.to_string(), (d, size));
            }
        }
    }
    if files.is_empty() {
        return Err(DebianError::BadRelease {
            url: lockship_net::url::redact(url),
            message: "no SHA256 file list".into(),
        });
    }
    Ok(Release {
        suite: get("Suite").unwrap_or_default(),
        codename: get("Codename").unwrap_or_default(),
        version: get("Version"),
        architectures: get("Architectures")
            .map(|a| a.split_whitespace().map(String::from).collect())
            .unwrap_or_default(),
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RELEASE: &str = "Origin: Debian\nSuite: stable\nVersion: 12.11\nCodename: bookworm\nSHA256:\n 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef 1234 main/binary-amd64/Packages.gz\n not-a-hash 12 main/binary-arm64/Packages.gz\n fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210 notasize main/x\n";

    #[test]
    fn the_signed_file_list_is_all_that_is_kept() {
        let release = parse(
            RELEASE,
            "http://user:pw@mirror.example/debian/dists/bookworm/InRelease",
        )
        .unwrap();
        assert_eq!(release.codename, "bookworm");
        assert_eq!(release.version.as_deref(), Some("12.11"));
        // Lines with a bad hash or size are dropped, not guessed at.
        assert_eq!(release.files.len(), 1);
        let (digest, size) = &release.files["main/binary-amd64/Packages.gz"];
        assert_eq!(size, &1234);
        assert!(digest.hex().starts_with("0123"));
    }

    #[test]
    fn a_release_without_hashes_is_refused_and_the_url_redacted() {
        let url = "http://user:pw@mirror.example/debian/dists/bookworm/InRelease";
        for body in [
            "",
            "Codename: bookworm\n",
            "Codename: bookworm\nSHA256:\n bad 1 x\n",
        ] {
            let err = parse(body, url).unwrap_err().to_string();
            assert!(err.starts_with("http://user:****@mirror.example/"), "{err}");
            assert!(!err.contains("pw@"), "{err}");
        }
    }
}
