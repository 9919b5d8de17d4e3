//! Reads a wheel's table of contents and refuses what no installer should accept: entries that
//! escape the wheel or appear twice, a file where a directory must be, symlinks whose chain of
//! links leaves the wheel, names longer than runtimes can create, more data than an honest
//! archive of that size holds (zip bombs, including entries that share compressed data), and
//! files that RECORD does not vouch for with a hash (PEP 427: "installation will fail if any
//! file in the archive is not both mentioned and correctly hashed in RECORD"). The hashes
//! themselves are checked as the files are read, by whoever reads them.

use std::collections::HashMap;
use std::io::{Read, Seek};

use base64::Engine;

use lockship_oci::digest::ContentCheck;
use lockship_oci::tar_tree::{check_path, MAX_PATH_BYTES};

/// How much a wheel may expand to.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Bytes of all files once inflated. The largest wheels on the public index (CUDA builds
    /// of deep-learning libraries) unpack to a few GiB.
    pub max_unpacked: u64,
    /// Unpacked bytes per byte of archive. Deflate tops out near 1,000:1 on runs of one byte;
    /// real wheels stay under 20:1.
    pub max_ratio: u64,
    /// Archives smaller than this are judged as if they were this size, so a tiny wheel with a
    /// few compressible files is not refused for its ratio.
    pub ratio_floor: u64,
    /// Entries in the archive (real wheels have up to some tens of thousands).
    pub max_entries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_unpacked: 8 << 30,
            max_ratio: 250,
            ratio_floor: 1 << 20,
            max_entries: 500_000,
        }
    }
}

/// What an entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Symlink(String),
}

/// One entry of a wheel, checked.
#[derive(Clone, Debug)]
pub struct WheelEntry {
    /// Its index in the archive.
    pub index: usize,
    /// Normalized relative path (`pkg/mod.py`): no `.`, `..` or empty components.
    pub path: String,
    pub kind: Kind,
    pub executable: bool,
    /// Inflated size.
    pub size: u64,
    /// The hash RECORD gives for it (regular files; None for RECORD itself and its signatures).
    pub check: Option<ContentCheck>,
}

impl WheelEntry {
    /// Whether the entry belongs to the metadata or `.data` parts (installed by moving), as
    /// opposed to the package's own files.
    pub fn is_staged(&self) -> bool {
        let top = self.path.split('/').next().unwrap_or("");
        top.ends_with(".dist-info") || top.ends_with(".data")
    }
}

/// Reads and checks the table of contents of `archive` (`archive_size` bytes on disk).
pub fn read_entries<R: Read + Seek>(
    archive: &mut zip::ZipArchive<R>,
    archive_size: u64,
    limits: &Limits,
) -> Result<Vec<WheelEntry>, String> {
    if archive.len() > limits.max_entries {
        return Err(format!(
            "{} entries, more than the {} lockship accepts",
            archive.len(),
            limits.max_entries
        ));
    }
    let mut entries: Vec<WheelEntry> = Vec::with_capacity(archive.len());
    let mut by_path: HashMap<String, usize> = HashMap::new();
    let mut spans: Vec<(u64, u64, usize)> = Vec::new();
    let mut total: u64 = 0;
    let budget = archive_size
        .max(limits.ratio_floor)
        .saturating_mul(limits.max_ratio)
        .min(limits.max_unpacked);
    for index in 0..archive.len() {
        // Raw access reads the entry's headers without inflating anything.
        let entry = archive.by_index_raw(index).map_err(|e| e.to_string())?;
        let shown = String::from_utf8_lossy(entry.name_raw()).into_owned();
        // The zip crate reads `/etc/x` as `etc/x`; a wheel that names an absolute path means
        // one outside it, as `../` does.
        if shown.starts_with(['/', '\\']) {
            return Err(format!("entry {shown:?} points outside the wheel"));
        }
        let rel = entry
            .enclosed_name()
            .ok_or_else(|| format!("entry {shown:?} points outside the wheel"))?;
        let path = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        if path.is_empty() {
            continue; // `./`: the root itself
        }
        check_path(&path).map_err(|e| format!("entry {shown:?}: {e}"))?;
        let kind = if entry.is_dir() {
            Kind::Dir
        } else if entry.is_symlink() {
            Kind::Symlink(String::new())
        } else {
            Kind::File
        };
        let size = entry.size();
        total = total.saturating_add(size);
        if total > budget {
            return Err(format!(
                "it unpacks to more than {budget} bytes from a {archive_size}-byte archive, which no honest wheel does (a zip bomb?)"
            ));
        }
        if kind != Kind::Dir {
            let start = entry.header_start();
            let end = entry
                .data_start()
                .unwrap_or(start)
                .saturating_add(entry.compressed_size());
            spans.push((start, end, index));
        }
        let executable = entry.unix_mode().is_some_and(|m| m & 0o111 != 0);
        drop(entry);
        match by_path.get(&path).map(|&i| &entries[i].kind) {
            Some(Kind::Dir) if kind == Kind::Dir => continue,
            Some(_) => return Err(format!("entry {path} appears twice")),
            None => {}
        }
        by_path.insert(path.clone(), entries.len());
        entries.push(WheelEntry {
            index,
            path,
            kind,
            executable,
            size,
            check: None,
        });
    }
    refuse_shared_data(&mut spans, archive)?;
    refuse_conflicts(&entries, &by_path)?;
    read_symlinks(&mut entries, archive)?;
    check_symlinks(&entries)?;
    attach_record(&mut entries, &by_path, archive)?;
    Ok(entries)
}

/// Two entries whose data overlap (or one inside another's) are how a small archive claims
/// gigabytes: the "non-recursive zip bomb". Honest archives store each file once.
fn refuse_shared_data<R: Read + Seek>(
    spans: &mut [(u64, u64, usize)],
    archive: &mut zip::ZipArchive<R>,
) -> Result<(), String> {
    spans.sort_unstable();
    for pair in spans.windows(2) {
        let ((_, end, a), (start, _, b)) = (pair[0], pair[1]);
        if start < end {
            let name = |i: usize, archive: &mut zip::ZipArchive<R>| {
                archive
                    .name_for_index(i)
                    .and_then(Result::ok)
                    .map(|n| n.into_owned())
                    .unwrap_or_else(|| format!("#{i}"))
            };
            return Err(format!(
                "entries {} and {} share compressed data (a zip bomb)",
                name(a, archive),
                name(b, archive)
            ));
        }
    }
    Ok(())
}

/// Refuses an entry inside another that is not a directory (a file `x` and a file `x/y`).
fn refuse_conflicts(
    entries: &[WheelEntry],
    by_path: &HashMap<String, usize>,
) -> Result<(), String> {
    for entry in entries {
        let mut parent = entry.path.as_str();
        while let Some((dir, _)) = parent.rsplit_once('/') {
            if let Some(&i) = by_path.get(dir) {
                match &entries[i].kind {
                    Kind::Dir => {}
                    Kind::File => {
                        return Err(format!("{} is a file and also holds {}", dir, entry.path))
                    }
                    Kind::Symlink(_) => {
                        return Err(format!(
                            "{} goes through the symlink {dir}; nothing may be written through one",
                            entry.path
                        ))
                    }
                }
            }
            parent = dir;
        }
    }
    Ok(())
}

fn read_symlinks<R: Read + Seek>(
    entries: &mut [WheelEntry],
    archive: &mut zip::ZipArchive<R>,
) -> Result<(), String> {
    for entry in entries.iter_mut() {
        if let Kind::Symlink(target) = &mut entry.kind {
            let member = archive.by_index(entry.index).map_err(|e| e.to_string())?;
            let mut bytes = Vec::new();
            member
                .take(MAX_PATH_BYTES as u64 + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| format!("{}: {e}", entry.path))?;
            *target = String::from_utf8(bytes)
                .map_err(|_| format!("symlink {} has a target that is not UTF-8", entry.path))?;
        }
    }
    Ok(())
}

/// Every symlink must resolve, following the wheel's own links link by link, to a path inside
/// the wheel (whose root is site-packages in the image); the metadata and `.data` parts may not
/// hold links at all, since installing them moves files to other directories.
fn check_symlinks(entries: &[WheelEntry]) -> Result<(), String> {
    let links: HashMap<&str, &str> = entries
        .iter()
        .filter_map(|e| match &e.kind {
            Kind::Symlink(t) => Some((e.path.as_str(), t.as_str())),
            _ => None,
        })
        .collect();
    for entry in entries {
        let Kind::Symlink(target) = &entry.kind else {
            continue;
        };
        if entry.is_staged() {
            return Err(format!(
                "symlink {} in the wheel's metadata or .data (only package files may be links)",
                entry.path
            ));
        }
        resolve_link(&entry.path, target, &links)
            .map_err(|why| format!("symlink {} -> {target} {why}", entry.path))?;
    }
    Ok(())
}

/// Where the symlink at `link` with target `target` ends up, following the other `links` met on
/// the way (a link may point through another); an error says why it leaves the wheel.
pub fn resolve_link(
    link: &str,
    target: &str,
    links: &HashMap<&str, &str>,
) -> Result<String, String> {
    const MAX_HOPS: usize = 40; // the kernel's own limit (ELOOP)
    if target.starts_with('/') {
        return Err("is absolute, so it leaves the wheel".into());
    }
    // Where the walk stands: first the link's own directory.
    let mut at: Vec<String> = link.split('/').map(String::from).collect();
    at.pop();
    // Components still to walk, the next one last.
    let mut todo: Vec<String> = target.rsplit('/').map(String::from).collect();
    let mut hops = 0;
    while let Some(part) = todo.pop() {
        match part.as_str() {
            "" | "." => {}
            ".." => {
                if at.pop().is_none() {
                    return Err("climbs out of the wheel".into());
                }
            }
            _ => {
                at.push(part);
                let here = at.join("/");
                if let Some(next) = links.get(here.as_str()) {
                    hops += 1;
                    if hops > MAX_HOPS {
                        return Err("loops".into());
                    }
                    if next.starts_with('/') {
                        return Err(format!(
                            "goes through {here}, whose target is absolute, so it leaves the wheel"
                        ));
                    }
                    // The link is replaced by its target, walked from the link's directory.
                    at.pop();
                    todo.extend(next.rsplit('/').map(String::from));
                }
            }
        }
    }
    Ok(at.join("/"))
}

/// Reads RECORD and gives each regular file its hash; a file RECORD does not list with a hash,
/// or lists with another size, is refused.
fn attach_record<R: Read + Seek>(
    entries: &mut [WheelEntry],
    by_path: &HashMap<String, usize>,
    archive: &mut zip::ZipArchive<R>,
) -> Result<(), String> {
    let dist_infos: Vec<&str> = entries
        .iter()
        .filter_map(|e| {
            let top = e.path.split('/').next()?;
            (top.ends_with(".dist-info") && e.path == format!("{top}/RECORD")).then_some(top)
        })
        .collect();
    let dist_info = match dist_infos.as_slice() {
        [one] => one.to_string(),
        [] => return Err("it has no *.dist-info/RECORD".into()),
        many => {
            return Err(format!(
                "it has {} .dist-info directories with a RECORD ({})",
                many.len(),
                many.join(", ")
            ))
        }
    };
    let record_index = entries[by_path[&format!("{dist_info}/RECORD")]].index;
    let mut text = String::new();
    archive
        .by_index(record_index)
        .map_err(|e| e.to_string())?
        .take(64 << 20)
        .read_to_string(&mut text)
        .map_err(|e| format!("{dist_info}/RECORD: {e}"))?;
    let record = parse_record(&text).map_err(|e| format!("{dist_info}/RECORD: {e}"))?;
    let unhashed = [
        format!("{dist_info}/RECORD"),
        format!("{dist_info}/RECORD.jws"),
        format!("{dist_info}/RECORD.p7s"),
    ];
    for entry in entries.iter_mut() {
        if entry.kind == Kind::Dir || unhashed.contains(&entry.path) {
            continue;
        }
        let Some(line) = record.get(&entry.path) else {
            return Err(format!(
                "{} is not listed in RECORD",
                entry.path.escape_debug()
            ));
        };
        if let Kind::Symlink(_) = entry.kind {
            continue; // listed is enough: a link has no contents of its own to hash
        }
        let Some(check) = &line.check else {
            return Err(format!("RECORD lists {} without a hash", entry.path));
        };
        if line.size.is_some_and(|s| s != entry.size) {
            return Err(format!(
                "{} is {} bytes, RECORD says {}",
                entry.path,
                entry.size,
                line.size.unwrap_or(0)
            ));
        }
        entry.check = Some(check.clone());
    }
    Ok(())
}

/// One line of RECORD.
#[derive(Debug, PartialEq, Eq)]
pub struct RecordLine {
    pub check: Option<ContentCheck>,
    pub size: Option<u64>,
}

/// Parses RECORD (CSV: path, `algorithm=urlsafe-base64-digest`, size) into lines by normalized
/// path. A hash in an algorithm other than SHA-256/384/512 is an error (PEP 427 forbids md5 and
/// sha1), as is a malformed one.
pub fn parse_record(text: &str) -> Result<HashMap<String, RecordLine>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut lines = HashMap::new();
    for (n, row) in reader.records().enumerate() {
        let row = row.map_err(|e| format!("line {}: {e}", n + 1))?;
        let Some(path) = row.get(0).filter(|p| !p.is_empty()) else {
            continue;
        };
        let path = normalize(path);
        let check = match row.get(1).unwrap_or("") {
            "" => None,
            hash => {
                let (algorithm, encoded) = hash
                    .split_once('=')
                    .ok_or_else(|| format!("line {}: hash `{hash}` has no algorithm", n + 1))?;
                let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(encoded.trim_end_matches('='))
                    .map_err(|_| format!("line {}: hash of {path} is not base64", n + 1))?;
                Some(ContentCheck::new(algorithm, &bytes).ok_or_else(|| {
                    format!(
                        "line {}: {path} is hashed with `{algorithm}`; wheels must use sha256 or stronger",
                        n + 1
                    )
                })?)
            }
        };
        let size = match row.get(2).unwrap_or("") {
            "" => None,
            s => Some(
                s.parse()
                    .map_err(|_| format!("line {}: size `{s}` of {path} is not a number", n + 1))?,
            ),
        };
        lines.insert(path, RecordLine { check, size });
    }
    Ok(lines)
}

/// A RECORD path in the form entries are compared in (`./a//b` → `a/b`).
fn normalize(path: &str) -> String {
    path.split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn link_chains_are_followed_to_their_end() {
        let none = HashMap::new();
        assert_eq!(
            resolve_link("pkg/lib/a.so", "b.so", &none).unwrap(),
            "pkg/lib/b.so"
        );
        assert_eq!(
            resolve_link("pkg/lib/a.so", "../../other/x", &none).unwrap(),
            "other/x"
        );
        assert!(resolve_link("pkg/lib/a.so", "../../../x", &none).is_err());
        assert!(resolve_link("pkg/a", "/etc/passwd", &none).is_err());
        // Each link alone stays inside; the chain climbs out.
        let chain: HashMap<&str, &str> = [("pkg/up", ".."), ("pkg/up2", "up/..")].into();
        assert_eq!(resolve_link("pkg/up", "..", &chain).unwrap(), "");
        let err = resolve_link("pkg/evil", "up2/../etc", &chain).unwrap_err();
        assert!(err.contains("climbs out"), "{err}");
        // A link through a link with an absolute target.
        let abs: HashMap<&str, &str> = [("pkg/root", "/")].into();
        assert!(resolve_link("pkg/x", "root/etc", &abs).is_err());
        // Loops end.
        let lp: HashMap<&str, &str> = [("a", "b"), ("b", "a")].into();
        assert!(resolve_link("c", "a", &lp).unwrap_err().contains("loops"));
    }

    #[test]
    fn record_lines() {
        let text = "pkg/__init__.py,sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU,0\n\"pkg/a,b.py\",,\npkg/RECORD,,\n";
        let record = parse_record(text).unwrap();
        assert_eq!(record["pkg/__init__.py"].size, Some(0));
        assert!(record["pkg/__init__.py"].check.is_some());
        assert_eq!(record["pkg/a,b.py"].check, None);
        let err = parse_record("x.py,md5=1B2M2Y8AsgTpgAmY7PhCfg,0\n").unwrap_err();
        assert!(err.contains("wheels must use sha256 or stronger"), "{err}");
        assert!(parse_record("x.py,sha256=!!!,1\n").is_err());
        assert!(
            parse_record("x.py,sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU,big\n").is_err()
        );
    }

    /// A wheel whose entries are `(name, contents)`, with a RECORD that lists `listed` of them
    /// (all when None) with their true hashes.
    fn wheel(files: &[(&str, &[u8])], listed: Option<&[&str]>) -> Vec<u8> {
        use sha2::Digest as _;
        let mut out = std::io::Cursor::new(Vec::new());
        let mut zip = zip::ZipWriter::new(&mut out);
        let opts = zip::write::SimpleFileOptions::default();
        let mut record = String::new();
        for (name, body) in files {
            zip.start_file(*name, opts).unwrap();
            zip.write_all(body).unwrap();
            if listed.is_none_or(|l| l.contains(name)) {
                let hash = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(sha2::Sha256::digest(body));
                record.push_str(&format!("{name},sha256={hash},{}\n", body.len()));
            }
        }
        record.push_str("demo-1.0.dist-info/RECORD,,\n");
        zip.start_file("demo-1.0.dist-info/RECORD", opts).unwrap();
        zip.write_all(record.as_bytes()).unwrap();
        zip.finish().unwrap();
        out.into_inner()
    }

    fn read_with(bytes: &[u8], limits: &Limits) -> Result<Vec<WheelEntry>, String> {
        let mut archive =
            zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| e.to_string())?;
        read_entries(&mut archive, bytes.len() as u64, limits)
    }

    fn read(bytes: &[u8]) -> Result<Vec<WheelEntry>, String> {
        read_with(bytes, &Limits::default())
    }

    /// A zip by hand: one stored file, and a second central directory entry pointing at the
    /// same local header and data. Readers then see two files for the price of one.
    fn overlapping_zip() -> Vec<u8> {
        let data = b"print('hello')\n";
        let crc = {
            let mut h = flate2::Crc::new();
            h.update(data);
            h.sum()
        };
        let le16 = |v: u16| v.to_le_bytes().to_vec();
        let le32 = |v: u32| v.to_le_bytes().to_vec();
        let name = b"demo/a.py";
        let mut out = Vec::new();
        out.extend(le32(0x0403_4b50));
        out.extend([le16(20), le16(0), le16(0), le16(0), le16(0)].concat());
        out.extend([le32(crc), le32(data.len() as u32), le32(data.len() as u32)].concat());
        out.extend([le16(name.len() as u16), le16(0)].concat());
        out.extend(name);
        out.extend(data);
        let cd_start = out.len() as u32;
        for central in [&b"demo/a.py"[..], &b"demo/b.py"[..]] {
            out.extend(le32(0x0201_4b50));
            out.extend([le16(20), le16(20), le16(0), le16(0), le16(0), le16(0)].concat());
            out.extend([le32(crc), le32(data.len() as u32), le32(data.len() as u32)].concat());
            out.extend(
                [
                    le16(central.len() as u16),
                    le16(0),
                    le16(0),
                    le16(0),
                    le16(0),
                ]
                .concat(),
            );
            out.extend([le32(0), le32(0)].concat());
            out.extend(central);
        }
        let cd_len = out.len() as u32 - cd_start;
        out.extend(le32(0x0605_4b50));
        out.extend([le16(0), le16(0), le16(2), le16(2)].concat());
        out.extend([le32(cd_len), le32(cd_start), le16(0)].concat());
        out
    }

    #[test]
    fn honest_wheels_pass_with_their_hashes() {
        let bytes = wheel(
            &[
                ("demo/__init__.py", b"x = 1\n"),
                ("demo-1.0.dist-info/METADATA", b"Name: demo\n"),
            ],
            None,
        );
        let entries = read(&bytes).unwrap();
        let init = entries
            .iter()
            .find(|e| e.path == "demo/__init__.py")
            .unwrap();
        assert!(init.check.is_some() && !init.is_staged());
        let record = entries.iter().find(|e| e.path.ends_with("RECORD")).unwrap();
        assert!(record.check.is_none() && record.is_staged());
    }

    #[test]
    fn dishonest_wheels_are_refused() {
        let err = read(&wheel(
            &[("demo/a.py", b"1"), ("demo/b.py", b"2")],
            Some(&["demo/a.py"]),
        ))
        .unwrap_err();
        assert_eq!(err, "demo/b.py is not listed in RECORD");
        let err = read(&wheel(&[("/tmp/demo/a.py", b"1")], None)).unwrap_err();
        assert_eq!(err, "entry \"/tmp/demo/a.py\" points outside the wheel");
        let err = read(&wheel(
            &[("demo/a.py", b"1"), ("demo/a.py/x.py", b"2")],
            None,
        ))
        .unwrap_err();
        assert!(
            err.contains("demo/a.py is a file and also holds demo/a.py/x.py"),
            "{err}"
        );
        let long = format!("demo/{}.py", "n".repeat(300));
        let err = read(&wheel(&[(long.as_str(), b"1")], None)).unwrap_err();
        assert!(err.contains("a file name of 303 bytes"), "{err}");
        let err = read(&wheel(&[("demo-1.0.dist-info/METADATA", b"")], Some(&[]))).unwrap_err();
        assert!(err.contains("METADATA is not listed in RECORD"), "{err}");
        let zeros = vec![0u8; 4 << 20];
        let tight = Limits {
            ratio_floor: 0,
            ..Limits::default()
        };
        let err = read_with(
            &wheel(&[("demo/zeros.bin", zeros.as_slice())], None),
            &tight,
        )
        .unwrap_err();
        assert!(
            err.contains("which no honest wheel does (a zip bomb?)"),
            "{err}"
        );
        let err = read(&overlapping_zip()).unwrap_err();
        assert_eq!(
            err,
            "entries demo/a.py and demo/b.py share compressed data (a zip bomb)"
        );
    }
}
