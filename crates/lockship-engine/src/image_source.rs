//! An image a command reads rather than builds (`inspect`, `diff`, `sbom`, `push`), as the user
//! names it: `oci:DIR[:TAG|@DIGEST]`, `docker:FILE`, or a registry reference. Opened whole (an
//! index with every platform) into the cache's blob store; layers are fetched only for the one
//! image a command looks inside.

use std::path::{Path, PathBuf};

use lockship_net::Http;
use lockship_oci::blob_store::BlobStore;
use lockship_oci::docker_tar::{self, TarballReadError};
use lockship_oci::image::Image;
use lockship_oci::image_index::OwnedArtifact;
use lockship_oci::layout_image;
use lockship_oci::platform::Platform;
use lockship_oci::registry::{Registry, RegistryAccess};
use lockship_sys::scratch::ScratchDir;
use oci_spec::distribution::Reference;

use crate::error::Error;

/// Where an image to read is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageSource {
    Registry(Reference),
    /// An OCI layout, and the tag or digest of the image in it (None: its only image).
    Layout {
        dir: PathBuf,
        wanted: Option<String>,
    },
    DockerTar(PathBuf),
}

impl ImageSource {
    /// Parses `oci:DIR`, `oci:DIR:TAG`, `oci:DIR@sha256:…`, `docker:FILE`, a directory or file
    /// that exists (as those), or a reference.
    pub fn parse(text: &str) -> Result<ImageSource, Error> {
        if let Some(rest) = text.strip_prefix("oci:") {
            let (dir, wanted) = split_layout(rest);
            if dir.is_empty() {
                return Err(Error::Usage(format!("`{text}`: the directory is empty")));
            }
            return Ok(ImageSource::Layout {
                dir: PathBuf::from(dir),
                wanted,
            });
        }
        if let Some(file) = text.strip_prefix("docker:") {
            if file.is_empty() {
                return Err(Error::Usage(format!("`{text}`: the file is empty")));
            }
            return Ok(ImageSource::DockerTar(PathBuf::from(file)));
        }
        // A path that exists is meant as one (`out.tar` is also a valid repository name, so
        // only what exists on disk is taken this way): a directory is an OCI layout, a file a
        // docker tarball. `registry:REF` forces a reference.
        if !text.starts_with("registry:") {
            let path = Path::new(text);
            if path.is_dir() {
                return Ok(ImageSource::Layout {
                    dir: path.to_path_buf(),
                    wanted: None,
                });
            }
            if path.is_file() {
                return Ok(ImageSource::DockerTar(path.to_path_buf()));
            }
        }
        let reference = text.strip_prefix("registry:").unwrap_or(text);
        Ok(ImageSource::Registry(
            lockship_oci::registry::parse_reference(reference)?,
        ))
    }
}

/// `DIR`, `DIR:TAG` or `DIR@sha256:HEX`: a tag is what follows the last `:` after the last
/// `/`, so `./out/app.oci` and `out:v1` both read as meant.
fn split_layout(text: &str) -> (&str, Option<String>) {
    if let Some((dir, digest)) = text.rsplit_once('@') {
        if digest.starts_with("sha256:") {
            return (dir, Some(digest.to_string()));
        }
    }
    let last = text.rsplit('/').next().unwrap_or(text);
    match last.rsplit_once(':') {
        Some((_, tag)) if !tag.is_empty() => {
            let dir = &text[..text.len() - tag.len() - 1];
            (dir, Some(tag.to_string()))
        }
        _ => (text, None),
    }
}

/// What opening an image needs: the cache's store and a registry client.
pub struct Reader<'a> {
    pub store: &'a BlobStore,
    pub registry: Registry,
}

impl<'a> Reader<'a> {
    pub fn new(store: &'a BlobStore, http: &Http, access: RegistryAccess) -> Reader<'a> {
        Reader {
            store,
            registry: Registry::new(http.clone(), access),
        }
    }

    /// Reads `source` whole: its manifests and configs (and, from disk, its layers) in the
    /// store. Registry layers stay remote until [`Reader::fetch_layers`].
    pub async fn open(&self, source: &ImageSource) -> Result<OwnedArtifact, Error> {
        match source {
            ImageSource::Registry(reference) => {
                Ok(self.registry.read_artifact(reference, self.store).await?)
            }
            ImageSource::Layout { dir, wanted } => Ok(layout_image::read_artifact(
                dir,
                wanted.as_deref(),
                self.store,
            )?),
            ImageSource::DockerTar(file) => {
                let parent = self.store.tmp_dir();
                let scratch = ScratchDir::new_in(&parent).map_err(|source| Error::Io {
                    path: parent.clone(),
                    source,
                })?;
                docker_tar::read(file, self.store, scratch.path()).map_err(tarball_error)
            }
        }
    }

    /// Brings the layers of `image` that are still in a registry into the store.
    pub async fn fetch_layers(&self, image: &Image) -> Result<(), Error> {
        self.registry
            .fetch_cached_layers(image, self.store)
            .await
            .map_err(|e| e.source.into())
    }
}

fn tarball_error(e: TarballReadError) -> Error {
    match e {
        TarballReadError::Layout(e) => e.into(),
        TarballReadError::Store(e) => e.into(),
        other => Error::Tarball(other),
    }
}

/// The image of `artifact` for `platform` (with none: the only one, else this machine's).
pub fn pick<'a>(
    artifact: &'a OwnedArtifact,
    platform: Option<&Platform>,
    name: &str,
) -> Result<&'a Image, Error> {
    artifact.image_for(platform).map_err(|available| {
        Error::Usage(match platform {
            Some(p) => format!("{name} has no image for {p} (it has: {available})"),
            None => format!("{name} has no image to read (it has: {available})"),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_kind() {
        assert_eq!(
            ImageSource::parse("oci:out/app.oci").unwrap(),
            ImageSource::Layout {
                dir: "out/app.oci".into(),
                wanted: None
            }
        );
        assert_eq!(
            ImageSource::parse("oci:./out:v1").unwrap(),
            ImageSource::Layout {
                dir: "./out".into(),
                wanted: Some("v1".into())
            }
        );
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            ImageSource::parse(&format!("oci:out@{digest}")).unwrap(),
            ImageSource::Layout {
                dir: "out".into(),
                wanted: Some(digest)
            }
        );
        assert_eq!(
            ImageSource::parse("docker:app.tar").unwrap(),
            ImageSource::DockerTar("app.tar".into())
        );
        assert!(matches!(
            ImageSource::parse("127.0.0.1:5000/app:1").unwrap(),
            ImageSource::Registry(_)
        ));
        assert!(ImageSource::parse("oci:").is_err());
        assert!(ImageSource::parse("docker:").is_err());
        assert!(ImageSource::parse("Not A Ref").is_err());
    }
}
