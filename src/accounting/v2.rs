//! cgroup v2 readers: memory, cpu and pids files of the unified hierarchy.
//!
//! memory.peak (5.19+) and memory.swap.peak (6.5+) are opened read-write and reset at start: from 6.12
//! on the kernel then reports the peak since the reset for reads through that descriptor only, so the
//! peak covers this run without disturbing anyone else's view; older kernels refuse the write (EINVAL)
//! and the peak covers the group's lifetime.

use super::files::{parse_pressure_total, CounterFile};
use super::reading::{Controller, CpuLimit, Reading};
use std::path::Path;

pub struct Memory {
    current: Option<CounterFile>,
    peak: Option<CounterFile>,
    peak_reset: bool,
    max: Option<CounterFile>,
    events: Option<CounterFile>,
    stat: Option<CounterFile>,
    swap_current: Option<CounterFile>,
    swap_peak: Option<CounterFile>,
    swap_peak_reset: bool,
    pressure: Option<CounterFile>,
}

impl Memory {
    pub fn open(dir: &Path) -> Memory {
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
    fn read(&self, r: &mut Reading) {
        r.memory_usage = self.current.as_ref().and_then(CounterFile::value);
        r.memory_peak = self.peak.as_ref().and_then(CounterFile::value);
        r.memory_peak_reset = self.peak_reset;
        r.memory_limit = self.max.as_ref().and_then(CounterFile::limit);
        let events = self.events.as_ref().and_then(CounterFile::keyed);
        r.oom_kills = events.as_ref().and_then(|e| e.get("oom_kill"));
        r.limit_hits = events.as_ref().and_then(|e| e.get("max"));
        r.inactive_file = self.stat.as_ref().and_then(CounterFile::keyed).and_then(|s| s.get("inactive_file"));
        r.swap_usage = self.swap_current.as_ref().and_then(CounterFile::value);
        r.swap_peak = self.swap_peak.as_ref().and_then(CounterFile::value);
        r.swap_peak_reset = self.swap_peak_reset;
        let pressure = self.pressure.as_ref().and_then(CounterFile::read);
        r.memory_pressure_some_us = pressure.as_deref().and_then(|p| parse_pressure_total(p, "some"));
        r.memory_pressure_full_us = pressure.as_deref().and_then(|p| parse_pressure_total(p, "full"));
    }
}

pub struct Cpu {
    stat: Option<CounterFile>,
    max: Option<CounterFile>,
    pressure: Option<CounterFile>,
}

impl Cpu {
    /// `controller`: the group lists `cpu`, so cpu.max and the throttling counters mean something.
    pub fn open(dir: &Path, controller: bool) -> Cpu {
        Cpu {
            stat: CounterFile::open(dir, "cpu.stat"),
            max: if controller { CounterFile::open(dir, "cpu.max") } else { None },
            pressure: CounterFile::open(dir, "cpu.pressure"),
        }
    }
}

impl Controller for Cpu {
    fn read(&self, r: &mut Reading) {
        let stat = self.stat.as_ref().and_then(CounterFile::keyed);
        r.cpu_usage_us = stat.as_ref().and_then(|s| s.get("usage_usec"));
        r.cpu_user_us = stat.as_ref().and_then(|s| s.get("user_usec"));
        r.cpu_system_us = stat.as_ref().and_then(|s| s.get("system_usec"));
        r.cpu_throttled_us =
            if self.max.is_some() { stat.as_ref().and_then(|s| s.get("throttled_usec")) } else { None };
        r.cpu_limit = self.max.as_ref().and_then(CounterFile::read).and_then(|text| parse_cpu_max(&text));
        r.cpu_pressure_some_us =
            self.pressure.as_ref().and_then(CounterFile::read).and_then(|p| parse_pressure_total(&p, "some"));
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
    Some(CpuLimit::Cores(quota.parse::<u64>().ok()? as f64 / period as f64))
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
    fn read(&self, r: &mut Reading) {
        r.pids_current = self.current.as_ref().and_then(CounterFile::value);
        r.pids_peak = self.peak.as_ref().and_then(CounterFile::value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_max() {
        assert_eq!(parse_cpu_max("max 100000\n"), Some(CpuLimit::Unlimited));
        assert_eq!(parse_cpu_max("50000 100000\n"), Some(CpuLimit::Cores(0.5)));
        assert_eq!(parse_cpu_max("50000"), None);
        assert_eq!(parse_cpu_max("x 100000"), None);
        assert_eq!(parse_cpu_max("1 0"), None);
    }
}
