//! Reads one image out of an OCI image layout directory (what `skopeo copy … oci:DIR:TAG`,
//! `docker buildx build --output type=oci` and lockship's own layout output write), for use as
//! a base: the entry picked by tag or digest, an index narrowed to one platform, and every blob
//! copied into the store checked against its digest. The layout itself is only read.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::blob_store::{BlobStore, BlobStoreError};
use crate::digest::Digest;
use crate::image::Image;
use crate::image_index::{ImageIndex, OwnedArtifact};
use crate::manifest::{config_platform_mismatch, Descriptor, ManifestJson, MAX_MANIFEST};
use crate::platform::Platform;
use crate::registry::RemoteLayer;

/// The annotation that names an image in a layout's `index.json` (its tag).
const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// How deep indexes may nest (buildx writes index.json → index → manifest).
const MAX_DEPTH: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum LayoutReadError {
    #[error("{path} is not an OCI image layout (no readable `oci-layout` file in it)")]
    NotALayout { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("OCI layout {layout}: {what} is unreadable: {message}")]
    Bad {
        layout: PathBuf,
        what: String,
        message: String,
    },
    #[error("OCI layout {layout} has no image `{wanted}` (it has: {available})")]
    NoSuchImage {
        layout: PathBuf,
        wanted: String,
        available: String,
    },
    #[error("OCI layout {layout} holds {count} images and none is the one image for the platform; name one with `oci-layout://{}:TAG` (it has: {available})", layout.display())]
    Ambiguous {
        layout: PathBuf,
        count: usize,
        available: String,
    },
    #[error("OCI layout {layout} has no image for {platform} (it has: {available})")]
    NoPlatform {
        layout: PathBuf,
        platform: String,
        available: String,
    },
    #[error("OCI layout {layout} holds an image for {has} only, and --platform asks for {wanted}")]
    WrongPlatform {
        layout: PathBuf,
        wanted: String,
        has: String,
    },
    #[error("OCI layout {layout} lacks blob {digest}")]
    MissingBlob { layout: PathBuf, digest: String },
    /// What the file holds is not said: a layout's blob may be a link to any file on the host,
    /// and even its digest would tell something about it.
    #[error("OCI layout {layout}: blob {expected} has other content than its digest says")]
    Tampered { layout: PathBuf, expected: Digest },
    #[error(transparent)]
    Store(#[from] BlobStoreError),
}

/// An image read from a layout; its config and layer blobs are in the store.
#[derive(Clone, Debug)]
pub struct LayoutImage {
    pub manifest_digest: Digest,
    pub config: Vec<u8>,
    pub config_digest: Digest,
    pub layers: Vec<RemoteLayer>,
}

/// Reads the image `wanted` names (a tag, a `sha256:` digest, or None when the layout holds one
/// image) for `platform` from the layout at `dir`, putting its blobs in `store`. A
/// single-platform image must match `platform` when `platform_required`.
pub fn read(
    dir: &Path,
    wanted: Option<&str>,
    platform: &Platform,
    platform_required: bool,
    store: &BlobStore,
) -> Result<LayoutImage, LayoutReadError> {
    let layout = Layout { dir };
    layout.check_marker()?;
    let index_path = dir.join("index.json");
    let index_bytes = read_limited(&index_path, MAX_MANIFEST)?;
    let index: ManifestJson =
        serde_json::from_slice(&index_bytes).map_err(|e| layout.bad("index.json", e))?;
    let mut entry = layout.pick(&index, wanted, platform)?.clone();
    let mut depth = 0;
    let (manifest_digest, manifest) = loop {
        let (digest, bytes) = layout.small_blob(&entry)?;
        let manifest: ManifestJson = serde_json::from_slice(&bytes)
            .map_err(|e| layout.bad(&format!("manifest {digest}"), e))?;
        if !manifest.is_index() {
            break (digest, manifest);
        }
        depth += 1;
        if depth > MAX_DEPTH {
            return Err(layout.bad(&format!("index {digest}"), "indexes nest too deep"));
        }
        entry = manifest
            .entry_for(platform)
            .map_err(|available| LayoutReadError::NoPlatform {
                layout: dir.to_path_buf(),
                platform: platform.to_string(),
                available,
            })?
            .clone();
    };
    let config_desc = manifest
        .config
        .as_ref()
        .ok_or_else(|| layout.bad(&format!("manifest {manifest_digest}"), "it has no config"))?;
    let config_digest = layout.digest(config_desc)?;
    layout.copy_blob(&config_digest, config_desc.size, store)?;
    let config = store.read(&config_digest, "base config")?;
    if depth == 0 && platform_required {
        if let Some(has) = config_platform_mismatch(&config, platform) {
            return Err(LayoutReadError::WrongPlatform {
                layout: dir.to_path_buf(),
                wanted: platform.to_string(),
                has,
            });
        }
    }
    let mut layers = Vec::with_capacity(manifest.layers.len());
    for l in &manifest.layers {
        let digest = layout.digest(l)?;
        layout.copy_blob(&digest, l.size, store)?;
        layers.push(RemoteLayer {
            media_type: l.media_type.clone(),
            digest,
            size: l.size,
            annotations: l.annotations.clone(),
        });
    }
    Ok(LayoutImage {
        manifest_digest,
        config,
        config_digest,
        layers,
    })
}

/// Reads what `wanted` names in the layout at `dir` (a tag, a `sha256:` digest, or None when
/// it holds one image) whole: an image, or an index with every image it lists, each blob copied
/// into `store` and checked. Manifests and the index keep their bytes, so pushing them again
/// keeps their digests.
pub fn read_artifact(
    dir: &Path,
    wanted: Option<&str>,
    store: &BlobStore,
) -> Result<OwnedArtifact, LayoutReadError> {
    let layout = Layout { dir };
    layout.check_marker()?;
    let index_bytes = read_limited(&dir.join("index.json"), MAX_MANIFEST)?;
    let index: ManifestJson =
        serde_json::from_slice(&index_bytes).map_err(|e| layout.bad("index.json", e))?;
    let entry = layout.pick(&index, wanted, &Platform::host())?.clone();
    let (digest, bytes) = layout.small_blob(&entry)?;
    let manifest: ManifestJson =
        serde_json::from_slice(&bytes).map_err(|e| layout.bad(&format!("manifest {digest}"), e))?;
    if !manifest.is_index() {
        return Ok(OwnedArtifact::Image(
            layout.whole_image(&digest, bytes, &manifest, store)?,
        ));
    }
    crate::manifest::check_children(&manifest)
        .map_err(|message| layout.bad(&format!("index {digest}"), message))?;
    let mut images = Vec::with_capacity(manifest.manifests.len());
    for child in &manifest.manifests {
        let (child_digest, child_bytes) = layout.small_blob(child)?;
        let parsed: ManifestJson = serde_json::from_slice(&child_bytes)
            .map_err(|e| layout.bad(&format!("manifest {child_digest}"), e))?;
        if parsed.is_index() {
            return Err(layout.bad(
                &format!("index {digest}"),
                "it lists another index (lockship reads one level)",
            ));
        }
        images.push(layout.whole_image(&child_digest, child_bytes, &parsed, store)?);
    }
    Ok(OwnedArtifact::Index(ImageIndex {
        images,
        bytes,
        digest,
    }))
}

struct Layout<'a> {
    dir: &'a Path,
}

impl Layout<'_> {
    fn check_marker(&self) -> Result<(), LayoutReadError> {
        let marker = read_limited(&self.dir.join("oci-layout"), 4096)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
        match marker {
            Some(v) if v.get("imageLayoutVersion").is_some_and(|v| v.is_string()) => Ok(()),
            _ => Err(LayoutReadError::NotALayout {
                path: self.dir.to_path_buf(),
            }),
        }
    }

    /// One image manifest's config and layers copied into the store; the image as its bytes say.
    fn whole_image(
        &self,
        digest: &Digest,
        bytes: Vec<u8>,
        manifest: &ManifestJson,
        store: &BlobStore,
    ) -> Result<Image, LayoutReadError> {
        let what = format!("manifest {digest}");
        let config_desc = manifest
            .config
            .as_ref()
            .ok_or_else(|| self.bad(&what, "it has no config"))?;
        let config_digest = self.digest(config_desc)?;
        if config_desc.size > crate::manifest::MAX_CONFIG {
            return Err(self.bad(&what, "its config is larger than lockship reads (16 MiB)"));
        }
        self.copy_blob(&config_digest, config_desc.size, store)?;
        let config = store.read(&config_digest, "image config")?;
        let mut layers = Vec::with_capacity(manifest.layers.len());
        for l in &manifest.layers {
            let layer_digest = self.digest(l)?;
            self.copy_blob(&layer_digest, l.size, store)?;
            layers.push(RemoteLayer {
                media_type: l.media_type.clone(),
                digest: layer_digest,
                size: l.size,
                annotations: l.annotations.clone(),
            });
        }
        Ok(crate::image::from_parts(
            bytes,
            config,
            config_digest,
            &layers,
        ))
    }

    fn bad(&self, what: &str, message: impl ToString) -> LayoutReadError {
        LayoutReadError::Bad {
            layout: self.dir.to_path_buf(),
            what: what.to_string(),
            message: message.to_string(),
        }
    }

    /// The entry of `index.json` that `wanted` names.
    fn pick<'m>(
        &self,
        index: &'m ManifestJson,
        wanted: Option<&str>,
        platform: &Platform,
    ) -> Result<&'m Descriptor, LayoutReadError> {
        let name = |d: &Descriptor| {
            d.annotations
                .get(REF_NAME)
                .cloned()
                .unwrap_or_else(|| d.digest.clone())
        };
        let available = || {
            let names: Vec<String> = index.manifests.iter().map(name).collect();
            if names.is_empty() {
                "no images".to_string()
            } else {
                names.join(", ")
            }
        };
        let found: Vec<&Descriptor> = match wanted {
            None => index.manifests.iter().collect(),
            Some(w) if w.starts_with("sha256:") => {
                index.manifests.iter().filter(|d| d.digest == w).collect()
            }
            Some(w) => index
                .manifests
                .iter()
                .filter(|d| d.annotations.get(REF_NAME).is_some_and(|n| n == w))
                .collect(),
        };
        if let [one] = found.as_slice() {
            return Ok(one);
        }
        if found.is_empty() {
            return Err(LayoutReadError::NoSuchImage {
                layout: self.dir.to_path_buf(),
                wanted: wanted.unwrap_or("").to_string(),
                available: available(),
            });
        }
        // Several entries: one image per platform side by side (crane and ggcr write layouts
        // so). The one for `platform` is the image; without platforms, it is ambiguous.
        let for_platform: Vec<&Descriptor> = found
            .iter()
            .copied()
            .filter(|d| {
                d.platform
                    .as_ref()
                    .is_some_and(|p| platform.matches(&p.os, &p.architecture, p.variant.as_deref()))
            })
            .collect();
        match for_platform.as_slice() {
            [one] => Ok(one),
            _ => Err(LayoutReadError::Ambiguous {
                layout: self.dir.to_path_buf(),
                count: found.len(),
                available: available(),
            }),
        }
    }

    fn digest(&self, d: &Descriptor) -> Result<Digest, LayoutReadError> {
        Digest::parse(&d.digest).ok_or_else(|| LayoutReadError::Bad {
            layout: self.dir.to_path_buf(),
            what: "a descriptor".into(),
            message: format!(
                "unsupported digest `{}` (lockship handles sha256)",
                d.digest
            ),
        })
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir.join("blobs").join("sha256").join(digest.hex())
    }

    /// A manifest or index blob, read whole (bounded) and checked against its digest.
    fn small_blob(&self, d: &Descriptor) -> Result<(Digest, Vec<u8>), LayoutReadError> {
        let digest = self.digest(d)?;
        let bytes = read_limited(&self.blob_path(&digest), MAX_MANIFEST)
            .map_err(|e| self.missing(e, &digest))?;
        if Digest::of_bytes(&bytes) != digest {
            return Err(LayoutReadError::Tampered {
                layout: self.dir.to_path_buf(),
                expected: digest,
            });
        }
        Ok((digest, bytes))
    }

    fn missing(&self, e: LayoutReadError, digest: &Digest) -> LayoutReadError {
        match e {
            LayoutReadError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound => {
                LayoutReadError::MissingBlob {
                    layout: self.dir.to_path_buf(),
                    digest: digest.to_string(),
                }
            }
            other => other,
        }
    }

    /// Copies a blob into the store (no more than `size` bytes), checked against its digest;
    /// one the store holds already is not copied again.
    fn copy_blob(
        &self,
        digest: &Digest,
        size: u64,
        store: &BlobStore,
    ) -> Result<(), LayoutReadError> {
        if store.contains(digest) {
            return Ok(());
        }
        let path = self.blob_path(digest);
        match std::fs::metadata(&path) {
            Ok(meta) if !meta.is_file() => {
                return Err(self.bad(&format!("blob {digest}"), "it is not a regular file"))
            }
            Ok(meta) if meta.len() != size => {
                return Err(self.bad(
                    &format!("blob {digest}"),
                    format!("it is {} bytes, and its descriptor says {size}", meta.len()),
                ))
            }
            _ => {}
        }
        let file = std::fs::File::open(&path).map_err(|source| {
            self.missing(
                LayoutReadError::Io {
                    path: path.clone(),
                    source,
                },
                digest,
            )
        })?;
        let mut pending = store.begin()?;
        io::copy(&mut file.take(size.saturating_add(1)), &mut pending).map_err(|source| {
            LayoutReadError::Io {
                path: path.clone(),
                source,
            }
        })?;
        match store.commit(pending, Some(digest), "base layer") {
            Ok(_) => Ok(()),
            Err(BlobStoreError::DigestMismatch { .. }) => Err(LayoutReadError::Tampered {
                layout: self.dir.to_path_buf(),
                expected: digest.clone(),
            }),
            Err(e) => Err(e.into()),
        }
    }
}

/// Reads a file of at most `limit` bytes; a longer one is refused.
fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, LayoutReadError> {
    let io_err = |source| LayoutReadError::Io {
        path: path.to_path_buf(),
        source,
    };
    // A FIFO would block and a device never end: regular files only.
    if !std::fs::metadata(path).map_err(io_err)?.is_file() {
        return Err(io_err(io::Error::other("not a regular file")));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(io_err)?
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err)?;
    if bytes.len() as u64 > limit {
        return Err(LayoutReadError::Io {
            path: path.to_path_buf(),
            source: io::Error::other(format!("larger than {limit} bytes")),
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A layout written by hand: one image per (tag, architecture), each with one layer,
    /// listed in index.json directly or (with `nested`) under one index.
    struct Fixture {
        dir: tempfile::TempDir,
    }

    impl Fixture {
        fn blob(&self, bytes: &[u8]) -> (Digest, usize) {
            let digest = Digest::of_bytes(bytes);
            let dir = self.dir.path().join("blobs/sha256");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(digest.hex()), bytes).unwrap();
            (digest, bytes.len())
        }

        fn image(&self, arch: &str) -> serde_json::Value {
            let (layer, layer_size) = self.blob(format!("layer for {arch}").as_bytes());
            let config = json!({"architecture": arch, "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": [layer.to_string()]}});
            let (config, config_size) = self.blob(config.to_string().as_bytes());
            let manifest = json!({"schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": config.to_string(), "size": config_size},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer.to_string(), "size": layer_size}]});
            let (digest, size) = self.blob(manifest.to_string().as_bytes());
            json!({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": digest.to_string(), "size": size,
                "platform": {"os": "linux", "architecture": arch}})
        }

        fn index(&self, entries: Vec<serde_json::Value>) {
            std::fs::write(
                self.dir.path().join("oci-layout"),
                r#"{"imageLayoutVersion":"1.0.0"}"#,
            )
            .unwrap();
            let index = json!({"schemaVersion": 2, "manifests": entries});
            std::fs::write(self.dir.path().join("index.json"), index.to_string()).unwrap();
        }

        fn read(&self, wanted: Option<&str>, arch: &str) -> Result<LayoutImage, LayoutReadError> {
            let store = BlobStore::open(self.dir.path().join("store")).unwrap();
            read(
                self.dir.path(),
                wanted,
                &Platform::parse(&format!("linux/{arch}")).unwrap(),
                true,
                &store,
            )
        }
    }

    fn fixture() -> Fixture {
        Fixture {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn tagged(mut entry: serde_json::Value, tag: &str) -> serde_json::Value {
        entry["annotations"] = json!({ REF_NAME: tag });
        entry
    }

    fn arch_of(image: &LayoutImage) -> String {
        let config: serde_json::Value = serde_json::from_slice(&image.config).unwrap();
        config["architecture"].as_str().unwrap().to_string()
    }

    #[test]
    fn picks_by_tag_digest_or_the_only_image() {
        let f = fixture();
        let amd = f.image("amd64");
        let arm = f.image("arm64");
        let arm_digest = arm["digest"].as_str().unwrap().to_string();
        f.index(vec![tagged(amd.clone(), "a"), tagged(arm, "b")]);
        assert_eq!(arch_of(&f.read(Some("a"), "amd64").unwrap()), "amd64");
        let by_digest = f.read(Some(&arm_digest), "arm64").unwrap();
        assert_eq!(by_digest.manifest_digest.to_string(), arm_digest);
        // The store holds every blob, checked.
        let store = BlobStore::open(f.dir.path().join("store")).unwrap();
        assert!(store.contains(&by_digest.layers[0].digest));

        let err = f.read(Some("c"), "amd64").unwrap_err().to_string();
        assert!(err.ends_with("has no image `c` (it has: a, b)"), "{err}");
        // Two images of different platforms and no tag: the platform picks.
        assert_eq!(arch_of(&f.read(None, "arm64").unwrap()), "arm64");
        // A tag whose image is for another platform, asked for explicitly.
        let err = f.read(Some("a"), "arm64").unwrap_err().to_string();
        assert!(
            err.ends_with(
                "holds an image for linux/amd64 only, and --platform asks for linux/arm64"
            ),
            "{err}"
        );

        f.index(vec![tagged(amd.clone(), "a"), tagged(amd, "b")]);
        let err = f.read(None, "amd64").unwrap_err().to_string();
        assert!(err.contains("holds 2 images"), "{err}");
    }

    #[test]
    fn nested_index_is_narrowed_to_the_platform() {
        let f = fixture();
        let entries = vec![f.image("amd64"), f.image("arm64")];
        let index = json!({"schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries});
        let (digest, size) = f.blob(index.to_string().as_bytes());
        f.index(vec![tagged(
            json!({"mediaType": "application/vnd.oci.image.index.v1+json",
                "digest": digest.to_string(), "size": size}),
            "multi",
        )]);
        assert_eq!(arch_of(&f.read(Some("multi"), "arm64").unwrap()), "arm64");
        let err = f.read(None, "s390x").unwrap_err().to_string();
        assert!(
            err.ends_with("has no image for linux/s390x (it has: linux/amd64, linux/arm64)"),
            "{err}"
        );
    }

    #[test]
    fn damaged_blobs_are_refused_and_not_stored() {
        let f = fixture();
        let entry = f.image("amd64");
        f.index(vec![entry.clone()]);
        let image = f.read(None, "amd64").unwrap();
        let layer = image.layers[0].digest.clone();
        // A fresh store, and the layer altered in the layout.
        std::fs::remove_dir_all(f.dir.path().join("store")).unwrap();
        let path = f.dir.path().join("blobs/sha256").join(layer.hex());
        std::fs::write(&path, b"layer for amd6X").unwrap();
        let err = f.read(None, "amd64").unwrap_err();
        assert!(matches!(err, LayoutReadError::Tampered { .. }), "{err}");
        let store = BlobStore::open(f.dir.path().join("store")).unwrap();
        assert!(!store.contains(&layer));

        std::fs::remove_file(&path).unwrap();
        let err = f.read(None, "amd64").unwrap_err().to_string();
        assert!(err.ends_with(&format!("lacks blob {layer}")), "{err}");

        std::fs::write(f.dir.path().join("index.json"), "{").unwrap();
        let err = f.read(None, "amd64").unwrap_err().to_string();
        assert!(err.contains("index.json is unreadable"), "{err}");
        std::fs::remove_file(f.dir.path().join("oci-layout")).unwrap();
        let err = f.read(None, "amd64").unwrap_err();
        assert!(matches!(err, LayoutReadError::NotALayout { .. }), "{err}");
    }
}
