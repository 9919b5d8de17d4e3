//! Everything lockship takes from its environment, read once, here at the edge: the libraries
//! below read no environment variable, so what a build depends on is all in its options.

use std::ffi::OsString;
use std::path::PathBuf;

use lockship_engine::error::Error;
use lockship_oci::registry::RegistryAccess;
use lockship_python::credentials::{IndexCredentials, UserPass};
use lockship_python::index::IndexSources;

fn var(name: &str) -> Option<OsString> {
    std::env::var_os(name).filter(|v| !v.is_empty())
}

/// The cache directory: LOCKSHIP_CACHE_DIR, else $XDG_CACHE_HOME/lockship, else
/// ~/.cache/lockship, else one in the system temp directory.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = var("LOCKSHIP_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = var("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("lockship");
    }
    var("HOME")
        .map(|h| PathBuf::from(h).join(".cache").join("lockship"))
        .unwrap_or_else(|| std::env::temp_dir().join("lockship-cache"))
}

/// The uv program: LOCKSHIP_UV, else `uv` (looked up on PATH).
pub fn uv() -> OsString {
    var("LOCKSHIP_UV").unwrap_or_else(|| "uv".into())
}

/// Where the user configured a package index, in the order uv and pip look: the environment,
/// uv's user config, then pip's config files.
pub fn index_sources() -> IndexSources {
    let from_env = ["UV_DEFAULT_INDEX", "UV_INDEX_URL", "PIP_INDEX_URL"]
        .into_iter()
        .filter_map(|name| std::env::var(name).ok())
        .find(|url| !url.trim().is_empty());
    let home = var("HOME").map(PathBuf::from);
    let config_home = var("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".config")));
    let mut pip_confs: Vec<PathBuf> = var("PIP_CONFIG_FILE")
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
    IndexSources {
        from_env,
        uv_toml: config_home.map(|dir| dir.join("uv").join("uv.toml")),
        pip_confs,
    }
}

/// How to reach registries: LOCKSHIP_INSECURE_REGISTRIES (host:port list to speak plain HTTP
/// to), the files with credentials (see `auth_files`) and LOCKSHIP_UPLOAD_CHUNK (the chunk
/// size of large uploads).
pub fn registry_access() -> Result<RegistryAccess, Error> {
    let insecure = std::env::var("LOCKSHIP_INSECURE_REGISTRIES")
        .map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    // Blobs larger than this go up in chunks of this size (for proxies that cap bodies).
    let upload_chunk = match var("LOCKSHIP_UPLOAD_CHUNK") {
        None => None,
        Some(text) => {
            let text = text.to_string_lossy();
            match lockship_engine::cache_command::parse_size(&text) {
                Ok(n) if n >= 1024 => Some(n),
                Ok(_) => {
                    return Err(Error::Usage(format!(
                        "LOCKSHIP_UPLOAD_CHUNK: `{text}` is too small (at least 1K)"
                    )))
                }
                Err(e) => return Err(Error::Usage(format!("LOCKSHIP_UPLOAD_CHUNK: {e}"))),
            }
        }
    };
    Ok(RegistryAccess {
        insecure,
        auth_files: auth_files(),
        upload_chunk,
    })
}

/// Where registry credentials are looked for, in order: what the user named
/// (`REGISTRY_AUTH_FILE`, as Podman, Buildah and Skopeo read it; `DOCKER_CONFIG`), then
/// Docker's config, then Podman's `auth.json` (`$XDG_RUNTIME_DIR/containers/auth.json`, then
/// `~/.config/containers/auth.json`), so that `docker login` and `podman login` both work.
fn auth_files() -> Vec<PathBuf> {
    let home = var("HOME").map(PathBuf::from);
    let mut files: Vec<PathBuf> = var("REGISTRY_AUTH_FILE")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    match var("DOCKER_CONFIG") {
        Some(dir) => files.push(PathBuf::from(dir).join("config.json")),
        None => files.extend(home.as_ref().map(|h| h.join(".docker/config.json"))),
    }
    files.extend(var("XDG_RUNTIME_DIR").map(|d| PathBuf::from(d).join("containers/auth.json")));
    files.extend(home.map(|h| h.join(".config/containers/auth.json")));
    files
}

/// Whether the CA store must be loaded at once (see `NetOptions::eager_tls`): a proxy
/// variable names an HTTPS proxy, which plain-HTTP requests go through too.
pub fn eager_tls() -> bool {
    [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ]
    .iter()
    .filter_map(|name| std::env::var(name).ok())
    .any(|v| {
        v.trim()
            .get(..8)
            .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
    })
}

/// The CA bundle builder containers get: SSL_CERT_FILE when it names a file, else the
/// system's (Debian's and Fedora's locations).
pub fn ca_bundle() -> Option<PathBuf> {
    var("SSL_CERT_FILE")
        .map(PathBuf::from)
        .into_iter()
        .chain(
            [
                "/etc/ssl/certs/ca-certificates.crt",
                "/etc/pki/tls/certs/ca-bundle.crt",
            ]
            .map(PathBuf::from),
        )
        .find(|p| p.is_file())
}

/// SOURCE_DATE_EPOCH, the mtime of every file lockship writes into an image (0 when unset).
pub fn source_date_epoch() -> Result<u64, Error> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Err(_) => Ok(0),
        Ok(v) if v.trim().is_empty() => Ok(0),
        Ok(v) => v.trim().parse().map_err(|_| {
            Error::Usage(format!(
                "SOURCE_DATE_EPOCH=`{v}` is not a whole number of seconds"
            ))
        }),
    }
}

/// Index credentials where uv's and poetry's users keep them: UV_INDEX_<NAME>_USERNAME/_PASSWORD,
/// POETRY_HTTP_BASIC_<SOURCE>_USERNAME/_PASSWORD, and the netrc file (NETRC, else ~/.netrc).
pub fn index_credentials() -> IndexCredentials {
    let mut creds = IndexCredentials::default();
    for (name, value) in std::env::vars() {
        for (prefix, map) in [
            ("UV_INDEX_", &mut creds.uv),
            ("POETRY_HTTP_BASIC_", &mut creds.poetry),
        ] {
            let Some(rest) = name.strip_prefix(prefix) else {
                continue;
            };
            if let Some(index) = rest.strip_suffix("_USERNAME") {
                map.entry(index.to_string())
                    .or_insert_with(UserPass::default)
                    .username = Some(value.clone());
            } else if let Some(index) = rest.strip_suffix("_PASSWORD") {
                map.entry(index.to_string())
                    .or_insert_with(UserPass::default)
                    .password = Some(value.clone());
            }
        }
    }
    creds.netrc = var("NETRC")
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".netrc")))
        .filter(|p| p.is_file());
    creds
}

/// The environment, for `${VAR}` in Pipfile source URLs (how pipenv users pass index tokens).
/// Held in memory only; what it expands to is never shown or recorded.
pub fn url_vars() -> std::collections::BTreeMap<String, String> {
    std::env::vars().collect()
}

/// Whether this runs in a CI job (`CI` set to anything but empty, `0` or `false`, as GitHub
/// Actions, GitLab CI and most others set it): progress goes out as plain lines.
pub fn in_ci() -> bool {
    var("CI").is_some_and(|v| {
        let v = v.to_string_lossy().to_ascii_lowercase();
        !v.is_empty() && v != "0" && v != "false"
    })
}

/// Whether the user asked for no colour (`NO_COLOR` set and not empty, per no-color.org).
pub fn no_color() -> bool {
    var("NO_COLOR").is_some_and(|v| !v.is_empty())
}
