//! Starting the workload: PATH lookup, a clean signal state, its own process group, the terminal's
//! foreground, and exec.
//!
//! The child is made the way posix_spawn makes it: `clone(CLONE_VM | CLONE_VFORK)`, so it runs on
//! sentinit's memory, on a stack of its own, while sentinit waits until it has exec'd or exited. A
//! fork would copy sentinit's page tables only for the child to throw them away at exec, and both
//! would then take copy-on-write faults: measured, that was the largest single cost of starting.
//! Between clone and exec the child only makes system calls on data prepared before: no allocation,
//! no locks, nothing written but its own stack and the words that say why its exec or its cgroup join
//! failed.
//!
//! Everything that can fail in a way worth explaining (command not found, not executable, a missing
//! interpreter) is decided before the clone or read back from that word (and from a close-on-exec pipe
//! beside it, for where CLONE_VM is emulated as a fork, as under qemu-user), so the error line names
//! the path and the exit code is 127 or 126 as shells and tini use them. The word needs no
//! descriptor, so a low RLIMIT_NOFILE cannot cost the workload its start or its error message.

use crate::environ::Environ;
use crate::signals::{self, Mask};
use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};

/// The PATH searched when the workload's environment has none, as in Docker's default images.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Why the workload could not be started.
#[derive(Debug)]
pub enum LaunchError {
    /// No such program: exit code 127.
    NotFound(String),
    /// Found, but cannot be executed (a directory, no x bit, bad format): exit code 126.
    NotExecutable(String, io::Error),
    /// Found, but its `#!` interpreter or ELF program loader (named when known) is missing: exit code
    /// 126, as in shells.
    MissingInterpreter(String, Interpreter),
    /// The clone failed (out of processes or memory): exit code 1.
    System(String, io::Error),
}

impl LaunchError {
    pub fn exit_code(&self) -> i32 {
        match self {
            LaunchError::NotFound(_) => 127,
            LaunchError::NotExecutable(..) | LaunchError::MissingInterpreter(..) => 126,
            LaunchError::System(..) => 1,
        }
    }
}

impl std::fmt::Display for LaunchError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            LaunchError::NotFound(path) => write!(f, "cannot run '{path}': command not found"),
            LaunchError::NotExecutable(path, error) => write!(f, "cannot run '{path}': {}", describe(path, error)),
            LaunchError::MissingInterpreter(path, Interpreter::Script(name)) => {
                write!(f, "cannot run '{path}': its interpreter {name} (from the #! line) does not exist")
            }
            LaunchError::MissingInterpreter(path, Interpreter::ScriptLoader(interpreter, loader)) => write!(
                f,
                "cannot run '{path}': its interpreter {interpreter} (from the #! line) cannot run: its program loader {} does not exist",
                loader.as_deref().unwrap_or("(unnamed)")
            ),
            LaunchError::MissingInterpreter(path, Interpreter::Loader(Some(name))) => write!(
                f,
                "cannot run '{path}': its program loader {name} does not exist (a dynamically linked binary for another C library?)"
            ),
            LaunchError::MissingInterpreter(path, Interpreter::Loader(None)) => {
                write!(f, "cannot run '{path}': its interpreter or program loader does not exist")
            }
            LaunchError::System(what, error) => {
                write!(f, "cannot start the workload: {what}: {error}")
            }
        }
    }
}

/// An exec error in words a user acts on, without Rust's "(os error N)" suffix.
fn describe(path: &str, error: &io::Error) -> String {
    match error.raw_os_error() {
        Some(libc::EACCES) if Path::new(path).is_dir() => "is a directory".to_string(),
        Some(libc::EACCES) => "permission denied (is it executable?)".to_string(),
        Some(libc::ENOEXEC) => "exec format error (not a binary for this machine, and no #! line)".to_string(),
        _ => {
            let text = error.to_string();
            text.split(" (os error").next().unwrap_or(&text).to_string()
        }
    }
}

/// What a file that exists but fails to exec with ENOENT is missing.
#[derive(Debug)]
pub enum Interpreter {
    /// The interpreter named on its `#!` line.
    Script(String),
    /// The `#!` interpreter exists, but its own ELF program loader does not.
    ScriptLoader(String, Option<String>),
    /// The ELF program loader (PT_INTERP), when it could be read.
    Loader(Option<String>),
}

/// What the child needs to exec, prepared before the clone.
pub struct Launch {
    program: CString,
    display: String,
    argv: Vec<CString>,
    envp: Vec<CString>,
}

/// The state the workload should start with, where it differs from sentinit's own.
pub struct ChildSetup {
    /// The dispositions sentinit's parent left that sentinit changed for itself.
    pub inherited: signals::Inherited,
    /// `cgroup.procs` descriptors of the workload's own cgroup, joined before exec so that nothing the
    /// workload allocates is charged elsewhere (accounting::own_group).
    pub join_cgroups: Vec<i32>,
}

impl Launch {
    /// Resolves the program against the workload's PATH and converts everything to C strings.
    pub fn prepare(command: &[OsString], env: &Environ) -> Result<Launch, LaunchError> {
        let name = command.first().ok_or_else(|| LaunchError::NotFound(String::new()))?;
        let display = name.to_string_lossy().into_owned();
        let program = resolve(name, env.get("PATH"))?;
        let cstring = |bytes: Vec<u8>| {
            CString::new(bytes).map_err(|_| {
                LaunchError::NotExecutable(
                    display.clone(),
                    io::Error::new(io::ErrorKind::InvalidInput, "argument contains a NUL byte"),
                )
            })
        };
        let argv = command.iter().map(|a| cstring(a.as_bytes().to_vec())).collect::<Result<Vec<_>, _>>()?;
        // Entries come from the C runtime's envp, so none holds a NUL; sentinit's own additions are
        // validated before they are added. Skipping is only a guard.
        let envp = env.entries().iter().filter_map(|entry| CString::new(entry.clone()).ok()).collect();
        Ok(Launch { program: cstring(program.into_os_string().into_vec())?, display, argv, envp })
    }

    /// The program as the user named it, for messages.
    pub fn display(&self) -> &str {
        &self.display
    }
}

/// execvp's lookup, done before the fork so the error names what was searched: a name with a slash is
/// used as is; otherwise the first executable regular file of that name on PATH, or, when only
/// non-executable matches exist, the first of those (so the exec fails with EACCES → 126).
fn resolve(name: &OsStr, path_var: Option<&OsStr>) -> Result<PathBuf, LaunchError> {
    let display = name.to_string_lossy().into_owned();
    if name.is_empty() {
        return Err(LaunchError::NotFound(display));
    }
    if name.as_bytes().contains(&b'/') {
        return Ok(PathBuf::from(name));
    }
    let search = path_var.unwrap_or(OsStr::new(DEFAULT_PATH));
    let mut not_executable = None;
    for dir in search.as_bytes().split(|b| *b == b':') {
        let dir = if dir.is_empty() { Path::new(".") } else { Path::new(OsStr::from_bytes(dir)) };
        let candidate = dir.join(name);
        match std::fs::metadata(&candidate) {
            Ok(meta) if meta.is_file() && is_executable(&candidate) => return Ok(candidate),
            Ok(meta) if meta.is_file() => {
                not_executable.get_or_insert(candidate);
            }
            _ => {}
        }
    }
    not_executable.ok_or(LaunchError::NotFound(display))
}

fn is_executable(path: &Path) -> bool {
    nix::unistd::access(path, nix::unistd::AccessFlags::X_OK).is_ok()
}

/// Is stdin a terminal whose foreground group is sentinit's own? Only then is the terminal handed to
/// the workload: a sentinit started in the background of a shell must not steal the foreground.
pub fn owns_foreground_terminal() -> bool {
    let stdin = std::io::stdin();
    nix::unistd::isatty(&stdin).unwrap_or(false)
        && nix::unistd::tcgetpgrp(&stdin).is_ok_and(|group| group == nix::unistd::getpgrp())
}

/// The child's stack while it shares sentinit's memory: it only makes system calls, and musl's
/// posix_spawn gets by with 5 KiB.
const CHILD_STACK_BYTES: usize = 16 * 1024;

/// What [`child_main`] gets, in [`spawn`]'s frame, which stays put while the child runs.
struct ChildArgs<'a> {
    launch: &'a Launch,
    argv: &'a [*const libc::c_char],
    envp: &'a [*const libc::c_char],
    setup: &'a ChildSetup,
    take_terminal: bool,
    /// The errno of a failed execve; 0 while none failed.
    exec_errno: &'a AtomicI32,
    /// The errno of a failed join of the workload's own cgroup; 0 while none failed.
    join_errno: &'a AtomicI32,
    /// The write end of the close-on-exec pipe that also carries that errno, when one could be made.
    errno_pipe: Option<i32>,
}

/// The workload, started.
pub struct Started {
    pub pid: i32,
    /// What writing itself into its own cgroup failed with in the child (0: nothing known to fail; a
    /// fork or an emulator keeps the child's word from sentinit, see accounting::own_group).
    pub join_errno: i32,
}

/// Starts the workload in its own process group. Returns once it has exec'd.
///
/// The caller must have blocked every signal (so a signal arriving between clone and exec waits for
/// the workload's own dispositions) and set SIGTTIN/SIGTTOU to ignore.
pub fn spawn(launch: Launch, setup: &ChildSetup, take_terminal: bool) -> Result<Started, LaunchError> {
    let mut argv: Vec<*const libc::c_char> = launch.argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = launch.envp.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    let exec_errno = AtomicI32::new(0);
    let join_errno = AtomicI32::new(0);
    // The errno of a failed exec also goes through a close-on-exec pipe: where clone's CLONE_VM is not
    // honoured (user-mode emulators such as qemu-user make it a fork) the shared word stays 0 in the
    // parent, and the pipe's end of file also says when the exec happened. Without a descriptor for it
    // (RLIMIT_NOFILE) the shared word is enough on a real kernel.
    let pipe = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ok();
    let args = ChildArgs {
        launch: &launch,
        argv: &argv,
        envp: &envp,
        setup,
        take_terminal,
        exec_errno: &exec_errno,
        join_errno: &join_errno,
        errno_pipe: pipe.as_ref().map(|(_, write_end)| write_end.as_raw_fd()),
    };
    // Capacity only: the kernel and the child write it; Rust never reads it.
    let mut stack: Vec<u8> = Vec::with_capacity(CHILD_STACK_BYTES);
    let stack_top = (stack.as_mut_ptr() as usize + CHILD_STACK_BYTES) & !15;
    // SAFETY: CLONE_VFORK suspends this thread until the child has exec'd or exited, so `args` and the
    // stack outlive every use the child makes of them. The child runs child_main on the stack given
    // (CLONE_VM shares the memory, not the stack pointer) and only makes async-signal-safe system calls
    // on data prepared here, so it is sound even if another thread (ureq's resolver) holds a lock now.
    // No signal handler can run in it: every signal is blocked, and sentinit installs none.
    let pid = unsafe {
        libc::clone(
            child_main,
            stack_top as *mut libc::c_void,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            &args as *const ChildArgs as *mut libc::c_void,
        )
    };
    let mut pid = pid;
    if pid < 0 {
        let error = io::Error::last_os_error();
        // A sandbox may refuse this clone (a seccomp profile that knows fork but not posix_spawn's
        // flags, or a kernel without them): a plain fork then, as sentinit always did before. Out of
        // processes or memory (EAGAIN, ENOMEM) a fork would fail the same way.
        if !matches!(error.raw_os_error(), Some(libc::EPERM | libc::EINVAL | libc::ENOSYS)) {
            return Err(LaunchError::System("clone".into(), error));
        }
        crate::debug!("clone(CLONE_VM|CLONE_VFORK) refused ({error}): starting the workload with fork");
        // SAFETY: the child runs child_main on its own copy of this memory and only makes
        // async-signal-safe system calls before it execs or _exits (see child_main), so it is sound
        // even if another thread held a lock at the fork.
        pid = unsafe { libc::fork() };
        if pid == 0 {
            child_main(&args as *const ChildArgs as *mut libc::c_void);
        }
        if pid < 0 {
            return Err(LaunchError::System("fork".into(), io::Error::last_os_error()));
        }
        // Also from here: without the pipe below nothing waits for the child's own setpgid, and the
        // group must exist before the first signal is forwarded to it. (Refused once it has exec'd.)
        let child = nix::unistd::Pid::from_raw(pid);
        let _ = nix::unistd::setpgid(child, child);
    }
    let mut errno = 0;
    // After a fork (or where CLONE_VM is emulated) the pipe is what says the exec happened: its end of
    // file. Without a pipe, a forked child's exec failure shows only as its exit code.
    if let Some((read_end, write_end)) = pipe {
        drop(write_end);
        let mut bytes = [0u8; 4];
        if read_full(&read_end, &mut bytes) == bytes.len() {
            errno = i32::from_ne_bytes(bytes);
        }
    }
    if errno == 0 {
        // The child has exec'd or exited by now (CLONE_VFORK).
        errno = exec_errno.load(Ordering::Acquire);
    }
    if errno != 0 {
        // Reap the child that failed to exec and has exited.
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        return Err(classify_exec_error(&launch, io::Error::from_raw_os_error(errno)));
    }
    Ok(Started { pid, join_errno: join_errno.load(Ordering::Acquire) })
}

/// ENOENT from execve means the program or, when the program itself exists, its interpreter.
fn classify_exec_error(launch: &Launch, error: io::Error) -> LaunchError {
    let path = Path::new(OsStr::from_bytes(launch.program.as_bytes()));
    match error.raw_os_error() {
        Some(libc::ENOENT) if path.is_file() => {
            LaunchError::MissingInterpreter(launch.display.clone(), missing_interpreter(path))
        }
        Some(libc::ENOENT) | Some(libc::ENOTDIR) => LaunchError::NotFound(launch.display.clone()),
        _ => LaunchError::NotExecutable(launch.display.clone(), error),
    }
}

/// What an existing file that execve could not find needs: the `#!` interpreter, or the ELF's
/// PT_INTERP loader (64-bit little-endian only; otherwise unnamed).
fn missing_interpreter(path: &Path) -> Interpreter {
    use std::io::Read;
    let mut head = Vec::new();
    if let Ok(file) = std::fs::File::open(path) {
        let _ = file.take(4096).read_to_end(&mut head);
    }
    if let Some(line) = head.strip_prefix(b"#!") {
        let line = line.split(|b| *b == b'\n').next().unwrap_or_default();
        let name = String::from_utf8_lossy(line).split_whitespace().next().unwrap_or_default().to_string();
        if Path::new(&name).is_file() {
            // The interpreter is there: what is missing is its own loader (one level only: the
            // kernel does not run a script as an interpreter either).
            let mut interpreter_head = Vec::new();
            if let Ok(file) = std::fs::File::open(&name) {
                let _ = file.take(4096).read_to_end(&mut interpreter_head);
            }
            let loader = elf_interpreter(&interpreter_head);
            return Interpreter::ScriptLoader(name, loader);
        }
        if !name.is_empty() {
            return Interpreter::Script(name);
        }
    }
    Interpreter::Loader(elf_interpreter(&head))
}

/// The PT_INTERP string of a 64-bit little-endian ELF header held in `head`.
fn elf_interpreter(head: &[u8]) -> Option<String> {
    const PT_INTERP: u32 = 3;
    if !head.starts_with(b"\x7fELF\x02\x01") {
        return None;
    }
    let u16_at = |at: usize| Some(u16::from_le_bytes(head.get(at..at + 2)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_le_bytes(head.get(at..at + 4)?.try_into().ok()?));
    let u64_at = |at: usize| Some(u64::from_le_bytes(head.get(at..at + 8)?.try_into().ok()?) as usize);
    let (table, entry_size, count) = (u64_at(0x20)?, u16_at(0x36)? as usize, u16_at(0x38)? as usize);
    (0..count.min(64)).find_map(|index| {
        let entry = table.checked_add(index.checked_mul(entry_size)?)?;
        if u32_at(entry)? != PT_INTERP {
            return None;
        }
        let (offset, size) = (u64_at(entry + 8)?, u64_at(entry + 32)?);
        let bytes = head.get(offset..offset.checked_add(size)?)?;
        let name = bytes.split(|b| *b == 0).next()?;
        let text = std::str::from_utf8(name).ok()?;
        text.chars().all(|c| c.is_ascii_graphic()).then(|| text.to_string())
    })
}

/// The last resort when signals cannot be taken over: exec the workload in place of sentinit, with
/// the signal state it would have had as sentinit's child. Returns only on failure, with 127 or 126.
pub fn exec_in_place(command: &[OsString], env: &Environ, setup: &ChildSetup) -> i32 {
    let launch = match Launch::prepare(command, env) {
        Ok(launch) => launch,
        Err(e) => {
            crate::error!("{e}");
            return e.exit_code();
        }
    };
    let mut argv: Vec<*const libc::c_char> = launch.argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = launch.envp.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    reset_signals(setup);
    // SAFETY: NULL-terminated arrays of pointers into CStrings that outlive the call.
    unsafe { libc::execve(launch.program.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    let error = classify_exec_error(&launch, io::Error::last_os_error());
    crate::error!("{error}");
    error.exit_code()
}

/// The workload's signal state: the dispositions sentinit's parent left (see signals::Inherited),
/// nothing blocked. Only system calls, so it is safe between fork and exec.
fn reset_signals(setup: &ChildSetup) {
    setup.inherited.restore();
    let _ = signals::set_blocked(Mask::empty());
}

/// Reads until `buffer` is full or EOF (the exec closed the pipe); returns the byte count.
fn read_full(fd: &std::os::fd::OwnedFd, buffer: &mut [u8]) -> usize {
    let mut filled = 0;
    while filled < buffer.len() {
        match nix::unistd::read(fd, &mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break,
        }
    }
    filled
}

/// The child side of [`spawn`], on its own stack in sentinit's memory. Never returns.
extern "C" fn child_main(args: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `args` points at the ChildArgs in spawn's frame, suspended until this child execs or exits.
    let args = unsafe { &*(args as *const ChildArgs) };
    // SAFETY: only async-signal-safe system calls on memory prepared before the clone.
    unsafe {
        libc::setpgid(0, 0);
        for &procs in &args.setup.join_cgroups {
            // "0" moves the writer itself, through a descriptor the parent opened (so none is needed
            // here). A failure leaves the workload where sentinit is and is said by the parent.
            if libc::write(procs, b"0".as_ptr().cast(), 1) != 1 {
                args.join_errno.store((*libc::__errno_location()).max(1), Ordering::Release);
            }
        }
        if args.take_terminal {
            // Every signal is still blocked, so the SIGTTOU a background group gets here is held, not
            // acted on; the workload becomes the foreground group before it runs a single instruction.
            libc::tcsetpgrp(0, libc::getpid());
        }
        reset_signals(args.setup);
        libc::execve(args.launch.program.as_ptr(), args.argv.as_ptr(), args.envp.as_ptr());
        // errno is sentinit's main thread's (the child shares its thread pointer): read it at once.
        let errno = (*libc::__errno_location()).max(1);
        args.exec_errno.store(errno, Ordering::Release);
        if let Some(fd) = args.errno_pipe {
            let bytes = errno.to_ne_bytes();
            libc::write(fd, bytes.as_ptr().cast(), bytes.len());
        }
        libc::_exit(127)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_on_path_and_reports_missing() {
        let found = resolve(OsStr::new("sh"), Some(OsStr::new("/nonexistent:/bin:/usr/bin"))).unwrap();
        assert!(found.ends_with("sh"));
        assert!(matches!(
            resolve(OsStr::new("no-such-cmd-xyz"), Some(OsStr::new("/bin"))),
            Err(LaunchError::NotFound(_))
        ));
        // A name with a slash is taken as it is; exec decides.
        assert_eq!(resolve(OsStr::new("./x"), None).unwrap(), PathBuf::from("./x"));
    }
}
