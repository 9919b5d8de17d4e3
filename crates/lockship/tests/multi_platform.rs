//! Multi-platform builds: one lock, an image per platform (wheels chosen per platform, no
//! emulation), one OCI index in the registry and the OCI layout, layers the platforms share
//! written and pushed once, the docker tarball holding the host's platform. Run against the
//! loopback registry, skopeo, the Docker engine and a Debian-package base for amd64 and arm64.

mod support;

use std::collections::BTreeSet;
use std::process::Command;

use support::*;

fn layers_of(report: &serde_json::Value) -> Vec<(String, String, bool)> {
    report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["digest"].as_str().unwrap().to_string(),
                l["description"].as_str().unwrap().to_string(),
                l["built"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[test]
fn two_platforms_make_one_index_with_shared_layers_pushed_once() {
    if services_missing() {
        return;
    }
    let env = env();
    let project = fixture("data-app", true);
    let cache = tempfile::tempdir().unwrap();
    let reference = format!("{}/{}:1", env.registry, unique("multi"));
    let oci = project.tmp.path().join("multi.oci");
    let tar = project.tmp.path().join("multi.tar");
    let tag = format!("{}:1", unique("multi-tar"));
    let build = |cache: &std::path::Path| {
        let out = lockship(cache)
            .arg("build")
            .arg(&project.dir)
            .args(["--platform", "linux/amd64,linux/arm64", "--format", "json"])
            .args(["--push", &reference, "--tag", &tag])
            .arg("--output")
            .arg(format!("oci:{}", oci.display()))
            .arg("--output")
            .arg(format!("docker:{}", tar.display()))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        (json(&String::from_utf8(out.stdout).unwrap()), stderr)
    };
    let (report, stderr) = build(cache.path());

    // One image per platform, each with its own wheels, under one index.
    let platforms = report["platforms"].as_array().unwrap();
    assert_eq!(platforms.len(), 2);
    assert_eq!(platforms[0]["target"]["architecture"], "amd64");
    assert_eq!(platforms[1]["target"]["architecture"], "arm64");
    let amd = layers_of(&platforms[0]);
    let arm = layers_of(&platforms[1]);
    let numpy = |layers: &[(String, String, bool)]| {
        layers
            .iter()
            .find(|(_, d, _)| d.contains("numpy "))
            .unwrap()
            .clone()
    };
    assert!(numpy(&amd).1.contains("x86_64.whl"), "{amd:?}");
    assert!(numpy(&arm).1.contains("aarch64.whl"), "{arm:?}");
    assert_ne!(numpy(&amd).0, numpy(&arm).0);

    // Pure-Python packages, the runtime and the app are one blob for both platforms: the
    // second platform found them built.
    let shared: Vec<&(String, String, bool)> = arm
        .iter()
        .filter(|(digest, _, _)| amd.iter().any(|(d, _, _)| d == digest))
        .collect();
    let names: Vec<&str> = shared.iter().map(|(_, d, _)| d.as_str()).collect();
    for expected in [
        "six 1.17.0",
        "tzdata",
        "pytz",
        "virtual environment",
        "project files",
    ] {
        assert!(
            names.iter().any(|n| n.contains(expected)),
            "{expected} is not shared: {names:?}"
        );
    }
    assert!(shared.iter().all(|(_, _, built)| !built), "{shared:?}");

    // The registry holds the index; every blob went up once.
    let raw = json(&run_ok(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{reference}"),
    ])));
    assert_eq!(raw["mediaType"], "application/vnd.oci.image.index.v1+json");
    let listed: Vec<(String, String)> = raw["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["platform"]["architecture"].as_str().unwrap().to_string(),
                m["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            (
                "amd64".to_string(),
                platforms[0]["digest"].as_str().unwrap().to_string()
            ),
            (
                "arm64".to_string(),
                platforms[1]["digest"].as_str().unwrap().to_string()
            ),
        ]
    );
    let distinct: BTreeSet<&String> = amd.iter().chain(&arm).map(|(d, _, _)| d).collect();
    let pushed = &report["pushed"][0];
    assert_eq!(pushed["reference"], reference.as_str());
    assert_eq!(
        pushed["uploaded"].as_u64().unwrap() as usize,
        distinct.len() + 2,
        "each distinct layer and the two configs are uploaded once: {pushed}"
    );
    let index_digest = report["digest"].as_str().unwrap();

    // The engine pulls the index and runs this machine's image.
    docker(&["pull", "-q", &reference]);
    assert_eq!(
        docker_run(&reference, None, &[]).trim(),
        "rows=10 total=285 numpy=2.2.6 pandas=2.2.3"
    );

    // The OCI layout names the index; each platform can be taken from it.
    let layout_index = json(&std::fs::read_to_string(oci.join("index.json")).unwrap());
    assert_eq!(
        layout_index["manifests"][0]["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(layout_index["manifests"][0]["digest"], index_digest);
    for arch in ["amd64", "arm64"] {
        let inspect = json(&run_ok(Command::new("skopeo").args([
            "inspect",
            "--override-arch",
            arch,
            &format!("oci:{}:1", oci.display()),
        ])));
        assert_eq!(inspect["Architecture"], arch);
    }

    // The docker tarball takes one platform, and the build says which.
    assert!(
        stderr.contains("holds only the linux/amd64 image: docker load takes one platform"),
        "{stderr}"
    );
    docker_load(&tar);
    assert_eq!(
        docker_run(&tag, None, &[]).trim(),
        "rows=10 total=285 numpy=2.2.6 pandas=2.2.3"
    );

    // Each architecture's Debian packages are pinned in a file of its own.
    let amd_lock = std::fs::read_to_string(project.path("lockship-base.lock")).unwrap();
    let arm_lock = std::fs::read_to_string(project.path("lockship-base.arm64.lock")).unwrap();
    assert!(amd_lock.contains("architecture = \"amd64\""));
    assert!(arm_lock.contains("architecture = \"arm64\""));

    // Again from another cold cache: the same index, bit for bit.
    let other = tempfile::tempdir().unwrap();
    let (again, _) = build(other.path());
    assert_eq!(again["digest"], report["digest"]);
    docker(&["rmi", &reference, &tag]);
}

#[test]
fn platforms_in_the_config_and_their_bad_input() {
    if services_missing() {
        return;
    }
    let project = fixture("data-app", true);
    let pyproject = project.path("pyproject.toml");
    let text = std::fs::read_to_string(&pyproject).unwrap();
    let with = |platforms: &str| {
        std::fs::write(
            &pyproject,
            text.replace(
                "[tool.lockship]\n",
                &format!("[tool.lockship]\nplatforms = {platforms}\n"),
            ),
        )
        .unwrap();
    };
    with(r#"["linux/amd64", "linux/arm64"]"#);
    let plan = run_ok(
        lockship(&shared_cache())
            .arg("build")
            .arg(&project.dir)
            .arg("--dry-run"),
    );
    let targets: Vec<&str> = plan.lines().filter(|l| l.starts_with("target")).collect();
    assert_eq!(targets.len(), 2, "{plan}");
    assert!(
        targets[0].contains("x86_64") && targets[1].contains("aarch64"),
        "{plan}"
    );
    assert!(plan.contains("manylinux_2_17_aarch64"), "{plan}");

    // --platform wins over the config.
    let plans = json(&run_ok(
        lockship(&shared_cache())
            .arg("build")
            .arg(&project.dir)
            .args(["--dry-run", "--format", "json", "--platform", "linux/arm64"]),
    ));
    assert_eq!(plans["target"]["architecture"], "arm64");

    let first_line = |out: std::process::Output| {
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .next()
            .unwrap()
            .to_string()
    };
    with(r#"["linux/amd64", "arm64"]"#);
    let out = run_err(
        lockship(&shared_cache())
            .arg("build")
            .arg(&project.dir)
            .arg("--dry-run"),
    );
    assert_eq!(
        first_line(out),
        format!(
            "error: {}: [tool.lockship] platforms: `arm64` is not OS/ARCH[/VARIANT], e.g. linux/arm64",
            pyproject.display()
        )
    );
    with(r#"["linux/amd64"]"#);
    let out = run_err(
        lockship(&shared_cache())
            .arg("build")
            .arg(&project.dir)
            .args(["--dry-run", "--platform", "linux/arm64,linux/arm64"]),
    );
    assert_eq!(
        first_line(out),
        "error: --platform: `linux/arm64` is listed twice"
    );
    let out = run_err(
        lockship(&shared_cache())
            .arg("build")
            .arg(&project.dir)
            .args(["--dry-run", "--platform", "windows/amd64"]),
    );
    assert_eq!(
        first_line(out),
        "error: --platform: `windows/amd64`: lockship builds Linux images only"
    );
}

#[test]
fn a_platform_the_base_lacks_is_named_with_the_ones_it_has() {
    if services_missing() {
        return;
    }
    let env = env();
    let project = fixture("hello-cli", true);
    let out = run_err(
        lockship(&shared_cache())
            .arg("build")
            .arg(&project.dir)
            .args(["--base", &env.base, "--dry-run"])
            .args(["--platform", "linux/amd64,linux/s390x"]),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.lines().next().unwrap(),
        format!(
            "error: linux/s390x: image {} is for linux/amd64 only, and --platform asks for linux/s390x",
            env.base
        ),
        "{err}"
    );
}

#[test]
fn an_architecture_the_debian_suite_lacks_is_named_with_the_ones_it_has() {
    if services_missing() {
        return;
    }
    let project = fixture("hello-cli", true);
    let out = run_err(
        lockship(&shared_cache())
            .arg("build")
            .arg(&project.dir)
            .args(["--dry-run", "--platform", "linux/amd64,linux/riscv64"]),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err.lines().next().unwrap();
    assert!(
        line.starts_with(
            "error: linux/riscv64: Debian bookworm has no packages for linux/riscv64 (it has: linux/amd64, linux/arm64, "
        ) && line.contains("linux/arm/v7"),
        "{err}"
    );
    assert!(
        err.contains("hint: build for one of the platforms listed"),
        "{err}"
    );
    assert!(!project.path("lockship-base.riscv64.lock").exists());
}

/// An sdist that builds to a pure-Python wheel is built once, by this machine's builder, and
/// serves every platform; one with a C extension needs a builder for each platform, which an
/// arm64 target cannot have here without emulation: the error names the platform and package.
#[test]
fn sdists_across_platforms_pure_once_native_per_platform() {
    if services_missing() {
        return;
    }
    let emulated = std::path::Path::new("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists();
    let project = fixture("sdist-app", false);
    let pyproject = project.path("pyproject.toml");
    let text = std::fs::read_to_string(&pyproject).unwrap();
    std::fs::write(
        &pyproject,
        text.replace(
            r#"dependencies = ["markupsafe==2.0.1", "docopt==0.6.2"]"#,
            r#"dependencies = ["docopt==0.6.2"]"#,
        )
        .replace(r#"smoke = ["sdist-app"]"#, ""),
    )
    .unwrap();
    uv_lock(&project.dir);
    let cache = project.tmp.path().join("cache");
    let oci = project.tmp.path().join("out.oci");
    let out = lockship(&cache)
        .arg("build")
        .arg(&project.dir)
        .args(["--platform", "linux/amd64,linux/arm64", "--format", "json"])
        .arg("--output")
        .arg(format!("oci:{}", oci.display()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report = json(&String::from_utf8_lossy(&out.stdout));
    let docopt = |p: &serde_json::Value| {
        layers_of(p)
            .into_iter()
            .find(|(_, d, _)| d.contains("docopt 0.6.2"))
            .unwrap()
    };
    let (amd, arm) = (
        docopt(&report["platforms"][0]),
        docopt(&report["platforms"][1]),
    );
    assert!(
        amd.1.contains("py2.py3-none-any.whl") || amd.1.contains("-none-any.whl"),
        "{amd:?}"
    );
    assert_eq!(amd.0, arm.0, "one docopt layer for both platforms");
    assert!(!arm.2, "built once");

    // MarkupSafe 2.0.1 has a C extension: arm64 needs its own builder.
    if emulated {
        return;
    }
    std::fs::write(&pyproject, &text).unwrap();
    uv_lock(&project.dir);
    let out = run_err(
        lockship(&cache)
            .arg("build")
            .arg(&project.dir)
            .args(["--platform", "linux/amd64,linux/arm64", "--no-test"])
            .arg("--output")
            .arg(format!(
                "oci:{}",
                project.tmp.path().join("second.oci").display()
            )),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("error: linux/arm64: building markupsafe 2.0.1 for linux/arm64 needs a builder for linux/arm64, which cannot run on this amd64 machine without emulation"),
        "{err}"
    );
    assert!(err.contains("hint: register QEMU with binfmt"), "{err}");
    assert!(!project.tmp.path().join("second.oci").exists());
}
