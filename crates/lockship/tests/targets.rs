//! Targets (`[tool.lockship.targets.NAME]`): dev and test images add dependency groups, files,
//! env and smoke commands to production, share every production layer, and the test target runs
//! the project's pytest suite inside the image with the real Docker engine.

mod support;

use support::*;

fn build(project: &Project, target: &str, tar: &std::path::Path) -> serde_json::Value {
    let env = env();
    json(&run_ok(
        lockship(&shared_cache())
            .arg("build")
            .arg(&project.dir)
            .args([
                "--base",
                &env.base,
                "--target",
                target,
                "--format",
                "json",
                "--no-test",
            ])
            .arg("--output")
            .arg(format!("docker:{}", tar.display())),
    ))
}

#[test]
fn dev_and_test_targets_share_the_production_layers() {
    if services_missing() {
        return;
    }
    let project = fixture("hello-cli", true);
    let dir = project.tmp.path();
    let prod = layer_digests(&build(&project, "production", &dir.join("prod.tar")));
    let dev_report = build(&project, "dev", &dir.join("dev.tar"));
    let dev = layer_digests(&dev_report);
    let test = layer_digests(&build(&project, "test", &dir.join("test.tar")));

    // Production: base, runtime, dependencies, app. Dev inserts its group's packages before the
    // app; test adds its files after it. Every production layer appears unchanged.
    let (app, deps) = prod.split_last().unwrap();
    assert_eq!(&dev[..deps.len()], deps);
    assert_eq!(dev.last().unwrap(), app);
    let added: Vec<&str> = dev_report["layers"].as_array().unwrap()[deps.len()..dev.len() - 1]
        .iter()
        .map(|l| l["description"].as_str().unwrap())
        .collect();
    assert!(
        added.iter().any(|d| d.starts_with("lockship: pytest ")),
        "{added:?}"
    );
    assert_eq!(&test[..dev.len()], &dev[..], "test = dev + its files");
    assert_eq!(test.len(), dev.len() + 1);

    docker_load(&dir.join("prod.tar"));
    docker_load(&dir.join("dev.tar"));
    let has_pytest = "import importlib.util as u; print(u.find_spec('pytest') is not None)";
    assert_eq!(
        docker_run("hello-cli:0.1.0", Some("python"), &["-c", has_pytest]).trim(),
        "False"
    );
    assert_eq!(
        docker_run("hello-cli:0.1.0-dev", Some("python"), &["-c", has_pytest]).trim(),
        "True"
    );
    assert!(
        docker_run("hello-cli:0.1.0-dev", None, &["dev"]).starts_with("Howdy, dev!"),
        "target env applies"
    );
}

#[test]
fn the_test_target_runs_pytest_inside_the_image() {
    if services_missing() {
        return;
    }
    let env = env();
    let project = fixture("hello-cli", true);
    let out = lockship(&shared_cache())
        .arg("test")
        .arg(&project.dir)
        .args(["--base", &env.base, "--target", "test"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("smoke: python -m pytest -q -p no:cacheprovider tests  ok in "),
        "{stderr}"
    );
    assert!(stderr.contains("1 passed"), "{stderr}");

    // A failing test fails the command.
    let test = project.path("tests/test_main.py");
    let text = std::fs::read_to_string(&test).unwrap();
    std::fs::write(&test, text.replace("Hello, pytest!", "Goodbye")).unwrap();
    let out = run_err(
        lockship(&shared_cache())
            .arg("test")
            .arg(&project.dir)
            .args(["--base", &env.base, "--target", "test"]),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("1 failed"), "{stderr}");
    assert!(stderr.contains("error: smoke test `python -m pytest -q -p no:cacheprovider tests` failed with exit code 1"), "{stderr}");
}

#[test]
fn unknown_target_lists_the_known_ones() {
    if services_missing() {
        return;
    }
    let env = env();
    let project = fixture("hello-cli", true);
    let out = run_err(
        lockship(&shared_cache())
            .arg("build")
            .arg(&project.dir)
            .args(["--base", &env.base, "--target", "staging", "--dry-run"]),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.lines().next().unwrap(),
        format!(
            "error: {} has no target `staging` (it has: production, dev, test)",
            project.path("pyproject.toml").display()
        )
    );
    assert!(
        stderr.contains("hint: declare it as [tool.lockship.targets.NAME]"),
        "{stderr}"
    );
}
