//! The process tree below sentinit, read from /proc, and whether that /proc can be trusted.
//!
//! Used once the main child has exited, to reach every descendant that is not in the workload's
//! process group (daemons that called setsid), to find stopped processes that a forwarded stop signal
//! must also wake, and by accounting for the main child's CPU time. As PID 1 sentinit does not need it
//! to end the rest: kill(-1) reaches the whole namespace. Always the live /proc, never
//! SENTINIT_PROC_ROOT, which may point at fixtures.
//!
//! A /proc mounted for another PID namespace (`unshare --pid --fork` without `--mount-proc`) lists
//! other processes under the same numbers: signalling a pid found there would hit an unrelated process
//! of sentinit's own namespace. So /proc is used only when it is this namespace's own, checked once;
//! otherwise sentinit says so once and does without.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};

/// Is the live /proc this PID namespace's own? Decided once it could be checked; the first `false`
/// is said as a warning. A /proc that cannot be read right now (no descriptor left, not mounted) is
/// not used this time and asked again next time.
pub fn is_own() -> bool {
    usable().is_ok()
}

/// Why /proc is not used.
#[derive(Debug)]
pub enum Unusable {
    /// It belongs to another PID namespace (said once, as a warning, when first found).
    Foreign,
    /// It cannot be read now (not mounted, no descriptor left): no verdict yet.
    Unreadable(String),
}

/// [`is_own`], with the reason when it is not.
pub fn usable() -> Result<(), Unusable> {
    const UNKNOWN: u8 = 0;
    const OWN: u8 = 1;
    const FOREIGN: u8 = 2;
    static VERDICT: AtomicU8 = AtomicU8::new(UNKNOWN);
    match VERDICT.load(Ordering::Relaxed) {
        OWN => return Ok(()),
        FOREIGN => return Err(Unusable::Foreign),
        _ => {}
    }
    match check_own() {
        Ok(()) => {
            VERDICT.store(OWN, Ordering::Relaxed);
            Ok(())
        }
        Err(Check::Unreadable(reason)) => Err(Unusable::Unreadable(reason)),
        Err(Check::Foreign(reason)) => {
            VERDICT.store(FOREIGN, Ordering::Relaxed);
            crate::warn!(
                "/proc is not this PID namespace's own ({reason}): sentinit will not use it to find or signal processes, \
                 nor for figures (mount a /proc for the namespace, e.g. unshare --mount-proc)"
            );
            Err(Unusable::Foreign)
        }
    }
}

/// What [`check_own`] found.
#[derive(Debug)]
enum Check {
    /// It belongs to another PID namespace.
    Foreign(String),
    /// It cannot be read now (EMFILE, not mounted): no verdict.
    Unreadable(String),
}

/// The pid this process has in the /proc's namespace must be its own pid, and /proc must see no
/// deeper nesting: `NSpid` in /proc/self/status lists the pid from the /proc's namespace down to
/// sentinit's own, so exactly one entry, equal to getpid(), means the same namespace. A /proc of a
/// namespace below sentinit's has no /proc/self at all (ENOENT).
fn check_own() -> Result<(), Check> {
    let own = std::process::id().to_string();
    let status = match crate::paths::read_guarded(Path::new("/proc/self/status"), crate::paths::MAX_PROC_FILE) {
        Ok(status) => crate::paths::into_text(status),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && Path::new("/proc/1").exists() => {
            return Err(Check::Foreign("it has no /proc/self for sentinit".to_string()))
        }
        Err(e) => return Err(Check::Unreadable(format!("/proc/self/status: {e}"))),
    };
    if let Some(line) = status.lines().find_map(|l| l.strip_prefix("NSpid:")) {
        let pids: Vec<&str> = line.split_whitespace().collect();
        return match pids.as_slice() {
            [only] if *only == own => Ok(()),
            _ => Err(Check::Foreign(format!("it sees sentinit as pid {}, sentinit is pid {own}", pids.join("/")))),
        };
    }
    // Kernels before 4.1 have no NSpid: /proc/self must at least point at sentinit's own pid.
    let link = std::fs::read_link("/proc/self").map_err(|e| Check::Unreadable(format!("/proc/self: {e}")))?;
    if link.as_os_str() == own.as_str() {
        Ok(())
    } else {
        Err(Check::Foreign(format!("/proc/self is {}, sentinit is pid {own}", link.display())))
    }
}

/// One process as /proc/<pid>/stat tells it.
struct Entry {
    pid: i32,
    state: char,
    parent: i32,
    group: i32,
}

/// Every process in /proc, or an error when /proc cannot be listed (not mounted, as in a bare chroot).
fn scan() -> std::io::Result<Vec<Entry>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        if let Some((state, parent, group)) = parse_stat(&stat) {
            found.push(Entry { pid, state, parent, group });
        }
    }
    Ok(found)
}

/// Every live descendant of `root`, found by following parent links, with its state letter.
pub fn descendants(root: i32) -> std::io::Result<Vec<(i32, char)>> {
    let entries = scan()?;
    let mut children: BTreeMap<i32, Vec<usize>> = BTreeMap::new();
    for (index, entry) in entries.iter().enumerate() {
        children.entry(entry.parent).or_default().push(index);
    }
    let mut found = BTreeSet::new();
    let mut queue = vec![root];
    while let Some(pid) = queue.pop() {
        for &index in children.get(&pid).map(Vec::as_slice).unwrap_or(&[]) {
            let entry = &entries[index];
            if found.insert((entry.pid, entry.state)) {
                queue.push(entry.pid);
            }
        }
    }
    Ok(found.into_iter().collect())
}

/// Every live descendant of `root`, through the kernel's per-thread `children` lists: a few reads for a
/// small tree instead of a scan of every process on the machine, so that a kill pass is fast enough
/// to catch processes that fork and exit within milliseconds. Falls back to [`descendants`] where the
/// kernel has no `children` files (CONFIG_PROC_CHILDREN).
pub fn descendant_pids(root: i32) -> std::io::Result<Vec<i32>> {
    if !std::path::Path::new(&format!("/proc/{root}/task/{root}/children")).exists() {
        return descendants(root).map(|found| found.into_iter().map(|(pid, _)| pid).collect());
    }
    let mut found = BTreeSet::new();
    let mut queue = vec![root];
    while let Some(pid) = queue.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { continue };
        for task in tasks.flatten() {
            let Ok(text) = std::fs::read_to_string(task.path().join("children")) else { continue };
            for child in text.split_whitespace().filter_map(|s| s.parse::<i32>().ok()) {
                if found.len() < 100_000 && found.insert(child) {
                    queue.push(child);
                }
            }
        }
    }
    Ok(found.into_iter().collect())
}

/// sentinit's children, from the kernel's list for its main thread (which starts the workload and to
/// which orphans are reparented). `None` where that list cannot be read (no CONFIG_PROC_CHILDREN,
/// /proc not this namespace's).
pub fn own_children() -> Option<Vec<i32>> {
    if !is_own() {
        return None;
    }
    let pid = std::process::id();
    let path = format!("/proc/{pid}/task/{pid}/children");
    let text = crate::paths::read_guarded(Path::new(&path), crate::paths::MAX_PROC_FILE).ok()?;
    Some(String::from_utf8_lossy(&text).split_whitespace().filter_map(|s| s.parse().ok()).collect())
}

/// Is any member of process group `group` stopped (state T)?
pub fn group_has_stopped(group: i32) -> bool {
    scan().is_ok_and(|entries| entries.iter().any(|e| e.group == group && e.state == 'T'))
}

/// The state letter of one process, if it exists.
pub fn state_of(pid: i32) -> Option<char> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?).map(|(state, ..)| state)
}

/// Has the process started to exit (PF_EXITING in the flags of /proc/<pid>/stat)? A process that is
/// gone or unreadable counts as exiting.
pub fn is_exiting(pid: i32) -> bool {
    const PF_EXITING: u64 = 0x4;
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return true };
    let flags = stat
        .rfind(')')
        .and_then(|end| stat[end + 1..].split_whitespace().nth(6))
        .and_then(|flags| flags.parse::<u64>().ok());
    flags.map_or(true, |flags| flags & PF_EXITING != 0)
}

/// State, parent pid and process group from a /proc/<pid>/stat line. The command name may hold spaces
/// and parentheses, so the fields are counted from the last ')'.
fn parse_stat(stat: &str) -> Option<(char, i32, i32)> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let parent = fields.next()?.parse().ok()?;
    let group = fields.next()?.parse().ok()?;
    Some((state, parent, group))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_parent_despite_odd_names() {
        assert_eq!(parse_stat("42 (a) b) c) S 7 42 42 0 -1"), Some(('S', 7, 42)));
        assert_eq!(parse_stat("1 (init) S 0 1 1"), Some(('S', 0, 1)));
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("9 (x y) T 3 9 9"), Some(('T', 3, 9)));
    }

    #[test]
    fn a_running_process_is_not_exiting_and_a_gone_one_is() {
        assert!(!is_exiting(std::process::id() as i32));
        assert!(is_exiting(i32::MAX));
    }

    #[test]
    fn this_test_process_sees_its_own_proc() {
        // The test runner runs in the namespace its /proc belongs to (the normal case).
        assert!(check_own().is_ok(), "{:?}", check_own());
    }
}
