//! The shape every ECS source is reduced to, and the JSON helpers that read it.
//!
//! TMDS v4 and v3, the container metadata file and the introspection API name the same facts
//! differently; each source module maps its own JSON onto [`EcsFacts`] so that the resolver merges one
//! type only.

use serde_json::Value;

/// What one ECS source said about this container and its task; every field optional.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EcsFacts {
    pub container_id: Option<String>,
    pub task_arn: Option<String>,
    pub cluster: Option<String>,
    pub family: Option<String>,
    pub revision: Option<String>,
    pub container_name: Option<String>,
    /// `EC2`, `FARGATE`, `EXTERNAL`, `MANAGED_INSTANCES`: only the v4 task document has it.
    pub launch_type: Option<String>,
    pub availability_zone: Option<String>,
    pub container_arn: Option<String>,
    /// The CloudWatch Logs group and stream, when the container logs through the awslogs driver.
    pub log_group: Option<String>,
    pub log_stream: Option<String>,
    /// The task document's `Limits.CPU` (vCPU), in millicores.
    pub task_cpu_millis: Option<u64>,
    /// The container document's `Limits.CPU` (CPU units, 1024 to a vCPU), in millicores; `None` for 0,
    /// which means the container has no CPU limit of its own.
    pub container_cpu_millis: Option<u64>,
}

impl EcsFacts {
    /// Drops the values that do not have the shape of their variable (see validate.rs), saying why
    /// with `-v`, before this source is merged with another: a malformed value must not hide a good one
    /// that the next source (the task document) has.
    pub fn drop_invalid(&mut self, source: &str) {
        for (variable, slot) in [
            ("ECS_TASK_ARN", &mut self.task_arn),
            ("ECS_CLUSTER", &mut self.cluster),
            ("ECS_TASK_FAMILY", &mut self.family),
            ("ECS_TASK_REVISION", &mut self.revision),
            ("ECS_CONTAINER_NAME", &mut self.container_name),
            ("ECS_CONTAINER_ARN", &mut self.container_arn),
            ("ECS_LAUNCH_TYPE", &mut self.launch_type),
            ("ECS_AVAILABILITY_ZONE", &mut self.availability_zone),
        ] {
            if let Some(Err(reason)) = slot.as_deref().map(|value| super::validate::check(variable, value)) {
                crate::debug!("{variable} from {source} dropped: {reason}");
                *slot = None;
            }
        }
    }

    /// True when the task-level facts are all known (no need to ask for the task document).
    pub fn task_complete(&self) -> bool {
        self.task_arn.is_some() && self.cluster.is_some() && self.family.is_some() && self.revision.is_some()
    }

    /// Fills what `self` lacks from `other`.
    pub fn fill_from(&mut self, other: &EcsFacts) {
        fn fill(slot: &mut Option<String>, value: &Option<String>) {
            if slot.is_none() {
                slot.clone_from(value);
            }
        }
        fill(&mut self.container_id, &other.container_id);
        fill(&mut self.task_arn, &other.task_arn);
        fill(&mut self.cluster, &other.cluster);
        fill(&mut self.family, &other.family);
        fill(&mut self.revision, &other.revision);
        fill(&mut self.container_name, &other.container_name);
        fill(&mut self.launch_type, &other.launch_type);
        fill(&mut self.availability_zone, &other.availability_zone);
        fill(&mut self.container_arn, &other.container_arn);
        fill(&mut self.log_group, &other.log_group);
        fill(&mut self.log_stream, &other.log_stream);
        self.task_cpu_millis = self.task_cpu_millis.or(other.task_cpu_millis);
        self.container_cpu_millis = self.container_cpu_millis.or(other.container_cpu_millis);
    }
}

/// A non-empty string (or number, for revisions) at `key` of a JSON object.
pub fn text(object: &Value, key: &str) -> Option<String> {
    match object.get(key)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `Limits.CPU` of a TMDS document in millicores, at `millis` millicores per `per` units: `(1000, 1)`
/// for the task's vCPU, `(1000, 1024)` for a container's CPU units. The task's figure can be a fraction
/// (0.25): it is taken from serde_json's number, with no float parsing or printing of sentinit's own,
/// and rounded to the nearest millicore. `None` for 0, a negative or a missing figure.
pub fn cpu_millis(document: &Value, (millis, per): (u64, u64)) -> Option<u64> {
    let cpu = document.get("Limits")?.get("CPU")?;
    let exact = cpu.as_u64().map(|n| (u128::from(n) * u128::from(millis) + u128::from(per) / 2) / u128::from(per));
    let value = exact.map(|m| u64::try_from(m).unwrap_or(u64::MAX)).or_else(|| {
        let n = cpu.as_f64().filter(|n| n.is_finite() && *n > 0.0)?;
        // Saturates for absurd figures; rounds to the nearest millicore.
        Some((n * millis as f64 / per as f64 + 0.5) as u64)
    })?;
    (value > 0).then_some(value)
}

/// The last component of a task ARN (`arn:aws:ecs:<region>:<account>:task/[<cluster>/]<id>`).
pub fn task_id_of(arn: &str) -> Option<String> {
    let (_, resource) = arn.split_once(":task/")?;
    let id = resource.rsplit('/').next()?;
    (!id.is_empty()).then(|| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_ids_of_long_and_short_arns() {
        assert_eq!(
            task_id_of("arn:aws:ecs:us-west-2:111122223333:task/prod/4d1f6c0b2a9e4e7f8a3b5c6d7e8f9a0b").as_deref(),
            Some("4d1f6c0b2a9e4e7f8a3b5c6d7e8f9a0b")
        );
        assert_eq!(
            task_id_of("arn:aws:ecs:us-east-1:111122223333:task/0b69d5c0-d655-4695-98cd-5d2d526d9d5a").as_deref(),
            Some("0b69d5c0-d655-4695-98cd-5d2d526d9d5a")
        );
        assert_eq!(task_id_of("arn:aws:ecs:us-east-1:111122223333:task/"), None);
        assert_eq!(task_id_of("not an arn"), None);
    }

    #[test]
    fn cpu_limits_in_millicores() {
        let cpu = |v: Value| cpu_millis(&serde_json::json!({ "Limits": { "CPU": v } }), (1000, 1));
        assert_eq!(cpu(serde_json::json!(0.25)), Some(250));
        assert_eq!(cpu(serde_json::json!(2)), Some(2000));
        assert_eq!(cpu(serde_json::json!(1.1)), Some(1100));
        assert_eq!(cpu(serde_json::json!(0)), None);
        assert_eq!(cpu(serde_json::json!(-1)), None);
        assert_eq!(cpu(serde_json::json!("2")), None);
        let units = |v: Value| cpu_millis(&serde_json::json!({ "Limits": { "CPU": v } }), (1000, 1024));
        assert_eq!(units(serde_json::json!(1536)), Some(1500));
        assert_eq!(units(serde_json::json!(256)), Some(250));
        assert_eq!(units(serde_json::json!(10)), Some(10));
        assert_eq!(units(serde_json::json!(0)), None);
        assert_eq!(cpu_millis(&serde_json::json!({ "Limits": {} }), (1000, 1)), None);
        assert_eq!(cpu_millis(&serde_json::json!({}), (1000, 1)), None);
    }

    #[test]
    fn text_takes_strings_and_numbers_only() {
        let v: Value = serde_json::json!({"a": " x ", "b": "", "c": 5, "d": null, "e": {}});
        assert_eq!(text(&v, "a").as_deref(), Some("x"));
        assert_eq!(text(&v, "b"), None);
        assert_eq!(text(&v, "c").as_deref(), Some("5"));
        assert_eq!(text(&v, "d"), None);
        assert_eq!(text(&v, "e"), None);
        assert_eq!(text(&v, "missing"), None);
    }
}
