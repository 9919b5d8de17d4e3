//! Assembles the Debian base: resolves (or reads) the base lock, fetches its .debs, and turns
//! them into one deterministic layer plus the files maintainer scripts would have written, and
//! the facts and config the rest of the build needs.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

use futures::{StreamExt, TryStreamExt};
use serde_json::json;

use super::base_lock::{BaseLock, LockedDeb};
use super::control::{parse_packages, PackageEntry};
use super::resolve::Universe;
use super::{deb, mirror, oci_platform, release, DebianError};
use lockship_net::url::redact;
use lockship_net::{Http, NetError};
use lockship_oci::blob_store::BlobStore;
use lockship_oci::digest::Digest;
use lockship_oci::download::{self, DownloadError};
use lockship_oci::layer::{self, LayerInfo};
use lockship_oci::tar_tree::TarTree;

/// The `[tool.lockship.base]` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DebianSpec {
    pub suite: String,
    pub packages: Vec<String>,
    /// Where the suite and its `-updates` are; default: the host's apt sources.
    pub mirror: Option<String>,
    /// Where the suite's `-security` archive is; default: the host's apt sources.
    pub security_mirror: Option<String>,
    /// Packages Depends pull in that the image does without (`dpkg`, `tar`…).
    pub exclude: Vec<String>,
    pub keyring: Option<PathBuf>,
}

/// One archive packages come from: the suite itself, or its `-updates` or `-security`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Archive {
    /// Its suite name (`bookworm-security`): what the base lock records.
    pub name: String,
    /// Its root URL, credentials handed to the HTTP client.
    pub mirror: String,
    /// Whether it may be missing (`-updates` on a configured mirror: unstable has none).
    pub optional: bool,
}

/// The keyring apt itself trusts for Debian.
pub const DEFAULT_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// Libraries the manylinux policy lets wheels link against without bundling them (libc6 and
/// libgcc-s1 already come with python3): without these, numpy and friends fail to import.
pub const MANYLINUX_RUNTIME: [&str; 1] = ["libstdc++6"];

const PASSWD: &str =
    "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n";
const GROUP: &str = "root:x:0:\nnogroup:x:65534:\n";
const CA_DIR: &str = "usr/share/ca-certificates";
const CA_BUNDLE: &str = "etc/ssl/certs/ca-certificates.crt";

/// The Release file is a few hundred KB; refuse anything absurd.
const MAX_RELEASE: u64 = 16 << 20;

impl DebianSpec {
    /// The mirror's URL, its user info (if any) handed to `http` for that host only.
    fn mirror(&self, http: &Http) -> Result<String, DebianError> {
        self.mirror
            .clone()
            .map(|m| m.trim_end_matches('/').to_string())
            .or_else(|| mirror::from_apt_sources(Path::new("/"), &self.suite))
            .map(|m| http.add_credentials(&m))
            .ok_or(DebianError::NoMirror)
    }

    /// The archives to read, the suite first, as apt would: the suite and its `-updates` on
    /// `mirror` when it is set, else wherever the host's apt sources list them; `-security` on
    /// `security-mirror` when set, else where the host's apt sources list it.
    pub fn archives(&self, http: &Http) -> Result<Vec<Archive>, DebianError> {
        let apt = mirror::archives_from_apt_sources(Path::new("/"), &self.suite);
        let from_apt = |name: &str| {
            apt.iter()
                .find(|(archive, _)| archive == name)
                .map(|(_, uri)| uri.clone())
        };
        let updates = format!("{}-updates", self.suite);
        let security = format!("{}-security", self.suite);
        let configured =
            |m: &Option<String>| m.as_ref().map(|m| m.trim_end_matches('/').to_string());
        let mut archives = vec![Archive {
            name: self.suite.clone(),
            mirror: self.mirror(http)?,
            optional: false,
        }];
        let (updates_mirror, optional) = match configured(&self.mirror) {
            Some(m) => (Some(m), true),
            None => (from_apt(&updates), false),
        };
        if let Some(m) = updates_mirror {
            archives.push(Archive {
                name: updates,
                mirror: http.add_credentials(&m),
                optional,
            });
        }
        if let Some(m) = configured(&self.security_mirror).or_else(|| from_apt(&security)) {
            archives.push(Archive {
                name: security,
                mirror: http.add_credentials(&m),
                optional: false,
            });
        }
        Ok(archives)
    }
}

/// The suite's InRelease from the mirror, its signature verified against the keyring: the
/// mirror, the file's URL and what it lists.
async fn signed_release(
    spec: &DebianSpec,
    http: &Http,
) -> Result<(String, String, release::Release), DebianError> {
    let mirror = spec.mirror(http)?;
    let (url, release) = archive_release(spec, &spec.suite, &mirror, http).await?;
    Ok((mirror, url, release))
}

/// The InRelease of the archive `name` on `mirror`, its signature verified: its URL and what
/// it lists.
async fn archive_release(
    spec: &DebianSpec,
    name: &str,
    mirror: &str,
    http: &Http,
) -> Result<(String, release::Release), DebianError> {
    let url = format!("{mirror}/dists/{name}/InRelease");
    let (_, body) = match http.get_bytes(&url, &[], MAX_RELEASE).await {
        Ok(answer) => answer,
        Err(NetError::Status { status, .. }) => {
            return Err(DebianError::UnknownSuite {
                suite: name.to_string(),
                mirror: http.shown(mirror),
                message: format!("HTTP {status} for InRelease"),
            })
        }
        Err(source) => {
            return Err(DebianError::Download {
                what: format!("the {name} release file"),
                source: source.into(),
            })
        }
    };
    let text = String::from_utf8(body.to_vec()).map_err(|_| DebianError::BadRelease {
        url: redact(&url),
        message: "not UTF-8 text".into(),
    })?;
    let keyring = spec
        .keyring
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_KEYRING));
    let keys = release::load_keyring(&keyring)?;
    let release = release::verify(&text, &url, &keys, &keyring)?;
    // A signed release of another suite (an old one, the suite's own in the security
    // archive's place) is refused, as apt does.
    if release.suite != name && release.codename != name {
        return Err(DebianError::BadRelease {
            url: redact(&url),
            message: format!(
                "it is the release of {} ({}), not of {name}",
                release.codename, release.suite
            ),
        });
    }
    Ok((url, release))
}

/// The base lock for `spec`: the existing one if it was made for the same request, else a new
/// resolution against the signed indexes of the suite's archives (also when `upgrade`), the
/// newest version of a package across them winning, except that packages `pins` locks keep
/// its versions where the archives still have them. Returns the lock and what changed.
pub async fn lock(
    spec: &DebianSpec,
    arch: &str,
    lock_path: &Path,
    http: &Http,
    store: &BlobStore,
    upgrade: bool,
    pins: Option<&BaseLock>,
) -> Result<(BaseLock, Vec<String>), DebianError> {
    let existing = BaseLock::read(lock_path)?;
    if let Some(l) = &existing {
        if !upgrade
            && l.suite == spec.suite
            && l.architecture == arch
            && l.requested == spec.packages
            && l.exclude == spec.exclude
        {
            return Ok((l.clone(), Vec::new()));
        }
    }
    let mut entries = Vec::new();
    let mut suite_release = None;
    // One archive after another, the suite first: its errors are the ones to show first.
    for archive in spec.archives(http)? {
        let (url, release) = match archive_release(spec, &archive.name, &archive.mirror, http).await
        {
            Err(DebianError::UnknownSuite { .. }) if archive.optional => continue,
            other => other?,
        };
        let text = package_index(spec, &archive, &url, &release, arch, http, store).await?;
        let mut found = parse_packages(&text, arch);
        drop(text);
        for e in &mut found {
            e.archive = archive.name.clone();
        }
        entries.extend(found);
        suite_release.get_or_insert(release);
    }
    let release = suite_release.ok_or(DebianError::NoMirror)?;
    let ca = entries
        .iter()
        .filter(|e| e.name == "ca-certificates")
        .cloned()
        .max_by(|a, b| super::version::compare(&a.version, &b.version));
    let mut wanted = spec.packages.clone();
    for lib in MANYLINUX_RUNTIME {
        if !wanted.iter().any(|w| w == lib) {
            wanted.push(lib.to_string());
        }
    }
    let held = pins.map(|pins| {
        let mut held = entries.clone();
        hold_to(&mut held, pins);
        Universe::new(held, &spec.suite, arch)
    });
    let universe = Universe::new(entries, &spec.suite, arch);
    // Held to the pins when that resolves; a package the pins leave free may need a newer
    // version of a pinned one (libc6-dev of a security update needs its libc6): then unpinned.
    let closure = match held.map(|u| u.resolve(&wanted, &spec.exclude)) {
        Some(Ok(closure)) => closure,
        _ => universe.resolve(&wanted, &spec.exclude)?,
    };
    let locked = |e: PackageEntry, data_only: bool| LockedDeb {
        name: e.name,
        version: e.version,
        architecture: e.architecture,
        source: e.source,
        archive: Some(e.archive),
        filename: e.filename,
        sha256: e.sha256,
        size: e.size,
        data_only,
    };
    let mut packages: Vec<LockedDeb> = closure.into_iter().map(|e| locked(e, false)).collect();
    // Every image needs the CA certificates; their package's dependencies (openssl, debconf,
    // perl) only serve its maintainer script, which lockship replaces.
    if let Some(ca) = ca {
        if !packages.iter().any(|p| p.name == ca.name) {
            packages.push(locked(ca, true));
            packages.sort_by(|a, b| a.name.cmp(&b.name));
        }
    }
    let lock = BaseLock {
        version: 1,
        suite: spec.suite.clone(),
        codename: release.codename.clone(),
        release: release.version.clone(),
        architecture: arch.to_string(),
        requested: spec.packages.clone(),
        exclude: spec.exclude.clone(),
        packages,
    };
    let changes = lock.changes_from(existing.as_ref());
    lock.write(lock_path)?;
    Ok((lock, changes))
}

/// Keeps, of each package `pins` locks, only the version it locks, where the indexes still
/// have it: a builder gets exactly the base's Python and libraries, whatever was published
/// since the base was locked (a version the archives dropped leaves the package free).
fn hold_to(entries: &mut Vec<PackageEntry>, pins: &BaseLock) {
    let pinned: BTreeMap<&str, &str> = pins
        .packages
        .iter()
        .filter(|p| {
            entries
                .iter()
                .any(|e| e.name == p.name && e.version == p.version)
        })
        .map(|p| (p.name.as_str(), p.version.as_str()))
        .collect();
    entries.retain(|e| pinned.get(e.name.as_str()).is_none_or(|v| *v == e.version));
}

/// Downloads an index file (`path` in the suite's `dists/`, at `url`) unless the store has it,
/// checked against the `digest` the signed release gives, and opens it. `what` names it.
async fn open_index(
    http: &Http,
    store: &BlobStore,
    url: &str,
    digest: &Digest,
    path: &str,
    what: String,
) -> Result<std::fs::File, DebianError> {
    download::fetch_verified(http, url, digest, path, store)
        .await
        .map_err(|source| DebianError::Download { what, source })?;
    std::fs::File::open(store.path(digest)).map_err(|e| DebianError::BadRelease {
        url: redact(url),
        message: e.to_string(),
    })
}

/// The text of an archive's package index for `arch`: `Packages.gz`, `Packages.xz` or plain
/// `Packages`, the first the signed release lists (security and updates archives have no
/// `.gz`), checked against the hash it gives.
async fn package_index(
    spec: &DebianSpec,
    archive: &Archive,
    url: &str,
    release: &release::Release,
    arch: &str,
    http: &Http,
    store: &BlobStore,
) -> Result<String, DebianError> {
    let base = format!("main/binary-{arch}/Packages");
    let Some((index_path, digest)) = ["gz", "xz", ""].iter().find_map(|ext| {
        let path = if ext.is_empty() {
            base.clone()
        } else {
            format!("{base}.{ext}")
        };
        let (digest, _) = release.files.get(&path)?;
        Some((path, digest.clone()))
    }) else {
        // `all` is no architecture of its own: its packages are in every one's index.
        if !release.architectures.is_empty() && archive.name == spec.suite {
            return Err(DebianError::NoArchitecture {
                suite: spec.suite.clone(),
                platform: oci_platform(arch),
                has: release
                    .architectures
                    .iter()
                    .filter(|a| *a != "all")
                    .map(|a| oci_platform(a))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        return Err(DebianError::BadRelease {
            url: redact(url),
            message: format!("lists no {base}.xz, .gz or plain index (is {arch} in this suite?)"),
        });
    };
    let index_url = format!("{}/dists/{}/{index_path}", archive.mirror, archive.name);
    let what = format!("the {} package index", archive.name);
    let file = open_index(http, store, &index_url, &digest, &index_path, what).await?;
    let bad = |message: String| DebianError::BadRelease {
        url: redact(&index_url),
        message,
    };
    let reader: Box<dyn Read> = if index_path.ends_with(".xz") {
        Box::new(liblzma::read::XzDecoder::new(file))
    } else if index_path.ends_with(".gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut text = String::new();
    // Packages of a whole suite is ~50 MB inflated; a bomb stops at 1 GiB.
    reader
        .take(1 << 30)
        .read_to_string(&mut text)
        .map_err(|e| bad(format!("cannot decompress: {e}")))?;
    Ok(text)
}

fn deb_digest(p: &LockedDeb) -> Result<Digest, DebianError> {
    Digest::from_hex(&p.sha256).ok_or_else(|| DebianError::Lock {
        path: PathBuf::from(super::base_lock::FILE_NAME),
        message: format!("{}: bad sha256 `{}`", p.name, p.sha256),
    })
}

/// Downloads the lock's packages that are not cached, verified by their SHA-256.
pub async fn fetch(
    spec: &DebianSpec,
    lock: &BaseLock,
    http: &Http,
    store: &BlobStore,
) -> Result<(), DebianError> {
    let missing: Vec<(&LockedDeb, Digest)> = lock
        .packages
        .iter()
        .map(|p| deb_digest(p).map(|d| (p, d)))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        // A .deb damaged in the cache is evicted here and fetched again below.
        .filter(|(p, d)| !store.verify(d, &p.filename).unwrap_or(false))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let archives = spec.archives(http)?;
    let mut urls = Vec::new();
    for (p, d) in missing {
        // Locks written before archives were recorded name the suite's packages only.
        let name = p.archive.as_deref().unwrap_or(&lock.suite);
        let archive =
            archives
                .iter()
                .find(|a| a.name == name)
                .ok_or_else(|| DebianError::NoArchive {
                    package: format!("{} {}", p.name, p.version),
                    archive: name.to_string(),
                })?;
        urls.push((format!("{}/{}", archive.mirror, p.filename), p, d, archive));
    }
    futures::stream::iter(urls)
        .map(|(url, p, d, archive)| {
            async move {
                download::fetch_verified(http, &url, &d, &p.filename, store)
                    .await
                    .map_err(|source| match source {
                        // Point releases and security updates drop the versions they replace.
                        DownloadError::Net(NetError::Status {
                            status: 404 | 410, ..
                        }) => DebianError::Gone {
                            package: format!("{} {}", p.name, p.version),
                            archive: archive.name.clone(),
                            mirror: http.shown(&archive.mirror),
                        },
                        source => DebianError::Download {
                            what: format!("Debian package {} {}", p.name, p.version),
                            source,
                        },
                    })
            }
        })
        .buffer_unordered(8)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// Unpacks every package and writes the base layer at gzip `level` (6 for an image that
/// ships; see `layer::write_layer_at`) (blocking; run off the async runtime).
pub fn write_layer(
    lock: &BaseLock,
    store: &BlobStore,
    mtime: u64,
    level: u32,
) -> Result<LayerInfo, DebianError> {
    let scratch = tempfile::tempdir_in(store.tmp_dir()).map_err(|source| DebianError::Io {
        path: store.tmp_dir().to_path_buf(),
        source,
    })?;
    let root = scratch.path().join("root");
    std::fs::create_dir_all(&root).map_err(|source| DebianError::Io {
        path: root.clone(),
        source,
    })?;
    for p in &lock.packages {
        let only = p.data_only.then_some(CA_DIR);
        deb::unpack(&store.path(&deb_digest(p)?), &p.name, &root, only)?;
    }
    let mut tree = TarTree::new();
    tree.add_host_dir_exact(&root, "")
        .map_err(layer::LayerError::from)?;
    add_generated_files(lock, &root, &mut tree)?;
    Ok(layer::write_layer_at(&tree, mtime, store, level)?)
}

/// What dpkg, base-files and maintainer scripts would have left: the merged-/usr links, users,
/// os-release, the CA bundle, the time zone, temp dirs, and dpkg status entries for scanners.
fn add_generated_files(
    lock: &BaseLock,
    root: &Path,
    tree: &mut TarTree,
) -> Result<(), DebianError> {
    for dir in deb::MERGED_DIRS {
        if root.join("usr").join(dir).exists() {
            tree.symlink(dir, &format!("usr/{dir}"));
        }
    }
    tree.bytes("etc/passwd", PASSWD, 0o644);
    tree.bytes("etc/group", GROUP, 0o644);
    tree.dir("root", 0o700, 0, 0);
    tree.dir("home", 0o755, 0, 0);
    tree.dir("tmp", 0o1777, 0, 0);
    tree.dir("var/tmp", 0o1777, 0, 0);
    let major = lock
        .release
        .as_deref()
        .and_then(|r| r.split('.').next())
        .unwrap_or("");
    let codename = &lock.codename;
    let version = if major.is_empty() {
        codename.clone()
    } else {
        format!("{major} ({codename})")
    };
    tree.bytes(
        "usr/lib/os-release",
        format!(
            "PRETTY_NAME=\"Debian GNU/Linux {version}\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"{major}\"\nVERSION=\"{version}\"\nVERSION_CODENAME={codename}\nID=debian\n"
        ),
        0o644,
    );
    tree.symlink("etc/os-release", "../usr/lib/os-release");

    let mut certs: Vec<PathBuf> = walkdir::WalkDir::new(root.join(CA_DIR))
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file() && e.path().extension().is_some_and(|x| x == "crt"))
        .map(|e| e.path().to_path_buf())
        .collect();
    certs.sort();
    let mut bundle = Vec::new();
    for cert in &certs {
        let mut pem = std::fs::read(cert).map_err(|e| DebianError::Unpack {
            package: "ca-certificates".into(),
            path: cert.clone(),
            message: e.to_string(),
        })?;
        if !pem.ends_with(b"\n") {
            pem.push(b'\n');
        }
        bundle.extend_from_slice(&pem);
    }
    if !bundle.is_empty() {
        tree.bytes(CA_BUNDLE, bundle, 0o644);
    }
    if root.join("usr/share/zoneinfo/Etc/UTC").exists() {
        tree.symlink("etc/localtime", "/usr/share/zoneinfo/Etc/UTC");
        tree.bytes("etc/timezone", "Etc/UTC\n", 0o644);
    }
    for p in lock.packages.iter().filter(|p| !p.data_only) {
        let mut status = format!(
            "Package: {}\nStatus: install ok installed\nArchitecture: {}\nVersion: {}\n",
            p.name, p.architecture, p.version
        );
        if let Some(source) = &p.source {
            status.push_str(&format!("Source: {source}\n"));
        }
        tree.bytes(&format!("var/lib/dpkg/status.d/{}", p.name), status, 0o644);
    }
    Ok(())
}

/// What the rest of the build needs to know about the base (a registry base is probed for the
/// same), read from the lock instead of the layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DebianFacts {
    /// e.g. (3, 11, 2)
    pub python_version: (u8, u8, u8),
    /// Absolute path of the interpreter, e.g. /usr/bin/python3.11.
    pub interpreter: String,
    /// glibc's (major, minor).
    pub glibc: (u16, u16),
    pub passwd: String,
    pub group: String,
}

/// The facts of the base `lock` describes.
pub fn facts(lock: &BaseLock) -> Result<DebianFacts, DebianError> {
    let python = lock
        .packages
        .iter()
        .filter_map(|p| {
            let minor: u8 = p.name.strip_prefix("python3.")?.parse().ok()?;
            Some((minor, p))
        })
        .max_by_key(|(m, _)| *m)
        .ok_or(DebianError::NoPython)?;
    let patch = python
        .1
        .version
        .split(['.', '-', '+', '~'])
        .nth(2)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let (major, minor) = lock
        .packages
        .iter()
        .find(|p| p.name == "libc6")
        .and_then(|p| {
            let mut parts = p.version.split(['.', '-']);
            Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
        })
        .unwrap_or((2, 36));
    Ok(DebianFacts {
        python_version: (3, python.0, patch),
        interpreter: format!("/usr/bin/python3.{}", python.0),
        glibc: (major, minor),
        passwd: PASSWD.to_string(),
        group: GROUP.to_string(),
    })
}

/// The base's image config: a plain Debian environment with the CA bundle named for OpenSSL.
/// Its platform is the OCI one the build asked for (`arm` + `v5`), never dpkg's name for it
/// (`armel`), which no runtime or wheel tag knows.
pub fn config(
    layer: &LayerInfo,
    created_by: &str,
    platform: &lockship_oci::platform::Platform,
) -> serde_json::Value {
    let mut config = json!({
        "architecture": platform.architecture,
        "os": "linux",
        "config": {
            "Env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "LANG=C.UTF-8",
                format!("SSL_CERT_FILE=/{CA_BUNDLE}"),
            ],
        },
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id.to_string()]},
        "history": [{"created_by": created_by, "comment": "lockship"}],
    });
    if let Some(variant) = &platform.variant {
        config["variant"] = json!(variant);
    }
    config
}

/// Which packages of the suite ship each of `libraries` (file names, `libpq.so.5`) in a
/// library directory, from the suite's `Contents-ARCH.gz` (checked against the signed
/// InRelease like the package index). For the error of the shared-library check: it names the
/// package to add. A library no package has is left out.
pub async fn library_providers(
    spec: &DebianSpec,
    arch: &str,
    libraries: &BTreeSet<String>,
    http: &Http,
    store: &BlobStore,
) -> Result<BTreeMap<String, String>, DebianError> {
    let (mirror, url, release) = signed_release(spec, http).await?;
    let index_path = format!("main/Contents-{arch}.gz");
    let (digest, _) =
        release
            .files
            .get(&index_path)
            .cloned()
            .ok_or_else(|| DebianError::BadRelease {
                url: redact(&url),
                message: format!("lists no {index_path}"),
            })?;
    let index_url = format!("{mirror}/dists/{}/{index_path}", spec.suite);
    let what = format!("the {} contents index", spec.suite);
    let file = open_index(http, store, &index_url, &digest, &index_path, what).await?;
    let bad = |message: String| DebianError::BadRelease {
        url: redact(&index_url),
        message,
    };
    // ~1 GiB inflated for a whole suite; a bomb stops at 4 GiB.
    let reader = std::io::BufReader::new(flate2::read::MultiGzDecoder::new(file).take(4 << 30));
    let mut found = BTreeMap::new();
    for line in reader.split(b'\n') {
        let line = line.map_err(|e| bad(format!("cannot decompress: {e}")))?;
        if let Some((library, package)) = contents_entry(&line, libraries) {
            found.entry(library).or_insert(package);
        }
    }
    Ok(found)
}

/// A Contents line (`usr/lib/x86_64-linux-gnu/libpq.so.5   libs/libpq5`) naming one of
/// `libraries` in a library directory: the library and the (first) package.
fn contents_entry(line: &[u8], libraries: &BTreeSet<String>) -> Option<(String, String)> {
    let line = std::str::from_utf8(line).ok()?;
    let (path, packages) = line.trim_end().rsplit_once(|c: char| c.is_whitespace())?;
    let (dir, name) = path.trim_end().rsplit_once('/')?;
    if !libraries.contains(name) {
        return None;
    }
    let in_library_dir = matches!(dir, "usr/lib" | "lib")
        || dir
            .strip_prefix("usr/lib/")
            .or_else(|| dir.strip_prefix("lib/"))
            .is_some_and(|triplet| !triplet.contains('/') && triplet.contains("-linux-"));
    if !in_library_dir {
        return None;
    }
    let first = packages.split(',').next()?;
    let package = first.rsplit('/').next()?;
    Some((name.to_string(), package.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_names_the_oci_platform_not_dpkgs() {
        let digest = lockship_oci::digest::Digest::of_bytes(b"layer");
        let layer = LayerInfo {
            media_type: String::new(),
            digest: digest.clone(),
            size: 0,
            diff_id: digest,
            uncompressed_size: 0,
        };
        let platform = lockship_oci::platform::Platform::parse("linux/arm/v5").unwrap();
        let arm = config(&layer, "test", &platform);
        assert_eq!(arm["architecture"], "arm");
        assert_eq!(arm["variant"], "v5");
        let amd64 = lockship_oci::platform::Platform::parse("linux/amd64").unwrap();
        assert!(config(&layer, "test", &amd64).get("variant").is_none());
    }

    #[test]
    fn a_builder_is_held_to_the_base_locks_versions() {
        let entry = |name: &str, version: &str| {
            let mut e = crate::control::parse_packages(
                &format!("Package: {name}\nVersion: {version}\nArchitecture: amd64\nFilename: p/{name}.deb\nSize: 1\nSHA256: 01\n"),
                "amd64",
            )
            .remove(0);
            e.archive = "bookworm".into();
            e
        };
        let mut entries = vec![
            entry("python3.11", "3.11.2-6+deb12u8"),
            entry("python3.11", "3.11.2-6+deb12u9"),
            entry("gone", "2"),
            entry("free", "1"),
            entry("free", "2"),
        ];
        let pin = |name: &str, version: &str| crate::base_lock::LockedDeb {
            name: name.into(),
            version: version.into(),
            architecture: "amd64".into(),
            source: None,
            archive: None,
            filename: String::new(),
            sha256: String::new(),
            size: 0,
            data_only: false,
        };
        let pins = BaseLock {
            version: 1,
            suite: "bookworm".into(),
            codename: "bookworm".into(),
            release: None,
            architecture: "amd64".into(),
            requested: Vec::new(),
            exclude: Vec::new(),
            packages: vec![pin("python3.11", "3.11.2-6+deb12u8"), pin("gone", "1")],
        };
        hold_to(&mut entries, &pins);
        let left: Vec<(&str, &str)> = entries
            .iter()
            .map(|e| (e.name.as_str(), e.version.as_str()))
            .collect();
        assert_eq!(
            left,
            [
                ("python3.11", "3.11.2-6+deb12u8"),
                ("gone", "2"),
                ("free", "1"),
                ("free", "2")
            ]
        );
    }

    #[test]
    fn contents_lines_name_the_package_of_a_library() {
        let wanted: BTreeSet<String> = ["libpq.so.5".to_string()].into();
        assert_eq!(
            contents_entry(
                b"usr/lib/x86_64-linux-gnu/libpq.so.5                     libs/libpq5",
                &wanted
            ),
            Some(("libpq.so.5".into(), "libpq5".into()))
        );
        assert_eq!(
            contents_entry(
                b"usr/lib/libpq.so.5 libs/libpq5,oldlibs/libpq-compat",
                &wanted
            ),
            Some(("libpq.so.5".into(), "libpq5".into()))
        );
        // Not in a library directory, another file, not text.
        assert_eq!(
            contents_entry(b"usr/share/doc/x/libpq.so.5 doc/x", &wanted),
            None
        );
        assert_eq!(
            contents_entry(b"usr/lib/x86_64-linux-gnu/libpq.so.6 libs/libpq6", &wanted),
            None
        );
        assert_eq!(contents_entry(b"\xff\xfe", &wanted), None);
    }
}
