//! OpenTelemetry resource attributes through the real binary, read back by a real OpenTelemetry SDK
//! (Python `opentelemetry-sdk`, installed by `.ci/run`) running as the workload. The ECS agent is the
//! tests' own loopback server; only 127.0.0.1 is contacted.

mod common;
mod identity_support;

use identity_support::{fixture, ok, run, FakeAgent, Reply};
use serde_json::{json, Map, Value};
use std::process::Command;

const FARGATE_TASK_ID: &str = "e40860c2b55a4200b03c3197f6c59714";
const FARGATE_ID: &str = "e40860c2b55a4200b03c3197f6c59714-2886439692";
const TASK: &str = "arn:aws:ecs:us-east-1:111122223333:task/batch/e40860c2b55a4200b03c3197f6c59714";
const CLUSTER: &str = "arn:aws:ecs:us-east-1:111122223333:cluster/batch";
const CONTAINER_ARN: &str = "arn:aws:ecs:us-east-1:111122223333:container/batch/e40860c2b55a4200b03c3197f6c59714/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b";
/// A stream prefix with every character the variable's syntax reserves.
const STREAM: &str = "my prefix,v=2 100%/worker/e40860c2b55a4200b03c3197f6c59714";
const PRINT_RESOURCE: &str = "from opentelemetry.sdk.resources import Resource; import json; print(json.dumps(dict(Resource.create().attributes)))";

/// The Python interpreter that has the SDK, by absolute path (the tests' environment has no HOME for
/// a pyenv shim); `None`, after `common::require`, when there is none.
fn python_with_sdk() -> Option<String> {
    let found = Command::new("python3")
        .args(["-c", "import sys, opentelemetry.sdk.resources; print(sys.executable)"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string());
    if !common::require(found.is_some(), "python3 with opentelemetry-sdk (pip install opentelemetry-sdk)") {
        return None;
    }
    found
}

/// A Fargate agent: container document with its labels and awslogs options, and the task document.
fn fargate_agent() -> FakeAgent {
    let container = json!({
        "DockerId": FARGATE_ID, "Name": "worker", "DockerName": "worker", "Image": "busybox", "ImageID": "sha256:6d3e",
        "Labels": {"com.amazonaws.ecs.cluster": CLUSTER, "com.amazonaws.ecs.container-name": "worker",
            "com.amazonaws.ecs.task-arn": TASK, "com.amazonaws.ecs.task-definition-family": "batch-job",
            "com.amazonaws.ecs.task-definition-version": "7"},
        "DesiredStatus": "RUNNING", "KnownStatus": "RUNNING", "Limits": {"CPU": 2}, "Type": "NORMAL",
        "LogDriver": "awslogs",
        "LogOptions": {"awslogs-group": "/ecs/batch-job", "awslogs-region": "us-east-1", "awslogs-stream": STREAM},
        "ContainerARN": CONTAINER_ARN,
    })
    .to_string();
    let task = json!({
        "Cluster": CLUSTER, "TaskARN": TASK, "Family": "batch-job", "Revision": "7", "KnownStatus": "RUNNING",
        "AvailabilityZone": "us-east-1a", "LaunchType": "FARGATE",
    })
    .to_string();
    FakeAgent::start(move |path, _| match path {
        p if p == format!("/v4/{FARGATE_ID}") => ok(&container),
        p if p == format!("/v4/{FARGATE_ID}/task") => ok(&task),
        _ => Reply::Status(404, "\"unknown\"".to_string()),
    })
}

/// What the SDK made of the environment, without its own `telemetry.sdk.*` and `service.*` keys.
fn resource(python: &str, args: &[&str], env: &[(&str, &str)]) -> Map<String, Value> {
    let mut argv = args.to_vec();
    argv.extend(["--", python, "-c", PRINT_RESOURCE]);
    let run = run(&argv, env);
    assert_eq!(run.output.status.code(), Some(0), "{}", run.stderr());
    let all: Map<String, Value> = serde_json::from_str(run.stdout().trim()).expect("the SDK's JSON");
    all.into_iter().filter(|(k, _)| !k.starts_with("telemetry.sdk.") && !k.starts_with("service.")).collect()
}

/// The workload's `OTEL_RESOURCE_ATTRIBUTES` entries (raw lines of `env`), in order.
fn raw_entries(args: &[&str], env: &[(&str, &str)]) -> (Vec<String>, String) {
    let mut argv = args.to_vec();
    argv.extend(["--", "env"]);
    let run = run(&argv, env);
    assert_eq!(run.output.status.code(), Some(0), "{}", run.stderr());
    (run.stdout().lines().map(str::to_string).collect(), run.stderr())
}

#[test]
fn fargate_attributes_are_read_back_exactly_by_the_sdk() {
    let Some(python) = python_with_sdk() else { return };
    let agent = fargate_agent();
    let uri = format!("{}/v4/{FARGATE_ID}", agent.url);
    let root = fixture("host-login-session");
    let env = [("SENTINIT_PROC_ROOT", root.as_str()), ("ECS_CONTAINER_METADATA_URI_V4", uri.as_str())];
    let expected = json!({
        "container.id": FARGATE_ID, "container.name": "worker",
        "cloud.provider": "aws", "cloud.platform": "aws_ecs", "cloud.region": "us-east-1",
        "cloud.account.id": "111122223333", "cloud.availability_zone": "us-east-1a", "cloud.resource_id": CONTAINER_ARN,
        "aws.ecs.cluster.arn": CLUSTER, "aws.ecs.container.arn": CONTAINER_ARN, "aws.ecs.launchtype": "fargate",
        "aws.ecs.task.arn": TASK, "aws.ecs.task.id": FARGATE_TASK_ID, "aws.ecs.task.family": "batch-job",
        "aws.ecs.task.revision": "7", "aws.log.group.names": "/ecs/batch-job", "aws.log.stream.names": STREAM,
    });
    assert_eq!(Value::Object(resource(&python, &[], &env)), expected);
}

#[test]
fn the_users_keys_win_and_their_entry_keeps_its_place() {
    let Some(python) = python_with_sdk() else { return };
    let agent = fargate_agent();
    let uri = format!("{}/v4/{FARGATE_ID}", agent.url);
    let root = fixture("host-login-session");
    let users = " container.id = mine ,deployment.environment=prod%2Ceu%3D1,cloud.region=";
    let env = [
        ("SENTINIT_PROC_ROOT", root.as_str()),
        ("ECS_CONTAINER_METADATA_URI_V4", uri.as_str()),
        ("OTEL_RESOURCE_ATTRIBUTES", users),
        // The user's container name, with every reserved character, is escaped and read back exactly.
        ("ECS_CONTAINER_NAME", "my app,v=2 100%"),
    ];
    let attributes = resource(&python, &[], &env);
    assert_eq!(attributes["container.id"], "mine");
    assert_eq!(attributes["deployment.environment"], "prod,eu=1");
    assert_eq!(attributes["cloud.region"], "", "an empty value the user set is theirs too");
    assert_eq!(attributes["container.name"], "my app,v=2 100%");
    assert_eq!(attributes["aws.ecs.task.arn"], TASK);

    // In the raw environment: one entry, the user's text first, where the user's entry stood (the
    // test's Command passes variables sorted by name: after ECS_*, before PATH and SENTINIT_*).
    let (lines, _) = raw_entries(&[], &env);
    let at: Vec<usize> =
        lines.iter().enumerate().filter(|(_, l)| l.starts_with("OTEL_RESOURCE_ATTRIBUTES=")).map(|(i, _)| i).collect();
    assert_eq!(at.len(), 1, "{lines:?}");
    assert!(lines[at[0]].starts_with(&format!("OTEL_RESOURCE_ATTRIBUTES={users},")), "{lines:?}");
    assert!(lines[at[0]].contains(",container.name=my%20app%2Cv%3D2%20100%25,"), "{lines:?}");
    let path = lines.iter().position(|l| l.starts_with("PATH=")).unwrap();
    assert!(at[0] < path, "{lines:?}");
}

#[test]
fn outside_ecs_only_the_container_id() {
    let Some(python) = python_with_sdk() else { return };
    let root = fixture("docker-v1-cgroupfs");
    let attributes = resource(&python, &[], &[("SENTINIT_PROC_ROOT", root.as_str())]);
    assert_eq!(attributes.keys().collect::<Vec<_>>(), ["container.id"], "{attributes:?}");
    assert_eq!(attributes["container.id"].as_str().map(str::len), Some(64));
}

#[test]
fn a_malformed_value_is_left_untouched_and_nothing_is_added() {
    let root = fixture("docker-v1-cgroupfs");
    for malformed in ["a=%zz,b=1", "a=1,justakey", "a=100%", "k=%4"] {
        let env = [("SENTINIT_PROC_ROOT", root.as_str()), ("OTEL_RESOURCE_ATTRIBUTES", malformed)];
        let (lines, stderr) = raw_entries(&["-v"], &env);
        let entries: Vec<&String> = lines.iter().filter(|l| l.starts_with("OTEL_RESOURCE_ATTRIBUTES=")).collect();
        assert_eq!(entries, [&format!("OTEL_RESOURCE_ATTRIBUTES={malformed}")], "{malformed}");
        assert!(stderr.contains("OTEL_RESOURCE_ATTRIBUTES left as it is, nothing added"), "{stderr}");
    }
}

#[test]
fn off_by_flag_or_variable() {
    let root = fixture("docker-v1-cgroupfs");
    for (args, extra) in [(&["--otel", "off"][..], None), (&[][..], Some(("SENTINIT_OTEL", "0")))] {
        for users in [None, Some("service.name=x")] {
            let mut env = vec![("SENTINIT_PROC_ROOT", root.as_str())];
            env.extend(extra);
            env.extend(users.map(|u| ("OTEL_RESOURCE_ATTRIBUTES", u)));
            let (lines, _) = raw_entries(args, &env);
            let entries: Vec<&String> = lines.iter().filter(|l| l.starts_with("OTEL_RESOURCE_ATTRIBUTES=")).collect();
            let expected: Vec<String> = users.map(|u| format!("OTEL_RESOURCE_ATTRIBUTES={u}")).into_iter().collect();
            assert_eq!(entries, expected.iter().collect::<Vec<_>>(), "{args:?} {extra:?}");
        }
    }
    // On by default, and nothing at all when nothing is known.
    let (lines, _) = raw_entries(&[], &[("SENTINIT_PROC_ROOT", root.as_str())]);
    assert!(lines.iter().any(|l| l.starts_with("OTEL_RESOURCE_ATTRIBUTES=container.id=")), "{lines:?}");
    let host = fixture("host-login-session");
    let (lines, _) = raw_entries(&[], &[("SENTINIT_PROC_ROOT", host.as_str())]);
    assert!(!lines.iter().any(|l| l.starts_with("OTEL_RESOURCE_ATTRIBUTES")), "{lines:?}");
}
