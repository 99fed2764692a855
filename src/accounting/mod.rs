//! Accounting: what the workload used, read from the container's cgroup while it runs, and the OOM
//! verdict when it ends.
//!
//! [`Accountant::start`] finds the cgroup (per controller, v1 or v2: [`discover`]), opens every counter
//! file once and takes the baseline before the workload exists, so each counter is reported as the
//! run's delta. The supervision loop calls [`Observer::tick`] every `--interval` (working set, CPU use per
//! interval, heartbeat lines, the 90 % warning) and [`Observer::stop_forwarded`] when it forwards a stop
//! signal. [`Accountant::finish`] takes the last reading and turns it into [`Usage`] for the report.
//! Limits are read at start and at the end only; a sample reads just the counters it tracks, through
//! held descriptors and reused buffers, so that a 10 ms interval stays cheap.
//! CPU time comes from getrusage(RUSAGE_CHILDREN), which covers exactly the reaped process tree, container
//! or not; the cgroup adds memory, limits, throttling, OOM kills and pressure.

pub mod discover;
pub mod files;
pub mod own_group;
pub mod reading;
pub mod subtree;
pub mod v1;
pub mod v2;

use crate::config::Config;
use crate::debug;
use crate::supervise::{Exit, Outcome};
use discover::Cgroups;
use files::Limit;
use reading::{Controller, CpuLimit, Reading};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

/// Baseline and running samples of the container's resource counters.
pub struct Accountant {
    cgroups: Cgroups,
    scope: own_group::Scope,
    /// The workload's own group, when sentinit made one; removed when the accountant is dropped.
    own_group: Option<own_group::OwnGroup>,
    controllers: Vec<Box<dyn Controller>>,
    baseline: Reading,
    started: Instant,
    started_at: SystemTime,
    children_baseline: Option<libc::rusage>,
    heartbeat: Option<Duration>,
    last_heartbeat: (Instant, Option<u64>),
    /// CPU use is rated over gaps of at least half an interval: the early first sample and the one at
    /// the main child's exit can come a fraction of a millisecond after another, and one clock tick of
    /// CPU over such a gap would read as many cores. Without a cgroup CPU counter, at least
    /// [`TICK_WINDOW`] clock ticks too (see [`Accountant::start`]).
    min_rate_gap: Duration,
    /// The most cores the workload can use: the CPUs sentinit may run on (its children inherit the
    /// affinity), and the CPU limit when there is one. No rate above it is reported.
    max_cores: Option<f64>,
    /// The CPUs sentinit (and so the workload) may run on, read once.
    affinity: Option<usize>,
    last_tick_cpu: (Instant, Option<u64>),
    warned_near_limit: bool,
    child: Option<i32>,
    /// The main child's /proc/<pid>/stat, held open while no cgroup counts CPU time.
    child_stat: Option<files::CounterFile>,
    ticks_per_second: u64,
    samples: Samples,
    /// Lines to print, for the report module (see [`Event`]).
    events: Vec<Event>,
    /// Which processes used the memory and CPU, and which ones the OOM killer took.
    processes: crate::processes::Processes,
}

/// What the ticks saw.
#[derive(Default)]
struct Samples {
    count: u64,
    working_set_max: Option<u64>,
    working_set_sum: u128,
    working_set_count: u64,
    usage_max: Option<u64>,
    swap_max: Option<u64>,
    pids_max: Option<u64>,
    cpu_max_cores: Option<f64>,
}

/// The usage so far, for heartbeat and stop lines.
#[derive(Clone, Debug, Default)]
pub struct Progress {
    pub elapsed: Duration,
    pub working_set: Option<u64>,
    pub memory_limit: Option<Limit>,
    /// CPU time since the start, microseconds.
    pub cpu_us: Option<u64>,
    /// Mean CPU cores used since the previous heartbeat.
    pub cpu_cores: Option<f64>,
    pub throttled_us: Option<u64>,
    pub oom_kills: Option<u64>,
}

/// The resource usage of one run, for the report. `None` is unknown, never a guessed 0.
#[derive(Clone, Debug)]
pub struct Usage {
    pub started_at: SystemTime,
    pub duration: Duration,
    pub cgroup_version: Option<u8>,
    /// `container`, `own` or `shared` (see own_group).
    pub cgroup_scope: Option<&'static str>,
    pub cgroup_foreign_processes: Option<u64>,
    pub memory_peak_bytes: Option<u64>,
    pub memory_peak_source: Option<&'static str>,
    /// The limit as read: `Some(Unlimited)` and `None` (unknown) both give a null `memory_limit_bytes`.
    pub memory_limit: Option<Limit>,
    pub memory_working_set_max_bytes: Option<u64>,
    pub memory_working_set_mean_bytes: Option<u64>,
    pub swap_peak_bytes: Option<u64>,
    pub max_rss_bytes: Option<u64>,
    pub cpu_user_ms: Option<u64>,
    pub cpu_system_ms: Option<u64>,
    pub cpu_throttled_ms: Option<u64>,
    pub cpu_limit: Option<CpuLimit>,
    pub cpu_mean_cores: Option<f64>,
    pub cpu_max_cores: Option<f64>,
    pub oom_killed: Option<bool>,
    pub oom_kills: Option<u64>,
    pub oom_suspected: Option<bool>,
    pub memory_limit_hits: Option<u64>,
    pub pids_peak: Option<u64>,
    pub memory_pressure_some_ms: Option<u64>,
    pub memory_pressure_full_ms: Option<u64>,
    pub cpu_pressure_some_ms: Option<u64>,
    pub processes: u64,
    pub samples: u64,
    /// The largest processes by peak RSS, descending (see [`crate::processes`]).
    pub top_processes: Vec<crate::processes::ProcessFigures>,
    /// Whether the main child is among the named OOM victims; `None` when none was named.
    pub main_child_oom_victim: Option<bool>,
    /// The processes the OOM killer took; `None` when no OOM-kill counter could be read.
    pub oom_victims: Option<Vec<crate::processes::Victim>>,
}

impl Usage {
    /// A run of which nothing is known (one process, no sample): the base the tests of the modules
    /// that read a `Usage` fill in.
    #[cfg(test)]
    pub fn unknown() -> Usage {
        Usage {
            started_at: std::time::UNIX_EPOCH,
            duration: Duration::ZERO,
            cgroup_version: None,
            cgroup_scope: None,
            cgroup_foreign_processes: None,
            memory_peak_bytes: None,
            memory_peak_source: None,
            memory_limit: None,
            memory_working_set_max_bytes: None,
            memory_working_set_mean_bytes: None,
            swap_peak_bytes: None,
            max_rss_bytes: None,
            cpu_user_ms: None,
            cpu_system_ms: None,
            cpu_throttled_ms: None,
            cpu_limit: None,
            cpu_mean_cores: None,
            cpu_max_cores: None,
            oom_killed: None,
            oom_kills: None,
            oom_suspected: None,
            memory_limit_hits: None,
            pids_peak: None,
            memory_pressure_some_ms: None,
            memory_pressure_full_ms: None,
            cpu_pressure_some_ms: None,
            processes: 1,
            samples: 0,
            top_processes: Vec::new(),
            oom_victims: None,
            main_child_oom_victim: None,
        }
    }

    pub fn memory_limit_bytes(&self) -> Option<u64> {
        match self.memory_limit? {
            Limit::Value(bytes) => Some(bytes),
            Limit::Unlimited => None,
        }
    }

    pub fn cpu_limit_cores(&self) -> Option<f64> {
        match self.cpu_limit? {
            CpuLimit::Millicores(millis) => Some(millis as f64 / 1000.0),
            CpuLimit::Unlimited => None,
        }
    }
}

impl Accountant {
    /// Finds the cgroup and takes the baseline, before the workload starts.
    pub fn start(config: &Config, files: &crate::paths::SelfFiles) -> Accountant {
        let mut cgroups = discover::discover(files);
        let (scope, own_group) = own_group::settle(&mut cgroups, config.cgroup);
        debug!(
            "accounting: memory {}, cpu {}, cpuacct {}, pids {}",
            describe(&cgroups.memory),
            describe(&cgroups.cpu),
            describe(&cgroups.cpuacct),
            describe(&cgroups.pids)
        );
        let controllers = open_controllers(&cgroups);
        let mut accountant = Accountant {
            cgroups,
            scope,
            own_group,
            controllers,
            baseline: Reading::default(),
            started: Instant::now(),
            started_at: SystemTime::now(),
            children_baseline: children_rusage(),
            min_rate_gap: config.interval / 2,
            max_cores: None,
            affinity: affinity_cpus(),
            heartbeat: config.heartbeat,
            last_heartbeat: (Instant::now(), None),
            last_tick_cpu: (Instant::now(), None),
            warned_near_limit: false,
            child: None,
            child_stat: None,
            ticks_per_second: nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
                .ok()
                .flatten()
                .map_or(100, |ticks| ticks.max(1) as u64),
            samples: Samples::default(),
            events: Vec::new(),
            processes: crate::processes::Processes::new(),
        };
        accountant.baseline = accountant.read(true);
        accountant.max_cores = max_cores(accountant.affinity, accountant.baseline.cpu_limit);
        if accountant.baseline.cpu_usage_us.is_none() {
            // CPU time then comes from /proc/<pid>/stat, in clock ticks (utime, stime, cutime and
            // cstime each rounded down), and from RUSAGE_CHILDREN at each reap: two readings can each be
            // a few ticks short. Over a 10 ms gap one tick is a whole core, so rates are taken over at
            // least TICK_WINDOW ticks, where a few ticks are a few percent of a core.
            let window = Duration::from_micros(TICK_WINDOW * 1_000_000 / accountant.ticks_per_second);
            accountant.min_rate_gap = accountant.min_rate_gap.max(window);
        }
        accountant.processes.set_oom_baseline(accountant.baseline.oom_kills);
        let now = Instant::now();
        accountant.started = now;
        accountant.started_at = SystemTime::now();
        accountant.last_heartbeat = (now, Some(0));
        accountant.last_tick_cpu = (now, Some(0));
        accountant
    }

    /// The memory and CPU limits read at start, the tightest along the ancestors: those of the workload's
    /// own group too, which inherits them (see [`crate::limits`]).
    pub fn limits(&self) -> (Option<Limit>, Option<CpuLimit>, Option<usize>) {
        (self.baseline.memory_limit, self.baseline.cpu_limit, self.affinity)
    }

    /// The `cgroup.procs` descriptors the workload writes itself into between clone and exec (its own
    /// group), if any; they stay open until `workload_started`.
    pub fn join_on_start(&self) -> Vec<i32> {
        self.own_group.as_ref().map(|group| group.procs_descriptors()).unwrap_or_default()
    }

    /// Called once the workload has exec'd as `pid`. sentinit then lowers its own oom_score_adj to -1000
    /// so that the OOM killer (and a memory.oom.group kill) spares it and the report still gets printed.
    /// Doing it only now means the workload was forked with, and keeps, the original value.
    /// `join_errno`: what the workload's join of its own group failed with (0: nothing known to fail).
    pub fn workload_started(&mut self, pid: i32, join_errno: i32) {
        self.child = Some(pid);
        if self.baseline.cpu_usage_us.is_none() && crate::proctree::is_own() {
            // No cgroup counts CPU time: the main child's own, until it is reaped, comes from /proc (the
            // real one: it is a real pid, and only this namespace's /proc names it), through one
            // descriptor.
            self.child_stat = files::CounterFile::open(Path::new(&format!("/proc/{pid}")), "stat");
        }
        if let Some(group) = self.own_group.as_mut() {
            group.joined();
            if crate::proctree::is_own() || join_errno != 0 {
                group.check_joined(pid, join_errno);
            }
        }
        protect_from_oom_killer();
    }

    /// The counters now; the limits too when `limits` (at start and at the end), after a full look
    /// (the child groups of a v1 memory group).
    fn read(&mut self, limits: bool) -> Reading {
        let mut reading = Reading::default();
        for controller in &mut self.controllers {
            if limits {
                controller.rescan();
            }
            controller.sample(&mut reading);
            if limits {
                controller.limits(&mut reading);
            }
        }
        reading
    }

    /// CPU time used since the start: the cgroup's when known, otherwise the reaped descendants' plus the
    /// main child's own (grandchildren still running are then missing).
    fn cpu_so_far_us(&mut self, reading: &Reading) -> Option<u64> {
        if let Some(delta) = delta(self.baseline.cpu_usage_us, reading.cpu_usage_us) {
            return Some(delta);
        }
        let (user, system) = rusage_delta(self.children_baseline.as_ref(), children_rusage().as_ref())?;
        let main_ticks = match self.child_stat.as_mut().map(|f| f.read().and_then(process_cpu_ticks)) {
            Some(Some(ticks)) => ticks,
            Some(None) => {
                // Reaped (ESRCH): its time is in RUSAGE_CHILDREN now, and the descriptor has no more use.
                self.child_stat = None;
                0
            }
            None => 0,
        };
        Some(user + system + main_ticks.saturating_mul(1_000_000) / self.ticks_per_second)
    }

    fn progress(&self, reading: &Reading, cpu_us: Option<u64>, cores: Option<f64>) -> Progress {
        Progress {
            elapsed: self.started.elapsed(),
            working_set: reading.working_set(),
            memory_limit: self.baseline.memory_limit,
            cpu_us,
            cpu_cores: cores,
            throttled_us: delta(self.baseline.cpu_throttled_us, reading.cpu_throttled_us),
            oom_kills: delta(self.baseline.oom_kills, reading.oom_kills),
        }
    }

    /// The final sample, after the workload and everything it left are gone.
    pub fn finish(mut self, outcome: &Outcome) -> Usage {
        let end = self.read(true);
        let base = &self.baseline;
        let children = children_rusage();
        let cpu = rusage_delta(self.children_baseline.as_ref(), children.as_ref());
        let duration = outcome.ended.saturating_duration_since(self.started);

        let kernel_peak = peak_of_run(base.memory_peak, end.memory_peak, end.memory_peak_reset);
        let max_rss_bytes = children.map(|r| r.ru_maxrss as u64 * 1024).filter(|b| *b > 0);
        let (memory_peak_bytes, memory_peak_source) = if let Some(peak) = kernel_peak {
            let name = if self.cgroups.memory.as_ref().is_some_and(|l| l.version == 1) {
                "memory.max_usage_in_bytes"
            } else {
                "memory.peak"
            };
            (Some(peak), Some(name))
        } else if let Some(sampled) = self.samples.usage_max {
            (Some(sampled), Some("sampled"))
        } else if self.cgroups.memory.is_none() && max_rss_bytes.is_some() {
            // No cgroup to ask: the largest single process is the best the kernel can say.
            (max_rss_bytes, Some("ru_maxrss"))
        } else {
            (None, None)
        };
        let memory_limit = end.memory_limit.or(base.memory_limit);

        let oom_kills = delta(base.oom_kills, end.oom_kills);
        let oom_killed = oom_kills.map(|kills| kills > 0);
        let memsw_limited = matches!(end.memsw_limit.or(base.memsw_limit), Some(Limit::Value(_)));
        let memory_limit_hits = match delta(base.limit_hits, end.limit_hits) {
            // A v1 memory+swap limit is set, the group had an OOM kill, and no counter saw the limit
            // hit: the charge failed on the memory+swap counter of a kernel that no longer maintains
            // memory.memsw.failcnt (measured on 6.18). 0 would be made up.
            Some(0) if memsw_limited && oom_killed == Some(true) => None,
            hits => hits,
        };
        let oom_suspected = suspect_oom(outcome, oom_killed, memory_peak_bytes, &memory_limit);
        let attribution = self.processes.finish(end.oom_kills);

        let cpu_user_ms = cpu.map(|(user, _)| user / 1000);
        let cpu_system_ms = cpu.map(|(_, system)| system / 1000);
        let cpu_mean_cores = match cpu {
            Some((user, system)) if !duration.is_zero() => Some((user + system) as f64 / duration.as_micros() as f64),
            _ => None,
        };
        let ms = |us: Option<u64>| us.map(|us| us / 1000);
        let usage = Usage {
            started_at: self.started_at,
            duration,
            cgroup_version: self.cgroups.version(),
            cgroup_scope: self.scope.kind,
            cgroup_foreign_processes: self.scope.foreign,
            memory_peak_bytes,
            memory_peak_source,
            memory_limit,
            memory_working_set_max_bytes: self.samples.working_set_max,
            memory_working_set_mean_bytes: (self.samples.working_set_count > 0)
                .then(|| (self.samples.working_set_sum / self.samples.working_set_count as u128) as u64),
            swap_peak_bytes: peak_of_run(base.swap_peak, end.swap_peak, end.swap_peak_reset).or(self.samples.swap_max),
            max_rss_bytes,
            cpu_user_ms,
            cpu_system_ms,
            cpu_throttled_ms: ms(delta(base.cpu_throttled_us, end.cpu_throttled_us)),
            cpu_limit: end.cpu_limit.or(base.cpu_limit),
            cpu_mean_cores,
            cpu_max_cores: self.samples.cpu_max_cores,
            oom_killed,
            oom_kills,
            oom_suspected,
            memory_limit_hits,
            pids_peak: peak_of_run(base.pids_peak, end.pids_peak, false).or(self.samples.pids_max),
            memory_pressure_some_ms: ms(delta(base.memory_pressure_some_us, end.memory_pressure_some_us)),
            memory_pressure_full_ms: ms(delta(base.memory_pressure_full_us, end.memory_pressure_full_us)),
            cpu_pressure_some_ms: ms(delta(base.cpu_pressure_some_us, end.cpu_pressure_some_us)),
            processes: outcome.reaped,
            samples: self.samples.count,
            top_processes: attribution.top,
            main_child_oom_victim: attribution
                .oom_victims
                .as_ref()
                .filter(|victims| !victims.is_empty())
                .map(|victims| victims.iter().any(|v| Some(v.pid) == self.child)),
            oom_victims: attribution.oom_victims,
        };
        // The workload's own group goes now: everything in it has been reaped. The descriptors into it
        // are closed first.
        self.controllers.clear();
        self.child_stat = None;
        self.own_group.take();
        usage
    }
}

/// What happened while the workload runs that is worth a line: the accountant records it, the report
/// module prints it (see `report::Narrator`), so that data flows one way, accounting to report.
#[derive(Clone, Debug)]
pub enum Event {
    /// The working set passed 90 % of the memory limit (once per run).
    NearLimit { working_set: u64, limit: u64 },
    /// `--heartbeat` is due.
    Heartbeat(Progress),
    /// A stop signal was forwarded to the workload.
    StopForwarded { signal: i32, progress: Progress },
    /// `--timeout` was reached.
    TimedOut { timeout: Duration, signal: i32, kill_in: Duration, progress: Progress },
}

impl Accountant {
    /// The events recorded since the last call, oldest first.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }
}

impl Accountant {
    /// One sample; `main_exited`: the main child has just exited (see Processes::sample_at_main_exit).
    fn sample(&mut self, main_exited: bool) {
        // The processes first, the counters after: see Processes::sample.
        let mut reading = Reading::default();
        let controllers = &mut self.controllers;
        let read_oom_kills = || {
            for controller in controllers.iter_mut() {
                controller.sample(&mut reading);
            }
            reading.oom_kills
        };
        match (main_exited, self.child) {
            (true, Some(main)) => self.processes.sample_at_main_exit(main, read_oom_kills),
            _ => self.processes.sample(read_oom_kills),
        }
        let now = Instant::now();
        let samples = &mut self.samples;
        samples.count += 1;
        let working_set = reading.working_set();
        if let Some(ws) = working_set {
            samples.working_set_max = Some(samples.working_set_max.map_or(ws, |m| m.max(ws)));
            samples.working_set_sum += ws as u128;
            samples.working_set_count += 1;
        }
        let max = |current: Option<u64>, seen: Option<u64>| match (current, seen) {
            (Some(c), Some(s)) => Some(c.max(s)),
            (c, s) => c.or(s),
        };
        samples.usage_max = max(reading.memory_usage, samples.usage_max);
        samples.swap_max = max(reading.swap_usage, samples.swap_max);
        samples.pids_max = max(reading.pids_current, samples.pids_max);

        let cpu_us = self.cpu_so_far_us(&reading);
        if now.saturating_duration_since(self.last_tick_cpu.0) >= self.min_rate_gap {
            if let Some(cores) = cores_between(self.last_tick_cpu, (now, cpu_us), self.max_cores) {
                self.samples.cpu_max_cores = Some(self.samples.cpu_max_cores.map_or(cores, |m| m.max(cores)));
            }
            self.last_tick_cpu = (now, cpu_us);
        }

        if let (Some(ws), Some(limit), false) =
            (working_set, self.baseline.memory_limit_bytes(), self.warned_near_limit)
        {
            if ws as u128 * 10 > limit as u128 * 9 {
                self.warned_near_limit = true;
                self.events.push(Event::NearLimit { working_set: ws, limit });
            }
        }
        if let Some(every) = self.heartbeat {
            if now.saturating_duration_since(self.last_heartbeat.0) >= every {
                let cores = cores_between(self.last_heartbeat, (now, cpu_us), self.max_cores);
                let progress = self.progress(&reading, cpu_us, cores);
                self.events.push(Event::Heartbeat(progress));
                self.last_heartbeat = (now, cpu_us);
            }
        }
    }
}

impl crate::supervise::Observer for Accountant {
    fn tick(&mut self) {
        self.sample(false);
    }

    fn main_exited(&mut self) {
        // What the main child left behind, before it is ended: a run shorter than --interval still
        // gets a sample.
        self.sample(true);
    }

    fn child_exiting(&mut self, exiting: &crate::supervise::Exiting) {
        self.processes.exiting(exiting, Some(exiting.pid) == self.child);
    }

    fn child_reaped(&mut self, reaped: &crate::supervise::Reaped) {
        self.processes.reaped(reaped);
    }

    fn stop_forwarded(&mut self, signal: i32) {
        let reading = self.read(false);
        let cpu_us = self.cpu_so_far_us(&reading);
        let progress = self.progress(&reading, cpu_us, None);
        self.events.push(Event::StopForwarded { signal, progress });
    }

    fn timed_out(&mut self, timeout: Duration, signal: i32, kill_in: Duration) {
        let reading = self.read(false);
        let cpu_us = self.cpu_so_far_us(&reading);
        let progress = self.progress(&reading, cpu_us, None);
        self.events.push(Event::TimedOut { timeout, signal, kill_in, progress });
    }
}

/// The memory and CPU limits of the cgroup sentinit is in, for `--identity`, which starts no accountant:
/// the same readers, with descriptors held for this one read only.
pub fn limits_now(files: &crate::paths::SelfFiles) -> (Option<Limit>, Option<CpuLimit>) {
    let mut reading = Reading::default();
    for mut controller in open_controllers(&discover::discover(files)) {
        controller.limits(&mut reading);
    }
    (reading.memory_limit, reading.cpu_limit)
}

fn describe(location: &Option<discover::Location>) -> String {
    match location {
        Some(l) => format!("v{} {}", l.version, l.dir.display()),
        None => "none".to_string(),
    }
}

fn open_controllers(cgroups: &Cgroups) -> Vec<Box<dyn Controller>> {
    let mut controllers: Vec<Box<dyn Controller>> = Vec::new();
    if let Some(l) = &cgroups.memory {
        controllers.push(if l.version == 1 {
            Box::new(v1::Memory::open(&l.dir))
        } else {
            Box::new(v2::Memory::open(&l.dir, &v2::ancestors(&l.dir, &l.mount_point)))
        });
    }
    if let Some(l) = &cgroups.cpu {
        let ancestors = v2::ancestors(&l.dir, &l.mount_point);
        controllers.push(if l.version == 1 {
            Box::new(v1::Cpu::open(&l.dir, &ancestors))
        } else {
            Box::new(v2::Cpu::open(&l.dir, cgroups.v2_cpu_controller, &ancestors))
        });
    }
    if let Some(l) = &cgroups.cpuacct {
        controllers.push(Box::new(v1::CpuAcct::open(&l.dir)));
    }
    if let Some(l) = &cgroups.pids {
        controllers.push(if l.version == 1 {
            Box::new(v1::Pids::open(&l.dir))
        } else {
            Box::new(v2::Pids::open(&l.dir))
        });
    }
    controllers
}

/// The growth of a counter; unknown when either end is unknown or it went backwards (reset by someone).
fn delta(start: Option<u64>, end: Option<u64>) -> Option<u64> {
    end?.checked_sub(start?)
}

/// The kernel's peak, when it belongs to this run: it was reset at start, or it rose above its value at
/// start (a higher mark can only have been set during the run).
fn peak_of_run(start: Option<u64>, end: Option<u64>, reset: bool) -> Option<u64> {
    let end = end?;
    if reset {
        return Some(end);
    }
    (end > start?).then_some(end)
}

/// Without a cgroup CPU counter, CPU use is rated over at least this many clock ticks (250 ms at
/// 100 Hz): the readings' rounding, a few ticks, is then a few percent of a core.
const TICK_WINDOW: u64 = 25;

/// Mean cores used between two (time, cpu µs) points, at most `max_cores`: CPU time that arrives in a
/// lump (a descendant's whole time when it is reaped, counter rounding) cannot make a figure that no
/// machine could have produced.
fn cores_between(from: (Instant, Option<u64>), to: (Instant, Option<u64>), max_cores: Option<f64>) -> Option<f64> {
    let micros = to.0.saturating_duration_since(from.0).as_micros();
    let used = to.1?.checked_sub(from.1?)?;
    let cores = (micros > 0).then(|| used as f64 / micros as f64)?;
    Some(max_cores.map_or(cores, |max| cores.min(max)))
}

/// The CPUs this process may run on (sched_getaffinity), which the workload inherits.
pub fn affinity_cpus() -> Option<usize> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity fills it in.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: the size passed is that of the live local above.
    let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    // SAFETY: CPU_COUNT reads the set filled in above.
    (rc == 0).then(|| unsafe { libc::CPU_COUNT(&set) } as usize).filter(|n| *n > 0)
}

/// The most cores a workload can use: its CPUs, and the CPU limit when it is tighter.
fn max_cores(cpus: Option<usize>, limit: Option<CpuLimit>) -> Option<f64> {
    let cpus = cpus.map(|n| n as f64);
    match limit {
        Some(CpuLimit::Millicores(millis)) if millis > 0 => {
            let limit = millis as f64 / 1000.0;
            Some(cpus.map_or(limit, |n| n.min(limit)))
        }
        _ => cpus,
    }
}

/// The main child died of a SIGKILL sentinit did not send, at 95 % of the limit or more, and no OOM
/// counter could be read. `None` when even that cannot be judged.
fn suspect_oom(outcome: &Outcome, oom_killed: Option<bool>, peak: Option<u64>, limit: &Option<Limit>) -> Option<bool> {
    if oom_killed.is_some() {
        return Some(false);
    }
    if outcome.exit != Exit::Signal(libc::SIGKILL) || outcome.killed_by_sentinit {
        return Some(false);
    }
    match (peak, limit) {
        (Some(peak), Some(Limit::Value(limit))) => Some(peak as u128 * 100 >= *limit as u128 * 95),
        (_, Some(Limit::Unlimited)) => Some(false),
        _ => None,
    }
}

fn children_rusage() -> Option<libc::rusage> {
    // SAFETY: rusage is plain data; getrusage fills it in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes to the live local above.
    (unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) } == 0).then_some(usage)
}

/// (user µs, system µs) between two RUSAGE_CHILDREN readings.
fn rusage_delta(start: Option<&libc::rusage>, end: Option<&libc::rusage>) -> Option<(u64, u64)> {
    let micros = |t: libc::timeval| (t.tv_sec as u64).saturating_mul(1_000_000) + t.tv_usec as u64;
    let (start, end) = (start?, end?);
    Some((
        micros(end.ru_utime).saturating_sub(micros(start.ru_utime)),
        micros(end.ru_stime).saturating_sub(micros(start.ru_stime)),
    ))
}

/// utime + stime + cutime + cstime, in clock ticks, from the text of /proc/<pid>/stat.
fn process_cpu_ticks(stat: &str) -> Option<u64> {
    // Fields after the command name, which may contain spaces and parentheses.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    // utime is field 14 of the line, i.e. index 11 after the state field (field 3).
    let mut times = rest.split(' ').skip(11).take(4).map(|f| f.parse::<u64>().ok());
    let mut sum = 0u64;
    for _ in 0..4 {
        sum = sum.checked_add(times.next()??)?;
    }
    Some(sum)
}

/// Sets sentinit's own oom_score_adj to -1000. Lowering needs CAP_SYS_RESOURCE; without it sentinit
/// keeps its value and says so with -v. One write, no read first: writing the value it already has
/// succeeds without the capability.
fn protect_from_oom_killer() {
    match std::fs::OpenOptions::new().write(true).open("/proc/self/oom_score_adj") {
        Ok(mut file) => match std::io::Write::write_all(&mut file, b"-1000") {
            Ok(()) => debug!("oom_score_adj set to -1000: the OOM killer spares sentinit"),
            Err(e) => debug!(
                "cannot set oom_score_adj to -1000 ({e}; needs CAP_SYS_RESOURCE): an OOM kill may take sentinit and its report"
            ),
        },
        Err(e) => debug!("cannot open /proc/self/oom_score_adj ({e}): an OOM kill may take sentinit and its report"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(exit: Exit, killed_by_sentinit: bool) -> Outcome {
        Outcome { killed_by_sentinit, ..Outcome::ended_now(exit) }
    }

    #[test]
    fn deltas_and_peaks() {
        assert_eq!(delta(Some(2), Some(5)), Some(3));
        assert_eq!(delta(None, Some(5)), None);
        assert_eq!(delta(Some(5), Some(2)), None, "a counter that went backwards is unknown");
        assert_eq!(peak_of_run(Some(100), Some(100), false), None, "an old mark is not this run's");
        assert_eq!(peak_of_run(Some(100), Some(300), false), Some(300));
        assert_eq!(peak_of_run(None, Some(300), true), Some(300));
        assert_eq!(peak_of_run(None, Some(300), false), None);
    }

    #[test]
    fn cores_are_capped_at_what_is_possible() {
        let start = Instant::now();
        let later = start + Duration::from_millis(10);
        // One 10 ms clock tick plus a rounded-down one over 10 ms: the raw figure is 2 cores.
        assert_eq!(cores_between((start, Some(0)), (later, Some(20_000)), None), Some(2.0));
        assert_eq!(cores_between((start, Some(0)), (later, Some(20_000)), Some(1.0)), Some(1.0));
        assert_eq!(cores_between((start, Some(0)), (later, Some(5_000)), Some(1.0)), Some(0.5));
        assert_eq!(cores_between((start, Some(0)), (start, Some(5_000)), Some(1.0)), None, "no time passed");
        assert_eq!(max_cores(Some(8), Some(CpuLimit::Millicores(1500))), Some(1.5));
        assert_eq!(max_cores(Some(2), Some(CpuLimit::Millicores(4000))), Some(2.0));
        assert_eq!(max_cores(Some(2), Some(CpuLimit::Unlimited)), Some(2.0));
        assert_eq!(max_cores(None, Some(CpuLimit::Millicores(500))), Some(0.5));
        assert_eq!(max_cores(None, None), None);
        assert!(affinity_cpus().is_some_and(|n| n >= 1));
    }

    #[test]
    fn process_stat_times() {
        let stat = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 7 3 2 1 20 0 1 0 99 1000 10\n";
        assert_eq!(process_cpu_ticks(stat), Some(7 + 3 + 2 + 1));
        assert_eq!(process_cpu_ticks("4242 (cmd)"), None, "cut off right after the name");
        assert_eq!(process_cpu_ticks("4242 (cmd) S 1"), None, "too few fields");
        assert_eq!(process_cpu_ticks(""), None);
    }

    #[test]
    fn oom_suspicion() {
        let killed = outcome(Exit::Signal(libc::SIGKILL), false);
        let limit = Some(Limit::Value(1000));
        assert_eq!(suspect_oom(&killed, None, Some(960), &limit), Some(true));
        assert_eq!(suspect_oom(&killed, None, Some(900), &limit), Some(false));
        assert_eq!(suspect_oom(&killed, Some(false), Some(1000), &limit), Some(false), "a counter says no");
        assert_eq!(suspect_oom(&killed, None, None, &None), None);
        assert_eq!(suspect_oom(&outcome(Exit::Signal(libc::SIGKILL), true), None, Some(1000), &limit), Some(false));
        assert_eq!(suspect_oom(&outcome(Exit::Code(0), false), None, Some(1000), &limit), Some(false));
    }
}
