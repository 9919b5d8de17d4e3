//! The image config a build writes: entrypoint, env, user, labels, and the image name.

use std::collections::BTreeMap;
use std::path::Path;

use crate::project::{AppMode, Project, TargetConfig};
use crate::user::User;
use lockship_oci::image::{self, ConfigSpec};
use lockship_python::lock::LockFile;
use lockship_python::target::PythonTarget;

use super::base::ResolvedBase;

/// `name:version` (or `name:latest`; `-TARGET` appended for other targets) for local outputs,
/// in the lowercase form Docker accepts.
pub(super) fn default_tag(project: &Project, target: &str) -> String {
    let name = lockship_python::lock::normalize_name(&project.name);
    let version = project.version.as_deref().unwrap_or("latest");
    if target == crate::project::PRODUCTION {
        format!("{name}:{version}")
    } else {
        format!("{name}:{version}-{target}")
    }
}

/// The entrypoint when the config gives none: the project's only console script, else Python.
pub(super) fn default_entrypoint(
    project: &Project,
    target: &PythonTarget,
    mode: AppMode,
) -> Vec<String> {
    if mode == AppMode::Wheel && project.scripts.len() == 1 {
        let script = project.scripts.keys().next().expect("one script");
        return vec![format!("{}/bin/{script}", target.venv)];
    }
    vec![format!("{}/bin/python", target.venv)]
}

/// Everything the image config is derived from.
pub(super) struct ImageSettings<'a> {
    pub(super) target_cfg: &'a TargetConfig,
    pub(super) target_name: &'a str,
    pub(super) project: &'a Project,
    pub(super) target: &'a PythonTarget,
    pub(super) user: &'a User,
    pub(super) workdir: &'a str,
    pub(super) base: &'a ResolvedBase,
    pub(super) lock: &'a LockFile,
    pub(super) created: u64,
}

pub(super) fn config_spec(settings: &ImageSettings<'_>) -> ConfigSpec {
    let ImageSettings {
        target_cfg,
        target_name,
        project,
        target,
        user,
        workdir,
        base,
        lock,
        created,
    } = *settings;
    let base_path = base
        .config
        .pointer("/config/Env")
        .and_then(|v| v.as_array())
        .and_then(|a| {
            a.iter()
                .filter_map(|s| s.as_str())
                .find_map(|s| s.strip_prefix("PATH="))
        })
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .to_string();
    let mut env = vec![
        (
            "PATH".to_string(),
            format!("{}/bin:{base_path}", target.venv),
        ),
        ("VIRTUAL_ENV".to_string(), target.venv.clone()),
        ("PYTHONUNBUFFERED".to_string(), "1".to_string()),
        // The image is read-only to its non-root user; writing bytecode would only fail.
        ("PYTHONDONTWRITEBYTECODE".to_string(), "1".to_string()),
    ];
    env.extend(
        project
            .config
            .env
            .iter()
            .chain(&target_cfg.env)
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    let mode = project.app_mode().unwrap_or(AppMode::Copy);
    let mut labels = BTreeMap::new();
    labels.insert(
        "org.opencontainers.image.created".into(),
        image::rfc3339(created),
    );
    labels.insert(
        "org.opencontainers.image.title".into(),
        project.name.clone(),
    );
    if let Some(v) = &project.version {
        labels.insert("org.opencontainers.image.version".into(), v.clone());
    }
    labels.insert(
        "org.opencontainers.image.base.name".into(),
        base.name.clone(),
    );
    let (key, value) = &base.digest_label;
    labels.insert(key.clone(), value.clone());
    labels.insert("dev.lockship.lock.digest".into(), lock.digest.to_string());
    labels.insert("dev.lockship.target".into(), target_name.to_string());
    // CI clones carry tokens in the remote URL (https://gitlab-ci-token:…@host/…): the label
    // keeps only what locates the source, never user info, a query or a fragment.
    let source = project
        .config
        .source
        .clone()
        .or_else(|| git(&project.dir, &["remote", "get-url", "origin"]))
        .map(|url| lockship_net::url::source_label(&url))
        .filter(|url| !url.is_empty());
    if let Some(source) = source {
        labels.insert("org.opencontainers.image.source".into(), source);
    }
    if let Some(rev) = git(&project.dir, &["rev-parse", "HEAD"]) {
        labels.insert("org.opencontainers.image.revision".into(), rev);
    }
    labels.extend(
        project
            .config
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    ConfigSpec {
        entrypoint: Some(
            target_cfg
                .entrypoint
                .as_ref()
                .or(project.config.entrypoint.as_ref())
                .map(|c| c.to_vec())
                .unwrap_or_else(|| default_entrypoint(project, target, mode)),
        ),
        cmd: target_cfg
            .cmd
            .as_ref()
            .or(project.config.cmd.as_ref())
            .map(|c| c.to_vec()),
        env,
        workdir: Some(workdir.to_string()),
        user: Some(user.config_value()),
        labels,
        created,
        // The cache record goes on when the image is assembled.
        annotations: Default::default(),
    }
}

/// Runs a read-only git query in `dir`; None outside a work tree or without git.
pub(super) fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}
