//! Container IDs in cgroup paths: every line of `/proc/self/cgroup` and `/proc/self/cpuset`.
//!
//! "The last component of /proc/self/cpuset" only works for cgroupfs-style paths with a host cgroup
//! namespace. Real paths carry systemd units (`docker-<id>.scope`), containerd's `slice:prefix:id`
//! notation, crun's `/container` leaf, nested containers (Docker-in-Docker, EKS on Fargate) and parent
//! slices full of other hex (pod UIDs, ECS task IDs). So each path is walked from its innermost
//! component outwards and a component counts only when, once decorated parts are removed, it is a
//! whole container ID.
//!
//! Innermost also wins across lines: the lines need not agree on depth. With a host cgroup namespace on
//! cgroup v2, Docker-in-Docker reads `0::/docker/OUT/docker/IN` from `/proc/self/cgroup` but
//! `/docker/OUT` from `/proc/self/cpuset` (the nearest ancestor with the cpuset controller). A candidate
//! found at a path that is an ancestor of another candidate's path is an outer container and is
//! dropped before anything is picked, so not even the hostname can bring it back.

use super::container_id::is_container_id;

/// Runtime prefixes of systemd scope names.
const RUNTIME_PREFIXES: [&str; 4] = ["docker-", "cri-containerd-", "crio-", "libpod-"];

/// What the cgroup files say.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CgroupEvidence {
    /// One entry per line (and for cpuset) that named a container: its innermost ID, unless another
    /// line names a container nested inside it.
    pub ids: Vec<String>,
    /// The distinct paths read, for explaining a miss.
    pub paths: Vec<String>,
    /// 1 when any v1 hierarchy is listed (hybrid hosts count as v1), 2 for a lone `0::` line.
    pub version: Option<u8>,
    /// Every line's innermost ID with where it sat, while scanning.
    found: Vec<Found>,
}

/// A container ID and the cgroup path down to (and including) the component that named it.
#[derive(Debug, PartialEq, Eq)]
struct Found {
    id: String,
    at: String,
}

/// `found` without the candidates whose path is an ancestor of another candidate's path (the outer
/// containers of a nested setup).
fn innermost_only(found: &[Found]) -> Vec<&Found> {
    found
        .iter()
        .filter(|outer| {
            !found.iter().any(|inner| inner.id != outer.id && inner.at.starts_with(&format!("{}/", outer.at)))
        })
        .collect()
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
    evidence.ids = innermost_only(&evidence.found).into_iter().map(|found| found.id.clone()).collect();
    evidence.found.clear();
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
        if let Some((id, at)) = innermost(path) {
            self.found.push(Found { id, at });
        }
        if !self.paths.iter().any(|p| p == path) {
            self.paths.push(path.to_string());
        }
    }
}

/// The container ID nearest the leaf of one cgroup path, if any component is one.
#[cfg(test)]
fn innermost_id(path: &str) -> Option<String> {
    innermost(path).map(|(id, _)| id)
}

/// The container ID nearest the leaf of `path`, and the path down to the component that named it.
fn innermost(path: &str) -> Option<(String, String)> {
    let components: Vec<&str> = path.trim().split('/').collect();
    (0..components.len()).rev().find_map(|i| component_id(components[i]).map(|id| (id, components[..=i].join("/"))))
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
        assert_eq!(v2, CgroupEvidence { ids: vec![], paths: vec!["/".to_string()], version: Some(2), found: vec![] });

        assert_eq!(scan(None, None), CgroupEvidence::default());
        assert_eq!(scan(Some("garbage\n\n"), None), CgroupEvidence::default());
    }

    #[test]
    fn an_outer_container_on_another_line_is_dropped() {
        // v2, host cgroupns, Docker-in-Docker: cpuset stops at the outer container.
        let evidence = scan(Some(&format!("0::/docker/{OUTER}/docker/{ID}\n")), Some(&format!("/docker/{OUTER}\n")));
        assert_eq!(evidence.ids, vec![ID.to_string()]);
        // The same with systemd naming on the outside, in either order of lines.
        let evidence = scan(
            Some(&format!(
                "1:name=systemd:/system.slice/docker-{OUTER}.scope\n0::/system.slice/docker-{OUTER}.scope/docker/{ID}\n"
            )),
            None,
        );
        assert_eq!(evidence.ids, vec![ID.to_string()]);
        // Siblings are not ancestors: still two candidates.
        let evidence = scan(Some(&format!("1:name=systemd:/docker/{OUTER}\n0::/docker/{ID}\n")), None);
        assert_eq!(evidence.ids, vec![OUTER.to_string(), ID.to_string()]);
        // A prefix of the text that is not a whole path component is not an ancestor.
        let evidence = scan(Some(&format!("1:name=systemd:/docker/{OUTER}\n0::/docker/{OUTER}x/{ID}\n")), None);
        assert_eq!(evidence.ids.len(), 2);
    }
}
