//! sentinit's own messages: one line each, on stderr, prefixed `sentinit:`, written so that they never
//! stall supervision.
//!
//! Quiet by default (warnings and errors only); `-v` explains every decision. The workload owns stdout,
//! so nothing here ever writes there.
//!
//! A container's stderr is a pipe to a log driver that can stop draining (a throttled awslogs, a full
//! disk, a paused reader). A PID 1 blocked in `write` forwards no signal and reaps no zombie, so every
//! write here is non-blocking: a line stderr cannot take at once is dropped and counted, and the next
//! line that gets through is preceded by one saying how many were lost. The descriptor sentinit shares
//! with the workload is never switched to O_NONBLOCK (the workload's own writes would start failing):
//! a pipe or terminal is reopened through `/proc/self/fd/2` as a private non-blocking description, a
//! socket is written with `MSG_DONTWAIT`, a regular file is written as it is. Only when none of that is
//! possible (no /proc) does sentinit fall back to writing after a zero-timeout `poll`, which can still
//! block if the workload fills the pipe in between. The final report alone may wait, and only until the
//! deadline set by [`wait_until`].
//!
//! Every line is also made safe for line-oriented log readers: control characters (other than tab) and
//! Unicode line separators inside it are escaped, so no value from outside can split a line or forge
//! one such as `REPORT`.

use std::fmt::Write as _;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

static VERBOSE: AtomicBool = AtomicBool::new(false);

/// The writer's state: shared by sentinit's threads (the HTTP resolver, the report-file writer), so it
/// sits behind a mutex; nothing ever holds it across a blocking call except a bounded final `poll`.
static OUTPUT: Mutex<Output> = Mutex::new(Output { how: None, dropped: 0, pending: Vec::new(), deadline: None });

/// The final report's lines are cut (with a marker) at this length.
const MAX_LINE: usize = 64 * 1024;

/// Every other line is cut to fit in one PIPE_BUF: a non-blocking write of that much to a pipe is
/// all or nothing, so no line is ever left half-written with the workload's output landing inside it.
const MAX_ATOMIC_LINE: usize = libc::PIPE_BUF - 1;

pub fn set_verbose(on: bool) {
    VERBOSE.store(on, Ordering::Relaxed);
}

pub fn verbose() -> bool {
    VERBOSE.load(Ordering::Relaxed)
}

/// From now on, a line that stderr cannot take at once is waited for until `deadline` (the final
/// report), instead of being dropped. `None` goes back to never waiting.
pub fn wait_until(deadline: Option<Instant>) {
    lock().deadline = deadline;
}

/// Writes one already-formatted line to stderr, escaped, without ever blocking (see the module doc).
/// Errors are ignored: a closed stderr must not stop sentinit from supervising the workload.
pub fn line(text: std::fmt::Arguments) {
    // Formatted before the lock is taken: formatting runs Display code, which must be free to log.
    let mut raw = String::with_capacity(128);
    let _ = raw.write_fmt(text);
    let mut escaped = String::with_capacity(raw.len() + 1);
    let mut output = lock();
    let max = if output.deadline.is_some() { MAX_LINE } else { MAX_ATOMIC_LINE };
    escape_into(&raw, &mut escaped, max);
    escaped.push('\n');
    output.emit(escaped.as_bytes());
}

/// At exit: writes what is still pending (the rest of a line, the count of dropped lines) while the
/// deadline set by [`wait_until`] allows.
pub fn finish() {
    let mut output = lock();
    if output.pending.is_empty() && output.dropped == 0 {
        return;
    }
    // The notice alone, written by emit before an empty line would be; nothing else follows it.
    output.emit(b"");
}

fn lock() -> std::sync::MutexGuard<'static, Output> {
    // A thread that panicked while holding the lock cannot have left the state unusable: go on.
    OUTPUT.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Appends `text` to `out` with control characters (C0 except tab, DEL, C1) and the Unicode line and
/// paragraph separators written as escapes (`\n`, `\r`, `\x1b`, `\u{9b}`, `\u{2028}`), cut (with a
/// marker) so that `out` stays within `max` bytes.
pub fn escape_into(text: &str, out: &mut String, max: usize) {
    const MARKER: &str = "...[cut]";
    let limit = max.saturating_sub(MARKER.len());
    for c in text.chars() {
        let before = out.len();
        match c {
            '\t' => out.push('\t'),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x80 && c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
        if out.len() > limit {
            out.truncate(before);
            out.push_str(MARKER);
            return;
        }
    }
}

/// How stderr is written without blocking.
#[derive(Clone, Copy, Debug)]
enum How {
    /// A private non-blocking description of the same pipe or terminal (close-on-exec).
    Reopened(RawFd),
    /// A socket: `send` with MSG_DONTWAIT.
    Socket,
    /// A regular file (writes do not wait for a reader) or something sentinit cannot make non-blocking:
    /// written after a zero-timeout poll says it is writable.
    Polled,
}

struct Output {
    /// Decided at the first write.
    how: Option<How>,
    /// Lines lost since the last one that got through.
    dropped: u64,
    /// The rest of a line that stderr took only part of: written before anything else.
    pending: Vec<u8>,
    /// While set, wait for stderr until then instead of dropping (the final report).
    deadline: Option<Instant>,
}

/// What one write attempt did.
enum Wrote {
    All,
    Part(usize),
    WouldBlock,
    /// stderr is closed or broken: nothing will ever get through, and nothing is counted.
    Failed,
}

impl Output {
    /// Writes the pending rest, the dropped-lines notice, then `line` (which may be empty).
    fn emit(&mut self, line: &[u8]) {
        let how = *self.how.get_or_insert_with(open_stderr);
        // `line` is lost (and counted) when what must come before it cannot be written first.
        let lost = u64::from(!line.is_empty());
        if !self.pending.is_empty() {
            let pending = std::mem::take(&mut self.pending);
            match self.write(how, &pending) {
                Wrote::All | Wrote::Failed => {}
                Wrote::Part(n) => self.pending = pending[n..].to_vec(),
                Wrote::WouldBlock => self.pending = pending,
            }
            if !self.pending.is_empty() {
                self.dropped += lost;
                return;
            }
        }
        if self.dropped > 0 {
            let notice = format!(
                "sentinit: warning: {} line{} dropped while stderr was blocked\n",
                self.dropped,
                if self.dropped == 1 { "" } else { "s" }
            );
            match self.write(how, notice.as_bytes()) {
                Wrote::All => self.dropped = 0,
                Wrote::Part(n) => {
                    self.dropped = lost;
                    self.pending = notice.as_bytes()[n..].to_vec();
                    return;
                }
                Wrote::WouldBlock | Wrote::Failed => {
                    self.dropped += lost;
                    return;
                }
            }
        }
        if line.is_empty() {
            return;
        }
        match self.write(how, line) {
            Wrote::All | Wrote::Failed => {}
            Wrote::Part(n) => self.pending = line[n..].to_vec(),
            Wrote::WouldBlock => self.dropped += 1,
        }
    }

    /// One write of `bytes`, waiting for stderr only while a deadline is set.
    fn write(&self, how: How, bytes: &[u8]) -> Wrote {
        let mut written = 0;
        loop {
            let result = match how {
                How::Polled if !writable_now(2) => Err(libc::EAGAIN),
                // A blocking pipe takes up to PIPE_BUF bytes at once when poll says it has room.
                How::Polled => raw_write(2, &bytes[written..bytes.len().min(written + libc::PIPE_BUF)]),
                How::Reopened(fd) => raw_write(fd, &bytes[written..]),
                How::Socket => raw_send(2, &bytes[written..]),
            };
            match result {
                Ok(n) => {
                    written += n;
                    if written == bytes.len() {
                        return Wrote::All;
                    }
                }
                Err(libc::EINTR) => {}
                Err(libc::EAGAIN) => {}
                Err(_) => return if written > 0 { Wrote::Part(written) } else { Wrote::Failed },
            }
            // Short or refused: wait for room only while the final report's deadline allows.
            let left = self.deadline.map(|d| d.saturating_duration_since(Instant::now())).unwrap_or_default();
            let fd = match how {
                How::Reopened(fd) => fd,
                _ => 2,
            };
            if left.is_zero() || !wait_writable(fd, left) {
                return if written > 0 { Wrote::Part(written) } else { Wrote::WouldBlock };
            }
        }
    }
}

/// Decides how to write stderr without blocking; see [`How`].
fn open_stderr() -> How {
    // SAFETY: fstat fills a plain-data struct for descriptor 2; failure leaves it unused.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above; the pointer is to a live local.
    if unsafe { libc::fstat(2, &mut stat) } != 0 {
        return How::Polled;
    }
    match stat.st_mode & libc::S_IFMT {
        libc::S_IFSOCK => How::Socket,
        libc::S_IFIFO | libc::S_IFCHR => {
            // A new open file description of the same pipe or terminal: O_NONBLOCK on it is sentinit's
            // alone. Through /proc when it is there; a terminal also through its device node (the
            // kernel's own init, where /proc is often not mounted yet, writes to /dev/console).
            let mut candidates = vec![String::from("/proc/self/fd/2")];
            if stat.st_mode & libc::S_IFMT == libc::S_IFCHR {
                candidates.extend(terminal_nodes(stat.st_rdev));
            }
            for candidate in candidates {
                if let Some(fd) = reopen(&candidate, &stat) {
                    return How::Reopened(fd);
                }
            }
            How::Polled
        }
        _ => How::Polled,
    }
}

/// Opens `path` write-only and non-blocking, and keeps it only when it is the very file of `stat`
/// (a /proc of another namespace, or a device node, could name something else).
fn reopen(path: &str, stat: &libc::stat) -> Option<RawFd> {
    let path = std::ffi::CString::new(path).ok()?;
    // O_NOCTTY: a terminal never becomes sentinit's controlling one.
    let flags = libc::O_WRONLY | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY;
    // SAFETY: open with a NUL-terminated path; the descriptor returned is ours.
    let fd = unsafe { libc::open(path.as_ptr(), flags) };
    if fd < 0 {
        return None;
    }
    // SAFETY: fstat into a live local.
    let mut reopened: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let same = unsafe { libc::fstat(fd, &mut reopened) } == 0
        && reopened.st_dev == stat.st_dev
        && reopened.st_ino == stat.st_ino
        && reopened.st_rdev == stat.st_rdev;
    let same = same || {
        // A device node opened by another path is another inode of the same device.
        stat.st_mode & libc::S_IFMT == libc::S_IFCHR
            && reopened.st_mode & libc::S_IFMT == libc::S_IFCHR
            && reopened.st_rdev == stat.st_rdev
    };
    if same {
        Some(fd)
    } else {
        // SAFETY: closing the descriptor just opened and owned here.
        unsafe { libc::close(fd) };
        None
    }
}

/// Where the terminal device `rdev` usually has its node: the console, a pseudo-terminal, a serial or
/// virtual console.
fn terminal_nodes(rdev: libc::dev_t) -> Vec<String> {
    let (major, minor) = (libc::major(rdev), libc::minor(rdev));
    match major {
        5 if minor == 1 => vec!["/dev/console".to_string()],
        136..=143 => vec![format!("/dev/pts/{}", (major - 136) * 256 + minor)],
        4 if minor >= 64 => vec![format!("/dev/ttyS{}", minor - 64)],
        4 => vec![format!("/dev/tty{minor}")],
        229 => vec![format!("/dev/hvc{minor}")],
        _ => Vec::new(),
    }
}

fn raw_write(fd: RawFd, bytes: &[u8]) -> Result<usize, i32> {
    // SAFETY: writes from a live slice of the stated length.
    let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
    if n < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO))
    } else {
        Ok(n as usize)
    }
}

fn raw_send(fd: RawFd, bytes: &[u8]) -> Result<usize, i32> {
    // SAFETY: sends from a live slice of the stated length; MSG_NOSIGNAL: no SIGPIPE for a closed peer.
    let n = unsafe { libc::send(fd, bytes.as_ptr().cast(), bytes.len(), libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
    if n < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO))
    } else {
        Ok(n as usize)
    }
}

/// Would a write to `fd` make progress right now? (A regular file always says yes.)
fn writable_now(fd: RawFd) -> bool {
    poll_out(fd, 0)
}

/// Waits up to `left` for `fd` to take more bytes.
fn wait_writable(fd: RawFd, left: std::time::Duration) -> bool {
    poll_out(fd, left.as_millis().clamp(1, i32::MAX as u128) as i32)
}

fn poll_out(fd: RawFd, millis: i32) -> bool {
    let mut entry = libc::pollfd { fd, events: libc::POLLOUT, revents: 0 };
    // SAFETY: polls one live pollfd.
    let rc = unsafe { libc::poll(&mut entry, 1, millis) };
    rc == 1 && entry.revents & libc::POLLOUT != 0
}

/// A decision worth explaining, shown only with `-v`.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => {
        if $crate::log::verbose() {
            $crate::log::line(format_args!("sentinit: {}", format_args!($($arg)*)));
        }
    };
}

/// Something the user should know about, shown always.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => {
        $crate::log::line(format_args!("sentinit: warning: {}", format_args!($($arg)*)))
    };
}

/// A failure, shown always.
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => {
        $crate::log::line(format_args!("sentinit: error: {}", format_args!($($arg)*)))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_could_split_or_forge_a_line() {
        let mut out = String::new();
        escape_into("a\nREPORT\tx\r\u{0}\u{1b}[31m\u{7f}\u{9b}2J\u{85}\u{2028}é", &mut out, MAX_LINE);
        assert_eq!(out, "a\\nREPORT\tx\\r\\x00\\x1b[31m\\x7f\\u{9b}2J\\u{85}\\u{2028}é");
        assert!(!out.contains('\n'));
    }

    #[test]
    fn cuts_huge_lines() {
        let mut out = String::new();
        escape_into(&"x".repeat(MAX_LINE * 2), &mut out, MAX_ATOMIC_LINE);
        assert!(out.len() <= MAX_ATOMIC_LINE && out.ends_with("...[cut]"), "{}", out.len());
        let mut out = String::new();
        escape_into(&"\n".repeat(MAX_LINE), &mut out, 100);
        assert!(out.len() <= 100 && out.ends_with("\\n...[cut]"), "{out}");
    }
}
