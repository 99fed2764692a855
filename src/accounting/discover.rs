//! Finding the container's cgroup directory, per controller, from /proc/self/cgroup and
//! /proc/self/mountinfo.
//!
//! Per controller because hosts can be hybrid (v1 memory beside an empty cgroup2): a controller is read
//! from its v1 hierarchy when one is mounted, otherwise from cgroup2 when the group's
//! `cgroup.controllers` lists it. The directory is the mount point plus the process's path relative to
//! the mount's root (what runc does; under a cgroup namespace both are `/` and the mount point is the
//! container's group). Only groups sentinit is in are read: a path with a `..` component (the kernel
//! prints `/../sibling` for a group outside the cgroup namespace's root) is refused, and so is a mount
//! point taken for the group bound over it unless its cgroup.procs lists sentinit. The host's real root
//! cgroup is refused too: its counters are machine-wide, not the workload's. /proc and /sys come from SENTINIT_PROC_ROOT and SENTINIT_SYS_ROOT so that tests can point
//! them at fixture trees.

use super::files::read_small;
use crate::paths::{sys_root, SelfFiles};
use std::path::{Path, PathBuf};

/// One controller's cgroup directory.
#[derive(Clone, Debug, PartialEq)]
pub struct Location {
    pub dir: PathBuf,
    pub version: u8,
    /// Where the hierarchy is mounted (as read, under [`sys_root`]): `dir` or one of its ancestors.
    pub mount_point: PathBuf,
}

/// The directories sentinit reads, one per concern; `None` where the controller is not available, or
/// only at the host's root.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cgroups {
    pub memory: Option<Location>,
    /// v1 `cpu` (quota, throttling) or the v2 group.
    pub cpu: Option<Location>,
    /// v1 `cpuacct` (usage); `None` on v2, where `cpu.stat` has both.
    pub cpuacct: Option<Location>,
    pub pids: Option<Location>,
    /// The v2 group lists the `cpu` controller (so `cpu.max` and the throttling counters exist).
    pub v2_cpu_controller: bool,
}

impl Cgroups {
    /// The version the report names: the memory controller's, else the CPU controller's.
    pub fn version(&self) -> Option<u8> {
        self.memory.as_ref().or(self.cpu.as_ref()).or(self.pids.as_ref()).map(|l| l.version)
    }
}

/// Discovers the cgroups of this process from its /proc/self files, under [`sys_root`].
pub fn discover(files: &SelfFiles) -> Cgroups {
    match (&files.cgroup, &files.mountinfo) {
        (Ok(cgroup), Ok(mountinfo)) => locate(cgroup, mountinfo, &sys_root()),
        (Err(e), _) | (_, Err(e)) => {
            crate::debug!("accounting: {e}; no cgroup accounting");
            Cgroups::default()
        }
    }
}

/// A line of /proc/self/cgroup.
struct Membership {
    controllers: Vec<String>,
    path: String,
    unified: bool,
}

/// A cgroup mount from mountinfo.
struct Mount {
    root: String,
    mount_point: String,
    unified: bool,
    options: Vec<String>,
}

/// The pure part of [`discover`].
pub fn locate(proc_cgroup: &str, mountinfo: &str, sys: &Path) -> Cgroups {
    let memberships = parse_proc_cgroup(proc_cgroup);
    let mounts = parse_mountinfo(mountinfo);
    let v1 = |controller: &str| -> Option<Option<Location>> {
        let member = memberships.iter().find(|m| !m.unified && m.controllers.iter().any(|c| c == controller))?;
        let mount = mounts.iter().find(|m| !m.unified && m.options.iter().any(|o| o == controller));
        let Some(mount) = mount else {
            crate::debug!("accounting: the v1 {controller} hierarchy is not mounted");
            return Some(None);
        };
        // A v1 hierarchy holds the controller: cgroup2 cannot have it, whatever happens here.
        let Some((dir, mount_point)) = directory(mount, &member.path, sys) else { return Some(None) };
        if dir.join("release_agent").exists() || dir.join("cgroup.sane_behavior").exists() {
            crate::debug!("accounting: {} is the host's root {controller} cgroup: not the workload's", dir.display());
            return Some(None);
        }
        Some(Some(Location { dir, version: 1, mount_point }))
    };
    let v2_group = memberships
        .iter()
        .find(|m| m.unified)
        .and_then(|member| directory(mounts.iter().find(|m| m.unified)?, &member.path, sys))
        .filter(|(dir, _)| {
            let is_root = !dir.join("cgroup.type").exists() && !dir.join("cgroup.events").exists();
            if is_root {
                crate::debug!("accounting: {} is the host's root cgroup: not the workload's", dir.display());
            }
            dir.join("cgroup.controllers").exists() && !is_root
        });
    let v2_controllers: Vec<String> = v2_group
        .as_ref()
        .and_then(|(dir, _)| read_small(&dir.join("cgroup.controllers")))
        .map(|text| text.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    let v2_location = || {
        v2_group.as_ref().map(|(dir, mount_point)| Location {
            dir: dir.clone(),
            version: 2,
            mount_point: mount_point.clone(),
        })
    };
    let v2 = |controller: &str| v2_location().filter(|_| v2_controllers.iter().any(|c| c == controller));

    // A v1 hierarchy for the controller decides, even when its group is the root: cgroup2 then cannot
    // have the controller.
    let memory = v1("memory").unwrap_or_else(|| v2("memory"));
    let pids = v1("pids").unwrap_or_else(|| v2("pids"));
    let (cpu, cpuacct, v2_cpu_controller) = match (v1("cpu"), v1("cpuacct")) {
        (None, None) => {
            // cpu.stat's usage lines exist in every non-root v2 group, controller or not.
            (v2_location(), None, v2("cpu").is_some())
        }
        (cpu, cpuacct) => (cpu.flatten(), cpuacct.flatten(), false),
    };
    Cgroups { memory, cpu, cpuacct, pids, v2_cpu_controller }
}

/// `mount point + (path relative to the mount's root)`, when the path lies inside the mount and the
/// directory exists, with the mount point as read.
fn directory(mount: &Mount, path: &str, sys: &Path) -> Option<(PathBuf, PathBuf)> {
    if path.split('/').any(|component| component == "..") {
        // Outside the cgroup namespace's root, e.g. `/../sibling` after a move by someone else: that
        // group is not sentinit's to read.
        crate::debug!("accounting: cgroup path {path} leads outside the cgroup namespace; not reading it");
        return None;
    }
    let relative = if mount.root == "/" {
        path.trim_start_matches('/')
    } else if path == mount.root {
        ""
    } else if let Some(rest) = path.strip_prefix(mount.root.as_str()).and_then(|r| r.strip_prefix('/')) {
        rest
    } else {
        // E.g. a cgroup namespace entered without remounting: the mount's root is `/..`, above the
        // namespace's `/`, and the group's directory cannot be named from here.
        crate::debug!(
            "accounting: cgroup path {path} is outside the mount of {} (root {})",
            mount.mount_point,
            mount.root
        );
        return None;
    };
    let mount_point = map_mount_point(&mount.mount_point, sys);
    let mut dir = mount_point.clone();
    if !relative.is_empty() {
        dir.push(relative);
    }
    if dir.is_dir() {
        return Some((dir, mount_point));
    }
    // Some runtimes bind the container's own group over the mount point without a cgroup namespace,
    // while mountinfo still names the hierarchy's root (seen with rootless runc on cgroup v1): the path
    // from /proc/self/cgroup then does not exist below the mount, but the mount point itself is the
    // group. Taken only when its cgroup.procs lists sentinit (pids there are in the reader's pid
    // namespace), so that a hierarchy's root or someone else's group is never read as ours.
    if !relative.is_empty() && mount_point.is_dir() {
        if lists_own_pid(&mount_point) {
            crate::debug!(
                "accounting: cgroup directory {} does not exist; using the mount point {} (the group bound over it, which holds sentinit)",
                dir.display(),
                mount_point.display()
            );
            return Some((mount_point.clone(), mount_point));
        }
        crate::debug!(
            "accounting: cgroup directory {} does not exist, and the mount point {} does not hold sentinit (pid {}): not reading it",
            dir.display(),
            mount_point.display(),
            std::process::id()
        );
        return None;
    }
    crate::debug!("accounting: cgroup directory {} does not exist", dir.display());
    None
}

/// Does `dir/cgroup.procs` list this process?
fn lists_own_pid(dir: &Path) -> bool {
    let own = std::process::id().to_string();
    read_small(&dir.join("cgroup.procs")).is_some_and(|procs| procs.split_whitespace().any(|pid| pid == own))
}

/// A mount point under /sys is read under [`sys_root`].
fn map_mount_point(mount_point: &str, sys: &Path) -> PathBuf {
    match mount_point.strip_prefix("/sys") {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => sys.join(rest.trim_start_matches('/')),
        _ => PathBuf::from(mount_point),
    }
}

fn parse_proc_cgroup(text: &str) -> Vec<Membership> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, ':');
            let (id, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
            // A group removed under a zombie reads "<path> (deleted)".
            let path = path.strip_suffix(" (deleted)").unwrap_or(path);
            if !path.starts_with('/') {
                return None;
            }
            let unified = id == "0" && controllers.is_empty();
            let controllers = controllers.split(',').filter(|c| !c.is_empty()).map(str::to_string).collect();
            Some(Membership { controllers, path: path.to_string(), unified })
        })
        .collect()
}

fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let fields: Vec<&str> = before.split(' ').collect();
            let (root, mount_point) = (fields.get(3)?, fields.get(4)?);
            let mut after = after.split(' ');
            let fstype = after.next()?;
            let _source = after.next();
            let options = after.next().unwrap_or("").split(',').map(str::to_string).collect();
            let unified = match fstype {
                "cgroup2" => true,
                "cgroup" => false,
                _ => return None,
            };
            Some(Mount { root: unescape(root), mount_point: unescape(mount_point), unified, options })
        })
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() && bytes[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b)) {
            let value =
                (bytes[i + 1] - b'0') as u32 * 64 + (bytes[i + 2] - b'0') as u32 * 8 + (bytes[i + 3] - b'0') as u32;
            out.push(value as u8);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_octal() {
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape("/end\\04"), "/end\\04");
    }

    #[test]
    fn relative_to_mount_root() {
        let mount = |root: &str| Mount {
            root: root.into(),
            mount_point: "/nonexistent-mp".into(),
            unified: false,
            options: vec![],
        };
        // Directories do not exist, so only the refusal cases are checked here; the fixtures cover the rest.
        assert!(directory(&mount("/.."), "/", Path::new("/sys")).is_none());
        assert!(directory(&mount("/docker/abc"), "/other", Path::new("/sys")).is_none());
        assert_eq!(
            map_mount_point("/sys/fs/cgroup/memory", Path::new("/fx/sys")),
            PathBuf::from("/fx/sys/fs/cgroup/memory")
        );
        assert_eq!(map_mount_point("/cgroup", Path::new("/fx/sys")), PathBuf::from("/cgroup"));
    }

    #[test]
    fn a_group_bound_over_the_mount_point_is_found_only_when_it_holds_sentinit() {
        let sys = std::env::temp_dir().join(format!("sentinit-discover-{}", std::process::id()));
        let memory = sys.join("fs/cgroup/memory");
        std::fs::create_dir_all(&memory).unwrap();
        let proc_cgroup = "4:memory:/process_api/x/ct\n";
        let mountinfo = "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n";
        let locate_memory = || locate(proc_cgroup, mountinfo, &sys).memory.map(|l| l.dir);
        // Someone else's group (or the hierarchy's root) bound there: sentinit's pid is not listed.
        std::fs::write(memory.join("cgroup.procs"), "1\n4000000\n").unwrap();
        let foreign = locate_memory();
        std::fs::write(memory.join("cgroup.procs"), "").unwrap();
        let empty = locate_memory();
        std::fs::write(memory.join("cgroup.procs"), format!("1\n{}\n77\n", std::process::id())).unwrap();
        let found = locate_memory();
        // The real root has release_agent: refused, even through the fallback.
        std::fs::write(memory.join("release_agent"), "").unwrap();
        let refused = locate_memory();
        std::fs::remove_dir_all(&sys).unwrap();
        assert_eq!(foreign, None, "cgroup.procs without sentinit's pid");
        assert_eq!(empty, None);
        assert_eq!(found, Some(memory));
        assert_eq!(refused, None);
    }

    #[test]
    fn a_path_outside_the_cgroup_namespace_is_never_read() {
        let sys = std::env::temp_dir().join(format!("sentinit-discover-dotdot-{}", std::process::id()));
        // The namespace's root is the mount (root `/`); the sibling exists beside it on the host's tree.
        let mount = sys.join("fs/cgroup");
        std::fs::create_dir_all(sys.join("fs/sibling")).unwrap();
        std::fs::create_dir_all(&mount).unwrap();
        for dir in [&mount, &sys.join("fs/sibling")] {
            std::fs::write(dir.join("cgroup.controllers"), "memory pids\n").unwrap();
            std::fs::write(dir.join("cgroup.type"), "domain\n").unwrap();
        }
        let mountinfo = "702 701 0:28 / /sys/fs/cgroup ro - cgroup2 cgroup ro\n";
        let own = locate("0::/\n", mountinfo, &sys);
        let outside = locate("0::/../sibling\n", mountinfo, &sys);
        let v1_outside =
            locate("4:memory:/../../fs/sibling\n", "35 31 0:32 / /sys/fs/cgroup rw - cgroup cgroup rw,memory\n", &sys);
        std::fs::remove_dir_all(&sys).unwrap();
        assert_eq!(own.memory.map(|l| l.dir), Some(mount));
        assert_eq!(outside, Cgroups::default(), "nothing is read through /../sibling");
        assert_eq!(v1_outside, Cgroups::default());
    }

    #[test]
    fn parses_proc_cgroup_lines() {
        let parsed = parse_proc_cgroup("4:memory:/a/b\n2:cpu,cpuacct:/docker/x\n0::/c (deleted)\nbogus\n");
        assert_eq!(parsed.len(), 3);
        assert_eq!(parsed[1].controllers, vec!["cpu", "cpuacct"]);
        assert!(parsed[2].unified);
        assert_eq!(parsed[2].path, "/c");
    }
}
