//! Counter files held open for the whole run and re-read with `pread` at offset 0, plus the parsers for
//! the three cgroup file shapes (single value, flat-keyed, nested-keyed PSI).
//!
//! Opening once matters: a sample is then a handful of `pread`s with no path lookups, a file that
//! vanishes mid-run does not turn into a different file, and v2's `memory.peak` reset only holds for
//! the descriptor that wrote it. A sample must stay cheap at a 10 ms interval: each file keeps its own
//! read buffer, a short `pread` is the end of the file (no second call), and keyed files are searched
//! for the few keys wanted without building a map. Files are opened non-blocking and without following
//! a final symlink, and used only when they are regular files, so that a FIFO or a device in a tree
//! given through SENTINIT_SYS_ROOT cannot hang start-up. Every failure (missing file, unreadable,
//! malformed or oversized content) is a `None`, never a panic and never a made-up 0.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Cgroup files are small; memory.stat is the largest at a few KiB. A file that fills this much is not
/// a cgroup file, and a cut-off parse of it would be wrong: it reads as `None`.
pub const MAX_FILE: usize = 64 * 1024;

/// What the first read of a file gets; the buffer doubles until the whole file fits. A keyed file is
/// made whole by the kernel at every read (memory.stat costs a walk of the group's statistics), and a
/// read that starts past offset 0 makes it again, so those get room for all of it at once; a number
/// needs a few bytes.
fn first_buffer(name: &str) -> usize {
    match name {
        "memory.stat" => 2048,
        "stat" | "cpu.stat" | "memory.events" | "memory.oom_control" | "memory.pressure" | "cpu.pressure" => 512,
        _ => 64,
    }
}

/// One cgroup file, opened once, with the buffer it is re-read into.
pub struct CounterFile {
    file: File,
    path: PathBuf,
    buffer: Vec<u8>,
}

impl CounterFile {
    /// Opens `dir/name` for reading; `None` (with a -v line) when it does not exist, cannot be opened or
    /// is not a regular file.
    pub fn open(dir: &Path, name: &str) -> Option<CounterFile> {
        let path = dir.join(name);
        match open_regular(&path, false) {
            Ok(file) => Some(CounterFile { file, path, buffer: Vec::with_capacity(first_buffer(name)) }),
            Err(e) => {
                crate::debug!("accounting: {}: {e}", path.display());
                None
            }
        }
    }

    /// Opens `dir/name` read-write when possible (for the per-descriptor peak reset), else read-only: a
    /// read-only /sys/fs/cgroup (Docker, Kubernetes) refuses the write open with EROFS.
    pub fn open_writable(dir: &Path, name: &str) -> Option<CounterFile> {
        let path = dir.join(name);
        match open_regular(&path, true) {
            Ok(file) => Some(CounterFile { file, path, buffer: Vec::with_capacity(first_buffer(name)) }),
            Err(e) => {
                crate::debug!("accounting: {} not writable ({e}); opening it read-only", path.display());
                CounterFile::open(dir, name)
            }
        }
    }

    /// The whole content, read from offset 0 into this file's buffer. `None` on any error, when it is
    /// not UTF-8, or when it fills [`MAX_FILE`].
    pub fn read(&mut self) -> Option<&str> {
        if self.buffer.is_empty() {
            self.buffer.resize(self.buffer.capacity().max(64), 0);
        }
        let mut filled = 0;
        loop {
            if filled == self.buffer.len() {
                if self.buffer.len() >= MAX_FILE {
                    crate::debug!("accounting: {} is {MAX_FILE} bytes or more; not a cgroup file", self.path.display());
                    return None;
                }
                let grown = (self.buffer.len() * 2).min(MAX_FILE);
                self.buffer.resize(grown, 0);
            }
            match self.file.read_at(&mut self.buffer[filled..], filled as u64) {
                Ok(n) => {
                    let asked = self.buffer.len() - filled;
                    filled += n;
                    // A short read is the end: cgroup files are seq_files that hand out everything
                    // they have in one go, and a regular file only comes up short at its end.
                    if n < asked {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    crate::debug!("accounting: reading {}: {e}", self.path.display());
                    return None;
                }
            }
        }
        std::str::from_utf8(&self.buffer[..filled]).ok()
    }

    /// Is this file on a cgroup2 filesystem? Only there does a write mean a per-descriptor reset; on a
    /// fixture tree it would overwrite the file.
    pub fn on_cgroup2(&self) -> bool {
        use std::os::fd::AsRawFd;
        const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
        // SAFETY: statfs is plain data; fstatfs fills it in for a descriptor we own.
        let mut info: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: fstatfs writes to the live local above.
        let rc = unsafe { libc::fstatfs(self.file.as_raw_fd(), &mut info) };
        rc == 0 && info.f_type as i64 == CGROUP2_SUPER_MAGIC
    }

    /// Writes `text` at offset 0 through this descriptor; true when the kernel accepted it.
    pub fn write(&self, text: &str) -> bool {
        match self.file.write_at(text.as_bytes(), 0) {
            Ok(n) => n == text.len(),
            Err(e) => {
                crate::debug!("accounting: writing {}: {e}", self.path.display());
                false
            }
        }
    }

    /// A single-number file.
    pub fn value(&mut self) -> Option<u64> {
        parse_value(self.read()?)
    }

    /// A single-number file where `max` means no limit.
    pub fn limit(&mut self) -> Option<Limit> {
        parse_limit(self.read()?)
    }

    /// The values of `keys` in a flat-keyed file, in the order asked; see [`parse_keyed`].
    pub fn keyed<const N: usize>(&mut self, keys: [&str; N]) -> Option<[Option<u64>; N]> {
        parse_keyed(self.read()?, keys)
    }
}

/// Opens `path` without blocking (opening a FIFO would wait for a writer) and without following a
/// final symlink, and keeps it only when fstat says it is a regular file (cgroupfs, procfs and fixture
/// files all are). O_NONBLOCK changes nothing for reads of a regular file.
fn open_regular(path: &Path, writable: bool) -> std::io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(writable)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"));
    }
    Ok(file)
}

/// The whole of a small file (cgroup.controllers, cgroup.procs, /proc/self/cgroup), opened and checked
/// like a [`CounterFile`]; `None` with a -v line on any failure.
pub fn read_small(path: &Path) -> Option<String> {
    let (dir, name) = (path.parent()?, path.file_name()?.to_str()?);
    let mut file = CounterFile::open(dir, name)?;
    let text = file.read();
    if text.is_none() {
        crate::debug!("accounting: {}: unreadable or not text", path.display());
    }
    text.map(str::to_string)
}

/// A limit as the kernel states it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Limit {
    Value(u64),
    Unlimited,
}

impl Limit {
    /// The tighter of two limits.
    pub fn min(self, other: Limit) -> Limit {
        match (self, other) {
            (Limit::Value(a), Limit::Value(b)) => Limit::Value(a.min(b)),
            (Limit::Value(a), Limit::Unlimited) | (Limit::Unlimited, Limit::Value(a)) => Limit::Value(a),
            (Limit::Unlimited, Limit::Unlimited) => Limit::Unlimited,
        }
    }
}

/// One number, surrounding whitespace allowed; anything else is malformed.
pub fn parse_value(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

pub fn parse_limit(text: &str) -> Option<Limit> {
    if text.trim() == "max" {
        return Some(Limit::Unlimited);
    }
    parse_value(text).map(Limit::Value)
}

/// The values of `keys` in `key value` lines, in the order asked (`None` for a key that is missing or
/// not a number). A line that does not have exactly that shape makes the whole file malformed (a
/// truncated read), and so does a file without a single numeric line (empty). Nothing is allocated.
pub fn parse_keyed<const N: usize>(text: &str, keys: [&str; N]) -> Option<[Option<u64>; N]> {
    let mut values = [None; N];
    let mut numeric_lines = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut fields = line.split_whitespace();
        let (key, value) = (fields.next()?, fields.next()?);
        if fields.next().is_some() {
            return None;
        }
        let Ok(value) = value.parse::<u64>() else { continue };
        numeric_lines += 1;
        if let Some(slot) = keys.iter().position(|k| *k == key) {
            values[slot] = Some(value);
        }
    }
    (numeric_lines > 0).then_some(values)
}

/// The `total=` of the `some` or `full` line of a PSI file (microseconds of stall).
pub fn parse_pressure_total(text: &str, kind: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.split_whitespace().next() == Some(kind))?;
    line.split_whitespace().find_map(|field| field.strip_prefix("total="))?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_limits() {
        assert_eq!(parse_value("67108864\n"), Some(67108864));
        assert_eq!(parse_value(""), None);
        assert_eq!(parse_value("12ab"), None);
        assert_eq!(parse_limit("max\n"), Some(Limit::Unlimited));
        assert_eq!(parse_limit("4096\n"), Some(Limit::Value(4096)));
        assert_eq!(parse_limit("-1"), None);
        assert_eq!(Limit::Value(5).min(Limit::Unlimited), Limit::Value(5));
        assert_eq!(Limit::Value(5).min(Limit::Value(3)), Limit::Value(3));
        assert_eq!(Limit::Unlimited.min(Limit::Unlimited), Limit::Unlimited);
    }

    #[test]
    fn keyed_files() {
        let events = "low 0\nhigh 0\nmax 35\noom 1\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(parse_keyed(events, ["oom_kill", "max", "absent"]), Some([Some(1), Some(35), None]));
        assert!(parse_keyed("", ["max"]).is_none());
        assert!(parse_keyed("oom_kill", ["oom_kill"]).is_none(), "a truncated line is malformed");
        assert!(parse_keyed("max 3\noom_kill", ["max"]).is_none(), "a truncated last line too");
        assert_eq!(parse_keyed("max 3\nname abc\n", ["max", "name"]), Some([Some(3), None]));
        assert!(parse_keyed("name abc\n", ["name"]).is_none(), "no numeric line at all");
    }

    #[test]
    fn pressure_totals() {
        let text =
            "some avg10=0.00 avg60=0.00 avg300=0.00 total=1234\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=56\n";
        assert_eq!(parse_pressure_total(text, "some"), Some(1234));
        assert_eq!(parse_pressure_total(text, "full"), Some(56));
        assert_eq!(parse_pressure_total("some avg10=0.00", "some"), None);
    }

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sentinit-files-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_file_at_the_read_cap_is_none_not_a_cut_off_parse() {
        let dir = scratch("cap");
        // A keyed file whose first MAX_FILE bytes parse cleanly: a cut-off read would find `max 1`.
        let line = "max 1\n";
        let mut text = line.repeat(MAX_FILE / line.len());
        text.push_str(&"x".repeat(MAX_FILE - text.len()));
        std::fs::write(dir.join("at-cap"), &text).unwrap();
        std::fs::write(dir.join("over-cap"), format!("{text}oom_kill 1\n")).unwrap();
        std::fs::write(dir.join("under-cap"), &text[..MAX_FILE - 1]).unwrap();
        let at = CounterFile::open(&dir, "at-cap").unwrap().read().map(str::len);
        let over = CounterFile::open(&dir, "over-cap").unwrap().read().map(str::len);
        let under = CounterFile::open(&dir, "under-cap").unwrap().read().map(str::len);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(at, None);
        assert_eq!(over, None);
        assert_eq!(under, Some(MAX_FILE - 1));
    }

    #[test]
    fn rereads_through_the_same_buffer_see_the_new_content() {
        let dir = scratch("reread");
        std::fs::write(dir.join("memory.stat"), "inactive_file 5\n".repeat(100)).unwrap();
        let mut file = CounterFile::open(&dir, "memory.stat").unwrap();
        assert_eq!(file.keyed(["inactive_file"]), Some([Some(5)]));
        // Shorter content, rewritten in place: nothing of the old, longer content may remain.
        std::fs::write(dir.join("memory.stat"), "inactive_file 7\n").unwrap();
        assert_eq!(file.read(), Some("inactive_file 7\n"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_regular_files_are_opened() {
        let dir = scratch("regular");
        let fifo = std::ffi::CString::new(dir.join("memory.stat").into_os_string().into_encoded_bytes()).unwrap();
        // SAFETY: mkfifo reads a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        std::fs::create_dir(dir.join("memory.current")).unwrap();
        std::fs::write(dir.join("target"), "1\n").unwrap();
        std::os::unix::fs::symlink(dir.join("target"), dir.join("memory.max")).unwrap();
        let opened =
            ["memory.stat", "memory.current", "memory.max", "target"].map(|n| CounterFile::open(&dir, n).is_some());
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(opened, [false, false, false, true], "FIFO, directory, symlink, regular file");
    }
}
