//! cgroup v2 readers: memory, cpu and pids files of the unified hierarchy.
//!
//! memory.peak (5.19+) and memory.swap.peak (6.5+) are opened read-write and reset at start: from 6.12
//! on the kernel then reports the peak since the reset for reads through that descriptor only, so the
//! peak covers this run without disturbing anyone else's view; older kernels refuse the write (EINVAL)
//! and the peak covers the group's lifetime. Inside Docker and Kubernetes /sys/fs/cgroup is mounted
//! read-only, so the read-write open fails (EROFS) and the peak counts only when it rose above its value
//! at start.
//!
//! The memory limit is the smallest `memory.max` of the group and of its ancestors inside the mount: an
//! ECS task-level limit or a Kubernetes pod limit lives on a parent group, and the kernel enforces the
//! tightest one.

use super::files::{parse_pressure_total, CounterFile, Limit};
use super::reading::{Controller, CpuLimit, Reading};
use std::path::{Path, PathBuf};

pub struct Memory {
    current: Option<CounterFile>,
    peak: Option<CounterFile>,
    peak_reset: bool,
    max: Option<CounterFile>,
    /// memory.max of the ancestors inside the mount, nearest first.
    ancestor_max: Vec<CounterFile>,
    events: Option<CounterFile>,
    stat: Option<CounterFile>,
    swap_current: Option<CounterFile>,
    swap_peak: Option<CounterFile>,
    swap_peak_reset: bool,
    pressure: Option<CounterFile>,
}

impl Memory {
    /// `ancestors`: the parent groups visible inside the mount, nearest first (see [`ancestors`]).
    pub fn open(dir: &Path, ancestors: &[PathBuf]) -> Memory {
        let peak = CounterFile::open_writable(dir, "memory.peak");
        let peak_reset = peak.as_ref().is_some_and(|f| f.on_cgroup2() && f.write("reset"));
        let swap_peak = CounterFile::open_writable(dir, "memory.swap.peak");
        let swap_peak_reset = swap_peak.as_ref().is_some_and(|f| f.on_cgroup2() && f.write("reset"));
        crate::debug!(
            "accounting: memory.peak {}",
            match (&peak, peak_reset) {
                (None, _) => "missing (kernel before 5.19?): the peak will be sampled",
                (Some(_), true) => "reset for this run",
                (Some(_), false) => "not resettable (kernel before 6.12?): compared with its value at start",
            }
        );
        Memory {
            current: CounterFile::open(dir, "memory.current"),
            peak,
            peak_reset,
            max: CounterFile::open(dir, "memory.max"),
            ancestor_max: ancestors.iter().filter_map(|a| CounterFile::open(a, "memory.max")).collect(),
            events: CounterFile::open(dir, "memory.events"),
            stat: CounterFile::open(dir, "memory.stat"),
            swap_current: CounterFile::open(dir, "memory.swap.current"),
            swap_peak,
            swap_peak_reset,
            pressure: CounterFile::open(dir, "memory.pressure"),
        }
    }
}

impl Controller for Memory {
    fn sample(&mut self, r: &mut Reading) {
        r.memory_usage = self.current.as_mut().and_then(CounterFile::value);
        r.memory_peak = self.peak.as_mut().and_then(CounterFile::value);
        r.memory_peak_reset = self.peak_reset;
        let events = self.events.as_mut().and_then(|f| f.keyed(["oom_kill", "max"]));
        r.oom_kills = events.and_then(|[kills, _]| kills);
        r.limit_hits = events.and_then(|[_, hits]| hits);
        r.inactive_file = self.stat.as_mut().and_then(|f| f.keyed(["inactive_file"])).and_then(|[inactive]| inactive);
        r.swap_usage = self.swap_current.as_mut().and_then(CounterFile::value);
        r.swap_peak = self.swap_peak.as_mut().and_then(CounterFile::value);
        r.swap_peak_reset = self.swap_peak_reset;
        let pressure = self.pressure.as_mut().and_then(CounterFile::read);
        r.memory_pressure_some_us = pressure.and_then(|p| parse_pressure_total(p, "some"));
        r.memory_pressure_full_us = pressure.and_then(|p| parse_pressure_total(p, "full"));
    }

    fn limits(&mut self, r: &mut Reading) {
        // The group's own limit must be readable: an ancestor's alone would hide a malformed own file.
        r.memory_limit = self
            .max
            .as_mut()
            .and_then(CounterFile::limit)
            .map(|own| self.ancestor_max.iter_mut().filter_map(CounterFile::limit).fold(own, Limit::min));
    }
}

/// The directories between `dir` and `mount_point` (inclusive), nearest first: the ancestors whose
/// limits also bind the group. Empty when the group is the mount point itself (a cgroup namespace).
pub fn ancestors(dir: &Path, mount_point: &Path) -> Vec<PathBuf> {
    dir.ancestors().skip(1).take_while(|a| a.starts_with(mount_point)).map(Path::to_path_buf).collect()
}

pub struct Cpu {
    stat: Option<CounterFile>,
    max: Option<CounterFile>,
    /// cpu.max of the ancestors inside the mount, nearest first: the kernel enforces the tightest
    /// (an ECS task's or a Kubernetes pod's quota lives on a parent group).
    ancestor_max: Vec<CounterFile>,
    pressure: Option<CounterFile>,
}

impl Cpu {
    /// `controller`: the group lists `cpu`, so cpu.max and the throttling counters mean something.
    /// `ancestors`: the parent groups visible inside the mount, nearest first (see [`ancestors`]); a
    /// parent lists `cpu` whenever its child does.
    pub fn open(dir: &Path, controller: bool, ancestors: &[PathBuf]) -> Cpu {
        Cpu {
            stat: CounterFile::open(dir, "cpu.stat"),
            max: if controller { CounterFile::open(dir, "cpu.max") } else { None },
            ancestor_max: if controller {
                ancestors.iter().filter_map(|a| CounterFile::open(a, "cpu.max")).collect()
            } else {
                Vec::new()
            },
            pressure: CounterFile::open(dir, "cpu.pressure"),
        }
    }
}

impl Controller for Cpu {
    fn sample(&mut self, r: &mut Reading) {
        let stat = self.stat.as_mut().and_then(|f| f.keyed(["usage_usec", "throttled_usec"]));
        r.cpu_usage_us = stat.and_then(|[usage, _]| usage);
        r.cpu_throttled_us = if self.max.is_some() { stat.and_then(|[_, throttled]| throttled) } else { None };
        r.cpu_pressure_some_us =
            self.pressure.as_mut().and_then(CounterFile::read).and_then(|p| parse_pressure_total(p, "some"));
    }

    fn limits(&mut self, r: &mut Reading) {
        // The group's own cpu.max must be readable, as for memory.max.
        let ancestors = &mut self.ancestor_max;
        r.cpu_limit =
            self.max.as_mut().and_then(CounterFile::read).and_then(parse_cpu_max).map(|own| {
                ancestors.iter_mut().filter_map(|f| f.read().and_then(parse_cpu_max)).fold(own, CpuLimit::min)
            });
    }
}

/// `$MAX $PERIOD`, `max` meaning no limit.
pub fn parse_cpu_max(text: &str) -> Option<CpuLimit> {
    let mut fields = text.split_whitespace();
    let (quota, period) = (fields.next()?, fields.next()?.parse::<u64>().ok()?);
    if fields.next().is_some() || period == 0 {
        return None;
    }
    if quota == "max" {
        return Some(CpuLimit::Unlimited);
    }
    Some(CpuLimit::from_quota(quota.parse::<u64>().ok()?, period))
}

pub struct Pids {
    current: Option<CounterFile>,
    peak: Option<CounterFile>,
}

impl Pids {
    pub fn open(dir: &Path) -> Pids {
        Pids { current: CounterFile::open(dir, "pids.current"), peak: CounterFile::open(dir, "pids.peak") }
    }
}

impl Controller for Pids {
    fn sample(&mut self, r: &mut Reading) {
        r.pids_current = self.current.as_mut().and_then(CounterFile::value);
        r.pids_peak = self.peak.as_mut().and_then(CounterFile::value);
    }

    fn limits(&mut self, _: &mut Reading) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_max() {
        assert_eq!(parse_cpu_max("max 100000\n"), Some(CpuLimit::Unlimited));
        assert_eq!(parse_cpu_max("50000 100000\n"), Some(CpuLimit::Millicores(500)));
        assert_eq!(parse_cpu_max("150000 100000"), Some(CpuLimit::Millicores(1500)));
        assert_eq!(parse_cpu_max("33333 100000"), Some(CpuLimit::Millicores(333)));
        assert_eq!(parse_cpu_max("1 1000000"), Some(CpuLimit::Millicores(1)), "never 0");
        assert_eq!(parse_cpu_max("50000"), None);
        assert_eq!(parse_cpu_max("x 100000"), None);
        assert_eq!(parse_cpu_max("1 0"), None);
    }

    #[test]
    fn ancestors_inside_the_mount() {
        let mount = Path::new("/sys/fs/cgroup");
        assert_eq!(
            ancestors(Path::new("/sys/fs/cgroup/ecs/task/ctr"), mount),
            [PathBuf::from("/sys/fs/cgroup/ecs/task"), "/sys/fs/cgroup/ecs".into(), "/sys/fs/cgroup".into()]
        );
        assert!(ancestors(mount, mount).is_empty(), "under a cgroup namespace the group is the mount");
    }
}
