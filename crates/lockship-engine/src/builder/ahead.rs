//! Layers written ahead of the plan: while the builder turns sdists into wheels (seconds of
//! containers starting and pip waiting, with the host's cores mostly idle), the layers of the
//! packages that have wheels already are downloaded, compiled and written into the cache, so
//! that the plan made once the sdists are built finds them there.
//!
//! Only when every package will have a layer of its own (within the layer limits): a package
//! layer's key then depends on that package's wheel alone, not on the others, so what is
//! written ahead is exactly what the plan asks for, never a guess that is thrown away.

use std::collections::HashSet;
use std::sync::Arc;

use oci_spec::distribution::Reference;

use crate::error::Error;
use crate::plan::{LayerContent, PlannedLayer};
use lockship_python::target::PythonTarget;

use super::base::{BaseSource, ResolvedBase};
use super::bytecode::{compiler, Compiler, CompilerSlot};
use super::layers::LayerContext;
use super::pipeline::{self, EarlyPushes};
use super::produce::{cache_entry, from_local_cache};
use super::Session;

/// What writing ahead left for the rest of the build.
#[derive(Default)]
pub(super) struct Ahead {
    /// Keys of the layers written ahead: this build wrote them (reported as built).
    pub written: HashSet<String>,
    /// The compiler started for them, for the layers still to write.
    pub compiler: Option<Arc<Compiler>>,
    /// Layers already uploaded, by push target.
    pub pushed: EarlyPushes,
}

/// What a layer needs to be written ahead.
pub(super) struct AheadInputs<'a> {
    pub target: &'a PythonTarget,
    pub base: &'a ResolvedBase,
    /// The base whose interpreter compiles, when it is not `base` (another architecture's).
    pub host_base: Option<&'a ResolvedBase>,
    pub source: &'a dyn BaseSource,
    pub ctx: Arc<LayerContext>,
    /// Push targets that may receive layers before the image is complete.
    pub early_push: &'a [Reference],
}

/// Writes the package layers of `planned` (a plan of the packages that have wheels) that
/// neither the local cache nor the registry holds.
pub(super) async fn write_ahead(
    session: &Session<'_>,
    inputs: AheadInputs<'_>,
    planned: Vec<PlannedLayer>,
) -> Result<Ahead, Error> {
    let layer_cache = crate::cache_dir::Bucket::Layers.under(&session.opts.cache_dir);
    let (mut to_build, mut cache_entries) = (Vec::new(), Vec::new());
    for layer in planned {
        if !matches!(layer.content, LayerContent::Wheels { .. }) {
            continue;
        }
        let entry = cache_entry(&layer_cache, &layer);
        let cached = from_local_cache(session.store, &entry, &layer, false)?.is_some();
        if !cached && session.remote.planned(&layer).is_none() {
            to_build.push(layer);
            cache_entries.push(entry);
        }
    }
    if to_build.is_empty() {
        return Ok(Ahead::default());
    }
    let reporter = session.reporter;
    // The sdists' wheels may all come from the cache: "build" would promise too much.
    reporter.step(&format!(
        "writing {} ahead, while the sdists' wheels are built or taken from the cache",
        super::counted(to_build.len(), "layer", "layers")
    ));
    reporter.layers_begin(to_build.len(), to_build.iter().map(pipeline::weight).sum());
    let AheadInputs {
        target,
        base,
        host_base,
        source,
        ctx,
        early_push,
    } = inputs;
    let slot = to_build.iter().any(|l| l.content.has_bytecode()).then(|| {
        CompilerSlot::new(move || Box::pin(compiler(session, target, base, host_base, source)))
    });
    let written = to_build.iter().map(|l| l.key.clone()).collect();
    let built = pipeline::run(
        pipeline::Jobs {
            to_build: to_build.into_iter().enumerate().collect(),
            cache_entries,
            ctx,
            http: session.http,
            registry: session.registry,
            early_push,
            app_wheel: None,
            compiler: slot.as_ref(),
        },
        reporter,
    )
    .await?;
    Ok(Ahead {
        written,
        compiler: slot.and_then(|s| s.made()),
        pushed: built.pushed,
    })
}

/// Whether writing ahead is exact: every package, those still to be built from sdists
/// included, gets a layer of its own, in production (`packages`) and in the target's extras.
pub(super) fn exact(packages: usize, target_packages: usize) -> bool {
    packages <= crate::plan::MAX_DEPENDENCY_LAYERS
        && target_packages <= crate::plan::MAX_TARGET_LAYERS
}

#[cfg(test)]
mod tests {
    use super::exact;
    use crate::plan::{MAX_DEPENDENCY_LAYERS, MAX_TARGET_LAYERS};

    #[test]
    fn exact_up_to_each_layer_limit_and_no_further() {
        assert!(exact(MAX_DEPENDENCY_LAYERS, MAX_TARGET_LAYERS));
        assert!(!exact(MAX_DEPENDENCY_LAYERS + 1, 0));
        assert!(!exact(0, MAX_TARGET_LAYERS + 1));
    }
}
