//! Wheel URLs for locks that list only hashes, from the configured index, cached.

use futures::{StreamExt, TryStreamExt};
use serde::Serialize;

use crate::error::Error;
use crate::project::Project;
use lockship_net::Http;
use lockship_oci::digest::Digest;
use lockship_python::index;
use lockship_python::lock::{requirements_txt, Artifacts, LockFile, LockKind, LockedPackage};

use super::cache::{read_cached, write_cached};
use super::BuildOptions;
use crate::cache_dir::Bucket;

/// Fills in wheel URLs for packages the lock lists only by hashes, from the package's own index
/// or the configured one. Answers are cached by (index, package, version, hashes): the hashes
/// pin the files, so they cannot go stale in a way that matters. An index URL's user info goes
/// to `http`'s credential store (sent to that host only); the URL without it is what is keyed,
/// cached and shown.
pub(super) async fn resolve_index_files(
    lock: &LockFile,
    project: &Project,
    mut packages: Vec<LockedPackage>,
    http: &Http,
    opts: &BuildOptions,
) -> Result<Vec<LockedPackage>, Error> {
    let configured = default_index(lock, project, opts);
    let mut needs_default = false;
    // A package's own index carries its user info off to `http`, once, here.
    for p in &mut packages {
        match &mut p.artifacts {
            Artifacts::FromIndex {
                index: Some(own), ..
            }
            | Artifacts::Unhashed { index: Some(own) } => *own = http.add_credentials(own),
            Artifacts::FromIndex { index: None, .. } | Artifacts::Unhashed { index: None } => {
                needs_default = true
            }
            Artifacts::Listed { .. } | Artifacts::Local { .. } => {}
        }
    }
    // Files on the user's index need its credentials even when the lock names their URLs; only
    // packages with no index of their own need the index to be configured.
    let default_index = match configured {
        Ok(url) => http.add_credentials(&url),
        Err(e) if needs_default => return Err(e.into()),
        Err(_) => String::new(),
    };
    // Every host the build will ask gets its credentials: user info first, then the user's
    // uv/poetry variables and netrc.
    let urls = packages.iter().flat_map(|p| match &p.artifacts {
        Artifacts::Listed { wheels, .. } => {
            wheels.iter().map(|w| w.url.as_str()).collect::<Vec<_>>()
        }
        Artifacts::FromIndex { index, .. } | Artifacts::Unhashed { index } => {
            index.iter().map(String::as_str).collect()
        }
        Artifacts::Local { .. } => Vec::new(),
    });
    super::credentials::register(
        project,
        std::iter::once(default_index.as_str())
            .filter(|url| !url.is_empty())
            .chain(urls),
        &opts.index_credentials,
        http,
    );
    let cache = Bucket::Index.under(&opts.cache_dir);
    futures::stream::iter(packages)
        .map(|p| {
            let (http, default_index, cache) = (&http, &default_index, &cache);
            async move {
                let (hashes, index) = match &p.artifacts {
                    Artifacts::FromIndex { hashes, index } => (hashes.as_slice(), index),
                    // Marked apart in the key: the index's own hashes were trusted.
                    Artifacts::Unhashed { index } => (&[][..], index),
                    Artifacts::Listed { .. } | Artifacts::Local { .. } => return Ok(p),
                };
                let index_url = index.clone().unwrap_or_else(|| default_index.clone());
                let unhashed = if hashes.is_empty() { "unhashed" } else { "" };
                let key = Digest::of_parts(
                    [
                        "files-v2",
                        index_url.as_str(),
                        &p.name,
                        &p.version,
                        unhashed,
                    ]
                    .into_iter()
                    .chain(hashes.iter().map(Digest::as_str)),
                );
                let path = cache.join(format!("{}.json", key.hex()));
                if let Some(files) = read_cached::<CachedFiles>(&path) {
                    return Ok(LockedPackage {
                        artifacts: Artifacts::Listed {
                            wheels: files.wheels.into_iter().map(Into::into).collect(),
                            sdist: files.sdist.map(Into::into),
                        },
                        ..p
                    });
                }
                let resolved = index::resolve_files(http, &index_url, p).await?;
                if let Artifacts::Listed { wheels, sdist } = &resolved.artifacts {
                    write_cached(
                        &path,
                        &CachedFiles {
                            wheels: wheels.iter().cloned().map(Into::into).collect(),
                            sdist: sdist.clone().map(Into::into),
                        },
                    )?;
                }
                Ok::<_, Error>(resolved)
            }
        })
        .buffered(8)
        .try_collect()
        .await
}

/// The index the project's packages come from unless the lock names another: the lock's own
/// (`--index-url` in a requirements.txt), else the user's configuration.
pub(super) fn default_index(
    lock: &LockFile,
    project: &Project,
    opts: &BuildOptions,
) -> Result<String, index::IndexError> {
    let from_lock = match lock.kind {
        LockKind::RequirementsTxt => requirements_txt::options(&lock.text).index_url,
        _ => None,
    };
    index::configured_index(
        &lock.path,
        from_lock.as_deref(),
        &opts.index_sources,
        project.pyproject.as_ref(),
    )
}

#[derive(Serialize, serde::Deserialize)]
pub(super) struct CachedFiles {
    wheels: Vec<CachedWheel>,
    sdist: Option<CachedWheel>,
}

#[derive(Serialize, serde::Deserialize)]
pub(super) struct CachedWheel {
    filename: String,
    url: String,
    sha256: Digest,
    size: Option<u64>,
}

impl From<lockship_python::lock::LockedWheel> for CachedWheel {
    fn from(w: lockship_python::lock::LockedWheel) -> Self {
        CachedWheel {
            filename: w.filename,
            url: w.url,
            sha256: w.sha256,
            size: w.size,
        }
    }
}

impl From<CachedWheel> for lockship_python::lock::LockedWheel {
    fn from(w: CachedWheel) -> Self {
        lockship_python::lock::LockedWheel {
            filename: w.filename,
            url: w.url,
            sha256: w.sha256,
            size: w.size,
        }
    }
}
