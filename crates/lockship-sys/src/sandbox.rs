//! Confining a program lockship runs from an input (a base image's own interpreter, run on the
//! host to compile bytecode): from its `exec` on, it may read and execute files beneath the
//! directories it is given and nothing else. It cannot create, write, rename or delete any
//! file, open a TCP connection, or create a socket of any kind (a Unix socket would reach the
//! Docker daemon). What it can still do is answer wrongly, which is why what it compiles is
//! keyed by its identity.
//!
//! Landlock (Linux 5.13+, unprivileged) confines the file system and TCP; a seccomp filter
//! refuses `socket(2)`. Both are set between `fork` and `exec`, where only async-signal-safe
//! system calls may run: the Landlock ruleset is made beforehand, in the parent, and the child
//! makes three system calls. That is why this is written against the system calls rather than
//! a crate that restricts the calling thread. On a kernel without Landlock the program runs
//! unconfined, as a `RUN` step of a `docker build` would run it (with less isolation).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

/// `struct landlock_ruleset_attr` (uapi/linux/landlock.h).
#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

/// `struct landlock_path_beneath_attr`, packed as the kernel declares it.
#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

const CREATE_RULESET_VERSION: u32 = 1 << 0;
const RULE_PATH_BENEATH: u32 = 1;
const ACCESS_FS_EXECUTE: u64 = 1 << 0;
const ACCESS_FS_READ_FILE: u64 = 1 << 2;
const ACCESS_FS_READ_DIR: u64 = 1 << 3;
/// Every file-system right of the ABI: handled (so denied) unless a rule grants it.
fn handled_fs(abi: i64) -> u64 {
    match abi {
        1 => (1 << 13) - 1,
        2 => (1 << 14) - 1,
        3 | 4 => (1 << 15) - 1,
        _ => (1 << 16) - 1,
    }
}
/// TCP bind and connect (ABI 4+); no rule grants them.
const ACCESS_NET_TCP: u64 = (1 << 0) | (1 << 1);
/// Abstract Unix sockets and signals to processes outside the sandbox (ABI 6+).
const SCOPE_ALL: u64 = (1 << 0) | (1 << 1);

/// A confinement for programs run from an input: see the module's documentation.
#[derive(Clone, Debug)]
pub struct ReadOnly {
    /// The Landlock ruleset (close-on-exec: the program does not keep it).
    ruleset: Arc<OwnedFd>,
}

impl ReadOnly {
    /// A confinement to reading and executing beneath `dirs`; None when the kernel has no
    /// Landlock (or refuses a rule: a directory that is not there).
    pub fn beneath(dirs: &[&Path]) -> Option<ReadOnly> {
        // SAFETY: the version query takes no attribute.
        let abi = unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                std::ptr::null::<RulesetAttr>(),
                0usize,
                CREATE_RULESET_VERSION,
            )
        };
        if abi < 1 {
            return None;
        }
        let attr = RulesetAttr {
            handled_access_fs: handled_fs(abi),
            handled_access_net: if abi >= 4 { ACCESS_NET_TCP } else { 0 },
            scoped: if abi >= 6 { SCOPE_ALL } else { 0 },
        };
        // An older kernel reads only the fields it knows: give it only those.
        let size = match abi {
            1..=3 => 8,
            4 | 5 => 16,
            _ => std::mem::size_of::<RulesetAttr>(),
        };
        // SAFETY: `attr` outlives the call, and `size` does not exceed it.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                &attr as *const RulesetAttr,
                size,
                0u32,
            )
        };
        if fd < 0 {
            return None;
        }
        // SAFETY: a new descriptor this process owns alone.
        let ruleset = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        for dir in dirs {
            let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
            // SAFETY: a NUL-terminated path; O_PATH opens it without reading it.
            let parent = unsafe { libc::open(path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
            if parent < 0 {
                return None;
            }
            // SAFETY: as above.
            let parent = unsafe { OwnedFd::from_raw_fd(parent) };
            let rule = PathBeneathAttr {
                allowed_access: ACCESS_FS_EXECUTE | ACCESS_FS_READ_FILE | ACCESS_FS_READ_DIR,
                parent_fd: parent.as_raw_fd(),
            };
            // SAFETY: both descriptors are open and `rule` outlives the call.
            let added = unsafe {
                libc::syscall(
                    libc::SYS_landlock_add_rule,
                    ruleset.as_raw_fd(),
                    RULE_PATH_BENEATH,
                    &rule as *const PathBeneathAttr,
                    0u32,
                )
            };
            if added != 0 {
                return None;
            }
        }
        Some(ReadOnly {
            ruleset: Arc::new(ruleset),
        })
    }

    /// Confines `cmd`'s program from its `exec` on. Failing to confine fails the spawn.
    pub fn confine(&self, cmd: &mut Command) {
        let ruleset = self.ruleset.clone();
        let filter = no_sockets();
        // SAFETY: the closure runs in the child between fork and exec and makes only
        // async-signal-safe system calls (prctl, landlock_restrict_self); the filter and the
        // ruleset were made in the parent and are only read.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if let Some(filter) = &filter {
                    let program = SockFprog {
                        len: filter.len() as u16,
                        filter: filter.as_ptr(),
                    };
                    if libc::prctl(
                        libc::PR_SET_SECCOMP,
                        libc::SECCOMP_MODE_FILTER,
                        &program as *const SockFprog,
                    ) != 0
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                if libc::syscall(libc::SYS_landlock_restrict_self, ruleset.as_raw_fd(), 0u32) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}

/// `struct sock_filter`: one classic BPF instruction.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct SockFilter {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

/// `struct sock_fprog`.
#[repr(C)]
struct SockFprog {
    len: u16,
    filter: *const SockFilter,
}

/// This machine's seccomp architecture and `socket` system call number.
fn native() -> Option<(u32, u32)> {
    if cfg!(target_arch = "x86_64") {
        Some((0xC000_003E, 41))
    } else if cfg!(target_arch = "aarch64") {
        Some((0xC000_00B7, 198))
    } else {
        None
    }
}

/// A seccomp filter that fails `socket(2)` with EACCES, and every system call of another
/// architecture (32-bit calls on a 64-bit kernel, where `socket` has other numbers); None on
/// architectures it does not know.
fn no_sockets() -> Option<Arc<Vec<SockFilter>>> {
    let (arch, socket) = native()?;
    let stmt = |code: u32, k: u32| SockFilter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let jump = |code: u32, k: u32, jt: u8, jf: u8| SockFilter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    let deny = libc::SECCOMP_RET_ERRNO | libc::EACCES as u32;
    // struct seccomp_data: nr at 0, arch at 4.
    let load = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
    let equals = libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K;
    let at_least = libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K;
    let ret = libc::BPF_RET | libc::BPF_K;
    Some(Arc::new(vec![
        stmt(load, 4),
        jump(equals, arch, 1, 0),
        stmt(ret, deny),
        stmt(load, 0),
        // x32 calls carry this bit on x86-64.
        jump(at_least, 0x4000_0000, 2, 0),
        jump(equals, socket, 1, 0),
        stmt(ret, libc::SECCOMP_RET_ALLOW),
        stmt(ret, deny),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_confined_program_reads_beneath_its_directories_and_writes_nowhere() {
        let tmp = tempfile::tempdir().unwrap();
        let inside = tmp.path().join("inside");
        std::fs::create_dir(&inside).unwrap();
        std::fs::write(inside.join("data"), "readable").unwrap();
        std::fs::write(tmp.path().join("outside"), "secret").unwrap();
        // The shell and what it loads are read and executed from the host's own directories.
        let Some(sandbox) = ReadOnly::beneath(&[
            &inside,
            Path::new("/bin"),
            Path::new("/usr"),
            Path::new("/lib"),
            Path::new("/lib64"),
            Path::new("/etc"),
        ]) else {
            eprintln!("no Landlock on this kernel: nothing to check");
            return;
        };
        let run = |script: &str| {
            let mut cmd = Command::new("/bin/sh");
            cmd.args(["-c", script]).current_dir(&inside);
            sandbox.confine(&mut cmd);
            cmd.output().unwrap()
        };
        let read = run("cat data");
        assert!(read.status.success(), "{read:?}");
        assert_eq!(read.stdout, b"readable");
        let outside = run(&format!("cat {}", tmp.path().join("outside").display()));
        assert!(!outside.status.success() && outside.stdout.is_empty());
        for write in [
            format!("echo x > {}", inside.join("new").display()),
            format!("echo x > {}", tmp.path().join("new").display()),
            format!("rm -f {}", inside.join("data").display()),
            format!("echo x >> {}", inside.join("data").display()),
        ] {
            let out = run(&write);
            assert!(!out.status.success(), "{write}: {out:?}");
        }
        assert!(!inside.join("new").exists() && !tmp.path().join("new").exists());
        assert_eq!(std::fs::read(inside.join("data")).unwrap(), b"readable");
        // No socket of any kind (the Docker daemon's is a Unix socket); python3 is on the
        // host of the tests' machines, its absence skips this part.
        if Path::new("/usr/bin/python3").exists() {
            let mut cmd = Command::new("/usr/bin/python3");
            cmd.args(["-S", "-c", "import socket; socket.socket(socket.AF_UNIX)"])
                .current_dir(&inside);
            sandbox.confine(&mut cmd);
            let out = cmd.output().unwrap();
            assert!(!out.status.success(), "{out:?}");
            assert!(
                String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
                "{out:?}"
            );
        }
    }
}
