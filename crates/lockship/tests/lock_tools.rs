//! `lockship lock` for poetry.lock and Pipfile.lock, with the real poetry and pipenv: neither is
//! on PATH, so lockship installs each once, pinned, into its cache. Creating the lock, `--check`
//! on a loosened requirement, upgrading one package while the others keep their versions, and
//! upgrading everything behave as they do for uv.lock. The fixture bounds every requirement, so
//! the versions picked are known whatever the index holds today.

mod support;

use std::path::Path;
use std::process::Command;

use support::lock_tools::*;
use support::*;

/// `lockship lock` with the registry base and a PATH without poetry or pipenv.
fn lock(project: &Project, args: &[&str]) -> Command {
    let mut cmd = lockship(&shared_cache());
    cmd.arg("lock")
        .arg(&project.dir)
        .args(["--base", &env().base])
        .args(args)
        .env("PIP_INDEX_URL", index_url())
        .env("PATH", path_without(&["poetry", "pipenv"]));
    cmd
}

/// PATH without the directories that hold any of `programs`.
fn path_without(programs: &[&str]) -> String {
    let path = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .filter(|dir| !programs.iter().any(|p| dir.join(p).exists()))
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

/// The fixture set up for `tool` (`poetry` or `pipenv`), with no lock yet.
fn project_for(tool: &str) -> Project {
    let project = fixture("relock", false);
    if tool == "poetry" {
        std::fs::remove_file(project.path("Pipfile")).unwrap();
        add_poetry_source(&project);
    }
    project
}

/// Loosens the bounds in the file the lock is made from: the lock goes stale.
fn loosen(file: &Path) {
    let text = std::fs::read_to_string(file).unwrap();
    let loosened = text.replace("<1.16", "<1.17").replace("<3.7", "<3.8");
    assert_ne!(text, loosened);
    std::fs::write(file, loosened).unwrap();
}

fn relocks_with_its_own_tool(tool: &str, lock_name: &str, made_from: &str) {
    let project = project_for(tool);
    let report = json(&run_ok(&mut lock(&project, &["--format", "json"])));
    assert_eq!(
        report["lock"],
        project.path(lock_name).display().to_string()
    );
    let shown = report["tool"].as_str().unwrap();
    assert!(
        shown.starts_with(&format!("{tool} lock (")) && shown.contains("installed by lockship"),
        "{shown}"
    );
    let changes: Vec<(String, String)> = report["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            assert!(c["old"].is_null(), "{c}");
            (
                c["package"].as_str().unwrap().to_string(),
                c["new"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            ("idna".to_string(), "3.6".to_string()),
            ("six".to_string(), "1.15.0".to_string())
        ],
        "{tool}"
    );
    // The tool wrote nothing into the project but its lock (no .venv, no cache).
    let mut files: Vec<String> = std::fs::read_dir(&project.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut expected = vec!["main.py", "pyproject.toml", lock_name];
    if tool == "pipenv" {
        expected.push("Pipfile");
    }
    expected.sort();
    assert_eq!(files, expected, "{tool}");
    run_ok(&mut lock(&project, &["--check"]));

    // A loosened requirement: --check names the stale lock and the command that fixes it.
    loosen(&project.path(made_from));
    let out = lock(&project, &["--check"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{tool}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{lock_name} is out of date with {made_from}"))
            && stderr.contains("hint: run `lockship lock` and commit the result"),
        "{tool}: {stderr}"
    );

    // One package moves; the other keeps its version.
    let upgraded = run_ok(&mut lock(&project, &["--upgrade-package", "idna"]));
    assert_eq!(upgraded, "  idna  3.6 → 3.7\n", "{tool}");
    run_ok(&mut lock(&project, &["--check"]));

    // Everything moves to the newest allowed.
    let all = run_ok(&mut lock(&project, &["--upgrade"]));
    assert_eq!(all, "  six  1.15.0 → 1.16.0\n", "{tool}");

    // And the lock builds the image.
    let out = project.tmp.path().join("image.oci");
    run_ok(
        lockship(&shared_cache())
            .env("PIP_INDEX_URL", index_url())
            .arg("build")
            .arg(&project.dir)
            .args(["--base", &env().base, "--output"])
            .arg(format!("oci:{}", out.display())),
    );
}

#[test]
fn poetry_lock_is_relocked_by_poetry() {
    if services_missing() {
        return;
    }
    relocks_with_its_own_tool("poetry", "poetry.lock", "pyproject.toml");
}

#[test]
fn pipfile_lock_is_relocked_by_pipenv() {
    if services_missing() {
        return;
    }
    relocks_with_its_own_tool("pipenv", "Pipfile.lock", "Pipfile");
}
