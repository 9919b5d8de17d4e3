//! Outputs never destroy what lockship did not make, and never share storage with the cache:
//! `oci:DIR` adds to an existing OCI layout or makes a new one and refuses anything else,
//! `docker:FILE` replaces only a tarball, output blobs are copies, and a cache entry damaged
//! on disk is caught when read, removed with a warning, and built or fetched again.

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::*;

fn build(cache: &Path, project: &Path, args: &[String]) -> Output {
    lockship(cache)
        .arg("build")
        .arg(project)
        .args(["--base", &env().base])
        .args(args)
        .output()
        .unwrap()
}

/// Every file under `dir` with its contents: to show that a failed build changed nothing.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    files_under(dir)
        .into_iter()
        .map(|f| {
            let bytes = std::fs::read(&f).unwrap();
            (f, bytes)
        })
        .collect()
}

#[test]
fn oci_output_refuses_what_is_not_a_layout_and_changes_nothing() {
    if services_missing() {
        return;
    }
    let project = fixture("hello-cli", true);
    let before = snapshot(project.tmp.path());
    let notes = project.tmp.path().join("notes");
    std::fs::create_dir_all(&notes).unwrap();
    std::fs::write(notes.join("todo.txt"), "mine").unwrap();
    let file = project.path("pyproject.toml");
    for (dest, shown) in [
        (project.dir.clone(), project.dir.display().to_string()),
        (notes.clone(), notes.display().to_string()),
        (file.clone(), file.display().to_string()),
    ] {
        let out = build(
            &shared_cache(),
            &project.dir,
            &["--output".into(), format!("oci:{}", dest.display())],
        );
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            err.lines().next().unwrap(),
            format!("error: {shown} exists and is not an OCI image layout: lockship adds images only to an OCI layout or a new directory"),
        );
        assert!(err.contains("hint: choose a new directory"), "{err}");
    }
    let mut after = snapshot(project.tmp.path());
    assert_eq!(after.remove(&notes.join("todo.txt")).unwrap(), b"mine");
    assert_eq!(after, before, "a refused output changed files");
    assert!(temp_leftovers(project.tmp.path()).is_empty());

    // A docker tarball replaces only a tarball.
    let out = build(
        &shared_cache(),
        &project.dir,
        &["--output".into(), format!("docker:{}", file.display())],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with(&format!(
        "error: {} exists and is not a tar archive",
        file.display()
    )));
    assert_eq!(
        snapshot(project.tmp.path()).remove(&file),
        before.get(&file).cloned()
    );
}

#[test]
fn oci_output_adds_to_an_existing_layout_and_keeps_its_images() {
    if services_missing() {
        return;
    }
    let env = env();
    let project = fixture("hello-cli", true);
    let layout = project.tmp.path().join("images");
    // Another tool's image first: the base, copied in by skopeo.
    run_ok(Command::new("skopeo").args([
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        &format!("docker://{}", env.base),
        &format!("oci:{}:base", layout.display()),
    ]));
    let out = |tag: &str, extra: &[&str]| {
        let mut args: Vec<String> = vec![
            "--tag".into(),
            format!("hello-cli:{tag}"),
            "--output".into(),
            format!("oci:{}", layout.display()),
            "--format".into(),
            "json".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let o = build(&shared_cache(), &project.dir, &args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        json(&String::from_utf8_lossy(&o.stdout))["digest"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let one = out("1", &[]);
    let dev = out("dev", &["--target", "dev"]);
    // The same tag again points at the new image; the old entry leaves the index.
    let dev_again = out("1", &["--target", "dev"]);
    assert_eq!(dev, dev_again);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let tags: BTreeMap<String, String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["annotations"]["org.opencontainers.image.ref.name"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                m["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(tags.keys().collect::<Vec<_>>(), ["1", "base", "dev"]);
    assert_eq!(tags["1"], dev);
    assert_eq!(tags["dev"], dev);
    assert_ne!(one, dev);
    // Every image in the layout is whole: other tools read each of them.
    for tag in ["base", "1", "dev"] {
        let inspect =
            json(&run_ok(Command::new("skopeo").args([
                "inspect",
                &format!("oci:{}:{tag}", layout.display()),
            ])));
        assert_eq!(inspect["Digest"].as_str().unwrap(), tags[tag]);
    }
    let unpacked = project.tmp.path().join("unpacked");
    run_ok(Command::new("umoci").args([
        "unpack",
        "--rootless",
        "--image",
        &format!("{}:dev", layout.display()),
        unpacked.to_str().unwrap(),
    ]));
    assert!(unpacked.join("rootfs/opt/venv/bin/hello").is_file());
}

#[test]
fn outputs_share_no_storage_with_the_cache_and_damage_is_repaired() {
    if services_missing() {
        return;
    }
    let project = fixture("hello-cli", true);
    let cache = tempfile::tempdir().unwrap();
    let first = project.tmp.path().join("first.oci");
    let o = build(
        cache.path(),
        &project.dir,
        &[
            "--output".into(),
            format!("oci:{}", first.display()),
            "--format".into(),
            "json".into(),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report = json(&String::from_utf8_lossy(&o.stdout));
    let digest = report["digest"].as_str().unwrap().to_string();
    let layers = layer_digests(&report);
    let store = cache.path().join("blobs/sha256");
    for layer in &layers {
        let hex = layer.trim_start_matches("sha256:");
        let (a, b) = (
            std::fs::metadata(store.join(hex)).unwrap(),
            std::fs::metadata(first.join("blobs/sha256").join(hex)).unwrap(),
        );
        assert_ne!(
            (a.dev(), a.ino()),
            (b.dev(), b.ino()),
            "{layer} shares an inode"
        );
    }
    // Changing an output leaves the cache as it was.
    let app_layer = layers
        .last()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let cached = std::fs::read(store.join(&app_layer)).unwrap();
    std::fs::write(first.join("blobs/sha256").join(&app_layer), b"changed").unwrap();
    assert_eq!(std::fs::read(store.join(&app_layer)).unwrap(), cached);

    // Damage the cache itself: a layer and a wheel.
    let mut bytes = cached.clone();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(store.join(&app_layer), &bytes).unwrap();
    let lock = std::fs::read_to_string(project.path("uv.lock")).unwrap();
    let click_hash = {
        let at = lock.find("click-8.2.1-py3-none-any.whl").unwrap();
        let h = at + lock[at..].find("sha256:").unwrap() + "sha256:".len();
        lock[h..h + 64].to_string()
    };
    std::fs::write(store.join(&click_hash), b"not a wheel any more").unwrap();
    // Without click's layer blob its cache entry misses, so the (damaged) wheel is read again.
    let click_layer = report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["description"].as_str().unwrap().contains("click 8.2.1"))
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    std::fs::remove_file(store.join(&click_layer)).unwrap();

    let second = project.tmp.path().join("second.oci");
    let o = build(
        cache.path(),
        &project.dir,
        &["--output".into(), format!("oci:{}", second.display())],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        digest,
        "same image"
    );
    assert!(
        err.contains(&format!("warning: cached blob sha256:{app_layer} (lockship: the project, built as a wheel) was damaged on disk"))
            && err.contains(&format!("warning: cached blob sha256:{click_hash} (click-8.2.1-py3-none-any.whl) was damaged on disk")),
        "{err}"
    );
    // The new output is valid, blob for blob.
    run_ok(Command::new("skopeo").args(["inspect", &format!("oci:{}:0.1.0", second.display())]));
    for blob in files_under(&second.join("blobs/sha256")) {
        let name = blob.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&blob).unwrap();
        assert_eq!(
            lockship_oci::digest::Digest::of_bytes(&bytes).hex(),
            name,
            "an invalid blob in the layout"
        );
    }
    // And the repaired cache pushes: no DIGEST_INVALID.
    let target = format!("{}/tests/{}:1", env().registry, unique("repaired"));
    let pushed = run_ok(lockship(cache.path()).arg("build").arg(&project.dir).args([
        "--base",
        &env().base,
        "--push",
        &target,
    ]));
    assert_eq!(pushed.trim(), digest);
}

#[test]
fn a_layer_damaged_in_the_cache_is_rebuilt_before_it_is_pushed() {
    if services_missing() {
        return;
    }
    let project = fixture("hello-cli", true);
    let cache = tempfile::tempdir().unwrap();
    let target = |name: &str| format!("{}/tests/{}:1", env().registry, unique(name));
    let o = build(
        cache.path(),
        &project.dir,
        &[
            "--push".into(),
            target("clean"),
            "--format".into(),
            "json".into(),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report = json(&String::from_utf8_lossy(&o.stdout));
    let app_layer = layer_digests(&report).last().unwrap().clone();
    let path = cache
        .path()
        .join("blobs/sha256")
        .join(app_layer.trim_start_matches("sha256:"));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[10] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    // A push-only build to a new repository must upload the app layer: it reads the damaged
    // blob, notices while hashing it, and builds it again.
    let o = build(
        cache.path(),
        &project.dir,
        &["--push".into(), target("repaired")],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        report["digest"].as_str().unwrap()
    );
    assert!(err.contains("was damaged on disk"), "{err}");
}
