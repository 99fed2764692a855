//! One snapshot of the container's counters, whichever cgroup version they came from, and the trait
//! the per-controller readers implement.
//!
//! Every field is optional: a file that is missing on this kernel, unreadable or malformed leaves its
//! field `None`, and the report says null instead of guessing.

use super::files::Limit;

/// A CPU limit in thousandths of a core (integers: sentinit parses and prints no floating point), or
/// none.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CpuLimit {
    Millicores(u64),
    Unlimited,
}

impl CpuLimit {
    /// A CFS quota of `quota` µs per `period` µs, rounded to the nearest millicore and at least 1 (a
    /// quota is never no CPU at all).
    pub fn from_quota(quota: u64, period: u64) -> CpuLimit {
        let millis = (u128::from(quota) * 1000 + u128::from(period) / 2) / u128::from(period.max(1));
        CpuLimit::Millicores(u64::try_from(millis).unwrap_or(u64::MAX).max(1))
    }

    /// The tighter of two limits (the kernel enforces every quota along the ancestors).
    pub fn min(self, other: CpuLimit) -> CpuLimit {
        match (self, other) {
            (CpuLimit::Millicores(a), CpuLimit::Millicores(b)) => CpuLimit::Millicores(a.min(b)),
            (CpuLimit::Millicores(a), CpuLimit::Unlimited) | (CpuLimit::Unlimited, CpuLimit::Millicores(a)) => {
                CpuLimit::Millicores(a)
            }
            (CpuLimit::Unlimited, CpuLimit::Unlimited) => CpuLimit::Unlimited,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Reading {
    pub memory_usage: Option<u64>,
    /// The kernel's own high-water mark (v2 memory.peak, v1 memory.max_usage_in_bytes).
    pub memory_peak: Option<u64>,
    /// The peak was reset through sentinit's descriptor at start, so it covers this run only.
    pub memory_peak_reset: bool,
    pub inactive_file: Option<u64>,
    pub memory_limit: Option<Limit>,
    /// OOM kills counted in the group (v2 memory.events oom_kill, v1 memory.oom_control oom_kill).
    pub oom_kills: Option<u64>,
    /// Times the usage hit the limit (v2 memory.events max, v1 memory.failcnt + memory.memsw.failcnt,
    /// descendant groups included).
    pub limit_hits: Option<u64>,
    /// v1 memory+swap limit (memory.memsw.limit_in_bytes, hierarchical_memsw_limit): when one is set,
    /// a failed charge may land on memory.memsw.failcnt, which newer kernels no longer count.
    pub memsw_limit: Option<Limit>,
    pub swap_usage: Option<u64>,
    pub swap_peak: Option<u64>,
    pub swap_peak_reset: bool,
    pub pids_current: Option<u64>,
    pub pids_peak: Option<u64>,
    pub cpu_usage_us: Option<u64>,
    pub cpu_throttled_us: Option<u64>,
    pub cpu_limit: Option<CpuLimit>,
    pub memory_pressure_some_us: Option<u64>,
    pub memory_pressure_full_us: Option<u64>,
    pub cpu_pressure_some_us: Option<u64>,
}

impl Reading {
    /// Usage minus inactive file cache, as docker stats, cAdvisor and the kubelet compute it; the usage
    /// itself when memory.stat has no inactive_file.
    pub fn working_set(&self) -> Option<u64> {
        let usage = self.memory_usage?;
        Some(match self.inactive_file {
            Some(inactive) if inactive < usage => usage - inactive,
            Some(_) => 0,
            None => usage,
        })
    }

    /// The limit in bytes, `None` when unlimited or unknown.
    pub fn memory_limit_bytes(&self) -> Option<u64> {
        match self.memory_limit? {
            Limit::Value(bytes) => Some(bytes),
            Limit::Unlimited => None,
        }
    }
}

/// One controller's files, opened once.
pub trait Controller {
    /// Fills in the counters this controller knows: every sample, so only what a sample needs.
    fn sample(&mut self, into: &mut Reading);
    /// Fills in the limits: at start and at the end only, since they rarely change and a sample must
    /// stay cheap.
    fn limits(&mut self, into: &mut Reading);
    /// Called before the final sample: anything a sample skips to stay cheap is looked at again.
    fn rescan(&mut self) {}
}
