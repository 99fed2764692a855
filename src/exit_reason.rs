//! Why the workload ended, as one word a log query can group by (`exit_reason` in the report).
//!
//! The exit code alone cannot say it: 137 is an OOM kill, sentinit's own `--kill-after` escalation, a
//! `--rewrite TERM:KILL`, or someone's `kill -9`; 143 is a `docker stop` or a stray `kill`. The
//! decision is [`classify`], from what supervision saw ([`Outcome`]) and what the cgroup counted
//! ([`Usage`]), so that it can be refined (exact OOM victims) in one place.

use crate::accounting::Usage;
use crate::supervise::{Exit, Outcome};

/// One reason per run. When several apply, the first in this list wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitReason {
    /// The workload never ran: the exec failed (126, 127) or the fork did (1).
    NotStarted,
    /// `--timeout` was reached and sentinit stopped it, however it then ended.
    TimedOut,
    /// sentinit's `--kill-after` escalation killed it: it did not stop in time after a stop signal.
    KilledAfterStop,
    /// It died of a SIGKILL sentinit did not send while the cgroup's OOM-kill counter grew.
    OomKilled,
    /// It ended (by exit or signal) after sentinit forwarded a stop signal (TERM, INT, QUIT, after
    /// rewriting) to it: the orderly end of a `docker stop`.
    Stopped,
    /// It was killed by a signal from elsewhere (its own `kill`, a crash, someone else's `kill`).
    Signaled,
    /// It exited on its own, with any code.
    Exited,
}

impl ExitReason {
    /// The word in the report.
    pub fn as_str(self) -> &'static str {
        match self {
            ExitReason::NotStarted => "not_started",
            ExitReason::TimedOut => "timed_out",
            ExitReason::KilledAfterStop => "killed_after_stop",
            ExitReason::OomKilled => "oom_killed",
            ExitReason::Stopped => "stopped",
            ExitReason::Signaled => "signaled",
            ExitReason::Exited => "exited",
        }
    }
}

/// Why the main child ended. Precedence: not_started > timed_out > killed_after_stop > oom_killed >
/// stopped > signaled / exited.
pub fn classify(outcome: &Outcome, usage: &Usage) -> ExitReason {
    let sigkill = outcome.exit == Exit::Signal(libc::SIGKILL);
    if outcome.init_duration.is_none() {
        ExitReason::NotStarted
    } else if outcome.timed_out {
        // The deadline is the cause of whatever followed: its SIGKILL, an OOM kill in the TERM
        // handler, an orderly exit; the exit code still tells which.
        ExitReason::TimedOut
    } else if outcome.escalated && sigkill {
        // Escalation without a SIGKILL death: the workload exited just before the kill landed, on
        // its own, after the stop signal; that is `stopped`.
        ExitReason::KilledAfterStop
    } else if sigkill
        && !outcome.killed_by_sentinit
        && usage.oom_kills.is_some_and(|kills| kills > 0)
        && usage.main_child_oom_victim != Some(false)
    {
        // The counter is the cgroup's: a worker killed earlier counts too. When the victims were
        // named and the main child is not one of them, its SIGKILL came from someone else.
        ExitReason::OomKilled
    } else if outcome.stop_signal.is_some() {
        ExitReason::Stopped
    } else {
        match outcome.exit {
            Exit::Signal(_) => ExitReason::Signaled,
            Exit::Code(_) => ExitReason::Exited,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn outcome(exit: Exit) -> Outcome {
        Outcome::ended_now(exit)
    }

    fn usage(oom_kills: Option<u64>) -> Usage {
        Usage {
            started_at: SystemTime::now(),
            duration: Duration::from_millis(10),
            oom_killed: oom_kills.map(|kills| kills > 0),
            oom_kills,
            ..Usage::unknown()
        }
    }

    const KILL: Exit = Exit::Signal(libc::SIGKILL);

    #[test]
    fn each_ending_has_its_word() {
        let none = usage(Some(0));
        assert_eq!(classify(&outcome(Exit::Code(0)), &none), ExitReason::Exited);
        assert_eq!(classify(&outcome(Exit::Code(3)), &none), ExitReason::Exited);
        assert_eq!(classify(&outcome(Exit::Signal(libc::SIGUSR2)), &none), ExitReason::Signaled);
        assert_eq!(classify(&outcome(KILL), &none), ExitReason::Signaled);
        assert_eq!(classify(&outcome(KILL), &usage(Some(1))), ExitReason::OomKilled);
        assert_eq!(classify(&outcome(KILL), &usage(None)), ExitReason::Signaled, "no counter: no verdict");
        let stopped = Outcome { stop_signal: Some(libc::SIGTERM), ..outcome(Exit::Signal(libc::SIGTERM)) };
        assert_eq!(classify(&stopped, &none), ExitReason::Stopped);
        let stopped = Outcome { stop_signal: Some(libc::SIGTERM), ..outcome(Exit::Code(0)) };
        assert_eq!(classify(&stopped, &none), ExitReason::Stopped);
        assert_eq!(classify(&Outcome::not_started(127), &none), ExitReason::NotStarted);
        assert_eq!(classify(&Outcome::not_started(1), &usage(Some(1))), ExitReason::NotStarted);
    }

    #[test]
    fn escalation_is_told_from_a_forwarded_sigkill_and_from_an_oom() {
        let stop = Some(libc::SIGTERM);
        let escalated = Outcome { killed_by_sentinit: true, escalated: true, stop_signal: stop, ..outcome(KILL) };
        assert_eq!(classify(&escalated, &usage(Some(0))), ExitReason::KilledAfterStop);
        assert_eq!(classify(&escalated, &usage(Some(2))), ExitReason::KilledAfterStop, "before oom_killed");
        // `--rewrite TERM:KILL`: sentinit forwarded the SIGKILL as the stop signal.
        let forwarded = Outcome { killed_by_sentinit: true, stop_signal: Some(libc::SIGKILL), ..outcome(KILL) };
        assert_eq!(classify(&forwarded, &usage(Some(1))), ExitReason::Stopped);
        // An OOM kill while stopping (the TERM handler allocated) is an OOM kill.
        let oom_while_stopping = Outcome { stop_signal: stop, ..outcome(KILL) };
        assert_eq!(classify(&oom_while_stopping, &usage(Some(1))), ExitReason::OomKilled);
        // Escalated, but the workload exited on its own just before the SIGKILL landed.
        let raced = Outcome { killed_by_sentinit: true, escalated: true, stop_signal: stop, ..outcome(Exit::Code(0)) };
        assert_eq!(classify(&raced, &usage(Some(0))), ExitReason::Stopped);
    }

    #[test]
    fn a_sigkill_from_someone_else_after_a_worker_s_oom_kill_is_signaled() {
        let worker_named = Usage { main_child_oom_victim: Some(false), ..usage(Some(1)) };
        assert_eq!(classify(&outcome(KILL), &worker_named), ExitReason::Signaled);
        let main_named = Usage { main_child_oom_victim: Some(true), ..usage(Some(1)) };
        assert_eq!(classify(&outcome(KILL), &main_named), ExitReason::OomKilled);
        // Nobody named: the counter alone decides, as before.
        assert_eq!(classify(&outcome(KILL), &usage(Some(1))), ExitReason::OomKilled);
    }

    #[test]
    fn a_timeout_comes_before_everything_but_not_started() {
        let stop = Some(libc::SIGTERM);
        let killed =
            Outcome { timed_out: true, killed_by_sentinit: true, escalated: true, stop_signal: stop, ..outcome(KILL) };
        assert_eq!(classify(&killed, &usage(Some(0))), ExitReason::TimedOut, "before killed_after_stop");
        let oom = Outcome { timed_out: true, stop_signal: stop, ..outcome(KILL) };
        assert_eq!(classify(&oom, &usage(Some(1))), ExitReason::TimedOut, "before oom_killed");
        let exited = Outcome { timed_out: true, stop_signal: stop, ..outcome(Exit::Code(0)) };
        assert_eq!(classify(&exited, &usage(Some(0))), ExitReason::TimedOut, "before stopped");
        let never = Outcome { timed_out: true, ..Outcome::not_started(127) };
        assert_eq!(classify(&never, &usage(Some(0))), ExitReason::NotStarted);
    }
}
