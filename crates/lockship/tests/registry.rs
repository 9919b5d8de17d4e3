//! lockship against registries as they are: Docker media types, image indexes (platform
//! choice), cross-repository mounts that spare base-layer downloads, and basic auth read from
//! the Docker config. Each test uses the reference registry; the auth test starts its own.

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

/// A registry with token auth (the Docker Hub scheme) on a free loopback port, trusting the
/// certificate the test signs its tokens with.
fn token_registry(dir: &std::path::Path, realm: &str) -> AuthRegistry {
    use std::net::TcpListener;
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = format!(
        "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {d}/data\nhttp:\n  addr: 127.0.0.1:{port}\nauth:\n  token:\n    realm: {realm}\n    service: lockship-test\n    issuer: lockship-test-issuer\n    rootcertbundle: {d}/cert.pem\n",
        d = dir.display()
    );
    std::fs::write(dir.join("config.yml"), config).unwrap();
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(dir.join("config.yml"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let registry = AuthRegistry::adopt(child, format!("127.0.0.1:{port}"), dir.join("data"));
    registry.wait_for_401();
    registry
}

/// A JWT (RS256, the signing certificate in `x5c`) granting `access` for the test registry,
/// signed with openssl.
fn mint_token(dir: &std::path::Path, access: serde_json::Value) -> String {
    use base64::Engine;
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let der = Command::new("openssl")
        .args(["x509", "-outform", "DER", "-in"])
        .arg(dir.join("cert.pem"))
        .output()
        .unwrap()
        .stdout;
    let header = serde_json::json!({
        "alg": "RS256",
        "typ": "JWT",
        "x5c": [base64::engine::general_purpose::STANDARD.encode(der)],
    });
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "iss": "lockship-test-issuer",
        "sub": "pusher",
        "aud": "lockship-test",
        "exp": now + 3600,
        "nbf": now - 60,
        "iat": now - 60,
        "jti": unique("token"),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        url.encode(header.to_string()),
        url.encode(claims.to_string())
    );
    let input = dir.join("signing-input");
    std::fs::write(&input, &signing_input).unwrap();
    let signature = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(dir.join("key.pem"))
        .arg(&input)
        .output()
        .unwrap();
    assert!(signature.status.success());
    format!("{signing_input}.{}", url.encode(signature.stdout))
}

#[test]
fn bearer_tokens_from_the_realm_the_registry_names() {
    if services_missing() {
        return;
    }
    use support::servers::StaticServer;
    let dir = tempfile::tempdir().unwrap();
    run_ok(Command::new("openssl").args([
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=lockship-test-issuer",
        "-keyout",
        dir.path().join("key.pem").to_str().unwrap(),
        "-out",
        dir.path().join("cert.pem").to_str().unwrap(),
    ]));
    // The token server wants the user's password, and hands out one token for everything the
    // test does (a real one scopes each token to the request).
    let realm = StaticServer::start(Some(("pusher", "tok-pw")));
    let token = mint_token(
        dir.path(),
        serde_json::json!([
            {"type": "repository", "name": "python", "actions": ["pull", "push"]},
            {"type": "repository", "name": "team/app", "actions": ["pull", "push"]},
        ]),
    );
    realm.put(
        "/token",
        "application/json",
        serde_json::json!({"token": token, "expires_in": 300}).to_string(),
    );
    let registry = token_registry(dir.path(), &realm.url("/token"));
    let base = copy_base_with_creds(&format!("{}/python:3.11", registry.addr), "pusher:tok-pw");
    let project = fixture("hello-cli", true);
    let config_dir = tempfile::tempdir().unwrap();
    let target = format!("{}/team/app:1", registry.addr);

    // No credentials: the realm refuses, and the error says to log in.
    docker_config(config_dir.path(), &registry.addr, None);
    let out = run_err(
        lockship(&shared_cache())
            .env("DOCKER_CONFIG", config_dir.path())
            .arg("build")
            .arg(&project.dir)
            .args(["--base", &base, "--push", &target]),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!("error: registry {} denied access", registry.addr)),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: log in with `docker login"),
        "{stderr}"
    );

    // With the password: a token is fetched from the realm, with it, and both pull and push work.
    docker_config(
        config_dir.path(),
        &registry.addr,
        Some("cHVzaGVyOnRvay1wdw=="),
    );
    let digest = run_ok(
        lockship(&shared_cache())
            .env("DOCKER_CONFIG", config_dir.path())
            .arg("build")
            .arg(&project.dir)
            .args(["--base", &base, "--push", &target]),
    );
    let inspect = json(&run_ok(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        "--creds",
        "pusher:tok-pw",
        &format!("docker://{target}"),
    ])));
    assert_eq!(inspect["Digest"].as_str().unwrap(), digest.trim());
    let asked: Vec<_> = realm
        .log()
        .into_iter()
        .filter(|r| r.status == 200)
        .collect();
    assert!(!asked.is_empty(), "no token was fetched");
    assert!(
        asked
            .iter()
            .all(|r| r.authorization.as_deref() == Some("Basic cHVzaGVyOnRvay1wdw==")),
        "{asked:?}"
    );
}
