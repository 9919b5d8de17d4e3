//! The commands that read images rather than build them: `lockship inspect`, `diff` and
//! `push` (promote an image already built, `oci:DIR` or `docker:FILE` or a registry
//! reference, to more references, smoke-tested first as `build --push` does).

use std::path::PathBuf;

use lockship_net::{Http, NetOptions};
use lockship_oci::blob_store::BlobStore;
use lockship_oci::image::Image;
use lockship_oci::image_index::OwnedArtifact;
use lockship_oci::platform::Platform;
use lockship_oci::registry::{PushReport, RegistryAccess};
use oci_spec::distribution::Reference;

use crate::builder::smoke_gate::run_smoke;
use crate::builder::{PushedReport, Reporter, SmokeMode};
use crate::error::Error;
use crate::image_diff::{self, ImageDiff};
use crate::image_source::{self, ImageSource, Reader};
use crate::inspect::{self, Inspection};
use crate::project::{Project, ProjectError};
use crate::smoke::{self, SmokeResult, SmokeRun};

/// What every image command needs.
#[derive(Clone, Debug)]
pub struct ReadOptions {
    pub cache_dir: PathBuf,
    pub net: NetOptions,
    pub registry: RegistryAccess,
    /// The platform to look at in an index (None: the only one, else this machine's).
    pub platform: Option<Platform>,
}

/// Opens the cache (shared with builds) and runs `f` with a reader whose transfers `reporter`
/// sees.
async fn with_reader<T>(
    opts: &ReadOptions,
    reporter: &dyn Reporter,
    f: impl AsyncFnOnce(&Reader<'_>) -> Result<T, Error>,
) -> Result<T, Error> {
    let _lock = crate::builder::lock_cache(&opts.cache_dir)?;
    let store = crate::builder::open_cache(&opts.cache_dir)?;
    let http = Http::new(&opts.net)?.observed(reporter.transfers());
    let reader = Reader::new(&store, &http, opts.registry.clone());
    f(&reader).await
}

/// `lockship inspect`: what the image `name` holds.
pub async fn inspect_image(
    opts: &ReadOptions,
    name: &str,
    reporter: &dyn Reporter,
) -> Result<Inspection, Error> {
    inspect_source(opts, ImageSource::parse(name)?, name, reporter).await
}

/// [`inspect_image`] of a source already parsed (a build's own output, whose path may hold
/// a `:`).
pub async fn inspect_source(
    opts: &ReadOptions,
    source: ImageSource,
    name: &str,
    reporter: &dyn Reporter,
) -> Result<Inspection, Error> {
    with_reader(opts, reporter, async |reader| {
        Ok(inspect_one(reader, &source, name, opts).await?.0)
    })
    .await
}

/// Opens `source`, takes its image for the platform asked for, brings its layers into the
/// store and looks inside: the inspection, and the image it is of.
async fn inspect_one(
    reader: &Reader<'_>,
    source: &ImageSource,
    name: &str,
    opts: &ReadOptions,
) -> Result<(Inspection, Image), Error> {
    let artifact = reader.open(source).await?;
    let image = image_source::pick(&artifact, opts.platform.as_ref(), name)?;
    reader.fetch_layers(image).await?;
    let platforms = artifact
        .as_artifact()
        .images()
        .into_iter()
        .map(inspect::platform_of)
        .collect();
    let inspection = inspect::inspect(image, reader.store, name, platforms)?;
    Ok((inspection, image.clone()))
}

/// `lockship diff`: what changed from image `a` to image `b`.
pub async fn diff_images(
    opts: &ReadOptions,
    a: &str,
    b: &str,
    reporter: &dyn Reporter,
) -> Result<ImageDiff, Error> {
    let (sa, sb) = (ImageSource::parse(a)?, ImageSource::parse(b)?);
    with_reader(opts, reporter, async |reader| {
        let (from, _) = inspect_one(reader, &sa, a, opts).await?;
        let (to, _) = inspect_one(reader, &sb, b, opts).await?;
        Ok(image_diff::diff(&from, &to))
    })
    .await
}

/// What `lockship push` is to do besides pushing.
#[derive(Clone, Debug)]
pub struct PushOptions {
    pub read: ReadOptions,
    /// The project whose smoke commands gate the push, and whether the user named it (a
    /// directory that is not a project is then an error, not "no smoke commands").
    pub project_dir: PathBuf,
    pub project_named: bool,
    /// The target whose smoke commands run (None: the one the image's label names).
    pub target: Option<String>,
    pub smoke: SmokeMode,
    pub run: SmokeRun,
}

/// What `lockship push` did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PushOutcome {
    /// The digest the references now name (a manifest's or an index's).
    pub digest: String,
    pub pushed: Vec<PushedReport>,
    pub smoke: Vec<SmokeResult>,
    pub smoke_remembered: bool,
}

/// `lockship push SOURCE REF…`: the image as built (every platform, every digest kept) to
/// each reference, after the smoke commands pass on it.
pub async fn push_image(
    opts: &PushOptions,
    name: &str,
    targets: &[String],
    reporter: &dyn Reporter,
) -> Result<PushOutcome, Error> {
    let source = ImageSource::parse(name)?;
    let targets: Vec<Reference> = targets
        .iter()
        .map(|t| Ok(lockship_oci::registry::parse_reference(t)?))
        .collect::<Result<_, Error>>()?;
    with_reader(&opts.read, reporter, async |reader| {
        reporter.step(&format!("reading {name}"));
        let artifact = reader.open(&source).await?;
        let (smoke, smoke_remembered) = gate(opts, reader, &artifact, name, reporter).await?;
        let pushed = send(opts, reader, &artifact, &targets, reporter).await?;
        Ok(PushOutcome {
            digest: artifact.as_artifact().digest().to_string(),
            pushed,
            smoke,
            smoke_remembered,
        })
    })
    .await
}

/// Runs the project's smoke commands on the image this machine can run, unless they passed on
/// it before (`build --push` and `test` remember that) or there are none.
async fn gate(
    opts: &PushOptions,
    reader: &Reader<'_>,
    artifact: &OwnedArtifact,
    name: &str,
    reporter: &dyn Reporter,
) -> Result<(Vec<SmokeResult>, bool), Error> {
    if opts.smoke == SmokeMode::Skip {
        return Ok((Vec::new(), false));
    }
    let project = match Project::load(&opts.project_dir) {
        Ok(project) => project,
        Err(ProjectError::NotAProject { .. }) if !opts.project_named => {
            return Ok((Vec::new(), false))
        }
        Err(e) => return Err(e.into()),
    };
    let host = Platform::host();
    let Ok(image) = artifact.image_for(Some(&host)) else {
        reporter.warn(&format!(
            "the smoke commands did not run: {name} has no image for this machine ({host})"
        ));
        return Ok((Vec::new(), false));
    };
    let target = opts.target.clone().unwrap_or_else(|| image_target(image));
    let commands = project.smoke_commands(&project.target(&target)?);
    if commands.is_empty() {
        return Ok((Vec::new(), false));
    }
    let cache_dir = &opts.read.cache_dir;
    let marker = smoke::pass_marker(cache_dir, &image.manifest_digest, &commands);
    if marker.is_file() {
        return Ok((Vec::new(), true));
    }
    reader.fetch_layers(image).await?;
    let results = run_smoke(
        image,
        reader.store,
        &commands,
        &project.name,
        opts.run,
        reporter,
    )?;
    crate::builder::cache::write_cached(&marker, &results.len())?;
    Ok((results, false))
}

/// The target an image's `dev.lockship.target` label names, else `production`.
fn image_target(image: &Image) -> String {
    serde_json::from_slice::<serde_json::Value>(&image.config)
        .ok()
        .and_then(|c| {
            c.pointer("/config/Labels/dev.lockship.target")
                .and_then(|v| v.as_str())
                .map(String::from)
        })
        .unwrap_or_else(|| crate::project::PRODUCTION.to_string())
}

/// Every image's blobs to every target, then the manifests (or the index) one target after
/// another; a failure after some tags moved names them.
async fn send(
    opts: &PushOptions,
    reader: &Reader<'_>,
    artifact: &OwnedArtifact,
    targets: &[Reference],
    reporter: &dyn Reporter,
) -> Result<Vec<PushedReport>, Error> {
    let registry = &reader.registry;
    let store: &BlobStore = reader.store;
    let none = std::collections::HashMap::new();
    let mut reports = Vec::with_capacity(targets.len());
    for target in targets {
        reporter.step(&format!("pushing layers to {target}"));
        let mut total = PushReport::default();
        for image in artifact.as_artifact().images() {
            let report = registry
                .push_blobs(image, target, None, store, &none)
                .await?;
            total.uploaded += report.uploaded;
            total.uploaded_bytes += report.uploaded_bytes;
            total.mounted += report.mounted;
            total.skipped += report.skipped;
        }
        reports.push(total);
    }
    crate::builder::publish::move_tags(
        registry,
        reporter,
        &opts.read.cache_dir,
        artifact.as_artifact(),
        targets,
        reports,
        &|_| false,
    )
    .await
}

/// What `lockship sbom` made.
#[derive(Clone, Debug)]
pub struct SbomOutcome {
    pub document: serde_json::Value,
    /// The referrer manifest's digest, when `--attach` pushed it.
    pub attached: Option<String>,
}

/// `lockship sbom`: the SBOM of the image `name` (one platform), and with `attach`, the same
/// document pushed to its registry as a referrer of the image.
pub async fn sbom_image(
    opts: &ReadOptions,
    name: &str,
    format: crate::sbom::SbomFormat,
    attach: bool,
    reporter: &dyn Reporter,
) -> Result<SbomOutcome, Error> {
    let source = ImageSource::parse(name)?;
    let attach_to = match (&source, attach) {
        (ImageSource::Registry(reference), true) => Some(reference),
        (_, true) => {
            return Err(Error::Usage(format!(
                "--attach pushes the SBOM beside the image in its registry; `{name}` is not a registry reference"
            )))
        }
        (_, false) => None,
    };
    with_reader(opts, reporter, async |reader| {
        let (document, subject) = sbom_of(reader, &source, name, opts, format).await?;
        let attached = match attach_to {
            Some(reference) => {
                let bytes = crate::sbom::to_bytes(&document);
                let digest = reader
                    .registry
                    .attach(
                        reference,
                        &subject,
                        format.media_type(),
                        &bytes,
                        &Default::default(),
                    )
                    .await?;
                Some(digest.to_string())
            }
            None => None,
        };
        Ok(SbomOutcome { document, attached })
    })
    .await
}

async fn sbom_of(
    reader: &Reader<'_>,
    source: &ImageSource,
    name: &str,
    opts: &ReadOptions,
    format: crate::sbom::SbomFormat,
) -> Result<(serde_json::Value, lockship_oci::registry::Subject), Error> {
    let (inspection, image) = inspect_one(reader, source, name, opts).await?;
    let config: serde_json::Value = serde_json::from_slice(&image.config).unwrap_or_default();
    let created = config
        .get("created")
        .and_then(|c| c.as_str())
        .and_then(crate::sbom::utc_seconds)
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_string());
    let title = inspection
        .config
        .labels
        .get("org.opencontainers.image.title")
        .cloned()
        .unwrap_or_else(|| name.to_string());
    let document = crate::sbom::document(
        format,
        &inspection,
        &crate::sbom::SbomContext {
            created: &created,
            name: &title,
        },
    );
    let subject = lockship_oci::registry::Subject {
        media_type: lockship_oci::registry::declared_media_type(
            &image.manifest,
            lockship_oci::media_types::OCI_MANIFEST,
        ),
        digest: image.manifest_digest.clone(),
        size: image.manifest.len() as u64,
    };
    Ok((document, subject))
}
