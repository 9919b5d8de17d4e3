//! What the lock-format tests share: the index the real tools lock against, poetry's source
//! for it, and a dry run that must be refused.

use std::path::Path;

use super::{env, lockship, Project};

/// The package index the tools lock against: the one scripts/test configured.
pub fn index_url() -> String {
    std::env::var("UV_DEFAULT_INDEX").expect("set by scripts/test")
}

/// Declares the index as the project's primary poetry source: poetry reaches an index only
/// through a declared source (TESTING.md).
pub fn add_poetry_source(project: &Project) {
    let path = project.path("pyproject.toml");
    let pyproject = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        format!(
            "{pyproject}\n[[tool.poetry.source]]\nname = \"idx\"\nurl = \"{}\"\npriority = \"primary\"\n",
            index_url()
        ),
    )
    .unwrap();
}

/// A `lockship build --dry-run` of `project` that must fail; its stderr.
pub fn refused(project: &Project, cache: &Path) -> String {
    let out = lockship(cache)
        .env("PIP_INDEX_URL", index_url())
        .arg("build")
        .arg(&project.dir)
        .args(["--base", &env().base, "--dry-run"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    String::from_utf8_lossy(&out.stderr).into_owned()
}
