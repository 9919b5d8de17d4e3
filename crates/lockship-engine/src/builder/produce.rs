//! Stage two: the plan's layers, taken from the cache where it has them (checked first when
//! outputs or smoke tests will read them) and produced by the pipeline where it does not.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cache_dir::Bucket;
use crate::error::Error;
use crate::plan::{LayerContent, PlannedLayer};
use lockship_oci::image::BlobOrigin;
use lockship_oci::layer::LayerInfo;

use super::app_wheel;
use super::base::BaseSource;
use super::bytecode::{compiler, CompilerSlot};
use super::cache::read_cached;
use super::layers::LayerContext;
use super::native_libs::app_facts_entry;
use super::pipeline::{self, EarlyPushes};
use super::prepare::Prepared;
use super::{BuildOptions, Session};

/// Every planned layer, ready.
pub(super) struct Produced {
    /// By plan index.
    pub layers: Vec<LayerInfo>,
    /// Whether this build wrote the layer (by plan index).
    pub fresh: Vec<bool>,
    /// Where each layer's blob is (by plan index): the local store, or a registry repository
    /// an earlier build pushed it to.
    pub origins: Vec<BlobOrigin>,
    /// Layers already uploaded while they were produced, by push target.
    pub early: EarlyPushes,
    /// The app wheel's ELF facts, when its layer was written in this build.
    pub app_facts: Option<(String, lockship_python::native::NativeFacts)>,
}

/// Whether local outputs or smoke tests will read the image's layers from the store.
pub(super) fn reads_layers(opts: &BuildOptions, prepared: &Prepared) -> bool {
    prepared.must_test || opts.outputs.iter().any(|o| o.local_path().is_some())
}

pub(super) async fn produce_layers(
    session: &Session<'_>,
    prepared: &mut Prepared,
    source: &dyn BaseSource,
) -> Result<Produced, Error> {
    let host_app = prepared.app_wheel.take();
    let prepared: &Prepared = prepared;
    let Session {
        opts,
        http,
        registry,
        store,
        reporter,
        ..
    } = *session;
    // Layers that outputs or smoke tests will read are checked now, so a damaged one is built
    // again rather than copied out; a push-only build checks what it uploads as it goes.
    let check = reads_layers(opts, prepared);
    let layer_cache = Bucket::Layers.under(&opts.cache_dir);
    let plan = &prepared.plan;
    let cache_entries: Vec<PathBuf> = plan
        .layers
        .iter()
        .map(|l| cache_entry(&layer_cache, l))
        .collect();
    let native_dir = Bucket::Native.under(&opts.cache_dir);
    let mut cached: Vec<Option<LayerInfo>> = Vec::new();
    for (entry, layer) in cache_entries.iter().zip(&plan.layers) {
        // The app layer is taken from a cache only with its wheel's ELF facts, which the
        // library check and the image's record need.
        let is_app = matches!(layer.content, LayerContent::AppWheel { .. });
        if is_app && !app_facts_entry(&native_dir, &layer.key).is_file() {
            cached.push(None);
            continue;
        }
        cached.push(from_local_cache(store, entry, layer, check)?);
    }
    // The local cache first, the registry second.
    let mut origins = vec![BlobOrigin::Local; cached.len()];
    for (i, layer) in plan.layers.iter().enumerate() {
        if cached[i].is_some() {
            continue;
        }
        if let Some(hit) = session.remote.planned(layer) {
            cached[i] = Some(hit.info.clone());
            origins[i] = BlobOrigin::Cached(hit.from.clone());
        }
    }
    let to_build: Vec<(usize, PlannedLayer)> = plan
        .layers
        .iter()
        .enumerate()
        .filter(|(i, _)| cached[*i].is_none())
        .map(|(i, l)| (i, l.clone()))
        .collect();
    if !to_build.is_empty() {
        reporter.step(&format!(
            "writing {}",
            super::counted(to_build.len(), "layer", "layers")
        ));
        let bytes = to_build
            .iter()
            .map(|(_, l)| super::pipeline::weight(l))
            .sum();
        reporter.layers_begin(to_build.len(), bytes);
    }
    // The interpreter is unpacked while the first wheels download.
    let (target, base) = (&prepared.target, &prepared.base);
    let host_base = prepared.host_base.as_ref();
    let ready = prepared.ahead.compiler.clone();
    let compiler = to_build
        .iter()
        .any(|(_, l)| l.content.has_bytecode())
        .then(|| {
            CompilerSlot::new(move || match ready.clone() {
                // Started for the layers written ahead.
                Some(made) => Box::pin(async move { Ok(made) }),
                None => Box::pin(compiler(session, target, base, host_base, source)),
            })
        });
    let ctx = Arc::new(LayerContext::new(
        session,
        &prepared.project,
        &prepared.target,
        &prepared.user,
        &prepared.workdir,
        &prepared.base.facts,
    )?);
    let early_push = prepared.early_push();
    let built = pipeline::run(
        pipeline::Jobs {
            to_build,
            cache_entries,
            ctx,
            http,
            registry,
            early_push,
            app_wheel: host_app.map(|host| {
                Box::pin(app_wheel::for_target(session, prepared, source, host))
                    as futures::future::LocalBoxFuture<'_, _>
            }),
            compiler: compiler.as_ref(),
        },
        reporter,
    )
    .await?;
    let mut fresh: Vec<bool> = plan
        .layers
        .iter()
        .map(|l| prepared.ahead.written.contains(&l.key))
        .collect();
    for (i, info) in built.layers {
        cached[i] = Some(info);
        fresh[i] = true;
    }
    let mut early = built.pushed;
    for (target, layers) in &prepared.ahead.pushed {
        early
            .entry(target.clone())
            .or_default()
            .extend(layers.iter().map(|(d, p)| (d.clone(), *p)));
    }
    Ok(Produced {
        layers: cached
            .into_iter()
            .map(|info| info.expect("every planned layer is cached or built"))
            .collect(),
        fresh,
        origins,
        early,
        app_facts: built.app_facts,
    })
}

/// Where the local cache files `layer`'s info.
pub(super) fn cache_entry(layer_cache: &Path, layer: &PlannedLayer) -> PathBuf {
    layer_cache.join(format!("{}.json", layer.key))
}

/// `layer` as the local cache holds it at `entry`, its blob in the store (read through and
/// checked against its digest with `check`); None when it is not all there.
pub(super) fn from_local_cache(
    store: &lockship_oci::blob_store::BlobStore,
    entry: &Path,
    layer: &PlannedLayer,
    check: bool,
) -> Result<Option<LayerInfo>, Error> {
    Ok(match read_cached::<LayerInfo>(entry) {
        Some(info) if check => store
            .verify(&info.digest, &layer.description)?
            .then_some(info),
        Some(info) => store.contains(&info.digest).then_some(info),
        None => None,
    })
}
