//! A base read from an OCI image layout (`base = "oci-layout://…"`), written by skopeo from
//! the test registry's base: the image gets the same layers as from the registry, pushes its
//! base layers (the layout is no registry to mount from) and runs under Docker; a damaged
//! layout is refused with nothing cached.

mod support;

use std::process::Command;

use support::*;

/// Copies the test base into a layout at `dir` tagged `tag`, with skopeo.
fn base_layout(env: &Env, dir: &std::path::Path, tag: &str) {
    run_ok(Command::new("skopeo").args([
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        &format!("docker://{}", env.base),
        &format!("oci:{}:{tag}", dir.display()),
    ]));
}

/// Sets `base = "BASE"` in the fixture, in place of its Debian base table (the file's end).
fn set_base(project: &Project, base: &str) {
    let path = project.path("pyproject.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = match text.find("[tool.lockship.base]\n") {
        Some(at) => &text[..at],
        None => text.as_str(),
    };
    let text = match text.split_once("\nbase = ") {
        Some((head, tail)) => format!("{head}{}", &tail[tail.find('\n').unwrap()..]),
        None => text.to_string(),
    };
    let text = text.replace(
        "[tool.lockship]\n",
        &format!("[tool.lockship]\nbase = \"{base}\"\n"),
    );
    assert!(
        text.contains(base),
        "the fixture has a [tool.lockship] table"
    );
    std::fs::write(path, text).unwrap();
}

#[test]
fn layout_base_gives_the_registry_base_layers_and_runs() {
    if services_missing() {
        return;
    }
    let env = env();
    let project = fixture("hello-cli", true);
    base_layout(&env, &project.path("base-layout"), "3.11");
    // A second image in the layout: the tag must pick.
    base_layout(&env, &project.path("base-layout"), "other");
    set_base(&project, "oci-layout://base-layout:3.11");
    let cache = project.tmp.path().join("cache");
    let name = unique("layout-base");
    let pushed = format!("{}/tests/{name}:1", env.registry);
    let from_layout = json(&run_ok(
        lockship(&cache)
            .arg("build")
            .arg(&project.dir)
            .args(["--format", "json", "--push", &pushed]),
    ));
    let from_registry = json(&run_ok(
        lockship(&cache)
            .arg("build")
            .arg(&project.dir)
            .args(["--base", &env.base, "--format", "json", "--output"])
            .arg(format!(
                "oci:{}",
                project.tmp.path().join("registry-base.oci").display()
            )),
    ));
    assert_eq!(
        layer_digests(&from_layout),
        layer_digests(&from_registry),
        "a layout copy of the base gives the same layers"
    );
    // The registry never saw the layout's base: its layers were uploaded, not mounted.
    docker(&["pull", "-q", &pushed]);
    assert!(docker_run(&pushed, None, &["layout"]).contains("Hello, layout!"));

    // With two images and no tag, lockship asks which.
    set_base(&project, "oci-layout://base-layout");
    let err = run_err(
        lockship(&cache)
            .arg("build")
            .arg(&project.dir)
            .arg("--dry-run"),
    );
    let stderr = String::from_utf8_lossy(&err.stderr);
    assert!(
        stderr.contains("holds 2 images") && stderr.contains("3.11, other"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: name one of the listed images"),
        "{stderr}"
    );
}

#[test]
fn damaged_layout_is_refused_and_nothing_is_cached() {
    if services_missing() {
        return;
    }
    let env = env();
    let project = fixture("hello-cli", true);
    let layout = project.path("base-layout");
    base_layout(&env, &layout, "3.11");
    // Alter the biggest blob (the root file system layer) by one byte.
    let blobs = layout.join("blobs/sha256");
    let biggest = std::fs::read_dir(&blobs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|p| p.metadata().unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(&biggest).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&biggest, bytes).unwrap();
    let digest = format!("sha256:{}", biggest.file_name().unwrap().to_string_lossy());

    let cache = project.tmp.path().join("cache");
    let out = project.tmp.path().join("img.oci");
    let err = run_err(
        lockship(&cache)
            .arg("build")
            .arg(&project.dir)
            .args(["--base", &format!("oci-layout://{}:3.11", layout.display())])
            .arg("--output")
            .arg(format!("oci:{}", out.display())),
    );
    let stderr = String::from_utf8_lossy(&err.stderr);
    assert!(
        stderr.contains(&format!("blob {digest} has other content")),
        "{stderr}"
    );
    assert!(stderr.contains("hint: the layout is damaged"), "{stderr}");
    assert!(!out.exists(), "no output is written");
    let cached = files_under(&cache)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(&digest[7..]))
        .collect::<Vec<_>>();
    assert!(
        cached.is_empty(),
        "the altered blob is not cached: {cached:?}"
    );

    // A path that is not a layout names it.
    let err = run_err(lockship(&cache).arg("build").arg(&project.dir).args([
        "--base",
        "oci-layout://no-such-dir",
        "--dry-run",
    ]));
    let stderr = String::from_utf8_lossy(&err.stderr);
    assert!(
        stderr.contains("error: no-such-dir is not an OCI image layout"),
        "{stderr}"
    );
}
