//! Finds files on a package index through the simple repository API (PEP 691 JSON), for locks
//! such as requirements.txt that pin versions and hashes but name no URLs; and works out which
//! index to use from the user's own configuration.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::lock::{Artifacts, LockedPackage, LockedWheel};
use crate::net::url::{strip_userinfo, Redacted};
use crate::net::{Http, NetError};
use crate::oci::digest::Digest;

/// A project page larger than this is refused (the biggest on the public index are a few MB).
const MAX_PAGE: u64 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("{lock} names no package index, and none is configured")]
    NoIndex { lock: PathBuf },
    #[error("cannot look up {package} on the package index: {source}")]
    Request {
        package: String,
        #[source]
        source: NetError,
    },
    #[error("package index sent an unreadable answer for {url}: {message}")]
    BadResponse { url: Redacted, message: String },
    #[error("{package} {version}: no file on {index} matches the lock's hashes")]
    NotListed {
        package: String,
        version: String,
        index: Redacted,
    },
}

impl IndexError {
    pub fn hint(&self) -> Option<String> {
        match self {
            IndexError::NoIndex { .. } => Some(
                "set UV_DEFAULT_INDEX (or PIP_INDEX_URL) to your simple index URL, or add --index-url to the requirements file".into(),
            ),
            IndexError::Request { source, .. } => match source.status() {
                Some(401 | 403) => Some(
                    "put credentials in the index URL (https://user:password@host/simple) or your pip/uv configuration".into(),
                ),
                Some(404) => Some(
                    "check the index URL: it is the simple API's root (often ending in /simple), and the package must be on it".into(),
                ),
                _ => None,
            },
            IndexError::NotListed { .. } => Some("the lock may be for another index; re-lock against this one".into()),
            _ => None,
        }
    }
}

/// The index to query for a lock that carries no URLs: the lock's own `--index-url`, else the
/// user's uv or pip configuration (environment first, then config files), else the project's
/// `[[tool.uv.index]]` marked default.
pub fn configured_index(
    lock_path: &Path,
    from_lock: Option<&str>,
    pyproject: Option<&toml::Value>,
) -> Result<String, IndexError> {
    if let Some(url) = from_lock {
        return Ok(url.to_string());
    }
    for var in ["UV_DEFAULT_INDEX", "UV_INDEX_URL", "PIP_INDEX_URL"] {
        if let Ok(url) = std::env::var(var) {
            if !url.trim().is_empty() {
                return Ok(url.trim().to_string());
            }
        }
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let config_home = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".config")));
    if let Some(dir) = &config_home {
        if let Some(url) = uv_toml_index(&dir.join("uv").join("uv.toml")) {
            return Ok(url);
        }
    }
    let mut pip_confs: Vec<PathBuf> = std::env::var_os("PIP_CONFIG_FILE")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    if let Some(dir) = &config_home {
        pip_confs.push(dir.join("pip").join("pip.conf"));
    }
    if let Some(h) = &home {
        pip_confs.push(h.join(".pip").join("pip.conf"));
    }
    pip_confs.push(PathBuf::from("/etc/pip.conf"));
    for conf in pip_confs {
        if let Some(url) = pip_conf_index(&conf) {
            return Ok(url);
        }
    }
    if let Some(url) = pyproject
        .and_then(|p| p.get("tool")?.get("uv")?.get("index")?.as_array().cloned())
        .and_then(|indexes| {
            indexes.iter().find_map(|i| {
                (i.get("default")?.as_bool()? || indexes.len() == 1)
                    .then(|| i.get("url")?.as_str().map(String::from))
                    .flatten()
            })
        })
    {
        return Ok(url);
    }
    Err(IndexError::NoIndex {
        lock: lock_path.to_path_buf(),
    })
}

fn uv_toml_index(path: &Path) -> Option<String> {
    let value: toml::Value = toml::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    if let Some(url) = value.get("index-url").and_then(|v| v.as_str()) {
        return Some(url.to_string());
    }
    value.get("index")?.as_array()?.iter().find_map(|i| {
        i.get("default")?
            .as_bool()?
            .then(|| i.get("url")?.as_str().map(String::from))
            .flatten()
    })
}

fn pip_conf_index(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut section = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            section = line.trim_matches(['[', ']']).to_string();
        } else if section == "global" || section == "install" {
            if let Some((key, value)) = line.split_once('=') {
                if key.trim() == "index-url" {
                    return Some(value.trim().to_string());
                }
            }
        }
    }
    None
}

/// A PEP 691 project page: only what lockship reads.
#[derive(Deserialize)]
pub struct ProjectPage {
    files: Vec<FileEntry>,
}

#[derive(Deserialize)]
struct FileEntry {
    filename: String,
    url: String,
    #[serde(default)]
    hashes: std::collections::BTreeMap<String, String>,
    size: Option<u64>,
}

/// Replaces `FromIndex` artifacts with the index's wheels whose hash the lock allows. `index`
/// carries no user info: [`Http`] adds the credentials registered for its origin, to the page
/// and to files on the same origin, and to nothing else.
pub async fn resolve_files(
    http: &Http,
    index: &str,
    package: LockedPackage,
) -> Result<LockedPackage, IndexError> {
    let Artifacts::FromIndex { hashes } = &package.artifacts else {
        return Ok(package);
    };
    let url = format!("{}/{}/", index.trim_end_matches('/'), package.name);
    let (final_url, body) = http
        .get_bytes(
            &url,
            &[("Accept", "application/vnd.pypi.simple.v1+json")],
            MAX_PAGE,
        )
        .await
        .map_err(|source| IndexError::Request {
            package: package.name.clone(),
            source,
        })?;
    let page = parse_project_page(&body).map_err(|message| IndexError::BadResponse {
        url: http.shown(&url),
        message,
    })?;
    let base = ::url::Url::parse(&final_url).map_err(|e| IndexError::BadResponse {
        url: http.shown(&url),
        message: e.to_string(),
    })?;
    let mut has_sdist = false;
    let mut wheels = Vec::new();
    for file in page.files {
        let Some(sha256) = file.hashes.get("sha256").and_then(|h| Digest::from_hex(h)) else {
            continue;
        };
        if !hashes.contains(&sha256) {
            continue;
        }
        if !file.filename.ends_with(".whl") {
            has_sdist = true;
            continue;
        }
        // Relative to the page, after redirects. User info in a page's links is dropped: an
        // index does not get to hand out credentials.
        let file_url = base
            .join(&file.url)
            .map(|u| u.to_string())
            .unwrap_or(file.url);
        let file_url = strip_userinfo(&file_url);
        wheels.push(LockedWheel {
            filename: file.filename,
            url: file_url,
            sha256,
            size: file.size,
        });
    }
    if wheels.is_empty() && !has_sdist {
        return Err(IndexError::NotListed {
            package: package.name.clone(),
            version: package.version.clone(),
            index: http.shown(index),
        });
    }
    Ok(LockedPackage {
        artifacts: Artifacts::Listed { wheels, has_sdist },
        ..package
    })
}

/// Parses a PEP 691 project page (JSON), keeping the files' names, URLs, hashes and sizes.
pub fn parse_project_page(body: &[u8]) -> Result<ProjectPage, String> {
    serde_json::from_slice(body).map_err(|e| format!("not a PEP 691 JSON project page: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pip_conf_and_uv_toml() {
        let dir = tempfile::tempdir().unwrap();
        let pip = dir.path().join("pip.conf");
        std::fs::write(
            &pip,
            "[global]\ncert = /x\nindex-url = https://mirror.example/simple\n",
        )
        .unwrap();
        assert_eq!(
            pip_conf_index(&pip).as_deref(),
            Some("https://mirror.example/simple")
        );
        let uv = dir.path().join("uv.toml");
        std::fs::write(&uv, "[[index]]\nurl = \"https://a.example/simple\"\n\n[[index]]\nurl = \"https://b.example/simple\"\ndefault = true\n").unwrap();
        assert_eq!(
            uv_toml_index(&uv).as_deref(),
            Some("https://b.example/simple")
        );
    }
}
