//! The ECS container metadata file (`ECS_CONTAINER_METADATA_FILE`, EC2 only, opt-in on the agent).
//!
//! The agent writes it before `docker create` with the task-level facts (so `TaskARN` is there at once)
//! and rewrites it after `docker start` with `ContainerID` and `"MetadataFileStatus": "READY"`. Writes
//! are atomic renames, so each poll re-opens the path: an open descriptor would keep the old file.

use super::facts::{text, EcsFacts};
use serde_json::Value;

/// The facts in one snapshot of the file; `container_id` only once the status is READY.
#[derive(Debug, PartialEq, Eq)]
pub struct MetadataFile {
    pub facts: EcsFacts,
    pub ready: bool,
}

/// Parses one snapshot of the file.
pub fn parse(contents: &[u8]) -> Result<MetadataFile, String> {
    let value: Value = serde_json::from_slice(contents).map_err(|e| format!("malformed JSON ({e})"))?;
    if !value.is_object() {
        return Err("unexpected JSON (not an object)".to_string());
    }
    let ready = text(&value, "MetadataFileStatus").as_deref() == Some("READY");
    let facts = EcsFacts {
        container_id: if ready { text(&value, "ContainerID") } else { None },
        task_arn: text(&value, "TaskARN"),
        cluster: text(&value, "Cluster"),
        family: text(&value, "TaskDefinitionFamily"),
        revision: text(&value, "TaskDefinitionRevision"),
        container_name: text(&value, "ContainerName"),
    };
    Ok(MetadataFile { facts, ready })
}

#[cfg(test)]
mod tests {
    use super::*;

    const INITIAL: &str = "{\n\t\"Cluster\": \"prod\",\n\t\"ContainerInstanceARN\": \"arn:aws:ecs:us-west-2:111122223333:container-instance/prod/5c0b\",\n\t\"TaskARN\": \"arn:aws:ecs:us-west-2:111122223333:task/prod/4d1f6c0b2a9e4e7f8a3b5c6d7e8f9a0b\",\n\t\"TaskDefinitionFamily\": \"web\",\n\t\"TaskDefinitionRevision\": \"42\",\n\t\"ContainerName\": \"app\",\n\t\"AvailabilityZone\": \"us-west-2a\"\n}";

    #[test]
    fn initial_file_has_the_task_but_no_container() {
        let file = parse(INITIAL.as_bytes()).unwrap();
        assert!(!file.ready);
        assert_eq!(file.facts.container_id, None);
        assert_eq!(file.facts.family.as_deref(), Some("web"));
        assert_eq!(file.facts.revision.as_deref(), Some("42"));
        assert!(file.facts.task_arn.unwrap().ends_with("4d1f6c0b2a9e4e7f8a3b5c6d7e8f9a0b"));
    }

    #[test]
    fn ready_file_has_the_container() {
        let ready = INITIAL.replace(
            "\"AvailabilityZone\"",
            "\"ContainerID\": \"9b3ff0c1d6f8f5bd1d20b4c2b37e5a4f6a7c8d9e0f1a2b3c4d5e6f708192a3b4\",\n\t\"MetadataFileStatus\": \"READY\",\n\t\"AvailabilityZone\"",
        );
        let file = parse(ready.as_bytes()).unwrap();
        assert!(file.ready);
        assert_eq!(
            file.facts.container_id.as_deref(),
            Some("9b3ff0c1d6f8f5bd1d20b4c2b37e5a4f6a7c8d9e0f1a2b3c4d5e6f708192a3b4")
        );
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse(b"{\"TaskARN\": ").is_err());
        assert!(parse(b"[1,2]").is_err());
        assert!(parse(b"").is_err());
    }
}
