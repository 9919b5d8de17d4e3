//! Bad input gets one clear line naming the thing, a `hint:`, a non-zero exit, and leaves no
//! output or cache entry behind. Real registry, real index, real uv locks.

mod support;

use std::path::Path;

use support::*;

/// Runs a build that must fail, checks nothing was written to `out`, and returns stderr.
fn failing_build(project: &Path, cache: &Path, extra: &[&str]) -> String {
    let out = project.parent().unwrap().join("out.tar");
    let output = run_err(
        lockship(cache)
            .arg("build")
            .arg(project)
            .args(extra)
            .arg("--output")
            .arg(format!("docker:{}", out.display())),
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        !out.exists(),
        "a failed build left {} behind",
        out.display()
    );
    let leftovers: Vec<_> = std::fs::read_dir(project.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial") || n.starts_with(".lockship"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.starts_with("error: "), "{stderr}");
    stderr
}

fn error_line(stderr: &str) -> &str {
    stderr.lines().next().unwrap()
}

#[test]
fn missing_lock() {
    if services_missing() {
        return;
    }
    let env = env();
    let project = fixture("hello-cli", false);
    std::fs::remove_file(project.path("requirements.txt")).unwrap();
    let err = failing_build(&project.dir, &shared_cache(), &["--base", &env.base]);
    assert_eq!(
        error_line(&err),
        format!(
            "error: no lock file in {} (looked for uv.lock, poetry.lock, pylock.toml, Pipfile.lock, requirements.txt)",
            project.dir.display()
        )
    );
    assert!(
        err.contains("\nhint: create one with `lockship lock` (uv.lock)"),
        "{err}"
    );
}

#[test]
fn unreadable_lock() {
    if services_missing() {
        return;
    }
    let env = env();
    let project = fixture("hello-cli", false);
    std::fs::write(project.path("uv.lock"), "version = 1\n[[package]\nname = ").unwrap();
    let err = failing_build(&project.dir, &shared_cache(), &["--base", &env.base]);
    assert!(
        error_line(&err).starts_with(&format!(
            "error: {}: not a valid uv.lock",
            project.path("uv.lock").display()
        )),
        "{err}"
    );
    assert!(
        err.contains("hint: run `lockship lock` (or `uv lock`)"),
        "{err}"
    );
}

#[test]
fn lock_out_of_date_with_pyproject() {
    if services_missing() {
        return;
    }
    let env = env();
    let project = fixture("hello-cli", true);
    let pyproject = std::fs::read_to_string(project.path("pyproject.toml")).unwrap();
    std::fs::write(
        project.path("pyproject.toml"),
        pyproject
            .replace("\"rich>=13\"]", "\"rich>=13\", \"httpx>=0.27\"]")
            .replace("click>=8.1", "click>=9"),
    )
    .unwrap();
    let err = failing_build(&project.dir, &shared_cache(), &["--base", &env.base]);
    assert_eq!(
        error_line(&err),
        format!(
            "error: {} is out of date with pyproject.toml: `click>=9` does not allow the locked click 8.2.1; `httpx>=0.27` is not in the lock",
            project.path("uv.lock").display()
        )
    );
    assert!(
        err.contains("hint: run `lockship lock` (or `uv lock`) to update it"),
        "{err}"
    );
}

#[test]
fn unknown_base_image() {
    if services_missing() {
        return;
    }
    let env = env();
    let project = fixture("hello-cli", true);
    let base = format!("{}/no/such-image:1", env.registry);
    let err = failing_build(&project.dir, &shared_cache(), &["--base", &base]);
    assert_eq!(error_line(&err), format!("error: image {base} not found"));
    assert!(
        err.contains("hint: check `base` in [tool.lockship]"),
        "{err}"
    );
}

#[test]
fn unreachable_registry() {
    if services_missing() {
        return;
    }
    let project = fixture("hello-cli", true);
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    let err = failing_build(
        &project.dir,
        &shared_cache(),
        &["--base", "127.0.0.1:1/python:3.11"],
    );
    assert!(
        error_line(&err).starts_with("error: cannot reach registry 127.0.0.1:1 while pulling the manifest of 127.0.0.1:1/python:3.11"),
        "{err}"
    );
    assert!(err.contains("hint: check the registry address"), "{err}");
}

#[test]
fn hash_mismatch_aborts_and_caches_nothing() {
    if services_missing() {
        return;
    }
    let env = env();
    let project = fixture("hello-cli", true);
    let lock = std::fs::read_to_string(project.path("uv.lock")).unwrap();
    // Point click's wheel at another (valid) hash: the download cannot match it.
    let start = lock
        .find("click-8.2.1-py3-none-any.whl")
        .expect("click wheel in lock");
    let hash_at = start + lock[start..].find("sha256:").unwrap() + "sha256:".len();
    let real = &lock[hash_at..hash_at + 64];
    let fake = "0".repeat(64);
    let tampered = format!("{}{}{}", &lock[..hash_at], fake, &lock[hash_at + 64..]);
    std::fs::write(project.path("uv.lock"), tampered).unwrap();

    let cache = tempfile::tempdir().unwrap();
    let err = failing_build(&project.dir, cache.path(), &["--base", &env.base]);
    let line = error_line(&err);
    assert!(
        line.starts_with("error: hash mismatch for click 8.2.1 ("),
        "{err}"
    );
    assert!(
        line.contains(&format!(
            "the lock says sha256:{fake}, the download is sha256:{real}"
        )),
        "{err}"
    );
    assert!(err.contains("\nhint: "), "{err}");
    let blobs = cache.path().join("blobs/sha256");
    assert!(
        !blobs.join(real).exists() && !blobs.join(&fake).exists(),
        "unverified wheel cached"
    );
    assert_eq!(
        std::fs::read_dir(cache.path().join("blobs/tmp"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn no_wheel_for_the_target_lists_every_such_package() {
    if services_missing() {
        return;
    }
    let env = env();
    let project = fixture("hello-cli", true);
    let lock = std::fs::read_to_string(project.path("uv.lock")).unwrap();
    // click keeps its sdist (a builder could make its wheel); mdurl and rich have nothing.
    let lock = without_wheels(&lock, &["click", "mdurl", "rich"]);
    std::fs::write(
        project.path("uv.lock"),
        without_sdists(&lock, &["mdurl", "rich"]),
    )
    .unwrap();
    let err = failing_build(&project.dir, &shared_cache(), &["--base", &env.base]);
    assert_eq!(
        error_line(&err),
        "error: no wheel for cp311-manylinux_2_36_x86_64 in: mdurl 0.1.2 (no files), rich 14.0.0 (no files)"
    );
    assert!(
        err.contains("hint: these have neither a wheel for this target nor an sdist"),
        "{err}"
    );
}

/// The lock without the `sdist = …` lines of `names`.
fn without_sdists(lock: &str, names: &[&str]) -> String {
    let mut in_package = false;
    lock.lines()
        .filter(|line| {
            if let Some(name) = line.strip_prefix("name = ") {
                in_package = names.iter().any(|n| name == format!("\"{n}\""));
            }
            !(in_package && line.starts_with("sdist = "))
        })
        .map(|line| format!("{line}\n"))
        .collect()
}

/// The lock with the `wheels = [...]` arrays of `names` emptied, as if they published only sdists.
fn without_wheels(lock: &str, names: &[&str]) -> String {
    let mut out = String::new();
    let (mut in_package, mut skipping) = (false, false);
    for line in lock.lines() {
        if let Some(name) = line.strip_prefix("name = ") {
            in_package = names.iter().any(|n| name == format!("\"{n}\""));
        }
        if skipping {
            skipping = line != "]";
            continue;
        }
        if in_package && line.starts_with("wheels = [") {
            out.push_str("wheels = []\n");
            skipping = !line.ends_with(']');
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[test]
fn config_paths_cannot_leave_the_image_or_the_project() {
    if services_missing() {
        return;
    }
    let env = env();
    let project = fixture("hello-cli", true);
    let pyproject = std::fs::read_to_string(project.path("pyproject.toml")).unwrap();
    let cache = tempfile::tempdir().unwrap();
    for (setting, field) in [
        // Layers are staged under the cache: this once wrote 0755 scripts beside it.
        ("venv = \"../../../escape\"", "venv"),
        ("workdir = \"../escape\"", "workdir"),
        ("include = [\"../../**/*.py\"]", "include"),
    ] {
        std::fs::write(
            project.path("pyproject.toml"),
            pyproject.replace(
                "[tool.lockship]\n",
                &format!("[tool.lockship]\n{setting}\n"),
            ),
        )
        .unwrap();
        let err = failing_build(&project.dir, cache.path(), &["--base", &env.base]);
        assert!(
            error_line(&err).starts_with(&format!(
                "error: {}: [tool.lockship] {field} = ",
                project.path("pyproject.toml").display()
            )),
            "{err}"
        );
        assert!(
            err.contains("hint: paths in the image are absolute"),
            "{err}"
        );
    }
    let escaped: Vec<_> = walkdir::WalkDir::new(project.tmp.path())
        .into_iter()
        .chain(walkdir::WalkDir::new(cache.path().parent().unwrap()).max_depth(3))
        .filter_map(Result::ok)
        .filter(|e| e.file_name() == "escape")
        .map(|e| e.path().display().to_string())
        .collect();
    assert!(escaped.is_empty(), "written outside: {escaped:?}");
}

#[test]
fn an_unknown_runtime_fails_before_anything_runs() {
    // Parsed with the arguments: no services needed, and `--no-test` does not hide it.
    let cache = tempfile::tempdir().unwrap();
    let out = lockship(cache.path())
        .args(["build", ".", "--no-test", "--runtime", "dockr"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: invalid value 'dockr' for '--runtime <NAME>': unknown container runtime `dockr` (expected docker or podman)"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 0);
}
