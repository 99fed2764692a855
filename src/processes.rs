//! Per-process attribution: which of the workload's processes used the memory and the CPU, and which
//! ones the OOM killer took, for the report's `top_processes` and `oom_victims`.
//!
//! The cgroup says how much the container used and that an OOM kill happened, not who: this module
//! keeps a small table of the workload's processes (pid, `comm`, the start of the command line, peak RSS
//! seen, CPU time) from two sources.
//!
//! * Exact, for every child sentinit reaps itself: the supervision loop peeks at an exited child with
//!   waitid(WNOWAIT) and calls [`Processes::exiting`] while it is still a zombie (its `comm` is still in
//!   /proc/<pid>/stat; its command line is not, the kernel drops it with the memory, so that comes from
//!   the samples), then reaps it with wait4 and calls [`Processes::reaped`] with its rusage: ru_maxrss
//!   (its peak RSS, or that of a descendant it reaped if larger) and utime + stime.
//! * Sampled, for the rest (processes reaped by their own parent, like a worker pool's): at each
//!   `--interval` tick [`Processes::sample`] reads /proc/<pid>/stat of each of the workload's processes
//!   (as PID 1 every process of the namespace but sentinit; otherwise sentinit's descendants, found by
//!   following parent links, which means reading each process of the machine once). One stat per
//!   process per tick; the command line only once per new pid (and again after an exec changes
//!   `comm`). A read costs about 8 µs, mostly in the kernel, so /proc is listed only when a process was
//!   created since the last look (the namespace's last pid in /proc/loadavg moved), at most every
//!   [`DISCOVERY_GAP`], and beyond [`READ_BUDGET`] processes only the largest are read at every tick,
//!   the others in turn. `bench/sampling.sh` measures what a tick costs.
//!
//! OOM victims. The kernel counts a kill in the cgroup's counter when it picks the victim, right after
//! sending the SIGKILL. A child sentinit reaps that died of a SIGKILL sentinit did not send is an exact
//! victim if the counter grew in that interval (all of them: under `memory.oom.group=1` one counted kill
//! takes many processes). Otherwise the process that vanished from the samples in that interval with
//! the largest RSS at its last sample is named, marked not exact; because the victim may still be
//! listed at the sample that sees the counter grow, an unexplained increase is carried over to the next
//! two samples.
//!
//! Bounds: PID 1 must never block, crash or grow without limit. Every /proc read is one read(2) into a
//! fixed buffer and may fail (the process is gone): the process is then skipped. The command line is
//! not read from a process in uninterruptible sleep (reading it takes the process's memory-map lock,
//! which such a process may be waiting for). At most [`MAX_LIVE`] live processes are tracked, and of
//! the ended ones only the largest by peak RSS are kept, so a fork loop cannot make the table grow.
//! Only the PID namespace's own /proc is read ([`crate::proctree::is_own`]); without it only the exact
//! figures remain, without names.

use crate::debug;
use crate::proctree;
use crate::signals;
use crate::supervise::{Exit, Exiting, Reaped};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};

/// How much of a command line is kept.
const COMMAND_BYTES: usize = 128;
/// Samples at which an empty command line is read again.
const COMMAND_TRIES: u8 = 3;
/// Live processes tracked at most; beyond that new pids are not tracked until some end.
pub const MAX_LIVE: usize = 4096;
/// Ended processes kept (the largest by peak RSS): only the first few are reported.
const KEEP_ENDED: usize = 64;
/// `top_processes` has this many entries at most.
const TOP: usize = 5;
/// `oom_victims` has this many entries at most (a `memory.oom.group` kill may take many).
const MAX_VICTIMS: usize = 20;
/// The shortest gap between two scans of /proc.
const SCAN_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// Exact candidates waiting for the counter to grow, at most.
const MAX_PENDING: usize = 64;
/// Samples over which an unexplained increase of the OOM-kill counter is carried.
const CARRY_SAMPLES: u8 = 2;
/// New processes are looked for at most this often.
const DISCOVERY_GAP: std::time::Duration = std::time::Duration::from_millis(100);
/// At most this many processes of the table are read at a scan...
const READ_BUDGET: usize = 400;
/// ... the largest this many of them every time, the others in turn.
const ALWAYS_READ: usize = 100;
/// A /proc/<pid>/stat line is well under this (the longest `comm` is 64 bytes).
const STAT_BYTES: usize = 1024;
/// PF_KTHREAD in the flags of /proc/<pid>/stat: a kernel thread (listed when sentinit is the kernel's own
/// init), which is not the workload's.
const PF_KTHREAD: u64 = 0x0020_0000;

/// One process, for `top_processes`.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcessFigures {
    pub pid: i32,
    pub comm: Option<String>,
    pub command: Option<String>,
    pub peak_rss_bytes: u64,
    pub cpu_ms: u64,
    /// Known for the processes sentinit reaped, and for those a sample saw as zombies.
    pub exit: Option<Exit>,
    /// The figures come from wait4, not from samples.
    pub exact: bool,
}

/// One process the OOM killer took, for `oom_victims`.
#[derive(Clone, Debug, PartialEq)]
pub struct Victim {
    pub pid: i32,
    pub comm: Option<String>,
    pub command: Option<String>,
    /// Exact: its peak RSS (wait4); otherwise its RSS at its last sample.
    pub rss_bytes: u64,
    pub exact: bool,
}

impl ProcessFigures {
    pub fn to_json(&self) -> Value {
        json!({
            "pid": self.pid,
            "comm": self.comm,
            "command": self.command,
            "peak_rss_bytes": self.peak_rss_bytes,
            "cpu_ms": self.cpu_ms,
            "exit_code": self.exit.map(Exit::code),
            "signal": match self.exit {
                Some(Exit::Signal(signal)) => Some(signals::name(signal)),
                _ => None,
            },
            "exact": self.exact,
        })
    }
}

impl Victim {
    pub fn to_json(&self) -> Value {
        json!({
            "pid": self.pid,
            "comm": self.comm,
            "command": self.command,
            "rss_bytes": self.rss_bytes,
            "exact": self.exact,
        })
    }
}

/// What the report gets.
#[derive(Clone, Debug, Default)]
pub struct Attribution {
    /// The largest by peak RSS, descending.
    pub top: Vec<ProcessFigures>,
    /// `None` when no OOM-kill counter could be read.
    pub oom_victims: Option<Vec<Victim>>,
}

/// A live process as the samples saw it.
struct Live {
    /// Start time (clock ticks after boot): a pid reused between two samples is another process.
    start: u64,
    comm: Box<str>,
    command: Option<Box<str>>,
    /// The command line is still to be read (new pid, exec, or it was in uninterruptible sleep).
    command_due: bool,
    command_tries: u8,
    peak_rss: u64,
    last_rss: u64,
    cpu_ticks: u64,
    seen: u64,
    /// Seen as a zombie: it has ended (and was offered as an OOM candidate then, if one was sought).
    ended: bool,
    /// Its wait status, when it was seen as a zombie.
    exit: Option<Exit>,
}

/// A death sentinit reaped, by a SIGKILL it did not send, waiting for the OOM counter to grow.
struct Pending {
    victim: Victim,
    /// Samples it has waited through.
    age: u8,
}

/// The zombie read by [`Processes::exiting`], for [`Processes::reaped`].
struct Zombie {
    pid: i32,
    start: u64,
    comm: Box<str>,
}

/// One /proc/<pid>/stat, the fields this module uses. `comm` is (offset, length) of the name: in the
/// line when parsed, in [`Processes::text`] once scanned.
#[derive(Clone, Copy)]
struct Stat {
    pid: i32,
    comm: (u32, u8),
    state: u8,
    parent: i32,
    kernel_thread: bool,
    cpu_ticks: u64,
    start: u64,
    rss_pages: u64,
    /// A zombie's wait status (field 52, Linux 3.5+), as waitpid would give it to its parent.
    exit_status: Option<i32>,
}

/// The table and the OOM bookkeeping (see the module doc).
pub struct Processes {
    own_pid: i32,
    is_pid1: bool,
    page_size: u64,
    ticks_per_second: u64,
    live: HashMap<i32, Live>,
    ended: Vec<ProcessFigures>,
    generation: u64,
    zombie: Option<Zombie>,
    /// Whether any OOM-kill counter was ever read, and its last value.
    oom_known: bool,
    oom_seen: Option<u64>,
    unexplained: u64,
    carry: u8,
    /// Children sentinit reaped, dead of a SIGKILL it did not send.
    pending: Vec<Pending>,
    /// Sampled processes that ended since the last sample (vanished, or turned into a zombie killed by
    /// SIGKILL), collected only while a counted kill is unexplained.
    vanished: Vec<Victim>,
    victims: Vec<Victim>,
    /// Reused by every scan: the stat lines of the processes found, back to back, and their fields.
    text: Vec<u8>,
    stats: Vec<Stat>,
    descendants: HashSet<i32>,
    known: Vec<i32>,
    /// The last pid the namespace had handed out when new processes were last looked for, and when.
    last_pid: Option<u64>,
    last_discovery: Option<std::time::Instant>,
    /// Processes of the machine that are not sentinit's descendants (see [`Processes::scan`]), and the
    /// next scan's list of them, reused.
    foreign: HashSet<i32>,
    still_foreign: HashSet<i32>,
    /// When /proc was last scanned.
    last_scan: Option<std::time::Instant>,
}

impl Default for Processes {
    fn default() -> Processes {
        Processes::new()
    }
}

impl Processes {
    pub fn new() -> Processes {
        let sysconf = |name| nix::unistd::sysconf(name).ok().flatten().map(|value| value.max(1) as u64);
        Processes {
            own_pid: std::process::id() as i32,
            is_pid1: std::process::id() == 1,
            page_size: sysconf(nix::unistd::SysconfVar::PAGE_SIZE).unwrap_or(4096),
            ticks_per_second: sysconf(nix::unistd::SysconfVar::CLK_TCK).unwrap_or(100),
            live: HashMap::new(),
            ended: Vec::new(),
            generation: 0,
            zombie: None,
            oom_known: false,
            oom_seen: None,
            unexplained: 0,
            carry: 0,
            pending: Vec::new(),
            vanished: Vec::new(),
            victims: Vec::new(),
            text: Vec::new(),
            stats: Vec::new(),
            descendants: HashSet::new(),
            known: Vec::new(),
            last_pid: None,
            last_discovery: None,
            foreign: HashSet::new(),
            still_foreign: HashSet::new(),
            last_scan: None,
        }
    }

    /// The cgroup's OOM-kill counter before the workload started (`None`: none could be read).
    pub fn set_oom_baseline(&mut self, count: Option<u64>) {
        self.oom_known = count.is_some();
        self.oom_seen = count;
    }

    /// A sample, at each `--interval` tick: `oom_kills` is the cgroup's counter read for this tick.
    /// One sample: the /proc scan first, then the OOM-kill counter read after it (`read_oom_kills`),
    /// so that a process killed between the two is either seen to vanish in this sample (the counter,
    /// read later, includes its kill) or still listed, its kill then explained at the next sample.
    pub fn sample(&mut self, read_oom_kills: impl FnOnce() -> Option<u64>) {
        self.sample_unless(None, read_oom_kills)
    }

    /// The sample when the main child `main` has exited: as [`Processes::sample`], but without the
    /// /proc scan when it could find nothing of the workload's but that zombie (whose exact figures
    /// come from wait4 in a moment): sentinit has no other child, so no other descendant (orphans are
    /// reparented to it), and the table holds nobody else. Outside PID 1 that scan reads every process
    /// of the machine once; for a short job it was half of sentinit's own time.
    pub fn sample_at_main_exit(&mut self, main: i32, read_oom_kills: impl FnOnce() -> Option<u64>) {
        self.sample_unless(Some(main), read_oom_kills)
    }

    fn sample_unless(&mut self, main_exited: Option<i32>, read_oom_kills: impl FnOnce() -> Option<u64>) {
        // At most one scan per SCAN_EVERY, whatever --interval says (10 ms would make a scan of 2,000
        // processes cost a quarter of a core), except while a counted kill is unexplained.
        let due = self.last_scan.map_or(true, |at| at.elapsed() >= SCAN_EVERY) || self.unexplained > 0;
        let only_main_left = |processes: &Processes, main: i32| {
            processes.live.keys().all(|pid| *pid == main)
                && proctree::own_children().is_some_and(|children| children.iter().all(|pid| *pid == main))
        };
        let pointless = main_exited.is_some_and(|main| only_main_left(self, main));
        if due && !pointless && proctree::is_own() {
            self.last_scan = Some(std::time::Instant::now());
            self.scan();
        }
        self.count_oom_kills(read_oom_kills());
        self.attribute_oom_kills();
    }

    /// A child that has exited and is not reaped yet: its `comm` and start time, while /proc has them.
    /// Read only when they can be of use: for the main child (`main`), a process the samples know, one
    /// killed by SIGKILL (a possible OOM victim), or one large enough to rank among the top processes.
    /// A burst of thousands of small orphans then costs one wait4 each, as in tini, not a /proc read.
    pub fn exiting(&mut self, exiting: &Exiting, main: bool) {
        self.zombie = None;
        let pid = exiting.pid;
        let sampled = self.live.contains_key(&pid);
        if !(main || sampled || exiting.sigkilled || self.would_rank(exiting.max_rss_bytes)) || !proctree::is_own() {
            return;
        }
        let mut buffer = [0u8; STAT_BYTES];
        if !sampled {
            // Never sampled: its name is all that is wanted (its figures come from wait4), and `comm`
            // costs the kernel a fraction of what the whole stat line does.
            let Some(length) = read_proc(pid, b"comm", &mut buffer) else { return };
            let comm = lossy(buffer[..length].strip_suffix(b"\n").unwrap_or(&buffer[..length]));
            self.zombie = Some(Zombie { pid, start: 0, comm: comm.into() });
            return;
        }
        let Some(length) = read_proc(pid, b"stat", &mut buffer) else { return };
        let Some(stat) = parse_stat(pid, &buffer[..length]) else { return };
        let comm = lossy(&buffer[stat.comm.0 as usize..][..stat.comm.1 as usize]);
        self.zombie = Some(Zombie { pid, start: stat.start, comm: comm.into() });
    }

    /// Would a process that ended with this peak RSS be among the [`TOP`] the report lists?
    fn would_rank(&self, peak_rss_bytes: u64) -> bool {
        self.ended.iter().filter(|ended| ended.peak_rss_bytes >= peak_rss_bytes).count() < TOP
    }

    /// A child sentinit has just reaped: its exact figures.
    pub fn reaped(&mut self, reaped: &Reaped) {
        let zombie = self.zombie.take().filter(|z| z.pid == reaped.pid);
        let mut sampled = self.live.remove(&reaped.pid);
        if let (Some(z), Some(s)) = (&zombie, &sampled) {
            if z.start != s.start {
                // The pid was another process when last sampled: that one ended unseen.
                let other = sampled.take().expect("checked above");
                self.end_sampled(reaped.pid, other, false);
            }
        }
        let comm = zombie.map(|z| z.comm).or_else(|| sampled.as_ref().map(|s| s.comm.clone()));
        let command = sampled.as_ref().and_then(|s| s.command.clone());
        let peak = reaped.max_rss_bytes.max(sampled.as_ref().map_or(0, |s| s.peak_rss));
        let figures = ProcessFigures {
            pid: reaped.pid,
            comm: comm.map(String::from),
            command: command.map(String::from),
            peak_rss_bytes: peak,
            cpu_ms: reaped.cpu_us / 1000,
            exit: Some(reaped.exit),
            exact: true,
        };
        if reaped.exit == Exit::Signal(libc::SIGKILL)
            && !reaped.sentinit_sent_sigkill
            && self.pending.len() < MAX_PENDING
        {
            let victim = Victim {
                pid: figures.pid,
                comm: figures.comm.clone(),
                command: figures.command.clone(),
                rss_bytes: peak,
                exact: true,
            };
            self.pending.push(Pending { victim, age: 0 });
        }
        self.keep_ended(figures);
    }

    /// The report's part: called once everything has been reaped, with the counter's final value.
    pub fn finish(&mut self, oom_kills: Option<u64>) -> Attribution {
        self.count_oom_kills(oom_kills);
        // Nothing is left running now: what the samples last saw has ended since.
        self.generation += 1;
        self.end_unseen();
        self.attribute_oom_kills();
        let mut top = std::mem::take(&mut self.ended);
        // A process first seen as a zombie has no figure of its own: no rank either.
        top.retain(|p| p.exact || p.peak_rss_bytes > 0);
        sort_by_peak(&mut top);
        top.truncate(TOP);
        Attribution { top, oom_victims: self.oom_known.then(|| std::mem::take(&mut self.victims)) }
    }

    /// Takes in the counter's growth since the last reading.
    fn count_oom_kills(&mut self, count: Option<u64>) {
        let Some(count) = count else { return };
        self.oom_known = true;
        // A counter that went backwards (reset) or had no earlier value gives no growth.
        let grew = self.oom_seen.map_or(0, |seen| count.saturating_sub(seen));
        self.oom_seen = Some(count);
        if grew > 0 {
            debug!("OOM-kill counter grew by {grew}: looking for the victim");
            self.unexplained = self.unexplained.saturating_add(grew);
            self.carry = CARRY_SAMPLES;
        }
    }

    /// Names the victims of the kills counted and not yet explained, from the exact candidates and the
    /// processes that vanished since the last sample.
    fn attribute_oom_kills(&mut self) {
        if self.unexplained > 0 {
            // Every exact candidate: under memory.oom.group one counted kill takes them all.
            let exact = self.pending.len() as u64;
            for pending in self.pending.drain(..) {
                push_victim(&mut self.victims, pending.victim);
            }
            self.unexplained = self.unexplained.saturating_sub(exact);
            self.vanished.sort_by(|a, b| b.rss_bytes.cmp(&a.rss_bytes).then(a.pid.cmp(&b.pid)));
            // The OOM killer takes the largest process; a vanished process is named only when it
            // clearly was that (alone, or a quarter larger than the next). Among look-alikes (workers
            // of one pool that ended normally in the same interval, while the real victim was never
            // sampled) a guess would be a wrong name, which is worse than none.
            let clear = |list: &[Victim], index: usize| match list.get(index + 1) {
                Some(next) => list[index].rss_bytes.saturating_mul(4) >= next.rss_bytes.saturating_mul(5),
                None => true,
            };
            let mut index = 0;
            while self.unexplained > 0 && index < self.vanished.len() {
                if !clear(&self.vanished, index) {
                    debug!("{} OOM kill(s) not attributed: several similar processes ended", self.unexplained);
                    self.unexplained = 0;
                    self.carry = 0;
                    break;
                }
                push_victim(&mut self.victims, self.vanished[index].clone());
                self.unexplained -= 1;
                index += 1;
            }
            if self.unexplained > 0 {
                if self.carry == 0 {
                    debug!("{} OOM kill(s) not attributed: no candidate", self.unexplained);
                    self.unexplained = 0;
                } else {
                    self.carry -= 1;
                }
            }
        }
        // A SIGKILL death waits one more sample: the counter grows just after the signal is sent, so a
        // victim reaped right before a sample may be counted only after it.
        self.pending.retain_mut(|p| {
            p.age += 1;
            p.age <= 1
        });
        self.vanished.clear();
    }

    /// Reads /proc: the processes of the table are updated (see [`Processes::pick_known`]), new ones
    /// are added, those gone end.
    ///
    /// New processes are looked for only when the last pid the namespace handed out (/proc/loadavg)
    /// has moved since the last look, and at most every [`DISCOVERY_GAP`]: /proc is listed and only
    /// the pids neither in the table nor known to be foreign are read. Foreign: when sentinit is not
    /// PID 1, a process of the machine that is not its descendant, which it stays for its life (a
    /// process is reparented only to its ancestors' reaper), so each is read once.
    fn scan(&mut self) {
        self.generation += 1;
        self.stats.clear();
        self.text.clear();
        let Some(dir) = ProcDir::open() else { return };
        let last_pid = read_last_pid();
        let now = std::time::Instant::now();
        let discover = (last_pid.is_none() || last_pid != self.last_pid)
            && self.last_discovery.map_or(true, |at| now.saturating_duration_since(at) >= DISCOVERY_GAP);
        if discover {
            // The pid counter wrapped: a pid known to be foreign may now be a new process of the
            // workload's, so every pid is looked at again.
            if matches!((last_pid, self.last_pid), (Some(now_pid), Some(before)) if now_pid < before) {
                self.foreign.clear();
            }
            self.last_pid = last_pid;
            self.last_discovery = Some(now);
        }
        let mut buffer = [0u8; STAT_BYTES];
        let mut known = std::mem::take(&mut self.known);
        known.clear();
        self.pick_known(&mut known);
        for &pid in &known {
            self.read_stat(dir.fd(), pid, &mut buffer);
        }
        self.known = known;
        let first_new = self.stats.len();
        if discover {
            let mut foreign = std::mem::take(&mut self.foreign);
            let mut still_foreign = std::mem::take(&mut self.still_foreign);
            still_foreign.clear();
            while let Some(pid) = dir.next_pid() {
                if pid == self.own_pid || self.live.contains_key(&pid) {
                    continue;
                }
                if foreign.contains(&pid) {
                    still_foreign.insert(pid);
                } else if !self.read_stat(dir.fd(), pid, &mut buffer) {
                    still_foreign.insert(pid); // a kernel thread
                }
            }
            // Among the new processes, sentinit's descendants: parent links are followed from the
            // table and sentinit until nothing new is found (pids mostly grow from parent to child,
            // so this takes one or two passes). As PID 1 every process is the workload.
            self.descendants.clear();
            if self.is_pid1 {
                self.descendants.extend(self.stats[first_new..].iter().map(|s| s.pid));
            } else {
                loop {
                    let before = self.descendants.len();
                    for stat in &self.stats[first_new..] {
                        let parent = stat.parent;
                        if parent == self.own_pid
                            || self.live.contains_key(&parent)
                            || self.descendants.contains(&parent)
                        {
                            self.descendants.insert(stat.pid);
                        }
                    }
                    if self.descendants.len() == before {
                        break;
                    }
                }
                still_foreign.extend(
                    self.stats[first_new..].iter().map(|s| s.pid).filter(|pid| !self.descendants.contains(pid)),
                );
            }
            std::mem::swap(&mut foreign, &mut still_foreign);
            (self.foreign, self.still_foreign) = (foreign, still_foreign);
        }
        let (stats, text) = (std::mem::take(&mut self.stats), std::mem::take(&mut self.text));
        for (index, stat) in stats.iter().enumerate() {
            if index < first_new || self.descendants.contains(&stat.pid) {
                self.update(stat, &text[stat.comm.0 as usize..][..stat.comm.1 as usize]);
            }
        }
        (self.stats, self.text) = (stats, text);
        self.end_unseen();
    }

    /// Reads one process's stat into the scan's lists; false when it is gone or a kernel thread.
    fn read_stat(&mut self, dir: i32, pid: i32, buffer: &mut [u8; STAT_BYTES]) -> bool {
        // Relative to /proc's descriptor: no lookup of /proc itself for each process.
        let Some(length) = read_proc_at(dir, pid, b"stat", buffer) else { return false };
        let Some(mut stat) = parse_stat(pid, &buffer[..length]) else { return false };
        if stat.kernel_thread {
            return false;
        }
        // Only the name is kept, back to back, so the buffer stays small whatever runs on the host.
        let (offset, comm_length) = (stat.comm.0 as usize, stat.comm.1 as usize);
        stat.comm.0 = self.text.len() as u32;
        self.text.extend_from_slice(&buffer[offset..offset + comm_length]);
        self.stats.push(stat);
        true
    }

    /// The processes of the table to read at this scan: all of them up to
    /// [`READ_BUDGET`]; beyond that the [`ALWAYS_READ`] largest by RSS at every scan, the others in
    /// turn, so that a sample of thousands of processes stays cheap while the large ones (those the
    /// report names) stay fresh. Those not read this time are taken as still there. While a counted OOM
    /// kill is unexplained every one is read, to see which ended.
    fn pick_known(&mut self, known: &mut Vec<i32>) {
        let generation = self.generation;
        if self.live.len() <= READ_BUDGET || self.unexplained > 0 {
            known.extend(self.live.keys().copied());
            return;
        }
        let mut by_rss: Vec<(u64, i32)> = self.live.iter().map(|(pid, l)| (l.last_rss, *pid)).collect();
        by_rss.sort_unstable_by(|a, b| b.cmp(a));
        let rest = by_rss.len() - ALWAYS_READ;
        let turns = rest.div_ceil(READ_BUDGET - ALWAYS_READ) as u64;
        for (position, (_, pid)) in by_rss.into_iter().enumerate() {
            if position < ALWAYS_READ || (position as u64 + generation) % turns == 0 {
                known.push(pid);
            } else if let Some(live) = self.live.get_mut(&pid) {
                live.seen = generation;
            }
        }
    }

    /// Updates (or adds) one process from its stat and name.
    fn update(&mut self, stat: &Stat, comm: &[u8]) {
        let rss = stat.rss_pages.saturating_mul(self.page_size);
        // A zombie has given back its memory: its RSS reads 0, which is not its last size.
        let zombie = stat.state == b'Z' || stat.state == b'X';
        if let Some(old) = self.live.get(&stat.pid) {
            if old.start != stat.start {
                let old = self.live.remove(&stat.pid).expect("just found");
                self.end_sampled(stat.pid, old, true);
            }
        }
        let tracked = self.live.len();
        let entry = match self.live.entry(stat.pid) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(_) if tracked >= MAX_LIVE => return,
            std::collections::hash_map::Entry::Vacant(entry) => entry.insert(Live {
                start: stat.start,
                comm: lossy(comm).into(),
                command: None,
                command_due: true,
                command_tries: 0,
                peak_rss: 0,
                last_rss: 0,
                cpu_ticks: 0,
                seen: 0,
                ended: false,
                exit: None,
            }),
        };
        if entry.comm.as_bytes() != comm {
            // An exec (or a rename): the command line is another one now.
            entry.comm = lossy(comm).into();
            entry.command = None;
            entry.command_due = true;
            entry.command_tries = 0;
        }
        if entry.command_due && !zombie && stat.state != b'D' {
            match read_command(stat.pid) {
                Some(command) => {
                    entry.command = Some(command.into_boxed_str());
                    entry.command_due = false;
                }
                // Right after an exec the name is already the new one while the command line is still
                // empty: try again at the next samples, a few times (a process may also have blanked
                // its own).
                None => {
                    entry.command_tries += 1;
                    entry.command_due = entry.command_tries < COMMAND_TRIES;
                }
            }
        }
        // Nor is an RSS of 0 before that: a process on its way out (an OOM victim among them) reads 0
        // once its memory is gone, and the OOM reaper frees a victim's memory before it exits.
        if !zombie && rss > 0 {
            entry.last_rss = rss;
            entry.peak_rss = entry.peak_rss.max(rss);
        }
        entry.cpu_ticks = stat.cpu_ticks;
        entry.seen = self.generation;
        if zombie && !entry.ended {
            // Ended, its parent has not reaped it yet: an OOM victim if SIGKILL ended it.
            entry.ended = true;
            entry.exit = stat.exit_status.and_then(Exit::from_wait_status);
            let killed = stat
                .exit_status
                .map_or(true, |status| libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL);
            if killed {
                let victim = Victim {
                    pid: stat.pid,
                    comm: Some(entry.comm.to_string()),
                    command: entry.command.as_deref().map(String::from),
                    rss_bytes: entry.last_rss,
                    exact: false,
                };
                push_candidate(&mut self.vanished, victim);
            }
        }
    }

    /// Ends every live process the last scan did not see.
    fn end_unseen(&mut self) {
        let generation = self.generation;
        let gone: Vec<i32> = self.live.iter().filter(|(_, l)| l.seen != generation).map(|(pid, _)| *pid).collect();
        for pid in gone {
            if let Some(live) = self.live.remove(&pid) {
                self.end_sampled(pid, live, true);
            }
        }
    }

    /// A sampled process has ended without sentinit reaping it: its sampled figures are all there is.
    /// `vanished`: it may be the victim of a kill the counter shows.
    fn end_sampled(&mut self, pid: i32, live: Live, vanished: bool) {
        let comm = Some(String::from(live.comm));
        let command = live.command.map(String::from);
        if vanished && !live.ended {
            push_candidate(
                &mut self.vanished,
                Victim { pid, comm: comm.clone(), command: command.clone(), rss_bytes: live.last_rss, exact: false },
            );
        }
        self.keep_ended(ProcessFigures {
            pid,
            comm,
            command,
            peak_rss_bytes: live.peak_rss,
            cpu_ms: live.cpu_ticks.saturating_mul(1000) / self.ticks_per_second,
            exit: live.exit,
            exact: false,
        });
    }

    /// Adds an ended process, keeping only the largest by peak RSS once there are too many.
    fn keep_ended(&mut self, figures: ProcessFigures) {
        self.ended.push(figures);
        if self.ended.len() >= 2 * KEEP_ENDED {
            sort_by_peak(&mut self.ended);
            self.ended.truncate(KEEP_ENDED);
        }
    }
}

/// Keeps a process that ended since the last sample as a possible victim; the largest 64 at most (the
/// OOM killer takes the largest).
fn push_candidate(candidates: &mut Vec<Victim>, candidate: Victim) {
    const MAX_CANDIDATES: usize = 64;
    if candidates.len() >= MAX_CANDIDATES {
        let Some((smallest, _)) = candidates.iter().enumerate().min_by_key(|(_, c)| c.rss_bytes) else { return };
        if candidates[smallest].rss_bytes >= candidate.rss_bytes {
            return;
        }
        candidates.swap_remove(smallest);
    }
    candidates.push(candidate);
}

fn push_victim(victims: &mut Vec<Victim>, victim: Victim) {
    debug!(
        "OOM victim: {}[{}] ({})",
        victim.comm.as_deref().unwrap_or("?"),
        victim.pid,
        if victim.exact { "reaped by sentinit" } else { "ended between two samples" }
    );
    // One process, one entry: the exact one when both ways named it (it was sampled, and sentinit
    // reaped it).
    if let Some(known) = victims.iter_mut().find(|v| v.pid == victim.pid) {
        if victim.exact && !known.exact {
            *known = victim;
        }
        return;
    }
    if victims.len() < MAX_VICTIMS {
        victims.push(victim);
    }
}

/// Largest peak first; equal peaks keep the order they ended in (a stable sort), so the first of many
/// look-alikes, the one [`Processes::exiting`] named, is the one listed.
fn sort_by_peak(list: &mut [ProcessFigures]) {
    list.sort_by_key(|p| std::cmp::Reverse(p.peak_rss_bytes));
}

/// The last pid handed out in sentinit's PID namespace: the last field of /proc/loadavg.
fn read_last_pid() -> Option<u64> {
    let mut buffer = [0u8; 128];
    // SAFETY: a NUL-terminated path; one read into the live buffer; the descriptor is closed.
    let length = unsafe {
        let fd = libc::open(c"/proc/loadavg".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return None;
        }
        let n = libc::read(fd, buffer.as_mut_ptr().cast(), buffer.len());
        libc::close(fd);
        usize::try_from(n).ok()?
    };
    let text = buffer[..length].strip_suffix(b"\n")?;
    unsigned(text.rsplit(|&b| b == b' ').next()?)
}

/// /proc, listed with readdir(3): no allocation per entry, and its descriptor serves as the base of
/// every open of the scan.
struct ProcDir(std::ptr::NonNull<libc::DIR>);

impl ProcDir {
    fn open() -> Option<ProcDir> {
        // SAFETY: a NUL-terminated path; the DIR is closed by Drop.
        std::ptr::NonNull::new(unsafe { libc::opendir(c"/proc".as_ptr()) }).map(ProcDir)
    }

    fn fd(&self) -> i32 {
        // SAFETY: a live DIR.
        unsafe { libc::dirfd(self.0.as_ptr()) }
    }

    /// The next entry whose name is a pid.
    fn next_pid(&self) -> Option<i32> {
        loop {
            // SAFETY: a live DIR; the entry is read before the next readdir call.
            let name = unsafe {
                let entry = libc::readdir(self.0.as_ptr());
                if entry.is_null() {
                    return None;
                }
                std::ffi::CStr::from_ptr((*entry).d_name.as_ptr())
            };
            let bytes = name.to_bytes();
            if !bytes.is_empty() && bytes.len() <= 9 && bytes.iter().all(u8::is_ascii_digit) {
                return Some(bytes.iter().fold(0i32, |n, d| n * 10 + i32::from(d - b'0')));
            }
        }
    }
}

impl Drop for ProcDir {
    fn drop(&mut self) {
        // SAFETY: opened by opendir, closed once.
        unsafe { libc::closedir(self.0.as_ptr()) };
    }
}

/// Reads /proc/<pid>/<file> with one read(2) into `buffer`, without allocating. `None` when the process
/// is gone or the file is empty.
fn read_proc(pid: i32, file: &[u8], buffer: &mut [u8]) -> Option<usize> {
    read_proc_at(libc::AT_FDCWD, pid, file, buffer)
}

/// [`read_proc`], relative to `dir` when it is an open /proc (then the path is `<pid>/<file>`).
fn read_proc_at(dir: i32, pid: i32, file: &[u8], buffer: &mut [u8]) -> Option<usize> {
    let mut path = [0u8; 48];
    let mut at = 0;
    let mut put = |bytes: &[u8]| {
        path[at..at + bytes.len()].copy_from_slice(bytes);
        at += bytes.len();
    };
    if dir == libc::AT_FDCWD {
        put(b"/proc/");
    }
    let mut digits = [0u8; 12];
    let mut n = pid.unsigned_abs();
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    put(&digits[start..]);
    put(b"/");
    if file.len() > 16 {
        return None;
    }
    put(file);
    // SAFETY: `path` is NUL-terminated (zero-initialised, at most 6 + 12 + 1 + 16 bytes written); the
    // descriptor is closed before returning; read writes at most `buffer.len()` bytes into it.
    unsafe {
        let fd = libc::openat(dir, path.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY);
        if fd < 0 {
            return None;
        }
        let n = libc::read(fd, buffer.as_mut_ptr().cast(), buffer.len());
        libc::close(fd);
        (n > 0).then_some(n as usize)
    }
}

/// The first [`COMMAND_BYTES`] of the command line, NULs as spaces; `None` when there is none (a kernel
/// thread, a zombie).
fn read_command(pid: i32) -> Option<String> {
    let mut buffer = [0u8; COMMAND_BYTES];
    let length = read_proc(pid, b"cmdline", &mut buffer)?;
    command_text(&buffer[..length])
}

fn command_text(raw: &[u8]) -> Option<String> {
    let mut bytes: Vec<u8> = raw.iter().map(|&b| if b == 0 { b' ' } else { b }).collect();
    while bytes.last() == Some(&b' ') {
        bytes.pop();
    }
    if bytes.is_empty() {
        return None;
    }
    // Cut at 128 bytes, the last character may be incomplete: drop it rather than show U+FFFD.
    if let Err(e) = std::str::from_utf8(&bytes) {
        if e.error_len().is_none() {
            bytes.truncate(e.valid_up_to());
        }
    }
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A decimal field of /proc/<pid>/stat.
fn unsigned(field: &[u8]) -> Option<u64> {
    if field.is_empty() || field.len() > 20 {
        return None;
    }
    field.iter().try_fold(0u64, |n, &d| {
        if d.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        } else {
            None
        }
    })
}

/// A decimal field that may be negative (-1 for "none").
fn signed(field: &[u8]) -> Option<i64> {
    match field.split_first() {
        Some((b'-', digits)) => unsigned(digits).and_then(|n| i64::try_from(n).ok()).map(|n| -n),
        _ => unsigned(field).and_then(|n| i64::try_from(n).ok()),
    }
}

/// The fields of a /proc/<pid>/stat line this module uses. The name may hold spaces and parentheses,
/// so it runs from the first '(' to the last ')', and the other fields are counted from there.
fn parse_stat(pid: i32, line: &[u8]) -> Option<Stat> {
    let open = line.iter().position(|&b| b == b'(')?;
    let close = line.iter().rposition(|&b| b == b')')?;
    if close < open || close - open - 1 > u8::MAX as usize {
        return None;
    }
    // Bytes, not str: this runs for every process at every tick, and splitting on a byte is cheap.
    let mut fields = line.get(close + 2..)?.split(|&b| b == b' ' || b == b'\n');
    // Fields counted from the state, field 3 of the line: nth(k) skips k fields.
    let state = *fields.next()?.first()?;
    let parent = signed(fields.next()?)? as i32; // 4
    let flags = unsigned(fields.nth(4)?)?; // 9
    let utime = unsigned(fields.nth(4)?)?; // 14
    let stime = unsigned(fields.next()?)?; // 15
    let start = unsigned(fields.nth(6)?)?; // 22
    let rss = signed(fields.nth(1)?)?; // 24
    let exit_status = fields.nth(27).and_then(signed).map(|status| status as i32); // 52
    Some(Stat {
        pid,
        comm: ((open + 1) as u32, (close - open - 1) as u8),
        state,
        parent,
        kernel_thread: flags & PF_KTHREAD != 0,
        cpu_ticks: utime.saturating_add(stime),
        start,
        rss_pages: rss.max(0) as u64,
        exit_status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &[u8] = b"4211 (py (x) 3) S 1 4211 4211 0 -1 4194560 100 0 0 0 7 3 2 1 20 0 1 0 99 1000 15000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n";

    #[test]
    fn an_rss_of_0_before_the_end_is_not_a_last_size() {
        // 15000 pages, then the same process on its way out (state R, its memory gone: 0 pages).
        let mut processes = Processes::new();
        let mut stat = parse_stat(4211, LINE).unwrap();
        processes.update(&stat, b"py");
        stat.rss_pages = 0;
        stat.state = b'R';
        processes.update(&stat, b"py");
        let live = &processes.live[&4211];
        assert_eq!(live.last_rss, 15000 * processes.page_size);
        assert_eq!(live.peak_rss, 15000 * processes.page_size);
    }

    #[test]
    fn parses_the_fields_it_uses() {
        let stat = parse_stat(4211, LINE).unwrap();
        assert_eq!(&LINE[stat.comm.0 as usize..][..stat.comm.1 as usize], b"py (x) 3");
        assert_eq!(stat.state, b'S');
        assert_eq!(stat.parent, 1);
        assert!(!stat.kernel_thread);
        assert_eq!(stat.cpu_ticks, 10, "utime + stime, not the children's");
        assert_eq!(stat.start, 99);
        assert_eq!(stat.rss_pages, 15000);
        let kthread = b"2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 1 0 0 18446744073709551615";
        assert!(parse_stat(2, kthread).unwrap().kernel_thread);
        assert!(parse_stat(1, b"1 (init) S 0 1 1").is_none(), "cut short");
        assert!(parse_stat(1, b"garbage").is_none());
        assert_eq!((signed(b"-1"), signed(b"12"), unsigned(b"1x"), unsigned(b"")), (Some(-1), Some(12), None, None));
        let zombie = b"7 (w) Z 1 7 7 0 -1 4227148 0 0 0 0 1 2 0 0 20 0 1 0 5 0 0 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 9\n";
        let stat = parse_stat(7, zombie).unwrap();
        assert_eq!((stat.state, stat.rss_pages, stat.exit_status), (b'Z', 0, Some(9)), "field 52: killed by SIGKILL");
    }

    #[test]
    fn command_lines_are_cut_and_spaced() {
        assert_eq!(command_text(b"python3\0-c\0print(1)\0").as_deref(), Some("python3 -c print(1)"));
        assert_eq!(command_text(b""), None);
        assert_eq!(command_text(b"\0\0"), None);
        // "é" is two bytes: cut after its first one, it is dropped whole.
        assert_eq!(command_text(b"ab\xc3").as_deref(), Some("ab"));
        assert_eq!(command_text(b"a\xffb").as_deref(), Some("a\u{fffd}b"));
    }

    fn with_baseline(count: u64) -> Processes {
        let mut p = Processes::new();
        p.ticks_per_second = 100;
        p.set_oom_baseline(Some(count));
        p
    }

    fn reaped(pid: i32, exit: Exit, rss: u64, sentinit_sent_sigkill: bool) -> Reaped {
        Reaped { pid, exit, max_rss_bytes: rss, cpu_us: 2500, sentinit_sent_sigkill }
    }

    #[test]
    fn a_sigkill_death_is_a_victim_when_the_counter_grows() {
        let mut p = with_baseline(5);
        p.reaped(&reaped(10, Exit::Signal(libc::SIGKILL), 60 << 20, false));
        p.reaped(&reaped(11, Exit::Signal(libc::SIGKILL), 90 << 20, true));
        p.reaped(&reaped(12, Exit::Code(0), 99 << 20, false));
        p.count_oom_kills(Some(6));
        p.attribute_oom_kills();
        let a = p.finish(Some(6));
        let victims = a.oom_victims.unwrap();
        assert_eq!(victims.len(), 1);
        assert_eq!((victims[0].pid, victims[0].rss_bytes, victims[0].exact), (10, 60 << 20, true));
        assert_eq!(a.top.iter().map(|t| t.pid).collect::<Vec<_>>(), [12, 11, 10]);
        assert_eq!(a.top[0].cpu_ms, 2);
        assert_eq!(a.top[0].to_json()["exit_code"], 0);
        assert_eq!(a.top[2].to_json()["signal"], "SIGKILL");
    }

    #[test]
    fn a_sigkill_without_the_counter_growing_is_nobody() {
        let mut p = with_baseline(5);
        p.reaped(&reaped(10, Exit::Signal(libc::SIGKILL), 60 << 20, false));
        for _ in 0..3 {
            p.count_oom_kills(Some(5));
            p.attribute_oom_kills();
        }
        // A later kill is somebody else's.
        p.count_oom_kills(Some(6));
        p.attribute_oom_kills();
        assert_eq!(p.finish(Some(6)).oom_victims, Some(vec![]));
        assert_eq!(Processes::new().finish(None).oom_victims, None, "no counter: unknown");
    }

    #[test]
    fn look_alikes_that_ended_are_not_guessed_as_the_victim() {
        let mut p = with_baseline(0);
        let live = |rss: u64| Live {
            start: 1,
            comm: "w".into(),
            command: None,
            command_due: false,
            command_tries: 0,
            peak_rss: rss,
            last_rss: rss,
            cpu_ticks: 0,
            seen: 1,
            ended: false,
            exit: None,
        };
        p.generation = 1;
        for pid in [30, 31, 32] {
            p.live.insert(pid, live(15 << 20));
        }
        // The real victim was never sampled; three similar workers end in the interval of the kill.
        p.count_oom_kills(Some(1));
        p.generation = 2;
        p.end_unseen();
        p.attribute_oom_kills();
        assert!(p.victims.is_empty(), "{:?}", p.victims);
        assert_eq!(p.finish(Some(1)).oom_victims, Some(Vec::new()));
    }

    #[test]
    fn the_largest_vanished_process_explains_a_carried_kill() {
        let mut p = with_baseline(0);
        let live = |rss: u64, seen: u64| Live {
            start: 1,
            comm: "w".into(),
            command: Some("python3 w.py".into()),
            command_due: false,
            command_tries: 0,
            peak_rss: rss,
            last_rss: rss,
            cpu_ticks: 3,
            seen,
            ended: false,
            exit: None,
        };
        p.generation = 1;
        p.live.insert(20, live(50 << 20, 1));
        p.live.insert(21, live(5 << 20, 1));
        p.live.insert(22, live(6 << 20, 1));
        // The counter grows while the victim is still listed...
        p.count_oom_kills(Some(1));
        p.attribute_oom_kills();
        assert!(p.victims.is_empty());
        // ... and at the next sample it and a small one are gone.
        p.generation = 2;
        p.live.get_mut(&22).unwrap().seen = 2;
        p.count_oom_kills(Some(1));
        p.end_unseen();
        p.attribute_oom_kills();
        assert_eq!(p.victims.len(), 1);
        assert_eq!((p.victims[0].pid, p.victims[0].exact), (20, false));
        assert_eq!(p.victims[0].command.as_deref(), Some("python3 w.py"));
        let a = p.finish(Some(1));
        assert_eq!(
            a.top.iter().map(|t| (t.pid, t.exact, t.cpu_ms)).collect::<Vec<_>>(),
            [(20, false, 30), (22, false, 30), (21, false, 30)]
        );
    }

    #[test]
    fn the_table_stays_bounded() {
        let mut p = with_baseline(0);
        for pid in 0..10_000 {
            p.reaped(&reaped(pid, Exit::Signal(libc::SIGKILL), pid as u64, false));
        }
        assert!(p.ended.len() < 2 * KEEP_ENDED && p.pending.len() <= MAX_PENDING);
        let a = p.finish(Some(1));
        assert_eq!(a.top.iter().map(|t| t.pid).collect::<Vec<_>>(), [9999, 9998, 9997, 9996, 9995]);
        assert!(a.oom_victims.unwrap().len() <= MAX_VICTIMS);
    }

    #[test]
    fn scans_this_test_process_s_children() {
        // The test runner is not PID 1: its descendants are found by parent links.
        let mut child = std::process::Command::new("sleep").arg("5").spawn().unwrap();
        let mut p = Processes::new();
        let mut found = None;
        // A process still loading its program may be in uninterruptible sleep, and its command line
        // is then left for a later sample.
        for _ in 0..100 {
            p.sample(|| None);
            found = p.live.get(&(child.id() as i32)).map(|l| (l.comm.to_string(), l.command.clone()));
            if found.as_ref().is_some_and(|(_, command)| command.is_some()) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(found, Some(("sleep".to_string(), Some("sleep 5".into()))));
    }
}
