//! Signal names, numbers and masks.
//!
//! Owns the translation between `TERM`, `SIGTERM`, `15` and `RTMIN+3`, and the raw 64-bit signal masks
//! sentinit blocks and reads through a signalfd. Masks are built here by hand rather than with
//! `sigfillset`, because musl's `sigfillset` leaves signals 32-34 out: a SIGRTMIN sent to a musl shim
//! that relied on it would kill the shim instead of being forwarded.

/// Highest signal number on Linux.
pub const MAX_SIGNAL: i32 = 64;

/// The classic signals, by number. Index 0 is unused.
const NAMES: [&str; 32] = [
    "", "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2", "PIPE", "ALRM",
    "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG", "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH",
    "IO", "PWR", "SYS",
];

/// `SIGRTMIN` of the C library sentinit is linked against: 35 with musl (the static builds), 34 with
/// glibc, the same on x86_64 and aarch64 (measured with each C library's `SIGRTMIN`).
pub fn rtmin() -> i32 {
    libc::SIGRTMIN()
}

/// `SIGRTMAX`, always 64 on Linux.
pub fn rtmax() -> i32 {
    libc::SIGRTMAX()
}

/// A signal's conventional name, `SIGTERM` or `SIGRTMIN+2`, for messages and reports.
pub fn name(signal: i32) -> String {
    if (1..32).contains(&signal) {
        return format!("SIG{}", NAMES[signal as usize]);
    }
    if signal == rtmin() {
        return "SIGRTMIN".to_string();
    }
    if signal > rtmin() && signal <= rtmax() {
        return format!("SIGRTMIN+{}", signal - rtmin());
    }
    format!("SIG{signal}")
}

/// Parses `TERM`, `SIGTERM`, `sigterm`, `15`, `RTMIN`, `RTMIN+2`, `RTMAX-1`. `allow_zero` accepts `0`,
/// which means "drop the signal" on the right-hand side of a rewrite.
pub fn parse(text: &str, allow_zero: bool) -> Result<i32, String> {
    let trimmed = text.trim();
    if let Ok(number) = trimmed.parse::<i32>() {
        return match number {
            0 if allow_zero => Ok(0),
            1..=MAX_SIGNAL => Ok(number),
            _ => Err(format!("signal number {number} is out of range 1..{MAX_SIGNAL}")),
        };
    }
    let upper = trimmed.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(index) = NAMES.iter().position(|n| !n.is_empty() && *n == bare) {
        return Ok(index as i32);
    }
    // Aliases that other tools accept.
    match bare {
        "IOT" => return Ok(libc::SIGABRT),
        "POLL" => return Ok(libc::SIGIO),
        "CLD" => return Ok(libc::SIGCHLD),
        _ => {}
    }
    let realtime = |base: i32, rest: &str| -> Option<i32> {
        let signal = if rest.is_empty() {
            base
        } else if let Some(offset) = rest.strip_prefix('+') {
            base + offset.parse::<i32>().ok()?
        } else if let Some(offset) = rest.strip_prefix('-') {
            base - offset.parse::<i32>().ok()?
        } else {
            return None;
        };
        (rtmin()..=rtmax()).contains(&signal).then_some(signal)
    };
    let parsed = if let Some(rest) = bare.strip_prefix("RTMIN") {
        realtime(rtmin(), rest)
    } else if let Some(rest) = bare.strip_prefix("RTMAX") {
        realtime(rtmax(), rest)
    } else {
        None
    };
    parsed.ok_or_else(|| format!("unknown signal '{trimmed}'"))
}

/// A set of signals as the kernel's 64-bit mask: bit `n - 1` stands for signal `n`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mask(pub u64);

impl Mask {
    /// Every signal from 1 to 64, including the 32-34 that C libraries keep for themselves.
    /// SIGKILL and SIGSTOP are included for simplicity: the kernel silently refuses to block them.
    pub fn all() -> Mask {
        Mask(u64::MAX)
    }

    pub fn empty() -> Mask {
        Mask(0)
    }

    pub fn contains(self, signal: i32) -> bool {
        (1..=MAX_SIGNAL).contains(&signal) && self.0 & (1u64 << (signal - 1)) != 0
    }

    pub fn with(self, signal: i32) -> Mask {
        if (1..=MAX_SIGNAL).contains(&signal) {
            Mask(self.0 | (1u64 << (signal - 1)))
        } else {
            self
        }
    }
}

/// Sets the calling thread's blocked mask to `mask` and returns the previous one.
pub fn set_blocked(mask: Mask) -> std::io::Result<Mask> {
    let new = mask.0;
    let mut old: u64 = 0;
    // SAFETY: rt_sigprocmask reads 8 bytes from `new` and writes 8 bytes to `old`, both live u64s; the raw
    // syscall is used so that the C library cannot drop signals 32-34 from the mask.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &new as *const u64,
            &mut old as *mut u64,
            std::mem::size_of::<u64>(),
        )
    };
    if rc == 0 {
        Ok(Mask(old))
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Creates a non-blocking, close-on-exec signalfd for `mask`.
pub fn signalfd(mask: Mask) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    let bits = mask.0;
    // SAFETY: signalfd4 reads an 8-byte mask from a live u64 and returns a new descriptor we then own.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_signalfd4,
            -1,
            &bits as *const u64,
            std::mem::size_of::<u64>(),
            libc::SFD_CLOEXEC | libc::SFD_NONBLOCK,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor to us and nothing else owns it.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}

/// The dispositions sentinit must put right for its workload, read when sentinit starts.
///
/// sentinit installs no handler (it reads signals through a signalfd), so every signal it does not
/// touch reaches the workload as sentinit's parent left it: SIG_IGN survives fork and execve by
/// itself (`nohup`, `trap '' INT` stay in force), and SIG_DFL stays SIG_DFL. Only three kinds need a
/// system call between fork and exec, which keeps that stretch (and sentinit's start) short:
/// - SIGTTIN and SIGTTOU, which sentinit ignores for itself: back to what the parent left;
/// - the signals the C library keeps for itself (32 up to its SIGRTMIN), when found ignored: glibc's
///   posix_spawn marks them ignored in every child it starts, not as anyone's choice, and a workload
///   must not inherit that;
/// - SIGCHLD is never passed on ignored: sentinit sets it to default for itself before it forks (an
///   ignored SIGCHLD makes the kernel reap children by itself, which breaks every program that waits
///   for its own; a launcher's `trap '' CHLD` is about its zombies, and sentinit reaps those now).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Inherited {
    /// SIGTTIN and SIGTTOU, where the parent ignored them.
    pub terminal_ignores: Mask,
    /// C-library signals found ignored, to be reset to default.
    pub reserved_ignores: Mask,
}

impl Inherited {
    /// Reads the few dispositions that matter (see the type's doc): five system calls.
    pub fn read() -> Inherited {
        let ignored = |signal: i32| disposition(signal) == Some(libc::SIG_IGN);
        let mut inherited = Inherited::default();
        for signal in [libc::SIGTTIN, libc::SIGTTOU].into_iter().filter(|s| ignored(*s)) {
            inherited.terminal_ignores = inherited.terminal_ignores.with(signal);
        }
        for signal in (32..rtmin()).filter(|s| ignored(*s)) {
            inherited.reserved_ignores = inherited.reserved_ignores.with(signal);
        }
        inherited
    }

    /// Puts the dispositions sentinit changed back for the workload. Only system calls, so it is safe
    /// between fork and exec.
    pub fn restore(&self) {
        for signal in [libc::SIGTTIN, libc::SIGTTOU] {
            set_ignored(signal, self.terminal_ignores.contains(signal));
        }
        for signal in 32..rtmin() {
            if self.reserved_ignores.contains(signal) {
                set_ignored(signal, false);
            }
        }
    }
}

/// The kernel's own `struct sigaction` for rt_sigaction: handler, flags, restorer, mask. Used instead
/// of the C library's wrapper, which refuses signals 32-34.
#[repr(C)]
struct KernelSigaction {
    handler: libc::sighandler_t,
    flags: libc::c_ulong,
    restorer: libc::sighandler_t,
    mask: u64,
}

/// The current handler of `signal` (SIG_DFL, SIG_IGN or a function address).
fn disposition(signal: i32) -> Option<libc::sighandler_t> {
    let mut current = KernelSigaction { handler: 0, flags: 0, restorer: 0, mask: 0 };
    // SAFETY: rt_sigaction with a null new action writes the current one into a live struct of the
    // layout the kernel expects for an 8-byte signal mask.
    let rc = unsafe {
        libc::syscall(libc::SYS_rt_sigaction, signal, std::ptr::null::<KernelSigaction>(), &mut current, 8usize)
    };
    (rc == 0).then_some(current.handler)
}

/// Sets `signal`'s disposition to ignore (`true`) or default (`false`). Used between fork and exec too,
/// so it does nothing but one system call.
pub fn set_ignored(signal: i32, ignored: bool) {
    let handler = if ignored { libc::SIG_IGN } else { libc::SIG_DFL };
    let action = KernelSigaction { handler, flags: 0, restorer: 0, mask: 0 };
    // SAFETY: installing SIG_IGN or SIG_DFL runs no handler code, so no restorer is needed; the kernel
    // reads a live struct of its own layout.
    unsafe {
        libc::syscall(libc::SYS_rt_sigaction, signal, &action, std::ptr::null_mut::<KernelSigaction>(), 8usize);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_numbers_and_realtime() {
        assert_eq!(parse("TERM", false), Ok(15));
        assert_eq!(parse("sigquit", false), Ok(3));
        assert_eq!(parse("SIGUSR1", false), Ok(10));
        assert_eq!(parse("9", false), Ok(9));
        assert_eq!(parse("0", true), Ok(0));
        assert!(parse("0", false).is_err());
        assert_eq!(parse("RTMIN", false), Ok(rtmin()));
        assert_eq!(parse("RTMIN+2", false), Ok(rtmin() + 2));
        assert_eq!(parse("SIGRTMAX-1", false), Ok(63));
        assert!(parse("RTMAX+1", false).is_err());
        assert!(parse("65", false).is_err());
        assert!(parse("BOGUS", false).is_err());
        assert!(parse("", false).is_err());
    }

    #[test]
    fn names_round_trip() {
        for signal in 1..=MAX_SIGNAL {
            if (32..rtmin()).contains(&signal) {
                continue; // the C library keeps these below its SIGRTMIN; they have no portable name
            }
            assert_eq!(parse(&name(signal), false), Ok(signal), "{}", name(signal));
        }
    }

    #[test]
    fn mask_bits() {
        let mask = Mask::empty().with(1).with(64);
        assert!(mask.contains(1) && mask.contains(64) && !mask.contains(2));
        assert_eq!(mask.0, 1 | (1 << 63));
    }
}
