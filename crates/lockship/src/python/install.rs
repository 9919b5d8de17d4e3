//! Installs wheels into a staging tree laid out like the image's virtual environment, with
//! `uv-install-wheel`: site-packages, `.data/` scripts/headers/data, entry-point scripts whose
//! shebang is the venv's Python in the image, RECORD and INSTALLER. No pip, no Python on the host.

use std::path::{Path, PathBuf};

use uv_distribution_filename::WheelFilename;
use uv_install_wheel::{InstallState, Layout, LinkMode};
use uv_pypi_types::Scheme;

use super::target::PythonTarget;
use crate::oci::tar_tree::TarTree;

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{wheel}: not a valid wheel file name: {message}")]
    BadName { wheel: String, message: String },
    #[error("{wheel}: cannot unpack: {message}")]
    Unpack { wheel: String, message: String },
    #[error("{wheel}: cannot install: {message}")]
    Install { wheel: String, message: String },
}

/// Installs the wheel at `wheel_path` (named `filename`) into `root`, a host directory that
/// stands for the image's `/`. The scheme points into `root`; the interpreter recorded in
/// scripts is the image's.
pub fn install(
    wheel_path: &Path,
    filename: &str,
    target: &PythonTarget,
    root: &Path,
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
    let unpacked =
        tempfile::tempdir_in(root.parent().unwrap_or(root)).map_err(|e| InstallError::Unpack {
            wheel: filename.to_string(),
            message: e.to_string(),
        })?;
    unzip(wheel_path, unpacked.path()).map_err(|message| InstallError::Unpack {
        wheel: filename.to_string(),
        message,
    })?;
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
        // The unpacked wheel is a private temp dir on the same file system: hard links install
        // it without writing every file a second time (measured: half the system time).
        LinkMode::Hardlink,
        &InstallState::new(uv_preview::Preview::default()),
    )
    .map_err(|e| InstallError::Install {
        wheel: filename.to_string(),
        message: e.to_string(),
    })
}

/// Extracts a wheel (a zip) into `dest`, refusing entries that would escape it.
fn unzip(wheel: &Path, dest: &Path) -> Result<(), String> {
    let file = std::fs::File::open(wheel).map_err(|e| format!("{}: {e}", wheel.display()))?;
    let mut archive =
        zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|e| e.to_string())?;
    archive.extract(dest).map_err(|e| e.to_string())
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
