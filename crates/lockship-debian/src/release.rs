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
    pub codename: String,
    pub version: Option<String>,
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
        codename: get("Codename").unwrap_or_default(),
        version: get("Version"),
        files,
    })
}
