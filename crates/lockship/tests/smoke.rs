//! Smoke tests run inside the built image with the real Docker engine, network off, and gate
//! every push: a failure leaves the registry untouched (its tag list proves it).

mod support;

use std::process::Command;

use support::*;

/// The fixture with `smoke = …` (TOML) in its [tool.lockship] table.
fn with_smoke(smoke: &str) -> Project {
    let project = fixture("hello-cli", true);
    let path = project.path("pyproject.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replacen(
            "[tool.lockship]\n",
            &format!("[tool.lockship]\nsmoke = {smoke}\n"),
            1,
        ),
    )
    .unwrap();
    project
}

const PASSING: &str = r#"["hello smoke", ["python", "-c", "import os; assert os.listdir('/sys/class/net') == ['lo']; print('no network')"]]"#;

fn tags(env: &Env, repo: &str) -> String {
    run_ok(Command::new("curl").args([
        "-s",
        &format!("http://{}/v2/{repo}/tags/list", env.registry),
    ]))
}

#[test]
fn lockship_test_runs_each_command_in_the_image_without_network() {
    if services_missing() {
        return;
    }
    let env = env();
    let project = with_smoke(PASSING);
    let out = lockship(&shared_cache())
        .arg("test")
        .arg(&project.dir)
        .args(["--base", &env.base])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.trim().ends_with(" passed 2 smoke commands"),
        "{stdout}"
    );
    assert!(stderr.contains("smoke: hello smoke  ok in "), "{stderr}");
    assert!(
        stderr.contains("  | Hello, smoke! (click 8.2.1, rich rich)\n"),
        "{stderr}"
    );
    assert!(stderr.contains("  | no network\n"), "{stderr}");
}

#[test]
fn a_failing_smoke_test_blocks_the_push() {
    if services_missing() {
        return;
    }
    let env = env();
    let project = with_smoke(r#"["hello smoke", "python -c 'raise SystemExit(3)'"]"#);
    let repo = format!("tests/{}", unique("blocked"));
    let target = format!("{}/{repo}:1", env.registry);
    let out = run_err(
        lockship(&shared_cache())
            .arg("build")
            .arg(&project.dir)
            .args(["--base", &env.base, "--push", &target]),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("smoke: python -c 'raise SystemExit(3)'  FAILED (exit code 3)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("\nerror: smoke test `python -c 'raise SystemExit(3)'` failed with exit code 3\nhint: nothing was pushed"),
        "{stderr}"
    );
    assert!(
        tags(&env, &repo).contains("NAME_UNKNOWN"),
        "the registry must not know the repository"
    );

    // An explicit --no-test pushes anyway.
    run_ok(
        lockship(&shared_cache())
            .arg("build")
            .arg(&project.dir)
            .args(["--base", &env.base, "--push", &target, "--no-test"]),
    );
    // Besides the tag, only the referrers tag of the wheels the build shares (Distribution 2.x
    // has no referrers API).
    let listed = json(&tags(&env, &repo));
    let named: Vec<&str> = listed["tags"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t.as_str())
        .filter(|t| !t.starts_with("sha256-"))
        .collect();
    assert_eq!(named, ["1"], "{listed}");
}

#[test]
fn an_image_that_passed_is_not_tested_twice() {
    if services_missing() {
        return;
    }
    let env = env();
    let project = with_smoke(PASSING);
    let cache = tempfile::tempdir().unwrap();
    let push = |tag: &str| {
        json(&run_ok(
            lockship(cache.path())
                .arg("build")
                .arg(&project.dir)
                .args(["--base", &env.base, "--format", "json", "--push"])
                .arg(format!(
                    "{}/tests/{}:{tag}",
                    env.registry,
                    unique("remembered")
                )),
        ))
    };
    let first = push("1");
    assert_eq!(first["smoke"].as_array().unwrap().len(), 2);
    assert_eq!(first["smoke_remembered"], false);
    let second = push("2");
    assert_eq!(second["digest"], first["digest"]);
    assert_eq!(second["smoke"].as_array().unwrap().len(), 0);
    assert_eq!(second["smoke_remembered"], true);
}

#[test]
fn missing_runtime_and_missing_commands_are_clear_errors() {
    if services_missing() {
        return;
    }
    let env = env();
    let project = with_smoke(PASSING);
    // Asking for Podman where there is none (a PATH without it) finds no runtime.
    let no_tools = tempfile::tempdir().unwrap();
    let out = run_err(
        lockship(&shared_cache())
            .env("PATH", no_tools.path())
            .arg("test")
            .arg(&project.dir)
            .args(["--base", &env.base, "--runtime", "podman"]),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.lines().next().unwrap(),
        "error: podman (--runtime) does not answer: cannot run `podman`: No such file or \
         directory (os error 2)"
    );
    assert!(
        stderr.contains("hint: start podman (or check that this user may use it), or choose the other runtime with --runtime"),
        "{stderr}"
    );
    // With none asked for, none found.
    let out = run_err(
        lockship(&shared_cache())
            .env("PATH", no_tools.path())
            .arg("test")
            .arg(&project.dir)
            .args(["--base", &env.base]),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.lines().next().unwrap(),
        "error: no container runtime to run the smoke tests in (tried docker: cannot run \
         `docker`: No such file or directory (os error 2); podman: cannot run `podman`: No such \
         file or directory (os error 2))"
    );
    assert!(
        stderr.contains("hint: install and start Docker or Podman, or pass --no-test"),
        "{stderr}"
    );

    let plain = fixture("hello-cli", true);
    let out = run_err(
        lockship(&shared_cache())
            .arg("test")
            .arg(&plain.dir)
            .args(["--base", &env.base]),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.lines().next().unwrap(),
        format!(
            "error: no smoke commands in {}",
            plain.path("pyproject.toml").display()
        )
    );
}

/// Regression: two runs smoke-testing the same image shared one throwaway tag, and the first to
/// finish removed it from under the other (whose `docker run` then tried a public registry).
#[test]
fn concurrent_runs_on_the_same_image_do_not_untag_each_other() {
    if services_missing() {
        return;
    }
    let env = env();
    let project = with_smoke(PASSING);
    let spawn = || {
        lockship(&shared_cache())
            .arg("test")
            .arg(&project.dir)
            .args(["--base", &env.base])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let runs = [spawn(), spawn(), spawn()];
    for child in runs {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
