//! cgroup v1 readers: the memory, cpu, cpuacct and pids hierarchies.
//!
//! v1 has no peak reset that is local to sentinit (writing memory.max_usage_in_bytes resets it for
//! everyone), so the peak is compared with its value at start instead. "Unlimited" reads
//! 9223372036854771712 (LONG_MAX rounded down to a page); the effective limit is the smaller of the
//! group's own and memory.stat's hierarchical_memory_limit, which includes the ancestors' limits.

use super::files::{CounterFile, Limit};
use super::reading::{Controller, CpuLimit, Reading};
use std::path::Path;

/// What v1 memory files read when there is no limit.
pub const UNLIMITED: u64 = 0x7FFF_FFFF_FFFF_F000;

pub fn limit_from_bytes(bytes: u64) -> Limit {
    if bytes >= UNLIMITED {
        Limit::Unlimited
    } else {
        Limit::Value(bytes)
    }
}

pub struct Memory {
    usage: Option<CounterFile>,
    max_usage: Option<CounterFile>,
    limit: Option<CounterFile>,
    failcnt: Option<CounterFile>,
    oom_control: Option<CounterFile>,
    stat: Option<CounterFile>,
}

impl Memory {
    pub fn open(dir: &Path) -> Memory {
        Memory {
            usage: CounterFile::open(dir, "memory.usage_in_bytes"),
            max_usage: CounterFile::open(dir, "memory.max_usage_in_bytes"),
            limit: CounterFile::open(dir, "memory.limit_in_bytes"),
            failcnt: CounterFile::open(dir, "memory.failcnt"),
            oom_control: CounterFile::open(dir, "memory.oom_control"),
            stat: CounterFile::open(dir, "memory.stat"),
        }
    }
}

impl Controller for Memory {
    fn read(&self, r: &mut Reading) {
        r.memory_usage = self.usage.as_ref().and_then(CounterFile::value);
        r.memory_peak = self.max_usage.as_ref().and_then(CounterFile::value);
        let stat = self.stat.as_ref().and_then(CounterFile::keyed);
        let own = self.limit.as_ref().and_then(CounterFile::value);
        let hierarchical = stat.as_ref().and_then(|s| s.get("hierarchical_memory_limit"));
        r.memory_limit = match (own, hierarchical) {
            (Some(a), Some(b)) => Some(limit_from_bytes(a.min(b))),
            (Some(a), None) | (None, Some(a)) => Some(limit_from_bytes(a)),
            (None, None) => None,
        };
        r.limit_hits = self.failcnt.as_ref().and_then(CounterFile::value);
        // oom_kill arrived in 4.13; older kernels have only oom_kill_disable and under_oom.
        r.oom_kills = self.oom_control.as_ref().and_then(CounterFile::keyed).and_then(|k| k.get("oom_kill"));
        r.inactive_file = stat.as_ref().and_then(|s| s.get("total_inactive_file").or_else(|| s.get("inactive_file")));
    }
}

/// The `cpu` hierarchy: CFS quota and throttling.
pub struct Cpu {
    stat: Option<CounterFile>,
    quota: Option<CounterFile>,
    period: Option<CounterFile>,
}

impl Cpu {
    pub fn open(dir: &Path) -> Cpu {
        Cpu {
            stat: CounterFile::open(dir, "cpu.stat"),
            quota: CounterFile::open(dir, "cpu.cfs_quota_us"),
            period: CounterFile::open(dir, "cpu.cfs_period_us"),
        }
    }
}

impl Controller for Cpu {
    fn read(&self, r: &mut Reading) {
        // throttled_time is in nanoseconds on v1.
        r.cpu_throttled_us =
            self.stat.as_ref().and_then(CounterFile::keyed).and_then(|s| s.get("throttled_time")).map(|ns| ns / 1000);
        let quota = self.quota.as_ref().and_then(CounterFile::read).and_then(|q| q.trim().parse::<i64>().ok());
        let period = self.period.as_ref().and_then(CounterFile::value).filter(|p| *p > 0);
        r.cpu_limit = match (quota, period) {
            (Some(q), _) if q < 0 => Some(CpuLimit::Unlimited),
            (Some(q), Some(p)) => Some(CpuLimit::Cores(q as f64 / p as f64)),
            _ => None,
        };
    }
}

/// The `cpuacct` hierarchy: CPU time used.
pub struct CpuAcct {
    usage: Option<CounterFile>,
    stat: Option<CounterFile>,
    ticks_per_second: u64,
}

impl CpuAcct {
    pub fn open(dir: &Path) -> CpuAcct {
        // SAFETY: sysconf only queries a constant of the system.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        CpuAcct {
            usage: CounterFile::open(dir, "cpuacct.usage"),
            stat: CounterFile::open(dir, "cpuacct.stat"),
            ticks_per_second: if ticks > 0 { ticks as u64 } else { 100 },
        }
    }
}

impl Controller for CpuAcct {
    fn read(&self, r: &mut Reading) {
        r.cpu_usage_us = self.usage.as_ref().and_then(CounterFile::value).map(|ns| ns / 1000);
        let stat = self.stat.as_ref().and_then(CounterFile::keyed);
        let to_us = |ticks: u64| ticks.saturating_mul(1_000_000) / self.ticks_per_second;
        r.cpu_user_us = stat.as_ref().and_then(|s| s.get("user")).map(to_us);
        r.cpu_system_us = stat.as_ref().and_then(|s| s.get("system")).map(to_us);
    }
}

pub struct Pids {
    current: Option<CounterFile>,
}

impl Pids {
    pub fn open(dir: &Path) -> Pids {
        Pids { current: CounterFile::open(dir, "pids.current") }
    }
}

impl Controller for Pids {
    fn read(&self, r: &mut Reading) {
        r.pids_current = self.current.as_ref().and_then(CounterFile::value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_is_recognised() {
        assert_eq!(limit_from_bytes(9223372036854771712), Limit::Unlimited);
        assert_eq!(limit_from_bytes(u64::MAX), Limit::Unlimited);
        assert_eq!(limit_from_bytes(67108864), Limit::Value(67108864));
    }
}
