//! Bytecode in the image: compiled by the base's own interpreter on the host, unchecked-hash
//! pycs (PEP 552) in each package's own layer, the same bytes from clean builds, used by the
//! image's Python, and left out with `--no-bytecode`.

mod support;

use std::collections::BTreeSet;

use support::*;

/// `x/y.py` → `x/__pycache__/y.cpython-311.pyc`.
fn pyc_of(py: &str) -> String {
    let (dir, file) = py.rsplit_once('/').unwrap();
    format!(
        "{dir}/__pycache__/{}.cpython-311.pyc",
        file.trim_end_matches(".py")
    )
}

fn build(
    project: &Project,
    cache: &std::path::Path,
    oci: &std::path::Path,
    extra: &[&str],
) -> serde_json::Value {
    let env = env();
    json(&run_ok(
        lockship(cache)
            .arg("build")
            .arg(&project.dir)
            .args(["--base", &env.base, "--format", "json", "--no-test"])
            .arg("--output")
            .arg(format!("oci:{}", oci.display()))
            .args(extra),
    ))
}

#[test]
fn bytecode_is_reproducible_unchecked_and_used_by_the_image() {
    if services_missing() {
        return;
    }
    let project = fixture("hello-cli", true);
    // Sources whose compiling needs the standard library's codecs (coding cookies, CJK ones
    // in extension modules) and unicodedata (`\N{}`): the unpacked interpreter must have them.
    let package = project.dir.join("src/hello_cli");
    for (name, source) in [
        (
            "coded_euc_jp.py",
            &b"# -*- coding: euc-jp -*-\nGREETING = '\xa4\xb3\xa4\xf3\xa4\xcb\xa4\xc1\xa4\xcf'\n"[..],
        ),
        (
            "coded_cp932.py",
            &b"# coding: cp932\nGREETING = '\x82\xb1\x82\xf1\x82\xc9\x82\xbf\x82\xcd'\n"[..],
        ),
        (
            "coded_gb18030.py",
            &b"# coding: gb18030\nGREETING = '\xc4\xe3\xba\xc3'\n"[..],
        ),
        (
            "coded_latin1.py",
            &b"# coding: latin-1\nNAME = 'caf\xe9'\n"[..],
        ),
        (
            "named_escape.py",
            &b"ALPHA = '\\N{GREEK SMALL LETTER ALPHA}'\n"[..],
        ),
    ] {
        std::fs::write(package.join(name), source).unwrap();
    }
    let out = project.tmp.path();
    // Two cold caches: nothing is shared between the builds but the inputs. The first build
    // unpacks the base's interpreter in the pass that probes the base; in the second cache a
    // dry run without bytecode probed the base, so the interpreter is unpacked on its own.
    let (cache1, cache2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = build(&project, cache1.path(), &out.join("a.oci"), &[]);
    let interpreters = |cache: &std::path::Path| {
        std::fs::read_dir(cache.join("interpreters"))
            .map(|d| d.flatten().filter(|e| e.path().is_dir()).count())
            .unwrap_or(0)
    };
    run_ok(
        lockship(cache2.path())
            .arg("build")
            .arg(&project.dir)
            .args(["--base", &env().base, "--dry-run", "--no-bytecode"]),
    );
    assert_eq!(interpreters(cache2.path()), 0, "probed without bytecode");
    let second = build(&project, cache2.path(), &out.join("b.oci"), &[]);
    assert_eq!(first["digest"], second["digest"], "clean builds agree");
    assert_eq!(interpreters(cache1.path()), 1);
    assert_eq!(interpreters(cache2.path()), 1);

    let layers = layout_layers(&out.join("a.oci"));
    let site = "opt/venv/lib/python3.11/site-packages/";
    let mut compiled = 0;
    for (i, layer) in layers.iter().enumerate().skip(1) {
        let paths: BTreeSet<&str> = layer.iter().map(|(p, _)| p.as_str()).collect();
        for (path, head) in layer {
            if path.starts_with(site) && path.ends_with(".py") {
                // Every module has its pyc beside it, in the same layer.
                assert!(
                    paths.contains(pyc_of(path).as_str()),
                    "layer {i}: no pyc for {path}"
                );
                compiled += 1;
            }
            if path.ends_with(".pyc") {
                // Python 3.11's magic number, then flags 0b01: hash-based, source unchecked.
                assert_eq!(&head[..4], b"\xa7\x0d\x0d\x0a", "{path}");
                assert_eq!(
                    &head[4..8],
                    [1, 0, 0, 0],
                    "{path} is not an unchecked-hash pyc"
                );
                assert!(path.starts_with(site), "{path} outside site-packages");
            }
        }
    }
    assert!(compiled > 100, "only {compiled} modules compiled");
    let app_pycs: BTreeSet<&str> = layers
        .iter()
        .flatten()
        .map(|(p, _)| p.as_str())
        .filter(|p| p.contains("hello_cli/__pycache__/"))
        .collect();
    for module in [
        "coded_euc_jp",
        "coded_cp932",
        "coded_gb18030",
        "coded_latin1",
        "named_escape",
    ] {
        let pyc = format!("{site}hello_cli/__pycache__/{module}.cpython-311.pyc");
        assert!(app_pycs.contains(pyc.as_str()), "no {pyc} in {app_pycs:?}");
    }

    // The image's Python loads the pycs and compiles nothing at import (as the non-root user,
    // who could not write a pyc anyway).
    let tar = out.join("img.tar");
    let tag = format!("{}:1", unique("bytecode"));
    run_ok(
        lockship(cache1.path())
            .arg("build")
            .arg(&project.dir)
            .args(["--base", &env().base, "--no-test", "--tag", &tag])
            .arg("--output")
            .arg(format!("docker:{}", tar.display())),
    );
    docker_load(&tar);
    let run = std::process::Command::new("docker")
        .args([
            "run",
            "--rm",
            "--network",
            "none",
            "--entrypoint",
            "/opt/venv/bin/python",
            &tag,
            "-v",
            "-c",
            "import rich.console, click, hello_cli.main",
        ])
        .output()
        .unwrap();
    assert!(run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains(&format!(
            "# /{site}rich/__pycache__/console.cpython-311.pyc matches /{site}rich/console.py"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("hello_cli/__pycache__/main.cpython-311.pyc matches"),
        "{stderr}"
    );
    let from_source: Vec<&str> = stderr
        .lines()
        .filter(|l| {
            l.starts_with("# code object from") && l.contains("/opt/venv/") && l.ends_with(".py'")
        })
        .collect();
    assert!(
        from_source.is_empty(),
        "compiled at import: {from_source:?}"
    );
    // Byte for byte what py_compile writes in the image itself (an unchecked-hash pyc).
    let same = docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--user",
        "0:0",
        "-e",
        "PYTHONHASHSEED=0",
        "--entrypoint",
        "/opt/venv/bin/python",
        &tag,
        "-c",
        r#"
import glob, os, py_compile
mode = py_compile.PycInvalidationMode.UNCHECKED_HASH
n = differ = 0
for src in sorted(glob.glob("/opt/venv/lib/python3.11/site-packages/**/*.py", recursive=True)):
    d, f = os.path.split(src)
    pyc = os.path.join(d, "__pycache__", f[:-3] + ".cpython-311.pyc")
    if os.path.exists(pyc):
        py_compile.compile(src, cfile="/tmp/x.pyc", dfile=src, invalidation_mode=mode)
        n += 1
        differ += open("/tmp/x.pyc", "rb").read() != open(pyc, "rb").read()
print(n, differ)
"#,
    ]);
    let counts: Vec<usize> = same
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    assert!(
        counts[0] > 100 && counts[1] == 0,
        "compared, differing: {same}"
    );
    docker(&["rmi", &tag]);

    // --no-bytecode: no pyc at all, and the runtime layer is the same one.
    let plain = build(
        &project,
        cache1.path(),
        &out.join("c.oci"),
        &["--no-bytecode"],
    );
    assert_ne!(plain["digest"], first["digest"]);
    assert_eq!(
        layer_digests(&plain)[1],
        layer_digests(&first)[1],
        "runtime layer shared"
    );
    // (The base's own layer has the standard library's, which Debian compiles on install.)
    let pycs: Vec<String> = layout_layers(&out.join("c.oci"))
        .into_iter()
        .skip(1)
        .flatten()
        .map(|(p, _)| p)
        .filter(|p| p.ends_with(".pyc"))
        .collect();
    assert!(pycs.is_empty(), "{pycs:?}");
}

#[test]
fn a_target_dependency_compiles_only_its_own_layers() {
    if services_missing() {
        return;
    }
    let project = fixture("hello-cli", true);
    let cache = tempfile::tempdir().unwrap();
    let production = build(
        &project,
        cache.path(),
        &project.tmp.path().join("p.oci"),
        &[],
    );
    let dev = build(
        &project,
        cache.path(),
        &project.tmp.path().join("d.oci"),
        &["--target", "dev"],
    );
    // Production's layers, with their bytecode, are reused as they are; only pytest and its
    // dependencies (and the app, whose layer follows them) are written.
    let built: Vec<&str> = dev["layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["built"] == true)
        .map(|l| l["description"].as_str().unwrap())
        .collect();
    assert!(!built.is_empty());
    for d in &built {
        assert!(
            ["pytest", "pluggy", "iniconfig", "packaging", "the project"]
                .iter()
                .any(|p| d.contains(p)),
            "{d} was written again: {built:?}"
        );
    }
    let production_digests: BTreeSet<String> = layer_digests(&production).into_iter().collect();
    let reused = layer_digests(&dev)
        .into_iter()
        .filter(|d| production_digests.contains(d))
        .count();
    assert!(reused >= production_digests.len() - 1, "{reused} reused");
    // pytest's own layer holds pytest's pycs.
    let layers = layout_layers(&project.tmp.path().join("d.oci"));
    assert!(layers.iter().any(|l| l
        .iter()
        .any(|(p, _)| p.ends_with("_pytest/__pycache__/main.cpython-311.pyc"))));
}

/// Adds a layer of `files` (path, contents) on top of the image tagged `tag` in the OCI layout
/// at `dir`: blob, config (diff id, history), manifest and index rewritten.
fn add_layer(dir: &std::path::Path, tag: &str, files: &[(&str, &[u8])]) {
    use lockship_oci::digest::Digest;
    let blob = |digest: &str| {
        dir.join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    };
    let put = |bytes: &[u8]| {
        let digest = Digest::of_bytes(bytes);
        std::fs::write(blob(&digest.to_string()), bytes).unwrap();
        (digest.to_string(), bytes.len())
    };
    let mut tar = tar::Builder::new(Vec::new());
    for (path, contents) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(contents.len() as u64);
        header.set_mode(0o644);
        tar.append_data(&mut header, path, *contents).unwrap();
    }
    let tar = tar.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    let (layer, layer_size) = put(&gz.finish().unwrap());
    let read = |digest: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(blob(digest)).unwrap()).unwrap()
    };
    let mut index = read_json(&dir.join("index.json"));
    let entry = index["manifests"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap();
    let mut manifest = read(entry["digest"].as_str().unwrap());
    let mut config = read(manifest["config"]["digest"].as_str().unwrap());
    config["rootfs"]["diff_ids"]
        .as_array_mut()
        .unwrap()
        .push(Digest::of_bytes(&tar).to_string().into());
    if let Some(history) = config["history"].as_array_mut() {
        history.push(serde_json::json!({"created_by": "a test's layer"}));
    }
    let (config_digest, config_size) = put(&serde_json::to_vec(&config).unwrap());
    manifest["config"]["digest"] = config_digest.into();
    manifest["config"]["size"] = config_size.into();
    manifest["layers"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": layer,
            "size": layer_size,
        }));
    let (manifest_digest, manifest_size) = put(&serde_json::to_vec(&manifest).unwrap());
    entry["digest"] = manifest_digest.into();
    entry["size"] = manifest_size.into();
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

fn read_json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The test base with a hostile `struct.py`, which the compile worker imports: it tries to
/// write `marker` on the host and makes every pyc it compiles its own. Written to a layout at
/// `dir` tagged `hostile`.
fn hostile_base(dir: &std::path::Path, marker: &std::path::Path) -> String {
    let env = env();
    run_ok(std::process::Command::new("skopeo").args([
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        &format!("docker://{}", env.base),
        &format!("oci:{}:hostile", dir.display()),
    ]));
    let payload = format!(
        "from _struct import *\nfrom _struct import _clearcache\nfrom _struct import __doc__\n\
         import builtins\n\
         try:\n    open({marker:?}, 'w').write('written by the base')\nexcept OSError:\n    pass\n\
         _compile = builtins.compile\n\
         def _poisoned(source, *args, **kwargs):\n\
         \x20   if isinstance(source, bytes):\n\
         \x20       source += b'\\nPOISONED = 1\\n'\n\
         \x20   return _compile(source, *args, **kwargs)\n\
         builtins.compile = _poisoned\n",
    );
    add_layer(
        dir,
        "hostile",
        &[("usr/lib/python3.11/struct.py", payload.as_bytes())],
    );
    format!("oci-layout://{}:hostile", dir.display())
}

#[test]
fn a_hostile_base_interpreter_writes_nothing_and_its_pycs_serve_no_other_base() {
    if services_missing() {
        return;
    }
    let project = fixture("hello-cli", true);
    let tmp = project.tmp.path();
    let marker = tmp.join("marker");
    let hostile = hostile_base(&tmp.join("hostile-layout"), &marker);
    let (shared, clean) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // The hostile base's interpreter runs, confined: its pycs are its own, the host untouched.
    let poisoned = json(&run_ok(
        lockship(shared.path())
            .arg("build")
            .arg(&project.dir)
            .args(["--base", &hostile, "--format", "json", "--no-test"])
            .arg("--output")
            .arg(format!("oci:{}", tmp.join("poisoned.oci").display())),
    ));
    assert!(
        !marker.exists(),
        "the base's interpreter wrote on the host (is Landlock enabled on this kernel?)"
    );
    // With the real base, in the cache the hostile build filled: what a clean cache gives.
    let after = build(&project, shared.path(), &tmp.join("after.oci"), &[]);
    let reference = build(&project, clean.path(), &tmp.join("clean.oci"), &[]);
    assert_eq!(after["digest"], reference["digest"]);
    // The poison took (every layer with pycs differs): only the base's own first layer and
    // the runtime layer, which has no bytecode, are the same blobs.
    let clean_layers = layer_digests(&reference);
    let common = layer_digests(&poisoned)
        .into_iter()
        .filter(|d| clean_layers.contains(d))
        .count();
    assert_eq!(common, 2, "{poisoned:#}\n{reference:#}");
}
