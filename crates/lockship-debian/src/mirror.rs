//! Which Debian mirror to use: the configured one, else the host's own apt sources (deb822
//! `.sources` files or one-line `sources.list`), so air-gapped and corporate mirrors just work.

use std::path::Path;

/// The first `deb` URI in the host's apt configuration under `root` (normally `/`), preferring
/// one that lists `suite`, and never a security archive.
pub fn from_apt_sources(root: &Path, suite: &str) -> Option<String> {
    let mut found = apt_sources(root);
    found.retain(|(_, suites)| {
        !suites
            .iter()
            .any(|s| s.ends_with("-security") || s.contains("/updates"))
    });
    found
        .iter()
        .find(|(_, suites)| suites.iter().any(|s| s == suite))
        .or(found.first())
        .map(|(uri, _)| uri.trim_end_matches('/').to_string())
}

/// Where the host's apt sources under `root` say each of `suite`, `suite-updates` and
/// `suite-security` is: (archive, URI) for those listed, the first URI of each, as apt reads
/// its files (`sources.list.d/` in name order, then `sources.list`).
pub fn archives_from_apt_sources(root: &Path, suite: &str) -> Vec<(String, String)> {
    let sources = apt_sources(root);
    [
        suite.to_string(),
        format!("{suite}-updates"),
        format!("{suite}-security"),
    ]
    .into_iter()
    .filter_map(|archive| {
        let (uri, _) = sources
            .iter()
            .find(|(_, suites)| suites.contains(&archive))?;
        Some((archive, uri.trim_end_matches('/').to_string()))
    })
    .collect()
}

/// Every `deb` source of the host: (URI, suites), deb822 `.sources` and one-line `.list`
/// files alike.
fn apt_sources(root: &Path) -> Vec<(String, Vec<String>)> {
    let mut found: Vec<(String, Vec<String>)> = Vec::new();
    let dir = root.join("etc/apt/sources.list.d");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        if file.extension().is_some_and(|e| e == "sources") {
            for (fields, _) in super::control::stanzas(&text) {
                let get = |k: &str| {
                    fields
                        .iter()
                        .find(|(f, _)| f.eq_ignore_ascii_case(k))
                        .map(|(_, v)| v.clone())
                };
                if !get("Types")
                    .unwrap_or_default()
                    .split_whitespace()
                    .any(|t| t == "deb")
                {
                    continue;
                }
                let suites: Vec<String> = get("Suites")
                    .unwrap_or_default()
                    .split_whitespace()
                    .map(String::from)
                    .collect();
                for uri in get("URIs").unwrap_or_default().split_whitespace() {
                    found.push((uri.to_string(), suites.clone()));
                }
            }
        } else if file.extension().is_some_and(|e| e == "list") {
            found.extend(one_line_sources(&text));
        }
    }
    if let Ok(text) = std::fs::read_to_string(root.join("etc/apt/sources.list")) {
        found.extend(one_line_sources(&text));
    }
    found
}

fn one_line_sources(text: &str) -> Vec<(String, Vec<String>)> {
    text.lines()
        .filter_map(|line| {
            let line = line.split('#').next()?.trim();
            let rest = line.strip_prefix("deb ")?.trim();
            // Skip `[option=value …]`.
            let rest = match rest.strip_prefix('[') {
                Some(r) => r.split_once(']')?.1.trim(),
                None => rest,
            };
            let mut words = rest.split_whitespace();
            let uri = words.next()?.to_string();
            let suite = words.next()?.to_string();
            Some((uri, vec![suite]))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_deb822_and_one_line_sources() {
        let root = tempfile::tempdir().unwrap();
        let d = root.path().join("etc/apt/sources.list.d");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("debian.sources"),
            "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n\nTypes: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\nComponents: main\n",
        )
        .unwrap();
        assert_eq!(
            from_apt_sources(root.path(), "bookworm").as_deref(),
            Some("http://mirror.example/debian")
        );
        assert_eq!(
            archives_from_apt_sources(root.path(), "bookworm"),
            [
                (
                    "bookworm".to_string(),
                    "http://mirror.example/debian".to_string()
                ),
                (
                    "bookworm-updates".into(),
                    "http://mirror.example/debian".into()
                ),
                (
                    "bookworm-security".into(),
                    "http://mirror.example/debian-security".into()
                ),
            ]
        );
        assert!(archives_from_apt_sources(root.path(), "trixie").is_empty());
        std::fs::remove_file(d.join("debian.sources")).unwrap();
        std::fs::write(
            root.path().join("etc/apt/sources.list"),
            "# x\ndeb [arch=amd64] http://other.example/debian trixie main\n",
        )
        .unwrap();
        assert_eq!(
            from_apt_sources(root.path(), "bookworm").as_deref(),
            Some("http://other.example/debian")
        );
    }
}
