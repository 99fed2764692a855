//! Whose cgroup is it: whether the group sentinit starts in is the workload's alone (`container`) or
//! also holds processes that are not sentinit's (`shared`), and, when it is shared, a group of the
//! workload's own (`own`), created below it.
//!
//! A shared group is the common case outside containers (a batch command wrapped on a host, a
//! session's or a service's group): its counters hold other processes' memory and page cache, and a
//! report read from it overstates the workload. A child group created under the group sentinit is in
//! keeps every limit that bound the workload (the kernel applies the ancestors' limits), starts at
//! zero, so its peak, OOM-kill and limit-hit counters are the workload's alone and exact, and is
//! joined by the workload between fork and exec (see `spawn`), so nothing it allocates is charged
//! elsewhere. It is never created at a hierarchy's root (discovery refuses the host's root groups),
//! only in a real cgroup filesystem (never in a fixture tree), and it is removed when the accountant
//! is done, on every path: the workload and everything it left have been reaped by then.
//!
//! cgroup v1: one group in each hierarchy sentinit reads that counts usage (memory, cpuacct, pids).
//! The `cpu` hierarchy's quota and throttling stay read from the original group: CFS bandwidth is
//! enforced, and throttling counted, at the group that has the quota. cgroup v2: a child group gets
//! the memory controller only if its parent enables it for its children, which the kernel's
//! no-internal-process rule forbids while the parent holds processes (sentinit and the others); so on
//! v2 a shared group stays `shared`, with the reason under `-v`.

use super::discover::Cgroups;
use crate::config::CgroupMode;
use crate::debug;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The cgroup v1 filesystem's magic number (statfs f_type).
const CGROUP_SUPER_MAGIC: i64 = 0x0027_e0eb;

/// `cgroup_scope` and `cgroup_foreign_processes` for the report.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scope {
    /// `container`, `own`, `shared`; `None` without a cgroup (or when its members cannot be read).
    pub kind: Option<&'static str>,
    /// Processes other than sentinit in the group sentinit started in, at start.
    pub foreign: Option<u64>,
}

/// The groups sentinit created for the workload; removed on drop.
#[derive(Debug, Default)]
pub struct OwnGroup {
    created: Vec<PathBuf>,
    /// `<group>/cgroup.procs` of each created group, for the workload to join before exec.
    procs: Vec<CString>,
}

impl OwnGroup {
    /// The `cgroup.procs` files the workload writes "0" to between fork and exec.
    pub fn procs_files(&self) -> &[CString] {
        &self.procs
    }
}

impl Drop for OwnGroup {
    fn drop(&mut self) {
        for dir in self.created.iter().rev() {
            remove_group(dir);
        }
    }
}

/// Decides the scope and, when `mode` asks for it, creates the workload's own group, pointing the
/// counters of `cgroups` at it. Never fails: a group that cannot be created leaves the scope `shared`.
pub fn settle(cgroups: &mut Cgroups, mode: CgroupMode) -> (Scope, Option<OwnGroup>) {
    let Some(primary) = cgroups.memory.as_ref().or(cgroups.cpuacct.as_ref()).or(cgroups.pids.as_ref()) else {
        return (Scope::default(), None);
    };
    let foreign = foreign_processes(&primary.dir);
    let kind = match foreign {
        Some(0) => "container",
        Some(_) => "shared",
        None => return (Scope::default(), None),
    };
    let wanted = match mode {
        CgroupMode::Inherit => false,
        CgroupMode::Auto => kind == "shared",
        CgroupMode::Own => true,
    };
    if !wanted {
        return (Scope { kind: Some(kind), foreign }, None);
    }
    match create(cgroups) {
        Ok(group) => (Scope { kind: Some("own"), foreign }, Some(group)),
        Err(reason) => {
            if mode == CgroupMode::Own {
                crate::warn!("--cgroup own: cannot create a group for the workload: {reason}");
            } else {
                debug!("accounting: the cgroup is shared with {} other processes; no group of the workload's own: {reason}", foreign.unwrap_or(0));
            }
            (Scope { kind: Some(kind), foreign }, None)
        }
    }
}

/// How many processes other than sentinit `dir/cgroup.procs` lists (pids there are in sentinit's
/// own PID namespace).
fn foreign_processes(dir: &Path) -> Option<u64> {
    let path = dir.join("cgroup.procs");
    let text = match crate::paths::read_guarded(&path, crate::paths::MAX_PROC_FILE) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => {
            debug!("accounting: {}: {e}; the cgroup's scope is unknown", path.display());
            return None;
        }
    };
    let own = std::process::id().to_string();
    Some(text.split_whitespace().filter(|pid| *pid != own).count() as u64)
}

/// Creates the workload's group in every v1 hierarchy that counts usage, all or none.
fn create(cgroups: &mut Cgroups) -> Result<OwnGroup, String> {
    let version = cgroups.memory.as_ref().or(cgroups.cpu.as_ref()).or(cgroups.pids.as_ref()).map(|l| l.version);
    if version == Some(2) {
        return Err("cgroup v2: its parent holds processes, so the no-internal-process rule keeps the memory \
                    controller from a child group"
            .to_string());
    }
    let name = format!("sentinit-{}", std::process::id());
    let mut group = OwnGroup::default();
    let mut moved: Vec<(&'static str, PathBuf)> = Vec::new();
    let slots: [(&'static str, Option<&PathBuf>); 3] = [
        ("memory", cgroups.memory.as_ref().map(|l| &l.dir)),
        ("cpuacct", cgroups.cpuacct.as_ref().map(|l| &l.dir)),
        ("pids", cgroups.pids.as_ref().map(|l| &l.dir)),
    ];
    for (controller, dir) in slots {
        let Some(dir) = dir else { continue };
        let child = dir.join(&name);
        if !group.created.contains(&child) {
            make_group(dir, &child).map_err(|e| format!("{controller}: {e}"))?;
            group.created.push(child.clone());
            let procs = CString::new(child.join("cgroup.procs").as_os_str().as_bytes())
                .map_err(|_| format!("{controller}: a NUL byte in {}", child.display()))?;
            group.procs.push(procs);
        }
        moved.push((controller, child));
    }
    if group.created.is_empty() {
        return Err("no cgroup v1 hierarchy counts usage here".to_string());
    }
    for (controller, child) in moved {
        let location = match controller {
            "memory" => cgroups.memory.as_mut(),
            "cpuacct" => cgroups.cpuacct.as_mut(),
            _ => cgroups.pids.as_mut(),
        };
        if let Some(location) = location {
            debug!("accounting: {controller}: the workload's own group {}", child.display());
            location.dir = child;
        }
    }
    Ok(group)
}

/// `mkdir parent/<name>` in a real cgroup v1 filesystem, kept only if sentinit may move a process in.
fn make_group(parent: &Path, child: &Path) -> Result<(), String> {
    if !on_cgroup_v1(parent) {
        return Err(format!("{} is not on a cgroup v1 filesystem", parent.display()));
    }
    remove_stale_siblings(parent);
    if let Err(e) = std::fs::create_dir(child) {
        // A group of this name left by an earlier sentinit with the same pid (killed by SIGKILL) is
        // reused if it is empty; one in use is not.
        if e.kind() != std::io::ErrorKind::AlreadyExists || foreign_processes(child) != Some(0) {
            return Err(format!("cannot create {}: {e}", child.display()));
        }
    }
    let writable = std::fs::OpenOptions::new().write(true).open(child.join("cgroup.procs"));
    if let Err(e) = writable {
        remove_group(child);
        return Err(format!("cannot write {}/cgroup.procs: {e}", child.display()));
    }
    Ok(())
}

/// How old an empty `sentinit-<pid>` group must be before another sentinit removes it.
const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// Removes the groups that earlier sentinits could not (they were killed with SIGKILL): empty
/// `sentinit-<pid>` groups beside the new one, older than [`STALE_AFTER`], whose pid is not a
/// running sentinit. An empty group is no one's loss; the age keeps a group just being set up by
/// another sentinit (in another PID namespace, where its pid means nothing here) out of reach.
fn remove_stale_siblings(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for entry in entries.flatten().take(10_000) {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("sentinit-")).and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let path = entry.path();
        let old = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_AFTER);
        let running = std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sentinit");
        if old && !running && foreign_processes(&path) == Some(0) && std::fs::remove_dir(&path).is_ok() {
            debug!("accounting: removed {}, left by a sentinit that is gone", path.display());
        }
    }
}

fn on_cgroup_v1(dir: &Path) -> bool {
    let Ok(path) = CString::new(dir.as_os_str().as_bytes()) else { return false };
    // SAFETY: statfs is plain data, filled in by the kernel for a NUL-terminated path.
    let mut info: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above; both pointers are to live values.
    let rc = unsafe { libc::statfs(path.as_ptr(), &mut info) };
    rc == 0 && info.f_type as i64 == CGROUP_SUPER_MAGIC
}

/// rmdir, retried briefly: a process reaped a moment ago can take a few milliseconds to leave.
fn remove_group(dir: &Path) {
    for attempt in 0..50 {
        match std::fs::remove_dir(dir) {
            Ok(()) => {
                debug!("accounting: removed {}", dir.display());
                return;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) if attempt == 49 => {
                crate::warn!("cannot remove the workload's cgroup {}: {e}", dir.display());
                return;
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
        }
    }
}
