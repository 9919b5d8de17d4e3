//! A real private index that requires a password: pypiserver (PEP 503 HTML pages, as
//! Artifactory and Nexus serve) on 127.0.0.1 with an htpasswd file, serving real wheels. The
//! project names it as a `[[tool.uv.index]]`; its credentials come from each place users keep
//! them (uv's variables, netrc, user info in PIP_INDEX_URL). A wrong or missing password says
//! which index refused and where lockship looked. Then every byte produced is searched for the
//! password: zero hits.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::pypiserver::{real_wheels, PypiServer};
use support::secret_scan::SecretScan;
use support::*;

const USER: &str = "ci-reader";
const PASSWORD: &str = "pps-SECRET-51c0";
const WHEELS: [&str; 2] = ["six==1.16.0", "idna==3.7"];

/// A project depending on the wheels, pinned with hashes in requirements.txt (no index URL in
/// it), whose pyproject names the private index `private`.
fn project(server: &PypiServer, wheels: &[std::path::PathBuf]) -> Project {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("private-app");
    std::fs::create_dir_all(&dir).unwrap();
    let deps: Vec<String> = WHEELS.iter().map(|w| format!("\"{w}\"")).collect();
    std::fs::write(
        dir.join("pyproject.toml"),
        format!(
            "[project]\nname = \"private-app\"\nversion = \"1.0\"\ndependencies = [{}]\n\n[[tool.uv.index]]\nname = \"private\"\nurl = \"{}\"\n\n[tool.lockship]\napp = \"copy\"\ninclude = [\"main.py\"]\nentrypoint = [\"/opt/venv/bin/python\", \"/app/main.py\"]\n",
            deps.join(", "),
            server.url()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("main.py"),
        "import six, idna; print(six.__version__, idna.encode('b\\u00fccher.example').decode())\n",
    )
    .unwrap();
    let mut requirements = String::new();
    for (req, wheel) in WHEELS.iter().zip(wheels) {
        let digest = lockship_oci::digest::Digest::of_bytes(&std::fs::read(wheel).unwrap());
        requirements.push_str(&format!("{req} --hash={digest}\n"));
    }
    std::fs::write(dir.join("requirements.txt"), requirements).unwrap();
    Project { tmp, dir }
}

/// Builds `project` in a fresh cache with only the given environment for credentials: no
/// configured index, and a HOME with no netrc or pip config.
fn build(project: &Project, cache: &Path, vars: &[(&str, String)], out: &Path) -> Output {
    let home = project.tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let mut cmd = lockship(cache);
    for var in [
        "UV_DEFAULT_INDEX",
        "UV_INDEX_URL",
        "PIP_INDEX_URL",
        "PIP_CONFIG_FILE",
        "NETRC",
        "XDG_CONFIG_HOME",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("HOME", &home)
        .env("LOCKSHIP_HTTP_RETRIES", "1")
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .arg("build")
        .arg(&project.dir)
        .args(["--base", &env().base, "--format", "json"])
        .arg("--output")
        .arg(format!("oci:{}", out.display()));
    cmd.output().unwrap()
}

#[test]
fn a_private_index_is_read_with_every_kind_of_credential_and_never_leaks_it() {
    if services_missing() {
        return;
    }
    let wheels = real_wheels(&WHEELS);
    let server = PypiServer::start(&wheels, USER, PASSWORD);
    let project = project(&server, &wheels);
    let netrc = project.tmp.path().join("netrc");
    std::fs::write(
        &netrc,
        format!("machine 127.0.0.1 login {USER} password {PASSWORD}\n"),
    )
    .unwrap();
    let with_user_info = server
        .url()
        .replace("http://", &format!("http://{USER}:{PASSWORD}@"));
    let sources: [(&str, Vec<(&str, String)>); 3] = [
        (
            "uv variables",
            vec![
                ("UV_INDEX_PRIVATE_USERNAME", USER.to_string()),
                ("UV_INDEX_PRIVATE_PASSWORD", PASSWORD.to_string()),
            ],
        ),
        ("netrc", vec![("NETRC", netrc.display().to_string())]),
        ("PIP_INDEX_URL", vec![("PIP_INDEX_URL", with_user_info)]),
    ];
    let mut scan = SecretScan::default()
        .secret("password", PASSWORD)
        .basic_auth("basic auth", USER, PASSWORD);
    let scratch = tempfile::tempdir().unwrap();
    let mut digests = Vec::new();
    for (i, (what, vars)) in sources.iter().enumerate() {
        let cache = scratch.path().join(format!("cache-{i}"));
        let out = scratch.path().join(format!("image-{i}.oci"));
        let output = build(&project, &cache, vars, &out);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "credentials from {what}: {stderr}");
        let report = json(&String::from_utf8_lossy(&output.stdout));
        assert_eq!(
            (&report["lock"], &report["lock_format"]),
            (&"requirements.txt".into(), &"requirements.txt".into())
        );
        digests.push(report["digest"].as_str().unwrap().to_string());
        scan.output(&output, &format!("the build with {what}"));
    }
    assert!(
        digests.windows(2).all(|w| w[0] == w[1]),
        "where the credentials came from changes nothing in the image: {digests:?}"
    );
    // The image runs its real dependencies.
    let tar = scratch.path().join("image.tar");
    let loaded = lockship(&scratch.path().join("cache-0"))
        .env("UV_INDEX_PRIVATE_USERNAME", USER)
        .env("UV_INDEX_PRIVATE_PASSWORD", PASSWORD)
        .env_remove("UV_DEFAULT_INDEX")
        .env_remove("PIP_INDEX_URL")
        .arg("build")
        .arg(&project.dir)
        .args(["--base", &env().base, "--tag", "private-app:1", "--output"])
        .arg(format!("docker:{}", tar.display()))
        .output()
        .unwrap();
    assert!(loaded.status.success());
    scan.output(&loaded, "the docker build");
    docker_load(&tar);
    assert_eq!(
        docker_run("private-app:1", None, &[]).trim(),
        "1.16.0 xn--bcher-kva.example"
    );

    // A wrong password: the index and the source of the credentials are named, never the
    // password.
    let cache = scratch.path().join("cache-wrong");
    let output = build(
        &project,
        &cache,
        &[
            ("UV_INDEX_PRIVATE_USERNAME", USER.to_string()),
            ("UV_INDEX_PRIVATE_PASSWORD", "wrong-password".to_string()),
        ],
        &scratch.path().join("wrong.oci"),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let url = format!("http://{USER}:****@127.0.0.1:{}/simple", server.port);
    assert!(
        stderr.contains(&format!("error: package index {url} refused to list "))
            // pypiserver answers a wrong password with 403, a missing one with 401.
            && stderr.contains(
                "(HTTP 403); lockship sent credentials from UV_INDEX_PRIVATE_USERNAME/_PASSWORD"
            ),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: lockship sends an index's credentials to its own host only"),
        "{stderr}"
    );
    assert!(!stderr.contains("wrong-password"), "{stderr}");
    assert!(!scratch.path().join("wrong.oci").exists());

    // None at all: the places lockship looked.
    let output = build(
        &project,
        &scratch.path().join("cache-none"),
        &[],
        &scratch.path().join("none.oci"),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("(HTTP 401); lockship sent no credentials (looked in: UV_INDEX_PRIVATE_USERNAME/_PASSWORD, POETRY_HTTP_BASIC_PRIVATE_USERNAME/_PASSWORD, netrc (no NETRC and no ~/.netrc))"),
        "{stderr}"
    );
    scan.output(&output, "the build without credentials");

    let scanned = scan.dir(scratch.path());
    assert!(scanned > 20, "only {scanned} files scanned");
    assert!(
        scan.found.is_empty(),
        "secrets found:\n{}",
        scan.found.join("\n")
    );
    let _ = Command::new("docker")
        .args(["rmi", "-f", "private-app:1"])
        .output();
}

/// The same private index, locked by poetry (credentials in POETRY_HTTP_BASIC_<SOURCE>_*) and
/// by pipenv (`${VAR}` in the Pipfile's source URL): each lock names the index itself, lockship
/// reads it natively with the same credentials the tool used, and the password reaches nothing.
#[test]
fn poetry_and_pipenv_locks_of_a_private_index_build_with_their_own_credentials() {
    if services_missing() {
        return;
    }
    let tools = std::path::PathBuf::from(std::env::var("LOCKSHIP_TEST_TOOLS").unwrap());
    let wheels = real_wheels(&WHEELS);
    let server = PypiServer::start(&wheels, USER, PASSWORD);
    let scratch = tempfile::tempdir().unwrap();
    let mut scan = SecretScan::default()
        .secret("password", PASSWORD)
        .basic_auth("basic auth", USER, PASSWORD);
    let mut digests = Vec::new();
    for tool in ["poetry", "pipenv"] {
        let dir = scratch.path().join(tool);
        std::fs::create_dir_all(&dir).unwrap();
        let deps: Vec<String> = WHEELS.iter().map(|w| format!("\"{w}\"")).collect();
        std::fs::write(
            dir.join("main.py"),
            "import six, idna; print(six.__version__)\n",
        )
        .unwrap();
        let lockship_table = "[tool.lockship]\napp = \"copy\"\ninclude = [\"main.py\"]\nentrypoint = [\"/opt/venv/bin/python\", \"/app/main.py\"]\n";
        let vars: Vec<(&str, String)> = if tool == "poetry" {
            std::fs::write(
                dir.join("pyproject.toml"),
                format!(
                    "[project]\nname = \"private-{tool}\"\nversion = \"1.0\"\nrequires-python = \">=3.11\"\ndependencies = [{}]\n\n[tool.poetry]\npackage-mode = false\n\n[[tool.poetry.source]]\nname = \"private\"\nurl = \"{}\"\npriority = \"primary\"\n\n{lockship_table}",
                    deps.join(", "),
                    server.url()
                ),
            )
            .unwrap();
            vec![
                ("POETRY_HTTP_BASIC_PRIVATE_USERNAME", USER.to_string()),
                ("POETRY_HTTP_BASIC_PRIVATE_PASSWORD", PASSWORD.to_string()),
            ]
        } else {
            std::fs::write(
                dir.join("pyproject.toml"),
                format!(
                    "[project]\nname = \"private-{tool}\"\nversion = \"1.0\"\n\n{lockship_table}"
                ),
            )
            .unwrap();
            std::fs::write(
                dir.join("Pipfile"),
                format!(
                    "[[source]]\nurl = \"http://${{PPS_USER}}:${{PPS_PASSWORD}}@127.0.0.1:{}/simple\"\nverify_ssl = false\nname = \"private\"\n\n[packages]\nsix = \"==1.16.0\"\nidna = \"==3.7\"\n\n[requires]\npython_version = \"3.11\"\n",
                    server.port
                ),
            )
            .unwrap();
            vec![
                ("PPS_USER", USER.to_string()),
                ("PPS_PASSWORD", PASSWORD.to_string()),
            ]
        };
        let mut lock = Command::new(tools.join(tool).join("bin").join(tool));
        lock.arg("lock")
            .current_dir(&dir)
            .env("POETRY_CACHE_DIR", scratch.path().join("tool-cache"))
            .env("PIPENV_CACHE_DIR", scratch.path().join("tool-cache"))
            .env("PIPENV_VENV_IN_PROJECT", "1")
            .env("PIPENV_NOSPIN", "1")
            .envs(vars.iter().map(|(k, v)| (k, v)));
        let locked = lock.output().unwrap();
        assert!(
            locked.status.success(),
            "{tool} lock: {}",
            String::from_utf8_lossy(&locked.stderr)
        );
        // The tools' own files are theirs to keep secrets in; what lockship writes is scanned.
        let lock_file = if tool == "poetry" {
            "poetry.lock"
        } else {
            "Pipfile.lock"
        };
        let text = std::fs::read_to_string(dir.join(lock_file)).unwrap();
        assert!(
            !text.contains(PASSWORD),
            "{tool} wrote the password into {lock_file}"
        );
        let cache = scratch.path().join(format!("cache-{tool}"));
        let project = Project {
            tmp: tempfile::tempdir().unwrap(),
            dir: dir.clone(),
        };
        let out = scratch.path().join(format!("{tool}.oci"));
        let output = build(&project, &cache, &vars, &out);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{tool}: {stderr}");
        let report = json(&String::from_utf8_lossy(&output.stdout));
        assert_eq!(report["lock_format"], lock_file);
        digests.push(layer_digests(&report));
        scan.output(&output, &format!("the {tool} build"));
        scan.dir(&cache);
        scan.dir(&out);

        // Without the credentials the index refuses, and the message says where lockship looked.
        let output = build(
            &project,
            &scratch.path().join(format!("cache-{tool}-none")),
            &vars
                .iter()
                .map(|(k, _)| (*k, String::new()))
                .collect::<Vec<_>>(),
            &scratch.path().join(format!("{tool}-none.oci")),
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{tool}: {stderr}");
        assert!(stderr.contains("refused to list"), "{tool}: {stderr}");
        scan.output(&output, &format!("the {tool} build without credentials"));
    }
    assert_eq!(
        digests[0], digests[1],
        "poetry's and pipenv's locks of the same versions give the same layers"
    );
    assert!(
        scan.found.is_empty(),
        "secrets found:\n{}",
        scan.found.join("\n")
    );
}
