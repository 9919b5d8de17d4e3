//! The cache directory's layout in one place: every bucket lockship keeps there and its folder
//! name. Everything under the cache is lockship's own, so sweeps and rebuilds touch only these.

use std::path::{Path, PathBuf};

/// One kind of entry in the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bucket {
    /// Content-addressed blobs: wheels, .debs, layers, base layers and configs.
    Blobs,
    /// Layer infos (digest, diff id, size) by the key over a layer's inputs.
    Layers,
    /// Facts read from a base image, by its manifest digest.
    Bases,
    /// Package index answers, by (index, package, version, hashes).
    Index,
    /// (image, smoke commands) pairs that passed.
    SmokePassed,
    /// Built app wheels, by the digest of the project's files.
    AppWheels,
    /// PEP 517 build environments, by `[build-system]`.
    BuildEnvs,
    /// Tools lockship installs for itself (a pinned uv).
    Tools,
    /// Base interpreters unpacked to compile bytecode with, by base.
    Interpreters,
    /// What the ELF files of a wheel need and provide, by the wheel's sha256.
    Native,
    /// Wheels built from sdists, by (sdist, builder, target).
    BuiltWheels,
    /// The image last pushed to each repository, by repository.
    Pushed,
}

impl Bucket {
    pub const ALL: [Bucket; 12] = [
        Bucket::Blobs,
        Bucket::Layers,
        Bucket::Bases,
        Bucket::Index,
        Bucket::SmokePassed,
        Bucket::AppWheels,
        Bucket::BuildEnvs,
        Bucket::Tools,
        Bucket::Interpreters,
        Bucket::Native,
        Bucket::BuiltWheels,
        Bucket::Pushed,
    ];

    /// The bucket's folder name, which `lockship cache info` shows as its kind.
    pub fn name(self) -> &'static str {
        match self {
            Bucket::Blobs => "blobs",
            Bucket::Layers => "layers",
            Bucket::Bases => "bases",
            Bucket::Index => "index",
            Bucket::SmokePassed => "smoke-passed",
            Bucket::AppWheels => "app-wheels",
            Bucket::BuildEnvs => "build-envs",
            Bucket::Tools => "tools",
            Bucket::Interpreters => "interpreters",
            Bucket::Native => "native",
            Bucket::BuiltWheels => "built-wheels",
            Bucket::Pushed => "pushed",
        }
    }

    /// The bucket's folder under `cache_dir`.
    pub fn under(self, cache_dir: &Path) -> PathBuf {
        cache_dir.join(self.name())
    }
}
