//! The shapes identity values must have before they are exported to the workload or written in a line.
//!
//! Every value from an ECS endpoint or file is data from outside: a NUL byte in it would make the
//! workload's exec fail, 200 KiB of it would overflow the exec's argument space, and a newline would
//! split the START line and could forge a `REPORT` line. Each value is checked against the shape the
//! ECS agent gives it (task and cluster ARNs, names, revision numbers) and a length cap; one that fails
//! is dropped, with the reason for `-v`, and the workload starts without it.

/// The longest value accepted: ARNs are at most a few hundred characters, names at most 255,
/// CloudWatch Logs group and stream names at most 512.
const MAX_ARN: usize = 512;
const MAX_NAME: usize = 255;
const MAX_LOG_NAME: usize = 512;

/// Checks the value of `variable` (`ECS_TASK_ARN`, `ECS_CLUSTER`, ...); the reason when it is not one.
pub fn check(variable: &str, value: &str) -> Result<(), String> {
    if let Some(bad) = value.chars().find(|c| c.is_control()) {
        return Err(format!("it contains the control character U+{:04X}", bad as u32));
    }
    let is = |ok: bool, shape: &str| if ok { Ok(()) } else { Err(format!("not {shape}")) };
    let short = |max: usize| !value.is_empty() && value.len() <= max;
    match variable {
        "ECS_TASK_ARN" => arn(value, "task"),
        "ECS_CONTAINER_ARN" => arn(value, "container"),
        // A cluster ARN's resource is the cluster's name, which ECS_CLUSTER gets.
        "ECS_CLUSTER" | "ECS_CLUSTER_ARN" if value.starts_with("arn:") => {
            arn(value, "cluster").and_then(|()| name(value.split_once(":cluster/").map_or("", |(_, n)| n)))
        }
        "ECS_CLUSTER" | "ECS_TASK_FAMILY" | "ECS_CONTAINER_NAME" | "AWS_BATCH_JQ_NAME" => name(value),
        "ECS_TASK_REVISION" | "AWS_BATCH_JOB_ATTEMPT" => {
            is(short(10) && value.bytes().all(|b| b.is_ascii_digit()), "a number (1 to 10 digits)")
        }
        "ECS_LAUNCH_TYPE" => is(
            short(32) && value.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'),
            "a launch type (EC2, FARGATE, MANAGED_INSTANCES...)",
        ),
        "ECS_AVAILABILITY_ZONE" => is(
            short(64)
                && value.starts_with(|c: char| c.is_ascii_lowercase())
                && value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "an availability zone (us-east-1a)",
        ),
        // CloudWatch Logs' own rules: groups [.-_/#A-Za-z0-9], streams anything but ':' and '*'.
        "awslogs-group" => is(
            short(MAX_LOG_NAME) && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"._/#-".contains(&b)),
            "a CloudWatch Logs group name",
        ),
        "awslogs-stream" => is(short(MAX_LOG_NAME) && !value.contains([':', '*']), "a CloudWatch Logs stream name"),
        // Printed in the START and END lines as `job=<id>`: no spaces.
        "AWS_BATCH_JOB_ID" => is(
            short(MAX_NAME) && value.is_ascii() && !value.contains(char::is_whitespace),
            "a job ID (ASCII, no spaces)",
        ),
        "DOCKER_CONTAINER_ID" => {
            is(super::container_id::is_container_id(value), "a container ID (64 hex, or 32 hex, a dash and digits)")
        }
        _ => Err(format!("no rule for {variable}")),
    }
}

/// The partition, region and account of an ARN of the form
/// `arn:<partition>:ecs:<region>:<12-digit account>:<kind>/<resource>`, in ARN characters only.
pub fn ecs_arn_parts<'a>(value: &'a str, kind: &str) -> Option<[&'a str; 3]> {
    let parts: Vec<&str> = value.splitn(6, ':').collect();
    let [prefix, partition, service, region, account, resource] = parts.as_slice() else { return None };
    let lower_dash =
        |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let resource_ok = resource.strip_prefix(kind).and_then(|rest| rest.strip_prefix('/')).is_some_and(|rest| {
        !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./:".contains(&b))
    });
    (*prefix == "arn"
        && partition.starts_with("aws")
        && lower_dash(partition)
        && *service == "ecs"
        && lower_dash(region)
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && resource_ok)
        .then_some([partition, region, account])
}

/// An ECS ARN of `kind`, at most [`MAX_ARN`] bytes.
fn arn(value: &str, kind: &str) -> Result<(), String> {
    if value.len() > MAX_ARN {
        return Err(format!("{} bytes long, more than an ARN's {MAX_ARN}", value.len()));
    }
    match ecs_arn_parts(value, kind) {
        Some(_) => Ok(()),
        None => Err(format!("not an ECS {kind} ARN (arn:<partition>:ecs:<region>:<account>:{kind}/...)")),
    }
}

/// A task definition family, cluster or container name: 1 to 255 letters, digits, `-`, `_` (and the
/// `.` and `~` of the agent's own internal container names).
fn name(value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > MAX_NAME {
        return Err(format!("{} bytes long, not 1 to {MAX_NAME}", value.len()));
    }
    match value.chars().find(|c| !(c.is_ascii_alphanumeric() || "-_.~".contains(*c))) {
        Some(bad) => Err(format!("'{}' is not a name character (letters, digits, - and _)", bad.escape_default())),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_the_agent_serves() {
        for (variable, value) in [
            ("ECS_TASK_ARN", "arn:aws:ecs:us-west-2:111122223333:task/prod/4d1f6c0b2a9e4e7f8a3b5c6d7e8f9a0b"),
            ("ECS_TASK_ARN", "arn:aws:ecs:us-east-1:111122223333:task/0b69d5c0-d655-4695-98cd-5d2d526d9d5a"),
            ("ECS_TASK_ARN", "arn:aws-cn:ecs:cn-north-1:111122223333:task/c/abc"),
            ("ECS_CLUSTER", "prod"),
            ("ECS_CLUSTER", "arn:aws:ecs:us-west-2:111122223333:cluster/default"),
            ("ECS_TASK_FAMILY", "etl-nightly_v2"),
            ("ECS_TASK_REVISION", "17"),
            ("ECS_CONTAINER_NAME", "~internal~ecs~pause"),
            ("DOCKER_CONTAINER_ID", "cd189a933e5849daa93386466019ab50-2495160603"),
            ("ECS_CLUSTER_ARN", "arn:aws-us-gov:ecs:us-gov-west-1:111122223333:cluster/prod"),
            ("ECS_CONTAINER_ARN", "arn:aws:ecs:us-west-2:111122223333:container/0206b271-b33f-47ab-86c6-a0ba208a70a9"),
            ("ECS_CONTAINER_ARN", "arn:aws:ecs:us-east-1:111122223333:container/batch/e40860c2b55a4200b03c3197f6c59714/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"),
            ("ECS_LAUNCH_TYPE", "MANAGED_INSTANCES"),
            ("ECS_LAUNCH_TYPE", "EC2"),
            ("ECS_AVAILABILITY_ZONE", "us-west-2-lax-1a"),
            ("awslogs-group", "/ecs/web#1"),
            ("awslogs-stream", "my prefix,x=1%/app/4d1f"),
            ("AWS_BATCH_JOB_ID", "a7182d0e-7e9e-44a1-8417-3b7d8dac9a42:3#1"),
            ("AWS_BATCH_JOB_ATTEMPT", "2"),
            ("AWS_BATCH_JQ_NAME", "high-priority_1"),
        ] {
            assert_eq!(check(variable, value), Ok(()), "{variable}={value}");
        }
    }

    #[test]
    fn refuses_what_could_hurt() {
        let long = "a".repeat(200 * 1024);
        for (variable, value) in [
            ("ECS_CONTAINER_NAME", "app\0x"),
            ("ECS_CONTAINER_NAME", long.as_str()),
            ("ECS_CONTAINER_NAME", "with space"),
            ("ECS_TASK_ARN", "arn:aws:ecs:us-west-2:111122223333:task/x\nREPORT\tDuration: 1 ms"),
            ("ECS_TASK_ARN", "arn:aws:ecs:us-west-2:1111:task/x"),
            ("ECS_TASK_ARN", "arn:aws:s3:::bucket"),
            ("ECS_TASK_ARN", "arn:aws:ecs:us-west-2:111122223333:task/"),
            ("ECS_CLUSTER", "arn:aws:ecs:us-west-2:111122223333:task/x"),
            ("ECS_TASK_REVISION", "1.5"),
            ("ECS_TASK_FAMILY", ""),
            ("DOCKER_CONTAINER_ID", "abc"),
            ("ECS_CLUSTER", "arn:aws:ecs:us-west-2:111122223333:cluster/a/b"),
            ("ECS_CONTAINER_ARN", "0206b271-b33f-47ab-86c6-a0ba208a70a9"),
            ("ECS_LAUNCH_TYPE", "fargate"),
            ("ECS_AVAILABILITY_ZONE", "us east"),
            ("awslogs-group", "a group"),
            ("awslogs-stream", "a:b"),
            ("AWS_BATCH_JOB_ID", "a b"),
            ("AWS_BATCH_JOB_ID", long.as_str()),
            ("AWS_BATCH_JOB_ATTEMPT", "one"),
            ("AWS_BATCH_JOB_ATTEMPT", "12345678901"),
        ] {
            assert!(check(variable, value).is_err(), "{variable}={value:?}");
        }
    }
}
