//! Identity: which container and which ECS task sentinit runs in, worked out before the workload
//! starts and exported to it, so that a failed or OOM-killed task can be tied to its logs after ECS
//! has forgotten it.
//!
//! A variable the user set wins, and not only in the workload's environment: it is the identity
//! sentinit prints and uses (source `environment`). Otherwise, in order of trust for the container ID:
//! the ECS task metadata endpoint (`DockerId`), the cgroup paths, then either the runtime's bind mounts
//! in mountinfo (outside ECS) or the ECS container metadata file once READY (under ECS, where the bind
//! mounts may be the pause container's). For the task ARN: the task metadata endpoint, the metadata
//! file, and (only when configured) the ECS agent's introspection API. The hostname is never an ID; at
//! most it breaks a tie. Everything runs within `--identity-timeout`, with at most one warning line;
//! with no ECS variables and no agent URL nothing touches the network.

mod cgroup;
mod container_id;
mod ecs;
mod facts;
mod metadata_file;
mod mountinfo;
mod validate;

use crate::config::Config;
use crate::{debug, paths, warn};
use container_id::{pick, Pick};
use facts::{task_id_of, EcsFacts};
use std::ffi::OsString;
use std::path::Path;
use std::time::{Duration, Instant};

/// How often the metadata file is re-read while waiting for it to become READY.
const METADATA_FILE_POLL: Duration = Duration::from_millis(100);

/// Variables whose presence means "this runs under the ECS agent". There, the runtime's bind mounts
/// may be the task's pause container's (awsvpc), so mountinfo is not evidence of the container ID.
const ECS_ENVIRONMENT: [&str; 3] =
    ["ECS_CONTAINER_METADATA_URI_V4", "ECS_CONTAINER_METADATA_URI", "ECS_CONTAINER_METADATA_FILE"];

/// The exported variables, which the user may set to override what sentinit finds.
const DOCKER_CONTAINER_ID: &str = "DOCKER_CONTAINER_ID";
const ECS_TASK_ARN: &str = "ECS_TASK_ARN";
const ECS_TASK_ID: &str = "ECS_TASK_ID";
const ECS_CLUSTER: &str = "ECS_CLUSTER";
const ECS_TASK_FAMILY: &str = "ECS_TASK_FAMILY";
const ECS_TASK_REVISION: &str = "ECS_TASK_REVISION";
const ECS_CONTAINER_NAME: &str = "ECS_CONTAINER_NAME";

/// The source of a value the user set in the environment.
const FROM_ENVIRONMENT: &str = "environment";

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
    /// `ECS_TASK_ID` as the user set it (empty: set empty); `None` derives it from the task ARN.
    pub explicit_task_id: Option<String>,
    /// The CPU limits the ECS task metadata endpoint states, in millicores: the task's `Limits.CPU`
    /// and the container's (0 units: none). For `SENTINIT_CPU_LIMIT` when the cgroup has no quota.
    pub ecs_task_cpu_millis: Option<u64>,
    pub ecs_container_cpu_millis: Option<u64>,
}

/// Resolves the identity within `config.identity_timeout`; never fails. `env` is sentinit's own
/// environment: the ECS agent's variables are read from it, and so are the exported variables
/// themselves, because a value the user set wins (it is what the workload will see, so it is also
/// what the START line, `--identity`, the report and the introspection lookup use).
pub fn resolve(config: &Config, env: &[(OsString, OsString)], files: &paths::SelfFiles) -> Identity {
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
    resolver.take_explicit(env);

    // Local files first: they cost microseconds, and the network may use up the whole budget.
    let proc_root = paths::proc_root();
    let cgroup_text = files.cgroup.as_deref().ok();
    let cpuset_text = read_text(&proc_root.join("self/cpuset"));
    let cgroups = cgroup::scan(cgroup_text, cpuset_text.as_deref());
    let hostname = read_text(&proc_root.join("sys/kernel/hostname"));
    let ecs_environment: Vec<&str> = ECS_ENVIRONMENT.into_iter().filter(|name| var(name).is_some()).collect();
    let metadata_path = var("ECS_CONTAINER_METADATA_FILE");
    let mut metadata = metadata_path.as_deref().and_then(|path| resolver.read_metadata_file(path));
    resolver.identity.cgroup_version = cgroups.version.or_else(|| unified_hierarchy_version(&paths::sys_root()));

    // 1. The task metadata endpoint: v4, and v3 only when v4 is not set or did not answer at all (a
    // v4 that answers, even with 404, knows better than v3, whose errors are 500s that would be
    // retried until the deadline).
    let v4 = var("ECS_CONTAINER_METADATA_URI_V4");
    let v3 = var("ECS_CONTAINER_METADATA_URI");
    let mut v4_answered = false;
    if let Some(base) = &v4 {
        v4_answered = resolver.ask_tmds(base, "ECS_CONTAINER_METADATA_URI_V4", "ecs-metadata-v4", deadline);
    }
    match (&v3, v4_answered) {
        (Some(base), false) => {
            if v4.is_some() {
                debug!("ECS_CONTAINER_METADATA_URI_V4 gave no answer; asking ECS_CONTAINER_METADATA_URI (v3)");
            }
            resolver.ask_tmds(base, "ECS_CONTAINER_METADATA_URI", "ecs-metadata-v3", deadline);
        }
        (Some(_), true) => debug!("ECS_CONTAINER_METADATA_URI (v3) not asked: the v4 endpoint answered"),
        (None, _) => {}
    }
    if v4.is_none() && v3.is_none() {
        resolver.note_both("no ECS task metadata endpoint (ECS_CONTAINER_METADATA_URI[_V4] unset)");
    }

    // 2. cgroup paths.
    if resolver.wants_container_id() {
        match pick(&cgroups.ids, hostname.as_deref()) {
            Pick::One(id) => resolver.take_container_id(Some(id), "cgroup"),
            Pick::None => resolver.id_notes.push(match &files.cgroup {
                Ok(_) => format!("no container ID in the cgroup paths ({})", cgroups.paths.join(", ")),
                Err(e) => e.clone(),
            }),
            Pick::Ambiguous(ids) => {
                resolver.id_notes.push(format!("the cgroup paths name several containers: {}", ids.join(", ")))
            }
        }
    }

    // 3. Outside ECS, the runtime's bind mounts. 4. Under ECS, the metadata file once READY, instead:
    // there the bind mounts may be the pause container's (awsvpc), and a wrong ID is worse than none.
    if resolver.wants_container_id() {
        if ecs_environment.is_empty() {
            let mounts = files.mountinfo.as_deref().map(mountinfo::scan).unwrap_or_default();
            match (mounts.secrets_id.clone(), pick(&mounts.ids, hostname.as_deref())) {
                (Some(id), _) | (None, Pick::One(id)) => resolver.take_container_id(Some(id), "mountinfo"),
                (None, Pick::None) => {
                    resolver.id_notes.push("no runtime bind mount names a container in mountinfo".to_string())
                }
                (None, Pick::Ambiguous(ids)) => {
                    resolver.id_notes.push(format!("mountinfo names several containers: {}", ids.join(", ")))
                }
            }
        } else {
            resolver.id_notes.push(format!(
                "mountinfo not used under ECS ({} set): its bind mounts may be the task's pause container's",
                ecs_environment.join(", ")
            ));
            if let Some(path) = &metadata_path {
                if !resolver.metadata_file_broken {
                    metadata = poll_metadata_file(path, metadata, deadline, &mut resolver);
                }
                let from_file = metadata.as_ref().and_then(|m| m.facts.container_id.clone());
                resolver.take_container_id(from_file, "metadata-file");
            }
        }
    }
    if metadata_path.is_none() {
        resolver.note_both("no ECS container metadata file (ECS_CONTAINER_METADATA_FILE unset)");
    }
    if let Some(file) = &metadata {
        resolver.take_task(&file.facts, "metadata-file");
    }

    if resolver.wants(ECS_TASK_ARN) {
        ask_introspection(config.ecs_agent_url.as_deref(), deadline, &mut resolver);
    }
    resolver.report_problems();
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
    resolver.problems.extend(notes.iter().map(|note| format!("ECS agent introspection: {note}")));
    resolver.task_notes.extend(notes);
    resolver.take_task(&facts, "ecs-introspection");
}

/// The identity being built, and why parts of it are still missing (for `-v`).
#[derive(Default)]
struct Resolver {
    identity: Identity,
    id_notes: Vec<String>,
    task_notes: Vec<String>,
    /// Failed endpoints, malformed JSON, an unusable metadata file: summed up in one warning.
    problems: Vec<String>,
    /// Exported variables the user set (even empty): never filled from another source.
    explicit: Vec<&'static str>,
    /// The metadata file was unusable: warned about once, not waited for.
    metadata_file_broken: bool,
}

impl Resolver {
    /// Takes the exported variables the user already set as the identity, source `environment`. One
    /// set empty stays unresolved (the workload sees it empty) and is not looked for.
    fn take_explicit(&mut self, env: &[(OsString, OsString)]) {
        for name in [
            DOCKER_CONTAINER_ID,
            ECS_TASK_ARN,
            ECS_TASK_ID,
            ECS_CLUSTER,
            ECS_TASK_FAMILY,
            ECS_TASK_REVISION,
            ECS_CONTAINER_NAME,
        ] {
            let Some((_, value)) = env.iter().find(|(key, _)| key == name) else { continue };
            let value = value.to_string_lossy().into_owned();
            debug!("{name} set in the environment ({value:?}): using it as given");
            self.explicit.push(name);
            let identity = &mut self.identity;
            if name == ECS_TASK_ID {
                identity.explicit_task_id = Some(value);
                continue;
            }
            let value = (!value.is_empty()).then_some(value);
            match name {
                DOCKER_CONTAINER_ID => {
                    identity.container_id_source = value.as_ref().map(|_| FROM_ENVIRONMENT);
                    identity.container_id = value;
                }
                ECS_TASK_ARN => {
                    identity.task_arn_source = value.as_ref().map(|_| FROM_ENVIRONMENT);
                    identity.task_arn = value;
                }
                ECS_CLUSTER => identity.cluster = value,
                ECS_TASK_FAMILY => identity.family = value,
                ECS_TASK_REVISION => identity.revision = value,
                _ => identity.container_name = value,
            }
        }
    }

    /// True while `variable` is neither set by the user nor resolved.
    fn wants(&self, variable: &str) -> bool {
        let identity = &self.identity;
        let resolved = match variable {
            DOCKER_CONTAINER_ID => identity.container_id.is_some(),
            ECS_TASK_ARN => identity.task_arn.is_some(),
            ECS_CLUSTER => identity.cluster.is_some(),
            ECS_TASK_FAMILY => identity.family.is_some(),
            ECS_TASK_REVISION => identity.revision.is_some(),
            ECS_CONTAINER_NAME => identity.container_name.is_some(),
            _ => false,
        };
        !resolved && !self.explicit.contains(&variable)
    }

    fn wants_container_id(&self) -> bool {
        self.wants(DOCKER_CONTAINER_ID)
    }

    fn note_both(&mut self, note: &str) {
        self.id_notes.push(note.to_string());
        self.task_notes.push(note.to_string());
    }

    /// Asks one TMDS base URI; true when it gave an HTTP answer at all.
    fn ask_tmds(&mut self, base: &str, variable: &str, source: &'static str, deadline: Instant) -> bool {
        let mut notes = Vec::new();
        // Only v4 is asked for the task document when the labels said everything: v3 answers it with
        // 500s for some containers, which would be retried until the deadline.
        let answer = ecs::query_tmds(base, deadline, &mut notes, source == "ecs-metadata-v4");
        self.problems.extend(notes.iter().map(|note| format!("ECS task metadata {note}")));
        for note in &notes {
            self.note_both(&format!("{variable}: {note}"));
        }
        self.take_container_id(answer.facts.container_id.clone(), source);
        self.take_task(&answer.facts, source);
        let identity = &mut self.identity;
        identity.ecs_task_cpu_millis = identity.ecs_task_cpu_millis.or(answer.facts.task_cpu_millis);
        identity.ecs_container_cpu_millis = identity.ecs_container_cpu_millis.or(answer.facts.container_cpu_millis);
        answer.answered
    }

    fn take_container_id(&mut self, id: Option<String>, source: &'static str) {
        let id = id.and_then(|id| self.checked(DOCKER_CONTAINER_ID, id, source));
        if let (true, Some(id)) = (self.wants_container_id(), id) {
            debug!("container ID {id} from {source}");
            self.identity.container_id = Some(id);
            self.identity.container_id_source = Some(source);
        }
    }

    /// `value` when it has the shape `variable` needs (see [`validate`]); otherwise `None`, and `-v`
    /// says why it was dropped.
    fn checked(&self, variable: &str, value: String, source: &str) -> Option<String> {
        match validate::check(variable, &value) {
            Ok(()) => Some(value),
            Err(reason) => {
                let shown: String = value.chars().take(48).collect();
                let cut = if shown.len() < value.len() { "..." } else { "" };
                debug!("{variable} from {source} dropped: {reason} ({shown:?}{cut})");
                None
            }
        }
    }

    /// Takes the task facts of one source where nothing more trusted (or the user) has filled them,
    /// each only when it has the shape it should have.
    fn take_task(&mut self, facts: &EcsFacts, source: &'static str) {
        let facts = EcsFacts {
            container_id: None,
            task_arn: facts.task_arn.clone().and_then(|v| self.checked(ECS_TASK_ARN, v, source)),
            cluster: facts.cluster.clone().and_then(|v| self.checked(ECS_CLUSTER, v, source)),
            family: facts.family.clone().and_then(|v| self.checked(ECS_TASK_FAMILY, v, source)),
            revision: facts.revision.clone().and_then(|v| self.checked(ECS_TASK_REVISION, v, source)),
            container_name: facts.container_name.clone().and_then(|v| self.checked(ECS_CONTAINER_NAME, v, source)),
            ..EcsFacts::default()
        };
        if self.wants(ECS_TASK_ARN) {
            if let Some(arn) = &facts.task_arn {
                debug!("task ARN {arn} from {source}");
                self.identity.task_arn = Some(arn.clone());
                self.identity.task_arn_source = Some(source);
            }
        }
        for (variable, value) in [
            (ECS_CLUSTER, &facts.cluster),
            (ECS_TASK_FAMILY, &facts.family),
            (ECS_TASK_REVISION, &facts.revision),
            (ECS_CONTAINER_NAME, &facts.container_name),
        ] {
            if !self.wants(variable) {
                continue;
            }
            let identity = &mut self.identity;
            let slot = match variable {
                ECS_CLUSTER => &mut identity.cluster,
                ECS_TASK_FAMILY => &mut identity.family,
                ECS_TASK_REVISION => &mut identity.revision,
                _ => &mut identity.container_name,
            };
            slot.clone_from(value);
        }
    }

    /// One read of the metadata file; an unusable file is noted once and then left alone.
    fn read_metadata_file(&mut self, path: &str) -> Option<metadata_file::MetadataFile> {
        match metadata_file::read(path) {
            Ok(file) => Some(file),
            Err(metadata_file::ReadError::Missing) => {
                self.id_notes.push(format!("ECS_CONTAINER_METADATA_FILE {path} does not exist (yet)"));
                None
            }
            Err(metadata_file::ReadError::Broken(reason)) => {
                self.metadata_file_broken = true;
                self.problems.push(format!("ECS container metadata file {path}: {reason}; ignoring it"));
                self.note_both(&format!("ECS container metadata file {path}: {reason}"));
                None
            }
        }
    }

    /// At most one warning for the whole resolution: the first problem, and how many more there were
    /// (all of them with `-v`).
    fn report_problems(&self) {
        let Some(first) = self.problems.first() else { return };
        match self.problems.len() - 1 {
            0 => warn!("{first}"),
            more => {
                warn!("{first} (and {more} more identity problem{}; -v lists them)", if more == 1 { "" } else { "s" })
            }
        }
        for problem in &self.problems[1..] {
            debug!("also: {problem}");
        }
    }

    /// With `-v`: one line per variable that will not be exported, saying why.
    fn explain_gaps(&self) {
        let identity = &self.identity;
        let set_empty = |variable: &str| format!("{variable} is set empty in the environment; left as it is");
        if identity.container_id.is_none() {
            if self.explicit.contains(&DOCKER_CONTAINER_ID) {
                debug!("{}", set_empty(DOCKER_CONTAINER_ID));
            } else {
                debug!("DOCKER_CONTAINER_ID not set: {}", self.id_notes.join("; "));
            }
        }
        if identity.task_arn.is_none() {
            if self.explicit.contains(&ECS_TASK_ARN) {
                debug!("{}", set_empty(ECS_TASK_ARN));
            } else {
                debug!("ECS_TASK_ARN not set: {}", self.task_notes.join("; "));
            }
        }
        if identity.task_id().is_none() && !self.explicit.contains(&ECS_TASK_ID) {
            debug!("ECS_TASK_ID not set: no task ARN");
        }
        for (variable, value) in [
            (ECS_CLUSTER, &identity.cluster),
            (ECS_TASK_FAMILY, &identity.family),
            (ECS_TASK_REVISION, &identity.revision),
            (ECS_CONTAINER_NAME, &identity.container_name),
        ] {
            if value.is_none() {
                if self.explicit.contains(&variable) {
                    debug!("{}", set_empty(variable));
                } else {
                    debug!("{variable} not set: no ECS source gave it");
                }
            }
        }
    }
}

fn read_text(path: &Path) -> Option<String> {
    paths::read_guarded(path, paths::MAX_PROC_FILE).ok().map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
}

/// 2 when `<sys>/fs/cgroup` is the unified hierarchy (for when /proc/self/cgroup cannot be read).
fn unified_hierarchy_version(sys_root: &Path) -> Option<u8> {
    sys_root.join("fs/cgroup/cgroup.controllers").exists().then_some(2)
}

/// Re-reads the metadata file until it is READY or the deadline comes; the agent marks it READY
/// shortly after the container starts. An unusable file is not waited for.
fn poll_metadata_file(
    path: &str,
    mut latest: Option<metadata_file::MetadataFile>,
    deadline: Instant,
    resolver: &mut Resolver,
) -> Option<metadata_file::MetadataFile> {
    loop {
        if latest.as_ref().is_some_and(|file| file.ready) {
            if latest.as_ref().is_some_and(|file| file.facts.container_id.is_none()) {
                resolver
                    .id_notes
                    .push(format!("the ECS container metadata file {path} is READY without a valid ContainerID"));
            }
            return latest;
        }
        if Instant::now() + METADATA_FILE_POLL > deadline {
            resolver
                .id_notes
                .push(format!("the ECS container metadata file {path} was not READY within the identity timeout"));
            return latest;
        }
        std::thread::sleep(METADATA_FILE_POLL);
        // Re-opened each time: the agent replaces the file by an atomic rename. A missing file may
        // still appear; an unusable one stays so and is not waited for.
        match metadata_file::read(path) {
            Ok(file) => latest = Some(file),
            Err(metadata_file::ReadError::Missing) => {}
            Err(metadata_file::ReadError::Broken(reason)) => {
                resolver.problems.push(format!("ECS container metadata file {path}: {reason}; ignoring it"));
                resolver.id_notes.push(format!("ECS container metadata file {path}: {reason}"));
                return latest;
            }
        }
    }
}

impl Identity {
    /// The ECS task ID: as the user set it, else the last component of the task ARN (the user's, if
    /// they set that).
    pub fn task_id(&self) -> Option<String> {
        match &self.explicit_task_id {
            Some(explicit) => (!explicit.is_empty()).then(|| explicit.clone()),
            None => self.task_arn.as_deref().and_then(task_id_of),
        }
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
        self.json_value().to_string()
    }

    /// [`Identity::to_json`] as a value, for adding to.
    pub fn json_value(&self) -> serde_json::Value {
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
    }
}
