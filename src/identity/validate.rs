//! The shapes identity values must have before they are exported to the workload or written in a line.
//!
//! Every value from an ECS endpoint or file is data from outside: a NUL byte in it would make the
//! workload's exec fail, 200 KiB of it would overflow the exec's argument space, and a newline would
//! split the START line and could forge a `REPORT` line. Each value is checked against the shape the
//! ECS agent gives it (task and cluster ARNs, names, revision numbers) and a length cap; one that fails
//! is dropped, with the reason for `-v`, and the workload starts without it.

/// The longest value accepted: ARNs are at most a few hundred characters, names at most 255.
const MAX_ARN: usize = 512;
const MAX_NAME: usize = 255;

/// Checks the value of `variable` (`ECS_TASK_ARN`, `ECS_CLUSTER`, ...); the reason when it is not one.
pub fn check(variable: &str, value: &str) -> Result<(), String> {
    if let Some(bad) = value.chars().find(|c| c.is_control()) {
        return Err(format!("it contains the control character U+{:04X}", bad as u32));
    }
    match variable {
        "ECS_TASK_ARN" => arn(value, "task"),
        "ECS_CLUSTER" if value.starts_with("arn:") => arn(value, "cluster"),
        "ECS_CLUSTER" | "ECS_TASK_FAMILY" | "ECS_CONTAINER_NAME" => name(value),
        "ECS_TASK_REVISION" => {
            if (1..=10).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_digit()) {
                Ok(())
            } else {
                Err("not a revision number (1 to 10 digits)".to_string())
            }
        }
        "DOCKER_CONTAINER_ID" => {
            if super::container_id::is_container_id(value) {
                Ok(())
            } else {
                Err("not a container ID (64 hex, or 32 hex, a dash and digits)".to_string())
            }
        }
        _ => Err(format!("no rule for {variable}")),
    }
}

/// `arn:<partition>:ecs:<region>:<12-digit account>:<kind>/<resource>`, in ARN characters only.
fn arn(value: &str, kind: &str) -> Result<(), String> {
    if value.len() > MAX_ARN {
        return Err(format!("{} bytes long, more than an ARN's {MAX_ARN}", value.len()));
    }
    let not = || Err(format!("not an ECS {kind} ARN (arn:aws:ecs:<region>:<account>:{kind}/...)"));
    let parts: Vec<&str> = value.splitn(6, ':').collect();
    let [prefix, partition, service, region, account, resource] = parts.as_slice() else { return not() };
    let lower_dash =
        |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let resource_ok = resource.strip_prefix(kind).and_then(|rest| rest.strip_prefix('/')).is_some_and(|rest| {
        !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./:".contains(&b))
    });
    if *prefix == "arn"
        && partition.starts_with("aws")
        && lower_dash(partition)
        && *service == "ecs"
        && lower_dash(region)
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && resource_ok
    {
        Ok(())
    } else {
        not()
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
        ] {
            assert!(check(variable, value).is_err(), "{variable}={value:?}");
        }
    }
}
