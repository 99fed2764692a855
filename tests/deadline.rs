//! `--timeout` through the real binary, as an ordinary child and as PID 1: the workload is stopped when
//! its time is up (the timeout signal, then SIGKILL after `--kill-after` or `--grace`), sentinit exits
//! 124 unless `--remap-exit` says otherwise, and the report says `timed_out` while keeping the
//! workload's own exit code.

mod common;

use common::*;
use serde_json::Value;
use std::process::Output;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(30);

/// `sentinit -q --report json,text OPTIONS -- sh -c SCRIPT` in `mode`, run to its end.
fn sh(mode: Mode, options: &[&str], script: &str) -> Output {
    let mut args = vec!["-q", "--report", "json,text"];
    args.extend_from_slice(options);
    args.extend_from_slice(&["--", "sh", "-c", script]);
    run(command(mode, &args), LIMIT)
}

/// A `sleep` argument no other process has: 29.<unique digits> seconds, so the process table can be
/// searched for what the workload left.
fn unique_sleep() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("29.{}{:03}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Checks sentinit's exit code and the report's `timed_out`, `exit_reason` and `exit_code`, and that
/// `timed_out` comes right after `exit_reason`.
fn assert_report(output: &Output, what: &str, code: i32, timed_out: bool, reason: &str, exit_code: i32) -> Value {
    let text = stderr_of(output);
    assert_eq!(output.status.code(), Some(code), "{what}: {text}");
    let r = report(output);
    assert_eq!(r["timed_out"], timed_out, "{what}: {r}");
    assert_eq!(r["exit_reason"], reason, "{what}: {r}");
    assert_eq!(r["exit_code"], exit_code, "{what}: {r}");
    let pair = format!("\"exit_reason\":\"{reason}\",\"timed_out\":{timed_out},");
    assert!(text.contains(&pair), "{what}: {pair} in {text}");
    r
}

#[test]
fn a_workload_that_ignores_term_is_killed_after_the_grace_and_sentinit_exits_124() {
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        // The ignored TERM is inherited by sleep too: only the SIGKILL ends either.
        let marker = unique_sleep();
        let script = format!("trap '' TERM; sleep {marker}");
        let output = sh(mode, &["--timeout", "300ms", "--grace", "200ms"], &script);
        let what = format!("{mode:?} TERM ignored");
        let r = assert_report(&output, &what, 124, true, "timed_out", 137);
        assert_eq!(r["signal"], "SIGKILL", "{r}");
        assert_eq!(r["killed_by_sentinit"], true, "{r}");
        assert_eq!(r["stop_signal"], "SIGTERM", "{r}");
        let text = stderr_of(&output);
        assert!(
            text.lines().any(|l| l
                .starts_with("sentinit: timeout after 0.30 s: sending SIGTERM (SIGKILL in 0.20 s): working set ")
                && l.contains(", CPU ")
                && l.contains(", OOM kills ")),
            "{what}: the deadline line: {text}"
        );
        assert!(text.contains("\tExit: 137 (SIGKILL, timed_out)\t"), "{what}: {text}");
        assert!(
            wait_for(Duration::from_secs(5), || processes_with(&marker).is_empty().then_some(())).is_some(),
            "{what}: left behind: {:?}",
            processes_with(&marker)
        );
    }
}

#[test]
fn a_workload_that_stops_on_term_keeps_its_code_in_the_report() {
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        let script = "trap 'exit 0' TERM; while :; do sleep 0.05; done";
        let output = sh(mode, &["--timeout", "300ms", "--grace", "60s"], script);
        assert_report(&output, &format!("{mode:?} TERM handled"), 124, true, "timed_out", 0);

        let output = sh(mode, &["--timeout", "300ms", "--remap-exit", "124:0"], script);
        assert_report(&output, &format!("{mode:?} --remap-exit 124:0"), 0, true, "timed_out", 0);
    }
}

#[test]
fn kill_after_is_used_instead_of_the_grace_when_given() {
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        // With the 60 s grace the run would outlast the test's 30 s limit.
        let marker = unique_sleep();
        let options = ["--timeout", "300ms", "--grace", "60s", "--kill-after", "100ms"];
        let output = sh(mode, &options, &format!("trap '' TERM; sleep {marker}"));
        let what = format!("{mode:?} --kill-after");
        assert_report(&output, &what, 124, true, "timed_out", 137);
        let text = stderr_of(&output);
        assert!(text.contains("sentinit: timeout after 0.30 s: sending SIGTERM (SIGKILL in 0.10 s): "), "{text}");
        assert!(text.contains("workload still running 100ms after SIGTERM: sending SIGKILL"), "{what}: {text}");
        assert!(wait_for(Duration::from_secs(5), || processes_with(&marker).is_empty().then_some(())).is_some());
    }
}

#[test]
fn the_timeout_signal_goes_through_rewrite_and_wakes_a_stopped_workload() {
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        // SENTINIT_TIMEOUT_SIGNAL=INT, rewritten to USR1, which the workload handles.
        let script = "trap 'exit 9' USR1; while :; do sleep 0.05; done";
        let mut cmd = command(mode, &["-q", "--report", "json", "--rewrite", "INT:USR1", "--", "sh", "-c", script]);
        cmd.env("SENTINIT_TIMEOUT", "300ms").env("SENTINIT_TIMEOUT_SIGNAL", "INT").env("SENTINIT_GRACE", "60s");
        let output = run(cmd, LIMIT);
        let r = assert_report(&output, &format!("{mode:?} INT:USR1"), 124, true, "timed_out", 9);
        assert_eq!(r["stop_signal"], "SIGUSR1", "{r}");
        assert!(stderr_of(&output).contains("timeout after 0.30 s: sending SIGUSR1 "), "{}", stderr_of(&output));

        // --rewrite TERM:0 drops the timeout's signal: the SIGKILL that follows says so, not "after SIGTERM".
        let output = sh(mode, &["--timeout", "300ms", "--rewrite", "TERM:0", "--kill-after", "200ms"], "sleep 30");
        assert_eq!(output.status.code(), Some(124), "{mode:?}: {}", stderr_of(&output));
        assert!(
            stderr_of(&output).contains("after the timeout (its signal dropped by --rewrite): sending SIGKILL"),
            "{mode:?}: {}",
            stderr_of(&output)
        );

        // --timeout-signal KILL: the line promises no second SIGKILL.
        let output = sh(mode, &["--timeout", "300ms", "--timeout-signal", "KILL"], "sleep 30");
        assert_eq!(output.status.code(), Some(124), "{mode:?}: {}", stderr_of(&output));
        assert!(
            stderr_of(&output).contains("timeout after 0.30 s: sending SIGKILL: working set "),
            "{mode:?}: {}",
            stderr_of(&output)
        );

        // A workload stopped by SIGSTOP gets SIGCONT too, so its handler runs instead of the SIGKILL
        // 60 s later (beyond the test's limit).
        let script = "trap 'exit 7' TERM; kill -STOP $$; exit 1";
        let output = sh(mode, &["--timeout", "300ms", "--grace", "60s"], script);
        assert_report(&output, &format!("{mode:?} stopped"), 124, true, "timed_out", 7);
    }
}

#[test]
fn without_a_timeout_or_before_it_nothing_changes() {
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        let output = sh(mode, &[], "sleep 0.4; exit 3");
        assert_report(&output, &format!("{mode:?} no --timeout"), 3, false, "exited", 3);
        assert!(!stderr_of(&output).contains("timeout"), "{}", stderr_of(&output));

        let output = sh(mode, &["--timeout", "30s"], "exit 5");
        assert_report(&output, &format!("{mode:?} not reached"), 5, false, "exited", 5);
        let output = sh(mode, &["--timeout", "30s"], "kill -USR2 $$");
        assert_report(&output, &format!("{mode:?} not reached, a signal"), 140, false, "signaled", 140);
        assert!(!stderr_of(&output).contains("timeout after"), "{}", stderr_of(&output));
    }
}

#[test]
fn bad_values_are_usage_errors() {
    for (args, culprit) in [
        (&["--timeout", "soon", "true"][..], "--timeout"),
        (&["--timeout-signal", "NOPE", "true"][..], "--timeout-signal"),
        (&["--timeout-signal", "0", "true"][..], "--timeout-signal"),
    ] {
        let output = run(command(Mode::Child, args), LIMIT);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(stderr_of(&output).contains(culprit), "{args:?}: {}", stderr_of(&output));
    }
    let mut cmd = command(Mode::Child, &["true"]);
    cmd.env("SENTINIT_TIMEOUT", "1 fortnight");
    let output = run(cmd, LIMIT);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr_of(&output).contains("SENTINIT_TIMEOUT"), "{}", stderr_of(&output));
}
