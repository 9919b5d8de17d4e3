//! Reads pylock.toml (PEP 751, lock-version 1.0) as a PEP 751 installer does: no graph walk,
//! every `[[packages]]` entry whose marker holds on the target (with the chosen extras and
//! dependency groups) is installed, and at most one entry per name may hold.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;
use uv_pep440::Version;
use uv_pep508::MarkerEnvironment;

use super::{
    marker_tree, normalize_name, Artifacts, LockError, LockedPackage, LockedWheel, Selection,
};
use lockship_oci::digest::Digest;

/// The one lock-version this reader knows. PEP 751 lets an installer accept a newer minor
/// version with a warning; lockship prints nothing from here, so it refuses instead of
/// silently ignoring keys whose meaning it does not know.
const SUPPORTED: &str = "1.0";

// Strings are borrowed from the text where TOML allows (no escapes): a lock with a few
// thousand wheel URLs would otherwise spend much of its reading time copying them.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Pylock<'a> {
    /// A TOML value, not a string, so that `lock-version = 2` is reported as a version.
    lock_version: Option<toml::Value>,
    #[serde(default)]
    environments: Vec<String>,
    requires_python: Option<String>,
    /// None (the key is absent) marks a single-use lock; Some(empty) a multi-use one that
    /// happens to have no extras.
    extras: Option<Vec<String>>,
    dependency_groups: Option<Vec<String>>,
    #[serde(default)]
    default_groups: Vec<String>,
    #[serde(default, borrow)]
    packages: Vec<Package<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Package<'a> {
    name: String,
    version: Option<String>,
    #[serde(borrow)]
    marker: Option<Cow<'a, str>>,
    requires_python: Option<String>,
    vcs: Option<Vcs>,
    directory: Option<Directory>,
    archive: Option<Archive>,
    #[serde(borrow)]
    sdist: Option<Wheel<'a>>,
    #[serde(borrow)]
    wheels: Option<Vec<Wheel<'a>>>,
    /// The package's index (its simple API), used for files locked without hashes.
    index: Option<String>,
}

#[derive(Deserialize)]
struct Vcs {
    #[serde(rename = "type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct Directory {
    path: Option<String>,
}

#[derive(Deserialize)]
struct Archive {
    url: Option<String>,
}

#[derive(Deserialize)]
struct Wheel<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    url: Option<Cow<'a, str>>,
    #[serde(borrow)]
    path: Option<Cow<'a, str>>,
    size: Option<u64>,
    #[serde(borrow)]
    hashes: Option<BTreeMap<Cow<'a, str>, Cow<'a, str>>>,
}

/// Only the version, read again when the whole file does not parse: a lock of another
/// version should say so rather than fail on a key that version changed.
#[derive(Deserialize)]
struct VersionOnly {
    #[serde(rename = "lock-version")]
    lock_version: Option<toml::Value>,
}

/// The packages a target needs from a pylock.toml (PEP 751).
///
/// The target gets every package whose marker holds for `env`, with `'NAME' in extras` true
/// for the selection's extras and `'NAME' in dependency_groups` true for its groups and for
/// the lock's `default-groups` (which stand for the project's own dependencies, always
/// installed, as with uv.lock). An entry that is a local directory resolving to the lock's own
/// directory is the project itself, built by lockship from source, and is left out.
pub fn parse(
    path: &Path,
    text: &str,
    env: &MarkerEnvironment,
    selection: &Selection,
) -> Result<Vec<LockedPackage>, LockError> {
    let invalid = |message: String| LockError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let lock: Pylock = match toml::from_str(text) {
        Ok(lock) => lock,
        Err(e) => {
            if let Ok(VersionOnly {
                lock_version: Some(found),
            }) = toml::from_str(text)
            {
                check_version(path, &found)?;
            }
            // The message only: toml's Display quotes the line, which may hold a URL with
            // credentials.
            let line = e
                .span()
                .and_then(|s| text.as_bytes().get(..s.start))
                .map(|before| before.iter().filter(|&&b| b == b'\n').count() + 1);
            return Err(invalid(match line {
                Some(line) => format!("not a valid pylock.toml: line {line}: {}", e.message()),
                None => format!("not a valid pylock.toml: {}", e.message()),
            }));
        }
    };
    match &lock.lock_version {
        Some(found) => check_version(path, found)?,
        None => {
            return Err(invalid(
                "no lock-version: not a pylock.toml (PEP 751)".into(),
            ))
        }
    }

    let python = &env.python_full_version().version;
    if let Some(spec) = &lock.requires_python {
        if !requires(path, spec, python, "the lock")? {
            return Err(LockError::WrongPython {
                path: path.to_path_buf(),
                allowed: spec.clone(),
                python: python.to_string(),
            });
        }
    }
    if !lock.environments.is_empty() {
        // An empty list (pipenv writes one) names no restriction.
        let mut any = false;
        for marker in &lock.environments {
            any |= marker_tree(path, marker, "environments")?.evaluate(env, &[]);
        }
        if !any {
            return Err(invalid(format!(
                "the target (Python {python}, {} {}) matches none of the lock's environments: {}",
                env.sys_platform(),
                env.platform_machine(),
                lock.environments.join("; ")
            )));
        }
    }

    let (extras, groups) = wanted(path, &lock, selection)?;
    let lock_dir = absolute(path.parent().unwrap_or(Path::new("")));

    // Locks repeat a few markers many times; each distinct one is parsed and evaluated once.
    let mut holds: HashMap<&str, bool> = HashMap::new();
    // Normalized name → index of the entry selected for it.
    let mut chosen: HashMap<String, usize> = HashMap::new();
    let mut packages = Vec::new();
    for (i, p) in lock.packages.iter().enumerate() {
        if let Some(marker) = p.marker.as_deref() {
            let hold = match holds.get(marker) {
                Some(&hold) => hold,
                None => {
                    let hold =
                        marker_tree(path, marker, &p.name)?.evaluate_pep751(env, &extras, &groups);
                    holds.insert(marker, hold);
                    hold
                }
            };
            if !hold {
                continue;
            }
        }
        let name = normalize_name(&p.name);
        if name.is_empty() {
            return Err(invalid(format!("packages[{i}] has no name")));
        }
        if let Some(spec) = &p.requires_python {
            // PEP 751: a selected package whose requires-python excludes the target is an
            // error, not a skip.
            if !requires(path, spec, python, &p.name)? {
                return Err(invalid(format!(
                    "{} {} requires Python `{spec}`; the target has {python}",
                    p.name,
                    p.version.as_deref().unwrap_or("")
                )));
            }
        }
        if let Some(&first) = chosen.get(&name) {
            let version = |p: &Package| p.version.clone().unwrap_or_else(|| "?".into());
            return Err(invalid(format!(
                "{} is selected twice for the target (packages[{first}], version {}, and \
                 packages[{i}], version {}); PEP 751 requires one entry per package per \
                 environment",
                p.name,
                version(&lock.packages[first]),
                version(p)
            )));
        }
        chosen.insert(name.clone(), i);
        if let Some(package) = locked(path, &lock_dir, p, name)? {
            packages.push(package);
        }
    }
    packages.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(packages)
}

fn check_version(path: &Path, found: &toml::Value) -> Result<(), LockError> {
    if found.as_str() == Some(SUPPORTED) {
        return Ok(());
    }
    Err(LockError::UnsupportedVersion {
        path: path.to_path_buf(),
        found: match found.as_str() {
            Some(s) => s.to_string(),
            None => format!("{found} (not a string)"),
        },
        supported: SUPPORTED.into(),
    })
}

use super::python_satisfies as requires;

/// The extras and dependency groups to make true in markers, checked against what the lock
/// declares. Their element types (uv's normalized names) come from `evaluate_pep751`'s
/// signature: lockship does not depend on the crate that defines them.
fn wanted<E: FromStr, G: FromStr>(
    path: &Path,
    lock: &Pylock,
    selection: &Selection,
) -> Result<(Vec<E>, Vec<G>), LockError> {
    // PEP 751 tells single-use locks (no `extras`/`dependency-groups` key: uv and pip write
    // those) from multi-use ones that happen to declare none.
    let single_use = lock.extras.is_none() && lock.dependency_groups.is_none();
    let declared_extras = lock.extras.clone().unwrap_or_default();
    declared(
        path,
        "extra",
        &selection.extras,
        &declared_extras,
        single_use,
    )?;
    // A default group may be named too, although it is always on.
    let declared_groups: Vec<String> = lock
        .dependency_groups
        .iter()
        .flatten()
        .chain(&lock.default_groups)
        .cloned()
        .collect();
    declared(
        path,
        "dependency group",
        &selection.groups,
        &declared_groups,
        single_use,
    )?;
    let extras = parse_names(path, &selection.extras, "extra")?;
    let groups = parse_names(
        path,
        selection.groups.iter().chain(&lock.default_groups),
        "dependency group",
    )?;
    Ok((extras, groups))
}

/// Fails on the first name in `asked` that `declared` lacks (names compare normalized).
fn declared(
    path: &Path,
    kind: &str,
    asked: &[String],
    declared: &[String],
    single_use: bool,
) -> Result<(), LockError> {
    let Some(name) = asked.iter().find(|name| {
        !declared
            .iter()
            .any(|d| normalize_name(d) == normalize_name(name))
    }) else {
        return Ok(());
    };
    let list = if declared.is_empty() {
        "none".to_string()
    } else {
        declared.join(", ")
    };
    let hint = if single_use {
        "; this is a single-use lock: its extras and groups were chosen when it was written \
         (e.g. `uv export --format pylock.toml --extra NAME --group NAME`)"
    } else {
        ""
    };
    Err(LockError::Invalid {
        path: path.to_path_buf(),
        message: format!("the lock declares no {kind} `{name}` (it declares: {list}){hint}"),
    })
}

fn parse_names<'a, T: FromStr>(
    path: &Path,
    names: impl IntoIterator<Item = &'a String>,
    kind: &str,
) -> Result<Vec<T>, LockError> {
    names
        .into_iter()
        .map(|n| {
            n.parse().map_err(|_| LockError::Invalid {
                path: path.to_path_buf(),
                message: format!("`{n}` is not a valid {kind} name"),
            })
        })
        .collect()
}

/// The selected entry `p` as lockship installs it; None for the project itself.
fn locked(
    path: &Path,
    lock_dir: &Path,
    p: &Package,
    name: String,
) -> Result<Option<LockedPackage>, LockError> {
    let invalid = |message: String| LockError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let wheels = p.wheels.as_deref().unwrap_or(&[]);
    let files = !wheels.is_empty() || p.sdist.is_some();
    let direct = [p.vcs.is_some(), p.directory.is_some(), p.archive.is_some()]
        .iter()
        .filter(|&&b| b)
        .count();
    if direct > 1 || (direct == 1 && files) {
        return Err(invalid(format!(
            "{} has conflicting sources (PEP 751 allows one of vcs, directory, archive, or \
             sdist and wheels)",
            p.name
        )));
    }
    let unsupported = |source_kind: String| LockError::UnsupportedSource {
        path: path.to_path_buf(),
        package: p.name.clone(),
        source_kind,
    };
    if let Some(vcs) = &p.vcs {
        return Err(unsupported(match vcs.kind.as_deref() {
            None | Some("git") => "a git repository".into(),
            Some(other) => format!("a {other} repository"),
        }));
    }
    if let Some(directory) = &p.directory {
        let at = directory
            .path
            .as_deref()
            .map(|d| lexical(&lock_dir.join(d)));
        if at.as_deref() == Some(&lexical(lock_dir)) {
            // The project the lock was made for (uv exports it as `directory = { path = "." }`):
            // lockship builds it from source, as it leaves out uv.lock's root.
            return Ok(None);
        }
        return Err(unsupported("a local directory".into()));
    }
    if let Some(archive) = &p.archive {
        return Err(unsupported(if archive.url.is_some() {
            "an archive URL".into()
        } else {
            "a local archive".into()
        }));
    }
    if !files {
        return Err(invalid(format!(
            "{} names nothing to install (no wheels, sdist, archive, vcs or directory)",
            p.name
        )));
    }
    let version = match &p.version {
        Some(v) => Some(
            Version::from_str(v)
                .map_err(|e| invalid(format!("{}: bad version `{v}`: {e}", p.name)))?,
        ),
        None => None,
    };
    if wheels
        .iter()
        .any(|w| w.hashes.as_ref().is_none_or(|h| h.is_empty()))
    {
        // Files without hashes come from the package's index, as a hash-only lock's do.
        let version = version.ok_or_else(|| {
            invalid(format!(
                "{} is locked without hashes and without a version",
                p.name
            ))
        })?;
        return Ok(Some(LockedPackage {
            name,
            version: version.to_string(),
            artifacts: Artifacts::Unhashed {
                index: p.index.as_ref().map(|i| i.to_string()),
            },
        }));
    }
    let mut found_version = None;
    let wheels = wheels
        .iter()
        .map(|w| {
            let (wheel, parsed) = wheel(path, lock_dir, p, &name, version.as_ref(), w)?;
            found_version.get_or_insert(parsed);
            Ok(wheel)
        })
        .collect::<Result<Vec<_>, LockError>>()?;
    Ok(Some(LockedPackage {
        name,
        // PEP 751 only says a version SHOULD be given with files; the wheels name one.
        version: p
            .version
            .clone()
            .or(found_version.map(|v| v.to_string()))
            .unwrap_or_default(),
        artifacts: Artifacts::Listed {
            wheels,
            sdist: super::plain_sdist(p.sdist.as_ref().and_then(sdist), &p.name)
                .map_err(invalid)?,
        },
    }))
}

/// The sdist of a package when it has a URL and a sha256 (a path sdist is left out: lockship
/// builds only what it can fetch and check).
fn sdist(s: &Wheel) -> Option<LockedWheel> {
    let url = s.url.as_deref()?.to_string();
    let sha256 = Digest::from_hex(s.hashes.as_ref()?.get("sha256")?)?;
    Some(LockedWheel {
        filename: s
            .name
            .as_deref()
            .map_or_else(|| last_segment(&url), str::to_string),
        sha256,
        size: s.size,
        url,
    })
}

/// One wheel of `p` (normalized `name`), checked: a wheel file of this package and version,
/// with a sha256. Returns the wheel and the version its filename names.
fn wheel(
    path: &Path,
    lock_dir: &Path,
    p: &Package,
    name: &str,
    version: Option<&Version>,
    w: &Wheel,
) -> Result<(LockedWheel, Version), LockError> {
    let invalid = |message: String| LockError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    // PEP 751: a path is used when given, else the URL.
    let (url, last) = match (&w.path, &w.url) {
        (Some(file), _) => {
            let absolute = lexical(&lock_dir.join(file.as_ref()));
            let url = url::Url::from_file_path(&absolute).map_err(|()| {
                invalid(format!(
                    "{}: wheel path `{file}` is not a usable path",
                    p.name
                ))
            })?;
            let last = absolute
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (url.to_string(), last)
        }
        (None, Some(url)) => (url.to_string(), last_segment(url)),
        (None, None) => {
            return Err(invalid(format!(
                "a wheel of {} has neither url nor path",
                p.name
            )))
        }
    };
    let filename = w.name.as_deref().map_or(last, str::to_string);
    if !super::is_plain_file_name(&filename) {
        return Err(invalid(format!(
            "a wheel of {} is named {filename:?}, which is not a plain file name",
            p.name
        )));
    }
    let not_a_wheel = || invalid(format!("{}: `{filename}` is not a wheel filename", p.name));
    // `{name}-{version}(-{build})?-{python}-{abi}-{platform}.whl` (PEP 427): only the name and
    // version matter here; the tags are read when a wheel is chosen for the target.
    let stem = filename.strip_suffix(".whl").ok_or_else(not_a_wheel)?;
    let mut parts = stem.split('-');
    let (Some(wheel_name), Some(wheel_version)) = (parts.next(), parts.next()) else {
        return Err(not_a_wheel());
    };
    let tags = parts.count();
    if !(3..=4).contains(&tags) || stem.split('-').any(str::is_empty) {
        return Err(not_a_wheel());
    }
    let wheel_version = Version::from_str(wheel_version).map_err(|_| not_a_wheel())?;
    if normalize_name(wheel_name) != name {
        return Err(invalid(format!(
            "wheel {filename} is not a wheel of package {} (it is {})",
            p.name,
            normalize_name(wheel_name)
        )));
    }
    if let Some(version) = version {
        if wheel_version != *version {
            return Err(invalid(format!(
                "wheel {filename} is version {wheel_version}, but the lock pins {} {version}",
                p.name
            )));
        }
    }
    let hashes = match &w.hashes {
        Some(h) if !h.is_empty() => h,
        _ => {
            // Packages with an unhashed wheel were taken as `Unhashed` before this.
            return Err(invalid(format!("wheel {filename} has no hashes")));
        }
    };
    let sha256 = match hashes
        .iter()
        .find(|(algorithm, _)| algorithm.eq_ignore_ascii_case("sha256"))
    {
        Some((_, hex)) => Digest::from_hex(hex).ok_or_else(|| {
            invalid(format!(
                "wheel {filename}: its sha256 is not 64 hexadecimal digits"
            ))
        })?,
        None => {
            return Err(invalid(format!(
                "wheel {filename} has no sha256 hash (only {}); lockship verifies files by sha256",
                hashes
                    .keys()
                    .map(|k| k.as_ref())
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    };
    Ok((
        LockedWheel {
            filename,
            url,
            sha256,
            size: w.size,
        },
        wheel_version,
    ))
}

/// The last path segment of a URL, query and fragment dropped, percent-decoded.
fn last_segment(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let last = path.rsplit('/').next().unwrap_or(path);
    percent_decode(last)
}

/// `%2B` → `+` (wheel names of local versions); malformed escapes are kept as they are.
fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `p` made absolute against the current directory (a lock path may be relative).
fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// `p` with `.` and `..` resolved by name (PEP 751 paths are relative to the lock's directory;
/// `../wheels/x.whl` must not stay in a file URL).
fn lexical(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    //! The locks below are trimmed copies of what the real tools wrote (entries dropped, hosts
    //! replaced by files.example / index.example, URL paths shortened), made in /tmp with:
    //!
    //! - uv 0.13.9: `uv init --app --name app app`; `uv add "click>=8" "colorama;
    //!   sys_platform == 'win32'" docopt`; `uv add --optional fancy rich`; `uv add --group dev
    //!   pytest`; `uv add --group docs markdown`; `uv lock --exclude-newer 2025-06-01 --python
    //!   3.11`; `uv export --format pylock.toml --all-extras --all-groups -o pylock.all.toml`
    //!   (and `-o pylock.default.toml` without the flags: the same minus markdown and rich).
    //!   uv writes single-use locks: no `extras`/`dependency-groups`, no extras or group
    //!   markers; the project itself is `directory = { path = "." }` (`"../"` when the lock is
    //!   written to a subdirectory).
    //! - uv 0.13.9, a project with a flat index `./wheels` holding six: `uv add six`, `uv
    //!   export --format pylock.toml` writes `wheels = [{ url = "file:///ABS/wheels/six…" }]`;
    //!   the `path` form of PATH_WHEEL is that entry rewritten by hand (no tool here writes
    //!   `wheels.path`; uv and pip write a local wheel as `archive`).
    //! - pip 26.3 (`python3 -m venv /tmp/venv-piplock`, `pip install --upgrade pip`): `pip lock
    //!   --uploaded-prior-to 2025-06-01T00:00:00Z -r requirements.txt` with `click>=8`,
    //!   `colorama; sys_platform == "win32"`, `rich[jupyter]<14.1`, `docopt`; and `pip lock
    //!   ./wheels/six-1.17.0-py2.py3-none-any.whl ./localproj` for PIP_LOCAL. pip writes
    //!   single-use locks for the host it runs on: no markers at all, no sizes.
    //! - pipenv 2026.10.3: a Pipfile with click, colorama (markers sys_platform == 'win32'),
    //!   docopt, and dev-packages iniconfig; `pipenv lock`; `pipenv pylock --generate`. pipenv
    //!   writes multi-use locks: `dependency-groups = ["dev"]`, `default-groups = ["default"]`,
    //!   dev packages marked `'dev' in dependency_groups`. By hand: `extras = ["fancy"]` (pipenv
    //!   wrote `[]`) and the rich entry marked `'fancy' in extras`, in the form `pipenv pylock
    //!   --from-pyproject` writes for an optional dependency (that command writes no versions
    //!   or files). The second click entry in `ambiguous_entries_are_refused` is by hand too.
    //! - PEP_EXAMPLE is the example of PEP 751 itself.

    use super::*;

    const UV: &str = r#"
# This file was autogenerated by uv via the following command:
#    uv export --format pylock.toml --all-extras --all-groups -o pylock.all.toml
lock-version = "1.0"
created-by = "uv"
requires-python = ">=3.11"

[[packages]]
name = "app"
directory = { path = ".", editable = true }

[[packages]]
name = "click"
version = "8.2.1"
index = "https://index.example/simple"
sdist = { url = "https://files.example/packages/click-8.2.1.tar.gz", upload-time = 2025-05-20T23:19:49Z, size = 286342, hashes = { sha256 = "27c491cc05d968d271d5a1db13e3b5a184636d9d930f148c50b038f0d0646202" } }
wheels = [{ url = "https://files.example/packages/click-8.2.1-py3-none-any.whl", upload-time = 2025-05-20T23:19:47Z, size = 102215, hashes = { sha256 = "61a3265b914e850b85317d0b3109c7f8cd35a670f963866005d6ef1d5175a12b" } }]

[[packages]]
name = "colorama"
version = "0.4.6"
marker = "sys_platform == 'win32'"
index = "https://index.example/simple"
sdist = { url = "https://files.example/packages/colorama-0.4.6.tar.gz", upload-time = 2022-10-25T02:36:22Z, size = 27697, hashes = { sha256 = "08695f5cb7ed6e0531a20572697297273c47b8cae5a63ffc6d6ed5c201be6e44" } }
wheels = [{ url = "https://files.example/packages/colorama-0.4.6-py2.py3-none-any.whl", upload-time = 2022-10-25T02:36:20Z, size = 25335, hashes = { sha256 = "4f1d9991f5acc0ca119f9d443620b77f9d6b33703e51011c16baf57afb285fc6" } }]

[[packages]]
name = "docopt"
version = "0.6.2"
index = "https://index.example/simple"
sdist = { url = "https://files.example/packages/docopt-0.6.2.tar.gz", upload-time = 2014-06-16T11:18:57Z, size = 25901, hashes = { sha256 = "49b3a825280bd66b3aa83585ef59c4a8c82f2c8a522dbe754a8bc8d08c85c491" } }

[[packages]]
name = "markdown"
version = "3.8"
index = "https://index.example/simple"
sdist = { url = "https://files.example/packages/markdown-3.8.tar.gz", upload-time = 2025-04-11T14:42:50Z, size = 360906, hashes = { sha256 = "7df81e63f0df5c4b24b7d156eb81e4690595239b7d70937d0409f1b0de319c6f" } }
wheels = [{ url = "https://files.example/packages/markdown-3.8-py3-none-any.whl", upload-time = 2025-04-11T14:42:49Z, size = 106210, hashes = { sha256 = "794a929b79c5af141ef5ab0f2f642d0f7b1872981250230e72682346f7cc90dc" } }]

[[packages]]
name = "markdown-it-py"
version = "3.0.0"
index = "https://index.example/simple"
sdist = { url = "https://files.example/packages/markdown-it-py-3.0.0.tar.gz", upload-time = 2023-06-03T06:41:14Z, size = 74596, hashes = { sha256 = "e3f60a94fa066dc52ec76661e37c851cb232d92f9886b15cb560aaada2df8feb" } }
wheels = [{ url = "https://files.example/packages/markdown_it_py-3.0.0-py3-none-any.whl", upload-time = 2023-06-03T06:41:11Z, size = 87528, hashes = { sha256 = "355216845c60bd96232cd8d8c40e8f9765cc86f46880e43a8fd22dc1a1a8cab1" } }]

[[packages]]
name = "rich"
version = "14.0.0"
index = "https://index.example/simple"
sdist = { url = "https://files.example/packages/rich-14.0.0.tar.gz", upload-time = 2025-03-30T14:15:14Z, size = 224078, hashes = { sha256 = "82f1bc23a6a21ebca4ae0c45af9bdbc492ed20231dcb63f297d6d1021a9d5725" } }
wheels = [{ url = "https://files.example/packages/rich-14.0.0-py3-none-any.whl", upload-time = 2025-03-30T14:15:12Z, size = 243229, hashes = { sha256 = "1c9491e1951aac09caffd42f448ee3d04e58923ffe14993f6e83068dc395d7e0" } }]
"#;

    const PIP: &str = r#"
lock-version = "1.0"
created-by = "pip"

[[packages]]
name = "click"
version = "8.2.1"

[[packages.wheels]]
name = "click-8.2.1-py3-none-any.whl"
url = "https://files.example/packages/click-8.2.1-py3-none-any.whl"

[packages.wheels.hashes]
sha256 = "61a3265b914e850b85317d0b3109c7f8cd35a670f963866005d6ef1d5175a12b"

[[packages]]
name = "docopt"
version = "0.6.2"

[packages.sdist]
name = "docopt-0.6.2.tar.gz"
url = "https://files.example/packages/docopt-0.6.2.tar.gz"

[packages.sdist.hashes]
sha256 = "49b3a825280bd66b3aa83585ef59c4a8c82f2c8a522dbe754a8bc8d08c85c491"

[[packages]]
name = "ipython-pygments-lexers"
version = "1.1.1"

[[packages.wheels]]
name = "ipython_pygments_lexers-1.1.1-py3-none-any.whl"
url = "https://files.example/packages/ipython_pygments_lexers-1.1.1-py3-none-any.whl"

[packages.wheels.hashes]
sha256 = "a9462224a505ade19a605f71f8fa63c2048833ce50abc86768a0d81d876dc81c"

[[packages]]
name = "pexpect"
version = "4.9.0"

[[packages.wheels]]
name = "pexpect-4.9.0-py2.py3-none-any.whl"
url = "https://files.example/packages/pexpect-4.9.0-py2.py3-none-any.whl"

[packages.wheels.hashes]
sha256 = "7236d1e080e4936be2dc3e326cec0af72acf9212a7e1d060210e70a47e253523"
"#;

    const PIP_LOCAL: &str = r#"
lock-version = "1.0"
created-by = "pip"

[[packages]]
name = "localproj"

[packages.directory]
path = "localproj"

[[packages]]
name = "six"

[packages.archive]
url = "file:///tmp/pylock-work/pip/wheels/six-1.17.0-py2.py3-none-any.whl"

[packages.archive.hashes]
sha256 = "4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274"
"#;

    const PIPENV: &str = r#"
lock-version = "1.0"
environments = []
requires-python = ">=3.11"
extras = ["fancy"]
dependency-groups = ["dev"]
default-groups = ["default"]
created-by = "pipenv"

[[packages]]
name = "click"
version = "8.2.1"
marker = "python_version >= '3.10'"
index = "${PIP_INDEX_URL}/"
wheels = [
    {name = "click-8.2.1-py3-none-any.whl", url = "https://files.example/packages/click-8.2.1-py3-none-any.whl", hashes = {sha256 = "61a3265b914e850b85317d0b3109c7f8cd35a670f963866005d6ef1d5175a12b"}},
]
sdist = {name = "click-8.2.1.tar.gz", url = "https://files.example/packages/click-8.2.1.tar.gz", hashes = {sha256 = "27c491cc05d968d271d5a1db13e3b5a184636d9d930f148c50b038f0d0646202"}}


[[packages]]
name = "colorama"
version = "0.4.6"
marker = "sys_platform == 'win32'"
index = "${PIP_INDEX_URL}/"
wheels = [
    {name = "colorama-0.4.6-py2.py3-none-any.whl", url = "https://files.example/packages/colorama-0.4.6-py2.py3-none-any.whl", hashes = {sha256 = "4f1d9991f5acc0ca119f9d443620b77f9d6b33703e51011c16baf57afb285fc6"}},
]
sdist = {name = "colorama-0.4.6.tar.gz", url = "https://files.example/packages/colorama-0.4.6.tar.gz", hashes = {sha256 = "08695f5cb7ed6e0531a20572697297273c47b8cae5a63ffc6d6ed5c201be6e44"}}


[[packages]]
name = "iniconfig"
version = "2.1.0"
marker = "('dev' in dependency_groups) and (python_version >= '3.8')"
index = "${PIP_INDEX_URL}/"
wheels = [
    {name = "iniconfig-2.1.0-py3-none-any.whl", url = "https://files.example/packages/iniconfig-2.1.0-py3-none-any.whl", hashes = {sha256 = "9deba5723312380e77435581c6bf4935c94cbfab9b1ed33ef8d238ea168eb760"}},
]
sdist = {name = "iniconfig-2.1.0.tar.gz", url = "https://files.example/packages/iniconfig-2.1.0.tar.gz", hashes = {sha256 = "3abbd2e30b36733fee78f9c7f7308f2d0050e88f0087fd25c2645f63c773e1c7"}}


[[packages]]
name = "rich"
version = "14.0.0"
marker = "'fancy' in extras"
wheels = [
    {name = "rich-14.0.0-py3-none-any.whl", url = "https://files.example/packages/rich-14.0.0-py3-none-any.whl", hashes = {sha256 = "1c9491e1951aac09caffd42f448ee3d04e58923ffe14993f6e83068dc395d7e0"}},
]

[tool.pipenv]
generated_from = "Pipfile.lock"
generation_date = "2026-11-23T10:15:27.665808+00:00"
"#;

    const PEP_EXAMPLE: &str = r#"
lock-version = '1.0'
environments = ["sys_platform == 'win32'", "sys_platform == 'linux'"]
requires-python = '==3.12'
created-by = 'mousebender'

[[packages]]
name = 'attrs'
version = '25.1.0'
requires-python = '>=3.8'
wheels = [
  {name = 'attrs-25.1.0-py3-none-any.whl', upload-time = 2025-01-25T11:30:10.164985+00:00, url = 'https://files.example/packages/attrs-25.1.0-py3-none-any.whl', size = 63152, hashes = {sha256 = 'c75a69e28a550a7e93789579c22aa26b0f5b83b75dc4e08fe092980051e1090a'}},
]
[[packages.attestation-identities]]
environment = 'release-pypi'
kind = 'GitHub'
repository = 'python-attrs/attrs'
workflow = 'pypi-package.yml'

[[packages]]
name = 'cattrs'
version = '24.1.2'
requires-python = '>=3.8'
dependencies = [
    {name = 'attrs'},
]
wheels = [
  {name = 'cattrs-24.1.2-py3-none-any.whl', upload-time = 2024-09-22T14:58:34.812643+00:00, url = 'https://files.example/packages/cattrs-24.1.2-py3-none-any.whl', size = 66446, hashes = {sha256 = '67c7495b760168d931a10233f979b28dc04daf853b30752246f4f8471c6d68d0'}},
]

[[packages]]
name = 'numpy'
version = '2.2.3'
requires-python = '>=3.10'
wheels = [
  {name = 'numpy-2.2.3-cp312-cp312-win_amd64.whl', upload-time = 2025-02-13T16:51:21.821880+00:00, url = 'https://files.example/packages/numpy-2.2.3-cp312-cp312-win_amd64.whl', size = 12626357, hashes = {sha256 = '83807d445817326b4bcdaaaf8e8e9f1753da04341eceec705c001ff342002e5d'}},
  {name = 'numpy-2.2.3-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl', upload-time = 2025-02-13T16:50:00.079662+00:00, url = 'https://files.example/packages/numpy-2.2.3-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl', size = 16116679, hashes = {sha256 = '3b787adbf04b0db1967798dba8da1af07e387908ed1553a0d6e74c084d1ceafe'}},
]

[tool.mousebender]
command = ['.', 'lock', '--platform', 'cpython3.12-windows-x64', '--platform', 'cpython3.12-manylinux2014-x64', 'cattrs', 'numpy']
run-on = 2025-03-06T12:28:57.760769
"#;

    /// uv's flat-index entry for six, its `url` turned into a `path`.
    const PATH_WHEEL: &str = r#"
lock-version = "1.0"
created-by = "uv"
requires-python = ">=3.11"

[[packages]]
name = "six"
version = "1.17.0"
wheels = [{ path = "../wheels/six-1.17.0-py2.py3-none-any.whl", hashes = { sha256 = "4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274" } }]
"#;

    fn linux() -> MarkerEnvironment {
        crate::target::bookworm().marker_env()
    }

    fn read(text: &str, selection: &Selection) -> Result<Vec<LockedPackage>, LockError> {
        parse(Path::new("/srv/app/pylock.toml"), text, &linux(), selection)
    }

    fn names(packages: &[LockedPackage]) -> Vec<&str> {
        packages.iter().map(|p| p.name.as_str()).collect()
    }

    fn groups(names: &[&str]) -> Selection {
        Selection {
            groups: names.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn error(text: &str, selection: &Selection) -> String {
        read(text, selection).unwrap_err().to_string()
    }

    /// The UV lock with `from` replaced by `to` (exactly once).
    fn uv_with(from: &str, to: &str) -> String {
        assert_eq!(UV.matches(from).count(), 1, "{from}");
        UV.replace(from, to)
    }

    #[test]
    fn file_names_with_a_path_in_them_are_refused() {
        let docopt = "sdist = { url = \"https://files.example/packages/docopt-0.6.2.tar.gz\", ";
        for name in ["/tmp/victim.txt", "../../victim.txt", "..", "a\\nb.tar.gz"] {
            let lock = uv_with(docopt, &format!("{}name = \"{name}\", ", docopt));
            assert_eq!(
                error(&lock, &Selection::default()),
                format!(
                    "/srv/app/pylock.toml: the sdist of docopt is named {:?}, which is not a \
                     plain file name",
                    name.replace("\\n", "\n")
                )
            );
        }
        let click = "{ url = \"https://files.example/packages/click-8.2.1-py3-none-any.whl\", ";
        let lock = uv_with(
            click,
            &format!("{click}name = \"../click-8.2.1-py3-none-any.whl\", "),
        );
        assert!(
            error(&lock, &Selection::default()).contains("is not a plain file name"),
            "{}",
            error(&lock, &Selection::default())
        );
    }

    #[test]
    fn uv_export_on_bookworm() {
        let packages = read(UV, &Selection::default()).unwrap();
        // app is the project (directory "."), colorama is for Windows.
        assert_eq!(
            names(&packages),
            ["click", "docopt", "markdown", "markdown-it-py", "rich"]
        );
        let click = &packages[0];
        assert_eq!(click.version, "8.2.1");
        let Artifacts::Listed { wheels, sdist } = &click.artifacts else {
            panic!("pylock.toml lists wheels")
        };
        assert_eq!(sdist.as_ref().unwrap().filename, "click-8.2.1.tar.gz");
        assert_eq!(
            wheels,
            &[LockedWheel {
                filename: "click-8.2.1-py3-none-any.whl".into(),
                url: "https://files.example/packages/click-8.2.1-py3-none-any.whl".into(),
                sha256: Digest::from_hex(
                    "61a3265b914e850b85317d0b3109c7f8cd35a670f963866005d6ef1d5175a12b"
                )
                .unwrap(),
                size: Some(102215),
            }]
        );
        // docopt has only an sdist: the engine reports that no wheel fits the target.
        assert!(matches!(
            &packages[1].artifacts,
            Artifacts::Listed { wheels, sdist: Some(_) } if wheels.is_empty()
        ));
    }

    #[test]
    fn platform_markers_are_the_targets() {
        let linux_only = read(UV, &Selection::default()).unwrap();
        assert!(!names(&linux_only).contains(&"colorama"));
        let windows = MarkerEnvironment::try_from(uv_pep508::MarkerEnvironmentBuilder {
            implementation_name: "cpython",
            implementation_version: "3.11.2",
            os_name: "nt",
            platform_machine: "AMD64",
            platform_python_implementation: "CPython",
            platform_release: "10",
            platform_system: "Windows",
            platform_version: "10.0.19045",
            python_full_version: "3.11.2",
            python_version: "3.11",
            sys_platform: "win32",
        })
        .unwrap();
        let on_windows = parse(
            Path::new("pylock.toml"),
            UV,
            &windows,
            &Selection::default(),
        )
        .unwrap();
        assert!(names(&on_windows).contains(&"colorama"));
    }

    #[test]
    fn a_single_use_lock_has_no_extras_to_choose() {
        let fancy = Selection {
            extras: vec!["fancy".into()],
            ..Default::default()
        };
        assert_eq!(
            error(UV, &fancy),
            "/srv/app/pylock.toml: the lock declares no extra `fancy` (it declares: none); \
             this is a single-use lock: its extras and groups were chosen when it was written \
             (e.g. `uv export --format pylock.toml --extra NAME --group NAME`)"
        );
        assert!(error(UV, &groups(&["dev"])).contains("declares no dependency group `dev`"));
    }

    #[test]
    fn pip_lock_reads_as_written() {
        let packages = read(PIP, &Selection::default()).unwrap();
        assert_eq!(
            names(&packages),
            ["click", "docopt", "ipython-pygments-lexers", "pexpect"]
        );
        let Artifacts::Listed { wheels, .. } = &packages[2].artifacts else {
            panic!("pylock.toml lists wheels")
        };
        // The wheel's name part (underscores) matches the package once both are normalized.
        assert_eq!(
            wheels[0].filename,
            "ipython_pygments_lexers-1.1.1-py3-none-any.whl"
        );
        assert_eq!(wheels[0].size, None);
        assert!(matches!(
            &packages[1].artifacts,
            Artifacts::Listed { wheels, sdist: Some(_) } if wheels.is_empty()
        ));
    }

    #[test]
    fn local_directories_and_archives_are_refused() {
        assert_eq!(
            error(PIP_LOCAL, &Selection::default()),
            "/srv/app/pylock.toml: package localproj comes from a local directory, which \
             lockship cannot build yet"
        );
        let archive_only = PIP_LOCAL.replace("path = \"localproj\"", "path = \".\"");
        // The directory "." is the project itself and is left out; six is a file URL archive.
        assert_eq!(
            error(&archive_only, &Selection::default()),
            "/srv/app/pylock.toml: package six comes from an archive URL, which lockship \
             cannot build yet"
        );
        let local_archive = r#"
lock-version = "1.0"
created-by = "uv"

[[packages]]
name = "six"
version = "1.17.0"
archive = { path = "wheels/six-1.17.0-py2.py3-none-any.whl", hashes = { sha256 = "4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274" } }
"#;
        assert!(error(local_archive, &Selection::default())
            .ends_with("package six comes from a local archive, which lockship cannot build yet"));
    }

    #[test]
    fn the_project_in_a_subdirectory_lock_is_not_recognised() {
        // `uv export -o locks/pylock.toml` names the project `../`; without the project's
        // directory this reader cannot tell it from any other local directory.
        let text = uv_with(r#"path = ".""#, r#"path = "../""#);
        let err = parse(
            Path::new("/srv/app/locks/pylock.toml"),
            &text,
            &linux(),
            &Selection::default(),
        )
        .unwrap_err();
        assert!(
            matches!(err, LockError::UnsupportedSource { ref package, .. } if package == "app")
        );
        // Beside pyproject.toml, the same entry is the project.
        assert!(parse(
            Path::new("/srv/app/pylock.toml"),
            &text.replace("path = \"../\"", "path = \"./\""),
            &linux(),
            &Selection::default()
        )
        .is_ok());
    }

    #[test]
    fn git_sources_are_refused() {
        let text = uv_with(
            r#"directory = { path = ".", editable = true }"#,
            r#"vcs = { type = "git", url = "https://git.example/app.git", commit-id = "0123456789abcdef0123456789abcdef01234567" }"#,
        );
        assert_eq!(
            error(&text, &Selection::default()),
            "/srv/app/pylock.toml: package app comes from a git repository, which lockship \
             cannot build yet"
        );
    }

    #[test]
    fn default_groups_apply_and_selected_groups_add() {
        let default = read(PIPENV, &Selection::default()).unwrap();
        // colorama is for Windows; iniconfig is in the dev group; rich in the fancy extra.
        assert_eq!(names(&default), ["click"]);
        let dev = read(PIPENV, &groups(&["dev"])).unwrap();
        assert_eq!(names(&dev), ["click", "iniconfig"]);
        let fancy = Selection {
            extras: vec!["Fancy".into()],
            ..Default::default()
        };
        assert_eq!(names(&read(PIPENV, &fancy).unwrap()), ["click", "rich"]);

        // Packages marked with a default group: on by default, and still on when a target
        // adds a group.
        let marked = PIPENV.replace(
            "marker = \"python_version >= '3.10'\"",
            "marker = \"'default' in dependency_groups\"",
        );
        assert_eq!(
            names(&read(&marked, &Selection::default()).unwrap()),
            ["click"]
        );
        assert_eq!(
            names(&read(&marked, &groups(&["dev"])).unwrap()),
            ["click", "iniconfig"]
        );
        // Without default-groups the marker is false.
        let no_defaults = marked.replace("default-groups = [\"default\"]", "");
        assert_eq!(
            names(&read(&no_defaults, &Selection::default()).unwrap()),
            Vec::<&str>::new()
        );
    }

    #[test]
    fn undeclared_groups_and_extras_are_named() {
        assert_eq!(
            error(PIPENV, &groups(&["docs"])),
            "/srv/app/pylock.toml: the lock declares no dependency group `docs` (it declares: \
             dev, default)"
        );
        let test = Selection {
            extras: vec!["test".into()],
            ..Default::default()
        };
        assert_eq!(
            error(PIPENV, &test),
            "/srv/app/pylock.toml: the lock declares no extra `test` (it declares: fancy)"
        );
    }

    #[test]
    fn requires_python_of_the_lock_and_of_packages() {
        assert_eq!(
            error(PEP_EXAMPLE, &Selection::default()),
            "/srv/app/pylock.toml is locked for Python `==3.12`, and the base's Python is 3.11.2"
        );
        let lock_ok = PEP_EXAMPLE.replace("requires-python = '==3.12'", "");
        let packages = read(&lock_ok, &Selection::default()).unwrap();
        assert_eq!(names(&packages), ["attrs", "cattrs", "numpy"]);
        let Artifacts::Listed { wheels, .. } = &packages[2].artifacts else {
            panic!("pylock.toml lists wheels")
        };
        assert_eq!(wheels.len(), 2);
        assert_eq!(wheels[1].size, Some(16116679));
        // A selected package that excludes the target's Python is an error (PEP 751), not a
        // skip.
        let numpy_312 = lock_ok.replace("requires-python = '>=3.10'", "requires-python = '>=3.12'");
        assert_eq!(
            error(&numpy_312, &Selection::default()),
            "/srv/app/pylock.toml: numpy 2.2.3 requires Python `>=3.12`; the target has 3.11.2"
        );
        // Unless its marker leaves it out first.
        let skipped = numpy_312.replace(
            "name = 'numpy'\n",
            "name = 'numpy'\nmarker = \"python_version >= '3.12'\"\n",
        );
        assert_eq!(
            names(&read(&skipped, &Selection::default()).unwrap()),
            ["attrs", "cattrs"]
        );
    }

    #[test]
    fn environments_must_include_the_target() {
        let windows_only = PEP_EXAMPLE
            .replace("requires-python = '==3.12'", "")
            .replace(", \"sys_platform == 'linux'\"", "");
        assert_eq!(
            error(&windows_only, &Selection::default()),
            "/srv/app/pylock.toml: the target (Python 3.11.2, linux x86_64) matches none of the \
             lock's environments: sys_platform == 'win32'"
        );
    }

    #[test]
    fn path_wheels_become_file_urls() {
        let packages = parse(
            Path::new("/srv/app/locks/pylock.toml"),
            PATH_WHEEL,
            &linux(),
            &Selection::default(),
        )
        .unwrap();
        let Artifacts::Listed { wheels, .. } = &packages[0].artifacts else {
            panic!("pylock.toml lists wheels")
        };
        assert_eq!(wheels[0].filename, "six-1.17.0-py2.py3-none-any.whl");
        assert_eq!(
            wheels[0].url,
            "file:///srv/app/wheels/six-1.17.0-py2.py3-none-any.whl"
        );
        let absolute = PATH_WHEEL.replace("../wheels/", "/opt/wheel house/");
        let packages = parse(
            Path::new("pylock.toml"),
            &absolute,
            &linux(),
            &Selection::default(),
        )
        .unwrap();
        let Artifacts::Listed { wheels, .. } = &packages[0].artifacts else {
            panic!("pylock.toml lists wheels")
        };
        assert_eq!(
            wheels[0].url,
            "file:///opt/wheel%20house/six-1.17.0-py2.py3-none-any.whl"
        );
    }

    #[test]
    fn wheels_must_carry_a_sha256() {
        let sha = r#"hashes = { sha256 = "61a3265b914e850b85317d0b3109c7f8cd35a670f963866005d6ef1d5175a12b" }"#;
        // No hashes: the package comes from its index, if the project allows it.
        let none = uv_with(&format!(", {sha}"), "");
        let pkgs = read(&none, &Selection::default()).unwrap();
        assert_eq!(crate::lock::unhashed(&pkgs), ["click==8.2.1"]);
        assert_eq!(
            pkgs[0].artifacts,
            Artifacts::Unhashed {
                index: Some("https://index.example/simple".into())
            }
        );
        let empty = read(&uv_with(sha, "hashes = {}"), &Selection::default()).unwrap();
        assert_eq!(crate::lock::unhashed(&empty), ["click==8.2.1"]);
        let md5 = uv_with(
            sha,
            r#"hashes = { md5 = "0f343b0931126a20f133d67c2b018a3b", sha512 = "00" }"#,
        );
        assert_eq!(
            error(&md5, &Selection::default()),
            "/srv/app/pylock.toml: wheel click-8.2.1-py3-none-any.whl has no sha256 hash (only \
             md5, sha512); lockship verifies files by sha256"
        );
        let short = uv_with(sha, r#"hashes = { sha256 = "61a3" }"#);
        assert_eq!(
            error(&short, &Selection::default()),
            "/srv/app/pylock.toml: wheel click-8.2.1-py3-none-any.whl: its sha256 is not 64 \
             hexadecimal digits"
        );
    }

    #[test]
    fn wheels_must_belong_to_their_package() {
        let other = uv_with(
            "https://files.example/packages/click-8.2.1-py3-none-any.whl",
            "https://user:secret@files.example/packages/rich-14.0.0-py3-none-any.whl?x=1#f",
        );
        let message = error(&other, &Selection::default());
        assert_eq!(
            message,
            "/srv/app/pylock.toml: wheel rich-14.0.0-py3-none-any.whl is not a wheel of package \
             click (it is rich)"
        );
        assert!(!message.contains("secret"));
        let old = uv_with(
            "packages/click-8.2.1-py3-none-any.whl",
            "packages/click-8.1.0-py3-none-any.whl",
        );
        assert_eq!(
            error(&old, &Selection::default()),
            "/srv/app/pylock.toml: wheel click-8.1.0-py3-none-any.whl is version 8.1.0, but the \
             lock pins click 8.2.1"
        );
        let sdist = uv_with(
            "packages/click-8.2.1-py3-none-any.whl",
            "packages/click-8.2.1.tar.gz",
        );
        assert_eq!(
            error(&sdist, &Selection::default()),
            "/srv/app/pylock.toml: click: `click-8.2.1.tar.gz` is not a wheel filename"
        );
    }

    #[test]
    fn ambiguous_entries_are_refused() {
        let second_click = r#"
[[packages]]
name = "Click"
version = "8.1.8"
marker = "python_version < '3.12'"
wheels = [{ url = "https://files.example/packages/click-8.1.8-py3-none-any.whl", hashes = { sha256 = "63c132bbbed01578a06712a2d1f497bb62d9c1c0d329b7903a866228027263b2" } }]
"#;
        let both = format!("{UV}{second_click}");
        assert_eq!(
            error(&both, &Selection::default()),
            "/srv/app/pylock.toml: Click is selected twice for the target (packages[1], version \
             8.2.1, and packages[7], version 8.1.8); PEP 751 requires one entry per package per \
             environment"
        );
        // Exclusive markers pick one entry per environment.
        let split = both.replacen(
            "name = \"click\"\n",
            "name = \"click\"\nmarker = \"python_version >= '3.12'\"\n",
            1,
        );
        let packages = read(&split, &Selection::default()).unwrap();
        assert_eq!(packages[0].name, "click");
        assert_eq!(packages[0].version, "8.1.8");
    }

    #[test]
    fn lock_versions_other_than_1_0_are_refused() {
        for (written, found) in [
            ("\"2.0\"", "2.0"),
            ("\"1.1\"", "1.1"),
            ("1.0", "1.0 (not a string)"),
        ] {
            let text = uv_with(
                "lock-version = \"1.0\"",
                &format!("lock-version = {written}"),
            );
            assert_eq!(
                error(&text, &Selection::default()),
                format!(
                    "/srv/app/pylock.toml: lock version {found} is not supported (lockship reads \
                     1.0)"
                )
            );
        }
        // A newer version whose shape this reader does not know still says it is newer.
        let reshaped = "lock-version = \"2.0\"\npackages = \"elsewhere\"\n";
        assert!(matches!(
            read(reshaped, &Selection::default()),
            Err(LockError::UnsupportedVersion { found, .. }) if found == "2.0"
        ));
        assert_eq!(
            error("created-by = \"x\"\n", &Selection::default()),
            "/srv/app/pylock.toml: no lock-version: not a pylock.toml (PEP 751)"
        );
    }

    #[test]
    fn garbage_names_the_file_and_line() {
        let err = parse(
            Path::new("proj/pylock.toml"),
            "lock-version = \"1.0\"\n[[packages]]\nname = [\n",
            &linux(),
            &Selection::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("proj/pylock.toml: not a valid pylock.toml: line 3: "),
            "{err}"
        );
        let typed = uv_with("size = 102215", "size = -1");
        assert_eq!(
            error(&typed, &Selection::default()),
            "/srv/app/pylock.toml: not a valid pylock.toml: line 17: invalid value: integer `-1`, \
             expected u64"
        );
        let marker = uv_with(
            "marker = \"sys_platform == 'win32'\"",
            "marker = \"sys_platform ==\"",
        );
        assert!(error(&marker, &Selection::default())
            .starts_with("/srv/app/pylock.toml: colorama: bad marker `sys_platform ==`: "));
        let nothing = "lock-version = \"1.0\"\n[[packages]]\nname = \"click\"\nversion = \"1\"\n";
        assert_eq!(
            error(nothing, &Selection::default()),
            "/srv/app/pylock.toml: click names nothing to install (no wheels, sdist, archive, \
             vcs or directory)"
        );
    }

    #[test]
    fn deeply_nested_markers_are_refused_not_a_crash() {
        let deep = format!(
            "{}python_version > '3'{}",
            "(".repeat(10_000),
            ")".repeat(10_000)
        );
        let text = uv_with(
            "marker = \"sys_platform == 'win32'\"",
            &format!("marker = \"{deep}\""),
        );
        assert!(error(&text, &Selection::default())
            .ends_with("`: nested more than 64 parentheses deep"));
        let fine = format!("{}python_version > '3'{}", "(".repeat(64), ")".repeat(64));
        let text = uv_with(
            "marker = \"sys_platform == 'win32'\"",
            &format!("marker = \"{fine}\""),
        );
        assert!(names(&read(&text, &Selection::default()).unwrap()).contains(&"colorama"));
    }

    #[test]
    fn filenames_come_from_the_last_url_segment() {
        assert_eq!(
            last_segment("https://files.example/a/torch-2.0.0%2Bcpu-cp311-cp311-linux_x86_64.whl?token=x#sha256=00"),
            "torch-2.0.0+cpu-cp311-cp311-linux_x86_64.whl"
        );
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
    }
}
