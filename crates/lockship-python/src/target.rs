//! The Python a built image will run: version, interpreter path, libc, architecture, and the
//! wheel tags and environment markers that follow from them (not from the host).

use serde::{Deserialize, Serialize};
use uv_pep508::{MarkerEnvironment, MarkerEnvironmentBuilder};
pub use uv_platform_tags::Tags;
use uv_platform_tags::{Arch, Os, Platform, TagsOptions};

/// The C library of the base image, which decides manylinux vs musllinux wheels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "family")]
pub enum Libc {
    Glibc { major: u16, minor: u16 },
    Musl { major: u16, minor: u16 },
}

/// Everything about the target interpreter that wheel choice and installation depend on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PythonTarget {
    /// Full version, e.g. 3.11.2.
    pub version: (u8, u8, u8),
    /// Absolute path of the base's interpreter inside the image.
    pub interpreter: String,
    pub libc: Libc,
    /// OCI architecture name (amd64, arm64, …).
    pub architecture: String,
    /// Where the virtual environment lives in the image (absolute).
    pub venv: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("architecture `{0}` of the base image is not supported for Python wheels")]
    Arch(String),
    #[error("cannot compute wheel tags for {target}: {message}")]
    Tags { target: String, message: String },
}

impl PythonTarget {
    fn uv_arch(&self) -> Result<Arch, TargetError> {
        self.machine()
            .parse()
            .map_err(|_| TargetError::Arch(self.architecture.clone()))
    }

    /// `platform.machine()` on the target.
    pub fn machine(&self) -> &str {
        lockship_oci::platform::machine_name(&self.architecture)
    }

    /// The wheel tags the target interpreter accepts, best first.
    pub fn tags(&self) -> Result<Tags, TargetError> {
        let os = match self.libc {
            Libc::Glibc { major, minor } => Os::Manylinux { major, minor },
            Libc::Musl { major, minor } => Os::Musllinux { major, minor },
        };
        let py = (self.version.0, self.version.1);
        Tags::from_env(
            Platform::new(os, self.uv_arch()?),
            py,
            "cpython",
            py,
            TagsOptions {
                manylinux_compatible: true,
                gil_disabled: false,
                debug_enabled: false,
                // Never consult the host: the target is described entirely by the base image.
                is_cross: true,
            },
        )
        .map_err(|e| TargetError::Tags {
            target: self.describe(),
            message: e.to_string(),
        })
    }

    /// The PEP 508 marker environment of the target, for evaluating lock markers.
    pub fn marker_env(&self) -> MarkerEnvironment {
        let full = format!("{}.{}.{}", self.version.0, self.version.1, self.version.2);
        let short = format!("{}.{}", self.version.0, self.version.1);
        MarkerEnvironment::try_from(MarkerEnvironmentBuilder {
            implementation_name: "cpython",
            implementation_version: &full,
            os_name: "posix",
            platform_machine: self.machine(),
            platform_python_implementation: "CPython",
            platform_release: "",
            platform_system: "Linux",
            platform_version: "",
            python_full_version: &full,
            python_version: &short,
            sys_platform: "linux",
        })
        .expect("three small integers form a valid version")
    }

    /// `python3.11`: the directory name under `lib/` of the venv.
    pub fn lib_dir(&self) -> String {
        format!("python{}.{}", self.version.0, self.version.1)
    }

    /// Absolute site-packages path of the venv in the image.
    pub fn site_packages(&self) -> String {
        format!("{}/lib/{}/site-packages", self.venv, self.lib_dir())
    }

    /// A short description like `cp311-manylinux_2_36-x86_64` for messages.
    pub fn describe(&self) -> String {
        let libc = match self.libc {
            Libc::Glibc { major, minor } => format!("manylinux_{major}_{minor}"),
            Libc::Musl { major, minor } => format!("musllinux_{major}_{minor}"),
        };
        format!(
            "cp{}{}-{libc}_{}",
            self.version.0,
            self.version.1,
            self.machine()
        )
    }
}

/// Debian bookworm's CPython 3.11 on amd64: the one example target that unit tests, benches
/// and fuzz targets of every crate reason about.
#[doc(hidden)]
pub fn bookworm() -> PythonTarget {
    PythonTarget {
        version: (3, 11, 2),
        interpreter: "/usr/bin/python3.11".into(),
        libc: Libc::Glibc {
            major: 2,
            minor: 36,
        },
        architecture: "amd64".into(),
        venv: "/opt/venv".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;
    use uv_distribution_filename::WheelFilename;

    #[test]
    fn tags_come_from_the_target_not_the_host() {
        let tags = bookworm().tags().unwrap();
        let ok = |name: &str| {
            WheelFilename::from_str(name)
                .unwrap()
                .compatibility(&tags)
                .is_compatible()
        };
        assert!(ok(
            "numpy-2.0.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
        ));
        assert!(ok("click-8.1.7-py3-none-any.whl"));
        assert!(!ok("numpy-2.0.0-cp312-cp312-manylinux_2_17_x86_64.whl"));
        assert!(!ok("numpy-2.0.0-cp311-cp311-manylinux_2_17_aarch64.whl"));
        assert!(!ok("numpy-2.0.0-cp311-cp311-musllinux_1_1_x86_64.whl"));
        assert!(!ok("x-1.0-cp311-cp311-manylinux_2_39_x86_64.whl"));

        let mut arm = bookworm();
        arm.architecture = "arm64".into();
        let tags = arm.tags().unwrap();
        assert!(
            WheelFilename::from_str("numpy-2.0.0-cp311-cp311-manylinux_2_17_aarch64.whl")
                .unwrap()
                .compatibility(&tags)
                .is_compatible()
        );
    }

    #[test]
    fn markers_use_the_target() {
        let env = bookworm().marker_env();
        let m = |s: &str| {
            uv_pep508::MarkerTree::from_str(s)
                .unwrap()
                .evaluate(&env, &[])
        };
        assert!(m("python_version >= '3.11' and sys_platform == 'linux'"));
        assert!(m("platform_machine == 'x86_64'"));
        assert!(!m("python_version < '3.11'"));
        assert!(!m("sys_platform == 'darwin'"));
    }
}
