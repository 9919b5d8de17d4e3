//! Packages with no wheel that fits the target, built from their sdists in a builder (see
//! `container_build`): for a Debian-package base, an image lockship assembles from the same
//! suite (the base's packages plus build-essential, pythonX.Y-dev, python3-pip and
//! `[tool.lockship.builder] packages`) and loads into Docker or Podman; for any other base, the
//! `[tool.lockship.builder] image`. Built wheels are cached by (sdist hash, builder, target)
//! and then go into the image like any locked wheel. The builder never reaches the image.

use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::cache_dir::Bucket;
use crate::container_build::{self, BuilderError, ContainerBuild};
use crate::error::Error;
use crate::project::Project;
use crate::smoke::{Runtime, SmokeError};
use lockship_oci::digest::Digest;
use lockship_oci::image::{self, ConfigSpec};
use lockship_oci::platform::Platform;
use lockship_python::fetch;
use lockship_python::lock::LockedWheel;
use lockship_python::select::{self, ChosenWheel, NoWheelError, Unsatisfied};
use lockship_python::target::PythonTarget;
use lockship_sys::interrupt::Children;
use lockship_sys::scratch::ScratchDir;

use super::base::BaseSource;
use super::cache::{io_err, read_cached, write_cached};
use super::shared_wheels::SharedWheel;
use super::Session;

/// The largest wheel a builder may leave (it is read into memory to be stored): far past any
/// real one built from an sdist.
const MAX_BUILT_WHEEL: u64 = 2 << 30;

/// A wheel built from an sdist, as cached.
#[derive(Serialize, Deserialize)]
struct Built {
    filename: String,
    sha256: Digest,
    size: u64,
}

/// The builder of one build: its image as the runtime knows it and what identifies it.
struct Builder {
    image: String,
    identity: String,
    /// A Debian builder lockship assembled: loaded into the runtime when it lacks it.
    assembled: Option<super::base::ResolvedBase>,
}

/// What building needs besides the packages.
pub(super) struct BuildContext<'a> {
    pub project: &'a Project,
    pub target: &'a PythonTarget,
    pub source: &'a dyn BaseSource,
    /// The index for build requirements (its credentials registered with the HTTP client).
    pub index_url: Option<String>,
}

/// Wheels for `missing`, built from their sdists (or taken from the cache). A package without
/// an sdist fails the build as before, with every such package named. `--dry-run` builds
/// nothing: such packages are planned with their sdists.
pub(super) async fn build_missing(
    session: &Session<'_>,
    ctx: &BuildContext<'_>,
    missing: Vec<Unsatisfied>,
) -> Result<Vec<ChosenWheel>, Error> {
    if missing.is_empty() {
        return Ok(Vec::new());
    }
    let (buildable, unbuildable): (Vec<_>, Vec<_>) =
        missing.into_iter().partition(|u| u.sdist.is_some());
    if !unbuildable.is_empty() {
        return Err(NoWheelError {
            target: ctx.target.describe(),
            packages: unbuildable,
        }
        .into());
    }
    // A dry run assembles no builder (that downloads and writes it): sdists are planned as is,
    // once it is clear there would be a builder to build them (the config, or a base that
    // can assemble one), so that a dry run fails where the build would.
    if session.opts.dry_run {
        // A pure wheel this machine built before needs no builder, as in the build.
        let bucket = Bucket::BuiltWheels.under(&session.opts.cache_dir);
        let needs_building = buildable.iter().find(|u| {
            let sdist = u.sdist.as_ref().expect("partitioned on sdist");
            let entry = bucket.join(format!("{}.json", pure_key(sdist, ctx).hex()));
            !read_cached::<Built>(&entry).is_some_and(|b| session.store.contains(&b.sha256))
        });
        if let Some(missing) = needs_building.and_then(|first| missing_builder(ctx, first)) {
            return Err(missing.into());
        }
        return Ok(buildable
            .into_iter()
            .map(|u| ChosenWheel {
                wheel: u.sdist.expect("partitioned on sdist"),
                name: u.name,
                version: u.version,
            })
            .collect());
    }
    let target_json = serde_json::to_string(ctx.target).expect("target serializes");
    let tags = ctx.target.tags()?;
    let bucket = Bucket::BuiltWheels.under(&session.opts.cache_dir);
    // Assembled (and loaded) only when something has to be built.
    let mut builder_slot: Option<Builder> = None;
    // (index in `buildable`, the chosen wheel), in the order of `buildable` at the end.
    let mut wheels: Vec<(usize, ChosenWheel)> = Vec::new();
    // What has to be built: (index, package, sdist, cache entry, pure-wheel entry, key, pure
    // key).
    let mut todo = Vec::new();
    for (i, package) in buildable.iter().enumerate() {
        let sdist = package.sdist.as_ref().expect("partitioned on sdist");
        // A pure-Python wheel built from this sdist for this Python, on any platform, serves
        // every platform: a multi-platform build builds it once, and the other platforms
        // need no builder of their own (nor emulation).
        let pure = pure_key(sdist, ctx);
        let pure_entry = bucket.join(format!("{}.json", pure.hex()));
        if let Some(built) =
            cached_or_shared(session, &pure_entry, pure.hex(), true, package, &tags).await?
        {
            share(session, [pure.hex()], &built);
            wheels.push((i, built_wheel(package, built, pure.hex())));
            continue;
        }
        if builder_slot.is_none() {
            builder_slot = Some(builder(session, ctx, package).await?);
        }
        let builder = builder_slot.as_ref().expect("set above");
        let key = Digest::of_parts([
            "lockship-sdist-wheel-v1",
            sdist.sha256.as_str(),
            &builder.identity,
            &target_json,
        ]);
        let entry = bucket.join(format!("{}.json", key.hex()));
        if let Some(built) =
            cached_or_shared(session, &entry, key.hex(), false, package, &tags).await?
        {
            share(session, [key.hex()], &built);
            wheels.push((i, built_wheel(package, built, key.hex())));
            continue;
        }
        todo.push((i, package, sdist, entry, pure_entry, key, pure));
    }
    if let (Some(builder), false) = (&builder_slot, todo.is_empty()) {
        let runtime = build_runtime(session)?;
        load_builder(session, builder, runtime).await?;
        // Side by side, one per core: a build is mostly one compiler or pip waiting on the
        // index, and each has its own container.
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let results: Vec<(usize, Result<ChosenWheel, Error>)> =
            futures::stream::iter(todo.into_iter().map(
                |(i, package, sdist, entry, pure_entry, key, pure_key)| async move {
                    let result = async {
                        session.reporter.step(&format!(
                            "building {} {} from {} in {}",
                            package.name, package.version, sdist.filename, builder.image
                        ));
                        let sdist_chosen = ChosenWheel {
                            name: package.name.clone(),
                            version: package.version.clone(),
                            wheel: sdist.clone(),
                        };
                        fetch::fetch_one(session.http, &sdist_chosen, session.store).await?;
                        let built =
                            build_one(session, ctx, builder, runtime, package, sdist).await?;
                        check_built(&built.filename, package, &builder.image, ctx.target)?;
                        write_cached(&entry, &built)?;
                        if lockship_python::app::is_pure_wheel(&built.filename) {
                            write_cached(&pure_entry, &built)?;
                            share(session, [key.hex(), pure_key.hex()], &built);
                        } else {
                            share(session, [key.hex()], &built);
                        }
                        Ok::<_, Error>(built_wheel(package, built, key.hex()))
                    };
                    (i, result.await)
                },
            ))
            .buffer_unordered(cores)
            .collect()
            .await;
        // Every build ran to its end; the failure reported is the first package's, whichever
        // finished first, so the same input gives the same error.
        let mut results = results;
        results.sort_by_key(|(i, _)| *i);
        for (i, result) in results {
            wheels.push((i, result?));
        }
    }
    wheels.sort_by_key(|(i, _)| *i);
    Ok(wheels.into_iter().map(|(_, w)| w).collect())
}

/// The wheel filed under `key` (a `pure` one by the sdist and Python only): this machine's
/// cache entry at `entry`, else the one another build shared through the registry, fetched
/// and filed at `entry` (not built).
async fn cached_or_shared(
    session: &Session<'_>,
    entry: &std::path::Path,
    key: &str,
    pure: bool,
    package: &Unsatisfied,
    tags: &lockship_python::target::Tags,
) -> Result<Option<Built>, Error> {
    if let Some(built) = read_cached::<Built>(entry) {
        // A pure wheel serves every platform whose tags it fits.
        if session.store.contains(&built.sha256) && (!pure || select::fits(&built.filename, tags)) {
            return Ok(Some(built));
        }
    }
    let Some(built) = from_registry(session, key, pure, package, tags).await else {
        return Ok(None);
    };
    write_cached(entry, &built)?;
    Ok(Some(built))
}

/// Files `built` for sharing through the registry under `keys` (see `shared_wheels`).
fn share<const N: usize>(session: &Session<'_>, keys: [&str; N], built: &Built) {
    session.remote.made_wheel(SharedWheel {
        keys: keys.iter().map(|k| k.to_string()).collect(),
        filename: built.filename.clone(),
        sha256: built.sha256.clone(),
        size: built.size,
    });
}

/// The wheel filed under `key` that another build shared through the registry, fetched into
/// the store; None when no image read has it, it does not fit, or it cannot be fetched (then
/// it is built here, as if never shared).
async fn from_registry(
    session: &Session<'_>,
    key: &str,
    pure: bool,
    package: &Unsatisfied,
    tags: &lockship_python::target::Tags,
) -> Option<Built> {
    let found = session
        .remote
        .shared(session.registry, session.store, session.reporter)
        .await;
    let (from, wheel) = found.wheel(key)?;
    if !select::is_wheel_of(&wheel.filename, &package.name, &package.version)
        || !select::fits(&wheel.filename, tags)
        || (pure && !lockship_python::app::is_pure_wheel(&wheel.filename))
        || wheel.size > MAX_SHARED_WHEEL
    {
        return None;
    }
    let what = format!(
        "the wheel of {} {} shared with {from}",
        package.name, package.version
    );
    let fetched = session
        .registry
        .fetch_blob(from, &wheel.sha256, Some(wheel.size), &what, session.store)
        .await;
    if let Err(e) = fetched {
        session
            .reporter
            .warn(&format!("{what} could not be fetched ({e}): building it"));
        return None;
    }
    session.reporter.step(&format!(
        "{} {}: the wheel another build made, from {from}",
        package.name, package.version
    ));
    Some(Built {
        filename: wheel.filename.clone(),
        sha256: wheel.sha256.clone(),
        size: wheel.size,
    })
}

/// The largest wheel taken from another build.
const MAX_SHARED_WHEEL: u64 = 1 << 30;

/// A wheel built earlier, as the package's chosen wheel.
fn built_wheel(package: &Unsatisfied, built: Built, key: &str) -> ChosenWheel {
    ChosenWheel {
        name: package.name.clone(),
        version: package.version.clone(),
        wheel: LockedWheel {
            filename: built.filename,
            // Never fetched: it is in the store, or the cache entry is not used.
            url: format!("lockship-built:{key}"),
            sha256: built.sha256,
            size: Some(built.size),
        },
    }
}

/// The key of a pure-Python wheel built from `sdist`: the sdist, the Python version and the
/// builder as configured (an image's name, or the packages a Debian base's builder gets),
/// not the platform, so that it serves every platform. With the builder in it, a project that
/// names another builder (one that would write something else into the wheel) never fills
/// this key for a project that does not.
fn pure_key(sdist: &LockedWheel, ctx: &BuildContext<'_>) -> Digest {
    let (major, minor, _) = ctx.target.version;
    Digest::of_parts([
        "lockship-sdist-pure-wheel-v2",
        sdist.sha256.as_str(),
        &format!("{major}.{minor}"),
        &configured_builder(ctx.project),
    ])
}

/// The builder as `project` configures it: `[tool.lockship.builder] image`, else the packages
/// a Debian base's builder gets beyond its own (for the keys of what a builder makes).
pub(super) fn configured_builder(project: &Project) -> String {
    let builder = project.config.builder.clone().unwrap_or_default();
    match builder.image {
        Some(image) => format!("image {image}"),
        None => format!("assembled with {:?}", builder.packages),
    }
}

/// The packages of a builder assembled from a Debian base: compilers, the target's Python
/// headers, pip, and `[tool.lockship.builder] packages`.
fn builder_packages(ctx: &BuildContext<'_>) -> Vec<String> {
    let (major, minor, _) = ctx.target.version;
    let mut packages = vec![
        "build-essential".to_string(),
        format!("python{major}.{minor}-dev"),
        "python3-pip".to_string(),
    ];
    packages.extend(
        ctx.project
            .config
            .builder
            .iter()
            .flat_map(|b| b.packages.iter().cloned()),
    );
    packages
}

/// The error when nothing can build `first`'s sdist: no `[tool.lockship.builder] image`, and
/// a base that cannot assemble a builder (a registry or layout base). Decided from the config
/// and the base's kind alone: nothing is resolved or downloaded.
fn missing_builder(ctx: &BuildContext<'_>, first: &Unsatisfied) -> Option<BuilderError> {
    let configured = ctx
        .project
        .config
        .builder
        .as_ref()
        .is_some_and(|b| b.image.is_some());
    (!configured && !ctx.source.assembles_builder()).then(|| no_image(ctx, first))
}

fn no_image(ctx: &BuildContext<'_>, first: &Unsatisfied) -> BuilderError {
    BuilderError::NoImage {
        package: first.name.clone(),
        version: first.version.clone(),
        target: ctx.target.describe(),
        config: ctx.project.config_path.clone(),
    }
}

/// A Debian resolution failure while assembling the builder is the builder's packages' (the
/// base's own resolved already): said so, for a hint that names their table.
fn builder_packages_error(e: Error) -> Error {
    match e {
        Error::Debian(debian) => match *debian {
            lockship_debian::DebianError::Resolve(resolve) => {
                BuilderError::Packages(resolve).into()
            }
            other => Error::Debian(Box::new(other)),
        },
        other => other,
    }
}

/// Refuses a build for another architecture that this machine cannot run (no binfmt
/// emulator), naming `package`, the first that needs building.
fn check_emulation(ctx: &BuildContext<'_>, package: &Unsatisfied) -> Result<(), BuilderError> {
    let host = Platform::host();
    if ctx.target.architecture == host.architecture
        || container_build::can_run(ctx.target.machine())
    {
        return Ok(());
    }
    Err(BuilderError::NoEmulation {
        package: package.name.clone(),
        version: package.version.clone(),
        platform: format!("linux/{}", ctx.target.architecture),
        host: host.architecture,
        machine: ctx.target.machine().to_string(),
    })
}

/// The builder: `[tool.lockship.builder] image`, else one assembled from a Debian base.
async fn builder(
    session: &Session<'_>,
    ctx: &BuildContext<'_>,
    first: &Unsatisfied,
) -> Result<Builder, Error> {
    let config = ctx.project.config.builder.clone().unwrap_or_default();
    if let Some(image) = config.image {
        return Ok(Builder {
            identity: format!("image {image}"),
            image,
            assembled: None,
        });
    }
    let Some(source) = ctx.source.builder(&builder_packages(ctx)) else {
        return Err(no_image(ctx, first).into());
    };
    // Before assembling it: a foreign builder is a hundred-odd .debs downloaded and written
    // for nothing when this machine cannot run it. (A wheel that builder made before is then
    // not looked up: its key needs the assembled builder.)
    check_emulation(ctx, first)?;
    session
        .reporter
        .step("assembling the builder from Debian packages");
    let base = source
        .resolve(session.store, session.reporter, session.remote)
        .await
        .map_err(builder_packages_error)?;
    let tag_digest = Digest::of_parts(["lockship-builder", &base.pinned]);
    Ok(Builder {
        image: format!("lockship-builder:{}", &tag_digest.hex()[..16]),
        identity: base.pinned.clone(),
        assembled: Some(base),
    })
}

/// The container runtime the builds run in (`--runtime`, else Docker, else Podman), with a
/// warning when Podman stands in for a Docker that does not answer.
fn build_runtime(session: &Session<'_>) -> Result<Runtime, BuilderError> {
    match Runtime::detect(session.opts.runtime) {
        Ok(detected) => {
            if let Some(note) = detected.fallback_note() {
                session.reporter.warn(&note);
            }
            Ok(detected.runtime)
        }
        Err(SmokeError::RuntimeDown { runtime, message }) => {
            Err(BuilderError::RuntimeDown { runtime, message })
        }
        Err(SmokeError::NoRuntime { tried }) => Err(BuilderError::NoRuntime { tried }),
        Err(other) => Err(BuilderError::NoRuntime {
            tried: other.to_string(),
        }),
    }
}

/// Loads an assembled builder into the runtime unless it has it already.
async fn load_builder(
    session: &Session<'_>,
    builder: &Builder,
    runtime: Runtime,
) -> Result<(), Error> {
    let Some(base) = &builder.assembled else {
        return Ok(());
    };
    if container_build::has_image(runtime, &builder.image) {
        return Ok(());
    }
    session
        .reporter
        .step(&format!("loading the builder into {}", runtime.program()));
    let image = image::assemble(&base.config, base.layers.clone(), 0, &ConfigSpec::default());
    let tmp = session.store.tmp_dir();
    let scratch = ScratchDir::new_in(&tmp).map_err(io_err(&tmp))?;
    let tar = scratch.path().join("builder.tar");
    let (store, tag, tar2) = (session.store.clone(), builder.image.clone(), tar.clone());
    tokio::task::spawn_blocking(move || {
        lockship_oci::docker_tar::write(&image, &store, &tar2, &tag)
    })
    .await
    .map_err(|e| Error::Usage(format!("builder writer crashed: {e}")))??;
    runtime.load(&tar)?;
    Ok(())
}

/// Runs one build and puts the wheel in the store.
async fn build_one(
    session: &Session<'_>,
    ctx: &BuildContext<'_>,
    builder: &Builder,
    runtime: Runtime,
    package: &Unsatisfied,
    sdist: &LockedWheel,
) -> Result<Built, Error> {
    let platform = (ctx.target.architecture != Platform::host().architecture)
        .then(|| format!("linux/{}", ctx.target.architecture));
    check_emulation(ctx, package)?;
    let (major, minor, _) = ctx.target.version;
    let tmp = session.store.tmp_dir();
    let scratch = ScratchDir::new_in(&tmp).map_err(io_err(&tmp))?;
    let (image, python) = (builder.image.clone(), format!("python{major}.{minor}"));
    let (name, version) = (package.name.clone(), package.version.clone());
    let (sdist_path, sdist_name) = (session.store.path(&sdist.sha256), sdist.filename.clone());
    let index_url = ctx
        .index_url
        .as_deref()
        .map(|url| session.http.with_credentials(url));
    let ca_bundle = session.opts.ca_bundle.clone();
    let (source_date_epoch, work) = (session.opts.source_date_epoch, scratch.path().to_path_buf());
    // A build takes minutes at worst: off the async workers.
    let wheel = tokio::task::spawn_blocking(move || {
        ContainerBuild {
            runtime,
            image: &image,
            platform: platform.as_deref(),
            python,
            package: &name,
            version: &version,
            sdist: &sdist_path,
            sdist_name: &sdist_name,
            index_url,
            ca_bundle: ca_bundle.as_deref(),
            source_date_epoch,
        }
        .run(&work, &Children::default())
    })
    .await
    .map_err(|e| Error::Usage(format!("the build of {} crashed: {e}", package.name)))??;
    // Never through a link the container may have swapped in since it was checked.
    let bytes = lockship_sys::confine::read_regular_file(&wheel, MAX_BUILT_WHEEL).map_err(|e| {
        Error::Io {
            path: wheel.clone(),
            source: e,
        }
    })?;
    let sha256 = session.store.put_bytes(&bytes)?;
    Ok(Built {
        filename: wheel
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        sha256,
        size: bytes.len() as u64,
    })
}

/// The built wheel must be the package's, of its version, and fit the target.
fn check_built(
    filename: &str,
    package: &Unsatisfied,
    image: &str,
    target: &PythonTarget,
) -> Result<(), Error> {
    let wrong = |why: String| BuilderError::NoWheel {
        package: package.name.clone(),
        version: package.version.clone(),
        image: image.to_string(),
        found: why,
    };
    if !select::is_wheel_of(filename, &package.name, &package.version) {
        return Err(wrong(filename.to_string()).into());
    }
    if !select::fits(filename, &target.tags()?) {
        return Err(wrong(format!(
            "{filename}, which does not fit {}",
            target.describe()
        ))
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockship_debian::resolve::ResolveError;

    #[test]
    fn a_builder_package_that_does_not_resolve_is_named_in_the_builders_table() {
        let unknown = || ResolveError::Unknown {
            name: "libpq-devv".into(),
            suite: "bookworm".into(),
            arch: "amd64".into(),
        };
        let e = builder_packages_error(lockship_debian::DebianError::Resolve(unknown()).into());
        assert!(e.to_string().contains("`libpq-devv` does not exist"), "{e}");
        assert!(e.hint().unwrap().contains("[tool.lockship.builder]"));
        // Other Debian failures (a mirror, a download) stay as they are.
        let other = builder_packages_error(lockship_debian::DebianError::NoMirror.into());
        assert!(matches!(other, Error::Debian(_)));
    }
}
