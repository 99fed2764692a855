//! The container's CPU and memory limits, exported to the workload for sizing worker pools.
//!
//! Many runtimes and scripts size their thread and worker pools from the host's CPU count (`nproc`,
//! `os.cpu_count()`, older JVMs and Go runtimes), so a container limited to one and a half cores on a
//! 64-core host starts 64 workers and spends its quota being throttled.
//! sentinit knows the limit before the workload exists and exports it:
//!
//! - `SENTINIT_CPU_LIMIT`, cores as a decimal (`0.5`, `2`, `1.25`): the cgroup's hard quota, the
//!   tightest along the ancestors (v2 `cpu.max`, v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`); else
//!   the ECS task's `Limits.CPU` (vCPU: a hard cap on Fargate, and on EC2 the task's cgroup, which the
//!   container cannot see); else the ECS container's `Limits.CPU` in CPU units / 1024, when not 0 (on
//!   EC2 that is `cpu.shares`, a weight rather than a cap, but it is what the task definition asks for).
//! - `SENTINIT_CPUS`: that limit rounded up, at least 1 and at most the CPUs sentinit may run on
//!   (sched_getaffinity, which the workload inherits); that CPU count when there is no limit.
//! - `SENTINIT_MEMORY_LIMIT_BYTES`: the tightest memory limit (v1's hierarchical limit, v2 `memory.max`
//!   along the ancestors); unset when unlimited.
//!
//! The cgroup figures are the accountant's, read at start (for the workload's own group they are the
//! parent's, which it inherits). Everything is integer millicores: sentinit neither parses nor prints
//! floating point. A variable already set in sentinit's environment wins and is what sentinit prints;
//! `SENTINIT_CPUS` then follows a `SENTINIT_CPU_LIMIT` of yours that is a decimal number.

use crate::accounting::files::Limit;
use crate::accounting::reading::CpuLimit;
use crate::debug;
use crate::environ::Environ;
use crate::identity::Identity;

pub const CPU_LIMIT: &str = "SENTINIT_CPU_LIMIT";
pub const CPUS: &str = "SENTINIT_CPUS";
pub const MEMORY_LIMIT: &str = "SENTINIT_MEMORY_LIMIT_BYTES";

/// What the workload gets: each value as exported (or as the user set it), `None` when not set.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Limits {
    pub cpu_limit: Option<String>,
    /// `cgroup`, `ecs-task`, `ecs-container` or `environment`.
    pub cpu_limit_source: Option<&'static str>,
    pub cpus: Option<String>,
    pub memory_limit_bytes: Option<String>,
    /// The variables the user set (even empty): not exported, left as they are.
    explicit: Vec<&'static str>,
}

/// The figures the limits are made from.
#[derive(Clone, Copy, Debug, Default)]
pub struct Found {
    pub cgroup_cpu: Option<CpuLimit>,
    pub cgroup_memory: Option<Limit>,
    pub ecs_task_cpu_millis: Option<u64>,
    pub ecs_container_cpu_millis: Option<u64>,
    /// CPUs in sentinit's affinity mask.
    pub affinity: Option<usize>,
}

impl Found {
    pub fn new(identity: &Identity, memory: Option<Limit>, cpu: Option<CpuLimit>, affinity: Option<usize>) -> Found {
        Found {
            cgroup_cpu: cpu,
            cgroup_memory: memory,
            ecs_task_cpu_millis: identity.ecs_task_cpu_millis,
            ecs_container_cpu_millis: identity.ecs_container_cpu_millis,
            affinity,
        }
    }
}

/// Works out the three variables from `found`; `env` is sentinit's own environment, whose values win.
pub fn resolve(env: &Environ, found: &Found) -> Limits {
    let explicit = |name: &str| env.get(name).map(|value| value.to_string_lossy().into_owned());
    let mut limits = Limits::default();

    let (cpu_millis, source) = match (found.cgroup_cpu, found.ecs_task_cpu_millis, found.ecs_container_cpu_millis) {
        (Some(CpuLimit::Millicores(millis)), _, _) => (Some(millis), Some("cgroup")),
        (_, Some(millis), _) => (Some(millis), Some("ecs-task")),
        (_, None, Some(millis)) => (Some(millis), Some("ecs-container")),
        _ => (None, None),
    };
    let cpu_millis = match explicit(CPU_LIMIT) {
        Some(value) => {
            limits.explicit.push(CPU_LIMIT);
            limits.cpu_limit_source = (!value.is_empty()).then_some("environment");
            let yours = parse_millis(&value);
            debug!("{CPU_LIMIT} set in the environment ({value:?}): left as it is");
            limits.cpu_limit = (!value.is_empty()).then_some(value);
            yours
        }
        None => {
            limits.cpu_limit = cpu_millis.map(decimal);
            limits.cpu_limit_source = source;
            match (&limits.cpu_limit, source) {
                (Some(cores), Some(source)) => debug!("{CPU_LIMIT}={cores} from {}", describe(source)),
                _ => debug!("{CPU_LIMIT} not set: no CPU quota in the cgroup, no CPU limit from ECS"),
            }
            cpu_millis
        }
    };

    match explicit(CPUS) {
        Some(value) => {
            limits.explicit.push(CPUS);
            debug!("{CPUS} set in the environment ({value:?}): left as it is");
            limits.cpus = (!value.is_empty()).then_some(value);
        }
        None => {
            limits.cpus = cpus(cpu_millis, found.affinity).map(|n| n.to_string());
            if limits.cpus.is_none() {
                debug!("{CPUS} not set: no CPU limit, and the CPU affinity could not be read");
            }
        }
    }

    match explicit(MEMORY_LIMIT) {
        Some(value) => {
            limits.explicit.push(MEMORY_LIMIT);
            debug!("{MEMORY_LIMIT} set in the environment ({value:?}): left as it is");
            limits.memory_limit_bytes = (!value.is_empty()).then_some(value);
        }
        None => {
            limits.memory_limit_bytes = match found.cgroup_memory {
                Some(Limit::Value(bytes)) => Some(bytes.to_string()),
                Some(Limit::Unlimited) => {
                    debug!("{MEMORY_LIMIT} not set: the cgroup has no memory limit");
                    None
                }
                None => {
                    debug!("{MEMORY_LIMIT} not set: no cgroup memory limit could be read");
                    None
                }
            };
        }
    }
    limits
}

fn describe(source: &str) -> &'static str {
    match source {
        "cgroup" => "the cgroup's CPU quota",
        "ecs-task" => "the ECS task's Limits.CPU",
        _ => "the ECS container's Limits.CPU (CPU units / 1024)",
    }
}

/// The limit rounded up, at least 1 and at most `affinity`; `affinity` without a limit.
fn cpus(limit_millis: Option<u64>, affinity: Option<usize>) -> Option<u64> {
    let affinity = affinity.map(|n| n as u64);
    match limit_millis {
        Some(millis) => {
            let rounded_up = millis.div_ceil(1000).max(1);
            Some(affinity.map_or(rounded_up, |n| rounded_up.min(n)))
        }
        None => affinity,
    }
}

/// Millicores as a decimal number of cores: `1500` → `1.5`, `2000` → `2`, `1` → `0.001`.
pub fn decimal(millis: u64) -> String {
    let (whole, fraction) = (millis / 1000, millis % 1000);
    if fraction == 0 {
        return whole.to_string();
    }
    let digits = format!("{fraction:03}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// A decimal number of cores (`1.5`, `2`, `.25`, `0.125`) in millicores, digits beyond the third
/// decimal dropped; `None` for anything else.
fn parse_millis(text: &str) -> Option<u64> {
    let text = text.trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !digits(fraction) {
        return None;
    }
    let whole: u64 = if whole.is_empty() { 0 } else { whole.parse().ok()? };
    let mut millis = 0;
    for (i, b) in fraction.bytes().take(3).enumerate() {
        millis += u64::from(b - b'0') * [100, 10, 1][i];
    }
    whole.checked_mul(1000)?.checked_add(millis)
}

impl Limits {
    /// The variables to export: (name, value) for each one sentinit resolved and the user did not set.
    pub fn exports(&self) -> Vec<(&'static str, String)> {
        [(CPU_LIMIT, &self.cpu_limit), (CPUS, &self.cpus), (MEMORY_LIMIT, &self.memory_limit_bytes)]
            .into_iter()
            .filter(|(name, _)| !self.explicit.contains(name))
            .filter_map(|(name, value)| Some((name, value.clone()?)))
            .collect()
    }

    /// ` cpus=2 cpu_limit=1.5 memory_limit=67108864` for the START line: the values the workload sees,
    /// each only when set.
    pub fn start_fields(&self) -> String {
        let mut fields = String::new();
        for (key, value) in
            [("cpus", &self.cpus), ("cpu_limit", &self.cpu_limit), ("memory_limit", &self.memory_limit_bytes)]
        {
            // A value you set yourself is printed only when it is a number: anything else could split
            // the line's key=value fields.
            if let Some(value) =
                value.as_deref().filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
            {
                fields.push_str(&format!(" {key}={value}"));
            }
        }
        fields
    }

    /// The `--identity` JSON fields: the values as the workload sees them (strings, null when unset:
    /// a value you set is passed on as it is, number or not).
    pub fn json_fields(&self) -> [(&'static str, serde_json::Value); 4] {
        use serde_json::json;
        [
            ("cpus", json!(self.cpus)),
            ("cpu_limit", json!(self.cpu_limit)),
            ("cpu_limit_source", json!(self.cpu_limit_source)),
            ("memory_limit_bytes", json!(self.memory_limit_bytes)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Environ {
        Environ::from_entries(pairs.iter().map(|(k, v)| format!("{k}={v}").into_bytes()).collect())
    }

    #[test]
    fn decimals_both_ways() {
        for (millis, text) in [(500, "0.5"), (2000, "2"), (1250, "1.25"), (1, "0.001"), (250, "0.25"), (10, "0.01")] {
            assert_eq!(decimal(millis), text);
            assert_eq!(parse_millis(text), Some(millis));
        }
        assert_eq!(parse_millis(".25"), Some(250));
        assert_eq!(parse_millis("2."), Some(2000));
        assert_eq!(parse_millis(" 1.5 "), Some(1500));
        assert_eq!(parse_millis("0.1239"), Some(123));
        for bad in ["", ".", "1.5x", "-1", "1e3", "1,5", "+2"] {
            assert_eq!(parse_millis(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn cpus_are_the_limit_rounded_up_within_the_affinity() {
        assert_eq!(cpus(Some(1500), Some(8)), Some(2));
        assert_eq!(cpus(Some(2000), Some(8)), Some(2));
        assert_eq!(cpus(Some(250), Some(8)), Some(1));
        assert_eq!(cpus(Some(1500), Some(1)), Some(1));
        assert_eq!(cpus(None, Some(4)), Some(4));
        assert_eq!(cpus(Some(1500), None), Some(2));
        assert_eq!(cpus(None, None), None);
    }

    #[test]
    fn sources_in_order() {
        let found = Found {
            cgroup_cpu: Some(CpuLimit::Millicores(1500)),
            cgroup_memory: Some(Limit::Value(64 << 20)),
            ecs_task_cpu_millis: Some(250),
            ecs_container_cpu_millis: Some(1000),
            affinity: Some(4),
        };
        let limits = resolve(&env(&[]), &found);
        assert_eq!(limits.cpu_limit.as_deref(), Some("1.5"));
        assert_eq!(limits.cpu_limit_source, Some("cgroup"));
        assert_eq!(limits.cpus.as_deref(), Some("2"));
        assert_eq!(limits.memory_limit_bytes.as_deref(), Some("67108864"));
        assert_eq!(limits.start_fields(), " cpus=2 cpu_limit=1.5 memory_limit=67108864");
        let unlimited = Found { cgroup_cpu: Some(CpuLimit::Unlimited), cgroup_memory: Some(Limit::Unlimited), ..found };
        let limits = resolve(&env(&[]), &unlimited);
        assert_eq!((limits.cpu_limit.as_deref(), limits.cpu_limit_source), (Some("0.25"), Some("ecs-task")));
        assert_eq!(limits.memory_limit_bytes, None);
        let container = Found { ecs_task_cpu_millis: None, ..unlimited };
        assert_eq!(resolve(&env(&[]), &container).cpu_limit.as_deref(), Some("1"));
        let none = Found { ecs_container_cpu_millis: None, ..container };
        let limits = resolve(&env(&[]), &none);
        assert_eq!((limits.cpu_limit.as_deref(), limits.cpus.as_deref()), (None, Some("4")));
        assert_eq!(limits.exports(), vec![(CPUS, "4".to_string())]);
    }

    #[test]
    fn yours_win_and_cpus_follow_your_limit() {
        let found = Found { cgroup_cpu: Some(CpuLimit::Millicores(500)), affinity: Some(8), ..Found::default() };
        let limits = resolve(&env(&[(CPU_LIMIT, "3.5"), (MEMORY_LIMIT, "")]), &found);
        assert_eq!(limits.cpu_limit.as_deref(), Some("3.5"));
        assert_eq!(limits.cpu_limit_source, Some("environment"));
        assert_eq!(limits.cpus.as_deref(), Some("4"));
        assert_eq!(limits.memory_limit_bytes, None);
        assert_eq!(limits.exports(), vec![(CPUS, "4".to_string())], "yours are already in the environment");
        let limits = resolve(&env(&[(CPUS, "16"), (CPU_LIMIT, "lots")]), &found);
        assert_eq!((limits.cpus.as_deref(), limits.cpu_limit.as_deref()), (Some("16"), Some("lots")));
        assert_eq!(limits.exports(), vec![]);
        assert_eq!(resolve(&env(&[(CPU_LIMIT, "lots")]), &found).cpus.as_deref(), Some("8"), "no limit of yours");
    }
}
