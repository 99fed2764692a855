//! The Kubernetes termination message: a one-line summary of the run written at the end to
//! `/dev/termination-log` (the container's `terminationMessagePath`), which `kubectl describe pod` and
//! the pod's status show after the container has ended, also when its logs are gone.
//!
//! `exit 137 (oom_killed): python3[4211] OOM-killed at 61.2 MiB; peak 64 MiB of 64 MiB; 12.3 s; CPU 3.1 s`
//!
//! The file belongs to the workload first: one it wrote to is left alone. The path is also a place a
//! hostile workload can prepare, so the file is opened without following a symlink at its last
//! component, without blocking (a FIFO there), written only if it is an empty regular file that is not
//! a kernel interface (proc, sysfs, cgroupfs, ...), and only where it already exists unless the path
//! was given explicitly (then created with O_EXCL). The work runs on a thread waited for until the
//! final output's deadline, like `--report-file`. Values from outside (a process name) are escaped, and
//! the message is cut to the 4096 bytes the kubelet keeps.

use crate::accounting::files::Limit;
use crate::accounting::Usage;
use crate::config::{Config, TerminationLog};
use crate::exit_reason;
use crate::report::{self, Writing};
use crate::supervise::Outcome;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Kubernetes' default `terminationMessagePath`.
pub const DEFAULT_PATH: &str = "/dev/termination-log";

/// The kubelet reads at most the last 4096 bytes of the file.
pub const MAX_BYTES: usize = 4096;

/// A process name in the message is cut to this many bytes (after escaping): the kernel's are 15.
const MAX_NAME: usize = 64;

/// The termination message being written (see [`start`]).
pub struct Pending {
    path: PathBuf,
    writing: Writing,
}

/// Starts writing the message for this run where `config` says, on a thread; `None` when it is off.
pub fn start(config: &Config, usage: &Usage, outcome: &Outcome) -> Option<Pending> {
    let (path, explicit) = match &config.termination_log {
        TerminationLog::Off => return None,
        // Outside Kubernetes (nearly always) no thread is started for nothing: /dev is local.
        TerminationLog::Default if std::fs::symlink_metadata(DEFAULT_PATH).is_err() => return None,
        TerminationLog::Default => (PathBuf::from(DEFAULT_PATH), false),
        TerminationLog::Path(path) => (PathBuf::from(path), true),
    };
    let text = message(usage, outcome, config.timeout);
    let for_job = path.clone();
    let job = std::sync::Arc::new(move || write_message(&for_job, explicit, &text));
    Some(Pending { path, writing: report::in_background(job) })
}

impl Pending {
    /// Waits for the write until `deadline`, and says what went wrong.
    pub fn wait(self, deadline: Instant) {
        if let Err(e) = self.writing.wait(deadline) {
            crate::warn!("cannot write the termination message to {}: {e}", self.path.display());
        }
    }
}

/// The summary: `exit CODE (REASON): ` then what is known of the timeout, the OOM kill and its
/// victim, the memory peak against the limit, the duration and the CPU time, `; `-separated. The code
/// is the workload's (sentinit's own, after `--timeout` or `--remap-exit`, is in the pod status).
pub fn message(usage: &Usage, outcome: &Outcome, timeout: Option<Duration>) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let (true, Some(timeout)) = (outcome.timed_out, timeout) {
        parts.push(format!("--timeout {}", tenths(timeout.as_millis() as u64)));
    }
    match (usage.oom_killed, usage.oom_victims.as_deref().and_then(|v| v.first())) {
        (Some(true), Some(victim)) => {
            // The name comes from the workload (prctl, argv[0]): escaped and cut here, so that it can
            // neither break the line nor push the rest out.
            let mut name = String::new();
            crate::log::escape_into(&victim.comm.as_deref().unwrap_or("?").replace('\t', "\\t"), &mut name, MAX_NAME);
            parts.push(format!("{name}[{}] OOM-killed at {}", victim.pid, report::mib(victim.rss_bytes)));
        }
        (Some(true), None) => parts.push(format!("OOM-killed ({})", usage.oom_kills.unwrap_or(1))),
        _ if usage.oom_suspected == Some(true) => parts.push("OOM kill suspected".to_string()),
        _ => {}
    }
    if let Some(peak) = usage.memory_peak_bytes {
        let limit = match usage.memory_limit {
            Some(Limit::Value(bytes)) => format!(" of {}", report::mib(bytes)),
            Some(Limit::Unlimited) => " (no limit)".to_string(),
            None => String::new(),
        };
        parts.push(format!("peak {}{limit}", report::mib(peak)));
    }
    parts.push(tenths(usage.duration.as_millis() as u64));
    if let (Some(user), Some(system)) = (usage.cpu_user_ms, usage.cpu_system_ms) {
        parts.push(format!("CPU {}", tenths(user + system)));
    }
    let reason = exit_reason::classify(outcome, usage).as_str();
    let text = format!("exit {} ({reason}): {}", outcome.exit.code(), parts.join("; "));
    let mut escaped = String::with_capacity(text.len());
    crate::log::escape_into(&text, &mut escaped, MAX_BYTES);
    escaped
}

/// Milliseconds as seconds with one decimal, in integers: `12.3 s`.
fn tenths(ms: u64) -> String {
    let tenths = (ms + 50) / 100;
    format!("{}.{} s", tenths / 10, tenths % 10)
}

/// openat2 with RESOLVE_NO_SYMLINKS: write-only, non-blocking, never through a symlink.
fn open_no_symlinks(path: &Path, create: bool) -> std::io::Result<std::fs::File> {
    use std::os::fd::FromRawFd;
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("a NUL byte in the path"))?;
    let mut flags = libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;
    if create {
        flags |= libc::O_CREAT | libc::O_EXCL;
    }
    // SAFETY: open_how is plain data; zeroed, then its three fields set.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = flags as u64;
    how.mode = if create { 0o644 } else { 0 };
    how.resolve = libc::RESOLVE_NO_SYMLINKS;
    // SAFETY: openat2 reads a NUL-terminated path and an open_how of the size given; the descriptor it
    // returns is owned by the File below.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            libc::AT_FDCWD,
            path.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a descriptor the kernel just returned, owned by nobody else.
    Ok(unsafe { std::fs::File::from_raw_fd(fd as i32) })
}

/// Writes `text` to `path` if it is an empty regular file (see the module doc). `explicit`: the path
/// was given with `--termination-log`, and is created if missing. What it did not write for a good
/// reason it says with -v, from its thread.
fn write_message(path: &Path, explicit: bool, text: &str) -> std::io::Result<()> {
    use std::io::{Error, ErrorKind, Write};
    use std::os::unix::fs::OpenOptionsExt;
    let open = |create: bool| {
        // No symlink anywhere in the path (openat2's RESOLVE_NO_SYMLINKS, Linux 5.6+): a workload that
        // controls a directory on the way cannot send root's write elsewhere. Older kernels: the last
        // component only (O_NOFOLLOW).
        match open_no_symlinks(path, create) {
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {}
            other => return other,
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC);
        if create {
            options.create_new(true).mode(0o644);
        }
        options.open(path)
    };
    let opened = match open(false) {
        // Not Kubernetes, or a pod without a termination message path.
        Err(e) if e.kind() == ErrorKind::NotFound && !explicit => return Ok(()),
        // Created only where nothing is, not even a dangling symlink; a file that appears meanwhile
        // is opened as it is.
        Err(e) if e.kind() == ErrorKind::NotFound => match open(true) {
            Err(e) if e.kind() == ErrorKind::AlreadyExists => open(false),
            other => other,
        },
        other => other,
    };
    let file = opened.map_err(|e| match e.raw_os_error() {
        Some(libc::ELOOP) => Error::other("it is, or its path goes through, a symlink, which is not followed"),
        // O_NONBLOCK: a FIFO without a reader refuses a writer instead of waiting for one.
        Some(libc::ENXIO) => Error::other("not a regular file (a FIFO?)"),
        _ => e,
    })?;
    let metadata = file.metadata()?;
    {
        use std::os::unix::fs::MetadataExt;
        // A hard link is another name of someone else's file.
        if metadata.is_file() && metadata.nlink() > 1 {
            return Err(Error::other("it has other hard links; not written"));
        }
    }
    if !metadata.file_type().is_file() || on_kernel_interface(&file) {
        return Err(Error::other("not a regular file"));
    }
    // Whatever the workload wrote is its own account of the end, and one sentinit must not replace;
    // it also means that a file of someone else's planted there (all have content) is never written.
    if metadata.len() > 0 {
        crate::debug!("{} is not empty: the workload's own termination message is kept", path.display());
        return Ok(());
    }
    // No fsync: the kubelet reads the file through the same page cache once the container has ended.
    (&file).write_all(text.as_bytes())?;
    crate::debug!("termination message written to {}", path.display());
    Ok(())
}

/// Is `file` on a filesystem whose files are kernel interfaces (they show as empty regular files,
/// and a write is a command), such as /proc/sys or a cgroup's control files?
fn on_kernel_interface(file: &std::fs::File) -> bool {
    const MAGICS: [u32; 9] = [
        0x9fa0,      // proc
        0x6265_6572, // sysfs
        0x0027_e0eb, // cgroup
        0x6367_7270, // cgroup2
        0x6462_6720, // debugfs
        0x7472_6163, // tracefs
        0x7363_6673, // securityfs
        0x6265_6570, // configfs
        0xcafe_4a11, // bpf
    ];
    // SAFETY: statfs is plain data; fstatfs writes into the live local and reads only the descriptor.
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::fstatfs(file.as_raw_fd(), &mut stat) };
    rc == 0 && MAGICS.contains(&(stat.f_type as u32))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processes::Victim;
    use crate::supervise::Exit;
    use std::time::SystemTime;

    fn outcome(exit: Exit) -> Outcome {
        Outcome::ended_now(exit)
    }

    fn usage() -> Usage {
        Usage {
            started_at: SystemTime::now(),
            duration: Duration::from_millis(12_345),
            cgroup_version: Some(1),
            cgroup_scope: Some("container"),
            cgroup_foreign_processes: Some(0),
            memory_peak_bytes: Some(64 << 20),
            memory_limit: Some(Limit::Value(64 << 20)),
            cpu_user_ms: Some(3_000),
            cpu_system_ms: Some(120),
            oom_killed: Some(true),
            oom_kills: Some(1),
            oom_suspected: Some(false),
            samples: 3,
            oom_victims: Some(vec![Victim {
                pid: 4211,
                comm: Some("python3".into()),
                command: Some("python3 etl.py".into()),
                rss_bytes: 64_172_851,
                exact: true,
            }]),
            main_child_oom_victim: Some(true),
            ..Usage::unknown()
        }
    }

    #[test]
    fn an_oom_kill_names_its_victim() {
        assert_eq!(
            message(&usage(), &outcome(Exit::Signal(libc::SIGKILL)), None),
            "exit 137 (oom_killed): python3[4211] OOM-killed at 61.2 MiB; peak 64 MiB of 64 MiB; 12.3 s; CPU 3.1 s"
        );
    }

    #[test]
    fn an_exit_and_a_timeout() {
        let quiet = Usage { oom_killed: Some(false), oom_kills: Some(0), oom_victims: Some(Vec::new()), ..usage() };
        assert_eq!(
            message(&quiet, &outcome(Exit::Code(3)), None),
            "exit 3 (exited): peak 64 MiB of 64 MiB; 12.3 s; CPU 3.1 s"
        );
        let timed_out = Outcome { timed_out: true, stop_signal: Some(libc::SIGTERM), ..outcome(Exit::Code(0)) };
        let unknown =
            Usage { memory_peak_bytes: None, cpu_user_ms: None, memory_limit: Some(Limit::Unlimited), ..quiet };
        assert_eq!(
            message(&unknown, &timed_out, Some(Duration::from_millis(300))),
            "exit 0 (timed_out): --timeout 0.3 s; 12.3 s"
        );
    }

    #[test]
    fn a_hostile_name_is_escaped_and_cannot_make_the_message_longer() {
        let mut hostile = usage();
        let name = format!("evil\n\u{1b}[2J\t{}", "x\u{7}".repeat(100_000));
        hostile.oom_victims.as_mut().unwrap()[0].comm = Some(name);
        let text = message(&hostile, &outcome(Exit::Signal(libc::SIGKILL)), None);
        assert!(text.len() <= MAX_BYTES && text.len() < 300, "{} bytes", text.len());
        assert!(text.starts_with("exit 137 (oom_killed): evil\\n\\x1b[2J\\tx\\x07"), "{text}");
        assert!(!text.chars().any(char::is_control), "{text:?}");
        assert!(text.ends_with("; peak 64 MiB of 64 MiB; 12.3 s; CPU 3.1 s"), "the facts after the name stay: {text}");
    }
}
