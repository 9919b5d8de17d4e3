//! The error of a whole build: each variant is a module's own typed error, and `hint()` says
//! what the user can do about it.

use std::path::PathBuf;

use crate::oci::blob_store::BlobStoreError;
use crate::oci::layer::LayerError;
use crate::oci::layout::OutputError;
use crate::oci::registry::RegistryError;
use crate::project::ProjectError;
use crate::python::app::AppError;
use crate::python::fetch::FetchError;
use crate::python::index::IndexError;
use crate::python::install::InstallError;
use crate::python::lock::LockError;
use crate::python::probe::ProbeError;
use crate::python::select::NoWheelError;
use crate::python::target::TargetError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Project(#[from] ProjectError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Probe(#[from] ProbeError),
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    NoWheel(#[from] NoWheelError),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Install(#[from] InstallError),
    #[error(transparent)]
    App(#[from] AppError),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error(transparent)]
    Store(#[from] BlobStoreError),
    /// Boxed: Debian errors carry download context and would bloat every `Result`.
    #[error(transparent)]
    Debian(Box<crate::debian::DebianError>),
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Smoke(#[from] crate::smoke::SmokeError),
    #[error(transparent)]
    Relock(#[from] crate::relock::RelockError),
    #[error("{0}")]
    Usage(String),
}

impl Error {
    /// A one-line suggestion for fixing the problem, when there is one.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Project(e) => e.hint(),
            Error::Lock(e) => e.hint(),
            Error::Registry(e) => e.hint(),
            Error::Probe(e) => e.hint(),
            Error::Index(e) => e.hint(),
            Error::NoWheel(e) => e.hint(),
            Error::Fetch(e) => e.hint(),
            Error::App(e) => e.hint(),
            Error::Debian(e) => e.hint(),
            Error::Smoke(e) => e.hint(),
            Error::Relock(e) => e.hint(),
            Error::Store(_) | Error::Io { .. } => {
                Some("check free space and permissions of the cache (LOCKSHIP_CACHE_DIR) and output paths".into())
            }
            _ => None,
        }
    }
}

impl From<crate::debian::DebianError> for Error {
    fn from(e: crate::debian::DebianError) -> Self {
        Error::Debian(Box::new(e))
    }
}
