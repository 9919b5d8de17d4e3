//! The registry as the build cache: a build with an empty local cache (a fresh CI runner) takes
//! every layer whose inputs match from what the push targets or `--cache-from` name, downloads
//! no wheel (the index counts the requests), builds no app wheel, pulls no base layer, uploads
//! nothing, and makes the same digest as the build that pushed. An unchanged build with a warm
//! cache reads two manifests and writes nothing, and under a new tag adds one GET and the
//! manifest PUT (the registry's proxy counts the requests).

mod support;

use std::path::Path;

use support::servers::{FaultProxy, StaticServer};
use support::wheels::WheelBuilder;
use support::*;

/// `lockship build PROJECT --base BASE --no-test --format json EXTRA…` with its cache at
/// `cache`: the report.
fn build(project: &Path, cache: &Path, base: &str, extra: &[&str]) -> serde_json::Value {
    json(&run_ok(
        lockship(cache)
            .arg("build")
            .arg(project)
            .args(["--base", base, "--no-test", "--format", "json"])
            .args(extra),
    ))
}

/// How many wheel downloads the index has served so far.
fn wheel_downloads(index: &StaticServer) -> usize {
    index
        .log()
        .iter()
        .filter(|l| l.path.starts_with("/files/"))
        .count()
}

/// The report's layers that this build wrote.
fn built(report: &serde_json::Value) -> Vec<String> {
    report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["built"].as_bool().unwrap())
        .map(|l| l["description"].as_str().unwrap().to_string())
        .collect()
}

/// What the first push target received: (uploaded, mounted, skipped).
fn pushed(report: &serde_json::Value) -> (u64, u64, u64) {
    let r = &report["pushed"][0];
    let n = |k: &str| r[k].as_u64().unwrap();
    (n("uploaded"), n("mounted"), n("skipped"))
}

#[test]
fn a_fresh_runner_takes_every_layer_from_the_registry_and_downloads_no_wheel() {
    if services_missing() {
        return;
    }
    let env = env();
    let index = StaticServer::start(None);
    let url = format!("http://{}/simple/", index.addr());
    let project = index_project(
        &index,
        &url,
        &[
            ("tiny", "1.0", WheelBuilder::new("tiny", "1.0").build()),
            ("other", "2.0", WheelBuilder::new("other", "2.0").build()),
        ],
    );
    let repo = format!("{}/tests/{}", env.registry, unique("regcache"));
    let target = format!("{repo}:main");

    let first_cache = tempfile::tempdir().unwrap();
    let first = build(
        &project.dir,
        first_cache.path(),
        &env.base,
        &["--push", &target],
    );
    let digest = first["digest"].as_str().unwrap().to_string();
    let downloads = wheel_downloads(&index);
    assert_eq!(downloads, 2, "the first build fetched both wheels");

    // A fresh runner pushing the same commit: nothing fetched, written or uploaded.
    let fresh = tempfile::tempdir().unwrap();
    let again = build(&project.dir, fresh.path(), &env.base, &["--push", &target]);
    assert_eq!(again["digest"], digest.as_str(), "the same image");
    assert_eq!(wheel_downloads(&index), downloads, "no wheel downloaded");
    assert!(
        built(&again).is_empty(),
        "no layer written: {:?}",
        built(&again)
    );
    assert_eq!(pushed(&again).0, 0, "nothing uploaded: {again}");

    // --cache-from for a local output: the layers are fetched from the registry instead.
    let layout = project.tmp.path().join("layout");
    let out = format!("oci:{}", layout.display());
    let fresh = tempfile::tempdir().unwrap();
    let local = build(
        &project.dir,
        fresh.path(),
        &env.base,
        &["--cache-from", &target, "--output", &out],
    );
    assert_eq!(local["digest"], digest.as_str());
    assert_eq!(wheel_downloads(&index), downloads);
    assert!(built(&local).is_empty());
    let layers = layout_layers(&layout);
    assert!(
        layers
            .iter()
            .flatten()
            .any(|(path, _)| path.ends_with("tiny/__init__.py")),
        "the layout holds the cached layers' files"
    );

    // --cache-to on one branch, --cache-from on another: blobs are mounted, not uploaded.
    let cache_ref = format!("{repo}-cache:branch");
    let fresh = tempfile::tempdir().unwrap();
    build(
        &project.dir,
        fresh.path(),
        &env.base,
        &["--cache-from", &target, "--cache-to", &cache_ref],
    );
    let elsewhere = format!("{repo}-promoted:1");
    let fresh = tempfile::tempdir().unwrap();
    let promoted = build(
        &project.dir,
        fresh.path(),
        &env.base,
        &["--cache-from", &cache_ref, "--push", &elsewhere],
    );
    assert_eq!(promoted["digest"], digest.as_str());
    assert_eq!(wheel_downloads(&index), downloads);
    let (uploaded, mounted, _) = pushed(&promoted);
    assert!(
        mounted > 0,
        "layers mounted from the cache repository: {promoted}"
    );
    // The config: a mount needs a layer's repository, and the config is not a layer.
    assert!(uploaded <= 1, "at most the config uploaded: {promoted}");

    // One file of the app changed: only the app's layer is written, still no wheel.
    std::fs::write(
        project.dir.join("main.py"),
        "import tiny, other\nprint('v2')\n",
    )
    .unwrap();
    let fresh = tempfile::tempdir().unwrap();
    let changed = build(&project.dir, fresh.path(), &env.base, &["--push", &target]);
    assert_ne!(changed["digest"], digest.as_str());
    assert_eq!(wheel_downloads(&index), downloads);
    assert_eq!(built(&changed).len(), 1, "{:?}", built(&changed));
}

#[test]
fn a_fresh_runner_builds_no_app_wheel_and_pulls_no_base_layer() {
    if services_missing() {
        return;
    }
    let env = env();
    let project = fixture("hello-cli", true);
    let target = format!("{}/tests/{}:main", env.registry, unique("regcache-app"));
    let first = build(
        &project.dir,
        &shared_cache(),
        &env.base,
        &["--push", &target],
    );

    let fresh = tempfile::tempdir().unwrap();
    let again = build(&project.dir, fresh.path(), &env.base, &["--push", &target]);
    assert_eq!(again["digest"], first["digest"]);
    assert!(built(&again).is_empty());
    // The app wheel's build would leave its wheel here; the base's probe its facts there.
    for bucket in ["app-wheels", "bases", "build-envs"] {
        let dir = fresh.path().join(bucket);
        assert!(
            !dir.exists() || files_under(&dir).is_empty(),
            "{bucket}: {:?}",
            files_under(&dir)
        );
    }
    // Only the base's config is in the store: no base layer was pulled.
    let blobs = files_under(&fresh.path().join("blobs"));
    assert!(blobs.len() <= 1, "{blobs:?}");
}

/// The app's last real build travels with the image (an artifact attached to it), and so does
/// the interpreter that compiled its bytecode: a fresh runner patches an edit onto that wheel,
/// with no backend to run (uv points nowhere) and no base layer to pull, and makes the image
/// the backend makes from an empty cache.
#[test]
fn a_fresh_runner_patches_an_edit_onto_the_app_wheel_shared_with_the_image() {
    if services_missing() {
        return;
    }
    let env = env();
    let project = fixture("hello-cli", true);
    let target = format!("{}/tests/{}:main", env.registry, unique("regcache-share"));
    let first = tempfile::tempdir().unwrap();
    build(&project.dir, first.path(), &env.base, &["--push", &target]);

    let main = project.dir.join("src/hello_cli/main.py");
    let mut text = std::fs::read_to_string(&main).unwrap();
    text.push_str("\n# one line changed\n");
    std::fs::write(&main, &text).unwrap();
    let fresh = tempfile::tempdir().unwrap();
    let output = lockship(fresh.path())
        .env("LOCKSHIP_UV", project.tmp.path().join("no-uv-here"))
        .arg("build")
        .arg(&project.dir)
        .args([
            "--base",
            &env.base,
            "--no-test",
            "--format",
            "json",
            "--verbose",
        ])
        .args(["--push", &target])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let patched = json(&String::from_utf8_lossy(&output.stdout));
    assert_eq!(built(&patched).len(), 1, "{:?}", built(&patched));
    let envs = fresh.path().join("build-envs");
    assert!(!envs.exists() || files_under(&envs).is_empty());
    // The changed module's bytecode needs the base's interpreter: the one the first build
    // shared (the files a compile worker needs), not the base's layers.
    assert!(
        stderr.contains("unpacking /usr/bin/python3.11 shared with"),
        "{stderr}"
    );
    let blobs = files_under(&fresh.path().join("blobs"));
    let biggest = blobs
        .iter()
        .map(|b| std::fs::metadata(b).unwrap().len())
        .max()
        .unwrap();
    assert!(
        biggest < 40 << 20,
        "a base layer was pulled: {biggest} bytes"
    );

    // The backend, from an empty cache and no registry, makes the same image.
    let out = format!("oci:{}", project.tmp.path().join("oci").display());
    let other = tempfile::tempdir().unwrap();
    let real = build(&project.dir, other.path(), &env.base, &["--output", &out]);
    assert_eq!(patched["digest"], real["digest"]);

    // Another edit on yet another runner: the shared wheel came along with the second image.
    text.push_str("# and another\n");
    std::fs::write(&main, &text).unwrap();
    let third = tempfile::tempdir().unwrap();
    run_ok(
        lockship(third.path())
            .env("LOCKSHIP_UV", project.tmp.path().join("no-uv-here"))
            .arg("build")
            .arg(&project.dir)
            .args(["--base", &env.base, "--no-test", "--push", &target]),
    );
}

#[test]
fn an_unchanged_build_reads_two_manifests_and_writes_nothing() {
    if services_missing() {
        return;
    }
    let env = env();
    let proxy = FaultProxy::start(&env.registry);
    let base = env.base.replace(&env.registry, proxy.addr());
    let project = fixture("hello-cli", true);
    let target = format!("{}/tests/{}:main", proxy.addr(), unique("warm"));
    let cache = tempfile::tempdir().unwrap();
    build(&project.dir, cache.path(), &base, &["--push", &target]);
    let before = proxy.log().len();
    let warm = build(&project.dir, cache.path(), &base, &["--push", &target]);
    let requests: Vec<String> = proxy.log()[before..]
        .iter()
        .map(|l| format!("{} {} {}", l.method, l.path, l.status))
        .collect();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    assert!(
        requests
            .iter()
            .all(|r| r.starts_with("GET ") && r.contains("/manifests/")),
        "{requests:#?}"
    );
    assert_eq!(pushed(&warm).0, 0);

    // The same image under a new tag (a tag per commit): the image this machine last pushed
    // to the repository, read back by digest, vouches for every blob. No HEAD, no upload.
    let new_tag = target.replace(":main", ":commit-2");
    let before = proxy.log().len();
    let tagged = build(&project.dir, cache.path(), &base, &["--push", &new_tag]);
    let requests: Vec<String> = proxy.log()[before..]
        .iter()
        .map(|l| format!("{} {} {}", l.method, l.path, l.status))
        .collect();
    assert_eq!(requests.len(), 4, "{requests:#?}");
    assert_eq!(
        requests.iter().filter(|r| r.starts_with("GET ")).count(),
        3,
        "base, new tag (404), last pushed: {requests:#?}"
    );
    assert!(requests
        .iter()
        .any(|r| r.starts_with("PUT ") && r.contains("/manifests/commit-2")));
    assert_eq!(pushed(&tagged).0, 0);
}

#[test]
fn a_cached_layer_the_registry_will_not_hand_over_is_built_here_instead() {
    if services_missing() {
        return;
    }
    let env = env();
    let project = fixture("hello-cli", true);
    let target = format!("{}/tests/{}:main", env.registry, unique("regcache-gone"));
    let first = build(
        &project.dir,
        &shared_cache(),
        &env.base,
        &["--push", &target],
    );
    // The image's manifest can be read through the proxy, its blobs cannot (deleted by a
    // registry's garbage collection, or a cache repository the job may not read).
    let proxy = FaultProxy::start(&env.registry);
    proxy.set_rules(vec![support::servers::Rule::on(
        "/blobs/sha256:",
        support::servers::Fault::Status(404),
    )
    .method("GET")]);
    let cache_from = target.replace(&env.registry, proxy.addr());
    let report = built_without_the_registry_cache(
        &project,
        &env.base,
        &cache_from,
        "warning: cannot fetch cached layer",
    );
    assert_eq!(
        report["digest"], first["digest"],
        "built here, the same image"
    );
    assert!(!built(&report).is_empty());
    assert!(proxy.injected() > 0, "the proxy refused nothing");
}

/// A manifest whose layer annotation names the wrong diff id (a broken or hostile cache): the
/// layer fetched for a local output does not unpack to it, so it is not used, and the build
/// makes it here instead (the image's config would otherwise name a tar it does not hold).
#[test]
fn a_cached_layer_that_does_not_unpack_to_its_diff_id_is_built_here_instead() {
    if services_missing() {
        return;
    }
    let env = env();
    let project = fixture("hello-cli", true);
    let repo = format!("tests/{}", unique("regcache-diffid"));
    let target = format!("{}/{repo}:main", env.registry);
    let first = build(
        &project.dir,
        &shared_cache(),
        &env.base,
        &["--push", &target],
    );
    let url = |tag: &str| format!("http://{}/v2/{repo}/manifests/{tag}", env.registry);
    let oci = "application/vnd.oci.image.manifest.v1+json";
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = reqwest::Client::new();
    let mut manifest: serde_json::Value = runtime.block_on(async {
        let response = client
            .get(url("main"))
            .header("Accept", oci)
            .send()
            .await
            .unwrap();
        response.json().await.unwrap()
    });
    let app = manifest["layers"]
        .as_array_mut()
        .unwrap()
        .last_mut()
        .unwrap();
    app["annotations"]["dev.lockship.layer.diff-id"] =
        serde_json::json!(format!("sha256:{}", "0".repeat(64)));
    runtime.block_on(async {
        let response = client
            .put(url("broken"))
            .header("Content-Type", oci)
            .body(serde_json::to_vec(&manifest).unwrap())
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
    });

    let report = built_without_the_registry_cache(
        &project,
        &env.base,
        &target.replace(":main", ":broken"),
        ") unpacked with the wrong content: its digest is",
    );
    assert_eq!(report["digest"], first["digest"]);
}

/// A build with an empty cache, `--cache-from CACHE_FROM` and a local output, which must warn
/// `warning` and then build without the registry cache: its report.
fn built_without_the_registry_cache(
    project: &Project,
    base: &str,
    cache_from: &str,
    warning: &str,
) -> serde_json::Value {
    let fresh = tempfile::tempdir().unwrap();
    let out = format!("oci:{}", fresh.path().join("app.oci").display());
    let output = lockship(fresh.path())
        .arg("build")
        .arg(&project.dir)
        .args(["--base", base, "--no-test", "--format", "json"])
        .args(["--cache-from", cache_from, "--output", &out])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains(warning), "{stderr}");
    assert!(
        stderr.contains("building without the registry cache"),
        "{stderr}"
    );
    json(&String::from_utf8_lossy(&output.stdout))
}
