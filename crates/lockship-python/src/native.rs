//! Shared libraries of native code: what each ELF file in a wheel needs (`DT_NEEDED`) and what
//! it provides (its file name and `DT_SONAME`), read with goblin, and the check that everything
//! needed is in the image: in a wheel (auditwheel's `*.libs/`), anywhere in the virtual
//! environment, or in the base's library directories. The classic "works in the builder,
//! ImportError in the slim image" is caught at build time instead of in production.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::wheel::{self, Kind};

/// Where dynamic loaders and shared libraries live in the images lockship reads (and their
/// multiarch subdirectories, `usr/lib/x86_64-linux-gnu`).
pub const LIB_DIRS: [&str; 5] = ["lib", "lib64", "usr/lib", "usr/lib64", "usr/local/lib"];

/// Whether the image directory `dir` (no leading `/`) is one the dynamic loader searches.
pub fn is_library_dir(dir: &str) -> bool {
    LIB_DIRS.contains(&dir)
        || LIB_DIRS.iter().any(|d| {
            dir.strip_prefix(d)
                .and_then(|t| t.strip_prefix('/'))
                .is_some_and(|t| !t.contains('/') && t.contains("-linux-"))
        })
}

/// One ELF file of a wheel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedObject {
    /// Its path in the wheel.
    pub path: String,
    pub soname: Option<String>,
    /// Its `DT_NEEDED` entries.
    pub needed: Vec<String>,
}

/// The ELF files of one wheel; none for pure Python.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NativeFacts {
    pub objects: Vec<SharedObject>,
}

#[derive(Debug, thiserror::Error)]
pub enum NativeError {
    #[error("{wheel}: cannot read {member}: {message}")]
    Read {
        wheel: String,
        member: String,
        message: String,
    },
    #[error("{package}: {module} needs {library}, which is in no wheel of the image and not in the base's library directories{}{more}", provided_by.as_ref().map(|p| format!(" (Debian package {p} provides it)")).unwrap_or_default())]
    Missing {
        package: String,
        module: String,
        library: String,
        /// The package of the base's distribution that has the library, when known.
        provided_by: Option<String>,
        /// ", and N more libraries are missing (…)" when there are others.
        more: String,
    },
}

/// Whether a wheel member's name says it may be a shared object (`x.so`, `libz.so.1.2`).
fn maybe_shared_object(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.ends_with(".so") || name.contains(".so.")
}

/// Reads the ELF facts of the wheel at `path` (named `filename` in messages).
pub fn scan_wheel(path: &Path, filename: &str) -> Result<NativeFacts, NativeError> {
    let err = |member: &str, message: String| NativeError::Read {
        wheel: filename.to_string(),
        member: member.to_string(),
        message,
    };
    let file = std::fs::File::open(path).map_err(|e| err("the archive", e.to_string()))?;
    let size = file
        .metadata()
        .map_err(|e| err("the archive", e.to_string()))?
        .len();
    let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| err("the archive", e.to_string()))?;
    let entries = wheel::read_entries(&mut archive, size, &wheel::Limits::default())
        .map_err(|e| err("the archive", e))?;
    let mut facts = NativeFacts::default();
    for entry in entries {
        if entry.kind != Kind::File || !maybe_shared_object(&entry.path) || entry.size < 4 {
            continue;
        }
        let member = archive
            .by_index(entry.index)
            .map_err(|e| err(&entry.path, e.to_string()))?;
        let mut bytes = Vec::new();
        member
            .take(entry.size)
            .read_to_end(&mut bytes)
            .map_err(|e| err(&entry.path, e.to_string()))?;
        if !bytes.starts_with(b"\x7fELF") {
            continue;
        }
        let elf = goblin::elf::Elf::parse(&bytes)
            .map_err(|e| err(&entry.path, format!("not a readable ELF file: {e}")))?;
        facts.objects.push(SharedObject {
            path: entry.path.clone(),
            soname: elf.soname.map(String::from),
            needed: elf.libraries.iter().map(|s| s.to_string()).collect(),
        });
    }
    Ok(facts)
}

/// A library an ELF file needs that the image does not have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingLibrary {
    /// `name version` of the package whose wheel holds the file.
    pub package: String,
    /// The file's path in the wheel.
    pub module: String,
    pub library: String,
}

/// What the ELF files of `installed` (package, facts) need that neither they nor the base's
/// library directories (`base`: file names) provide. A library is looked for by name anywhere
/// in the venv rather than along each file's RPATH: a check that cannot be wrong in the
/// direction of failing a build that works.
pub fn missing_libraries(
    installed: &[(String, &NativeFacts)],
    base: &BTreeSet<String>,
) -> Vec<MissingLibrary> {
    let mut provided: BTreeSet<&str> = base.iter().map(String::as_str).collect();
    for (_, facts) in installed {
        for object in &facts.objects {
            provided.insert(object.path.rsplit('/').next().unwrap_or(&object.path));
            if let Some(soname) = &object.soname {
                provided.insert(soname);
            }
        }
    }
    let mut missing = Vec::new();
    for (package, facts) in installed {
        for object in &facts.objects {
            for library in &object.needed {
                // A path (rare) is looked up as is, not in the search directories.
                if library.contains('/') || provided.contains(library.as_str()) {
                    continue;
                }
                missing.push(MissingLibrary {
                    package: package.clone(),
                    module: object.path.clone(),
                    library: library.clone(),
                });
            }
        }
    }
    missing
}

/// The error for `missing` (not empty): the first, and how many more.
pub fn missing_error(missing: &[MissingLibrary]) -> NativeError {
    let first = &missing[0];
    let others: BTreeSet<&str> = missing[1..]
        .iter()
        .map(|m| m.library.as_str())
        .filter(|l| *l != first.library)
        .collect();
    let more = if others.is_empty() {
        String::new()
    } else {
        format!(
            ", and {} more libraries are missing ({})",
            others.len(),
            others.into_iter().collect::<Vec<_>>().join(", ")
        )
    };
    NativeError::Missing {
        package: first.package.clone(),
        module: first.module.clone(),
        library: first.library.clone(),
        provided_by: None,
        more,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(objects: &[(&str, Option<&str>, &[&str])]) -> NativeFacts {
        NativeFacts {
            objects: objects
                .iter()
                .map(|(path, soname, needed)| SharedObject {
                    path: path.to_string(),
                    soname: soname.map(String::from),
                    needed: needed.iter().map(|s| s.to_string()).collect(),
                })
                .collect(),
        }
    }

    #[test]
    fn libraries_come_from_the_wheels_or_the_base() {
        let base: BTreeSet<String> = ["libc.so.6", "libm.so.6"].map(String::from).into();
        let numpy = facts(&[
            (
                "numpy/_core/_multiarray.so",
                None,
                &["libscipy_openblas64_-ff651d7f.so", "libm.so.6", "libc.so.6"],
            ),
            (
                "numpy.libs/libscipy_openblas64_-ff651d7f.so",
                None,
                &["libgfortran-040039e1.so.5.0.0"],
            ),
            (
                "numpy.libs/libgfortran-040039e1.so.5.0.0",
                Some("libgfortran-040039e1.so.5.0.0"),
                &["libquadmath-96973f99.so.0.0.0"],
            ),
        ]);
        let quadmath = facts(&[("other.libs/libquadmath-96973f99.so.0.0.0", None, &[])]);
        let cv = facts(&[(
            "cv2/cv2.abi3.so",
            None,
            &["libGL.so.1", "libc.so.6", "libGL.so.1", "/opt/x/libabs.so"],
        )]);
        let installed = vec![
            ("numpy 2.2.6".to_string(), &numpy),
            ("quadmath 1".to_string(), &quadmath),
            ("opencv-python 4.10".to_string(), &cv),
        ];
        let missing = missing_libraries(&installed, &base);
        assert_eq!(
            missing,
            vec![
                MissingLibrary {
                    package: "opencv-python 4.10".into(),
                    module: "cv2/cv2.abi3.so".into(),
                    library: "libGL.so.1".into()
                };
                2
            ]
        );
        assert_eq!(
            missing_error(&missing).to_string(),
            "opencv-python 4.10: cv2/cv2.abi3.so needs libGL.so.1, which is in no wheel of the image and not in the base's library directories"
        );
        assert!(missing_libraries(&installed[..2], &base).is_empty());
    }

    #[test]
    fn library_dirs_are_the_loaders() {
        for yes in [
            "lib",
            "usr/lib",
            "usr/local/lib",
            "usr/lib/x86_64-linux-gnu",
            "lib/aarch64-linux-gnu",
        ] {
            assert!(is_library_dir(yes), "{yes}");
        }
        for no in [
            "usr/lib/python3.11",
            "usr/lib/x86_64-linux-gnu/perl",
            "opt/lib",
            "usr/libexec",
        ] {
            assert!(!is_library_dir(no), "{no}");
        }
    }
}
