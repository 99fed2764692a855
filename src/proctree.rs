//! The process tree below sentinit, read from /proc.
//!
//! Used once the main child has exited, to reach every descendant that is not in the workload's
//! process group (daemons that called setsid). As PID 1 sentinit does not need it: kill(-1) reaches the
//! whole namespace. Always the live /proc, never SENTINIT_PROC_ROOT, which may point at fixtures.

use std::collections::{BTreeMap, BTreeSet};

/// Every live descendant of `root`, found by following parent links in /proc/<pid>/stat. An error
/// when /proc cannot be listed (not mounted, as in a bare chroot).
pub fn descendants(root: i32) -> std::io::Result<Vec<i32>> {
    let entries = std::fs::read_dir("/proc")?;
    let mut children: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        if let Some(ppid) = parent_of(&stat) {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut found = BTreeSet::new();
    let mut queue = vec![root];
    while let Some(pid) = queue.pop() {
        for &child in children.get(&pid).map(Vec::as_slice).unwrap_or(&[]) {
            if found.insert(child) {
                queue.push(child);
            }
        }
    }
    Ok(found.into_iter().collect())
}

/// The parent pid from a /proc/<pid>/stat line. The command name may hold spaces and parentheses, so
/// the fields are counted from the last ')'.
pub fn parent_of(stat: &str) -> Option<i32> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    let _state = fields.next()?;
    fields.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_parent_despite_odd_names() {
        assert_eq!(parent_of("42 (a) b) c) S 7 42 42 0 -1"), Some(7));
        assert_eq!(parent_of("1 (init) S 0 1 1"), Some(0));
        assert_eq!(parent_of("garbage"), None);
    }
}
