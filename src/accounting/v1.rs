//! cgroup v1 readers: the memory, cpu, cpuacct and pids hierarchies.
//!
//! v1 has no peak reset that is local to sentinit (writing memory.max_usage_in_bytes resets it for
//! everyone), so the peak is compared with its value at start instead. "Unlimited" reads
//! 9223372036854771712 (LONG_MAX rounded down to a page); the effective limit is the smaller of the
//! group's own and memory.stat's hierarchical_memory_limit, which includes the ancestors' limits.
//!
//! OOM kills and limit hits are counted over the group and every descendant group ([`subtree`]): v1
//! keeps both per group. A failed charge is counted on exactly one counter: the kernel charges
//! memory+swap first and tries the memory counter only when that succeeded (mm/memcontrol.c,
//! `try_charge_memcg`), so `memory.failcnt` and `memory.memsw.failcnt` are added. With
//! `memory.memsw.limit_in_bytes` equal to the memory limit (Docker's `--memory-swap` equal to
//! `--memory`) the memory+swap counter fails first and `memory.failcnt` stays 0. Newer kernels no
//! longer maintain `memory.memsw.failcnt` at all (measured on 6.18: both counters 0 after an OOM kill at
//! such a limit); see [`Reading::memsw_limit`].
//!
//! [`subtree`]: super::subtree

use super::files::{CounterFile, Limit};
use super::reading::{Controller, CpuLimit, Reading};
use super::subtree::Subtree;
use std::path::{Path, PathBuf};

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
    /// Missing when swap accounting is off.
    memsw_failcnt: Option<CounterFile>,
    memsw_limit: Option<CounterFile>,
    oom_control: Option<CounterFile>,
    stat: Option<CounterFile>,
    /// memory.stat's hierarchical limits as the last sample read them, for the `limits` that follows
    /// it: the kernel makes memory.stat anew at every read, a walk of the group's statistics.
    sampled_hierarchical: Option<[Option<u64>; 2]>,
    descendants: Subtree,
}

impl Memory {
    pub fn open(dir: &Path) -> Memory {
        Memory {
            usage: CounterFile::open(dir, "memory.usage_in_bytes"),
            max_usage: CounterFile::open(dir, "memory.max_usage_in_bytes"),
            limit: CounterFile::open(dir, "memory.limit_in_bytes"),
            failcnt: CounterFile::open(dir, "memory.failcnt"),
            memsw_failcnt: CounterFile::open(dir, "memory.memsw.failcnt"),
            memsw_limit: CounterFile::open(dir, "memory.memsw.limit_in_bytes"),
            oom_control: CounterFile::open(dir, "memory.oom_control"),
            stat: CounterFile::open(dir, "memory.stat"),
            sampled_hierarchical: None,
            descendants: Subtree::open(dir),
        }
    }
}

impl Controller for Memory {
    fn sample(&mut self, r: &mut Reading) {
        r.memory_usage = self.usage.as_mut().and_then(CounterFile::value);
        r.memory_peak = self.max_usage.as_mut().and_then(CounterFile::value);
        let memsw_hits = self.memsw_failcnt.as_mut().and_then(CounterFile::value).unwrap_or(0);
        let own_hits = self.failcnt.as_mut().and_then(CounterFile::value).map(|hits| hits.saturating_add(memsw_hits));
        // oom_kill arrived in 4.13; older kernels have only oom_kill_disable and under_oom.
        let own_kills = self.oom_control.as_mut().and_then(|f| f.keyed(["oom_kill"])).and_then(|[kills]| kills);
        // The descendants' counts only add to a group whose own counter answers: unknown stays unknown.
        let below = self.descendants.sample();
        r.oom_kills = own_kills.map(|kills| kills.saturating_add(below.oom_kills));
        r.limit_hits = own_hits.map(|hits| hits.saturating_add(below.limit_hits));
        let stat = self.stat.as_mut().and_then(|f| {
            f.keyed(["total_inactive_file", "inactive_file", "hierarchical_memory_limit", "hierarchical_memsw_limit"])
        });
        r.inactive_file = stat.and_then(|[total, own, ..]| total.or(own));
        self.sampled_hierarchical = stat.map(|[_, _, memory, memsw]| [memory, memsw]);
    }

    fn limits(&mut self, r: &mut Reading) {
        let own = self.limit.as_mut().and_then(CounterFile::value);
        let [hierarchical, hierarchical_memsw] = match self.sampled_hierarchical.take() {
            Some(sampled) => sampled,
            None => self
                .stat
                .as_mut()
                .and_then(|f| f.keyed(["hierarchical_memory_limit", "hierarchical_memsw_limit"]))
                .unwrap_or_default(),
        };
        r.memory_limit = tightest(own, hierarchical);
        let own_memsw = self.memsw_limit.as_mut().and_then(CounterFile::value);
        r.memsw_limit = tightest(own_memsw, hierarchical_memsw);
    }

    fn rescan(&mut self) {
        self.descendants.rescan();
    }
}

/// The smaller of a group's own limit and memory.stat's hierarchical one.
fn tightest(own: Option<u64>, hierarchical: Option<u64>) -> Option<Limit> {
    match (own, hierarchical) {
        (Some(a), Some(b)) => Some(limit_from_bytes(a.min(b))),
        (Some(a), None) | (None, Some(a)) => Some(limit_from_bytes(a)),
        (None, None) => None,
    }
}

/// The `cpu` hierarchy: CFS quota and throttling.
pub struct Cpu {
    stat: Option<CounterFile>,
    quota: Option<QuotaFiles>,
    /// The ancestors' quotas inside the mount, nearest first: CFS enforces each of them.
    ancestor_quotas: Vec<QuotaFiles>,
}

/// `cpu.cfs_quota_us` and `cpu.cfs_period_us` of one group.
struct QuotaFiles {
    quota: CounterFile,
    period: CounterFile,
}

impl QuotaFiles {
    fn open(dir: &Path) -> Option<QuotaFiles> {
        Some(QuotaFiles {
            quota: CounterFile::open(dir, "cpu.cfs_quota_us")?,
            period: CounterFile::open(dir, "cpu.cfs_period_us")?,
        })
    }

    /// -1 is no quota; anything unreadable or malformed is unknown.
    fn limit(&mut self) -> Option<CpuLimit> {
        let quota = self.quota.read().and_then(|q| q.trim().parse::<i64>().ok())?;
        if quota < 0 {
            return Some(CpuLimit::Unlimited);
        }
        let period = self.period.value().filter(|p| *p > 0)?;
        Some(CpuLimit::from_quota(quota as u64, period))
    }
}

impl Cpu {
    /// `ancestors`: the parent groups visible inside the mount, nearest first (see [`super::v2::ancestors`]).
    pub fn open(dir: &Path, ancestors: &[PathBuf]) -> Cpu {
        Cpu {
            stat: CounterFile::open(dir, "cpu.stat"),
            quota: QuotaFiles::open(dir),
            ancestor_quotas: ancestors.iter().filter_map(|a| QuotaFiles::open(a)).collect(),
        }
    }
}

impl Controller for Cpu {
    fn sample(&mut self, r: &mut Reading) {
        // throttled_time is in nanoseconds on v1.
        r.cpu_throttled_us =
            self.stat.as_mut().and_then(|f| f.keyed(["throttled_time"])).and_then(|[ns]| ns).map(|ns| ns / 1000);
    }

    fn limits(&mut self, r: &mut Reading) {
        // The group's own quota must be readable: an ancestor's alone would hide a malformed own file.
        r.cpu_limit = self
            .quota
            .as_mut()
            .and_then(QuotaFiles::limit)
            .map(|own| self.ancestor_quotas.iter_mut().filter_map(QuotaFiles::limit).fold(own, CpuLimit::min));
    }
}

/// The `cpuacct` hierarchy: CPU time used (cpuacct.usage, nanoseconds). The user/system split of
/// cpuacct.stat is not read: the report takes it from RUSAGE_CHILDREN, which covers the workload's tree exactly.
pub struct CpuAcct {
    usage: Option<CounterFile>,
}

impl CpuAcct {
    pub fn open(dir: &Path) -> CpuAcct {
        CpuAcct { usage: CounterFile::open(dir, "cpuacct.usage") }
    }
}

impl Controller for CpuAcct {
    fn sample(&mut self, r: &mut Reading) {
        r.cpu_usage_us = self.usage.as_mut().and_then(CounterFile::value).map(|ns| ns / 1000);
    }

    fn limits(&mut self, _: &mut Reading) {}
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
    fn sample(&mut self, r: &mut Reading) {
        r.pids_current = self.current.as_mut().and_then(CounterFile::value);
    }

    fn limits(&mut self, _: &mut Reading) {}
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
