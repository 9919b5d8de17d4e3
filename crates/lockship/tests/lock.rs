//! `lockship lock` with the real uv from the package index: creating a lock for the base's
//! Python, upgrading one package and keeping the rest, the `--check` CI guard, the resolver's own
//! message on conflicts, and installing a pinned uv on demand.

mod support;

use std::process::Command;

use support::*;

/// `lockship lock` on `project` with the registry base; `cutoff` pins uv's view of the index.
fn lock(project: &Project, cutoff: &str, args: &[&str]) -> Command {
    let env = env();
    let mut cmd = lockship(&shared_cache());
    cmd.arg("lock")
        .arg(&project.dir)
        .args(["--base", &env.base])
        .args(args)
        .env("UV_EXCLUDE_NEWER", cutoff);
    cmd
}

fn version_in(text: &str, package: &str) -> String {
    let at = text
        .find(&format!("name = \"{package}\"\nversion = \""))
        .expect("package in lock");
    let rest = &text[at..];
    let start = rest.find("version = \"").unwrap() + "version = \"".len();
    rest[start..start + rest[start..].find('"').unwrap()].to_string()
}

#[test]
fn upgrading_one_package_keeps_the_others() {
    if services_missing() {
        return;
    }
    let project = fixture("hello-cli", false);
    std::fs::remove_file(project.path("requirements.txt")).unwrap();
    let created = run_ok(&mut lock(&project, "2024-06-01", &[]));
    assert!(created.contains("+ rich            13.7.1\n"), "{created}");
    assert!(created.contains("+ click           8.1.7\n"), "{created}");
    let text = std::fs::read_to_string(project.path("uv.lock")).unwrap();
    assert_eq!(version_in(&text, "click"), "8.1.7");

    let upgraded = run_ok(&mut lock(
        &project,
        "2025-06-01",
        &["--upgrade-package", "rich"],
    ));
    assert_eq!(upgraded, "  rich  13.7.1 → 14.0.0\n");
    let text = std::fs::read_to_string(project.path("uv.lock")).unwrap();
    assert_eq!(version_in(&text, "rich"), "14.0.0");
    assert_eq!(
        version_in(&text, "click"),
        "8.1.7",
        "other packages keep their versions"
    );

    // The refreshed lock builds.
    let env = env();
    run_ok(
        lockship(&shared_cache())
            .arg("build")
            .arg(&project.dir)
            .args(["--base", &env.base, "--dry-run"]),
    );
}

#[test]
fn requirements_txt_is_recompiled_for_the_target() {
    if services_missing() {
        return;
    }
    let project = fixture("hello-cli", false);
    run_ok(
        Command::new("uv")
            .args([
                "pip",
                "compile",
                "--quiet",
                "pyproject.toml",
                "--generate-hashes",
                "--python-version",
                "3.11",
                "-o",
                "requirements.txt",
            ])
            .env("UV_EXCLUDE_NEWER", "2024-06-01")
            .current_dir(&project.dir),
    );
    let upgraded = run_ok(&mut lock(
        &project,
        "2025-06-01",
        &["--upgrade-package", "rich"],
    ));
    assert_eq!(upgraded, "  rich  13.7.1 → 14.0.0\n");
    let text = std::fs::read_to_string(project.path("requirements.txt")).unwrap();
    assert!(
        text.contains("\nrich==14.0.0 \\\n") && text.contains("\nclick==8.1.7 \\\n"),
        "{text}"
    );
    assert!(
        text.contains("--python-platform x86_64-manylinux_2_36"),
        "resolved for the base's platform: {text}"
    );
}

#[test]
fn check_catches_an_edited_pyproject() {
    if services_missing() {
        return;
    }
    let project = fixture("hello-cli", true);
    let ok = run_ok(&mut lock(&project, "2025-06-01", &["--check"]));
    assert_eq!(
        ok.trim(),
        format!("{} is up to date", project.path("uv.lock").display())
    );
    let pyproject = std::fs::read_to_string(project.path("pyproject.toml")).unwrap();
    std::fs::write(
        project.path("pyproject.toml"),
        pyproject.replace("\"rich>=13\"]", "\"rich>=13\", \"httpx>=0.27\"]"),
    )
    .unwrap();
    let out = run_err(&mut lock(&project, "2025-06-01", &["--check"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.lines().next().unwrap(),
        format!(
            "error: {} is out of date with pyproject.toml: `httpx>=0.27` is not in the lock",
            project.path("uv.lock").display()
        )
    );
    assert!(
        stderr.contains("hint: run `lockship lock` and commit the result"),
        "{stderr}"
    );
    let unchanged = std::fs::read_to_string(project.path("pyproject.toml")).unwrap();
    assert!(unchanged.contains("httpx"), "--check changes nothing");
}

#[test]
fn an_unresolvable_project_shows_the_resolvers_message() {
    if services_missing() {
        return;
    }
    let project = fixture("hello-cli", true);
    let pyproject = std::fs::read_to_string(project.path("pyproject.toml")).unwrap();
    std::fs::write(
        project.path("pyproject.toml"),
        pyproject.replace("click>=8.1", "click>=99"),
    )
    .unwrap();
    let before = std::fs::read_to_string(project.path("uv.lock")).unwrap();
    let out = run_err(&mut lock(&project, "2025-06-01", &[]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "error: uv lock could not resolve {}:\n",
            project.dir.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("click>=99"),
        "uv's own explanation is shown: {stderr}"
    );
    assert!(
        stderr.contains("hint: loosen the conflicting requirements"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(project.path("uv.lock")).unwrap(),
        before,
        "the lock is left as it was"
    );
}

#[test]
fn a_pinned_uv_is_installed_on_demand_or_the_error_says_why() {
    if services_missing() {
        return;
    }
    let env = env();
    let project = fixture("hello-cli", true);
    let cache = tempfile::tempdir().unwrap();
    let check = |cache: &std::path::Path, extra: &[(&str, &str)]| {
        let mut cmd = lockship(cache);
        cmd.arg("lock")
            .arg(&project.dir)
            .args(["--base", &env.base, "--check"])
            .env("LOCKSHIP_UV", "/nonexistent/uv")
            .env("UV_EXCLUDE_NEWER", "2025-06-01");
        for (k, v) in extra {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let out = check(cache.path(), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let installed = cache.path().join(format!(
        "tools/uv-{}/bin/uv",
        lockship_python::uv::UV_VERSION
    ));
    assert!(installed.is_file(), "uv installed into the cache");

    // With no index to install from, the error names the version and what failed.
    let empty = tempfile::tempdir().unwrap();
    let out = check(
        empty.path(),
        &[
            ("PIP_INDEX_URL", "http://127.0.0.1:1/simple"),
            ("PIP_FIND_LINKS", ""),
            ("PIP_RETRIES", "0"),
            ("PIP_TIMEOUT", "2"),
        ],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "error: no uv on PATH, and installing uv {} failed: ",
            lockship_python::uv::UV_VERSION
        )),
        "{stderr}"
    );
    assert!(stderr.contains("hint: install uv"), "{stderr}");
}
