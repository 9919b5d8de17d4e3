//! lockship against a package index it cannot trust: a loopback PEP 691 index (requiring basic
//! auth where a test says so) serving wheels each test crafts. Credentials must reach the
//! index's own host and nothing else, never show in a message, and every dishonest wheel must
//! be refused with one line naming it, leaving no image behind.

mod support;

use std::path::Path;

use support::servers::StaticServer;
use support::wheels::{overlapping_bomb, WheelBuilder};
use support::*;

const USER: &str = "ci-reader";
const PASSWORD: &str = "pw-9f3e-SECRET";

fn build(project: &Path, cache: &Path, extra: &[&str]) -> std::process::Output {
    let env = env();
    let out = project.parent().unwrap().join("out.tar");
    lockship(cache)
        .env("LOCKSHIP_HTTP_RETRIES", "1")
        .arg("build")
        .arg(project)
        .args(["--base", &env.base])
        .args(extra)
        .arg("--output")
        .arg(format!("docker:{}", out.display()))
        .output()
        .unwrap()
}

/// A build that must fail: exit 1, one `error:` line (returned) that names `wheel`, no image,
/// no temporary file, no cache path in the message.
fn refused(project: &Path, wheel: &str) -> String {
    let cache = tempfile::tempdir().unwrap();
    let output = build(project, cache.path(), &[]);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        !project.parent().unwrap().join("out.tar").exists(),
        "an image was written"
    );
    let line = stderr.lines().next().unwrap().to_string();
    assert!(line.starts_with("error: "), "{stderr}");
    assert!(line.contains(wheel), "the error names the wheel: {stderr}");
    assert!(!stderr.contains("blobs/sha256"), "a cache path: {stderr}");
    assert!(temp_leftovers(cache.path()).is_empty());
    assert!(temp_leftovers(project.parent().unwrap()).is_empty());
    line
}

#[test]
fn a_private_index_gets_its_credentials_and_no_other_host_does() {
    if services_missing() {
        return;
    }
    let index = StaticServer::start(Some((USER, PASSWORD)));
    let cdn = StaticServer::start(None);
    let tiny = WheelBuilder::new("tiny", "1.0").build();
    let url = format!("http://{USER}:{PASSWORD}@{}/simple/", index.addr());
    let project = index_project(&index, &url, &[("tiny", "1.0", tiny)]);
    // A second package whose file the index hands to another host (a CDN).
    let far = WheelBuilder::new("far", "2.0").build();
    publish(
        &index,
        "far",
        &[("far-2.0-py3-none-any.whl", far.as_slice())],
        Some(&cdn),
    );
    let requirements = std::fs::read_to_string(project.path("requirements.txt")).unwrap();
    std::fs::write(
        project.path("requirements.txt"),
        format!(
            "{requirements}far==2.0 --hash={}\n",
            lockship_oci::digest::Digest::of_bytes(&far)
        ),
    )
    .unwrap();
    let pyproject = std::fs::read_to_string(project.path("pyproject.toml")).unwrap();
    std::fs::write(
        project.path("pyproject.toml"),
        pyproject.replace("[\"tiny==1.0\"]", "[\"tiny==1.0\", \"far==2.0\"]"),
    )
    .unwrap();
    std::fs::write(
        project.path("main.py"),
        "import tiny, far; print(tiny.GREETING, far.GREETING)\n",
    )
    .unwrap();

    let cache = tempfile::tempdir().unwrap();
    let name = unique("private-index");
    let tag = format!("{name}:1");
    let output = build(&project.dir, cache.path(), &["--verbose", "--tag", &tag]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    docker_load(&project.tmp.path().join("out.tar"));
    assert_eq!(
        docker_run(&format!("{name}:1"), None, &[]).trim(),
        "hello from tiny hello from far"
    );

    let expected = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{USER}:{PASSWORD}")
        )
    );
    let at_index = index.log();
    assert!(
        at_index.iter().any(|r| r.path.starts_with("/files/tiny")),
        "the wheel came from the index's own host: {at_index:?}"
    );
    assert!(
        at_index
            .iter()
            .all(|r| r.authorization.as_deref() == Some(expected.as_str())),
        "every request to the index carried its credentials: {at_index:?}"
    );
    let at_cdn = cdn.log();
    assert!(!at_cdn.is_empty());
    assert!(
        at_cdn.iter().all(|r| r.authorization.is_none()),
        "credentials went to another host: {at_cdn:?}"
    );
    assert!(!stderr.contains(PASSWORD));
    for file in files_under(cache.path()) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes
                .windows(PASSWORD.len())
                .any(|w| w == PASSWORD.as_bytes()),
            "the password is in {}",
            file.display()
        );
    }
}

#[test]
fn index_errors_show_no_password() {
    if services_missing() {
        return;
    }
    let index = StaticServer::start(Some((USER, PASSWORD)));
    let tiny = WheelBuilder::new("tiny", "1.0").build();
    let cases = [
        // Nothing listens on port 1: unreachable.
        (
            format!("http://{USER}:{PASSWORD}@127.0.0.1:1/simple/"),
            None,
            "error: cannot look up tiny on the package index: http://ci-reader:****@127.0.0.1:1/simple/tiny/: ",
        ),
        // The right host, a page that is not there.
        (
            format!("http://{USER}:{PASSWORD}@{}/other/", index.addr()),
            None,
            "/other/tiny/: HTTP 404 Not Found",
        ),
        // A page whose files do not match the lock's hash.
        (
            format!("http://{USER}:{PASSWORD}@{}/simple/", index.addr()),
            Some(WheelBuilder::new("tiny", "1.0").file("tiny/x.py", b"").build()),
            "tiny 1.0: no file on http://ci-reader:****@127.0.0.1:",
        ),
    ];
    for (url, served_instead, expected) in cases {
        let project = index_project(&index, &url, &[("tiny", "1.0", tiny.clone())]);
        if let Some(other) = served_instead {
            publish(
                &index,
                "tiny",
                &[("tiny-1.0-py3-none-any.whl", other.as_slice())],
                None,
            );
        }
        let cache = tempfile::tempdir().unwrap();
        let output = build(&project.dir, cache.path(), &[]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(expected), "{url}: {stderr}");
        assert!(!stderr.contains(PASSWORD), "{stderr}");
        assert!(!String::from_utf8_lossy(&output.stdout).contains(PASSWORD));
    }
}

/// A project on a fresh, open index serving `wheel` as evil 1.0.
fn evil_project(wheel: Vec<u8>) -> (StaticServer, Project) {
    let index = StaticServer::start(None);
    let url = format!("http://{}/simple/", index.addr());
    let project = index_project(&index, &url, &[("evil", "1.0", wheel)]);
    (index, project)
}

const EVIL: &str = "evil-1.0-py3-none-any.whl";

#[test]
fn a_chain_of_symlinks_cannot_climb_out_of_site_packages() {
    if services_missing() {
        return;
    }
    // Each link alone stays inside the wheel; followed one after another they reach `/`
    // (site-packages is five levels deep), and the file under the last would land in /etc.
    let mut wheel = WheelBuilder::new("evil", "1.0").symlink("evil/l1", "..");
    for i in 2..=7 {
        wheel = wheel.symlink(&format!("evil/l{i}"), &format!("l{}/..", i - 1));
    }
    let (_index, project) =
        evil_project(wheel.clone().file("evil/l7/etc/motd", b"owned\n").build());
    let line = refused(&project.dir, EVIL);
    assert!(
        line.contains("evil/l7/etc/motd goes through the symlink evil/l7"),
        "{line}"
    );
    // Without the file, the chain itself is refused.
    let (_index, project) = evil_project(wheel.build());
    let line = refused(&project.dir, EVIL);
    assert!(line.contains("climbs out of the wheel"), "{line}");
}

#[test]
fn zip_bombs_are_refused_before_anything_is_written() {
    if services_missing() {
        return;
    }
    // ~260 KB that claim 4 GiB: sixteen entries sharing one stream of 256 MiB of zeros.
    let bomb = overlapping_bomb("evil", 256 << 20, 16);
    assert!(bomb.len() < 400 << 10, "{} bytes", bomb.len());
    let (_index, project) = evil_project(bomb);
    let line = refused(&project.dir, EVIL);
    // Caught by the expansion budget (4 GiB claimed from 260 KB); had the claim been modest,
    // the entries sharing one stream would have been (python::wheel's unit tests).
    assert!(
        line.contains("-byte archive") || line.contains("share compressed data"),
        "{line}"
    );
    assert!(line.contains("zip bomb"), "{line}");
}

#[test]
fn wheels_that_would_make_an_unpullable_image_are_refused() {
    if services_missing() {
        return;
    }
    let cases = [
        (
            WheelBuilder::new("evil", "1.0")
                .file("evil/x", b"a file")
                .file("evil/x/y.py", b"and a directory"),
            "evil/x is a file and also holds evil/x/y.py".to_string(),
        ),
        (
            WheelBuilder::new("evil", "1.0").file(&format!("evil/{}.py", "n".repeat(300)), b""),
            "a file name of 303 bytes".to_string(),
        ),
    ];
    for (wheel, expected) in cases {
        let (_index, project) = evil_project(wheel.build());
        let line = refused(&project.dir, EVIL);
        assert!(line.contains(&expected), "{line}");
    }
}

#[test]
fn files_record_does_not_vouch_for_are_refused() {
    if services_missing() {
        return;
    }
    let mut unlisted = WheelBuilder::new("evil", "1.0").file("evil/extra.py", b"x = 1\n");
    unlisted.unlisted.push("evil/extra.py".into());
    let (_index, project) = evil_project(unlisted.build());
    let line = refused(&project.dir, EVIL);
    assert!(
        line.ends_with("evil/extra.py is not listed in RECORD"),
        "{line}"
    );

    let mut altered = WheelBuilder::new("evil", "1.0");
    altered.misrecorded.push("evil/__init__.py".into());
    let (_index, project) = evil_project(altered.build());
    let line = refused(&project.dir, EVIL);
    assert!(
        line.ends_with("evil/__init__.py: its contents do not match the hash RECORD gives for it"),
        "{line}"
    );
}

#[test]
fn names_cannot_drive_the_terminal() {
    if services_missing() {
        return;
    }
    // An entry whose name carries escape sequences (clear screen, set window title), left out
    // of RECORD so that the error quotes it.
    let name = "evil/\u{1b}]0;pwned\u{7}\u{1b}[2J.py";
    let mut wheel = WheelBuilder::new("evil", "1.0").file(name, b"");
    wheel.unlisted.push(name.into());
    let (_index, project) = evil_project(wheel.build());
    let cache = tempfile::tempdir().unwrap();
    let output = build(&project.dir, cache.path(), &[]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = output.stderr;
    assert!(
        !stderr.contains(&0x1b) && !stderr.contains(&0x07),
        "raw control bytes reached the terminal: {:?}",
        String::from_utf8_lossy(&stderr)
    );
    let text = String::from_utf8_lossy(&stderr);
    assert!(
        text.contains("evil/\\u{1b}]0;pwned\\u{7}\\u{1b}[2J.py is not listed in RECORD"),
        "{text}"
    );
}
