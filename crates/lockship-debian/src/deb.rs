//! Unpacks the `data.tar.*` member of a .deb (xz, zstd, gzip or plain) into a staging root, the
//! way dpkg would place files on a merged-/usr system, without running maintainer scripts.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use super::DebianError;

/// Top-level directories that are symlinks into /usr on a merged-/usr system.
pub const MERGED_DIRS: [&str; 6] = ["bin", "sbin", "lib", "lib32", "lib64", "libx32"];

/// `./lib/x86_64-linux-gnu/libc.so.6` → `usr/lib/x86_64-linux-gnu/libc.so.6`; refuses paths
/// that would leave the root.
pub fn image_path(raw: &Path) -> Option<PathBuf> {
    let mut parts: Vec<&str> = Vec::new();
    for c in raw.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str()?),
            Component::CurDir => {}
            _ => return None,
        }
    }
    if parts.is_empty() {
        return None;
    }
    if MERGED_DIRS.contains(&parts[0]) {
        parts.insert(0, "usr");
    }
    Some(parts.iter().collect())
}

/// Unpacks `deb` into `root`. With `only`, keeps just the entries under that image path.
pub fn unpack(
    deb: &Path,
    package: &str,
    root: &Path,
    only: Option<&str>,
) -> Result<(), DebianError> {
    let fail = |message: String| DebianError::Unpack {
        package: package.to_string(),
        path: deb.to_path_buf(),
        message,
    };
    let file = std::fs::File::open(deb).map_err(|e| fail(e.to_string()))?;
    let mut archive = ar::Archive::new(std::io::BufReader::new(file));
    while let Some(member) = archive.next_entry() {
        let member = member.map_err(|e| fail(e.to_string()))?;
        let name = String::from_utf8_lossy(member.header().identifier())
            .trim_end_matches('/')
            .to_string();
        let Some(compression) = name.strip_prefix("data.tar") else {
            continue;
        };
        let reader: Box<dyn Read> = match compression {
            ".xz" => Box::new(liblzma::read::XzDecoder::new(member)),
            ".gz" => Box::new(flate2::read::MultiGzDecoder::new(member)),
            ".zst" => {
                Box::new(zstd::stream::read::Decoder::new(member).map_err(|e| fail(e.to_string()))?)
            }
            "" => Box::new(member),
            other => return Err(fail(format!("unsupported data.tar compression `{other}`"))),
        };
        return extract(reader, root, only).map_err(fail);
    }
    Err(fail("no data.tar member".into()))
}

fn extract(reader: impl Read, root: &Path, only: Option<&str>) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mut tar = tar::Archive::new(reader);
    for entry in tar.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| e.to_string())?;
        let raw = entry.path().map_err(|e| e.to_string())?.into_owned();
        let Some(rel) = image_path(&raw) else {
            continue;
        };
        if only.is_some_and(|prefix| !rel.starts_with(prefix)) {
            continue;
        }
        let dest = root.join(&rel);
        let mode = entry.header().mode().unwrap_or(0o644) & 0o7777;
        let kind = entry.header().entry_type();
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        let io = |e: std::io::Error| format!("{}: {e}", rel.display());
        if kind.is_dir() {
            std::fs::create_dir_all(&dest).map_err(io)?;
            std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(mode)).map_err(io)?;
            continue;
        }
        // A later package may replace an earlier one's file (dpkg's "replaces").
        if dest.symlink_metadata().is_ok() && !dest.is_dir() {
            std::fs::remove_file(&dest).map_err(io)?;
        }
        if kind.is_symlink() {
            let target = entry
                .link_name()
                .map_err(io)?
                .ok_or("symlink without target")?;
            std::os::unix::fs::symlink(target.as_ref(), &dest).map_err(io)?;
        } else if kind.is_hard_link() {
            let target = entry
                .link_name()
                .map_err(io)?
                .ok_or("hard link without target")?;
            let target = image_path(&target).ok_or("hard link out of the root")?;
            std::fs::hard_link(root.join(target), &dest).map_err(io)?;
        } else if kind.is_file() {
            let mut out = std::fs::File::create(&dest).map_err(io)?;
            std::io::copy(&mut entry, &mut out).map_err(io)?;
            std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(mode)).map_err(io)?;
        }
        // Devices and fifos have no place in an image layer built without privileges.
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_usr_and_escapes() {
        assert_eq!(
            image_path(Path::new("./lib/x/libc.so.6")).unwrap(),
            Path::new("usr/lib/x/libc.so.6")
        );
        assert_eq!(
            image_path(Path::new("./etc/passwd")).unwrap(),
            Path::new("etc/passwd")
        );
        assert_eq!(image_path(Path::new("./")), None);
        assert_eq!(image_path(Path::new("../etc/x")), None);
        assert_eq!(image_path(Path::new("/etc/x")), None);
    }
}
