//! Exactness against pip: the packages of `tests/fixtures/exactness` (namespace packages, a
//! `.pth` file, `.data/` scripts and headers, console and GUI scripts, extensions vendoring
//! shared libraries in `*.libs/`, numpy, pandas, pyarrow, lxml, psycopg2-binary, and docopt,
//! published only as an sdist) are installed by lockship into its image and by the real pip,
//! from the very same wheel files, into a fresh venv at the same path in a container of the
//! same image; the two trees are compared file by file (path, type, mode, contents, link
//! target). Bytecode is left out on both sides. Every difference that remains is one the
//! README lists with its reason (`EXPECTED` here); anything else fails the test.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;
use support::*;

/// pip, from its own wheel (pip runs from a wheel on `sys.path`), at a version from before
/// the fixture's lock cutoff.
const PIP: &str = "pip==25.1.1";

/// Lists /opt/venv as JSON: path → [kind, mode, sha256] or ["link", target]. Bytecode left out.
const WALK: &str = r#"
import hashlib, json, os, stat
root = "/opt/venv"
out = {}
for dirpath, dirnames, filenames in os.walk(root):
    dirnames[:] = [d for d in dirnames if d != "__pycache__"]
    for name in dirnames + filenames:
        path = os.path.join(dirpath, name)
        rel = os.path.relpath(path, root)
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            out[rel] = ["link", os.readlink(path)]
        elif stat.S_ISDIR(st.st_mode):
            out[rel] = ["dir", oct(st.st_mode & 0o7777)]
        elif not name.endswith(".pyc"):
            with open(path, "rb") as f:
                data = f.read()
            out[rel] = ["file", oct(st.st_mode & 0o7777), hashlib.sha256(data).hexdigest()]
            # What the comparison reads: RECORD files, and the scripts and the venv's own files.
            if name == "RECORD" or rel.startswith("bin/") or rel == "pyvenv.cfg":
                out[rel].append(data.decode("utf-8", "replace"))
print(json.dumps(out))
"#;

/// A fresh venv at /opt/venv (a tmpfs over lockship's), pip installing the wheels there.
const PIP_INSTALL: &str = r#"
import os, subprocess, sys, venv
venv.EnvBuilder(symlinks=True, with_pip=False).create("/opt/venv")
pip = [os.path.join("/pip", f) for f in os.listdir("/pip")][0]
wheels = sorted(os.path.join("/wheels", f) for f in os.listdir("/wheels"))
subprocess.run(
    ["/opt/venv/bin/python", pip + "/pip", "install", "--no-deps", "--no-index", "--no-compile",
     "--no-cache-dir", "--disable-pip-version-check", "--quiet", *wheels],
    check=True, stdout=sys.stderr,
)
"#;

/// Files whose contents differ on purpose, each with its reason (also in the README's
/// "Exactness against pip"). A path matches by its end.
const DIFFERENT: &[(&str, &str)] = &[
    (
        "/INSTALLER",
        "each installer writes its own name (pip: `pip`, lockship: `lockship`)",
    ),
    (
        "/RECORD",
        "lists INSTALLER and the scripts, whose hashes differ, and what pip alone adds; compared line by line below",
    ),
];

/// Files only pip writes, with the reason.
const PIP_ONLY: &[(&str, &str)] = &[
    (
        "/direct_url.json",
        "pip records that it installed from a local file (PEP 610); the image records the lock instead",
    ),
    (
        "/REQUESTED",
        "pip marks the wheels named on its command line; in an image every package comes from the lock",
    ),
    (
        "bin/activate",
        "python -m venv writes activation scripts; an image's PATH and entrypoint name the venv's bin/",
    ),
    ("bin/activate.csh", "as bin/activate"),
    ("bin/activate.fish", "as bin/activate"),
    ("bin/Activate.ps1", "as bin/activate"),
    (
        "include/python3.11",
        "an empty directory of the venv skeleton Debian's venv module makes",
    ),
];

/// The venv's own links: lockship makes them as upstream CPython's venv module does (python →
/// the interpreter, python3 and python3.X → python); Debian's venv module points python3.X at
/// the interpreter and the others at it. Every name resolves to the same interpreter.
const LINKS: &[&str] = &["bin/python", "bin/python3", "bin/python3.11"];

fn matches(path: &str, pattern: &str) -> bool {
    path == pattern || (pattern.starts_with('/') && path.ends_with(pattern))
}

/// A RECORD's lines as path → hash, without the lines that differ for the reasons above.
fn record_lines(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| {
            let mut parts = l.rsplitn(3, ',');
            let (_, hash, path) = (parts.next()?, parts.next()?, parts.next()?);
            Some((path.to_string(), hash.to_string()))
        })
        .filter(|(path, _)| {
            !path.ends_with("/INSTALLER")
                && !path.ends_with("/direct_url.json")
                && !path.ends_with("/REQUESTED")
                && !path.contains("__pycache__")
        })
        .map(|(path, hash)| {
            // A script's hash differs with its launcher (see `same_script`).
            let hash = if path.contains("/bin/") {
                String::new()
            } else {
                hash
            };
            (path, hash)
        })
        .collect()
}

/// Entry-point scripts: uv's launcher template (what `uv pip install` writes) rather than
/// pip's (distlib's). The same shebang and the same `from MODULE import FUNCTION` call; they
/// differ only in how `-script.pyw`/`.exe` suffixes of argv[0] are stripped (pip imports `re`).
fn same_script(ours: &str, pips: &str) -> bool {
    let import = |t: &str| {
        t.lines()
            .find(|l| l.starts_with("from ") && l.contains(" import "))
            .map(String::from)
    };
    ours.lines().next() == pips.lines().next()
        && import(ours).is_some()
        && import(ours) == import(pips)
}

fn tree(stdout: &str) -> BTreeMap<String, Value> {
    serde_json::from_str::<BTreeMap<String, Value>>(stdout.trim())
        .unwrap_or_else(|e| panic!("walker output is not JSON ({e}): {stdout}"))
}

/// The wheel files of the plan, copied out of lockship's cache under their names. A package
/// built from its sdist is planned as the sdist (`--dry-run` builds nothing): its wheel is the
/// one `cache/built-wheels` records for that name and version.
fn wheels_of(plan: &Value, cache: &Path, dest: &Path) -> usize {
    std::fs::create_dir_all(dest).unwrap();
    let built: Vec<Value> = std::fs::read_dir(cache.join("built-wheels"))
        .into_iter()
        .flatten()
        .filter_map(|e| serde_json::from_slice(&std::fs::read(e.ok()?.path()).ok()?).ok())
        .collect();
    let mut n = 0;
    for layer in plan["layers"].as_array().unwrap() {
        for wheel in layer["content"]["wheels"].as_array().into_iter().flatten() {
            let mut wheel = wheel.clone();
            if !wheel["filename"].as_str().unwrap().ends_with(".whl") {
                let prefix = format!(
                    "{}-{}-",
                    wheel["name"].as_str().unwrap().replace('-', "_"),
                    wheel["version"].as_str().unwrap()
                );
                wheel = built
                    .iter()
                    .find(|b| b["filename"].as_str().unwrap().starts_with(&prefix))
                    .unwrap_or_else(|| panic!("no built wheel for {prefix}"))
                    .clone();
            }
            let sha = wheel["sha256"].as_str().unwrap();
            let hex = sha.strip_prefix("sha256:").unwrap_or(sha);
            let blob = cache.join("blobs/sha256").join(hex);
            std::fs::copy(&blob, dest.join(wheel["filename"].as_str().unwrap()))
                .unwrap_or_else(|e| panic!("{}: {e}", blob.display()));
            n += 1;
        }
    }
    n
}

#[test]
fn lockship_installs_what_pip_installs() {
    if services_missing() {
        return;
    }
    let project = fixture("exactness", true);
    let cache = shared_cache();
    let tag = format!("{}:1", unique("exactness"));
    let tar = project.tmp.path().join("image.tar");
    run_ok(
        lockship(&cache)
            .arg("build")
            .arg(&project.dir)
            .args(["--no-bytecode", "--tag", &tag])
            .arg("--output")
            .arg(format!("docker:{}", tar.display())),
    );
    let plan = json(&run_ok(
        lockship(&cache).arg("build").arg(&project.dir).args([
            "--no-bytecode",
            "--dry-run",
            "--format",
            "json",
        ]),
    ));
    let wheels = project.tmp.path().join("wheels");
    let count = wheels_of(&plan, &cache, &wheels);
    assert!(count >= 15, "{count} wheels in the plan: {plan}");
    assert!(
        std::fs::read_dir(&wheels).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("docopt-0.6.2-")),
        "docopt's wheel, built from its sdist, is among them"
    );
    let pip = project.tmp.path().join("pip");
    let index = std::env::var("UV_DEFAULT_INDEX").unwrap_or("https://pypi.org/simple".into());
    run_ok(
        Command::new("python3")
            .args([
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--only-binary",
                ":all:",
            ])
            .args(["--index-url", &index, "-d"])
            .arg(&pip)
            .arg(PIP),
    );
    docker_load(&tar);
    assert!(docker_run(&tag, None, &[]).starts_with("ok "));

    let ours = tree(&docker(&[
        "run",
        "--rm",
        "--pull",
        "never",
        "--network",
        "none",
        "--user",
        "0:0",
        "--entrypoint",
        "/usr/bin/python3.11",
        &tag,
        "-c",
        WALK,
    ]));
    let script = format!("{PIP_INSTALL}\n{WALK}");
    let wheels_mount = format!("{}:/wheels:ro", wheels.display());
    let pip_mount = format!("{}:/pip:ro", pip.display());
    let theirs = tree(&docker(&[
        "run",
        "--rm",
        "--pull",
        "never",
        "--network",
        "none",
        "--user",
        "0:0",
        "--tmpfs",
        "/opt/venv:rw,exec,mode=755",
        "-v",
        &wheels_mount,
        "-v",
        &pip_mount,
        "--entrypoint",
        "/usr/bin/python3.11",
        &tag,
        "-c",
        &script,
    ]));
    docker(&["rmi", &tag]);

    let site = "lib/python3.11/site-packages/";
    assert!(
        ours.keys().filter(|p| p.starts_with(site)).count() > 5000,
        "{}",
        ours.len()
    );
    let text = |v: Option<&Value>| {
        v.and_then(|v| v.get(3))
            .and_then(Value::as_str)
            .map(String::from)
    };
    let mut unexpected = Vec::new();
    let mut explained = 0;
    for path in ours
        .keys()
        .chain(theirs.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let (a, b) = (ours.get(path), theirs.get(path));
        if a == b {
            continue;
        }
        let same_kind_and_mode = a.zip(b).is_some_and(|(a, b)| a[0] == b[0] && a[1] == b[1]);
        let fine = match (a, b) {
            (None, Some(_)) => PIP_ONLY.iter().any(|(p, _)| matches(path, p)),
            (Some(_), Some(_)) if LINKS.contains(&path.as_str()) => true,
            (Some(_), Some(_)) if path.ends_with("/RECORD") => {
                same_kind_and_mode
                    && record_lines(&text(a).unwrap()) == record_lines(&text(b).unwrap())
            }
            (Some(_), Some(_)) if path.starts_with("bin/") => {
                same_kind_and_mode && same_script(&text(a).unwrap(), &text(b).unwrap())
            }
            (Some(_), Some(_)) if path == "pyvenv.cfg" => {
                // python -m venv adds the command that made it; nothing made lockship's.
                let pips = text(b).unwrap();
                let without: String = pips
                    .lines()
                    .filter(|l| !l.starts_with("command = "))
                    .map(|l| format!("{l}\n"))
                    .collect();
                same_kind_and_mode && text(a).unwrap() == without
            }
            (Some(_), Some(_)) => {
                same_kind_and_mode && DIFFERENT.iter().any(|(p, _)| matches(path, p))
            }
            _ => false,
        };
        if fine {
            explained += 1;
        } else {
            unexpected.push(format!("{path}: lockship {a:?}, pip {b:?}"));
        }
    }
    assert!(
        unexpected.is_empty(),
        "{} unexpected differences ({explained} explained ones):\n{}",
        unexpected.len(),
        unexpected.join("\n")
    );
    // RECORDs were compared line by line, not waved through.
    let numpy_record = ours
        .keys()
        .find(|p| p.contains("/numpy-") && p.ends_with(".dist-info/RECORD"))
        .unwrap();
    assert!(record_lines(&text(ours.get(numpy_record)).unwrap()).len() > 500);
    // The awkward layouts are there, the same on both sides.
    for path in [
        "lib/python3.11/site-packages/distutils-precedence.pth",
        "lib/python3.11/site-packages/jaraco/functools/__init__.py",
        "lib/python3.11/site-packages/numpy.libs",
        "lib/python3.11/site-packages/psycopg2_binary.libs",
        "bin/get_objgraph",
        "bin/pyflakes",
        "bin/pyzo",
        "include/site/python3.11/greenlet/greenlet.h",
    ] {
        assert!(ours.contains_key(path), "{path} missing");
    }
    assert!(!ours.contains_key("lib/python3.11/site-packages/jaraco/__init__.py"));
}
