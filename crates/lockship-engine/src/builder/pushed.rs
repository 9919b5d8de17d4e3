//! The image this machine last pushed to each repository, by digest. A later build pushing to
//! any tag of that repository reads that manifest back (one GET): while it is there, the
//! repository holds its blobs, so they are not checked one by one. A CI job that pushes a new
//! tag per commit thus sends an unchanged image with two manifest GETs and one PUT. Nothing is
//! taken on trust: a manifest that is gone proves nothing, and the build checks blobs as before.

use std::path::{Path, PathBuf};

use oci_spec::distribution::Reference;

use crate::cache_dir::Bucket;
use crate::error::Error;
use lockship_oci::digest::Digest;

use super::cache::{read_cached, write_cached};

/// `registry/repository@digest` of the image last pushed to `target`'s repository, if any.
pub(super) fn last(cache_dir: &Path, target: &Reference) -> Option<Reference> {
    let digest: String = read_cached(&entry(cache_dir, target))?;
    Digest::parse(&digest)?;
    let text = format!(
        "{}/{}@{digest}",
        target.resolve_registry(),
        target.repository()
    );
    lockship_oci::registry::parse_reference(&text).ok()
}

/// Notes that `target`'s repository now holds the image or index `digest`.
pub(crate) fn remember(cache_dir: &Path, target: &Reference, digest: &Digest) -> Result<(), Error> {
    write_cached(&entry(cache_dir, target), &digest.to_string())
}

fn entry(cache_dir: &Path, target: &Reference) -> PathBuf {
    let repository = format!("{}/{}", target.resolve_registry(), target.repository());
    let key = Digest::of_parts(["lockship-pushed-v1", &repository]);
    Bucket::Pushed
        .under(cache_dir)
        .join(format!("{}.json", &key.hex()[..32]))
}
