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
//! no-internal-process rule forbids while the parent holds processes; so on v2 a shared group stays
//! `shared`, with the reason under `-v`. Where sentinit is alone in a writable v2 group and `--cgroup
//! own` asks for one anyway, it does what the rule requires: it moves itself into a leaf
//! (`sentinit-<pid>-self`), enables the controllers for the group's children, and gives the workload
//! `sentinit-<pid>`; at the end it undoes all three, in reverse.

use super::discover::Cgroups;
use crate::config::CgroupMode;
use crate::debug;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The cgroup v1 and v2 filesystems' magic numbers (statfs f_type).
const CGROUP_SUPER_MAGIC: i64 = 0x0027_e0eb;
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

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
    /// `<group>/cgroup.procs` of each created group, open for writing, for the workload to join
    /// before exec: opened here, where a failure means no group of its own, so that the child never
    /// needs a descriptor (under a low RLIMIT_NOFILE its own open would fail, unseen). Closed once the
    /// workload has started.
    procs: Vec<std::fs::File>,
    /// On cgroup v2, what was changed to make room for the group, undone after it is removed.
    v2: Option<V2Room>,
}

/// The v2 group sentinit started in, the leaf it moved itself into, and the controllers it enabled
/// for the group's children.
#[derive(Debug)]
struct V2Room {
    parent: PathBuf,
    leaf: PathBuf,
    enabled: Vec<&'static str>,
}

impl V2Room {
    /// Back as it was: controllers disabled again (the group may then hold processes), sentinit back
    /// in it, its leaf removed.
    fn undo(&mut self) {
        for controller in self.enabled.drain(..).rev() {
            if let Err(e) = std::fs::write(self.parent.join("cgroup.subtree_control"), format!("-{controller}")) {
                crate::warn!("cannot disable {controller} for the children of {}: {e}", self.parent.display());
            }
        }
        if let Err(e) = std::fs::write(self.parent.join("cgroup.procs"), std::process::id().to_string()) {
            crate::warn!("cannot move sentinit back into {}: {e}", self.parent.display());
        }
        remove_group(&self.leaf);
    }
}

impl OwnGroup {
    /// The `cgroup.procs` descriptors the workload writes "0" to between clone and exec.
    pub fn procs_descriptors(&self) -> Vec<i32> {
        use std::os::fd::AsRawFd;
        self.procs.iter().map(|file| file.as_raw_fd()).collect()
    }

    /// The workload has started: the descriptors have served.
    pub fn joined(&mut self) {
        self.procs.clear();
    }

    /// Did the workload (`pid`, just exec'd) join the group? `join_errno` is what its write to
    /// cgroup.procs between clone and exec failed with (a real-time workload refused by a group without
    /// rt_runtime, say), when the clone shared sentinit's memory; otherwise (0) it is checked here, in
    /// /proc/<pid>/cgroup, as where a fork or an emulator kept that word from sentinit; a workload
    /// already gone cannot be checked.
    pub fn check_joined(&self, pid: i32, join_errno: i32) {
        let Some(name) = self.created.first().and_then(|dir| dir.file_name()).map(|n| n.to_string_lossy().into_owned())
        else {
            return;
        };
        if join_errno != 0 {
            // The child's own word for it (see spawn): its write to cgroup.procs failed.
            let error = std::io::Error::from_raw_os_error(join_errno);
            crate::warn!(
                "the workload could not join its own cgroup {name} ({error}): the report's cgroup figures are not its own"
            );
            return;
        }
        let Ok(text) = crate::paths::read_guarded(Path::new(&format!("/proc/{pid}/cgroup")), 64 * 1024) else {
            return;
        };
        // An exiting process leaves its groups before it is a zombie: only a live one's answer counts
        // (its state read after its groups), and "live" means not even on its way out (PF_EXITING,
        // set before it leaves its groups; its state still reads R then).
        let alive = crate::proctree::state_of(pid).is_some_and(|state| !matches!(state, 'Z' | 'X' | 'x'))
            && !crate::proctree::is_exiting(pid);
        if alive && !String::from_utf8_lossy(&text).lines().any(|line| line.ends_with(&format!("/{name}"))) {
            crate::warn!(
                "the workload did not join its own cgroup {name}: the report's cgroup figures are not its own"
            );
        }
    }
}

impl Drop for OwnGroup {
    fn drop(&mut self) {
        for dir in self.created.iter().rev() {
            remove_group(dir);
        }
        if let Some(room) = self.v2.as_mut() {
            room.undo();
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
    match create(cgroups, kind == "shared") {
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
        Ok(bytes) => crate::paths::into_text(bytes),
        Err(e) => {
            debug!("accounting: {}: {e}; the cgroup's scope is unknown", path.display());
            return None;
        }
    };
    let own = std::process::id().to_string();
    Some(text.split_whitespace().filter(|pid| *pid != own).count() as u64)
}

/// Creates the workload's group in every v1 hierarchy that counts usage, all or none.
fn create(cgroups: &mut Cgroups, shared: bool) -> Result<OwnGroup, String> {
    let version = cgroups.memory.as_ref().or(cgroups.cpu.as_ref()).or(cgroups.pids.as_ref()).map(|l| l.version);
    if version == Some(2) {
        if shared {
            return Err("cgroup v2: the group holds other processes, so the no-internal-process rule keeps \
                        the memory controller from a child group"
                .to_string());
        }
        return create_v2(cgroups);
    }
    let name = group_name();
    let mut group = OwnGroup::default();
    let mut moved: Vec<(&'static str, PathBuf)> = Vec::new();
    // cpuacct mounted together with cpu (systemd's layout) would move the workload into a child of the
    // cpu hierarchy too: its fair share would change, and a real-time workload could not join a group
    // without an rt_runtime. There sentinit makes no cpuacct group, and the shared group's CPU counter
    // is not read (CPU time then comes from the reaped tree's rusage and /proc, which are the workload's).
    let cpuacct_with_cpu =
        cgroups.cpuacct.as_ref().zip(cgroups.cpu.as_ref()).is_some_and(|(acct, cpu)| acct.dir == cpu.dir);
    let slots: [(&'static str, Option<&PathBuf>); 3] = [
        ("memory", cgroups.memory.as_ref().map(|l| &l.dir)),
        ("cpuacct", cgroups.cpuacct.as_ref().map(|l| &l.dir).filter(|_| !cpuacct_with_cpu)),
        ("pids", cgroups.pids.as_ref().map(|l| &l.dir)),
    ];
    for (controller, dir) in slots {
        let Some(dir) = dir else { continue };
        let child = dir.join(&name);
        if !group.created.contains(&child) {
            let procs = make_group(dir, &child).map_err(|e| format!("{controller}: {e}"))?;
            group.created.push(child.clone());
            group.procs.push(procs);
        }
        moved.push((controller, child));
    }
    if group.created.is_empty() {
        return Err("no cgroup v1 hierarchy counts usage here".to_string());
    }
    if cpuacct_with_cpu {
        debug!("accounting: cpuacct is mounted with cpu: CPU time from the reaped processes, not the shared group");
        cgroups.cpuacct = None;
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

/// The v2 group of the workload's own, for a sentinit alone in a writable group (see the module doc).
fn create_v2(cgroups: &mut Cgroups) -> Result<OwnGroup, String> {
    let Some(parent) = cgroups.memory.as_ref().or(cgroups.cpu.as_ref()).map(|l| l.dir.clone()) else {
        return Err("no cgroup v2 group".to_string());
    };
    if !on_filesystem(&parent, CGROUP2_SUPER_MAGIC) {
        return Err(format!("{} is not on a cgroup2 filesystem", parent.display()));
    }
    let work = parent.join(group_name());
    let leaf = parent.join(format!("{}-self", group_name_of(&work)));
    std::fs::create_dir(&leaf).map_err(|e| format!("cannot create {}: {e}", leaf.display()))?;
    let mut room = V2Room { parent: parent.clone(), leaf: leaf.clone(), enabled: Vec::new() };
    if let Err(e) = std::fs::write(leaf.join("cgroup.procs"), std::process::id().to_string()) {
        remove_group(&leaf);
        return Err(format!("cannot move sentinit into {}: {e}", leaf.display()));
    }
    let read = |name: &str| crate::paths::read_guarded(&parent.join(name), 4096).unwrap_or_default();
    let (available, enabled) =
        (String::from_utf8_lossy(&read("cgroup.controllers")).into_owned(), read("cgroup.subtree_control"));
    let enabled = String::from_utf8_lossy(&enabled).into_owned();
    for controller in ["memory", "pids", "cpu"] {
        let listed = |text: &str| text.split_whitespace().any(|c| c == controller);
        if !listed(&available) || listed(&enabled) {
            continue;
        }
        match std::fs::write(parent.join("cgroup.subtree_control"), format!("+{controller}")) {
            Ok(()) => room.enabled.push(controller),
            Err(e) if controller == "memory" => {
                room.undo();
                return Err(format!("cannot enable memory for the children of {}: {e}", parent.display()));
            }
            Err(e) => debug!("accounting: cannot enable {controller} for the children of {}: {e}", parent.display()),
        }
    }
    let procs = work.join("cgroup.procs");
    let made =
        std::fs::create_dir(&work).map_err(|e| format!("cannot create {}: {e}", work.display())).and_then(|()| {
            std::fs::OpenOptions::new()
                .write(true)
                .open(&procs)
                .map_err(|e| format!("cannot write {}: {e}", procs.display()))
        });
    let procs = match made {
        Ok(procs) => procs,
        Err(e) => {
            remove_group(&work);
            room.undo();
            return Err(e);
        }
    };
    let controllers = crate::paths::read_guarded(&work.join("cgroup.controllers"), 4096).unwrap_or_default();
    cgroups.v2_cpu_controller = String::from_utf8_lossy(&controllers).split_whitespace().any(|c| c == "cpu");
    for location in [cgroups.memory.as_mut(), cgroups.cpu.as_mut(), cgroups.pids.as_mut()].into_iter().flatten() {
        location.dir = work.clone();
    }
    debug!("accounting: the workload's own group {} (sentinit waits in {})", work.display(), leaf.display());
    Ok(OwnGroup { created: vec![work], procs: vec![procs], v2: Some(room) })
}

/// `mkdir parent/<name>` in a real cgroup v1 filesystem, kept only if sentinit may move a process in:
/// returns its `cgroup.procs`, open for writing (close-on-exec).
fn make_group(parent: &Path, child: &Path) -> Result<std::fs::File, String> {
    if !on_filesystem(parent, CGROUP_SUPER_MAGIC) {
        return Err(format!("{} is not on a cgroup v1 filesystem", parent.display()));
    }
    remove_stale_siblings(parent);
    // Never reused: a group of the same name may be another sentinit's, whose processes are invisible
    // from here when it runs in another PID namespace (where its pid can equal this one's).
    std::fs::create_dir(child).map_err(|e| format!("cannot create {}: {e}", child.display()))?;
    match std::fs::OpenOptions::new().write(true).open(child.join("cgroup.procs")) {
        Ok(procs) => Ok(procs),
        Err(e) => {
            remove_group(child);
            Err(format!("cannot write {}/cgroup.procs: {e}", child.display()))
        }
    }
}

/// `sentinit-<pid>-<8 random hex digits>`: the pid for people and for the stale-group check, the random
/// part because pids repeat across PID namespaces (every container's sentinit is pid 1).
fn group_name() -> String {
    format!("sentinit-{}-{:08x}", std::process::id(), crate::paths::random_u64() as u32)
}

fn group_name_of(dir: &Path) -> String {
    dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
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
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("sentinit-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
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
        if old && !running && foreign_processes(&path) == Some(0) && remove_tree(&path, 0) {
            debug!("accounting: removed {}, left by a sentinit that is gone", path.display());
        }
    }
}

fn on_filesystem(dir: &Path, magic: i64) -> bool {
    let Ok(path) = CString::new(dir.as_os_str().as_bytes()) else { return false };
    // SAFETY: statfs is plain data, filled in by the kernel for a NUL-terminated path.
    let mut info: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above; both pointers are to live values.
    let rc = unsafe { libc::statfs(path.as_ptr(), &mut info) };
    rc == 0 && info.f_type as i64 == magic
}

/// Removes `dir` and the empty groups below it (a workload may have made its own), deepest first,
/// within 16 levels and 256 groups; true when `dir` is gone.
fn remove_tree(dir: &Path, depth: usize) -> bool {
    remove_below(dir, depth, &mut 256);
    std::fs::remove_dir(dir).is_ok() || !dir.exists()
}

/// The groups below `dir`, deepest first, while `budget` lasts.
fn remove_below(dir: &Path, depth: usize, budget: &mut usize) {
    if depth >= 16 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        if *budget == 0 {
            return;
        }
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            *budget -= 1;
            remove_below(&entry.path(), depth + 1, budget);
            let _ = std::fs::remove_dir(entry.path());
        }
    }
}

/// rmdir (with the groups the workload made below), retried briefly: a process reaped a moment ago
/// can take a few milliseconds to leave.
fn remove_group(dir: &Path) {
    for attempt in 0..50 {
        if remove_tree(dir, 0) {
            debug!("accounting: removed {}", dir.display());
            return;
        }
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
