//! A distroless Python base assembled from Debian packages, with no registry and no container:
//! verify the suite's signed InRelease, resolve the requested packages' closure from its
//! Packages index, fetch the .debs by the hashes that chain vouches for, unpack their data into
//! one layer, and write what maintainer scripts would have (passwd, CA bundle, os-release…).

pub mod base;
pub mod base_lock;
pub mod control;
pub mod deb;
pub mod mirror;
pub mod release;
pub mod resolve;
pub mod version;

use std::path::PathBuf;

use lockship_net::url::Redacted;
use lockship_oci::blob_store::BlobStoreError;
use lockship_oci::download::DownloadError;
use lockship_oci::layer::LayerError;

#[derive(Debug, thiserror::Error)]
pub enum DebianError {
    #[error("no Debian mirror is configured and the host's apt sources name none")]
    NoMirror,
    #[error("cannot download {what}: {source}")]
    Download {
        what: String,
        #[source]
        source: DownloadError,
    },
    #[error("suite `{suite}` not found on {mirror} ({message})")]
    UnknownSuite {
        suite: String,
        mirror: Redacted,
        message: String,
    },
    #[error("{url}: the OpenPGP signature does not verify against {keyring}")]
    BadSignature { url: Redacted, keyring: String },
    #[error("cannot read the Debian archive keyring {path}: {message}")]
    Keyring { path: PathBuf, message: String },
    #[error("{url}: {message}")]
    BadRelease { url: Redacted, message: String },
    #[error("Debian package {package} is no longer on {mirror} ({archive}): the archive dropped that version")]
    Gone {
        package: String,
        archive: String,
        mirror: Redacted,
    },
    #[error("the base lock takes {package} from {archive}, and no source is configured for that archive")]
    NoArchive { package: String, archive: String },
    #[error("Debian {suite} has no packages for {platform} (it has: {has})")]
    NoArchitecture {
        suite: String,
        platform: String,
        has: String,
    },
    #[error(transparent)]
    Resolve(#[from] resolve::ResolveError),
    #[error("{package}: cannot unpack {path}: {message}")]
    Unpack {
        package: String,
        path: PathBuf,
        message: String,
    },
    #[error("{path}: {message}")]
    Lock { path: PathBuf, message: String },
    #[error("the Debian base has no python3.X package")]
    NoPython,
    #[error(transparent)]
    Store(#[from] BlobStoreError),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Debian's name (dpkg's) for an OCI architecture and variant: they differ where Debian kept
/// older names. 32-bit ARM is two ports: `armel` (soft-float, ARMv5TE baseline) for `arm/v5`,
/// and hard-float `armhf` (ARMv7 baseline) for `arm/v7` and a bare `arm`. Debian has no ARMv6
/// port; `arm/v6` maps to `armel`, whose ARMv5TE code runs on an ARMv6 CPU, where armhf's
/// ARMv7 code would not.
pub fn dpkg_arch(oci_arch: &str, variant: Option<&str>) -> String {
    match (oci_arch, variant) {
        ("arm", Some("v5" | "v6")) => "armel",
        ("arm", _) => "armhf",
        ("386", _) => "i386",
        ("ppc64le", _) => "ppc64el",
        ("mips64le", _) => "mips64el",
        ("mipsle", _) => "mipsel",
        (other, _) => other,
    }
    .to_string()
}

/// The OCI platform (`linux/arm/v7`) of a Debian architecture, for messages: the inverse of
/// [`dpkg_arch`] and Debian's other names.
pub fn oci_platform(dpkg_arch: &str) -> String {
    let arch = match dpkg_arch {
        "armhf" => "arm/v7",
        "armel" => "arm/v5",
        "i386" => "386",
        "ppc64el" => "ppc64le",
        "mips64el" => "mips64le",
        "mipsel" => "mipsle",
        other => other,
    };
    format!("linux/{arch}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_arch_by_architecture_and_variant() {
        for (arch, variant, dpkg) in [
            ("amd64", None, "amd64"),
            ("arm64", Some("v8"), "arm64"),
            ("arm", None, "armhf"),
            ("arm", Some("v7"), "armhf"),
            ("arm", Some("v6"), "armel"),
            ("arm", Some("v5"), "armel"),
            ("386", None, "i386"),
            ("ppc64le", None, "ppc64el"),
            ("mips64le", None, "mips64el"),
            ("mipsle", None, "mipsel"),
            ("s390x", None, "s390x"),
        ] {
            assert_eq!(dpkg_arch(arch, variant), dpkg, "{arch} {variant:?}");
        }
        // The messages' inverse lands on a platform that maps back to the same port.
        for dpkg in ["armhf", "armel", "i386", "ppc64el", "mips64el", "mipsel"] {
            let platform = oci_platform(dpkg);
            let mut parts = platform.split('/').skip(1);
            let (arch, variant) = (parts.next().unwrap(), parts.next());
            assert_eq!(dpkg_arch(arch, variant), dpkg);
        }
    }
}
