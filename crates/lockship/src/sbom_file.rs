//! `lockship sbom --output FILE`: the document written whole or not at all (a temporary file
//! beside it, renamed), replacing only a file that is itself an SBOM.

use std::path::Path;

use lockship_engine::error::Error;
use lockship_sys::scratch::ScratchFile;

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
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let doc: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| refuse())?;
    if doc.get("bomFormat").is_some() || doc.get("spdxVersion").is_some() {
        Ok(())
    } else {
        Err(refuse())
    }
}

pub fn write(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => ".".into(),
    };
    let mut tmp = ScratchFile::new_in(&parent, ".json.partial").map_err(io)?;
    std::io::Write::write_all(tmp.as_file_mut(), bytes).map_err(io)?;
    // A document for people and other tools to read, not a secret (the temporary file is 0600).
    use std::os::unix::fs::PermissionsExt;
    tmp.as_file_mut()
        .set_permissions(std::fs::Permissions::from_mode(0o644))
        .map_err(io)?;
    tmp.persist(path).map(|_| ()).map_err(io)
}
