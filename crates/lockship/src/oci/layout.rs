//! Writes an image as an OCI image layout directory (`oci-layout`, `index.json`, `blobs/`).
//! The directory is assembled beside its destination and renamed into place, so a failure
//! never leaves a half-written layout.

use std::io;
use std::path::{Path, PathBuf};

use fs_err as fs;
use serde_json::json;

use super::blob_store::BlobStore;
use super::canonical_json;
use super::digest::Digest;
use super::image::Image;
use super::media_types;

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("layer {digest} is not in the local cache")]
    MissingBlob { digest: Digest },
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> OutputError + '_ {
    move |source| OutputError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `image` as an OCI layout at `dest` (replacing what is there), tagged `tag`.
pub fn write(image: &Image, store: &BlobStore, dest: &Path, tag: &str) -> Result<(), OutputError> {
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(io_err(parent))?;
    let staging = tempfile::Builder::new()
        .prefix(".lockship-layout-")
        .tempdir_in(parent)
        .map_err(io_err(parent))?;
    fill(image, store, staging.path(), tag)?;
    if dest.exists() {
        let old = dest.with_extension("lockship-old");
        fs::rename(dest, &old).map_err(io_err(dest))?;
        fs::rename(staging.path(), dest).map_err(io_err(dest))?;
        let _ = fs::remove_dir_all(&old);
    } else {
        fs::rename(staging.path(), dest).map_err(io_err(dest))?;
    }
    // The staging dir was renamed away; forget it instead of deleting `dest`.
    let _ = staging.keep();
    Ok(())
}

/// Puts the layout files for `image` into the existing directory `dir`.
pub(crate) fn fill(
    image: &Image,
    store: &BlobStore,
    dir: &Path,
    tag: &str,
) -> Result<(), OutputError> {
    let blobs = dir.join("blobs").join("sha256");
    fs::create_dir_all(&blobs).map_err(io_err(&blobs))?;
    for layer in &image.layers {
        let src = store.path(&layer.info.digest);
        if !src.is_file() {
            return Err(OutputError::MissingBlob {
                digest: layer.info.digest.clone(),
            });
        }
        link_or_copy(&src, &blobs.join(layer.info.digest.hex()))?;
    }
    write_file(&blobs.join(image.config_digest.hex()), &image.config)?;
    write_file(&blobs.join(image.manifest_digest.hex()), &image.manifest)?;
    write_file(
        &dir.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    let mut platform = json!({"os": image.os, "architecture": image.architecture});
    if let Some(variant) = &image.variant {
        platform["variant"] = json!(variant);
    }
    let index = json!({
        "schemaVersion": 2,
        "mediaType": media_types::OCI_INDEX,
        "manifests": [{
            "mediaType": media_types::OCI_MANIFEST,
            "digest": image.manifest_digest.to_string(),
            "size": image.manifest.len(),
            "platform": platform,
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }],
    });
    write_file(&dir.join("index.json"), &canonical_json::to_vec(&index))
}

pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<(), OutputError> {
    fs::write(path, bytes).map_err(io_err(path))
}

/// Hard-links a cached blob into an output (blobs are immutable), copying across file systems.
fn link_or_copy(src: &Path, dest: &Path) -> Result<(), OutputError> {
    if dest.exists() {
        return Ok(());
    }
    if std::fs::hard_link(src, dest).is_ok() {
        return Ok(());
    }
    fs::copy(src, dest).map(|_| ()).map_err(io_err(dest))
}
