//! Produces the layers the cache lacks as a pipeline rather than in phases: each layer's wheels
//! download (eight at a time, biggest layers first), the layer is written as soon as its wheels
//! are in (one at a time per core), and it is uploaded to the push targets right away when no
//! smoke test gates the push. Downloads, layer writing and uploads of different layers overlap,
//! and the app layer waits only for the app wheel, whose build started with the build.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use futures::future::LocalBoxFuture;

use oci_spec::distribution::Reference;
use tokio::sync::Semaphore;

use crate::error::Error;
use crate::plan::{LayerContent, PlannedLayer};
use lockship_net::Http;
use lockship_oci::digest::Digest;
use lockship_oci::image::{BlobOrigin, ImageLayer};
use lockship_oci::layer::LayerInfo;
use lockship_oci::registry::{LayerPush, Registry};
use lockship_python::fetch;
use lockship_python::native::NativeFacts;

use super::bytecode::CompilerSlot;
use super::cache::write_cached;
use super::layers::{build_layer, LayerContext};
use super::native_libs;
use super::Reporter;

/// Concurrent wheel downloads.
const DOWNLOADS: usize = 8;

/// What the pipeline works on.
pub(super) struct Jobs<'a, 'c> {
    /// Planned layers the cache lacks, with their index in the plan.
    pub to_build: Vec<(usize, PlannedLayer)>,
    /// Where each built layer's cache entry goes, by plan index.
    pub cache_entries: Vec<PathBuf>,
    pub ctx: Arc<LayerContext>,
    pub http: &'a Http,
    pub registry: &'a Registry,
    /// Push targets that may receive layers before the image is complete.
    pub early_push: &'a [Reference],
    /// The app wheel being built (on this machine, or in the builder), for the app layer.
    pub app_wheel: Option<LocalBoxFuture<'a, Result<PathBuf, Error>>>,
    /// The bytecode compiler, when a layer to build carries bytecode.
    pub compiler: Option<&'a CompilerSlot<'c>>,
}

/// Layers pushed during the build, by target reference.
pub(super) type EarlyPushes = HashMap<String, HashMap<Digest, LayerPush>>;

/// What the pipeline produced.
pub(super) struct Built {
    /// Layer info by plan index.
    pub layers: Vec<(usize, LayerInfo)>,
    pub pushed: EarlyPushes,
    /// The app wheel's ELF facts (`project version`, facts), when its layer was written.
    pub app_facts: Option<(String, NativeFacts)>,
}

/// Runs the pipeline to the end, or to the first error.
pub(super) async fn run(jobs: Jobs<'_, '_>, reporter: &dyn Reporter) -> Result<Built, Error> {
    let Jobs {
        mut to_build,
        cache_entries,
        ctx,
        http,
        registry,
        early_push,
        mut app_wheel,
        compiler,
    } = jobs;
    // Biggest first: the longest layer starts earliest and no core idles at the end.
    to_build.sort_by_key(|(i, l)| (std::cmp::Reverse(weight(l)), *i));
    let downloads = Semaphore::new(DOWNLOADS);
    let cores = Semaphore::new(
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2),
    );
    let tasks = to_build.into_iter().map(|(index, layer)| {
        let wants_app = matches!(layer.content, LayerContent::AppWheel { .. });
        let app = if wants_app { app_wheel.take() } else { None };
        let (ctx, downloads, cores, cache_entry) =
            (ctx.clone(), &downloads, &cores, &cache_entries[index]);
        async move {
            if let LayerContent::Wheels { wheels, .. } = &layer.content {
                let store = &ctx.store;
                let fetches = wheels.iter().map(|wheel| async move {
                    let _slot = downloads.acquire().await.expect("never closed");
                    if fetch::fetch_one(http, wheel, store).await? {
                        reporter.step(&format!("fetched {} {}", wheel.name, wheel.version));
                    }
                    Ok::<_, Error>(())
                });
                futures::future::try_join_all(fetches).await?;
            }
            let app_wheel = match app {
                Some(wheel) => Some(wheel.await?),
                None => None,
            };
            let layer_compiler = match compiler {
                Some(slot) if layer.content.has_bytecode() => Some(slot.get().await?),
                _ => None,
            };
            let core = cores.acquire().await.expect("never closed");
            let (job_ctx, job_layer) = (ctx.clone(), layer.clone());
            let info = tokio::task::spawn_blocking(move || {
                let info = build_layer(
                    &job_ctx,
                    &job_layer,
                    app_wheel.as_deref(),
                    layer_compiler.as_deref(),
                )?;
                // While the wheels are warm in the page cache: their ELF facts for the check.
                if let LayerContent::Wheels { wheels, .. } = &job_layer.content {
                    for w in wheels {
                        let path = job_ctx.store.path(&w.wheel.sha256);
                        native_libs::cache_facts(&job_ctx.native_dir, &path, w)?;
                    }
                }
                let app_facts = match &app_wheel {
                    Some(path) => {
                        let facts = native_libs::app_facts(path)?;
                        // For the check of a later build that takes this layer from the cache.
                        let entry =
                            native_libs::app_facts_entry(&job_ctx.native_dir, &job_layer.key);
                        write_cached(&entry, &facts)?;
                        Some(facts)
                    }
                    None => None,
                };
                Ok::<_, Error>((info, app_facts))
            })
            .await
            .map_err(crashed)??;
            let (info, app_facts) = info;
            drop(core);
            write_cached(cache_entry, &info)?;
            reporter.layer_written(&layer.description, weight(&layer));
            let mut pushed = Vec::new();
            for target in early_push {
                let image_layer = ImageLayer {
                    info: info.clone(),
                    created_by: layer.description.clone(),
                    origin: BlobOrigin::Local,
                    annotations: Default::default(),
                };
                let outcome = registry
                    .push_layer(&image_layer, target, None, &ctx.store)
                    .await?;
                pushed.push((target.to_string(), info.digest.clone(), outcome));
            }
            Ok::<_, Error>((index, info, pushed, app_facts))
        }
    });
    // Start on the compiler at once rather than when the first layer needs it.
    let warm_up = async {
        if let Some(slot) = compiler {
            slot.get().await?;
        }
        Ok::<_, Error>(())
    };
    let (results, ()) =
        futures::future::try_join(futures::future::try_join_all(tasks), warm_up).await?;
    let mut built = Built {
        layers: Vec::new(),
        pushed: HashMap::new(),
        app_facts: None,
    };
    for (index, info, pushed, app_facts) in results {
        built.layers.push((index, info));
        built.app_facts = built.app_facts.or(app_facts);
        for (target, digest, outcome) in pushed {
            built
                .pushed
                .entry(target)
                .or_default()
                .insert(digest, outcome);
        }
    }
    Ok(built)
}

/// Roughly how long a layer takes: the size of its wheels (the app and runtime layers are small).
pub(super) fn weight(layer: &PlannedLayer) -> u64 {
    match &layer.content {
        LayerContent::Wheels { wheels, .. } => wheels.iter().filter_map(|w| w.wheel.size).sum(),
        _ => 0,
    }
}

pub(super) fn crashed(e: tokio::task::JoinError) -> Error {
    Error::Usage(format!("layer writer crashed: {e}"))
}
