//! The environment exactly as sentinit received it, entry by entry.
//!
//! The workload gets the same entries in the same order, byte for byte (duplicates, entries without
//! `=`, non-UTF-8 values included), followed by the identity variables sentinit adds. Rust's
//! `std::env` drops what it cannot parse, so the entries come straight from the C runtime's `envp`.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

/// The raw entries, `NAME=value` or whatever else the parent put there.
#[derive(Clone, Debug, Default)]
pub struct Environ {
    entries: Vec<Vec<u8>>,
}

impl Environ {
    pub fn from_entries(entries: Vec<Vec<u8>>) -> Environ {
        Environ { entries }
    }

    /// The value of the first entry named `name`, as `getenv` finds it.
    pub fn get(&self, name: &str) -> Option<&OsStr> {
        self.entries.iter().find_map(|entry| {
            let rest = entry.strip_prefix(name.as_bytes())?.strip_prefix(b"=")?;
            Some(OsStr::from_bytes(rest))
        })
    }

    /// Is there an entry named `name` (even empty)?
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Adds `name=value` at the end unless an entry of that name exists: a variable the user set wins.
    pub fn add_missing(&mut self, name: &str, value: &str) {
        if !self.contains(name) {
            let mut entry = name.as_bytes().to_vec();
            entry.push(b'=');
            entry.extend_from_slice(value.as_bytes());
            self.entries.push(entry);
        }
    }

    /// Replaces the value of the first entry named `name` where it stands (the order of the entries is
    /// the user's), or adds `name=value` at the end when there is none.
    pub fn set(&mut self, name: &str, value: &str) {
        let mut entry = name.as_bytes().to_vec();
        entry.push(b'=');
        entry.extend_from_slice(value.as_bytes());
        match self.entries.iter().position(|e| e.strip_prefix(name.as_bytes()).is_some_and(|r| r.starts_with(b"="))) {
            Some(at) => self.entries[at] = entry,
            None => self.entries.push(entry),
        }
    }

    pub fn entries(&self) -> &[Vec<u8>] {
        &self.entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_every_entry_and_finds_the_first() {
        let mut env = Environ::from_entries(vec![
            b"JUSTANAME".to_vec(),
            b"DUP=1".to_vec(),
            b"DUP=2".to_vec(),
            b"=x".to_vec(),
            b"BIN=\xff\xfe".to_vec(),
        ]);
        assert_eq!(env.get("DUP"), Some(OsStr::new("1")));
        assert_eq!(env.get("JUSTANAME"), None);
        assert_eq!(env.get("BIN").map(|v| v.as_bytes()), Some(&b"\xff\xfe"[..]));
        env.add_missing("DUP", "3");
        env.add_missing("NEW", "v");
        assert_eq!(env.entries().len(), 6);
        assert_eq!(env.entries()[5], b"NEW=v");
        env.set("DUP", "x");
        env.set("LAST", "y");
        assert_eq!(env.entries()[1..3], [b"DUP=x".to_vec(), b"DUP=2".to_vec()]);
        assert_eq!(env.entries()[6], b"LAST=y");
    }
}
