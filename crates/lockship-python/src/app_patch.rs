//! The app wheel without its backend, when an edit cannot change what the backend would make
//! beyond the edited files. After each real PEP 517 build, [`WheelOrigin`] records which project
//! files the wheel holds verbatim (the same bytes, under a path the file's own path ends with).
//! When later only the contents of such files differ from that build (no file added or removed,
//! pyproject.toml and everything else the same), the new wheel is the last real one with those
//! members replaced and their RECORD lines rehashed: the installed files are exactly what the
//! backend would install. Anything else (a new file, a changed file the wheel does not hold as
//! is, dynamic metadata, an in-tree backend or build hooks) goes to the backend.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::app::{AppError, BuildSystem};

/// What a real backend build was made from, and which of its members are the project's files.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WheelOrigin {
    /// Everything besides the files' contents that decides the wheel (pyproject.toml's bytes,
    /// the build system, SOURCE_DATE_EPOCH), digested.
    pub frame: String,
    /// Each project file (relative path) and the sha256 of its contents at that build.
    pub sources: BTreeMap<String, String>,
    /// Project file → the wheel member holding its bytes verbatim.
    pub members: BTreeMap<String, String>,
    /// In an origin shared through a registry ([`WheelOrigin::shareable`]), `sources` holds
    /// only the mapped files, and this the digest of every other file's name and digest: the
    /// project's other file names and contents are not published, and any change to them
    /// still means the backend builds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub others: Option<String>,
}

impl WheelOrigin {
    /// This origin as another machine may see it: the mapped files only (their names are the
    /// wheel's members anyway), and one digest over the rest.
    pub fn shareable(&self) -> WheelOrigin {
        // One taken from a registry is shared on as it came.
        if self.others.is_some() {
            return self.clone();
        }
        let (mapped, rest): (BTreeMap<_, _>, BTreeMap<_, _>) = self
            .sources
            .iter()
            .map(|(f, d)| (f.clone(), d.clone()))
            .partition(|(f, _)| self.members.contains_key(f));
        WheelOrigin {
            frame: self.frame.clone(),
            sources: mapped,
            members: self.members.clone(),
            others: Some(digest_of(&rest)),
        }
    }
}

/// One digest over files' names and digests.
fn digest_of(files: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    for (name, digest) in files {
        h.update((name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update(digest.as_bytes());
    }
    hex(&h.finalize())
}

/// The largest wheel member mapped to a project file.
const MAX_MAPPED: u64 = 64 << 20;

/// The digest of what besides the files' contents decides the wheel.
pub fn frame(pyproject: &[u8], system: &BuildSystem, source_date_epoch: u64) -> String {
    let mut h = Sha256::new();
    h.update(b"lockship-app-patch-v1\0");
    h.update((pyproject.len() as u64).to_le_bytes());
    h.update(pyproject);
    h.update(format!("{system:?}\0{source_date_epoch}").as_bytes());
    hex(&h.finalize())
}

/// Whether a project's wheel may ever be patched: its metadata is static (`[project]` with no
/// `dynamic`), the backend is installed (no `backend-path`), and no build hook or `setup.py`
/// can turn one file into another.
pub fn patchable(project: &Path, pyproject: Option<&toml::Value>, system: &BuildSystem) -> bool {
    let Some(table) = pyproject.and_then(|p| p.get("project")) else {
        return false;
    };
    let dynamic = table
        .get("dynamic")
        .and_then(|d| d.as_array())
        .is_some_and(|d| !d.is_empty());
    let tool = |name: &str| {
        pyproject
            .and_then(|p| p.get("tool"))
            .and_then(|t| t.get(name))
    };
    // Only backends whose wheels copy files as they are, and only without the hooks each
    // offers for running code at build time: anything else may turn one file into another.
    let known = match system.backend.split(':').next().unwrap_or("") {
        "hatchling.build" => {
            !tool("hatch").is_some_and(|h| toml::to_string(h).is_ok_and(|s| s.contains("hooks")))
        }
        "flit_core.buildapi" => true,
        "pdm.backend" => !project.join("pdm_build.py").exists(),
        "poetry.core.masonry.api" => tool("poetry").and_then(|p| p.get("build")).is_none(),
        _ => false,
    };
    !dynamic && known && system.backend_path.is_empty() && !project.join("setup.py").exists()
}

/// The project files `[project]` makes metadata from (`readme`, `license`, `license-files`):
/// a change to one changes METADATA, so none of them is patched as a member.
pub fn metadata_files(pyproject: Option<&toml::Value>) -> Vec<String> {
    let Some(table) = pyproject.and_then(|p| p.get("project")) else {
        return Vec::new();
    };
    let file = |v: Option<&toml::Value>| -> Option<String> {
        match v? {
            toml::Value::String(s) => Some(s.clone()),
            toml::Value::Table(t) => t.get("file")?.as_str().map(String::from),
            _ => None,
        }
    };
    let mut files: Vec<String> = [file(table.get("readme")), file(table.get("license"))]
        .into_iter()
        .flatten()
        .collect();
    if let Some(list) = table.get("license-files").and_then(|l| l.as_array()) {
        files.extend(list.iter().filter_map(|f| f.as_str().map(String::from)));
    }
    files
}

/// The sha256 of each of `files` (relative to `project`).
pub fn source_digests(
    project: &Path,
    files: &[PathBuf],
) -> Result<BTreeMap<String, String>, AppError> {
    files
        .iter()
        .map(|f| {
            let path = project.join(f);
            let bytes = std::fs::read(&path).map_err(|e| AppError::Read {
                path: path.clone(),
                message: e.to_string(),
            })?;
            Ok((
                f.to_string_lossy().into_owned(),
                hex(&Sha256::digest(&bytes)),
            ))
        })
        .collect()
}

/// Records, for a wheel the backend just built from `sources`, which members are which files.
/// A file maps to a member when the member has its exact bytes and a path the file's own path
/// ends with (`src/pkg/mod.py` → `pkg/mod.py`), and to only one such member.
pub fn record_origin(
    wheel: &Path,
    frame: String,
    sources: BTreeMap<String, String>,
    metadata: &[String],
) -> Result<WheelOrigin, AppError> {
    let mut archive = open_wheel(wheel)?;
    let mut by_digest: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| bad_wheel(wheel, e))?;
        if entry.is_dir() {
            continue;
        }
        let name = entry.name().map_err(|e| bad_wheel(wheel, e))?.into_owned();
        // A member bigger than any source file is worth mapping is not read (a wheel shared
        // through a registry is not trusted to inflate to what it declares).
        let mut bytes = Vec::new();
        (&mut entry)
            .take(MAX_MAPPED + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| bad_wheel(wheel, e))?;
        if bytes.len() as u64 > MAX_MAPPED {
            continue;
        }
        by_digest
            .entry(hex(&Sha256::digest(&bytes)))
            .or_default()
            .push(name);
    }
    let mut members: BTreeMap<String, String> = BTreeMap::new();
    for (file, digest) in &sources {
        let candidates: Vec<&String> = by_digest
            .get(digest)
            .into_iter()
            .flatten()
            .filter(|m| ends_with_path(file, m))
            .collect();
        if let [member] = candidates[..] {
            members.insert(file.clone(), member.clone());
        }
    }
    // A member two files could be (`src/pkg/__init__.py` and `tests/pkg/__init__.py`, both
    // empty) is no one's: which file the backend took is not known.
    let mut claims: BTreeMap<String, usize> = BTreeMap::new();
    for member in members.values() {
        *claims.entry(member.clone()).or_default() += 1;
    }
    members.retain(|_, m| claims.get(m) == Some(&1));
    // Files the metadata is made from change METADATA too: never a member alone.
    members.retain(|f, _| !metadata.iter().any(|m| m == f || m.contains('*')));
    Ok(WheelOrigin {
        frame,
        sources,
        members,
        others: None,
    })
}

/// Whether `file`'s path ends with the whole path `member` (component-wise).
fn ends_with_path(file: &str, member: &str) -> bool {
    file == member || file.ends_with(&format!("/{member}"))
}

/// The members to replace when the project now has `sources` under `frame`: None unless every
/// difference from the origin's build is the contents of a mapped file.
pub fn replacements(
    origin: &WheelOrigin,
    frame: &str,
    sources: &BTreeMap<String, String>,
) -> Option<Vec<(String, String)>> {
    if origin.frame != frame {
        return None;
    }
    match &origin.others {
        // Shared: the mapped files are all still there, and nothing else changed.
        Some(others) => {
            if !origin.sources.keys().all(|f| sources.contains_key(f)) {
                return None;
            }
            let rest: BTreeMap<String, String> = sources
                .iter()
                .filter(|(f, _)| !origin.sources.contains_key(*f))
                .map(|(f, d)| (f.clone(), d.clone()))
                .collect();
            if &digest_of(&rest) != others {
                return None;
            }
        }
        None if origin.sources.keys().ne(sources.keys()) => return None,
        None => {}
    }
    let mut replace = Vec::new();
    for (file, digest) in sources {
        // Unchanged, or (in a shared origin) one of the others the digest vouched for.
        let unlisted = origin.others.is_some() && !origin.sources.contains_key(file);
        if unlisted || origin.sources.get(file) == Some(digest) {
            continue;
        }
        replace.push((file.clone(), origin.members.get(file)?.clone()));
    }
    Some(replace)
}

/// Writes to `out` the wheel `last` with each member of `replace` (project file, member) given
/// the file's current bytes from `project`, and RECORD's lines for them rehashed. Other
/// members are copied as they are (compressed bytes, times and modes).
pub fn patch(
    last: &Path,
    project: &Path,
    replace: &[(String, String)],
    out: &Path,
) -> Result<(), AppError> {
    let mut new_bytes: BTreeMap<&str, Vec<u8>> = BTreeMap::new();
    for (file, member) in replace {
        let path = project.join(file);
        let bytes = std::fs::read(&path).map_err(|e| AppError::Read {
            path,
            message: e.to_string(),
        })?;
        new_bytes.insert(member.as_str(), bytes);
    }
    let mut archive = open_wheel(last)?;
    let record_name = (0..archive.len())
        .filter_map(|i| {
            archive
                .name_for_index(i)
                .and_then(Result::ok)
                .map(|n| n.into_owned())
        })
        .find(|n| n.ends_with(".dist-info/RECORD") && n.matches('/').count() == 1)
        .ok_or_else(|| bad_wheel(last, "it has no RECORD"))?;
    let file = std::fs::File::create(out).map_err(|e| AppError::Read {
        path: out.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut writer = zip::ZipWriter::new(std::io::BufWriter::new(file));
    for i in 0..archive.len() {
        let name = archive
            .name_for_index(i)
            .and_then(Result::ok)
            .map(|n| n.into_owned())
            .unwrap_or_default();
        let replaced = if name == record_name {
            let mut record = String::new();
            archive
                .by_index(i)
                .and_then(|mut e| Ok(e.read_to_string(&mut record)?))
                .map_err(|e| bad_wheel(last, e))?;
            let record = rehash_record(&record, &new_bytes)
                .ok_or_else(|| bad_wheel(last, "its RECORD cannot be rewritten in place"))?;
            Some(record.into_bytes())
        } else {
            new_bytes.get(name.as_str()).cloned()
        };
        let Some(bytes) = replaced else {
            let entry = archive.by_index_raw(i).map_err(|e| bad_wheel(last, e))?;
            writer.raw_copy_file(entry).map_err(|e| bad_wheel(out, e))?;
            continue;
        };
        let entry = archive.by_index_raw(i).map_err(|e| bad_wheel(last, e))?;
        let mut options = zip::write::SimpleFileOptions::default()
            .compression_method(entry.compression())
            .large_file(bytes.len() as u64 >= u32::MAX as u64);
        if let Some(time) = entry.last_modified() {
            options = options.last_modified_time(time);
        }
        if let Some(mode) = entry.unix_mode() {
            options = options.unix_permissions(mode);
        }
        drop(entry);
        writer
            .start_file(name.as_str(), options)
            .and_then(|()| Ok(writer.write_all(&bytes)?))
            .map_err(|e| bad_wheel(out, e))?;
    }
    writer
        .finish()
        .and_then(|mut w| Ok(w.flush()?))
        .map_err(|e| bad_wheel(out, e))?;
    Ok(())
}

/// RECORD with the hash and size of each of `changed` (member → bytes) replaced; None when a
/// changed member's line is not the plain `path,sha256=…,size` a patch can rewrite (a quoted
/// path, say), or is missing: then the backend builds the wheel.
fn rehash_record(record: &str, changed: &BTreeMap<&str, Vec<u8>>) -> Option<String> {
    let mut out = String::with_capacity(record.len());
    let mut rewritten = 0;
    for line in record.split_inclusive('\n') {
        let body = line.trim_end_matches(['\r', '\n']);
        let ending = &line[body.len()..];
        let fields: Vec<&str> = body.split(',').collect();
        match changed.get(fields[0]) {
            Some(bytes) if fields.len() == 3 && !body.contains('"') => {
                let hash =
                    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(bytes));
                out.push_str(&format!(
                    "{},sha256={hash},{}{ending}",
                    fields[0],
                    bytes.len()
                ));
                rewritten += 1;
            }
            Some(_) => return None,
            None => out.push_str(line),
        }
    }
    (rewritten == changed.len()).then_some(out)
}

fn open_wheel(path: &Path) -> Result<zip::ZipArchive<std::fs::File>, AppError> {
    let file = std::fs::File::open(path).map_err(|e| AppError::Read {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    zip::ZipArchive::new(file).map_err(|e| bad_wheel(path, e))
}

fn bad_wheel(path: &Path, e: impl std::fmt::Display) -> AppError {
    AppError::Read {
        path: path.to_path_buf(),
        message: format!("cannot patch the app wheel: {e}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wheel as a backend lays one out: `pkg/` from `src/pkg/`, and a RECORD.
    fn wheel(dir: &Path, files: &[(&str, &[u8])]) -> PathBuf {
        let path = dir.join("demo-1.0-py3-none-any.whl");
        let mut w = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        let opts = zip::write::SimpleFileOptions::default()
            .last_modified_time(zip::DateTime::from_date_and_time(2020, 2, 2, 0, 0, 0).unwrap())
            .unix_permissions(0o644);
        let mut record = String::new();
        for (name, bytes) in files {
            w.start_file(*name, opts).unwrap();
            w.write_all(bytes).unwrap();
            let hash =
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(bytes));
            record.push_str(&format!("{name},sha256={hash},{}\n", bytes.len()));
        }
        record.push_str("demo-1.0.dist-info/RECORD,,\n");
        w.start_file("demo-1.0.dist-info/RECORD", opts).unwrap();
        w.write_all(record.as_bytes()).unwrap();
        w.finish().unwrap();
        path
    }

    fn contents(path: &Path) -> BTreeMap<String, Vec<u8>> {
        let mut a = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
        (0..a.len())
            .map(|i| {
                let mut e = a.by_index(i).unwrap();
                let mut b = Vec::new();
                e.read_to_end(&mut b).unwrap();
                (e.name().unwrap().into_owned(), b)
            })
            .collect()
    }

    #[test]
    fn an_edit_to_a_mapped_file_patches_the_member_and_its_record_line() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("p");
        std::fs::create_dir_all(project.join("src/pkg")).unwrap();
        std::fs::write(project.join("src/pkg/__init__.py"), b"").unwrap();
        std::fs::write(project.join("src/pkg/tests__init__.py"), b"").unwrap();
        std::fs::write(project.join("src/pkg/main.py"), b"print(1)\n").unwrap();
        std::fs::write(project.join("README.md"), b"hi\n").unwrap();
        // A test package's empty __init__.py: the same bytes and path tail as the package's.
        std::fs::create_dir_all(project.join("tests/pkg")).unwrap();
        std::fs::write(project.join("tests/pkg/__init__.py"), b"").unwrap();
        std::fs::write(project.join("LICENSE"), b"MIT\n").unwrap();
        let files: Vec<PathBuf> = [
            "LICENSE",
            "README.md",
            "src/pkg/__init__.py",
            "src/pkg/main.py",
            "src/pkg/tests__init__.py",
            "tests/pkg/__init__.py",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        let built = wheel(
            dir.path(),
            &[
                ("pkg/__init__.py", b""),
                ("pkg/main.py", b"print(1)\n"),
                ("pkg/tests__init__.py", b""),
                ("demo-1.0.dist-info/METADATA", b"Name: demo\n\nhi\n"),
                ("demo-1.0.dist-info/licenses/LICENSE", b"MIT\n"),
            ],
        );
        let metadata = vec!["README.md".to_string(), "LICENSE".to_string()];
        let origin = record_origin(
            &built,
            "f".into(),
            source_digests(&project, &files).unwrap(),
            &metadata,
        )
        .unwrap();
        // Two empty files of the package map to their own members, by path. The package's and
        // the test package's `__init__.py` could both be `pkg/__init__.py`: it is no one's.
        // The README is in METADATA, not a member; the license is one, but metadata too.
        assert_eq!(origin.members.len(), 2, "{origin:?}");
        assert_eq!(
            origin.members["src/pkg/tests__init__.py"],
            "pkg/tests__init__.py"
        );
        assert!(!origin.members.contains_key("src/pkg/__init__.py"));
        assert!(!origin.members.contains_key("tests/pkg/__init__.py"));
        assert!(!origin.members.contains_key("README.md"));
        assert!(!origin.members.contains_key("LICENSE"));
        std::fs::write(project.join("tests/pkg/__init__.py"), b"x = 1\n").unwrap();
        let tests_edit = source_digests(&project, &files).unwrap();
        assert!(replacements(&origin, "f", &tests_edit).is_none());
        std::fs::write(project.join("tests/pkg/__init__.py"), b"").unwrap();

        std::fs::write(project.join("src/pkg/main.py"), b"print(2)\n").unwrap();
        let now = source_digests(&project, &files).unwrap();
        let replace = replacements(&origin, "f", &now).unwrap();
        assert_eq!(
            replace,
            vec![("src/pkg/main.py".to_string(), "pkg/main.py".to_string())]
        );
        let out = dir.path().join("patched.whl");
        patch(&built, &project, &replace, &out).unwrap();

        // The same as a wheel built from the edited file.
        let expected = wheel(
            &dir.path().join("p"),
            &[
                ("pkg/__init__.py", b""),
                ("pkg/main.py", b"print(2)\n"),
                ("pkg/tests__init__.py", b""),
                ("demo-1.0.dist-info/METADATA", b"Name: demo\n\nhi\n"),
                ("demo-1.0.dist-info/licenses/LICENSE", b"MIT\n"),
            ],
        );
        assert_eq!(contents(&out), contents(&expected));
        // A RECORD line a patch cannot rewrite in place sends the build to the backend.
        let quoted = "\"pkg/main.py\",sha256=x,1\n".to_string();
        let changed: BTreeMap<&str, Vec<u8>> = [("pkg/main.py", b"y".to_vec())].into();
        assert!(rehash_record(&quoted, &changed).is_none());
        assert!(rehash_record("other,sha256=x,1\n", &changed).is_none());

        // What the backend must do: a README edit, another frame, a new file.
        std::fs::write(project.join("README.md"), b"changed\n").unwrap();
        let readme = source_digests(&project, &files).unwrap();
        assert!(replacements(&origin, "f", &readme).is_none());
        assert!(replacements(&origin, "other", &now).is_none());
        let mut more = now.clone();
        more.insert("src/pkg/new.py".into(), "00".into());
        assert!(replacements(&origin, "f", &more).is_none());
    }

    /// A shared origin names only the mapped files; a change anywhere else, or a new file,
    /// still means the backend builds, exactly as with the whole origin.
    #[test]
    fn a_shared_origin_hides_other_files_and_patches_as_the_whole_one_does() {
        let digests = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(f, d)| (f.to_string(), d.to_string()))
                .collect()
        };
        let whole = WheelOrigin {
            frame: "f".into(),
            sources: digests(&[("src/pkg/main.py", "1"), (".env", "2"), ("notes.txt", "3")]),
            members: [("src/pkg/main.py".to_string(), "pkg/main.py".to_string())].into(),
            others: None,
        };
        let shared = whole.shareable();
        assert_eq!(
            shared.sources.keys().collect::<Vec<_>>(),
            ["src/pkg/main.py"]
        );
        assert_eq!(shared.shareable(), shared, "shared on as it came");
        assert!(!serde_json::to_string(&shared).unwrap().contains(".env"));
        let edited = digests(&[("src/pkg/main.py", "9"), (".env", "2"), ("notes.txt", "3")]);
        let expected = Some(vec![(
            "src/pkg/main.py".to_string(),
            "pkg/main.py".to_string(),
        )]);
        assert_eq!(replacements(&whole, "f", &edited), expected);
        assert_eq!(replacements(&shared, "f", &edited), expected);
        for other in [
            digests(&[("src/pkg/main.py", "9"), (".env", "7"), ("notes.txt", "3")]),
            digests(&[("src/pkg/main.py", "9"), (".env", "2")]),
            digests(&[
                ("src/pkg/main.py", "9"),
                (".env", "2"),
                ("notes.txt", "3"),
                ("x", "4"),
            ]),
            digests(&[(".env", "2"), ("notes.txt", "3")]),
        ] {
            assert_eq!(replacements(&whole, "f", &other), None, "{other:?}");
            assert_eq!(replacements(&shared, "f", &other), None, "{other:?}");
        }
        assert_eq!(replacements(&shared, "g", &edited), None, "another frame");
    }

    #[test]
    fn only_static_projects_with_an_installed_backend_are_patched() {
        let dir = tempfile::tempdir().unwrap();
        let parse = |s: &str| toml::from_str::<toml::Value>(s).unwrap();
        let system = BuildSystem::from_pyproject(Some(&parse(
            "[build-system]\nrequires = [\"hatchling\"]\nbuild-backend = \"hatchling.build\"\n",
        )));
        let static_ = parse("[project]\nname = \"a\"\nversion = \"1\"\n");
        assert!(patchable(dir.path(), Some(&static_), &system));
        let dynamic = parse("[project]\nname = \"a\"\ndynamic = [\"version\"]\n");
        assert!(!patchable(dir.path(), Some(&dynamic), &system));
        let hooks =
            parse("[project]\nname = \"a\"\nversion = \"1\"\n[tool.hatch.build.hooks.custom]\n");
        assert!(!patchable(dir.path(), Some(&hooks), &system));
        assert!(!patchable(dir.path(), None, &system));
        // Backends that may run code at build time, or that lockship does not know: no.
        assert!(!patchable(
            dir.path(),
            Some(&static_),
            &BuildSystem::from_pyproject(None)
        ));
        let poetry = BuildSystem::from_pyproject(Some(&parse(
            "[build-system]\nbuild-backend = \"poetry.core.masonry.api\"\n",
        )));
        assert!(patchable(dir.path(), Some(&static_), &poetry));
        let script = parse(
            "[project]\nname = \"a\"\nversion = \"1\"\n[tool.poetry.build]\nscript = \"b.py\"\n",
        );
        assert!(!patchable(dir.path(), Some(&script), &poetry));
        std::fs::write(dir.path().join("setup.py"), b"").unwrap();
        assert!(!patchable(dir.path(), Some(&static_), &system));
        let parsed = parse("[project]\nreadme = {file = \"README.rst\"}\nlicense = \"LICENSE\"\nlicense-files = [\"NOTICE\"]\n");
        assert_eq!(
            metadata_files(Some(&parsed)),
            ["README.rst", "LICENSE", "NOTICE"]
        );
    }
}
