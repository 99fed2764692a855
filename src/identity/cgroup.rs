//! Container IDs in cgroup paths: every line of `/proc/self/cgroup` and `/proc/self/cpuset`.
//!
//! "The last component of /proc/self/cpuset" only works for cgroupfs-style paths with a host cgroup
//! namespace. Real paths carry systemd units (`docker-<id>.scope`), containerd's `slice:prefix:id`
//! notation, crun's `/container` leaf, nested containers (Docker-in-Docker, EKS on Fargate) and parent
//! slices full of other hex (pod UIDs, ECS task IDs). So each path is walked from its innermost
//! component outwards and a component counts only when, once decorated parts are removed, it is a
//! whole container ID.

use super::container_id::is_container_id;

/// Runtime prefixes of systemd scope names.
const RUNTIME_PREFIXES: [&str; 4] = ["docker-", "cri-containerd-", "crio-", "libpod-"];

/// What the cgroup files say.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CgroupEvidence {
    /// One entry per line (and for cpuset) that named a container: its innermost ID.
    pub ids: Vec<String>,
    /// The distinct paths read, for explaining a miss.
    pub paths: Vec<String>,
    /// 1 when any v1 hierarchy is listed (hybrid hosts count as v1), 2 for a lone `0::` line.
    pub version: Option<u8>,
}

/// Scans the contents of `/proc/self/cgroup` and `/proc/self/cpuset` (either may be missing).
pub fn scan(cgroup: Option<&str>, cpuset: Option<&str>) -> CgroupEvidence {
    let mut evidence = CgroupEvidence::default();
    let mut saw_v1 = false;
    let mut saw_v2 = false;
    for line in cgroup.unwrap_or("").lines() {
        // The path itself may contain ':' (containerd's systemd notation), so split twice only.
        let mut fields = line.splitn(3, ':');
        let (Some(hierarchy), Some(_controllers), Some(path)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        if hierarchy.trim() == "0" {
            saw_v2 = true;
        } else {
            saw_v1 = true;
        }
        evidence.note(path);
    }
    if let Some(path) = cpuset {
        evidence.note(path);
    }
    evidence.version = if saw_v1 {
        Some(1)
    } else if saw_v2 {
        Some(2)
    } else {
        None
    };
    evidence
}

impl CgroupEvidence {
    fn note(&mut self, path: &str) {
        let path = path.trim();
        if let Some(id) = innermost_id(path) {
            self.ids.push(id);
        }
        if !self.paths.iter().any(|p| p == path) {
            self.paths.push(path.to_string());
        }
    }
}

/// The container ID nearest the leaf of one cgroup path, if any component is one.
pub fn innermost_id(path: &str) -> Option<String> {
    path.trim().rsplit('/').find_map(component_id)
}

/// One path component reduced to a container ID, or `None`.
fn component_id(component: &str) -> Option<String> {
    let name = component.strip_suffix(".scope").unwrap_or(component);
    // `kubepods-…-pod<uid>.slice:cri-containerd:<id>`: the ID is after the last ':'.
    let name = name.rsplit(':').next().unwrap_or(name);
    // conmon is the runtime's monitor process, not the container.
    if name.contains("conmon") {
        return None;
    }
    let name = RUNTIME_PREFIXES.iter().find_map(|prefix| name.strip_prefix(prefix)).unwrap_or(name);
    is_container_id(name).then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "9b3ff0c1d6f8f5bd1d20b4c2b37e5a4f6a7c8d9e0f1a2b3c4d5e6f708192a3b4";
    const OUTER: &str = "0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e";
    const TASK: &str = "4d1f6c0b2a9e4e7f8a3b5c6d7e8f9a0b";

    fn ids(path: &str) -> Option<String> {
        innermost_id(path)
    }

    #[test]
    fn runtime_shapes() {
        assert_eq!(ids(&format!("/docker/{ID}")).as_deref(), Some(ID));
        assert_eq!(ids(&format!("/system.slice/docker-{ID}.scope")).as_deref(), Some(ID));
        assert_eq!(ids(&format!("/ecs/{TASK}/{ID}")).as_deref(), Some(ID));
        assert_eq!(ids(&format!("/ecstasks.slice/ecstasks-{TASK}.slice/docker-{ID}.scope")).as_deref(), Some(ID));
        assert_eq!(
            ids(&format!(
                "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1d2c3b4a_0000_1111_2222_333344445555.slice/cri-containerd-{ID}.scope"
            ))
            .as_deref(),
            Some(ID)
        );
        assert_eq!(
            ids(&format!(
                "/system.slice/containerd.service/kubepods-burstable-pod1d2c3b4a_0000_1111_2222_333344445555.slice:cri-containerd:{ID}"
            ))
            .as_deref(),
            Some(ID)
        );
        assert_eq!(ids(&format!("/machine.slice/libpod-{ID}.scope/container")).as_deref(), Some(ID));
        assert_eq!(ids(&format!("/kubepods.slice/crio-{ID}.scope")).as_deref(), Some(ID));
    }

    #[test]
    fn fargate_and_nesting_take_the_innermost() {
        let fargate = format!("{TASK}-3618752567");
        assert_eq!(ids(&format!("/ecs/{TASK}/{fargate}")), Some(fargate.clone()));
        assert_eq!(
            ids(&format!("/ecs/{TASK}/{fargate}/kubepods/besteffort/pod1d2c3b4a-0000-1111-2222-333344445555/{ID}"))
                .as_deref(),
            Some(ID)
        );
        assert_eq!(ids(&format!("/docker/{OUTER}/docker/{ID}")).as_deref(), Some(ID));
    }

    #[test]
    fn never_pod_uids_task_slices_sessions_numbers_or_conmon() {
        assert_eq!(ids("/"), None);
        assert_eq!(ids("/user.slice/user-1000.slice/session-3.scope"), None);
        assert_eq!(ids("/kubepods/besteffort/pod1d2c3b4a-0000-1111-2222-333344445555"), None);
        assert_eq!(ids(&format!("/ecstasks.slice/ecstasks-{TASK}.slice")), None);
        assert_eq!(ids(&format!("/ecs/{TASK}")), None);
        assert_eq!(ids("/system.slice/123456"), None);
        assert_eq!(ids(&format!("/machine.slice/libpod-conmon-{ID}.scope")), None);
        assert_eq!(ids(&format!("/kubepods.slice/crio-conmon-{ID}.scope")), None);
        assert_eq!(ids(&format!("/system.slice/var-lib-docker-overlay2-{ID}-merged.mount")), None);
        assert_eq!(ids(&format!("/docker/{}", &ID[..12])), None);
    }

    #[test]
    fn scan_unions_lines_and_reports_the_version() {
        let v1 = format!("12:memory:/docker/{ID}\n11:cpuset:/docker/{ID}\n1:name=systemd:/docker/{ID}\n0::/\n");
        let evidence = scan(Some(&v1), Some(&format!("/docker/{ID}\n")));
        assert_eq!(evidence.version, Some(1));
        assert_eq!(evidence.ids.len(), 4);
        assert!(evidence.ids.iter().all(|id| id == ID));

        let v2 = scan(Some("0::/\n"), Some("/\n"));
        assert_eq!(v2, CgroupEvidence { ids: vec![], paths: vec!["/".to_string()], version: Some(2) });

        assert_eq!(scan(None, None), CgroupEvidence::default());
        assert_eq!(scan(Some("garbage\n\n"), None), CgroupEvidence::default());
    }
}
