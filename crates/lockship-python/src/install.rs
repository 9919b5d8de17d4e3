//! Installs wheels into a staging tree laid out like the image's virtual environment, with
//! `uv-install-wheel`: site-packages, `.data/` scripts/headers/data, entry-point scripts whose
//! shebang is the venv's Python in the image, RECORD and INSTALLER. No pip, no Python on the host.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use uv_distribution_filename::WheelFilename;
use uv_install_wheel::{InstallState, Layout, LinkMode};
use uv_pypi_types::Scheme;

use super::target::PythonTarget;
use super::wheel::{self, Kind, WheelEntry};
use lockship_oci::digest::ContentCheck;
use lockship_oci::tar_tree::{Entry, EntryData, TarTree, ZipSource};

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{wheel}: not a valid wheel file name: {message}")]
    BadName { wheel: String, message: String },
    #[error("{wheel}: cannot unpack: {message}")]
    Unpack { wheel: String, message: String },
    #[error("{wheel}: cannot install: {message}")]
    Install { wheel: String, message: String },
}

/// Installs the wheel at `wheel_path` (named `filename`) for the image, in two parts:
///
/// - the package's own files (everything outside `*.dist-info/` and `*.data/`, nearly all of a
///   wheel's bytes) go into `tree` at their place in site-packages, as references to the zip
///   members: they are never unpacked to disk, and their deflated bytes can go into the layer
///   as they are;
/// - the metadata and `.data/` go through `uv-install-wheel` into `root`, a host directory that
///   stands for the image's `/`: entry-point scripts whose shebang is the image's venv Python,
///   `.data/` scripts/headers/data moved into place, RECORD rewritten, INSTALLER.
///
/// uv-install-wheel works on whatever it finds unpacked and rewrites RECORD only for the files
/// it moves or writes, so the files left in the archive keep their RECORD lines unchanged.
/// Add `root` to the tree after the last wheel of a layer, so that staged files win.
pub fn install(
    wheel_path: &Path,
    filename: &str,
    target: &PythonTarget,
    root: &Path,
    tree: &mut TarTree,
) -> Result<(), InstallError> {
    let name: WheelFilename =
        filename
            .parse()
            .map_err(
                |e: uv_distribution_filename::WheelFilenameError| InstallError::BadName {
                    wheel: filename.to_string(),
                    message: e.to_string(),
                },
            )?;
    let unpack_err = |message: String| InstallError::Unpack {
        wheel: filename.to_string(),
        message,
    };
    let unpacked = tempfile::tempdir_in(root.parent().unwrap_or(root))
        .map_err(|e| unpack_err(e.to_string()))?;
    let site_image = format!(
        "{}/lib/{}/site-packages",
        target.venv.trim_matches('/'),
        target.lib_dir()
    );
    split_wheel(wheel_path, filename, unpacked.path(), &site_image, tree).map_err(unpack_err)?;
    let venv = root.join(target.venv.trim_start_matches('/'));
    let site = venv
        .join("lib")
        .join(target.lib_dir())
        .join("site-packages");
    let layout = Layout {
        sys_executable: PathBuf::from(format!("{}/bin/python", target.venv)),
        python_version: (target.version.0, target.version.1),
        os_name: "posix".into(),
        scheme: Scheme {
            purelib: site.clone(),
            platlib: site,
            scripts: venv.join("bin"),
            data: venv.clone(),
            include: venv.join("include").join("site").join(target.lib_dir()),
        },
    };
    uv_install_wheel::install_wheel(
        &layout,
        false,
        unpacked.path(),
        &name,
        None,
        None::<&()>,
        None::<&()>,
        Some("lockship"),
        true,
        // The unpacked part is a private temp dir on the same file system: hard links install
        // it without writing every file a second time.
        LinkMode::Hardlink,
        &InstallState::new(uv_preview::Preview::default()),
    )
    .map_err(|e| InstallError::Install {
        wheel: filename.to_string(),
        message: e.to_string(),
    })
}

/// Reads the wheel's directory (checked by [`wheel::read_entries`]): `*.dist-info/` and
/// `*.data/` entries are extracted into `unpacked`, hashed against RECORD on the way; every
/// other entry goes into `tree` under `site_image`, its RECORD hash checked when the layer is
/// written. Messages name the wheel by `filename`, never by its path in the cache.
fn split_wheel(
    wheel: &Path,
    filename: &str,
    unpacked: &Path,
    site_image: &str,
    tree: &mut TarTree,
) -> Result<(), String> {
    let file = std::fs::File::open(wheel).map_err(|e| e.to_string())?;
    let size = file.metadata().map_err(|e| e.to_string())?.len();
    let mut archive =
        zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|e| e.to_string())?;
    let entries = wheel::read_entries(&mut archive, size, &wheel::Limits::default())?;
    let source = Arc::new(ZipSource {
        path: wheel.to_path_buf(),
        name: filename.to_string(),
    });
    for entry in entries {
        if entry.is_staged() {
            extract_one(&mut archive, &entry, &unpacked.join(&entry.path))?;
            continue;
        }
        let image_path = format!("{site_image}/{}", entry.path);
        match &entry.kind {
            // As pip: directories exist for the files in them, and a wheel's entry for an
            // empty one (pandas.libs/ in pandas 2.2) makes none.
            Kind::Dir => {}
            Kind::Symlink(target) => tree.symlink(&image_path, target),
            Kind::File => tree.insert(
                &image_path,
                Entry {
                    data: EntryData::ZipMember {
                        archive: source.clone(),
                        index: entry.index,
                        size: entry.size,
                        check: entry.check.clone(),
                    },
                    mode: if entry.executable { 0o755 } else { 0o644 },
                    uid: 0,
                    gid: 0,
                },
            ),
        }
    }
    Ok(())
}

/// Extracts one metadata or `.data` entry to `dest`, exactly its recorded size, checked
/// against its RECORD hash.
fn extract_one(
    archive: &mut zip::ZipArchive<std::io::BufReader<std::fs::File>>,
    entry: &WheelEntry,
    dest: &Path,
) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let err = |e: &dyn std::fmt::Display| format!("{}: {e}", entry.path);
    if entry.kind == Kind::Dir {
        return std::fs::create_dir_all(dest).map_err(|e| err(&e));
    }
    extract_member(archive, entry.index, entry.size, entry.check.as_ref(), dest)
        .map_err(|e| err(&e))?;
    if entry.executable {
        std::fs::set_permissions(dest, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| err(&e))?;
    }
    Ok(())
}

/// Writes the zip member at `index` to `dest` (its directory created): exactly `size` bytes,
/// which must hash to `check` (the wheel's RECORD) when there is one.
pub(crate) fn extract_member(
    archive: &mut zip::ZipArchive<std::io::BufReader<std::fs::File>>,
    index: usize,
    size: u64,
    check: Option<&ContentCheck>,
    dest: &Path,
) -> Result<(), String> {
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    }
    let mut out = std::fs::File::create(dest).map_err(|e| e.to_string())?;
    copy_member(archive, index, size, check, &mut out)
}

/// Copies the zip member at `index` to `out`: exactly `size` bytes, which must hash to `check`
/// (the wheel's RECORD) when there is one.
pub(crate) fn copy_member(
    archive: &mut zip::ZipArchive<std::io::BufReader<std::fs::File>>,
    index: usize,
    size: u64,
    check: Option<&ContentCheck>,
    out: &mut dyn std::io::Write,
) -> Result<(), String> {
    let member = archive.by_index(index).map_err(|e| e.to_string())?;
    let mut hasher = check.map(ContentCheck::hasher);
    let mut reader = member.take(size + 1);
    let mut buf = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        let n = reader.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        written += n as u64;
        if let Some(h) = hasher.as_mut() {
            h.update(&buf[..n]);
        }
        out.write_all(&buf[..n]).map_err(|e| e.to_string())?;
    }
    if written != size {
        return Err(format!("{written} bytes where the archive records {size}"));
    }
    if let (Some(h), Some(check)) = (hasher, check) {
        if !h.matches(check) {
            return Err("its contents do not match the hash RECORD gives for it".into());
        }
    }
    Ok(())
}

/// Adds the virtual environment's skeleton to `tree`: pyvenv.cfg pointing at the base's
/// interpreter, the `python` links, and an empty site-packages.
pub fn venv_skeleton(target: &PythonTarget, tree: &mut TarTree) {
    let venv = target.venv.trim_start_matches('/');
    let (dir, exe) = target
        .interpreter
        .rsplit_once('/')
        .unwrap_or(("/usr/bin", target.interpreter.as_str()));
    let (major, minor, patch) = target.version;
    tree.bytes(
        &format!("{venv}/pyvenv.cfg"),
        format!(
            "home = {dir}\ninclude-system-site-packages = false\nversion = {major}.{minor}.{patch}\nexecutable = {}\n",
            target.interpreter
        ),
        0o644,
    );
    tree.symlink(&format!("{venv}/bin/python"), &format!("{dir}/{exe}"));
    tree.symlink(&format!("{venv}/bin/python3"), "python");
    tree.symlink(&format!("{venv}/bin/python{major}.{minor}"), "python");
    tree.dir(
        &format!("{venv}/lib/{}/site-packages", target.lib_dir()),
        0o755,
        0,
        0,
    );
    // CPython's venv module adds lib64 on 64-bit POSIX; some tools look there.
    tree.symlink(&format!("{venv}/lib64"), "lib");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn wheel(dir: &Path, extra: &[(&str, &str)]) -> PathBuf {
        let path = dir.join("demo-1.0-py3-none-any.whl");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        let opts = zip::write::SimpleFileOptions::default();
        let mut files = vec![
            ("demo/__init__.py", "def main():\n    pass\n"),
            (
                "demo-1.0.dist-info/METADATA",
                "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n",
            ),
            (
                "demo-1.0.dist-info/WHEEL",
                "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
            ),
            (
                "demo-1.0.dist-info/entry_points.txt",
                "[console_scripts]\ndemo = demo:main\n",
            ),
            ("demo-1.0.data/scripts/tool", "#!python\nprint('tool')\n"),
        ];
        files.extend_from_slice(extra);
        let mut record = String::new();
        for (name, body) in &files {
            use base64::Engine;
            use sha2::Digest;
            zip.start_file(*name, opts).unwrap();
            zip.write_all(body.as_bytes()).unwrap();
            let hash = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(sha2::Sha256::digest(body.as_bytes()));
            record.push_str(&format!("{name},sha256={hash},{}\n", body.len()));
        }
        record.push_str("demo-1.0.dist-info/RECORD,,\n");
        zip.start_file("demo-1.0.dist-info/RECORD", opts).unwrap();
        zip.write_all(record.as_bytes()).unwrap();
        zip.finish().unwrap();
        path
    }

    #[test]
    fn package_files_stay_in_the_archive_and_metadata_is_staged() {
        let dir = tempfile::tempdir().unwrap();
        let whl = wheel(dir.path(), &[]);
        let root = dir.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        let mut tree = TarTree::new();
        let target = crate::target::bookworm();
        install(&whl, "demo-1.0-py3-none-any.whl", &target, &root, &mut tree).unwrap();
        let site = "opt/venv/lib/python3.11/site-packages";
        // The module is a reference into the wheel, not a file on disk.
        assert!(tree
            .paths()
            .any(|p| p == format!("{site}/demo/__init__.py")));
        assert!(!root.join(format!("{site}/demo/__init__.py")).exists());
        // Metadata, the entry point and the .data script were installed by uv-install-wheel.
        let record =
            std::fs::read_to_string(root.join(format!("{site}/demo-1.0.dist-info/RECORD")))
                .unwrap();
        assert!(record.contains("demo/__init__.py,sha256="), "{record}");
        assert!(record.contains("../../../bin/tool,sha256="), "{record}");
        assert!(record.contains("demo-1.0.dist-info/INSTALLER"), "{record}");
        let script = std::fs::read_to_string(root.join("opt/venv/bin/demo")).unwrap();
        assert!(script.starts_with("#!/opt/venv/bin/python"), "{script}");
        let tool = std::fs::read_to_string(root.join("opt/venv/bin/tool")).unwrap();
        assert!(tool.starts_with("#!/opt/venv/bin/python"), "{tool}");
        assert!(!root.join(format!("{site}/demo-1.0.data")).exists());
    }

    #[test]
    fn entries_outside_the_wheel_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let whl = wheel(dir.path(), &[("../../etc/evil.py", "x")]);
        let root = dir.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        let mut tree = TarTree::new();
        let target = crate::target::bookworm();
        let err = install(&whl, "demo-1.0-py3-none-any.whl", &target, &root, &mut tree)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("demo-1.0-py3-none-any.whl: cannot unpack"),
            "{err}"
        );
        assert!(err.contains("evil.py"), "{err}");
    }
}
