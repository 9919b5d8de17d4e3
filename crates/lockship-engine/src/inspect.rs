//! What an image holds, read from the image itself and nothing else: each layer's size and the
//! Python packages (their `.dist-info`) or the biggest directories in it; the config a
//! container starts with; what lockship's labels record (base, lock digest, target); the OS
//! packages dpkg lists. The data behind `lockship inspect`, `diff` and `sbom`.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use lockship_oci::blob_store::BlobStore;
use lockship_oci::image::Image;
use lockship_oci::layer_files::{self, EntryKind};

use crate::error::Error;

/// The layer annotation that lists the files a dependency layer was installed from, with the
/// lock's sha256 of each (a JSON list of [`LayerWheel`]).
pub const LAYER_WHEELS: &str = "dev.lockship.layer.wheels";

/// One file a dependency layer was installed from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct LayerWheel {
    /// The package's name as the lock gives it.
    pub name: String,
    pub file: String,
    /// Hex, as the lock has it.
    pub sha256: String,
}

/// An image, seen from inside.
#[derive(Clone, Debug, Serialize)]
pub struct Inspection {
    /// The image as the user named it.
    pub image: String,
    /// The manifest's digest.
    pub digest: String,
    /// `os/architecture[/variant]` of this image.
    pub platform: String,
    /// Every platform the named artifact has (one for a plain image).
    pub platforms: Vec<String>,
    /// Bytes of the layer blobs as stored (compressed).
    pub size: u64,
    /// Bytes of the files the layers hold.
    pub files_size: u64,
    pub config: RunConfig,
    /// What lockship recorded (absent for images it did not build).
    pub base: Option<String>,
    pub base_digest: Option<String>,
    pub lock_digest: Option<String>,
    pub target: Option<String>,
    pub layers: Vec<LayerSummary>,
    /// The largest files of the image, largest first.
    pub biggest_files: Vec<PathSize>,
    /// Packages dpkg lists (`var/lib/dpkg/status` and distroless' `status.d/`).
    pub os_packages: Vec<OsPackage>,
}

/// The settings a container starts with.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RunConfig {
    pub user: Option<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub workdir: Option<String>,
    pub env: Vec<String>,
    pub exposed_ports: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct LayerSummary {
    pub digest: String,
    pub media_type: String,
    /// The blob's size.
    pub size: u64,
    /// Regular files in it, and their bytes.
    pub files: usize,
    pub files_size: u64,
    /// The history entry's `created_by`.
    pub created_by: String,
    pub packages: Vec<Package>,
    /// Its biggest directories (three levels deep), for layers that are not packages.
    pub top: Vec<PathSize>,
}

/// A Python distribution found in a layer (its `.dist-info/METADATA`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Package {
    pub name: String,
    pub version: String,
    /// The `.dist-info` directory, in the image.
    pub dist_info: String,
    /// `License-Expression` (an SPDX expression), when the metadata has one.
    pub license_expression: Option<String>,
    /// Otherwise the `License ::` classifiers, else the first line of `License`.
    pub license: Option<String>,
    /// The file it was installed from and its sha256 as the lock gives them (images lockship
    /// built; not the app, which is built from source).
    pub file: Option<String>,
    pub sha256: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PathSize {
    pub path: String,
    pub size: u64,
}

/// An OS package as dpkg records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OsPackage {
    pub name: String,
    pub version: String,
    pub architecture: String,
}

/// How many directories and files the summaries list.
const TOP: usize = 5;
const BIGGEST: usize = 10;

/// Reads every layer of `image` (all in `store`) and its config.
pub fn inspect(
    image: &Image,
    store: &BlobStore,
    name: &str,
    platforms: Vec<String>,
) -> Result<Inspection, Error> {
    let config: Value = serde_json::from_slice(&image.config).unwrap_or(Value::Null);
    let run = run_config(&config);
    let mut layers = Vec::with_capacity(image.layers.len());
    let mut biggest: Vec<PathSize> = Vec::new();
    let mut os_packages = BTreeMap::new();
    for layer in &image.layers {
        let path = store.path(&layer.info.digest);
        // Streamed: counts, sums, the biggest files and the directories' sizes, never a list of
        // every entry (a hostile layer can hold millions).
        let mut files = 0usize;
        let mut files_size = 0u64;
        let mut dirs = TopDirs::default();
        let contents = layer_files::read(
            &path,
            &|p| p.ends_with(".dist-info/METADATA") || is_dpkg_status(p),
            &mut |e| {
                if e.kind != EntryKind::File {
                    return;
                }
                files += 1;
                files_size = files_size.saturating_add(e.size);
                dirs.add(&e.path, e.size);
                if biggest.len() < BIGGEST || biggest.last().is_some_and(|b| b.size < e.size) {
                    biggest.push(PathSize {
                        path: e.path.clone(),
                        size: e.size,
                    });
                    biggest.sort_by(|a, b| b.size.cmp(&a.size).then(a.path.cmp(&b.path)));
                    biggest.truncate(BIGGEST);
                }
            },
        )
        .map_err(|e| Error::LayerUnreadable {
            image: name.to_string(),
            digest: layer.info.digest.to_string(),
            message: e.to_string(),
        })?;
        let wheels: Vec<LayerWheel> = layer
            .annotations
            .get(LAYER_WHEELS)
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or_default();
        let mut packages = Vec::new();
        for (file, bytes) in &contents {
            if is_dpkg_status(file) {
                for p in dpkg_packages(&String::from_utf8_lossy(bytes)) {
                    os_packages.insert(p.name.clone(), p);
                }
            } else if let Some(mut p) = package(file, bytes) {
                let name = lockship_python::lock::normalize_name(&p.name);
                if let Some(w) = wheels
                    .iter()
                    .find(|w| lockship_python::lock::normalize_name(&w.name) == name)
                {
                    p.file = Some(w.file.clone());
                    p.sha256 = Some(w.sha256.clone());
                }
                packages.push(p);
            }
        }
        let top = if packages.is_empty() {
            dirs.top()
        } else {
            Vec::new()
        };
        layers.push(LayerSummary {
            digest: layer.info.digest.to_string(),
            media_type: layer.info.media_type.clone(),
            size: layer.info.size,
            files,
            files_size,
            created_by: layer.created_by.clone(),
            packages,
            top,
        });
    }
    let label = |key: &str| run.labels.get(key).cloned();
    let base_digest = label("org.opencontainers.image.base.digest")
        .or_else(|| label("dev.lockship.base.lock.digest"));
    Ok(Inspection {
        image: name.to_string(),
        digest: image.manifest_digest.to_string(),
        platform: platform_of(image),
        platforms,
        size: layers.iter().fold(0u64, |a, l| a.saturating_add(l.size)),
        files_size: layers
            .iter()
            .fold(0u64, |a, l| a.saturating_add(l.files_size)),
        base: label("org.opencontainers.image.base.name"),
        base_digest,
        lock_digest: label("dev.lockship.lock.digest"),
        target: label("dev.lockship.target"),
        config: run,
        layers,
        biggest_files: biggest,
        os_packages: os_packages.into_values().collect(),
    })
}

/// `os/architecture[/variant]`.
pub fn platform_of(image: &Image) -> String {
    match &image.variant {
        Some(v) => format!("{}/{}/{v}", image.os, image.architecture),
        None => format!("{}/{}", image.os, image.architecture),
    }
}

impl Inspection {
    /// Every Python package of the image, by normalized name.
    pub fn packages(&self) -> BTreeMap<String, &Package> {
        self.layers
            .iter()
            .flat_map(|l| &l.packages)
            .map(|p| (lockship_python::lock::normalize_name(&p.name), p))
            .collect()
    }
}

fn run_config(config: &Value) -> RunConfig {
    let c = config.get("config").unwrap_or(&Value::Null);
    let strings = |key: &str| -> Vec<String> {
        c.get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let text = |key: &str| {
        c.get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(String::from)
    };
    RunConfig {
        user: text("User"),
        entrypoint: strings("Entrypoint"),
        cmd: strings("Cmd"),
        workdir: text("WorkingDir"),
        env: strings("Env"),
        exposed_ports: c
            .get("ExposedPorts")
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default(),
        labels: c
            .get("Labels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

fn is_dpkg_status(path: &str) -> bool {
    path == "var/lib/dpkg/status" || path.starts_with("var/lib/dpkg/status.d/")
}

/// The installed packages of a dpkg status file (or one distroless `status.d` stanza).
fn dpkg_packages(text: &str) -> Vec<OsPackage> {
    lockship_debian::control::stanzas(text)
        .filter_map(|(fields, _)| {
            let get = |key: &str| {
                fields
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(key))
                    .map(|(_, v)| v.trim().to_string())
            };
            // `Status: deinstall ok config-files` leaves a stanza for what is not installed.
            if get("Status").is_some_and(|s| !s.ends_with(" installed")) {
                return None;
            }
            Some(OsPackage {
                name: get("Package")?,
                version: get("Version")?,
                architecture: get("Architecture").unwrap_or_default(),
            })
        })
        .collect()
}

/// The package a `METADATA` file at `path` describes.
fn package(path: &str, bytes: &[u8]) -> Option<Package> {
    let text = String::from_utf8_lossy(bytes);
    let mut name = None;
    let mut version = None;
    let mut expression = None;
    let mut license = None;
    let mut classifiers = Vec::new();
    // The header ends at the first blank line; the description follows.
    for line in text.lines().take_while(|l| !l.is_empty()) {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key.to_ascii_lowercase().as_str() {
            "name" => name = Some(value.to_string()),
            "version" => version = Some(value.to_string()),
            "license-expression" => expression = Some(value.to_string()),
            "license" if license.is_none() && !value.is_empty() => {
                license = Some(value.chars().take(200).collect::<String>())
            }
            "classifier" => {
                if let Some(l) = value.strip_prefix("License :: ") {
                    let l = l.rsplit(" :: ").next().unwrap_or(l);
                    if l != "OSI Approved" {
                        classifiers.push(l.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    let license = match expression {
        Some(_) => None,
        None => (!classifiers.is_empty())
            .then(|| classifiers.join(", "))
            .or(license),
    };
    Some(Package {
        name: name?,
        version: version?,
        dist_info: path.rsplit_once('/').map_or(path, |(d, _)| d).to_string(),
        license_expression: expression,
        license,
        file: None,
        sha256: None,
    })
}

/// Sizes of the directories three levels deep (`usr/lib/x86_64-linux-gnu`), for the biggest.
#[derive(Default)]
struct TopDirs {
    sizes: BTreeMap<String, u64>,
}

/// Distinct directories counted before the rest go to `other` (a hostile layer can hold
/// millions).
const MAX_DIRS: usize = 10_000;

impl TopDirs {
    fn add(&mut self, path: &str, size: u64) {
        let parts: Vec<&str> = path.split('/').collect();
        let depth = (parts.len() - 1).clamp(1, 3);
        let mut key = parts[..depth].join("/");
        if !self.sizes.contains_key(&key) && self.sizes.len() >= MAX_DIRS {
            key = "other".into();
        }
        let entry = self.sizes.entry(key).or_default();
        *entry = entry.saturating_add(size);
    }

    fn top(self) -> Vec<PathSize> {
        let mut top: Vec<PathSize> = self
            .sizes
            .into_iter()
            .map(|(path, size)| PathSize { path, size })
            .collect();
        top.sort_by(|a, b| b.size.cmp(&a.size).then(a.path.cmp(&b.path)));
        top.truncate(TOP);
        top
    }
}

/// The biggest directories three levels deep.
#[cfg(test)]
fn top_dirs<'a>(files: impl Iterator<Item = (&'a str, u64)>) -> Vec<PathSize> {
    let mut dirs = TopDirs::default();
    for (path, size) in files {
        dirs.add(path, size);
    }
    dirs.top()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_metadata_headers_not_the_description() {
        let metadata = "Metadata-Version: 2.1\nName: Rich\nVersion: 13.9.4\n\
            License: MIT\nClassifier: License :: OSI Approved :: MIT License\n\n\
            Name: not-this\n";
        let p = package(
            "opt/venv/lib/python3.11/site-packages/rich-13.9.4.dist-info/METADATA",
            metadata.as_bytes(),
        )
        .unwrap();
        assert_eq!((p.name.as_str(), p.version.as_str()), ("Rich", "13.9.4"));
        assert_eq!(p.license.as_deref(), Some("MIT License"));
        assert_eq!(p.license_expression, None);
        assert_eq!(
            p.dist_info,
            "opt/venv/lib/python3.11/site-packages/rich-13.9.4.dist-info"
        );
        let spdx = package(
            "x.dist-info/METADATA",
            b"Name: a\nVersion: 1\nLicense-Expression: Apache-2.0\nLicense: long text\n",
        )
        .unwrap();
        assert_eq!(spdx.license_expression.as_deref(), Some("Apache-2.0"));
        assert_eq!(spdx.license, None);
        assert!(package("x.dist-info/METADATA", b"Name: a\n").is_none());
    }

    #[test]
    fn dpkg_status_lists_installed_packages_only() {
        let status = "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\n\
            Version: 2.36-9\n\nPackage: gone\nStatus: deinstall ok config-files\nVersion: 1\n";
        assert_eq!(
            dpkg_packages(status),
            [OsPackage {
                name: "libc6".into(),
                version: "2.36-9".into(),
                architecture: "amd64".into()
            }]
        );
    }

    #[test]
    fn top_directories_are_three_deep_and_largest_first() {
        let top = top_dirs(
            [
                ("usr/lib/x86_64-linux-gnu/libc.so.6", 100),
                ("usr/lib/x86_64-linux-gnu/libm.so.6", 50),
                ("etc/passwd", 5),
                ("README", 1),
            ]
            .into_iter(),
        );
        assert_eq!(
            top,
            [
                PathSize {
                    path: "usr/lib/x86_64-linux-gnu".into(),
                    size: 150
                },
                PathSize {
                    path: "etc".into(),
                    size: 5
                },
                PathSize {
                    path: "README".into(),
                    size: 1
                },
            ]
        );
    }
}
