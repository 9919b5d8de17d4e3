//! Writes an image as a tarball that `docker load` (and `podman load`, skopeo's
//! `docker-archive:`) accepts: an OCI layout plus Docker's `manifest.json`, the format Docker
//! itself writes since 25.0 and one older engines read through `manifest.json`.

use std::io::{self, Read, Write};
use std::path::Path;

use serde_json::json;

use super::blob_store::BlobStore;
use super::canonical_json;
use super::digest::Digest;
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

/// Why a docker tarball could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TarballReadError {
    #[error("cannot read docker tarball {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("docker tarball {path}: {message}")]
    Bad {
        path: std::path::PathBuf,
        message: String,
    },
    #[error(transparent)]
    Layout(#[from] crate::layout_image::LayoutReadError),
    #[error(transparent)]
    Store(#[from] crate::blob_store::BlobStoreError),
}

/// Reads the image a docker tarball holds into `store`: lockship's own and Docker 25's (an OCI
/// layout inside the tar, read as one, keeping every digest), or the `manifest.json` and plain
/// layer tars older `docker save` writes (given an OCI manifest, as pushing needs one). Only
/// regular files with plain relative names are read, and every blob goes through the store's
/// digest check; `scratch` (an empty directory) receives the layout's small files.
pub fn read(
    path: &Path,
    store: &BlobStore,
    scratch: &Path,
) -> Result<crate::image_index::OwnedArtifact, TarballReadError> {
    let io_err = |source| TarballReadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let bad = |message: String| TarballReadError::Bad {
        path: path.to_path_buf(),
        message,
    };
    // Two passes over the file: the small files that say what the tarball holds, then only
    // the blobs they name go into the store (a tarball of something else leaves nothing).
    let mut small: std::collections::BTreeMap<String, Vec<u8>> = Default::default();
    each_file(path, &mut |name, entry| {
        if matches!(name.as_str(), "oci-layout" | "index.json" | "manifest.json") {
            let mut bytes = Vec::new();
            entry
                .take(crate::manifest::MAX_MANIFEST + 1)
                .read_to_end(&mut bytes)
                .map_err(io_err)?;
            if bytes.len() as u64 > crate::manifest::MAX_MANIFEST {
                return Err(bad(format!("{name} is too large")));
            }
            small.insert(name, bytes);
        }
        Ok(())
    })?;
    let is_layout = small.contains_key("oci-layout") && small.contains_key("index.json");
    let legacy: Option<Vec<String>> = if is_layout {
        None
    } else {
        let manifest = small
            .get("manifest.json")
            .ok_or_else(|| bad("it has neither an OCI layout nor a manifest.json".into()))?;
        Some(legacy_names(manifest).map_err(bad)?)
    };
    let wanted = |name: &str| match &legacy {
        None => name
            .strip_prefix("blobs/sha256/")
            .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())),
        Some(names) => names.iter().any(|n| n == name),
    };
    let mut blobs: std::collections::BTreeMap<String, Digest> = Default::default();
    each_file(path, &mut |name, entry| {
        if !wanted(&name) {
            return Ok(());
        }
        let mut pending = store.begin()?;
        io::copy(entry, &mut pending).map_err(io_err)?;
        // A layout blob is named by its digest: it must have it.
        let expected = name
            .strip_prefix("blobs/sha256/")
            .and_then(|hex| Digest::parse(&format!("sha256:{hex}")));
        let (digest, _) = match store.commit(pending, expected.as_ref(), &name) {
            Ok(done) => done,
            Err(crate::blob_store::BlobStoreError::DigestMismatch { .. }) => {
                return Err(bad(format!("{name} has other content than its name says")))
            }
            Err(e) => return Err(e.into()),
        };
        blobs.insert(name, digest);
        Ok(())
    })?;
    if small.contains_key("oci-layout") && small.contains_key("index.json") {
        // Laid out again as a directory (blobs as links into the store), then read as one.
        let dir = scratch.join("layout");
        let blob_dir = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blob_dir).map_err(io_err)?;
        for name in ["oci-layout", "index.json"] {
            std::fs::write(dir.join(name), &small[name]).map_err(io_err)?;
        }
        for digest in blobs.values() {
            let link = blob_dir.join(digest.hex());
            if !link.exists() && std::fs::hard_link(store.path(digest), &link).is_err() {
                std::fs::copy(store.path(digest), &link).map_err(io_err)?;
            }
        }
        return Ok(crate::layout_image::read_artifact(&dir, None, store)?);
    }
    let manifest = small
        .get("manifest.json")
        .ok_or_else(|| bad("it has neither an OCI layout nor a manifest.json".into()))?;
    legacy_image(manifest, &blobs, store).map_err(bad)
}

/// Calls `f` with the plain name and the contents of every regular file in the tarball at
/// `path`, in order; a member with an unsafe name fails the read.
fn each_file(
    path: &Path,
    f: &mut dyn FnMut(String, &mut dyn Read) -> Result<(), TarballReadError>,
) -> Result<(), TarballReadError> {
    let io_err = |source| TarballReadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io_err)?;
    let mut archive = tar::Archive::new(io::BufReader::new(file));
    for entry in archive.entries().map_err(io_err)? {
        let mut entry = entry.map_err(io_err)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let raw = entry.path().map_err(io_err)?.to_string_lossy().into_owned();
        let Some(name) = plain_name(&raw) else {
            return Err(TarballReadError::Bad {
                path: path.to_path_buf(),
                message: format!("it holds a file with an unsafe name `{raw}`"),
            });
        };
        f(name, &mut entry)?;
    }
    Ok(())
}

/// The members an older `docker save` tarball's one image consists of: its config and layers.
fn legacy_names(manifest: &[u8]) -> Result<Vec<String>, String> {
    let entry = legacy_entry(manifest)?;
    Ok(std::iter::once(&entry.config)
        .chain(&entry.layers)
        .filter_map(|n| plain_name(n))
        .collect())
}

/// The one image `manifest.json` lists.
#[derive(serde::Deserialize)]
struct LegacyEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

fn legacy_entry(manifest: &[u8]) -> Result<LegacyEntry, String> {
    let mut entries: Vec<LegacyEntry> =
        serde_json::from_slice(manifest).map_err(|e| format!("manifest.json: {e}"))?;
    if entries.len() != 1 {
        return Err(format!(
            "manifest.json lists {} images; lockship reads a tarball of one",
            entries.len()
        ));
    }
    Ok(entries.remove(0))
}

/// The image of an older `docker save` tarball: its one `manifest.json` entry's config and
/// layers (plain tars, or gzip), under a new OCI manifest.
fn legacy_image(
    manifest: &[u8],
    blobs: &std::collections::BTreeMap<String, Digest>,
    store: &BlobStore,
) -> Result<crate::image_index::OwnedArtifact, String> {
    let entry = legacy_entry(manifest)?;
    let blob = |name: &str| {
        plain_name(name)
            .and_then(|n| blobs.get(&n).cloned())
            .ok_or_else(|| format!("manifest.json names `{name}`, which the tarball lacks"))
    };
    let config_digest = blob(&entry.config)?;
    let config_size = std::fs::metadata(store.path(&config_digest))
        .map_err(|e| e.to_string())?
        .len();
    if config_size > crate::manifest::MAX_CONFIG {
        return Err("its config is larger than lockship reads (16 MiB)".into());
    }
    let config = store
        .read(&config_digest, "image config")
        .map_err(|e| e.to_string())?;
    let mut layers = Vec::new();
    for name in &entry.layers {
        let digest = blob(name)?;
        // Labelled as its bytes say (`docker save` writes plain tars; others compress them).
        let mut magic = [0u8; 4];
        let head = std::fs::File::open(store.path(&digest))
            .and_then(|mut f| f.read(&mut magic))
            .unwrap_or(0);
        let encoding = crate::layer_stream::Encoding::sniff(&magic[..head]);
        let size = std::fs::metadata(store.path(&digest))
            .map_err(|e| e.to_string())?
            .len();
        layers.push(crate::registry::RemoteLayer {
            media_type: encoding.oci_media_type().to_string(),
            digest,
            size,
            annotations: Default::default(),
        });
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": super::media_types::OCI_MANIFEST,
        "config": {
            "mediaType": super::media_types::OCI_CONFIG,
            "digest": config_digest.to_string(),
            "size": config.len(),
        },
        "layers": layers.iter().map(|l| json!({
            "mediaType": l.media_type,
            "digest": l.digest.to_string(),
            "size": l.size,
        })).collect::<Vec<_>>(),
    });
    Ok(crate::image_index::OwnedArtifact::Image(
        crate::image::from_parts(
            canonical_json::to_vec(&manifest),
            config,
            config_digest,
            &layers,
        ),
    ))
}

/// A tar member's name as a plain relative path (`./` dropped), or None for anything with an
/// absolute, `..` or empty component.
fn plain_name(raw: &str) -> Option<String> {
    let trimmed = raw.trim_start_matches("./");
    let parts: Vec<&str> = trimmed.split('/').filter(|p| !p.is_empty()).collect();
    if raw.starts_with('/') || parts.is_empty() || parts.iter().any(|p| *p == "." || *p == "..") {
        return None;
    }
    Some(parts.join("/"))
}
