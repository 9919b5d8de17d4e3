//! Reads the facts a build needs out of a base image's layers: where its Python is and which
//! version, which libc, and its /etc/passwd and /etc/group (to add the non-root user to).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use lockship_oci::layer_stream;
use lockship_oci::unpack::Merge;
use serde::{Deserialize, Serialize};

use super::bytecode;
use super::target::Libc;

/// What lockship learned about a base image; cached by the base's manifest digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseFacts {
    /// e.g. (3, 11, 2)
    pub python_version: (u8, u8, u8),
    /// Absolute path of the interpreter, e.g. /usr/bin/python3.11.
    pub interpreter: String,
    pub libc: Libc,
    pub passwd: Option<String>,
    pub group: Option<String>,
    /// The file names in the base's library directories (for the shared-library check); None
    /// when not read (facts cached by an older lockship, a Debian base's facts from its lock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub libraries: Option<BTreeSet<String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot read base layer {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("base image {base} has no Python interpreter (looked for /usr/local/bin/python3.X and /usr/bin/python3.X)")]
    NoPython { base: String },
    #[error("cannot tell which C library base image {base} uses (no libc.so.6 or ld-musl found)")]
    NoLibc { base: String },
}

#[derive(Default)]
struct Scan {
    /// (dir, minor) → present
    pythons: BTreeMap<(String, u8), bool>,
    files: BTreeMap<String, String>,
    glibc_file_version: Option<(u16, u16)>,
    glibc: bool,
    musl: bool,
    /// Paths of the entries in library directories.
    libraries: BTreeSet<String>,
}

impl Scan {
    /// Forgets what lower entries put at `path` and, when `under`, beneath it: a whiteout, an
    /// opaque directory, or an entry that replaces them (a file or a link where a directory
    /// was, a link where `/etc/passwd` was).
    fn remove(&mut self, path: &str, itself: bool) {
        let gone = |p: &str| {
            (itself && p == path)
                || path.is_empty()
                || p.strip_prefix(path)
                    .is_some_and(|rest| rest.starts_with('/'))
        };
        self.files.retain(|p, _| !gone(p));
        self.libraries.retain(|p| !gone(p));
        for ((dir, minor), present) in self.pythons.iter_mut() {
            let file = format!("{dir}/python3.{minor}");
            if gone(&file) {
                *present = false;
            }
        }
    }
}

const CAPTURED: [&str; 4] = [
    "etc/passwd",
    "etc/group",
    "var/lib/dpkg/status",
    "lib/apk/db/installed",
];

/// Scans `layers` (blobs, base first; gzip, zstd or plain, told by their first bytes) and
/// works out the facts; `env` is the base config's Env, which official Python images use to
/// state the exact version (PYTHON_VERSION).
pub fn probe(base: &str, layers: &[PathBuf], env: &[String]) -> Result<BaseFacts, ProbeError> {
    probe_unpacking(base, layers, env, None).map(|(facts, _)| facts)
}

/// Where a base's interpreter may be (`/usr/local/bin/python3.X` first, as in the official
/// images, which may also hold Debian's in `/usr/bin`).
pub const INTERPRETER_DIRS: [&str; 2] = ["usr/local/bin", "usr/bin"];

/// [`probe`], and, with `interpreter_dest` (an empty directory), in the same pass over the
/// layers, unpacks there what running the base's interpreter on the host needs to compile
/// bytecode (see [`bytecode::unpack_interpreter`]): a base's layers are decompressed once, not
/// once to inspect them and again to unpack the interpreter. Files are written for every
/// interpreter the base may hold, and those of the ones not picked removed at the end.
/// Unpacking is only a shortcut: the answer says whether `interpreter_dest` holds the whole
/// interpreter; when it could not be written (a write failed, the layers hold more than an
/// unpack may write), the probe goes on and the caller unpacks it on its own, or reports why
/// not, if it needs it.
pub fn probe_unpacking(
    base: &str,
    layers: &[PathBuf],
    env: &[String],
    interpreter_dest: Option<&Path>,
) -> Result<(BaseFacts, bool), ProbeError> {
    // Each opened when the scan reaches it, decompressed on its own thread.
    let readers = layers.iter().map(|l| (l.clone(), layer_stream::open(l)));
    let any = bytecode::needed_to_run_any;
    let mut merge = interpreter_dest.map(|dest| Merge::new(Some(dest), &any));
    let scan = scan_readers(readers, &mut merge)?;
    let facts = facts(base, scan, env)?;
    let minor = facts.python_version.1;
    let unpacked = merge.is_some_and(|merge| {
        merge
            .finish(&bytecode::needed_to_run(&facts.interpreter, minor))
            .unwrap_or(false)
    });
    Ok((facts, unpacked))
}

/// [`probe`] over layers given as tar streams (a path for messages, and the stream or why it
/// could not be opened), taken one at a time: what the fuzz target of the base-layer tar
/// reader calls.
pub fn probe_readers<R: Read>(
    base: &str,
    layers: impl IntoIterator<Item = (PathBuf, std::io::Result<R>)>,
    env: &[String],
) -> Result<BaseFacts, ProbeError> {
    facts(base, scan_readers(layers, &mut None)?, env)
}

fn scan_readers<R: Read>(
    layers: impl IntoIterator<Item = (PathBuf, std::io::Result<R>)>,
    merge: &mut Option<Merge<'_>>,
) -> Result<Scan, ProbeError> {
    let mut scan = Scan::default();
    for (path, reader) in layers {
        let reader = reader.map_err(|source| ProbeError::Read {
            path: path.clone(),
            source,
        })?;
        scan_layer(&path, reader, &mut scan, merge)?;
    }
    Ok(scan)
}

/// The facts of a base, from what the scan of all its layers found.
fn facts(base: &str, scan: Scan, env: &[String]) -> Result<BaseFacts, ProbeError> {
    let (dir, minor) = INTERPRETER_DIRS
        .iter()
        .find_map(|dir| {
            scan.pythons
                .iter()
                .filter(|((d, _), present)| d == dir && **present)
                .map(|((d, m), _)| (d.clone(), *m))
                .max_by_key(|(_, m)| *m)
        })
        .ok_or_else(|| ProbeError::NoPython {
            base: base.to_string(),
        })?;
    let dpkg = scan.files.get("var/lib/dpkg/status").map(String::as_str);
    let apk = scan.files.get("lib/apk/db/installed").map(String::as_str);
    let patch = python_patch(env, dpkg, apk, minor).unwrap_or(0);
    let libc = if scan.musl && !scan.glibc {
        let (major, minor) = apk
            .and_then(|db| apk_version(db, "musl"))
            .and_then(|v| major_minor(&v))
            .unwrap_or((1, 2));
        Libc::Musl { major, minor }
    } else if scan.glibc {
        let (major, minor) = dpkg
            .and_then(|db| dpkg_version(db, "libc6"))
            .and_then(|v| major_minor(&v))
            .or(scan.glibc_file_version)
            .ok_or_else(|| ProbeError::NoLibc {
                base: base.to_string(),
            })?;
        Libc::Glibc { major, minor }
    } else {
        return Err(ProbeError::NoLibc {
            base: base.to_string(),
        });
    };
    Ok(BaseFacts {
        python_version: (3, minor, patch),
        interpreter: format!("/{dir}/python3.{minor}"),
        libc,
        passwd: scan.files.get("etc/passwd").cloned(),
        group: scan.files.get("etc/group").cloned(),
        libraries: Some(
            scan.libraries
                .iter()
                .filter_map(|p| p.rsplit('/').next().map(String::from))
                .collect(),
        ),
    })
}

/// Scans one layer's entries, each also given to `merge` while there is one (a merge that
/// fails is dropped: see [`probe_unpacking`]).
fn scan_layer(
    layer: &Path,
    tar: impl Read,
    scan: &mut Scan,
    merge: &mut Option<Merge<'_>>,
) -> Result<(), ProbeError> {
    let err = |source| ProbeError::Read {
        path: layer.to_path_buf(),
        source,
    };
    let mut archive = tar::Archive::new(tar);
    for entry in archive.entries().map_err(err)? {
        let mut entry = entry.map_err(err)?;
        let path = entry.path().map_err(err)?.to_string_lossy().into_owned();
        let path = path
            .trim_start_matches("./")
            .trim_start_matches('/')
            .to_string();
        let captured = if CAPTURED.contains(&path.as_str()) && entry.header().entry_type().is_file()
        {
            let mut bytes = Vec::new();
            // Real ones are kilobytes (a dpkg status a few MB); a hostile base gets no more.
            (&mut entry)
                .take(32 << 20)
                .read_to_end(&mut bytes)
                .map_err(err)?;
            Some(bytes)
        } else {
            None
        };
        // The merge resolves the image's symlinks, so a captured path may be one it writes
        // (an `etc` linked into the standard library): it gets what the scan read first.
        if let Some(m) = merge.as_mut() {
            let read = captured.as_deref().unwrap_or_default();
            if m.add_after(layer, &mut entry, read).is_err() {
                *merge = None;
            }
        }
        let path = path.trim_end_matches('/').to_string();
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path.as_str()));
        // Whiteouts delete what lower layers put there (as the merge does: an opaque
        // directory loses everything beneath it, a `.wh.NAME` the entry and what it held).
        if name == ".wh..wh..opq" {
            scan.remove(dir, false);
            continue;
        }
        if let Some(deleted) = name.strip_prefix(".wh.") {
            if !deleted.is_empty() && deleted != "." && deleted != ".." {
                let gone = if dir.is_empty() {
                    deleted.to_string()
                } else {
                    format!("{dir}/{deleted}")
                };
                scan.remove(&gone, true);
            }
            continue;
        }
        let is_dir = entry.header().entry_type().is_dir();
        // Anything but a directory replaces what was there, and what was beneath it.
        if !is_dir {
            scan.remove(&path, true);
        }
        if !is_dir && super::native::is_library_dir(dir) {
            scan.libraries.insert(path.clone());
        }
        if let Some(minor) = python_minor(name) {
            if INTERPRETER_DIRS.contains(&dir) && !is_dir {
                scan.pythons.insert((dir.to_string(), minor), true);
            }
        }
        if name.starts_with("ld-musl-") {
            scan.musl = true;
        }
        if name == "libc.so.6" {
            scan.glibc = true;
        }
        if let Some(v) = name
            .strip_prefix("libc-")
            .and_then(|v| v.strip_suffix(".so"))
        {
            scan.glibc = true;
            scan.glibc_file_version = major_minor(v);
        }
        if let Some(bytes) = captured {
            let text = String::from_utf8(bytes)
                .map_err(|e| err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
            scan.files.insert(path, text);
        }
    }
    Ok(())
}

/// `python3.11` → 11; anything else (python3, python3.11-config) → None.
fn python_minor(name: &str) -> Option<u8> {
    name.strip_prefix("python3.")?.parse().ok()
}

fn major_minor(version: &str) -> Option<(u16, u16)> {
    let mut parts = version.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

fn python_patch(env: &[String], dpkg: Option<&str>, apk: Option<&str>, minor: u8) -> Option<u8> {
    let from = |version: &str| -> Option<u8> {
        let rest = version.strip_prefix(&format!("3.{minor}."))?;
        rest.split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    env.iter()
        .find_map(|e| e.strip_prefix("PYTHON_VERSION=").and_then(from))
        .or_else(|| {
            dpkg.and_then(|db| dpkg_version(db, &format!("python3.{minor}")))
                .and_then(|v| from(&v))
        })
        .or_else(|| {
            apk.and_then(|db| apk_version(db, "python3"))
                .and_then(|v| from(&v))
        })
}

/// The Version of an installed package in a dpkg status file.
pub fn dpkg_version(status: &str, package: &str) -> Option<String> {
    status.split("\n\n").find_map(|stanza| {
        let mut name = None;
        let mut version = None;
        for line in stanza.lines() {
            if let Some(v) = line.strip_prefix("Package: ") {
                name = Some(v.trim());
            } else if let Some(v) = line.strip_prefix("Version: ") {
                version = Some(v.trim());
            }
        }
        (name == Some(package))
            .then(|| version.map(String::from))
            .flatten()
    })
}

/// The version of a package in an Alpine apk database (`P:` name, `V:` version lines).
fn apk_version(db: &str, package: &str) -> Option<String> {
    db.split("\n\n").find_map(|stanza| {
        let mut lines = stanza.lines();
        let is = lines.clone().any(|l| l == format!("P:{package}"));
        if !is {
            return None;
        }
        lines.find_map(|l| l.strip_prefix("V:").map(String::from))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_status_versions() {
        let status = "Package: libc6\nStatus: install ok installed\nVersion: 2.36-9+deb12u4\n\nPackage: python3.11\nVersion: 3.11.2-6+deb12u2\n";
        assert_eq!(
            dpkg_version(status, "libc6").as_deref(),
            Some("2.36-9+deb12u4")
        );
        assert_eq!(major_minor("2.36-9+deb12u4"), Some((2, 36)));
        assert_eq!(python_patch(&[], Some(status), None, 11), Some(2));
        assert_eq!(
            python_patch(&["PYTHON_VERSION=3.12.7".into()], None, None, 12),
            Some(7)
        );
        assert_eq!(python_minor("python3.12"), Some(12));
        assert_eq!(python_minor("python3.12-config"), None);
    }

    /// A gzip layer holding `files` (path, contents; empty contents for markers like binaries),
    /// or a zstd one when `name` ends in `.zst`.
    fn layer(dir: &Path, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let mut tree = lockship_oci::tar_tree::TarTree::new();
        for (path, text) in files {
            // `-> TARGET`: a symbolic link.
            match text.strip_prefix("-> ") {
                Some(target) => tree.symlink(path, target),
                None => tree.bytes(path, text.as_bytes().to_vec(), 0o755),
            }
        }
        let path = dir.join(name);
        let file = std::fs::File::create(&path).unwrap();
        if name.ends_with(".zst") {
            let zst = zstd::stream::write::Encoder::new(file, 3).unwrap();
            tree.write_tar(zst, 0).unwrap().finish().unwrap();
        } else {
            let gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
            tree.write_tar(gz, 0).unwrap().finish().unwrap();
        }
        path
    }

    #[test]
    fn official_python_image_layout() {
        let dir = tempfile::tempdir().unwrap();
        let debian = layer(
            dir.path(),
            "1.tgz",
            &[
                ("usr/bin/python3.11", ""),
                ("lib/x86_64-linux-gnu/libc.so.6", ""),
                (
                    "var/lib/dpkg/status",
                    "Package: libc6\nVersion: 2.36-9+deb12u4\n",
                ),
                ("etc/passwd", "root:x:0:0:root:/root:/bin/bash\n"),
            ],
        );
        // A later layer removes the Debian python and adds /usr/local's, as python:3.12-slim does
        // (zstd-compressed, as some builders push them).
        let python = layer(
            dir.path(),
            "2.tar.zst",
            &[
                ("usr/local/bin/python3.12", ""),
                ("usr/bin/.wh.python3.11", ""),
            ],
        );
        let files = [debian, python];
        let facts = probe(
            "python:3.12-slim",
            &files,
            &["PYTHON_VERSION=3.12.7".into()],
        )
        .unwrap();
        assert_eq!(facts.python_version, (3, 12, 7));
        assert_eq!(facts.interpreter, "/usr/local/bin/python3.12");
        assert_eq!(
            facts.libc,
            Libc::Glibc {
                major: 2,
                minor: 36
            }
        );
        assert_eq!(
            facts.passwd.as_deref(),
            Some("root:x:0:0:root:/root:/bin/bash\n")
        );

        let err = probe("scratch", &files[..0], &[]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("base image scratch has no Python interpreter"),
            "{err}"
        );
    }

    #[test]
    fn opaque_directories_and_replacing_entries_hide_what_lower_layers_had() {
        let dir = tempfile::tempdir().unwrap();
        let debian = layer(
            dir.path(),
            "1.tgz",
            &[
                ("usr/bin/python3.11", ""),
                ("usr/lib/x86_64-linux-gnu/libc.so.6", ""),
                ("usr/lib/x86_64-linux-gnu/libz.so.1", ""),
                ("var/lib/dpkg/status", "Package: libc6\nVersion: 2.36-9\n"),
                ("etc/passwd", "root:x:0:0:root:/root:/bin/bash\n"),
            ],
        );
        let n = std::cell::Cell::new(2);
        let base = |top: &[(&str, &str)]| {
            n.set(n.get() + 1);
            let name = format!("{}.tgz", n.get());
            probe(
                "hostile",
                &[debian.clone(), layer(dir.path(), &name, top)],
                &[],
            )
        };
        // The Python a lower layer had is gone: the base has none.
        for top in [
            [("usr/bin/.wh..wh..opq", "")],
            [("usr/.wh.bin", "")],
            [(".wh.usr", "")],
            [("usr/bin", "-> /nowhere")],
        ] {
            let err = base(&top).unwrap_err();
            assert!(matches!(err, ProbeError::NoPython { .. }), "{top:?}: {err}");
        }
        // An /etc/passwd replaced by a link is not the lower layer's any more; a whiteout
        // naming the directory itself or its parent deletes nothing.
        let facts = base(&[
            ("etc/passwd", "-> /etc/shadow"),
            ("usr/lib/x86_64-linux-gnu/.wh.libz.so.1", ""),
            ("usr/bin/.wh...", ""),
            ("usr/bin/.wh..", ""),
            (".wh.", ""),
        ])
        .unwrap();
        assert_eq!(facts.interpreter, "/usr/bin/python3.11");
        assert_eq!(facts.passwd, None);
        assert_eq!(
            facts.libraries.unwrap().into_iter().collect::<Vec<_>>(),
            ["libc.so.6"]
        );
    }

    #[test]
    fn the_probe_unpacks_the_interpreter_it_picks_in_the_same_pass() {
        let dir = tempfile::tempdir().unwrap();
        let one = layer(
            dir.path(),
            "1.tgz",
            &[
                ("usr/bin/python3.11", "debian's"),
                ("usr/lib/python3.11/os.py", "debian's os"),
                ("usr/lib/x86_64-linux-gnu/libc.so.6", "libc"),
                ("usr/share/doc/libc6/copyright", "doc"),
                ("etc/passwd", "root:x:0:0:root:/root:/bin/bash\n"),
                (
                    "var/lib/dpkg/status",
                    "Package: libc6\nVersion: 2.36-9+deb12u4\n",
                ),
            ],
        );
        let two = layer(
            dir.path(),
            "2.tar.zst",
            &[
                ("usr/local/bin/python3.12", "python"),
                ("usr/local/lib/python3.12/os.py", "os"),
                ("usr/local/lib/python3.12/encodings/euc_jp.py", "codec"),
                ("usr/local/lib/python3.12/test/test_os.py", "a test"),
                (
                    "usr/local/lib/python3.12/lib-dynload/math.cpython-312-x86_64-linux-gnu.so",
                    "math",
                ),
                (
                    "usr/local/lib/python3.12/lib-dynload/_ssl.cpython-312-x86_64-linux-gnu.so",
                    "ssl",
                ),
            ],
        );
        let files = [one, two];
        let dest = dir.path().join("interpreter");
        std::fs::create_dir(&dest).unwrap();
        let env = ["PYTHON_VERSION=3.12.7".to_string()];
        let (facts, unpacked) = probe_unpacking("python:3.12", &files, &env, Some(&dest)).unwrap();
        assert!(unpacked);
        assert_eq!(facts, probe("python:3.12", &files, &env).unwrap());
        assert_eq!(facts.interpreter, "/usr/local/bin/python3.12");
        let files_in = |root: &Path| -> BTreeSet<String> {
            walkdir::WalkDir::new(root)
                .into_iter()
                .flatten()
                .filter(|e| e.file_type().is_file())
                .map(|e| {
                    let rel = e.path().strip_prefix(root).unwrap();
                    rel.to_string_lossy().into_owned()
                })
                .collect()
        };
        let unpacked = files_in(&dest);
        // Exactly what unpacking it on its own writes: Debian's Python, written while it could
        // still have been the one, is gone again.
        assert_eq!(
            unpacked,
            [
                "usr/lib/x86_64-linux-gnu/libc.so.6",
                "usr/local/bin/python3.12",
                "usr/local/lib/python3.12/encodings/euc_jp.py",
                "usr/local/lib/python3.12/lib-dynload/math.cpython-312-x86_64-linux-gnu.so",
                "usr/local/lib/python3.12/os.py",
            ]
            .into_iter()
            .map(String::from)
            .collect()
        );
        let alone = dir.path().join("alone");
        std::fs::create_dir(&alone).unwrap();
        bytecode::unpack_interpreter(&files, &facts.interpreter, 12, &alone).unwrap();
        assert_eq!(files_in(&alone), unpacked);
        assert_eq!(
            std::fs::read_to_string(dest.join("usr/local/lib/python3.12/os.py")).unwrap(),
            "os"
        );
    }

    #[test]
    fn a_file_both_the_probe_and_the_unpack_read_reaches_both_whole() {
        let dir = tempfile::tempdir().unwrap();
        let passwd = "root:x:0:0:root:/root:/bin/bash\n";
        // Written as uncompressed tar by hand: `etc` is a symlink into the standard library.
        let path = dir.path().join("1.tar");
        let mut builder = tar::Builder::new(std::fs::File::create(&path).unwrap());
        let mut link = tar::Header::new_gnu();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_size(0);
        builder
            .append_link(&mut link, "etc", "usr/lib/python3.11")
            .unwrap();
        for (name, body) in [
            ("etc/passwd", passwd),
            ("usr/bin/python3.11", "python"),
            ("usr/lib/x86_64-linux-gnu/libc-2.36.so", "libc"),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(body.len() as u64);
            h.set_mode(0o644);
            builder.append_data(&mut h, name, body.as_bytes()).unwrap();
        }
        builder.finish().unwrap();
        drop(builder);
        let dest = dir.path().join("interpreter");
        std::fs::create_dir(&dest).unwrap();
        let (facts, unpacked) = probe_unpacking("odd", &[path], &[], Some(&dest)).unwrap();
        assert!(unpacked);
        assert_eq!(facts.passwd.as_deref(), Some(passwd));
        assert_eq!(
            std::fs::read_to_string(dest.join("usr/lib/python3.11/passwd")).unwrap(),
            passwd
        );
    }

    #[test]
    fn apk_versions() {
        let db = "P:busybox\nV:1.36\n\nP:musl\nV:1.2.4-r2\nA:x86_64\n";
        assert_eq!(apk_version(db, "musl").as_deref(), Some("1.2.4-r2"));
    }
}
