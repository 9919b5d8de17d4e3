//! Runs the smoke commands in the built image before anything is published.

use crate::error::Error;
use crate::smoke::{Runtime, SmokeError, SmokeResult, SmokeRun};
use lockship_oci::blob_store::BlobStore;
use lockship_oci::docker_tar;
use lockship_oci::image::{self};

use super::cache::io_err;
use super::Reporter;
use lockship_sys::scratch::ScratchDir;

/// Loads the image into the container runtime under a throwaway tag and runs each smoke command;
/// the first failure stops the build.
pub(crate) fn run_smoke(
    image: &image::Image,
    store: &BlobStore,
    commands: &[Vec<String>],
    name: &str,
    how: SmokeRun,
    reporter: &dyn Reporter,
) -> Result<Vec<SmokeResult>, Error> {
    let detected = Runtime::detect(how.runtime)?;
    if let Some(note) = detected.fallback_note() {
        reporter.warn(&note);
    }
    let runtime = detected.runtime;
    let repo = name.split(':').next().unwrap_or("app");
    // Unique per invocation: concurrent builds of the same image must not untag each other's.
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let tag = format!(
        "lockship-smoke/{repo}:{}-{}-{nonce}",
        &image.manifest_digest.hex()[..16],
        std::process::id()
    );
    let scratch = store.tmp_dir();
    let tmp = ScratchDir::new_in(&scratch).map_err(io_err(&scratch))?;
    let tar = tmp.path().join("image.tar");
    docker_tar::write(image, store, &tar, &tag)?;
    reporter.step(&format!(
        "loading the image into {runtime:?} for {} smoke commands",
        commands.len()
    ));
    // Untag even if lockship is stopped mid-test.
    let _untag = lockship_sys::interrupt::run_on_stop(vec![
        format!("{runtime:?}").to_lowercase(),
        "rmi".into(),
        tag.clone(),
    ]);
    runtime.load(&tar)?;
    let mut results = Vec::new();
    for argv in commands {
        reporter.step(&format!("smoke: {}", shell_words::join(argv)));
        let container = format!(
            "lockship-smoke-{}-{nonce}-{}",
            std::process::id(),
            results.len()
        );
        let result = runtime.run(&tag, &container, argv, how.network);
        reporter.smoke(&result);
        let failed = result.exit_code != 0;
        let (command, code) = (result.command.clone(), result.exit_code);
        results.push(result);
        if failed {
            runtime.untag(&tag);
            return Err(SmokeError::Failed { command, code }.into());
        }
    }
    runtime.untag(&tag);
    Ok(results)
}
