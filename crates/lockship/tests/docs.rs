//! The generated pages of docs/ are current: `commands.md` (every command's help, from the
//! CLI itself) and `errors.md` (every error message lockship's crates can print, read from
//! their sources, with the hint that goes with it where there is one). A stale page fails;
//! `LOCKSHIP_UPDATE_DOCS=1 cargo test -p lockship --test docs` rewrites it.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

fn check(page: &str, rendered: &str) {
    let path = support::repo_root().join("docs").join(page);
    if std::env::var_os("LOCKSHIP_UPDATE_DOCS").is_some() {
        std::fs::write(&path, rendered).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == rendered,
        "docs/{page} is stale: run LOCKSHIP_UPDATE_DOCS=1 cargo test -p lockship --test docs"
    );
}

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_lockship"))
        .args(args)
        .arg("--help")
        .env("COLUMNS", "100")
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn commands_page_is_current() {
    let mut page = String::from(
        "<!-- Generated from the CLI by crates/lockship/tests/docs.rs; a test fails when it is stale. -->\n\n# Commands\n\nEvery command and flag, as `lockship COMMAND --help` prints them. Images are named as a registry reference, `oci:DIR[:TAG|@DIGEST]` (an OCI layout) or `docker:FILE` (a `docker save` or `lockship build --output docker:FILE` tarball).\n",
    );
    page.push_str(&format!("\n## `lockship`\n\n```\n{}```\n", help(&[])));
    let commands = [
        vec!["build"],
        vec!["test"],
        vec!["lock"],
        vec!["inspect"],
        vec!["diff"],
        vec!["sbom"],
        vec!["push"],
        vec!["init"],
        vec!["cache", "info"],
        vec!["cache", "prune"],
    ];
    for command in commands {
        page.push_str(&format!(
            "\n## `lockship {}`\n\n```\n{}```\n",
            command.join(" "),
            help(&command)
        ));
    }
    check("commands.md", &page);
}

/// The text of a Rust string literal whose opening quote was just before `rest`: up to the
/// first unescaped quote, escapes undone (a line continuation with the next line's indent),
/// format braces shown once.
fn string_literal(rest: &str) -> String {
    let mut out = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => break,
            '\\' => match chars.next() {
                Some('n') => out.push(' '),
                Some('\n') => {
                    while chars.peek().is_some_and(|c| c.is_whitespace()) {
                        chars.next();
                    }
                }
                Some(other) => out.push(other),
                None => break,
            },
            c => out.push(c),
        }
    }
    out.replace("{{", "{").replace("}}", "}")
}

/// The string literals of some Rust code, in order: each from an opening quote to its closing
/// one, never from a closing quote to the next opening one.
fn string_literals(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(open) = rest.find('"') {
        let after = &rest[open + 1..];
        let mut escaped = false;
        let close = after.char_indices().find(|&(_, c)| {
            let closes = c == '"' && !escaped;
            escaped = c == '\\' && !escaped;
            closes
        });
        let Some((close, _)) = close else { break };
        found.push(string_literal(after));
        rest = &after[close + 1..];
    }
    found
}

/// One error message found in the sources.
struct Found {
    file: String,
    item: String,
    message: String,
    about: String,
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The `#[error("…")]` messages of a source file, with the enum and variant they belong to and
/// the doc comment above them.
fn errors_in(path: &Path, root: &Path) -> Vec<Found> {
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    let mut current_enum = String::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim();
        if let Some(rest) = line
            .strip_prefix("pub enum ")
            .or(line.strip_prefix("enum "))
            .or(line.strip_prefix("pub(crate) enum "))
        {
            current_enum = rest
                .split(|c: char| !c.is_alphanumeric() && c != '_')
                .next()
                .unwrap_or("")
                .to_string();
        }
        if line.starts_with("pub struct ") || line.starts_with("struct ") {
            // A struct carrying #[error] names itself after the attribute.
            current_enum.clear();
        }
        if line.starts_with("#[error(") && !line.starts_with("#[error(transparent)") {
            // The attribute may span lines: up to the closing `)]`.
            let mut attr = line.to_string();
            let mut j = i;
            while !attr.trim_end().ends_with(")]") && j + 1 < lines.len() {
                j += 1;
                attr.push(' ');
                attr.push_str(lines[j].trim());
            }
            let message = attr
                .split_once('"')
                .map(|(_, rest)| string_literal(rest))
                .unwrap_or_default();
            // The doc comment above the attribute.
            let mut about = Vec::new();
            let mut k = i;
            while k > 0 && lines[k - 1].trim().starts_with("///") {
                k -= 1;
                about.insert(0, lines[k].trim().trim_start_matches("///").trim());
            }
            // The variant (or struct) the attribute is on.
            let mut name = String::new();
            for next in &lines[j + 1..] {
                let t = next.trim();
                if t.starts_with("#[") || t.starts_with("///") {
                    continue;
                }
                let t = t
                    .trim_start_matches("pub struct ")
                    .trim_start_matches("struct ");
                name = t
                    .split(|c: char| !c.is_alphanumeric() && c != '_')
                    .next()
                    .unwrap_or("")
                    .to_string();
                break;
            }
            let item = if current_enum.is_empty() {
                name
            } else {
                format!("{current_enum}::{name}")
            };
            found.push(Found {
                file: path.strip_prefix(root).unwrap().display().to_string(),
                item,
                message,
                about: about.join(" "),
            });
            i = j;
        }
        i += 1;
    }
    found
}

/// The hints of the sources' `fn hint` match arms: `Enum::Variant … => Some("…")` gives that
/// variant the first string of its arm (an arm for several variants gives each the same).
fn hints_in(files: &[PathBuf]) -> std::collections::BTreeMap<String, String> {
    let mut hints = std::collections::BTreeMap::new();
    for path in files {
        let text = std::fs::read_to_string(path).unwrap();
        let mut rest = text.as_str();
        while let Some(arrow) = rest.find("=> ") {
            let (head, tail) = rest.split_at(arrow);
            // The arm's patterns: back to the previous `,`, `{` or `}` (a block arm's end)
            // that ends a line.
            let block_end = head
                .match_indices("}\n")
                .map(|(i, _)| i)
                .filter(|&i| {
                    head[..i]
                        .rsplit('\n')
                        .next()
                        .is_some_and(|l| l.trim().is_empty())
                })
                .last();
            let start = [head.rfind(",\n"), head.rfind("{\n"), block_end]
                .into_iter()
                .flatten()
                .max()
                .map_or(0, |i| i + 2);
            let patterns = &head[start..];
            // The arm's body: a block arm (`=> {`) up to the `}` at the arm's indent, else up
            // to the first line ending in `,` at this depth (good enough). A block arm's end is
            // not that `,`: it would take in the next arm's patterns and strings.
            let indent = patterns.len() - patterns.trim_start_matches(' ').len();
            let body_end = if tail.starts_with("=> {\n") {
                tail.find(&format!("\n{}}}", " ".repeat(indent)))
            } else {
                tail.find("),\n").or(tail.find(",\n"))
            }
            .unwrap_or(tail.len());
            let body = &tail[..body_end];
            // The longest string of the arm: the hint's sentence, not a word it tests for.
            let hint = string_literals(body)
                .into_iter()
                .filter(|h| h.contains(' '))
                .max_by_key(|h| h.len());
            if let (Some(hint), true) = (hint, body.contains("Some(")) {
                for pattern in patterns.split('|') {
                    let name: String = pattern
                        .trim()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                        .collect();
                    if name.contains("::") {
                        hints.entry(name).or_insert_with(|| hint.clone());
                    }
                }
            }
            rest = &tail[3..];
        }
    }
    hints
}

#[test]
fn errors_page_is_current() {
    let root = support::repo_root();
    let mut files = Vec::new();
    rust_files(&root.join("crates"), &mut files);
    let mut page = String::from(
        "<!-- Generated from the sources by crates/lockship/tests/docs.rs; a test fails when it is stale. -->\n\n# Every error message\n\nEach message lockship's crates can print (`{…}` is filled in: the file, package, URL or field), where it comes from, and what its type says about it. `error:` lines are these; the `hint:` line that follows, when there is one, says what to do ([troubleshooting](troubleshooting.md) explains the common ones).\n",
    );
    let hints = hints_in(&files);
    let mut count = 0;
    let mut hinted = 0;
    let mut last_file = String::new();
    for path in files {
        if path.components().any(|c| c.as_os_str() == "tests") {
            continue;
        }
        for e in errors_in(&path, &root) {
            if e.file != last_file {
                page.push_str(&format!(
                    "\n## `{}`\n\n| error | message | about |\n| --- | --- | --- |\n",
                    e.file
                ));
                last_file = e.file.clone();
            }
            let what = match hints.get(&e.item) {
                Some(h) => {
                    hinted += 1;
                    h.clone()
                }
                None if !e.about.is_empty() => e.about.clone(),
                // No hint line: the message names what to fix.
                None => "—".into(),
            };
            page.push_str(&format!(
                "| `{}` | {} | {} |\n",
                e.item,
                e.message.replace('|', "\\|"),
                what.replace('|', "\\|")
            ));
            count += 1;
        }
    }
    assert!(
        count > 100,
        "only {count} messages found: the scanner is broken"
    );
    assert!(
        hinted > 30,
        "only {hinted} hints found: the hint scanner is broken"
    );
    check("errors.md", &page);
}

#[test]
fn ci_recipes_are_valid_yaml_of_their_services_shape() {
    let recipes = std::fs::read_to_string(support::repo_root().join("docs/recipes.md")).unwrap();
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in recipes.lines() {
        match (&mut current, line.trim_start()) {
            (None, l) if l.starts_with("```yaml") => current = Some(String::new()),
            (Some(_), "```") => blocks.push(current.take().unwrap()),
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            _ => {}
        }
    }
    assert_eq!(
        blocks.len(),
        2,
        "one GitHub Actions and one GitLab CI recipe"
    );
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<PathBuf> = blocks
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let path = dir.path().join(format!("recipe{i}.yml"));
            std::fs::write(&path, b).unwrap();
            path
        })
        .collect();
    // GitHub: jobs whose steps each `run` or `uses`; GitLab: jobs with a `script` (or that
    // extend one that has it) and a stage.
    let check = r#"
import sys, yaml
github, gitlab = (yaml.safe_load(open(f)) for f in sys.argv[1:3])
steps = github["jobs"]["image"]["steps"]
assert all(("run" in s) != ("uses" in s) for s in steps), steps
assert github["on"] is not None if "on" in github else github[True] is not None
jobs = {k: v for k, v in gitlab.items() if isinstance(v, dict) and not k.startswith(".") and k != "variables"}
assert jobs, gitlab
for name, job in jobs.items():
    assert "script" in job, name
    assert "stage" in job, name
print(len(steps), len(jobs))
"#;
    let out = Command::new("uv")
        .args([
            "run",
            "--quiet",
            "--no-project",
            "--with",
            "pyyaml==6.*",
            "python",
            "-c",
            check,
        ])
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
