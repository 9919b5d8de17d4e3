//! A one-line app change without the PEP 517 backend: the last wheel the backend built, with the
//! edited module replaced, installs exactly what the backend would have made (the same image
//! digest as a build from an empty cache), and a change a patch cannot make (a new file) goes
//! to the backend.

mod support;

use std::path::Path;

use support::*;

fn build(project: &Path, cache: &Path, base: &str) -> String {
    let out = project.parent().unwrap().join("oci");
    let report = json(&run_ok(
        lockship(cache)
            .arg("build")
            .arg(project)
            .args(["--base", base, "--no-test", "--format", "json"])
            .arg("--output")
            .arg(format!("oci:{}", out.display())),
    ));
    report["digest"].as_str().unwrap().to_string()
}

/// What `last-*.json` in the cache says the last real build was (its directory).
fn last_real_build(cache: &Path) -> String {
    let dir = cache.join("app-wheels");
    let entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("last-")
        })
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let last = json(&std::fs::read_to_string(&entries[0]).unwrap());
    last["dir"].as_str().unwrap().to_string()
}

#[test]
fn an_edited_module_is_patched_into_the_last_wheel_with_the_backends_result() {
    if services_missing() {
        return;
    }
    let env = env();
    let project = fixture("hello-cli", true);
    let cache = tempfile::tempdir().unwrap();
    build(&project.dir, cache.path(), &env.base);
    let real = last_real_build(cache.path());

    let main = project.dir.join("src/hello_cli/main.py");
    let mut text = std::fs::read_to_string(&main).unwrap();
    text.push_str("\n# one line changed\n");
    std::fs::write(&main, &text).unwrap();
    let patched = build(&project.dir, cache.path(), &env.base);
    assert_eq!(last_real_build(cache.path()), real, "no backend build");

    // The backend, from an empty cache, makes the same image.
    let fresh = tempfile::tempdir().unwrap();
    assert_eq!(build(&project.dir, fresh.path(), &env.base), patched);

    // A new file is not a patch: the backend builds, and becomes the one patched onto.
    std::fs::write(project.dir.join("src/hello_cli/extra.py"), "X = 1\n").unwrap();
    let with_file = build(&project.dir, cache.path(), &env.base);
    assert_ne!(last_real_build(cache.path()), real, "the backend built");
    let fresh = tempfile::tempdir().unwrap();
    assert_eq!(build(&project.dir, fresh.path(), &env.base), with_file);
}
