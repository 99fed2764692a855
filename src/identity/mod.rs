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
use crate::environ::Environ;
use crate::{debug, paths, warn};
use container_id::{pick, Pick};
use facts::{task_id_of, EcsFacts};
use serde_json::Value;
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
const ECS_CLUSTER_ARN: &str = "ECS_CLUSTER_ARN";
const ECS_CONTAINER_ARN: &str = "ECS_CONTAINER_ARN";
const ECS_LAUNCH_TYPE: &str = "ECS_LAUNCH_TYPE";
const ECS_REGION: &str = "ECS_REGION";
const ECS_AVAILABILITY_ZONE: &str = "ECS_AVAILABILITY_ZONE";
/// Not exported (they only feed OpenTelemetry's `aws.log.*`): named as the awslogs options.
const LOG_GROUP: &str = "awslogs-group";
const LOG_STREAM: &str = "awslogs-stream";

/// The exported variables in export order: the first three have notes of their own in `-v`.
const EXPORTED: [&str; 12] = [
    DOCKER_CONTAINER_ID,
    ECS_TASK_ARN,
    ECS_TASK_ID,
    ECS_CLUSTER,
    ECS_CLUSTER_ARN,
    ECS_TASK_FAMILY,
    ECS_TASK_REVISION,
    ECS_CONTAINER_NAME,
    ECS_CONTAINER_ARN,
    ECS_LAUNCH_TYPE,
    ECS_REGION,
    ECS_AVAILABILITY_ZONE,
];

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
    /// The cluster's ARN; `cluster` is its short name (unless the user set ECS_CLUSTER otherwise).
    pub cluster_arn: Option<String>,
    pub container_arn: Option<String>,
    /// As the metadata spells it: `EC2`, `FARGATE`, `EXTERNAL`, `MANAGED_INSTANCES`.
    pub launch_type: Option<String>,
    /// The task ARN's region (or the user's ECS_REGION).
    pub region: Option<String>,
    pub availability_zone: Option<String>,
    /// The awslogs driver's CloudWatch Logs group and stream.
    pub log_group: Option<String>,
    pub log_stream: Option<String>,
    /// AWS Batch's `AWS_BATCH_JOB_ID`, `AWS_BATCH_JOB_ATTEMPT` and `AWS_BATCH_JQ_NAME`, when valid.
    pub batch_job_id: Option<String>,
    pub batch_job_attempt: Option<u64>,
    pub batch_job_queue: Option<String>,
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
pub fn resolve(config: &Config, env: &Environ, files: &paths::SelfFiles) -> Identity {
    let deadline = Instant::now() + config.identity_timeout;
    let var = |name: &str| {
        env.get(name)
            .and_then(|value| value.to_str())
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .map(str::to_string)
    };
    let mut resolver = Resolver::default();
    resolver.take_explicit(env);
    // AWS Batch's own variables: already in the workload's environment, only checked and reported.
    let batch = |name: &str| var(name).and_then(|value| resolver.checked(name, value, FROM_ENVIRONMENT));
    let (job, attempt, queue) = (batch("AWS_BATCH_JOB_ID"), batch("AWS_BATCH_JOB_ATTEMPT"), batch("AWS_BATCH_JQ_NAME"));
    resolver.identity.batch_job_id = job;
    resolver.identity.batch_job_attempt = attempt.and_then(|attempt| attempt.parse().ok());
    resolver.identity.batch_job_queue = queue;

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
    resolver.derive();
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
    fn take_explicit(&mut self, env: &Environ) {
        for name in EXPORTED {
            let Some(value) = env.get(name) else { continue };
            let value = value.to_string_lossy().into_owned();
            debug!("{name} set in the environment ({value:?}): using it as given");
            self.explicit.push(name);
            let identity = &mut self.identity;
            if name == ECS_TASK_ID {
                identity.explicit_task_id = Some(value);
                continue;
            }
            let value = (!value.is_empty()).then_some(value);
            let source = value.as_ref().map(|_| FROM_ENVIRONMENT);
            match name {
                DOCKER_CONTAINER_ID => identity.container_id_source = source,
                ECS_TASK_ARN => identity.task_arn_source = source,
                _ => {}
            }
            *identity.slot(name) = value;
        }
    }

    /// True while `variable` is neither set by the user nor resolved.
    fn wants(&mut self, variable: &str) -> bool {
        !self.explicit.contains(&variable) && self.identity.slot(variable).is_none()
    }

    fn wants_container_id(&mut self) -> bool {
        self.wants(DOCKER_CONTAINER_ID)
    }

    fn note_both(&mut self, note: &str) {
        self.id_notes.push(note.to_string());
        self.task_notes.push(note.to_string());
    }

    /// Asks one TMDS base URI; true when it gave an HTTP answer at all.
    fn ask_tmds(&mut self, base: &str, variable: &str, source: &'static str, deadline: Instant) -> bool {
        let mut notes = Vec::new();
        let answer = ecs::query_tmds(base, source == "ecs-metadata-v4", deadline, &mut notes);
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
        let facts = facts.clone();
        for (variable, value) in [
            (ECS_TASK_ARN, facts.task_arn),
            (ECS_CLUSTER, facts.cluster),
            (ECS_TASK_FAMILY, facts.family),
            (ECS_TASK_REVISION, facts.revision),
            (ECS_CONTAINER_NAME, facts.container_name),
            (ECS_CONTAINER_ARN, facts.container_arn),
            (ECS_LAUNCH_TYPE, facts.launch_type),
            (ECS_AVAILABILITY_ZONE, facts.availability_zone),
            (LOG_GROUP, facts.log_group),
            (LOG_STREAM, facts.log_stream),
        ] {
            let Some(value) = value.filter(|_| self.wants(variable)) else { continue };
            let Some(value) = self.checked(variable, value, source) else { continue };
            if variable == ECS_TASK_ARN {
                debug!("task ARN {value} from {source}");
                self.identity.task_arn_source = Some(source);
            }
            *self.identity.slot(variable) = Some(value);
        }
    }

    /// The values that follow from others, once every source is in: a cluster given as an ARN (Fargate,
    /// ECS managed instances) is split into its short name (`ECS_CLUSTER`, the same everywhere) and
    /// `ECS_CLUSTER_ARN`; a cluster given by name (EC2) gets its ARN from the task ARN's partition,
    /// region and account (`aws-cn` and `aws-us-gov` are partitions too); `ECS_REGION` is the task ARN's.
    fn derive(&mut self) {
        let task = self.identity.task_arn.clone();
        let parts = task.as_deref().and_then(|arn| validate::ecs_arn_parts(arn, "task"));
        // A cluster you set yourself becomes an ARN only if it has a cluster's shape.
        let cluster = self.identity.cluster.clone().filter(|c| validate::check(ECS_CLUSTER, c).is_ok());
        if let Some(cluster) = cluster {
            let arn = match cluster.split_once(":cluster/") {
                Some((_, name)) if cluster.starts_with("arn:") => {
                    if !self.explicit.contains(&ECS_CLUSTER) {
                        self.identity.cluster = Some(name.to_string());
                    }
                    Some(cluster)
                }
                _ => parts.map(|[partition, region, account]| {
                    format!("arn:{partition}:ecs:{region}:{account}:cluster/{cluster}")
                }),
            };
            if self.wants(ECS_CLUSTER_ARN) {
                self.identity.cluster_arn = arn;
            }
        }
        if self.wants(ECS_REGION) {
            self.identity.region = parts.map(|[_, region, _]| region.to_string());
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
        let mut copy = identity.clone();
        for variable in &EXPORTED[3..] {
            if copy.slot(variable).is_some() {
                continue;
            }
            if self.explicit.contains(variable) {
                debug!("{}", set_empty(variable));
            } else {
                let why = match *variable {
                    ECS_REGION => "no task ARN",
                    ECS_CLUSTER_ARN => "no cluster, or no task ARN to build its ARN from",
                    _ => "no ECS source gave it",
                };
                debug!("{variable} not set: {why}");
            }
        }
    }
}

fn read_text(path: &Path) -> Option<String> {
    paths::read_guarded(path, paths::MAX_PROC_FILE).ok().map(paths::into_text)
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

    /// The field behind an exported variable (or [`LOG_GROUP`] / [`LOG_STREAM`]); not `ECS_TASK_ID`,
    /// which is derived.
    fn slot(&mut self, variable: &str) -> &mut Option<String> {
        match variable {
            DOCKER_CONTAINER_ID => &mut self.container_id,
            ECS_TASK_ARN => &mut self.task_arn,
            ECS_CLUSTER => &mut self.cluster,
            ECS_CLUSTER_ARN => &mut self.cluster_arn,
            ECS_TASK_FAMILY => &mut self.family,
            ECS_TASK_REVISION => &mut self.revision,
            ECS_CONTAINER_NAME => &mut self.container_name,
            ECS_CONTAINER_ARN => &mut self.container_arn,
            ECS_LAUNCH_TYPE => &mut self.launch_type,
            ECS_REGION => &mut self.region,
            ECS_AVAILABILITY_ZONE => &mut self.availability_zone,
            LOG_GROUP => &mut self.log_group,
            LOG_STREAM => &mut self.log_stream,
            _ => unreachable!(),
        }
    }

    /// The variables to export to the workload: (name, value) for every resolved value. Never
    /// `AWS_REGION` or `AWS_DEFAULT_REGION`: those configure the workload's AWS SDKs, which is not
    /// sentinit's business.
    pub fn exports(&self) -> Vec<(String, String)> {
        let mut copy = self.clone();
        EXPORTED
            .into_iter()
            .filter_map(|name| {
                let value = if name == ECS_TASK_ID { self.task_id() } else { copy.slot(name).take() };
                Some((name.to_string(), value?))
            })
            .collect()
    }

    /// `START container=<id> task=<arn>`, and ` job=<id>` under AWS Batch; `END ...` likewise.
    pub fn line(&self, word: &str) -> String {
        let job = self.batch_job_id.as_deref().map_or(String::new(), |job| format!(" job={job}"));
        format!(
            "{word} container={} task={}{job}",
            self.container_id.as_deref().unwrap_or("unknown"),
            self.task_arn.as_deref().unwrap_or("unknown")
        )
    }

    pub fn start_line(&self) -> String {
        self.line("START")
    }

    /// The `--identity` JSON object: every value (null when unresolved) and where it came from, keys in
    /// alphabetical order. Built as text: a serde_json map per key costs more binary than it is worth.
    pub fn to_json(&self) -> String {
        let text = |value: &Option<String>| value.as_deref().map_or("null".to_string(), |v| Value::from(v).to_string());
        let source = |value: Option<&str>| text(&value.map(str::to_string));
        let number = |value: Option<u64>| value.map_or("null".to_string(), |n| n.to_string());
        let members = [
            ("availability_zone", text(&self.availability_zone)),
            ("batch_job_attempt", number(self.batch_job_attempt)),
            ("batch_job_id", text(&self.batch_job_id)),
            ("batch_job_queue", text(&self.batch_job_queue)),
            ("cgroup_version", number(self.cgroup_version.map(u64::from))),
            ("cluster", text(&self.cluster)),
            ("cluster_arn", text(&self.cluster_arn)),
            ("container_arn", text(&self.container_arn)),
            ("container_id", text(&self.container_id)),
            ("container_id_source", source(self.container_id_source)),
            ("container_name", text(&self.container_name)),
            ("family", text(&self.family)),
            ("launch_type", text(&self.launch_type)),
            ("log_group", text(&self.log_group)),
            ("log_stream", text(&self.log_stream)),
            ("region", text(&self.region)),
            ("revision", text(&self.revision)),
            ("task_arn", text(&self.task_arn)),
            ("task_arn_source", source(self.task_arn_source)),
            ("task_id", text(&self.task_id())),
        ];
        let members: Vec<String> = members.iter().map(|(key, value)| format!("\"{key}\":{value}")).collect();
        format!("{{{}}}", members.join(","))
    }

    /// [`Identity::to_json`] as a value, for adding to (`--identity` adds the limits).
    pub fn json_value(&self) -> serde_json::Value {
        serde_json::from_str(&self.to_json()).unwrap_or_default()
    }
}
