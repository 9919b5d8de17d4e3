//! Stage three: the image itself, the base's layers and the produced ones under a config that
//! says how to run the app. Pure: no I/O.

use lockship_oci::image::{self, BlobOrigin, Image, ImageLayer};

use super::config::{config_spec, ImageSettings};
use super::prepare::Prepared;
use super::produce::Produced;
use super::BuildOptions;

pub(super) fn assemble(opts: &BuildOptions, prepared: &Prepared, produced: &Produced) -> Image {
    let Prepared {
        base, plan, target, ..
    } = prepared;
    let mut layers: Vec<ImageLayer> = base.layers.clone();
    for (l, info) in plan.layers.iter().zip(&produced.layers) {
        layers.push(ImageLayer {
            info: info.clone(),
            created_by: l.description.clone(),
            origin: BlobOrigin::Local,
        });
    }
    let spec = config_spec(&ImageSettings {
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
    image::assemble(&base.config, layers, plan.layers.len(), &spec)
}
