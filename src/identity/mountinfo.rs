//! Container IDs in `/proc/self/mountinfo`: the files a runtime bind-mounts from its own per-container
//! directory.
//!
//! Docker mounts `/etc/hostname`, `/etc/hosts` and `/etc/resolv.conf` from
//! `<data-root>/containers/<id>/`; podman and CRI-O from `overlay-containers/<id>/userdata/`, and CRI-O
//! mounts the container's own `/run/secrets` from there. The data root is not anchored (rootless Docker,
//! Docker Desktop and separate `/var/lib` filesystems all differ), but the directory shape is. Overlay
//! layer IDs (`upperdir=…`) live in the mount options, which are never read.
//!
//! Only the runtime's own mounts count: the mount point must be one of the files the runtime puts
//! there (`/etc/hostname`, `/etc/hosts`, `/etc/resolv.conf`, CRI-O's `/run/secrets`), with the same
//! name as the source. A user's bind of some other container's directory (a backup of
//! `/var/lib/docker/containers`, say, mounted at `/data`) has the right source shape but names
//! another container.
//!
//! Known limit: under a shared network namespace (ECS awsvpc, Kubernetes pods, `--network
//! container:X`) these files belong to the namespace's owner, the pause container. The resolver
//! therefore ranks cgroup evidence above this.

use super::container_id::is_container_id;

/// Files Docker keeps in `containers/<id>/` and bind-mounts into the container.
const DOCKER_BIND_FILES: [&str; 3] = ["hostname", "hosts", "resolv.conf"];

/// Where runtimes mount those files inside the container.
const RUNTIME_MOUNT_POINTS: [&str; 4] = ["/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/run/secrets"];

/// What mountinfo says.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct MountEvidence {
    /// One entry per runtime bind mount.
    pub ids: Vec<String>,
    /// The ID behind a `/run/secrets` mount, which CRI-O takes from the container's own directory even
    /// when the network files come from the pod sandbox.
    pub secrets_id: Option<String>,
}

/// Scans the contents of `/proc/self/mountinfo`.
pub fn scan(mountinfo: &str) -> MountEvidence {
    let mut evidence = MountEvidence::default();
    for line in mountinfo.lines() {
        // Fields: id parent major:minor root mount-point options [optional…] - fstype source super.
        let mut fields = line.split(' ');
        let (Some(root), Some(mount_point)) = (fields.nth(3), fields.next()) else { continue };
        if !is_runtime_mount(root, mount_point) {
            continue;
        }
        if let Some(id) = runtime_bind_id(root) {
            if mount_point == "/run/secrets" {
                evidence.secrets_id = Some(id.clone());
            }
            evidence.ids.push(id);
        }
    }
    evidence
}

/// True when `mount_point` is where a runtime puts one of its per-container files, and the source is
/// that same file (`…/hostname` on `/etc/hostname`).
fn is_runtime_mount(root: &str, mount_point: &str) -> bool {
    RUNTIME_MOUNT_POINTS.contains(&mount_point) && root.rsplit('/').next() == mount_point.rsplit('/').next()
}

/// The container ID in a bind mount's root (its path inside the source filesystem), if the path has
/// a runtime's per-container shape.
fn runtime_bind_id(root: &str) -> Option<String> {
    let parts: Vec<&str> = root.split('/').collect();
    parts.windows(3).find_map(|window| {
        let [directory, id, next] = [window[0], window[1], window[2]];
        let shaped = match directory {
            "containers" => DOCKER_BIND_FILES.contains(&next) && parts.last() == Some(&next),
            "overlay-containers" => next == "userdata",
            _ => false,
        };
        (shaped && is_container_id(id)).then(|| id.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "9b3ff0c1d6f8f5bd1d20b4c2b37e5a4f6a7c8d9e0f1a2b3c4d5e6f708192a3b4";
    const LAYER: &str = "aa3ff0c1d6f8f5bd1d20b4c2b37e5a4f6a7c8d9e0f1a2b3c4d5e6f708192a3b4";

    fn line(root: &str, mount_point: &str) -> String {
        format!("1021 1001 259:1 {root} {mount_point} rw,relatime - ext4 /dev/nvme0n1p1 rw\n")
    }

    #[test]
    fn docker_binds_wherever_the_data_root_is() {
        for (root, mount_point) in [
            (format!("/var/lib/docker/containers/{ID}/hostname"), "/etc/hostname"),
            (format!("/docker/containers/{ID}/resolv.conf"), "/etc/resolv.conf"),
            (format!("/home/ci/.local/share/docker/containers/{ID}/hosts"), "/etc/hosts"),
        ] {
            assert_eq!(scan(&line(&root, mount_point)).ids, vec![ID.to_string()], "{root}");
        }
    }

    #[test]
    fn podman_and_crio_userdata() {
        let text = line(&format!("/containers/overlay-containers/{ID}/userdata/hostname"), "/etc/hostname")
            + &line(&format!("/containers/overlay-containers/{ID}/userdata/run/secrets"), "/run/secrets");
        let evidence = scan(&text);
        assert_eq!(evidence.ids.len(), 2);
        assert_eq!(evidence.secrets_id.as_deref(), Some(ID));
    }

    #[test]
    fn only_the_runtimes_own_mount_points_count() {
        let other = LAYER;
        let text = line(&format!("/var/lib/docker/containers/{ID}/resolv.conf"), "/etc/resolv.conf")
            + &line(&format!("/backup/containers/{other}/resolv.conf"), "/data/resolv.conf")
            + &line(&format!("/backup/containers/{other}/hostname"), "/etc/hosts")
            + &line(&format!("/containers/overlay-containers/{other}/userdata/hostname"), "/mnt/hostname");
        assert_eq!(scan(&text).ids, vec![ID.to_string()]);
    }

    #[test]
    fn ignores_layers_other_files_and_garbage() {
        let overlay = format!(
            "1000 900 0:52 / / rw,relatime master:1 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/X,upperdir=/var/lib/docker/overlay2/{LAYER}/diff,workdir=/var/lib/docker/overlay2/{LAYER}/work\n"
        );
        let text = overlay
            + &line(&format!("/var/lib/docker/containers/{ID}/mounts/shm"), "/dev/shm")
            + &line(&format!("/var/lib/docker/overlay2/{LAYER}/diff"), "/data")
            + &line(&format!("/var/lib/docker/containers/{}/hostname", &ID[..12]), "/etc/hostname")
            + "short line\n\n";
        assert_eq!(scan(&text), MountEvidence::default());
    }
}
