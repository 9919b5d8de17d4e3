//! OCI platforms (`linux/amd64`, `linux/arm64/v8`) as users write them and indexes list them.

use std::fmt;

/// An operating system / architecture / optional variant triple.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// Parses `os/arch[/variant]`; `None` when the shape is wrong.
    pub fn parse(text: &str) -> Option<Platform> {
        let mut parts = text.split('/');
        let os = parts.next().filter(|s| !s.is_empty())?.to_string();
        let architecture = normalize_arch(parts.next().filter(|s| !s.is_empty())?);
        let variant = parts.next().map(String::from);
        if parts.next().is_some() {
            return None;
        }
        Some(Platform {
            os,
            architecture,
            variant,
        })
    }

    /// The platform of the machine lockship runs on, as an image platform.
    pub fn host() -> Platform {
        Platform {
            os: "linux".into(),
            architecture: normalize_arch(std::env::consts::ARCH),
            variant: None,
        }
    }

    /// Whether an index entry's platform fields fit this platform. An unset variant matches any
    /// (`linux/arm64` matches `linux/arm64/v8`).
    pub fn matches(&self, os: &str, architecture: &str, variant: Option<&str>) -> bool {
        self.os == os
            && self.architecture == normalize_arch(architecture)
            && match (&self.variant, variant) {
                (Some(want), Some(have)) => want == have,
                (Some(_), None) => false,
                (None, _) => true,
            }
    }
}

/// The one table of architecture names: OCI's (Go's) and the machine name that uname, Rust
/// and Python's `platform.machine()` use, for every architecture lockship knows.
const ARCHITECTURES: [(&str, &str); 7] = [
    ("amd64", "x86_64"),
    ("arm64", "aarch64"),
    ("arm", "armv7l"),
    ("386", "i686"),
    ("ppc64le", "ppc64le"),
    ("s390x", "s390x"),
    ("riscv64", "riscv64"),
];

/// The machine name (`platform.machine()`) of an OCI architecture; unknown ones as they are.
pub fn machine_name(oci_arch: &str) -> &str {
    ARCHITECTURES
        .iter()
        .find(|(oci, _)| *oci == oci_arch)
        .map_or(oci_arch, |(_, machine)| machine)
}

/// Maps the architecture names of Rust, uname and Go onto Go's (which OCI uses).
fn normalize_arch(arch: &str) -> String {
    let arch = if arch == "x86-64" { "x86_64" } else { arch };
    ARCHITECTURES
        .iter()
        .find(|(_, machine)| *machine == arch)
        .map_or(arch, |(oci, _)| oci)
        .to_string()
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_match() {
        let p = Platform::parse("linux/arm64").unwrap();
        assert!(p.matches("linux", "arm64", Some("v8")));
        assert!(!p.matches("linux", "amd64", None));
        assert_eq!(
            Platform::parse("linux/x86_64").unwrap().architecture,
            "amd64"
        );
        assert!(Platform::parse("linux").is_none());
        assert_eq!(machine_name("arm64"), "aarch64");
        assert_eq!(machine_name("mips64le"), "mips64le");
        for (oci, machine) in ARCHITECTURES {
            assert_eq!(normalize_arch(machine), oci);
            assert_eq!(machine_name(oci), machine);
        }
        assert_eq!(
            Platform::parse("linux/arm/v7").unwrap().to_string(),
            "linux/arm/v7"
        );
    }
}
