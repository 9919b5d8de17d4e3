//! No secret lockship is given ever leaves it. A build with a registry password (Docker
//! config), a private index password (in the index URL), and a CI token (in the git remote, as
//! GitLab CI clones) pushes, writes both local outputs, prints JSON and text, and fails once on
//! purpose; then every byte it produced is searched for the secrets, inflating every gzip
//! stream (layers) on the way: stdout and stderr, the cache, the outputs, and the registry's
//! own storage. Zero hits.

mod support;

use std::process::Command;

use base64::Engine;
use support::secret_scan::SecretScan;
use support::servers::StaticServer;
use support::wheels::WheelBuilder;
use support::*;

const REGISTRY_USER: &str = "pusher";
const REGISTRY_PASSWORD: &str = "reg-SECRET-7c1d";
const INDEX_USER: &str = "reader";
const INDEX_PASSWORD: &str = "idx-SECRET-9a2e";
const GIT_TOKEN: &str = "glcbt-SECRET-3f8b";

/// Every form a secret could take on disk or on screen.
fn secret_scan() -> SecretScan {
    SecretScan::default()
        .secret("registry password", REGISTRY_PASSWORD)
        .secret("index password", INDEX_PASSWORD)
        .secret("git token", GIT_TOKEN)
        .basic_auth("registry basic auth", REGISTRY_USER, REGISTRY_PASSWORD)
        .basic_auth("index basic auth", INDEX_USER, INDEX_PASSWORD)
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
    let mut scan = secret_scan();
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
    scan.output(&pushed, "the build");
    let report = json(&String::from_utf8_lossy(&pushed.stdout));
    for (args, what) in [
        (vec!["--dry-run"], "a dry run"),
        (vec!["--dry-run", "--format", "json"], "a JSON dry run"),
    ] {
        let out = run(&args);
        assert!(out.status.success());
        scan.output(&out, what);
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
    scan.output(&failed, "a failed build");

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

    let scanned = scan.dir(cache.path())
        + scan.dir(cold.path())
        + scan.dir(outputs.path())
        + scan.dir(&registry.dir);
    // Cache blobs, layer and index entries, both outputs, the registry's blobs and links.
    assert!(scanned > 40, "only {scanned} files scanned");
    assert!(
        scan.found.is_empty(),
        "secrets found:\n{}",
        scan.found.join("\n")
    );
}
