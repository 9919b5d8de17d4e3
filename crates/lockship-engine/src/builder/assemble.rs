//! Stage three: the image itself, the base's layers and the produced ones under a config that
//! says how to run the app, and the manifest's record of how each layer was made (see
//! `registry_cache`). Pure: no I/O.

use lockship_oci::image::{self, Image, ImageLayer};

use super::config::{config_spec, ImageSettings};
use super::prepare::Prepared;
use super::produce::Produced;
use super::registry_cache::{layer_annotations, manifest_annotations, CacheRecord};
use super::BuildOptions;

pub(super) fn assemble(
    opts: &BuildOptions,
    prepared: &Prepared,
    produced: &Produced,
    record: &CacheRecord,
) -> Image {
    let Prepared {
        base, plan, target, ..
    } = prepared;
    let mut layers: Vec<ImageLayer> = base.layers.clone();
    for ((l, info), origin) in plan
        .layers
        .iter()
        .zip(&produced.layers)
        .zip(&produced.origins)
    {
        layers.push(ImageLayer {
            info: info.clone(),
            created_by: l.description.clone(),
            origin: origin.clone(),
            annotations: layer_annotations(&l.key, info),
        });
    }
    let mut spec = config_spec(&ImageSettings {
        target_cfg: &prepared.target_cfg,
        target_name: &opts.target,
        project: &prepared.project,
        target,
        user: &prepared.user,
        workdir: &prepared.workdir,
        base,
        lock: &prepared.lock,
        created: opts.source_date_epoch,
    });
    spec.annotations = manifest_annotations(record);
    image::assemble(&base.config, layers, plan.layers.len(), &spec)
}
