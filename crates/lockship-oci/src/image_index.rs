//! A multi-platform image: an OCI image index naming one manifest per platform, serialized
//! canonically so that the same images give the same index digest.

use serde_json::{json, Value};

use super::canonical_json;
use super::digest::Digest;
use super::image::Image;
use super::media_types;

/// Images of one build for several platforms, and the index that lists them.
#[derive(Clone, Debug)]
pub struct ImageIndex {
    pub images: Vec<Image>,
    pub bytes: Vec<u8>,
    pub digest: Digest,
}

impl ImageIndex {
    /// The index of `images`, in the order given (users see it in `docker manifest inspect`).
    pub fn of(images: Vec<Image>) -> ImageIndex {
        let index = json!({
            "schemaVersion": 2,
            "mediaType": media_types::OCI_INDEX,
            "manifests": images.iter().map(|i| manifest_descriptor(i, None)).collect::<Vec<_>>(),
        });
        let bytes = canonical_json::to_vec(&index);
        ImageIndex {
            digest: Digest::of_bytes(&bytes),
            bytes,
            images,
        }
    }
}

/// An image's platform as an index entry states it.
pub fn platform_json(image: &Image) -> Value {
    let mut platform = json!({"os": image.os, "architecture": image.architecture});
    if let Some(variant) = &image.variant {
        platform["variant"] = json!(variant);
    }
    platform
}

/// The descriptor of `image`'s manifest, with its platform, and a tag annotation when given
/// (an OCI layout's `index.json` names its images that way).
pub fn manifest_descriptor(image: &Image, tag: Option<&str>) -> Value {
    let mut d = json!({
        "mediaType": media_types::OCI_MANIFEST,
        "digest": image.manifest_digest.to_string(),
        "size": image.manifest.len(),
        "platform": platform_json(image),
    });
    if let Some(tag) = tag {
        d["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
    }
    d
}

/// What an output receives: one image, or an index of several.
#[derive(Clone, Copy, Debug)]
pub enum Artifact<'a> {
    Image(&'a Image),
    Index(&'a ImageIndex),
}

impl<'a> Artifact<'a> {
    /// Every image it holds.
    pub fn images(self) -> Vec<&'a Image> {
        match self {
            Artifact::Image(image) => vec![image],
            Artifact::Index(index) => index.images.iter().collect(),
        }
    }

    /// The digest that names it: the manifest's, or the index's.
    pub fn digest(self) -> &'a Digest {
        match self {
            Artifact::Image(image) => &image.manifest_digest,
            Artifact::Index(index) => &index.digest,
        }
    }

    /// Its top-level descriptor (for an OCI layout's `index.json`), tagged `tag`.
    pub fn descriptor(self, tag: &str) -> Value {
        match self {
            Artifact::Image(image) => manifest_descriptor(image, Some(tag)),
            Artifact::Index(index) => json!({
                "mediaType": media_types::OCI_INDEX,
                "digest": index.digest.to_string(),
                "size": index.bytes.len(),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }),
        }
    }

    /// Small blobs it consists of beyond the layers: configs and manifests, and the index.
    pub fn metadata_blobs(self) -> Vec<(&'a Digest, &'a [u8])> {
        let mut blobs = Vec::new();
        for image in self.images() {
            blobs.push((&image.config_digest, image.config.as_slice()));
            blobs.push((&image.manifest_digest, image.manifest.as_slice()));
        }
        if let Artifact::Index(index) = self {
            blobs.push((&index.digest, index.bytes.as_slice()));
        }
        blobs
    }
}

/// An image or an index held whole, as read back from disk (see `layout_image::read_artifact`).
#[derive(Clone, Debug)]
pub enum OwnedArtifact {
    Image(Image),
    Index(ImageIndex),
}

impl OwnedArtifact {
    pub fn as_artifact(&self) -> Artifact<'_> {
        match self {
            OwnedArtifact::Image(image) => Artifact::Image(image),
            OwnedArtifact::Index(index) => Artifact::Index(index),
        }
    }

    /// The image for `platform`; with none, the only image, else this machine's, else the
    /// first. The error lists the platforms there are.
    pub fn image_for(
        &self,
        platform: Option<&crate::platform::Platform>,
    ) -> Result<&Image, String> {
        let images = self.as_artifact().images();
        let matches = |p: &crate::platform::Platform, i: &&Image| {
            p.matches(&i.os, &i.architecture, i.variant.as_deref())
        };
        let found = match platform {
            Some(p) => images.iter().find(|i| matches(p, i)),
            None if images.len() == 1 => images.first(),
            None => {
                let host = crate::platform::Platform::host();
                images.iter().find(|i| matches(&host, i)).or(images.first())
            }
        };
        found.copied().ok_or_else(|| {
            if images.is_empty() {
                return "no images".to_string();
            }
            images
                .iter()
                .map(|i| match &i.variant {
                    Some(v) => format!("{}/{}/{v}", i.os, i.architecture),
                    None => format!("{}/{}", i.os, i.architecture),
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{assemble, ConfigSpec};

    fn image(arch: &str) -> Image {
        assemble(
            &json!({"os": "linux", "architecture": arch}),
            Vec::new(),
            0,
            &ConfigSpec::default(),
        )
    }

    #[test]
    fn lists_each_platform_and_is_stable() {
        let index = ImageIndex::of(vec![image("amd64"), image("arm64")]);
        let parsed: Value = serde_json::from_slice(&index.bytes).unwrap();
        let archs: Vec<&str> = parsed["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["platform"]["architecture"].as_str().unwrap())
            .collect();
        assert_eq!(archs, ["amd64", "arm64"]);
        assert_eq!(parsed["mediaType"], media_types::OCI_INDEX);
        assert_eq!(
            parsed["manifests"][1]["digest"],
            index.images[1].manifest_digest.to_string()
        );
        let again = ImageIndex::of(vec![image("amd64"), image("arm64")]);
        assert_eq!(index.digest, again.digest);
        assert_eq!(Digest::of_bytes(&index.bytes), index.digest);
        // Index, two configs, two manifests.
        assert_eq!(Artifact::Index(&index).metadata_blobs().len(), 5);
    }
}
