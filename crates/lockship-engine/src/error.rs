//! The error of a whole build: each variant is a module's own typed error, and `hint()` says
//! what the user can do about it.

use std::path::PathBuf;

use crate::hints;

use crate::project::ProjectError;
use lockship_oci::blob_store::BlobStoreError;
use lockship_oci::layer::LayerError;
use lockship_oci::layout::OutputError;
use lockship_oci::layout_image::LayoutReadError;
use lockship_oci::registry::RegistryError;
use lockship_python::app::AppError;
use lockship_python::bytecode::BytecodeError;
use lockship_python::fetch::FetchError;
use lockship_python::index::IndexError;
use lockship_python::install::InstallError;
use lockship_python::lock::LockError;
use lockship_python::native::NativeError;
use lockship_python::probe::ProbeError;
use lockship_python::select::NoWheelError;
use lockship_python::target::TargetError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Project(#[from] ProjectError),
    #[error(transparent)]
    Lock(#[from] LockError),
    /// Boxed: registry errors carry the network error that ended the request.
    #[error(transparent)]
    Registry(Box<RegistryError>),
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
    Bytecode(#[from] BytecodeError),
    /// Boxed: a missing library names the package, the module, the library and its provider.
    #[error(transparent)]
    Native(Box<NativeError>),
    /// Boxed: a failed build carries the tail of its log.
    #[error(transparent)]
    Builder(Box<crate::container_build::BuilderError>),
    #[error(transparent)]
    Unpack(#[from] lockship_oci::unpack::UnpackError),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error(transparent)]
    LayoutBase(#[from] LayoutReadError),
    #[error(transparent)]
    Store(#[from] BlobStoreError),
    #[error(transparent)]
    Tarball(lockship_oci::docker_tar::TarballReadError),
    #[error(transparent)]
    Client(#[from] lockship_net::ClientError),
    /// Built again without the registry cache before it reaches the user (see `build_image`).
    #[error("cannot fetch cached layer {digest} from {from}: {source}")]
    CachedLayerGone {
        from: String,
        digest: String,
        #[source]
        source: Box<RegistryError>,
    },
    #[error("cannot read layer {digest} of {image}: {message}")]
    LayerUnreadable {
        image: String,
        digest: String,
        message: String,
    },
    #[error("cannot read {path}: {message}")]
    Unreadable { path: PathBuf, message: String },
    /// Boxed: Debian errors carry download context and would bloat every `Result`.
    #[error(transparent)]
    Debian(Box<lockship_debian::DebianError>),
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Smoke(#[from] crate::smoke::SmokeError),
    #[error(transparent)]
    Relock(#[from] crate::lock_command::RelockError),
    #[error("{source} (already pushed: {pushed})")]
    PartialPush {
        /// The references whose tags moved before the failure.
        pushed: String,
        #[source]
        source: Box<RegistryError>,
    },
    /// Something failed for one platform of a multi-platform build.
    #[error("{platform}: {source}")]
    Platform {
        platform: String,
        #[source]
        source: Box<Error>,
    },
    #[error("{} is not a lockship cache (it has no blobs/sha256)", dir.display())]
    NotACache { dir: PathBuf },
    #[error("{0}")]
    Usage(String),
}

impl Error {
    /// A one-line suggestion for fixing the problem, when there is one.
    pub fn hint(&self) -> Option<String> {
        // HTTPS could not be set up, whichever request found out first.
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(e) = cause {
            if let Some(lockship_net::NetError::Tls { .. }) = e.downcast_ref() {
                return Some(CA_HINT.into());
            }
            cause = e.source();
        }
        match self {
            Error::Project(e) => e.hint(),
            Error::Lock(e) => hints::lock(e),
            Error::Registry(e) => hints::registry(e),
            Error::Probe(e) => hints::probe(e),
            Error::Index(e) => hints::index(e),
            Error::NoWheel(e) => hints::no_wheel(e),
            Error::Fetch(e) => hints::fetch(e),
            Error::App(e) => hints::app(e),
            Error::Bytecode(e) => hints::bytecode(e),
            Error::Native(e) => hints::native(e),
            Error::Builder(e) => e.hint(),
            Error::Debian(e) => hints::debian(e),
            Error::Smoke(e) => e.hint(),
            Error::Relock(e) => e.hint(),
            Error::Output(e) => hints::output(e),
            Error::LayoutBase(e) => hints::layout_base(e),
            Error::Client(_) => Some(CA_HINT.into()),
            Error::Tarball(_) => Some(
                "`docker:FILE` names a tarball as `docker save` or `lockship build --output docker:FILE` writes it; write it again if it was cut short".into(),
            ),
            Error::PartialPush { .. } => Some(
                "the references listed as pushed already point at the new image; run the build again to push the rest (blobs already there are skipped)".into(),
            ),
            Error::Platform { source, .. } => source.hint(),
            Error::NotACache { .. } => Some(
                "name the directory builds use: --cache-dir, else LOCKSHIP_CACHE_DIR, else ~/.cache/lockship".into(),
            ),
            Error::Store(_) | Error::Io { .. } | Error::Unpack(_) => {
                Some(hints::CACHE.into())
            }
            _ => None,
        }
    }

    /// Whether the build failed on a layer a registry listed but did not hand over.
    pub fn is_cached_layer_gone(&self) -> bool {
        match self {
            Error::CachedLayerGone { .. } => true,
            Error::Platform { source, .. } => source.is_cached_layer_gone(),
            _ => false,
        }
    }

    /// Whether the build failed on a cache entry damaged on disk. The entry is already evicted,
    /// so building again fetches or builds it afresh.
    pub fn is_corrupt_cache(&self) -> bool {
        match self {
            Error::Store(e) => e.is_corrupt(),
            Error::Registry(e) => e.is_corrupt_cache(),
            Error::Output(e) => e.is_corrupt_cache(),
            Error::LayoutBase(LayoutReadError::Store(e)) => e.is_corrupt(),
            Error::Layer(LayerError::Store(e)) => e.is_corrupt(),
            Error::Platform { source, .. } => source.is_corrupt_cache(),
            _ => false,
        }
    }
}

/// What to do when no CA certificate could be read.
const CA_HINT: &str = "SSL_CERT_FILE and SSL_CERT_DIR, when set, must name PEM CA certificates (a bundle file, a directory of them); unset them to use the system's store";

impl From<RegistryError> for Error {
    fn from(e: RegistryError) -> Self {
        Error::Registry(Box::new(e))
    }
}

impl From<NativeError> for Error {
    fn from(e: NativeError) -> Self {
        Error::Native(Box::new(e))
    }
}

impl From<crate::container_build::BuilderError> for Error {
    fn from(e: crate::container_build::BuilderError) -> Self {
        Error::Builder(Box::new(e))
    }
}

impl From<lockship_debian::DebianError> for Error {
    fn from(e: lockship_debian::DebianError) -> Self {
        Error::Debian(Box::new(e))
    }
}
