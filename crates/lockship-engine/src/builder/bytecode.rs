//! The interpreter that compiles the image's bytecode: the base's own, unpacked once per base
//! into the cache (`interpreters/`), or, for an image of another architecture, the same base's
//! variant for the host's (bytecode does not depend on the architecture, only on the Python).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::LocalBoxFuture;

use crate::cache_dir::Bucket;
use crate::error::Error;
use lockship_oci::blob_store::BlobStore;
use lockship_oci::digest::Digest;
use lockship_oci::layer::Compression;
use lockship_oci::platform::Platform;
use lockship_python::bytecode::{self, Interpreter, PycMemo};
use lockship_python::target::PythonTarget;
use lockship_sys::interrupt::Children;
use lockship_sys::scratch::ScratchDir;

use super::base::{BaseSource, ResolvedBase};
use super::cache::io_err;
use super::registry_cache::InterpreterPacking;
use super::shared_wheels::{INTERPRETER_TYPE, INTERPRETER_TYPE_GZIP};
use super::Session;

/// What the layer writers need to compile a layer's sources.
pub(super) struct Compiler {
    pub interpreter: Interpreter,
    pub children: Children,
    /// Compile processes per layer.
    pub workers: usize,
    /// Pycs an earlier platform of this run compiled.
    pub memo: Option<PycMemo>,
}

/// The compiler, made on first use (once, however many layers ask at the same time), so that
/// unpacking the interpreter overlaps the downloads that come before the first compile.
pub(super) struct CompilerSlot<'a> {
    cell: tokio::sync::OnceCell<Arc<Compiler>>,
    #[allow(clippy::type_complexity)]
    make: Box<dyn Fn() -> LocalBoxFuture<'a, Result<Arc<Compiler>, Error>> + 'a>,
}

impl<'a> CompilerSlot<'a> {
    pub fn new(make: impl Fn() -> LocalBoxFuture<'a, Result<Arc<Compiler>, Error>> + 'a) -> Self {
        CompilerSlot {
            cell: tokio::sync::OnceCell::new(),
            make: Box::new(make),
        }
    }

    pub async fn get(&self) -> Result<Arc<Compiler>, Error> {
        self.cell.get_or_try_init(|| (self.make)()).await.cloned()
    }

    /// The compiler, if it was made.
    pub fn made(&self) -> Option<Arc<Compiler>> {
        self.cell.get().cloned()
    }
}

/// The base whose interpreter compiles `target`'s bytecode when it is not `base` itself: for
/// an image of another architecture, the base's variant for this machine (None when the base
/// has none: [`compiler`] then says so, if anything is left to compile).
pub(super) async fn host_variant(
    session: &Session<'_>,
    target: &PythonTarget,
    source: &dyn BaseSource,
) -> Result<Option<ResolvedBase>, Error> {
    let host = Platform::host();
    if target.architecture == host.architecture {
        return Ok(None);
    }
    let Some(host_source) = source.for_host() else {
        return Ok(None);
    };
    session.reporter.step(&format!(
        "resolving the base for {host} to compile bytecode with"
    ));
    Ok(Some(
        host_source
            .resolve(session.store, session.reporter, session.remote)
            .await?,
    ))
}

/// What identifies the interpreter that compiles bytecode from `base`, for the keys of the
/// layers it compiles: the base's layers (their diff ids: the files the interpreter and what
/// it loads are unpacked from, however the base is named or configured) and its path there.
/// Pycs are whatever that interpreter writes: another base's, however alike, gets other keys.
pub(super) fn identity(base: &ResolvedBase) -> String {
    let layers = base.layers.iter().map(|l| l.info.diff_id.to_string());
    let parts = [
        "lockship-compiled-by-v1".to_string(),
        base.facts.interpreter.clone(),
    ];
    Digest::of_parts(parts.into_iter().chain(layers)).to_string()
}

/// The interpreter for `target`'s bytecode, from `base` (read from `source`), or, for an
/// image of another architecture, from `host_base` (see [`host_variant`]).
pub(super) async fn compiler(
    session: &Session<'_>,
    target: &PythonTarget,
    base: &ResolvedBase,
    host_base: Option<&ResolvedBase>,
    source: &dyn BaseSource,
) -> Result<Arc<Compiler>, Error> {
    let host = Platform::host();
    let host_source;
    let (source, base) = if target.architecture == host.architecture {
        (source, base.clone())
    } else {
        let unavailable = || {
            Error::Usage(format!(
                "bytecode for {} needs the base's variant for this machine's {}, and this base has no other variants to ask for",
                target.architecture, host.architecture
            ))
        };
        host_source = source.for_host().ok_or_else(unavailable)?;
        let host_base = host_base.ok_or_else(unavailable)?.clone();
        (host_source.as_ref(), host_base)
    };
    let (major, minor, _) = target.version;
    let dir = interpreter_dir(&session.opts.cache_dir, &base);
    if dir.is_dir() {
        lockship_sys::cache_lock::touch(&dir);
    } else if from_registry(session, &base, (major, minor), &dir).await {
        // Another build shared it: a fraction of the base's layers to fetch and unpack.
    } else {
        session.reporter.step(&format!(
            "unpacking {} from the base to compile bytecode with",
            base.facts.interpreter
        ));
        source.fetch_layers(&base, session.store).await?;
        let layers = base.layer_files(session.store);
        let (interpreter, dest) = (base.facts.interpreter.clone(), dir.clone());
        tokio::task::spawn_blocking(move || {
            unpack(&layers, &interpreter, (major, minor), &dest, false)
        })
        .await
        .map_err(|e| Error::Usage(format!("interpreter unpacking crashed: {e}")))??;
    }
    let children = Children::default();
    let (interpreter, children2) = (base.facts.interpreter.clone(), children.clone());
    // What the interpreter said of itself the first time: one process start less per build.
    let probe = dir.with_extension("probe.json");
    let known = super::cache::read_cached::<((u8, u8, u8), String)>(&probe);
    let asked = known.is_none();
    let interpreter = tokio::task::spawn_blocking(move || {
        Interpreter::open_known(&dir, &interpreter, (major, minor), &children2, known)
    })
    .await
    .map_err(|e| Error::Usage(format!("interpreter check crashed: {e}")))??;
    if asked {
        let answer = (interpreter.version, interpreter.cache_tag.clone());
        super::cache::write_cached(&probe, &answer)?;
    }
    if !interpreter.confined() {
        session.reporter.warn(
            "this kernel has no Landlock: the base's interpreter compiles bytecode without its \
             file system confined (it can write where lockship can); build only with bases you \
             trust, or with --no-bytecode",
        );
    }
    // Shared only when it compiled the target's own base (not its host variant).
    if target.architecture == host.architecture {
        start_packing(session, &base);
    }
    Ok(Arc::new(Compiler {
        interpreter,
        children,
        workers: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2),
        memo: session.pycs.cloned(),
    }))
}

/// The key of `base`'s interpreter: its directory here, and its layer shared with the registry.
fn interpreter_key(base: &ResolvedBase) -> String {
    key_of(&base.pinned, &base.facts.interpreter)
}

/// [`interpreter_key`] of the base pinned as `pinned` whose interpreter is `interpreter`.
fn key_of(pinned: &str, interpreter: &str) -> String {
    Digest::of_parts([
        // v3: without the standard library a compile worker never imports; shared with zstd.
        "lockship-interpreter-v3",
        pinned,
        interpreter,
    ])
    .hex()
    .to_string()
}

/// Where the interpreter of `base` is unpacked: one directory per exact base.
fn interpreter_dir(cache_dir: &Path, base: &ResolvedBase) -> PathBuf {
    interpreter_dir_of(cache_dir, &base.pinned, &base.facts.interpreter)
}

/// [`interpreter_dir`] of the base pinned as `pinned`.
fn interpreter_dir_of(cache_dir: &Path, pinned: &str, interpreter: &str) -> PathBuf {
    Bucket::Interpreters
        .under(cache_dir)
        .join(key_of(pinned, interpreter))
}

/// Probes the base whose layers are `layers` (see `probe::probe_unpacking`), unpacking its
/// interpreter on the way into the cache at `cache_dir`, where [`compiler`] finds it: into a
/// scratch directory renamed into place once the probe says which interpreter it is, so a
/// killed run leaves nothing half-unpacked. An interpreter that could not be unpacked whole
/// is not kept: the bytecode step unpacks it on its own and says why, if it cannot. Blocking.
pub(super) fn probe_unpacking(
    cache_dir: &Path,
    pinned: &str,
    name: &str,
    layers: &[PathBuf],
    env: &[String],
) -> Result<lockship_python::probe::BaseFacts, Error> {
    let parent = Bucket::Interpreters.under(cache_dir);
    let scratch = fs_err::create_dir_all(&parent)
        .ok()
        .and_then(|()| ScratchDir::new_in(&parent).ok());
    let into = scratch.as_ref().map(|s| s.path());
    let (facts, unpacked) = lockship_python::probe::probe_unpacking(name, layers, env, into)?;
    if let (Some(scratch), true) = (scratch, unpacked) {
        let dir = interpreter_dir_of(cache_dir, pinned, &facts.interpreter);
        // A concurrent build that got there first wins; a failure only costs unpacking again.
        if !dir.is_dir() {
            let _ = scratch.persist(&dir);
        }
    }
    Ok(facts)
}

/// The interpreter another build shared through the registry (see `shared_wheels`), unpacked
/// into `dir` as it would be from the base's layers (the same selection, the same safe
/// unpacking) and started once before it is kept; false when no image read has it, it cannot
/// be fetched, unpacked or started (then it comes from the base). It is run on this machine,
/// so it is taken only from a repository this build pushes to: whoever could plant it there
/// could replace the image itself.
async fn from_registry(
    session: &Session<'_>,
    base: &ResolvedBase,
    version: (u8, u8),
    dir: &Path,
) -> bool {
    let Ok((targets, cache_to)) = super::written_references(session.opts) else {
        return false;
    };
    let key = interpreter_key(base);
    let found = session
        .remote
        .shared(session.registry, session.store, session.reporter)
        .await;
    let Some((from, blob)) = found.interpreter(&key) else {
        return false;
    };
    let ours = targets
        .iter()
        .chain(&cache_to)
        .any(|t| super::registry_cache::same_repository(t, from));
    if !ours || blob.size > MAX_SHARED_INTERPRETER {
        return false;
    }
    session.reporter.step(&format!(
        "unpacking {} shared with {from} to compile bytecode with",
        base.facts.interpreter
    ));
    let what = format!("the interpreter shared with {from}");
    let fetched = session
        .registry
        .fetch_blob(from, &blob.digest, Some(blob.size), &what, session.store)
        .await;
    if let Err(e) = fetched {
        session.reporter.warn(&format!(
            "{what} could not be fetched ({e}): taking it from the base"
        ));
        return false;
    }
    // Unpacked as its bytes say (gzip or zstd), whatever its label.
    let layers = vec![session.store.path(&blob.digest)];
    let (interpreter, dest) = (base.facts.interpreter.clone(), dir.to_path_buf());
    let unpacked =
        tokio::task::spawn_blocking(move || unpack(&layers, &interpreter, version, &dest, true))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
    if let Err(e) = unpacked {
        session.reporter.warn(&format!(
            "{what} cannot be used ({e}): taking it from the base"
        ));
        return false;
    }
    let shared = SharedLayer {
        digest: blob.digest.clone(),
        size: blob.size,
        media_type: blob.media_type.clone(),
    };
    // Shared on from here as it came; a failure to remember it only means writing it again.
    let _ = super::cache::write_cached(&dir.with_extension("layer.json"), &shared);
    true
}

/// The largest shared interpreter layer taken (Debian's Python 3.11 is ~9 MiB).
const MAX_SHARED_INTERPRETER: u64 = 512 << 20;

/// Packs `base`'s interpreter for sharing (see [`shareable_interpreter`]) in the background
/// when this build will push and has not packed it before: the layer is ready by the time
/// the image is pushed, instead of being written then. Single-platform builds only, the ones
/// that share an interpreter.
fn start_packing(session: &Session<'_>, base: &ResolvedBase) {
    let pushes = super::written_references(session.opts)
        .is_ok_and(|(targets, cache_to)| !targets.is_empty() || !cache_to.is_empty());
    if !pushes
        || !session.single_platform
        || packed(session.opts.cache_dir.as_path(), session.store, base).is_some()
    {
        return;
    }
    session
        .remote
        .packing_interpreter(interpreter_key(base), spawn_packing(session, base));
}

/// [`shareable_interpreter_in`] for `base`, on a blocking thread.
fn spawn_packing(session: &Session<'_>, base: &ResolvedBase) -> InterpreterPacking {
    let (cache_dir, store, base) = (
        session.opts.cache_dir.clone(),
        session.store.clone(),
        base.clone(),
    );
    tokio::task::spawn_blocking(move || shareable_interpreter_in(&cache_dir, &store, &base))
}

/// The interpreter layer packed for `base` before (or fetched as shared), if the store still
/// holds it and it is labelled as lockship labels them.
fn packed(cache_dir: &Path, store: &BlobStore, base: &ResolvedBase) -> Option<SharedLayer> {
    let entry = interpreter_dir(cache_dir, base).with_extension("layer.json");
    super::cache::read_cached::<SharedLayer>(&entry).filter(|s| {
        [INTERPRETER_TYPE, INTERPRETER_TYPE_GZIP].contains(&s.media_type.as_str())
            && store.contains(&s.digest)
    })
}

/// The interpreter this machine unpacked for `base`, as one layer (zstd: it is written once per
/// base and only read by lockship on other runners), for sharing through the registry; the
/// layer is kept in the store and remembered beside the directory. None when bytecode was not
/// compiled here for `base` (off, or compiled by the host variant of a foreign-arch base).
/// Packed in the background as soon as the interpreter was ready, when this build started it.
pub(super) async fn shareable_interpreter(
    session: &Session<'_>,
    base: &ResolvedBase,
) -> Option<(String, SharedLayer)> {
    if let Some(packing) = session.remote.take_packing(&interpreter_key(base)) {
        if let Ok(packed) = packing.await {
            return packed;
        }
    }
    spawn_packing(session, base).await.ok().flatten()
}

/// [`shareable_interpreter`] of the cache at `cache_dir`, with its blobs in `store`.
pub(super) fn shareable_interpreter_in(
    cache_dir: &Path,
    store: &BlobStore,
    base: &ResolvedBase,
) -> Option<(String, SharedLayer)> {
    let key = interpreter_key(base);
    let dir = interpreter_dir(cache_dir, base);
    if !dir.is_dir() {
        return None;
    }
    let entry = dir.with_extension("layer.json");
    if let Some(shared) = packed(cache_dir, store, base) {
        return Some((key, shared));
    }
    let mut tree = lockship_oci::tar_tree::TarTree::new();
    for rel in bytecode::worker_files(&dir).ok()? {
        let path = rel.to_string_lossy().into_owned();
        tree.add_host_path_exact(&dir.join(&rel), &path).ok()?;
    }
    // zstd, not gzip: a fifth of the time to pack (on the build that shares it), faster to
    // unpack, and smaller.
    let info = lockship_oci::layer::write_layer_as(&tree, 0, store, Compression::Zstd).ok()?;
    let shared = SharedLayer {
        digest: info.digest,
        size: info.size,
        media_type: INTERPRETER_TYPE.to_string(),
    };
    super::cache::write_cached(&entry, &shared).ok()?;
    Some((key, shared))
}

/// An interpreter's layer as shared (or as fetched from the registry): remembered beside its
/// directory, so that a runner shares the very blob it fetched, not a layer written again.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct SharedLayer {
    pub digest: Digest,
    pub size: u64,
    /// How it is packed: [`INTERPRETER_TYPE`], or the gzip of lockship before it (what an
    /// entry without this field holds).
    #[serde(default = "gzip_interpreter")]
    pub media_type: String,
}

fn gzip_interpreter() -> String {
    INTERPRETER_TYPE_GZIP.to_string()
}

/// Unpacks into a scratch directory beside `dest` and renames it into place, so a killed run
/// leaves nothing half-unpacked; a concurrent build that got there first wins.
/// With `started`, the interpreter is run once where it was unpacked, at that version, and
/// one that does not run is never kept.
fn unpack(
    layers: &[PathBuf],
    interpreter: &str,
    (major, minor): (u8, u8),
    dest: &Path,
    started: bool,
) -> Result<(), Error> {
    let parent = dest.parent().unwrap_or(dest);
    fs_err::create_dir_all(parent).map_err(io_err(parent))?;
    let scratch = ScratchDir::new_in(parent).map_err(io_err(parent))?;
    bytecode::unpack_interpreter(layers, interpreter, minor, scratch.path())?;
    if started {
        Interpreter::open(
            scratch.path(),
            interpreter,
            (major, minor),
            &Children::default(),
        )?;
    }
    match scratch.persist(dest) {
        Ok(()) => Ok(()),
        Err(_) if dest.is_dir() => Ok(()),
        Err(e) => Err(io_err(dest)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interpreter_packed_before_zstd_is_shared_on_as_gzip() {
        let digest = Digest::of_bytes(b"layer");
        let old: SharedLayer =
            serde_json::from_str(&format!(r#"{{"digest":"{digest}","size":5}}"#)).unwrap();
        assert_eq!(old.media_type, INTERPRETER_TYPE_GZIP);
    }
}
