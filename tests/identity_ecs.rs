//! Identity from the ECS agent's HTTP endpoints, against a loopback server of the tests' own that
//! serves what the agent serves (TMDS v4/v3 for EC2 and Fargate, the introspection API) and misbehaves
//! on request. Every URL handed to sentinit points at 127.0.0.1.

mod identity_support;

use identity_support::{fixture, identity, ok, scratch_dir, workload, FakeAgent, RefusedPort, Reply};
use serde_json::Value;
use std::time::Duration;

const EC2_ID: &str = "0a4f1c2e9b8d7c6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e";
const EC2_TASK: &str = "arn:aws:ecs:us-west-2:111122223333:task/prod/4d1f6c0b2a9e4e7f8a3b5c6d7e8f9a0b";
const FARGATE_TASK_ID: &str = "e40860c2b55a4200b03c3197f6c59714";
const FARGATE_ID: &str = "e40860c2b55a4200b03c3197f6c59714-2886439692";
const FARGATE_TASK: &str = "arn:aws:ecs:us-east-1:111122223333:task/batch/e40860c2b55a4200b03c3197f6c59714";
const FARGATE_CLUSTER: &str = "arn:aws:ecs:us-east-1:111122223333:cluster/batch";
/// The container ID in the `ecs-ec2-v1-bridge` fixture's cgroup paths.
const FIXTURE_ID: &str = "e29e9af042db8caad4f6e852fd2d1c360e6e192108eb3720c3506e506bc051da";

/// A v4 container document as the EC2 agent serves it (bridge mode), labels included.
fn ec2_v4_container(docker_id: &str) -> String {
    format!(
        r#"{{"DockerId":"{docker_id}","Name":"app","DockerName":"ecs-web-42-app-b4e2d6f8a0c2e4f6a801",
"Image":"111122223333.dkr.ecr.us-west-2.amazonaws.com/web:1.8.3","ImageID":"sha256:9f2c7d1e0b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1f0e",
"Ports":[{{"ContainerPort":8080,"Protocol":"tcp","HostPort":32768,"HostIp":"0.0.0.0"}}],
"Labels":{{"com.amazonaws.ecs.cluster":"prod","com.amazonaws.ecs.container-name":"app","com.amazonaws.ecs.task-arn":"{EC2_TASK}","com.amazonaws.ecs.task-definition-family":"web","com.amazonaws.ecs.task-definition-version":"42"}},
"DesiredStatus":"RUNNING","KnownStatus":"RUNNING","Limits":{{"CPU":256,"Memory":512}},
"CreatedAt":"2024-05-14T09:12:03.118250457Z","StartedAt":"2024-05-14T09:12:03.602337121Z","Type":"NORMAL",
"LogDriver":"awslogs","LogOptions":{{"awslogs-group":"/ecs/web","awslogs-region":"us-west-2","awslogs-stream":"ecs/app/4d1f6c0b2a9e4e7f8a3b5c6d7e8f9a0b"}},
"ContainerARN":"arn:aws:ecs:us-west-2:111122223333:container/prod/4d1f6c0b2a9e4e7f8a3b5c6d7e8f9a0b/7a1e2f3d-4c5b-6a79-8e0d-1f2a3b4c5d6e",
"Networks":[{{"NetworkMode":"bridge","IPv4Addresses":["172.17.0.3"]}}]}}"#
    )
}

/// A v4 container document as Fargate serves it, without labels (so the task document is needed).
fn fargate_v4_container() -> String {
    format!(
        r#"{{"DockerId":"{FARGATE_ID}","Name":"worker","DockerName":"worker",
"Image":"public.ecr.aws/docker/library/busybox:latest","ImageID":"sha256:6d3e4188a38af91b0c1577b9e88c53368926b2fe0e1fb985d6e8a70040520c4d",
"DesiredStatus":"RUNNING","KnownStatus":"RUNNING","Limits":{{"CPU":2}},"CreatedAt":"2024-03-01T10:00:00.000Z","StartedAt":"2024-03-01T10:00:01.000Z",
"Type":"NORMAL","ContainerARN":"arn:aws:ecs:us-east-1:111122223333:container/batch/{FARGATE_TASK_ID}/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b",
"Networks":[{{"NetworkMode":"awsvpc","IPv4Addresses":["10.0.2.106"],"AttachmentIndex":0,"MACAddress":"0e:9e:32:c7:48:85","IPv4SubnetCIDRBlock":"10.0.2.0/24","PrivateDNSName":"ip-10-0-2-106.ec2.internal","SubnetGatewayIpv4Address":"10.0.2.1/24"}}]}}"#
    )
}

/// A v4 task document as Fargate serves it: the cluster is an ARN there.
fn fargate_v4_task() -> String {
    format!(
        r#"{{"Cluster":"{FARGATE_CLUSTER}","TaskARN":"{FARGATE_TASK}","Family":"batch-job","Revision":"7",
"DesiredStatus":"RUNNING","KnownStatus":"RUNNING","Limits":{{"CPU":0.25,"Memory":512}},
"PullStartedAt":"2024-03-01T09:59:50.000Z","PullStoppedAt":"2024-03-01T09:59:58.000Z","AvailabilityZone":"us-east-1a","LaunchType":"FARGATE",
"Containers":[{{"DockerId":"{FARGATE_ID}","Name":"worker","DockerName":"worker","Image":"busybox","ImageID":"sha256:6d3e","DesiredStatus":"RUNNING","KnownStatus":"RUNNING","Type":"NORMAL"}}],
"ClockDrift":{{"ClockErrorBound":0.5,"ReferenceTimestamp":"2024-03-01T10:00:00Z","ClockSynchronizationStatus":"SYNCHRONIZED"}},
"EphemeralStorageMetrics":{{"Utilized":261,"Reserved":20496}}}}"#
    )
}

const EC2_CONTAINER_ARN: &str =
    "arn:aws:ecs:us-west-2:111122223333:container/prod/4d1f6c0b2a9e4e7f8a3b5c6d7e8f9a0b/7a1e2f3d-4c5b-6a79-8e0d-1f2a3b4c5d6e";

/// A v4 task document as the EC2 agent serves it for a bridge task (short cluster name, agent 1.45+:
/// `LaunchType`; 1.63+: `ServiceName`, `VPCID`).
fn ec2_v4_task() -> String {
    format!(
        r#"{{"Cluster":"prod","TaskARN":"{EC2_TASK}","Family":"web","Revision":"42","DesiredStatus":"RUNNING","KnownStatus":"RUNNING",
"Containers":[{{"DockerId":"{EC2_ID}","Name":"app","DockerName":"ecs-web-42-app-b4e2d6f8a0c2e4f6a801","Image":"web:1.8.3","ImageID":"sha256:9f2c","DesiredStatus":"RUNNING","KnownStatus":"RUNNING","Limits":{{"CPU":256,"Memory":512}},"Type":"NORMAL","Networks":[{{"NetworkMode":"bridge","IPv4Addresses":["172.17.0.3"]}}]}}],
"Limits":{{"CPU":0.5,"Memory":1024}},"PullStartedAt":"2024-05-14T09:11:58.1Z","PullStoppedAt":"2024-05-14T09:12:02.9Z","AvailabilityZone":"us-west-2a",
"LaunchType":"EC2","ServiceName":"web-svc","VPCID":"vpc-0a1b2c3d4e5f60718","FaultInjectionEnabled":false}}"#
    )
}

/// A v3 task document as the EC2 agent serves it (short cluster name).
fn ec2_v3_task() -> String {
    format!(
        r#"{{"Cluster":"prod","TaskARN":"{EC2_TASK}","Family":"web","Revision":"42","DesiredStatus":"RUNNING","KnownStatus":"RUNNING",
"Containers":[{{"DockerId":"{EC2_ID}","Name":"app","DockerName":"ecs-web-42-app-b4e2d6f8a0c2e4f6a801","Image":"web:1.8.3","ImageID":"sha256:9f2c","Labels":{{}},"DesiredStatus":"RUNNING","KnownStatus":"RUNNING","Type":"NORMAL"}}],
"PullStartedAt":"2024-05-14T09:11:58.1Z","PullStoppedAt":"2024-05-14T09:12:02.9Z","AvailabilityZone":"us-west-2a"}}"#
    )
}

fn introspection_task(docker_id: &str) -> String {
    format!(
        r#"{{"Arn":"{EC2_TASK}","DesiredStatus":"RUNNING","KnownStatus":"RUNNING","Family":"web","Version":"42",
"Containers":[{{"DockerId":"{docker_id}","DockerName":"ecs-web-42-app-b4e2d6f8a0c2e4f6a801","Name":"app","Image":"web:1.8.3","ImageID":"sha256:9f2c",
"CreatedAt":"2024-05-14T09:12:03.118250457Z","StartedAt":"2024-05-14T09:12:03.602337121Z","Ports":[{{"ContainerPort":8080,"Protocol":"tcp","HostPort":32768}}]}}]}}"#
    )
}

const INTROSPECTION_ERROR_BODY: &str = r#"{"Arn":"","KnownStatus":"","Family":"","Version":"","Containers":null}"#;
const ENDPOINT: &str = "/v4/7d1a2b3c-4e5f-6a7b-8c9d-0e1f2a3b4c5d";

fn not_found() -> Reply {
    Reply::Status(404, "\"V4 container metadata handler: unable to get container ID from request\"".to_string())
}

fn env_of(pairs: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    pairs.to_vec()
}

fn as_env<'a>(pairs: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    pairs.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[test]
fn ec2_bridge_v4_labels_give_the_task_and_the_task_document_the_rest() {
    let agent = FakeAgent::start(|path, _| match path {
        ENDPOINT => ok(&ec2_v4_container(EC2_ID)),
        p if p == format!("{ENDPOINT}/task") => ok(&ec2_v4_task()),
        _ => not_found(),
    });
    // The fixture's bind mounts name the pause container; TMDS is trusted above them.
    let env = env_of(&[
        ("SENTINIT_PROC_ROOT", fixture("ecs-al2023-v2-awsvpc")),
        ("ECS_CONTAINER_METADATA_URI_V4", format!("{}{ENDPOINT}", agent.url)),
    ]);
    let json = identity(&[], &as_env(&env)).json();
    assert_eq!(json["container_id"], EC2_ID, "{json}");
    assert_eq!(json["container_id_source"], "ecs-metadata-v4");
    assert_eq!(json["task_arn"], EC2_TASK);
    assert_eq!(json["task_arn_source"], "ecs-metadata-v4");
    assert_eq!(json["task_id"], "4d1f6c0b2a9e4e7f8a3b5c6d7e8f9a0b");
    assert_eq!(json["cluster"], "prod");
    assert_eq!(json["family"], "web");
    assert_eq!(json["revision"], "42");
    assert_eq!(json["container_name"], "app");
    // EC2 names the cluster; its ARN is built from the task ARN's partition, region and account.
    assert_eq!(json["cluster_arn"], "arn:aws:ecs:us-west-2:111122223333:cluster/prod");
    assert_eq!(json["launch_type"], "EC2");
    assert_eq!(json["region"], "us-west-2");
    assert_eq!(json["availability_zone"], "us-west-2a");
    assert_eq!(json["container_arn"], EC2_CONTAINER_ARN);
    assert_eq!(json["log_group"], "/ecs/web");
    assert_eq!(json["log_stream"], "ecs/app/4d1f6c0b2a9e4e7f8a3b5c6d7e8f9a0b");
    // The labels gave the task; the task document only the launch type and availability zone.
    assert_eq!(agent.requests(), vec![ENDPOINT.to_string(), format!("{ENDPOINT}/task")]);

    let run = workload(&[], &as_env(&env));
    let vars = run.workload_env();
    for (name, value) in [
        ("DOCKER_CONTAINER_ID", EC2_ID),
        ("ECS_TASK_ARN", EC2_TASK),
        ("ECS_TASK_ID", "4d1f6c0b2a9e4e7f8a3b5c6d7e8f9a0b"),
        ("ECS_CLUSTER", "prod"),
        ("ECS_TASK_FAMILY", "web"),
        ("ECS_TASK_REVISION", "42"),
        ("ECS_CONTAINER_NAME", "app"),
        ("ECS_CLUSTER_ARN", "arn:aws:ecs:us-west-2:111122223333:cluster/prod"),
        ("ECS_LAUNCH_TYPE", "EC2"),
        ("ECS_REGION", "us-west-2"),
        ("ECS_AVAILABILITY_ZONE", "us-west-2a"),
        ("ECS_CONTAINER_ARN", EC2_CONTAINER_ARN),
    ] {
        assert_eq!(vars.get(name).map(String::as_str), Some(value), "{name}");
    }
    assert!(!vars.contains_key("AWS_REGION") && !vars.contains_key("AWS_DEFAULT_REGION"), "{vars:?}");
    assert!(run.stderr().contains(&format!("START container={EC2_ID} task={EC2_TASK}")), "{}", run.stderr());
}

#[test]
fn fargate_v4_without_labels_asks_for_the_task() {
    let agent = FakeAgent::start(|path, _| match path {
        p if p == format!("/v4/{FARGATE_ID}") => ok(&fargate_v4_container()),
        p if p == format!("/v4/{FARGATE_ID}/task") => ok(&fargate_v4_task()),
        _ => not_found(),
    });
    let env = env_of(&[
        ("SENTINIT_PROC_ROOT", fixture("host-login-session")),
        ("ECS_CONTAINER_METADATA_URI_V4", format!("{}/v4/{FARGATE_ID}", agent.url)),
    ]);
    let json = identity(&[], &as_env(&env)).json();
    assert_eq!(json["container_id"], FARGATE_ID, "{json}");
    assert_eq!(json["container_id_source"], "ecs-metadata-v4");
    assert_eq!(json["task_arn"], FARGATE_TASK);
    assert_eq!(json["task_id"], FARGATE_TASK_ID);
    assert_eq!(json["cluster"], "batch", "the short name everywhere");
    assert_eq!(json["cluster_arn"], FARGATE_CLUSTER);
    assert_eq!(json["launch_type"], "FARGATE");
    assert_eq!(json["family"], "batch-job");
    assert_eq!(json["revision"], "7");
    assert_eq!(json["container_name"], "worker");
    let vars = workload(&[], &as_env(&env)).workload_env();
    assert_eq!(vars.get("DOCKER_CONTAINER_ID").map(String::as_str), Some(FARGATE_ID));
    assert_eq!(vars.get("ECS_TASK_ID").map(String::as_str), Some(FARGATE_TASK_ID));
}

#[test]
fn v3_is_used_when_v4_is_absent() {
    let agent = FakeAgent::start(|path, _| match path {
        "/v3/1f2e3d4c" => ok(&ec2_v4_container(EC2_ID).replace("com.amazonaws.ecs.task-arn", "other.label")),
        "/v3/1f2e3d4c/task" => ok(&ec2_v3_task()),
        _ => Reply::Status(500, "\"V3 container metadata handler: unable to get container ID\"".to_string()),
    });
    let env = env_of(&[
        ("SENTINIT_PROC_ROOT", fixture("host-login-session")),
        ("ECS_CONTAINER_METADATA_URI", format!("{}/v3/1f2e3d4c", agent.url)),
    ]);
    let json = identity(&[], &as_env(&env)).json();
    assert_eq!(json["container_id"], EC2_ID, "{json}");
    assert_eq!(json["container_id_source"], "ecs-metadata-v3");
    assert_eq!(json["task_arn"], EC2_TASK);
    assert_eq!(json["task_arn_source"], "ecs-metadata-v3");
}

#[test]
fn retries_500_and_429_inside_the_budget() {
    for status in [500u16, 503, 429] {
        let agent = FakeAgent::start(move |path, nth| match path {
            ENDPOINT if nth <= 2 => Reply::Status(status, "\"not yet\"".to_string()),
            ENDPOINT => ok(&ec2_v4_container(EC2_ID)),
            _ => not_found(),
        });
        let env = env_of(&[
            ("SENTINIT_PROC_ROOT", fixture("host-login-session")),
            ("ECS_CONTAINER_METADATA_URI_V4", format!("{}{ENDPOINT}", agent.url)),
        ]);
        let json = identity(&[], &as_env(&env)).json();
        assert_eq!(json["container_id"], EC2_ID, "after {status}: {json}");
        assert_eq!(json["task_arn"], EC2_TASK);
        let container_requests = agent.requests().iter().filter(|r| *r == ENDPOINT).count();
        assert_eq!(container_requests, 3, "{status}: {:?}", agent.requests());
    }
}

#[test]
fn not_found_is_not_retried() {
    let agent = FakeAgent::start(|_, _| not_found());
    let env = env_of(&[
        ("SENTINIT_PROC_ROOT", fixture("ecs-ec2-v1-bridge")),
        ("ECS_CONTAINER_METADATA_URI_V4", format!("{}{ENDPOINT}", agent.url)),
    ]);
    let run = identity(&[], &as_env(&env));
    let json = run.json();
    assert_eq!(json["container_id"], FIXTURE_ID, "falls back to the cgroup: {json}");
    assert_eq!(json["task_arn"], Value::Null);
    assert_eq!(agent.requests(), vec![ENDPOINT.to_string(), format!("{ENDPOINT}/task")]);
    assert!(run.stderr().contains("HTTP 404"), "{}", run.stderr());
}

#[test]
fn connection_refused_is_retried_then_given_up_within_the_budget() {
    // Bound but never listening, and held for the whole test: every connect is refused, and no
    // FakeAgent of a parallel test can be given this port meanwhile.
    let refused = RefusedPort::new();
    let env = env_of(&[
        ("SENTINIT_PROC_ROOT", fixture("ecs-ec2-v1-bridge")),
        ("ECS_CONTAINER_METADATA_URI_V4", refused.url(ENDPOINT)),
    ]);
    let run = workload(&["--identity-timeout", "800ms", "-v"], &as_env(&env));
    let vars = run.workload_env();
    assert_eq!(vars.get("DOCKER_CONTAINER_ID").map(String::as_str), Some(FIXTURE_ID));
    assert!(!vars.contains_key("ECS_TASK_ARN"));
    assert!(run.stderr().matches("retrying").count() >= 2, "{}", run.stderr());
    assert!(run.stderr().contains("connection refused"), "{}", run.stderr());
    assert!(run.elapsed < Duration::from_millis(800) + identity_support::slack(700), "{:?}", run.elapsed);
}

/// Runs the workload against an agent that always gives `reply` and checks that it started within
/// the budget, with the container ID from the fixture's cgroup paths and no task.
fn hostile(reply: Reply) -> identity_support::Run {
    let agent = FakeAgent::start(move |_, _| reply.clone());
    let env = env_of(&[
        ("SENTINIT_PROC_ROOT", fixture("ecs-ec2-v1-bridge")),
        ("ECS_CONTAINER_METADATA_URI_V4", format!("{}{ENDPOINT}", agent.url)),
    ]);
    let run = workload(&["--identity-timeout", "1s"], &as_env(&env));
    let vars = run.workload_env();
    assert_eq!(vars.get("DOCKER_CONTAINER_ID").map(String::as_str), Some(FIXTURE_ID), "{}", run.stderr());
    assert!(!vars.contains_key("ECS_TASK_ARN"), "{vars:?}");
    assert!(
        run.elapsed < Duration::from_millis(1000) + identity_support::slack(700),
        "workload started after {:?}",
        run.elapsed
    );
    assert!(!agent.requests().is_empty());
    run
}

#[test]
fn a_server_that_never_answers_costs_at_most_the_budget() {
    let run = hostile(Reply::Hang);
    assert!(run.stderr().contains("identity timeout"), "{}", run.stderr());
}

#[test]
fn a_trickling_server_cannot_stretch_the_budget() {
    // 1500 bytes at one byte per 50ms would take 75 seconds.
    let run = hostile(Reply::Trickle(ec2_v4_container(EC2_ID), Duration::from_millis(50)));
    assert!(run.stderr().contains("identity timeout"), "{}", run.stderr());
}

#[test]
fn malformed_json_is_ignored_with_one_warning() {
    let run = hostile(ok(r#"{"DockerId":"0a4f1c2e","Labels":{"#));
    let stderr = run.stderr();
    // The container and the task documents are both malformed: one warning line for the resolution,
    // naming the first and counting the rest.
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.starts_with("sentinit: warning:")).collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(warnings[0].contains(&format!("{ENDPOINT}: malformed JSON")), "{stderr}");
    assert!(warnings[0].contains("and 1 more"), "{stderr}");
    assert_eq!(stderr.lines().filter(|l| l.contains("malformed JSON")).count(), 1, "{stderr}");
}

#[test]
fn unexpected_json_is_ignored() {
    let run = hostile(ok(r#"["DockerId", "0a4f1c2e9b8d7c6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e"]"#));
    assert!(run.stderr().contains("unexpected JSON"), "{}", run.stderr());
}

#[test]
fn a_50_mib_body_is_cut_off_at_1_mib() {
    let run = hostile(Reply::Huge(50 * 1024 * 1024));
    assert!(run.stderr().contains("larger than 1024 KiB"), "{}", run.stderr());
}

#[test]
fn a_wrong_content_length_is_survived() {
    let body = ec2_v4_container(EC2_ID);
    // Announces more than it sends, then closes: a short body.
    let longer = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len() + 4096);
    hostile(Reply::Raw(longer.into_bytes()));
    // Announces less than it sends: the JSON is cut short.
    let shorter = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len() / 2);
    let run = hostile(Reply::Raw(shorter.into_bytes()));
    assert!(run.stderr().contains("malformed JSON"), "{}", run.stderr());
}

#[test]
fn introspection_by_full_docker_id() {
    let agent = FakeAgent::start(|path, _| match path {
        p if p == format!("/v1/tasks?dockerid={FIXTURE_ID}") => ok(&introspection_task(FIXTURE_ID)),
        "/v1/metadata" => ok(
            r#"{"Cluster":"prod","ContainerInstanceArn":"arn:aws:ecs:us-west-2:111122223333:container-instance/prod/5c0b1e2d","Version":"Amazon ECS Agent - v1.89.2 (a1b2c3d4)"}"#,
        ),
        _ => Reply::Status(404, INTROSPECTION_ERROR_BODY.to_string()),
    });
    let env = env_of(&[("SENTINIT_PROC_ROOT", fixture("ecs-ec2-v1-bridge"))]);
    let json = identity(&["--ecs-agent-url", &agent.url], &as_env(&env)).json();
    assert_eq!(json["container_id"], FIXTURE_ID, "{json}");
    assert_eq!(json["container_id_source"], "cgroup");
    assert_eq!(json["task_arn"], EC2_TASK);
    assert_eq!(json["task_arn_source"], "ecs-introspection");
    assert_eq!(json["cluster"], "prod");
    assert_eq!(json["family"], "web");
    assert_eq!(json["revision"], "42");
    assert_eq!(agent.requests()[0], format!("/v1/tasks?dockerid={FIXTURE_ID}"));

    // The same through SENTINIT_ECS_AGENT_URL, seen by the workload.
    let mut env = env;
    env.push(("SENTINIT_ECS_AGENT_URL", agent.url.clone()));
    let vars = workload(&[], &as_env(&env)).workload_env();
    assert_eq!(vars.get("ECS_TASK_ARN").map(String::as_str), Some(EC2_TASK));
    assert_eq!(vars.get("ECS_CLUSTER").map(String::as_str), Some("prod"));
}

#[test]
fn introspection_400_404_and_the_empty_error_body_give_no_task() {
    for (reply, says) in [
        (Reply::Status(400, INTROSPECTION_ERROR_BODY.to_string()), "ambiguous"),
        (Reply::Status(404, INTROSPECTION_ERROR_BODY.to_string()), "unknown to the agent"),
        (ok(INTROSPECTION_ERROR_BODY), "without a task"),
    ] {
        let agent = FakeAgent::start(move |_, _| reply.clone());
        let env = env_of(&[("SENTINIT_PROC_ROOT", fixture("ecs-ec2-v1-bridge"))]);
        let run = workload(&["--ecs-agent-url", &agent.url], &as_env(&env));
        let vars = run.workload_env();
        assert_eq!(vars.get("DOCKER_CONTAINER_ID").map(String::as_str), Some(FIXTURE_ID));
        assert!(!vars.contains_key("ECS_TASK_ARN"), "{says}: {vars:?}");
        assert!(run.stderr().contains(says), "{says}: {}", run.stderr());
        assert_eq!(agent.requests().len(), 1, "{says}: 4xx is not retried: {:?}", agent.requests());
    }
}

#[test]
fn introspection_is_never_asked_without_a_full_64_hex_id() {
    let agent = FakeAgent::start(|_, _| ok(&introspection_task(EC2_ID)));
    // No container ID at all, and a Fargate-shaped one: neither may be sent as a prefix.
    for root in ["host-login-session", "fargate-10-digits"] {
        let env = env_of(&[("SENTINIT_PROC_ROOT", fixture(root))]);
        let run = workload(&["--ecs-agent-url", &agent.url], &as_env(&env));
        assert!(!run.workload_env().contains_key("ECS_TASK_ARN"), "{root}");
    }
    assert_eq!(agent.requests(), Vec::<String>::new());
}

#[test]
fn tmds_wins_over_introspection_which_is_then_not_asked() {
    let agent = FakeAgent::start(|path, _| match path {
        ENDPOINT => ok(&ec2_v4_container(EC2_ID)),
        _ => ok(&introspection_task(EC2_ID).replace("task/prod/", "task/other/")),
    });
    let env = env_of(&[
        ("SENTINIT_PROC_ROOT", fixture("ecs-ec2-v1-bridge")),
        ("ECS_CONTAINER_METADATA_URI_V4", format!("{}{ENDPOINT}", agent.url)),
    ]);
    let json = identity(&["--ecs-agent-url", &agent.url], &as_env(&env)).json();
    assert_eq!(json["task_arn"], EC2_TASK);
    assert_eq!(json["container_id"], EC2_ID, "TMDS is trusted above the cgroup path");
    assert_eq!(agent.requests(), vec![ENDPOINT.to_string(), format!("{ENDPOINT}/task")]);
}

#[test]
fn v3_is_not_asked_when_v4_answered() {
    // v4 says 404 (it does not know the endpoint ID); v3 would answer 500 for ever, which sentinit
    // would retry until the deadline. A v4 answer, even a 404, settles it: v3 is not asked.
    let agent = FakeAgent::start(|path, _| match path {
        p if p.starts_with("/v3/") => Reply::Status(500, "\"V3 container metadata handler: unknown\"".to_string()),
        _ => not_found(),
    });
    let env = env_of(&[
        ("SENTINIT_PROC_ROOT", fixture("ecs-ec2-v1-bridge")),
        ("ECS_CONTAINER_METADATA_URI_V4", format!("{}/v4/{FARGATE_ID}", agent.url)),
        ("ECS_CONTAINER_METADATA_URI", format!("{}/v3/{FARGATE_ID}", agent.url)),
    ]);
    let run = workload(&["--identity-timeout", "3s"], &as_env(&env));
    assert_eq!(run.workload_env().get("DOCKER_CONTAINER_ID").map(String::as_str), Some(FIXTURE_ID));
    assert_eq!(agent.requests(), [format!("/v4/{FARGATE_ID}"), format!("/v4/{FARGATE_ID}/task")]);
    assert!(run.elapsed < Duration::from_millis(3000), "v3's 500s were retried: {:?}", run.elapsed);
}

#[test]
fn fargate_v3_when_v4_gives_no_http_answer_at_all() {
    let agent = FakeAgent::start(|path, _| match path {
        p if p == format!("/v3/{FARGATE_ID}") => ok(&fargate_v4_container()),
        p if p == format!("/v3/{FARGATE_ID}/task") => ok(&fargate_v4_task()),
        // Not HTTP: the v4 side gives no answer.
        _ => Reply::Raw(b"SSH-2.0-OpenSSH_9.2\r\n".to_vec()),
    });
    let env = env_of(&[
        ("SENTINIT_PROC_ROOT", fixture("host-login-session")),
        ("ECS_CONTAINER_METADATA_URI_V4", format!("{}/v4/{FARGATE_ID}", agent.url)),
        ("ECS_CONTAINER_METADATA_URI", format!("{}/v3/{FARGATE_ID}", agent.url)),
    ]);
    let json = identity(&[], &as_env(&env)).json();
    assert_eq!(json["container_id"], FARGATE_ID, "{json}");
    assert_eq!(json["container_id_source"], "ecs-metadata-v3");
    assert_eq!(json["task_arn"], FARGATE_TASK);
    assert_eq!(json["task_arn_source"], "ecs-metadata-v3");
    assert_eq!(json["cluster"], "batch");
    assert_eq!(json["cluster_arn"], FARGATE_CLUSTER);
    assert_eq!(agent.requests()[0], format!("/v4/{FARGATE_ID}"));
    assert!(!agent.requests().contains(&format!("/v4/{FARGATE_ID}/task")), "{:?}", agent.requests());
}

#[test]
fn a_container_not_yet_created_falls_through_to_the_cgroup_path() {
    // The agent knows the container by name only: "DockerId":"" (its labels are there already).
    let agent = FakeAgent::start(|path, _| match path {
        ENDPOINT => ok(&ec2_v4_container("")),
        _ => not_found(),
    });
    let env = env_of(&[
        ("SENTINIT_PROC_ROOT", fixture("ecs-ec2-v1-bridge")),
        ("ECS_CONTAINER_METADATA_URI_V4", format!("{}{ENDPOINT}", agent.url)),
    ]);
    let json = identity(&[], &as_env(&env)).json();
    assert_eq!(json["container_id"], FIXTURE_ID, "{json}");
    assert_eq!(json["container_id_source"], "cgroup");
    assert_eq!(json["task_arn"], EC2_TASK);
    assert_eq!(json["task_arn_source"], "ecs-metadata-v4");
    let vars = workload(&[], &as_env(&env)).workload_env();
    assert_eq!(vars.get("DOCKER_CONTAINER_ID").map(String::as_str), Some(FIXTURE_ID));
    assert_eq!(vars.get("ECS_TASK_ARN").map(String::as_str), Some(EC2_TASK));
}

/// The pause container of the `ecs-al2023-v2-awsvpc` fixture, named by its bind mounts.
const PAUSE_ID: &str = "f465abb05ac8817a089ba49f40492f1ae5c74c8f10da1d92f4bab68493e0ba9c";

#[test]
fn under_ecs_a_failed_endpoint_never_lets_the_pause_container_through() {
    let refused = RefusedPort::new();
    let dir = scratch_dir("ecs-pause");
    let file = dir.join("ecs-container-metadata.json");
    // INITIAL, and it stays so (the container stopped before the agent's inspect, say).
    std::fs::write(
        &file,
        "{\n\t\"Cluster\": \"prod\",\n\t\"TaskARN\": \"arn:aws:ecs:us-west-2:111122223333:task/prod/4d1f6c0b2a9e4e7f8a3b5c6d7e8f9a0b\",\n\t\"ContainerName\": \"app\"\n}",
    )
    .unwrap();
    let with_file = env_of(&[
        ("SENTINIT_PROC_ROOT", fixture("ecs-al2023-v2-awsvpc")),
        ("ECS_CONTAINER_METADATA_URI_V4", refused.url(ENDPOINT)),
        ("ECS_CONTAINER_METADATA_FILE", file.to_string_lossy().into_owned()),
    ]);
    let without_file = &with_file[..2];
    for env in [&with_file[..], without_file] {
        let run = identity(&["--identity-timeout", "800ms", "-v"], &as_env(env));
        let json = run.json();
        assert_eq!(json["container_id"], Value::Null, "{json}");
        let stderr = run.stderr();
        assert!(!stderr.contains(&PAUSE_ID[..12]), "{stderr}");
        let why = stderr.lines().find(|l| l.contains("DOCKER_CONTAINER_ID not set")).unwrap_or_default();
        assert!(why.contains("mountinfo not used under ECS"), "{stderr}");

        let run = workload(&["--identity-timeout", "800ms"], &as_env(env));
        assert!(!run.workload_env().contains_key("DOCKER_CONTAINER_ID"), "{}", run.stderr());
        assert!(run.stderr().contains("START container=unknown "), "{}", run.stderr());
        assert!(run.elapsed < Duration::from_millis(800) + identity_support::slack(700), "{:?}", run.elapsed);
    }
    let json = identity(&["--identity-timeout", "500ms"], &as_env(&with_file)).json();
    assert_eq!(json["task_arn"], "arn:aws:ecs:us-west-2:111122223333:task/prod/4d1f6c0b2a9e4e7f8a3b5c6d7e8f9a0b");
    assert_eq!(json["task_arn_source"], "metadata-file");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn introspection_is_asked_with_the_container_id_the_user_set() {
    let user_id = "5f4e3d2c1b0a99887766554433221100ffeeddccbbaa99887766554433221100";
    let agent = FakeAgent::start(move |path, _| match path {
        p if p == format!("/v1/tasks?dockerid={user_id}") => ok(&introspection_task(user_id)),
        "/v1/metadata" => ok(r#"{"Cluster":"prod","ContainerInstanceArn":null}"#),
        _ => Reply::Status(404, INTROSPECTION_ERROR_BODY.to_string()),
    });
    let env = env_of(&[("SENTINIT_PROC_ROOT", fixture("ecs-ec2-v1-bridge")), ("DOCKER_CONTAINER_ID", user_id.into())]);
    let run = workload(&["--ecs-agent-url", &agent.url], &as_env(&env));
    let vars = run.workload_env();
    assert_eq!(vars.get("DOCKER_CONTAINER_ID").map(String::as_str), Some(user_id));
    assert_eq!(vars.get("ECS_TASK_ARN").map(String::as_str), Some(EC2_TASK), "{}", run.stderr());
    assert!(run.stderr().contains(&format!("START container={user_id} task={EC2_TASK}")), "{}", run.stderr());
    assert_eq!(agent.requests()[0], format!("/v1/tasks?dockerid={user_id}"));
    assert!(!agent.requests().iter().any(|r| r.contains(FIXTURE_ID)), "{:?}", agent.requests());
}

/// The variables every ECS test below checks, `None` for "not exported".
fn assert_vars(vars: &std::collections::HashMap<String, String>, expected: &[(&str, Option<&str>)]) {
    for (name, value) in expected {
        assert_eq!(vars.get(*name).map(String::as_str), *value, "{name}: {vars:?}");
    }
}

const MI_TASK_ID: &str = "aaa111bbb222ccc333ddd444eee55500";
const MI_ID: &str = "aaa111bbb222ccc333ddd444eee55500-1234567890";

#[test]
fn fargate_1_4_labels_name_the_cluster_by_its_arn() {
    // Platform 1.4: all five labels, the cluster label an ARN; LaunchType and AZ from the task document.
    let container = format!(
        r#"{{"DockerId":"{FARGATE_ID}","Name":"worker","DockerName":"worker","Image":"busybox","ImageID":"sha256:6d3e",
"Labels":{{"com.amazonaws.ecs.cluster":"{FARGATE_CLUSTER}","com.amazonaws.ecs.container-name":"worker","com.amazonaws.ecs.task-arn":"{FARGATE_TASK}","com.amazonaws.ecs.task-definition-family":"batch-job","com.amazonaws.ecs.task-definition-version":"7"}},
"DesiredStatus":"RUNNING","KnownStatus":"RUNNING","Limits":{{"CPU":2}},"Type":"NORMAL",
"LogDriver":"awslogs","LogOptions":{{"awslogs-create-group":"true","awslogs-group":"/ecs/batch-job","awslogs-region":"us-east-1","awslogs-stream":"ecs/worker/{FARGATE_TASK_ID}"}},
"ContainerARN":"arn:aws:ecs:us-east-1:111122223333:container/batch/{FARGATE_TASK_ID}/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b",
"Networks":[{{"NetworkMode":"awsvpc","IPv4Addresses":["10.0.2.106"]}}],"Snapshotter":"overlayfs"}}"#
    );
    let agent = FakeAgent::start(move |path, _| match path {
        p if p == format!("/v4/{FARGATE_ID}") => ok(&container),
        p if p == format!("/v4/{FARGATE_ID}/task") => ok(&fargate_v4_task()),
        _ => not_found(),
    });
    let env = env_of(&[
        ("SENTINIT_PROC_ROOT", fixture("fargate-10-digits")),
        ("ECS_CONTAINER_METADATA_URI_V4", format!("{}/v4/{FARGATE_ID}", agent.url)),
        // Fargate injects these; sentinit never touches them.
        ("AWS_REGION", "eu-central-1".to_string()),
        ("AWS_DEFAULT_REGION", "eu-west-3".to_string()),
    ]);
    let run = workload(&[], &as_env(&env));
    assert_vars(
        &run.workload_env(),
        &[
            ("DOCKER_CONTAINER_ID", Some(FARGATE_ID)),
            ("ECS_TASK_ARN", Some(FARGATE_TASK)),
            ("ECS_CLUSTER", Some("batch")),
            ("ECS_CLUSTER_ARN", Some(FARGATE_CLUSTER)),
            ("ECS_CONTAINER_NAME", Some("worker")),
            ("ECS_LAUNCH_TYPE", Some("FARGATE")),
            ("ECS_REGION", Some("us-east-1")),
            ("ECS_AVAILABILITY_ZONE", Some("us-east-1a")),
            (
                "ECS_CONTAINER_ARN",
                Some("arn:aws:ecs:us-east-1:111122223333:container/batch/e40860c2b55a4200b03c3197f6c59714/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"),
            ),
            ("AWS_REGION", Some("eu-central-1")),
            ("AWS_DEFAULT_REGION", Some("eu-west-3")),
        ],
    );
    let json = identity(&[], &as_env(&env)).json();
    assert_eq!(json["cluster"], "batch");
    assert_eq!(json["cluster_arn"], FARGATE_CLUSTER);
    assert_eq!(json["log_group"], "/ecs/batch-job");
    assert_eq!(json["log_stream"], format!("ecs/worker/{FARGATE_TASK_ID}"));
}

#[test]
fn ec2_awsvpc_task_document_lists_the_pause_container_first() {
    // The docs' awsvpc example: the container document has no Docker labels here (a stripped
    // endpoint), so everything task-level comes from /task, whose first container is the pause one.
    let container = format!(
        r#"{{"DockerId":"{EC2_ID}","Name":"curl","DockerName":"ecs-curltest-24-curl-cca48e8dcadd97805600","Image":"111122223333.dkr.ecr.us-west-2.amazonaws.com/curltest:latest","ImageID":"sha256:d691691e9652791a60114e67b365688d20d19940dde7c4736ea30e660d8d3553",
"DesiredStatus":"RUNNING","KnownStatus":"RUNNING","Limits":{{"CPU":10,"Memory":128}},"Type":"NORMAL",
"LogDriver":"awslogs","LogOptions":{{"awslogs-create-group":"true","awslogs-group":"/ecs/metadata","awslogs-region":"us-west-2","awslogs-stream":"ecs/curl/8f03e41243824aea923aca126495f665"}},
"ContainerARN":"arn:aws:ecs:us-west-2:111122223333:container/0206b271-b33f-47ab-86c6-a0ba208a70a9",
"Networks":[{{"NetworkMode":"awsvpc","IPv4Addresses":["10.0.2.100"],"AttachmentIndex":0,"MACAddress":"0e:9e:32:c7:48:85","IPv4SubnetCIDRBlock":"10.0.2.0/24","PrivateDNSName":"ip-10-0-2-100.us-west-2.compute.internal","SubnetGatewayIpv4Address":"10.0.2.1/24"}}]}}"#
    );
    let task = format!(
        r#"{{"Cluster":"default","TaskARN":"arn:aws:ecs:us-west-2:111122223333:task/default/158d1c8083dd49d6b527399fd6414f5c","Family":"curltest","ServiceName":"MyService","Revision":"26","DesiredStatus":"RUNNING","KnownStatus":"RUNNING",
"PullStartedAt":"2020-10-02T00:43:06.202617438Z","PullStoppedAt":"2020-10-02T00:43:06.31288465Z","AvailabilityZone":"us-west-2d","VPCID":"vpc-1234567890abcdef0","LaunchType":"EC2",
"Containers":[{{"DockerId":"598cba581fe3f939459eaba1e071d5c93bb2c49b7d1ba7db6bb19deeb70d8e38","Name":"~internal~ecs~pause","DockerName":"ecs-curltest-26-internalecspause-e292d586b6f9dade4a00","Image":"amazon/amazon-ecs-pause:0.1.0","ImageID":"","DesiredStatus":"RESOURCES_PROVISIONED","KnownStatus":"RESOURCES_PROVISIONED","Limits":{{"CPU":0,"Memory":0}},"Type":"CNI_PAUSE"}},
{{"DockerId":"{EC2_ID}","Name":"curl","DockerName":"ecs-curltest-24-curl-cca48e8dcadd97805600","Image":"curltest","ImageID":"sha256:d691","DesiredStatus":"RUNNING","KnownStatus":"RUNNING","Type":"NORMAL"}}]}}"#
    );
    let agent = FakeAgent::start(move |path, _| match path {
        ENDPOINT => ok(&container),
        p if p == format!("{ENDPOINT}/task") => ok(&task),
        _ => not_found(),
    });
    let env = env_of(&[
        ("SENTINIT_PROC_ROOT", fixture("ecs-al2023-v2-awsvpc")),
        ("ECS_CONTAINER_METADATA_URI_V4", format!("{}{ENDPOINT}", agent.url)),
    ]);
    assert_vars(
        &workload(&[], &as_env(&env)).workload_env(),
        &[
            ("DOCKER_CONTAINER_ID", Some(EC2_ID)),
            ("ECS_TASK_ID", Some("158d1c8083dd49d6b527399fd6414f5c")),
            ("ECS_CLUSTER", Some("default")),
            ("ECS_CLUSTER_ARN", Some("arn:aws:ecs:us-west-2:111122223333:cluster/default")),
            ("ECS_CONTAINER_NAME", Some("curl")),
            ("ECS_TASK_FAMILY", Some("curltest")),
            ("ECS_TASK_REVISION", Some("26")),
            ("ECS_LAUNCH_TYPE", Some("EC2")),
            ("ECS_REGION", Some("us-west-2")),
            ("ECS_AVAILABILITY_ZONE", Some("us-west-2d")),
            (
                "ECS_CONTAINER_ARN",
                Some("arn:aws:ecs:us-west-2:111122223333:container/0206b271-b33f-47ab-86c6-a0ba208a70a9"),
            ),
            ("AWS_REGION", None),
            ("AWS_DEFAULT_REGION", None),
        ],
    );
}

#[test]
fn ecs_managed_instances_launch_type() {
    // Managed Instances: Fargate-shaped IDs, the cluster an ARN in the label and the task document.
    let task_arn = format!("arn:aws:ecs:us-east-1:111122223333:task/mi-cluster/{MI_TASK_ID}");
    let cluster_arn = "arn:aws:ecs:us-east-1:111122223333:cluster/mi-cluster";
    let container = format!(
        r#"{{"DockerId":"{MI_ID}","Name":"app","DockerName":"app","Image":"nginx","ImageID":"sha256:1a2b",
"Labels":{{"com.amazonaws.ecs.cluster":"{cluster_arn}","com.amazonaws.ecs.container-name":"app","com.amazonaws.ecs.task-arn":"{task_arn}","com.amazonaws.ecs.task-definition-family":"mi-web","com.amazonaws.ecs.task-definition-version":"3"}},
"DesiredStatus":"RUNNING","KnownStatus":"RUNNING","Limits":{{"CPU":1024,"Memory":2048}},"Type":"NORMAL",
"Networks":[{{"NetworkMode":"awsvpc","IPv4Addresses":["10.0.8.14"]}}]}}"#
    );
    let task = format!(
        r#"{{"Cluster":"{cluster_arn}","TaskARN":"{task_arn}","Family":"mi-web","Revision":"3","DesiredStatus":"RUNNING","KnownStatus":"RUNNING",
"AvailabilityZone":"us-east-1c","LaunchType":"MANAGED_INSTANCES","Containers":[{{"DockerId":"{MI_ID}","Name":"app","Type":"NORMAL"}}]}}"#
    );
    let agent = FakeAgent::start(move |path, _| match path {
        p if p == format!("/v4/{MI_ID}") => ok(&container),
        p if p == format!("/v4/{MI_ID}/task") => ok(&task),
        _ => not_found(),
    });
    let env = env_of(&[
        ("SENTINIT_PROC_ROOT", fixture("host-login-session")),
        ("ECS_CONTAINER_METADATA_URI_V4", format!("{}/v4/{MI_ID}", agent.url)),
    ]);
    assert_vars(
        &workload(&[], &as_env(&env)).workload_env(),
        &[
            ("DOCKER_CONTAINER_ID", Some(MI_ID)),
            ("ECS_CLUSTER", Some("mi-cluster")),
            ("ECS_CLUSTER_ARN", Some(cluster_arn)),
            ("ECS_LAUNCH_TYPE", Some("MANAGED_INSTANCES")),
            ("ECS_REGION", Some("us-east-1")),
            ("ECS_AVAILABILITY_ZONE", Some("us-east-1c")),
            ("ECS_CONTAINER_ARN", None),
        ],
    );
}

#[test]
fn govcloud_and_china_partitions_build_the_cluster_arn_from_a_short_name() {
    for (partition, region) in [("aws-us-gov", "us-gov-west-1"), ("aws-cn", "cn-northwest-1")] {
        let task_arn = format!("arn:{partition}:ecs:{region}:111122223333:task/prod/4d1f6c0b2a9e4e7f8a3b5c6d7e8f9a0b");
        let container = ec2_v4_container(EC2_ID).replace(EC2_TASK, &task_arn);
        // An agent older than 1.45 has no LaunchType: the task document is asked, and its 404 is no warning.
        let agent = FakeAgent::start(move |path, _| match path {
            ENDPOINT => ok(&container),
            _ => not_found(),
        });
        let env = env_of(&[
            ("SENTINIT_PROC_ROOT", fixture("ecs-ec2-v1-bridge")),
            ("ECS_CONTAINER_METADATA_URI_V4", format!("{}{ENDPOINT}", agent.url)),
        ]);
        let run = workload(&[], &as_env(&env));
        let cluster_arn = format!("arn:{partition}:ecs:{region}:111122223333:cluster/prod");
        assert_vars(
            &run.workload_env(),
            &[
                ("ECS_TASK_ARN", Some(&task_arn)),
                ("ECS_CLUSTER", Some("prod")),
                ("ECS_CLUSTER_ARN", Some(&cluster_arn)),
                ("ECS_REGION", Some(region)),
                ("ECS_LAUNCH_TYPE", None),
                ("ECS_AVAILABILITY_ZONE", None),
            ],
        );
        assert!(!run.stderr().contains("warning"), "{}", run.stderr());
    }
}

#[test]
fn a_task_arn_that_is_not_an_arn_is_not_exported() {
    // A task ID where the ARN should be: dropped, and -v says why; the rest of the task still counts.
    let container = ec2_v4_container(EC2_ID).replace(EC2_TASK, "4d1f6c0b2a9e4e7f8a3b5c6d7e8f9a0b");
    let agent = FakeAgent::start(move |path, _| match path {
        ENDPOINT => ok(&container),
        _ => ok(&ec2_v4_task().replace(EC2_TASK, "task/prod/4d1f6c0b2a9e4e7f8a3b5c6d7e8f9a0b")),
    });
    let env = env_of(&[
        ("SENTINIT_PROC_ROOT", fixture("ecs-ec2-v1-bridge")),
        ("ECS_CONTAINER_METADATA_URI_V4", format!("{}{ENDPOINT}", agent.url)),
    ]);
    let run = workload(&["-v"], &as_env(&env));
    assert_vars(
        &run.workload_env(),
        &[
            ("ECS_TASK_ARN", None),
            ("ECS_TASK_ID", None),
            ("ECS_REGION", None),
            ("ECS_CLUSTER_ARN", None),
            ("ECS_CLUSTER", Some("prod")),
            ("ECS_TASK_FAMILY", Some("web")),
        ],
    );
    let stderr = run.stderr();
    assert!(stderr.contains("ECS_TASK_ARN from ecs-metadata-v4 dropped: not an ECS task ARN"), "{stderr}");
    assert!(stderr.contains("ECS_REGION not set: no task ARN"), "{stderr}");
    assert!(stderr.contains(&format!("START container={EC2_ID} task=unknown")), "{stderr}");
}

#[test]
fn introspection_takes_the_container_name_from_the_matching_docker_id() {
    let task = format!(
        r#"{{"Arn":"{EC2_TASK}","DesiredStatus":"RUNNING","KnownStatus":"RUNNING","Family":"web","Version":"42",
"Containers":[{{"DockerId":"","DockerName":"","Name":"not-yet-created"}},
{{"DockerId":"{EC2_ID}","DockerName":"ecs-web-42-sidecar-e2f4a6","Name":"sidecar","Image":"envoy","ImageID":"sha256:01"}},
{{"DockerId":"{FIXTURE_ID}","DockerName":"ecs-web-42-app-b4e2d6f8a0c2e4f6a801","Name":"app","Image":"web:1.8.3","ImageID":"sha256:9f2c"}}]}}"#
    );
    let agent = FakeAgent::start(move |path, _| match path {
        p if p == format!("/v1/tasks?dockerid={FIXTURE_ID}") => ok(&task),
        "/v1/metadata" => ok(r#"{"Cluster":"prod","ContainerInstanceArn":null}"#),
        _ => Reply::Status(404, INTROSPECTION_ERROR_BODY.to_string()),
    });
    let env = env_of(&[("SENTINIT_PROC_ROOT", fixture("ecs-ec2-v1-bridge"))]);
    let vars = workload(&["--ecs-agent-url", &agent.url], &as_env(&env)).workload_env();
    assert_vars(
        &vars,
        &[
            ("ECS_CONTAINER_NAME", Some("app")),
            ("ECS_CLUSTER", Some("prod")),
            ("ECS_CLUSTER_ARN", Some("arn:aws:ecs:us-west-2:111122223333:cluster/prod")),
            ("ECS_REGION", Some("us-west-2")),
            ("ECS_LAUNCH_TYPE", None),
        ],
    );
}

#[test]
fn values_the_user_set_win_and_feed_the_derived_ones() {
    let agent = FakeAgent::start(|path, _| match path {
        ENDPOINT => ok(&ec2_v4_container(EC2_ID)),
        _ => ok(&ec2_v4_task()),
    });
    let env = env_of(&[
        ("SENTINIT_PROC_ROOT", fixture("ecs-ec2-v1-bridge")),
        ("ECS_CONTAINER_METADATA_URI_V4", format!("{}{ENDPOINT}", agent.url)),
        ("ECS_CLUSTER", "arn:aws:ecs:eu-west-1:444455556666:cluster/mine".to_string()),
        ("ECS_LAUNCH_TYPE", "EXTERNAL".to_string()),
        ("ECS_REGION", String::new()),
    ]);
    let run = workload(&[], &as_env(&env));
    let vars = run.workload_env();
    assert_vars(
        &vars,
        &[
            ("ECS_CLUSTER", Some("arn:aws:ecs:eu-west-1:444455556666:cluster/mine")),
            ("ECS_CLUSTER_ARN", Some("arn:aws:ecs:eu-west-1:444455556666:cluster/mine")),
            ("ECS_LAUNCH_TYPE", Some("EXTERNAL")),
            ("ECS_REGION", Some("")),
            ("ECS_AVAILABILITY_ZONE", Some("us-west-2a")),
        ],
    );
}

/// The `{"type":"sentinit.report",...}` line of a run's stderr.
fn json_report(stderr: &str) -> Value {
    let line = stderr.lines().find(|l| l.starts_with("{\"type\":\"sentinit.report\"")).expect("a JSON report");
    serde_json::from_str(line).unwrap()
}

#[test]
fn aws_batch_job_in_the_start_and_end_lines_and_the_report() {
    let job = "a7182d0e-7e9e-44a1-8417-3b7d8dac9a42:3";
    let env = [
        ("SENTINIT_PROC_ROOT", fixture("fargate-10-digits")),
        ("AWS_BATCH_JOB_ID", job.to_string()),
        ("AWS_BATCH_JOB_ATTEMPT", "2".to_string()),
        ("AWS_BATCH_JQ_NAME", "high-priority".to_string()),
        ("AWS_BATCH_CE_NAME", "spot-ce".to_string()),
    ];
    let run = workload(&["--report", "text,json"], &as_env(&env));
    let stderr = run.stderr();
    for word in ["START", "END"] {
        let line = stderr.lines().find(|l| l.starts_with(word)).unwrap_or_default();
        // The START line goes on with the limits (cpus=...).
        let rest = line.split_once(&format!(" task=unknown job={job}")).map(|(_, rest)| rest);
        assert!(rest.is_some_and(|rest| rest.is_empty() || rest.starts_with(" cpus=")), "{stderr}");
    }
    let report = json_report(&stderr);
    assert_eq!(report["batch_job_id"], job);
    assert_eq!(report["batch_job_attempt"], 2, "a number");
    assert_eq!(report["batch_job_queue"], "high-priority");
    let order = format!(
        r#""container_name":null,"batch_job_id":"{job}","batch_job_attempt":2,"batch_job_queue":"high-priority","command""#
    );
    assert!(stderr.contains(&order), "right after container_name: {stderr}");
    // Batch's own variables reach the workload as they were; nothing AWS_ is added.
    let vars = run.workload_env();
    assert_eq!(vars.get("AWS_BATCH_JOB_ID").map(String::as_str), Some(job));
    assert!(!vars.keys().any(|k| k.starts_with("AWS_") && !k.starts_with("AWS_BATCH_")), "{vars:?}");
    let json = identity(&[], &as_env(&env)).json();
    assert_eq!((json["batch_job_id"].as_str(), json["batch_job_attempt"].as_u64()), (Some(job), Some(2)));
    assert_eq!(json["batch_job_queue"], "high-priority");

    // Outside Batch: no job= and nulls.
    let run = workload(&["--report", "text,json"], &as_env(&env[..1]));
    let stderr = run.stderr();
    assert!(
        stderr.lines().any(|l| l.starts_with("START ") && l.contains(" task=unknown") && !l.contains("job=")),
        "{stderr}"
    );
    let report = json_report(&stderr);
    for key in ["batch_job_id", "batch_job_attempt", "batch_job_queue"] {
        assert_eq!(report[key], Value::Null, "{key}");
    }
}

/// A malformed value in the container's labels does not hide the good one the task document has: each
/// source is checked before they are merged.
#[test]
fn a_bad_label_does_not_hide_the_task_document_s_value() {
    let container = ec2_v4_container(EC2_ID).replace(EC2_TASK, "4d1f6c0b2a9e4e7f8a3b5c6d7e8f9a0b");
    let agent = FakeAgent::start(move |path, _| match path {
        ENDPOINT => ok(&container),
        p if p == format!("{ENDPOINT}/task") => ok(&ec2_v4_task()),
        _ => not_found(),
    });
    let env = env_of(&[
        ("SENTINIT_PROC_ROOT", fixture("host-login-session")),
        ("ECS_CONTAINER_METADATA_URI_V4", format!("{}{ENDPOINT}", agent.url)),
    ]);
    let json = identity(&["-v"], &as_env(&env)).json();
    assert_eq!(json["task_arn"], EC2_TASK, "{json}");
}

#[test]
fn aws_batch_values_of_the_wrong_shape_are_dropped() {
    let long = "q".repeat(300);
    let env = [
        ("SENTINIT_PROC_ROOT", fixture("host-login-session")),
        ("AWS_BATCH_JOB_ID", "job 1 REPORT\tforged".to_string()),
        ("AWS_BATCH_JOB_ATTEMPT", "two".to_string()),
        ("AWS_BATCH_JQ_NAME", long),
    ];
    let run = workload(&["-v", "--report", "text,json"], &as_env(&env));
    let stderr = run.stderr();
    let start = stderr.lines().find(|l| l.starts_with("START")).unwrap_or_default();
    assert!(start.starts_with("START container=unknown task=unknown") && !start.contains("job="), "{stderr}");
    assert!(stderr.contains("AWS_BATCH_JOB_ID from environment dropped"), "{stderr}");
    assert!(stderr.contains("AWS_BATCH_JOB_ATTEMPT from environment dropped: not a number"), "{stderr}");
    assert!(stderr.contains("AWS_BATCH_JQ_NAME from environment dropped"), "{stderr}");
    let report = json_report(&stderr);
    for key in ["batch_job_id", "batch_job_attempt", "batch_job_queue"] {
        assert_eq!(report[key], Value::Null, "{key}");
    }
}

/// SENTINIT_CPU_LIMIT and SENTINIT_CPUS the workload gets from the agent's `Limits.CPU`, with no cgroup
/// quota (an empty /sys), and what `--identity` says about them.
fn cpu_limits_from(agent: &FakeAgent, base: &str) -> (Option<String>, Option<String>, Value) {
    let sys = scratch_dir(&format!("limits-sys-{}", base.replace('/', "-")));
    let env = env_of(&[
        ("SENTINIT_PROC_ROOT", fixture("host-login-session")),
        ("SENTINIT_SYS_ROOT", sys.to_string_lossy().into_owned()),
        ("ECS_CONTAINER_METADATA_URI_V4", format!("{}{base}", agent.url)),
    ]);
    let run = workload(&[], &as_env(&env));
    let vars = run.workload_env();
    assert!(!run.stderr().contains("warning"), "{}", run.stderr());
    let json = identity(&[], &as_env(&env)).json();
    (vars.get("SENTINIT_CPU_LIMIT").cloned(), vars.get("SENTINIT_CPUS").cloned(), json)
}

fn nproc() -> u64 {
    let out = std::process::Command::new("nproc").output().expect("nproc");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn fargate_task_cpu_limit_is_exported() {
    // The task's Limits.CPU is 0.25 vCPU, the container's 2 units: the task's wins.
    let agent = FakeAgent::start(|path, _| match path {
        p if p == format!("/v4/{FARGATE_ID}") => ok(&fargate_v4_container()),
        p if p == format!("/v4/{FARGATE_ID}/task") => ok(&fargate_v4_task()),
        _ => not_found(),
    });
    let (limit, cpus, json) = cpu_limits_from(&agent, &format!("/v4/{FARGATE_ID}"));
    assert_eq!((limit.as_deref(), cpus.as_deref()), (Some("0.25"), Some("1")));
    assert_eq!(json["cpu_limit"], "0.25", "{json}");
    assert_eq!(json["cpu_limit_source"], "ecs-task");
}

#[test]
fn ec2_container_cpu_units_when_the_task_has_no_limit() {
    for (units, task, expected) in [
        (1536, None, Some(("1.5", 2))),
        (0, None, None),
        // A task-level limit wins over the container's units, also when the labels said everything.
        (1536, Some(r#""Limits":{"CPU":0.5,"Memory":1024},"#), Some(("0.5", 1))),
    ] {
        let container = ec2_v4_container(EC2_ID).replace(r#""CPU":256"#, &format!(r#""CPU":{units}"#));
        let task_document = task.map(|limits| ec2_v3_task().replacen('{', &format!("{{{limits}"), 1));
        let agent = FakeAgent::start(move |path, _| match path {
            ENDPOINT => ok(&container),
            p if p == format!("{ENDPOINT}/task") => task_document.as_deref().map_or_else(not_found, ok),
            _ => not_found(),
        });
        let (limit, cpus, json) = cpu_limits_from(&agent, ENDPOINT);
        match expected {
            Some((cores, rounded_up)) => {
                assert_eq!(limit.as_deref(), Some(cores), "{units} units, task {task:?}");
                assert_eq!(cpus, Some(rounded_up.min(nproc()).to_string()));
                let source = if task.is_some() { "ecs-task" } else { "ecs-container" };
                assert_eq!(json["cpu_limit_source"], source, "{json}");
            }
            None => {
                assert_eq!(limit, None, "0 units: no container limit");
                assert_eq!(cpus, Some(nproc().to_string()), "the CPU count");
                assert_eq!(json["cpu_limit"], Value::Null, "{json}");
            }
        }
        assert!(agent.requests().contains(&format!("{ENDPOINT}/task")), "{:?}", agent.requests());
    }
}
