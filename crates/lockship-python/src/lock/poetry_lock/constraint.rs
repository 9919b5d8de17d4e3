//! Poetry's version constraints (`^1.2`, `~1.2`, `>=1,<2 || 3.*`, `*`), as poetry-core's
//! `parse_constraint` reads them, turned into PEP 440 specifiers to check one version.

use std::str::FromStr;

use uv_pep440::{Operator, Version, VersionSpecifier};

/// An OR of ANDs of specifiers; no alternatives at all means any version.
#[derive(Clone, Debug)]
pub(super) struct Constraint {
    any_of: Vec<Vec<VersionSpecifier>>,
}

impl Constraint {
    /// Reads a constraint; None when poetry-core would not read it either.
    pub(super) fn parse(text: &str) -> Option<Constraint> {
        let text = text.trim();
        if text == "*" {
            return Some(Constraint { any_of: Vec::new() });
        }
        let mut any_of = Vec::new();
        // poetry-core splits alternatives on `||` or `|`.
        for alternative in text.split('|').map(str::trim).filter(|a| !a.is_empty()) {
            let alternative = alternative.trim_end_matches(',').trim_end();
            let mut all_of = Vec::new();
            for single in and_parts(alternative) {
                all_of.extend(single_constraint(&single)?);
            }
            any_of.push(all_of);
        }
        if any_of.is_empty() {
            return None;
        }
        Some(Constraint { any_of })
    }

    pub(super) fn allows(&self, version: &Version) -> bool {
        self.any_of.is_empty()
            || self
                .any_of
                .iter()
                .any(|all| all.iter().all(|s| s.contains(version)))
    }

    /// A `python = "…"` constraint of a dependency, as the marker poetry-core turns it into
    /// (`create_nested_marker`): the full Python version is compared, except that `==3.11`
    /// becomes `python_version == "3.11"`, which 3.11.2 satisfies.
    pub(super) fn allows_python(&self, full: &Version, short: &Version) -> bool {
        self.any_of.is_empty()
            || self.any_of.iter().any(|all| {
                all.iter().all(|s| {
                    if *s.operator() == Operator::Equal && s.version().release().len() < 3 {
                        s.contains(short)
                    } else {
                        s.contains(full)
                    }
                })
            })
    }
}

/// Splits `>=1.2, <2` or `>= 1.2 <2` into its parts: on commas and on spaces not following an
/// operator (poetry-core's `(?<![\^~=>< ,]) *(?<!-)[, ](?!-)` split).
fn and_parts(alternative: &str) -> Vec<String> {
    let mut parts: Vec<String> = Vec::new();
    let mut pending_operator = false;
    for word in alternative
        .split([',', ' ', '\t'])
        .filter(|w| !w.is_empty())
    {
        if pending_operator {
            if let Some(last) = parts.last_mut() {
                last.push_str(word);
            }
        } else {
            parts.push(word.to_string());
        }
        pending_operator = word.chars().all(|c| "^~=<>!".contains(c));
    }
    parts
}

/// One constraint, as PEP 440 specifiers (empty: any version).
fn single_constraint(text: &str) -> Option<Vec<VersionSpecifier>> {
    let spec = |s: String| VersionSpecifier::from_str(&s).ok();
    let stripped = text.trim_start_matches(['v', 'V']);
    if !stripped.is_empty() && stripped.split('.').all(|p| matches!(p, "x" | "X" | "*")) {
        return Some(Vec::new());
    }
    if let Some(v) = text.strip_prefix("~=") {
        let version = Version::from_str(v.trim()).ok()?;
        if version.release().len() >= 2 {
            return Some(vec![spec(format!("~={version}"))?]);
        }
        return Some(vec![
            spec(format!(">={version}"))?,
            spec(format!("<{}", bump(&version, 0)?))?,
        ]);
    }
    if let Some(v) = text.strip_prefix('~') {
        // `~1.2.3` allows 1.2.*; `~1` allows 1.*.
        let version = Version::from_str(v.trim()).ok()?;
        let part = if version.release().len() == 1 { 0 } else { 1 };
        return Some(vec![
            spec(format!(">={version}"))?,
            spec(format!("<{}", bump(&version, part)?))?,
        ]);
    }
    if let Some(v) = text.strip_prefix('^') {
        // Up to the next version that changes the first non-zero part.
        let version = Version::from_str(v.trim()).ok()?;
        let release = version.release();
        let part = match (release.first(), release.get(1), release.get(2)) {
            (Some(&major), minor, _) if major > 0 || minor.is_none() => 0,
            (_, Some(&minor), patch) if minor > 0 || patch.is_none() => 1,
            _ => 2,
        };
        return Some(vec![
            spec(format!(">={version}"))?,
            spec(format!("<{}", bump(&version, part)?))?,
        ]);
    }
    let (op, version) = ["<>", "!=", ">=", "<=", "==", ">", "<", "="]
        .iter()
        .find_map(|op| text.strip_prefix(op).map(|rest| (*op, rest.trim())))
        .unwrap_or(("==", text));
    let op = match op {
        "<>" => "!=",
        "=" => "==",
        op => op,
    };
    let version = version.trim_start_matches(['v', 'V']);
    match version.strip_suffix(".*") {
        Some(_) if op == "==" || op == "!=" => Some(vec![spec(format!("{op}{version}"))?]),
        // poetry-core ignores a wildcard after an ordering operator.
        Some(base) => Some(vec![spec(format!("{op}{base}"))?]),
        None => Some(vec![spec(format!("{op}{version}"))?]),
    }
}

/// `version`'s release with part `index` incremented and the parts after it dropped (the
/// next major, minor or patch version: the exclusive upper bound of `^` and `~`).
fn bump(version: &Version, index: usize) -> Option<String> {
    let release = version.release();
    let mut parts: Vec<u64> = (0..=index)
        .map(|i| release.get(i).copied().unwrap_or(0))
        .collect();
    let last = parts.last_mut()?;
    *last = last.checked_add(1)?;
    let parts: Vec<String> = parts.iter().map(u64::to_string).collect();
    Some(match version.epoch() {
        0 => parts.join("."),
        epoch => format!("{epoch}!{}", parts.join(".")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(constraint: &str, version: &str) -> bool {
        Constraint::parse(constraint)
            .unwrap_or_else(|| panic!("{constraint} parses"))
            .allows(&Version::from_str(version).unwrap())
    }

    #[test]
    fn reads_poetry_constraints() {
        // Each checked against poetry-core 2.5: parse_constraint(c).allows(Version.parse(v)).
        for (constraint, version, expected) in [
            ("^2.31", "2.32.5", true),
            ("^2.31", "3.0", false),
            ("^0.2.3", "0.2.9", true),
            ("^0.2.3", "0.3.0", false),
            ("^0.0.3", "0.0.4", false),
            ("^0", "0.9", true),
            ("~1.2.3", "1.2.9", true),
            ("~1.2.3", "1.3.0", false),
            ("~1", "1.9", true),
            ("~1", "2.0", false),
            ("~=0.18", "0.19", true),
            ("~=0.18.1", "0.19", false),
            (">=1.5.6,<1.5.7 || >1.5.7", "1.5.7", false),
            (">=1.5.6,<1.5.7 || >1.5.7", "1.7.1", true),
            (">=1.5.6,!=1.5.7", "1.5.7", false),
            (">= 2, < 3", "2.5", true),
            (">=2 <3", "3.0", false),
            ("<2.1", "2.0.2", true),
            ("<2.1", "2.2.6", false),
            ("3.9.*", "3.9.18", true),
            ("!=3.0.*,>=2.7", "3.0.1", false),
            ("1.16.0", "1.16.0", true),
            ("==1.16", "1.16.0", true),
            ("*", "0.0.1", true),
            ("x", "7", true),
        ] {
            assert_eq!(
                allows(constraint, version),
                expected,
                "{constraint} {version}"
            );
        }
        assert!(Constraint::parse("not a version").is_none());
        assert!(Constraint::parse("").is_none());
    }

    #[test]
    fn python_constraints_compare_like_python_version_markers() {
        let full = Version::from_str("3.11.2").unwrap();
        let short = Version::from_str("3.11").unwrap();
        let python = |c: &str| Constraint::parse(c).unwrap().allows_python(&full, &short);
        // Checked against poetry-core 2.5's create_nested_marker("python_version", …) evaluated
        // on 3.11.2: `>3.11` is `python_full_version > "3.11.0"`, `3.11` is
        // `python_version == "3.11"`, `<=3.11` is `python_full_version <= "3.11.0"`.
        assert!(python(">3.11"));
        assert!(!python(">3.11.2"));
        assert!(python("3.11"));
        assert!(!python("3.11.1"));
        assert!(!python("<=3.11"));
        assert!(!python("<3.11"));
        assert!(python(">=3.10"));
        assert!(python("^3.9"));
        assert!(!python("~3.10"));
        assert!(python("!=3.10"));
    }
}
