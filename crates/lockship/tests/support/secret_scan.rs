//! Searches everything a build produced for secrets: every form a secret could take (as is,
//! inside basic auth), inflating every gzip stream (layers) and opening tarballs on the way.

use std::io::Read;
use std::path::Path;
use std::process::Output;

use base64::Engine;

/// The secrets to look for, and where each was found.
#[derive(Default)]
pub struct SecretScan {
    needles: Vec<(String, Vec<u8>)>,
    pub found: Vec<String>,
}

impl SecretScan {
    /// Looks for `secret` as is.
    pub fn secret(mut self, name: &str, secret: &str) -> Self {
        self.needles
            .push((name.to_string(), secret.as_bytes().to_vec()));
        self
    }

    /// Looks for `user:password` as an HTTP basic-auth value.
    pub fn basic_auth(mut self, name: &str, user: &str, password: &str) -> Self {
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        self.needles.push((name.to_string(), b64.into_bytes()));
        self
    }

    pub fn bytes(&mut self, bytes: &[u8], where_: &str) {
        self.scan(bytes, where_, false)
    }

    /// A gzip stream (a layer) is inflated, a tarball's entries (a docker tarball's blobs) are
    /// opened. `nested` is true inside such a container, where the files are the image's own
    /// (a base's compressed docs need no opening: what lockship wrote is the layer around them).
    fn scan(&mut self, bytes: &[u8], where_: &str, nested: bool) {
        for (name, needle) in &self.needles {
            if memchr::memmem::find(bytes, needle).is_some() {
                self.found.push(format!("{name} in {where_}"));
            }
        }
        if bytes.starts_with(&[0x1f, 0x8b]) {
            let mut inflated = Vec::new();
            if flate2::read::MultiGzDecoder::new(bytes)
                .read_to_end(&mut inflated)
                .is_ok()
            {
                self.scan(&inflated, &format!("{where_} (inflated)"), true);
            }
        }
        if !nested && bytes.len() > 262 && &bytes[257..262] == b"ustar" {
            let mut archive = tar::Archive::new(bytes);
            if let Ok(entries) = archive.entries() {
                for mut entry in entries.flatten() {
                    let name = entry
                        .path()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default();
                    let mut data = Vec::new();
                    if entry.read_to_end(&mut data).is_ok() && data.starts_with(&[0x1f, 0x8b]) {
                        self.scan(&data, &format!("{where_}:{name}"), true);
                    }
                }
            }
        }
    }

    /// Scans every file under `dir`; returns how many there were.
    pub fn dir(&mut self, dir: &Path) -> usize {
        let files = super::files_under(dir);
        for file in &files {
            self.bytes(&std::fs::read(file).unwrap(), &file.display().to_string());
        }
        files.len()
    }

    pub fn output(&mut self, out: &Output, what: &str) {
        self.bytes(&out.stdout, &format!("stdout of {what}"));
        self.bytes(&out.stderr, &format!("stderr of {what}"));
    }
}
