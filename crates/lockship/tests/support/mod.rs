//! Test context: real services started by scripts/test (registry, dockerd, a Python base image
//! in the registry), fixture projects copied into temp dirs with uv.lock made by the real uv,
//! and helpers to run the lockship binary and docker.

#![allow(dead_code)]

pub mod lock_tools;
pub mod pypiserver;
pub mod secret_scan;
pub mod servers;
pub mod wheels;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};

/// The services scripts/test started, read from the environment.
pub struct Env {
    pub registry: String,
    pub base: String,
}

/// Whether the services `scripts/test` starts (registry, dockerd, base image) are missing, in
/// which case a test that needs them says so and returns: a plain `cargo test` runs every test
/// that needs none. `scripts/test` sets LOCKSHIP_TEST_REQUIRE_SERVICES, so that there a broken
/// setup fails the suite instead of skipping it.
pub fn services_missing() -> bool {
    let missing = ["LOCKSHIP_TEST_REGISTRY", "LOCKSHIP_TEST_BASE"]
        .into_iter()
        .find(|k| std::env::var_os(k).is_none());
    let Some(var) = missing else {
        return false;
    };
    if std::env::var_os("LOCKSHIP_TEST_REQUIRE_SERVICES").is_some() {
        panic!("{var} is not set, and LOCKSHIP_TEST_REQUIRE_SERVICES is");
    }
    // Once per test binary, and past libtest's capture (which hides a passing test's output).
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        use std::io::Write;
        let binary = std::env::args().next().unwrap_or_default();
        let name = Path::new(&binary)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Cargo names test binaries `FILE-HASH`.
        let name = name.rsplit_once('-').map_or(name.as_str(), |(file, _)| file);
        let _ = writeln!(
            std::io::stderr(),
            "skipped: the end-to-end tests in tests/{name}.rs: {var} is not set; run the suite with scripts/test, which starts the registry, dockerd and the base image"
        );
    });
    true
}

pub fn env() -> Env {
    let get = |k: &str| {
        std::env::var(k).unwrap_or_else(|_| {
            panic!("{k} is not set: run the suite with scripts/test, which starts the registry, dockerd and the base image")
        })
    };
    Env {
        registry: get("LOCKSHIP_TEST_REGISTRY"),
        base: get("LOCKSHIP_TEST_BASE"),
    }
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

pub fn test_cache() -> PathBuf {
    std::env::var_os("LOCKSHIP_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/lockship-test")
        })
}

/// A fixture copied into a temp dir.
pub struct Project {
    pub tmp: tempfile::TempDir,
    pub dir: PathBuf,
}

impl Project {
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }
}

/// Copies `tests/fixtures/NAME` (without any uv.lock) into a fresh temp dir. With
/// `with_uv_lock`, adds a uv.lock made by the real uv (`--exclude-newer` keeps it stable),
/// cached outside the repo by the pyproject's digest.
pub fn fixture(name: &str, with_uv_lock: bool) -> Project {
    let src = repo_root().join("tests/fixtures").join(name);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(name);
    copy_dir(&src, &dir);
    let _ = std::fs::remove_file(dir.join("uv.lock"));
    let _ = std::fs::remove_file(dir.join("lockship-base.lock"));
    if with_uv_lock {
        let pyproject = std::fs::read(dir.join("pyproject.toml")).unwrap();
        let key = lockship_oci::digest::Digest::of_bytes(&pyproject);
        let cached = test_cache()
            .join("locks")
            .join(format!("{name}-{}.uv.lock", &key.hex()[..16]));
        if !cached.is_file() {
            uv_lock(&dir);
            std::fs::create_dir_all(cached.parent().unwrap()).unwrap();
            // Tests run in parallel threads: a unique temp file, then an atomic rename.
            let tmp_lock = tempfile::NamedTempFile::new_in(cached.parent().unwrap()).unwrap();
            std::fs::copy(dir.join("uv.lock"), tmp_lock.path()).unwrap();
            tmp_lock.persist(&cached).unwrap();
        } else {
            std::fs::copy(&cached, dir.join("uv.lock")).unwrap();
        }
    }
    Project { tmp, dir }
}

fn copy_dir(src: &Path, dest: &Path) {
    for entry in walkdir::WalkDir::new(src) {
        let entry = entry.unwrap();
        let rel = entry.path().strip_prefix(src).unwrap();
        if rel
            .components()
            .any(|c| c.as_os_str() == "__pycache__" || c.as_os_str() == ".venv")
        {
            continue;
        }
        let to = dest.join(rel);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&to).unwrap();
        } else {
            std::fs::copy(entry.path(), &to).unwrap();
        }
    }
}

/// Locks the project in `dir` with the real uv, as every test does: Python 3.11, and
/// `--exclude-newer` keeps the versions stable.
pub fn uv_lock(dir: &Path) {
    let status = Command::new("uv")
        .args([
            "lock",
            "--quiet",
            "--exclude-newer",
            "2025-06-01",
            "--python",
            "3.11",
        ])
        .current_dir(dir)
        .status()
        .expect("uv is installed by scripts/test");
    assert!(status.success(), "uv lock failed in {}", dir.display());
}

/// The lockship binary with its cache at `cache`, SOURCE_DATE_EPOCH fixed and CI unset.
pub fn lockship(cache: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lockship"));
    cmd.env("LOCKSHIP_CACHE_DIR", cache)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        // A CI runner sets CI, which turns progress lines on: tests read stderr as a user
        // outside CI sees it (tests/environment.rs sets CI itself).
        .env_remove("CI");
    cmd
}

/// A cache shared by tests that do not need a cold one (saves re-downloading wheels).
pub fn shared_cache() -> PathBuf {
    test_cache().join("cache")
}

/// Runs a command, asserting success, and returns its stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command that must fail, returning its output.
pub fn run_err(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "{cmd:?} unexpectedly succeeded");
    out
}

pub fn docker(args: &[&str]) -> String {
    run_ok(Command::new("docker").args(args))
}

/// Loads a docker tarball and returns nothing; panics with docker's message on failure.
pub fn docker_load(tar: &Path) {
    docker(&["load", "-q", "-i", tar.to_str().unwrap()]);
}

/// Runs `image` with no network (optionally with another entrypoint) and returns its stdout.
pub fn docker_run(image: &str, entrypoint: Option<&str>, args: &[&str]) -> String {
    // Never pull: every image a test runs was loaded or pulled from the loopback registry first.
    let mut all = vec!["run", "--rm", "--pull", "never", "--network", "none"];
    if let Some(e) = entrypoint {
        all.extend(["--entrypoint", e]);
    }
    all.push(image);
    all.extend_from_slice(args);
    docker(&all)
}

/// A unique, lowercase image name for this test run.
pub fn unique(name: &str) -> String {
    format!("{name}-{}-{}", std::process::id(), rand_suffix())
}

fn rand_suffix() -> u32 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}

/// Parses `--format json` output.
pub fn json(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

/// The layer digests of a build report.
pub fn layer_digests(report: &serde_json::Value) -> Vec<String> {
    report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

/// Rewrites the fixture's `[tool.lockship.base]` table (the text after its header line).
pub fn set_debian_base(project: &Project, table: &str) {
    let path = project.path("pyproject.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let at = text
        .find("[tool.lockship.base]\n")
        .expect("fixture has a Debian base table");
    std::fs::write(
        &path,
        format!("{}[tool.lockship.base]\n{table}", &text[..at]),
    )
    .unwrap();
}

/// A project that depends on the wheels `served` by the loopback index `index` (their names and
/// versions), pinned in a requirements.txt whose `--index-url` is `index_url` (so a test can put
/// credentials in it), with one module copied in as the app (no build backend needed).
pub fn index_project(
    index: &servers::StaticServer,
    index_url: &str,
    served: &[(&str, &str, Vec<u8>)],
) -> Project {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("victim");
    std::fs::create_dir_all(&dir).unwrap();
    let deps: Vec<String> = served
        .iter()
        .map(|(name, version, _)| format!("\"{name}=={version}\""))
        .collect();
    std::fs::write(
        dir.join("pyproject.toml"),
        format!(
            "[project]\nname = \"victim\"\nversion = \"1.0\"\ndependencies = [{}]\n\n[tool.lockship]\napp = \"copy\"\ninclude = [\"main.py\"]\nentrypoint = [\"/opt/venv/bin/python\", \"/app/main.py\"]\n",
            deps.join(", ")
        ),
    )
    .unwrap();
    let imports: String = served
        .iter()
        .map(|(name, _, _)| format!("import {name}; print({name}.GREETING)\n"))
        .collect();
    std::fs::write(dir.join("main.py"), imports).unwrap();
    let mut requirements = format!("--index-url {index_url}\n");
    for (name, version, bytes) in served {
        let filename = format!("{name}-{version}-py3-none-any.whl");
        publish(index, name, &[(filename.as_str(), bytes.as_slice())], None);
        requirements.push_str(&format!(
            "{name}=={version} --hash={}\n",
            lockship_oci::digest::Digest::of_bytes(bytes)
        ));
    }
    std::fs::write(dir.join("requirements.txt"), requirements).unwrap();
    Project { tmp, dir }
}

/// Lists `files` (name, bytes) for `package` on `index`, served from `file_host` (another
/// server) when given, else from the index itself.
pub fn publish(
    index: &servers::StaticServer,
    package: &str,
    files: &[(&str, &[u8])],
    file_host: Option<&servers::StaticServer>,
) {
    let host = file_host.unwrap_or(index);
    let mut listed = Vec::new();
    for (name, bytes) in files {
        let path = format!("/files/{name}");
        host.put(&path, "application/octet-stream", bytes.to_vec());
        let url = if file_host.is_some() {
            host.url(&path)
        } else {
            // Relative, as real indexes often write them.
            format!("../../files/{name}")
        };
        listed.push((name.to_string(), url, bytes.to_vec()));
    }
    let page: Vec<(&str, &str, &[u8])> = listed
        .iter()
        .map(|(n, u, b)| (n.as_str(), u.as_str(), b.as_slice()))
        .collect();
    index.put(
        &format!("/simple/{package}/"),
        "application/vnd.pypi.simple.v1+json",
        servers::project_page(&page),
    );
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.path().to_path_buf())
        .collect()
}

/// The `.lockship-tmp-*` entries under `dir` (what an interrupted run would leave).
pub fn temp_leftovers(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".lockship-tmp-")
        })
        .map(|e| e.path().to_path_buf())
        .collect()
}

/// A registry with htpasswd auth on a free loopback port, stopped (by PID) when dropped.
pub struct AuthRegistry {
    child: Child,
    pub addr: String,
    /// The registry's storage (scanned by the secrets test).
    pub dir: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for AuthRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl AuthRegistry {
    /// A registry process the caller started (with a config it wrote), kept until dropped.
    pub fn adopt(child: Child, addr: String, dir: PathBuf) -> AuthRegistry {
        AuthRegistry {
            child,
            addr,
            dir,
            _dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Waits until the registry answers `/v2/` with 401 (it is up and wants credentials).
    pub fn wait_for_401(&self) {
        for _ in 0..100 {
            let code = Command::new("curl")
                .args([
                    "-s",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    &format!("http://{}/v2/", self.addr),
                ])
                .output()
                .unwrap();
            if code.stdout == b"401" {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("registry on {} did not start", self.addr);
    }
}

/// Copies the test base image to `dest` (a reference on a registry that wants `user:password`)
/// with skopeo, and returns `dest`.
pub fn copy_base_with_creds(dest: &str, creds: &str) -> String {
    run_ok(Command::new("skopeo").args([
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--dest-creds",
        creds,
        &format!("docker://{}", env().base),
        &format!("docker://{dest}"),
    ]));
    dest.to_string()
}

pub fn auth_registry(user: &str, password: &str) -> AuthRegistry {
    let htpasswd = run_ok(Command::new("htpasswd").args(["-Bbn", user, password]));
    registry_with_auth(|dir| {
        std::fs::write(dir.join("htpasswd"), &htpasswd).unwrap();
        format!(
            "  htpasswd:\n    realm: lockship-test\n    path: {}/htpasswd\n",
            dir.display()
        )
    })
}

/// The reference registry with `auth: token`: it sends clients to `tokens` for bearer tokens
/// and trusts the JWTs its key signs.
pub fn token_registry(tokens: &servers::TokenServer) -> AuthRegistry {
    registry_with_auth(|_| {
        format!(
            "  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
            tokens.realm(),
            servers::TokenServer::SERVICE,
            servers::TokenServer::ISSUER,
            tokens.cert.display(),
        )
    })
}

/// A reference registry on a free loopback port whose `auth:` section `auth` writes (given the
/// registry's own directory), up once it answers 401.
fn registry_with_auth(auth: impl FnOnce(&Path) -> String) -> AuthRegistry {
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = format!(
        "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {d}/data\nhttp:\n  addr: 127.0.0.1:{port}\nauth:\n{auth}",
        d = dir.path().display(),
        auth = auth(dir.path()),
    );
    std::fs::write(dir.path().join("config.yml"), config).unwrap();
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(dir.path().join("config.yml"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let registry = AuthRegistry {
        child,
        addr: format!("127.0.0.1:{port}"),
        dir: dir.path().join("data"),
        _dir: dir,
    };
    registry.wait_for_401();
    registry
}

pub fn docker_config(dir: &Path, registry: &str, auth_b64: Option<&str>) {
    let auths = match auth_b64 {
        Some(a) => serde_json::json!({ registry: { "auth": a } }),
        None => serde_json::json!({}),
    };
    std::fs::write(
        dir.join("config.json"),
        serde_json::json!({ "auths": auths }).to_string(),
    )
    .unwrap();
}

/// The layer blobs of the only image in the OCI layout at `dir`, base first.
pub fn layout_layer_blobs(dir: &Path) -> Vec<Vec<u8>> {
    let blob = |digest: &str| {
        std::fs::read(
            dir.join("blobs/sha256")
                .join(digest.trim_start_matches("sha256:")),
        )
        .unwrap()
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1, "one image in {}", dir.display());
    let manifest: serde_json::Value =
        serde_json::from_slice(&blob(manifests[0]["digest"].as_str().unwrap())).unwrap();
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|layer| blob(layer["digest"].as_str().unwrap()))
        .collect()
}

/// The layers of the only image in the OCI layout at `dir`, base first: each entry's path and
/// its first 16 bytes (a pyc's header).
pub fn layout_layers(dir: &Path) -> Vec<Vec<(String, Vec<u8>)>> {
    use std::io::Read;
    layout_layer_blobs(dir)
        .iter()
        .map(|bytes| {
            let mut archive = tar::Archive::new(flate2::read::MultiGzDecoder::new(&bytes[..]));
            archive
                .entries()
                .unwrap()
                .map(|e| {
                    let mut e = e.unwrap();
                    let path = e.path().unwrap().display().to_string();
                    let mut head = Vec::new();
                    (&mut e).take(16).read_to_end(&mut head).unwrap();
                    (path, head)
                })
                .collect()
        })
        .collect()
}

/// The file at `path` in the only image of the OCI layout at `dir`, as a container sees it
/// (from the last layer that writes it).
pub fn layout_file(dir: &Path, path: &str) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut found = None;
    for bytes in layout_layer_blobs(dir) {
        let mut archive = tar::Archive::new(flate2::read::MultiGzDecoder::new(&bytes[..]));
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            if name.trim_start_matches("./") == path {
                let mut contents = Vec::new();
                entry.read_to_end(&mut contents).unwrap();
                found = Some(contents);
            }
        }
    }
    found
}
