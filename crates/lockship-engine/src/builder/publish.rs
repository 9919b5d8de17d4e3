//! Stage four: the image goes out. Smoke tests first when they gate it (the base's layers
//! fetched so the runtime can load the image), then every push target (all blobs to all
//! targets, then the manifests), then the local outputs. A multi-platform build runs the first
//! half per platform and the second once, for the index.

use oci_spec::distribution::Reference;

use crate::container_build;
use crate::error::Error;
use crate::output::Output;
use crate::smoke::{self, SmokeError, SmokeResult};
use lockship_oci::image::Image;
use lockship_oci::image_index::Artifact;
use lockship_oci::platform::Platform;
use lockship_oci::registry::{LayerPush, PushReport};
use lockship_oci::{docker_tar, layout};

use super::base::BaseSource;
use super::cache::write_cached;
use super::config::default_tag;
use super::prepare::Prepared;
use super::produce::{reads_layers, Produced};
use super::report::PushedReport;
use super::smoke_gate::run_smoke;
use super::{BuildOptions, Session, SmokeMode, Timer};
use crate::smoke::SmokeRun;

/// Where the image went.
pub(super) struct Published {
    pub pushed: Vec<PushedReport>,
    pub smoke: Vec<SmokeResult>,
    /// The smoke commands passed on this image before, so they did not run again.
    pub smoke_remembered: bool,
}

/// One image tested and its blobs sent: everything before a tag moves.
pub(super) struct Sent {
    pub smoke: Vec<SmokeResult>,
    pub smoke_remembered: bool,
    /// What each push target received, in the order of `Prepared::push_refs`.
    pub blobs: Vec<PushReport>,
}

/// The image's name in docker and OCI outputs.
pub(super) fn output_name(opts: &BuildOptions, prepared: &Prepared) -> String {
    opts.tag
        .clone()
        .unwrap_or_else(|| default_tag(&prepared.project, &opts.target))
}

pub(super) async fn publish(
    session: &Session<'_>,
    prepared: &Prepared,
    image: &Image,
    produced: &Produced,
    source: &dyn BaseSource,
    timer: &mut Timer,
) -> Result<Published, Error> {
    let artifact = Artifact::Image(image);
    let moved = moving(session, artifact, &prepared.push_refs);
    // The wheels artifact names the image as its subject, which need not exist first (OCI
    // 1.1): it goes out beside the image's blobs and manifests, once smoke tests that gate
    // the push have passed. If the image fails to go out, it refers to nothing, harmlessly.
    let remotes = [session.remote];
    let share = share_wheels(session, &remotes, artifact, &moved, Some(&prepared.base));
    let manifests_after = |sent: Sent| async move {
        let pushed = push_manifests(session, artifact, &prepared.push_refs, sent.blobs).await?;
        Ok::<_, Error>((sent.smoke, sent.smoke_remembered, pushed))
    };
    let (smoke, smoke_remembered, pushed) = if prepared.must_test {
        let sent = test_and_send(session, prepared, image, produced, source, timer).await?;
        let (pushed, ()) = futures::join!(manifests_after(sent), share);
        pushed?
    } else {
        let send = async {
            let sent = test_and_send(session, prepared, image, produced, source, timer).await?;
            manifests_after(sent).await
        };
        // A failed send stops the sharing: nothing more goes out for an image that did not.
        let share = async {
            share.await;
            Ok(())
        };
        futures::future::try_join(send, share).await?.0
    };
    write_local(
        session,
        Artifact::Image(image),
        &output_name(session.opts, prepared),
    )?;
    timer.lap("output");
    Ok(Published {
        pushed,
        smoke,
        smoke_remembered,
    })
}

/// Runs the smoke tests when they gate the image (the base's layers fetched first, as they
/// are for local outputs), then sends its layers and config to every push target.
pub(super) async fn test_and_send(
    session: &Session<'_>,
    prepared: &Prepared,
    image: &Image,
    produced: &Produced,
    source: &dyn BaseSource,
    timer: &mut Timer,
) -> Result<Sent, Error> {
    let Session {
        opts,
        registry,
        store,
        reporter,
        ..
    } = *session;
    // Local outputs and smoke tests need the base's layers on disk, and those an earlier
    // build pushed.
    if reads_layers(opts, prepared) {
        source.fetch_layers(&prepared.base, store).await?;
        fetch_cached_layers(session, image).await?;
    }
    let mut smoke = Vec::new();
    let mut smoke_remembered = false;
    let machine = prepared.target.machine();
    if prepared.must_test && !container_build::can_run(machine) {
        let platform = format!("linux/{}", prepared.target.architecture);
        if opts.smoke == SmokeMode::Always {
            return Err(SmokeError::CannotRun {
                platform,
                host: std::env::consts::ARCH,
            }
            .into());
        }
        reporter.warn(&format!(
            "the smoke commands did not run for {platform}: this {} machine cannot run it \
             (no binfmt emulator for {machine})",
            std::env::consts::ARCH
        ));
    } else if prepared.must_test {
        let commands = &prepared.commands;
        let marker = smoke::pass_marker(&opts.cache_dir, &image.manifest_digest, commands);
        if opts.smoke == SmokeMode::BeforePush && marker.is_file() {
            smoke_remembered = true;
        } else {
            let name = output_name(opts, prepared);
            smoke = run_smoke(image, store, commands, &name, SmokeRun::of(opts), reporter)?;
            write_cached(&marker, &smoke.len())?;
        }
    }
    timer.lap("smoke");
    let none = std::collections::HashMap::new();
    let mut blobs = Vec::new();
    for target in &prepared.push_refs {
        reporter.step(&format!(
            "pushing {} layers to {target}",
            prepared.target.architecture
        ));
        let mut done = produced
            .early
            .get(&target.to_string())
            .unwrap_or(&none)
            .clone();
        // Manifests read from the target's repository list blobs it holds: no need to ask.
        for digest in session.remote.present_in(target) {
            done.entry(digest).or_insert(LayerPush::Skipped);
        }
        blobs.push(
            registry
                .push_blobs(
                    image,
                    target,
                    prepared.base.reference.as_ref(),
                    store,
                    &done,
                )
                .await?,
        );
    }
    Ok(Sent {
        smoke,
        smoke_remembered,
        blobs,
    })
}

/// Fetches the layers of `image` that an earlier build pushed (the registry cache) into the
/// store. One the registry will not hand over is `CachedLayerGone`, which `build_image` answers
/// by building without the registry cache; the local store failing is not the registry's doing.
async fn fetch_cached_layers(session: &Session<'_>, image: &Image) -> Result<(), Error> {
    session
        .registry
        .fetch_cached_layers(image, session.store)
        .await
        .map_err(|e| match e.source {
            lockship_oci::registry::RegistryError::Store(_) => Error::from(e.source),
            source => Error::CachedLayerGone {
                from: e.from.to_string(),
                digest: e.digest.to_string(),
                source: Box::new(source),
            },
        })
}

/// Writes the OCI layout and docker tarball outputs. A docker tarball holds one image: for an
/// index, the host's platform if it has one, else the first (the caller says which).
pub(super) fn write_local(
    session: &Session<'_>,
    artifact: Artifact<'_>,
    name: &str,
) -> Result<(), Error> {
    let Session {
        opts,
        store,
        reporter,
        ..
    } = *session;
    for out in &opts.outputs {
        match out {
            Output::OciLayout(dir) => {
                reporter.step(&format!("writing OCI layout {}", dir.display()));
                let tag = name.rsplit_once(':').map_or("latest", |(_, t)| t);
                layout::write_artifact(artifact, store, dir, tag)?;
            }
            Output::DockerTar(file) => {
                let images = artifact.images();
                let image = docker_image(&images);
                if images.len() > 1 {
                    reporter.warn(&format!(
                        "{} holds only the linux/{} image: docker load takes one platform \
                         (push or write oci:DIR for all {})",
                        file.display(),
                        image.architecture,
                        images.len()
                    ));
                }
                reporter.step(&format!("writing docker tarball {}", file.display()));
                docker_tar::write(image, store, file, name)?;
            }
            Output::Registry(_) => {}
        }
    }
    Ok(())
}

/// The image a docker tarball gets: the one this machine runs, else the first.
fn docker_image<'a>(images: &[&'a Image]) -> &'a Image {
    let host = Platform::host();
    images
        .iter()
        .find(|i| host.matches(&i.os, &i.architecture, i.variant.as_deref()))
        .unwrap_or(&images[0])
}

/// The targets whose tag does not name `artifact` yet.
pub(super) fn moving(
    session: &Session<'_>,
    artifact: Artifact<'_>,
    targets: &[Reference],
) -> Vec<Reference> {
    targets
        .iter()
        .filter(|t| !names_already(session, t, artifact.digest()))
        .cloned()
        .collect()
}

/// Whether the push target `target` names the artifact `digest` already (read at the start).
fn names_already(
    session: &Session<'_>,
    target: &Reference,
    digest: &lockship_oci::digest::Digest,
) -> bool {
    session
        .remote
        .target(target)
        .is_some_and(|now| &now.tag_digest == digest)
}

/// Shares the wheels this build made from sdists (every platform's `remotes`), the app's last
/// real build and the interpreter that compiled `base`'s bytecode with the targets whose tag
/// it moved (see `shared_wheels`).
pub(super) async fn share_wheels(
    session: &Session<'_>,
    remotes: &[&super::registry_cache::RegistryCache],
    artifact: Artifact<'_>,
    moved: &[Reference],
    base: Option<&super::base::ResolvedBase>,
) {
    // The image pushed there before under another tag shares what it shared then.
    let moved: Vec<Reference> = moved
        .iter()
        .filter(|t| !session.remote.holds(t, artifact.digest()))
        .cloned()
        .collect();
    if moved.is_empty() {
        return;
    }
    let app = super::app_wheel::last_for_sharing(session, &session.opts.project_dir);
    let interpreter = match base {
        Some(base) => super::bytecode::shareable_interpreter(session, base).await,
        None => None,
    };
    let share = super::shared_wheels::ToShare::gather(remotes, app, interpreter);
    super::shared_wheels::share(session, artifact, &moved, share).await;
}

/// Moves every target's tag to the artifact (each target's blobs already sent, `blobs` saying
/// what they came to), one target after another. A failure after some tags moved names them
/// (registries have no transaction across repositories).
pub(super) async fn push_manifests(
    session: &Session<'_>,
    artifact: Artifact<'_>,
    targets: &[Reference],
    blobs: Vec<PushReport>,
) -> Result<Vec<PushedReport>, Error> {
    let digest = artifact.digest();
    // A tag that names this very artifact already: nothing to move.
    let unchanged = |target: &Reference| names_already(session, target, digest);
    move_tags(
        session.registry,
        session.reporter,
        &session.opts.cache_dir,
        artifact,
        targets,
        blobs,
        &unchanged,
    )
    .await
}

/// The manifests (or the index and its manifests) to every target, in order, each remembered
/// as the repository's last push; targets `unchanged` says name the artifact already are only
/// remembered. Shared by builds and `lockship push`.
pub(crate) async fn move_tags(
    registry: &lockship_oci::registry::Registry,
    reporter: &dyn super::Reporter,
    cache_dir: &std::path::Path,
    artifact: Artifact<'_>,
    targets: &[Reference],
    blobs: Vec<PushReport>,
    unchanged: &dyn Fn(&Reference) -> bool,
) -> Result<Vec<PushedReport>, Error> {
    let digest = artifact.digest();
    let mut pushed: Vec<PushedReport> = Vec::new();
    for (target, report) in targets.iter().zip(blobs) {
        if !unchanged(target) {
            reporter.step(&format!("pushing the manifest to {target}"));
            let result = match artifact {
                Artifact::Image(image) => registry.push_manifest(image, target).await,
                Artifact::Index(index) => registry.push_index(index, target).await,
            };
            if let Err(source) = result {
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
        }
        super::pushed::remember(cache_dir, target, digest)?;
        pushed.push(PushedReport {
            reference: target.to_string(),
            report,
        });
    }
    Ok(pushed)
}
