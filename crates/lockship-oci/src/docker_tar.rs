//! Writes an image as a tarball that `docker load` (and `podman load`, skopeo's
//! `docker-archive:`) accepts: an OCI layout plus Docker's `manifest.json`, the format Docker
//! itself writes since 25.0 and one older engines read through `manifest.json`.

use std::io::{self, Read, Write};
use std::path::Path;

use serde_json::json;

use super::blob_store::BlobStore;
use super::canonical_json;
use super::image::Image;
use super::layout::{io_err, prepare_parent, OutputError};
use super::tar_tree::TarTree;
use lockship_sys::scratch::ScratchFile;

/// Whether an existing `dest` may be replaced: only an empty file or a tar archive (the
/// `ustar` magic at offset 257 of its first header), never a directory or anything else.
fn replaceable(dest: &Path) -> Result<bool, OutputError> {
    let meta = match std::fs::metadata(dest) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(true),
        Err(e) => return Err(io_err(dest)(e)),
    };
    if !meta.is_file() {
        return Ok(false);
    }
    if meta.len() == 0 {
        return Ok(true);
    }
    let mut header = [0u8; 262];
    let mut file = std::fs::File::open(dest).map_err(io_err(dest))?;
    Ok(file.read_exact(&mut header).is_ok() && &header[257..262] == b"ustar")
}

/// Writes `image` to the tar file `dest` with `repo_tag` (e.g. `app:1.0`) as its name.
/// The file appears only when complete; an existing file is replaced only if it is a tarball.
pub fn write(
    image: &Image,
    store: &BlobStore,
    dest: &Path,
    repo_tag: &str,
) -> Result<(), OutputError> {
    let parent = prepare_parent(dest)?;
    if !replaceable(dest)? {
        return Err(OutputError::NotATarball {
            path: dest.to_path_buf(),
        });
    }
    let tag = repo_tag.rsplit_once(':').map_or("latest", |(_, t)| t);

    let mut tree = TarTree::new();
    let mut layer_paths = Vec::new();
    for layer in &image.layers {
        let src = store.path(&layer.info.digest);
        if !src.is_file() {
            return Err(super::layout::OutputError::MissingBlob {
                digest: layer.info.digest.clone(),
            });
        }
        let path = format!("blobs/sha256/{}", layer.info.digest.hex());
        tree.add_host_path(&src, &path)
            .map_err(|e| io_err(&src)(io::Error::other(e)))?;
        layer_paths.push(path);
    }
    let config_path = format!("blobs/sha256/{}", image.config_digest.hex());
    tree.bytes(&config_path, image.config.clone(), 0o644);
    tree.bytes(
        &format!("blobs/sha256/{}", image.manifest_digest.hex()),
        image.manifest.clone(),
        0o644,
    );
    tree.bytes("oci-layout", r#"{"imageLayoutVersion":"1.0.0"}"#, 0o644);
    let index = json!({
        "schemaVersion": 2,
        "mediaType": super::media_types::OCI_INDEX,
        "manifests": [{
            "mediaType": super::media_types::OCI_MANIFEST,
            "digest": image.manifest_digest.to_string(),
            "size": image.manifest.len(),
            "annotations": {
                "io.containerd.image.name": repo_tag,
                "org.opencontainers.image.ref.name": tag,
            },
        }],
    });
    tree.bytes("index.json", canonical_json::to_vec(&index), 0o644);
    let manifest = json!([{
        "Config": config_path,
        "RepoTags": [repo_tag],
        "Layers": layer_paths,
    }]);
    tree.bytes("manifest.json", canonical_json::to_vec(&manifest), 0o644);

    let mut tmp = ScratchFile::new_in(&parent, ".tar.partial").map_err(io_err(&parent))?;
    {
        let out = io::BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
        let mut out = tree
            .write_tar(out, 0)
            .map_err(|e| io_err(dest)(io::Error::other(e)))?;
        out.flush().map_err(io_err(dest))?;
    }
    tmp.persist(dest).map_err(io_err(dest))?;
    Ok(())
}
