//! `lockship init` on a project with a Dockerfile: the table it writes reproduces the image
//! (base, entrypoint, env, user, workdir, labels), the build from it runs, what it cannot carry
//! over is listed with what to do, and a project that already has a table is left alone.

mod support;

use support::*;

/// hello-cli without its [tool.lockship] tables, with a Dockerfile of the usual shape.
fn dockerized(base: &str) -> Project {
    let project = fixture("hello-cli", true);
    let path = project.path("pyproject.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let cut = text.find("[tool.lockship]").unwrap();
    std::fs::write(&path, &text[..cut]).unwrap();
    let dockerfile = format!(
        r#"# syntax=docker/dockerfile:1
ARG BASE={base}
FROM ${{BASE}} AS runtime
RUN apt-get update && apt-get install -y libpq5
RUN pip install --no-cache-dir -r requirements.txt
ENV PYTHONUNBUFFERED=1 \
    HELLO_GREETING=Howdy
USER 1234:1234
WORKDIR /srv
EXPOSE 8080
LABEL team="data eng"
ENTRYPOINT ["hello"]
CMD ["from-cmd"]
"#
    );
    std::fs::write(project.path("Dockerfile"), dockerfile).unwrap();
    project
}

#[test]
fn init_from_a_dockerfile_writes_a_table_that_builds_the_same_image() {
    if services_missing() {
        return;
    }
    let env = env();
    let project = dockerized(&env.base);
    let out = lockship(&shared_cache())
        .arg("init")
        .arg(&project.dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // What could not come along is said, with what to do instead.
    assert!(
        stderr.contains("not carried over, and what to do instead:"),
        "{stderr}"
    );
    assert!(stderr.contains("RUN apt-get update && apt-get install -y libpq5: for run-time libraries, use a Debian-package base"), "{stderr}");
    assert!(
        stderr.contains("packages = [\"python3\", \"libpq5\"]"),
        "{stderr}"
    );
    assert!(
        stderr.contains("EXPOSE 8080: documentation only"),
        "{stderr}"
    );
    assert!(
        stderr.contains("ENV PYTHONUNBUFFERED: lockship sets it"),
        "{stderr}"
    );
    let pyproject = std::fs::read_to_string(project.path("pyproject.toml")).unwrap();
    assert!(
        pyproject.contains(&format!("base = \"{}\"", env.base)),
        "{pyproject}"
    );
    assert!(
        pyproject.contains(r#"entrypoint = ["/opt/venv/bin/hello"]"#),
        "{pyproject}"
    );

    // The image built from it is configured as the Dockerfile's was.
    let tar = project.tmp.path().join("app.tar");
    let tag = format!("{}:1", unique("init"));
    run_ok(
        lockship(&shared_cache())
            .arg("build")
            .arg(&project.dir)
            .args(["--tag", &tag, "--output"])
            .arg(format!("docker:{}", tar.display())),
    );
    docker_load(&tar);
    let greeting = docker_run(&tag, None, &[]);
    assert!(greeting.starts_with("Howdy, from-cmd!"), "{greeting}");
    let config = docker(&["image", "inspect", "--format", "{{json .Config}}", &tag]);
    docker(&["rmi", &tag]);
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(config["User"], "1234:1234");
    assert_eq!(config["WorkingDir"], "/srv");
    assert_eq!(config["Labels"]["team"], "data eng");

    // Once there is a table, init leaves the file alone.
    let before = std::fs::read(project.path("pyproject.toml")).unwrap();
    let again = run_err(lockship(&shared_cache()).arg("init").arg(&project.dir));
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.lines()
            .next()
            .unwrap()
            .contains("already has a [tool.lockship] table"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(project.path("pyproject.toml")).unwrap(),
        before
    );
    assert!(temp_leftovers(&project.dir).is_empty());
}

#[test]
fn init_without_a_dockerfile_uses_the_scripts_and_print_writes_nothing() {
    let project = fixture("hello-cli", false);
    let path = project.path("pyproject.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let cut = text.find("[tool.lockship]").unwrap();
    std::fs::write(&path, &text[..cut]).unwrap();
    let before = std::fs::read(&path).unwrap();
    let out = run_ok(
        lockship(project.tmp.path())
            .arg("init")
            .arg(&project.dir)
            .arg("--print"),
    );
    assert!(out.starts_with("[tool.lockship]\n"), "{out}");
    // The one console script is the default entrypoint: nothing to write for it.
    assert!(!out.contains("entrypoint"), "{out}");
    assert!(
        out.contains(r#"smoke = ["python -c 'import hello_cli'"]"#),
        "{out}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), before, "--print wrote");
    let empty = tempfile::tempdir().unwrap();
    let out = run_err(lockship(empty.path()).arg("init").arg(empty.path()));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not a Python project"), "{err}");
}

#[test]
fn repeated_env_keys_take_the_last_value_and_a_symlinked_pyproject_stays_a_link() {
    let project = fixture("hello-cli", false);
    let path = project.path("pyproject.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let cut = text.find("[tool.lockship]").unwrap();
    // The real file lives elsewhere (a monorepo's shared config); the project links to it.
    let shared = project.tmp.path().join("shared.toml");
    std::fs::write(&shared, &text[..cut]).unwrap();
    std::fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink(&shared, &path).unwrap();
    std::fs::write(
        project.path("Dockerfile"),
        "FROM python:3.12-slim\nENV A=1 B=2\nENV A=3\nLABEL x=1\nLABEL x=2\n",
    )
    .unwrap();
    run_ok(lockship(project.tmp.path()).arg("init").arg(&project.dir));
    assert!(std::fs::symlink_metadata(&path)
        .unwrap()
        .file_type()
        .is_symlink());
    let written = std::fs::read_to_string(&shared).unwrap();
    assert!(
        written.contains(r#"env = { A = "3", B = "2" }"#),
        "{written}"
    );
    assert!(written.contains(r#"labels = { x = "2" }"#), "{written}");
}
