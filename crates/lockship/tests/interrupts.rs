//! Stopping lockship leaves nothing behind. A project whose build backend announces itself and
//! then sleeps holds the build at a known point (the app wheel building, temporary directories
//! in the cache); SIGINT/SIGTERM must remove them and stop the backend, SIGKILL must still take
//! the backend down, and what a killed run left is collected by the next run, without touching
//! what a live process holds or what lockship did not make.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, SystemTime};

use support::*;

const BACKEND: &str = r#"
import base64, hashlib, os, time, zipfile

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    pidfile = os.environ.get("SLOW_BACKEND_PIDFILE")
    if pidfile:
        with open(pidfile, "w") as f:
            f.write(str(os.getpid()))
        time.sleep(120)
    name = "slowapp-0.1.0-py3-none-any.whl"
    files = {
        "slowapp/__init__.py": b"X = 1\n",
        "slowapp-0.1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: slowapp\nVersion: 0.1.0\n",
        "slowapp-0.1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = ""
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record += f"{path},sha256={digest},{len(data)}\n"
    record += "slowapp-0.1.0.dist-info/RECORD,,\n"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as z:
        for path, data in files.items():
            z.writestr(path, data)
        z.writestr("slowapp-0.1.0.dist-info/RECORD", record)
    return name
"#;

/// A project built by the in-tree backend above.
fn slow_project() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("slowapp");
    std::fs::create_dir_all(dir.join("_backend")).unwrap();
    std::fs::create_dir_all(dir.join("slowapp")).unwrap();
    std::fs::write(dir.join("slowapp/__init__.py"), "X = 1\n").unwrap();
    std::fs::write(dir.join("_backend/slow_backend.py"), BACKEND).unwrap();
    std::fs::write(
        dir.join("pyproject.toml"),
        "[project]\nname = \"slowapp\"\nversion = \"0.1.0\"\ndependencies = []\n\n[build-system]\nrequires = []\nbuild-backend = \"slow_backend\"\nbackend-path = [\"_backend\"]\n",
    )
    .unwrap();
    std::fs::write(dir.join("requirements.txt"), "").unwrap();
    (tmp, dir)
}

/// Starts a build of `project` into `out` that will hang in the backend, and waits until the
/// backend runs; returns lockship's process and the backend's pid.
fn start_hanging_build(project: &Path, cache: &Path, out: &Path) -> (Child, i32) {
    let pidfile = project.parent().unwrap().join("backend.pid");
    let mut child = lockship(cache)
        .env("SLOW_BACKEND_PIDFILE", &pidfile)
        .arg("build")
        .arg(project)
        .args(["--base", &env().base])
        .arg("--output")
        .arg(format!("docker:{}", out.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..600 {
        if let Some(pid) = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok())
        {
            return (child, pid);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the backend never started");
}

/// Whether `pid` runs (a zombie does not count).
fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

fn gone_soon(pid: i32) -> bool {
    for _ in 0..100 {
        if !running(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn wait(child: &mut Child) -> std::process::ExitStatus {
    for _ in 0..300 {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    panic!("lockship did not stop");
}

#[test]
fn sigint_and_sigterm_remove_temporary_files_and_stop_the_backend() {
    if services_missing() {
        return;
    }
    for (signal, code) in [(libc::SIGINT, 130), (libc::SIGTERM, 143)] {
        let (tmp, project) = slow_project();
        let cache = tmp.path().join("cache");
        let out_dir = tmp.path().join("out");
        let (mut child, backend) = start_hanging_build(&project, &cache, &out_dir.join("img.tar"));
        assert!(
            !temp_leftovers(&cache).is_empty(),
            "the build holds temporary entries while it runs"
        );
        // SAFETY: signalling a child process this test started.
        unsafe {
            libc::kill(child.id() as i32, signal);
        }
        let status = wait(&mut child);
        assert_eq!(status.code(), Some(code), "signal {signal}");
        // The stop's message only: not the failure of the app build the stop killed.
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert!(
            stderr.contains("lockship: stopped;") && !stderr.contains("error:"),
            "{stderr}"
        );
        assert!(gone_soon(backend), "the build backend outlived lockship");
        assert_eq!(temp_leftovers(&cache), Vec::<PathBuf>::new());
        assert!(!out_dir.join("img.tar").exists());
        assert_eq!(temp_leftovers(tmp.path()), Vec::<PathBuf>::new());
    }
}

/// Pretends `path` was last changed an hour ago (what a sweep sees of a killed run's files).
fn age(path: &Path) {
    let old = SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::open(path)
        .unwrap()
        .set_modified(old)
        .unwrap();
}

#[test]
fn after_sigkill_the_backend_dies_and_the_next_run_collects_the_leftovers() {
    if services_missing() {
        return;
    }
    let (tmp, project) = slow_project();
    let cache = tmp.path().join("cache");
    let out_dir = tmp.path().join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let (mut child, backend) = start_hanging_build(&project, &cache, &out_dir.join("img.tar"));
    child.kill().unwrap();
    wait(&mut child);
    assert!(
        gone_soon(backend),
        "the backend outlived a SIGKILL of lockship"
    );
    let left = temp_leftovers(&cache);
    assert!(
        !left.is_empty(),
        "a killed run leaves its temporary entries"
    );
    for path in &left {
        age(path);
    }
    // What else sits in the output directory: a killed run's half tarball, one a live process
    // is writing (this test holds its lock), and the user's own files.
    let dead = out_dir.join(".lockship-tmp-killed.tar.partial");
    let live = out_dir.join(".lockship-tmp-live.tar.partial");
    let users = out_dir.join("lockship-notes.txt");
    for f in [&dead, &live, &users] {
        std::fs::write(f, "x").unwrap();
        age(f);
    }
    let held = std::fs::File::open(&live).unwrap();
    held.lock().unwrap();

    let out = lockship(&cache)
        .arg("build")
        .arg(&project)
        .args(["--base", &env().base])
        .arg("--output")
        .arg(format!("docker:{}", out_dir.join("img.tar").display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out_dir.join("img.tar").is_file());
    for path in &left {
        assert!(!path.exists(), "{} was not collected", path.display());
    }
    assert!(
        !dead.exists(),
        "a dead run's partial output was not collected"
    );
    assert!(live.exists(), "a live process's file was removed");
    assert!(users.exists(), "a file lockship did not make was removed");
    drop(held);
}

#[test]
fn a_build_that_fails_early_stops_the_backend_at_once() {
    if services_missing() {
        return;
    }
    // The base does not exist: the build fails while the app wheel is still building. The
    // backend must be stopped, not waited for.
    let (tmp, project) = slow_project();
    let cache = tmp.path().join("cache");
    let pidfile = tmp.path().join("backend.pid");
    let mut child = lockship(&cache)
        .env("SLOW_BACKEND_PIDFILE", &pidfile)
        .arg("build")
        .arg(&project)
        .args(["--base", &format!("{}/no/such-base:1", env().registry)])
        .arg("--output")
        .arg(format!("docker:{}", tmp.path().join("img.tar").display()))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait(&mut child);
    assert_eq!(status.code(), Some(1));
    if let Some(pid) = std::fs::read_to_string(&pidfile)
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok())
    {
        assert!(
            gone_soon(pid),
            "the backend kept running after the build failed"
        );
    }
    assert_eq!(temp_leftovers(&cache), Vec::<PathBuf>::new());
}
