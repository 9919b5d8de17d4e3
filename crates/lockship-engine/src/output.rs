//! Where a built image goes: a registry, an OCI layout directory, or a `docker load` tarball,
//! as users write them on the command line (`--push REF`, `--output oci:DIR`, `docker:FILE`).

use std::path::PathBuf;

/// One destination for the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    Registry(String),
    OciLayout(PathBuf),
    DockerTar(PathBuf),
}

impl Output {
    /// Parses `oci:DIR`, `docker:FILE` or `registry:REF`.
    pub fn parse(spec: &str) -> Result<Output, String> {
        let (kind, rest) = spec.split_once(':').ok_or_else(|| {
            format!("--output `{spec}`: expected oci:DIR, docker:FILE or registry:REF")
        })?;
        if rest.is_empty() {
            return Err(format!("--output `{spec}`: the path or reference is empty"));
        }
        match kind {
            "oci" => Ok(Output::OciLayout(PathBuf::from(rest))),
            "docker" => Ok(Output::DockerTar(PathBuf::from(rest))),
            "registry" => Ok(Output::Registry(rest.to_string())),
            other => Err(format!(
                "--output `{spec}`: unknown kind `{other}` (expected oci, docker or registry)"
            )),
        }
    }

    /// Local paths this output writes (kept out of the app's source digest).
    pub fn local_path(&self) -> Option<&PathBuf> {
        match self {
            Output::OciLayout(p) | Output::DockerTar(p) => Some(p),
            Output::Registry(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs() {
        assert_eq!(
            Output::parse("oci:out/app.oci"),
            Ok(Output::OciLayout("out/app.oci".into()))
        );
        assert_eq!(
            Output::parse("registry:127.0.0.1:5000/app:1"),
            Ok(Output::Registry("127.0.0.1:5000/app:1".into()))
        );
        assert!(Output::parse("tar:x")
            .unwrap_err()
            .contains("unknown kind `tar`"));
        assert!(Output::parse("out.tar").is_err());
    }
}
