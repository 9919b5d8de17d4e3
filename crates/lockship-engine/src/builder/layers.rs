//! Writes one planned layer: runtime skeleton, installed wheels, the app, project files, or the
//! bytecode of a base's standard library.

use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::plan::{LayerContent, PlannedLayer};
use crate::user::{self, User};
use lockship_oci::blob_store::BlobStore;
use lockship_oci::layer::{self, LayerInfo};
use lockship_oci::tar_tree::TarTree;
use lockship_python::install;
use lockship_python::probe::BaseFacts;
use lockship_python::select::ChosenWheel;
use lockship_python::target::PythonTarget;

use super::bytecode::Compiler;
use super::cache::io_err;
use lockship_python::bytecode;
use lockship_sys::scratch::ScratchDir;

/// What every layer builder needs; shared by the pipeline's blocking workers.
pub(super) struct LayerContext {
    pub(super) target: PythonTarget,
    pub(super) store: BlobStore,
    pub(super) mtime: u64,
    pub(super) project_dir: PathBuf,
    pub(super) user: User,
    pub(super) workdir: String,
    pub(super) facts: BaseFacts,
    /// Where wheels' ELF facts are cached (`native_libs`).
    pub(super) native_dir: PathBuf,
    pub(super) compression: lockship_oci::layer::Compression,
}

impl LayerContext {
    /// The context of `project`'s layers for `target`, run as `user` in `workdir` on a base
    /// with `facts`.
    pub(super) fn new(
        session: &super::Session<'_>,
        project: &crate::project::Project,
        target: &PythonTarget,
        user: &User,
        workdir: &str,
        facts: &BaseFacts,
    ) -> Result<LayerContext, Error> {
        let cache_dir = &session.opts.cache_dir;
        Ok(LayerContext {
            target: target.clone(),
            store: session.store.clone(),
            mtime: session.opts.source_date_epoch,
            project_dir: project.dir.clone(),
            user: user.clone(),
            workdir: workdir.to_string(),
            facts: facts.clone(),
            native_dir: crate::cache_dir::Bucket::Native.under(cache_dir),
            compression: project.compression()?,
        })
    }
}

/// Writes `planned`; the app layer installs `app_wheel`, built beforehand (see `app_wheel.rs`),
/// and a layer with bytecode compiles it with `compiler`.
pub(super) fn build_layer(
    ctx: &LayerContext,
    planned: &PlannedLayer,
    app_wheel: Option<&Path>,
    compiler: Option<&Compiler>,
) -> Result<LayerInfo, Error> {
    let tmp = ctx.store.tmp_dir();
    let scratch = ScratchDir::new_in(&tmp).map_err(io_err(&tmp))?;
    let root = scratch.path().join("root");
    fs_err::create_dir_all(&root).map_err(io_err(&root))?;
    let mut tree = TarTree::new();
    match &planned.content {
        LayerContent::Runtime => {
            install::venv_skeleton(&ctx.target, &mut tree);
            user::add_to_tree(&ctx.user, &ctx.facts, &mut tree);
            tree.dir(&ctx.workdir, 0o755, 0, 0);
        }
        LayerContent::Wheels { wheels, bytecode } => {
            for w in wheels {
                install_from_store(ctx, w, &root, &mut tree)?;
            }
            tree.add_host_dir(&root, "")
                .map_err(lockship_oci::layer::LayerError::from)?;
            // Last: a pyc a wheel stages itself (.data/purelib/…/__pycache__) gives way to ours.
            if *bytecode {
                compile(ctx, compiler, &mut tree, &root)?;
            }
        }
        LayerContent::AppWheel { bytecode } => {
            let wheel = app_wheel.ok_or_else(|| {
                Error::Usage("the app layer was planned without an app wheel".into())
            })?;
            let filename = wheel
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            install::install(wheel, &filename, &ctx.target, &root, &mut tree)?;
            tree.add_host_dir(&root, "")
                .map_err(lockship_oci::layer::LayerError::from)?;
            // Last: a pyc a wheel stages itself (.data/purelib/…/__pycache__) gives way to ours.
            if *bytecode {
                compile(ctx, compiler, &mut tree, &root)?;
            }
        }
        LayerContent::StdlibBytecode { layers, stdlib } => {
            let compiler = compiler.ok_or_else(|| {
                Error::Usage("a layer with bytecode was planned without an interpreter".into())
            })?;
            let blobs: Vec<PathBuf> = layers.iter().map(|d| ctx.store.path(d)).collect();
            let tag = &compiler.interpreter.cache_tag;
            let jobs = bytecode::stdlib_jobs(&blobs, stdlib, tag, &root)?;
            add_pycs(compiler, &jobs, &mut tree)?;
        }
        LayerContent::AppFiles { files } => {
            for f in files {
                let dest = format!(
                    "{}/{}",
                    ctx.workdir.trim_end_matches('/'),
                    f.to_string_lossy()
                );
                tree.add_host_path(&ctx.project_dir.join(f), &dest)
                    .map_err(lockship_oci::layer::LayerError::from)?;
            }
        }
    }
    Ok(layer::write_layer_as(
        &tree,
        ctx.mtime,
        &ctx.store,
        ctx.compression,
    )?)
}

/// Compiles the `.py` files the layer puts in site-packages and adds their pycs to `tree`.
fn compile(
    ctx: &LayerContext,
    compiler: Option<&Compiler>,
    tree: &mut TarTree,
    root: &Path,
) -> Result<(), Error> {
    let compiler = compiler.ok_or_else(|| {
        Error::Usage("a layer with bytecode was planned without an interpreter".into())
    })?;
    let site = ctx.target.site_packages();
    let jobs = bytecode::jobs_for_layer(tree, root, &site, &compiler.interpreter.cache_tag)?;
    add_pycs(compiler, &jobs, tree)
}

/// Compiles `jobs` and adds their pycs to `tree`.
fn add_pycs(compiler: &Compiler, jobs: &[bytecode::Job], tree: &mut TarTree) -> Result<(), Error> {
    let pycs = compiler.interpreter.compile(
        jobs,
        compiler.workers,
        &compiler.children,
        compiler.memo.as_ref(),
    )?;
    for (path, pyc) in pycs {
        tree.bytes(&path, pyc, 0o644);
    }
    Ok(())
}

pub(super) fn install_from_store(
    ctx: &LayerContext,
    w: &ChosenWheel,
    root: &Path,
    tree: &mut TarTree,
) -> Result<(), Error> {
    Ok(install::install(
        &ctx.store.path(&w.wheel.sha256),
        &w.wheel.filename,
        &ctx.target,
        root,
        tree,
    )?)
}
