//! The local cache as users manage it: two builds sharing one empty cache at once both succeed
//! with the same digest; `lockship cache info` shows what it holds; `lockship cache prune`
//! removes what is old or over the size asked for, and the next build still works.

mod support;

use std::process::Stdio;

use support::*;

#[test]
fn two_builds_share_one_empty_cache_at_once() {
    if services_missing() {
        return;
    }
    let env = env();
    let project = fixture("hello-cli", true);
    let cache = tempfile::tempdir().unwrap();
    let start = |n: u32| {
        let tar = project.tmp.path().join(format!("img{n}.tar"));
        lockship(cache.path())
            .arg("build")
            .arg(&project.dir)
            .args(["--base", &env.base, "--no-test", "--format", "json"])
            .arg("--output")
            .arg(format!("docker:{}", tar.display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (start(1), start(2));
    let digest = |child: std::process::Child| {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        json(&String::from_utf8_lossy(&out.stdout))["digest"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (a, b) = (digest(a), digest(b));
    assert_eq!(a, b);
    // And a third, alone, on what the two left: the same image, nothing written.
    let again = json(&run_ok(
        lockship(cache.path())
            .arg("build")
            .arg(&project.dir)
            .args(["--base", &env.base, "--no-test", "--format", "json"])
            .arg("--output")
            .arg(format!("oci:{}", project.tmp.path().join("oci").display())),
    ));
    assert_eq!(again["digest"], a.as_str());
    assert!(temp_leftovers(cache.path()).is_empty());
}

#[test]
fn info_and_prune_on_a_real_cache() {
    if services_missing() {
        return;
    }
    let env = env();
    let project = fixture("hello-cli", true);
    let cache = tempfile::tempdir().unwrap();
    let out = format!("oci:{}", project.tmp.path().join("oci").display());
    let build = || {
        json(&run_ok(
            lockship(cache.path())
                .arg("build")
                .arg(&project.dir)
                .args(["--base", &env.base, "--no-test", "--format", "json"])
                .args(["--output", &out]),
        ))
    };
    let first = build();
    let info = json(&run_ok(
        lockship(cache.path())
            .args(["cache", "info", "--format", "json", "--cache-dir"])
            .arg(cache.path()),
    ));
    let kind = |info: &serde_json::Value, k: &str| {
        info["kinds"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["kind"] == k)
            .unwrap()["bytes"]
            .as_u64()
            .unwrap()
    };
    assert!(kind(&info, "blobs") > 1 << 20, "{info}");
    assert!(kind(&info, "layers") > 0);
    assert!(kind(&info, "app-wheels") > 0);
    let total = info["total_bytes"].as_u64().unwrap();

    // Nothing is old yet: an age limit removes nothing a build just used.
    let kept = json(&run_ok(
        lockship(cache.path())
            .args([
                "cache",
                "prune",
                "--older-than",
                "1",
                "--format",
                "json",
                "--cache-dir",
            ])
            .arg(cache.path()),
    ));
    assert_eq!(kept["removed_bytes"], 0, "{kept}");

    // A size limit removes the least recently used until the cache fits.
    let pruned = json(&run_ok(
        lockship(cache.path())
            .args([
                "cache",
                "prune",
                "--max-size",
                "1M",
                "--format",
                "json",
                "--cache-dir",
            ])
            .arg(cache.path()),
    ));
    assert!(
        pruned["left_bytes"].as_u64().unwrap() <= 1 << 20,
        "{pruned}"
    );
    assert!(pruned["removed_bytes"].as_u64().unwrap() >= total - (1 << 20));
    // The next build fetches and writes what it needs again: the same image.
    let again = build();
    assert_eq!(again["digest"], first["digest"]);
}

/// The image's /etc/passwd as a container sees it, from the OCI layout at `dir`.
fn passwd_of(dir: &std::path::Path) -> String {
    String::from_utf8(layout_file(dir, "etc/passwd").expect("the image has /etc/passwd")).unwrap()
}

#[test]
fn two_bases_with_one_python_do_not_share_the_runtime_layer() {
    if services_missing() {
        return;
    }
    // hello-cli's own Debian-package base and the test's registry base are both bookworm with
    // Python 3.11: one target, but each has its own /etc/passwd, which the runtime layer extends.
    let project = fixture("hello-cli", true);
    let cache = tempfile::tempdir().unwrap();
    let debian = project.tmp.path().join("debian.oci");
    let registry = project.tmp.path().join("registry.oci");
    run_ok(
        lockship(cache.path())
            .arg("build")
            .arg(&project.dir)
            .arg("--output")
            .arg(format!("oci:{}", debian.display())),
    );
    run_ok(
        lockship(cache.path())
            .arg("build")
            .arg(&project.dir)
            .args(["--base", &env().base, "--output"])
            .arg(format!("oci:{}", registry.display())),
    );
    let (on_debian, on_registry) = (passwd_of(&debian), passwd_of(&registry));
    assert!(on_debian.contains("nonroot:x:65532:") && on_registry.contains("nonroot:x:65532:"));
    // The registry base's own accounts stay in its image, and only there.
    assert!(on_registry.contains("\ndaemon:x:1:1:"), "{on_registry}");
    assert!(!on_debian.contains("\ndaemon:"), "{on_debian}");
}
