//! OpenTelemetry resource attributes: what sentinit knows about the container and its ECS task, added
//! to the workload's `OTEL_RESOURCE_ATTRIBUTES` under the semantic-convention names.
//!
//! OpenTelemetry SDKs read that variable as `key=value,key=value`, percent-decoding values. Their own
//! detectors get the container ID wrong on Fargate and on cgroup v2, and need network calls for the ECS
//! facts that sentinit already has. The user's variable is only ever appended to: a key already there
//! keeps its value (appending it again would override it, SDKs keep the last one), and a value that is
//! malformed (an entry without `=`, a bad percent escape, not UTF-8) is left exactly as it is, because
//! the spec tells SDKs to discard the whole variable on a decoding error, and adding to it would not
//! make it any less broken.

use crate::debug;
use crate::environ::Environ;
use crate::identity::Identity;

pub const VARIABLE: &str = "OTEL_RESOURCE_ATTRIBUTES";

/// Merges the identity's attributes into the workload's `OTEL_RESOURCE_ATTRIBUTES`, in place.
pub fn apply(identity: &Identity, environ: &mut Environ) {
    let attributes = attributes(identity);
    if attributes.is_empty() {
        return;
    }
    let existing = environ.get(VARIABLE).map(|value| value.to_str().ok_or_else(|| "it is not UTF-8".to_string()));
    let existing = existing.unwrap_or(Ok("")).and_then(|existing| check(existing).map(|()| existing));
    let existing = match existing {
        Ok(existing) => existing,
        Err(reason) => {
            debug!("{VARIABLE} left as it is, nothing added: {reason}");
            return;
        }
    };
    match merge(existing, &attributes) {
        Some(value) => {
            debug!("{VARIABLE}={value}");
            environ.set(VARIABLE, &value);
        }
        None => debug!("{VARIABLE} already has every attribute sentinit knows"),
    }
}

/// The attributes the identity gives, in semantic-convention names. `container.*` wherever known;
/// `cloud.*` and `aws.*` only under ECS (a task ARN is known).
pub fn attributes(identity: &Identity) -> Vec<(&'static str, String)> {
    let mut list =
        vec![("container.id", identity.container_id.clone()), ("container.name", identity.container_name.clone())];
    if let Some(task) = &identity.task_arn {
        // The account is the task ARN's fifth field (`arn:<partition>:ecs:<region>:<account>:task/...`).
        let account = task.split(':').nth(4).filter(|a| a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()));
        // The semantic conventions know `ec2` and `fargate` only (the collector drops anything else).
        let launch_type =
            identity.launch_type.as_deref().map(str::to_ascii_lowercase).filter(|t| t == "ec2" || t == "fargate");
        list.extend([
            ("cloud.provider", Some("aws".to_string())),
            ("cloud.platform", Some("aws_ecs".to_string())),
            ("cloud.region", identity.region.clone()),
            ("cloud.account.id", account.map(str::to_string)),
            ("cloud.availability_zone", identity.availability_zone.clone()),
            ("cloud.resource_id", identity.container_arn.clone()),
            ("aws.ecs.cluster.arn", identity.cluster_arn.clone()),
            ("aws.ecs.container.arn", identity.container_arn.clone()),
            ("aws.ecs.launchtype", launch_type),
            ("aws.ecs.task.arn", Some(task.clone())),
            ("aws.ecs.task.id", identity.task_id()),
            ("aws.ecs.task.family", identity.family.clone()),
            ("aws.ecs.task.revision", identity.revision.clone()),
            ("aws.log.group.names", identity.log_group.clone()),
            ("aws.log.stream.names", identity.log_stream.clone()),
        ]);
    }
    list.into_iter().filter_map(|(key, value)| Some((key, value.filter(|v| !v.is_empty())?))).collect()
}

/// Why `existing` cannot be added to: an entry without `=` (blank entries are tolerated, SDKs skip
/// them), or a `%` not followed by two hex digits.
pub fn check(existing: &str) -> Result<(), String> {
    if let Some(entry) = existing.split(',').find(|entry| !entry.trim().is_empty() && !entry.contains('=')) {
        return Err(format!("the entry '{}' has no '='", entry.escape_debug()));
    }
    let bytes = existing.as_bytes();
    for (at, _) in existing.match_indices('%') {
        if !bytes.get(at + 1..at + 3).is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit)) {
            return Err(format!("a bad percent escape at byte {at}"));
        }
    }
    Ok(())
}

/// `existing` (already checked) with each attribute whose key it lacks appended, percent-encoded;
/// `None` when there is nothing to add.
pub fn merge(existing: &str, attributes: &[(&str, String)]) -> Option<String> {
    let keys: Vec<&str> = existing.split(',').filter_map(|entry| Some(entry.split_once('=')?.0.trim())).collect();
    let mut merged = existing.to_string();
    let mut added = false;
    for (key, value) in attributes.iter().filter(|(key, _)| !keys.contains(key)) {
        if !merged.trim().is_empty() && !merged.trim_end().ends_with(',') {
            merged.push(',');
        }
        merged.push_str(key);
        merged.push('=');
        encode(value, &mut merged);
        added = true;
    }
    added.then_some(merged)
}

/// Percent-encodes what the spec requires (`,` `=`, and `%` itself) and everything that is not a W3C
/// baggage value octet (space, `"`, `;`, `\`, control and non-ASCII bytes); ARNs pass unchanged.
fn encode(value: &str, out: &mut String) {
    for byte in value.bytes() {
        // `+` too: decoders built on form decoding (older Java SDKs) read it as a space.
        if (0x21..0x7f).contains(&byte) && !b",=%\";\\+".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(list: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
        list.iter().map(|(k, v)| (*k, v.to_string())).collect()
    }

    #[test]
    fn appends_only_missing_keys_and_keeps_the_users_text() {
        let ours = attrs(&[("container.id", "abc"), ("service.name", "x"), ("aws.log.stream.names", "a b,c=d%e")]);
        assert_eq!(
            merge(" service.name = mine ,deployment.environment=prod", &ours),
            Some(" service.name = mine ,deployment.environment=prod,container.id=abc,aws.log.stream.names=a%20b%2Cc%3Dd%25e".into())
        );
        assert_eq!(merge("", &ours[..1]), Some("container.id=abc".into()));
        assert_eq!(merge("a=1,", &ours[..1]), Some("a=1,container.id=abc".into()));
        assert_eq!(merge("container.id=theirs", &ours[..1]), None);
    }

    #[test]
    fn malformed_values_are_refused() {
        for bad in ["a=1,b", "a=%zz", "a=100%", "a=%4"] {
            assert!(check(bad).is_err(), "{bad}");
        }
        for good in ["", "a=1,,b=2", "a=%20%2c", "k=", "a=b=c"] {
            assert_eq!(check(good), Ok(()), "{good}");
        }
    }

    #[test]
    fn encodes_what_sdks_decode() {
        let mut out = String::new();
        encode("arn:aws:ecs:us-west-2:1:task/c/x ;\"\\é", &mut out);
        assert_eq!(out, "arn:aws:ecs:us-west-2:1:task/c/x%20%3B%22%5C%C3%A9");
    }

    #[test]
    fn cloud_and_aws_only_under_ecs() {
        let docker = Identity { container_id: Some("abc".into()), ..Default::default() };
        assert_eq!(attributes(&docker), attrs(&[("container.id", "abc")]));
        let ecs = Identity {
            task_arn: Some("arn:aws-cn:ecs:cn-north-1:111122223333:task/prod/4d1f".into()),
            launch_type: Some("MANAGED_INSTANCES".into()),
            ..Default::default()
        };
        let keys: Vec<&str> = attributes(&ecs).iter().map(|(k, _)| *k).collect();
        assert_eq!(
            keys,
            ["cloud.provider", "cloud.platform", "cloud.account.id", "aws.ecs.task.arn", "aws.ecs.task.id"]
        );
    }
}
