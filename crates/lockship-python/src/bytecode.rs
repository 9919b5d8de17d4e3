//! Bytecode for the image, compiled on the host by the base's own interpreter: its files are
//! unpacked from the base's layers ([`unpack_interpreter`]) and it is started through the
//! base's own dynamic loader, so no daemon, no container and no second Python are needed, and
//! the `.pyc` files are exactly what that interpreter would write. They are unchecked-hash pycs
//! (PEP 552): no timestamps, so clean builds give the same bytes, and an immutable image never
//! needs the source checked.
//!
//! Running the base's interpreter on the host trusts the base the way `docker build` trusts the
//! image it runs `RUN` steps in, minus the container: it gets its sources on stdin and answers
//! with pycs on stdout, with an empty environment, confined (`lockship_sys::sandbox`) to
//! reading its own unpacked files: a hostile base's interpreter can write nothing on the host,
//! read nothing else and reach no socket. It can still answer wrongly: the layers it compiles
//! are keyed by its identity, so its answers serve no other base.

use std::collections::HashMap;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{ChildStderr, ChildStdin, ChildStdout, Command};
use std::sync::{Arc, Mutex};

use lockship_oci::digest::ContentCheck;
use lockship_oci::tar_tree::{EntryData, TarTree, ZipSource};
use lockship_oci::unpack;
use lockship_sys::interrupt::{Children, Running};
use lockship_sys::sandbox::ReadOnly;
use zip::ZipArchive;

use super::install;

use super::native::{is_library_dir, LIB_DIRS};

#[derive(Debug, thiserror::Error)]
pub enum BytecodeError {
    #[error(transparent)]
    Unpack(#[from] unpack::UnpackError),
    #[error("cannot run the base's interpreter {interpreter} on this machine: {message}")]
    Unrunnable {
        interpreter: String,
        message: String,
    },
    #[error("the base's interpreter {interpreter} is Python {found}, but the base was read as Python {expected}")]
    WrongVersion {
        interpreter: String,
        found: String,
        expected: String,
    },
    #[error("{what}: {message}")]
    Source { what: String, message: String },
    #[error("compiling bytecode with {interpreter} failed: {message}")]
    Compile {
        interpreter: String,
        message: String,
    },
}

/// Standard-library packages the compile worker never imports, directly or not: it starts
/// with `-S` and imports `importlib.util`, `struct` and `warnings` (checked on 3.7 to 3.13),
/// and `compile()` needs `encodings` (a source's coding cookie), which stays whole. Left out of
/// the unpacked interpreter: ~600 files fewer to create, a third less to share.
const STDLIB_UNUSED: [&str; 29] = [
    "site-packages",
    "dist-packages",
    "test",
    "idlelib",
    "tkinter",
    "turtledemo",
    "lib2to3",
    "distutils",
    "ensurepip",
    "pydoc_data",
    "asyncio",
    "email",
    "xml",
    "xmlrpc",
    "http",
    "urllib",
    "wsgiref",
    "html",
    "multiprocessing",
    "concurrent",
    "sqlite3",
    "dbm",
    "curses",
    "ctypes",
    "unittest",
    "venv",
    "zoneinfo",
    "tomllib",
    "__phello__",
];

/// Extension modules of `lib-dynload` that only those packages (or networking, compression
/// and terminals, which the worker has no use for) load, besides CPython's own test modules:
/// left out, they no longer pull libssl, libsqlite3, libtk and the like into the shared
/// interpreter. (`_bz2` backs only the `bz2_codec` bytes codec, which no source is written in.)
const DYNLOAD_UNUSED: [&str; 21] = [
    "_ssl",
    "_hashlib",
    "_sqlite3",
    "_tkinter",
    "_curses",
    "_curses_panel",
    "_ctypes",
    "_ctypes_test",
    "_dbm",
    "_gdbm",
    "_decimal",
    "readline",
    "_lzma",
    "_bz2",
    "_uuid",
    "pyexpat",
    "_elementtree",
    "_asyncio",
    "_multiprocessing",
    "_posixshmem",
    "_zoneinfo",
];

/// Whether `path` (in the image) is needed to run the interpreter at `interpreter` (e.g.
/// `/usr/bin/python3.11`) as the compile worker: the interpreter, the dynamic loader, shared
/// libraries directly in the library directories, and the standard library without its tests,
/// its installed packages and what the worker never imports ([`STDLIB_UNUSED`]).
pub fn needed_to_run(interpreter: &str, minor: u8) -> impl Fn(&str) -> bool {
    let exe = interpreter.trim_start_matches('/').to_string();
    let prefix = exe
        .rsplit_once("/bin/")
        .map(|(p, _)| p.to_string())
        .unwrap_or_default();
    let stdlib = format!("{prefix}/lib/python3.{minor}/");
    move |path: &str| {
        if path == exe {
            return true;
        }
        if let Some(rest) = path.strip_prefix(&stdlib) {
            let (top, below) = rest.split_once('/').unwrap_or((rest, ""));
            if top == "lib-dynload" {
                let module = below.split('.').next().unwrap_or("");
                // CPython's test modules (_testcapi, _testclinic…) and examples (xxlimited…).
                let test = ["_test", "xx", "_xx"].iter().any(|p| module.starts_with(p));
                return !(test || DYNLOAD_UNUSED.contains(&module));
            }
            return !(STDLIB_UNUSED.contains(&top) || top.starts_with("config-"));
        }
        is_shared_library(path)
    }
}

/// Whether `path` is a shared library or the dynamic loader, directly in a library directory.
fn is_shared_library(path: &str) -> bool {
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    is_library_dir(dir) && (name.contains(".so") || name.starts_with("ld-"))
}

/// Whether `path` is [`needed_to_run`] some interpreter a base's probe may pick (`python3.X`
/// in one of [`INTERPRETER_DIRS`](super::probe::INTERPRETER_DIRS)): what is unpacked while
/// the probe reads the layers, before it knows which one it is.
pub fn needed_to_run_any(path: &str) -> bool {
    for bin in super::probe::INTERPRETER_DIRS {
        let prefix = bin.strip_suffix("bin").unwrap_or(bin);
        let Some(rest) = path.strip_prefix(prefix) else {
            continue;
        };
        let minor = rest.strip_prefix("bin/python3.").or_else(|| {
            rest.strip_prefix("lib/python3.")
                .and_then(|r| r.split_once('/').map(|(m, _)| m))
        });
        if let Some(minor) = minor.and_then(|m| m.parse::<u8>().ok()) {
            return needed_to_run(&format!("/{prefix}bin/python3.{minor}"), minor)(path);
        }
    }
    is_shared_library(path)
}

/// Of an interpreter unpacked in `dir` (by [`unpack_interpreter`]), the files (relative paths)
/// a compile worker can need: all but the shared libraries that neither the interpreter nor a
/// standard-library extension module loads, directly or through another library. What a
/// runner that shares the interpreter sends (a base's library directories hold far more).
pub fn worker_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut libraries: HashMap<String, PathBuf> = HashMap::new();
    for item in walkdir::WalkDir::new(dir).min_depth(1) {
        let item = item.map_err(std::io::Error::other)?;
        let rel = item
            .path()
            .strip_prefix(dir)
            .unwrap_or(item.path())
            .to_path_buf();
        let text = rel.to_string_lossy().into_owned();
        let (parent, name) = text.rsplit_once('/').unwrap_or(("", &text));
        if is_library_dir(parent) && !name.starts_with("ld-") {
            libraries.insert(name.to_string(), rel);
        } else if !item.file_type().is_dir() {
            files.push(rel);
        }
    }
    // Every ELF file kept so far (the interpreter, extension modules) and what they load.
    let mut wanted: Vec<String> = Vec::new();
    for rel in &files {
        wanted.extend(needed(&dir.join(rel)));
    }
    let mut kept = std::collections::BTreeSet::new();
    while let Some(name) = wanted.pop() {
        if let Some(rel) = libraries.get(&name) {
            if kept.insert(rel.clone()) {
                wanted.extend(needed(&dir.join(rel)));
            }
        }
    }
    files.extend(kept);
    files.sort();
    Ok(files)
}

/// The `DT_NEEDED` entries of the ELF file at `path` (none for anything else).
fn needed(path: &Path) -> Vec<String> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    if !bytes.starts_with(b"\x7fELF") {
        return Vec::new();
    }
    goblin::elf::Elf::parse(&bytes)
        .map(|elf| elf.libraries.iter().map(|l| l.to_string()).collect())
        .unwrap_or_default()
}

/// Unpacks what running `interpreter` needs from the base's `layers` into `dest` (empty).
pub fn unpack_interpreter(
    layers: &[PathBuf],
    interpreter: &str,
    minor: u8,
    dest: &Path,
) -> Result<(), BytecodeError> {
    let select = needed_to_run(interpreter, minor);
    unpack::unpack_selected(layers, dest, &select)?;
    Ok(())
}

/// The base's interpreter, unpacked on the host and known to start, with its idle compile
/// workers: a worker lives for the whole build, so each layer costs no interpreter start.
#[derive(Debug)]
pub struct Interpreter {
    /// The interpreter's path in the image, for messages.
    name: String,
    exe: PathBuf,
    loader: PathBuf,
    glibc: bool,
    library_path: String,
    /// `sys.implementation.cache_tag`, e.g. `cpython-311`.
    pub cache_tag: String,
    /// `sys.version_info[:3]` as the interpreter reports it.
    pub version: (u8, u8, u8),
    /// Where workers run (their working directory: empty, nothing to import from).
    home: PathBuf,
    /// What the interpreter may touch: its own files, read-only (a hostile base's interpreter
    /// writes nothing on the host; see `lockship_sys::sandbox`).
    sandbox: ReadOnly,
    idle: Mutex<Vec<Worker>>,
}

/// A compile worker: the interpreter running [`WORKER`].
#[derive(Debug)]
struct Worker {
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    stderr: ChildStderr,
    // Last: dropping it kills the process, after the pipes are closed.
    _process: Running,
}

/// Run by the interpreter: reads requests on stdin (a count, then per source its name in the
/// image and its bytes, all length-prefixed, little-endian) and answers each source on stdout
/// with its pyc (1, length, bytes) or 0 when it does not compile. What py_compile does for an
/// unchecked-hash pyc, without its files: `compile()` as `SourceLoader.source_to_code` calls it,
/// then `_code_to_hash_pyc`. Sources that do not compile (test data with deliberate syntax
/// errors, Python 2 files) get no pyc, as with pip and uv; any other failure ends the worker.
/// Nothing touches the disk: creating ~40k small files (sources, pycs, py_compile's temporary
/// files) cost more than compiling on this kind of machine.
const WORKER: &str = r#"
import importlib.util, struct, sys, warnings
# compile() warns on stderr (SyntaxWarning for "\d" in 3.12+); nobody reads it while the worker
# runs, and a full pipe would stall it. Warnings change no bytecode.
warnings.simplefilter("ignore")
from importlib._bootstrap_external import _code_to_hash_pyc
inp, out = sys.stdin.buffer, sys.stdout.buffer
def read(n):
    data = inp.read(n)
    if len(data) != n:
        raise EOFError("short request")
    return data
while True:
    head = inp.read(4)
    if not head:
        break
    (count,) = struct.unpack("<I", head)
    for _ in range(count):
        (n,) = struct.unpack("<I", read(4))
        name = read(n).decode("utf-8", "surrogateescape")
        (n,) = struct.unpack("<Q", read(8))
        source = read(n)
        try:
            code = compile(source, name, "exec", dont_inherit=True, optimize=-1)
        except Exception:
            out.write(b"\0")
            continue
        pyc = _code_to_hash_pyc(code, importlib.util.source_hash(source), False)
        out.write(b"\1" + struct.pack("<Q", len(pyc)) + pyc)
    out.flush()
"#;

/// A worker's address space: the largest source compiled ([`MAX_SOURCE`]) needs ~1.6 GB; a
/// source that needs more gets no pyc (MemoryError) instead of the machine's OOM killer.
const WORKER_MEMORY: u64 = 4 << 30;

const PROBE: &str =
    "import sys; print('%d.%d.%d' % sys.version_info[:3]); print(sys.implementation.cache_tag)";

impl Interpreter {
    /// Finds the loader and libraries in `root` (see [`unpack_interpreter`]) for the
    /// interpreter at `interpreter` in the image, and checks that it starts and is `expected`.
    pub fn open(
        root: &Path,
        interpreter: &str,
        expected: (u8, u8),
        children: &Children,
    ) -> Result<Interpreter, BytecodeError> {
        Interpreter::open_known(root, interpreter, expected, children, None)
    }

    /// [`Interpreter::open`], taking the version and cache tag the interpreter answered before
    /// (`known`, as [`Interpreter::version`] and [`Interpreter::cache_tag`] had them) instead of
    /// starting it to ask.
    pub fn open_known(
        root: &Path,
        interpreter: &str,
        expected: (u8, u8),
        children: &Children,
        known: Option<((u8, u8, u8), String)>,
    ) -> Result<Interpreter, BytecodeError> {
        let unrunnable = |message: String| BytecodeError::Unrunnable {
            interpreter: interpreter.to_string(),
            message,
        };
        let exe = root.join(interpreter.trim_start_matches('/'));
        if !exe.is_file() {
            return Err(unrunnable("it is not in the base's layers".into()));
        }
        let dirs = library_dirs(root);
        let loader = find_loader(&dirs).ok_or_else(|| {
            unrunnable(format!(
                "no dynamic loader for {} in the base",
                std::env::consts::ARCH
            ))
        })?;
        let glibc = loader
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("ld-linux"));
        let library_path = std::env::join_paths(&dirs)
            .map_err(|e| unrunnable(e.to_string()))?
            .to_string_lossy()
            .into_owned();
        let mut interp = Interpreter {
            name: interpreter.to_string(),
            exe,
            loader,
            glibc,
            library_path,
            cache_tag: String::new(),
            version: (0, 0, 0),
            home: root.join(".lockship-workers"),
            sandbox: ReadOnly::beneath(&[root]).with_memory_limit(WORKER_MEMORY),
            idle: Mutex::new(Vec::new()),
        };
        let (version, cache_tag) = match known {
            // What this interpreter answered before (its files have not changed since): no
            // process started to ask again; checked as an answer is.
            Some((version, cache_tag)) => {
                if cache_tag.is_empty() || cache_tag.contains('/') {
                    return Err(unrunnable(format!("it answered {cache_tag:?}")));
                }
                (version, cache_tag)
            }
            None => {
                let out = children
                    .output(interp.command(root).arg("-c").arg(PROBE))
                    .map_err(|e| unrunnable(e.to_string()))?;
                if !out.status.success() {
                    return Err(unrunnable(last_line(&out.stderr)));
                }
                let text = String::from_utf8_lossy(&out.stdout);
                let mut lines = text.lines();
                let version = lines.next().unwrap_or("").trim();
                let cache_tag = lines.next().unwrap_or("").trim().to_string();
                let parts: Vec<u8> = version.split('.').filter_map(|p| p.parse().ok()).collect();
                if parts.len() != 3 || cache_tag.is_empty() || cache_tag.contains('/') {
                    return Err(unrunnable(format!("it answered {text:?}")));
                }
                ((parts[0], parts[1], parts[2]), cache_tag)
            }
        };
        if (version.0, version.1) != expected {
            return Err(BytecodeError::WrongVersion {
                interpreter: interp.name,
                found: format!("{}.{}.{}", version.0, version.1, version.2),
                expected: format!("{}.{}", expected.0, expected.1),
            });
        }
        interp.version = version;
        interp.cache_tag = cache_tag;
        Ok(interp)
    }

    /// The interpreter started through the base's loader, with an empty environment but a
    /// fixed hash seed (set iteration order reaches the bytecode of older Pythons), no user
    /// site and no `site` module, in `cwd`.
    fn command(&self, cwd: &Path) -> Command {
        let mut cmd = Command::new(&self.loader);
        if self.glibc {
            // The host's ld.so.cache names the host's libraries, not the base's.
            cmd.arg("--inhibit-cache");
        }
        cmd.arg("--library-path")
            .arg(&self.library_path)
            .arg(&self.exe)
            .args(["-s", "-S"])
            .env_clear()
            .env("PYTHONHASHSEED", "0")
            .current_dir(cwd);
        self.sandbox.confine(&mut cmd);
        cmd
    }

    /// Whether the interpreter's file system access is confined (Landlock is there): when it
    /// is not, a hostile base's interpreter could write on the host.
    pub fn confined(&self) -> bool {
        self.sandbox.landlocked()
    }

    /// Compiles `jobs` in up to `workers` processes, splitting them by size, and returns each
    /// pyc with the job's `pyc` path (none for a source that does not compile). The pycs do not
    /// depend on how the work is split. With a `memo`, a source this interpreter compiled
    /// before (for another platform's layer) gets that pyc, and what is compiled now is kept.
    pub fn compile(
        &self,
        jobs: &[Job],
        workers: usize,
        children: &Children,
        memo: Option<&PycMemo>,
    ) -> Result<Vec<(String, Vec<u8>)>, BytecodeError> {
        let Some(memo) = memo else {
            return self.compile_all(jobs, workers, children);
        };
        let mut pycs = Vec::new();
        let mut todo: Vec<Job> = Vec::new();
        // The memo key of each job to compile, by its pyc's path (what an answer names).
        let mut keys: HashMap<String, String> = HashMap::new();
        for job in jobs {
            let key = memo.key(self, job);
            match memo.take(&key) {
                Some(pyc) => pycs.push((job.pyc.clone(), pyc)),
                None => {
                    keys.insert(job.pyc.clone(), key);
                    todo.push(job.clone());
                }
            }
        }
        let compiled = self.compile_all(&todo, workers, children)?;
        for (pyc_path, pyc) in &compiled {
            if let Some(key) = keys.get(pyc_path) {
                memo.keep(key, pyc);
            }
        }
        pycs.extend(compiled);
        Ok(pycs)
    }

    fn compile_all(
        &self,
        jobs: &[Job],
        workers: usize,
        children: &Children,
    ) -> Result<Vec<(String, Vec<u8>)>, BytecodeError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let total: u64 = jobs.iter().map(|j| j.source.len() as u64).sum();
        // A worker costs ~20 ms to start; give each at least a few MB of source.
        let n = workers.clamp(1, 16).min((total / (4 << 20)) as usize + 1);
        let mut chunks: Vec<(u64, Vec<&Job>)> = (0..n).map(|_| (0, Vec::new())).collect();
        let mut by_size: Vec<&Job> = jobs.iter().collect();
        by_size.sort_by_key(|j| std::cmp::Reverse(j.source.len()));
        for job in by_size {
            let lightest = chunks
                .iter_mut()
                .min_by_key(|(size, _)| *size)
                .expect("at least one chunk");
            lightest.0 += job.source.len() as u64;
            lightest.1.push(job);
        }
        type Compiled = Result<Vec<(String, Vec<u8>)>, BytecodeError>;
        let results: Vec<Compiled> = std::thread::scope(|scope| {
            let handles: Vec<_> = chunks
                .iter()
                .map(|(_, chunk)| scope.spawn(move || self.compile_chunk(chunk, children)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(self.failed("a compile worker thread panicked".into()))
                    })
                })
                .collect()
        });
        let mut pycs = Vec::new();
        for r in results {
            pycs.extend(r?);
        }
        Ok(pycs)
    }

    /// One worker compiles `chunk`: the request is written from another thread while the
    /// answers are read, so that neither pipe can fill up and stall both sides.
    fn compile_chunk(
        &self,
        chunk: &[&Job],
        children: &Children,
    ) -> Result<Vec<(String, Vec<u8>)>, BytecodeError> {
        let mut request = Vec::new();
        request.extend_from_slice(&(chunk.len() as u32).to_le_bytes());
        for job in chunk {
            request.extend_from_slice(&(job.image_path.len() as u32).to_le_bytes());
            request.extend_from_slice(job.image_path.as_bytes());
            request.extend_from_slice(&(job.source.len() as u64).to_le_bytes());
            request.extend_from_slice(&job.source);
        }
        let mut worker = self.worker(children)?;
        let Worker { stdin, stdout, .. } = &mut worker;
        let answers = std::thread::scope(|scope| {
            let writer =
                scope.spawn(move || stdin.write_all(&request).and_then(|()| stdin.flush()));
            let mut pycs = Vec::new();
            let read = (|| -> std::io::Result<()> {
                for job in chunk {
                    let mut flag = [0u8; 1];
                    stdout.read_exact(&mut flag)?;
                    if flag[0] == 0 {
                        continue;
                    }
                    let mut len = [0u8; 8];
                    stdout.read_exact(&mut len)?;
                    let len = u64::from_le_bytes(len);
                    // A pyc is about as big as its source; anything far bigger is not one.
                    if len > 64 * job.source.len() as u64 + (1 << 20) {
                        return Err(std::io::Error::other("an answer too large"));
                    }
                    let mut pyc = vec![0u8; len as usize];
                    stdout.read_exact(&mut pyc)?;
                    pycs.push((job.pyc.clone(), pyc));
                }
                Ok(())
            })();
            let written = writer
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("writer panicked")));
            read.and(written).map(|()| pycs)
        });
        match answers {
            Ok(pycs) => {
                self.lock_idle().push(worker);
                Ok(pycs)
            }
            // The worker died: what it said on stderr is why.
            Err(e) => {
                let mut stderr = Vec::new();
                drop(worker.stdin);
                let _ = worker.stderr.read_to_end(&mut stderr);
                let why = last_line(&stderr);
                Err(self.failed(if stderr.is_empty() {
                    e.to_string()
                } else {
                    why
                }))
            }
        }
    }

    /// An idle worker, or a new one.
    fn worker(&self, children: &Children) -> Result<Worker, BytecodeError> {
        if let Some(worker) = self.lock_idle().pop() {
            return Ok(worker);
        }
        std::fs::create_dir_all(&self.home).map_err(|e| self.failed(e.to_string()))?;
        let mut process = children
            .spawn(self.command(&self.home).arg("-c").arg(WORKER))
            .map_err(|e| self.failed(e.to_string()))?;
        let (Some(stdin), Some(stdout), Some(stderr)) = process.pipes() else {
            return Err(self.failed("the worker has no pipes".into()));
        };
        Ok(Worker {
            stdin,
            stdout: BufReader::new(stdout),
            stderr,
            _process: process,
        })
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<Worker>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn failed(&self, message: String) -> BytecodeError {
        BytecodeError::Compile {
            interpreter: self.name.clone(),
            message,
        }
    }
}

/// The unpacked base's library directories (see [`is_library_dir`]) that exist: each of
/// [`LIB_DIRS`] after its multiarch subdirectories, in a stable order.
fn library_dirs(root: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for dir in LIB_DIRS {
        let base = root.join(dir);
        let Ok(read) = std::fs::read_dir(&base) else {
            continue;
        };
        let mut multiarch: Vec<PathBuf> = read
            .flatten()
            .filter(|e| is_library_dir(&format!("{dir}/{}", e.file_name().to_string_lossy())))
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        multiarch.sort();
        dirs.extend(multiarch);
        dirs.push(base);
    }
    dirs
}

/// The base's dynamic loader for the host's architecture in one of `dirs`, if it has one.
fn find_loader(dirs: &[PathBuf]) -> Option<PathBuf> {
    let names: &[&str] = match std::env::consts::ARCH {
        "x86_64" => &["ld-linux-x86-64.so.2", "ld-musl-x86_64.so.1"],
        "aarch64" => &["ld-linux-aarch64.so.1", "ld-musl-aarch64.so.1"],
        _ => &[],
    };
    names
        .iter()
        .flat_map(|name| dirs.iter().map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

fn last_line(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("it exited without a message")
        .trim()
        .to_string()
}

/// Pycs compiled earlier in one run, as files in a directory named by what decides their
/// bytes: the interpreter (its unpacked directory, one per exact base), the source's path in
/// the image (the pyc records it) and the source's contents. The platforms of a multi-platform
/// build install the same `.py` files (a package's arm64 and amd64 wheels differ in their
/// extensions only) and compile them with the same interpreter, so the second platform reads
/// what the first compiled instead of compiling it again. The directory is the caller's
/// scratch, gone with the run.
#[derive(Clone, Debug)]
pub struct PycMemo {
    dir: PathBuf,
}

impl PycMemo {
    pub fn new(dir: PathBuf) -> PycMemo {
        PycMemo { dir }
    }

    fn key(&self, interpreter: &Interpreter, job: &Job) -> String {
        let mut hasher = lockship_oci::digest::Hasher::default();
        for part in [
            b"lockship-pyc-memo-v2".as_slice(),
            interpreter.exe.as_os_str().as_encoded_bytes(),
            job.image_path.as_bytes(),
            &job.source,
        ] {
            hasher.update(&(part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
        hasher.finish().hex().to_string()
    }

    /// The remembered pyc for `key`, if there is one whole: a pyc starts with a 16-byte header
    /// (magic, flags, source hash) and the length it was kept with is in its name's file.
    fn take(&self, key: &str) -> Option<Vec<u8>> {
        let pyc = std::fs::read(self.dir.join(key)).ok()?;
        (pyc.len() > 16).then_some(pyc)
    }

    /// Remembers `pyc`, written whole to a temporary file and renamed into place, so a full
    /// disk leaves no truncated pyc for a later layer. A failure only costs a compile later.
    fn keep(&self, key: &str, pyc: &[u8]) {
        if std::fs::create_dir_all(&self.dir).is_err() {
            return;
        }
        let Ok(mut tmp) = lockship_sys::scratch::ScratchFile::new_in(&self.dir, "") else {
            return;
        };
        if tmp.write_all(pyc).is_ok() {
            let _ = tmp.persist(&self.dir.join(key));
        }
    }
}

/// One source to compile.
#[derive(Clone, Debug)]
pub struct Job {
    /// Its bytes (checked against RECORD when read from a wheel).
    pub source: Vec<u8>,
    /// The source's absolute path in the image (what tracebacks show).
    pub image_path: String,
    /// Where its pyc goes, relative to the image's root (a tar-tree path).
    pub pyc: String,
}

/// `a/b/mod.py` → `a/b/__pycache__/mod.cpython-311.pyc`.
pub fn pyc_path(py: &str, cache_tag: &str) -> String {
    let (dir, file) = py.rsplit_once('/').unwrap_or(("", py));
    let stem = file.strip_suffix(".py").unwrap_or(file);
    if dir.is_empty() {
        format!("__pycache__/{stem}.{cache_tag}.pyc")
    } else {
        format!("{dir}/__pycache__/{stem}.{cache_tag}.pyc")
    }
}

/// The `.py` files a layer puts under `site` (an image path without the leading `/`), read
/// into memory as compile jobs: files still in a wheel are read from it, checked against their
/// RECORD hash; files staged under `root` (the host directory standing for the image's `/`,
/// from `.data/purelib` and the like) are read from there.
/// Sources past this size get no pyc (Python compiles them on import, as without bytecode):
/// CPython's compiler takes ~200 bytes of memory per byte of source (a 120 MB generated module
/// took 24 GB and the machine's OOM killer). The largest real modules are a few MB.
const MAX_SOURCE: u64 = 8 << 20;

/// Whether a source of `size` bytes gets its pyc at `pyc`: not when it is too large to compile
/// safely, nor when the pyc's file name is longer than a file system takes (a module name of
/// 240 bytes plus `.cpython-311.pyc`; Python itself then runs without the pyc).
fn gets_pyc(pyc: &str, size: u64) -> bool {
    size <= MAX_SOURCE && pyc.rsplit('/').next().is_some_and(|name| name.len() <= 255)
}

pub fn jobs_for_layer(
    tree: &TarTree,
    root: &Path,
    site: &str,
    cache_tag: &str,
) -> Result<Vec<Job>, BytecodeError> {
    let site_slash = format!("{}/", site.trim_matches('/'));
    let mut jobs = Vec::new();
    let mut archives: HashMap<Arc<ZipSource>, ZipArchive<BufReader<std::fs::File>>> =
        HashMap::new();
    for (path, entry) in tree.entries() {
        if !path.starts_with(&site_slash) || !path.ends_with(".py") {
            continue;
        }
        let EntryData::ZipMember {
            archive,
            index,
            size,
            check,
        } = &entry.data
        else {
            continue;
        };
        let pyc = pyc_path(path, cache_tag);
        if !gets_pyc(&pyc, *size) {
            continue;
        }
        let source = read_member(&mut archives, archive, *index, *size, check.as_ref()).map_err(
            |message| BytecodeError::Source {
                what: format!("{}: {path}", archive.name),
                message,
            },
        )?;
        jobs.push(Job {
            source,
            image_path: format!("/{path}"),
            pyc,
        });
    }
    let staged = root.join(&site_slash);
    for entry in walkdir::WalkDir::new(&staged).sort_by_file_name() {
        let Ok(entry) = entry else { continue };
        if !entry.file_type().is_file() {
            continue;
        }
        let Ok(rel) = entry.path().strip_prefix(root) else {
            continue;
        };
        let Some(rel) = rel.to_str() else { continue };
        let pyc = pyc_path(rel, cache_tag);
        let size = entry.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
        if !rel.ends_with(".py") || !gets_pyc(&pyc, size) {
            continue;
        }
        let source = std::fs::read(entry.path()).map_err(|e| BytecodeError::Source {
            what: rel.to_string(),
            message: e.to_string(),
        })?;
        jobs.push(Job {
            source,
            image_path: format!("/{rel}"),
            pyc,
        });
    }
    Ok(jobs)
}

/// The sources of a base's standard library (the `.py` files under `stdlib`, outside its
/// site-packages and dist-packages) as compile jobs: the base's `layers` (blobs, base first)
/// merged as a container sees them (later layers, whiteouts and links as [`unpack`] resolves
/// them) into `scratch`, an empty directory, leaving out those the base has a pyc of already.
pub fn stdlib_jobs(
    layers: &[PathBuf],
    stdlib: &str,
    cache_tag: &str,
    scratch: &Path,
) -> Result<Vec<Job>, BytecodeError> {
    let prefix = format!("{}/", stdlib.trim_matches('/'));
    let select = |path: &str| {
        path.strip_prefix(&prefix).is_some_and(|rel| {
            !rel.starts_with("site-packages/")
                && !rel.starts_with("dist-packages/")
                && (rel.ends_with(".py") || rel.ends_with(".pyc"))
        })
    };
    unpack::unpack_selected(layers, scratch, &select)?;
    let mut jobs = Vec::new();
    for entry in walkdir::WalkDir::new(scratch.join(&prefix)).sort_by_file_name() {
        let Ok(entry) = entry else { continue };
        let Some(rel) = entry
            .path()
            .strip_prefix(scratch)
            .ok()
            .and_then(|p| p.to_str())
        else {
            continue;
        };
        if !entry.file_type().is_file() || !rel.ends_with(".py") {
            continue;
        }
        let pyc = pyc_path(rel, cache_tag);
        let size = entry.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
        if !gets_pyc(&pyc, size) || scratch.join(&pyc).exists() {
            continue;
        }
        let source = std::fs::read(entry.path()).map_err(|e| BytecodeError::Source {
            what: format!("the base's /{rel}"),
            message: e.to_string(),
        })?;
        jobs.push(Job {
            source,
            image_path: format!("/{rel}"),
            pyc,
        });
    }
    Ok(jobs)
}

/// Reads the member at `index` of `archive` (opened once per layer), checked.
fn read_member(
    archives: &mut HashMap<Arc<ZipSource>, ZipArchive<BufReader<std::fs::File>>>,
    archive: &Arc<ZipSource>,
    index: usize,
    size: u64,
    check: Option<&ContentCheck>,
) -> Result<Vec<u8>, String> {
    let zip = match archives.entry(archive.clone()) {
        std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
        std::collections::hash_map::Entry::Vacant(v) => {
            let file = std::fs::File::open(&archive.path).map_err(|e| e.to_string())?;
            v.insert(ZipArchive::new(BufReader::new(file)).map_err(|e| e.to_string())?)
        }
    };
    let mut out = Vec::with_capacity(size as usize);
    install::copy_member(zip, index, size, check, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_standard_library_without_pycs_gets_jobs_for_its_own_sources_only() {
        let dir = tempfile::tempdir().unwrap();
        let layer = |name: &str, files: &[(&str, &str)]| {
            let mut tree = TarTree::new();
            for (path, text) in files {
                tree.bytes(path, text.as_bytes().to_vec(), 0o644);
            }
            let path = dir.path().join(name);
            let gz = flate2::write::GzEncoder::new(
                std::fs::File::create(&path).unwrap(),
                flate2::Compression::fast(),
            );
            tree.write_tar(gz, 0).unwrap().finish().unwrap();
            path
        };
        let layers = [
            layer(
                "1",
                &[
                    ("usr/lib/python3.11/os.py", "import sys"),
                    ("usr/lib/python3.11/json/__init__.py", "x = 1"),
                    ("usr/lib/python3.11/gone.py", "x = 2"),
                    ("usr/lib/python3.11/compiled.py", "x = 3"),
                    (
                        "usr/lib/python3.11/__pycache__/compiled.cpython-311.pyc",
                        "pyc",
                    ),
                    ("usr/lib/python3.11/site-packages/pkg.py", "x = 4"),
                    ("usr/lib/python3/dist-packages/apt.py", "x = 5"),
                    ("usr/share/doc/x.py", "x = 6"),
                ],
            ),
            layer("2", &[("usr/lib/python3.11/.wh.gone.py", "")]),
        ];
        let scratch = dir.path().join("scratch");
        std::fs::create_dir(&scratch).unwrap();
        let jobs = stdlib_jobs(&layers, "usr/lib/python3.11", "cpython-311", &scratch).unwrap();
        let got: Vec<(&str, &str)> = jobs
            .iter()
            .map(|j| (j.image_path.as_str(), j.pyc.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "/usr/lib/python3.11/json/__init__.py",
                    "usr/lib/python3.11/json/__pycache__/__init__.cpython-311.pyc"
                ),
                (
                    "/usr/lib/python3.11/os.py",
                    "usr/lib/python3.11/__pycache__/os.cpython-311.pyc"
                ),
            ]
        );
        assert_eq!(jobs[1].source, b"import sys");
    }

    #[test]
    fn huge_sources_and_overlong_pyc_names_get_no_pyc() {
        assert!(gets_pyc(&pyc_path("a/b.py", "cpython-311"), 1 << 20));
        assert!(!gets_pyc(&pyc_path("a/b.py", "cpython-311"), 120 << 20));
        let long = format!("a/{}.py", "m".repeat(240));
        assert!(!gets_pyc(&pyc_path(&long, "cpython-311"), 10));
        let fits = format!("a/{}.py", "m".repeat(230));
        assert!(gets_pyc(&pyc_path(&fits, "cpython-311"), 10));
    }

    #[test]
    fn pyc_paths_follow_pep_3147() {
        assert_eq!(
            pyc_path(
                "opt/venv/lib/python3.11/site-packages/six.py",
                "cpython-311"
            ),
            "opt/venv/lib/python3.11/site-packages/__pycache__/six.cpython-311.pyc"
        );
        assert_eq!(
            pyc_path("a.py", "cpython-312"),
            "__pycache__/a.cpython-312.pyc"
        );
    }

    #[test]
    fn only_what_runs_the_interpreter_is_unpacked() {
        let needed = needed_to_run("/usr/bin/python3.11", 11);
        for yes in [
            "usr/bin/python3.11",
            "usr/lib/python3.11/os.py",
            "usr/lib/python3.11/__pycache__/warnings.cpython-311.pyc",
            "usr/lib/python3.11/importlib/util.py",
            "usr/lib/python3.11/collections/__init__.py",
            "usr/lib/python3.11/encodings/cp1252.py",
            "usr/lib/python3.11/lib-dynload/_codecs_jp.cpython-311-x86_64-linux-gnu.so",
            "usr/lib/python3.11/lib-dynload/_struct.cpython-311-x86_64-linux-gnu.so",
            "usr/lib/python3.11/lib-dynload/unicodedata.cpython-311-x86_64-linux-gnu.so",
            "usr/lib/python3.11/lib-dynload/_multibytecodec.cpython-311-x86_64-linux-gnu.so",
            "usr/lib/python3.11/lib-dynload/_json.cpython-311-x86_64-linux-gnu.so",
            "usr/lib/x86_64-linux-gnu/libz.so.1",
            "usr/lib64/ld-linux-x86-64.so.2",
            "lib/ld-musl-x86_64.so.1",
        ] {
            assert!(needed(yes), "{yes}");
        }
        for no in [
            "usr/bin/perl",
            "usr/lib/python3.11/site-packages/x.py",
            "usr/lib/python3.11/test/test_os.py",
            "usr/lib/python3.11/lib2to3/pytree.py",
            "usr/lib/python3.11/asyncio/__pycache__/events.cpython-311.pyc",
            "usr/lib/python3.11/config-3.11-x86_64-linux-gnu/libpython3.11.a",
            "usr/lib/python3.11/lib-dynload/_ssl.cpython-311-x86_64-linux-gnu.so",
            "usr/lib/python3.11/lib-dynload/_sqlite3.cpython-311-x86_64-linux-gnu.so",
            "usr/lib/python3.11/lib-dynload/_testclinic.cpython-311-x86_64-linux-gnu.so",
            "usr/lib/python3.11/lib-dynload/xxlimited_35.cpython-311-x86_64-linux-gnu.so",
            "usr/lib/python3.11/site-packages",
            "usr/lib/x86_64-linux-gnu/perl/5.36/x.so",
            "usr/share/doc/libz/copyright",
            "etc/ld.so.cache",
        ] {
            assert!(!needed(no), "{no}");
        }
        let local = needed_to_run("/usr/local/bin/python3.12", 12);
        assert!(local("usr/local/lib/libpython3.12.so.1.0"));
        assert!(local("usr/local/lib/python3.12/encodings/utf_8.py"));
        assert!(!local("usr/lib/python3.12/encodings/utf_8.py"));
    }
}
