//! `lockship inspect`, `diff` and `push`, on images lockship built and one `docker save`
//! wrote: each reads the same image from a registry, an OCI layout and a docker tarball; diff
//! shows a dependency bump as a reviewer wants it; push promotes an image (one platform or an
//! index) without rebuilding, keeping its digest, and only after its smoke commands pass.

mod support;

use std::path::Path;
use std::process::Command;

use support::*;

fn build(project: &Path, args: &[&str]) -> String {
    run_ok(
        lockship(&shared_cache())
            .arg("build")
            .arg(project)
            .args(["--base", &env().base])
            .args(args),
    )
}

fn inspect_json(image: &str) -> serde_json::Value {
    json(&run_ok(
        lockship(&shared_cache()).args(["inspect", image, "--format", "json"]),
    ))
}

/// The digest `reference` names in the registry, as the registry itself says.
fn registry_digest(reference: &str) -> String {
    let out = run_ok(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{reference}"),
    ]));
    lockship_oci::digest::Digest::of_bytes(out.as_bytes()).to_string()
}

fn package_names(report: &serde_json::Value) -> Vec<String> {
    report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| l["packages"].as_array().unwrap().clone())
        .map(|p| {
            format!(
                "{} {}",
                p["name"].as_str().unwrap(),
                p["version"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn inspect_reads_each_kind_of_image_and_diff_shows_a_dependency_bump() {
    if services_missing() {
        return;
    }
    let env = env();
    let project = fixture("hello-cli", true);
    let out = project.tmp.path();
    let layout = format!("oci:{}", out.join("app.oci").display());
    let tarball = format!("docker:{}", out.join("app.tar").display());
    let pushed = format!("{}/{}:1", env.registry, unique("inspect"));
    build(
        &project.dir,
        &["--output", &layout, "--output", &tarball, "--push", &pushed],
    );

    let from_layout = inspect_json(&layout);
    for other in [&tarball, &pushed] {
        let report = inspect_json(other);
        assert_eq!(report["digest"], from_layout["digest"], "{other}");
        assert_eq!(package_names(&report), package_names(&from_layout));
    }
    assert_eq!(registry_digest(&pushed), from_layout["digest"]);
    let packages = package_names(&from_layout);
    assert!(
        packages.iter().any(|p| p.starts_with("click ")),
        "{packages:?}"
    );
    assert!(
        packages.iter().any(|p| p.starts_with("rich ")),
        "{packages:?}"
    );
    assert!(
        packages.contains(&"hello-cli 0.1.0".to_string()),
        "{packages:?}"
    );
    assert_eq!(from_layout["target"], "production");
    assert_eq!(from_layout["base"], env.base.as_str());
    assert!(from_layout["lock_digest"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    assert_eq!(from_layout["config"]["user"], "65532:65532");
    assert_eq!(
        from_layout["config"]["entrypoint"][0],
        "/opt/venv/bin/hello"
    );
    // The base is Debian's: dpkg's packages are read from it.
    let os: Vec<&str> = from_layout["os_packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(os.contains(&"libc6"), "{os:?}");
    // Licenses come from the wheels' METADATA.
    let click = from_layout["layers"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| l["packages"].as_array().unwrap())
        .find(|p| p["name"] == "click")
        .unwrap();
    let license = click["license_expression"]
        .as_str()
        .or(click["license"].as_str());
    assert!(license.is_some_and(|l| l.contains("BSD")), "{click}");
    // Installed from the file the lock names, with the lock's hash.
    assert!(click["file"].as_str().unwrap().ends_with(".whl"), "{click}");
    let lock = std::fs::read_to_string(project.path("uv.lock")).unwrap();
    assert!(lock.contains(click["sha256"].as_str().unwrap()), "{click}");

    // What a person reads: the same facts, in a listing.
    let text = run_ok(lockship(&shared_cache()).args(["inspect", &layout]));
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"127\.0\.0\.1:\d+", "[registry]");
    settings.add_filter(r"sha256:[0-9a-f]{64}", "[digest]");
    settings.add_filter(r"oci:/\S+", "oci:[dir]");
    settings.add_filter(
        r"(?m)^\s+(\d+)\s+[\d.]+ (B|KiB|MiB)\s+\d+\s+",
        "  $1  [size]  [n]  ",
    );
    settings.add_filter(r"\d+(\.\d)? (B|KiB|MiB)", "[size]");
    settings.add_filter(r"(?m)^os packages: \d+", "os packages: [n]");
    settings.add_filter(
        r"(?ms)^biggest files:.*?\n\n",
        "biggest files: [listed]\n\n",
    );
    settings.add_filter(
        r"(?m)^label       org\.opencontainers\.image\.(revision|source)=.*\n",
        "",
    );
    settings.add_filter(
        r"(?m)  (click|rich|markdown-it-py|mdurl|Pygments) [0-9.]+$",
        "  $1 [version]",
    );
    settings.add_filter(r"(?m)add-layer: .*$", "add-layer: [base]");
    settings.bind(|| insta::assert_snapshot!(text));

    // The same project with a dependency added, another pinned back and an env change.
    let pyproject = project.path("pyproject.toml");
    let text = std::fs::read_to_string(&pyproject).unwrap();
    let text = text
        .replace(
            r#"dependencies = ["click>=8.1", "rich>=13"]"#,
            r#"dependencies = ["click>=8.1,<8.2", "rich>=13", "idna"]"#,
        )
        .replace(r#"HELLO_GREETING = "Hello""#, r#"HELLO_GREETING = "Hi""#);
    std::fs::write(&pyproject, text).unwrap();
    uv_lock(&project.dir);
    let bumped = format!("oci:{}", out.join("bumped.oci").display());
    build(&project.dir, &["--output", &bumped]);
    let diff = json(&run_ok(
        lockship(&shared_cache()).args(["diff", &layout, &bumped, "--format", "json"]),
    ));
    let added: Vec<&str> = diff["packages"]["added"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(added, ["idna"]);
    assert_eq!(diff["packages"]["removed"].as_array().unwrap().len(), 0);
    let changed = &diff["packages"]["changed"][0];
    assert_eq!(changed["name"], "click");
    assert!(
        changed["to"].as_str().unwrap().starts_with("8.1."),
        "{changed}"
    );
    // The click, idna and app layers are new; the base, venv, rich and its dependencies not.
    assert_eq!(
        diff["layers"]["added"].as_array().unwrap().len(),
        3,
        "{diff}"
    );
    assert_eq!(
        diff["layers"]["removed"].as_array().unwrap().len(),
        2,
        "{diff}"
    );
    assert!(diff["size_to"].as_u64() > diff["size_from"].as_u64());
    let config: Vec<&str> = diff["config"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert!(config.contains(&"env HELLO_GREETING"), "{config:?}");
    assert!(
        config.contains(&"label dev.lockship.lock.digest"),
        "{config:?}"
    );
    let text = run_ok(lockship(&shared_cache()).args(["diff", &layout, &bumped]));
    assert!(
        text.contains("packages: 1 added, 0 removed, 1 changed"),
        "{text}"
    );
    assert!(text.contains("  + idna "), "{text}");
    assert!(text.contains("~ env HELLO_GREETING: Hello → Hi"), "{text}");
    let same = run_ok(lockship(&shared_cache()).args(["diff", &layout, &tarball]));
    assert!(same.contains("the same image: nothing changed"), "{same}");
}

#[test]
fn a_reader_that_stops_early_is_not_a_crash() {
    if services_missing() {
        return;
    }
    let project = fixture("hello-cli", true);
    let layout = format!("oci:{}", project.tmp.path().join("app.oci").display());
    build(&project.dir, &["--output", &layout]);
    // `lockship inspect … | head -c 10`: the pipe closes while lockship still writes.
    let mut child = lockship(&shared_cache())
        .args(["inspect", &layout, "--format", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
}

/// The project's image as two tarballs: lockship's `docker:` output, and what `docker save`
/// (dockerd 20.10: the older format, manifest.json and a plain tar per layer) makes of it
/// once loaded.
fn docker_tarballs(project: &Project) -> (std::path::PathBuf, std::path::PathBuf) {
    let tar = project.tmp.path().join("app.tar");
    let name = format!("{}:1", unique("saved"));
    build(
        &project.dir,
        &[
            "--output",
            &format!("docker:{}", tar.display()),
            "--tag",
            &name,
        ],
    );
    docker_load(&tar);
    let saved = project.tmp.path().join("saved.tar");
    docker(&["save", "-o", saved.to_str().unwrap(), &name]);
    docker(&["rmi", &name]);
    (tar, saved)
}

#[test]
fn inspect_reads_what_docker_save_wrote() {
    if services_missing() {
        return;
    }
    let project = fixture("hello-cli", true);
    let (tar, saved) = docker_tarballs(&project);
    let ours = inspect_json(&format!("docker:{}", tar.display()));
    let theirs = inspect_json(&format!("docker:{}", saved.display()));
    assert_eq!(package_names(&theirs), package_names(&ours));
    assert_eq!(theirs["config"], ours["config"]);
    assert_eq!(
        theirs["layers"].as_array().unwrap().len(),
        ours["layers"].as_array().unwrap().len()
    );
}

#[test]
fn push_promotes_an_image_and_an_index_keeping_their_digests() {
    if services_missing() {
        return;
    }
    let env = env();
    let project = fixture("hello-cli", true);
    let layout = format!("oci:{}", project.tmp.path().join("app.oci").display());
    build(&project.dir, &["--output", &layout]);
    let built = inspect_json(&layout)["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let repo = format!("{}/{}", env.registry, unique("promote"));
    let other = format!("{}/{}", env.registry, unique("promote-prod"));

    // Build once, then :sha → :staging → :prod (another repository).
    let sha = format!("{repo}:sha-1");
    let out = run_ok(lockship(&shared_cache()).args(["push", &layout, &sha]));
    assert!(out.contains(&format!("pushed {sha}@{built}")), "{out}");
    let staging = format!("{repo}:staging");
    let prod = format!("{other}:prod");
    let report = json(&run_ok(
        lockship(&shared_cache()).args(["push", &sha, &staging, &prod, "--format", "json"]),
    ));
    assert_eq!(report["digest"], built.as_str());
    for reference in [&sha, &staging, &prod] {
        assert_eq!(registry_digest(reference), built, "{reference}");
    }
    // Same repository: nothing uploaded; another: every layer mounted, nothing uploaded but
    // the config.
    assert_eq!(report["pushed"][0]["uploaded"], 0, "{report}");
    assert_eq!(report["pushed"][1]["uploaded"], 1, "{report}");
    assert!(
        report["pushed"][1]["mounted"].as_u64().unwrap() > 1,
        "{report}"
    );
    docker(&["pull", "-q", &prod]);
    let greeting = docker_run(&prod, None, &["lockship"]);
    assert!(greeting.starts_with("Hello, lockship!"), "{greeting}");
    docker(&["rmi", &prod]);

    // A multi-platform image goes up as its index, every platform's manifest with it (on the
    // fixture's own Debian-package base, which lockship makes for either platform).
    let multi = format!("oci:{}", project.tmp.path().join("multi.oci").display());
    run_ok(
        lockship(&shared_cache())
            .arg("build")
            .arg(&project.dir)
            .args(["--platform", "linux/amd64,linux/arm64", "--output", &multi]),
    );
    let index_digest = {
        let layout_dir = project.tmp.path().join("multi.oci");
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(layout_dir.join("index.json")).unwrap()).unwrap();
        index["manifests"][0]["digest"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let target = format!("{repo}:multi");
    run_ok(lockship(&shared_cache()).args(["push", &multi, &target]));
    assert_eq!(registry_digest(&target), index_digest);
    let arm = inspect_json_platform(&target, "linux/arm64");
    assert_eq!(arm["platform"], "linux/arm64");
    assert_eq!(arm["platforms"].as_array().unwrap().len(), 2);
}

#[test]
fn push_takes_docker_tarballs_of_either_format() {
    if services_missing() {
        return;
    }
    let env = env();
    let project = fixture("hello-cli", true);
    let (tar, saved) = docker_tarballs(&project);
    let built = inspect_json(&format!("docker:{}", tar.display()))["digest"]
        .as_str()
        .unwrap()
        .to_string();
    // lockship's own tarball (an OCI layout inside): the same digest in the registry.
    let repo = format!("{}/{}", env.registry, unique("from-tar"));
    run_ok(lockship(&shared_cache()).args([
        "push",
        &format!("docker:{}", tar.display()),
        &format!("{repo}:oci"),
    ]));
    assert_eq!(registry_digest(&format!("{repo}:oci")), built);

    // `docker save`'s older format: plain layer tars under a new OCI manifest, runnable.
    let legacy = format!("{repo}:legacy");
    run_ok(lockship(&shared_cache()).args([
        "push",
        &format!("docker:{}", saved.display()),
        &legacy,
    ]));
    docker(&["pull", "-q", &legacy]);
    let greeting = docker_run(&legacy, None, &["tarball"]);
    docker(&["rmi", &legacy]);
    assert!(greeting.starts_with("Hello, tarball!"), "{greeting}");
}

fn inspect_json_platform(image: &str, platform: &str) -> serde_json::Value {
    json(&run_ok(lockship(&shared_cache()).args([
        "inspect",
        image,
        "--platform",
        platform,
        "--format",
        "json",
    ])))
}

#[test]
fn push_runs_the_smoke_commands_first_and_remembers_a_pass() {
    if services_missing() {
        return;
    }
    let env = env();
    let project = fixture("hello-cli", true);
    // An image no earlier run tested (the shared cache remembers passes by image digest).
    let pyproject = project.path("pyproject.toml");
    let text = std::fs::read_to_string(&pyproject).unwrap();
    let label = format!("\"lockship example {}\"", unique("run"));
    std::fs::write(&pyproject, text.replace("\"lockship example\"", &label)).unwrap();
    let layout = format!("oci:{}", project.tmp.path().join("test.oci").display());
    build(&project.dir, &["--target", "test", "--output", &layout]);
    let reference = format!("{}/{}:test", env.registry, unique("gated"));

    // The test target's smoke command, as the project says it now, fails on this image:
    // nothing is pushed.
    let good = std::fs::read_to_string(&pyproject).unwrap();
    let failing = good.replace(
        r#"smoke = ["python -m pytest -q -p no:cacheprovider tests"]"#,
        r#"smoke = ["python -m pytest -q -p no:cacheprovider tests", "python -c 'raise SystemExit(3)'"]"#,
    );
    assert_ne!(failing, good);
    std::fs::write(&pyproject, failing).unwrap();
    let failed = run_err(
        lockship(&shared_cache())
            .args(["push", &layout, &reference, "--project"])
            .arg(&project.dir),
    );
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(
        err.contains("error: smoke test `python -c 'raise SystemExit(3)'` failed with exit code 3"),
        "{err}"
    );
    assert!(err.contains("hint: nothing was pushed"), "{err}");
    let missing = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{reference}"))
        .output()
        .unwrap();
    assert!(
        !missing.status.success(),
        "a failed smoke test still pushed"
    );

    // Fixed, it passes and pushes; a second push remembers the pass.
    std::fs::write(&pyproject, good).unwrap();
    let push = |dest: &str| {
        lockship(&shared_cache())
            .args(["push", &layout, dest, "--project"])
            .arg(&project.dir)
            .output()
            .unwrap()
    };
    let first = push(&reference);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(stderr.contains("smoke: python -m pytest"), "{stderr}");
    let again = push(&format!("{reference}-again"));
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("passed on this image before"));
}

#[test]
fn bad_image_names_and_hostile_tarballs_get_one_line_errors() {
    let cache = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let first_line = |args: &[&str]| {
        let out = run_err(lockship(cache.path()).args(args));
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        err.lines().next().unwrap().to_string()
    };
    // A path given without its kind is read as what it is: a file as a docker tarball.
    let plain = dir.path().join("app.tar");
    std::fs::write(&plain, b"").unwrap();
    let line = first_line(&["inspect", plain.to_str().unwrap()]);
    assert!(
        line.contains(&format!("docker tarball {}", plain.display())),
        "{line}"
    );
    // A directory that is not a layout.
    let line = first_line(&["inspect", &format!("oci:{}", dir.path().display())]);
    assert!(line.contains("is not an OCI image layout"), "{line}");

    // A tarball with a member that climbs out: refused, nothing written beside it.
    let evil = dir.path().join("evil.tar");
    {
        let mut builder = tar::Builder::new(std::fs::File::create(&evil).unwrap());
        let mut header = tar::Header::new_gnu();
        header.set_size(4);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        header.as_gnu_mut().unwrap().name[..10].copy_from_slice(b"../escaped");
        header.set_cksum();
        builder.append(&header, &b"evil"[..]).unwrap();
        builder.finish().unwrap();
    }
    let line = first_line(&["inspect", &format!("docker:{}", evil.display())]);
    assert!(line.contains("unsafe name `../escaped`"), "{line}");
    assert!(!dir.path().parent().unwrap().join("escaped").exists());

    // A layout blob whose content is not its name.
    let tarball = |path: &Path, files: &[(&str, &[u8])]| {
        let mut builder = tar::Builder::new(std::fs::File::create(path).unwrap());
        for (name, bytes) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, name, *bytes).unwrap();
        }
        builder.finish().unwrap();
    };
    let lying = dir.path().join("lying.tar");
    let zeros = format!("blobs/sha256/{}", "0".repeat(64));
    tarball(
        &lying,
        &[
            ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
            ("index.json", br#"{"schemaVersion":2,"manifests":[]}"#),
            (&zeros, b"evil"),
        ],
    );
    let line = first_line(&["inspect", &format!("docker:{}", lying.display())]);
    assert!(
        line.contains("has other content than its name says"),
        "{line}"
    );
    // A tarball of something else is refused before anything of it is stored.
    let other = dir.path().join("backup.tar");
    let files: Vec<(String, Vec<u8>)> = (0..50)
        .map(|i| (format!("data/file{i}"), vec![i as u8; 1000]))
        .collect();
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    tarball(&other, &refs);
    let stored = || {
        walkdir::WalkDir::new(cache.path().join("blobs"))
            .into_iter()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_file())
            .count()
    };
    let before = stored();
    let line = first_line(&["inspect", &format!("docker:{}", other.display())]);
    assert!(
        line.contains("neither an OCI layout nor a manifest.json"),
        "{line}"
    );
    assert_eq!(
        stored(),
        before,
        "a refused tarball left blobs in the cache"
    );
    // Nothing half-written stays in the cache.
    assert!(temp_leftovers(cache.path()).is_empty());
}

/// An OCI layout written by hand: `blobs` (name, bytes) and an index.json listing `manifests`.
fn hand_layout(dir: &Path, blobs: &[&[u8]], manifests: serde_json::Value) {
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    for b in blobs {
        let d = lockship_oci::digest::Digest::of_bytes(b);
        std::fs::write(dir.join("blobs/sha256").join(d.hex()), b).unwrap();
    }
    let index = serde_json::json!({"schemaVersion": 2, "manifests": manifests});
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
}

#[test]
fn hostile_layouts_are_refused_without_reading_them_whole() {
    let cache = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let first_line = |image: &Path| {
        let out =
            run_err(lockship(cache.path()).args(["inspect", &format!("oci:{}", image.display())]));
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .next()
            .unwrap()
            .to_string()
    };
    let digest = |b: &[u8]| lockship_oci::digest::Digest::of_bytes(b).to_string();
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let layer = b"not really a tar";
    let manifest = |layer_size: u64| {
        serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(config), "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest(layer), "size": layer_size}]})
        .to_string()
    };

    // A layer whose descriptor claims another size than the blob has (2^63: sums overflow).
    let lies = dir.path().join("size");
    let m = manifest(1 << 63);
    hand_layout(
        &lies,
        &[config, layer, m.as_bytes()],
        serde_json::json!([
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest(m.as_bytes()), "size": m.len()}
        ]),
    );
    let line = first_line(&lies);
    assert!(
        line.contains("its descriptor says 9223372036854775808"),
        "{line}"
    );

    // An index listing one manifest many times.
    let dup = dir.path().join("dup");
    let m = manifest(layer.len() as u64);
    let entry = serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": digest(m.as_bytes()), "size": m.len()});
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": vec![entry; 150]}).to_string();
    hand_layout(
        &dup,
        &[config, layer, m.as_bytes(), index.as_bytes()],
        serde_json::json!([
            {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": digest(index.as_bytes()), "size": index.len()}
        ]),
    );
    let line = first_line(&dup);
    assert!(line.contains("twice"), "{line}");

    // A blob that is a FIFO: refused, not waited on.
    let fifo = dir.path().join("fifo");
    hand_layout(
        &fifo,
        &[config, m.as_bytes()],
        serde_json::json!([
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest(m.as_bytes()), "size": m.len()}
        ]),
    );
    let fifo_path = fifo
        .join("blobs/sha256")
        .join(&digest(layer)["sha256:".len()..]);
    let status = Command::new("mkfifo").arg(&fifo_path).status().unwrap();
    assert!(status.success());
    let line = first_line(&fifo);
    assert!(line.contains("not a regular file"), "{line}");
}
