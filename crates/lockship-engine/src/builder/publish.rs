//! Stage four: the image goes out. Smoke tests first when they gate it (the base's layers
//! fetched so the runtime can load the image), then every push target (all blobs to all
//! targets, then the manifests), then the local outputs.

use oci_spec::distribution::Reference;

use crate::error::Error;
use crate::output::Output;
use crate::smoke::{self, SmokeResult};
use lockship_oci::blob_store::BlobStore;
use lockship_oci::image::Image;
use lockship_oci::registry::Registry;
use lockship_oci::{docker_tar, layout};

use super::base::BaseSource;
use super::cache::write_cached;
use super::config::default_tag;
use super::pipeline::EarlyPushes;
use super::prepare::Prepared;
use super::produce::{reads_layers, Produced};
use super::report::PushedReport;
use super::smoke_gate::run_smoke;
use super::{Reporter, Session, SmokeMode, Timer};

/// Where the image went.
pub(super) struct Published {
    pub pushed: Vec<PushedReport>,
    pub smoke: Vec<SmokeResult>,
    /// The smoke commands passed on this image before, so they did not run again.
    pub smoke_remembered: bool,
}

pub(super) async fn publish(
    session: &Session<'_>,
    prepared: &Prepared,
    image: &Image,
    produced: &Produced,
    source: &dyn BaseSource,
    timer: &mut Timer,
) -> Result<Published, Error> {
    let Session {
        opts,
        registry,
        store,
        reporter,
        ..
    } = *session;
    let name = opts
        .tag
        .clone()
        .unwrap_or_else(|| default_tag(&prepared.project, &opts.target));
    // Local outputs and smoke tests need the base's layers on disk.
    if reads_layers(opts, prepared) {
        source.fetch_layers(&prepared.base, store).await?;
    }
    let mut smoke = Vec::new();
    let mut smoke_remembered = false;
    if prepared.must_test {
        let commands = &prepared.commands;
        let marker = smoke::pass_marker(&opts.cache_dir, &image.manifest_digest, commands);
        if opts.smoke == SmokeMode::BeforePush && marker.is_file() {
            smoke_remembered = true;
        } else {
            smoke = run_smoke(image, store, commands, &name, opts, reporter)?;
            write_cached(&marker, &smoke.len())?;
        }
    }
    timer.lap("smoke");

    let pushed = push_all(
        registry,
        image,
        &prepared.push_refs,
        prepared.base.reference.as_ref(),
        store,
        &produced.early,
        reporter,
    )
    .await?;
    for out in &opts.outputs {
        match out {
            Output::OciLayout(dir) => {
                reporter.step(&format!("writing OCI layout {}", dir.display()));
                let tag = name.rsplit_once(':').map_or("latest", |(_, t)| t);
                layout::write(image, store, dir, tag)?;
            }
            Output::DockerTar(file) => {
                reporter.step(&format!("writing docker tarball {}", file.display()));
                docker_tar::write(image, store, file, &name)?;
            }
            Output::Registry(_) => {}
        }
    }
    timer.lap("output");
    Ok(Published {
        pushed,
        smoke,
        smoke_remembered,
    })
}

/// Pushes `image` to every target: all blobs to all targets first, then the manifests, one
/// after another, so that a target that cannot take the blobs stops the push before any tag
/// moves. A manifest that fails after others went up leaves those tags moved (registries have
/// no transaction across repositories); the error names them.
async fn push_all(
    registry: &Registry,
    image: &Image,
    targets: &[Reference],
    base: Option<&Reference>,
    store: &BlobStore,
    early: &EarlyPushes,
    reporter: &dyn Reporter,
) -> Result<Vec<PushedReport>, Error> {
    let none = std::collections::HashMap::new();
    let mut reports = Vec::new();
    for target in targets {
        reporter.step(&format!("pushing layers to {target}"));
        let done = early.get(&target.to_string()).unwrap_or(&none);
        reports.push(
            registry
                .push_blobs(image, target, base, store, done)
                .await?,
        );
    }
    let mut pushed: Vec<PushedReport> = Vec::new();
    for (target, report) in targets.iter().zip(reports) {
        reporter.step(&format!("pushing the manifest to {target}"));
        if let Err(source) = registry.push_manifest(image, target).await {
            if pushed.is_empty() {
                return Err(source.into());
            }
            return Err(Error::PartialPush {
                pushed: pushed
                    .iter()
                    .map(|p| p.reference.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                source: Box::new(source),
            });
        }
        pushed.push(PushedReport {
            reference: target.to_string(),
            report,
        });
    }
    Ok(pushed)
}
