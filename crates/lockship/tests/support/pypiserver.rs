//! A real private package index: pypiserver (installed by scripts/test into the test tools)
//! on 127.0.0.1, with an htpasswd file, serving real wheels downloaded from the package index
//! the machine is configured for. Stopped (by PID) when dropped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct PypiServer {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for PypiServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tools() -> PathBuf {
    PathBuf::from(
        std::env::var("LOCKSHIP_TEST_TOOLS")
            .expect("LOCKSHIP_TEST_TOOLS is set by scripts/test (the Python test tools)"),
    )
}

/// Real wheels for `requirements` (`name==version`), downloaded once into the test cache.
pub fn real_wheels(requirements: &[&str]) -> Vec<PathBuf> {
    let dir = super::test_cache().join("wheels");
    std::fs::create_dir_all(&dir).unwrap();
    let mut found = Vec::new();
    for req in requirements {
        let (name, version) = req.split_once("==").unwrap();
        let prefix = format!("{}-{version}-", name.replace('-', "_"));
        let have = |dir: &Path| {
            std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| {
                    let n = p.file_name().unwrap().to_string_lossy().to_lowercase();
                    n.starts_with(&prefix.to_lowercase()) && n.ends_with(".whl")
                })
        };
        if have(&dir).is_none() {
            let status = Command::new(tools().join("pypiserver/bin/pip"))
                .args(["download", "-q", "--no-deps", "--only-binary=:all:", "-d"])
                .arg(&dir)
                .arg(req)
                .status()
                .unwrap();
            assert!(status.success(), "pip download {req}");
        }
        found.push(have(&dir).unwrap_or_else(|| panic!("no wheel for {req}")));
    }
    found
}

impl PypiServer {
    /// Starts pypiserver serving `wheels`, requiring `user`/`password` for listing and
    /// downloads.
    pub fn start(wheels: &[PathBuf], user: &str, password: &str) -> PypiServer {
        let dir = tempfile::tempdir().unwrap();
        let packages = dir.path().join("packages");
        std::fs::create_dir_all(&packages).unwrap();
        for w in wheels {
            std::fs::copy(w, packages.join(w.file_name().unwrap())).unwrap();
        }
        let htpasswd = dir.path().join("htpasswd");
        let status = Command::new("htpasswd")
            .args(["-b", "-c", "-B"])
            .arg(&htpasswd)
            .args([user, password])
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(tools().join("pypiserver/bin/pypi-server"))
            .args(["run", "-i", "127.0.0.1", "-p", &port.to_string()])
            .args(["-a", "download,list", "-P"])
            .arg(&htpasswd)
            .arg(&packages)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("log")).unwrap())
            .spawn()
            .unwrap();
        let server = PypiServer {
            child,
            port,
            _dir: dir,
        };
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "pypiserver did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    /// The simple index URL, without credentials.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/simple", self.port)
    }
}
