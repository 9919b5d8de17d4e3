//! Stage three: the image itself, the base's layers and the produced ones under a config that
//! says how to run the app, and the manifest's record of how each layer was made (see
//! `registry_cache`). Pure: no I/O.

use lockship_oci::image::{self, Image, ImageLayer};

use super::config::{config_spec, ImageSettings};
use super::prepare::Prepared;
use super::produce::Produced;
use super::registry_cache::{layer_annotations, manifest_annotations, CacheRecord};
use super::BuildOptions;
use crate::inspect::{LayerWheel, LAYER_WHEELS};
use crate::plan::LayerContent;

/// A dependency layer also names the files it was installed from and their sha256 from the
/// lock, so that an SBOM made from the image alone carries the lock's hashes.
fn with_wheels(
    mut annotations: std::collections::BTreeMap<String, String>,
    content: &LayerContent,
) -> std::collections::BTreeMap<String, String> {
    if let LayerContent::Wheels { wheels, .. } = content {
        let listed: Vec<LayerWheel> = wheels
            .iter()
            .map(|w| LayerWheel {
                name: w.name.clone(),
                file: w.wheel.filename.clone(),
                sha256: w.wheel.sha256.hex().to_string(),
            })
            .collect();
        annotations.insert(
            LAYER_WHEELS.to_string(),
            serde_json::to_string(&listed).expect("names serialize"),
        );
    }
    annotations
}

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
            annotations: with_wheels(layer_annotations(&l.key, info), &l.content),
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
