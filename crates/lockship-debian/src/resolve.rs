//! Resolves the closure of requested packages over a suite's `Packages` index: Depends and
//! Pre-Depends, alternatives (first satisfiable wins, already-chosen ones first), versioned
//! constraints, and virtual packages through Provides. Recommends are ignored, as in a
//! `--no-install-recommends` install. Pure: no I/O.

use std::collections::{BTreeMap, HashMap, VecDeque};

use super::control::{Dep, PackageEntry};
use super::version;

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("Debian package `{name}` does not exist in {suite}/{arch}")]
    Unknown {
        name: String,
        suite: String,
        arch: String,
    },
    #[error("exclude = [\"{name}\"]: it is in `packages`")]
    ExcludedRequested { name: String },
    #[error("exclude = [\"{name}\"]: nothing in the base depends on it")]
    ExcludedUnused { name: String },
    #[error("exclude = [\"{name}\"] would break {package} {version}, which {how}")]
    ExclusionBreaks {
        name: String,
        package: String,
        version: String,
        how: String,
    },
    #[error("{package} {version} needs {needs}, which {suite}/{arch} cannot satisfy")]
    Unsatisfiable {
        package: String,
        version: String,
        needs: String,
        suite: String,
        arch: String,
    },
}

/// The packages of one suite and architecture, indexed by name and by what they provide.
pub struct Universe {
    entries: Vec<PackageEntry>,
    by_name: HashMap<String, Vec<usize>>,
    providers: HashMap<String, Vec<usize>>,
    suite: String,
    arch: String,
}

fn describe(clause: &[Dep]) -> String {
    clause
        .iter()
        .map(|d| match &d.constraint {
            Some((rel, v)) => format!("{} ({rel} {v})", d.name),
            None => d.name.clone(),
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

impl Universe {
    pub fn new(entries: Vec<PackageEntry>, suite: &str, arch: &str) -> Universe {
        let mut by_name: HashMap<String, Vec<usize>> = HashMap::new();
        let mut providers: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            by_name.entry(e.name.clone()).or_default().push(i);
            for p in &e.provides {
                providers.entry(p.name.clone()).or_default().push(i);
            }
        }
        for list in providers.values_mut() {
            list.sort_by(|&a, &b| entries[a].name.cmp(&entries[b].name));
        }
        Universe {
            entries,
            by_name,
            providers,
            suite: suite.to_string(),
            arch: arch.to_string(),
        }
    }

    fn satisfies(&self, i: usize, dep: &Dep) -> bool {
        let e = &self.entries[i];
        if e.name == dep.name {
            return dep
                .constraint
                .as_ref()
                .is_none_or(|(rel, v)| rel.holds(&e.version, v));
        }
        e.provides.iter().any(|p| {
            p.name == dep.name
                && match (&dep.constraint, &p.constraint) {
                    (None, _) => true,
                    (Some((rel, want)), Some((_, have))) => rel.holds(have, want),
                    // An unversioned Provides satisfies no versioned dependency.
                    (Some(_), None) => false,
                }
        })
    }

    /// The best package for `dep`: the highest version of the real package, else the first
    /// provider by name.
    fn candidate(&self, dep: &Dep) -> Option<usize> {
        let real = self.by_name.get(&dep.name).and_then(|list| {
            list.iter()
                .copied()
                .filter(|&i| self.satisfies(i, dep))
                .max_by(|&a, &b| {
                    version::compare(&self.entries[a].version, &self.entries[b].version)
                })
        });
        real.or_else(|| {
            self.providers
                .get(&dep.name)?
                .iter()
                .copied()
                .find(|&i| self.satisfies(i, dep))
        })
    }

    /// The closure of `requested`, sorted by name, with the dependencies on `exclude` cut:
    /// an excluded package, and what only it pulls in, stays out. An exclusion that a remaining
    /// package cannot do without is refused: one it Pre-Depends on (needed before it can even
    /// be unpacked), or a shared library it Depends on (its programs load it at run time);
    /// tools its maintainer scripts call (dpkg, tar, perl-base) are what `exclude` is for.
    pub fn resolve(
        &self,
        requested: &[String],
        exclude: &[String],
    ) -> Result<Vec<PackageEntry>, ResolveError> {
        if let Some(name) = exclude.iter().find(|e| requested.contains(e)) {
            return Err(ResolveError::ExcludedRequested { name: name.clone() });
        }
        // (dependent, excluded name, whether a Pre-Depends) for every dependency cut.
        let mut cut: Vec<(usize, String, bool)> = Vec::new();
        let mut chosen: BTreeMap<String, usize> = BTreeMap::new();
        let mut queue = VecDeque::new();
        for name in requested {
            let dep = Dep {
                name: name.clone(),
                constraint: None,
            };
            let i = self.candidate(&dep).ok_or_else(|| ResolveError::Unknown {
                name: name.clone(),
                suite: self.suite.clone(),
                arch: self.arch.clone(),
            })?;
            if chosen.insert(self.entries[i].name.clone(), i).is_none() {
                queue.push_back(i);
            }
        }
        while let Some(i) = queue.pop_front() {
            for (n, clause) in self.entries[i].depends.iter().enumerate() {
                let done = clause
                    .iter()
                    .any(|dep| chosen.values().any(|&c| self.satisfies(c, dep)));
                if done {
                    continue;
                }
                if let Some(dep) = clause.iter().find(|d| exclude.contains(&d.name)) {
                    cut.push((i, dep.name.clone(), n < self.entries[i].pre_depends));
                    continue;
                }
                let pick = clause.iter().find_map(|dep| {
                    let c = self.candidate(dep)?;
                    // A different version of an already chosen package cannot be installed too.
                    match chosen.get(&self.entries[c].name) {
                        Some(&existing) if existing != c => None,
                        _ => Some(c),
                    }
                });
                let Some(c) = pick else {
                    return Err(ResolveError::Unsatisfiable {
                        package: self.entries[i].name.clone(),
                        version: self.entries[i].version.clone(),
                        needs: describe(clause),
                        suite: self.suite.clone(),
                        arch: self.arch.clone(),
                    });
                };
                chosen.insert(self.entries[c].name.clone(), c);
                queue.push_back(c);
            }
        }
        // The closure without any exclusion, made on first need: whether an exclusion does
        // anything is judged against it, not against what the other exclusions left (`tar`
        // beside `dpkg`, which alone pulls it in, is no typo).
        let mut unexcluded: Option<Option<Vec<PackageEntry>>> = None;
        for name in exclude {
            let mut edges: Vec<&(usize, String, bool)> =
                cut.iter().filter(|(_, n, _)| n == name).collect();
            // A Pre-Depends is the strongest reason to name.
            edges.sort_by_key(|(_, _, pre)| !pre);
            if edges.is_empty() {
                let full = unexcluded.get_or_insert_with(|| self.resolve(requested, &[]).ok());
                // Without exclusions it may not resolve at all (an exclusion avoids what
                // cannot be satisfied): then it is not a no-op either.
                let pulled_in = full.as_ref().is_none_or(|entries| {
                    entries.iter().any(|e| {
                        e.name == *name || e.depends.iter().flatten().any(|d| d.name == *name)
                    })
                });
                if !pulled_in {
                    return Err(ResolveError::ExcludedUnused { name: name.clone() });
                }
                continue;
            }
            let library = self
                .candidate(&Dep {
                    name: name.clone(),
                    constraint: None,
                })
                .is_some_and(|c| {
                    let e = &self.entries[c];
                    matches!(e.section.as_deref(), Some("libs" | "oldlibs"))
                        || e.name.starts_with("lib")
                });
            for (i, _, pre) in edges {
                let how = match (pre, library) {
                    (true, _) => "Pre-Depends on it",
                    (false, true) => "Depends on it, a shared library",
                    (false, false) => continue,
                };
                let e = &self.entries[*i];
                return Err(ResolveError::ExclusionBreaks {
                    name: name.clone(),
                    package: e.name.clone(),
                    version: e.version.clone(),
                    how: how.to_string(),
                });
            }
        }
        Ok(chosen
            .into_values()
            .map(|i| self.entries[i].clone())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::parse_packages;

    const INDEX: &str = "\
Package: python3
Version: 3.11.2-1
Architecture: amd64
Depends: python3.11 (>= 3.11.2), libpython3-stdlib (= 3.11.2-1)
Recommends: ca-certificates
Filename: p/python3.deb
Size: 1
SHA256: 01

Package: python3.11
Version: 3.11.2-6
Architecture: amd64
Pre-Depends: libc6 (>= 2.36)
Depends: mime-support | media-types, libc6 (>= 2.14)
Filename: p/python3.11.deb
Size: 1
SHA256: 02

Package: libpython3-stdlib
Version: 3.11.2-1
Architecture: amd64
Depends: libpython3.11-stdlib
Filename: p/libpython3-stdlib.deb
Size: 1
SHA256: 03

Package: libpython3.11-stdlib
Version: 3.11.2-6
Architecture: amd64
Depends: awk-provider
Filename: p/libpython3.11-stdlib.deb
Size: 1
SHA256: 04

Package: media-types
Version: 10.0.0
Architecture: all
Filename: p/media-types.deb
Size: 1
SHA256: 05

Package: libc6
Version: 2.36-9
Architecture: amd64
Filename: p/libc6.deb
Size: 1
SHA256: 06

Package: mawk
Version: 1.3.4
Architecture: amd64
Provides: awk-provider
Filename: p/mawk.deb
Size: 1
SHA256: 07

Package: ca-certificates
Version: 20230311
Architecture: all
Filename: p/ca.deb
Size: 1
SHA256: 08
";

    #[test]
    fn closure_with_alternatives_versions_and_virtuals() {
        let u = Universe::new(parse_packages(INDEX, "amd64"), "bookworm", "amd64");
        let names: Vec<String> = u
            .resolve(&["python3".into()], &[])
            .unwrap()
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(
            names,
            [
                "libc6",
                "libpython3-stdlib",
                "libpython3.11-stdlib",
                "mawk",
                "media-types",
                "python3",
                "python3.11"
            ]
        );
        let err = u.resolve(&["libpq5".into()], &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Debian package `libpq5` does not exist in bookworm/amd64"
        );
        let strict = INDEX.replace("libc6 (>= 2.36)", "libc6 (>= 2.99)");
        let u = Universe::new(parse_packages(&strict, "amd64"), "bookworm", "amd64");
        let err = u.resolve(&["python3".into()], &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "python3.11 3.11.2-6 needs libc6 (>= 2.99), which bookworm/amd64 cannot satisfy"
        );
    }

    /// What `exclude` may drop (a tool, and what only it pulls in) and what it may not (a
    /// Pre-Depends, a shared library), and names it cannot mean.
    #[test]
    fn exclusions_cut_tools_and_refuse_what_remains_needs() {
        let index = INDEX.replace(
            "Depends: awk-provider\n",
            "Depends: awk-provider, dpkg\n",
        ) + "\nPackage: dpkg\nVersion: 1.21\nArchitecture: amd64\nSection: admin\nDepends: tar\nFilename: p/dpkg.deb\nSize: 1\nSHA256: 09\n\nPackage: tar\nVersion: 1.34\nArchitecture: amd64\nFilename: p/tar.deb\nSize: 1\nSHA256: 10\n";
        let u = Universe::new(parse_packages(&index, "amd64"), "bookworm", "amd64");
        let all = u.resolve(&["python3".into()], &[]).unwrap();
        assert!(all.iter().any(|p| p.name == "tar"));
        let slim = u.resolve(&["python3".into()], &["dpkg".into()]).unwrap();
        assert!(!slim.iter().any(|p| p.name == "dpkg" || p.name == "tar"));
        assert_eq!(slim.len(), all.len() - 2);
        // Naming what only an excluded package pulls in too is no typo (the README's example).
        let both = u
            .resolve(&["python3".into()], &["dpkg".into(), "tar".into()])
            .unwrap();
        assert_eq!(both.len(), slim.len());

        let err = |exclude: &str| {
            u.resolve(&["python3".into()], &[exclude.into()])
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err("libc6"),
            "exclude = [\"libc6\"] would break python3.11 3.11.2-6, which Pre-Depends on it"
        );
        assert_eq!(
            err("libpython3.11-stdlib"),
            "exclude = [\"libpython3.11-stdlib\"] would break libpython3-stdlib 3.11.2-1, which Depends on it, a shared library"
        );
        assert_eq!(
            err("dkpg"),
            "exclude = [\"dkpg\"]: nothing in the base depends on it"
        );
        assert_eq!(
            err("python3"),
            "exclude = [\"python3\"]: it is in `packages`"
        );
    }

    /// Indexes of several archives: the newest version of a package wins, whichever has it.
    #[test]
    fn the_newest_version_across_archives_wins() {
        let mut entries = parse_packages(INDEX, "amd64");
        let mut security = parse_packages(
            &INDEX.replace("Version: 3.11.2-6\n", "Version: 3.11.2-6+deb12u9\n"),
            "amd64",
        );
        security.retain(|e| e.name == "python3.11");
        security[0].archive = "bookworm-security".into();
        entries.extend(security);
        let u = Universe::new(entries, "bookworm", "amd64");
        let closure = u.resolve(&["python3".into()], &[]).unwrap();
        let python = closure.iter().find(|p| p.name == "python3.11").unwrap();
        assert_eq!(python.version, "3.11.2-6+deb12u9");
        assert_eq!(python.archive, "bookworm-security");
    }
}
