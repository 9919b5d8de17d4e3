//! What changed between two images, as a reviewer of a dependency bump wants it: Python
//! packages added, removed and changed; layers added and removed; the size; the config a
//! container starts with. Computed from two [`Inspection`]s, so from the images alone.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::inspect::{Inspection, LayerSummary};

#[derive(Clone, Debug, Serialize)]
pub struct ImageDiff {
    pub from: String,
    pub to: String,
    pub from_digest: String,
    pub to_digest: String,
    pub packages: PackageChanges,
    pub layers: LayerChanges,
    /// Layer blob bytes before and after.
    pub size_from: u64,
    pub size_to: u64,
    pub config: Vec<ConfigChange>,
    /// OS packages (dpkg) whose version changed, appeared or went.
    pub os_packages: Vec<VersionChange>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct PackageChanges {
    pub added: Vec<NameVersion>,
    pub removed: Vec<NameVersion>,
    pub changed: Vec<VersionChange>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NameVersion {
    pub name: String,
    pub version: String,
}

/// A package in both images with other versions, or (for OS packages) in one only: `from` or
/// `to` is then None.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VersionChange {
    pub name: String,
    pub from: Option<String>,
    pub to: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct LayerChanges {
    pub added: Vec<LayerRef>,
    pub removed: Vec<LayerRef>,
    pub unchanged: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct LayerRef {
    pub digest: String,
    pub size: u64,
    /// What it holds: its packages, else its history entry.
    pub holds: String,
}

/// One setting of the config that differs: `field` is `user`, `entrypoint`, `cmd`, `workdir`,
/// `env NAME`, `label KEY` or `port P`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConfigChange {
    pub field: String,
    pub from: Option<String>,
    pub to: Option<String>,
}

impl ImageDiff {
    /// Whether the two images are the same image.
    pub fn is_empty(&self) -> bool {
        self.from_digest == self.to_digest
    }
}

pub fn diff(a: &Inspection, b: &Inspection) -> ImageDiff {
    ImageDiff {
        from: a.image.clone(),
        to: b.image.clone(),
        from_digest: a.digest.clone(),
        to_digest: b.digest.clone(),
        packages: packages(a, b),
        layers: layers(&a.layers, &b.layers),
        size_from: a.size,
        size_to: b.size,
        config: config(a, b),
        os_packages: os_packages(a, b),
    }
}

fn packages(a: &Inspection, b: &Inspection) -> PackageChanges {
    let (old, new) = (a.packages(), b.packages());
    let mut changes = PackageChanges::default();
    for (key, p) in &new {
        match old.get(key) {
            None => changes.added.push(NameVersion {
                name: p.name.clone(),
                version: p.version.clone(),
            }),
            Some(o) if o.version != p.version => changes.changed.push(VersionChange {
                name: p.name.clone(),
                from: Some(o.version.clone()),
                to: Some(p.version.clone()),
            }),
            Some(_) => {}
        }
    }
    for (key, p) in &old {
        if !new.contains_key(key) {
            changes.removed.push(NameVersion {
                name: p.name.clone(),
                version: p.version.clone(),
            });
        }
    }
    changes
}

fn layers(a: &[LayerSummary], b: &[LayerSummary]) -> LayerChanges {
    let old: BTreeSet<&str> = a.iter().map(|l| l.digest.as_str()).collect();
    let new: BTreeSet<&str> = b.iter().map(|l| l.digest.as_str()).collect();
    let reference = |l: &LayerSummary| LayerRef {
        digest: l.digest.clone(),
        size: l.size,
        holds: if l.packages.is_empty() {
            l.created_by.clone()
        } else {
            l.packages
                .iter()
                .map(|p| format!("{} {}", p.name, p.version))
                .collect::<Vec<_>>()
                .join(", ")
        },
    };
    LayerChanges {
        added: b
            .iter()
            .filter(|l| !old.contains(l.digest.as_str()))
            .map(reference)
            .collect(),
        removed: a
            .iter()
            .filter(|l| !new.contains(l.digest.as_str()))
            .map(reference)
            .collect(),
        unchanged: b.iter().filter(|l| old.contains(l.digest.as_str())).count(),
    }
}

fn config(a: &Inspection, b: &Inspection) -> Vec<ConfigChange> {
    let mut changes = Vec::new();
    let mut one = |field: String, from: Option<String>, to: Option<String>| {
        if from != to {
            changes.push(ConfigChange { field, from, to });
        }
    };
    let (x, y) = (&a.config, &b.config);
    let argv = |v: &Vec<String>| (!v.is_empty()).then(|| shell_words::join(v));
    one(
        "platform".into(),
        Some(a.platform.clone()),
        Some(b.platform.clone()),
    );
    one("user".into(), x.user.clone(), y.user.clone());
    one(
        "entrypoint".into(),
        argv(&x.entrypoint),
        argv(&y.entrypoint),
    );
    one("cmd".into(), argv(&x.cmd), argv(&y.cmd));
    one("workdir".into(), x.workdir.clone(), y.workdir.clone());
    let env = |list: &Vec<String>| -> BTreeMap<String, String> {
        list.iter()
            .map(|e| match e.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (e.clone(), String::new()),
            })
            .collect()
    };
    for (field, from, to) in keyed(&env(&x.env), &env(&y.env)) {
        one(format!("env {field}"), from, to);
    }
    for (field, from, to) in keyed(&x.labels, &y.labels) {
        one(format!("label {field}"), from, to);
    }
    let ports = |list: &Vec<String>| -> BTreeMap<String, String> {
        list.iter().map(|p| (p.clone(), p.clone())).collect()
    };
    for (field, from, to) in keyed(&ports(&x.exposed_ports), &ports(&y.exposed_ports)) {
        one(format!("port {field}"), from, to);
    }
    changes
}

/// Each key of either map with its value on each side.
fn keyed(
    a: &BTreeMap<String, String>,
    b: &BTreeMap<String, String>,
) -> Vec<(String, Option<String>, Option<String>)> {
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .map(|k| (k.clone(), a.get(k).cloned(), b.get(k).cloned()))
        .collect()
}

fn os_packages(a: &Inspection, b: &Inspection) -> Vec<VersionChange> {
    let map = |i: &Inspection| -> BTreeMap<String, String> {
        i.os_packages
            .iter()
            .map(|p| (p.name.clone(), p.version.clone()))
            .collect()
    };
    keyed(&map(a), &map(b))
        .into_iter()
        .filter(|(_, from, to)| from != to)
        .map(|(name, from, to)| VersionChange { name, from, to })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::{Package, RunConfig};

    fn layer(digest: &str, size: u64, packages: &[(&str, &str)]) -> LayerSummary {
        LayerSummary {
            digest: digest.into(),
            media_type: String::new(),
            size,
            files: 1,
            files_size: size,
            created_by: format!("made {digest}"),
            packages: packages
                .iter()
                .map(|(n, v)| Package {
                    name: n.to_string(),
                    version: v.to_string(),
                    dist_info: format!("{n}-{v}.dist-info"),
                    license_expression: None,
                    license: None,
                    file: None,
                    sha256: None,
                })
                .collect(),
            top: Vec::new(),
        }
    }

    fn image(digest: &str, layers: Vec<LayerSummary>, env: &[&str]) -> Inspection {
        Inspection {
            image: digest.into(),
            digest: digest.into(),
            platform: "linux/amd64".into(),
            platforms: vec!["linux/amd64".into()],
            size: layers.iter().map(|l| l.size).sum(),
            files_size: 0,
            config: RunConfig {
                env: env.iter().map(|e| e.to_string()).collect(),
                ..RunConfig::default()
            },
            base: None,
            base_digest: None,
            lock_digest: None,
            target: None,
            layers,
            biggest_files: Vec::new(),
            os_packages: Vec::new(),
        }
    }

    #[test]
    fn a_dependency_bump() {
        let a = image(
            "a",
            vec![
                layer("base", 100, &[]),
                layer("l1", 10, &[("requests", "2.31.0")]),
                layer("l2", 5, &[("Old_Pkg", "1.0")]),
            ],
            &["PATH=/x", "MODE=a"],
        );
        let b = image(
            "b",
            vec![
                layer("base", 100, &[]),
                layer("l3", 11, &[("requests", "2.32.3")]),
                layer("l4", 7, &[("idna", "3.7")]),
            ],
            &["PATH=/x", "MODE=b"],
        );
        let d = diff(&a, &b);
        assert_eq!(
            d.packages.added,
            [NameVersion {
                name: "idna".into(),
                version: "3.7".into()
            }]
        );
        assert_eq!(d.packages.removed[0].name, "Old_Pkg");
        assert_eq!(
            d.packages.changed,
            [VersionChange {
                name: "requests".into(),
                from: Some("2.31.0".into()),
                to: Some("2.32.3".into())
            }]
        );
        assert_eq!(d.layers.added.len(), 2);
        assert_eq!(d.layers.removed.len(), 2);
        assert_eq!(d.layers.unchanged, 1);
        assert_eq!(d.layers.added[0].holds, "requests 2.32.3");
        assert_eq!((d.size_from, d.size_to), (115, 118));
        assert_eq!(
            d.config,
            [ConfigChange {
                field: "env MODE".into(),
                from: Some("a".into()),
                to: Some("b".into())
            }]
        );
        assert!(!d.is_empty());
    }
}
