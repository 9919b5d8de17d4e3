//! The distroless base built from Debian packages: real signed indexes and .debs from the
//! host's Debian mirror, images run by the real Docker engine with no network. Bad input:
//! unknown package or suite, a keyring that did not sign the suite, a tampered index served
//! from a loopback mirror, a .deb whose hash differs from the lock.

mod support;

use std::path::Path;
use std::process::{Child, Command};

use support::*;

fn build_to_tar(
    project: &Project,
    cache: &Path,
    extra: &[&str],
) -> (serde_json::Value, std::path::PathBuf) {
    let tar = project.tmp.path().join("img.tar");
    let report = json(&run_ok(
        lockship(cache)
            .arg("build")
            .arg(&project.dir)
            .args(["--format", "json"])
            .args(extra)
            .arg("--output")
            .arg(format!("docker:{}", tar.display())),
    ));
    (report, tar)
}

/// What the issue asks of the base: Python starts, the stdlib's C modules import, the user is
/// not root, certificates verify, the image is distroless, scanners see the packages.
const CHECKS: &str = r#"
import ctypes, os, sqlite3, ssl, zlib
ctx = ssl.create_default_context()
assert ctx.cert_store_stats()["x509"] > 100, ctx.cert_store_stats()
assert os.getuid() != 0
assert "VERSION_CODENAME=bookworm" in open("/etc/os-release").read()
assert not os.path.exists("/bin/sh") and not os.path.exists("/usr/bin/apt")
assert "Package: python3.11" in open("/var/lib/dpkg/status.d/python3.11").read()
ctypes.CDLL("libc.so.6")
# The standard library's pycs are in the image (Debian's py3compile never ran; nothing writes
# them at run time): json was imported from one (os is frozen into the interpreter).
import json
assert os.path.exists(json.__cached__), json.__cached__
print("checks ok", sqlite3.sqlite_version, zlib.ZLIB_VERSION)
"#;

#[test]
fn fixtures_run_on_a_debian_base_with_no_registry() {
    if services_missing() {
        return;
    }
    let cache = shared_cache();
    for (name, expected) in [
        ("hello-cli", "Hello, debian! (click 8.2.1, rich rich)"),
        ("data-app", "rows=10 total=285 numpy=2.2.6 pandas=2.2.3"),
    ] {
        let project = fixture(name, true);
        let tag = format!("{}:1", unique(name));
        let (report, tar) = build_to_tar(&project, &cache, &["--tag", &tag]);
        assert!(
            report["base"]
                .as_str()
                .unwrap()
                .starts_with("debian:bookworm ("),
            "{report}"
        );
        assert!(
            project.path("lockship-base.lock").is_file(),
            "the base lock is written next to the project's"
        );
        docker_load(&tar);
        let args: &[&str] = if name == "hello-cli" {
            &["debian"]
        } else {
            &[]
        };
        assert_eq!(docker_run(&tag, None, args).trim(), expected);
        let checks = docker_run(&tag, Some("/opt/venv/bin/python"), &["-c", CHECKS]);
        assert!(checks.starts_with("checks ok "), "{checks}");
    }
}

#[test]
fn debian_base_is_reproducible_and_reused_warm() {
    if services_missing() {
        return;
    }
    let first = fixture("hello-cli", true);
    let cold = tempfile::tempdir().unwrap();
    let (a, _) = build_to_tar(&first, cold.path(), &[]);
    assert_eq!(a["layers"][0]["built"], true);

    // Another directory, another fresh cache, the same base lock: the same image.
    let second = fixture("hello-cli", true);
    std::fs::copy(
        first.path("lockship-base.lock"),
        second.path("lockship-base.lock"),
    )
    .unwrap();
    let other = tempfile::tempdir().unwrap();
    let (b, _) = build_to_tar(&second, other.path(), &[]);
    assert_eq!(a["digest"], b["digest"]);
    assert_eq!(
        b["base_changes"].as_array().unwrap().len(),
        0,
        "a matching lock is used as is"
    );

    // Warm: the base layer comes from the cache.
    let (c, _) = build_to_tar(&second, other.path(), &[]);
    assert_eq!(c["layers"][0]["built"], false);
    assert_eq!(c["digest"], b["digest"]);
}

#[test]
fn upgrade_base_reresolves_and_shows_what_changed() {
    if services_missing() {
        return;
    }
    let project = fixture("hello-cli", true);
    let cache = shared_cache();
    build_to_tar(&project, &cache, &[]);
    let lock = std::fs::read_to_string(project.path("lockship-base.lock")).unwrap();
    let at = lock.find("name = \"media-types\"").unwrap();
    let v = at + lock[at..].find("version = \"").unwrap() + "version = \"".len();
    let end = v + lock[v..].find('"').unwrap();
    let real = lock[v..end].to_string();
    std::fs::write(
        project.path("lockship-base.lock"),
        format!("{}9.0.0{}", &lock[..v], &lock[end..]),
    )
    .unwrap();

    let out = lockship(&cache)
        .arg("build")
        .arg(&project.dir)
        .args(["--upgrade-base", "--dry-run"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("lockship: base lock updated (1 change):"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("media-types 9.0.0 → {real}")),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(project.path("lockship-base.lock")).unwrap(),
        lock
    );
}

fn failing(project: &Project, cache: &Path) -> String {
    let out = run_err(
        lockship(cache)
            .arg("build")
            .arg(&project.dir)
            .arg("--output")
            .arg(format!(
                "docker:{}",
                project.tmp.path().join("out.tar").display()
            )),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(!project.tmp.path().join("out.tar").exists());
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn unknown_package_and_suite_and_foreign_keyring() {
    if services_missing() {
        return;
    }
    let cache = shared_cache();
    let project = fixture("hello-cli", true);
    set_debian_base(
        &project,
        "debian = \"bookworm\"\npackages = [\"python3\", \"no-such-package-xyz\"]\n",
    );
    let err = failing(&project, &cache);
    assert_eq!(
        err.lines().next().unwrap(),
        "error: Debian package `no-such-package-xyz` does not exist in bookworm/amd64"
    );
    assert!(
        err.contains("hint: check `packages` in [tool.lockship.base]"),
        "{err}"
    );
    assert!(
        !project.path("lockship-base.lock").exists(),
        "no lock for a failed resolution"
    );

    set_debian_base(
        &project,
        "debian = \"no-such-suite\"\npackages = [\"python3\"]\n",
    );
    let err = failing(&project, &cache);
    assert!(
        err.starts_with("error: suite `no-such-suite` not found on "),
        "{err}"
    );
    assert!(err.contains("hint: check `debian`"), "{err}");

    // Keys Debian retired sign nothing current: the signature must not verify.
    set_debian_base(
        &project,
        "debian = \"bookworm\"\npackages = [\"python3\"]\nkeyring = \"/usr/share/keyrings/debian-archive-removed-keys.gpg\"\n",
    );
    let err = failing(&project, &cache);
    let line = err.lines().next().unwrap();
    assert!(line.starts_with("error: ") && line.contains("/dists/bookworm/InRelease: the OpenPGP signature does not verify against /usr/share/keyrings/debian-archive-removed-keys.gpg"), "{err}");
}

#[test]
fn tampered_deb_is_refused_and_not_cached() {
    if services_missing() {
        return;
    }
    let project = fixture("hello-cli", true);
    build_to_tar(&project, &shared_cache(), &["--dry-run"]);
    let lock = std::fs::read_to_string(project.path("lockship-base.lock")).unwrap();
    let at = lock.find("name = \"media-types\"").unwrap();
    let h = at + lock[at..].find("sha256 = \"").unwrap() + "sha256 = \"".len();
    let real = lock[h..h + 64].to_string();
    let fake = "0".repeat(64);
    std::fs::write(
        project.path("lockship-base.lock"),
        format!("{}{fake}{}", &lock[..h], &lock[h + 64..]),
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let err = failing(&project, cache.path());
    let line = err.lines().next().unwrap();
    assert!(
        line.starts_with("error: cannot download Debian package media-types 10.0.0: "),
        "{err}"
    );
    assert!(
        line.ends_with(&format!("content is sha256:{real}, expected sha256:{fake}")),
        "{err}"
    );
    assert!(
        err.contains("hint: the mirror served a file whose hash differs"),
        "{err}"
    );
    let blobs = cache.path().join("blobs/sha256");
    assert!(!blobs.join(&real).exists() && !blobs.join(&fake).exists());
}

/// A loopback HTTP server over `dir`, killed (by PID) when dropped.
struct Mirror {
    child: Child,
    url: String,
}

impl Drop for Mirror {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &Path) -> Mirror {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // The guard exists before any wait, so a failed start still kills the server.
    let mirror = Mirror {
        child: Command::new("python3")
            .args([
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
                "--directory",
            ])
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
        url: format!("http://127.0.0.1:{port}"),
    };
    for _ in 0..100 {
        let up = Command::new("curl")
            .args(["-fs", "-o", "/dev/null", &format!("{}/", mirror.url)])
            .status()
            .unwrap();
        if up.success() {
            return mirror;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("loopback mirror did not start");
}

#[test]
fn tampered_indexes_from_a_mirror_are_refused() {
    if services_missing() {
        return;
    }
    // A loopback mirror serving the real, signed InRelease of the host's mirror, then a forged one.
    let upstream = lockship_debian::mirror::from_apt_sources(Path::new("/"), "bookworm")
        .expect("the host has Debian apt sources");
    let root = tempfile::tempdir().unwrap();
    let dists = root.path().join("dists/bookworm");
    std::fs::create_dir_all(dists.join("main/binary-amd64")).unwrap();
    run_ok(
        Command::new("curl")
            .args(["-fsS", "-o"])
            .arg(dists.join("InRelease"))
            .arg(format!("{upstream}/dists/bookworm/InRelease")),
    );
    // The signed index vouches for Packages.gz by hash: serve different bytes under its name.
    std::fs::write(
        dists.join("main/binary-amd64/Packages.gz"),
        b"not the signed index",
    )
    .unwrap();
    let mirror = serve(root.path());

    let project = fixture("hello-cli", true);
    set_debian_base(
        &project,
        &format!(
            "debian = \"bookworm\"\npackages = [\"python3\"]\nmirror = \"{}\"\n",
            mirror.url
        ),
    );
    let cache = tempfile::tempdir().unwrap();
    let err = failing(&project, cache.path());
    let line = err.lines().next().unwrap();
    assert!(
        line.starts_with(&format!("error: cannot download the bookworm package index: {}/dists/bookworm/main/binary-amd64/Packages.gz: content is sha256:", mirror.url)),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(cache.path().join("blobs/sha256"))
            .unwrap()
            .count(),
        0,
        "nothing unverified cached"
    );

    // One changed byte in the signed text: the signature no longer verifies.
    let text = std::fs::read_to_string(dists.join("InRelease")).unwrap();
    std::fs::write(
        dists.join("InRelease"),
        text.replacen("Codename: bookworm", "Codename: bookwork", 1),
    )
    .unwrap();
    let err = failing(&project, cache.path());
    assert_eq!(
        err.lines().next().unwrap(),
        format!(
            "error: {}/dists/bookworm/InRelease: the OpenPGP signature does not verify against /usr/share/keyrings/debian-archive-keyring.gpg",
            mirror.url
        )
    );
    assert!(!project.path("lockship-base.lock").exists());
}

#[test]
fn arm64_base_and_wheels_without_emulation() {
    if services_missing() {
        return;
    }
    let project = fixture("data-app", true);
    let oci = project.tmp.path().join("arm.oci");
    let report = json(&run_ok(
        lockship(&shared_cache())
            .arg("build")
            .arg(&project.dir)
            .args(["--platform", "linux/arm64", "--format", "json"])
            .arg("--output")
            .arg(format!("oci:{}", oci.display())),
    ));
    assert_eq!(report["target"]["architecture"], "arm64");
    let lock = std::fs::read_to_string(project.path("lockship-base.lock")).unwrap();
    assert!(
        lock.contains("architecture = \"arm64\"") && lock.contains("libc6_2.36"),
        "{lock}"
    );
    assert!(lock.contains("_arm64.deb\""), "arm64 packages are locked");
    let numpy = report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|l| l["description"].as_str().filter(|d| d.contains("numpy ")))
        .unwrap()
        .to_string();
    assert!(numpy.contains("aarch64.whl"), "{numpy}");
    let inspect = json(&run_ok(
        Command::new("skopeo").args(["inspect", &format!("oci:{}:0.1.0", oci.display())]),
    ));
    assert_eq!(inspect["Architecture"], "arm64");
    // Bytecode for arm64, compiled by the amd64 variant of the same Debian Python.
    let layers = layout_layers(&oci);
    assert!(layers.iter().flatten().any(|(p, head)| p
        .ends_with("site-packages/numpy/__pycache__/__init__.cpython-311.pyc")
        && head[4..8] == [1, 0, 0, 0]));
}

#[test]
fn trixie_base_brings_python_3_13() {
    if services_missing() {
        return;
    }
    let project = fixture("hello-cli", true);
    set_debian_base(&project, "debian = \"trixie\"\npackages = [\"python3\"]\n");
    let tag = format!("{}:1", unique("trixie"));
    let (report, tar) = build_to_tar(&project, &shared_cache(), &["--tag", &tag]);
    assert_eq!(report["target"]["version"][1], 13, "{}", report["target"]);
    docker_load(&tar);
    assert!(docker_run(&tag, None, &["trixie"]).contains("Hello, trixie!"));
    let version = docker_run(
        &tag,
        Some("/opt/venv/bin/python"),
        &["-c", "import sys, ssl; print(sys.version_info[:2])"],
    );
    assert_eq!(version.trim(), "(3, 13)");
}

#[test]
fn debs_compressed_with_gzip_zstd_and_xz_unpack() {
    if services_missing() {
        return;
    }
    for compression in ["gzip", "zstd", "xz"] {
        let dir = tempfile::tempdir().unwrap();
        let pkg = dir.path().join("pkg");
        std::fs::create_dir_all(pkg.join("DEBIAN")).unwrap();
        std::fs::create_dir_all(pkg.join("lib/demo")).unwrap();
        std::fs::write(
            pkg.join("DEBIAN/control"),
            "Package: demo\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@t>\nDescription: demo\n",
        )
        .unwrap();
        std::fs::write(pkg.join("lib/demo/data.txt"), compression).unwrap();
        std::os::unix::fs::symlink("data.txt", pkg.join("lib/demo/link")).unwrap();
        let deb = dir.path().join("demo.deb");
        run_ok(
            Command::new("dpkg-deb")
                .args(["--root-owner-group", &format!("-Z{compression}"), "--build"])
                .arg(&pkg)
                .arg(&deb),
        );
        let root = dir.path().join("root");
        lockship_debian::deb::unpack(&deb, "demo", &root, None).unwrap();
        // Merged /usr: lib/ lands in usr/lib/.
        assert_eq!(
            std::fs::read_to_string(root.join("usr/lib/demo/data.txt")).unwrap(),
            compression
        );
        assert_eq!(
            std::fs::read_link(root.join("usr/lib/demo/link")).unwrap(),
            Path::new("data.txt")
        );
    }
}

/// The suite's -updates and -security archives (from the host's apt sources, like apt): the
/// newest versions win and the lock says which archive each package came from; `exclude`
/// drops dpkg and what only it pulls in, and refuses what the rest needs; a pinned .deb the
/// archive dropped is named, with the way out.
#[test]
fn security_archive_exclusions_and_a_dropped_version() {
    if services_missing() {
        return;
    }
    let project = fixture("hello-cli", true);
    set_debian_base(
        &project,
        "debian = \"bookworm\"\npackages = [\"python3\"]\nexclude = [\"dpkg\"]\n",
    );
    let cache = shared_cache();
    let tag = format!("{}:1", unique("slim"));
    let (_, tar) = build_to_tar(&project, &cache, &["--tag", &tag]);
    let lock = std::fs::read_to_string(project.path("lockship-base.lock")).unwrap();
    assert!(lock.contains("archive = \"bookworm\""), "{lock}");
    assert!(
        lock.contains("archive = \"bookworm-security\""),
        "bookworm has security updates to packages python3 needs: {lock}"
    );
    assert!(lock.contains("exclude = [\"dpkg\"]"), "{lock}");
    for gone in ["name = \"dpkg\"", "name = \"tar\""] {
        assert!(!lock.contains(gone), "{gone} is still in: {lock}");
    }
    docker_load(&tar);
    assert_eq!(
        docker_run(&tag, None, &["debian"]).trim(),
        "Hello, debian! (click 8.2.1, rich rich)"
    );
    let checks = docker_run(&tag, Some("/opt/venv/bin/python"), &["-c", CHECKS]);
    assert!(checks.starts_with("checks ok "), "{checks}");
    docker(&["rmi", &tag]);

    // An exclusion the interpreter cannot do without.
    set_debian_base(
        &project,
        "debian = \"bookworm\"\npackages = [\"python3\"]\nexclude = [\"libc6\"]\n",
    );
    let err = failing(&project, &cache);
    let line = err.lines().next().unwrap();
    assert!(
        line.starts_with("error: exclude = [\"libc6\"] would break ")
            && line.ends_with(", which Pre-Depends on it"),
        "{err}"
    );
    assert!(
        err.contains("hint: remove it from `exclude` in [tool.lockship.base]"),
        "{err}"
    );

    // A pinned version the archive no longer serves (as after a point release).
    set_debian_base(
        &project,
        "debian = \"bookworm\"\npackages = [\"python3\"]\nexclude = [\"dpkg\"]\n",
    );
    // media-types' entry, moved to a version the archive does not have (and a hash to match).
    let at = lock.find("name = \"media-types\"").unwrap();
    let end = at + lock[at..].find("[[package]]").unwrap_or(lock.len() - at);
    let mut entry = lock[at..end].replace("10.0.0", "9.9.9");
    let h = entry.find("sha256 = \"").unwrap() + "sha256 = \"".len();
    entry.replace_range(h..h + 64, &"1".repeat(64));
    std::fs::write(
        project.path("lockship-base.lock"),
        format!("{}{entry}{}", &lock[..at], &lock[end..]),
    )
    .unwrap();
    let cold = tempfile::tempdir().unwrap();
    let err = failing(&project, cold.path());
    let line = err.lines().next().unwrap();
    assert!(
        line.starts_with("error: Debian package media-types 9.9.9 is no longer on ")
            && line.ends_with(" (bookworm): the archive dropped that version"),
        "{err}"
    );
    assert!(
        err.contains("hint: run `lockship build --upgrade-base`"),
        "{err}"
    );
}
