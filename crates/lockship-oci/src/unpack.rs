//! Unpacks chosen files of an image's layers into a host directory, merged as a container
//! runtime merges them (later layers win, whiteouts delete), without ever following a link on
//! the host: symlinks are resolved inside the image's own root, and what lands on disk is
//! plain directories, files and hard links between them. Used to run a base's own interpreter
//! on the host (bytecode), where a hostile base must not be able to write outside `dest`.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use crate::layer_stream;
use crate::tar_tree::check_path;

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("cannot read base layer {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("base layer {path}: the files chosen from it pass 4 GiB")]
    TooLarge { path: PathBuf },
    /// lockship is being stopped: nothing more is written, so that the stop's clean-up can
    /// remove the destination without a writer filling it again.
    #[error("stopped")]
    Stopped,
}

/// What one unpack may write in all: an interpreter with its libraries is ~100 MB; a hostile
/// base must not fill the disk. (`UnpackError::TooLarge` says 4 GiB.)
pub const MAX_WRITTEN: u64 = 4 << 30;

/// What the merged tree holds at a path.
#[derive(Clone, Debug)]
enum Node {
    Dir,
    /// A regular file, written to disk if it was selected.
    File {
        written: bool,
    },
    Symlink(String),
    /// A tar hard link to another path of the image.
    Link(String),
}

/// Symlinks followed while resolving one path before giving up (the kernel's limit).
const MAX_LINKS: usize = 40;

/// Unpacks the regular files of `layers` (blobs, base first; gzip, zstd or plain, told by
/// their first bytes) whose path in the image (symlinks in their parent directories resolved
/// inside the image) `select` accepts into `dest`, which must be empty.
/// A selected symlink or hard link whose target is a written file becomes a hard link to it,
/// so a library found by its soname (`libz.so.1` → `libz.so.1.2.13`) is there under both.
pub fn unpack_selected(
    layers: &[PathBuf],
    dest: &Path,
    select: &dyn Fn(&str) -> bool,
) -> Result<(), UnpackError> {
    let mut merge = Merge::new(Some(dest), select);
    merge.add_layers(layers)?;
    merge.finish(select).map(|_| ())
}

/// The paths of the files and links (not directories) the merged `layers` hold that `select`
/// accepts, read without writing anything.
pub fn merged_paths(
    layers: &[PathBuf],
    select: &dyn Fn(&str) -> bool,
) -> Result<Vec<String>, UnpackError> {
    let mut merge = Merge::new(None, &|_| false);
    merge.add_layers(layers)?;
    Ok(merge
        .tree
        .into_iter()
        .filter(|(p, n)| !matches!(n, Node::Dir) && select(p))
        .map(|(p, _)| p)
        .collect())
}

/// Layers merged into a tree one tar entry at a time, the regular files `select` accepts
/// written under `dest` as they come: what [`unpack_selected`] does, for a reader that walks
/// the layers itself (the base probe unpacks the interpreter in the pass that inspects the
/// base, rather than decompressing the base a second time).
pub struct Merge<'a> {
    tree: BTreeMap<String, Node>,
    dest: Option<&'a Path>,
    select: &'a dyn Fn(&str) -> bool,
    /// Bytes written so far (see [`MAX_WRITTEN`]).
    total: u64,
}

impl<'a> Merge<'a> {
    /// A merge writing the files `select` accepts under `dest` (empty); with no `dest`, one
    /// that only builds the tree (what [`merged_paths`] lists).
    pub fn new(dest: Option<&'a Path>, select: &'a dyn Fn(&str) -> bool) -> Self {
        Merge {
            tree: BTreeMap::new(),
            dest,
            select,
            total: 0,
        }
    }

    /// Reads whole `layers` (blobs, base first) into the merge.
    fn add_layers(&mut self, layers: &[PathBuf]) -> Result<(), UnpackError> {
        for layer in layers {
            let rerr = |source| UnpackError::Read {
                path: layer.clone(),
                source,
            };
            let reader = layer_stream::open(layer).map_err(rerr)?;
            let mut archive = tar::Archive::new(reader);
            for entry in archive.entries().map_err(rerr)? {
                self.add(layer, &mut entry.map_err(rerr)?)?;
            }
        }
        Ok(())
    }

    /// Takes the next entry of `layer` (named in errors), layers in order, base first; reads
    /// its contents only when it is a file to write.
    pub fn add<R: io::Read>(
        &mut self,
        layer: &Path,
        entry: &mut tar::Entry<'_, R>,
    ) -> Result<(), UnpackError> {
        self.add_after(layer, entry, &[])
    }

    /// [`Merge::add`] of an entry whose first bytes, `read`, the caller has already read
    /// from it (the base probe keeps a few files of /etc, whose paths may resolve, through
    /// the image's symlinks, to one this merge writes).
    pub fn add_after<R: io::Read>(
        &mut self,
        layer: &Path,
        entry: &mut tar::Entry<'_, R>,
        read: &[u8],
    ) -> Result<(), UnpackError> {
        let rerr = |source| UnpackError::Read {
            path: layer.to_path_buf(),
            source,
        };
        let raw = entry.path().map_err(rerr)?.to_string_lossy().into_owned();
        let Some(literal) = normalise(&raw) else {
            return Ok(());
        };
        let (dir, name) = split(&literal);
        let dir = if dir.is_empty() {
            String::new()
        } else {
            match resolve(&self.tree, dir, true) {
                Some(d) => d,
                None => return Ok(()),
            }
        };
        let path = join(&dir, name);
        let (tree, dest) = (&mut self.tree, self.dest);
        if name == ".wh..wh..opq" {
            return remove_under(tree, dest, &dir, false);
        }
        if let Some(deleted) = name.strip_prefix(".wh.") {
            // `.wh.` and `.wh...` would name the directory itself or its parent: a hostile
            // layer's way to delete what is beside `dest`. No whiteout means that.
            if deleted.is_empty() || deleted == "." || deleted == ".." {
                return Ok(());
            }
            return remove_under(tree, dest, &join(&dir, deleted), true);
        }
        // Whatever the path held before (a file, a link, a directory of the lower layer
        // replaced by a file) goes; a directory over a directory merges.
        let kind = entry.header().entry_type();
        if !(kind.is_dir() && matches!(tree.get(&path), Some(Node::Dir))) {
            remove_under(tree, dest, &path, true)?;
        }
        let node = if kind.is_dir() {
            Node::Dir
        } else if kind.is_symlink() {
            match entry.link_name().map_err(rerr)? {
                Some(target) => Node::Symlink(target.to_string_lossy().into_owned()),
                None => return Ok(()),
            }
        } else if kind.is_hard_link() {
            match entry
                .link_name()
                .map_err(rerr)?
                .and_then(|t| normalise(&t.to_string_lossy()))
            {
                Some(target) => Node::Link(target),
                None => return Ok(()),
            }
        } else if kind.is_file() {
            let written = dest.is_some() && (self.select)(&path);
            if let (true, Some(dest)) = (written, dest) {
                if lockship_sys::interrupt::stopping().is_some() {
                    return Err(UnpackError::Stopped);
                }
                let out = dest.join(&path);
                make_parents(dest, &path)?;
                let werr = |source| UnpackError::Write {
                    path: out.clone(),
                    source,
                };
                let size = entry.header().size().map_err(rerr)?;
                self.total = self.total.saturating_add(size);
                if self.total > MAX_WRITTEN {
                    return Err(UnpackError::TooLarge {
                        path: layer.to_path_buf(),
                    });
                }
                let mut file = std::fs::File::create(&out).map_err(werr)?;
                io::copy(&mut io::Read::chain(read, &mut *entry), &mut file).map_err(rerr)?;
                let mode = entry.header().mode().unwrap_or(0o644) & 0o755;
                use std::os::unix::fs::PermissionsExt;
                file.set_permissions(std::fs::Permissions::from_mode(mode | 0o600))
                    .map_err(werr)?;
                // The image's times: timestamp pycs beside a source stay valid.
                if let Ok(secs) = entry.header().mtime() {
                    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
                    file.set_modified(when).map_err(werr)?;
                }
            }
            Node::File { written }
        } else {
            // Devices, fifos: nothing a program run from here needs.
            return Ok(());
        };
        tree.insert(path, node);
        Ok(())
    }

    /// Ends the merge: written files that `keep` rejects are removed again, with the
    /// directories that held only them (`keep` may be narrower than the `select` they were
    /// written by, when which ones are needed is known only once every layer was read), and
    /// the links `keep` accepts whose target is a written file become hard links to it, once
    /// every file they may name is on disk. Says whether every file `keep` accepts was
    /// written (false: `select` was narrower than `keep`, and `dest` lacks some).
    pub fn finish(mut self, keep: &dyn Fn(&str) -> bool) -> Result<bool, UnpackError> {
        let Some(dest) = self.dest else {
            return Ok(true);
        };
        let mut complete = true;
        for (path, node) in self.tree.iter_mut() {
            match node {
                Node::File { written: true } if !keep(path) => {
                    let out = dest.join(path);
                    std::fs::remove_file(&out)
                        .map_err(|source| UnpackError::Write { path: out, source })?;
                    remove_empty_parents(dest, path);
                    *node = Node::File { written: false };
                }
                Node::File { written: false } if keep(path) => complete = false,
                _ => {}
            }
        }
        let tree = &self.tree;
        let links: Vec<&String> = tree
            .iter()
            .filter(|(p, n)| matches!(n, Node::Symlink(_) | Node::Link(_)) && keep(p))
            .map(|(p, _)| p)
            .collect();
        for path in links {
            let target = match &tree[path] {
                Node::Link(target) => resolve(tree, target, true),
                _ => resolve(tree, path, true),
            };
            if let Some(target) = target {
                if matches!(tree.get(&target), Some(Node::File { written: true })) {
                    make_parents(dest, path)?;
                    let out = dest.join(path);
                    std::fs::hard_link(dest.join(&target), &out)
                        .map_err(|source| UnpackError::Write { path: out, source })?;
                }
            }
        }
        Ok(complete)
    }
}

/// Removes the directories above `path` under `dest` that are left empty, deepest first.
fn remove_empty_parents(dest: &Path, path: &str) {
    let mut dir = split(path).0;
    // remove_dir fails on a directory that still holds something: there it stops.
    while !dir.is_empty() && std::fs::remove_dir(dest.join(dir)).is_ok() {
        dir = split(dir).0;
    }
}

/// A tar path as a relative image path, or None for one that is empty or climbs out.
fn normalise(raw: &str) -> Option<String> {
    let path = raw
        .trim_start_matches("./")
        .trim_start_matches('/')
        .trim_end_matches('/');
    if path.is_empty() || path == "." || check_path(path).is_err() {
        return None;
    }
    Some(path.to_string())
}

fn split(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// Resolves `path` inside the image: every symlink component is followed with the image's
/// `/` as the root (`..` stops there), the last one only when `last` is set. None when a
/// component is missing from the tree is fine (the path may be created), but a loop is not.
fn resolve(tree: &BTreeMap<String, Node>, path: &str, last: bool) -> Option<String> {
    let mut pending: Vec<String> = path
        .split('/')
        .rev()
        .filter(|c| !c.is_empty())
        .map(String::from)
        .collect();
    let mut done: Vec<String> = Vec::new();
    let mut followed = 0;
    while let Some(component) = pending.pop() {
        match component.as_str() {
            "." => continue,
            ".." => {
                done.pop();
                continue;
            }
            _ => {}
        }
        done.push(component);
        if pending.is_empty() && !last {
            break;
        }
        if let Some(Node::Symlink(target)) = tree.get(&done.join("/")) {
            followed += 1;
            if followed > MAX_LINKS {
                return None;
            }
            done.pop();
            if target.starts_with('/') {
                done.clear();
            }
            pending.extend(
                target
                    .split('/')
                    .rev()
                    .filter(|c| !c.is_empty())
                    .map(String::from),
            );
        }
    }
    Some(done.join("/"))
}

/// Creates the directories above `path` under `dest`. Nothing under `dest` is ever a symlink
/// (see the module), so this cannot be led outside it. `dest` itself is never created: when a
/// stop removed it while this thread was still writing, writing fails instead of leaving a
/// half-unpacked directory behind.
fn make_parents(dest: &Path, path: &str) -> Result<(), UnpackError> {
    make_dir(dest, split(path).0)
}

/// Creates `dir` (relative) under `dest`, and what is missing above it, but not `dest`.
fn make_dir(dest: &Path, dir: &str) -> Result<(), UnpackError> {
    if dir.is_empty() {
        return Ok(());
    }
    let out = dest.join(dir);
    let made = match std::fs::create_dir(&out) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            make_dir(dest, split(dir).0)?;
            std::fs::create_dir(&out)
        }
        other => other,
    };
    match made {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(UnpackError::Write {
            path: out,
            source: e,
        }),
        _ => Ok(()),
    }
}

/// Removes `path` (with `itself`) or only what is below it, from the tree and from `dest`.
fn remove_under(
    tree: &mut BTreeMap<String, Node>,
    dest: Option<&Path>,
    path: &str,
    itself: bool,
) -> Result<(), UnpackError> {
    let prefix = if path.is_empty() {
        String::new()
    } else {
        format!("{path}/")
    };
    let doomed: Vec<String> = tree
        .range(prefix.clone()..)
        .take_while(|(p, _)| p.starts_with(&prefix))
        .map(|(p, _)| p.clone())
        .chain(
            itself
                .then(|| path.to_string())
                .filter(|p| tree.contains_key(p)),
        )
        .collect();
    for p in doomed {
        tree.remove(&p);
    }
    let Some(dest) = dest else {
        return Ok(());
    };
    let on_disk = dest.join(path);
    let gone = match std::fs::symlink_metadata(&on_disk) {
        Ok(meta) if meta.is_dir() && itself => std::fs::remove_dir_all(&on_disk),
        Ok(meta) if meta.is_dir() => {
            for entry in std::fs::read_dir(&on_disk).into_iter().flatten().flatten() {
                let p = entry.path();
                if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                }
                .map_err(|source| UnpackError::Write {
                    path: p.clone(),
                    source,
                })?;
            }
            Ok(())
        }
        Ok(_) => std::fs::remove_file(&on_disk),
        Err(_) => Ok(()),
    };
    gone.map_err(|source| UnpackError::Write {
        path: on_disk,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    enum E<'a> {
        File(&'a str, &'a str),
        Dir(&'a str),
        Symlink(&'a str, &'a str),
        Link(&'a str, &'a str),
    }

    fn layer(dir: &Path, name: &str, entries: &[E<'_>]) -> PathBuf {
        let path = dir.join(name);
        let mut builder = tar::Builder::new(std::fs::File::create(&path).unwrap());
        for e in entries {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o755);
            match e {
                E::File(p, body) => {
                    h.set_size(body.len() as u64);
                    h.set_entry_type(tar::EntryType::Regular);
                    builder.append_data(&mut h, p, body.as_bytes()).unwrap();
                }
                E::Dir(p) => {
                    h.set_size(0);
                    h.set_entry_type(tar::EntryType::Directory);
                    builder.append_data(&mut h, p, io::empty()).unwrap();
                }
                E::Symlink(p, t) | E::Link(p, t) => {
                    h.set_size(0);
                    h.set_entry_type(if matches!(e, E::Symlink(..)) {
                        tar::EntryType::Symlink
                    } else {
                        tar::EntryType::Link
                    });
                    builder.append_link(&mut h, p, t).unwrap();
                }
            }
        }
        builder.finish().unwrap();
        path
    }

    fn read(dest: &Path, p: &str) -> Option<String> {
        std::fs::read_to_string(dest.join(p)).ok()
    }

    #[test]
    fn layers_merge_and_whiteouts_delete() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("root");
        std::fs::create_dir(&dest).unwrap();
        let layers = [
            layer(
                dir.path(),
                "1",
                &[
                    E::Dir("usr/lib"),
                    E::File("usr/lib/libz.so.1.2", "z1"),
                    E::Symlink("usr/lib/libz.so.1", "libz.so.1.2"),
                    E::File("usr/lib/gone.so", "x"),
                    E::File("usr/lib/old/a.so", "x"),
                    E::File("usr/share/doc", "not selected"),
                    E::Symlink("lib", "usr/lib"),
                ],
            ),
            layer(
                dir.path(),
                "2",
                &[
                    E::File("usr/lib/libz.so.1.2", "z2"),
                    E::File("usr/lib/.wh.gone.so", ""),
                    E::File("usr/lib/old/.wh..wh..opq", ""),
                    // Written through the `lib` symlink: lands in usr/lib, as in a container.
                    E::File("lib/libm.so.6", "m"),
                    E::Link("usr/lib/libm-hard.so", "usr/lib/libm.so.6"),
                ],
            ),
        ];
        assert_eq!(
            merged_paths(&layers, &|p| p.starts_with("usr/lib/")).unwrap(),
            [
                "usr/lib/libm-hard.so",
                "usr/lib/libm.so.6",
                "usr/lib/libz.so.1",
                "usr/lib/libz.so.1.2"
            ]
        );
        assert_eq!(
            std::fs::read_dir(&dest).unwrap().count(),
            0,
            "listing writes nothing"
        );
        unpack_selected(&layers, &dest, &|p| p.starts_with("usr/lib/")).unwrap();
        assert_eq!(read(&dest, "usr/lib/libz.so.1.2").as_deref(), Some("z2"));
        assert_eq!(read(&dest, "usr/lib/libz.so.1").as_deref(), Some("z2"));
        assert_eq!(read(&dest, "usr/lib/libm.so.6").as_deref(), Some("m"));
        assert_eq!(read(&dest, "usr/lib/libm-hard.so").as_deref(), Some("m"));
        assert!(!dest.join("usr/lib/gone.so").exists());
        assert!(!dest.join("usr/lib/old/a.so").exists());
        assert!(!dest.join("usr/share").exists());
        assert!(!dest.join("lib").exists());
    }

    #[test]
    fn a_whiteout_never_names_the_directory_or_its_parent() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("root");
        std::fs::create_dir(&dest).unwrap();
        std::fs::write(dir.path().join("beside"), "kept").unwrap();
        let layers = [
            layer(dir.path(), "1", &[E::File("usr/lib/a.so", "a")]),
            layer(
                dir.path(),
                "2",
                &[
                    E::File(".wh...", ""),
                    E::File(".wh..", ""),
                    E::File("usr/lib/.wh...", ""),
                    E::File("usr/lib/.wh.", ""),
                ],
            ),
        ];
        unpack_selected(&layers, &dest, &|_| true).unwrap();
        assert_eq!(read(&dest, "usr/lib/a.so").as_deref(), Some("a"));
        assert_eq!(read(dir.path(), "beside").as_deref(), Some("kept"));
    }

    #[test]
    fn a_merge_fed_entry_by_entry_keeps_only_what_it_finishes_with() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("root");
        std::fs::create_dir(&dest).unwrap();
        let one = layer(
            dir.path(),
            "1",
            &[
                E::File("a/keep.so.1.0", "k"),
                E::Symlink("a/keep.so.1", "keep.so.1.0"),
                E::File("b/drop.so", "d"),
                E::Symlink("b/drop-link.so", "/a/keep.so.1.0"),
            ],
        );
        let mut merge = Merge::new(Some(&dest), &|p| p.ends_with(".so") || p.contains(".so."));
        let mut archive = tar::Archive::new(std::fs::File::open(&one).unwrap());
        for entry in archive.entries().unwrap() {
            merge.add(&one, &mut entry.unwrap()).unwrap();
        }
        assert_eq!(
            read(&dest, "b/drop.so").as_deref(),
            Some("d"),
            "written as read"
        );
        assert!(merge.finish(&|p| p.starts_with("a/")).unwrap(), "complete");
        assert_eq!(read(&dest, "a/keep.so.1.0").as_deref(), Some("k"));
        assert_eq!(read(&dest, "a/keep.so.1").as_deref(), Some("k"));
        assert!(!dest.join("b").exists(), "b/ held only what was dropped");

        // A `keep` wider than what was written says so.
        let dest2 = dir.path().join("root2");
        std::fs::create_dir(&dest2).unwrap();
        let mut merge = Merge::new(Some(&dest2), &|p| p.starts_with("a/"));
        let mut archive = tar::Archive::new(std::fs::File::open(&one).unwrap());
        for entry in archive.entries().unwrap() {
            merge.add(&one, &mut entry.unwrap()).unwrap();
        }
        assert!(
            !merge.finish(&|_| true).unwrap(),
            "b/drop.so was never written"
        );
    }

    #[test]
    fn contents_a_caller_read_first_are_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("root");
        std::fs::create_dir(&dest).unwrap();
        let one = layer(dir.path(), "1", &[E::File("lib/x.so", "0123456789")]);
        let mut merge = Merge::new(Some(&dest), &|_| true);
        let mut archive = tar::Archive::new(std::fs::File::open(&one).unwrap());
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let mut head = [0u8; 4];
            io::Read::read_exact(&mut entry, &mut head).unwrap();
            merge.add_after(&one, &mut entry, &head).unwrap();
        }
        merge.finish(&|_| true).unwrap();
        assert_eq!(read(&dest, "lib/x.so").as_deref(), Some("0123456789"));
    }

    #[test]
    fn links_never_lead_outside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("root");
        std::fs::create_dir(&dest).unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        let escape = format!("{}", outside.display());
        let layers = [layer(
            dir.path(),
            "1",
            &[
                E::Symlink("usr/lib", &escape),
                E::Symlink("up", "../../../../.."),
                E::File("usr/lib/evil.so", "a"),
                E::File("up/evil2.so", "b"),
                E::Symlink("loop", "loop"),
                E::File("loop/x.so", "c"),
                E::Symlink("usr/lib2", "/../../etc/passwd"),
            ],
        )];
        unpack_selected(&layers, &dest, &|_| true).unwrap();
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
        assert!(!dir.path().join("evil2.so").exists());
        // Absolute and climbing targets resolve inside the root.
        assert_eq!(
            read(
                &dest,
                &format!("{}/evil.so", escape.trim_start_matches('/'))
            )
            .as_deref(),
            Some("a")
        );
        assert_eq!(read(&dest, "evil2.so").as_deref(), Some("b"));
        for entry in walkdir::WalkDir::new(&dest) {
            assert!(!entry.unwrap().path_is_symlink());
        }
    }
}
