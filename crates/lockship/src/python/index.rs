//! Finds files on a package index through the simple repository API (PEP 691 JSON), for locks
//! such as requirements.txt that pin versions and hashes but name no URLs; and works out which
//! index to use from the user's own configuration.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::lock::{Artifacts, LockedPackage, LockedWheel};
use crate::oci::digest::Digest;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("{lock} names no package index, and none is configured")]
    NoIndex { lock: PathBuf },
    #[error("cannot reach package index {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("package index answered {status} for {url}")]
    Http { url: String, status: u16 },
    #[error("package index sent an unreadable answer for {url}: {message}")]
    BadResponse { url: String, message: String },
    #[error("{package} {version}: no file on {index} matches the lock's hashes")]
    NotListed {
        package: String,
        version: String,
        index: String,
    },
}

impl IndexError {
    pub fn hint(&self) -> Option<String> {
        match self {
            IndexError::NoIndex { .. } => Some(
                "set UV_DEFAULT_INDEX (or PIP_INDEX_URL) to your simple index URL, or add --index-url to the requirements file".into(),
            ),
            IndexError::Http { status: 401 | 403, .. } => Some(
                "put credentials in the index URL or your pip/uv configuration".into(),
            ),
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

#[derive(Deserialize)]
struct ProjectPage {
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

/// Replaces `FromIndex` artifacts with the index's wheels whose hash the lock allows.
pub async fn resolve_files(
    http: &reqwest::Client,
    index: &str,
    package: LockedPackage,
) -> Result<LockedPackage, IndexError> {
    let Artifacts::FromIndex { hashes } = &package.artifacts else {
        return Ok(package);
    };
    let url = format!("{}/{}/", index.trim_end_matches('/'), package.name);
    let response = http
        .get(&url)
        .header("Accept", "application/vnd.pypi.simple.v1+json")
        .send()
        .await
        .map_err(|e| IndexError::Unreachable {
            url: url.clone(),
            message: crate::download::root_cause(&e),
        })?;
    if !response.status().is_success() {
        return Err(IndexError::Http {
            url,
            status: response.status().as_u16(),
        });
    }
    let base = response.url().clone();
    let page: ProjectPage = response.json().await.map_err(|e| IndexError::BadResponse {
        url: url.clone(),
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
        let file_url = base
            .join(&file.url)
            .map(|u| u.to_string())
            .unwrap_or(file.url);
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
            index: index.to_string(),
        });
    }
    Ok(LockedPackage {
        artifacts: Artifacts::Listed { wheels, has_sdist },
        ..package
    })
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
