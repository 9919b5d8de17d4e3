//! Reads Pipfile.lock (pipfile-spec 6, as pipenv writes it) into the packages a target needs, and
//! checks that a Pipfile.lock was made from its Pipfile with pipenv's own Pipfile hash.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;
use std::str::FromStr;

use serde::Deserialize;
use serde_json::{Map, Value};
use uv_pep440::Version;
use uv_pep508::{MarkerEnvironment, MarkerTree};

use super::python_json::{push_float, push_str, push_toml, COMPACT};
use super::{normalize_name, Artifacts, LockError, LockedPackage, Selection};
use lockship_oci::digest::Digest;

/// The `_meta.pipfile-spec` current pipenv writes (plette's `PIPFILE_SPEC_CURRENT`).
const PIPFILE_SPEC: u64 = 6;

/// The target's Python must be the one `[requires]` names: `python_version` by major.minor,
/// `python_full_version` exactly.
fn check_python(
    path: &Path,
    requires: &Requires,
    env: &MarkerEnvironment,
) -> Result<(), LockError> {
    let full = &env.python_full_version().version;
    let short = &env.python_version().version;
    let checks = [
        (requires.python_full_version.as_deref(), full),
        (requires.python_version.as_deref(), short),
    ];
    for (wanted, have) in checks {
        let Some(wanted) = wanted else { continue };
        // An unparsable entry is pipenv's to complain about; it does not decide the image.
        if Version::from_str(wanted).is_ok_and(|w| w != *have) {
            return Err(LockError::WrongPython {
                path: path.to_path_buf(),
                allowed: format!("=={wanted}"),
                python: full.to_string(),
            });
        }
    }
    Ok(())
}

/// The sources a lock records, in order: the first is pipenv's default index.
#[derive(Deserialize)]
struct Meta {
    #[serde(default)]
    sources: Vec<Source>,
    #[serde(default)]
    requires: Requires,
}

/// The Pipfile's `[requires]`: the Python the lock was made for (`pipenv install --deploy`
/// refuses another).
#[derive(Deserialize, Default)]
struct Requires {
    python_version: Option<String>,
    python_full_version: Option<String>,
}

#[derive(Deserialize)]
struct Source {
    name: Option<String>,
    url: Option<String>,
}

/// One package of a lock section. Only the keys that decide what gets installed.
#[derive(Deserialize)]
#[serde(expecting = "a package table")]
struct Entry {
    version: Option<String>,
    hashes: Option<Vec<String>>,
    markers: Option<String>,
    index: Option<String>,
    git: Option<String>,
    hg: Option<String>,
    svn: Option<String>,
    bzr: Option<String>,
    path: Option<String>,
    file: Option<String>,
    #[serde(default)]
    editable: bool,
}

impl Entry {
    /// Where a package comes from when it is not an index: pipenv locks these without hashes.
    fn unsupported_kind(&self) -> Option<&'static str> {
        if self.git.is_some() {
            Some("a git repository")
        } else if self.hg.is_some() {
            Some("a Mercurial repository")
        } else if self.svn.is_some() {
            Some("a Subversion repository")
        } else if self.bzr.is_some() {
            Some("a Bazaar repository")
        } else if let Some(file) = &self.file {
            let lower = file.to_ascii_lowercase();
            if lower.starts_with("http://") || lower.starts_with("https://") {
                Some("a direct URL")
            } else {
                Some("a local file")
            }
        } else if self.editable && self.path.is_some() {
            Some("an editable local path")
        } else if self.path.is_some() {
            Some("a local path")
        } else if self.editable {
            Some("an editable install")
        } else {
            None
        }
    }
}

/// A package taken from one section, before sections are merged.
struct Chosen {
    version: String,
    hashes: Vec<Digest>,
    index: Option<String>,
    section: String,
}

/// Names for a message: at most a dozen (a hostile lock may have thousands), or "none".
fn listing<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let mut names: Vec<&str> = names.collect();
    if names.is_empty() {
        return "none".into();
    }
    let more = names.len().saturating_sub(12);
    names.truncate(12);
    let mut text = names.join(", ");
    if more > 0 {
        let _ = write!(text, " and {more} more");
    }
    text
}

fn invalid(path: &Path, message: String) -> LockError {
    LockError::Invalid {
        path: path.to_path_buf(),
        message,
    }
}

/// The top-level object of a Pipfile.lock (pipenv reads it as `utf-8-sig`: a BOM is allowed).
fn top_object(path: &Path, text: &str) -> Result<Map<String, Value>, LockError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(invalid(
            path,
            "not a valid Pipfile.lock: expected a JSON object".into(),
        )),
        Err(e) => Err(invalid(path, format!("not a valid Pipfile.lock: {e}"))),
    }
}

/// The packages a target needs from a Pipfile.lock.
pub fn parse(
    path: &Path,
    text: &str,
    env: &MarkerEnvironment,
    selection: &Selection,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<LockedPackage>, LockError> {
    let top = top_object(path, text)?;
    let meta_value = top
        .get("_meta")
        .ok_or_else(|| invalid(path, "no _meta (not a Pipfile.lock?)".into()))?;
    check_spec(path, meta_value)?;
    let meta =
        Meta::deserialize(meta_value).map_err(|e| invalid(path, format!("bad _meta: {e}")))?;
    if !selection.extras.is_empty() {
        return Err(invalid(
            path,
            format!(
                "a Pipfile.lock has no project extras to add (asked for: {}); select Pipfile \
                 categories as groups",
                selection.extras.join(", ")
            ),
        ));
    }
    check_python(path, &meta.requires, env)?;
    let sections = selected_sections(path, &top, &selection.groups)?;

    let mut urls = SourceUrls::new(&meta.sources, vars);
    let mut markers = Markers {
        env,
        seen: HashMap::new(),
    };
    let mut chosen: BTreeMap<String, Chosen> = BTreeMap::new();
    for section in sections {
        let Some(value) = top.get(section) else {
            // pipenv treats a missing default or develop section as empty.
            continue;
        };
        let Value::Object(packages) = value else {
            return Err(invalid(
                path,
                format!("section `{section}` is not a table of packages"),
            ));
        };
        for (raw_name, value) in packages {
            let entry = Entry::deserialize(value)
                .map_err(|e| invalid(path, format!("{raw_name} (in `{section}`): {e}")))?;
            let Some(pick) = locked(path, raw_name, &entry, section, &mut markers, &mut urls)?
            else {
                continue;
            };
            let name = normalize_name(raw_name);
            match chosen.get(&name) {
                None => {
                    chosen.insert(name, pick);
                }
                // Same version: pipenv installs it with the first section and the later ones
                // find it installed.
                Some(first) if first.version == pick.version => {}
                Some(first) => {
                    // `pipenv sync --dev` installs each section in turn, so the later one wins;
                    // `pipenv requirements --dev` lets default win. With no one answer to
                    // mirror, lockship refuses to choose.
                    return Err(invalid(
                        path,
                        format!(
                            "{name} is locked at {} in `{}` and at {} in `{section}`; pipenv \
                             installs one or the other depending on the command, so lockship \
                             will not choose (lock with pipenv's default \
                             use_default_constraints = true, or select fewer groups)",
                            first.version, first.section, pick.version
                        ),
                    ));
                }
            }
        }
    }
    Ok(chosen
        .into_iter()
        .map(|(name, c)| LockedPackage {
            name,
            version: c.version,
            artifacts: if c.hashes.is_empty() {
                Artifacts::Unhashed { index: c.index }
            } else {
                Artifacts::FromIndex {
                    hashes: c.hashes,
                    index: c.index,
                }
            },
        })
        .collect())
}

/// Refuses a lock whose `_meta.pipfile-spec` is not the one lockship reads.
fn check_spec(path: &Path, meta: &Value) -> Result<(), LockError> {
    let spec = meta
        .get("pipfile-spec")
        .ok_or_else(|| invalid(path, "_meta has no pipfile-spec".into()))?;
    if spec.as_u64() == Some(PIPFILE_SPEC) {
        return Ok(());
    }
    let found = match spec {
        Value::Number(n) => n.to_string(),
        // A string or anything else: shown as JSON, cut short (hostile input may be long).
        other => other.to_string().chars().take(40).collect(),
    };
    Err(LockError::UnsupportedVersion {
        path: path.to_path_buf(),
        found: format!("pipfile-spec {found}"),
        supported: format!("pipfile-spec {PIPFILE_SPEC}"),
    })
}

/// The lock sections a selection installs: `default`, then each selected group once. `dev`,
/// `develop` and `dev-packages` name the Pipfile's `[dev-packages]`; other names are pipenv
/// categories (a Pipfile `[docs]` table is the lock's `docs` section).
fn selected_sections<'a>(
    path: &Path,
    top: &'a Map<String, Value>,
    groups: &'a [String],
) -> Result<Vec<&'a str>, LockError> {
    let mut sections = vec!["default"];
    for group in groups {
        let section = match group.as_str() {
            "dev" | "develop" | "dev-packages" => "develop",
            "default" | "packages" => "default",
            other if other != "_meta" && top.contains_key(other) => other,
            other => {
                // Categories are named as in the Pipfile; accept `Docs` for `docs` when that
                // names one section only.
                let wanted = canonicalize_name(other);
                let mut matches = top
                    .keys()
                    .filter(|k| *k != "_meta" && canonicalize_name(k) == wanted);
                match (matches.next(), matches.next()) {
                    (Some(only), None) => only.as_str(),
                    _ => {
                        let known = top
                            .keys()
                            .map(String::as_str)
                            .filter(|k| *k != "_meta" && *k != "default");
                        return Err(invalid(
                            path,
                            format!(
                                "no group `{group}` in the lock (its categories: {}; `dev` \
                                 selects develop)",
                                listing(known)
                            ),
                        ));
                    }
                }
            }
        };
        if !sections.contains(&section) {
            sections.push(section);
        }
    }
    Ok(sections)
}

/// One entry as lockship installs it, or None when its markers exclude the target.
fn locked(
    path: &Path,
    name: &str,
    entry: &Entry,
    section: &str,
    markers: &mut Markers<'_>,
    urls: &mut SourceUrls<'_>,
) -> Result<Option<Chosen>, LockError> {
    // Markers first: pipenv lists a package for another platform without resolving it
    // (`"version": "*"`, no hashes), and it is not installed here.
    if let Some(marker) = &entry.markers {
        let holds = markers
            .holds(marker)
            .map_err(|e| invalid(path, format!("{name}: bad marker `{marker}`: {e}")))?;
        if !holds {
            return Ok(None);
        }
    }
    if let Some(kind) = entry.unsupported_kind() {
        return Err(LockError::UnsupportedSource {
            path: path.to_path_buf(),
            package: name.to_string(),
            source_kind: kind.into(),
        });
    }
    let version = match entry.version.as_deref() {
        None => return Err(invalid(path, format!("{name} has no version"))),
        Some(v) => v
            .strip_prefix("==")
            .filter(|v| !v.starts_with('=') && *v == v.trim() && Version::from_str(v).is_ok())
            .ok_or_else(|| {
                invalid(
                    path,
                    format!("{name} is locked as `{v}`, not pinned to one version with =="),
                )
            })?,
    };
    let raw_hashes = entry.hashes.as_deref().unwrap_or(&[]);
    let mut hashes: Vec<Digest> = Vec::new();
    let mut seen: HashSet<Digest> = HashSet::new();
    let mut others: BTreeSet<&str> = BTreeSet::new();
    for hash in raw_hashes {
        if hash.starts_with("sha256:") {
            let digest = Digest::parse(hash)
                .ok_or_else(|| invalid(path, format!("{name}: bad sha256 hash `{hash}`")))?;
            if seen.insert(digest.clone()) {
                hashes.push(digest);
            }
        } else {
            others.insert(hash.split(':').next().unwrap_or(hash));
        }
    }
    if hashes.is_empty() && !raw_hashes.is_empty() {
        return Err(invalid(
            path,
            format!(
                "{name} has only {} hashes; lockship verifies sha256",
                others.into_iter().take(4).collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    let index = match &entry.index {
        Some(index) => Some(urls.named(path, name, index)?),
        None => urls.default(path)?,
    };
    Ok(Some(Chosen {
        version: version.to_string(),
        hashes,
        index,
        section: section.to_string(),
    }))
}

/// Marker results for the target, each distinct marker parsed once: a lock repeats a few
/// markers across hundreds of packages.
struct Markers<'a> {
    env: &'a MarkerEnvironment,
    seen: HashMap<String, bool>,
}

impl Markers<'_> {
    fn holds(&mut self, marker: &str) -> Result<bool, String> {
        if let Some(&holds) = self.seen.get(marker) {
            return Ok(holds);
        }
        let holds = MarkerTree::from_str(marker)
            .map_err(|e| e.to_string())?
            .evaluate(self.env, &[]);
        self.seen.insert(marker.to_string(), holds);
        Ok(holds)
    }
}

/// The lock's source URLs, expanded once each, when a package needs them.
struct SourceUrls<'a> {
    sources: &'a [Source],
    /// Name to position; the first of two sources with one name, as pipenv's lookup finds it.
    by_name: HashMap<&'a str, usize>,
    vars: &'a dyn Fn(&str) -> Option<String>,
    expanded: Vec<Option<String>>,
}

impl<'a> SourceUrls<'a> {
    fn new(sources: &'a [Source], vars: &'a dyn Fn(&str) -> Option<String>) -> Self {
        let mut by_name = HashMap::new();
        for (i, source) in sources.iter().enumerate() {
            if let Some(name) = &source.name {
                by_name.entry(name.as_str()).or_insert(i);
            }
        }
        SourceUrls {
            sources,
            by_name,
            vars,
            expanded: vec![None; sources.len()],
        }
    }

    /// The source a package names by `index`.
    fn named(&mut self, path: &Path, package: &str, index: &str) -> Result<String, LockError> {
        let Some(&i) = self.by_name.get(index) else {
            let known = self.sources.iter().filter_map(|s| s.name.as_deref());
            return Err(invalid(
                path,
                format!(
                    "{package} names index `{index}`, which is not among the lock's sources \
                     (it has: {})",
                    listing(known)
                ),
            ));
        };
        self.url(path, i)
    }

    /// pipenv's default index, the first source; None when the lock names no source.
    fn default(&mut self, path: &Path) -> Result<Option<String>, LockError> {
        if self.sources.is_empty() {
            return Ok(None);
        }
        self.url(path, 0).map(Some)
    }

    /// Errors name a source by its name or position, never by its URL (it may hold a token).
    fn url(&mut self, path: &Path, i: usize) -> Result<String, LockError> {
        if let Some(Some(url)) = self.expanded.get(i) {
            return Ok(url.clone());
        }
        let source = &self.sources[i];
        let label = match &source.name {
            Some(name) => format!("source `{name}`"),
            None => format!("source {} of _meta.sources", i + 1),
        };
        let raw = source
            .url
            .as_deref()
            .ok_or_else(|| invalid(path, format!("{label} has no url")))?;
        let url = expand_url(raw, self.vars).map_err(|var| {
            invalid(
                path,
                format!(
                    "the url of {label} uses the environment variable `{var}`, which is not set"
                ),
            )
        })?;
        self.expanded[i] = Some(url.clone());
        Ok(url)
    }
}

/// pipenv's expansion of a lock's source URL (`expand_url_credentials` in
/// pipenv/utils/shell.py, which `Lockfile.load` applies to every source): `$VAR` and `${VAR}` as
/// `os.path.expandvars` reads them; when the URL has a userinfo part, its variables are expanded
/// first and the user and password percent-encoded, so a token with `@` or `:` stays one token.
/// Values come from `vars` only. Where pipenv leaves an unset variable as it is, this fails with
/// the variable's name: a URL with `${TOKEN}` in it would only fail later, less clearly.
fn expand_url(url: &str, vars: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    if !url.contains('$') {
        return Ok(url.to_string());
    }
    let Some(parts) = UrlParts::split(url) else {
        return expandvars(url, vars);
    };
    let Some((userinfo, hostinfo)) = parts.netloc.rsplit_once('@') else {
        return expandvars(url, vars);
    };
    let expanded = expand_userinfo(userinfo, vars)?;
    let userinfo = if expanded == userinfo {
        expanded
    } else if let Some((user, password)) = expanded.split_once(':') {
        format!("{}:{}", quote(user), quote(password))
    } else {
        quote(&expanded)
    };
    let mut out = String::new();
    if !parts.scheme.is_empty() {
        out.push_str(&parts.scheme);
        out.push(':');
    }
    out.push_str("//");
    out.push_str(&userinfo);
    out.push('@');
    out.push_str(&expandvars(hostinfo, vars)?);
    let path = expandvars(&parts.path, vars)?;
    if !path.is_empty() && !path.starts_with('/') {
        out.push('/');
    }
    out.push_str(&path);
    let query = expandvars(&parts.query, vars)?;
    if !query.is_empty() {
        out.push('?');
        out.push_str(&query);
    }
    if !parts.fragment.is_empty() {
        out.push('#');
        out.push_str(&parts.fragment);
    }
    Ok(out)
}

/// A URL split as Python's `urllib.parse.urlsplit` splits it.
struct UrlParts {
    scheme: String,
    netloc: String,
    path: String,
    query: String,
    fragment: String,
}

impl UrlParts {
    /// None where `urlsplit` raises (unbalanced IPv6 brackets).
    fn split(url: &str) -> Option<UrlParts> {
        // urlsplit drops leading C0 controls and spaces, and every tab and newline.
        let url: String = url
            .trim_start_matches(|c: char| c <= ' ')
            .chars()
            .filter(|c| !matches!(c, '\t' | '\r' | '\n'))
            .collect();
        let mut rest = url.as_str();
        let mut scheme = String::new();
        if let Some(colon) = rest.find(':') {
            let candidate = &rest[..colon];
            if candidate.starts_with(|c: char| c.is_ascii_alphabetic())
                && candidate
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
            {
                scheme = candidate.to_ascii_lowercase();
                rest = &rest[colon + 1..];
            }
        }
        let mut netloc = "";
        if let Some(after) = rest.strip_prefix("//") {
            let end = after.find(['/', '?', '#']).unwrap_or(after.len());
            netloc = &after[..end];
            rest = &after[end..];
            if netloc.contains('[') != netloc.contains(']') {
                return None;
            }
        }
        let (rest, fragment) = rest.split_once('#').unwrap_or((rest, ""));
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        Some(UrlParts {
            scheme,
            netloc: netloc.to_string(),
            path: path.to_string(),
            query: query.to_string(),
            fragment: fragment.to_string(),
        })
    }
}

/// `os.path.expandvars` on POSIX: `$name` (name: ASCII letters, digits, `_`) and `${anything}`;
/// a `$` that starts neither stays. An unset variable is an error carrying its name.
fn expandvars(text: &str, vars: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        let word = after
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
            .count();
        let (name, used) = if word > 0 {
            (&after[..word], word)
        } else if let Some(end) = after.strip_prefix('{').and_then(|a| a.find('}')) {
            (&after[1..1 + end], end + 2)
        } else {
            out.push('$');
            rest = after;
            continue;
        };
        out.push_str(&vars(name).ok_or_else(|| name.to_string())?);
        rest = &after[used..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The userinfo expansion of `expand_url_credentials`: `'${NAME}'` (quotes dropped, the legacy
/// Pipfile idiom), `${NAME}` and `$NAME` (a letter or `_`, then letters, digits, `_`).
fn expand_userinfo(text: &str, vars: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        let quoted = bytes[i] == b'\'';
        let dollar = if quoted { i + 1 } else { i };
        let braced = text[dollar..]
            .strip_prefix("${")
            .and_then(|a| a.find('}').filter(|&end| end > 0).map(|end| (dollar, end)));
        let found = if let Some((dollar, end)) = braced {
            let name = &text[dollar + 2..dollar + 2 + end];
            let mut stop = dollar + 2 + end + 1;
            if bytes.get(stop) == Some(&b'\'') {
                stop += 1;
            }
            Some((name, stop))
        } else if !quoted && bytes[i] == b'$' {
            let tail = &bytes[i + 1..];
            let len = match tail.first() {
                Some(b) if b.is_ascii_alphabetic() || *b == b'_' => tail
                    .iter()
                    .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
                    .count(),
                _ => 0,
            };
            (len > 0).then(|| (&text[i + 1..i + 1 + len], i + 1 + len))
        } else {
            None
        };
        match found {
            Some((name, stop)) => {
                out.push_str(&text[copied..i]);
                out.push_str(&vars(name).ok_or_else(|| name.to_string())?);
                i = stop;
                copied = stop;
            }
            // Step over a whole character: `i` stays on a char boundary.
            None => i += text[i..].chars().next().map_or(1, char::len_utf8),
        }
    }
    out.push_str(&text[copied..]);
    Ok(out)
}

/// Python's `urllib.parse.quote(text, safe='')`: all but letters, digits and `_.-~` as %XX.
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Fails with LockError::Stale when the Pipfile.lock was not made from this Pipfile (like
/// `pipenv verify`).
pub fn check_fresh(lock_path: &Path, lock_text: &str, pipfile_text: &str) -> Result<(), LockError> {
    let pipfile_path = lock_path.with_file_name("Pipfile");
    let lock_text = lock_text.strip_prefix('\u{feff}').unwrap_or(lock_text);
    // Only `_meta` is read: the package sections are skipped, not built.
    let probe: MetaOnly = serde_json::from_str(lock_text)
        .map_err(|e| invalid(lock_path, format!("not a valid Pipfile.lock: {e}")))?;
    let meta = probe.meta.as_ref();
    let recorded = meta
        .and_then(|m| m.get("hash"))
        .and_then(|h| h.get("sha256"))
        .and_then(Value::as_str);
    // Python reads the Pipfile in text mode: every line ending is `\n` by the time it is parsed.
    let normalized;
    let pipfile_text = if pipfile_text.contains('\r') {
        normalized = pipfile_text.replace("\r\n", "\n").replace('\r', "\n");
        normalized.as_str()
    } else {
        pipfile_text
    };
    let pipfile: toml::Table = toml::from_str(pipfile_text).map_err(|e| {
        let line = e
            .span()
            .and_then(|span| pipfile_text.get(..span.start))
            .map_or(String::new(), |before| {
                format!(" (line {})", before.matches('\n').count() + 1)
            });
        invalid(
            &pipfile_path,
            format!("not valid TOML{line}: {}", e.message().trim_end()),
        )
    })?;
    let lock_sources = meta.and_then(|m| m.get("sources"));
    let computed = pipfile_hash(pipfile_text, &pipfile, lock_sources)
        .map_err(|message| invalid(&pipfile_path, message))?;
    if recorded == Some(computed.as_str()) {
        return Ok(());
    }
    let mut problems = "it was made from another Pipfile".to_string();
    if !pipfile.contains_key("source") {
        problems.push_str(
            "; this Pipfile names no [[source]], so its hash also depends on the index \
             configuration pipenv locked with: name the index in the Pipfile",
        );
    }
    Err(LockError::Stale {
        path: lock_path.to_path_buf(),
        problems,
    })
}

#[derive(Deserialize)]
#[serde(expecting = "a JSON object")]
struct MetaOnly {
    #[serde(rename = "_meta")]
    meta: Option<Value>,
}

/// Top-level Pipfile tables that are not package categories (plette's `PIPFILE_SECTIONS`).
const PIPFILE_SECTIONS: [&str; 7] = [
    "source",
    "packages",
    "dev-packages",
    "requires",
    "scripts",
    "pipfile",
    "pipenv",
];

/// A value as Python's `json.dumps` sees it.
enum Py<'a> {
    Toml(&'a toml::Value),
    Json(&'a Value),
    Dict(BTreeMap<String, Py<'a>>),
}

/// pipenv's Pipfile hash (`Pipfile.calculate_hash` in pipenv/utils/pipfile.py, plette's
/// `Pipfile.get_hash` with package names canonicalized): the hex SHA-256 of
/// `json.dumps(data, sort_keys=True, separators=(",", ":"))` (ASCII-escaped) over
///
/// ```text
/// {"_meta": {"sources": <[[source]]>, "requires": <[requires] or {}>},
///  "default": <[packages], keys canonicalized>, "develop": <[dev-packages], same>,
///  <every other table but scripts, pipfile, pipenv, default, develop>: <same>}
/// ```
///
/// A Pipfile without `[[source]]` is hashed by pipenv with the default sources it takes from
/// pip's configuration on the machine that locked; the lock records them as `_meta.sources`,
/// which stand in for them here.
fn pipfile_hash(
    text: &str,
    pipfile: &toml::Table,
    lock_sources: Option<&Value>,
) -> Result<String, String> {
    let empty = toml::Value::Table(toml::Table::new());
    let empty_list = Value::Array(Vec::new());
    let sources = match pipfile.get("source") {
        Some(s) => Py::Toml(s),
        None => Py::Json(lock_sources.unwrap_or(&empty_list)),
    };
    let requires = Py::Toml(pipfile.get("requires").unwrap_or(&empty));
    let mut data: BTreeMap<String, Py<'_>> = BTreeMap::new();
    data.insert(
        "_meta".into(),
        Py::Dict(BTreeMap::from([
            ("requires".to_string(), requires),
            ("sources".to_string(), sources),
        ])),
    );
    data.insert(
        "default".into(),
        canonical_section("packages", pipfile.get("packages"), text)?,
    );
    data.insert(
        "develop".into(),
        canonical_section("dev-packages", pipfile.get("dev-packages"), text)?,
    );
    for (category, values) in pipfile {
        if PIPFILE_SECTIONS.contains(&category.as_str())
            || matches!(category.as_str(), "default" | "develop")
        {
            continue;
        }
        // A category named `_meta` replaces the meta entry, as the Python dict assignment does.
        data.insert(
            category.clone(),
            canonical_section(category, Some(values), text)?,
        );
    }
    let mut json = String::new();
    dump(&Py::Dict(data), &mut json, "")?;
    Ok(Digest::of_bytes(json.as_bytes()).hex().to_string())
}

/// A package table with its names canonicalized (PEP 503), as pipenv hashes it.
fn canonical_section<'a>(
    table_name: &str,
    section: Option<&'a toml::Value>,
    text: &str,
) -> Result<Py<'a>, String> {
    let mut out: BTreeMap<String, Py<'a>> = BTreeMap::new();
    let Some(section) = section else {
        return Ok(Py::Dict(out));
    };
    let toml::Value::Table(table) = section else {
        return Err(format!("`{table_name}` is not a table of packages"));
    };
    for (name, spec) in table {
        if out
            .insert(canonicalize_name(name), Py::Toml(spec))
            .is_some()
        {
            // Two names canonicalize alike (`Six` and `six`): Python keeps the later one in
            // document order, which only the document knows.
            return by_document_order(table_name, table, text);
        }
    }
    Ok(Py::Dict(out))
}

/// `canonical_section` for a table with colliding names: entries in document order, the later
/// one replacing the earlier, as the Python dict comprehension does.
fn by_document_order<'a>(
    table_name: &str,
    table: &'a toml::Table,
    text: &str,
) -> Result<Py<'a>, String> {
    let unordered = || format!("cannot order the names of `{table_name}`");
    let document = toml::de::DeTable::parse(text).map_err(|_| unordered())?;
    let section = document
        .get_ref()
        .iter()
        .find(|(k, _)| k.get_ref().as_ref() == table_name)
        .map(|(_, v)| v.get_ref())
        .ok_or_else(unordered)?;
    let toml::de::DeValue::Table(section) = section else {
        return Err(unordered());
    };
    let mut names: Vec<(usize, &str)> = section
        .iter()
        .map(|(k, _)| (k.span().start, k.get_ref().as_ref()))
        .collect();
    names.sort_unstable();
    let mut out: BTreeMap<String, Py<'a>> = BTreeMap::new();
    for (_, name) in names {
        let spec = table.get(name).ok_or_else(unordered)?;
        out.insert(canonicalize_name(name), Py::Toml(spec));
    }
    Ok(Py::Dict(out))
}

/// `packaging.utils.canonicalize_name` as vendored by pipenv: lowercase, `_` and `.` to `-`,
/// runs of `-` to one. Unlike [`normalize_name`] it keeps leading and trailing separators.
fn canonicalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.to_lowercase().chars() {
        let c = if matches!(c, '_' | '.') { '-' } else { c };
        if !(c == '-' && out.ends_with('-')) {
            out.push(c);
        }
    }
    out
}

/// Writes `value` as `json.dumps(value, sort_keys=True, separators=(",", ":"))` does. `key` names
/// the innermost key, for the one error: a TOML date, which `json.dumps` cannot serialize.
fn dump(value: &Py<'_>, out: &mut String, key: &str) -> Result<(), String> {
    match value {
        Py::Dict(map) => {
            out.push('{');
            // BTreeMap<String> iterates in code point order, which is Python's sort of str keys.
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_str(out, k);
                out.push(':');
                dump(v, out, k)?;
            }
            out.push('}');
        }
        Py::Toml(value) => push_toml(out, value, COMPACT, key).map_err(|date| {
            format!(
                "`{}` is a TOML date or time, which pipenv cannot hash",
                date.key
            )
        })?,
        Py::Json(value) => match value {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) => {
                    let _ = write!(out, "{i}");
                }
                (None, Some(u), _) => {
                    let _ = write!(out, "{u}");
                }
                (None, None, Some(f)) => push_float(out, f),
                (None, None, None) => out.push_str(&n.to_string()),
            },
            Value::String(s) => push_str(out, s),
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    dump(&Py::Json(item), out, key)?;
                }
                out.push(']');
            }
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                out.push('{');
                for (i, (k, v)) in entries.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    push_str(out, k);
                    out.push(':');
                    dump(&Py::Json(v), out, k)?;
                }
                out.push('}');
            }
        },
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Fixtures are pipenv's own output. pipenv 2026.10.3 (`pip install pipenv==2026.10.3` in a
    //! CPython 3.11.7 venv), one empty directory per Pipfile:
    //!
    //! ```text
    //! PIP_INDEX_URL=<the simple index pip is configured with> PIPENV_VENV_IN_PROJECT=1 \
    //!     PIPENV_NOSPIN=1 pipenv lock
    //! ```
    //!
    //! Edits: every index host is replaced by `index.example` and the git URL by `git.example`;
    //! long hash lists are cut to three; G lost its three local packages (kept in
    //! `LOCAL_ENTRIES`). Where an edit changes a Pipfile (F, G) or its default source (C), the
    //! expected hash is pipenv's own code run on the edited text
    //! (`pipenv.utils.pipfile.Pipfile(project).calculate_hash()`, imported from that install,
    //! with `plette.pipfiles.DEFAULT_SOURCE_TOML` set as pipenv's `Project()` sets it for C),
    //! and the lock's `_meta.hash` is set to it. Every other hash is the one `pipenv lock`
    //! wrote; the unedited locks all pass `check_fresh` against their Pipfiles too.
    use super::*;

    fn env() -> MarkerEnvironment {
        crate::target::bookworm().marker_env()
    }

    /// `${PIP_INDEX_URL}` as the build's environment would give it.
    fn vars(name: &str) -> Option<String> {
        (name == "PIP_INDEX_URL").then(|| "https://mirror.example/simple".to_string())
    }

    fn no_vars(_: &str) -> Option<String> {
        None
    }

    fn groups(names: &[&str]) -> Selection {
        Selection {
            groups: names.iter().map(|g| g.to_string()).collect(),
            ..Default::default()
        }
    }

    fn names(packages: &[LockedPackage]) -> Vec<&str> {
        packages.iter().map(|p| p.name.as_str()).collect()
    }

    fn index_of(packages: &[LockedPackage], name: &str) -> Option<String> {
        match &packages.iter().find(|p| p.name == name)?.artifacts {
            Artifacts::FromIndex { index, .. } | Artifacts::Unhashed { index } => index.clone(),
            Artifacts::Listed { .. } | Artifacts::Local { .. } => None,
        }
    }

    fn lock_path() -> &'static Path {
        Path::new("proj/Pipfile.lock")
    }

    /// Two sources (one through `${PIP_INDEX_URL}`), requests[socks] with markers, click from
    /// the second source, a Windows-only dev package pipenv leaves unresolved, a `[docs]`
    /// category. Its local path, editable and git packages are in `LOCAL_ENTRIES`.
    const G_PIPFILE: &str = r#"[[source]]
url = "${PIP_INDEX_URL}"
verify_ssl = true
name = "pypi"

[[source]]
url = "https://index.example/simple"
verify_ssl = true
name = "other"

[packages]
six = "*"
click = {version = "==8.1.7", index = "other"}
requests = {version = ">=2.31", extras = ["socks"], markers = "python_version >= '3.8'"}

[dev-packages]
iniconfig = "*"
colorama = {version = "*", markers = "sys_platform == 'win32'"}

[docs]
markdown = "*"

[requires]
python_version = "3.11"
"#;

    const G_LOCK: &str = r#"{
    "_meta": {
        "hash": {
            "sha256": "7d00766f160b483d86930b18215fbe129a14d2d96073acfec2d1c9ca53adebbd"
        },
        "pipfile-spec": 6,
        "requires": {
            "python_version": "3.11"
        },
        "sources": [
            {
                "name": "pypi",
                "url": "${PIP_INDEX_URL}",
                "verify_ssl": true
            },
            {
                "name": "other",
                "url": "https://index.example/simple",
                "verify_ssl": true
            }
        ]
    },
    "default": {
        "certifi": {
            "hashes": [
                "sha256:73191c47aaa79da394e8fee2dbc2ec827432cab56311122c9e47abf79e390f62",
                "sha256:b9995d97b64d0431a5af837d8ca8cd6238104d1f319f04bd93ea43124d6c861e"
            ],
            "markers": "python_version >= '3.7'",
            "version": "==2026.10.18"
        },
        "charset-normalizer": {
            "hashes": [
                "sha256:01077390b03f7988f11d700a2194e69b119741a86b1a638b1db88891e3eced8e",
                "sha256:01b0c0d2262a9e28e8484a278c7e1b5d650e3ac8cf2683d2967e25899f208bdf",
                "sha256:04851f73ae72b8413dddadb16a49dfee95263553741fd42d546f7d66907e6be5"
            ],
            "markers": "python_version >= '3.7'",
            "version": "==3.5.2"
        },
        "click": {
            "hashes": [
                "sha256:ae74fb96c20a0277a1d615f1e4d73c8414f5a98db8b799a7931d1582f3390c28",
                "sha256:ca9853ad459e787e2192211578cc907e7594e294c7ccc834310722b41b9ca6de"
            ],
            "index": "other",
            "markers": "python_version >= '3.7'",
            "version": "==8.1.7"
        },
        "idna": {
            "hashes": [
                "sha256:a7db850025b95ded1eae8a46181a1a6c56c92c96f0e2b005d9ff8dc0210cab44",
                "sha256:ab7ae7122974553370f0bdb919e1a960b2cd1bc1ef0276416d896db81c14582c"
            ],
            "markers": "python_version >= '3.9'",
            "version": "==3.20"
        },
        "pysocks": {
            "hashes": [
                "sha256:08e69f092cc6dbe92a0fdd16eeb9b9ffbc13cadfe5ca4c7bd92ffb078b293299",
                "sha256:2725bd0a9925919b9b51739eea5f9e2bae91e83288108a9ad338b2e3a4435ee5",
                "sha256:3f8804571ebe159c380ac6de37643bb4685970655d3bba243530d6558b799aa0"
            ],
            "markers": "python_version >= '2.7' and python_version != '3.0' and python_version != '3.1' and python_version != '3.2' and python_version != '3.3'",
            "version": "==1.7.1"
        },
        "requests": {
            "extras": [
                "socks"
            ],
            "hashes": [
                "sha256:2a0d60c172f83ac6ab31e4554906c0f3b3588d37b5cb939b1c061f4907e278e0",
                "sha256:f288924cae4e29463698d6d60bc6a4da69c89185ad1e0bcc4104f584e960b9ed"
            ],
            "markers": "python_version >= '3.8'",
            "version": "==2.34.2"
        },
        "six": {
            "hashes": [
                "sha256:4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274",
                "sha256:ff70335d468e7eb6ec65b95b99d3a2836546063f63acc5171de367e834932a81"
            ],
            "index": "pypi",
            "markers": "python_version >= '2.7' and python_version != '3.0' and python_version != '3.1' and python_version != '3.2'",
            "version": "==1.17.0"
        },
        "urllib3": {
            "hashes": [
                "sha256:0cf3cae568d36aa9576b28dfb35f11328f1cb974ca7647d9475ebb86c75ac6e3",
                "sha256:63bf2ead4c879426ebf22ef2a781eeb4aa3b4ae798a0435506f8687fd5bb9b63"
            ],
            "markers": "python_version >= '3.10'",
            "version": "==2.8.0"
        }
    },
    "develop": {
        "colorama": {
            "markers": "sys_platform == 'win32'",
            "version": "*"
        },
        "iniconfig": {
            "hashes": [
                "sha256:67f4b9c50da0dedf52af349e7749a80a9057a5031199791b906c3bb3ae878960",
                "sha256:9121e2c1fdb355232495be3194c8dfe87ccc2d5dee45947b78e68f499790d7a7"
            ],
            "index": "pypi",
            "markers": "python_version >= '3.10'",
            "version": "==2.3.1"
        }
    },
    "docs": {
        "markdown": {
            "hashes": [
                "sha256:81eb91631dc97ad1efbc76019ef0f80fe90ca49ddf81546752d79989c3bfff3e",
                "sha256:e1a31a112232504d753e5c01bb8c2de90d3f0ba986b063e10770cf7695b09e73"
            ],
            "index": "pypi",
            "markers": "python_version >= '3.11'",
            "version": "==3.11.3"
        }
    }
}
"#;

    /// The same lock's `localpkg = {path = "./localpkg"}`, `editpkg = {path = "./editpkg",
    /// editable = true}` and `gitpkg = {git = "file:///…", ref = "main"}`, as pipenv locked them.
    const LOCAL_ENTRIES: [(&str, &str, &str); 3] = [
        ("localpkg", r#"{"path": "./localpkg"}"#, "a local path"),
        (
            "editpkg",
            r#"{"editable": true, "path": "./editpkg"}"#,
            "an editable local path",
        ),
        (
            "gitpkg",
            r#"{"git": "https://git.example/gitpkg.git", "ref": "3a316ad05e04ee3f4539e2baa9c1e15d11c2f9da"}"#,
            "a git repository",
        ),
    ];

    /// G_LOCK with one more package in `default`.
    fn with_default_entry(name: &str, entry: &str) -> String {
        G_LOCK.replacen(
            "\"default\": {",
            &format!("\"default\": {{\n        \"{name}\": {entry},"),
            1,
        )
    }

    /// six's entry in G_LOCK with its hashes replaced.
    fn with_six_hashes(hashes: &str) -> String {
        let start = G_LOCK.find("\"six\": {").unwrap();
        let from = start + G_LOCK[start..].find("\"hashes\": [").unwrap();
        let to = from + G_LOCK[from..].find(']').unwrap() + 1;
        format!("{}\"hashes\": {hashes}{}", &G_LOCK[..from], &G_LOCK[to..])
    }

    #[test]
    fn default_packages_with_their_indexes() {
        let pkgs = parse(lock_path(), G_LOCK, &env(), &Selection::default(), &vars).unwrap();
        assert_eq!(
            names(&pkgs),
            [
                "certifi",
                "charset-normalizer",
                "click",
                "idna",
                "pysocks",
                "requests",
                "six",
                "urllib3"
            ]
        );
        let click = pkgs.iter().find(|p| p.name == "click").unwrap();
        assert_eq!(click.version, "8.1.7");
        assert_eq!(
            click.artifacts,
            Artifacts::FromIndex {
                hashes: vec![
                    Digest::from_hex(
                        "ae74fb96c20a0277a1d615f1e4d73c8414f5a98db8b799a7931d1582f3390c28"
                    )
                    .unwrap(),
                    Digest::from_hex(
                        "ca9853ad459e787e2192211578cc907e7594e294c7ccc834310722b41b9ca6de"
                    )
                    .unwrap(),
                ],
                // click names the source `other`.
                index: Some("https://index.example/simple".into()),
            }
        );
        // six names `pypi`, whose URL is `${PIP_INDEX_URL}`; certifi names none: the first source.
        let mirror = Some("https://mirror.example/simple".to_string());
        assert_eq!(index_of(&pkgs, "six"), mirror);
        assert_eq!(index_of(&pkgs, "certifi"), mirror);
    }

    #[test]
    fn dev_and_custom_categories_are_groups() {
        let dev = parse(lock_path(), G_LOCK, &env(), &groups(&["dev"]), &vars).unwrap();
        // colorama is Windows-only: pipenv left it unresolved ("*", no hashes), and it is skipped.
        assert!(names(&dev).contains(&"iniconfig"));
        assert!(!names(&dev).contains(&"colorama"));
        assert!(!names(&dev).contains(&"markdown"));
        assert_eq!(dev.len(), 9);
        let develop = parse(lock_path(), G_LOCK, &env(), &groups(&["develop"]), &vars).unwrap();
        assert_eq!(dev, develop);

        let docs = parse(lock_path(), G_LOCK, &env(), &groups(&["docs"]), &vars).unwrap();
        assert!(names(&docs).contains(&"markdown"));
        assert!(!names(&docs).contains(&"iniconfig"));
        let both = parse(
            lock_path(),
            G_LOCK,
            &env(),
            &groups(&["docs", "dev", "dev-packages"]),
            &vars,
        )
        .unwrap();
        assert_eq!(both.len(), 10);
    }

    #[test]
    fn markers_are_evaluated_for_the_target() {
        // markdown needs Python >= 3.11 and bookworm has 3.11.
        let docs = parse(lock_path(), G_LOCK, &env(), &groups(&["docs"]), &vars).unwrap();
        assert!(names(&docs).contains(&"markdown"));
        let newer = G_LOCK.replace("python_version >= '3.11'", "python_version >= '3.12'");
        let docs = parse(lock_path(), &newer, &env(), &groups(&["docs"]), &vars).unwrap();
        assert!(!names(&docs).contains(&"markdown"));

        let bad = G_LOCK.replace("python_version >= '3.11'", "python_version >>= '3.11'");
        let err = parse(lock_path(), &bad, &env(), &groups(&["docs"]), &vars).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("proj/Pipfile.lock: markdown: bad marker `python_version >>= '3.11'`"),
            "{err}"
        );
    }

    #[test]
    fn unknown_groups_and_extras_are_refused() {
        let err = parse(lock_path(), G_LOCK, &env(), &groups(&["test"]), &vars).unwrap_err();
        assert_eq!(
            err.to_string(),
            "proj/Pipfile.lock: no group `test` in the lock (its categories: develop, docs; \
             `dev` selects develop)"
        );
        let extras = Selection {
            extras: vec!["socks".into()],
            ..Default::default()
        };
        let err = parse(lock_path(), G_LOCK, &env(), &extras, &vars).unwrap_err();
        assert_eq!(
            err.to_string(),
            "proj/Pipfile.lock: a Pipfile.lock has no project extras to add (asked for: socks); \
             select Pipfile categories as groups"
        );
    }

    #[test]
    fn unset_variable_names_source_and_variable_only() {
        let err = parse(lock_path(), G_LOCK, &env(), &Selection::default(), &no_vars).unwrap_err();
        assert_eq!(
            err.to_string(),
            "proj/Pipfile.lock: the url of source `pypi` uses the environment variable \
             `PIP_INDEX_URL`, which is not set"
        );
        // A token in a URL is never shown, set or not.
        let token_url = G_LOCK.replace(
            "\"https://index.example/simple\"",
            "\"https://ci:${TOKEN}@index.example/simple\"",
        );
        let err = parse(
            lock_path(),
            &token_url,
            &env(),
            &Selection::default(),
            &vars,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "proj/Pipfile.lock: the url of source `other` uses the environment variable `TOKEN`, \
             which is not set"
        );
        let with_token = |name: &str| match name {
            "TOKEN" => Some("s3cr3t/@".to_string()),
            other => vars(other),
        };
        let pkgs = parse(
            lock_path(),
            &token_url,
            &env(),
            &Selection::default(),
            &with_token,
        )
        .unwrap();
        assert_eq!(
            index_of(&pkgs, "click").as_deref(),
            Some("https://ci:s3cr3t%2F%40@index.example/simple")
        );
        let unknown = G_LOCK.replace("\"index\": \"other\"", "\"index\": \"private\"");
        let err = parse(lock_path(), &unknown, &env(), &Selection::default(), &vars).unwrap_err();
        assert_eq!(
            err.to_string(),
            "proj/Pipfile.lock: click names index `private`, which is not among the lock's \
             sources (it has: pypi, other)"
        );
    }

    #[test]
    fn expands_source_urls_as_pipenv_does() {
        // Expected values are what pipenv 2026.10.3's `expand_url_credentials` returned for
        // these URLs with these variables in its environment.
        let vars = |name: &str| {
            Some(
                match name {
                    "PIP_INDEX_URL" => "https://mirror.example/simple",
                    "CI_USER" => "ci",
                    "TOKEN" => "p@ss:w/rd%é",
                    "REPO" => "team",
                    "CREDS" => "__token__:glpat-x@y",
                    "HOST_NAME" => "h.example",
                    "SUB" => "x",
                    "U" => "u",
                    _ => return None,
                }
                .to_string(),
            )
        };
        let cases = [
            ("${PIP_INDEX_URL}", "https://mirror.example/simple"),
            (
                "https://${CI_USER}:${TOKEN}@private.example/${REPO}/simple",
                "https://ci:p%40ss%3Aw%2Frd%25%C3%A9@private.example/team/simple",
            ),
            (
                "https://${CREDS}@private.example/simple",
                "https://__token__:glpat-x%40y@private.example/simple",
            ),
            (
                "https://'${TOKEN}'@private.example/simple",
                "https://p%40ss:w%2Frd%25%C3%A9@private.example/simple",
            ),
            (
                "https://$HOST_NAME/simple/$SUB",
                "https://h.example/simple/x",
            ),
            (
                "HTTPS://${U}@h.example/simple?#${F}",
                "https://u@h.example/simple#${F}",
            ),
            (
                "https://${U}@h.example/simple?a=$SUB#${F}",
                "https://u@h.example/simple?a=x#${F}",
            ),
            ("https://h.example/$/simple", "https://h.example/$/simple"),
            ("https://$CI_USER@h.example/s", "https://ci@h.example/s"),
            ("https://${CI_USER}x@h.example/s", "https://cix@h.example/s"),
            ("https://a@b@${HOST_NAME}/s", "https://a@b@h.example/s"),
            ("https://h.example/s", "https://h.example/s"),
            ("${HOST_NAME", "${HOST_NAME"),
        ];
        for (url, expanded) in cases {
            assert_eq!(expand_url(url, &vars).as_deref(), Ok(expanded), "{url}");
        }
        // Where pipenv leaves an unset variable in place, lockship names it.
        assert_eq!(
            expand_url("https://h.example/${NOPE}/s", &vars),
            Err("NOPE".to_string())
        );
        assert_eq!(
            expand_url("https://$NOPE@h.example/s", &vars),
            Err("NOPE".to_string())
        );
    }

    #[test]
    fn the_base_python_must_be_the_one_the_pipfile_requires() {
        let run = |requires: &str| {
            let lock = G_LOCK.replace(r#""python_version": "3.11""#, requires);
            parse(lock_path(), &lock, &env(), &Selection::default(), &vars)
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        assert_eq!(run(r#""python_version": "3.11""#), Ok(()));
        assert_eq!(run(r#""python_full_version": "3.11.2""#), Ok(()));
        assert_eq!(
            run(r#""python_version": "3.12""#),
            Err(
                "proj/Pipfile.lock is locked for Python `==3.12`, and the base's Python is 3.11.2"
                    .into()
            )
        );
        assert_eq!(
            run(r#""python_full_version": "3.11.9""#),
            Err("proj/Pipfile.lock is locked for Python `==3.11.9`, and the base's Python is 3.11.2".into())
        );
    }

    #[test]
    fn unhashed_packages_are_marked_and_non_sha256_ones_refused() {
        // Whether an unhashed package is let in is the project's choice (`allow-unhashed`).
        let pkgs = parse(
            lock_path(),
            &with_six_hashes("[]"),
            &env(),
            &Selection::default(),
            &vars,
        )
        .unwrap();
        assert_eq!(crate::lock::unhashed(&pkgs), ["six==1.17.0"]);
        assert_eq!(
            pkgs.iter().find(|p| p.name == "six").unwrap().artifacts,
            Artifacts::Unhashed {
                index: Some("https://mirror.example/simple".into())
            }
        );
        let md5 = with_six_hashes(r#"["md5:0123456789abcdef0123456789abcdef", "sha512:00"]"#);
        let err = parse(lock_path(), &md5, &env(), &Selection::default(), &vars).unwrap_err();
        assert_eq!(
            err.to_string(),
            "proj/Pipfile.lock: six has only md5, sha512 hashes; lockship verifies sha256"
        );
        // Other algorithms beside sha256 are dropped; duplicates count once.
        let mixed = with_six_hashes(
            r#"["md5:0123456789abcdef0123456789abcdef", "sha256:4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274", "sha256:4721F391ED90541FDDACAB5ACF947AA0D3DC7D27B2E1E8EDA2BE8970586C3274"]"#,
        );
        let pkgs = parse(lock_path(), &mixed, &env(), &Selection::default(), &vars).unwrap();
        let Artifacts::FromIndex { hashes, .. } =
            &pkgs.iter().find(|p| p.name == "six").unwrap().artifacts
        else {
            panic!("a Pipfile.lock names hashes only")
        };
        assert_eq!(hashes.len(), 1);
        let bad = with_six_hashes(r#"["sha256:xyz"]"#);
        let err = parse(lock_path(), &bad, &env(), &Selection::default(), &vars).unwrap_err();
        assert_eq!(
            err.to_string(),
            "proj/Pipfile.lock: six: bad sha256 hash `sha256:xyz`"
        );
    }

    #[test]
    fn local_and_vcs_packages_are_unsupported_sources() {
        let url = r#"{"file": "https://files.example/pkg-1.0-py3-none-any.whl"}"#;
        for (name, entry, kind) in
            LOCAL_ENTRIES
                .into_iter()
                .chain([("direct", url, "a direct URL")])
        {
            let lock = with_default_entry(name, entry);
            let err = parse(lock_path(), &lock, &env(), &Selection::default(), &vars).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "proj/Pipfile.lock: package {name} comes from {kind}, which lockship cannot \
                     build yet"
                )
            );
        }
        // Not for a target its markers exclude.
        let windows_only =
            r#"{"git": "https://git.example/w.git", "markers": "sys_platform == 'win32'"}"#;
        let lock = with_default_entry("winpkg", windows_only);
        assert!(parse(lock_path(), &lock, &env(), &Selection::default(), &vars).is_ok());
    }

    #[test]
    fn versions_must_be_exact_pins() {
        for (version, shown) in [
            ("*", "*"),
            (">=1.16", ">=1.16"),
            ("==1.*", "==1.*"),
            ("===1.0", "===1.0"),
        ] {
            let lock = G_LOCK.replace("\"==1.17.0\"", &format!("\"{version}\""));
            let err = parse(lock_path(), &lock, &env(), &Selection::default(), &vars).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "proj/Pipfile.lock: six is locked as `{shown}`, not pinned to one version with =="
                )
            );
        }
        let lock = G_LOCK.replace("\"version\": \"==1.17.0\"", "\"vers\": 1");
        let err = parse(lock_path(), &lock, &env(), &Selection::default(), &vars).unwrap_err();
        assert_eq!(err.to_string(), "proj/Pipfile.lock: six has no version");
    }

    /// pipenv's lock for a Pipfile with `use_default_constraints = false`: six 1.16.0 in
    /// `[packages]`, 1.17.0 in `[dev-packages]`. No host in it: kept whole.
    const E_PIPFILE: &str = r#"[[source]]
url = "${PIP_INDEX_URL}"
verify_ssl = true
name = "pypi"
weight = 1.5
big = 1e20
small = 0.00001
count = 42
neg = -7

[packages]
six = {version = "==1.16.0", index = "pypi"}
certifi = "*"

[dev-packages]
six = "==1.17.0"

[pipenv]
use_default_constraints = false

[requires]
python_version = "3.11"
"#;

    const E_LOCK: &str = r#"{
    "_meta": {
        "hash": {
            "sha256": "aac73985251cc905fbf1bb454c1ba15673026e29228ca303cbbd1a8378510d6c"
        },
        "pipfile-spec": 6,
        "requires": {
            "python_version": "3.11"
        },
        "sources": [
            {
                "big": 1e+20,
                "count": 42,
                "name": "pypi",
                "neg": -7,
                "small": 1e-05,
                "url": "${PIP_INDEX_URL}",
                "verify_ssl": true,
                "weight": 1.5
            }
        ]
    },
    "default": {
        "certifi": {
            "hashes": [
                "sha256:73191c47aaa79da394e8fee2dbc2ec827432cab56311122c9e47abf79e390f62",
                "sha256:b9995d97b64d0431a5af837d8ca8cd6238104d1f319f04bd93ea43124d6c861e"
            ],
            "index": "pypi",
            "markers": "python_version >= '3.7'",
            "version": "==2026.10.18"
        },
        "six": {
            "hashes": [
                "sha256:1e61c37477a1626458e36f7b1d82aa5c9b094fa4802892072e49de9c60c4c926",
                "sha256:8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254"
            ],
            "index": "pypi",
            "markers": "python_version >= '2.7' and python_version != '3.0' and python_version != '3.1' and python_version != '3.2'",
            "version": "==1.16.0"
        }
    },
    "develop": {
        "six": {
            "hashes": [
                "sha256:4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274",
                "sha256:ff70335d468e7eb6ec65b95b99d3a2836546063f63acc5171de367e834932a81"
            ],
            "index": "pypi",
            "markers": "python_version >= '2.7' and python_version != '3.0' and python_version != '3.1' and python_version != '3.2'",
            "version": "==1.17.0"
        }
    }
}
"#;

    #[test]
    fn one_package_two_versions_across_groups_is_refused() {
        // Measured with this lock: `pipenv sync --dev` installs six 1.17.0 (each section in
        // turn, the later one replacing), `pipenv requirements --dev` prints six==1.16.0.
        let pkgs = parse(lock_path(), E_LOCK, &env(), &Selection::default(), &vars).unwrap();
        assert_eq!(
            pkgs.iter().find(|p| p.name == "six").unwrap().version,
            "1.16.0"
        );
        let err = parse(lock_path(), E_LOCK, &env(), &groups(&["dev"]), &vars).unwrap_err();
        assert_eq!(
            err.to_string(),
            "proj/Pipfile.lock: six is locked at 1.16.0 in `default` and at 1.17.0 in `develop`; \
             pipenv installs one or the other depending on the command, so lockship will not \
             choose (lock with pipenv's default use_default_constraints = true, or select fewer \
             groups)"
        );
        check_fresh(lock_path(), E_LOCK, E_PIPFILE).unwrap();
    }

    /// A literal second source, names in odd cases, and a category spelled `[Docs]` that holds
    /// idna, also in `[packages]` at the same version.
    const F_PIPFILE: &str = r#"[[source]]
url = "${PIP_INDEX_URL}"
verify_ssl = true
name = "pypi"

[[source]]
url = "https://index.example/simple"
verify_ssl = true
name = "other"

[packages]
"Six" = "*"
click = {version = "~=8.1", index = "other"}
IDNA = {version = ">=3.4", markers = "python_version >= '3.8' and sys_platform != \"win32\""}

[dev-packages]
certifi = {version = "*", index = "other"}

[Docs]
idna = "*"

[requires]
python_version = "3.11"
"#;

    const F_LOCK: &str = r#"{
    "Docs": {
        "idna": {
            "hashes": [
                "sha256:a7db850025b95ded1eae8a46181a1a6c56c92c96f0e2b005d9ff8dc0210cab44",
                "sha256:ab7ae7122974553370f0bdb919e1a960b2cd1bc1ef0276416d896db81c14582c"
            ],
            "markers": "python_version >= '3.8' and sys_platform != 'win32'",
            "version": "==3.20"
        }
    },
    "_meta": {
        "hash": {
            "sha256": "0e6f4ef1447eec01ef7ee3a22f5acd9a0bf177479bd854fc6fed073143948670"
        },
        "pipfile-spec": 6,
        "requires": {
            "python_version": "3.11"
        },
        "sources": [
            {
                "name": "pypi",
                "url": "${PIP_INDEX_URL}",
                "verify_ssl": true
            },
            {
                "name": "other",
                "url": "https://index.example/simple",
                "verify_ssl": true
            }
        ]
    },
    "default": {
        "click": {
            "hashes": [
                "sha256:8bb5376d2006950386f8c6427613334a2acadc5f559cb80e638d00b4df957e37",
                "sha256:9bbfada76703fd1d784b83eea012e3e8c6a001a876543ef104fa56aaaeb072b4"
            ],
            "index": "other",
            "markers": "python_version >= '3.10'",
            "version": "==8.5.1"
        },
        "idna": {
            "hashes": [
                "sha256:a7db850025b95ded1eae8a46181a1a6c56c92c96f0e2b005d9ff8dc0210cab44",
                "sha256:ab7ae7122974553370f0bdb919e1a960b2cd1bc1ef0276416d896db81c14582c"
            ],
            "markers": "python_version >= '3.8' and sys_platform != 'win32'",
            "version": "==3.20"
        },
        "six": {
            "hashes": [
                "sha256:4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274",
                "sha256:ff70335d468e7eb6ec65b95b99d3a2836546063f63acc5171de367e834932a81"
            ],
            "index": "pypi",
            "markers": "python_version >= '2.7' and python_version != '3.0' and python_version != '3.1' and python_version != '3.2'",
            "version": "==1.17.0"
        }
    },
    "develop": {
        "certifi": {
            "hashes": [
                "sha256:73191c47aaa79da394e8fee2dbc2ec827432cab56311122c9e47abf79e390f62",
                "sha256:b9995d97b64d0431a5af837d8ca8cd6238104d1f319f04bd93ea43124d6c861e"
            ],
            "index": "other",
            "markers": "python_version >= '3.7'",
            "version": "==2026.10.18"
        }
    }
}
"#;

    #[test]
    fn a_package_in_two_groups_counts_once() {
        let plain = parse(lock_path(), F_LOCK, &env(), &Selection::default(), &vars).unwrap();
        assert_eq!(names(&plain), ["click", "idna", "six"]);
        // The category is `[Docs]`; `docs` finds it too.
        for group in ["Docs", "docs"] {
            let docs = parse(lock_path(), F_LOCK, &env(), &groups(&[group]), &vars).unwrap();
            assert_eq!(docs, plain, "{group}");
        }
        let all = parse(
            lock_path(),
            F_LOCK,
            &env(),
            &groups(&["docs", "dev"]),
            &vars,
        )
        .unwrap();
        assert_eq!(names(&all), ["certifi", "click", "idna", "six"]);
        check_fresh(lock_path(), F_LOCK, F_PIPFILE).unwrap();
    }

    #[test]
    fn other_pipfile_specs_are_refused() {
        let five = G_LOCK.replace("\"pipfile-spec\": 6", "\"pipfile-spec\": 5");
        let err = parse(lock_path(), &five, &env(), &Selection::default(), &vars).unwrap_err();
        assert_eq!(
            err.to_string(),
            "proj/Pipfile.lock: lock version pipfile-spec 5 is not supported (lockship reads \
             pipfile-spec 6)"
        );
        let text = G_LOCK.replace("\"pipfile-spec\": 6", "\"pipfile-spec\": \"6\"");
        let err = parse(lock_path(), &text, &env(), &Selection::default(), &vars).unwrap_err();
        assert!(
            matches!(&err, LockError::UnsupportedVersion { found, .. } if found == "pipfile-spec \"6\""),
            "{err}"
        );
    }

    #[test]
    fn garbage_is_invalid_and_names_the_file() {
        let cases = [
            (
                "",
                "not a valid Pipfile.lock: EOF while parsing a value at line 1 column 0",
            ),
            ("[]", "not a valid Pipfile.lock: expected a JSON object"),
            ("{}", "no _meta (not a Pipfile.lock?)"),
            (r#"{"_meta": 1}"#, "_meta has no pipfile-spec"),
            (
                r#"{"_meta": {"pipfile-spec": 6, "sources": "x"}}"#,
                "bad _meta: invalid type: string \"x\", expected a sequence",
            ),
            (
                r#"{"_meta": {"pipfile-spec": 6}, "default": []}"#,
                "section `default` is not a table of packages",
            ),
            (
                r#"{"_meta": {"pipfile-spec": 6}, "default": {"six": "==1.0"}}"#,
                "six (in `default`): invalid type: string \"==1.0\", expected a package table",
            ),
            (
                r#"{"_meta": {"pipfile-spec": 6}, "default": {"six": {"hashes": "sha256:x"}}}"#,
                "six (in `default`): invalid type: string \"sha256:x\", expected a sequence",
            ),
        ];
        for (text, message) in cases {
            let err = parse(lock_path(), text, &env(), &Selection::default(), &vars).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("proj/Pipfile.lock: {message}"),
                "{text}"
            );
        }
    }

    #[test]
    fn a_lock_without_sources_leaves_the_index_to_the_project() {
        let text = r#"{"_meta": {"pipfile-spec": 6, "sources": []}, "default": {"six": {"hashes": ["sha256:4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274"], "version": "==1.17.0"}}}"#;
        let pkgs = parse(lock_path(), text, &env(), &Selection::default(), &no_vars).unwrap();
        assert_eq!(names(&pkgs), ["six"]);
        assert_eq!(index_of(&pkgs, "six"), None);
    }

    #[test]
    fn hostile_input_never_panics() {
        // Every prefix of the lock and the Pipfile, and each with one character swapped for
        // JSON/TOML/URL syntax: each call returns, Ok or Err.
        let swaps = ['{', '}', '[', '"', '$', ':', '\\', '\u{0}', 'é'];
        for (text, pipfile) in [(G_LOCK, G_PIPFILE), (F_LOCK, F_PIPFILE)] {
            for (i, _) in text.char_indices() {
                let _ = parse(
                    lock_path(),
                    &text[..i],
                    &env(),
                    &groups(&["dev", "docs"]),
                    &vars,
                );
                let _ = check_fresh(lock_path(), &text[..i], pipfile);
            }
            for (i, c) in text.char_indices().step_by(3) {
                let swap = swaps[i % swaps.len()];
                let mut mutated = String::with_capacity(text.len() + 4);
                mutated.push_str(&text[..i]);
                mutated.push(swap);
                mutated.push_str(&text[i + c.len_utf8()..]);
                let _ = parse(
                    lock_path(),
                    &mutated,
                    &env(),
                    &groups(&["dev", "docs"]),
                    &vars,
                );
            }
            for (i, _) in pipfile.char_indices() {
                let _ = check_fresh(lock_path(), text, &pipfile[..i]);
            }
        }
    }

    /// Pipfiles and the `_meta.hash.sha256` pipenv wrote for them: only `${PIP_INDEX_URL}` in
    /// their URLs, so they are kept as pipenv read them.
    const A_PIPFILE: &str = r#"[[source]]
url = "${PIP_INDEX_URL}"
verify_ssl = true
name = "pypi"

[packages]
six = "*"

[dev-packages]

[requires]
python_version = "3.11"
"#;

    const B_PIPFILE: &str = r#"# Café: a comment with non-ASCII text ☕
[[source]]
url = "${PIP_INDEX_URL}"
verify_ssl = true
name = "pypi"

[[source]]
url = "${PIP_INDEX_URL}"
verify_ssl = true
name = "other"

[packages]
click = "==8.1.7"
requests = {version = ">=2.31", extras = ["socks"], markers = "python_version >= '3.8'", index = "other"}
Idna = ">=3"

[dev-packages]
iniconfig = "*"
colorama = {version = "*", markers = "sys_platform == 'win32'"}

[docs]
markdown = "*"

[requires]
python_version = "3.11"
"#;

    /// Non-ASCII, every JSON escape, a character beyond the BMP, a name to canonicalize, a
    /// custom category, `[pipenv]` and `[scripts]` (not hashed). The tab pipenv read was a
    /// literal tab; here it is TOML's `\t`, the same string.
    const D_PIPFILE: &str = r#"[[source]]
url = "${PIP_INDEX_URL}"
verify_ssl = true
name = "pypi"
comment = "Société générale — ünïcödé, tab:\t, quote:\", emoji: 😀, del:\u007F, ctl:\u0001, nl:\n, bs:\\, slash:/"

[packages]
Typing_Extensions = ">=4"
"zope.interface" = "*"

[tests]
iniconfig = "==2.0.0"
packaging = {version = "*", markers = "os_name == \"posix\""}

[pipenv]
allow_prereleases = false

[scripts]
hello = "echo hi"

[requires]
python_full_version = "3.11.7"
"#;

    /// `Six` and `six` both in `[packages]`: pipenv locks it, and hashes the later one.
    const DUP_PIPFILE: &str = r#"[[source]]
url = "${PIP_INDEX_URL}"
verify_ssl = true
name = "pypi"

[packages]
Six = "==1.16.0"
six = "*"
"#;

    /// Never locked (pipenv's json.dumps cannot take booleans inside arrays, nor dates); the
    /// hash is pipenv's `calculate_hash` run on it: floats, integers, escapes, nested tables,
    /// a category that sorts before `_meta`, ignored `[default]` and `[develop]` tables.
    const EDGE_PIPFILE: &str = r#"[[source]]
url = "https://index.example/simple"
verify_ssl = true
name = "pypi"
floats = [0.1, 1e16, 1e15, 0.0001, 0.00001, -0.0, 123456789.123, 5e-324, 1.7976931348623157e308, 2.5e-5, inf, -inf, nan, 3.0, 1e100, 0.3, 1e22, 9007199254740993.0, 1.5e-7, 100.0]
ints = [0xff, -9223372036854775808, 9223372036854775807, 1_000, 0o17, 0b101]
escapes = "\u0000 \u001f \b \f \u007f \u0080 \u00ff \u2028 \U0001F600 \\ \" / ~ \t\r\n"
literal = 'C:\path\é'
nested = [{a = 1}, {b = ["x", 2], c = [], t = true}]
dotted.key = "x"

[packages]
"Zope.Interface" = "*"
"a__b--c" = {version = "*", extras = ["x"], markers = "os_name == 'posix'"}
"_private_" = "*"
"Élan" = "*"

[Zeta]
x = "*"

[default]
ignored = "*"

[develop]
ignored = "*"

[requires]
python_version = "3.11"
"#;

    /// A category named `_meta` replaces the hashed sources and requirements.
    const META_PIPFILE: &str = r#"[[source]]
url = "https://index.example/simple"
verify_ssl = true
name = "pypi"

[packages]
six = "*"

[_meta]
six = "*"
"#;

    fn hash_of(pipfile: &str, lock_sources: Option<&Value>) -> String {
        let table: toml::Table = toml::from_str(pipfile).unwrap();
        pipfile_hash(pipfile, &table, lock_sources).unwrap()
    }

    #[test]
    fn pipfile_hash_is_pipenvs() {
        let cases = [
            (
                A_PIPFILE,
                "9e1164a601b7e087df5b2948ad288faf1502e2245896265d151e2065b1779b03",
            ),
            (
                B_PIPFILE,
                "07a5965041a9f9ffd36e71dc944fa387a9576671a8d52a717d0b996798d031b4",
            ),
            (
                D_PIPFILE,
                "c600ca562f77d5c99319f6a93c1c43836668543d51e75b2a4043ad58db27aead",
            ),
            (
                E_PIPFILE,
                "aac73985251cc905fbf1bb454c1ba15673026e29228ca303cbbd1a8378510d6c",
            ),
            (
                DUP_PIPFILE,
                "78470f687732349280d177d559204cd2ab23840824bcbfa96988974401454ce8",
            ),
            // Edited (host replaced), recomputed with pipenv's code:
            (
                F_PIPFILE,
                "0e6f4ef1447eec01ef7ee3a22f5acd9a0bf177479bd854fc6fed073143948670",
            ),
            (
                G_PIPFILE,
                "7d00766f160b483d86930b18215fbe129a14d2d96073acfec2d1c9ca53adebbd",
            ),
            // Never locked, hashed by pipenv's code:
            (
                EDGE_PIPFILE,
                "cdb35b7ec4df48470c0162421c9eec400f6f5f7ec59e111ccfed73e61d344603",
            ),
            (
                META_PIPFILE,
                "71e208ac96fe391ffd3c97ce7aadad59c530adb59c260264c0ef13650b9eb7b3",
            ),
        ];
        for (pipfile, expected) in cases {
            assert_eq!(hash_of(pipfile, None), expected, "{pipfile}");
            // Windows line endings hash alike: Python reads the Pipfile in text mode.
            let crlf = pipfile.replace('\n', "\r\n");
            let lock = format!(
                r#"{{"_meta": {{"hash": {{"sha256": "{expected}"}}, "pipfile-spec": 6}}}}"#
            );
            check_fresh(lock_path(), &lock, &crlf).unwrap();
        }
    }

    /// No `[[source]]`: pipenv hashes the default source it took from pip's configuration, and
    /// records it as the lock's only source (here `PIP_INDEX_URL`'s index, host replaced).
    const C_PIPFILE: &str = r#"[packages]
certifi = "*"

[requires]
python_version = "3.11"
"#;

    const C_META: &str = r#"{
    "_meta": {
        "hash": {
            "sha256": "a1464dade3855d512f327b5f29e1fcc255cb4e8b0afdf9c219b26c309007ca78"
        },
        "pipfile-spec": 6,
        "requires": {
            "python_version": "3.11"
        },
        "sources": [
            {
                "name": "pip_conf_index_:env:",
                "url": "https://index.example/simple",
                "verify_ssl": true
            }
        ]
    },
    "default": {}
}
"#;

    #[test]
    fn a_pipfile_without_sources_is_hashed_with_the_locks() {
        check_fresh(lock_path(), C_META, C_PIPFILE).unwrap();
        let other_index = C_META.replace("index.example", "mirror.example");
        let err = check_fresh(lock_path(), &other_index, C_PIPFILE).unwrap_err();
        let LockError::Stale { path, problems } = err else {
            panic!("stale expected")
        };
        assert_eq!(path, lock_path());
        assert_eq!(
            problems,
            "it was made from another Pipfile; this Pipfile names \
             no [[source]], so its hash also depends on the index configuration pipenv locked \
             with: name the index in the Pipfile"
        );
    }

    #[test]
    fn an_edited_pipfile_makes_the_lock_stale() {
        check_fresh(lock_path(), G_LOCK, G_PIPFILE).unwrap();
        // Comments, order and name spelling do not count; a changed requirement does.
        let cosmetic = format!(
            "# edited\n{}",
            G_PIPFILE.replace("six = \"*\"", "Six = \"*\"")
        );
        check_fresh(lock_path(), G_LOCK, &cosmetic).unwrap();
        let edited = G_PIPFILE.replace("==8.1.7", "==8.1.8");
        let err = check_fresh(lock_path(), G_LOCK, &edited).unwrap_err();
        let LockError::Stale { problems, .. } = err else {
            panic!("stale expected")
        };
        assert_eq!(problems, "it was made from another Pipfile");
        let no_hash = G_LOCK.replace("\"sha256\": \"7d00", "\"sha1\": \"7d00");
        assert!(matches!(
            check_fresh(lock_path(), &no_hash, G_PIPFILE),
            Err(LockError::Stale { .. })
        ));
    }

    #[test]
    fn pipfiles_pipenv_cannot_hash_are_invalid() {
        let cases = [
            (
                "[requires]\nlocked_on = 2026-11-23\n",
                "`locked_on` is a TOML date or time, which pipenv cannot hash",
            ),
            ("foo = \"bar\"\n", "`foo` is not a table of packages"),
            ("packages = [1]\n", "`packages` is not a table of packages"),
        ];
        for (pipfile, message) in cases {
            let err = check_fresh(lock_path(), G_LOCK, pipfile).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("proj/Pipfile: {message}"),
                "{pipfile}"
            );
        }
        let err = check_fresh(lock_path(), G_LOCK, "[packages]\nsix = \"*\"\n[docs\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "proj/Pipfile: not valid TOML (line 3): unclosed table, expected `]`"
        );
        let err = check_fresh(lock_path(), "{", G_PIPFILE).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("proj/Pipfile.lock: not a valid Pipfile.lock: "),
            "{err}"
        );
    }

    #[test]
    fn floats_and_strings_dump_as_python_json_does() {
        // `json.dumps` of these floats under CPython 3.11.
        let floats = [
            (0.1, "0.1"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-0.0, "-0.0"),
            (123456789.123, "123456789.123"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (2.5e-5, "2.5e-05"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (f64::NAN, "NaN"),
            (3.0, "3.0"),
            (1e100, "1e+100"),
            (1e22, "1e+22"),
            (9007199254740993.0, "9007199254740992.0"),
            (1.5e-7, "1.5e-07"),
            (100.0, "100.0"),
            (1.0 / 3.0, "0.3333333333333333"),
            (12345678901234567.0, "1.2345678901234568e+16"),
            (0.000123, "0.000123"),
            (-1.25e-10, "-1.25e-10"),
        ];
        for (f, python) in floats {
            let mut out = String::new();
            push_float(&mut out, f);
            assert_eq!(out, python);
        }
        let mut out = String::new();
        push_str(
            &mut out,
            "\u{0} \u{1f} \u{8} \u{c} \u{7f} \u{80} \u{ff} \u{2028} \u{1F600} \\ \" / ~ \t\r\n",
        );
        assert_eq!(
            out,
            r#""\u0000 \u001f \b \f \u007f \u0080 \u00ff \u2028 \ud83d\ude00 \\ \" / ~ \t\r\n""#
        );
    }

    #[test]
    fn names_canonicalize_as_packaging_does() {
        for (name, canonical) in [
            ("Zope.Interface", "zope-interface"),
            ("a__b--c", "a-b-c"),
            ("_private_", "-private-"),
            ("Élan", "élan"),
        ] {
            assert_eq!(canonicalize_name(name), canonical);
        }
    }
}
