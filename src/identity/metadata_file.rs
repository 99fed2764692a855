//! The ECS container metadata file (`ECS_CONTAINER_METADATA_FILE`, EC2 only, opt-in on the agent).
//!
//! The agent writes it before `docker create` with the task-level facts (so `TaskARN` is there at once)
//! and rewrites it after `docker start` with `ContainerID` and `"MetadataFileStatus": "READY"`. Writes
//! are atomic renames, so each poll re-opens the path: an open descriptor would keep the old file.
//!
//! The path comes from the environment, so it can name anything: a FIFO (whose open would block
//! until a writer comes), `/dev/zero` (endless), a huge file. It is opened non-blocking, must be a
//! regular file, and is read up to [`MAX_SIZE`] only.

use super::container_id::is_container_id;
use super::facts::{text, EcsFacts};
use serde_json::Value;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;

/// The largest metadata file read; the agent writes a few KiB.
pub const MAX_SIZE: u64 = 1024 * 1024;

/// Why one read of the file gave no snapshot.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadError {
    /// Not there (yet): the agent may still create it.
    Missing,
    /// Unusable, and will stay so: not a regular file, too large, unreadable, not the agent's JSON.
    Broken(String),
}

/// Reads and parses the file at `path` once, without blocking and without reading more than
/// [`MAX_SIZE`].
pub fn read(path: &str) -> Result<MetadataFile, ReadError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        // Never wait for a writer (FIFO) or a device; std adds O_CLOEXEC itself.
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ReadError::Missing,
            _ => ReadError::Broken(format!("cannot open it ({e})")),
        })?;
    let metadata = file.metadata().map_err(|e| ReadError::Broken(format!("cannot stat it ({e})")))?;
    if !metadata.is_file() {
        return Err(ReadError::Broken("not a regular file".to_string()));
    }
    let mut contents = Vec::new();
    file.take(MAX_SIZE + 1)
        .read_to_end(&mut contents)
        .map_err(|e| ReadError::Broken(format!("cannot read it ({e})")))?;
    if contents.len() as u64 > MAX_SIZE {
        return Err(ReadError::Broken(format!("larger than {} KiB", MAX_SIZE / 1024)));
    }
    parse(&contents).map_err(ReadError::Broken)
}

/// The facts in one snapshot of the file; `container_id` only once the status is READY, and only when
/// it has the shape of a container ID (as for every other source).
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
        container_id: if ready { text(&value, "ContainerID").filter(|id| is_container_id(id)) } else { None },
        task_arn: text(&value, "TaskARN"),
        cluster: text(&value, "Cluster"),
        family: text(&value, "TaskDefinitionFamily"),
        revision: text(&value, "TaskDefinitionRevision"),
        container_name: text(&value, "ContainerName"),
        ..EcsFacts::default()
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
    fn a_container_id_of_the_wrong_shape_is_not_taken() {
        for id in
            ["3edf87da4c0e", "not-a-container", "9B3FF0C1D6F8F5BD1D20B4C2B37E5A4F6A7C8D9E0F1A2B3C4D5E6F708192A3B4"]
        {
            let ready = INITIAL.replace(
                "\"AvailabilityZone\"",
                &format!("\"ContainerID\": \"{id}\",\n\t\"MetadataFileStatus\": \"READY\",\n\t\"AvailabilityZone\""),
            );
            let file = parse(ready.as_bytes()).unwrap();
            assert!(file.ready);
            assert_eq!(file.facts.container_id, None, "{id}");
            assert!(file.facts.task_arn.is_some(), "the rest of the file still counts");
        }
    }

    #[test]
    fn reads_are_bounded_to_regular_files() {
        assert_eq!(read("/nonexistent/ecs-container-metadata.json"), Err(ReadError::Missing));
        assert_eq!(read("/dev/zero"), Err(ReadError::Broken("not a regular file".to_string())));
        assert_eq!(read("/"), Err(ReadError::Broken("not a regular file".to_string())));
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse(b"{\"TaskARN\": ").is_err());
        assert!(parse(b"[1,2]").is_err());
        assert!(parse(b"").is_err());
    }
}
