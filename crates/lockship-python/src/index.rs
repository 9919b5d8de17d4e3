//! Finds files on a package index through the simple repository API (PEP 691 JSON or PEP 503
//! HTML), for locks
//! such as requirements.txt that pin versions and hashes but name no URLs; and works out which
//! index to use from the user's own configuration.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;
use uv_distribution_filename::DistFilename;
use uv_normalize::PackageName;
use uv_pep440::Version;

use super::lock::{Artifacts, LockedPackage, LockedWheel};
use lockship_net::url::{strip_userinfo, Redacted};
use lockship_net::{Http, NetError};
use lockship_oci::digest::Digest;

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
    #[error("package index {index} refused to list {package} (HTTP {status}); lockship sent {credentials}")]
    Refused {
        index: Redacted,
        package: String,
        status: u16,
        /// Which credentials went, or where lockship looked for them (never a secret).
        credentials: String,
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

/// Where the user may have configured an index, gathered by the CLI from the environment
/// (this crate reads none): the first of UV_DEFAULT_INDEX, UV_INDEX_URL and PIP_INDEX_URL, uv's
/// user config (`uv.toml`), and pip's config files in pip's order.
#[derive(Clone, Debug, Default)]
pub struct IndexSources {
    pub from_env: Option<String>,
    pub uv_toml: Option<PathBuf>,
    pub pip_confs: Vec<PathBuf>,
}

/// The index to query for a lock that carries no URLs, in uv's order of precedence: the lock's
/// own `--index-url`, the environment, the project's `[[tool.uv.index]]` (the one marked default,
/// or the only one), then the user's config files (uv.toml, then pip's).
pub fn configured_index(
    lock_path: &Path,
    from_lock: Option<&str>,
    sources: &IndexSources,
    pyproject: Option<&toml::Value>,
) -> Result<String, IndexError> {
    if let Some(url) = from_lock {
        return Ok(url.to_string());
    }
    if let Some(url) = sources.from_env.as_deref().map(str::trim) {
        if !url.is_empty() {
            return Ok(url.to_string());
        }
    }
    if let Some(url) = pyproject
        .and_then(|p| p.get("tool")?.get("uv")?.get("index")?.as_array().cloned())
        .and_then(|indexes| {
            indexes.iter().find_map(|i| {
                (i.get("default").and_then(|d| d.as_bool()).unwrap_or(false) || indexes.len() == 1)
                    .then(|| i.get("url")?.as_str().map(String::from))
                    .flatten()
            })
        })
    {
        return Ok(url);
    }
    if let Some(url) = sources.uv_toml.as_deref().and_then(uv_toml_index) {
        return Ok(url);
    }
    for conf in &sources.pip_confs {
        if let Some(url) = pip_conf_index(conf) {
            return Ok(url);
        }
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

/// A project page (PEP 691 JSON or PEP 503 HTML): only what lockship reads.
#[derive(Deserialize)]
pub struct ProjectPage {
    /// An HTML page's `<base href>`, which its relative links resolve against.
    #[serde(skip)]
    base: Option<String>,
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

/// The version a distribution file of `package` states in its name (`six-1.16.0-py3-none-any.whl`,
/// `zope.interface-6.0.tar.gz`); None for another project's file or no distribution at all.
pub fn file_version(filename: &str, package: &str) -> Option<Version> {
    let package = PackageName::from_str(package).ok()?;
    // The wheel parser takes the name as a hint only: the name is compared here.
    DistFilename::try_from_filename(filename, &package)
        .filter(|f| *f.name() == package)
        .map(|f| f.version().clone())
}

/// Replaces `FromIndex` artifacts with the index's wheels whose hash the lock allows, and
/// `Unhashed` ones with the index's wheels of the pinned version that the index gives a sha256. `index`
/// carries no user info: [`Http`] adds the credentials registered for its origin, to the page
/// and to files on the same origin, and to nothing else.
pub async fn resolve_files(
    http: &Http,
    index: &str,
    package: LockedPackage,
) -> Result<LockedPackage, IndexError> {
    // Files are chosen by the lock's hashes; for a package locked without any, by the pinned
    // version, trusting the sha256 the index gives for each file.
    let hashes: Option<&[Digest]> = match &package.artifacts {
        Artifacts::FromIndex { hashes, .. } => Some(hashes),
        Artifacts::Unhashed { .. } => None,
        Artifacts::Listed { .. } | Artifacts::Local { .. } => return Ok(package),
    };
    let pinned = Version::from_str(&package.version).ok();
    let url = format!("{}/{}/", index.trim_end_matches('/'), package.name);
    let (final_url, body) = http
        .get_bytes(
            &url,
            // JSON when the index speaks it (PEP 691), else the HTML every index serves.
            &[(
                "Accept",
                "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01",
            )],
            MAX_PAGE,
        )
        .await
        .map_err(|source| match source.status() {
            Some(status @ (401 | 403)) => IndexError::Refused {
                index: http.shown(index),
                package: package.name.clone(),
                status,
                credentials: http.credential_note(&url),
            },
            _ => IndexError::Request {
                package: package.name.clone(),
                source,
            },
        })?;
    let page = parse_project_page(&body).map_err(|message| IndexError::BadResponse {
        url: http.shown(&url),
        message,
    })?;
    let mut base = ::url::Url::parse(&final_url).map_err(|e| IndexError::BadResponse {
        url: http.shown(&url),
        message: e.to_string(),
    })?;
    if let Some(page_base) = page.base.as_deref().and_then(|b| base.join(b).ok()) {
        base = page_base;
    }
    let mut sdist = None;
    let mut wheels = Vec::new();
    for file in page.files {
        let Some(sha256) = file.hashes.get("sha256").and_then(|h| Digest::from_hex(h)) else {
            continue;
        };
        let wanted = match hashes {
            Some(hashes) => hashes.contains(&sha256),
            None => pinned.is_some() && file_version(&file.filename, &package.name) == pinned,
        };
        // A file the index names with a path in it is never saved under that name: it is not
        // a file lockship can use.
        if !wanted || !crate::lock::is_plain_file_name(&file.filename) {
            continue;
        }
        // Relative to the page, after redirects. User info in a page's links is dropped: an
        // index does not get to hand out credentials.
        let file_url = base
            .join(&file.url)
            .map(|u| u.to_string())
            .unwrap_or(file.url);
        let file_url = strip_userinfo(&file_url);
        let found = LockedWheel {
            filename: file.filename,
            url: file_url,
            sha256,
            size: file.size,
        };
        if found.filename.ends_with(".whl") {
            wheels.push(found);
        } else if is_sdist(&found.filename) && sdist.is_none() {
            sdist = Some(found);
        }
    }
    if wheels.is_empty() && sdist.is_none() {
        return Err(IndexError::NotListed {
            package: package.name.clone(),
            version: package.version.clone(),
            index: http.shown(index),
        });
    }
    Ok(LockedPackage {
        artifacts: Artifacts::Listed { wheels, sdist },
        ..package
    })
}

/// A source distribution's file name: `.tar.gz` (PEP 625), or the `.zip` older ones used.
fn is_sdist(filename: &str) -> bool {
    filename.ends_with(".tar.gz") || filename.ends_with(".zip")
}

/// Parses a project page, PEP 691 JSON or PEP 503 HTML (told apart by their first byte, since
/// some servers label either as the other), keeping the files' names, URLs, hashes and sizes.
pub fn parse_project_page(body: &[u8]) -> Result<ProjectPage, String> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'{') {
        return serde_json::from_slice(body)
            .map_err(|e| format!("not a PEP 691 JSON project page: {e}"));
    }
    let html = crate::simple_html::parse(body)?;
    Ok(ProjectPage {
        base: html.base,
        files: html
            .files
            .into_iter()
            .map(|f| FileEntry {
                filename: f.filename,
                url: f.url,
                hashes: f.hashes,
                size: None,
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {

    #[test]
    fn file_names_state_their_version() {
        let v = |s: &str| Version::from_str(s).ok();
        assert_eq!(
            file_version("six-1.16.0-py2.py3-none-any.whl", "six"),
            v("1.16.0")
        );
        assert_eq!(
            file_version("zope.interface-6.0.tar.gz", "zope-interface"),
            v("6.0")
        );
        assert_eq!(file_version("Foo_Bar-2.0rc1.zip", "foo-bar"), v("2.0rc1"));
        assert_eq!(file_version("six-1.16.0.exe", "six"), None);
        assert_eq!(file_version("nonsense.whl", "nonsense"), None);
        // Another project's file on the page, and a version with a dash in an sdist name.
        assert_eq!(file_version("sixer-1.16.0-py3-none-any.whl", "six"), None);
        assert_eq!(file_version("foo-1.0-1.tar.gz", "foo"), v("1.0-1"));
    }
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
