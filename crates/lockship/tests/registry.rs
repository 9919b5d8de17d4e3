//! lockship against registries as they are: Docker media types, image indexes (platform
//! choice), cross-repository mounts that spare base-layer downloads, basic auth read from
//! the Docker config, and bearer tokens scoped per request by a token server (the Docker Hub,
//! GHCR, GitLab and Harbor scheme). Each test uses the reference registry; the auth tests start
//! their own.

mod support;

use std::process::Command;

use lockship_oci::digest::Digest;
use support::*;

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Copies the test base into `repo` with Docker (v2 schema 2) media types and adds an index
/// `repo:multi` listing it for linux/amd64 after an arm64 entry. Returns (docker-typed ref, index ref).
fn docker_typed_base_with_index(env: &Env, repo: &str) -> (String, String) {
    let single = format!("{}/{repo}:3.11", env.registry);
    run_ok(Command::new("skopeo").args([
        "copy",
        "--quiet",
        "--format",
        "v2s2",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("docker://{}", env.base),
        &format!("docker://{single}"),
    ]));
    let manifest_url = format!("http://{}/v2/{repo}/manifests/3.11", env.registry);
    let manifest = Command::new("curl")
        .args([
            "-fsS",
            "-H",
            &format!("Accept: {DOCKER_MANIFEST}"),
            &manifest_url,
        ])
        .output()
        .unwrap();
    assert!(manifest.status.success());
    let text = String::from_utf8(manifest.stdout.clone()).unwrap();
    assert!(
        text.contains(DOCKER_MANIFEST),
        "skopeo wrote Docker media types: {text}"
    );
    let digest = Digest::of_bytes(&manifest.stdout);
    let entry = |arch: &str| {
        serde_json::json!({
            "mediaType": DOCKER_MANIFEST,
            "digest": digest.to_string(),
            "size": manifest.stdout.len(),
            "platform": {"os": "linux", "architecture": arch},
        })
    };
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [entry("arm64"), entry("amd64")],
    });
    run_ok(Command::new("curl").args([
        "-fsS",
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/vnd.oci.image.index.v1+json",
        "--data-binary",
        &index.to_string(),
        &format!("http://{}/v2/{repo}/manifests/multi", env.registry),
    ]));
    (single, format!("{}/{repo}:multi", env.registry))
}

#[test]
fn docker_typed_base_through_an_index_builds_a_runnable_image() {
    if services_missing() {
        return;
    }
    let env = env();
    let repo = unique("docker-typed");
    let (_, index) = docker_typed_base_with_index(&env, &repo);
    let project = fixture("hello-cli", true);
    let tar = project.tmp.path().join("img.tar");
    let name = unique("indexed");
    run_ok(
        lockship(&shared_cache())
            .arg("build")
            .arg(&project.dir)
            .args([
                "--base",
                &index,
                "--platform",
                "linux/amd64",
                "--tag",
                &format!("{name}:1"),
            ])
            .arg("--output")
            .arg(format!("docker:{}", tar.display())),
    );
    docker_load(&tar);
    assert!(docker_run(&format!("{name}:1"), None, &["index"]).contains("Hello, index!"));

    let out = run_err(
        lockship(&shared_cache())
            .arg("build")
            .arg(&project.dir)
            .args(["--base", &index, "--platform", "linux/s390x", "--dry-run"]),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.lines().next().unwrap(),
        format!("error: image {index} has no manifest for linux/s390x (it has: linux/arm64, linux/amd64)")
    );
    assert!(stderr.contains("hint: choose one of the listed platforms with --platform"));
}

#[test]
fn pushing_next_to_the_base_mounts_it_and_never_downloads_it() {
    if services_missing() {
        return;
    }
    let env = env();
    let project = fixture("hello-cli", true);
    let cache = tempfile::tempdir().unwrap();
    let build = |target: &str| {
        json(&run_ok(
            lockship(cache.path())
                .arg("build")
                .arg(&project.dir)
                .args(["--base", &env.base, "--push", target, "--format", "json"]),
        ))
    };
    build(&format!("{}/tests/{}:1", env.registry, unique("first")));
    // Forget the base layer's bytes: the facts learned from it stay cached.
    let report = build(&format!("{}/tests/{}:1", env.registry, unique("warmup")));
    let base_layer = report["layers"][0]["digest"].as_str().unwrap().to_string();
    let blob = cache
        .path()
        .join("blobs/sha256")
        .join(base_layer.trim_start_matches("sha256:"));
    std::fs::remove_file(&blob).unwrap();

    let report = build(&format!("{}/tests/{}:1", env.registry, unique("mounted")));
    let push = &report["pushed"][0];
    assert_eq!(
        push["mounted"], 1,
        "the base layer is mounted from its repository: {push}"
    );
    assert!(
        !blob.exists(),
        "the base layer was downloaded although the registry had it"
    );
}

#[test]
fn basic_auth_comes_from_the_docker_config() {
    if services_missing() {
        return;
    }
    let registry = auth_registry("tester", "secret");
    let base = copy_base_with_creds(&format!("{}/python:3.11", registry.addr), "tester:secret");
    let project = fixture("hello-cli", true);
    let config_dir = tempfile::tempdir().unwrap();
    let pushed = format!("{}/team/hello:1", registry.addr);

    // No credentials: a clear 401 error naming the registry, with the login hint.
    docker_config(config_dir.path(), &registry.addr, None);
    let out = run_err(
        lockship(&shared_cache())
            .env("DOCKER_CONFIG", config_dir.path())
            .arg("build")
            .arg(&project.dir)
            .args(["--base", &base, "--push", &pushed]),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.lines().next().unwrap(),
        format!(
            "error: registry {} denied access while pulling the manifest of {base}",
            registry.addr
        )
    );
    assert!(stderr.contains(&format!(
        "hint: log in with `docker login {}`",
        registry.addr
    )));

    // With `docker login`'s entry ("tester:secret" in base64): pull and push both work.
    docker_config(
        config_dir.path(),
        &registry.addr,
        Some("dGVzdGVyOnNlY3JldA=="),
    );
    let digest = run_ok(
        lockship(&shared_cache())
            .env("DOCKER_CONFIG", config_dir.path())
            .arg("build")
            .arg(&project.dir)
            .args(["--base", &base, "--push", &pushed]),
    );
    let inspect = json(&run_ok(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        "--creds",
        "tester:secret",
        &format!("docker://{pushed}"),
    ])));
    assert_eq!(inspect["Digest"].as_str().unwrap(), digest.trim());
}

/// A token server granting `ci` / `tok-3f9a-SECRET` what it asks for, the reference registry
/// behind it, and the test base copied into it as `library/python:3.11`.
fn token_setup() -> (support::servers::TokenServer, AuthRegistry, String) {
    let tokens = support::servers::TokenServer::start("ci", "tok-3f9a-SECRET");
    let registry = token_registry(&tokens);
    let base = copy_base_with_creds(
        &format!("{}/library/python:3.11", registry.addr),
        "ci:tok-3f9a-SECRET",
    );
    (tokens, registry, base)
}

#[test]
fn bearer_tokens_with_scopes_from_a_token_server() {
    if services_missing() {
        return;
    }
    let (tokens, registry, base) = token_setup();
    let project = fixture("hello-cli", true);
    let config_dir = tempfile::tempdir().unwrap();
    let pushed = format!("{}/team/hello:1", registry.addr);
    let build = || {
        lockship(&shared_cache())
            .env("DOCKER_CONFIG", config_dir.path())
            .env_remove("REGISTRY_AUTH_FILE")
            .arg("build")
            .arg(&project.dir)
            .args(["--base", &base, "--push", &pushed, "--no-test"])
            .output()
            .unwrap()
    };

    // Anonymous: the token server grants pulls only, so the push is refused with the hint.
    docker_config(config_dir.path(), &registry.addr, None);
    let out = build();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "error: registry {} denied access while pushing",
            registry.addr
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: log in with `docker login"),
        "{stderr}"
    );

    // With `docker login`'s entry: one token per scope set, the push's covering push and pull
    // on the target and pull on the base's repository (the cross-repository mount).
    let auth = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        "ci:tok-3f9a-SECRET",
    );
    docker_config(config_dir.path(), &registry.addr, Some(&auth));
    // The refused build exits at its first error while other uploads may still be asking for
    // tokens: their requests reach the server's log a moment later. Wait for it to be quiet
    // (bounded), so that what follows counts the next build's requests only.
    let mut before = tokens.log().len();
    for _ in 0..50 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let now = tokens.log().len();
        if now == before {
            break;
        }
        before = now;
    }
    let out = build();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("tok-3f9a-SECRET"));
    let asked: Vec<_> = tokens.log()[before..].to_vec();
    assert!(
        asked.iter().all(|r| r.user.as_deref() == Some("ci")),
        "{asked:?}"
    );
    assert!(
        asked.iter().any(|r| r
            .scopes
            .contains(&"repository:team/hello:pull,push".to_string())
            && r.scopes
                .contains(&"repository:library/python:pull".to_string())),
        "{asked:?}"
    );
    let inspect = json(&run_ok(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        "--creds",
        "ci:tok-3f9a-SECRET",
        &format!("docker://{pushed}"),
    ])));
    assert_eq!(
        inspect["Digest"].as_str().unwrap(),
        String::from_utf8_lossy(&out.stdout).trim()
    );

    // A wrong password: the token server refuses, and the error names the registry.
    let wrong = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "ci:bad-pw-77");
    docker_config(config_dir.path(), &registry.addr, Some(&wrong));
    let out = build();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&registry.addr), "{stderr}");
    assert!(!stderr.contains("bad-pw-77"), "{stderr}");
}

/// A `docker-credential-NAME` helper in `bin` that answers `get` with `username`/`secret`.
fn credential_helper(bin: &std::path::Path, name: &str, username: &str, secret: &str) {
    use std::os::unix::fs::PermissionsExt;
    let path = bin.join(format!("docker-credential-{name}"));
    let script = format!(
        "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread server\nprintf '{{\"ServerURL\":\"%s\",\"Username\":\"{username}\",\"Secret\":\"{secret}\"}}' \"$server\"\n"
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn credential_helpers_and_identity_tokens_from_the_docker_config() {
    if services_missing() {
        return;
    }
    use support::servers::TokenServer;
    let (tokens, registry, base) = token_setup();
    let project = fixture("hello-cli", true);
    let config_dir = tempfile::tempdir().unwrap();
    let bin = tempfile::tempdir().unwrap();
    // `docker login` to a registry with OAuth2 keeps an identity token (username `<token>`);
    // a credentials store keeps the password.
    credential_helper(bin.path(), "lockid", "<token>", TokenServer::IDENTITY_TOKEN);
    credential_helper(bin.path(), "lockstore", "ci", "tok-3f9a-SECRET");
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap()
    );
    let build = |config: serde_json::Value, tag: &str| {
        std::fs::write(config_dir.path().join("config.json"), config.to_string()).unwrap();
        let before = tokens.log().len();
        let out = lockship(&shared_cache())
            .env("DOCKER_CONFIG", config_dir.path())
            .env("PATH", &path)
            .env_remove("REGISTRY_AUTH_FILE")
            .arg("build")
            .arg(&project.dir)
            .args(["--base", &base, "--no-test", "--push"])
            .arg(format!("{}/team/hello:{tag}", registry.addr))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        assert!(!stderr.contains("SECRET"), "{stderr}");
        tokens.log()[before..].to_vec()
    };

    // credHelpers: the registry's own helper gives an identity token, sent as a refresh-token
    // grant (POST), never as Basic.
    let asked = build(
        serde_json::json!({"credHelpers": {registry.addr.clone(): "lockid"}}),
        "identity",
    );
    assert!(!asked.is_empty());
    assert!(
        asked
            .iter()
            .all(|r| r.refresh && r.user.as_deref() == Some("ci")),
        "{asked:?}"
    );

    // credsStore: the default helper gives the password, sent as Basic to the token server.
    let asked = build(serde_json::json!({"credsStore": "lockstore"}), "store");
    assert!(!asked.is_empty());
    assert!(
        asked
            .iter()
            .all(|r| !r.refresh && r.user.as_deref() == Some("ci")),
        "{asked:?}"
    );
}

#[test]
fn a_build_that_fails_after_pushing_layers_leaves_no_image() {
    if services_missing() {
        return;
    }
    let env = env();
    let project = fixture("hello-cli", true);
    let pyproject = std::fs::read_to_string(project.path("pyproject.toml")).unwrap();
    let broken = pyproject.replace(
        "build-backend = \"hatchling.build\"",
        "build-backend = \"hatchling.no_such_backend\"",
    );
    assert_ne!(broken, pyproject);
    std::fs::write(project.path("pyproject.toml"), broken).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let target = format!("{}/tests/{}:1", env.registry, unique("failed"));
    let output = run_err(
        lockship(cache.path())
            .arg("build")
            .arg(&project.dir)
            .args(["--base", &env.base, "--push", &target]),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("error: building the wheel of ") && stderr.contains("no_such_backend"),
        "{stderr}"
    );
    // Dependency layers may have gone up while the app wheel was building; the manifest did not,
    // so there is no image under the tag.
    let inspect = Command::new("skopeo")
        .args([
            "inspect",
            "--tls-verify=false",
            &format!("docker://{target}"),
        ])
        .output()
        .unwrap();
    assert!(!inspect.status.success(), "the failed build left {target}");
    // Nothing half-built is kept as the app wheel.
    let kept: Vec<_> = walkdir::WalkDir::new(cache.path().join("app-wheels"))
        .min_depth(1)
        .into_iter()
        .filter_map(|e| e.ok())
        .map(|e| e.path().display().to_string())
        .collect();
    assert!(
        kept.is_empty(),
        "app wheel cache after a failed build: {kept:?}"
    );
}
