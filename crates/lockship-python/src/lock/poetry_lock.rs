//! Reads poetry.lock (lock-version 2.0 from Poetry 1.x, 2.1 from Poetry 2) and picks the
//! packages a target needs as `poetry install` would; checks its content-hash against
//! pyproject.toml as `poetry check --lock` does.

mod constraint;
mod content_hash;
mod files;
mod pyproject;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use uv_pep440::Version;
use uv_pep508::{MarkerEnvironment, MarkerTree};

use super::{normalize_name, Artifacts, LockError, LockedPackage, Selection};
use constraint::Constraint;
use content_hash::Algorithm;
use files::{File, Reduced, TomlFile};
use lockship_oci::digest::Digest;
use pyproject::{PyProject, RootDep};

const SUPPORTED: &str = "2.0, 2.1";

#[derive(Deserialize)]
struct PoetryLock {
    #[serde(default, rename = "package")]
    packages: Vec<Package>,
    metadata: Option<Metadata>,
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(rename = "lock-version")]
    lock_version: Option<String>,
    #[serde(rename = "content-hash")]
    content_hash: Option<String>,
    /// The project's Python constraint, in poetry's syntax.
    #[serde(rename = "python-versions")]
    python_versions: Option<String>,
}

#[derive(Deserialize)]
struct Package {
    name: String,
    version: String,
    #[serde(rename = "python-versions")]
    python_versions: Option<String>,
    /// Lock 2.1: the dependency groups that need the package, and under which markers.
    groups: Option<Vec<String>>,
    markers: Option<Markers>,
    /// Usually an empty array left by [`Reduced`], which holds the files read at its offset.
    files: Option<toml::Spanned<Vec<TomlFile>>>,
    #[serde(default)]
    dependencies: BTreeMap<String, DepSpec>,
    #[serde(default)]
    extras: BTreeMap<String, Vec<String>>,
    source: Option<Source>,
}

/// One marker for every group, or one per group (a group left out: no marker).
enum Markers {
    All(String),
    PerGroup(BTreeMap<String, String>),
}

#[derive(Deserialize)]
struct Source {
    #[serde(rename = "type")]
    kind: Option<String>,
    url: Option<String>,
    reference: Option<String>,
}

/// A dependency as poetry writes it, in poetry.lock and in `[tool.poetry.dependencies]`:
/// `"constraint"`, a table, or a list of either (one per marker/python range).
#[derive(Clone)]
enum DepSpec {
    One(DepItem),
    Many(Vec<DepItem>),
}

#[derive(Clone)]
enum DepItem {
    Constraint(String),
    Table(DepTable),
}

#[derive(Deserialize, Clone, Default)]
struct DepTable {
    version: Option<String>,
    markers: Option<String>,
    python: Option<String>,
    platform: Option<String>,
    #[serde(default)]
    optional: bool,
    #[serde(default)]
    extras: Vec<String>,
    /// The `[[tool.poetry.source]]` a pyproject dependency is pinned to.
    source: Option<String>,
}

impl DepSpec {
    fn tables(&self) -> Vec<DepTable> {
        let item = |i: &DepItem| match i {
            DepItem::Constraint(c) => DepTable {
                version: Some(c.clone()),
                ..DepTable::default()
            },
            DepItem::Table(t) => t.clone(),
        };
        match self {
            DepSpec::One(i) => vec![item(i)],
            DepSpec::Many(items) => items.iter().map(item).collect(),
        }
    }
}

// Hand-written rather than `#[serde(untagged)]`, which buffers every value before trying each
// variant: these are read for every dependency of every package.
impl<'de> Deserialize<'de> for DepItem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = DepItem;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a version constraint or a dependency table")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DepItem, E> {
                Ok(DepItem::Constraint(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<DepItem, A::Error> {
                DepTable::deserialize(MapAccessDeserializer::new(map)).map(DepItem::Table)
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for DepSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = DepSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a version constraint, a dependency table or a list of them")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DepSpec, E> {
                Ok(DepSpec::One(DepItem::Constraint(v.to_string())))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<DepSpec, A::Error> {
                DepTable::deserialize(MapAccessDeserializer::new(map))
                    .map(|t| DepSpec::One(DepItem::Table(t)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<DepSpec, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<DepItem>()? {
                    items.push(item);
                }
                Ok(DepSpec::Many(items))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Markers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Markers;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a marker or a table of markers by group")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Markers, E> {
                Ok(Markers::All(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Markers, A::Error> {
                BTreeMap::deserialize(MapAccessDeserializer::new(map)).map(Markers::PerGroup)
            }
        }
        d.deserialize_any(V)
    }
}

/// The packages a target needs from a poetry.lock, walked from the project's dependencies
/// (declared in `pyproject` text) for `env`, with the selection's extras and groups.
pub fn parse(
    path: &Path,
    text: &str,
    pyproject: &str,
    env: &MarkerEnvironment,
    selection: &Selection,
) -> Result<Vec<LockedPackage>, LockError> {
    let reduced = Reduced::new(text);
    let lock = read_lock(path, &reduced)?;
    let pyproject_path = path.with_file_name("pyproject.toml");
    let project = PyProject::parse(pyproject).map_err(|message| LockError::Invalid {
        path: pyproject_path.clone(),
        message: format!("not a valid pyproject.toml for poetry {message}"),
    })?;
    let (extras, groups) = chosen(&project, selection).map_err(|message| LockError::Invalid {
        path: pyproject_path.clone(),
        message,
    })?;
    let mut picker = Picker::new(path, &lock, env);
    // The Python the project allows (poetry resolved for all of it): the base's must be one.
    if let Some(allowed) = lock
        .metadata
        .as_ref()
        .and_then(|m| m.python_versions.as_deref())
    {
        let fits = Constraint::parse(allowed)
            .is_none_or(|c| c.allows_python(&picker.python_full, &picker.python_short));
        if !fits {
            return Err(LockError::WrongPython {
                path: path.to_path_buf(),
                allowed: allowed.to_string(),
                python: picker.python_full.to_string(),
            });
        }
    }
    let own_name = project.name();
    let needed = if lock.lock_version() == Some("2.1") {
        picker.by_groups_and_markers(&extras, &groups)?
    } else {
        let roots = project
            .roots(&extras, &groups)
            .map_err(|message| LockError::Invalid {
                path: pyproject_path.clone(),
                message,
            })?;
        picker.walk(&roots, &extras, own_name.as_deref())?
    };
    let mut packages = Vec::new();
    let mut by_name: HashMap<&str, &Package> = HashMap::new();
    for i in needed {
        let package = &lock.packages[i];
        let name = &picker.names[i];
        if Some(name) == own_name.as_ref() {
            continue;
        }
        if let Some(other) = by_name.insert(name, package) {
            return Err(picker.invalid(format!(
                "{} {} and {} both apply to the target; the lock does not tell which to install",
                package.name, package.version, other.version
            )));
        }
        let files: Vec<File> = match &package.files {
            None => Vec::new(),
            Some(spanned) => match reduced.files(spanned.span().start) {
                Some(files) => files.to_vec(),
                None => spanned.get_ref().iter().map(TomlFile::to_file).collect(),
            },
        };
        packages.push(locked(path, name, package, &files)?);
    }
    packages.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(packages)
}

/// Fails with LockError::Stale when the lock's content-hash does not match pyproject.toml
/// (like `poetry check --lock`).
pub fn check_fresh(
    lock_path: &Path,
    lock_text: &str,
    pyproject_text: &str,
) -> Result<(), LockError> {
    #[derive(Deserialize)]
    struct MetadataOnly {
        metadata: Option<Metadata>,
    }
    let reduced = Reduced::new(lock_text);
    let lock: MetadataOnly = from_toml(lock_path, &reduced)?;
    let metadata = lock.metadata.ok_or_else(|| LockError::Invalid {
        path: lock_path.to_path_buf(),
        message: "no [metadata] table (not a poetry.lock?)".into(),
    })?;
    let version = check_version(lock_path, metadata.lock_version.as_deref())?;
    let stale = |problems: String| LockError::Stale {
        path: lock_path.to_path_buf(),
        problems,
    };
    let generator = generated_by(lock_text);
    let poetry1 = match &generator {
        Some(v) => *v < Version::new([2]),
        None => version == "2.0",
    };
    let fix = if poetry1 {
        "run `poetry lock --no-update`"
    } else {
        "run `poetry lock`"
    };
    let Some(recorded) = metadata.content_hash else {
        return Err(stale(format!("it records no content-hash; {fix}")));
    };
    let pyproject_path = lock_path.with_file_name("pyproject.toml");
    let pyproject: toml::Table = from_toml(&pyproject_path, &Reduced::whole(pyproject_text))?;
    // The poetry that wrote the lock (its header; else its lock version) decides how the hash
    // was made: 1.x hashed [tool.poetry] only, 2.0 added [project], 2.3 [dependency-groups].
    // Like Poetry 2.3+, a lock from an older 2.x is fresh with or without the groups hashed.
    let algorithms: &[Algorithm] = if poetry1 {
        &[Algorithm::Poetry1]
    } else if generator
        .as_ref()
        .is_some_and(|v| *v < Version::new([2, 3]))
    {
        &[Algorithm::Poetry23, Algorithm::Poetry2]
    } else {
        &[Algorithm::Poetry23]
    };
    let mut fresh = false;
    for &algorithm in algorithms {
        let computed = content_hash::content_hash(&pyproject, algorithm).map_err(|message| {
            LockError::Invalid {
                path: pyproject_path.clone(),
                message: format!("cannot compute poetry's content-hash: {message}"),
            }
        })?;
        fresh |= computed == recorded;
    }
    if fresh {
        Ok(())
    } else {
        let by = generator.map_or_else(
            || format!("lock version {version}"),
            |v| format!("Poetry {v}"),
        );
        Err(stale(format!(
            "its content-hash was computed from another pyproject.toml (hashed as {by} does); {fix}"
        )))
    }
}

/// The version in the lock's `# This file is automatically @generated by Poetry X.Y.Z …` line.
fn generated_by(lock_text: &str) -> Option<Version> {
    let first = lock_text.lines().next()?;
    let (_, rest) = first.split_once("Poetry ")?;
    Version::from_str(rest.split_whitespace().next()?).ok()
}

/// Parses a TOML file (reduced, for a lock) and names its line on error.
fn from_toml<T: serde::de::DeserializeOwned>(path: &Path, text: &Reduced) -> Result<T, LockError> {
    toml::from_str(&text.text).map_err(|e| {
        let line = e
            .span()
            .and_then(|s| text.original.get(..text.original_offset(s.start)))
            .map(|before| before.matches('\n').count() + 1);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "file".into());
        LockError::Invalid {
            path: path.to_path_buf(),
            message: match line {
                Some(line) => format!("not a valid {name} (line {line}): {}", e.message()),
                None => format!("not a valid {name}: {}", e.message()),
            },
        }
    })
}

fn read_lock(path: &Path, reduced: &Reduced) -> Result<PoetryLock, LockError> {
    let lock: PoetryLock = from_toml(path, reduced)?;
    check_version(path, lock.lock_version())?;
    Ok(lock)
}

fn check_version<'a>(path: &Path, version: Option<&'a str>) -> Result<&'a str, LockError> {
    match version {
        Some(v @ ("2.0" | "2.1")) => Ok(v),
        other => Err(LockError::UnsupportedVersion {
            path: path.to_path_buf(),
            found: other.unwrap_or("(none)").to_string(),
            supported: SUPPORTED.into(),
        }),
    }
}

impl PoetryLock {
    fn lock_version(&self) -> Option<&str> {
        self.metadata.as_ref()?.lock_version.as_deref()
    }
}

/// The selected extras and groups (normalized), checked against what the project declares.
fn chosen(
    project: &PyProject,
    selection: &Selection,
) -> Result<(BTreeSet<String>, BTreeSet<String>), String> {
    let known_extras = project.extra_names();
    let known_groups = project.group_names();
    let listing = |known: &BTreeSet<String>| {
        if known.is_empty() {
            "none".to_string()
        } else {
            known.iter().cloned().collect::<Vec<_>>().join(", ")
        }
    };
    let mut extras = BTreeSet::new();
    for extra in &selection.extras {
        let name = normalize_name(extra);
        if !known_extras.contains(&name) {
            return Err(format!(
                "{} has no extra `{extra}` (it has: {})",
                project.display_name(),
                listing(&known_extras)
            ));
        }
        extras.insert(name);
    }
    let mut groups = BTreeSet::new();
    for group in &selection.groups {
        let name = normalize_name(group);
        if name != "main" && !known_groups.contains(&name) {
            return Err(format!(
                "{} has no dependency group `{group}` (it has: {})",
                project.display_name(),
                listing(&known_groups)
            ));
        }
        groups.insert(name);
    }
    groups.remove("main");
    Ok((extras, groups))
}

/// Picks packages of one lock for one target.
struct Picker<'a> {
    path: &'a Path,
    lock: &'a PoetryLock,
    env: &'a MarkerEnvironment,
    python_full: Version,
    python_short: Version,
    /// Normalized package names, by package index.
    names: Vec<String>,
    by_name: HashMap<String, Vec<usize>>,
    /// Marker text → whether it holds with no extra (or, for lock 2.1, the chosen extras).
    marker_cache: HashMap<String, bool>,
}

impl<'a> Picker<'a> {
    fn new(path: &'a Path, lock: &'a PoetryLock, env: &'a MarkerEnvironment) -> Picker<'a> {
        let names: Vec<String> = lock
            .packages
            .iter()
            .map(|p| normalize_name(&p.name))
            .collect();
        let mut by_name: HashMap<String, Vec<usize>> = HashMap::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            by_name.entry(name.clone()).or_default().push(i);
        }
        let python_full = env.python_full_version().version.clone();
        let python_short = env.python_version().version.clone();
        Picker {
            path,
            lock,
            env,
            python_full,
            python_short,
            names,
            by_name,
            marker_cache: HashMap::new(),
        }
    }

    fn invalid(&self, message: String) -> LockError {
        LockError::Invalid {
            path: self.path.to_path_buf(),
            message,
        }
    }

    /// Whether `marker` holds on the target with `extras` chosen; `cache` when the extras are
    /// the same for every call that shares the cache.
    fn holds(
        &mut self,
        marker: &str,
        extras: &[String],
        cache: bool,
        package: &Package,
    ) -> Result<bool, LockError> {
        if cache {
            if let Some(&held) = self.marker_cache.get(marker) {
                return Ok(held);
            }
        }
        let tree = MarkerTree::from_str(marker).map_err(|e| {
            self.invalid(format!(
                "{} {}: bad marker `{marker}`: {e}",
                package.name, package.version
            ))
        })?;
        let extra_names: Vec<_> = extras.iter().filter_map(|e| e.parse().ok()).collect();
        let held = tree.evaluate(self.env, &extra_names);
        if cache {
            self.marker_cache.insert(marker.to_string(), held);
        }
        Ok(held)
    }

    /// Lock 2.1, as Poetry 2 installs it: a package is needed when one of its recorded groups
    /// is chosen and that group's recorded marker holds (with the chosen extras).
    fn by_groups_and_markers(
        &mut self,
        extras: &BTreeSet<String>,
        groups: &BTreeSet<String>,
    ) -> Result<Vec<usize>, LockError> {
        let extras: Vec<String> = extras.iter().cloned().collect();
        let lock = self.lock;
        let mut needed = Vec::new();
        for (i, package) in lock.packages.iter().enumerate() {
            let recorded = package.groups.as_ref().ok_or_else(|| {
                self.invalid(format!(
                    "{} {} has no `groups` (lock version 2.1 records them)",
                    package.name, package.version
                ))
            })?;
            let mut applies = false;
            for group in recorded {
                let group_name = normalize_name(group);
                if group_name != "main" && !groups.contains(&group_name) {
                    continue;
                }
                let marker = match &package.markers {
                    None => None,
                    Some(Markers::All(m)) => Some(m),
                    Some(Markers::PerGroup(per_group)) => per_group
                        .iter()
                        .find(|(g, _)| normalize_name(g) == group_name)
                        .map(|(_, m)| m),
                };
                let holds = match marker {
                    None => true,
                    Some(m) => self.holds(m, &extras, true, package)?,
                };
                if holds {
                    applies = true;
                    break;
                }
            }
            if applies {
                needed.push(i);
            }
        }
        Ok(needed)
    }

    /// Lock 2.0, which records no groups or markers per package, as poetry installs it by
    /// solving again with the lock as the only repository: from the project's dependencies
    /// along the edges that hold on the target, extras bringing their optional dependencies.
    /// An extra naming the package's own other extras (`dask[complete]` lists
    /// `dask[array,dataframe,…]`) brings those too, as Poetry 2 does (Poetry 1.8 skipped them).
    fn walk(
        &mut self,
        roots: &[RootDep],
        extras: &BTreeSet<String>,
        own_name: Option<&str>,
    ) -> Result<Vec<usize>, LockError> {
        let extras: Vec<String> = extras.iter().cloned().collect();
        let mut queue: VecDeque<(usize, Option<String>)> = VecDeque::new();
        for root in roots {
            if Some(root.name.as_str()) == own_name
                || !root.holds(self.env, &self.python_full, &self.python_short, &extras)
            {
                continue;
            }
            let target = self
                .choose(&root.name, &root.versions, root.source.as_deref())
                .ok_or_else(|| {
                    self.invalid(format!(
                        "the project depends on {}, which the lock does not contain (run `poetry lock`)",
                        root.name
                    ))
                })?;
            queue.push_back((target, None));
            for extra in &root.extras {
                queue.push_back((target, Some(normalize_name(extra))));
            }
        }
        let lock = self.lock;
        let mut seen: HashSet<(usize, Option<String>)> = HashSet::new();
        let mut needed: BTreeSet<usize> = BTreeSet::new();
        while let Some((i, extra)) = queue.pop_front() {
            if !seen.insert((i, extra.clone())) {
                continue;
            }
            needed.insert(i);
            let package = &lock.packages[i];
            // An extra makes its optional dependencies count; `name[other]` entries naming the
            // package itself add its other extras.
            let listed: Option<BTreeSet<String>> = match &extra {
                None => None,
                Some(extra) => {
                    let mut listed = BTreeSet::new();
                    for (name, entries) in &package.extras {
                        if normalize_name(name) != *extra {
                            continue;
                        }
                        for entry in entries {
                            let (dep, dep_extras) = extras_entry(entry);
                            if dep == self.names[i] {
                                for e in dep_extras {
                                    queue.push_back((i, Some(e)));
                                }
                            } else {
                                listed.insert(dep);
                            }
                        }
                    }
                    Some(listed)
                }
            };
            let marker_extras: Vec<String> = extra.iter().cloned().collect();
            for (dep_name, spec) in &package.dependencies {
                let dep = normalize_name(dep_name);
                if listed.as_ref().is_some_and(|l| !l.contains(&dep)) {
                    continue;
                }
                for table in spec.tables() {
                    if table.optional && listed.is_none() {
                        continue;
                    }
                    if !self.edge_holds(&table, &marker_extras, package)? {
                        continue;
                    }
                    if Some(dep.as_str()) == own_name {
                        continue;
                    }
                    let versions: Vec<Constraint> = table
                        .version
                        .as_deref()
                        .and_then(Constraint::parse)
                        .into_iter()
                        .collect();
                    let target = self.choose(&dep, &versions, None).ok_or_else(|| {
                        self.invalid(format!(
                            "{} {} depends on {dep_name} {}, which the lock does not contain",
                            package.name,
                            package.version,
                            table.version.as_deref().unwrap_or("")
                        ))
                    })?;
                    queue.push_back((target, None));
                    for e in &table.extras {
                        queue.push_back((target, Some(normalize_name(e))));
                    }
                }
            }
        }
        Ok(needed.into_iter().collect())
    }

    /// Whether a dependency edge of `package` holds: its markers (with `extras`), its `python`
    /// and `platform` constraints.
    fn edge_holds(
        &mut self,
        table: &DepTable,
        extras: &[String],
        package: &Package,
    ) -> Result<bool, LockError> {
        if let Some(marker) = &table.markers {
            if !self.holds(marker, extras, extras.is_empty(), package)? {
                return Ok(false);
            }
        }
        if table
            .platform
            .as_deref()
            .is_some_and(|p| !pyproject::platform_allows(p, self.env))
        {
            return Ok(false);
        }
        if let Some(python) = &table.python {
            let constraint = Constraint::parse(python).ok_or_else(|| {
                self.invalid(format!(
                    "{} {}: bad python constraint `{python}`",
                    package.name, package.version
                ))
            })?;
            if !constraint.allows_python(&self.python_full, &self.python_short) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The locked package a dependency on `name` resolves to. With several versions of one
    /// name (a dependency split by Python version), the one the constraints allow and whose
    /// `python-versions` admit the target, from the pinned source if one is; the newest if
    /// several still do.
    fn choose(&self, name: &str, versions: &[Constraint], source: Option<&str>) -> Option<usize> {
        let candidates = self.by_name.get(name)?;
        if let [only] = candidates.as_slice() {
            return Some(*only);
        }
        let allowed: Vec<(Option<Version>, usize)> = candidates
            .iter()
            .filter_map(|&i| {
                let package = &self.lock.packages[i];
                let version = Version::from_str(&package.version).ok();
                let allowed = version
                    .as_ref()
                    .is_none_or(|v| versions.iter().all(|c| c.allows(v)));
                let python_ok = package
                    .python_versions
                    .as_deref()
                    .and_then(Constraint::parse)
                    .is_none_or(|c| c.allows(&self.python_full));
                (allowed && python_ok).then_some((version, i))
            })
            .collect();
        let from_source = |&&(_, i): &&(Option<Version>, usize)| {
            let reference = self.lock.packages[i]
                .source
                .as_ref()
                .and_then(|s| s.reference.as_deref());
            source.is_some_and(|s| reference == Some(s))
        };
        let pinned = allowed.iter().any(|c| from_source(&c));
        allowed
            .iter()
            .filter(|c| !pinned || from_source(c))
            .max_by(|a, b| a.0.cmp(&b.0))
            .map(|&(_, i)| i)
    }
}

/// `PySocks (>=1.5.6,!=1.5.7) ; python_version >= "3"` → (`pysocks`, []); `ipython[test]` →
/// (`ipython`, [`test`]): an entry of `[package.extras]`.
fn extras_entry(entry: &str) -> (String, Vec<String>) {
    let requirement = entry.split(';').next().unwrap_or(entry);
    let end = requirement
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(requirement.len());
    let name = normalize_name(&requirement[..end]);
    let rest = requirement[end..].trim_start();
    let extras = rest
        .strip_prefix('[')
        .and_then(|r| r.split_once(']'))
        .map(|(inner, _)| {
            inner
                .split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(normalize_name)
                .collect()
        })
        .unwrap_or_default();
    (name, extras)
}

/// The lock's record of `package` as lockship installs it: the sha256 of every file, from the
/// project's index or the package's own (`legacy`) source.
fn locked(
    path: &Path,
    name: &str,
    package: &Package,
    files: &[File],
) -> Result<LockedPackage, LockError> {
    let label = format!("{} {}", package.name, package.version);
    let path_buf = || -> PathBuf { path.to_path_buf() };
    let index = match &package.source {
        None => None,
        Some(source) => match source.kind.as_deref() {
            Some("legacy") => Some(source.url.clone().ok_or_else(|| LockError::Invalid {
                path: path_buf(),
                message: format!("{label}: its source has no url"),
            })?),
            kind => {
                let source_kind = match kind {
                    Some("git") => "a git repository".to_string(),
                    Some("directory") => "a local directory".to_string(),
                    Some("file") => "a local file".to_string(),
                    Some("url") => "a direct URL".to_string(),
                    Some(other) => format!("a source of type `{other}`"),
                    None => "a source of no type".to_string(),
                };
                return Err(LockError::UnsupportedSource {
                    path: path_buf(),
                    package: label,
                    source_kind,
                });
            }
        },
    };
    let mut hashes: Vec<Digest> = Vec::new();
    let mut other_algorithms: BTreeSet<&str> = BTreeSet::new();
    for file in files {
        let Some(hash) = file.hash.as_deref() else {
            continue;
        };
        match hash.split_once(':') {
            Some(("sha256", hex)) => {
                let digest = Digest::from_hex(hex).ok_or_else(|| LockError::Invalid {
                    path: path_buf(),
                    message: format!(
                        "{label}: bad sha256 `{hash}` for {}",
                        file.file.as_deref().unwrap_or("a file")
                    ),
                })?;
                hashes.push(digest);
            }
            Some((algorithm, _)) => {
                other_algorithms.insert(algorithm);
            }
            None => {
                other_algorithms.insert("unlabelled");
            }
        }
    }
    if hashes.is_empty() {
        if other_algorithms.is_empty() {
            return Ok(LockedPackage {
                name: name.to_string(),
                version: package.version.clone(),
                artifacts: Artifacts::Unhashed { index },
            });
        }
        return Err(LockError::Invalid {
            path: path_buf(),
            message: format!(
                "{label} is locked with {} hashes only; lockship verifies files by sha256",
                other_algorithms.into_iter().collect::<Vec<_>>().join(", ")
            ),
        });
    }
    // Files are listed once each; sorting keeps the result the same whatever their order.
    hashes.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    hashes.dedup();
    Ok(LockedPackage {
        name: name.to_string(),
        version: package.version.clone(),
        artifacts: Artifacts::FromIndex { hashes, index },
    })
}
