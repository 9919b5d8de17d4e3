//! Chooses, for every locked package, the wheel the target interpreter ranks best. Pure: no I/O.

use std::str::FromStr;

use uv_distribution_filename::WheelFilename;
use uv_platform_tags::{TagCompatibility, Tags};

use super::lock::{Artifacts, LockedPackage, LockedWheel};

/// A package with the one wheel chosen for the target.
/// The wheel chosen for a package; shown (plans, `--dry-run`) as name, version and the
/// wheel's file name, hash and size.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ChosenWheel {
    pub name: String,
    pub version: String,
    #[serde(flatten)]
    pub wheel: LockedWheel,
}

/// A package with no wheel for the target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsatisfied {
    pub name: String,
    pub version: String,
    pub wheels: usize,
    /// Its sdist, which a builder can turn into a wheel.
    pub sdist: Option<LockedWheel>,
}

#[derive(Debug, thiserror::Error)]
#[error("no wheel for {target} in: {}", list(.packages))]
pub struct NoWheelError {
    pub target: String,
    pub packages: Vec<Unsatisfied>,
}

fn list(packages: &[Unsatisfied]) -> String {
    packages
        .iter()
        .map(|p| {
            let what = match (p.wheels, p.sdist.is_some()) {
                (0, true) => "sdist only".to_string(),
                (0, false) => "no files".to_string(),
                (n, _) => format!("{n} wheels, none compatible"),
            };
            format!("{} {} ({what})", p.name, p.version)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The best wheel of each package that has one, and the packages that have none (the engine
/// builds those from their sdists, or reports them together in a [`NoWheelError`]).
pub fn partition(packages: &[LockedPackage], tags: &Tags) -> (Vec<ChosenWheel>, Vec<Unsatisfied>) {
    let mut chosen = Vec::new();
    let mut missing = Vec::new();
    for package in packages {
        let (wheels, sdist) = match &package.artifacts {
            Artifacts::Listed { wheels, sdist } => (wheels.as_slice(), sdist),
            Artifacts::FromIndex { .. } | Artifacts::Unhashed { .. } | Artifacts::Local { .. } => {
                (&[][..], &None)
            }
        };
        let best = wheels
            .iter()
            .filter_map(|w| {
                let name = WheelFilename::from_str(&w.filename).ok()?;
                match name.compatibility(tags) {
                    TagCompatibility::Compatible(priority) => Some((priority, w)),
                    TagCompatibility::Incompatible(_) => None,
                }
            })
            // Highest priority wins; among equals the first listed, for stable choices.
            .fold(None, |best: Option<(_, &LockedWheel)>, (p, w)| match best {
                Some((bp, _)) if bp >= p => best,
                _ => Some((p, w)),
            });
        match best {
            Some((_, wheel)) => chosen.push(ChosenWheel {
                name: package.name.clone(),
                version: package.version.clone(),
                wheel: wheel.clone(),
            }),
            None => missing.push(Unsatisfied {
                name: package.name.clone(),
                version: package.version.clone(),
                wheels: wheels.len(),
                sdist: sdist.clone(),
            }),
        }
    }
    (chosen, missing)
}

/// Whether `filename` is a wheel of `package` at `version` (names and versions normalized).
pub fn is_wheel_of(filename: &str, package: &str, version: &str) -> bool {
    filename.ends_with(".whl")
        && crate::index::file_version(filename, package)
            .zip(uv_pep440::Version::from_str(version).ok())
            .is_some_and(|(found, pinned)| found == pinned)
}

/// Whether the wheel named `filename` installs on a target with `tags`.
pub fn fits(filename: &str, tags: &Tags) -> bool {
    WheelFilename::from_str(filename)
        .is_ok_and(|name| matches!(name.compatibility(tags), TagCompatibility::Compatible(_)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockship_oci::digest::Digest;

    fn wheel(filename: &str) -> LockedWheel {
        LockedWheel {
            filename: filename.into(),
            url: format!("https://files.example/{filename}"),
            sha256: Digest::of_bytes(filename.as_bytes()),
            size: None,
        }
    }

    #[test]
    fn prefers_the_most_specific_wheel_and_lists_all_failures() {
        let target = crate::target::bookworm();
        let tags = target.tags().unwrap();
        let pkg = |name: &str, wheels: Vec<LockedWheel>, has_sdist: bool| LockedPackage {
            name: name.into(),
            version: "1.0".into(),
            artifacts: Artifacts::Listed {
                wheels,
                sdist: has_sdist.then(|| wheel(&format!("{name}-1.0.tar.gz"))),
            },
        };
        let packages = vec![
            pkg(
                "fast",
                vec![
                    wheel("fast-1.0-py3-none-any.whl"),
                    wheel("fast-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"),
                    wheel("fast-1.0-cp311-cp311-manylinux_2_17_aarch64.whl"),
                ],
                true,
            ),
            pkg("old", vec![], true),
            pkg(
                "mac",
                vec![wheel("mac-1.0-cp311-cp311-macosx_11_0_arm64.whl")],
                false,
            ),
        ];
        let (chosen, missing) = partition(&packages, &tags);
        let err = NoWheelError {
            target: target.describe(),
            packages: missing,
        };
        assert_eq!(
            err.to_string(),
            "no wheel for cp311-manylinux_2_36_x86_64 in: old 1.0 (sdist only), mac 1.0 (1 wheels, none compatible)"
        );
        assert_eq!(chosen.len(), 1);
        assert_eq!(
            chosen[0].wheel.filename,
            "fast-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
        );
    }
}
