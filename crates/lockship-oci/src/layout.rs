//! Writes an image, or a multi-platform image index, as an OCI image layout directory
//! (`oci-layout`, `index.json`, `blobs/`).
//! A new layout is assembled beside its destination and renamed into place, so a failure never
//! leaves a half-written one. An existing layout gets the image added (its other images stay;
//! an image with the same tag is replaced in the index), under a lock so concurrent writers
//! take turns. Any other existing directory or file is refused and left as it is.

use std::io;
use std::path::{Path, PathBuf};

use fs_err as fs;
use serde_json::{json, Value};

use super::blob_store::{copy_blob_file, BlobStore, BlobStoreError};
use super::canonical_json;
use super::digest::Digest;
use super::image::Image;
use super::image_index::Artifact;
use super::media_types;
use lockship_sys::scratch::{self, ScratchDir, ScratchFile};

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
    #[error("{path} exists and is not an OCI image layout: lockship adds images only to an OCI layout or a new directory")]
    NotALayout { path: PathBuf },
    #[error("{path} is an OCI image layout with an unreadable index.json: {message}")]
    BadLayout { path: PathBuf, message: String },
    #[error("{path} exists and is not a tar archive: lockship replaces only a tarball")]
    NotATarball { path: PathBuf },
    #[error(transparent)]
    Store(#[from] BlobStoreError),
}

impl OutputError {
    /// Whether a cache entry turned out damaged while copying it out (already evicted).
    pub fn is_corrupt_cache(&self) -> bool {
        matches!(self, OutputError::Store(e) if e.is_corrupt())
    }
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> OutputError + '_ {
    move |source| OutputError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The directory an output goes in (created), after sweeping what killed runs left there.
pub(crate) fn prepare_parent(dest: &Path) -> Result<PathBuf, OutputError> {
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    fs::create_dir_all(&parent).map_err(io_err(&parent))?;
    scratch::sweep(&parent);
    Ok(parent)
}

/// Writes `image` as an OCI layout at `dest` tagged `tag`: a new directory (or an empty one
/// filled), or `tag` added to the existing layout there.
pub fn write(image: &Image, store: &BlobStore, dest: &Path, tag: &str) -> Result<(), OutputError> {
    write_artifact(Artifact::Image(image), store, dest, tag)
}

/// Writes an image or an image index (every platform's blobs, their manifests, and the index
/// as the tagged entry of `index.json`) as an OCI layout at `dest`, as [`write`] does.
pub fn write_artifact(
    artifact: Artifact<'_>,
    store: &BlobStore,
    dest: &Path,
    tag: &str,
) -> Result<(), OutputError> {
    // A symlink to a directory is the directory it names; the link itself stays.
    let dest = match std::fs::symlink_metadata(dest) {
        Ok(m) if m.file_type().is_symlink() => fs::canonicalize(dest).map_err(io_err(dest))?,
        _ => dest.to_path_buf(),
    };
    let parent = prepare_parent(&dest)?;
    match std::fs::metadata(&dest) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            new_layout(artifact, store, &parent, &dest, tag)
        }
        Err(e) => Err(io_err(&dest)(e)),
        Ok(m) if !m.is_dir() => Err(OutputError::NotALayout { path: dest }),
        Ok(_) if is_layout(&dest) => add_to_layout(artifact, store, &dest, tag),
        Ok(_) if dir_is_empty(&dest) => new_layout(artifact, store, &parent, &dest, tag),
        Ok(_) => Err(OutputError::NotALayout { path: dest }),
    }
}

fn dir_is_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none())
}

/// Whether `dir` holds an OCI layout (its `oci-layout` marker names a layout version).
fn is_layout(dir: &Path) -> bool {
    std::fs::read(dir.join("oci-layout"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .is_some_and(|v| v.get("imageLayoutVersion").is_some_and(Value::is_string))
}

/// Stages a whole layout beside `dest` and renames it into place (onto `dest` if it is an
/// empty directory).
fn new_layout(
    artifact: Artifact<'_>,
    store: &BlobStore,
    parent: &Path,
    dest: &Path,
    tag: &str,
) -> Result<(), OutputError> {
    let staging = ScratchDir::new_in(parent).map_err(io_err(parent))?;
    write_blobs(artifact, store, staging.path())?;
    write_file(
        &staging.path().join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    let index = json!({
        "schemaVersion": 2,
        "mediaType": media_types::OCI_INDEX,
        "manifests": [artifact.descriptor(tag)],
    });
    write_file(
        &staging.path().join("index.json"),
        &canonical_json::to_vec(&index),
    )?;
    staging.persist(dest).map_err(io_err(dest))
}

/// Adds the image to the layout at `dir`: missing (or damaged) blobs copied in, then
/// `index.json` replaced in one rename, with any earlier image of the same tag dropped from it.
fn add_to_layout(
    artifact: Artifact<'_>,
    store: &BlobStore,
    dir: &Path,
    tag: &str,
) -> Result<(), OutputError> {
    // One writer at a time: the lock is on the directory itself, released when `_lock` closes.
    let _lock = std::fs::File::open(dir).map_err(io_err(dir))?;
    _lock.lock().map_err(io_err(dir))?;
    let index_path = dir.join("index.json");
    let bad = |message: String| OutputError::BadLayout {
        path: dir.to_path_buf(),
        message,
    };
    let mut index: Value = match std::fs::read(&index_path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => json!({
            "schemaVersion": 2,
            "mediaType": media_types::OCI_INDEX,
            "manifests": [],
        }),
        Err(e) => return Err(io_err(&index_path)(e)),
    };
    let manifests = index
        .get_mut("manifests")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| bad("it has no `manifests` list".into()))?;
    write_blobs(artifact, store, dir)?;
    manifests.retain(|m| {
        m.pointer("/annotations/org.opencontainers.image.ref.name")
            .and_then(Value::as_str)
            != Some(tag)
    });
    manifests.push(artifact.descriptor(tag));
    write_file(&index_path, &canonical_json::to_vec(&index))
}

/// Puts the blobs of every image under `dir/blobs/sha256`: layers copied from the store
/// (checked on the way, never hard links, so changing the output cannot damage the cache; a
/// layer two platforms share is copied once), then configs, manifests and the index. Blobs
/// already there and intact are kept.
fn write_blobs(artifact: Artifact<'_>, store: &BlobStore, dir: &Path) -> Result<(), OutputError> {
    let blobs = dir.join("blobs").join("sha256");
    fs::create_dir_all(&blobs).map_err(io_err(&blobs))?;
    let images = artifact.images();
    for layer in images.iter().flat_map(|i| &i.layers) {
        let digest = &layer.info.digest;
        let dest = blobs.join(digest.hex());
        if is_intact(&dest, digest) {
            continue;
        }
        if !store.contains(digest) {
            return Err(OutputError::MissingBlob {
                digest: digest.clone(),
            });
        }
        copy_blob_file(store, digest, &layer.created_by, &dest)?;
    }
    for (digest, bytes) in artifact.metadata_blobs() {
        let dest = blobs.join(digest.hex());
        if !is_intact(&dest, digest) {
            write_file(&dest, bytes)?;
        }
    }
    Ok(())
}

/// Whether the file at `path` holds exactly the blob `digest`.
fn is_intact(path: &Path, digest: &Digest) -> bool {
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    let mut hasher = super::digest::HashingWriter::new(io::sink());
    io::copy(
        &mut io::BufReader::with_capacity(1 << 20, file),
        &mut hasher,
    )
    .is_ok()
        && hasher.finish().1 == *digest
}

/// Writes a small file whole: a temporary file beside it, renamed over it.
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<(), OutputError> {
    let parent = path.parent().unwrap_or(Path::new("."));
    let mut tmp = ScratchFile::new_in(parent, "").map_err(io_err(parent))?;
    io::Write::write_all(&mut tmp, bytes).map_err(io_err(path))?;
    tmp.persist(path).map_err(io_err(path))?;
    Ok(())
}
