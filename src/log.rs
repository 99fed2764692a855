//! sentinit's own messages: one line each, on stderr, prefixed `sentinit:`.
//!
//! Quiet by default (warnings and errors only); `-v` explains every decision. The workload owns stdout,
//! so nothing here ever writes there.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static VERBOSE: AtomicBool = AtomicBool::new(false);

pub fn set_verbose(on: bool) {
    VERBOSE.store(on, Ordering::Relaxed);
}

pub fn verbose() -> bool {
    VERBOSE.load(Ordering::Relaxed)
}

/// Writes one already-formatted line to stderr. Errors are ignored: a closed stderr must not stop
/// sentinit from supervising the workload.
pub fn line(text: std::fmt::Arguments) {
    let mut buffer = Vec::with_capacity(128);
    let _ = writeln!(buffer, "{text}");
    let _ = std::io::stderr().lock().write_all(&buffer);
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
