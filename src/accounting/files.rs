//! Counter files held open for the whole run and re-read with `pread` at offset 0, plus the parsers for
//! the three cgroup file shapes (single value, flat-keyed, nested-keyed PSI).
//!
//! Opening once matters: a sample is then a handful of `pread`s with no path lookups, a file that
//! vanishes mid-run does not turn into a different file, and v2's `memory.peak` reset only holds for
//! the descriptor that wrote it. Every failure (missing file, unreadable, malformed content) is a
//! `None`, never a panic and never a made-up 0.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Cgroup files are small; memory.stat is the largest at a few KiB.
const MAX_FILE: usize = 64 * 1024;

/// One cgroup file, opened once.
pub struct CounterFile {
    file: File,
    path: PathBuf,
}

impl CounterFile {
    /// Opens `dir/name` for reading; `None` (with a -v line) when it does not exist or cannot be opened.
    pub fn open(dir: &Path, name: &str) -> Option<CounterFile> {
        let path = dir.join(name);
        match File::open(&path) {
            Ok(file) => Some(CounterFile { file, path }),
            Err(e) => {
                crate::debug!("accounting: {}: {e}", path.display());
                None
            }
        }
    }

    /// Opens `dir/name` read-write when possible (for the per-descriptor peak reset), else read-only.
    pub fn open_writable(dir: &Path, name: &str) -> Option<CounterFile> {
        let path = dir.join(name);
        match std::fs::OpenOptions::new().read(true).write(true).open(&path) {
            Ok(file) => Some(CounterFile { file, path }),
            Err(_) => CounterFile::open(dir, name),
        }
    }

    /// The whole content, read from offset 0. `None` on any error or when it is not UTF-8.
    pub fn read(&self) -> Option<String> {
        let mut buffer = vec![0u8; 4096];
        let mut filled = 0;
        loop {
            if filled == buffer.len() {
                if buffer.len() >= MAX_FILE {
                    break;
                }
                buffer.resize(buffer.len() * 2, 0);
            }
            match self.file.read_at(&mut buffer[filled..], filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    crate::debug!("accounting: reading {}: {e}", self.path.display());
                    return None;
                }
            }
        }
        buffer.truncate(filled);
        String::from_utf8(buffer).ok()
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
    pub fn value(&self) -> Option<u64> {
        parse_value(&self.read()?)
    }

    /// A single-number file where `max` means no limit.
    pub fn limit(&self) -> Option<Limit> {
        parse_limit(&self.read()?)
    }

    /// A flat-keyed file, as (key, value) pairs with numeric values.
    pub fn keyed(&self) -> Option<Keyed> {
        Some(Keyed(parse_keyed(&self.read()?)?))
    }
}

/// A limit as the kernel states it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Limit {
    Value(u64),
    Unlimited,
}

/// The parsed `key value` lines of a flat-keyed file.
#[derive(Clone, Debug, Default)]
pub struct Keyed(Vec<(String, u64)>);

impl Keyed {
    pub fn get(&self, key: &str) -> Option<u64> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
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

/// `key value` per line. A line that does not have exactly that shape makes the whole file malformed
/// (a truncated read), except that keys with non-numeric values are skipped. An empty file is malformed.
pub fn parse_keyed(text: &str) -> Option<Vec<(String, u64)>> {
    let mut pairs = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut fields = line.split_whitespace();
        let (key, value) = (fields.next()?, fields.next()?);
        if fields.next().is_some() {
            return None;
        }
        if let Ok(value) = value.parse() {
            pairs.push((key.to_string(), value));
        }
    }
    (!pairs.is_empty()).then_some(pairs)
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
    }

    #[test]
    fn keyed_files() {
        let events = parse_keyed("low 0\nhigh 0\nmax 35\noom 1\noom_kill 1\noom_group_kill 0\n").unwrap();
        assert_eq!(Keyed(events).get("oom_kill"), Some(1));
        assert!(parse_keyed("").is_none());
        assert!(parse_keyed("oom_kill").is_none(), "a truncated line is malformed");
        assert_eq!(parse_keyed("max 3\nname abc\n").unwrap(), vec![("max".to_string(), 3)]);
    }

    #[test]
    fn pressure_totals() {
        let text =
            "some avg10=0.00 avg60=0.00 avg300=0.00 total=1234\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=56\n";
        assert_eq!(parse_pressure_total(text, "some"), Some(1234));
        assert_eq!(parse_pressure_total(text, "full"), Some(56));
        assert_eq!(parse_pressure_total("some avg10=0.00", "some"), None);
    }
}
