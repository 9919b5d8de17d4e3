//! Debian control data (deb822 stanzas): the `Packages` index of a suite and the dependency
//! fields in it (`Depends`, `Pre-Depends`, `Provides`).

use super::version::Relation;

/// One `pkg (op version)` term of a dependency.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dep {
    pub name: String,
    pub constraint: Option<(Relation, String)>,
}

/// A package as the `Packages` index describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackageEntry {
    pub name: String,
    pub version: String,
    pub architecture: String,
    /// Pre-Depends, then Depends: each clause is a list of alternatives.
    pub depends: Vec<Vec<Dep>>,
    /// How many clauses of `depends` are Pre-Depends (needed before it can even be unpacked).
    pub pre_depends: usize,
    /// `Section` (`libs` for shared libraries).
    pub section: Option<String>,
    /// The archive its index came from (`bookworm-security`); set by the reader of several.
    pub archive: String,
    pub provides: Vec<Dep>,
    /// Path below the mirror root (`pool/main/…`).
    pub filename: String,
    pub sha256: String,
    pub size: u64,
    /// The source package, when it differs from the binary package's name.
    pub source: Option<String>,
    /// The whole stanza, written to `/var/lib/dpkg/status.d/` for image scanners.
    pub stanza: String,
}

/// Iterates the stanzas of a deb822 text as (field, value) lists; continuation lines are
/// joined to their field's value with newlines.
pub fn stanzas(text: &str) -> impl Iterator<Item = (Vec<(&str, String)>, &str)> {
    text.split("\n\n")
        .filter(|s| !s.trim().is_empty())
        .map(|stanza| {
            let mut fields: Vec<(&str, String)> = Vec::new();
            for line in stanza.lines() {
                if line.starts_with(' ') || line.starts_with('\t') {
                    if let Some((_, value)) = fields.last_mut() {
                        value.push('\n');
                        value.push_str(line.trim());
                    }
                } else if let Some((key, value)) = line.split_once(':') {
                    fields.push((key.trim(), value.trim().to_string()));
                }
            }
            (fields, stanza.trim_matches('\n'))
        })
}

/// Parses a `Depends`-style field: `a (>= 1) | b, c:any`.
pub fn parse_relations(field: &str) -> Vec<Vec<Dep>> {
    field
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|clause| clause.split('|').filter_map(parse_dep).collect())
        .collect()
}

fn parse_dep(term: &str) -> Option<Dep> {
    let term = term.trim();
    // Architecture restrictions `[amd64]` and build profiles `<!nocheck>` only appear in source
    // packages; drop them if present. They follow the version constraint, whose `<<` and `<=`
    // must not be taken for a profile.
    let term = match term.find('(') {
        Some(open) => match term[open..].find(')') {
            Some(close) => &term[..open + close + 1],
            None => term,
        },
        None => term.split(['[', '<']).next().unwrap_or(term),
    }
    .trim();
    let (name, constraint) = match term.split_once('(') {
        Some((name, rest)) => {
            let inner = rest.trim_end_matches(')').trim();
            let op_len = inner
                .find(|c: char| !"<>=".contains(c))
                .unwrap_or(inner.len());
            let rel = Relation::parse(&inner[..op_len])?;
            (name.trim(), Some((rel, inner[op_len..].trim().to_string())))
        }
        None => (term, None),
    };
    let name = name.split(':').next().unwrap_or(name).trim();
    (!name.is_empty()).then(|| Dep {
        name: name.to_string(),
        constraint,
    })
}

/// Parses a `Packages` index, keeping entries of `arch` and `all`.
pub fn parse_packages(text: &str, arch: &str) -> Vec<PackageEntry> {
    stanzas(text)
        .filter_map(|(fields, stanza)| {
            let get = |k: &str| {
                fields
                    .iter()
                    .find(|(f, _)| *f == k)
                    .map(|(_, v)| v.as_str())
            };
            let architecture = get("Architecture")?;
            if architecture != arch && architecture != "all" {
                return None;
            }
            let mut depends = parse_relations(get("Pre-Depends").unwrap_or(""));
            let pre_depends = depends.len();
            depends.extend(parse_relations(get("Depends").unwrap_or("")));
            Some(PackageEntry {
                pre_depends,
                section: get("Section").map(String::from),
                archive: String::new(),
                name: get("Package")?.to_string(),
                version: get("Version")?.to_string(),
                architecture: architecture.to_string(),
                depends,
                provides: parse_relations(get("Provides").unwrap_or(""))
                    .into_iter()
                    .flatten()
                    .collect(),
                filename: get("Filename")?.to_string(),
                sha256: get("SHA256")?.to_string(),
                size: get("Size")?.parse().ok()?,
                source: get("Source").map(|s| s.split_whitespace().next().unwrap_or(s).to_string()),
                stanza: stanza.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_relations() {
        let deps = parse_relations(
            "libc6 (>= 2.34), python3.11-minimal (= 3.11.2-6) | foo, bar:any, baz [amd64]",
        );
        assert_eq!(deps.len(), 4);
        assert_eq!(deps[0][0].constraint, Some((Relation::Ge, "2.34".into())));
        assert_eq!(deps[1].len(), 2);
        assert_eq!(deps[1][1].name, "foo");
        assert_eq!(deps[2][0].name, "bar");
        assert_eq!(deps[3][0].name, "baz");
        // `<<` and `<=` are relations, not build profiles (python3-distutils in bookworm).
        let deps = parse_relations(
            "python3:any (>= 3.10.8-0~), python3:any (<< 3.12), x (<= 2) <!nocheck>, y <!cross>",
        );
        assert_eq!(deps[1][0].constraint, Some((Relation::Lt, "3.12".into())));
        assert_eq!(deps[2][0].constraint, Some((Relation::Le, "2".into())));
        assert_eq!(deps[3][0].name, "y");
        assert!(deps.iter().all(|clause| clause.len() == 1));
    }

    #[test]
    fn parses_packages_for_one_arch() {
        let text = "Package: a\nVersion: 1.0\nArchitecture: amd64\nPre-Depends: c\nDepends: b (>= 2)\nProvides: virt (= 1)\nFilename: pool/main/a/a_1.0_amd64.deb\nSize: 10\nSHA256: ab\nDescription: first\n more text\n\nPackage: a\nVersion: 1.0\nArchitecture: arm64\nFilename: x\nSize: 1\nSHA256: cd\n\nPackage: d\nVersion: 2\nArchitecture: all\nFilename: pool/d.deb\nSize: 3\nSHA256: ef\n";
        let pkgs = parse_packages(text, "amd64");
        assert_eq!(pkgs.len(), 2);
        assert_eq!(pkgs[0].depends.len(), 2);
        assert_eq!(pkgs[0].depends[0][0].name, "c");
        assert_eq!(pkgs[0].provides[0].name, "virt");
        assert!(pkgs[0].stanza.ends_with("more text"));
        assert_eq!(pkgs[1].architecture, "all");
    }
}
