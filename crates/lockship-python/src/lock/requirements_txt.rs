//! Reads a requirements.txt in the form pip-tools and `uv pip compile --generate-hashes` write:
//! every requirement pinned with `==` and followed by `--hash=sha256:…` options.

use std::path::Path;

use uv_pep508::MarkerEnvironment;

use super::{normalize_name, Artifacts, LockError, LockedPackage};
use lockship_oci::digest::Digest;

/// Options a requirements file may carry that lockship acts on.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FileOptions {
    pub index_url: Option<String>,
}

/// Joins `\` continuations and strips comments, keeping each logical line's first line number.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut start = 0;
    for (i, raw) in text.lines().enumerate() {
        if current.is_empty() {
            start = i + 1;
        }
        // A comment starts at `#` at line start or after whitespace (URL fragments keep theirs).
        let mut line = raw;
        if let Some(pos) = raw
            .char_indices()
            .find(|&(p, c)| c == '#' && (p == 0 || raw[..p].ends_with(char::is_whitespace)))
            .map(|(p, _)| p)
        {
            line = &raw[..pos];
        }
        let trimmed = line.trim_end();
        if let Some(body) = trimmed.strip_suffix('\\') {
            current.push_str(body);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        let done = std::mem::take(&mut current);
        if !done.trim().is_empty() {
            out.push((start, done.trim().to_string()));
        }
    }
    if !current.trim().is_empty() {
        out.push((start, current.trim().to_string()));
    }
    out
}

/// The file-level options (`--index-url`) of a requirements file.
pub fn options(text: &str) -> FileOptions {
    let mut opts = FileOptions::default();
    for (_, line) in logical_lines(text) {
        let mut words = line.split_whitespace();
        while let Some(word) = words.next() {
            let value = if let Some(v) = word.strip_prefix("--index-url=") {
                Some(v.to_string())
            } else if word == "--index-url" || word == "-i" {
                words.next().map(String::from)
            } else {
                None
            };
            if value.is_some() {
                opts.index_url = value;
            }
        }
    }
    opts
}

/// Parses the pinned requirements whose markers hold for `env`.
pub fn parse(
    path: &Path,
    text: &str,
    env: &MarkerEnvironment,
) -> Result<Vec<LockedPackage>, LockError> {
    let mut packages = Vec::new();
    for (number, line) in logical_lines(text) {
        let invalid = |message: String| LockError::Invalid {
            path: path.to_path_buf(),
            message: format!("line {number}: {message}"),
        };
        if line.starts_with('-') {
            // File options (--index-url, --extra-index-url, --find-links, …) pin nothing.
            if line.starts_with("-e") || line.starts_with("--editable") {
                return Err(invalid(
                    "editable requirements cannot go into an image".into(),
                ));
            }
            if line.starts_with("-r")
                || line.starts_with("-c")
                || line.starts_with("--requirement")
                || line.starts_with("--constraint")
            {
                return Err(invalid(
                    "nested requirement files are not supported; compile to one file".into(),
                ));
            }
            continue;
        }
        let mut hashes = Vec::new();
        let mut requirement = String::new();
        for word in line.split_whitespace() {
            if let Some(h) = word.strip_prefix("--hash=") {
                hashes.push(
                    Digest::parse(h)
                        .ok_or_else(|| invalid(format!("unsupported hash `{h}` (need sha256)")))?,
                );
            } else if word.starts_with("--") {
                // Per-requirement options other than --hash do not change what gets installed.
            } else {
                requirement.push_str(word);
                requirement.push(' ');
            }
        }
        let (spec, marker) = match requirement.split_once(';') {
            Some((s, m)) => (s.trim(), Some(m.trim())),
            None => (requirement.trim(), None),
        };
        if let Some(marker) = marker {
            let tree = super::parse_marker(marker)
                .map_err(|e| invalid(format!("bad marker `{marker}`: {e}")))?;
            if !tree.evaluate(env, &[]) {
                continue;
            }
        }
        if spec.contains(" @ ") || spec.contains("://") {
            return Err(invalid(format!(
                "`{spec}` is a direct URL requirement, which lockship cannot install yet"
            )));
        }
        let Some((name, version)) = spec.split_once("==") else {
            return Err(invalid(format!("`{spec}` is not pinned with ==")));
        };
        let name = name.split('[').next().unwrap_or(name).trim();
        let version = version.trim();
        if name.is_empty() || version.is_empty() || version.contains(['<', '>', ',', '*', '=']) {
            return Err(invalid(format!(
                "`{spec}` is not pinned to one exact version"
            )));
        }
        packages.push(LockedPackage {
            name: normalize_name(name),
            version: version.to_string(),
            artifacts: if hashes.is_empty() {
                Artifacts::Unhashed { index: None }
            } else {
                Artifacts::FromIndex {
                    hashes,
                    index: None,
                }
            },
        });
    }
    Ok(packages)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> MarkerEnvironment {
        crate::target::bookworm().marker_env()
    }

    const H1: &str = "sha256:ae74fb96c20a0277a1d615f1e4d73c8414f5a98db8b799a7931d1582f3390c28";
    const H2: &str = "sha256:ca9853ad459e787e2192211578cc907e7594e294c7ccc834310722b41b9ca6de";

    #[test]
    fn parses_pip_compile_output() {
        let text = format!(
            "# This file was autogenerated by uv\n--index-url https://index.example/simple\nclick==8.1.7 \\\n    --hash={H1} \\\n    --hash={H2}\n    # via app\ncolorama==0.4.6 ; sys_platform == 'win32' \\\n    --hash={H1}\nRich[jupyter]==13.0.0 --hash={H2}\n"
        );
        let pkgs = parse(Path::new("requirements.txt"), &text, &env()).unwrap();
        assert_eq!(pkgs.len(), 2);
        assert_eq!(pkgs[0].name, "click");
        assert_eq!(
            pkgs[0].artifacts,
            Artifacts::FromIndex {
                hashes: vec![Digest::parse(H1).unwrap(), Digest::parse(H2).unwrap()],
                index: None,
            }
        );
        assert_eq!(pkgs[1].name, "rich");
        assert_eq!(
            options(&text).index_url.as_deref(),
            Some("https://index.example/simple")
        );
    }

    #[test]
    fn unpinned_or_unhashed_lines_name_the_line() {
        let err = parse(Path::new("r.txt"), "click>=8\n", &env()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "r.txt: line 1: `click>=8` is not pinned with =="
        );
        // Pinned but unhashed: marked, for the project to refuse or allow.
        let pkgs = parse(Path::new("r.txt"), "\nclick==8.1.7\n", &env()).unwrap();
        assert_eq!(crate::lock::unhashed(&pkgs), ["click==8.1.7"]);
    }
}
