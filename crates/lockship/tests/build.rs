//! End-to-end tests of `lockship build` against a real registry, real wheels from the package
//! index, lock files made by the real uv, and a real Docker engine that runs the images.

mod support;

use std::process::Command;

use support::*;

#[test]
fn hello_cli_image_runs_from_every_output() {
    if services_missing() {
        return;
    }
    let env = env();
    let project = fixture("hello-cli", true);
    let out = project.tmp.path().join("out");
    let name = unique("hello");
    let pushed = format!("{}/tests/{name}:1", env.registry);
    let digest = run_ok(
        lockship(&shared_cache())
            .arg("build")
            .arg(&project.dir)
            .args(["--base", &env.base, "--tag", &format!("{name}:1")])
            .arg("--output")
            .arg(format!("docker:{}", out.join("img.tar").display()))
            .arg("--output")
            .arg(format!("oci:{}", out.join("img.oci").display()))
            .args(["--push", &pushed]),
    );
    let digest = digest.trim();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );

    // docker load → run: the entry point script works, as the non-root user.
    docker_load(&out.join("img.tar"));
    let image = format!("{name}:1");
    assert_eq!(
        docker_run(&image, None, &["tests"]).trim(),
        "Hello, tests! (click 8.2.1, rich rich)"
    );
    assert_eq!(
        docker_run(&image, Some("id"), &[]).trim(),
        "uid=65532(nonroot) gid=65532(nonroot) groups=65532(nonroot)"
    );
    // Every dependency imports with the venv's Python.
    let imported = docker_run(
        &image,
        Some("python"),
        &[
            "-c",
            "import click, rich, markdown_it, mdurl, pygments, hello_cli, sys; print(sys.prefix)",
        ],
    );
    assert_eq!(imported.trim(), "/opt/venv");

    // The registry copy is pullable by docker and has the same digest.
    docker(&["pull", "-q", &pushed]);
    let repo_digest = docker(&["inspect", "--format", "{{index .RepoDigests 0}}", &pushed]);
    assert!(
        repo_digest.trim().ends_with(digest),
        "{repo_digest} vs {digest}"
    );
    assert!(docker_run(&pushed, None, &["registry"]).contains("Hello, registry!"));

    // Other tools accept the outputs.
    let inspect = json(&run_ok(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        &format!("docker://{pushed}"),
    ])));
    assert_eq!(inspect["Digest"], digest);
    assert_eq!(
        inspect["Labels"]["org.opencontainers.image.title"],
        "hello-cli"
    );
    let oci = format!("oci:{}:1", out.join("img.oci").display());
    let inspect = json(&run_ok(Command::new("skopeo").args(["inspect", &oci])));
    assert_eq!(inspect["Digest"], digest);
    let tar_inspect = json(&run_ok(Command::new("skopeo").args([
        "inspect",
        &format!("docker-archive:{}", out.join("img.tar").display()),
    ])));
    assert_eq!(
        tar_inspect["Layers"].as_array().unwrap().len(),
        inspect["Layers"].as_array().unwrap().len()
    );

    let bundle = project.tmp.path().join("bundle");
    run_ok(
        Command::new("umoci")
            .args([
                "unpack",
                "--image",
                &format!("{}:1", out.join("img.oci").display()),
            ])
            .arg(&bundle),
    );
    let rootfs = bundle.join("rootfs");
    let script = std::fs::read_to_string(rootfs.join("opt/venv/bin/hello")).unwrap();
    assert!(script.starts_with("#!/opt/venv/bin/python\n"), "{script}");
    let cfg = std::fs::read_to_string(rootfs.join("opt/venv/pyvenv.cfg")).unwrap();
    assert!(
        cfg.contains("home = /usr/bin\n") && cfg.contains("version = 3.11."),
        "{cfg}"
    );
    let site = rootfs.join("opt/venv/lib/python3.11/site-packages");
    let click = std::fs::read_dir(&site)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("click-") && n.ends_with(".dist-info"))
        .expect("click is installed");
    assert_eq!(
        std::fs::read_to_string(site.join(&click).join("INSTALLER"))
            .unwrap()
            .trim(),
        "lockship"
    );
    assert!(site.join(&click).join("RECORD").is_file());
    let wheels_in_image = walkdir::WalkDir::new(&rootfs)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".whl"))
        .count();
    assert_eq!(wheels_in_image, 0, "no wheel file is copied into the image");
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
    assert!(
        passwd.starts_with("root:") && passwd.contains("\nnonroot:x:65532:65532:"),
        "{passwd}"
    );
}

#[test]
fn data_app_with_compiled_wheels_runs_from_uv_lock_and_requirements_txt() {
    if services_missing() {
        return;
    }
    let env = env();
    for (lock, with_uv_lock) in [("uv.lock", true), ("requirements.txt", false)] {
        let project = fixture("data-app", with_uv_lock);
        let tar = project.tmp.path().join("data.tar");
        let name = unique("data");
        run_ok(
            lockship(&shared_cache())
                .arg("build")
                .arg(&project.dir)
                .args(["--base", &env.base, "--tag", &format!("{name}:1")])
                .arg("--output")
                .arg(format!("docker:{}", tar.display())),
        );
        docker_load(&tar);
        let image = format!("{name}:1");
        assert_eq!(
            docker_run(&image, None, &[]).trim(),
            "rows=10 total=285 numpy=2.2.6 pandas=2.2.3",
            "built from {lock}"
        );
        let deps = docker_run(
            &image,
            Some("python"),
            &[
                "-c",
                "import numpy, pandas, dateutil, pytz, tzdata, six; print('ok')",
            ],
        );
        assert_eq!(deps.trim(), "ok", "built from {lock}");
    }
}

#[test]
fn two_clean_builds_give_the_same_digest() {
    if services_missing() {
        return;
    }
    let env = env();
    let mut digests = Vec::new();
    let mut tars = Vec::new();
    for _ in 0..2 {
        let project = fixture("hello-cli", true);
        let cache = tempfile::tempdir().unwrap();
        let tar = project.tmp.path().join("img.tar");
        let digest = run_ok(
            lockship(cache.path())
                .arg("build")
                .arg(&project.dir)
                .args(["--base", &env.base])
                .arg("--output")
                .arg(format!("docker:{}", tar.display())),
        );
        digests.push(digest);
        tars.push(std::fs::read(&tar).unwrap());
    }
    assert_eq!(digests[0], digests[1]);
    assert!(tars[0] == tars[1], "docker tarballs differ byte for byte");
}

#[test]
fn an_app_change_rebuilds_and_pushes_only_the_app_layer() {
    if services_missing() {
        return;
    }
    let env = env();
    let project = fixture("hello-cli", true);
    let target = format!("{}/tests/{}:1", env.registry, unique("change"));
    // Its own cache: the shared one may hold the changed app layer from an earlier run.
    let cache = tempfile::tempdir().unwrap();
    let build = || {
        json(&run_ok(
            lockship(cache.path())
                .arg("build")
                .arg(&project.dir)
                .args(["--base", &env.base, "--push", &target, "--format", "json"]),
        ))
    };
    let before = build();
    let main = project.path("src/hello_cli/main.py");
    let code = std::fs::read_to_string(&main).unwrap();
    std::fs::write(
        &main,
        code.replace("greeting = ", "greeting = \"Changed\" or "),
    )
    .unwrap();
    let after = build();

    let (a, b) = (layer_digests(&before), layer_digests(&after));
    assert_eq!(a.len(), b.len());
    let changed: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
    assert_eq!(
        changed,
        vec![a.len() - 1],
        "only the last (app) layer changes"
    );
    let built: Vec<bool> = after["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["built"].as_bool().unwrap())
        .collect();
    assert_eq!(
        built.iter().filter(|b| **b).count(),
        1,
        "one layer written: {built:?}"
    );
    let push = &after["pushed"][0];
    // The new app layer and the new config; every other layer was already there.
    assert_eq!(push["uploaded"], 2, "{push}");
    assert_eq!(
        push["skipped"].as_u64().unwrap() as usize,
        a.len() - 1,
        "{push}"
    );
    let app_size = after["layers"].as_array().unwrap().last().unwrap()["size"]
        .as_u64()
        .unwrap();
    assert!(
        push["uploaded_bytes"].as_u64().unwrap() < app_size + 10_000,
        "{push}"
    );

    docker(&["pull", "-q", &target]);
    assert!(docker_run(&target, None, &["x"]).starts_with("Changed, x!"));
}

#[test]
fn dry_run_prints_the_plan() {
    if services_missing() {
        return;
    }
    let env = env();
    let project = fixture("hello-cli", true);
    let plan = run_ok(
        lockship(&shared_cache())
            .arg("build")
            .arg(&project.dir)
            .args(["--base", &env.base, "--dry-run"]),
    );
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"127\.0\.0\.1:\d+", "[registry]");
    settings.add_filter(r"sha256:[0-9a-f]{64}", "[digest]");
    settings.add_filter(r"python 3\.11\.\d+", "python 3.11.[patch]");
    settings.bind(|| insta::assert_snapshot!(plan));
}
