//! Identity: which container and which ECS task sentinit runs in, worked out before the workload
//! starts and exported to it, so that a failed or OOM-killed task can be tied to its logs after ECS
//! has forgotten it.
//!
//! Sources, in order of trust for the container ID: the ECS task metadata endpoint (`DockerId`), the
//! cgroup paths, the runtime's bind mounts in mountinfo, the ECS container metadata file. For the task
//! ARN: the task metadata endpoint, the metadata file, and (only when configured) the ECS agent's
//! introspection API. The hostname is never an ID; at most it breaks a tie. Everything runs within
//! `--identity-timeout`; with no ECS variables and no agent URL nothing touches the network.

mod cgroup;
mod container_id;
mod ecs;
mod facts;
mod metadata_file;
mod mountinfo;

use crate::config::Config;
use crate::{debug, paths, warn};
use container_id::{pick, Pick};
use facts::{task_id_of, EcsFacts};
use std::ffi::OsString;
use std::path::Path;
use std::time::{Duration, Instant};

/// How often the metadata file is re-read while waiting for it to become READY.
const METADATA_FILE_POLL: Duration = Duration::from_millis(100);

/// What sentinit found out about itself; every value is optional and carries its source.
#[derive(Clone, Debug, Default)]
pub struct Identity {
    pub container_id: Option<String>,
    pub container_id_source: Option<&'static str>,
    pub task_arn: Option<String>,
    pub task_arn_source: Option<&'static str>,
    pub cluster: Option<String>,
    pub family: Option<String>,
    pub revision: Option<String>,
    pub container_name: Option<String>,
    pub cgroup_version: Option<u8>,
}

/// Resolves the identity within `config.identity_timeout`; never fails. `env` is sentinit's own
/// environment (the ECS agent's variables are read from it).
pub fn resolve(config: &Config, env: &[(OsString, OsString)]) -> Identity {
    let deadline = Instant::now() + config.identity_timeout;
    let var = |name: &str| {
        env.iter()
            .find(|(key, _)| key == name)
            .and_then(|(_, value)| value.to_str())
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .map(str::to_string)
    };
    let mut resolver = Resolver::default();

    // Local files first: they cost microseconds, and the network may use up the whole budget.
    let proc_root = paths::proc_root();
    let cgroup_text = read_text(&proc_root.join("self/cgroup"));
    let cpuset_text = read_text(&proc_root.join("self/cpuset"));
    let cgroups = cgroup::scan(cgroup_text.as_deref(), cpuset_text.as_deref());
    let mounts = read_text(&proc_root.join("self/mountinfo")).map(|text| mountinfo::scan(&text)).unwrap_or_default();
    let hostname = read_text(&proc_root.join("sys/kernel/hostname"));
    let metadata_path = var("ECS_CONTAINER_METADATA_FILE");
    let mut metadata = metadata_path.as_deref().and_then(|path| read_metadata_file(path, &mut resolver));
    resolver.identity.cgroup_version = cgroups.version.or_else(|| unified_hierarchy_version(&paths::sys_root()));

    // 1. The task metadata endpoint.
    let tmds =
        [("ECS_CONTAINER_METADATA_URI_V4", "ecs-metadata-v4"), ("ECS_CONTAINER_METADATA_URI", "ecs-metadata-v3")];
    let mut asked_tmds = false;
    for (variable, source) in tmds {
        let Some(base) = var(variable) else { continue };
        if asked_tmds && resolver.identity.container_id.is_some() && resolver.identity.task_arn.is_some() {
            break;
        }
        asked_tmds = true;
        let mut notes = Vec::new();
        let facts = ecs::query_tmds(&base, deadline, &mut notes);
        for note in &notes {
            warn!("ECS task metadata {note}");
        }
        resolver.id_notes.extend(notes.iter().map(|n| format!("{variable}: {n}")));
        resolver.task_notes.extend(notes.iter().map(|n| format!("{variable}: {n}")));
        resolver.take_container_id(facts.container_id.clone(), source);
        resolver.take_task(&facts, source);
    }
    if !asked_tmds {
        let note = "no ECS task metadata endpoint (ECS_CONTAINER_METADATA_URI[_V4] unset)";
        resolver.id_notes.push(note.to_string());
        resolver.task_notes.push(note.to_string());
    }

    // 2. cgroup paths.
    if resolver.identity.container_id.is_none() {
        match pick(&cgroups.ids, hostname.as_deref()) {
            Pick::One(id) => resolver.take_container_id(Some(id), "cgroup"),
            Pick::None => resolver.id_notes.push(match &cgroup_text {
                Some(_) => format!("no container ID in the cgroup paths ({})", cgroups.paths.join(", ")),
                None => format!("cannot read {}", proc_root.join("self/cgroup").display()),
            }),
            Pick::Ambiguous(ids) => {
                resolver.id_notes.push(format!("the cgroup paths name several containers: {}", ids.join(", ")))
            }
        }
    }

    // 3. The runtime's bind mounts; 4. the metadata file once READY.
    if resolver.identity.container_id.is_none() {
        let from_mounts = match (mounts.secrets_id.clone(), pick(&mounts.ids, hostname.as_deref())) {
            (Some(id), _) | (None, Pick::One(id)) => Some(id),
            (None, Pick::None) => {
                resolver.id_notes.push("no runtime bind mount names a container in mountinfo".to_string());
                None
            }
            (None, Pick::Ambiguous(ids)) => {
                resolver.id_notes.push(format!("mountinfo names several containers: {}", ids.join(", ")));
                None
            }
        };
        if resolver.identity.container_id.is_none() && from_mounts.is_none() && !resolver.metadata_file_broken {
            if let Some(path) = &metadata_path {
                metadata = poll_metadata_file(path, metadata, deadline, &mut resolver);
            }
        }
        let from_file = metadata.as_ref().and_then(|m| m.facts.container_id.clone());
        match (from_mounts, from_file) {
            // Under a shared network namespace the bind mounts are the pause container's; the file
            // is written by the ECS agent for this very container, so it wins a disagreement.
            (Some(mounted), Some(file)) if mounted != file => {
                debug!("mountinfo names {mounted} but the ECS container metadata file says {file}; taking the file");
                resolver.take_container_id(Some(file), "metadata-file");
            }
            (Some(mounted), _) => resolver.take_container_id(Some(mounted), "mountinfo"),
            (None, Some(file)) => resolver.take_container_id(Some(file), "metadata-file"),
            (None, None) => {}
        }
    }
    if metadata_path.is_none() {
        let note = "no ECS container metadata file (ECS_CONTAINER_METADATA_FILE unset)";
        resolver.id_notes.push(note.to_string());
        resolver.task_notes.push(note.to_string());
    }
    if let Some(file) = &metadata {
        resolver.take_task(&file.facts, "metadata-file");
    }

    if resolver.identity.task_arn.is_none() {
        ask_introspection(config.ecs_agent_url.as_deref(), deadline, &mut resolver);
    }
    resolver.explain_gaps();
    resolver.identity
}

/// The task from the ECS agent's introspection API: only when configured, and only with a full ID.
fn ask_introspection(agent: Option<&str>, deadline: Instant, resolver: &mut Resolver) {
    let Some(agent) = agent else {
        resolver.task_notes.push("no --ecs-agent-url for the ECS agent introspection API".to_string());
        return;
    };
    let mut notes = Vec::new();
    let facts = match &resolver.identity.container_id {
        Some(id) => ecs::query_introspection(agent, id, deadline, &mut notes),
        None => {
            notes.push("the ECS agent introspection API needs the container ID, which is unknown".to_string());
            EcsFacts::default()
        }
    };
    for note in &notes {
        warn!("ECS agent introspection: {note}");
    }
    resolver.task_notes.extend(notes);
    resolver.take_task(&facts, "ecs-introspection");
}

/// The identity being built, and why parts of it are still missing (for `-v`).
#[derive(Default)]
struct Resolver {
    identity: Identity,
    id_notes: Vec<String>,
    task_notes: Vec<String>,
    /// The metadata file was malformed: warned about once, not waited for.
    metadata_file_broken: bool,
}

impl Resolver {
    fn take_container_id(&mut self, id: Option<String>, source: &'static str) {
        if let (None, Some(id)) = (&self.identity.container_id, id) {
            debug!("container ID {id} from {source}");
            self.identity.container_id = Some(id);
            self.identity.container_id_source = Some(source);
        }
    }

    /// Takes the task facts of one source where nothing more trusted has filled them yet.
    fn take_task(&mut self, facts: &EcsFacts, source: &'static str) {
        let identity = &mut self.identity;
        if identity.task_arn.is_none() {
            if let Some(arn) = &facts.task_arn {
                debug!("task ARN {arn} from {source}");
                identity.task_arn = Some(arn.clone());
                identity.task_arn_source = Some(source);
            }
        }
        for (slot, value) in [
            (&mut identity.cluster, &facts.cluster),
            (&mut identity.family, &facts.family),
            (&mut identity.revision, &facts.revision),
            (&mut identity.container_name, &facts.container_name),
        ] {
            if slot.is_none() {
                slot.clone_from(value);
            }
        }
    }

    /// With `-v`: one line per variable that will not be exported, saying why.
    fn explain_gaps(&self) {
        let identity = &self.identity;
        if identity.container_id.is_none() {
            debug!("DOCKER_CONTAINER_ID not set: {}", self.id_notes.join("; "));
        }
        if identity.task_arn.is_none() {
            debug!("ECS_TASK_ARN not set: {}", self.task_notes.join("; "));
            debug!("ECS_TASK_ID not set: no task ARN");
        }
        for (variable, value) in [
            ("ECS_CLUSTER", &identity.cluster),
            ("ECS_TASK_FAMILY", &identity.family),
            ("ECS_TASK_REVISION", &identity.revision),
            ("ECS_CONTAINER_NAME", &identity.container_name),
        ] {
            if value.is_none() {
                debug!("{variable} not set: no ECS source gave it");
            }
        }
    }
}

fn read_text(path: &Path) -> Option<String> {
    std::fs::read(path).ok().map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
}

/// 2 when `<sys>/fs/cgroup` is the unified hierarchy (for when /proc/self/cgroup cannot be read).
fn unified_hierarchy_version(sys_root: &Path) -> Option<u8> {
    sys_root.join("fs/cgroup/cgroup.controllers").exists().then_some(2)
}

/// One read of the metadata file; a broken file is reported once and then left alone.
fn read_metadata_file(path: &str, resolver: &mut Resolver) -> Option<metadata_file::MetadataFile> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) => {
            resolver.id_notes.push(format!("cannot read ECS_CONTAINER_METADATA_FILE {path}: {e}"));
            return None;
        }
    };
    match metadata_file::parse(&bytes) {
        Ok(file) => Some(file),
        Err(reason) => {
            warn!("ECS container metadata file {path}: {reason}; ignoring it");
            resolver.id_notes.push(format!("ECS container metadata file {path}: {reason}"));
            resolver.metadata_file_broken = true;
            None
        }
    }
}

/// Re-reads the metadata file until it is READY or the deadline comes; the agent marks it READY
/// shortly after the container starts. A malformed file is not waited for.
fn poll_metadata_file(
    path: &str,
    mut latest: Option<metadata_file::MetadataFile>,
    deadline: Instant,
    resolver: &mut Resolver,
) -> Option<metadata_file::MetadataFile> {
    loop {
        if latest.as_ref().is_some_and(|file| file.ready) {
            return latest;
        }
        if Instant::now() + METADATA_FILE_POLL > deadline {
            resolver
                .id_notes
                .push(format!("the ECS container metadata file {path} was not READY within the identity timeout"));
            return latest;
        }
        std::thread::sleep(METADATA_FILE_POLL);
        // A missing file may still appear; a malformed one stays malformed (writes are atomic
        // renames), so that is reported once and not waited for.
        if let Ok(bytes) = std::fs::read(path) {
            match metadata_file::parse(&bytes) {
                Ok(file) => latest = Some(file),
                Err(reason) => {
                    warn!("ECS container metadata file {path}: {reason}; ignoring it");
                    resolver.id_notes.push(format!("ECS container metadata file {path}: {reason}"));
                    return latest;
                }
            }
        }
    }
}

impl Identity {
    /// The ECS task ID: the last component of the task ARN.
    pub fn task_id(&self) -> Option<String> {
        self.task_arn.as_deref().and_then(task_id_of)
    }

    /// The variables to export to the workload: (name, value) for every resolved value.
    pub fn exports(&self) -> Vec<(String, String)> {
        [
            ("DOCKER_CONTAINER_ID", self.container_id.clone()),
            ("ECS_TASK_ARN", self.task_arn.clone()),
            ("ECS_TASK_ID", self.task_id()),
            ("ECS_CLUSTER", self.cluster.clone()),
            ("ECS_TASK_FAMILY", self.family.clone()),
            ("ECS_TASK_REVISION", self.revision.clone()),
            ("ECS_CONTAINER_NAME", self.container_name.clone()),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name.to_string(), value?)))
        .collect()
    }

    /// `START container=<id> task=<arn>`.
    pub fn start_line(&self) -> String {
        format!(
            "START container={} task={}",
            self.container_id.as_deref().unwrap_or("unknown"),
            self.task_arn.as_deref().unwrap_or("unknown")
        )
    }

    /// The `--identity` JSON object: every value (null when unresolved) and where it came from.
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "container_id": self.container_id,
            "container_id_source": self.container_id_source,
            "task_arn": self.task_arn,
            "task_arn_source": self.task_arn_source,
            "task_id": self.task_id(),
            "cluster": self.cluster,
            "family": self.family,
            "revision": self.revision,
            "container_name": self.container_name,
            "cgroup_version": self.cgroup_version,
        })
        .to_string()
    }
}
