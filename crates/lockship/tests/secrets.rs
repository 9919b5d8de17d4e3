//! No secret lockship is given ever leaves it. A build with a registry password (Docker
//! config), a private index password (in the index URL), and a CI token (in the git remote, as
//! GitLab CI clones) pushes, writes both local outputs, prints JSON and text, and fails once on
//! purpose; then every byte it produced is searched for the secrets, inflating every gzip
//! stream (layers) on the way: stdout and stderr, the cache, the outputs, and the registry's
//! own storage. Zero hits.

mod support;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output};

use base64::Engine;
use support::servers::StaticServer;
use support::wheels::WheelBuilder;
use support::*;

const REGISTRY_USER: &str = "pusher";
const REGISTRY_PASSWORD: &str = "reg-SECRET-7c1d";
const INDEX_USER: &str = "reader";
const INDEX_PASSWORD: &str = "idx-SECRET-9a2e";
const GIT_TOKEN: &str = "glcbt-SECRET-3f8b";

/// Every form a secret could take on disk or on screen.
fn needles() -> Vec<(String, Vec<u8>)> {
    let b64 = |s: String| base64::engine::general_purpose::STANDARD.encode(s);
    vec![
        ("registry password".into(), REGISTRY_PASSWORD.into()),
        ("index password".into(), INDEX_PASSWORD.into()),
        ("git token".into(), GIT_TOKEN.into()),
        (
            "registry basic auth".into(),
            b64(format!("{REGISTRY_USER}:{REGISTRY_PASSWORD}")).into(),
        ),
        (
            "index basic auth".into(),
            b64(format!("{INDEX_USER}:{INDEX_PASSWORD}")).into(),
        ),
    ]
}

/// Where each secret was found in `bytes`, and in what it holds: a gzip stream (a layer) is
/// inflated, a tarball's entries (a docker tarball's blobs) are opened. `nested` is true inside
/// such a container, where the files are the image's own (a base's compressed docs need no
/// opening: what lockship wrote is the layer around them).
fn hits(bytes: &[u8], where_: &str, found: &mut Vec<String>) {
    scan(bytes, where_, found, false)
}

fn scan(bytes: &[u8], where_: &str, found: &mut Vec<String>, nested: bool) {
    for (name, needle) in needles() {
        if memchr::memmem::find(bytes, &needle).is_some() {
            found.push(format!("{name} in {where_}"));
        }
    }
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut inflated = Vec::new();
        if flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut inflated)
            .is_ok()
        {
            scan(&inflated, &format!("{where_} (inflated)"), found, true);
        }
    }
    // A tar (a docker tarball) may hold gzip blobs: look inside each entry too.
    if !nested && bytes.len() > 262 && &bytes[257..262] == b"ustar" {
        let mut archive = tar::Archive::new(bytes);
        if let Ok(entries) = archive.entries() {
            for mut entry in entries.flatten() {
                let name = entry
                    .path()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                let mut data = Vec::new();
                if entry.read_to_end(&mut data).is_ok() && data.starts_with(&[0x1f, 0x8b]) {
                    scan(&data, &format!("{where_}:{name}"), found, true);
                }
            }
        }
    }
}

fn scan_dir(dir: &Path, found: &mut Vec<String>) -> usize {
    let files = files_under(dir);
    for file in &files {
        hits(
            &std::fs::read(file).unwrap(),
            &file.display().to_string(),
            found,
        );
    }
    files.len()
}

fn scan_output(out: &Output, what: &str, found: &mut Vec<String>) {
    hits(&out.stdout, &format!("stdout of {what}"), found);
    hits(&out.stderr, &format!("stderr of {what}"), found);
}

#[test]
fn no_secret_reaches_an_image_a_cache_file_an_output_or_a_message() {
    if services_missing() {
        return;
    }
    // The registry wants a password, given through the Docker config.
    let registry = auth_registry(REGISTRY_USER, REGISTRY_PASSWORD);
    let base = copy_base_with_creds(
        &format!("{}/python:3.11", registry.addr),
        &format!("{REGISTRY_USER}:{REGISTRY_PASSWORD}"),
    );
    let docker_dir = tempfile::tempdir().unwrap();
    docker_config(
        docker_dir.path(),
        &registry.addr,
        Some(
            &base64::engine::general_purpose::STANDARD
                .encode(format!("{REGISTRY_USER}:{REGISTRY_PASSWORD}")),
        ),
    );
    // The index wants a password, given in the index URL.
    let index = StaticServer::start(Some((INDEX_USER, INDEX_PASSWORD)));
    let url = format!(
        "http://{INDEX_USER}:{INDEX_PASSWORD}@{}/simple/",
        index.addr()
    );
    let project = index_project(
        &index,
        &url,
        &[("tiny", "1.0", WheelBuilder::new("tiny", "1.0").build())],
    );
    // The project is a git clone whose remote carries a CI token.
    let git = |args: &[&str]| {
        run_ok(
            Command::new("git")
                .args(["-c", "user.name=ci", "-c", "user.email=ci@example.invalid"])
                .args(args)
                .current_dir(&project.dir),
        )
    };
    git(&["init", "-q"]);
    git(&[
        "remote",
        "add",
        "origin",
        &format!("https://gitlab-ci-token:{GIT_TOKEN}@git.example/team/app.git"),
    ]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "init"]);

    let cache = tempfile::tempdir().unwrap();
    let outputs = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        lockship(cache.path())
            .env("DOCKER_CONFIG", docker_dir.path())
            .env("LOCKSHIP_HTTP_RETRIES", "1")
            .arg("build")
            .arg(&project.dir)
            .args(["--base", &base])
            .args(args)
            .output()
            .unwrap()
    };
    let mut found = Vec::new();
    let target = format!("{}/team/app:1", registry.addr);
    let oci = outputs.path().join("app.oci");
    let tar = outputs.path().join("app.tar");
    let pushed = run(&[
        "--push",
        &target,
        "--output",
        &format!("oci:{}", oci.display()),
        "--output",
        &format!("docker:{}", tar.display()),
        "--format",
        "json",
        "--verbose",
    ]);
    assert!(
        pushed.status.success(),
        "{}",
        String::from_utf8_lossy(&pushed.stderr)
    );
    scan_output(&pushed, "the build", &mut found);
    let report = json(&String::from_utf8_lossy(&pushed.stdout));
    for (args, what) in [
        (vec!["--dry-run"], "a dry run"),
        (vec!["--dry-run", "--format", "json"], "a JSON dry run"),
    ] {
        let out = run(&args);
        assert!(out.status.success());
        scan_output(&out, what, &mut found);
    }
    // A failure that prints the index URL: the package page is gone.
    index.put("/simple/tiny/", "text/plain", "gone");
    let cold = tempfile::tempdir().unwrap();
    let failed = lockship(cold.path())
        .env("DOCKER_CONFIG", docker_dir.path())
        .env("LOCKSHIP_HTTP_RETRIES", "0")
        .arg("build")
        .arg(&project.dir)
        .args(["--base", &base, "--push", &target])
        .output()
        .unwrap();
    assert_eq!(failed.status.code(), Some(1));
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(err.contains("reader:****@"), "{err}");
    scan_output(&failed, "a failed build", &mut found);

    // The source label names the repository, without the token.
    let config = std::fs::read(
        oci.join("blobs/sha256").join(
            json(&String::from_utf8_lossy(
                &std::fs::read(
                    oci.join("blobs/sha256").join(
                        report["digest"]
                            .as_str()
                            .unwrap()
                            .trim_start_matches("sha256:"),
                    ),
                )
                .unwrap(),
            ))["config"]["digest"]
                .as_str()
                .unwrap()
                .trim_start_matches("sha256:"),
        ),
    )
    .unwrap();
    let config = json(&String::from_utf8_lossy(&config));
    assert_eq!(
        config["config"]["Labels"]["org.opencontainers.image.source"],
        "https://git.example/team/app.git"
    );

    let scanned = scan_dir(cache.path(), &mut found)
        + scan_dir(cold.path(), &mut found)
        + scan_dir(outputs.path(), &mut found)
        + scan_dir(&registry.dir, &mut found);
    // Cache blobs, layer and index entries, both outputs, the registry's blobs and links.
    assert!(scanned > 40, "only {scanned} files scanned");
    assert!(found.is_empty(), "secrets found:\n{}", found.join("\n"));
}
