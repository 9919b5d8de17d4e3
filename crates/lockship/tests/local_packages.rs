//! uv.lock's workspace members and path dependencies, locked by the real uv: each is built into a
//! wheel by its own backend (hatchling, flit_core), gets a layer of its own, and is built again
//! only when its files change. A git source is refused, naming the package.

mod support;

use std::process::Command;

use support::lock_tools::refused;
use support::*;

/// Builds `project` to a docker tarball tagged `tag`; the JSON report.
fn build(project: &Project, cache: &std::path::Path, tag: &str) -> serde_json::Value {
    let tar = project.tmp.path().join("image.tar");
    json(&run_ok(
        lockship(cache)
            .arg("build")
            .arg(&project.dir)
            .args(["--base", &env().base, "--tag", tag, "--format", "json"])
            .arg("--output")
            .arg(format!("docker:{}", tar.display())),
    ))
}

/// The layer installing `package` (described by the wheel's name): (digest, built).
fn layer_of(report: &serde_json::Value, package: &str) -> (String, bool) {
    let layers = report["layers"].as_array().unwrap();
    let found: Vec<_> = layers
        .iter()
        .filter(|l| l["description"].as_str().unwrap().contains(package))
        .collect();
    assert_eq!(found.len(), 1, "one layer for {package}: {layers:?}");
    (
        found[0]["digest"].as_str().unwrap().to_string(),
        found[0]["built"].as_bool().unwrap(),
    )
}

#[test]
fn workspace_members_and_path_dependencies_are_built_with_their_backends() {
    if services_missing() {
        return;
    }
    let project = fixture("workspace", true);
    let lock = std::fs::read_to_string(project.path("uv.lock")).unwrap();
    assert!(
        lock.contains("source = { editable = \"packages/ws-lib\" }"),
        "{lock}"
    );
    assert!(
        lock.contains("source = { directory = \"vendor/local-util\" }"),
        "{lock}"
    );
    let cache = project.tmp.path().join("cache");

    let first = build(&project, &cache, "workspace:1");
    docker_load(&project.tmp.path().join("image.tar"));
    assert_eq!(
        docker_run("workspace:1", None, &[]).trim(),
        "hello bücher.example 42 1.16.0"
    );
    let (lib, built) = layer_of(&first, "ws_lib-0.3.0");
    assert!(built);
    let (util, _) = layer_of(&first, "local_util-0.1.0");

    // Unchanged: nothing is built again.
    let again = build(&project, &cache, "workspace:1");
    assert_eq!(again["digest"], first["digest"]);
    assert_eq!(layer_of(&again, "ws_lib-0.3.0"), (lib.clone(), false));

    // A change to the member: its layer alone is new.
    let init = project.path("packages/ws-lib/ws_lib/__init__.py");
    let text = std::fs::read_to_string(&init).unwrap();
    std::fs::write(&init, text.replace("\"hello \"", "\"hi \"")).unwrap();
    let changed = build(&project, &cache, "workspace:2");
    let (new_lib, built) = layer_of(&changed, "ws_lib-0.3.0");
    assert!(built && new_lib != lib);
    assert_eq!(layer_of(&changed, "local_util-0.1.0"), (util, false));
    docker_load(&project.tmp.path().join("image.tar"));
    assert_eq!(
        docker_run("workspace:2", None, &[]).trim(),
        "hi bücher.example 42 1.16.0"
    );
}

/// `edit` applied to the project's pyproject.toml, the project locked by the real uv; the stderr
/// of a build that must be refused.
fn relocked_and_refused(project: &Project, edit: impl FnOnce(String) -> String) -> String {
    let path = project.path("pyproject.toml");
    let edited = edit(std::fs::read_to_string(&path).unwrap());
    std::fs::write(&path, edited).unwrap();
    run_ok(
        Command::new("uv")
            .args(["lock", "--quiet"])
            .current_dir(&project.dir),
    );
    refused(project, &project.tmp.path().join("cache"))
}

/// A path dependency outside the lock's directory is refused before its backend runs.
#[test]
fn a_path_dependency_outside_the_lock_directory_is_refused() {
    if services_missing() {
        return;
    }
    let project = fixture("workspace", false);
    let outside = project.tmp.path().join("local-util");
    std::fs::rename(project.path("vendor/local-util"), &outside).unwrap();
    let stderr = relocked_and_refused(&project, |pyproject| {
        pyproject.replace("path = \"vendor/local-util\"", "path = \"../local-util\"")
    });
    assert!(
        stderr.contains("local-util is locked from")
            && stderr.contains("outside the lock's directory")
            && stderr.contains("hint: lockship builds path dependencies that live under"),
        "{stderr}"
    );
    assert!(!outside.join("build").exists() && !outside.join("dist").exists());
}

#[test]
fn a_git_source_is_refused_by_name() {
    if services_missing() {
        return;
    }
    let project = fixture("workspace", false);
    // A real git repository holding a package, locked by uv at its commit.
    let repo = project.tmp.path().join("gitdep");
    std::fs::create_dir_all(repo.join("gitdep")).unwrap();
    std::fs::write(
        repo.join("pyproject.toml"),
        "[project]\nname = \"gitdep\"\nversion = \"1.0\"\n\n[build-system]\nrequires = [\"hatchling\"]\nbuild-backend = \"hatchling.build\"\n",
    )
    .unwrap();
    std::fs::write(repo.join("gitdep/__init__.py"), "").unwrap();
    for args in [
        &["init", "-q"][..],
        &["add", "."],
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-q",
            "-m",
            "gitdep",
        ],
    ] {
        run_ok(Command::new("git").args(args).current_dir(&repo));
    }
    let stderr = relocked_and_refused(&project, |pyproject| {
        pyproject
            .replace("\"six==1.16.0\"]", "\"six==1.16.0\", \"gitdep\"]")
            .replace(
                "[tool.uv.sources]\n",
                &format!(
                    "[tool.uv.sources]\ngitdep = {{ git = \"file://{}\" }}\n",
                    repo.display()
                ),
            )
    });
    assert!(
        stderr.contains(
            "uv.lock: package gitdep comes from a git repository, which lockship cannot build yet"
        ) && stderr.contains("hint: lockship installs packages from an index"),
        "{stderr}"
    );
}
