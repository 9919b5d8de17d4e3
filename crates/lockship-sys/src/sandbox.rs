//! Confining a program lockship runs from an input (a base image's own interpreter, run on the
//! host to compile bytecode), from its `exec` on:
//!
//! - Landlock (Linux 5.13+, unprivileged): it may read and execute files beneath the
//!   directories it is given and nothing else; it cannot create, write, rename or delete any
//!   file, nor open TCP connections (ABI 4+), nor signal processes outside (ABI 6+).
//! - A seccomp filter refuses what Landlock does not cover: sockets of every kind (a Unix
//!   socket would reach the Docker daemon) and io_uring (which would open them behind the
//!   filter's back), changing a file's mode, owner, extended attributes or times, and the
//!   administrative calls (modules, mounts, namespaces, ptrace, keys, bpf, reboot…).
//! - No new privileges, no capabilities (a root lockship's child keeps none after `exec`), and
//!   a cap on its address space.
//!
//! What it can still do is answer wrongly, which is why what it compiles is keyed by its
//! identity. All of it is set between `fork` and `exec`, where only async-signal-safe system
//! calls may run: the ruleset and the filter are made beforehand, in the parent. That is why
//! this is written against the system calls rather than a crate that restricts the calling
//! thread. Without Landlock (an old kernel, a container that filters its calls) the rest still
//! applies, and [`ReadOnly::landlocked`] says so for the caller to warn.

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
    /// The Landlock ruleset (close-on-exec: the program does not keep it); None without
    /// Landlock.
    ruleset: Option<Arc<OwnedFd>>,
    filter: Option<Arc<Vec<SockFilter>>>,
    /// The cap on the program's address space, in bytes.
    memory: Option<u64>,
}

impl ReadOnly {
    /// A confinement to reading and executing beneath `dirs` (the file system part needs
    /// Landlock, and every directory there: see [`ReadOnly::landlocked`]).
    pub fn beneath(dirs: &[&Path]) -> ReadOnly {
        ReadOnly {
            ruleset: ruleset(dirs).map(Arc::new),
            filter: filter(),
            memory: None,
        }
    }

    /// Whether the file system is confined (Landlock is there and took every rule).
    pub fn landlocked(&self) -> bool {
        self.ruleset.is_some()
    }

    /// Caps the program's address space at `bytes`: past it, allocations fail (Python raises
    /// MemoryError) instead of the machine's OOM killer choosing a victim.
    pub fn with_memory_limit(mut self, bytes: u64) -> ReadOnly {
        self.memory = Some(bytes);
        self
    }

    /// Confines `cmd`'s program from its `exec` on. Failing to confine fails the spawn.
    pub fn confine(&self, cmd: &mut Command) {
        let (ruleset, filter, memory) = (self.ruleset.clone(), self.filter.clone(), self.memory);
        // SAFETY: the closure runs in the child between fork and exec and makes only
        // async-signal-safe system calls (prctl, setrlimit, landlock_restrict_self); the
        // filter and the ruleset were made in the parent and are only read.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // Without CAP_SETPCAP (not root) these fail, and there is nothing to drop.
                for cap in 0..64 {
                    libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0);
                }
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_CLEAR_ALL,
                    0,
                    0,
                    0,
                );
                if let Some(bytes) = memory {
                    let limit = libc::rlimit {
                        rlim_cur: bytes,
                        rlim_max: bytes,
                    };
                    if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
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
                if let Some(ruleset) = &ruleset {
                    if libc::syscall(libc::SYS_landlock_restrict_self, ruleset.as_raw_fd(), 0u32)
                        != 0
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
    }
}

/// A Landlock ruleset granting reading and executing beneath `dirs`, and nothing else the
/// kernel can tell; None when the kernel has no Landlock or refuses a rule.
fn ruleset(dirs: &[&Path]) -> Option<OwnedFd> {
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
    Some(ruleset)
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

/// This machine's seccomp architecture.
fn native_arch() -> Option<u32> {
    if cfg!(target_arch = "x86_64") {
        Some(0xC000_003E)
    } else if cfg!(target_arch = "aarch64") {
        Some(0xC000_00B7)
    } else {
        None
    }
}

/// The system calls the filter refuses (see the module's documentation).
fn refused() -> Vec<libc::c_long> {
    let mut calls = vec![
        // Sockets, and io_uring, which opens and connects them without a system call of its own.
        libc::SYS_socket,
        libc::SYS_socketpair,
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
        // A file's mode, owner, attributes and times: no Landlock right covers them.
        libc::SYS_fchmod,
        libc::SYS_fchmodat,
        libc::SYS_fchown,
        libc::SYS_fchownat,
        libc::SYS_setxattr,
        libc::SYS_lsetxattr,
        libc::SYS_fsetxattr,
        libc::SYS_removexattr,
        libc::SYS_lremovexattr,
        libc::SYS_fremovexattr,
        libc::SYS_utimensat,
        libc::SYS_truncate,
        libc::SYS_mknodat,
        // What a program of the machine's administrator does.
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_reboot,
        libc::SYS_kexec_load,
        libc::SYS_kexec_file_load,
        libc::SYS_bpf,
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_chroot,
        libc::SYS_swapon,
        libc::SYS_swapoff,
        libc::SYS_setns,
        libc::SYS_unshare,
        libc::SYS_perf_event_open,
        libc::SYS_open_by_handle_at,
        libc::SYS_name_to_handle_at,
        libc::SYS_userfaultfd,
        libc::SYS_fanotify_init,
        libc::SYS_quotactl,
        libc::SYS_acct,
        libc::SYS_settimeofday,
        libc::SYS_clock_settime,
        libc::SYS_sethostname,
        libc::SYS_setdomainname,
        libc::SYS_syslog,
        libc::SYS_vhangup,
        libc::SYS_move_mount,
        libc::SYS_open_tree,
        libc::SYS_fsopen,
        libc::SYS_fsmount,
        libc::SYS_fspick,
        libc::SYS_mount_setattr,
        // Calls added since Linux 5.1 have one number on every architecture: fchmodat2,
        // setxattrat, removexattrat (newer than this libc's tables).
        452,
        463,
        466,
    ];
    #[cfg(target_arch = "x86_64")]
    calls.extend([
        libc::SYS_chmod,
        libc::SYS_chown,
        libc::SYS_lchown,
        libc::SYS_utime,
        libc::SYS_utimes,
        libc::SYS_futimesat,
        libc::SYS_mknod,
        libc::SYS_iopl,
        libc::SYS_ioperm,
    ]);
    calls
}

/// The seccomp filter: the [`refused`] calls fail with EACCES, as does every call of another
/// architecture (32-bit calls on a 64-bit kernel, which have other numbers) and x86-64's x32
/// calls; None on architectures it does not know.
fn filter() -> Option<Arc<Vec<SockFilter>>> {
    let arch = native_arch()?;
    let stmt = |code: u32, k: u32| SockFilter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let jump = |code: u32, k: u32, jt: u8| SockFilter {
        code: code as u16,
        jt,
        jf: 0,
        k,
    };
    let deny = libc::SECCOMP_RET_ERRNO | libc::EACCES as u32;
    // struct seccomp_data: nr at 0, arch at 4.
    let load = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
    let equals = libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K;
    let at_least = libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K;
    let ret = libc::BPF_RET | libc::BPF_K;
    let calls = refused();
    let n = calls.len();
    // Jumps count the instructions skipped: each test jumps to the last, the refusal.
    let mut program = vec![
        stmt(load, 4),
        jump(equals, arch, 1),
        stmt(ret, deny),
        stmt(load, 0),
        jump(at_least, 0x4000_0000, (n + 1) as u8),
    ];
    for (i, call) in calls.iter().enumerate() {
        program.push(jump(equals, *call as u32, (n - i) as u8));
    }
    program.push(stmt(ret, libc::SECCOMP_RET_ALLOW));
    program.push(stmt(ret, deny));
    Some(Arc::new(program))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A python3 snippet run confined beneath `dir` (and the host's system directories it
    /// loads from), or None when the host has no python3 to run it with.
    fn python(sandbox: &ReadOnly, dir: &Path, code: &str) -> Option<std::process::Output> {
        let python = Path::new("/usr/bin/python3");
        if !python.exists() {
            return None;
        }
        let mut cmd = Command::new(python);
        cmd.args(["-S", "-c", code]).current_dir(dir);
        sandbox.confine(&mut cmd);
        Some(cmd.output().unwrap())
    }

    fn system_dirs(inside: &Path) -> ReadOnly {
        // The shell, Python and what they load are read and executed from the host's own
        // directories.
        ReadOnly::beneath(&[
            inside,
            Path::new("/bin"),
            Path::new("/usr"),
            Path::new("/lib"),
            Path::new("/lib64"),
            Path::new("/etc"),
        ])
    }

    #[test]
    fn a_confined_program_reads_beneath_its_directories_and_writes_nowhere() {
        let tmp = tempfile::tempdir().unwrap();
        let inside = tmp.path().join("inside");
        std::fs::create_dir(&inside).unwrap();
        std::fs::write(inside.join("data"), "readable").unwrap();
        std::fs::write(tmp.path().join("outside"), "secret").unwrap();
        let sandbox = system_dirs(&inside);
        if !sandbox.landlocked() {
            eprintln!("no Landlock on this kernel: the file system part is not checked");
            return;
        }
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
    }

    #[test]
    fn the_filter_refuses_sockets_io_uring_and_changing_modes_and_owners() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("data");
        std::fs::write(&file, "x").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let sandbox = system_dirs(tmp.path());
        // Each prints the errno its call failed with (13: EACCES, the filter's answer).
        let checks = [
            "import socket\ntry: socket.socket(socket.AF_UNIX)\nexcept OSError as e: print(e.errno)",
            // io_uring_setup(1, NULL): EFAULT (14) when allowed, for want of parameters.
            "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nlibc.syscall(425, 1, None)\nprint(ctypes.get_errno())",
            "import os\ntry: os.chmod('data', 0o777)\nexcept OSError as e: print(e.errno)",
            "import os\ntry: os.chown('data', 1234, 1234)\nexcept OSError as e: print(e.errno)",
            "import os\ntry: os.utime('data', (0, 0))\nexcept OSError as e: print(e.errno)",
        ];
        for code in checks {
            let Some(out) = python(&sandbox, tmp.path(), code) else {
                return;
            };
            assert_eq!(
                String::from_utf8_lossy(&out.stdout).trim(),
                "13",
                "{code}: {out:?}"
            );
        }
        let meta = std::fs::metadata(&file).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        // A cap on the address space: allocations past it fail in the program.
        let capped = sandbox.with_memory_limit(256 << 20);
        let code = "try: bytearray(1 << 30)\nexcept MemoryError: print('MemoryError')";
        if let Some(out) = python(&capped, tmp.path(), code) {
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "MemoryError");
        }
    }

    #[test]
    fn the_filter_jumps_land_on_the_refusal() {
        let program = filter().expect("x86-64 and arm64 have a filter");
        let n = refused().len();
        assert_eq!(program.len(), n + 7);
        let deny = program.len() - 1;
        // Every test of a call jumps, when it matches, to the last instruction.
        for (i, insn) in program.iter().enumerate().skip(4).take(n + 1) {
            assert_eq!(i + 1 + insn.jt as usize, deny, "instruction {i}");
        }
        assert_eq!(
            program[deny].k,
            libc::SECCOMP_RET_ERRNO | libc::EACCES as u32
        );
        assert_eq!(program[deny - 1].k, libc::SECCOMP_RET_ALLOW);
    }
}
