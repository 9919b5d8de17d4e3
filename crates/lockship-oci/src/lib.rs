//! The Python-agnostic half of lockship: digests, blobs, deterministic layers, images, and
//! where images go (registry, OCI layout, docker tarball). Nothing here knows about wheels.

pub mod blob_store;
pub mod canonical_json;
pub mod digest;
pub mod docker_tar;
pub mod download;
pub mod gzip_members;
pub mod image;
pub mod image_index;
pub mod layer;
pub mod layer_files;
pub mod layer_stream;
pub mod layout;
pub mod layout_image;
mod manifest;
pub mod media_types;
pub mod platform;
pub mod read_ahead;
pub mod registry;
pub mod tar_tree;
pub mod unpack;
