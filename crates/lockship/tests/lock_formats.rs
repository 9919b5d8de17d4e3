//! Every lock format, made at test time by its real tool from one project that pins exact
//! versions: uv (uv.lock), poetry (poetry.lock), pipenv (Pipfile.lock) and `uv export --format
//! pylock.toml`. Each is read natively (no export step) and, built in a fresh cache, gives the
//! very same layers: the lock decides what is installed, never how.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::lock_tools::*;
use support::*;

fn tools() -> PathBuf {
    PathBuf::from(std::env::var("LOCKSHIP_TEST_TOOLS").expect("set by scripts/test"))
}

fn run_in(dir: &Path, cmd: &mut Command) {
    let out = cmd.current_dir(dir).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The fixture with only the lock `tool` wrote (and the files that tool reads).
fn locked_by(tool: &str) -> Project {
    // uv.lock comes from the fixture helper (the real uv, cached by pyproject's digest).
    let project = fixture("four-locks", matches!(tool, "uv" | "pylock"));
    let dir = &project.dir;
    if tool != "pipenv" {
        std::fs::remove_file(dir.join("Pipfile")).unwrap();
    }
    match tool {
        "uv" => {}
        "pylock" => {
            run_in(
                dir,
                Command::new("uv").args([
                    "export",
                    "--quiet",
                    "--format",
                    "pylock.toml",
                    "--output-file",
                    "pylock.toml",
                ]),
            );
            std::fs::remove_file(dir.join("uv.lock")).unwrap();
        }
        "poetry" => {
            add_poetry_source(&project);
            run_in(
                dir,
                Command::new(tools().join("poetry/bin/poetry"))
                    .args(["lock", "--no-interaction"])
                    .env("POETRY_CACHE_DIR", project.tmp.path().join("poetry-cache")),
            );
        }
        "pipenv" => run_in(
            dir,
            Command::new(tools().join("pipenv/bin/pipenv"))
                .arg("lock")
                .env("PIP_INDEX_URL", index_url())
                .env("PIPENV_VENV_IN_PROJECT", "1")
                .env("PIPENV_NOSPIN", "1")
                .env("PIPENV_CACHE_DIR", project.tmp.path().join("pipenv-cache")),
        ),
        _ => unreachable!(),
    }
    project
}

/// A poetry.lock or Pipfile.lock whose source file changed is stale, with the tool's command as
/// the hint; a lock version lockship does not know is named with the ones it reads. The files
/// are put back afterwards.
fn stale_and_unknown_versions_are_named(tool: &str, project: &Project, cache: &Path) {
    let (source, lock, edit, version_from, version_to, hint) = match tool {
        "poetry" => (
            "pyproject.toml",
            "poetry.lock",
            ("\"certifi==2024.2.2\"", "\"certifi==2024.2.2\", \"click\""),
            "lock-version = \"2.1\"",
            "lock-version = \"3.0\"",
            "hint: run `lockship lock` (or `poetry lock`) to update it",
        ),
        "pipenv" => (
            "Pipfile",
            "Pipfile.lock",
            (
                "certifi = \"==2024.2.2\"",
                "certifi = \"==2024.2.2\"\nclick = \"*\"",
            ),
            "\"pipfile-spec\": 6",
            "\"pipfile-spec\": 7",
            "hint: run `lockship lock` (or `pipenv lock`) to update it",
        ),
        _ => return,
    };
    let source_path = project.path(source);
    let original = std::fs::read_to_string(&source_path).unwrap();
    assert!(original.contains(edit.0), "{source}: {original}");
    std::fs::write(&source_path, original.replace(edit.0, edit.1)).unwrap();
    let stderr = refused(project, cache);
    assert!(
        stderr.contains(&format!("{lock} is out of date with {source}: ")),
        "{tool}: {stderr}"
    );
    assert!(stderr.contains(hint), "{tool}: {stderr}");
    std::fs::write(&source_path, &original).unwrap();

    let lock_path = project.path(lock);
    let locked = std::fs::read_to_string(&lock_path).unwrap();
    assert!(locked.contains(version_from), "{lock}");
    std::fs::write(&lock_path, locked.replace(version_from, version_to)).unwrap();
    let stderr = refused(project, cache);
    let (found, supported) = if tool == "poetry" {
        ("3.0", "2.0, 2.1")
    } else {
        ("pipfile-spec 7", "pipfile-spec 6")
    };
    assert!(
        stderr.contains(&format!(
            "lock version {found} is not supported (lockship reads {supported})"
        )),
        "{tool}: {stderr}"
    );
    std::fs::write(&lock_path, locked).unwrap();
}

#[test]
fn four_tools_locking_the_same_versions_give_the_same_layers() {
    if services_missing() {
        return;
    }
    let env = env();
    let mut layers: Vec<(&str, Vec<String>)> = Vec::new();
    for (tool, lock) in [
        ("uv", "uv.lock"),
        ("poetry", "poetry.lock"),
        ("pipenv", "Pipfile.lock"),
        ("pylock", "pylock.toml"),
    ] {
        let project = locked_by(tool);
        assert!(project.path(lock).is_file(), "{tool} wrote {lock}");
        let cache = project.tmp.path().join("cache");
        let out = project.tmp.path().join("image.oci");
        let report = json(&run_ok(
            lockship(&cache)
                .env("PIP_INDEX_URL", index_url())
                .arg("build")
                .arg(&project.dir)
                .args(["--base", &env.base, "--format", "json", "--output"])
                .arg(format!("oci:{}", out.display())),
        ));
        assert_eq!(report["lock"], lock, "{tool}");
        assert_eq!(report["lock_format"], lock, "{tool}");
        layers.push((tool, layer_digests(&report)));
        stale_and_unknown_versions_are_named(tool, &project, &cache);
        if tool == "pipenv" {
            let tar = project.tmp.path().join("image.tar");
            run_ok(
                lockship(&cache)
                    .env("PIP_INDEX_URL", index_url())
                    .arg("build")
                    .arg(&project.dir)
                    .args([
                        "--base",
                        &env.base,
                        "--tag",
                        "four-locks:pipenv",
                        "--output",
                    ])
                    .arg(format!("docker:{}", tar.display())),
            );
            docker_load(&tar);
            assert_eq!(
                docker_run("four-locks:pipenv", None, &[]).trim(),
                "1.16.0 3.7 2024.02.02"
            );
        }
    }
    for (tool, digests) in &layers[1..] {
        assert_eq!(
            digests, &layers[0].1,
            "{tool}'s lock gives other layers than uv's"
        );
    }
}

/// A lock that pins versions without hashes is refused, naming every such package, with the
/// way out in the hint; with `allow-unhashed = true` it builds from the index's own hashes,
/// lists the packages in a warning and in the report, and gives the same layers as uv.lock.
#[test]
fn unhashed_locks_are_refused_unless_allowed() {
    if services_missing() {
        return;
    }
    let env = env();
    let project = fixture("four-locks", false);
    std::fs::remove_file(project.path("Pipfile")).unwrap();
    std::fs::write(
        project.path("requirements.txt"),
        "six==1.16.0\nidna==3.7\ncertifi==2024.2.2\n",
    )
    .unwrap();
    let cache = project.tmp.path().join("cache");
    let stderr = refused(&project, &cache);
    assert!(
        stderr.contains(
            "requirements.txt: 3 packages are (certifi==2024.2.2, idna==3.7, six==1.16.0) locked \
             without hashes"
        ) && stderr.contains("hint: lock with hashes")
            && stderr.contains("`allow-unhashed = true`"),
        "{stderr}"
    );
    assert!(
        !cache.join("index").exists()
            || std::fs::read_dir(cache.join("index")).unwrap().count() == 0,
        "nothing was looked up"
    );

    let pyproject = std::fs::read_to_string(project.path("pyproject.toml")).unwrap();
    assert!(pyproject
        .trim_end()
        .ends_with("entrypoint = [\"/opt/venv/bin/python\", \"/app/main.py\"]"));
    std::fs::write(
        project.path("pyproject.toml"),
        format!("{pyproject}allow-unhashed = true\n"),
    )
    .unwrap();
    let out = lockship(&cache)
        .env("PIP_INDEX_URL", index_url())
        .arg("build")
        .arg(&project.dir)
        .args(["--base", &env.base, "--format", "json", "--output"])
        .arg(format!(
            "oci:{}",
            project.tmp.path().join("image.oci").display()
        ))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "warning: 3 packages are locked without hashes (allow-unhashed = true): \
             certifi==2024.2.2, idna==3.7, six==1.16.0"
        ),
        "{stderr}"
    );
    let report = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(
        report["unhashed"],
        serde_json::json!(["certifi==2024.2.2", "idna==3.7", "six==1.16.0"])
    );

    let uv = locked_by("uv");
    let uv_report = json(&run_ok(
        lockship(&uv.tmp.path().join("cache"))
            .arg("build")
            .arg(&uv.dir)
            .args(["--base", &env.base, "--format", "json", "--output"])
            .arg(format!("oci:{}", uv.tmp.path().join("image.oci").display())),
    ));
    assert_eq!(uv_report["unhashed"], serde_json::json!([]));
    assert_eq!(layer_digests(&report), layer_digests(&uv_report));
}

/// A pylock.toml wheel named by a path (a wheelhouse in the project) is copied from disk,
/// checked against the lock's hash, and installed; a path that leads outside the project,
/// directly or through a link, is refused before anything is read.
#[test]
fn pylock_path_wheels_come_from_inside_the_project_only() {
    if services_missing() {
        return;
    }
    let env = env();
    let project = fixture("four-locks", false);
    std::fs::remove_file(project.path("Pipfile")).unwrap();
    let pyproject = std::fs::read_to_string(project.path("pyproject.toml")).unwrap();
    std::fs::write(
        project.path("pyproject.toml"),
        pyproject.replace(
            r#"dependencies = ["six==1.16.0", "idna==3.7", "certifi==2024.2.2"]"#,
            r#"dependencies = ["six==1.16.0"]"#,
        ),
    )
    .unwrap();
    // A real wheel from the index, in a wheelhouse beside the lock.
    let wheels = project.path("wheels");
    run_ok(
        Command::new("python3")
            .args([
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "six==1.16.0",
                "-d",
            ])
            .arg(&wheels)
            .env("PIP_INDEX_URL", index_url()),
    );
    let name = "six-1.16.0-py2.py3-none-any.whl";
    let sha = lockship_oci::digest::Digest::of_bytes(&std::fs::read(wheels.join(name)).unwrap());
    let lock = |path: &str| {
        format!(
            "lock-version = \"1.0\"\ncreated-by = \"hand\"\nrequires-python = \">=3.11\"\n\n[[packages]]\nname = \"six\"\nversion = \"1.16.0\"\nwheels = [{{ path = \"{path}\", hashes = {{ sha256 = \"{}\" }} }}]\n",
            sha.hex()
        )
    };
    std::fs::write(project.path("pylock.toml"), lock(&format!("wheels/{name}"))).unwrap();
    let cache = project.tmp.path().join("cache");
    let tar = project.tmp.path().join("image.tar");
    run_ok(
        lockship(&cache)
            .arg("build")
            .arg(&project.dir)
            .args(["--base", &env.base, "--tag", "pylock-path:1", "--output"])
            .arg(format!("docker:{}", tar.display())),
    );
    docker_load(&tar);
    assert_eq!(
        docker_run(
            "pylock-path:1",
            Some("/opt/venv/bin/python"),
            &["-c", "import six; print(six.__version__)"]
        )
        .trim(),
        "1.16.0"
    );

    // Outside the project: by a relative path, and by a link inside the project.
    let outside = project.tmp.path().join("elsewhere");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::copy(wheels.join(name), outside.join(name)).unwrap();
    std::os::unix::fs::symlink(outside.join(name), wheels.join("linked.whl")).unwrap();
    for path in [
        format!("../elsewhere/{name}"),
        "wheels/linked.whl".to_string(),
    ] {
        std::fs::write(
            project.path("pylock.toml"),
            lock(&path).replace(
                "wheels = [{ path",
                &format!("wheels = [{{ name = \"{name}\", path"),
            ),
        )
        .unwrap();
        let stderr = refused(&project, &project.tmp.path().join("cache2"));
        assert!(
            stderr.contains("the lock takes six 1.16.0 from")
                && stderr.contains("outside the project")
                && stderr.contains("hint: put the wheels in a directory of the project"),
            "{path}: {stderr}"
        );
    }

    // Beside a package published only as an sdist, whose build lets the layers of the others
    // be written meanwhile: a real build is refused all the same, before anything is read or
    // built (the builder named here does not exist; asking for it would be the error).
    let sdist_only = "\n[[packages]]\nname = \"docopt\"\nversion = \"0.6.2\"\nsdist = { url = \"https://files.pythonhosted.org/packages/a2/55/8f8cab2afd404cf578136ef2cc5dfb50baa1761b68c9da1fb1e4eed343c9/docopt-0.6.2.tar.gz\", hashes = { sha256 = \"49b3a825280bd66b3aa83585ef59c4a8c82f2c8a522dbe754a8bc8d08c85c491\" } }\n";
    std::fs::write(
        project.path("pyproject.toml"),
        format!(
            "{}\n[tool.lockship.builder]\nimage = \"{}/tests/no-such-builder:1\"\n",
            std::fs::read_to_string(project.path("pyproject.toml"))
                .unwrap()
                .replace(
                    r#"dependencies = ["six==1.16.0"]"#,
                    r#"dependencies = ["six==1.16.0", "docopt==0.6.2"]"#,
                ),
            env.registry
        ),
    )
    .unwrap();
    std::fs::write(
        project.path("pylock.toml"),
        lock(&format!("../elsewhere/{name}")).replace(
            "wheels = [{ path",
            &format!("wheels = [{{ name = \"{name}\", path"),
        ) + sdist_only,
    )
    .unwrap();
    let cache = project.tmp.path().join("cache3");
    let out = lockship(&cache)
        .arg("build")
        .arg(&project.dir)
        .args(["--base", &env.base, "--no-test", "--output"])
        .arg(format!(
            "oci:{}",
            project.tmp.path().join("refused.oci").display()
        ))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the lock takes six 1.16.0 from") && stderr.contains("outside the project"),
        "{stderr}"
    );
    assert!(!cache.join("layers").exists(), "no layer written");
    assert!(!project.tmp.path().join("refused.oci").exists());
}
