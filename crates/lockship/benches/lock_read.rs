//! Reading a 300-package lock in every format lockship reads, into the packages a target needs
//! (parse, marker evaluation, graph walk): uv.lock is the peer the others are held to, and each
//! must stay well under 10 ms. The locks are generated here, shaped like real ones (five wheels
//! a package, a marker on every tenth dependency); no network.

use std::fmt::Write;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use lockship_python::lock::{LockFile, LockKind, Selection};

const PACKAGES: usize = 300;
const HASH: &str = "8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254";

fn name(i: usize) -> String {
    format!("package-{i:03}")
}

fn wheel_names(i: usize) -> Vec<String> {
    [
        "cp311-cp311-manylinux_2_17_x86_64",
        "cp311-cp311-manylinux_2_17_aarch64",
        "cp311-cp311-musllinux_1_2_x86_64",
        "cp311-cp311-win_amd64",
        "py3-none-any",
    ]
    .iter()
    .map(|tag| format!("package_{i:03}-1.{i}.0-{tag}.whl"))
    .collect()
}

/// The dependencies of package `i`: the next two, one of them only on Windows every tenth time.
fn deps(i: usize) -> Vec<(String, Option<&'static str>)> {
    (i + 1..(i + 3).min(PACKAGES))
        .map(|j| (name(j), (j % 10 == 0).then_some("sys_platform == 'win32'")))
        .collect()
}

fn uv_lock() -> String {
    let mut s = String::from("version = 1\nrevision = 2\nrequires-python = \">=3.11\"\n\n[[package]]\nname = \"app\"\nversion = \"1.0\"\nsource = { editable = \".\" }\ndependencies = [{ name = \"package-000\" }]\n");
    for i in 0..PACKAGES {
        let _ = write!(
            s,
            "\n[[package]]\nname = \"{}\"\nversion = \"1.{i}.0\"\nsource = {{ registry = \"https://index.example/simple\" }}\n",
            name(i)
        );
        let d: Vec<String> = deps(i)
            .iter()
            .map(|(n, m)| match m {
                Some(m) => format!("{{ name = \"{n}\", marker = \"{m}\" }}"),
                None => format!("{{ name = \"{n}\" }}"),
            })
            .collect();
        let _ = writeln!(s, "dependencies = [{}]", d.join(", "));
        let w: Vec<String> = wheel_names(i)
            .iter()
            .map(|f| format!("  {{ url = \"https://files.example/{f}\", hash = \"sha256:{HASH}\", size = 1000 }},"))
            .collect();
        let _ = writeln!(s, "wheels = [\n{}\n]", w.join("\n"));
    }
    s
}

fn pylock() -> String {
    let mut s = String::from(
        "lock-version = \"1.0\"\ncreated-by = \"bench\"\nrequires-python = \">=3.11\"\n",
    );
    for i in 0..PACKAGES {
        let marker = if i % 10 == 0 && i > 0 {
            "marker = \"sys_platform == 'win32'\"\n"
        } else {
            ""
        };
        let _ = write!(
            s,
            "\n[[packages]]\nname = \"{}\"\nversion = \"1.{i}.0\"\n{marker}",
            name(i)
        );
        let w: Vec<String> = wheel_names(i)
            .iter()
            .map(|f| format!("  {{ url = \"https://files.example/{f}\", size = 1000, hashes = {{ sha256 = \"{HASH}\" }} }},"))
            .collect();
        let _ = writeln!(s, "wheels = [\n{}\n]", w.join("\n"));
    }
    s
}

fn pipfile_lock() -> String {
    let mut default = serde_json::Map::new();
    for i in 0..PACKAGES {
        let mut entry = serde_json::json!({
            "version": format!("==1.{i}.0"),
            "hashes": (0..5).map(|_| format!("sha256:{HASH}")).collect::<Vec<_>>(),
            "index": "pypi",
        });
        if i % 10 == 0 && i > 0 {
            entry["markers"] = "sys_platform == 'win32'".into();
        }
        default.insert(name(i), entry);
    }
    serde_json::json!({
        "_meta": {
            "hash": {"sha256": HASH},
            "pipfile-spec": 6,
            "requires": {"python_version": "3.11"},
            "sources": [{"name": "pypi", "url": "${PIP_INDEX_URL}", "verify_ssl": true}],
        },
        "default": default,
        "develop": {},
    })
    .to_string()
}

fn requirements_txt() -> String {
    let mut s = String::new();
    for i in 0..PACKAGES {
        let marker = if i % 10 == 0 && i > 0 {
            " ; sys_platform == 'win32'"
        } else {
            ""
        };
        let _ = writeln!(
            s,
            "{}==1.{i}.0{marker} \\\n    --hash=sha256:{HASH}",
            name(i)
        );
    }
    s
}

fn lock(file: &str, kind: LockKind, text: String) -> LockFile {
    LockFile {
        path: Path::new("/project").join(file),
        kind,
        digest: lockship_oci::digest::Digest::of_bytes(text.as_bytes()),
        text,
        made_from: None,
    }
}

fn bench_read(c: &mut Criterion) {
    let env = lockship_python::target::bookworm().marker_env();
    let vars = |_: &str| Some("https://index.example/simple".to_string());
    let mut group = c.benchmark_group(format!("read a {PACKAGES}-package lock"));
    for (label, lock) in [
        (
            "uv.lock (peer)",
            lock("uv.lock", LockKind::UvLock, uv_lock()),
        ),
        (
            "pylock.toml",
            lock("pylock.toml", LockKind::PyLock, pylock()),
        ),
        (
            "Pipfile.lock",
            lock("Pipfile.lock", LockKind::PipfileLock, pipfile_lock()),
        ),
        (
            "requirements.txt",
            lock(
                "requirements.txt",
                LockKind::RequirementsTxt,
                requirements_txt(),
            ),
        ),
    ] {
        let found = lock
            .packages(&env, Some("app"), &Selection::default(), &vars)
            .unwrap();
        assert!(
            found.len() > PACKAGES / 2,
            "{label}: {} packages",
            found.len()
        );
        group.bench_function(label, |b| {
            b.iter(|| {
                lock.packages(&env, Some("app"), &Selection::default(), &|_| None)
                    .unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_read);
criterion_main!(benches);
