//! Reads uv.lock (format version 1) and walks its dependency graph from the project root,
//! following only the edges whose markers hold on the target, as `uv sync` would.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::Path;

use serde::Deserialize;
use uv_pep508::MarkerEnvironment;

pub use super::Selection;
use super::{normalize_name, Artifacts, LockError, LockedPackage, LockedWheel};
use lockship_oci::digest::Digest;

#[derive(Deserialize)]
pub struct UvLock {
    version: u32,
    #[serde(rename = "requires-python")]
    requires_python: Option<String>,
    #[serde(default, rename = "package")]
    packages: Vec<Package>,
}

#[derive(Deserialize)]
struct Package {
    name: String,
    version: Option<String>,
    #[serde(default)]
    source: Source,
    #[serde(default)]
    dependencies: Vec<Dependency>,
    #[serde(default, rename = "optional-dependencies")]
    optional_dependencies: BTreeMap<String, Vec<Dependency>>,
    #[serde(default, rename = "dev-dependencies")]
    dev_dependencies: BTreeMap<String, Vec<Dependency>>,
    sdist: Option<toml::Value>,
    #[serde(default)]
    wheels: Vec<Wheel>,
    metadata: Option<Metadata>,
}

#[derive(Deserialize, Default, Clone, PartialEq, Eq)]
struct Source {
    registry: Option<String>,
    editable: Option<String>,
    #[serde(rename = "virtual")]
    virtual_: Option<String>,
    directory: Option<String>,
    path: Option<String>,
    url: Option<String>,
    git: Option<String>,
}

#[derive(Deserialize)]
struct Dependency {
    name: String,
    version: Option<String>,
    source: Option<Source>,
    marker: Option<String>,
    #[serde(default)]
    extra: Vec<String>,
}

#[derive(Deserialize)]
struct Wheel {
    url: Option<String>,
    filename: Option<String>,
    hash: Option<String>,
    size: Option<u64>,
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(default, rename = "requires-dist")]
    requires_dist: Vec<RequiresDist>,
}

/// One entry of the root's recorded `requires-dist` (what pyproject.toml said when locked).
#[derive(Deserialize, Clone, Debug)]
pub struct RequiresDist {
    pub name: String,
    pub specifier: Option<String>,
    pub marker: Option<String>,
}

fn missing<'a>(
    path: &Path,
    project: &str,
    kind: &str,
    name: &str,
    known: impl Iterator<Item = &'a String>,
) -> LockError {
    let known: Vec<&str> = known.map(String::as_str).collect();
    LockError::Invalid {
        path: path.to_path_buf(),
        message: format!(
            "{project} has no {kind} `{name}` in the lock (it has: {})",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        ),
    }
}

impl Source {
    fn is_root(&self) -> bool {
        self.editable.as_deref() == Some(".") || self.virtual_.as_deref() == Some(".")
    }

    fn kind(&self) -> &'static str {
        if self.registry.is_some() {
            "a registry"
        } else if self.git.is_some() {
            "a git repository"
        } else if self.url.is_some() {
            "a direct URL"
        } else if self.path.is_some() {
            "a local path"
        } else {
            "a local directory"
        }
    }
}

impl UvLock {
    pub fn parse(path: &Path, text: &str) -> Result<UvLock, LockError> {
        let lock: UvLock = toml::from_str(text).map_err(|e| LockError::Invalid {
            path: path.to_path_buf(),
            message: format!("not a valid uv.lock: {}", e.message()),
        })?;
        if lock.version != 1 {
            return Err(LockError::Invalid {
                path: path.to_path_buf(),
                message: format!(
                    "uv.lock version {} is not supported (expected 1)",
                    lock.version
                ),
            });
        }
        Ok(lock)
    }

    fn roots(&self, root: Option<&str>) -> Vec<usize> {
        let want = root.map(normalize_name);
        let roots: Vec<usize> = self
            .packages
            .iter()
            .enumerate()
            .filter(|(_, p)| p.source.is_root())
            .map(|(i, _)| i)
            .collect();
        match &want {
            Some(name)
                if roots
                    .iter()
                    .any(|&i| normalize_name(&self.packages[i].name) == *name) =>
            {
                roots
                    .into_iter()
                    .filter(|&i| normalize_name(&self.packages[i].name) == *name)
                    .collect()
            }
            _ => roots,
        }
    }

    /// The root project's recorded requirements (for the freshness check).
    pub fn root_requires_dist(&self, root: Option<&str>) -> Option<Vec<RequiresDist>> {
        let i = *self.roots(root).first()?;
        self.packages[i]
            .metadata
            .as_ref()
            .map(|m| m.requires_dist.clone())
    }

    /// Index of the package a dependency edge points at, among `by_name`'s candidates.
    fn find(&self, by_name: &HashMap<String, Vec<usize>>, dep: &Dependency) -> Option<usize> {
        let candidates = by_name.get(&normalize_name(&dep.name))?;
        if let [only] = candidates.as_slice() {
            return Some(*only);
        }
        candidates.iter().copied().find(|&i| {
            let p = &self.packages[i];
            dep.version
                .as_ref()
                .is_none_or(|v| p.version.as_ref() == Some(v))
                && dep.source.as_ref().is_none_or(|s| *s == p.source)
        })
    }

    /// Walks from the root project along edges whose markers hold for `env`.
    pub fn packages_for(
        &self,
        path: &Path,
        env: &MarkerEnvironment,
        root: Option<&str>,
        selection: &Selection,
    ) -> Result<Vec<LockedPackage>, LockError> {
        let python = &env.python_full_version().version;
        if let Some(spec) = &self.requires_python {
            if !super::python_satisfies(path, spec, python, "the lock")? {
                return Err(LockError::WrongPython {
                    path: path.to_path_buf(),
                    allowed: spec.clone(),
                    python: python.to_string(),
                });
            }
        }
        let roots = self.roots(root);
        if roots.is_empty() {
            return Err(LockError::Invalid {
                path: path.to_path_buf(),
                message:
                    "no project package (source = { editable = \".\" } or { virtual = \".\" })"
                        .into(),
            });
        }
        let holds = |marker: &Option<String>| -> Result<bool, LockError> {
            match marker {
                None => Ok(true),
                Some(m) => super::parse_marker(m)
                    .map(|t| t.evaluate(env, &[]))
                    .map_err(|e| LockError::Invalid {
                        path: path.to_path_buf(),
                        message: format!("bad marker `{m}`: {e}"),
                    }),
            }
        };
        // (package index, "" | extra | "group:NAME") pairs already expanded.
        let mut seen: BTreeSet<(usize, String)> = BTreeSet::new();
        let mut queue: VecDeque<(usize, String)> =
            roots.iter().map(|&i| (i, String::new())).collect();
        for &r in &roots {
            let root = &self.packages[r];
            for extra in &selection.extras {
                if !root.optional_dependencies.contains_key(extra) {
                    return Err(missing(
                        path,
                        &root.name,
                        "extra",
                        extra,
                        root.optional_dependencies.keys(),
                    ));
                }
                queue.push_back((r, extra.clone()));
            }
            for group in &selection.groups {
                if !root.dev_dependencies.contains_key(group) {
                    return Err(missing(
                        path,
                        &root.name,
                        "dependency group",
                        group,
                        root.dev_dependencies.keys(),
                    ));
                }
                queue.push_back((r, format!("group:{group}")));
            }
        }
        // Packages by normalized name, once: edges are looked up by name (a lock may hold
        // several versions of one name, told apart by version and source).
        let mut by_name: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, p) in self.packages.iter().enumerate() {
            by_name.entry(normalize_name(&p.name)).or_default().push(i);
        }
        let mut needed: BTreeSet<usize> = BTreeSet::new();
        while let Some((i, extra)) = queue.pop_front() {
            if !seen.insert((i, extra.clone())) {
                continue;
            }
            let package = &self.packages[i];
            if !roots.contains(&i) {
                needed.insert(i);
            }
            let edges: &[Dependency] = if extra.is_empty() {
                &package.dependencies
            } else if let Some(group) = extra.strip_prefix("group:") {
                package
                    .dev_dependencies
                    .get(group)
                    .map(Vec::as_slice)
                    .unwrap_or(&[])
            } else {
                package
                    .optional_dependencies
                    .get(&extra)
                    .map(Vec::as_slice)
                    .unwrap_or(&[])
            };
            for dep in edges {
                if !holds(&dep.marker)? {
                    continue;
                }
                let target = self.find(&by_name, dep).ok_or_else(|| LockError::Invalid {
                    path: path.to_path_buf(),
                    message: format!(
                        "{} depends on {}, which the lock does not contain",
                        package.name, dep.name
                    ),
                })?;
                queue.push_back((target, String::new()));
                for e in &dep.extra {
                    queue.push_back((target, e.clone()));
                }
            }
        }
        needed
            .into_iter()
            .filter_map(|i| self.locked(path, &self.packages[i]).transpose())
            .collect()
    }

    /// How `p` is installed; None for a virtual workspace member (only its dependencies are).
    fn locked(&self, path: &Path, p: &Package) -> Result<Option<LockedPackage>, LockError> {
        if p.source.virtual_.is_some() {
            return Ok(None);
        }
        // Workspace members and path dependencies: built from their directory, like the app.
        if let Some(dir) = p.source.editable.as_ref().or(p.source.directory.as_ref()) {
            let lock_dir = path.parent().unwrap_or(Path::new(""));
            return Ok(Some(LockedPackage {
                name: normalize_name(&p.name),
                version: p.version.clone().unwrap_or_default(),
                artifacts: Artifacts::Local {
                    dir: lock_dir.join(dir),
                },
            }));
        }
        if p.source.registry.is_none() {
            return Err(LockError::UnsupportedSource {
                path: path.to_path_buf(),
                package: p.name.clone(),
                source_kind: p.source.kind().into(),
            });
        }
        let invalid = |message: String| LockError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let wheels = p
            .wheels
            .iter()
            .map(|w| {
                let url = w
                    .url
                    .clone()
                    .ok_or_else(|| invalid(format!("a wheel of {} has no url", p.name)))?;
                let filename = w.filename.clone().unwrap_or_else(|| {
                    let last = url.rsplit('/').next().unwrap_or(&url);
                    last.split(['#', '?']).next().unwrap_or(last).to_string()
                });
                if !super::is_plain_file_name(&filename) {
                    return Err(invalid(format!(
                        "a wheel of {} is named {filename:?}, which is not a plain file name",
                        p.name
                    )));
                }
                let hash = w
                    .hash
                    .as_deref()
                    .ok_or_else(|| invalid(format!("wheel {filename} has no hash")))?;
                let sha256 = Digest::parse(hash).ok_or_else(|| {
                    invalid(format!("wheel {filename}: unsupported hash `{hash}`"))
                })?;
                Ok(LockedWheel {
                    filename,
                    url,
                    sha256,
                    size: w.size,
                })
            })
            .collect::<Result<Vec<_>, LockError>>()?;
        Ok(Some(LockedPackage {
            name: normalize_name(&p.name),
            version: p.version.clone().unwrap_or_default(),
            artifacts: Artifacts::Listed {
                wheels,
                sdist: super::plain_sdist(p.sdist.as_ref().and_then(sdist), &p.name)
                    .map_err(invalid)?,
            },
        }))
    }
}

/// The sdist of a registry package (`{ url, hash, size }`); one without a URL or a sha256 (a
/// path sdist) cannot be fetched and checked, and is left out.
fn sdist(table: &toml::Value) -> Option<LockedWheel> {
    let url = table.get("url")?.as_str()?.to_string();
    let sha256 = Digest::parse(table.get("hash")?.as_str()?)?;
    let last = url.rsplit('/').next().unwrap_or(&url);
    Some(LockedWheel {
        filename: last.split(['#', '?']).next().unwrap_or(last).to_string(),
        sha256,
        size: table
            .get("size")
            .and_then(|s| s.as_integer())
            .map(|s| s as u64),
        url,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A small uv.lock: app -> click, rich[jupyter] -> pygments; colorama on Windows and in dev.
    pub(crate) const LOCK: &str = r#"
version = 1
revision = 2
requires-python = ">=3.11"

[[package]]
name = "app"
version = "0.1.0"
source = { editable = "." }
dependencies = [
    { name = "click" },
    { name = "colorama", marker = "sys_platform == 'win32'" },
    { name = "rich", extra = ["jupyter"] },
]

[package.dev-dependencies]
dev = [{ name = "colorama" }]

[package.metadata]
requires-dist = [{ name = "click", specifier = ">=8" }, { name = "rich" }]

[[package]]
name = "click"
version = "8.1.7"
source = { registry = "https://index.example/simple" }
sdist = { url = "https://files.example/click-8.1.7.tar.gz", hash = "sha256:ca9853ad459e787e2192211578cc907e7594e294c7ccc834310722b41b9ca6de" }
wheels = [{ url = "https://files.example/click-8.1.7-py3-none-any.whl", hash = "sha256:ae74fb96c20a0277a1d615f1e4d73c8414f5a98db8b799a7931d1582f3390c28", size = 97941 }]

[[package]]
name = "colorama"
version = "0.4.6"
source = { registry = "https://index.example/simple" }
wheels = [{ url = "https://files.example/colorama-0.4.6-py2.py3-none-any.whl", hash = "sha256:4f1d9991f5acc0ca119f9d443620b77f9d6b33703e51011c16baf57afb285fc6" }]

[[package]]
name = "rich"
version = "13.0.0"
source = { registry = "https://index.example/simple" }
dependencies = [{ name = "pygments" }]
wheels = [{ url = "https://files.example/rich-13.0.0-py3-none-any.whl", hash = "sha256:12d1b07cc1c1ad0ad1a87bc1a2f7f6e7d2b4d1b4d0e9ee6a1d4f0ed4d8e6b0c3" }]

[package.optional-dependencies]
jupyter = [{ name = "ipywidgets" }]

[[package]]
name = "pygments"
version = "2.17.0"
source = { registry = "https://index.example/simple" }
wheels = [{ url = "https://files.example/pygments-2.17.0-py3-none-any.whl", hash = "sha256:b27c2826c47d0f3219f29554824c30c5e8945175d888647acd804ddd04af846c" }]

[[package]]
name = "ipywidgets"
version = "8.0.0"
source = { registry = "https://index.example/simple" }
wheels = [{ url = "https://files.example/ipywidgets-8.0.0-py3-none-any.whl", hash = "sha256:4f1d9991f5acc0ca119f9d443620b77f9d6b33703e51011c16baf57afb285fc6" }]
"#;

    fn linux() -> uv_pep508::MarkerEnvironment {
        crate::target::bookworm().marker_env()
    }

    #[test]
    fn the_base_python_must_be_one_the_lock_allows() {
        let newer = LOCK.replace(
            "requires-python = \">=3.11\"",
            "requires-python = \">=3.12\"",
        );
        assert_ne!(newer, LOCK);
        let lock = UvLock::parse(Path::new("uv.lock"), &newer).unwrap();
        let err = lock
            .packages_for(
                Path::new("uv.lock"),
                &linux(),
                Some("app"),
                &Selection::default(),
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "uv.lock is locked for Python `>=3.12`, and the base's Python is 3.11.2"
        );
    }

    #[test]
    fn members_and_path_dependencies_are_local_and_virtual_ones_skipped() {
        let text = r#"
version = 1

[[package]]
name = "app"
version = "1.0"
source = { virtual = "." }
dependencies = [{ name = "lib" }, { name = "util" }, { name = "tools" }]

[[package]]
name = "lib"
version = "0.3.0"
source = { editable = "packages/lib" }

[[package]]
name = "Util"
version = "0.1.0"
source = { directory = "../vendor/util" }

[[package]]
name = "tools"
version = "0.0.0"
source = { virtual = "packages/tools" }
"#;
        let lock = UvLock::parse(Path::new("proj/uv.lock"), text).unwrap();
        let pkgs = lock
            .packages_for(
                Path::new("proj/uv.lock"),
                &linux(),
                None,
                &Selection::default(),
            )
            .unwrap();
        let local: Vec<(&str, PathBuf)> = pkgs
            .iter()
            .map(|p| match &p.artifacts {
                Artifacts::Local { dir } => (p.name.as_str(), dir.clone()),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            local,
            [
                ("lib", PathBuf::from("proj/packages/lib")),
                ("util", PathBuf::from("proj/../vendor/util"))
            ]
        );
    }

    #[test]
    fn walks_graph_with_target_markers_and_extras() {
        let lock = UvLock::parse(Path::new("uv.lock"), LOCK).unwrap();
        let pkgs = lock
            .packages_for(
                Path::new("uv.lock"),
                &linux(),
                Some("app"),
                &Selection::default(),
            )
            .unwrap();
        let names: Vec<_> = pkgs.iter().map(|p| p.name.as_str()).collect();
        // colorama is windows-only; ipywidgets comes in through rich[jupyter].
        assert_eq!(names, ["click", "rich", "pygments", "ipywidgets"]);
        let Artifacts::Listed { wheels, sdist } = &pkgs[0].artifacts else {
            panic!("uv.lock lists wheels")
        };
        let sdist = sdist.as_ref().unwrap();
        assert_eq!(sdist.filename, "click-8.1.7.tar.gz");
        assert_eq!(
            sdist.sha256.hex(),
            "ca9853ad459e787e2192211578cc907e7594e294c7ccc834310722b41b9ca6de"
        );
        assert_eq!(wheels[0].filename, "click-8.1.7-py3-none-any.whl");
        assert_eq!(wheels[0].size, Some(97941));
    }

    #[test]
    fn dependency_groups_add_their_packages() {
        let lock = UvLock::parse(Path::new("uv.lock"), LOCK).unwrap();
        let dev = Selection {
            groups: vec!["dev".into()],
            ..Default::default()
        };
        let pkgs = lock
            .packages_for(Path::new("uv.lock"), &linux(), Some("app"), &dev)
            .unwrap();
        assert!(
            pkgs.iter().any(|p| p.name == "colorama"),
            "the dev group brings colorama"
        );
        let docs = Selection {
            groups: vec!["docs".into()],
            ..Default::default()
        };
        let err = lock
            .packages_for(Path::new("uv.lock"), &linux(), Some("app"), &docs)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "uv.lock: app has no dependency group `docs` in the lock (it has: dev)"
        );
    }

    #[test]
    fn bad_toml_names_the_file() {
        let err = UvLock::parse(Path::new("proj/uv.lock"), "version = [")
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .starts_with("proj/uv.lock: not a valid uv.lock"),
            "{err}"
        );
    }
}
