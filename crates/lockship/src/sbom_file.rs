//! `lockship sbom --output FILE`: the document written whole or not at all (a temporary file
//! beside it, renamed), replacing only a file that is itself an SBOM.

use std::path::Path;

use lockship_engine::error::Error;

/// Whether an existing `path` may be replaced: only a JSON SBOM (CycloneDX or SPDX), as an
/// earlier run wrote it; a missing file is fine.
pub fn check_replaceable(path: &Path) -> Result<(), Error> {
    let refuse = || {
        Error::Usage(format!(
            "{} exists and is not an SBOM: lockship replaces only a CycloneDX or SPDX JSON file (choose another --output)",
            path.display()
        ))
    };
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(Error::Io {
                path: path.to_path_buf(),
                source,
            })
        }
        Ok(meta) if !meta.is_file() || meta.len() > 256 << 20 => return Err(refuse()),
        Ok(_) => {}
    }
    let mut bytes = Vec::new();
    {
        use std::io::Read;
        std::fs::File::open(path)
            .and_then(|f| f.take(256 << 20).read_to_end(&mut bytes))
            .map_err(|source| Error::Io {
                path: path.to_path_buf(),
                source,
            })?;
    }
    let doc: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| refuse())?;
    if doc.get("bomFormat").is_some() || doc.get("spdxVersion").is_some() {
        Ok(())
    } else {
        Err(refuse())
    }
}

pub fn write(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    // A document for people and other tools to read, not a secret.
    lockship_sys::scratch::write_whole(path, bytes, Some(0o644)).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}
