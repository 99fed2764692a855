//! The supervision loop: one `poll` on a signalfd that forwards signals, reaps every child, ends the
//! rest of the process tree when the main child is gone, and calls the periodic tick.
//!
//! Every signal is blocked and read from the signalfd, so nothing is handled asynchronously and nothing
//! is lost: SIGCHLDs may coalesce, which is why each wake-up reaps in a loop until the kernel has no more
//! exited children, instead of trusting one SIGCHLD to mean one child. The loop sleeps in `poll` until a
//! signal arrives or the next deadline (tick, timeout, grace, kill-after) is due, so an idle workload costs one
//! wake-up per tick. A wake-up handles at most one batch of signals before it reaps and looks at its
//! deadlines again, so a flood of signals cannot starve reaping or delay the main child's exit.
//!
//! Ending the rest repeats until nothing is left: processes that keep forking while they are killed
//! are killed again on every pass, and the final warning says what survived and in which state.

use crate::config::Config;
use crate::signals::{self, Mask};
use crate::{debug, proctree, warn};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// How the main child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    /// The shell convention: the exit code, or 128 + the signal number.
    pub fn code(self) -> i32 {
        match self {
            Exit::Code(code) => code,
            Exit::Signal(signal) => 128 + signal,
        }
    }

    pub fn from_wait_status(status: i32) -> Option<Exit> {
        if libc::WIFEXITED(status) {
            Some(Exit::Code(libc::WEXITSTATUS(status)))
        } else if libc::WIFSIGNALED(status) {
            Some(Exit::Signal(libc::WTERMSIG(status)))
        } else {
            None
        }
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Exit::Code(code) => write!(f, "exit code {code}"),
            Exit::Signal(signal) => write!(f, "signal {signal} ({})", signals::name(*signal)),
        }
    }
}

/// What happened, for the report.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub exit: Exit,
    /// When the main child was reaped.
    pub ended: Instant,
    /// sentinit itself sent SIGKILL to the workload (--kill-after escalation, or a forwarded SIGKILL).
    pub killed_by_sentinit: bool,
    /// The SIGKILL was sentinit's --kill-after escalation, not a forwarded one (`--rewrite TERM:KILL`):
    /// the workload did not stop within its time, which a log query wants to tell from a chosen KILL.
    pub escalated: bool,
    /// The last stop signal (TERM, INT, QUIT, after rewriting) forwarded to the workload.
    pub stop_signal: Option<i32>,
    /// `--timeout` was reached: sentinit stopped the workload itself (and exits 124).
    pub timed_out: bool,
    /// How many descendants (main child included) were reaped.
    pub reaped: u64,
    /// From sentinit's start to the workload's exec (the exec-error pipe closed); `None` when the
    /// workload never started.
    pub init_duration: Option<Duration>,
}

/// How often the SIGKILL pass is repeated while processes remain: back to back, nearly, because a
/// chain of processes that each fork and exit within milliseconds escapes any slower pass.
const KILL_PASS_EVERY: Duration = Duration::from_millis(1);

/// How long processes get to disappear after the first SIGKILL pass.
const KILL_WAIT: Duration = Duration::from_secs(2);

impl Outcome {
    /// The outcome of a workload that could not be started (exit code 126 or 127).
    pub fn not_started(code: i32) -> Outcome {
        Outcome {
            exit: Exit::Code(code),
            ended: Instant::now(),
            killed_by_sentinit: false,
            escalated: false,
            stop_signal: None,
            timed_out: false,
            reaped: 0,
            init_duration: None,
        }
    }

    /// A workload that ran (for 2 ms of start-up) and ended now with `exit`, for the tests of the
    /// modules that read outcomes.
    #[cfg(test)]
    pub fn ended_now(exit: Exit) -> Outcome {
        Outcome { reaped: 1, init_duration: Some(Duration::from_millis(2)), exit, ..Outcome::not_started(0) }
    }
}

/// Hooks for the concerns layered on top of supervision (accounting, heartbeat).
pub trait Observer {
    /// Called every `--interval` while the workload runs.
    fn tick(&mut self) {}
    /// Called after a stop signal (TERM, INT, QUIT or KILL, after rewriting) was forwarded.
    fn stop_forwarded(&mut self, _signal: i32) {}
    /// Called when `--timeout` is reached, before `signal` (after rewriting; 0 when `--rewrite`
    /// dropped it) is sent; SIGKILL follows after `kill_in`.
    fn timed_out(&mut self, _timeout: Duration, _signal: i32, _kill_in: Duration) {}
    /// Called once, right after the main child was reaped and before what it left behind is ended.
    fn main_exited(&mut self) {}
    /// Called for a child that has exited but is not reaped yet: it is still a zombie, so its
    /// /proc/<pid>/stat still names it.
    fn child_exiting(&mut self, _exiting: &Exiting) {}
    /// Called right after a child was reaped (main child included), with what wait4 said of it.
    fn child_reaped(&mut self, _reaped: &Reaped) {}
}

/// A child that has exited and is not reaped yet, as waitid(WNOWAIT) told it.
#[derive(Clone, Copy, Debug)]
pub struct Exiting {
    pub pid: i32,
    /// Its peak resident set (ru_maxrss).
    pub max_rss_bytes: u64,
    /// Killed by SIGKILL (an OOM kill looks like this).
    pub sigkilled: bool,
}

/// One child reaped by sentinit, as wait4 told it.
#[derive(Clone, Copy, Debug)]
pub struct Reaped {
    pub pid: i32,
    pub exit: Exit,
    /// Its own peak RSS, or that of a descendant it reaped if larger (wait4's ru_maxrss), in bytes.
    pub max_rss_bytes: u64,
    /// Its user + system CPU time, its reaped descendants' included, in microseconds.
    pub cpu_us: u64,
    /// sentinit had sent SIGKILL by then (--kill-after, a forwarded SIGKILL, the SIGKILL passes after the
    /// main child's exit), so a death by SIGKILL may be sentinit's own doing rather than the OOM killer's.
    pub sentinit_sent_sigkill: bool,
}

/// The observer that does nothing.
pub struct NoObserver;
impl Observer for NoObserver {}

/// Signals the workload never receives from sentinit: job-control input/output stops are meaningless
/// for a supervisor, and SIGCHLD is about sentinit's own children.
fn never_forwarded(signal: i32) -> bool {
    matches!(signal, libc::SIGCHLD | libc::SIGTTIN | libc::SIGTTOU)
}

/// A signal that asks the workload to stop (after rewriting): worth a line with the usage so far.
fn is_stop_signal(signal: i32) -> bool {
    matches!(signal, libc::SIGTERM | libc::SIGINT | libc::SIGQUIT | libc::SIGKILL)
}

/// The stop signals after which --kill-after escalates (a forwarded SIGKILL needs no escalation).
fn arms_kill_after(signal: i32) -> bool {
    matches!(signal, libc::SIGTERM | libc::SIGINT | libc::SIGQUIT)
}

/// The first sample comes this soon after the start (or after one --interval, if shorter), so that a
/// workload shorter than the interval still gets a sampled working set.
const FIRST_SAMPLE: Duration = Duration::from_millis(10);

/// Where the main child is in its life.
enum Phase {
    /// The main child runs.
    Running,
    /// The main child has exited; the rest were sent SIGTERM and have until `deadline`.
    Draining { deadline: Instant },
    /// The rest were sent SIGKILL; they are given until `deadline` to be reaped.
    Killing { deadline: Instant },
}

/// Supervises `child` (already started, in process group `child`) until it and everything it left
/// behind are gone. `signal_fd` reads every signal; all of them are blocked.
pub struct Supervisor<'a> {
    config: &'a Config,
    child: i32,
    /// How long sentinit took to start `child`: carried into the [`Outcome`] for the report.
    init_duration: Duration,
    signal_fd: OwnedFd,
    main_exit: Option<(Exit, Instant)>,
    killed_by_sentinit: bool,
    escalated: bool,
    stop_signal: Option<i32>,
    /// When the escalation SIGKILL is due, and the wait it ends (for its message).
    kill_deadline: Option<(Instant, Duration)>,
    /// When `--timeout` is reached: counted from the workload's start (this supervisor's creation,
    /// right after its exec), not sentinit's, so identity resolution does not eat into it.
    timeout_at: Option<Instant>,
    timed_out: bool,
    reaped: u64,
    own_pid: u32,
    is_pid1: bool,
    warned_no_proc: bool,
    /// The main child is stopped (SIGSTOP, SIGTSTP), as waitpid(WUNTRACED|WCONTINUED) last said.
    main_stopped: bool,
}

impl<'a> Supervisor<'a> {
    pub fn new(config: &'a Config, child: i32, init_duration: Duration, signal_fd: OwnedFd) -> Self {
        Supervisor {
            config,
            child,
            init_duration,
            signal_fd,
            main_exit: None,
            killed_by_sentinit: false,
            escalated: false,
            stop_signal: None,
            kill_deadline: None,
            timeout_at: config.timeout.map(|timeout| Instant::now() + timeout),
            timed_out: false,
            reaped: 0,
            own_pid: std::process::id(),
            is_pid1: std::process::id() == 1,
            warned_no_proc: false,
            main_stopped: false,
        }
    }

    /// Runs until the process tree is gone; returns how the main child ended.
    pub fn run(mut self, observer: &mut dyn Observer) -> Outcome {
        let mut phase = Phase::Running;
        // Nothing reads the samples (`--report none`, no heartbeat, no file): no tick, so an idle
        // workload costs no wake-up at all (poll's longest wait, about 24 days, stands for "never").
        let sampling = self.config.needs_samples();
        let never = Duration::from_millis(i32::MAX as u64);
        let mut next_tick = Instant::now() + if sampling { self.config.interval.min(FIRST_SAMPLE) } else { never };
        let mut next_kill_pass = Instant::now();
        loop {
            let now = Instant::now();
            let mut deadline = next_tick;
            match phase {
                Phase::Running => {
                    if let Some((kill_at, _)) = self.kill_deadline {
                        deadline = deadline.min(kill_at);
                    }
                    if let Some(timeout_at) = self.timeout_at {
                        deadline = deadline.min(timeout_at);
                    }
                }
                Phase::Killing { deadline: end } => {
                    deadline = deadline.min(end).min(next_kill_pass);
                }
                Phase::Draining { deadline: end } => {
                    deadline = deadline.min(end);
                    // Processes that are not our children (sentinit could not become a subreaper) send
                    // no SIGCHLD, so look again soon.
                    if !self.has_children() {
                        deadline = deadline.min(now + Duration::from_millis(20));
                    }
                }
            }
            self.wait_for_signal(deadline.saturating_duration_since(now), observer);
            self.reap_all(observer);

            let now = Instant::now();
            if matches!(phase, Phase::Running) && self.main_exit.is_none() {
                if self.timeout_at.is_some_and(|at| now >= at) {
                    self.time_out(observer);
                }
                if let Some((kill_at, waited)) = self.kill_deadline {
                    if now >= kill_at {
                        // No stop signal went out when --rewrite dropped the timeout's: the timeout
                        // itself armed this.
                        let after = match self.stop_signal {
                            Some(signal) => signals::name(signal),
                            None => "the timeout (its signal dropped by --rewrite)".to_string(),
                        };
                        warn!("workload still running {waited:?} after {after}: sending SIGKILL to its process group");
                        self.kill_workload(libc::SIGKILL);
                        self.killed_by_sentinit = true;
                        self.escalated = true;
                        self.kill_deadline = None;
                    }
                }
            }
            if now >= next_tick {
                if self.main_exit.is_none() {
                    observer.tick();
                }
                next_tick = now + if sampling { self.config.interval } else { never };
            }

            phase = match phase {
                Phase::Running if self.main_exit.is_some() => {
                    // Escalation is about the main child only; it is gone.
                    self.kill_deadline = None;
                    observer.main_exited();
                    if !self.anything_left() {
                        break;
                    }
                    debug!("main child gone, sending SIGTERM to what remains (grace {:?})", self.config.grace);
                    self.signal_the_rest(libc::SIGTERM);
                    Phase::Draining { deadline: now + self.config.grace }
                }
                Phase::Draining { .. } | Phase::Killing { .. } if !self.anything_left() => break,
                Phase::Draining { deadline } if now >= deadline => {
                    warn!(
                        "processes still running {:?} after the main child exited: sending SIGKILL",
                        self.config.grace
                    );
                    self.signal_the_rest(libc::SIGKILL);
                    next_kill_pass = now + KILL_PASS_EVERY;
                    Phase::Killing { deadline: now + KILL_WAIT }
                }
                Phase::Killing { deadline } if now >= deadline => {
                    // One last pass: what is still there now has had SIGKILL at least once.
                    self.signal_the_rest(libc::SIGKILL);
                    self.reap_all(observer);
                    if self.anything_left() {
                        warn!("giving up after {KILL_WAIT:?} of SIGKILL passes: {}", self.describe_survivors());
                    }
                    break;
                }
                Phase::Killing { deadline } if now >= next_kill_pass => {
                    // Processes forked since the last pass (a fork loop) have not had theirs yet.
                    self.signal_the_rest(libc::SIGKILL);
                    next_kill_pass = now + KILL_PASS_EVERY;
                    Phase::Killing { deadline }
                }
                other => other,
            };
        }
        let (exit, ended) = self.main_exit.expect("the loop ends only after the main child was reaped");
        Outcome {
            exit,
            ended,
            killed_by_sentinit: self.killed_by_sentinit,
            escalated: self.escalated,
            stop_signal: self.stop_signal,
            timed_out: self.timed_out,
            reaped: self.reaped,
            init_duration: Some(self.init_duration),
        }
    }

    /// Sleeps in poll until a signal arrives or `timeout` passes, then handles every queued signal.
    fn wait_for_signal(&mut self, timeout: Duration, observer: &mut dyn Observer) {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        // Rounded up to the next millisecond: poll(999) for a deadline 999.6 ms away would wake just
        // before it, and an idle second would cost a second wake-up (poll(1)) to reach it.
        let millis = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
        let mut fds = [PollFd::new(self.signal_fd.as_fd(), PollFlags::POLLIN)];
        let _ = poll(&mut fds, PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX));
        // One buffer of signalfd_siginfo records per wake-up, not "until the queue is empty": under a
        // flood of signals from outside the queue is never empty, and the caller must get to reaping
        // and its deadlines. What is left is read on the next wake-up, which comes at once.
        const RECORD: usize = std::mem::size_of::<libc::signalfd_siginfo>();
        let mut buffer = [0u8; RECORD * 32];
        {
            // SAFETY: reads into a live stack buffer of the stated length.
            let n = unsafe { libc::read(self.signal_fd.as_raw_fd(), buffer.as_mut_ptr().cast(), buffer.len()) };
            if n <= 0 {
                return;
            }
            for record in buffer[..n as usize].chunks_exact(RECORD) {
                // SAFETY: the kernel wrote whole signalfd_siginfo records; read_unaligned copes with the
                // byte buffer's alignment.
                let info: libc::signalfd_siginfo = unsafe { std::ptr::read_unaligned(record.as_ptr().cast()) };
                self.handle_signal(info.ssi_signo as i32, info.ssi_pid, observer);
            }
        }
    }

    fn handle_signal(&mut self, received: i32, sender: u32, observer: &mut dyn Observer) {
        if received == libc::SIGCHLD {
            return; // reaped right after, whatever the count
        }
        // sentinit's own doing: SIGPIPE from a write to a closed stderr, SIGXFSZ from --report-file.
        // They are about sentinit's descriptors, not the workload's, and must not be forwarded.
        if sender == self.own_pid {
            return;
        }
        if never_forwarded(received) {
            debug!("received {} from pid {sender}: ignored", signals::name(received));
            return;
        }
        let signal = self.config.rewrites.get(&received).copied().unwrap_or(received);
        if signal == 0 {
            debug!("received {} from pid {sender}: dropped by --rewrite", signals::name(received));
            return;
        }
        if signal != received {
            debug!("received {} from pid {sender}: rewritten to {}", signals::name(received), signals::name(signal));
        }
        let target = self.forward(signal);
        debug!(
            "received {} from pid {sender}: forwarded {} to {target}",
            signals::name(received),
            signals::name(signal)
        );
        if arms_kill_after(signal) && self.main_exit.is_none() && self.target_is_stopped() {
            // A stopped process keeps a TERM pending until it is continued: without SIGCONT its
            // handler never runs and the stop waits for an outside SIGKILL.
            self.forward(libc::SIGCONT);
            debug!("the workload was stopped: sent SIGCONT after {}", signals::name(signal));
        }
        if is_stop_signal(signal) && self.main_exit.is_none() {
            self.stop_signal = Some(signal);
            // A SIGKILL that sentinit forwarded (`--rewrite TERM:KILL`) is not an OOM kill.
            if signal == libc::SIGKILL {
                self.killed_by_sentinit = true;
            }
            observer.stop_forwarded(signal);
            if let (true, Some(after), None) = (arms_kill_after(signal), self.config.kill_after, self.kill_deadline) {
                self.kill_deadline = Some((Instant::now() + after, after));
            }
        }
    }

    /// `--timeout` reached: the timeout signal (through `--rewrite`, like a forwarded one), SIGCONT if
    /// the workload is stopped (a stopped process would sit on it), and SIGKILL after `--kill-after`,
    /// else after `--grace`: a deadline that only asked would not bound a stuck batch job's bill.
    fn time_out(&mut self, observer: &mut dyn Observer) {
        self.timeout_at = None;
        self.timed_out = true;
        let requested = self.config.timeout_signal;
        let signal = self.config.rewrites.get(&requested).copied().unwrap_or(requested);
        let kill_in = self.config.kill_after.unwrap_or(self.config.grace);
        observer.timed_out(self.config.timeout.unwrap_or_default(), signal, kill_in);
        if signal != 0 {
            let target = self.forward(signal);
            debug!("timeout: sent {} to {target}", signals::name(signal));
            if signal != libc::SIGKILL && self.target_is_stopped() {
                self.forward(libc::SIGCONT);
                debug!("the workload was stopped: sent SIGCONT after {}", signals::name(signal));
            }
            self.stop_signal = Some(signal);
            if signal == libc::SIGKILL {
                self.killed_by_sentinit = true;
            }
        }
        // An escalation already due sooner (a forwarded TERM with --kill-after) stays as it is.
        let kill_at = Instant::now() + kill_in;
        if !matches!(self.kill_deadline, Some((at, _)) if at <= kill_at) {
            self.kill_deadline = Some((kill_at, kill_in));
        }
    }

    /// Sends `signal` to the workload: its process group by default, the main child with
    /// --single-child. Returns a description of the target for -v.
    fn forward(&self, signal: i32) -> String {
        if self.config.single_child {
            if self.main_exit.is_none() {
                send_signal(self.child, signal);
                return format!("main child {}", self.child);
            }
            return "nobody (the main child has exited)".to_string();
        }
        let group_ok = send_signal(-self.child, signal);
        // The main child may have left its group (setsid, a shell's job control); it still gets it.
        if self.main_exit.is_none() && (!group_ok || current_pgid(self.child) != Some(self.child)) {
            send_signal(self.child, signal);
            return format!("process group {} and main child {}", self.child, self.child);
        }
        format!("process group {}", self.child)
    }

    /// Is the main child, or (without --single-child) a member of its process group, stopped?
    fn target_is_stopped(&self) -> bool {
        if self.main_stopped {
            return true;
        }
        !self.config.single_child && proctree::is_own() && proctree::group_has_stopped(self.child)
    }

    /// What is left after the SIGKILL passes, for the last warning: each survivor's pid and state,
    /// so that only a process really in uninterruptible sleep is called that.
    fn describe_survivors(&self) -> String {
        let mut survivors: Vec<(i32, char)> = Vec::new();
        if !self.is_pid1 && proctree::is_own() {
            survivors = proctree::descendants(self.own_pid as i32).unwrap_or_default();
        } else if self.is_pid1 && proctree::is_own() {
            survivors = proctree::descendants(0)
                .unwrap_or_default()
                .into_iter()
                .filter(|(pid, _)| *pid != self.own_pid as i32)
                .collect();
        }
        if survivors.is_empty() {
            return "processes are still there but cannot be listed (no usable /proc)".to_string();
        }
        let in_d = survivors.iter().filter(|(_, state)| *state == 'D').count();
        let shown: Vec<String> = survivors
            .iter()
            .take(8)
            .map(|(pid, state)| match state {
                'D' => format!("{pid} (D: uninterruptible sleep)"),
                'Z' => format!("{pid} (Z: exited, not yet reaped by its parent)"),
                other => format!("{pid} ({other})"),
            })
            .collect();
        let more = survivors.len().saturating_sub(shown.len());
        let why = if in_d > 0 {
            "processes in uninterruptible sleep cannot die until the kernel call they are in returns"
        } else {
            "none is in uninterruptible sleep: they were still being created faster than they were killed"
        };
        format!(
            "{} process{} left: {}{}; {why}",
            survivors.len(),
            if survivors.len() == 1 { "" } else { "es" },
            shown.join(", "),
            if more > 0 { format!(" and {more} more") } else { String::new() }
        )
    }

    /// Escalation: SIGKILL to the workload's process group and to the main child.
    fn kill_workload(&self, signal: i32) {
        send_signal(-self.child, signal);
        send_signal(self.child, signal);
    }

    /// Sends `signal` to everything left after the main child: as PID 1 every process in the namespace
    /// (kill(-1) spares PID 1 itself); otherwise the workload's process group and every descendant
    /// found in /proc, including daemons that left the group with setsid.
    ///
    /// A SIGCONT follows a SIGTERM: a process stopped by a forwarded SIGTSTP would otherwise sit on
    /// the TERM until the grace period ran out.
    fn signal_the_rest(&mut self, signal: i32) {
        let signals: &[i32] = if signal == libc::SIGTERM { &[libc::SIGTERM, libc::SIGCONT] } else { &[signal] };
        for &signal in signals {
            if self.is_pid1 {
                // kill(-1) from PID 1 of a namespace reaches exactly the namespace's other processes.
                send_signal(-1, signal);
                continue;
            }
            send_signal(-self.child, signal);
            // Only the namespace's own /proc says who sentinit's descendants are (proctree explains).
            let listed = match proctree::usable() {
                Ok(()) => proctree::descendant_pids(self.own_pid as i32).map_err(|e| e.to_string()),
                Err(proctree::Unusable::Unreadable(reason)) => Err(reason),
                Err(proctree::Unusable::Foreign) => continue, // said once already
            };
            match listed {
                Ok(pids) => pids.into_iter().for_each(|pid| {
                    send_signal(pid, signal);
                }),
                Err(e) if !self.warned_no_proc => {
                    self.warned_no_proc = true;
                    warn!(
                        "cannot list the workload's descendants ({e}): only its process group gets {}",
                        signals::name(signal)
                    );
                }
                Err(_) => {}
            }
        }
    }

    /// Reaps every exited child; records the main child's status, and whether it is stopped.
    ///
    /// waitid(WNOWAIT) first says which child has changed state without reaping it, so that an exited
    /// child can still be read in /proc as a zombie ([`Observer::child_exiting`]); wait4 on that pid
    /// then reaps it and gives its own resource use ([`Observer::child_reaped`]).
    fn reap_all(&mut self, observer: &mut dyn Observer) {
        loop {
            // SAFETY: siginfo_t and rusage are plain data, zeroed so that "no child has changed state"
            // (WNOHANG) reads as pid 0. The raw system call is used for its fifth argument, which the C
            // library's waitid leaves out: the child's resource use, without reaping it. The kernel
            // writes into the live locals.
            let (rc, info, peeked_usage) = unsafe {
                let mut info: libc::siginfo_t = std::mem::zeroed();
                let mut usage: libc::rusage = std::mem::zeroed();
                let rc = libc::syscall(
                    libc::SYS_waitid,
                    libc::P_ALL,
                    0,
                    &mut info as *mut libc::siginfo_t,
                    libc::WEXITED | libc::WSTOPPED | libc::WCONTINUED | libc::WNOHANG | libc::WNOWAIT,
                    &mut usage as *mut libc::rusage,
                );
                (rc, info, usage)
            };
            // SAFETY: the kernel filled in a SIGCHLD siginfo (or left it zeroed), whose si_pid is set.
            let peeked = if rc == 0 { unsafe { info.si_pid() } } else { 0 };
            if peeked <= 0 {
                break;
            }
            if matches!(info.si_code, libc::CLD_EXITED | libc::CLD_KILLED | libc::CLD_DUMPED) {
                observer.child_exiting(&Exiting {
                    pid: peeked,
                    max_rss_bytes: (peeked_usage.ru_maxrss.max(0) as u64).saturating_mul(1024),
                    // SAFETY: as above; si_status is the signal for CLD_KILLED.
                    sigkilled: info.si_code == libc::CLD_KILLED && unsafe { info.si_status() } == libc::SIGKILL,
                });
            }
            let mut status = 0;
            // SAFETY: rusage is plain data; wait4 writes the status and the rusage to live locals.
            let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: as above. WUNTRACED|WCONTINUED also report children that stopped or continued;
            // those are not reaped. (The reaped children's resource use adds up in RUSAGE_CHILDREN,
            // which accounting reads.)
            let wait = |target: i32, status: &mut i32, usage: &mut libc::rusage| unsafe {
                libc::wait4(target, status, libc::WNOHANG | libc::WUNTRACED | libc::WCONTINUED, usage)
            };
            let mut pid = wait(peeked, &mut status, &mut usage);
            if pid <= 0 {
                // The child waitid named cannot be waited for (it should not happen): any child then, so
                // that reaping never stalls on one.
                pid = wait(-1, &mut status, &mut usage);
            }
            if pid <= 0 {
                break;
            }
            if libc::WIFSTOPPED(status) || libc::WIFCONTINUED(status) {
                if pid == self.child {
                    self.main_stopped = libc::WIFSTOPPED(status);
                }
                continue;
            }
            self.reaped += 1;
            let Some(exit) = Exit::from_wait_status(status) else {
                continue;
            };
            // The SIGKILL passes start no earlier than --grace after the main child's exit, and
            // --kill-after and a forwarded SIGKILL set killed_by_sentinit: before either, no SIGKILL
            // came from sentinit. (Judged before this very reap may record the main child's exit.)
            let sentinit_sent_sigkill = self.killed_by_sentinit
                || self.main_exit.is_some_and(|(_, ended)| ended.elapsed() >= self.config.grace);
            if pid == self.child {
                debug!("main child {pid} exited: {exit}");
                self.main_exit = Some((exit, Instant::now()));
            } else {
                debug!("reaped pid {pid}: {exit}");
            }
            let micros =
                |t: libc::timeval| (t.tv_sec.max(0) as u64).saturating_mul(1_000_000) + t.tv_usec.max(0) as u64;
            observer.child_reaped(&Reaped {
                pid,
                exit,
                max_rss_bytes: (usage.ru_maxrss.max(0) as u64).saturating_mul(1024),
                cpu_us: micros(usage.ru_utime).saturating_add(micros(usage.ru_stime)),
                sentinit_sent_sigkill,
            });
        }
    }

    fn has_children(&self) -> bool {
        // SAFETY: siginfo_t is plain data; WNOHANG|WNOWAIT only asks whether any child exists (0) or
        // none does (ECHILD), without reaping anything.
        let rc = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::waitid(libc::P_ALL, 0, &mut info, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT)
        };
        rc == 0
    }

    /// Is any process of the workload left: a child of ours, or a member of its process group?
    fn anything_left(&self) -> bool {
        // Signal 0 only checks whether the group still has a member.
        self.has_children() || send_signal(-self.child, 0)
    }
}

/// kill(2): `pid` may be a process, `-pgid` a process group, `-1` everything (as PID 1); signal 0 only
/// checks. Returns whether anything was signalled; ESRCH and EPERM are not errors here. Raw, because
/// nix's `Signal` has no real-time signals.
fn send_signal(pid: i32, signal: i32) -> bool {
    // SAFETY: kill(2) takes two integers and touches no memory of ours.
    unsafe { libc::kill(pid, signal) == 0 }
}

fn current_pgid(pid: i32) -> Option<i32> {
    nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(pid))).ok().map(|p| p.as_raw())
}

/// PR_SET_CHILD_SUBREAPER, so that orphans of the workload are reparented to sentinit (and reaped)
/// even when sentinit is not PID 1: `docker run --init` plus sentinit, shared PID namespaces, tests.
pub fn become_subreaper() {
    match nix::sys::prctl::set_child_subreaper(true) {
        Ok(()) => debug!("not PID 1: registered as child subreaper"),
        Err(e) => warn!(
            "not PID 1 and cannot become a child subreaper ({e}): orphaned processes will not be reaped by sentinit"
        ),
    }
}

/// Blocks every signal, ignores SIGTTIN/SIGTTOU, and returns the signalfd that will read them all.
///
/// SIGCHLD goes back to its default disposition first: inherited as ignored (a launcher's
/// `trap '' CHLD`; it survives execve), the kernel would reap sentinit's children itself and sentinit
/// would never learn that the workload ended. Blocking it is not enough; the disposition decides.
pub fn take_signals() -> std::io::Result<OwnedFd> {
    signals::set_ignored(libc::SIGCHLD, false);
    signals::set_blocked(Mask::all())?;
    signals::set_ignored(libc::SIGTTIN, true);
    signals::set_ignored(libc::SIGTTOU, true);
    signals::signalfd(Mask::all())
}
