//! What lockship undoes when it is stopped. Temporary paths and child process groups register
//! here while they live; on SIGINT or SIGTERM the binary calls [`clean_up`], which removes the
//! paths, kills the groups (the child and whatever it started) and runs registered undo
//! commands (removing a smoke-test container). Children also get `PR_SET_PDEATHSIG`, so even a
//! SIGKILL of lockship takes its direct children down with it.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Output};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Something to undo if lockship is stopped before it is done.
#[derive(Clone, Debug)]
enum Undo {
    Path(PathBuf),
    Group(i32),
    Command(Vec<String>),
}

/// A set of undo actions. The binary uses the process-wide one ([`clean_up`]); tests make
/// their own so they cannot undo each other's work.
#[derive(Debug, Default)]
pub struct Stops {
    next: AtomicU64,
    pending: Mutex<Pending>,
}

/// The actions registered, and whether they were undone already (a stop under way).
#[derive(Debug, Default)]
struct Pending {
    actions: BTreeMap<u64, Undo>,
    undone: bool,
}

static GLOBAL: Stops = Stops {
    next: AtomicU64::new(0),
    pending: Mutex::new(Pending {
        actions: BTreeMap::new(),
        undone: false,
    }),
};

/// Keeps an undo action registered; dropping it (the work finished) forgets the action.
#[derive(Debug)]
pub struct Registration {
    stops: &'static Stops,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.stops.lock().actions.remove(&self.id);
    }
}

impl Stops {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic while holding the lock leaves plain data behind: keep using it.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers `undo`; once a stop has undone what was registered, a thread still working
    /// (it made a temporary directory, started a child) has it undone at once instead, or it
    /// would outlive the stop.
    fn register(&'static self, undo: Undo) -> Registration {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let mut pending = self.lock();
        if pending.undone {
            drop(pending);
            undo_all(vec![undo]);
        } else {
            pending.actions.insert(id, undo);
        }
        Registration { stops: self, id }
    }

    /// Undoes everything registered, children first (they may be writing the paths), and
    /// whatever is registered from then on.
    pub fn clean_up(&self) {
        let actions: Vec<Undo> = {
            let mut pending = self.lock();
            pending.undone = true;
            std::mem::take(&mut pending.actions).into_values().collect()
        };
        undo_all(actions);
    }
}

/// Kills the groups, then removes the paths and runs the commands.
fn undo_all(actions: Vec<Undo>) {
    for action in &actions {
        if let Undo::Group(pgid) = action {
            kill_group(*pgid);
        }
    }
    for action in actions {
        match action {
            Undo::Path(path) => {
                // A thread still writing into a directory can add an entry while it is
                // removed (writers stop at the next file once they see the stop, and their
                // writes fail once the directory is gone): try again, for up to a second.
                for _ in 0..100 {
                    let gone =
                        std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
                    if gone.is_ok() || std::fs::symlink_metadata(&path).is_err() {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
            }
            Undo::Command(argv) => {
                if let Some((program, args)) = argv.split_first() {
                    let _ = Command::new(program)
                        .args(args)
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::null())
                        .status();
                }
            }
            Undo::Group(_) => {}
        }
    }
}

/// Removes `path` (a file, or a directory and all it holds) if lockship is stopped.
pub fn remove_on_stop(path: PathBuf) -> Registration {
    GLOBAL.register(Undo::Path(path))
}

/// Runs `argv` if lockship is stopped (e.g. `docker rm -f NAME`).
pub fn run_on_stop(argv: Vec<String>) -> Registration {
    GLOBAL.register(Undo::Command(argv))
}

/// The exit code of a stop under way (128 + the signal's number); 0 while there is none.
static STOPPING: AtomicI32 = AtomicI32::new(0);

/// Marks lockship as stopping, to exit with `code`: called by the binary when a stop signal
/// arrives, before anything is undone, so that the failures the undoing causes (a killed
/// child, a removed file) can be told from real ones and left unreported.
pub fn begin_stop(code: i32) {
    STOPPING.store(code, Ordering::SeqCst);
}

/// The exit code of the stop under way, if one is.
pub fn stopping() -> Option<i32> {
    match STOPPING.load(Ordering::SeqCst) {
        0 => None,
        code => Some(code),
    }
}

/// Undoes everything registered: called once by the binary when a stop signal arrives.
pub fn clean_up() {
    GLOBAL.clean_up();
}

fn kill_group(pgid: i32) {
    if pgid > 1 {
        // SAFETY: kill(2) with a negative pid signals a process group; no memory is involved.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

/// The child processes of one piece of work (an app build, a smoke run). Each runs in a process
/// group of its own, so killing it also kills what it started (uv's Python, a build backend's
/// compilers). [`Children::kill`] stops them all, and any started afterwards are refused: the
/// work was cancelled.
#[derive(Clone, Debug, Default)]
pub struct Children {
    state: Arc<Mutex<ChildState>>,
}

#[derive(Debug, Default)]
struct ChildState {
    groups: BTreeMap<i32, ()>,
    cancelled: bool,
}

fn cancelled() -> io::Error {
    io::Error::new(io::ErrorKind::Interrupted, "cancelled: the build stopped")
}

impl Children {
    /// Runs `cmd` to completion and collects its output, like [`Command::output`], as a child
    /// that dies with lockship.
    pub fn output(&self, cmd: &mut Command) -> io::Result<Output> {
        cmd.stdin(std::process::Stdio::null());
        let (child, pgid, _registered) = self.start(cmd, true)?;
        let output = child.wait_with_output();
        self.lock().groups.remove(&pgid);
        output
    }

    /// Starts `cmd` as a long-lived child fed through its stdin (a worker), which dies with
    /// lockship, with [`Children::kill`], or when the returned handle is dropped. It gets no
    /// `PR_SET_PDEATHSIG`: that fires when the spawning *thread* ends, and a worker outlives
    /// the thread that started it; a worker reads its stdin, which ends with lockship anyway.
    pub fn spawn(&self, cmd: &mut Command) -> io::Result<Running> {
        cmd.stdin(std::process::Stdio::piped());
        let (child, pgid, registered) = self.start(cmd, false)?;
        Ok(Running {
            child,
            pgid,
            _registered: registered,
            children: self.clone(),
        })
    }

    /// Spawns `cmd` in a process group of its own, registered to be killed on a stop, and
    /// with `death_signal`, killed when the calling thread ends.
    fn start(
        &self,
        cmd: &mut Command,
        death_signal: bool,
    ) -> io::Result<(Child, i32, Registration)> {
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .process_group(0);
        if death_signal {
            // SAFETY: the closure runs between fork and exec and calls only prctl(2), which is
            // async-signal-safe.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
        }
        if self.lock().cancelled {
            return Err(cancelled());
        }
        let child = cmd.spawn()?;
        let pgid = child.id() as i32;
        let registered = GLOBAL.register(Undo::Group(pgid));
        let mut state = self.lock();
        state.groups.insert(pgid, ());
        // Cancelled between the check and the spawn: this one goes too.
        if state.cancelled {
            kill_group(pgid);
        }
        Ok((child, pgid, registered))
    }

    /// Kills every child group still running, and refuses to start more.
    pub fn kill(&self) {
        let mut state = self.lock();
        state.cancelled = true;
        for pgid in state.groups.keys() {
            kill_group(*pgid);
        }
    }

    fn lock(&self) -> MutexGuard<'_, ChildState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A child started by [`Children::spawn`]; dropping it kills its group and reaps it.
#[derive(Debug)]
pub struct Running {
    child: Child,
    pgid: i32,
    _registered: Registration,
    children: Children,
}

impl Running {
    /// The child's stdin, stdout and stderr (each is there until taken).
    pub fn pipes(
        &mut self,
    ) -> (
        Option<ChildStdin>,
        Option<ChildStdout>,
        Option<std::process::ChildStderr>,
    ) {
        (
            self.child.stdin.take(),
            self.child.stdout.take(),
            self.child.stderr.take(),
        )
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        kill_group(self.pgid);
        let _ = self.child.wait();
        self.children.lock().groups.remove(&self.pgid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `pid` is running (a zombie waiting to be reaped is not).
    fn running(pid: i32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
            .unwrap_or(false)
    }

    #[test]
    fn a_stop_is_known_with_its_exit_code_from_when_it_begins() {
        // Nothing else in this crate's tests reads the process-wide flag.
        assert_eq!(stopping(), None);
        begin_stop(143);
        assert_eq!(stopping(), Some(143));
    }

    #[test]
    fn killing_the_group_stops_grandchildren() {
        let children = Children::default();
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("grandchild.pid");
        let worker = {
            let children = children.clone();
            let pid_file = pid_file.clone();
            std::thread::spawn(move || {
                // The shell starts a grandchild (sleep) and waits for it.
                children.output(
                    Command::new("sh")
                        .arg("-c")
                        .arg(format!("sleep 30 & echo $! > {}; wait", pid_file.display())),
                )
            })
        };
        let mut grandchild = None;
        for _ in 0..250 {
            if let Ok(text) = std::fs::read_to_string(&pid_file) {
                if let Ok(pid) = text.trim().parse::<i32>() {
                    grandchild = Some(pid);
                    break;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let grandchild = grandchild.expect("the shell started its child");
        assert!(running(grandchild));
        children.kill();
        let output = worker.join().unwrap().unwrap();
        assert!(!output.status.success(), "the shell was killed");
        let mut alive = true;
        for _ in 0..250 {
            alive = running(grandchild);
            if !alive {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(!alive, "the grandchild outlived its group");
    }

    #[test]
    fn registered_paths_are_removed_on_clean_up_and_forgotten_when_done() {
        let stops: &'static Stops = Box::leak(Box::default());
        let dir = tempfile::tempdir().unwrap();
        let kept = dir.path().join("kept");
        let removed = dir.path().join("removed");
        std::fs::create_dir_all(removed.join("inside")).unwrap();
        std::fs::write(&kept, "x").unwrap();
        drop(stops.register(Undo::Path(kept.clone())));
        let _live = stops.register(Undo::Path(removed.clone()));
        stops.clean_up();
        assert!(kept.exists(), "a finished registration is not undone");
        assert!(!removed.exists());
        // A thread still at work after the stop: what it registers is undone at once.
        let late = dir.path().join("late");
        std::fs::create_dir(&late).unwrap();
        let _late = stops.register(Undo::Path(late.clone()));
        assert!(!late.exists(), "registered after the stop, and left behind");
    }
}
