//! `lockship cache info` and `lockship cache prune`: what the cache holds by kind, and removing
//! what no longer matters. Every build marks the entries it uses (their mtime, see
//! `lockship_sys::cache_lock`), so a prune removes the least recently used first. A prune holds
//! the cache alone: it waits for running builds, and builds wait for it. It touches only the
//! buckets lockship keeps (`cache_dir::Bucket`), in a directory that is a lockship cache.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::builder::Reporter;
use crate::cache_dir::Bucket;
use crate::error::Error;
use lockship_oci::layer::LayerInfo;
use lockship_sys::cache_lock::CacheLock;

/// What one kind of entry takes.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Usage {
    pub kind: String,
    pub entries: u64,
    pub bytes: u64,
}

/// `lockship cache info`.
#[derive(Debug, Serialize)]
pub struct CacheInfo {
    pub dir: PathBuf,
    pub kinds: Vec<Usage>,
    pub total_bytes: u64,
}

/// What `lockship cache prune` removes besides what no longer matters.
#[derive(Clone, Debug, Default)]
pub struct PruneOptions {
    /// Remove the least recently used entries until the cache is no larger.
    pub max_size: Option<u64>,
    /// Remove entries no build used for this long.
    pub older_than: Option<Duration>,
}

/// What a prune removed, by kind, and what is left.
#[derive(Debug, Serialize)]
pub struct PruneReport {
    pub dir: PathBuf,
    pub removed: Vec<Usage>,
    pub removed_bytes: u64,
    pub left_bytes: u64,
}

/// One entry of a bucket: a blob, a JSON record, or a directory (an app wheel, an
/// interpreter, a build environment).
#[derive(Clone, Debug)]
struct Entry {
    bucket: Bucket,
    path: PathBuf,
    bytes: u64,
    used: SystemTime,
}

/// The size of each kind of entry in the cache at `dir`.
pub fn info(dir: &Path) -> Result<CacheInfo, Error> {
    check_is_cache(dir)?;
    let entries = entries(dir)?;
    let kinds = Bucket::ALL
        .iter()
        .map(|b| usage(*b, entries.iter().filter(|e| e.bucket == *b)))
        .collect();
    Ok(CacheInfo {
        dir: dir.to_path_buf(),
        total_bytes: entries.iter().map(|e| e.bytes).sum(),
        kinds,
    })
}

/// Removes from the cache at `dir`: app wheels a newer build of the same project replaced,
/// records of layers and built wheels whose blob is gone, then (as `opts` asks) what no build
/// used for a while and the least recently used until the cache fits.
pub fn prune(
    dir: &Path,
    opts: &PruneOptions,
    reporter: &dyn Reporter,
) -> Result<PruneReport, Error> {
    check_is_cache(dir)?;
    let io = |source| Error::Io {
        path: dir.join(lockship_sys::cache_lock::LOCK_FILE),
        source,
    };
    let _lock = match CacheLock::try_exclusive(dir).map_err(io)? {
        Some(lock) => lock,
        None => {
            reporter.step(&format!(
                "waiting for the builds using {} to finish",
                dir.display()
            ));
            CacheLock::exclusive(dir).map_err(io)?
        }
    };
    // What killed runs left behind goes first (it is nobody's).
    crate::builder::open_cache(dir)?;
    let mut removed: Vec<Entry> = Vec::new();
    let mut left = entries(dir)?;

    let superseded = superseded_app_wheels(&left);
    take(&mut left, &mut removed, |e| superseded.contains(&e.path))?;
    if let Some(age) = opts.older_than {
        let cutoff = SystemTime::now()
            .checked_sub(age)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        take(&mut left, &mut removed, |e| e.used < cutoff)?;
    }
    if let Some(max) = opts.max_size {
        let mut total: u64 = left.iter().map(|e| e.bytes).sum();
        let mut by_age: Vec<&Entry> = left.iter().collect();
        by_age.sort_by_key(|e| e.used);
        let mut drop = Vec::new();
        for e in by_age {
            if total <= max {
                break;
            }
            total -= e.bytes;
            drop.push(e.path.clone());
        }
        take(&mut left, &mut removed, |e| drop.contains(&e.path))?;
    }
    // Records that name a blob no longer there say nothing true: gone with it.
    let blobs = Bucket::Blobs.under(dir).join("sha256");
    take(&mut left, &mut removed, |e| {
        matches!(e.bucket, Bucket::Layers | Bucket::BuiltWheels) && !names_present_blob(e, &blobs)
    })?;

    let removed_kinds = Bucket::ALL
        .iter()
        .map(|b| usage(*b, removed.iter().filter(|e| e.bucket == *b)))
        .filter(|u| u.entries > 0)
        .collect();
    Ok(PruneReport {
        dir: dir.to_path_buf(),
        removed: removed_kinds,
        removed_bytes: removed.iter().map(|e| e.bytes).sum(),
        left_bytes: left.iter().map(|e| e.bytes).sum(),
    })
}

/// Refuses a directory that is not a lockship cache, so that a mistyped `--cache-dir` (a home
/// directory with a `layers` folder of its own) loses nothing.
fn check_is_cache(dir: &Path) -> Result<(), Error> {
    if Bucket::Blobs.under(dir).join("sha256").is_dir() {
        return Ok(());
    }
    Err(Error::NotACache {
        dir: dir.to_path_buf(),
    })
}

/// Every entry of every bucket, with its size and when a build last used it.
fn entries(dir: &Path) -> Result<Vec<Entry>, Error> {
    let mut all = Vec::new();
    for bucket in Bucket::ALL {
        let root = match bucket {
            Bucket::Blobs => bucket.under(dir).join("sha256"),
            _ => bucket.under(dir),
        };
        let list = match std::fs::read_dir(&root) {
            Ok(list) => list,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(Error::Io { path: root, source }),
        };
        for item in list {
            let item = item.map_err(|source| Error::Io {
                path: root.clone(),
                source,
            })?;
            let path = item.path();
            let name = item.file_name();
            // A running build's temporary entries are its own (and the lock keeps builds out).
            if name.to_string_lossy().starts_with(".lockship-tmp-") {
                continue;
            }
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            all.push(Entry {
                bucket,
                bytes: size_of(&path, &meta),
                used: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                path,
            });
        }
    }
    Ok(all)
}

/// The bytes under `path`, symlinks not followed.
fn size_of(path: &Path, meta: &std::fs::Metadata) -> u64 {
    if !meta.is_dir() {
        return meta.len();
    }
    walkdir::WalkDir::new(path)
        .follow_links(false)
        .into_iter()
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .filter(|m| !m.is_dir())
        .map(|m| m.len())
        .sum()
}

fn usage<'a>(bucket: Bucket, entries: impl Iterator<Item = &'a Entry>) -> Usage {
    let (mut n, mut bytes) = (0, 0);
    for e in entries {
        n += 1;
        bytes += e.bytes;
    }
    Usage {
        kind: bucket.name().to_string(),
        entries: n,
        bytes,
    }
}

/// Moves the entries `which` picks from `left` to `removed`, deleting them.
fn take(
    left: &mut Vec<Entry>,
    removed: &mut Vec<Entry>,
    which: impl Fn(&Entry) -> bool,
) -> Result<(), Error> {
    let (gone, kept): (Vec<Entry>, Vec<Entry>) = std::mem::take(left).into_iter().partition(which);
    *left = kept;
    for e in gone {
        let result = if e.path.is_dir() && !e.path.is_symlink() {
            std::fs::remove_dir_all(&e.path)
        } else {
            std::fs::remove_file(&e.path)
        };
        match result {
            Ok(()) => removed.push(e),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => removed.push(e),
            Err(source) => {
                return Err(Error::Io {
                    path: e.path,
                    source,
                })
            }
        }
    }
    Ok(())
}

/// App wheels of a project a later build of it replaced: all but the most recently used per
/// project name (the wheel's distribution name), and the last one its backend built (later
/// edits are patched onto it: `last-*.json` names it).
fn superseded_app_wheels(entries: &[Entry]) -> Vec<PathBuf> {
    #[derive(serde::Deserialize)]
    struct Last {
        dir: String,
    }
    let patched_onto: Vec<String> = entries
        .iter()
        .filter(|e| e.bucket == Bucket::AppWheels && e.path.is_file())
        .filter_map(|e| serde_json::from_slice::<Last>(&std::fs::read(&e.path).ok()?).ok())
        .map(|l| l.dir)
        .collect();
    let mut newest: BTreeMap<String, &Entry> = BTreeMap::new();
    let mut all = Vec::new();
    for e in entries.iter().filter(|e| e.bucket == Bucket::AppWheels) {
        // Wheels the builder made (`built-*`, one per platform) are not replaced by a newer
        // host build: only age and size prune them.
        if e.path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("built-"))
        {
            continue;
        }
        if e.path
            .file_name()
            .is_some_and(|n| patched_onto.iter().any(|d| n.to_string_lossy() == *d))
        {
            continue;
        }
        let Some(name) = app_wheel_name(&e.path) else {
            continue;
        };
        all.push((name.clone(), e));
        match newest.get(&name) {
            Some(n) if n.used >= e.used => {}
            _ => {
                newest.insert(name, e);
            }
        }
    }
    all.into_iter()
        .filter(|(name, e)| newest.get(name).is_some_and(|n| n.path != e.path))
        .map(|(_, e)| e.path.clone())
        .collect()
}

/// The distribution name of the wheel in an app-wheel directory.
fn app_wheel_name(dir: &Path) -> Option<String> {
    std::fs::read_dir(dir).ok()?.find_map(|f| {
        let name = f.ok()?.file_name().to_string_lossy().into_owned();
        name.strip_suffix(".whl")?;
        Some(name.split('-').next()?.to_lowercase())
    })
}

/// Whether a layer or built-wheel record names a blob the store has (an unreadable record
/// names nothing).
fn names_present_blob(e: &Entry, blobs: &Path) -> bool {
    #[derive(serde::Deserialize)]
    struct Built {
        sha256: lockship_oci::digest::Digest,
    }
    let Ok(bytes) = std::fs::read(&e.path) else {
        return false;
    };
    let digest = match e.bucket {
        Bucket::Layers => serde_json::from_slice::<LayerInfo>(&bytes)
            .ok()
            .map(|l| l.digest),
        _ => serde_json::from_slice::<Built>(&bytes)
            .ok()
            .map(|b| b.sha256),
    };
    digest.is_some_and(|d| blobs.join(d.hex()).is_file())
}

/// Parses a size as people write them: `500M`, `2G`, `1.5GiB`, `800MB`, or bytes. Units are
/// binary (1K = 1024 bytes), as `du -h` shows them.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size (e.g. 500M, 2G)"))?;
    let unit = unit.trim().to_ascii_uppercase();
    let unit = unit.trim_end_matches("IB").trim_end_matches('B');
    let scale: u64 = match unit {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => return Err(format!("`{text}` has an unknown unit (use K, M, G or T)")),
    };
    let bytes = number * scale as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(format!("`{text}` is not a size (e.g. 500M, 2G)"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::Silent;

    fn set_used(path: &Path, days_ago: u64) {
        let when = SystemTime::now() - Duration::from_secs(days_ago * 86_400);
        std::fs::File::open(path)
            .unwrap()
            .set_modified(when)
            .unwrap();
    }

    /// A cache with a blob and its layer record, a record whose blob is gone, and two app
    /// wheels of one project.
    fn cache() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::builder::open_cache(dir.path()).unwrap();
        let digest = store.put_bytes(&vec![7u8; 4096]).unwrap();
        let info = |d: &lockship_oci::digest::Digest| LayerInfo {
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            digest: d.clone(),
            size: 4096,
            diff_id: d.clone(),
            uncompressed_size: 4096,
        };
        let layers = Bucket::Layers.under(dir.path());
        std::fs::create_dir_all(&layers).unwrap();
        std::fs::write(
            layers.join("kept.json"),
            serde_json::to_vec(&info(&digest)).unwrap(),
        )
        .unwrap();
        let gone = lockship_oci::digest::Digest::of_bytes(b"gone");
        std::fs::write(
            layers.join("dangling.json"),
            serde_json::to_vec(&info(&gone)).unwrap(),
        )
        .unwrap();
        for (key, days) in [("old", 3), ("new", 0)] {
            let d = Bucket::AppWheels.under(dir.path()).join(key);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("demo-0.1-py3-none-any.whl"), vec![0u8; 100]).unwrap();
            set_used(&d, days);
        }
        dir
    }

    #[test]
    fn info_counts_every_kind() {
        let dir = cache();
        let info = info(dir.path()).unwrap();
        let kind = |k: &str| info.kinds.iter().find(|u| u.kind == k).unwrap().clone();
        assert_eq!(kind("blobs").entries, 1);
        assert_eq!(kind("blobs").bytes, 4096);
        assert_eq!(kind("layers").entries, 2);
        assert_eq!(kind("app-wheels").bytes, 200);
        assert!(info.total_bytes >= 4096 + 200);
    }

    #[test]
    fn prune_collects_what_no_longer_matters_and_keeps_the_rest() {
        let dir = cache();
        let report = prune(dir.path(), &PruneOptions::default(), &Silent).unwrap();
        assert!(dir.path().join("app-wheels/new").is_dir());
        assert!(!dir.path().join("app-wheels/old").exists());
        assert!(dir.path().join("layers/kept.json").is_file());
        assert!(!dir.path().join("layers/dangling.json").exists());
        let entries: u64 = report.removed.iter().map(|u| u.entries).sum();
        assert_eq!(entries, 2, "{report:?}");
        assert!(report.removed_bytes > 100);
    }

    #[test]
    fn prune_by_age_and_by_size_removes_the_least_recently_used() {
        let dir = cache();
        let blob = std::fs::read_dir(dir.path().join("blobs/sha256"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        set_used(&blob, 40);
        let opts = PruneOptions {
            older_than: Some(Duration::from_secs(30 * 86_400)),
            max_size: None,
        };
        prune(dir.path(), &opts, &Silent).unwrap();
        assert!(!blob.exists(), "unused for 40 days");
        // Its layer record went with it.
        assert!(!dir.path().join("layers/kept.json").exists());
        assert!(dir.path().join("app-wheels/new").is_dir());

        let opts = PruneOptions {
            older_than: None,
            max_size: Some(0),
        };
        let report = prune(dir.path(), &opts, &Silent).unwrap();
        assert_eq!(report.left_bytes, 0);
        assert!(!dir.path().join("app-wheels/new").exists());
    }

    #[test]
    fn prune_refuses_what_is_not_a_cache() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("layers")).unwrap();
        std::fs::write(dir.path().join("layers/mine.txt"), b"keep").unwrap();
        let err = prune(dir.path(), &PruneOptions::default(), &Silent).unwrap_err();
        assert!(err.to_string().contains("not a lockship cache"), "{err}");
        assert!(dir.path().join("layers/mine.txt").is_file());
    }

    #[test]
    fn sizes_as_people_write_them() {
        assert_eq!(parse_size("500M").unwrap(), 500 << 20);
        assert_eq!(parse_size("2G").unwrap(), 2 << 30);
        assert_eq!(parse_size("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(parse_size("800MB").unwrap(), 800 << 20);
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5X").is_err());
        assert!(parse_size("").is_err());
    }
}
