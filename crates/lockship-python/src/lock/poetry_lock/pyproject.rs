//! What a poetry project declares in pyproject.toml, read as poetry-core 2 reads it: its main
//! dependencies (`[project]` and/or `[tool.poetry.dependencies]`), extras and dependency groups
//! (`[tool.poetry.group.*]`, `[tool.poetry.dev-dependencies]`, PEP 735 `[dependency-groups]`).

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use serde::Deserialize;
use uv_pep508::{MarkerEnvironment, MarkerTree, Requirement, VerbatimUrl, VersionOrUrl};

use super::constraint::Constraint;
use super::{DepSpec, DepTable};
use crate::lock::normalize_name;

#[derive(Deserialize, Default)]
pub(super) struct PyProject {
    project: Option<Project>,
    #[serde(default, rename = "dependency-groups")]
    dependency_groups: BTreeMap<String, Vec<GroupEntry>>,
    #[serde(default)]
    tool: Tool,
}

#[derive(Deserialize, Default)]
struct Tool {
    #[serde(default)]
    poetry: Poetry,
}

#[derive(Deserialize, Default)]
struct Poetry {
    name: Option<String>,
    #[serde(default)]
    dependencies: BTreeMap<String, DepSpec>,
    #[serde(rename = "dev-dependencies")]
    dev_dependencies: Option<BTreeMap<String, DepSpec>>,
    #[serde(default)]
    group: BTreeMap<String, PoetryGroup>,
    #[serde(default)]
    extras: BTreeMap<String, Vec<String>>,
}

#[derive(Deserialize, Default)]
struct PoetryGroup {
    #[serde(default)]
    dependencies: BTreeMap<String, DepSpec>,
    #[serde(default, rename = "include-groups")]
    include_groups: Vec<String>,
}

#[derive(Deserialize, Default)]
struct Project {
    name: Option<String>,
    dependencies: Option<Vec<String>>,
    #[serde(default, rename = "optional-dependencies")]
    optional_dependencies: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    dynamic: Vec<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum GroupEntry {
    Requirement(String),
    Include {
        #[serde(rename = "include-group")]
        include_group: String,
    },
}

/// One dependency the project declares, with what decides whether it applies to a target.
#[derive(Debug)]
pub(super) struct RootDep {
    /// Normalized name.
    pub name: String,
    /// Version constraints, all of which the locked package meets (PEP 440 or poetry syntax).
    pub versions: Vec<Constraint>,
    /// Markers, all of which hold for the dependency to apply (`python` and `platform`
    /// constraints become markers as poetry-core turns them into markers).
    markers: Vec<MarkerTree>,
    python: Vec<Constraint>,
    platform: Vec<String>,
    pub extras: Vec<String>,
    /// The `[[tool.poetry.source]]` the dependency is pinned to.
    pub source: Option<String>,
    optional: bool,
}

impl RootDep {
    /// Whether the dependency applies on `env` with the project's `extras` chosen.
    pub(super) fn holds(
        &self,
        env: &MarkerEnvironment,
        python_full: &uv_pep440::Version,
        python_short: &uv_pep440::Version,
        extras: &[String],
    ) -> bool {
        let extra_names: Vec<_> = extras.iter().filter_map(|e| e.parse().ok()).collect();
        self.markers.iter().all(|m| m.evaluate(env, &extra_names))
            && self
                .python
                .iter()
                .all(|c| c.allows_python(python_full, python_short))
            && self.platform.iter().all(|p| platform_allows(p, env))
    }
}

/// poetry-core's generic constraint on `sys_platform` (`platform = "linux || darwin"`).
pub(super) fn platform_allows(constraint: &str, env: &MarkerEnvironment) -> bool {
    let platform = env.sys_platform();
    constraint
        .split('|')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .any(|alternative| {
            alternative.split(',').map(str::trim).all(|c| {
                if let Some(v) = c.strip_prefix("!=") {
                    v.trim() != platform
                } else {
                    let v = c.strip_prefix("==").unwrap_or(c).trim();
                    v == "*" || v == platform
                }
            })
        })
}

impl PyProject {
    pub(super) fn parse(text: &str) -> Result<PyProject, String> {
        toml::from_str(text).map_err(|e| match e.span().and_then(|s| text.get(..s.start)) {
            Some(before) => format!(
                "(line {}): {}",
                before.matches('\n').count() + 1,
                e.message()
            ),
            None => e.message().to_string(),
        })
    }

    /// The project's normalized name.
    pub(super) fn name(&self) -> Option<String> {
        self.project
            .as_ref()
            .and_then(|p| p.name.as_deref())
            .or(self.tool.poetry.name.as_deref())
            .map(normalize_name)
    }

    /// The name to show in messages.
    pub(super) fn display_name(&self) -> String {
        self.name().unwrap_or_else(|| "the project".into())
    }

    /// Whether `[project]` declares the main dependencies and the extras (poetry-core: any
    /// `dependencies` or `optional-dependencies`); else `[tool.poetry]` does.
    fn pep621(&self) -> bool {
        self.project.as_ref().is_some_and(|p| {
            p.dependencies.as_ref().is_some_and(|d| !d.is_empty())
                || !p.optional_dependencies.is_empty()
        })
    }

    /// Normalized names of the extras: `[project.optional-dependencies]` or
    /// `[tool.poetry.extras]`.
    pub(super) fn extra_names(&self) -> BTreeSet<String> {
        let keys: Vec<&String> = match &self.project {
            Some(p) if self.pep621() => p.optional_dependencies.keys().collect(),
            _ => self.tool.poetry.extras.keys().collect(),
        };
        keys.into_iter().map(|k| normalize_name(k)).collect()
    }

    /// Normalized names of the dependency groups besides main.
    pub(super) fn group_names(&self) -> BTreeSet<String> {
        let mut names: BTreeSet<String> = self
            .dependency_groups
            .keys()
            .chain(self.tool.poetry.group.keys())
            .map(|k| normalize_name(k))
            .collect();
        if self.tool.poetry.dev_dependencies.is_some() {
            names.insert("dev".into());
        }
        names.remove("main");
        names
    }

    /// The dependencies the project declares for the selected `extras` and `groups`
    /// (normalized names, checked to exist), main always included. Optional dependencies come
    /// only through a selected extra.
    pub(super) fn roots(
        &self,
        extras: &BTreeSet<String>,
        groups: &BTreeSet<String>,
    ) -> Result<Vec<RootDep>, String> {
        let poetry = &self.tool.poetry;
        let mut roots = Vec::new();
        if self.pep621() {
            let project = self.project.as_ref();
            let enrich = |requirement: &str| -> Result<Vec<RootDep>, String> {
                enriched(pep508(requirement)?, &poetry.dependencies)
            };
            for requirement in project
                .and_then(|p| p.dependencies.as_ref())
                .into_iter()
                .flatten()
            {
                roots.extend(enrich(requirement)?);
            }
            for (extra, requirements) in project
                .map(|p| &p.optional_dependencies)
                .into_iter()
                .flatten()
            {
                if extras.contains(&normalize_name(extra)) {
                    for requirement in requirements {
                        roots.extend(enrich(requirement)?);
                    }
                }
            }
            // With `dynamic = ["dependencies"]`, [tool.poetry.dependencies] adds the required
            // ones when [project] declares only optional ones.
            let dynamic = project.is_some_and(|p| {
                p.dynamic
                    .iter()
                    .any(|d| d == "dependencies" || d == "optional-dependencies")
            });
            if dynamic && project.is_some_and(|p| p.dependencies.as_ref().is_none_or(Vec::is_empty))
            {
                for dep in poetry_deps(&poetry.dependencies)? {
                    if !dep.optional {
                        roots.push(dep);
                    }
                }
            }
        } else {
            let wanted: BTreeSet<String> = poetry
                .extras
                .iter()
                .filter(|(extra, _)| extras.contains(&normalize_name(extra)))
                .flat_map(|(_, names)| names.iter().map(|n| normalize_name(strip_extras(n))))
                .collect();
            for dep in poetry_deps(&poetry.dependencies)? {
                if !dep.optional || wanted.contains(&dep.name) {
                    roots.push(dep);
                }
            }
        }
        // The chosen groups and those they include, each once (a worklist: no recursion on
        // input).
        let known = self.group_names();
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let mut todo: Vec<String> = groups.iter().cloned().collect();
        while let Some(group) = todo.pop() {
            if !seen.insert(group.clone()) {
                continue;
            }
            for include in self.group_roots(&group, &mut roots)? {
                if !known.contains(&include) {
                    return Err(format!(
                        "dependency group `{group}` includes group `{include}`, which is not defined"
                    ));
                }
                todo.push(include);
            }
        }
        Ok(roots)
    }

    /// Adds the dependencies of group `name` (normalized) to `roots`; gives the groups it
    /// includes.
    fn group_roots(&self, name: &str, roots: &mut Vec<RootDep>) -> Result<Vec<String>, String> {
        let poetry = &self.tool.poetry;
        let poetry_group = poetry
            .group
            .iter()
            .find(|(k, _)| normalize_name(k) == name)
            .map(|(_, g)| g);
        let mut poetry_specs: BTreeMap<String, DepSpec> = BTreeMap::new();
        let empty = BTreeMap::new();
        let specs = poetry_group.map(|g| &g.dependencies).unwrap_or(&empty);
        let dev = poetry.dev_dependencies.as_ref().filter(|_| name == "dev");
        for (dep, spec) in specs.iter().chain(dev.into_iter().flatten()) {
            poetry_specs.insert(dep.clone(), spec.clone());
        }
        let mut includes: Vec<String> = Vec::new();
        let pep735 = self
            .dependency_groups
            .iter()
            .find(|(k, _)| normalize_name(k) == name)
            .map(|(_, entries)| entries);
        let mut requirements = Vec::new();
        for entry in pep735.into_iter().flatten() {
            match entry {
                GroupEntry::Requirement(r) => requirements.push(r.as_str()),
                GroupEntry::Include { include_group } => {
                    includes.push(normalize_name(include_group))
                }
            }
        }
        if requirements.is_empty() {
            for dep in poetry_deps(&poetry_specs)? {
                if !dep.optional {
                    roots.push(dep);
                }
            }
        } else {
            // [tool.poetry.group.NAME.dependencies] only add details to the PEP 735 ones.
            for requirement in requirements {
                roots.extend(enriched(pep508(requirement)?, &poetry_specs)?);
            }
        }
        includes.extend(
            poetry_group
                .into_iter()
                .flat_map(|g| g.include_groups.iter().map(|n| normalize_name(n))),
        );
        Ok(includes)
    }
}

/// `name[extra]` → `name` (an entry of `[tool.poetry.extras]`).
fn strip_extras(name: &str) -> &str {
    name.split('[').next().unwrap_or(name).trim()
}

/// A PEP 508 requirement of `[project]` or `[dependency-groups]`.
fn pep508(text: &str) -> Result<RootDep, String> {
    let requirement = Requirement::<VerbatimUrl>::from_str(text)
        .map_err(|e| format!("bad dependency `{text}`: {e}"))?;
    let versions = match &requirement.version_or_url {
        Some(VersionOrUrl::VersionSpecifier(spec)) if !spec.is_empty() => {
            vec![Constraint::parse(&spec.to_string())
                .ok_or_else(|| format!("bad version in `{text}`"))?]
        }
        _ => Vec::new(),
    };
    Ok(RootDep {
        name: normalize_name(requirement.name.as_ref()),
        versions,
        markers: vec![requirement.marker],
        python: Vec::new(),
        platform: Vec::new(),
        extras: requirement.extras.iter().map(|e| e.to_string()).collect(),
        source: None,
        optional: false,
    })
}

/// A `[project]` dependency with the details `[tool.poetry.dependencies]` adds for the same
/// name (source, markers, constraint): one dependency per poetry constraint.
fn enriched(dep: RootDep, poetry: &BTreeMap<String, DepSpec>) -> Result<Vec<RootDep>, String> {
    let details: Vec<(&String, &DepSpec)> = poetry
        .iter()
        .filter(|(name, _)| normalize_name(name) == dep.name)
        .collect();
    if details.is_empty() {
        return Ok(vec![dep]);
    }
    let mut out = Vec::new();
    for (name, spec) in details {
        for table in spec.tables() {
            let detail = from_table(name, &table)?;
            let mut extras = dep.extras.clone();
            extras.extend(detail.extras);
            out.push(RootDep {
                name: dep.name.clone(),
                versions: dep
                    .versions
                    .iter()
                    .cloned()
                    .chain(detail.versions)
                    .collect(),
                markers: dep.markers.iter().copied().chain(detail.markers).collect(),
                python: dep.python.iter().cloned().chain(detail.python).collect(),
                platform: dep
                    .platform
                    .iter()
                    .cloned()
                    .chain(detail.platform)
                    .collect(),
                extras,
                source: detail.source,
                optional: dep.optional,
            });
        }
    }
    Ok(out)
}

/// The entries of a `[tool.poetry.dependencies]`-style table (the `python` key excepted).
fn poetry_deps(specs: &BTreeMap<String, DepSpec>) -> Result<Vec<RootDep>, String> {
    let mut out = Vec::new();
    for (name, spec) in specs {
        if name.eq_ignore_ascii_case("python") {
            continue;
        }
        for table in spec.tables() {
            out.push(from_table(name, &table)?);
        }
    }
    Ok(out)
}

fn from_table(name: &str, table: &DepTable) -> Result<RootDep, String> {
    let bad = |what: &str, value: &str| format!("dependency {name}: bad {what} `{value}`");
    let versions = match table.version.as_deref() {
        Some(v) => vec![Constraint::parse(v).ok_or_else(|| bad("version", v))?],
        None => Vec::new(),
    };
    let markers = match table.markers.as_deref() {
        Some(m) => {
            vec![MarkerTree::from_str(m).map_err(|e| format!("{}: {e}", bad("markers", m)))?]
        }
        None => Vec::new(),
    };
    let python = match table.python.as_deref() {
        Some(p) => vec![Constraint::parse(p).ok_or_else(|| bad("python", p))?],
        None => Vec::new(),
    };
    Ok(RootDep {
        name: normalize_name(name),
        versions,
        markers,
        python,
        platform: table.platform.iter().cloned().collect(),
        extras: table.extras.clone(),
        source: table.source.clone(),
        optional: table.optional,
    })
}
