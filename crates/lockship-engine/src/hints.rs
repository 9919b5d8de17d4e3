//! What the user can do about each lower crate's errors: the hints name lockship's flags,
//! config keys and environment, which only the engine and the CLI know. One function per
//! error type; [`crate::error::Error::hint`] picks the one for its variant.

use std::path::Path;

use lockship_debian::resolve::ResolveError;
use lockship_debian::DebianError;
use lockship_oci::download::DownloadError;
use lockship_oci::layout::OutputError;
use lockship_oci::layout_image::LayoutReadError;
use lockship_oci::registry::RegistryError;
use lockship_python::app::AppError;
use lockship_python::bytecode::BytecodeError;
use lockship_python::fetch::FetchError;
use lockship_python::index::IndexError;
use lockship_python::lock::{LockError, LockKind};
use lockship_python::native::NativeError;
use lockship_python::probe::ProbeError;
use lockship_python::select::NoWheelError;

/// Where lockship looks for index credentials, for the hint when an index refuses.
const CREDENTIALS: &str = "lockship sends an index's credentials to its own host only, from: user info in the index URL (--index-url, PIP_INDEX_URL, UV_INDEX_URL, ${VAR} in a Pipfile source), UV_INDEX_<NAME>_USERNAME/_PASSWORD for a [[tool.uv.index]], POETRY_HTTP_BASIC_<SOURCE>_USERNAME/_PASSWORD for a [[tool.poetry.source]], and netrc (NETRC or ~/.netrc); check the ones named";

pub(crate) fn output(e: &OutputError) -> Option<String> {
    match e {
        OutputError::NotALayout { .. } => Some(
            "choose a new directory (lockship creates it), an empty one, or an existing OCI layout to add the image to".into(),
        ),
        OutputError::NotATarball { .. } => {
            Some("choose another file name; lockship never overwrites a file that is not a tarball".into())
        }
        OutputError::BadLayout { .. } => {
            Some("repair or remove the layout's index.json, or write to a new directory".into())
        }
        _ => None,
    }
}

pub(crate) fn layout_base(e: &LayoutReadError) -> Option<String> {
    match e {
        LayoutReadError::NotALayout { .. } | LayoutReadError::Io { .. } => Some(
            "an OCI layout is a directory with `oci-layout` and `index.json` in it, as `skopeo copy docker://IMAGE oci:PATH:TAG` or `lockship build --output oci:PATH` writes it (a base names it `oci-layout://PATH`, relative to the project)".into(),
        ),
        LayoutReadError::NoSuchImage { .. } | LayoutReadError::Ambiguous { .. } => Some(
            "name one of the listed images: `PATH:TAG` or `PATH@sha256:…` (after `oci-layout://` for a base, `oci:` for inspect and push)".into(),
        ),
        LayoutReadError::NoPlatform { .. } => {
            Some("choose one of the listed platforms with --platform".into())
        }
        LayoutReadError::WrongPlatform { .. } => Some(
            "use a multi-platform layout (an image index), or a base built for that platform".into(),
        ),
        LayoutReadError::MissingBlob { .. }
        | LayoutReadError::Tampered { .. }
        | LayoutReadError::Bad { .. } => Some(
            "the layout is damaged or incomplete; write it again (nothing of it was cached)".into(),
        ),
        LayoutReadError::Store(_) => Some(CACHE.into()),
    }
}

pub(crate) fn registry(e: &RegistryError) -> Option<String> {
    match e {
        RegistryError::Denied { registry, action } => Some(if action.starts_with("pushing") {
            format!("log in with `docker login {registry}` (lockship reads ~/.docker/config.json); the account needs write access to the repository")
        } else {
            format!(
                "log in with `docker login {registry}` (lockship reads ~/.docker/config.json)"
            )
        }),
        RegistryError::NotFound { .. } => {
            Some("check `base` in [tool.lockship] (or --base), and that the tag exists".into())
        }
        RegistryError::BlobNotFound { .. } => Some(
            "the image is damaged in that registry (a blob was deleted or garbage-collected): push the image again, or use another tag"
                .into(),
        ),
        RegistryError::Unreachable { .. } => Some(
            "check the registry address and that it is up; plain-HTTP registries other than \
             loopback go in LOCKSHIP_INSECURE_REGISTRIES; --http-timeout and --http-retries \
             set how patient lockship is"
                .into(),
        ),
        RegistryError::NoPlatform { .. } => {
            Some("choose one of the listed platforms with --platform".into())
        }
        RegistryError::WrongPlatform { .. } => Some(
            "use a multi-platform base (an image index), or a base built for that platform"
                .into(),
        ),
        RegistryError::Tampered { .. } => Some(
            "nothing was cached; the registry, or something between it and lockship, altered the data"
                .into(),
        ),
        _ => None,
    }
}

pub(crate) fn lock(e: &LockError) -> Option<String> {
    match e {
        LockError::Missing { .. } => Some(
            "create one with `lockship lock` (uv.lock), `uv lock`, `poetry lock`, `pipenv lock`, or `uv pip compile pyproject.toml --generate-hashes -o requirements.txt`".into(),
        ),
        LockError::Stale { path, .. } | LockError::Invalid { path, .. } => Some(relock_hint(path)),
        LockError::UnknownFormat { .. } => Some(
            "set `lock` in [tool.lockship] to a uv.lock, poetry.lock, pylock.toml, Pipfile.lock or requirements.txt".into(),
        ),
        LockError::Unhashed { .. } => Some(
            "lock with hashes (uv, poetry and pipenv write them; `uv pip compile --generate-hashes`), or set `allow-unhashed = true` in [tool.lockship] to trust the index's hashes".into(),
        ),
        LockError::UnsupportedVersion { .. } => {
            Some("re-lock with a supported version of the tool".into())
        }
        LockError::WrongPython { .. } => Some(
            "build on a base with a Python the lock allows (`base` in [tool.lockship], or --base), or widen requires-python and run `lockship lock`".into(),
        ),
        LockError::UnsupportedSource { .. } => Some(
            "lockship installs packages from an index, workspace members and local directories: publish the package to your index, or check it out and use a path source".into(),
        ),
        _ => None,
    }
}

pub(crate) fn index(e: &IndexError) -> Option<String> {
    match e {
        IndexError::NoIndex { .. } => Some(
            "set UV_DEFAULT_INDEX (or PIP_INDEX_URL) to your simple index URL, or add --index-url to the requirements file".into(),
        ),
        IndexError::Refused { .. } => Some(CREDENTIALS.into()),
        IndexError::Request { source, .. } => match source.status() {
            Some(404) => Some(
                "check the index URL: it is the simple API's root (often ending in /simple), and the package must be on it".into(),
            ),
            _ => None,
        },
        IndexError::NotListed { .. } => Some("the lock may be for another index; re-lock against this one".into()),
        _ => None,
    }
}

pub(crate) fn app(e: &AppError) -> Option<String> {
    match e {
        AppError::NoBuilder { .. } => {
            Some("install uv (`pip install uv`), or set app = \"copy\" in [tool.lockship]".into())
        }
        AppError::NothingIncluded { .. } | AppError::BadGlob { .. } => Some(
            "fix `include` in [tool.lockship] (or the target's); globs like `src/**/*.py` are relative to the project directory".into(),
        ),
        AppError::BuildFailed { .. } => {
            Some("run `uv build --wheel` in the project to see the full output".into())
        }
        AppError::OutsideLock { .. } => Some(
            "lockship builds path dependencies that live under the lock's directory: make it a workspace member, or publish it to your index".into(),
        ),
        AppError::NotAProject { .. } | AppError::OtherWheel { .. } => Some(
            "fix the path in [tool.uv.sources] (or the workspace members), then run `uv lock`"
                .into(),
        ),
        _ => None,
    }
}

pub(crate) fn bytecode(e: &BytecodeError) -> Option<String> {
    match e {
        BytecodeError::Unrunnable { .. } | BytecodeError::WrongVersion { .. } => Some(
            "lockship compiles bytecode with the base's own interpreter; build without it with --no-bytecode or bytecode = false in [tool.lockship]".into(),
        ),
        BytecodeError::Source { .. } => Some(
            "the wheel in the cache does not match its own RECORD; run the build again (damaged entries are fetched again) or report the wheel to its maintainers".into(),
        ),
        BytecodeError::Unpack(_) => Some(CACHE.into()),
        BytecodeError::Compile { .. } => Some(
            "build with --no-bytecode to go on without it, and report the message to lockship".into(),
        ),
    }
}

pub(crate) fn native(e: &NativeError) -> Option<String> {
    match e {
        NativeError::Missing {
            provided_by: Some(package),
            ..
        } => Some(format!(
            "add {package} to `packages` in [tool.lockship.base] (the image needs it at run time)"
        )),
        NativeError::Missing { .. } => Some(
            "add the package that provides it to the base ([tool.lockship.base] packages for a Debian base; `apt-file search LIBRARY` names it), use a base image that has it, or a wheel that bundles it (auditwheel repair)".into(),
        ),
        NativeError::Read { .. } => Some(
            "the wheel holds a file that looks like a shared library but cannot be read as one; report it to the package's maintainers".into(),
        ),
    }
}

pub(crate) fn no_wheel(_: &NoWheelError) -> Option<String> {
    Some("these have neither a wheel for this target nor an sdist with a sha256 to build one from: choose versions that ship wheels for it, or a base image with another Python version".into())
}

pub(crate) fn fetch(e: &FetchError) -> Option<String> {
    match e {
        FetchError::HashMismatch { .. } => Some(
            "the file differs from the one locked: re-lock if the index legitimately changed, otherwise do not trust this index".into(),
        ),
        FetchError::Refused { .. } => Some(CREDENTIALS.into()),
        FetchError::OutsideProject { .. } => Some(
            "put the wheels in a directory of the project (a wheelhouse beside the lock) and lock again".into(),
        ),
        _ => None,
    }
}

pub(crate) fn probe(e: &ProbeError) -> Option<String> {
    match e {
        ProbeError::NoPython { .. } => {
            Some("use a base image with CPython installed, e.g. python:3.12-slim".into())
        }
        _ => None,
    }
}

pub(crate) fn debian(e: &DebianError) -> Option<String> {
    match e {
        DebianError::NoMirror => Some("set `mirror` in [tool.lockship.base]".into()),
        // The security archive is its own mirror setting: a suite missing there is that
        // setting's fault, not `debian`'s.
        DebianError::UnknownSuite { suite, .. } if suite.ends_with("-security") => Some(format!(
            "check `security-mirror` in [tool.lockship.base]: it must be the root of an archive with {suite} in its dists/ (the security archive, not the main one)"
        )),
        DebianError::UnknownSuite { .. } => Some("check `debian` in [tool.lockship.base] (e.g. bookworm, trixie), and `mirror`".into()),
        DebianError::BadSignature { .. } => Some(
            "the mirror's Release file is not signed by a key in the keyring: check the mirror, or update debian-archive-keyring".into(),
        ),
        DebianError::Keyring { .. } => Some("install debian-archive-keyring, or set `keyring` in [tool.lockship.base]".into()),
        DebianError::Resolve(
            ResolveError::ExcludedRequested { .. }
            | ResolveError::ExcludedUnused { .. }
            | ResolveError::ExclusionBreaks { .. },
        ) => Some("remove it from `exclude` in [tool.lockship.base]".into()),
        DebianError::Resolve(_) => Some("check `packages` in [tool.lockship.base] against the suite".into()),
        DebianError::Gone { archive, .. } => {
            let key = if archive.ends_with("-security") { "security-mirror" } else { "mirror" };
            Some(format!(
                "run `lockship build --upgrade-base` to move to the versions the suite has now, or set `{key}` in [tool.lockship.base] to a snapshot archive that still has it (https://snapshot.debian.org)"
            ))
        }
        DebianError::NoArchive { .. } => Some(
            "set `mirror` or `security-mirror` in [tool.lockship.base] (or add the archive to the host's apt sources), or run `lockship build --upgrade-base` to resolve against the archives configured here".into(),
        ),
        DebianError::NoPython => Some("add python3 to `packages` in [tool.lockship.base]".into()),
        DebianError::NoArchitecture { .. } => Some("build for one of the platforms listed (--platform, `platforms`), or use a suite that has this one".into()),
        DebianError::Download { source: DownloadError::Mismatch { .. }, .. } => Some(
            "the mirror served a file whose hash differs from the signed index or the base lock: do not trust this mirror, or refresh with --upgrade-base".into(),
        ),
        DebianError::Lock { .. } => Some("delete lockship-base.lock to resolve the base again".into()),
        DebianError::Io { .. } | DebianError::Store(_) | DebianError::Layer(_) => Some(CACHE.into()),
        _ => None,
    }
}

fn relock_hint(path: &Path) -> String {
    let kind = crate::lock_command::kind_of(path).unwrap_or(LockKind::RequirementsTxt);
    format!(
        "run `lockship lock` (or `{}`) to update it",
        crate::lock_command::own_relock(kind)
    )
}

/// For a failure to read or write the cache or an output.
pub(crate) const CACHE: &str =
    "check free space and permissions of the cache (LOCKSHIP_CACHE_DIR) and output paths";

#[cfg(test)]
mod tests {
    use super::*;
    use lockship_net::url::redact;

    #[test]
    fn a_security_archive_problem_names_security_mirror() {
        let gone = |archive: &str| {
            debian(&DebianError::Gone {
                package: "libssl3".into(),
                archive: archive.into(),
                mirror: redact("http://mirror.example/debian"),
            })
            .unwrap()
        };
        assert!(gone("bookworm-security").contains("set `security-mirror` in"));
        assert!(gone("bookworm-updates").contains("set `mirror` in"));
        let unknown = |suite: &str| {
            debian(&DebianError::UnknownSuite {
                suite: suite.into(),
                mirror: redact("http://mirror.example/debian"),
                message: "404".into(),
            })
            .unwrap()
        };
        assert!(unknown("bookworm-security").starts_with("check `security-mirror`"));
        assert!(unknown("bookworm").starts_with("check `debian`"));
    }
}
