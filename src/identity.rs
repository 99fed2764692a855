//! Identity: which container and which ECS task sentinit runs in. (Placeholder: filled in by the
//! identity work; the seams used by `lib.rs` are `resolve`, `Identity::exports`, `Identity::start_line`
//! and `Identity::to_json`.)

use crate::config::Config;
use std::ffi::OsString;

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
    pub cgroup_version: Option<u8>,
}

/// Resolves the identity within `config.identity_timeout`; never fails.
pub fn resolve(_config: &Config, _env: &[(OsString, OsString)]) -> Identity {
    Identity::default()
}

impl Identity {
    /// The variables to export to the workload: (name, value) for every resolved value.
    pub fn exports(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    /// `START container=<id> task=<arn>`.
    pub fn start_line(&self) -> String {
        format!(
            "START container={} task={}",
            self.container_id.as_deref().unwrap_or("unknown"),
            self.task_arn.as_deref().unwrap_or("unknown")
        )
    }

    /// The `--identity` JSON object.
    pub fn to_json(&self) -> String {
        "{}".to_string()
    }
}
