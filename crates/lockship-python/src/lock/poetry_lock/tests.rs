//! Tests against trimmed copies of locks the real poetry wrote.
//!
//! Made on 2026-11-23 with poetry 1.8.5, 2.2.1 and 2.5.1, each in its own venv
//! (`python3 -m venv /tmp/venv-poetry18 && /tmp/venv-poetry18/bin/pip install poetry==1.8.5`,
//! likewise `poetry==2.2.1`, `poetry==2.5.1`). Each project's pyproject.toml is the one below
//! with `https://index.example/simple` standing for the simple index `pip config` names (source
//! `idx`, priority primary: poetry cannot lock here without it) and
//! `https://index.example/private/simple` for a pypiserver on 127.0.0.1 holding six 1.16.0.
//! Locked with `poetry lock --no-update` (1.8.5) or `poetry lock` (2.x); trimmed to one file per
//! package (certifi: two), without descriptions, with [package.extras] only where a dependency's
//! extra needs it; hosts replaced. Each lock's content-hash is that
//! of the edited pyproject.toml, as the poetry that wrote the lock computes it:
//! `Locker(Path("poetry.lock"), data)._get_content_hash()` with `data` the `tomllib` reading of
//! the text (1.8.5: its `["tool"]["poetry"]`).
//!
//! The expected packages are what `poetry install --dry-run --only main[,GROUP] [-E EXTRA]`
//! listed for each lock (Linux x86_64, CPython 3.11; Poetry 2.5.1 for the 2.0 locks too).

use super::*;
use std::borrow::Cow;

fn bookworm() -> MarkerEnvironment {
    crate::target::bookworm().marker_env()
}

fn select(extras: &[&str], groups: &[&str]) -> Selection {
    Selection {
        extras: extras.iter().map(|e| e.to_string()).collect(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

fn pick(
    lock: &str,
    pyproject: &str,
    selection: &Selection,
) -> Result<Vec<LockedPackage>, LockError> {
    parse(
        Path::new("poetry.lock"),
        lock,
        pyproject,
        &bookworm(),
        selection,
    )
}

/// `name==version` of what the target needs.
fn pins(lock: &str, pyproject: &str, extras: &[&str], groups: &[&str]) -> Vec<String> {
    pick(lock, pyproject, &select(extras, groups))
        .unwrap()
        .iter()
        .map(|p| format!("{}=={}", p.name, p.version))
        .collect()
}

fn error(lock: &str, pyproject: &str, extras: &[&str], groups: &[&str]) -> String {
    pick(lock, pyproject, &select(extras, groups))
        .unwrap_err()
        .to_string()
}

fn digest(hex: &str) -> Digest {
    Digest::from_hex(hex).unwrap()
}

#[test]
fn poetry2_lock_installs_by_its_recorded_groups_and_markers() {
    assert_eq!(
        pins(LOCK_2, PYPROJECT_2, &[], &[]),
        [
            "certifi==2026.10.18",
            "charset-normalizer==3.5.2",
            "click==8.5.1",
            "idna==3.20",
            "pysocks==1.7.1",
            "requests==2.34.2",
            "six==1.16.0",
            "urllib3==2.8.0",
        ]
    );
    // Extras by any spelling; docs includes lint (pyflakes); pywin32-ctypes is for Windows.
    assert_eq!(
        pins(
            LOCK_2,
            PYPROJECT_2,
            &["fast", "Attrs_Extra"],
            &["dev", "docs"]
        ),
        [
            "attrs==26.1.0",
            "certifi==2026.10.18",
            "charset-normalizer==3.5.2",
            "click==8.5.1",
            "idna==3.20",
            "iniconfig==2.3.1",
            "mdurl==0.1.2",
            "orjson==3.13.0",
            "pyflakes==4.0.3",
            "pysocks==1.7.1",
            "requests==2.34.2",
            "six==1.16.0",
            "urllib3==2.8.0",
        ]
    );
    assert_eq!(
        pins(LOCK_2, PYPROJECT_2, &["fast"], &["lint"]),
        [
            "certifi==2026.10.18",
            "charset-normalizer==3.5.2",
            "click==8.5.1",
            "idna==3.20",
            "orjson==3.13.0",
            "pyflakes==4.0.3",
            "pysocks==1.7.1",
            "requests==2.34.2",
            "six==1.16.0",
            "urllib3==2.8.0",
        ]
    );
}

#[test]
fn files_come_from_the_package_source() {
    let packages = pick(LOCK_2, PYPROJECT_2, &Selection::default()).unwrap();
    let by_name = |name: &str| packages.iter().find(|p| p.name == name).unwrap();
    assert_eq!(
        by_name("certifi").artifacts,
        Artifacts::FromIndex {
            hashes: vec![
                digest("73191c47aaa79da394e8fee2dbc2ec827432cab56311122c9e47abf79e390f62"),
                digest("b9995d97b64d0431a5af837d8ca8cd6238104d1f319f04bd93ea43124d6c861e"),
            ],
            index: Some("https://index.example/simple".into()),
        }
    );
    // six is pinned to the supplemental source.
    assert_eq!(
        by_name("six").artifacts,
        Artifacts::FromIndex {
            hashes: vec![digest(
                "8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254"
            )],
            index: Some("https://index.example/private/simple".into()),
        }
    );
    // A lock resolved from the default index names no source: the project's index applies.
    let packages = pick(LOCK_18BX, PYPROJECT_18BX, &Selection::default()).unwrap();
    assert!(packages.iter().all(|p| matches!(
        &p.artifacts,
        Artifacts::FromIndex { index: None, hashes } if hashes.len() == 1
    )));
}

#[test]
fn unknown_groups_and_extras_list_what_exists() {
    assert_eq!(
        error(LOCK_2, PYPROJECT_2, &[], &["test"]),
        "pyproject.toml: app2 has no dependency group `test` (it has: dev, docs, lint)"
    );
    assert_eq!(
        error(LOCK_2, PYPROJECT_2, &["slow"], &[]),
        "pyproject.toml: app2 has no extra `slow` (it has: attrs-extra, fast)"
    );
    assert_eq!(
        error(LOCK_18, PYPROJECT_18, &["fast"], &[]),
        "pyproject.toml: app18 has no extra `fast` (it has: attrs)"
    );
    // main is always there.
    assert_eq!(pins(LOCK_22, PYPROJECT_22, &[], &["main"]), ["idna==3.20"]);
}

#[test]
fn poetry18_lock_is_walked_from_the_project_dependencies() {
    // colorama is for Windows, tomli for Python < 3.11, attrs only with its extra, numpy's
    // constraint for Python >= 3.10 picks 2.2.6 of the two locked, requests[socks] brings
    // PySocks.
    assert_eq!(
        pins(LOCK_18, PYPROJECT_18, &[], &[]),
        [
            "certifi==2026.10.18",
            "charset-normalizer==3.5.2",
            "click==8.1.8",
            "idna==3.20",
            "numpy==2.2.6",
            "pysocks==1.7.1",
            "requests==2.32.5",
            "six==1.16.0",
            "urllib3==2.6.3",
        ]
    );
    assert_eq!(
        pins(LOCK_18, PYPROJECT_18, &["attrs"], &["dev", "docs"]),
        [
            "attrs==26.1.0",
            "certifi==2026.10.18",
            "charset-normalizer==3.5.2",
            "click==8.1.8",
            "idna==3.20",
            "iniconfig==2.1.0",
            "mdurl==0.1.2",
            "numpy==2.2.6",
            "pysocks==1.7.1",
            "requests==2.32.5",
            "six==1.16.0",
            "urllib3==2.6.3",
        ]
    );
}

#[test]
fn poetry18_walk_follows_extras_through_the_graph() {
    let base = [
        "asttokens==3.0.2",
        "comm==0.2.3",
        "decorator==5.3.1",
        "executing==2.3.0",
        "ipython==8.18.1",
        "ipywidgets==8.1.9",
        "jedi==0.19.2",
        "jupyterlab-widgets==3.0.17",
        "markdown-it-py==3.0.0",
        "matplotlib-inline==0.2.2",
        "mdurl==0.1.2",
        "numpy==2.2.6",
        "parso==0.8.7",
        "pexpect==4.9.0",
        "prompt-toolkit==3.0.52",
        "ptyprocess==0.7.0",
        "pure-eval==0.2.4",
        "pygments==2.21.0",
        "rich==15.0.0",
        "stack-data==0.6.3",
        "traitlets==5.15.1",
        "wcwidth==0.9.4",
        "widgetsnbextension==4.0.16",
    ];
    // rich[jupyter] brings ipywidgets and its graph; pywin32-ctypes has `platform = "win32"`;
    // colorama and typing-extensions are behind markers false here.
    assert_eq!(pins(LOCK_18BX, PYPROJECT_18BX, &[], &[]), base);
    // [tool.poetry.dev-dependencies] is the dev group; the yaml extra names "ruamel.yaml".
    let mut more: Vec<&str> = base.to_vec();
    more.insert(4, "iniconfig==2.1.0");
    more.splice(20..20, ["ruamel-yaml==0.18.17", "ruamel-yaml-clib==0.2.15"]);
    assert_eq!(pins(LOCK_18BX, PYPROJECT_18BX, &["yaml"], &["dev"]), more);
}

#[test]
fn walking_a_poetry2_lock_gives_what_its_markers_say() {
    // Read as lock version 2.0, LOCK_2 is walked from PYPROJECT_2: its [project] dependencies
    // with the [tool.poetry] details for six, its PEP 735 groups and the include of lint.
    let as_20 = LOCK_2.replace("lock-version = \"2.1\"", "lock-version = \"2.0\"");
    for (extras, groups) in [
        (&[][..], &[][..]),
        (&["fast", "Attrs_Extra"], &["dev", "docs"]),
        (&["fast"], &["lint"]),
    ] {
        assert_eq!(
            pins(&as_20, PYPROJECT_2, extras, groups),
            pins(LOCK_2, PYPROJECT_2, extras, groups),
            "{extras:?} {groups:?}"
        );
    }
}

/// LOCK_3's local directory package, cut out where a test needs the rest to succeed.
const LOCALLIB: &str = r#"[[package]]
name = "locallib"
version = "0.3.0"
optional = false
python-versions = "*"
groups = ["main"]
files = []
develop = false

[package.source]
type = "directory"
url = "../locallib"
"#;

#[test]
fn per_group_markers_and_python_splits() {
    assert!(LOCK_3.contains(LOCALLIB));
    let lock = LOCK_3.replace(LOCALLIB, "");
    // Two clicks, numpys and zope-interfaces, one per Python range; colorama's marker for main
    // is false here, and it has none for dev.
    assert_eq!(
        pins(&lock, PYPROJECT_3, &[], &[]),
        ["click==8.5.1", "numpy==2.2.6"]
    );
    assert_eq!(
        pins(&lock, PYPROJECT_3, &[], &["dev"]),
        [
            "click==8.5.1",
            "colorama==0.4.6",
            "numpy==2.2.6",
            "zope-interface==8.6"
        ]
    );
}

#[test]
fn git_and_directory_sources_are_refused() {
    assert_eq!(
        error(LOCK_3, PYPROJECT_3, &[], &[]),
        "poetry.lock: package locallib 0.3.0 comes from a local directory, which lockship cannot build yet"
    );
    let lock = LOCK_3.replace(LOCALLIB, "");
    assert_eq!(
        error(&lock, PYPROJECT_3, &["git"], &[]),
        "poetry.lock: package gitlib 0.3.0 comes from a git repository, which lockship cannot build yet"
    );
    assert!(matches!(
        pick(&lock, PYPROJECT_3, &select(&["git"], &[])),
        Err(LockError::UnsupportedSource { .. })
    ));
}

#[test]
fn dependency_groups_of_pep735() {
    assert_eq!(
        pins(LOCK_22, PYPROJECT_22, &["cli"], &["test"]),
        ["click==8.5.1", "idna==3.20", "iniconfig==2.3.1"]
    );
}

#[test]
fn only_lock_versions_2_0_and_2_1_are_read() {
    let old = LOCK_2.replace("lock-version = \"2.1\"", "lock-version = \"1.1\"");
    assert_eq!(
        error(&old, PYPROJECT_2, &[], &[]),
        "poetry.lock: lock version 1.1 is not supported (lockship reads 2.0, 2.1)"
    );
    assert!(matches!(
        check_fresh(Path::new("poetry.lock"), &old, PYPROJECT_2),
        Err(LockError::UnsupportedVersion { .. })
    ));
    let none = LOCK_2.replace("lock-version = \"2.1\"\n", "");
    assert_eq!(
        error(&none, PYPROJECT_2, &[], &[]),
        "poetry.lock: lock version (none) is not supported (lockship reads 2.0, 2.1)"
    );
}

/// certifi's files in LOCK_2.
const CERTIFI_FILES: &str = r#"files = [
    {file = "certifi-2026.10.18-py3-none-any.whl", hash = "sha256:73191c47aaa79da394e8fee2dbc2ec827432cab56311122c9e47abf79e390f62"},
    {file = "certifi-2026.10.18.tar.gz", hash = "sha256:b9995d97b64d0431a5af837d8ca8cd6238104d1f319f04bd93ea43124d6c861e"},
]"#;

#[test]
fn files_without_sha256_are_refused() {
    assert!(LOCK_2.contains(CERTIFI_FILES));
    // No hashes at all: marked, for the project to refuse or allow (`allow-unhashed`).
    let unhashed = LOCK_2.replace(CERTIFI_FILES, "files = []");
    let pkgs = pick(&unhashed, PYPROJECT_2, &select(&[], &[])).unwrap();
    assert_eq!(crate::lock::unhashed(&pkgs), ["certifi==2026.10.18"]);
    let md5 = LOCK_2.replace(CERTIFI_FILES, &CERTIFI_FILES.replace("sha256:", "md5:"));
    assert_eq!(
        error(&md5, PYPROJECT_2, &[], &[]),
        "poetry.lock: certifi 2026.10.18 is locked with md5 hashes only; lockship verifies files by sha256"
    );
    let bad = LOCK_2.replace(
        CERTIFI_FILES,
        &CERTIFI_FILES.replace("sha256:7", "sha256:z"),
    );
    assert!(error(&bad, PYPROJECT_2, &[], &[])
        .starts_with("poetry.lock: certifi 2026.10.18: bad sha256 `sha256:z3191c47"),);
    // A bad entry is refused in a package the target does not need, as a TOML parser would.
    let orjson = LOCK_2.replace(
        "orjson-3.13.0-cp310-cp310-macosx_10_15_x86_64.macosx_11_0_arm64.macosx_10_15_universal2.whl\", hash = ",
        "orjson-3.13.0-cp310-cp310-macosx_10_15_x86_64.macosx_11_0_arm64.macosx_10_15_universal2.whl\", hash = 3, x = ",
    );
    assert_eq!(orjson.len(), LOCK_2.len() + "3, x = ".len());
    let err = error(&orjson, PYPROJECT_2, &[], &[]);
    assert!(
        err.starts_with("poetry.lock: not a valid poetry.lock (line "),
        "{err}"
    );
}

#[test]
fn garbage_names_the_file_and_line() {
    let err = pick(
        "[[package]]\nname = \"x\"\nversion = [\n",
        PYPROJECT_2,
        &Selection::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("poetry.lock: not a valid poetry.lock (line 3): "),
        "{err}"
    );
    let err = parse(
        Path::new("proj/poetry.lock"),
        LOCK_2,
        "[project\n",
        &bookworm(),
        &Selection::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("proj/pyproject.toml: not a valid pyproject.toml for poetry (line 1): "),
        "{err}"
    );
    // A line after a cut `files` array is counted in the original text.
    let late = format!("{LOCK_2}\n[metadata]\n");
    let err = pick(&late, PYPROJECT_2, &Selection::default())
        .unwrap_err()
        .to_string();
    let line = late.lines().count();
    assert!(err.contains(&format!("(line {line})")), "{err}");
}

#[test]
fn content_hashes_match_poetry() {
    for (lock, pyproject) in [
        (LOCK_2, PYPROJECT_2),
        (LOCK_18, PYPROJECT_18),
        (LOCK_18BX, PYPROJECT_18BX),
        (LOCK_3, PYPROJECT_3),
        (LOCK_22, PYPROJECT_22),
    ] {
        check_fresh(Path::new("poetry.lock"), lock, pyproject).unwrap();
    }
}

#[test]
fn a_changed_pyproject_makes_the_lock_stale() {
    let stale = |lock: &str, pyproject: &str| {
        check_fresh(Path::new("app/poetry.lock"), lock, pyproject)
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        stale(LOCK_2, &PYPROJECT_2.replace("\"click>=8.1\"", "\"click>=8.2\"")),
        "app/poetry.lock is out of date with pyproject.toml: its content-hash was computed from another pyproject.toml (hashed as Poetry 2.5.1 does); run `poetry lock`"
    );
    assert_eq!(
        stale(LOCK_18, &PYPROJECT_18.replace("click = \"^8.1\"", "click = \"^8.0\"")),
        "app/poetry.lock is out of date with pyproject.toml: its content-hash was computed from another pyproject.toml (hashed as Poetry 1.8.5 does); run `poetry lock --no-update`"
    );
    // Keys poetry does not hash change nothing.
    check_fresh(
        Path::new("poetry.lock"),
        LOCK_2,
        &PYPROJECT_2.replace("poetry 2 style, PEP 621", "another description"),
    )
    .unwrap();
    // Poetry 2.2.1 did not hash [dependency-groups]; from 2.3 poetry does, and accepts a lock
    // of an older 2.x hashed either way (poetry 2.5.1 computes 529b… for PYPROJECT_22).
    let as_251 = LOCK_22.replace("Poetry 2.2.1", "Poetry 2.5.1");
    assert!(stale(&as_251, PYPROJECT_22).contains("(hashed as Poetry 2.5.1 does)"));
    let with_groups = "529ba096587c83e40bd7ef92fecbfdde8523508e07163f019b564199b45b997e";
    let hashed_with_groups = LOCK_22.replace(
        "676254ece9ab172c6464e39a47862a1f2e3112946e67680a7303298d08ad8d56",
        with_groups,
    );
    assert_ne!(hashed_with_groups, LOCK_22);
    check_fresh(Path::new("poetry.lock"), &hashed_with_groups, PYPROJECT_22).unwrap();
    check_fresh(
        Path::new("poetry.lock"),
        &hashed_with_groups.replace("Poetry 2.2.1", "Poetry 2.5.1"),
        PYPROJECT_22,
    )
    .unwrap();
    let no_hash = LOCK_22.replace("content-hash", "other-hash");
    assert_eq!(
        stale(&no_hash, PYPROJECT_22),
        "app/poetry.lock is out of date with pyproject.toml: it records no content-hash; run `poetry lock`"
    );
}

#[test]
fn the_fast_files_reader_agrees_with_the_toml_parser() {
    // Mutations of a real lock: wherever the text still parses, cutting the `files` arrays out
    // must give the same files as parsing the whole text; where it does not, both refuse.
    let whole = |text: &str| -> Option<Vec<Vec<File<'static>>>> {
        let lock: PoetryLock = toml::from_str(text).ok()?;
        Some(
            lock.packages
                .iter()
                .map(|p| {
                    p.files
                        .iter()
                        .flat_map(|f| f.get_ref().iter().map(TomlFile::to_file))
                        .collect()
                })
                .collect(),
        )
    };
    let cut = |text: &str| -> Option<Vec<Vec<File<'static>>>> {
        let reduced = Reduced::new(text);
        let lock: PoetryLock = toml::from_str(&reduced.text).ok()?;
        Some(
            lock.packages
                .iter()
                .map(|p| match &p.files {
                    None => Vec::new(),
                    Some(f) => match reduced.files(f.span().start) {
                        Some(files) => files
                            .iter()
                            .map(|f| File {
                                file: f.file.clone().map(|s| Cow::Owned(s.into_owned())),
                                hash: f.hash.clone().map(|s| Cow::Owned(s.into_owned())),
                            })
                            .collect(),
                        None => f.get_ref().iter().map(TomlFile::to_file).collect(),
                    },
                })
                .collect(),
        )
    };
    let base = LOCK_2;
    assert!(cut(base).is_some_and(|files| files.iter().all(|f| !f.is_empty())));
    let inserts = [
        "\"",
        "'",
        "[",
        "]",
        "{",
        "}",
        "#",
        "\n",
        "\\",
        "\"\"\"",
        "'''",
        ",",
        " ",
        "=",
        "files = [",
        "\n[[package]]\n",
    ];
    let mut seed: u64 = 0x5eed;
    let mut next = |bound: usize| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((seed >> 33) as usize) % bound.max(1)
    };
    let mut parsed = 0;
    for _ in 0..400 {
        let mut text = base.to_string();
        for _ in 0..1 + next(3) {
            let mut at = next(text.len());
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            match next(3) {
                0 => text.insert_str(at, inserts[next(inserts.len())]),
                1 => {
                    let mut end = (at + 1 + next(8)).min(text.len());
                    while !text.is_char_boundary(end) {
                        end -= 1;
                    }
                    text.replace_range(at..end, "");
                }
                _ => text.truncate(at),
            }
        }
        let files = whole(&text);
        parsed += usize::from(files.is_some());
        assert_eq!(files, cut(&text), "{text}");
        // And no input makes the reader panic.
        let _ = pick(&text, PYPROJECT_2, &Selection::default());
        let _ = check_fresh(Path::new("poetry.lock"), &text, PYPROJECT_2);
    }
    // About a fifth of the mutations still parse (measured: 20% of 40,000).
    assert!((20..380).contains(&parsed), "{parsed} of 400 parsed");
}

/// Poetry 2.5.1, PEP 621: extras, a poetry group, PEP 735 groups with an include, a package pinned
/// to a supplemental source.
const PYPROJECT_2: &str = r##"[project]
name = "app2"
version = "0.1.0"
description = "poetry 2 style, PEP 621"
requires-python = ">=3.10"
dependencies = [
    "requests[socks]>=2.31",
    "colorama; sys_platform == 'win32'",
    "click>=8.1",
    "six==1.16.0",
    "tomli; python_version < '3.11'",
]

[project.optional-dependencies]
fast = ["orjson>=3"]
Attrs_Extra = ["attrs"]

[tool.poetry.dependencies]
six = { source = "local" }

[tool.poetry.group.dev.dependencies]
iniconfig = "*"
pywin32-ctypes = { version = "*", markers = "sys_platform == 'win32'" }

[dependency-groups]
docs = ["mdurl", { include-group = "lint" }]
lint = ["pyflakes; python_version >= '3.10'"]

[[tool.poetry.source]]
name = "idx"
url = "https://index.example/simple"
priority = "primary"

[[tool.poetry.source]]
name = "local"
url = "https://index.example/private/simple"
priority = "supplemental"

[build-system]
requires = ["poetry-core>=2"]
build-backend = "poetry.core.masonry.api"
"##;

/// `poetry lock` (2.5.1) of [`PYPROJECT_2`].
const LOCK_2: &str = r##"# This file is automatically @generated by Poetry 2.5.1 and should not be changed by hand.

[[package]]
name = "attrs"
version = "26.1.0"
optional = true
python-versions = ">=3.9"
groups = ["main"]
markers = "extra == \"attrs-extra\""
files = [
    {file = "attrs-26.1.0-py3-none-any.whl", hash = "sha256:c647aa4a12dfbad9333ca4e71fe62ddc36f4e63b2d260a37a8b83d2f043ac309"},
]

[package.source]
type = "legacy"
url = "https://index.example/simple"
reference = "idx"

[[package]]
name = "certifi"
version = "2026.10.18"
optional = false
python-versions = ">=3.7"
groups = ["main"]
files = [
    {file = "certifi-2026.10.18-py3-none-any.whl", hash = "sha256:73191c47aaa79da394e8fee2dbc2ec827432cab56311122c9e47abf79e390f62"},
    {file = "certifi-2026.10.18.tar.gz", hash = "sha256:b9995d97b64d0431a5af837d8ca8cd6238104d1f319f04bd93ea43124d6c861e"},
]

[package.source]
type = "legacy"
url = "https://index.example/simple"
reference = "idx"

[[package]]
name = "charset-normalizer"
version = "3.5.2"
optional = false
python-versions = ">=3.7"
groups = ["main"]
files = [
    {file = "charset_normalizer-3.5.2-cp310-cp310-macosx_10_9_universal2.whl", hash = "sha256:195c26fb65950f8fce54e26349852b7bdd7c5f120aeefbcc440b8a20faaed4a3"},
]

[package.source]
type = "legacy"
url = "https://index.example/simple"
reference = "idx"

[[package]]
name = "click"
version = "8.5.1"
optional = false
python-versions = ">=3.10"
groups = ["main"]
files = [
    {file = "click-8.5.1-py3-none-any.whl", hash = "sha256:8bb5376d2006950386f8c6427613334a2acadc5f559cb80e638d00b4df957e37"},
]

[package.source]
type = "legacy"
url = "https://index.example/simple"
reference = "idx"

[[package]]
name = "colorama"
version = "0.4.6"
optional = false
python-versions = "!=3.0.*,!=3.1.*,!=3.2.*,!=3.3.*,!=3.4.*,!=3.5.*,!=3.6.*,>=2.7"
groups = ["main"]
markers = "sys_platform == \"win32\""
files = [
    {file = "colorama-0.4.6-py2.py3-none-any.whl", hash = "sha256:4f1d9991f5acc0ca119f9d443620b77f9d6b33703e51011c16baf57afb285fc6"},
]

[package.source]
type = "legacy"
url = "https://index.example/simple"
reference = "idx"

[[package]]
name = "idna"
version = "3.20"
optional = false
python-versions = ">=3.9"
groups = ["main"]
files = [
    {file = "idna-3.20-py3-none-any.whl", hash = "sha256:ab7ae7122974553370f0bdb919e1a960b2cd1bc1ef0276416d896db81c14582c"},
]

[package.source]
type = "legacy"
url = "https://index.example/simple"
reference = "idx"

[[package]]
name = "iniconfig"
version = "2.3.1"
optional = false
python-versions = ">=3.10"
groups = ["dev"]
files = [
    {file = "iniconfig-2.3.1-py3-none-any.whl", hash = "sha256:9121e2c1fdb355232495be3194c8dfe87ccc2d5dee45947b78e68f499790d7a7"},
]

[package.source]
type = "legacy"
url = "https://index.example/simple"
reference = "idx"

[[package]]
name = "mdurl"
version = "0.1.2"
optional = false
python-versions = ">=3.7"
groups = ["docs"]
files = [
    {file = "mdurl-0.1.2-py3-none-any.whl", hash = "sha256:84008a41e51615a49fc9966191ff91509e3c40b939176e643fd50a5c2196b8f8"},
]

[package.source]
type = "legacy"
url = "https://index.example/simple"
reference = "idx"

[[package]]
name = "orjson"
version = "3.13.0"
optional = true
python-versions = ">=3.10"
groups = ["main"]
markers = "extra == \"fast\""
files = [
    {file = "orjson-3.13.0-cp310-cp310-macosx_10_15_x86_64.macosx_11_0_arm64.macosx_10_15_universal2.whl", hash = "sha256:4f66eac85b072092e9941c3111882afd7527bf926cbc717038fa3654b582002b"},
]

[package.source]
type = "legacy"
url = "https://index.example/simple"
reference = "idx"

[[package]]
name = "pyflakes"
version = "4.0.3"
optional = false
python-versions = ">=3.10"
groups = ["docs", "lint"]
files = [
    {file = "pyflakes-4.0.3-py2.py3-none-any.whl", hash = "sha256:330ba92b8c1db2eb0b8f4068f6c58674e2649a99e334769aa50e3e9c5b11c23a"},
]

[package.source]
type = "legacy"
url = "https://index.example/simple"
reference = "idx"

[[package]]
name = "pysocks"
version = "1.7.1"
optional = false
python-versions = ">=2.7, !=3.0.*, !=3.1.*, !=3.2.*, !=3.3.*"
groups = ["main"]
files = [
    {file = "PySocks-1.7.1-py27-none-any.whl", hash = "sha256:08e69f092cc6dbe92a0fdd16eeb9b9ffbc13cadfe5ca4c7bd92ffb078b293299"},
]

[package.source]
type = "legacy"
url = "https://index.example/simple"
reference = "idx"

[[package]]
name = "pywin32-ctypes"
version = "0.2.3"
optional = false
python-versions = ">=3.6"
groups = ["dev"]
markers = "sys_platform == \"win32\""
files = [
    {file = "pywin32_ctypes-0.2.3-py3-none-any.whl", hash = "sha256:8a1513379d709975552d202d942d9837758905c8d01eb82b8bcc30918929e7b8"},
]

[package.source]
type = "legacy"
url = "https://index.example/simple"
reference = "idx"

[[package]]
name = "requests"
version = "2.34.2"
optional = false
python-versions = ">=3.10"
groups = ["main"]
files = [
    {file = "requests-2.34.2-py3-none-any.whl", hash = "sha256:2a0d60c172f83ac6ab31e4554906c0f3b3588d37b5cb939b1c061f4907e278e0"},
]

[package.dependencies]
certifi = ">=2023.5.7"
charset_normalizer = ">=2,<4"
idna = ">=2.5,<4"
PySocks = {version = ">=1.5.6,!=1.5.7", optional = true, markers = "extra == \"socks\""}
urllib3 = ">=1.26,<3"

[package.extras]
socks = ["PySocks (>=1.5.6,!=1.5.7)"]
use-chardet-on-py3 = ["chardet (>=3.0.2,<8)"]

[package.source]
type = "legacy"
url = "https://index.example/simple"
reference = "idx"

[[package]]
name = "six"
version = "1.16.0"
optional = false
python-versions = ">=2.7, !=3.0.*, !=3.1.*, !=3.2.*"
groups = ["main"]
files = [
    {file = "six-1.16.0-py2.py3-none-any.whl", hash = "sha256:8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254"},
]

[package.source]
type = "legacy"
url = "https://index.example/private/simple"
reference = "local"

[[package]]
name = "tomli"
version = "2.5.0"
optional = false
python-versions = ">=3.8"
groups = ["main"]
markers = "python_version == \"3.10\""
files = [
    {file = "tomli-2.5.0-cp311-cp311-macosx_10_9_x86_64.whl", hash = "sha256:c4dc1c1781f2f716de763d1e9a7b34c6a894e167e291c7c5d16c72f7a9538545"},
]

[package.source]
type = "legacy"
url = "https://index.example/simple"
reference = "idx"

[[package]]
name = "urllib3"
version = "2.8.0"
optional = false
python-versions = ">=3.10"
groups = ["main"]
files = [
    {file = "urllib3-2.8.0-py3-none-any.whl", hash = "sha256:0cf3cae568d36aa9576b28dfb35f11328f1cb974ca7647d9475ebb86c75ac6e3"},
]

[package.source]
type = "legacy"
url = "https://index.example/simple"
reference = "idx"

[extras]
attrs-extra = ["attrs"]
fast = ["orjson"]

[metadata]
lock-version = "2.1"
python-versions = ">=3.10"
content-hash = "2d8610fa65f01e7efd61fe687fdfb923050c2b6be76b140138cbf97e1fe2da92"
"##;

/// Poetry 1.8.5 style: markers, a python-constrained dependency, an optional one behind an extra,
/// a dependency with extras, two constraints split by Python version, an explicit source.
const PYPROJECT_18: &str = r##"[tool.poetry]
name = "app18"
version = "0.1.0"
description = "poetry 1.8 style"
authors = ["A <a@example.org>"]

[tool.poetry.dependencies]
python = "^3.9"
requests = { version = "^2.31", extras = ["socks"] }
colorama = { version = "*", markers = "sys_platform == 'win32'" }
click = "^8.1"
tomli = { version = "*", python = "<3.11" }
attrs = { version = "*", optional = true }
six = { version = "1.16.0", source = "local" }
numpy = [
    { version = "<2.1", python = "<3.10" },
    { version = ">=2.1", python = ">=3.10" },
]

[tool.poetry.extras]
attrs = ["attrs"]

[tool.poetry.group.dev.dependencies]
iniconfig = "*"

[tool.poetry.group.docs]
optional = true

[tool.poetry.group.docs.dependencies]
mdurl = "*"

[[tool.poetry.source]]
name = "idx"
url = "https://index.example/simple"
priority = "primary"

[[tool.poetry.source]]
name = "local"
url = "https://index.example/private/simple"
priority = "explicit"

[build-system]
requires = ["poetry-core"]
build-backend = "poetry.core.masonry.api"
"##;

/// `poetry lock --no-update` (1.8.5) of [`PYPROJECT_18`].
const LOCK_18: &str = r##"# This file is automatically @generated by Poetry 1.8.5 and should not be changed by hand.

[[package]]
name = "attrs"
version = "26.1.0"
optional = true
python-versions = ">=3.9"
files = [
    {file = "attrs-26.1.0-py3-none-any.whl", hash = "sha256:c647aa4a12dfbad9333ca4e71fe62ddc36f4e63b2d260a37a8b83d2f043ac309"},
]

[package.source]
type = "legacy"
url = "https://index.example/simple"
reference = "idx"

[[package]]
name = "certifi"
version = "2026.10.18"
optional = false
python-versions = ">=3.7"
files = [
    {file = "certifi-2026.10.18-py3-none-any.whl", hash = "sha256:73191c47aaa79da394e8fee2dbc2ec827432cab56311122c9e47abf79e390f62"},
    {file = "certifi-2026.10.18.tar.gz", hash = "sha256:b9995d97b64d0431a5af837d8ca8cd6238104d1f319f04bd93ea43124d6c861e"},
]

[package.source]
type = "legacy"
url = "https://index.example/simple"
reference = "idx"

[[package]]
name = "charset-normalizer"
version = "3.5.2"
optional = false
python-versions = ">=3.7"
files = [
    {file = "charset_normalizer-3.5.2-cp310-cp310-macosx_10_9_universal2.whl", hash = "sha256:195c26fb65950f8fce54e26349852b7bdd7c5f120aeefbcc440b8a20faaed4a3"},
]

[package.source]
type = "legacy"
url = "https://index.example/simple"
reference = "idx"

[[package]]
name = "click"
version = "8.1.8"
optional = false
python-versions = ">=3.7"
files = [
    {file = "click-8.1.8-py3-none-any.whl", hash = "sha256:63c132bbbed01578a06712a2d1f497bb62d9c1c0d329b7903a866228027263b2"},
]

[package.dependencies]
colorama = {version = "*", markers = "platform_system == \"Windows\""}

[package.source]
type = "legacy"
url = "https://index.example/simple"
reference = "idx"

[[package]]
name = "colorama"
version = "0.4.6"
optional = false
python-versions = "!=3.0.*,!=3.1.*,!=3.2.*,!=3.3.*,!=3.4.*,!=3.5.*,!=3.6.*,>=2.7"
files = [
    {file = "colorama-0.4.6-py2.py3-none-any.whl", hash = "sha256:4f1d9991f5acc0ca119f9d443620b77f9d6b33703e51011c16baf57afb285fc6"},
]

[package.source]
type = "legacy"
url = "https://index.example/simple"
reference = "idx"

[[package]]
name = "idna"
version = "3.20"
optional = false
python-versions = ">=3.9"
files = [
    {file = "idna-3.20-py3-none-any.whl", hash = "sha256:ab7ae7122974553370f0bdb919e1a960b2cd1bc1ef0276416d896db81c14582c"},
]

[package.source]
type = "legacy"
url = "https://index.example/simple"
reference = "idx"

[[package]]
name = "iniconfig"
version = "2.1.0"
optional = false
python-versions = ">=3.8"
files = [
    {file = "iniconfig-2.1.0-py3-none-any.whl", hash = "sha256:9deba5723312380e77435581c6bf4935c94cbfab9b1ed33ef8d238ea168eb760"},
]

[package.source]
type = "legacy"
url = "https://index.example/simple"
reference = "idx"

[[package]]
name = "mdurl"
version = "0.1.2"
optional = false
python-versions = ">=3.7"
files = [
    {file = "mdurl-0.1.2-py3-none-any.whl", hash = "sha256:84008a41e51615a49fc9966191ff91509e3c40b939176e643fd50a5c2196b8f8"},
]

[package.source]
type = "legacy"
url = "https://index.example/simple"
reference = "idx"

[[package]]
name = "numpy"
version = "2.0.2"
optional = false
python-versions = ">=3.9"
files = [
    {file = "numpy-2.0.2-cp310-cp310-macosx_10_9_x86_64.whl", hash = "sha256:51129a29dbe56f9ca83438b706e2e69a39892b5eda6cedcb6b0c9fdc9b0d3ece"},
]

[package.source]
type = "legacy"
url = "https://index.example/simple"
reference = "idx"

[[package]]
name = "numpy"
version = "2.2.6"
optional = false
python-versions = ">=3.10"
files = [
    {file = "numpy-2.2.6-cp310-cp310-macosx_10_9_x86_64.whl", hash = "sha256:b412caa66f72040e6d268491a59f2c43bf03eb6c96dd8f0307829feb7fa2b6fb"},
]

[package.source]
type = "legacy"
url = "https://index.example/simple"
reference = "idx"

[[package]]
name = "pysocks"
version = "1.7.1"
optional = false
python-versions = ">=2.7, !=3.0.*, !=3.1.*, !=3.2.*, !=3.3.*"
files = [
    {file = "PySocks-1.7.1-py27-none-any.whl", hash = "sha256:08e69f092cc6dbe92a0fdd16eeb9b9ffbc13cadfe5ca4c7bd92ffb078b293299"},
]

[package.source]
type = "legacy"
url = "https://index.example/simple"
reference = "idx"

[[package]]
name = "requests"
version = "2.32.5"
optional = false
python-versions = ">=3.9"
files = [
    {file = "requests-2.32.5-py3-none-any.whl", hash = "sha256:2462f94637a34fd532264295e186976db0f5d453d1cdd31473c85a6a161affb6"},
]

[package.dependencies]
certifi = ">=2017.4.17"
charset_normalizer = ">=2,<4"
idna = ">=2.5,<4"
PySocks = {version = ">=1.5.6,<1.5.7 || >1.5.7", optional = true, markers = "extra == \"socks\""}
urllib3 = ">=1.21.1,<3"

[package.extras]
socks = ["PySocks (>=1.5.6,!=1.5.7)"]
use-chardet-on-py3 = ["chardet (>=3.0.2,<6)"]

[package.source]
type = "legacy"
url = "https://index.example/simple"
reference = "idx"

[[package]]
name = "six"
version = "1.16.0"
optional = false
python-versions = ">=2.7, !=3.0.*, !=3.1.*, !=3.2.*"
files = [
    {file = "six-1.16.0-py2.py3-none-any.whl", hash = "sha256:8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254"},
]

[package.source]
type = "legacy"
url = "https://index.example/private/simple"
reference = "local"

[[package]]
name = "tomli"
version = "2.5.0"
optional = false
python-versions = ">=3.8"
files = [
    {file = "tomli-2.5.0-cp311-cp311-macosx_10_9_x86_64.whl", hash = "sha256:c4dc1c1781f2f716de763d1e9a7b34c6a894e167e291c7c5d16c72f7a9538545"},
]

[package.source]
type = "legacy"
url = "https://index.example/simple"
reference = "idx"

[[package]]
name = "urllib3"
version = "2.6.3"
optional = false
python-versions = ">=3.9"
files = [
    {file = "urllib3-2.6.3-py3-none-any.whl", hash = "sha256:bf272323e553dfb2e87d9bfd225ca7b0f467b919d7bbd355436d3fd37cb0acd4"},
]

[package.source]
type = "legacy"
url = "https://index.example/simple"
reference = "idx"

[extras]
attrs = ["attrs"]

[metadata]
lock-version = "2.0"
python-versions = "^3.9"
content-hash = "57aa9fcde9d371d578f6911b68c7e54a780fd159024cb3b0f5b6ceac9710c592"
"##;

/// Poetry 1.8.5: legacy dev-dependencies, `platform`, rich[jupyter] bringing a deep graph.
const PYPROJECT_18BX: &str = r##"[tool.poetry]
name = "appx18b"
version = "0.1.0"
description = "poetry 1.8: legacy dev-dependencies, transitive extras, duplicate names"
authors = ["A <a@example.org>"]
package-mode = false

[tool.poetry.dependencies]
python = "^3.9"
rich = { version = ">=13", extras = ["jupyter"] }
numpy = [
    { version = "<2.1", python = "<3.10" },
    { version = ">=2.1", python = ">=3.10" },
]
pywin32-ctypes = { version = "*", platform = "win32" }
"Ruamel.Yaml" = { version = "~0.18", optional = true }

[tool.poetry.extras]
yaml = ["ruamel.yaml"]

[tool.poetry.dev-dependencies]
iniconfig = "^2"

[[tool.poetry.source]]
name = "idx"
url = "https://index.example/simple"
priority = "primary"
"##;

/// `poetry lock --no-update` (1.8.5) of [`PYPROJECT_18BX`], its sources dropped as in a lock
/// resolved from the default PyPI.
const LOCK_18BX: &str = r##"# This file is automatically @generated by Poetry 1.8.5 and should not be changed by hand.

[[package]]
name = "asttokens"
version = "3.0.2"
optional = false
python-versions = ">=3.8"
files = [
    {file = "asttokens-3.0.2-py3-none-any.whl", hash = "sha256:9da13157f5b28becde0bd374fc677dcd3c290614264eff096f167c469cd9f933"},
]

[[package]]
name = "colorama"
version = "0.4.6"
optional = false
python-versions = "!=3.0.*,!=3.1.*,!=3.2.*,!=3.3.*,!=3.4.*,!=3.5.*,!=3.6.*,>=2.7"
files = [
    {file = "colorama-0.4.6-py2.py3-none-any.whl", hash = "sha256:4f1d9991f5acc0ca119f9d443620b77f9d6b33703e51011c16baf57afb285fc6"},
]

[[package]]
name = "comm"
version = "0.2.3"
optional = false
python-versions = ">=3.8"
files = [
    {file = "comm-0.2.3-py3-none-any.whl", hash = "sha256:c615d91d75f7f04f095b30d1c1711babd43bdc6419c1be9886a85f2f4e489417"},
]

[[package]]
name = "decorator"
version = "5.3.1"
optional = false
python-versions = ">=3.8"
files = [
    {file = "decorator-5.3.1-py3-none-any.whl", hash = "sha256:f47fe6fdbd2edd623ecfe36875d37aba411624e2670dd395dddae1358689bb3c"},
]

[[package]]
name = "exceptiongroup"
version = "1.3.1"
optional = false
python-versions = ">=3.7"
files = [
    {file = "exceptiongroup-1.3.1-py3-none-any.whl", hash = "sha256:a7a39a3bd276781e98394987d3a5701d0c4edffb633bb7a5144577f82c773598"},
]

[package.dependencies]
typing-extensions = {version = ">=4.6.0", markers = "python_version < \"3.13\""}

[[package]]
name = "executing"
version = "2.3.0"
optional = false
python-versions = ">=3.8"
files = [
    {file = "executing-2.3.0-py3-none-any.whl", hash = "sha256:736e859c9f8701f11fcf516856f26f562e04776387824b43a35a1dfe21c84122"},
]

[[package]]
name = "iniconfig"
version = "2.1.0"
optional = false
python-versions = ">=3.8"
files = [
    {file = "iniconfig-2.1.0-py3-none-any.whl", hash = "sha256:9deba5723312380e77435581c6bf4935c94cbfab9b1ed33ef8d238ea168eb760"},
]

[[package]]
name = "ipython"
version = "8.18.1"
optional = false
python-versions = ">=3.9"
files = [
    {file = "ipython-8.18.1-py3-none-any.whl", hash = "sha256:e8267419d72d81955ec1177f8a29aaa90ac80ad647499201119e2f05e99aa397"},
]

[package.dependencies]
colorama = {version = "*", markers = "sys_platform == \"win32\""}
decorator = "*"
exceptiongroup = {version = "*", markers = "python_version < \"3.11\""}
jedi = ">=0.16"
matplotlib-inline = "*"
pexpect = {version = ">4.3", markers = "sys_platform != \"win32\""}
prompt-toolkit = ">=3.0.41,<3.1.0"
pygments = ">=2.4.0"
stack-data = "*"
traitlets = ">=5"
typing-extensions = {version = "*", markers = "python_version < \"3.10\""}

[[package]]
name = "ipywidgets"
version = "8.1.9"
optional = false
python-versions = ">=3.7"
files = [
    {file = "ipywidgets-8.1.9-py3-none-any.whl", hash = "sha256:f2b8cbcaae10252b809fbe4d7470db75c09b769a32cbf816d20e5ca6d3c5a79d"},
]

[package.dependencies]
comm = ">=0.1.3"
ipython = ">=6.1.0"
jupyterlab_widgets = ">=3.0.17,<3.1.0"
traitlets = ">=4.3.1"
widgetsnbextension = ">=4.0.16,<4.1.0"

[[package]]
name = "jedi"
version = "0.19.2"
optional = false
python-versions = ">=3.6"
files = [
    {file = "jedi-0.19.2-py2.py3-none-any.whl", hash = "sha256:a8ef22bde8490f57fe5c7681a3c83cb58874daf72b4784de3cce5b6ef6edb5b9"},
]

[package.dependencies]
parso = ">=0.8.4,<0.9.0"

[[package]]
name = "jupyterlab-widgets"
version = "3.0.17"
optional = false
python-versions = ">=3.7"
files = [
    {file = "jupyterlab_widgets-3.0.17-py3-none-any.whl", hash = "sha256:40ac1e9955acf116c4d995d9bfa082d86ad9ec6d91c4f134827cf5e0a5eb75e0"},
]

[[package]]
name = "markdown-it-py"
version = "3.0.0"
optional = false
python-versions = ">=3.8"
files = [
    {file = "markdown_it_py-3.0.0-py3-none-any.whl", hash = "sha256:355216845c60bd96232cd8d8c40e8f9765cc86f46880e43a8fd22dc1a1a8cab1"},
]

[package.dependencies]
mdurl = ">=0.1,<1.0"

[[package]]
name = "matplotlib-inline"
version = "0.2.2"
optional = false
python-versions = ">=3.9"
files = [
    {file = "matplotlib_inline-0.2.2-py3-none-any.whl", hash = "sha256:3c821cf1c209f59fb2d2d64abbf5b23b67bcb2210d663f9918dd851c6da1fcf6"},
]

[package.dependencies]
traitlets = "*"

[[package]]
name = "mdurl"
version = "0.1.2"
optional = false
python-versions = ">=3.7"
files = [
    {file = "mdurl-0.1.2-py3-none-any.whl", hash = "sha256:84008a41e51615a49fc9966191ff91509e3c40b939176e643fd50a5c2196b8f8"},
]

[[package]]
name = "numpy"
version = "2.0.2"
optional = false
python-versions = ">=3.9"
files = [
    {file = "numpy-2.0.2-cp310-cp310-macosx_10_9_x86_64.whl", hash = "sha256:51129a29dbe56f9ca83438b706e2e69a39892b5eda6cedcb6b0c9fdc9b0d3ece"},
]

[[package]]
name = "numpy"
version = "2.2.6"
optional = false
python-versions = ">=3.10"
files = [
    {file = "numpy-2.2.6-cp310-cp310-macosx_10_9_x86_64.whl", hash = "sha256:b412caa66f72040e6d268491a59f2c43bf03eb6c96dd8f0307829feb7fa2b6fb"},
]

[[package]]
name = "parso"
version = "0.8.7"
optional = false
python-versions = ">=3.6"
files = [
    {file = "parso-0.8.7-py2.py3-none-any.whl", hash = "sha256:a8926eb2a1b915486941fdbd31e86a4baf88fe8c210f25f2f35ecec5b574ca1c"},
]

[[package]]
name = "pexpect"
version = "4.9.0"
optional = false
python-versions = "*"
files = [
    {file = "pexpect-4.9.0-py2.py3-none-any.whl", hash = "sha256:7236d1e080e4936be2dc3e326cec0af72acf9212a7e1d060210e70a47e253523"},
]

[package.dependencies]
ptyprocess = ">=0.5"

[[package]]
name = "prompt-toolkit"
version = "3.0.52"
optional = false
python-versions = ">=3.8"
files = [
    {file = "prompt_toolkit-3.0.52-py3-none-any.whl", hash = "sha256:9aac639a3bbd33284347de5ad8d68ecc044b91a762dc39b7c21095fcd6a19955"},
]

[package.dependencies]
wcwidth = "*"

[[package]]
name = "ptyprocess"
version = "0.7.0"
optional = false
python-versions = "*"
files = [
    {file = "ptyprocess-0.7.0-py2.py3-none-any.whl", hash = "sha256:4b41f3967fce3af57cc7e94b888626c18bf37a083e3651ca8feeb66d492fef35"},
]

[[package]]
name = "pure-eval"
version = "0.2.4"
optional = false
python-versions = "*"
files = [
    {file = "pure_eval-0.2.4-py3-none-any.whl", hash = "sha256:96cae060a313cfaad51bb761278bfb0e62dc0248d9315a81173752dc546cd37a"},
]

[[package]]
name = "pygments"
version = "2.21.0"
optional = false
python-versions = ">=3.9"
files = [
    {file = "pygments-2.21.0-py3-none-any.whl", hash = "sha256:2363c69b61c4a97c838da3b130dcd6468f4848992b21a82f2a63ec34377137d9"},
]

[[package]]
name = "pywin32-ctypes"
version = "0.2.3"
optional = false
python-versions = ">=3.6"
files = [
    {file = "pywin32_ctypes-0.2.3-py3-none-any.whl", hash = "sha256:8a1513379d709975552d202d942d9837758905c8d01eb82b8bcc30918929e7b8"},
]

[[package]]
name = "rich"
version = "15.0.0"
optional = false
python-versions = ">=3.9.0"
files = [
    {file = "rich-15.0.0-py3-none-any.whl", hash = "sha256:33bd4ef74232fb73fe9279a257718407f169c09b78a87ad3d296f548e27de0bb"},
]

[package.dependencies]
ipywidgets = {version = ">=7.5.1,<9", optional = true, markers = "extra == \"jupyter\""}
markdown-it-py = ">=2.2.0"
pygments = ">=2.13.0,<3.0.0"

[package.extras]
jupyter = ["ipywidgets (>=7.5.1,<9)"]

[[package]]
name = "ruamel-yaml"
version = "0.18.17"
optional = true
python-versions = ">=3.9"
files = [
    {file = "ruamel_yaml-0.18.17-py3-none-any.whl", hash = "sha256:9c8ba9eb3e793efdf924b60d521820869d5bf0cb9c6f1b82d82de8295e290b9d"},
]

[package.dependencies]
"ruamel.yaml.clib" = {version = ">=0.2.15", markers = "platform_python_implementation == \"CPython\" and python_version < \"3.15\""}

[[package]]
name = "ruamel-yaml-clib"
version = "0.2.15"
optional = true
python-versions = ">=3.9"
files = [
    {file = "ruamel_yaml_clib-0.2.15-cp310-cp310-macosx_10_9_x86_64.whl", hash = "sha256:88eea8baf72f0ccf232c22124d122a7f26e8a24110a0273d9bcddcb0f7e1fa03"},
]

[[package]]
name = "stack-data"
version = "0.6.3"
optional = false
python-versions = "*"
files = [
    {file = "stack_data-0.6.3-py3-none-any.whl", hash = "sha256:d5558e0c25a4cb0853cddad3d77da9891a08cb85dd9f9f91b9f8cd66e511e695"},
]

[package.dependencies]
asttokens = ">=2.1.0"
executing = ">=1.2.0"
pure-eval = "*"

[[package]]
name = "traitlets"
version = "5.15.1"
optional = false
python-versions = ">=3.9"
files = [
    {file = "traitlets-5.15.1-py3-none-any.whl", hash = "sha256:770a53705f84b81ac107e83a1b3328ff2dae16094d8fc3cfc004e4b22dfd8e92"},
]

[[package]]
name = "typing-extensions"
version = "4.16.0"
optional = false
python-versions = ">=3.9"
files = [
    {file = "typing_extensions-4.16.0-py3-none-any.whl", hash = "sha256:481caa481374e813c1b176ada14e97f1f67a4539ce9cfeb3f350d78d6370c2e8"},
]

[[package]]
name = "wcwidth"
version = "0.9.4"
optional = false
python-versions = ">=3.9"
files = [
    {file = "wcwidth-0.9.4-cp310-abi3-macosx_10_9_x86_64.whl", hash = "sha256:b7969c9aa258d536df54c8ac8af5cad0c74a6268c9972e1fb60a5f29feffb66d"},
]

[[package]]
name = "widgetsnbextension"
version = "4.0.16"
optional = false
python-versions = ">=3.7"
files = [
    {file = "widgetsnbextension-4.0.16-py3-none-any.whl", hash = "sha256:a31a8774885b96fe825462f5d6496166f0c7cae111195b6465c801d230eb5a4e"},
]

[extras]
yaml = ["Ruamel.Yaml"]

[metadata]
lock-version = "2.0"
python-versions = "^3.9"
content-hash = "3f4f10816c398d27beac108229a517d36f59dd2aa1af2c9bb4ac707133745ff6"
"##;

/// Poetry 2.5.1, [tool.poetry] only: a directory and a git dependency, per-group markers.
const PYPROJECT_3: &str = r##"[tool.poetry]
name = "app3"
version = "0.1.0"
description = "poetry 2 with tool.poetry only: markers per group, directory and git deps"
authors = ["Ä Ünïcode <a@example.org>"]
package-mode = false

[tool.poetry.dependencies]
python = ">=3.9,<4.0"
click = "^8.1"
locallib = { path = "../locallib" }
gitlib = { git = "file:///tmp/poetry-work/gitlib", optional = true }
numpy = [
    { version = "<2.1", python = "<3.10" },
    { version = ">=2.1", python = ">=3.10" },
]
rich = { version = ">=13", extras = ["jupyter"], markers = "platform_machine == 'x86_64'" }

[tool.poetry.extras]
git = ["gitlib"]

[tool.poetry.group.dev.dependencies]
colorama = "*"
"Zope.Interface" = { version = ">=6", python = ">=3.9" }

[[tool.poetry.source]]
name = "idx"
url = "https://index.example/simple"
priority = "primary"
"##;

/// `poetry lock` (2.5.1) of [`PYPROJECT_3`], a few of its packages kept.
const LOCK_3: &str = r##"# This file is automatically @generated by Poetry 2.5.1 and should not be changed by hand.

[[package]]
name = "click"
version = "8.1.8"
optional = false
python-versions = ">=3.7"
groups = ["main"]
markers = "python_version == \"3.9\""
files = [
    {file = "click-8.1.8-py3-none-any.whl", hash = "sha256:63c132bbbed01578a06712a2d1f497bb62d9c1c0d329b7903a866228027263b2"},
]

[package.dependencies]
colorama = {version = "*", markers = "platform_system == \"Windows\""}

[package.source]
type = "legacy"
url = "https://index.example/simple"
reference = "idx"

[[package]]
name = "click"
version = "8.5.1"
optional = false
python-versions = ">=3.10"
groups = ["main"]
markers = "python_version >= \"3.10\""
files = [
    {file = "click-8.5.1-py3-none-any.whl", hash = "sha256:8bb5376d2006950386f8c6427613334a2acadc5f559cb80e638d00b4df957e37"},
]

[package.source]
type = "legacy"
url = "https://index.example/simple"
reference = "idx"

[[package]]
name = "colorama"
version = "0.4.6"
optional = false
python-versions = "!=3.0.*,!=3.1.*,!=3.2.*,!=3.3.*,!=3.4.*,!=3.5.*,!=3.6.*,>=2.7"
groups = ["main", "dev"]
files = [
    {file = "colorama-0.4.6-py2.py3-none-any.whl", hash = "sha256:4f1d9991f5acc0ca119f9d443620b77f9d6b33703e51011c16baf57afb285fc6"},
]
markers = {main = "platform_machine == \"x86_64\" and sys_platform == \"win32\" or platform_system == \"Windows\" and python_version == \"3.9\""}

[package.source]
type = "legacy"
url = "https://index.example/simple"
reference = "idx"

[[package]]
name = "gitlib"
version = "0.3.0"
optional = true
python-versions = "*"
groups = ["main"]
markers = "extra == \"git\""
files = []
develop = false

[package.source]
type = "git"
url = "file://None/tmp/poetry-work/gitlib"
reference = "HEAD"
resolved_reference = "6458f6be6941d6a5f1da424ca5404953263c7ba7"

[[package]]
name = "locallib"
version = "0.3.0"
optional = false
python-versions = "*"
groups = ["main"]
files = []
develop = false

[package.source]
type = "directory"
url = "../locallib"

[[package]]
name = "numpy"
version = "2.0.2"
optional = false
python-versions = ">=3.9"
groups = ["main"]
markers = "python_version == \"3.9\""
files = [
    {file = "numpy-2.0.2-cp310-cp310-macosx_10_9_x86_64.whl", hash = "sha256:51129a29dbe56f9ca83438b706e2e69a39892b5eda6cedcb6b0c9fdc9b0d3ece"},
]

[package.source]
type = "legacy"
url = "https://index.example/simple"
reference = "idx"

[[package]]
name = "numpy"
version = "2.2.6"
optional = false
python-versions = ">=3.10"
groups = ["main"]
markers = "python_version >= \"3.10\""
files = [
    {file = "numpy-2.2.6-cp310-cp310-macosx_10_9_x86_64.whl", hash = "sha256:b412caa66f72040e6d268491a59f2c43bf03eb6c96dd8f0307829feb7fa2b6fb"},
]

[package.source]
type = "legacy"
url = "https://index.example/simple"
reference = "idx"

[[package]]
name = "zope-interface"
version = "8.0.1"
optional = false
python-versions = ">=3.9"
groups = ["dev"]
markers = "python_version == \"3.9\""
files = [
    {file = "zope_interface-8.0.1-cp310-cp310-macosx_10_9_x86_64.whl", hash = "sha256:fd7195081b8637eeed8d73e4d183b07199a1dc738fb28b3de6666b1b55662570"},
]

[package.source]
type = "legacy"
url = "https://index.example/simple"
reference = "idx"

[[package]]
name = "zope-interface"
version = "8.6"
optional = false
python-versions = ">=3.10"
groups = ["dev"]
markers = "python_version >= \"3.10\""
files = [
    {file = "zope_interface-8.6-cp310-cp310-macosx_10_9_x86_64.whl", hash = "sha256:42fb95008784a3b50c4b79e4488845d1950c57eef17ebc9c53a680084fb93da2"},
]

[package.source]
type = "legacy"
url = "https://index.example/simple"
reference = "idx"

[extras]
git = ["gitlib"]

[metadata]
lock-version = "2.1"
python-versions = ">=3.9,<4.0"
content-hash = "549d76272dbd9901ddf134bd978d002e9d2ae63a13d6fa608c8f0d2e58c45a97"
"##;

/// Poetry 2.2.1, which did not hash [dependency-groups] yet.
const PYPROJECT_22: &str = r##"[project]
name = "app22"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = ["idna>=3"]

[project.optional-dependencies]
cli = ["click>=8"]

[dependency-groups]
test = ["iniconfig>=2", "colorama; sys_platform == 'win32'"]

[tool.poetry]
package-mode = false

[[tool.poetry.source]]
name = "idx"
url = "https://index.example/simple"
priority = "primary"
"##;

/// `poetry lock` (2.2.1) of [`PYPROJECT_22`].
const LOCK_22: &str = r##"# This file is automatically @generated by Poetry 2.2.1 and should not be changed by hand.

[[package]]
name = "click"
version = "8.5.1"
optional = true
python-versions = ">=3.10"
groups = ["main"]
markers = "extra == \"cli\""
files = [
    {file = "click-8.5.1-py3-none-any.whl", hash = "sha256:8bb5376d2006950386f8c6427613334a2acadc5f559cb80e638d00b4df957e37"},
]

[package.source]
type = "legacy"
url = "https://index.example/simple"
reference = "idx"

[[package]]
name = "colorama"
version = "0.4.6"
optional = false
python-versions = "!=3.0.*,!=3.1.*,!=3.2.*,!=3.3.*,!=3.4.*,!=3.5.*,!=3.6.*,>=2.7"
groups = ["test"]
markers = "sys_platform == \"win32\""
files = [
    {file = "colorama-0.4.6-py2.py3-none-any.whl", hash = "sha256:4f1d9991f5acc0ca119f9d443620b77f9d6b33703e51011c16baf57afb285fc6"},
]

[package.source]
type = "legacy"
url = "https://index.example/simple"
reference = "idx"

[[package]]
name = "idna"
version = "3.20"
optional = false
python-versions = ">=3.9"
groups = ["main"]
files = [
    {file = "idna-3.20-py3-none-any.whl", hash = "sha256:ab7ae7122974553370f0bdb919e1a960b2cd1bc1ef0276416d896db81c14582c"},
]

[package.source]
type = "legacy"
url = "https://index.example/simple"
reference = "idx"

[[package]]
name = "iniconfig"
version = "2.3.1"
optional = false
python-versions = ">=3.10"
groups = ["test"]
files = [
    {file = "iniconfig-2.3.1-py3-none-any.whl", hash = "sha256:9121e2c1fdb355232495be3194c8dfe87ccc2d5dee45947b78e68f499790d7a7"},
]

[package.source]
type = "legacy"
url = "https://index.example/simple"
reference = "idx"

[extras]
cli = ["click"]

[metadata]
lock-version = "2.1"
python-versions = ">=3.11"
content-hash = "676254ece9ab172c6464e39a47862a1f2e3112946e67680a7303298d08ad8d56"
"##;

#[test]
fn the_base_python_must_be_one_the_project_allows() {
    let meta = "lock-version = \"2.1\"\npython-versions = \">=3.10\"";
    assert!(LOCK_2.contains(meta));
    for (allowed, ok) in [
        ("^3.12", false),
        (">=3.10,<3.11", false),
        ("~3.11", true),
        ("*", true),
    ] {
        let lock = LOCK_2.replace(
            meta,
            &format!("lock-version = \"2.1\"\npython-versions = \"{allowed}\""),
        );
        let got = pick(&lock, PYPROJECT_2, &select(&[], &[]));
        match (ok, got) {
            (true, Ok(_)) => {}
            (false, Err(e)) => assert_eq!(
                e.to_string(),
                format!(
                    "poetry.lock is locked for Python `{allowed}`, and the base's Python is 3.11.2"
                )
            ),
            (_, other) => panic!("{allowed}: {other:?}"),
        }
    }
}
