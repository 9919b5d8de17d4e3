//! A multi-platform build (`--platform linux/amd64,linux/arm64`, `platforms = [...]`): each
//! platform's image built from the one lock (its own base, its own wheels, its smoke tests when
//! this machine can run them, its blobs sent), then one OCI index over them, which is what the
//! outputs get. Platforms go one after another so that what they share is made once: layers of
//! pure-Python packages, their bytecode, the venv and copied app files have keys without the
//! architecture (see `plan`), so the second platform finds them in the cache, and a registry
//! that has a blob is not sent it again.

use oci_spec::distribution::Reference;

use futures::{StreamExt, TryStreamExt};

use crate::error::Error;
use crate::plan::LayerContent;
use crate::project::Project;
use lockship_net::Http;
use lockship_oci::blob_store::BlobStore;
use lockship_oci::image::Image;
use lockship_oci::image_index::{Artifact, ImageIndex};
use lockship_oci::platform::Platform;
use lockship_oci::registry::{PushReport, Registry};
use lockship_python::fetch;
use lockship_python::lock::LockFile;

use lockship_python::bytecode::PycMemo;
use lockship_sys::scratch::ScratchDir;

use super::base::BaseSource;
use super::cache::io_err;
use super::prepare::{prepare, Prepared};
use super::publish::{
    moving, output_name, push_manifests, share_wheels, test_and_send, write_local, Published,
};
use super::Timer;
use super::{base, planned, produce_image, report, BuildOptions, BuildReport, Reporter, Session};

/// One platform's part of the build.
struct PlatformBuild {
    report: BuildReport,
    /// None for `--dry-run`: the report holds the plan.
    image: Option<Image>,
    /// What each push target received, in `push_refs` order.
    blobs: Vec<PushReport>,
    push_refs: Vec<Reference>,
    name: String,
}

/// Builds an image for each of `platforms` and publishes their index. While one platform's
/// layers are produced, the next platform is prepared (its base resolved, which for a Debian
/// base means fetching and writing it) and its wheels fetched: on a small machine the first is
/// CPU-bound (installing, compiling, compressing) and the second mostly waits on the network.
#[allow(clippy::too_many_arguments)]
pub(super) async fn build_platforms(
    opts: &BuildOptions,
    http: &Http,
    registry: &Registry,
    store: &BlobStore,
    reporter: &dyn Reporter,
    project: Project,
    lock: LockFile,
    platforms: Vec<Platform>,
) -> Result<BuildReport, Error> {
    // Pycs the first platforms compiled, for the later ones; removed with the run.
    let tmp = store.tmp_dir();
    let memo_dir = ScratchDir::new_in(&tmp).map_err(io_err(&tmp))?;
    let pycs = PycMemo::new(memo_dir.path().join("pycs"));
    let each: Vec<BuildOptions> = platforms
        .iter()
        .map(|platform| BuildOptions {
            platform: Some(platform.clone()),
            platforms: Vec::new(),
            ..opts.clone()
        })
        .collect();
    let mut remotes = Vec::new();
    for (one, platform) in each.iter().zip(&platforms) {
        remotes.push(super::load_registry_cache(one, registry, platform, reporter).await?);
    }
    let sessions: Vec<Session> = each
        .iter()
        .zip(&remotes)
        .map(|(one, remote)| Session {
            opts: one,
            http,
            registry,
            store,
            reporter,
            pycs: Some(&pycs),
            single_platform: false,
            remote,
        })
        .collect();
    let in_context = |i: usize| {
        let platform = platforms[i].to_string();
        move |e: Error| Error::Platform {
            platform,
            source: Box::new(e),
        }
    };
    let mut built = Vec::new();
    let mut next = Some(
        prepare_platform(&sessions[0], &project, &lock)
            .await
            .map_err(in_context(0))?,
    );
    for i in 0..sessions.len() {
        let (prepared, source, timer) = next.take().expect("prepared before its turn");
        let this = build_prepared(&sessions[i], prepared, source.as_ref(), timer);
        let after = async {
            match sessions.get(i + 1) {
                Some(session) => {
                    let (prepared, source, timer) = prepare_platform(session, &project, &lock)
                        .await
                        .map_err(in_context(i + 1))?;
                    prefetch(session, &prepared)
                        .await
                        .map_err(in_context(i + 1))?;
                    Ok(Some((prepared, source, timer)))
                }
                None => Ok::<_, Error>(None),
            }
        };
        let (this, after) = futures::join!(this, after);
        let this = this.map_err(in_context(i))?;
        next = after?;
        built.push(this);
    }
    let session = Session {
        opts,
        http,
        registry,
        store,
        reporter,
        pycs: None,
        single_platform: false,
        remote: &remotes[0],
    };
    let all: Vec<_> = remotes.iter().collect();
    publish_index(&session, built, &all).await
}

/// One platform's base source and its prepared build, with the timer of its preparation
/// (base, lock, plan), which its build goes on with: every platform reports the same phases.
async fn prepare_platform<'s>(
    session: &Session<'s>,
    project: &Project,
    lock: &LockFile,
) -> Result<(Prepared, Box<dyn BaseSource + 's>, Timer), Error> {
    let opts = session.opts;
    session.reporter.step(&format!(
        "preparing {}",
        opts.platform
            .as_ref()
            .map(|p| p.to_string())
            .unwrap_or_default()
    ));
    let bytecode = super::prepare::compiles_bytecode(project, opts);
    let source = base::base_source(
        project,
        &lock.path,
        opts,
        session.http,
        session.registry,
        bytecode,
    )?;
    let mut timer = Timer::new();
    let prepared = prepare(
        session,
        project.clone(),
        lock.clone(),
        source.as_ref(),
        &mut timer,
    )
    .await?;
    Ok((prepared, source, timer))
}

/// Puts the platform's wheels in the store ahead of its turn (its pipeline then finds them).
async fn prefetch(session: &Session<'_>, prepared: &Prepared) -> Result<(), Error> {
    if session.opts.dry_run {
        return Ok(());
    }
    let wheels = prepared.plan.layers.iter().flat_map(|l| match &l.content {
        LayerContent::Wheels { wheels, .. } => wheels.iter().collect(),
        _ => Vec::new(),
    });
    futures::stream::iter(wheels.map(|w| fetch::fetch_one(session.http, w, session.store)))
        .buffer_unordered(4)
        .try_collect::<Vec<bool>>()
        .await?;
    Ok(())
}

/// One prepared platform's image, up to (not including) moving any tag.
async fn build_prepared(
    session: &Session<'_>,
    mut prepared: Prepared,
    source: &dyn BaseSource,
    mut timer: Timer,
) -> Result<PlatformBuild, Error> {
    let opts = session.opts;
    // Its build's phases are timed from when its turn comes, after the preparation's.
    timer.start = std::time::Instant::now();
    if opts.dry_run {
        return Ok(PlatformBuild {
            report: planned(prepared, timer),
            image: None,
            blobs: Vec::new(),
            push_refs: Vec::new(),
            name: String::new(),
        });
    }
    let (produced, image) = produce_image(session, &mut prepared, source, &mut timer).await?;
    let sent = test_and_send(session, &prepared, &image, &produced, source, &mut timer).await?;
    let push_refs = prepared.push_refs.clone();
    let name = output_name(opts, &prepared);
    let published = Published {
        pushed: Vec::new(),
        smoke: sent.smoke,
        smoke_remembered: sent.smoke_remembered,
    };
    Ok(PlatformBuild {
        report: report(prepared, &image, produced, published, timer),
        image: Some(image),
        blobs: sent.blobs,
        push_refs,
        name,
    })
}

/// The index over every platform's image, to every output; the report of the whole build.
async fn publish_index(
    session: &Session<'_>,
    built: Vec<PlatformBuild>,
    remotes: &[&super::registry_cache::RegistryCache],
) -> Result<BuildReport, Error> {
    let mut timer = Timer::new();
    let mut reports = Vec::new();
    let mut images = Vec::new();
    let mut blobs: Vec<PushReport> = Vec::new();
    let mut push_refs = Vec::new();
    let mut name = String::new();
    for one in built {
        reports.push(one.report);
        let Some(image) = one.image else {
            continue;
        };
        images.push(image);
        (push_refs, name) = (one.push_refs, one.name);
        blobs.resize_with(one.blobs.len(), PushReport::default);
        for (total, sent) in blobs.iter_mut().zip(one.blobs) {
            total.uploaded += sent.uploaded;
            total.uploaded_bytes += sent.uploaded_bytes;
            total.mounted += sent.mounted;
            total.skipped += sent.skipped;
        }
    }
    let mut whole = combined(&reports);
    if images.is_empty() {
        // A dry run: the plans only.
        whole.platforms = reports;
        return Ok(whole);
    }
    let index = ImageIndex::of(images);
    let artifact = Artifact::Index(&index);
    let moved = moving(session, artifact, &push_refs);
    // The interpreter is shared by single-platform builds only (each platform's base differs).
    let (pushed, ()) = futures::join!(
        push_manifests(session, artifact, &push_refs, blobs),
        share_wheels(session, remotes, artifact, &moved, None)
    );
    whole.pushed = pushed?;
    write_local(session, artifact, &name)?;
    timer.lap("index");
    whole.digest = index.digest.to_string();
    whole.timings.extend(timer.timings);
    whole.platforms = reports;
    Ok(whole)
}

/// The whole build's report from its platforms': the first platform's base, lock and plan
/// (the lock is one; bases differ only by platform), every smoke result, phases summed.
fn combined(reports: &[BuildReport]) -> BuildReport {
    let first = &reports[0];
    let mut timings: Vec<(String, f64)> = Vec::new();
    for (phase, seconds) in reports.iter().flat_map(|r| &r.timings) {
        match timings.iter_mut().find(|(p, _)| p == phase) {
            Some((_, total)) => *total += seconds,
            None => timings.push((phase.clone(), *seconds)),
        }
    }
    BuildReport {
        digest: String::new(),
        layers: Vec::new(),
        pushed: Vec::new(),
        smoke: reports.iter().flat_map(|r| r.smoke.clone()).collect(),
        smoke_remembered: reports.iter().all(|r| r.smoke_remembered),
        base_changes: reports
            .iter()
            .flat_map(|r| r.base_changes.clone())
            .collect(),
        base_upgraded: reports.iter().any(|r| r.base_upgraded),
        timings,
        platforms: Vec::new(),
        ..first.clone()
    }
}
