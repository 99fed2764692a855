//! The ECS agent's HTTP endpoints: the task metadata endpoint (TMDS v4, v3 as a fallback) and, only
//! when asked for, the EC2 agent's introspection API.
//!
//! One call to the TMDS container document usually gives everything: `DockerId`, `Name`, and the
//! Docker labels the agent sets (`com.amazonaws.ecs.task-arn`, cluster, family, version). The task
//! document is fetched only when a label is missing. The introspection API is looked up by Docker ID
//! and only with a full 64-hex ID: 12 characters or fewer make it do a prefix search, which can answer
//! with another task's ARN.

use super::container_id::{is_container_id, is_full_docker_id};
use super::facts::{cpu_millis, text, EcsFacts};
use crate::http::{self, FetchError};
use serde_json::Value;
use std::time::Instant;

/// Docker labels the ECS agent puts on every container it creates.
const LABEL_TASK_ARN: &str = "com.amazonaws.ecs.task-arn";
const LABEL_CLUSTER: &str = "com.amazonaws.ecs.cluster";
const LABEL_CONTAINER_NAME: &str = "com.amazonaws.ecs.container-name";
const LABEL_FAMILY: &str = "com.amazonaws.ecs.task-definition-family";
const LABEL_REVISION: &str = "com.amazonaws.ecs.task-definition-version";

/// The share of the budget the task document gets when it is asked only for the launch type and
/// availability zone (the labels gave the task): those are worth a request, not the workload's start.
const TASK_DETAILS_BUDGET: std::time::Duration = std::time::Duration::from_millis(500);

/// What one TMDS base URI said.
pub struct TmdsAnswer {
    pub facts: EcsFacts,
    /// False when the container document got no HTTP response at all (refused, timed out, reset,
    /// not HTTP): only then is the other TMDS version worth asking.
    pub answered: bool,
}

/// Asks a TMDS base URI (`ECS_CONTAINER_METADATA_URI_V4` or `ECS_CONTAINER_METADATA_URI`) for this
/// container and, if the labels did not say it all, its task. `details` (v4) asks for the task document
/// even when the labels said everything: only it has the launch type, the availability zone and the
/// task's CPU limit (Fargate's hard cap; on EC2 the task's cgroup, which the container cannot see).
/// `notes` collects why something is missing.
pub fn query_tmds(base: &str, details: bool, deadline: Instant, notes: &mut Vec<String>) -> TmdsAnswer {
    let base = base.trim_end_matches('/');
    let source = if details { "ecs-metadata-v4" } else { "ecs-metadata-v3" };
    let mut facts = EcsFacts::default();
    match fetch_json(base, deadline) {
        Ok(document) => {
            facts = parse_tmds_container(&document);
            facts.drop_invalid(source);
        }
        Err(failure) => {
            notes.push(format!("{base}: {}", failure.reason));
            // Nothing answered at all: the task document lives on the same server.
            if !failure.server_answered {
                return TmdsAnswer { facts, answered: false };
            }
        }
    }
    if !facts.task_complete() || (details && facts.launch_type.is_none()) {
        let url = format!("{base}/task");
        let deadline =
            if facts.task_complete() { deadline.min(Instant::now() + TASK_DETAILS_BUDGET) } else { deadline };
        match fetch_json(&url, deadline) {
            Ok(document) => {
                let mut task = parse_tmds_task(&document);
                task.drop_invalid(source);
                facts.fill_from(&task);
            }
            // Only details were missing: not worth a warning.
            Err(failure) if facts.task_complete() => crate::debug!("{url}: {}", failure.reason),
            Err(failure) => notes.push(format!("{url}: {}", failure.reason)),
        }
    }
    TmdsAnswer { facts, answered: true }
}

/// Asks the introspection API at `agent` which task the container `docker_id` belongs to, and the
/// agent which cluster it serves when the task answer leaves that open.
pub fn query_introspection(agent: &str, docker_id: &str, deadline: Instant, notes: &mut Vec<String>) -> EcsFacts {
    if !is_full_docker_id(docker_id) {
        notes.push(format!(
            "the ECS agent introspection API is only asked with a full 64-hex container ID, not '{docker_id}'"
        ));
        return EcsFacts::default();
    }
    let agent = agent.trim_end_matches('/');
    let url = format!("{agent}/v1/tasks?dockerid={docker_id}");
    let mut facts = match fetch_json(&url, deadline) {
        Ok(document) => match parse_introspection_task(&document, docker_id) {
            Some(facts) => facts,
            None => {
                notes.push(format!("{url}: the agent answered without a task (empty error body)"));
                return EcsFacts::default();
            }
        },
        Err(failure) => {
            notes.push(format!("{url}: {}", failure.reason));
            return EcsFacts::default();
        }
    };
    facts.container_id = Some(docker_id.to_string());
    if facts.cluster.is_none() {
        let url = format!("{agent}/v1/metadata");
        match fetch_json(&url, deadline) {
            Ok(document) => facts.cluster = text(&document, "Cluster"),
            Err(failure) => notes.push(format!("{url}: {}", failure.reason)),
        }
    }
    facts
}

/// The TMDS container document (v3 and v4 share these fields).
pub fn parse_tmds_container(document: &Value) -> EcsFacts {
    let labels = document.get("Labels").cloned().unwrap_or(Value::Null);
    EcsFacts {
        container_id: text(document, "DockerId").filter(|id| is_container_id(id)),
        task_arn: text(&labels, LABEL_TASK_ARN),
        cluster: text(&labels, LABEL_CLUSTER),
        family: text(&labels, LABEL_FAMILY),
        revision: text(&labels, LABEL_REVISION),
        container_name: text(document, "Name").or_else(|| text(&labels, LABEL_CONTAINER_NAME)),
        container_arn: text(document, "ContainerARN"),
        container_cpu_millis: cpu_millis(document, (1000, 1024)),
        ..awslogs(document)
    }
}

/// The CloudWatch Logs group and stream of a container document whose `LogDriver` is `awslogs`.
fn awslogs(document: &Value) -> EcsFacts {
    if text(document, "LogDriver").as_deref() != Some("awslogs") {
        return EcsFacts::default();
    }
    let options = document.get("LogOptions").unwrap_or(&Value::Null);
    EcsFacts {
        log_group: text(options, "awslogs-group"),
        log_stream: text(options, "awslogs-stream"),
        ..EcsFacts::default()
    }
}

/// The TMDS task document. On Fargate and ECS managed instances `Cluster` is the cluster's ARN, on EC2
/// its short name; it is passed on as given (the resolver splits an ARN into name and ARN).
pub fn parse_tmds_task(document: &Value) -> EcsFacts {
    EcsFacts {
        task_arn: text(document, "TaskARN"),
        cluster: text(document, "Cluster"),
        family: text(document, "Family"),
        revision: text(document, "Revision"),
        launch_type: text(document, "LaunchType"),
        availability_zone: text(document, "AvailabilityZone"),
        task_cpu_millis: cpu_millis(document, (1000, 1)),
        ..EcsFacts::default()
    }
}

/// An introspection `TaskResponse`, the container name from its `Containers[]` entry with the
/// `DockerId` asked for; `None` for the agent's error body, the zero struct `{"Arn":"","KnownStatus":"",…}`.
pub fn parse_introspection_task(document: &Value, docker_id: &str) -> Option<EcsFacts> {
    let arn = text(document, "Arn")?;
    let containers = document.get("Containers").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    let container = containers.iter().find(|c| text(c, "DockerId").as_deref() == Some(docker_id));
    Some(EcsFacts {
        task_arn: Some(arn),
        family: text(document, "Family"),
        revision: text(document, "Version"),
        container_name: container.and_then(|c| text(c, "Name")),
        ..EcsFacts::default()
    })
}

/// Why a document could not be had.
struct Failure {
    reason: String,
    /// False when no HTTP response came at all (refused, timed out, reset).
    server_answered: bool,
}

/// GETs `url` and parses a JSON object, or says why not (the resolver sums all that up in one warning).
fn fetch_json(url: &str, deadline: Instant) -> Result<Value, Failure> {
    let response = http::get(url, deadline)
        .map_err(|e| Failure { server_answered: matches!(e, FetchError::TooLarge), reason: e.to_string() })?;
    let answered = |reason: String| Failure { reason, server_answered: true };
    if response.status != 200 {
        return Err(answered(describe_status(response.status, &response.body)));
    }
    match serde_json::from_slice::<Value>(&response.body) {
        Ok(value) if value.is_object() => Ok(value),
        Ok(_) => Err(answered("unexpected JSON (not an object); ignoring it".to_string())),
        Err(e) => Err(answered(format!("malformed JSON ({e}); ignoring it"))),
    }
}

/// An error status with what the ECS agent means by it and the start of its body (the EC2 agent
/// answers with a JSON string naming the problem).
fn describe_status(status: u16, body: &[u8]) -> String {
    let meaning = match status {
        400 => " (ambiguous: the ID matches several containers)",
        404 => " (unknown to the agent)",
        429 => " (rate-limited)",
        500..=599 => " (agent error)",
        _ => "",
    };
    let snippet: String = String::from_utf8_lossy(body).chars().take(160).filter(|c| !c.is_control()).collect();
    if snippet.trim().is_empty() {
        format!("HTTP {status}{meaning}")
    } else {
        format!("HTTP {status}{meaning}: {}", snippet.trim())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ID: &str = "9b3ff0c1d6f8f5bd1d20b4c2b37e5a4f6a7c8d9e0f1a2b3c4d5e6f708192a3b4";
    const ARN: &str = "arn:aws:ecs:us-west-2:111122223333:task/prod/4d1f6c0b2a9e4e7f8a3b5c6d7e8f9a0b";

    #[test]
    fn container_document_with_labels_is_complete() {
        let document = json!({
            "DockerId": ID, "Name": "app", "DockerName": "ecs-web-42-app-b4e2d6f8a0c2e4f6a801",
            "Labels": {
                "com.amazonaws.ecs.cluster": "prod", "com.amazonaws.ecs.container-name": "app",
                "com.amazonaws.ecs.task-arn": ARN, "com.amazonaws.ecs.task-definition-family": "web",
                "com.amazonaws.ecs.task-definition-version": "42"
            }
        });
        let facts = parse_tmds_container(&document);
        assert!(facts.task_complete());
        assert_eq!(facts.container_id.as_deref(), Some(ID));
        assert_eq!(facts.task_arn.as_deref(), Some(ARN));
        assert_eq!(facts.revision.as_deref(), Some("42"));
    }

    #[test]
    fn awslogs_only_for_the_awslogs_driver() {
        let options =
            json!({"awslogs-group": "/ecs/web", "awslogs-stream": "ecs/app/4d1f", "awslogs-region": "us-west-2"});
        let facts = parse_tmds_container(&json!({"LogDriver": "awslogs", "LogOptions": options}));
        assert_eq!((facts.log_group.as_deref(), facts.log_stream.as_deref()), (Some("/ecs/web"), Some("ecs/app/4d1f")));
        let facts = parse_tmds_container(&json!({"LogDriver": "fluentd", "LogOptions": options}));
        assert_eq!((facts.log_group, facts.log_stream), (None, None));
    }

    #[test]
    fn not_yet_created_container_has_no_id() {
        let facts = parse_tmds_container(&json!({"DockerId": "", "Name": "app"}));
        assert_eq!(facts.container_id, None);
        assert_eq!(facts.container_name.as_deref(), Some("app"));
        assert!(!facts.task_complete());
    }

    #[test]
    fn task_document() {
        let facts = parse_tmds_task(
            &json!({"Cluster": "arn:aws:ecs:us-west-2:111122223333:cluster/prod", "TaskARN": ARN, "Family": "web", "Revision": "42"}),
        );
        assert!(facts.task_complete());
        assert_eq!(facts.cluster.as_deref(), Some("arn:aws:ecs:us-west-2:111122223333:cluster/prod"));
    }

    #[test]
    fn introspection_error_body_is_no_task() {
        let empty = json!({"Arn":"","KnownStatus":"","Family":"","Version":"","Containers":null});
        assert_eq!(parse_introspection_task(&empty, ID), None);
        let facts = parse_introspection_task(&json!({"Arn": ARN, "Family": "web", "Version": "42"}), ID).unwrap();
        assert_eq!(facts.task_arn.as_deref(), Some(ARN));
        assert_eq!(facts.revision.as_deref(), Some("42"));
        assert_eq!(facts.container_name, None);
        let task =
            json!({"Arn": ARN, "Containers": [{"DockerId": "", "Name": "sidecar"}, {"DockerId": ID, "Name": "app"}]});
        assert_eq!(parse_introspection_task(&task, ID).unwrap().container_name.as_deref(), Some("app"));
    }

    #[test]
    fn status_descriptions_name_the_meaning() {
        assert!(describe_status(404, b"\"V4 container metadata handler: unknown\"").contains("unknown to the agent"));
        assert!(describe_status(400, b"{}").contains("ambiguous"));
        assert_eq!(describe_status(503, b""), "HTTP 503 (agent error)");
    }
}
