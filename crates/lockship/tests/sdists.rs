//! Packages published only as sdists, built into wheels in a builder: assembled by lockship
//! from the Debian base's suite (build-essential, python3.X-dev, pip) and loaded into Docker,
//! or named as an image for a registry base. Real sdists from the index, compiled by the real
//! gcc; the wheels are cached, reproducible, checked like any wheel (shared libraries too), and
//! the builder's failures say what went wrong.

mod support;

use std::path::Path;

use support::*;

fn build(project: &Project, cache: &Path, out: &str, extra: &[&str]) -> std::process::Output {
    lockship(cache)
        .arg("build")
        .arg(&project.dir)
        .args([
            "--no-test",
            "--verbose",
            "--format",
            "json",
            "--output",
            out,
        ])
        .args(extra)
        .output()
        .unwrap()
}

fn ok(out: std::process::Output) -> (serde_json::Value, String) {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    (json(&String::from_utf8_lossy(&out.stdout)), stderr)
}

fn failed(out: std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    stderr
}

#[test]
fn sdists_are_built_in_a_debian_builder_cached_and_reproducible() {
    if services_missing() {
        return;
    }
    let project = fixture("sdist-app", false);
    // One package with a wheel beside the sdists: its layer is written while they build.
    let pyproject = project.path("pyproject.toml");
    let text = std::fs::read_to_string(&pyproject).unwrap().replace(
        r#"dependencies = ["markupsafe==2.0.1", "docopt==0.6.2"]"#,
        r#"dependencies = ["markupsafe==2.0.1", "docopt==0.6.2", "six==1.17.0"]"#,
    );
    std::fs::write(&pyproject, text).unwrap();
    uv_lock(&project.dir);
    let cache = project.tmp.path().join("cache");
    let tar = project.tmp.path().join("image.tar");
    let tag = format!("{}:1", unique("sdist"));
    let (report, stderr) = ok(build(
        &project,
        &cache,
        &format!("docker:{}", tar.display()),
        &["--tag", &tag],
    ));
    assert!(
        stderr.contains(
            "building markupsafe 2.0.1 from MarkupSafe-2.0.1.tar.gz in lockship-builder:"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("building docopt 0.6.2 from docopt-0.6.2.tar.gz"),
        "{stderr}"
    );
    let described: Vec<&str> = report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["description"].as_str())
        .collect();
    assert!(
        described.iter().any(|d| d.contains("markupsafe 2.0.1 (MarkupSafe-2.0.1-cp311-cp311-linux_x86_64.whl)")),
        "{described:?}"
    );
    // six's layer is written ahead, under the key the plan then asks for: not written again
    // (runtime, the standard library's bytecode, markupsafe, docopt and the app are).
    assert!(
        stderr.contains(
            "writing 1 layer ahead, while the sdists' wheels are built or taken from the cache"
        ) && stderr.contains("writing 5 layers\n"),
        "{stderr}"
    );
    let six = report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["description"].as_str().unwrap().contains("six 1.17.0"))
        .unwrap();
    assert_eq!(six["built"], true, "written ahead by this build: {six}");
    docker_load(&tar);
    assert_eq!(
        docker_run(&tag, None, &[]).trim(),
        "escaped &lt;b&gt; with markupsafe._speedups, docopt 0.6.2"
    );
    docker(&["rmi", &tag]);

    // Built once: a rebuild takes the cached wheels and starts no builder.
    let (again, stderr) = ok(build(
        &project,
        &cache,
        &format!("docker:{}", tar.display()),
        &["--tag", &tag],
    ));
    assert_eq!(again["digest"], report["digest"]);
    assert!(!stderr.contains("building markupsafe"), "{stderr}");

    // Built again from scratch (the same builder, no built wheels, no layers): the same bytes.
    for bucket in ["built-wheels", "layers"] {
        std::fs::remove_dir_all(cache.join(bucket)).unwrap();
    }
    let target = format!("{}/tests/{}:main", env().registry, unique("sdist-share"));
    let (fresh, stderr) = ok(build(
        &project,
        &cache,
        &format!("oci:{}", project.tmp.path().join("img.oci").display()),
        &["--tag", &tag, "--push", &target],
    ));
    assert!(stderr.contains("building markupsafe 2.0.1"), "{stderr}");
    assert_eq!(
        fresh["digest"], report["digest"],
        "the built wheels are reproducible"
    );

    // Another runner, without the built wheels (no built-wheels entry, no wheel blob) and
    // without a runtime to build in: it takes the wheels the push shared with the image.
    let runner = project.tmp.path().join("runner");
    copy_tree_without_wheels(&cache, &runner);
    std::fs::remove_dir_all(runner.join("built-wheels")).unwrap();
    let (shared, stderr) = ok(lockship(&runner)
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .arg("build")
        .arg(&project.dir)
        .args([
            "--no-test",
            "--verbose",
            "--format",
            "json",
            "--push",
            &target,
        ])
        .output()
        .unwrap());
    for package in ["markupsafe 2.0.1", "docopt 0.6.2"] {
        assert!(
            stderr.contains(&format!("{package}: the wheel another build made, from")),
            "{stderr}"
        );
    }
    assert!(!stderr.contains("building markupsafe"), "{stderr}");
    assert_eq!(shared["digest"], report["digest"]);
}

/// The cache `from` copied to `to`, except zip files (wheels) in its blob store and the
/// interpreters it unpacked (made again from the base's layers).
fn copy_tree_without_wheels(from: &Path, to: &Path) {
    for file in files_under(from) {
        let relative = file.strip_prefix(from).unwrap();
        if relative.starts_with("interpreters") {
            continue;
        }
        let mut magic = [0u8; 4];
        let is_zip =
            std::io::Read::read_exact(&mut std::fs::File::open(&file).unwrap(), &mut magic).is_ok()
                && &magic == b"PK\x03\x04";
        if relative.starts_with("blobs") && is_zip {
            continue;
        }
        let dest = to.join(relative);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&file, dest).unwrap();
    }
}

/// psycopg2 from its sdist: without libpq-dev in the builder the build fails with the end of
/// its log; with it, the extension links libpq.so.5, which the slim base lacks, and the
/// shared-library check stops the build, naming libpq5 (from the suite's Contents index); with
/// libpq5 in the base, the image imports it.
#[test]
fn a_builder_missing_headers_and_a_base_missing_the_library_are_both_explained() {
    if services_missing() {
        return;
    }
    let project = fixture("sdist-app", false);
    let pyproject = project.path("pyproject.toml");
    let text = std::fs::read_to_string(&pyproject)
        .unwrap()
        .replace(
            r#"dependencies = ["markupsafe==2.0.1", "docopt==0.6.2"]"#,
            r#"dependencies = ["psycopg2==2.9.9"]"#,
        )
        .replace(r#"smoke = ["sdist-app"]"#, "");
    std::fs::write(&pyproject, &text).unwrap();
    uv_lock(&project.dir);
    let cache = project.tmp.path().join("cache");
    let tar = project.tmp.path().join("image.tar");
    let out = format!("docker:{}", tar.display());

    let stderr = failed(build(&project, &cache, &out, &[]));
    assert!(
        stderr.contains(
            "error: building psycopg2 2.9.9 from psycopg2-2.9.9.tar.gz in lockship-builder:"
        ) && stderr.contains("pg_config")
            && stderr.contains("hint: the builder lacks what the build needs"),
        "{stderr}"
    );
    assert!(!tar.exists());

    std::fs::write(
        &pyproject,
        format!("{text}\n[tool.lockship.builder]\npackages = [\"libpq-dev\"]\n"),
    )
    .unwrap();
    let stderr = failed(build(&project, &cache, &out, &[]));
    assert!(
        stderr.contains("error: psycopg2 2.9.9: psycopg2/_psycopg.cpython-311-x86_64-linux-gnu.so needs libpq.so.5, which is in no wheel of the image and not in the base's library directories (Debian package libpq5 provides it)\n")
            && stderr.contains("hint: add libpq5 to `packages` in [tool.lockship.base]"),
        "{stderr}"
    );
    assert!(!tar.exists());

    std::fs::write(
        &pyproject,
        format!("{text}\n[tool.lockship.builder]\npackages = [\"libpq-dev\"]\n").replace(
            r#"packages = ["python3"]"#,
            r#"packages = ["python3", "libpq5"]"#,
        ),
    )
    .unwrap();
    let tag = format!("{}:1", unique("psycopg2"));
    ok(build(&project, &cache, &out, &["--tag", &tag]));
    docker_load(&tar);
    assert_eq!(
        docker_run(
            &tag,
            Some("/opt/venv/bin/python"),
            &[
                "-c",
                "import psycopg2; print(psycopg2.__version__.split()[0])"
            ]
        )
        .trim(),
        "2.9.9"
    );
    docker(&["rmi", &tag]);
}

/// A registry base has no suite to assemble a builder from: the builder image must be named,
/// and one that cannot be pulled says so.
#[test]
fn a_registry_base_needs_a_named_builder_image() {
    if services_missing() {
        return;
    }
    let env = env();
    let project = fixture("sdist-app", true);
    let cache = project.tmp.path().join("cache");
    let out = format!("oci:{}", project.tmp.path().join("img.oci").display());
    let no_image = format!(
        "error: docopt 0.6.2 has no wheel for cp311-manylinux_2_36_x86_64, and building its sdist needs a builder image: [tool.lockship.builder] image is not set in {}",
        project.path("pyproject.toml").display()
    );
    let stderr = failed(build(&project, &cache, &out, &["--base", &env.base]));
    assert!(
        stderr.contains(&no_image)
            && stderr.contains("hint: name an image with compilers and the base's Python"),
        "{stderr}"
    );
    // A dry run fails the same way, rather than planning a build that cannot happen.
    let stderr = failed(build(
        &project,
        &cache,
        &out,
        &["--base", &env.base, "--dry-run"],
    ));
    assert!(stderr.contains(&no_image), "{stderr}");
    let pyproject = project.path("pyproject.toml");
    let text = std::fs::read_to_string(&pyproject).unwrap();
    let missing = format!("{}/tests/no-such-builder:1", env.registry);
    std::fs::write(
        &pyproject,
        format!("{text}\n[tool.lockship.builder]\nimage = \"{missing}\"\n"),
    )
    .unwrap();
    let stderr = failed(build(&project, &cache, &out, &["--base", &env.base]));
    // The runtime's failure to pull it is not the build's: no "-dev packages" advice.
    assert!(
        stderr.contains(&format!("cannot start the builder image {missing}: "))
            && stderr.contains(&format!("pull {missing}` works"))
            && !stderr.contains("-dev packages"),
        "{stderr}"
    );
    assert!(!project.tmp.path().join("img.oci").exists());
}

/// An app with its own C extension: the wheel built on this machine (by its Python, for it)
/// is not what goes in; the builder builds the app from its sources for the image's Python.
#[test]
fn an_app_with_extension_modules_is_built_in_the_builder() {
    if services_missing() {
        return;
    }
    let project = fixture("native-app", true);
    let cache = project.tmp.path().join("cache");
    let tar = project.tmp.path().join("image.tar");
    let out = format!("docker:{}", tar.display());
    let tag = format!("{}:1", unique("native-app"));
    let (_, stderr) = ok(build(&project, &cache, &out, &["--tag", &tag]));
    assert!(
        stderr.contains("has extension modules: building native-app in the builder for cp311"),
        "{stderr}"
    );
    docker_load(&tar);
    assert_eq!(
        docker_run(&tag, None, &[]).trim(),
        "native-app: 6*7=42 built for 3.11.2 running 3.11"
    );
    docker(&["rmi", &tag]);
    // Unchanged: the app layer comes from the cache, no builder runs.
    let (report, again) = ok(build(&project, &cache, &out, &[]));
    assert!(!again.contains("in the builder"), "{again}");
    assert!(
        report["layers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["built"] == false),
        "{report}"
    );
}
