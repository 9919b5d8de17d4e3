//! Downloads chosen wheels into the content-addressed cache, verifying each against
//! the lock's SHA-256 as it streams; a mismatch aborts and caches nothing. A wheel the lock
//! names by a local path (a `file:` URL) is copied the same way, and only from inside the
//! project ([`check_local`]).

use std::path::{Path, PathBuf};

use super::select::ChosenWheel;
use lockship_net::url::Redacted;
use lockship_net::{Http, NetError};
use lockship_oci::blob_store::{BlobStore, BlobStoreError};
use lockship_oci::digest::Digest;
use lockship_oci::download::{self, DownloadError};

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("hash mismatch for {package} {version} ({url}): the lock says {expected}, the download is {actual}")]
    HashMismatch {
        package: String,
        version: String,
        url: Redacted,
        expected: Digest,
        actual: Digest,
    },
    #[error("{url} refused the download of {package} {version} (HTTP {status}); lockship sent {credentials}")]
    Refused {
        package: String,
        version: String,
        url: Redacted,
        status: u16,
        /// Which credentials went, or where lockship looked for them (never a secret).
        credentials: String,
    },
    #[error("cannot download {package} {version}: {source}")]
    Download {
        package: String,
        version: String,
        #[source]
        source: NetError,
    },
    #[error("cannot read {package} {version} from {path}: {source}")]
    Local {
        package: String,
        version: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the lock takes {package} {version} from {path}, outside the project {project}")]
    OutsideProject {
        package: String,
        version: String,
        path: PathBuf,
        project: PathBuf,
    },
    #[error(transparent)]
    Store(BlobStoreError),
}

/// The file a wheel's `file:` URL names, if it is one.
fn local_path(url: &str) -> Option<PathBuf> {
    if !url.starts_with("file:") {
        return None;
    }
    // A file URL that names no usable path yields an empty one, which nothing opens.
    Some(
        ::url::Url::parse(url)
            .ok()
            .and_then(|u| u.to_file_path().ok())
            .unwrap_or_default(),
    )
}

/// Refuses a wheel named by a local path that leads outside `project` (after following links):
/// a lock from elsewhere does not get to read the host's files into an image.
pub fn check_local(project: &Path, wheel: &ChosenWheel) -> Result<(), FetchError> {
    let Some(path) = local_path(&wheel.wheel.url) else {
        return Ok(());
    };
    let error = |source: std::io::Error| FetchError::Local {
        package: wheel.name.clone(),
        version: wheel.version.clone(),
        path: path.clone(),
        source,
    };
    if !lockship_sys::confine::resolves_inside(&path, project).map_err(error)? {
        return Err(FetchError::OutsideProject {
            package: wheel.name.clone(),
            version: wheel.version.clone(),
            path,
            project: project.to_path_buf(),
        });
    }
    Ok(())
}

/// Copies a local wheel into the store, checked against the lock's hash.
fn copy_local(path: &Path, wheel: &ChosenWheel, store: &BlobStore) -> Result<(), FetchError> {
    let error = |source: std::io::Error| FetchError::Local {
        package: wheel.name.clone(),
        version: wheel.version.clone(),
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(error)?;
    let mut pending = store.begin().map_err(FetchError::Store)?;
    std::io::copy(&mut file, &mut pending).map_err(error)?;
    match store.commit(pending, Some(&wheel.wheel.sha256), &wheel.wheel.filename) {
        Ok(_) => Ok(()),
        Err(BlobStoreError::DigestMismatch {
            expected, actual, ..
        }) => Err(FetchError::HashMismatch {
            package: wheel.name.clone(),
            version: wheel.version.clone(),
            url: lockship_net::url::redact(&wheel.wheel.url),
            expected,
            actual,
        }),
        Err(e) => Err(FetchError::Store(e)),
    }
}

/// Downloads one wheel unless the store has it intact. Returns whether it was downloaded.
pub async fn fetch_one(
    http: &Http,
    wheel: &ChosenWheel,
    store: &BlobStore,
) -> Result<bool, FetchError> {
    let what = &wheel.wheel.filename;
    if store
        .verify(&wheel.wheel.sha256, what)
        .map_err(FetchError::Store)?
    {
        return Ok(false);
    }
    if let Some(path) = local_path(&wheel.wheel.url) {
        copy_local(&path, wheel, store)?;
        return Ok(true);
    }
    download::fetch_verified(http, &wheel.wheel.url, &wheel.wheel.sha256, what, store)
        .await
        .map_err(|e| in_context(e, wheel, http))?;
    Ok(true)
}

/// Adds which package a download failure concerns.
fn in_context(err: DownloadError, w: &ChosenWheel, http: &Http) -> FetchError {
    match err {
        DownloadError::Mismatch {
            url,
            expected,
            actual,
        } => FetchError::HashMismatch {
            package: w.name.clone(),
            version: w.version.clone(),
            url,
            expected,
            actual,
        },
        DownloadError::Net(source) if matches!(source.status(), Some(401 | 403)) => {
            FetchError::Refused {
                package: w.name.clone(),
                version: w.version.clone(),
                url: http.shown(&w.wheel.url),
                status: source.status().unwrap_or_default(),
                credentials: http.credential_note(&w.wheel.url),
            }
        }
        DownloadError::Net(source) => FetchError::Download {
            package: w.name.clone(),
            version: w.version.clone(),
            source,
        },
        DownloadError::Store(e) => FetchError::Store(e),
    }
}
