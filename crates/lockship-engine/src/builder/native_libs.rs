//! The shared-library check, once the layers are produced: every ELF file of every locked
//! wheel must find the libraries it needs in the image (see `python::native`). Each wheel's ELF
//! facts are cached by its sha256 and the base's library names by the base, so a rebuild reads
//! neither; a pure-Python image never reads the base for it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use futures::{StreamExt, TryStreamExt};

use crate::cache_dir::Bucket;
use crate::error::Error;
use crate::plan::LayerContent;
use lockship_oci::digest::Digest;
use lockship_oci::unpack;
use lockship_python::fetch;
use lockship_python::native::{self, NativeError, NativeFacts};
use lockship_python::select::ChosenWheel;

use super::base::{BaseSource, ResolvedBase};
use super::cache::{read_cached, write_cached};
use super::prepare::Prepared;
use super::registry_cache::{app_record_key, CacheRecord};
use super::Session;

/// Fails the build when a locked wheel's native code needs a library the image lacks. Returns
/// what the image records for later builds (see `registry_cache`): the base's facts and every
/// wheel's ELF facts, whether read here, from the cache or from the registry.
pub(super) async fn check_libraries(
    session: &Session<'_>,
    prepared: &Prepared,
    app: Option<&(String, NativeFacts)>,
    source: &dyn BaseSource,
) -> Result<CacheRecord, Error> {
    let bucket = Bucket::Native.under(&session.opts.cache_dir);
    let app_key = prepared
        .plan
        .layers
        .iter()
        .find(|l| matches!(l.content, LayerContent::AppWheel { .. }))
        .map(|l| l.key.clone());
    // The app layer came from a cache: its wheel's facts were kept when it was written (the
    // layer is taken from a cache only with them).
    let kept: Option<(String, NativeFacts)> = match (app, &app_key) {
        (None, Some(key)) => read_cached(&app_facts_entry(&bucket, key)).or_else(|| {
            session
                .remote
                .native(&app_record_key(key))
                .map(|f| (prepared.project.name.clone(), f.clone()))
        }),
        _ => None,
    };
    let app = app.or(kept.as_ref());
    let wheels: Vec<&ChosenWheel> = prepared
        .plan
        .layers
        .iter()
        .flat_map(|l| match &l.content {
            LayerContent::Wheels { wheels, .. } => wheels.iter().collect(),
            _ => Vec::new(),
        })
        .collect();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let facts: Vec<NativeFacts> =
        futures::stream::iter(wheels.iter().map(|w| wheel_facts(session, w, &bucket)))
            .buffered(cores)
            .try_collect()
            .await?;
    let mut record = CacheRecord::default();
    if prepared.base.reference.is_some() {
        record.bases.insert(
            prepared.base.digest_label.1.clone(),
            prepared.base.facts.clone(),
        );
    }
    for (wheel, f) in wheels.iter().zip(&facts) {
        record
            .native
            .insert(wheel.wheel.sha256.hex().to_string(), f.clone());
    }
    if let (Some((_, f)), Some(key)) = (app, &app_key) {
        record.native.insert(app_record_key(key), f.clone());
    }
    if facts
        .iter()
        .chain(app.map(|(_, f)| f))
        .all(|f| f.objects.is_empty())
    {
        return Ok(record);
    }
    let base = match &prepared.base.facts.libraries {
        Some(names) => names.clone(),
        None => base_libraries(session, &prepared.base, source).await?,
    };
    let installed: Vec<(String, &NativeFacts)> = wheels
        .iter()
        .zip(&facts)
        .map(|(w, f)| (format!("{} {}", w.name, w.version), f))
        .chain(app.map(|(name, f)| (name.clone(), f)))
        .collect();
    let missing = native::missing_libraries(&installed, &base);
    if missing.is_empty() {
        return Ok(record);
    }
    let mut error = native::missing_error(&missing);
    if let NativeError::Missing {
        library,
        provided_by,
        ..
    } = &mut error
    {
        let wanted: BTreeSet<String> = [library.clone()].into();
        *provided_by = source
            .library_providers(&wanted, session.store, session.reporter)
            .await
            .remove(library.as_str());
    }
    Err(error.into())
}

/// Reads and caches the ELF facts of `wheel`, in the store at `path`, unless cached: the layer
/// writer calls it right after writing the wheel's layer, so the check finds them ready.
pub(super) fn cache_facts(bucket: &Path, path: &Path, wheel: &ChosenWheel) -> Result<(), Error> {
    let entry = facts_entry(bucket, wheel);
    if entry.is_file() {
        return Ok(());
    }
    let facts = native::scan_wheel(path, &wheel.wheel.filename)?;
    write_cached(&entry, &facts)
}

/// The ELF facts of the app wheel at `path`, named `name version` (from its file name) for
/// the check's messages.
pub(super) fn app_facts(path: &Path) -> Result<(String, NativeFacts), Error> {
    let filename = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut parts = filename.splitn(3, '-');
    let package = match (parts.next(), parts.next()) {
        (Some(name), Some(version)) => format!("{name} {version}"),
        _ => filename.clone(),
    };
    Ok((package, native::scan_wheel(path, &filename)?))
}

/// Where the app wheel's facts are kept: by its layer's key, so that a build taking the layer
/// from the cache checks the app's extensions against its base too.
pub(super) fn app_facts_entry(bucket: &Path, layer_key: &str) -> PathBuf {
    bucket.join(format!("app-{layer_key}.json"))
}

/// Where the ELF facts of `wheel` are cached: by its sha256.
fn facts_entry(bucket: &Path, wheel: &ChosenWheel) -> PathBuf {
    bucket.join(format!("{}.json", wheel.wheel.sha256.hex()))
}

/// The ELF facts of one wheel: cached, or read from the wheel (checked against its hash).
async fn wheel_facts(
    session: &Session<'_>,
    wheel: &ChosenWheel,
    bucket: &Path,
) -> Result<NativeFacts, Error> {
    let entry = facts_entry(bucket, wheel);
    if let Some(facts) = read_cached::<NativeFacts>(&entry) {
        return Ok(facts);
    }
    if let Some(facts) = session.remote.native(wheel.wheel.sha256.hex()) {
        return Ok(facts.clone());
    }
    // In the store unless its layer came from the cache and the wheel was evicted since;
    // fetch_one hashes what the store has and fetches it again if it is damaged.
    fetch::fetch_one(session.http, wheel, session.store).await?;
    let (path, name) = (
        session.store.path(&wheel.wheel.sha256),
        wheel.wheel.filename.clone(),
    );
    let facts = tokio::task::spawn_blocking(move || native::scan_wheel(&path, &name))
        .await
        .map_err(|e| Error::Usage(format!("ELF reader crashed: {e}")))??;
    write_cached(&entry, &facts)?;
    Ok(facts)
}

/// The file names in the base's library directories, cached by the exact base.
async fn base_libraries(
    session: &Session<'_>,
    base: &ResolvedBase,
    source: &dyn BaseSource,
) -> Result<BTreeSet<String>, Error> {
    let key = Digest::of_parts(["lockship-base-libraries-v1", &base.pinned]);
    let entry = Bucket::Bases
        .under(&session.opts.cache_dir)
        .join(format!("{}.libraries.json", key.hex()));
    if let Some(names) = read_cached::<BTreeSet<String>>(&entry) {
        return Ok(names);
    }
    source.fetch_layers(base, session.store).await?;
    let layers = base.layer_files(session.store);
    let paths = tokio::task::spawn_blocking(move || {
        unpack::merged_paths(&layers, &|p| {
            p.rsplit_once('/')
                .is_some_and(|(dir, _)| native::is_library_dir(dir))
        })
    })
    .await
    .map_err(|e| Error::Usage(format!("base reader crashed: {e}")))??;
    let names: BTreeSet<String> = paths
        .iter()
        .filter_map(|p| p.rsplit('/').next().map(String::from))
        .collect();
    write_cached(&entry, &names)?;
    Ok(names)
}
