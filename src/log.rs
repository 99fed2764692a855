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

/// A line longer than this is cut (with a marker); a partial write keeps at most this much pending.
const MAX_LINE: usize = 64 * 1024;

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

/// How many lines were dropped so far and not yet reported (for tests of this module).
pub fn dropped() -> u64 {
    lock().dropped
}

/// Writes one already-formatted line to stderr, escaped, without ever blocking (see the module doc).
/// Errors are ignored: a closed stderr must not stop sentinit from supervising the workload.
pub fn line(text: std::fmt::Arguments) {
    // Formatted before the lock is taken: formatting runs Display code, which must be free to log.
    let mut raw = String::with_capacity(128);
    let _ = raw.write_fmt(text);
    let mut escaped = String::with_capacity(raw.len() + 1);
    escape_into(&raw, &mut escaped);
    escaped.push('\n');
    lock().emit(escaped.as_bytes());
}

fn lock() -> std::sync::MutexGuard<'static, Output> {
    // A thread that panicked while holding the lock cannot have left the state unusable: go on.
    OUTPUT.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Appends `text` to `out` with control characters (except tab), DEL, NEL and the Unicode line and
/// paragraph separators written as escapes (`\n`, `\r`, `\x1b`, `\u{2028}`), and cut at [`MAX_LINE`].
pub fn escape_into(text: &str, out: &mut String) {
    for c in text.chars() {
        if out.len() >= MAX_LINE {
            out.push_str("...[cut]");
            return;
        }
        match c {
            '\t' => out.push('\t'),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            '\u{85}' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{{{:04x}}}", c as u32);
            }
            c => out.push(c),
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
    fn emit(&mut self, line: &[u8]) {
        let how = *self.how.get_or_insert_with(open_stderr);
        if !self.pending.is_empty() {
            let pending = std::mem::take(&mut self.pending);
            match self.write(how, &pending) {
                Wrote::All | Wrote::Failed => {}
                Wrote::Part(n) => self.pending = pending[n..].to_vec(),
                Wrote::WouldBlock => self.pending = pending,
            }
            if !self.pending.is_empty() {
                self.dropped += 1;
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
                    self.dropped = 0;
                    self.pending = notice.as_bytes()[n..].to_vec();
                }
                Wrote::WouldBlock | Wrote::Failed => {
                    self.dropped += 1;
                    return;
                }
            }
            if !self.pending.is_empty() {
                self.dropped += 1;
                return;
            }
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
            // alone. O_NOCTTY so that a terminal never becomes sentinit's controlling one.
            let flags = libc::O_WRONLY | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY;
            // SAFETY: open with a NUL-terminated literal path; the descriptor returned is ours.
            let fd = unsafe { libc::open(c"/proc/self/fd/2".as_ptr(), flags) };
            if fd < 0 {
                return How::Polled;
            }
            // The reopened file must be the one on descriptor 2 (a foreign /proc could name another).
            // SAFETY: fstat into a live local.
            let mut reopened: libc::stat = unsafe { std::mem::zeroed() };
            // SAFETY: as above.
            let same = unsafe { libc::fstat(fd, &mut reopened) } == 0
                && reopened.st_dev == stat.st_dev
                && reopened.st_ino == stat.st_ino;
            if same {
                How::Reopened(fd)
            } else {
                // SAFETY: closing the descriptor we just opened and own.
                unsafe { libc::close(fd) };
                How::Polled
            }
        }
        _ => How::Polled,
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
        escape_into("a\nREPORT\tx\r\u{0}\u{1b}[31m\u{7f}\u{2028}é", &mut out);
        assert_eq!(out, "a\\nREPORT\tx\\r\\x00\\x1b[31m\\x7f\\u{2028}é");
        assert!(!out.contains('\n'));
    }

    #[test]
    fn cuts_huge_lines() {
        let mut out = String::new();
        escape_into(&"x".repeat(MAX_LINE * 2), &mut out);
        assert!(out.len() <= MAX_LINE + 16 && out.ends_with("...[cut]"));
    }
}
