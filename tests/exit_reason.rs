//! `exit_reason` and `init_duration_ms` through the real binary, for every way the supervisor sees a
//! workload end, with sentinit as an ordinary child and as PID 1. The counters come from a fixture
//! cgroup v2 tree, so that an OOM kill elsewhere on the machine cannot change a verdict and the workload
//! can make the OOM-kill counter grow itself; the real kernel's OOM kill is in accounting_cgroup_v1.rs.

mod common;

use common::*;
use serde_json::Value;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(30);

/// Makes the fixture cgroup's OOM-kill counter grow by one, in place (sentinit holds the file open).
const OOM_KILL: &str =
    "printf 'low 0\\nhigh 0\\nmax 1\\noom 1\\noom_kill 1\\noom_group_kill 0\\n' > $SYS/fs/cgroup/memory.events";

/// `sentinit OPTIONS -- WORKLOAD` in `mode` (report: json and text unless OPTIONS say), on a fixture
/// cgroup tree; `$SYS` is the tree's /sys and `$READY` a file the workload touches once its traps are set.
fn sentinit(mode: Mode, tree: &Tree, options: &[&str], workload: &[&str]) -> Command {
    let mut args = vec!["-q", "--interval", "10ms"];
    if !options.contains(&"--report") {
        args.extend_from_slice(&["--report", "json,text"]);
    }
    args.extend_from_slice(options);
    args.push("--");
    args.extend_from_slice(workload);
    let mut cmd = command(mode, &args);
    cmd.env("SENTINIT_PROC_ROOT", tree.0.join("proc"))
        .env("SENTINIT_SYS_ROOT", tree.sys())
        .env("SYS", tree.sys())
        .env("READY", tree.0.join("ready"));
    cmd
}

fn sh(mode: Mode, tree: &Tree, options: &[&str], script: &str) -> Output {
    run(sentinit(mode, tree, options, &["sh", "-c", script]), LIMIT)
}

/// Starts a long-running `sh -c SCRIPT` (which touches "$READY"), waits until it is ready, lets `act`
/// act on (sentinit's host pid, the workload's host pid), and returns the output.
fn sh_until(mode: Mode, tree: &Tree, options: &[&str], script: &str, act: impl FnOnce(i32, i32)) -> Output {
    let _ = std::fs::remove_file(tree.0.join("ready")); // left by an earlier run on the same tree
    let mut cmd = sentinit(mode, tree, options, &["sh", "-c", script]);
    let child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = sentinit_pid(&child, mode);
    wait_for(LIMIT, || std::fs::metadata(tree.0.join("ready")).ok()).expect("the workload got ready");
    let workload = children(pid).first().copied().expect("sentinit's child");
    act(pid, workload);
    finish(child, LIMIT)
}

/// The one REPORT line.
fn report_line(output: &Output) -> String {
    let text = stderr_of(output);
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("REPORT\t")).collect();
    assert_eq!(lines.len(), 1, "exactly one REPORT line expected in:\n{text}");
    lines[0].to_string()
}

/// Checks the exit code, `exit_reason` in both formats (`Exit: CODE (REASON)`, or
/// `Exit: CODE (SIGNAL, REASON)`), and that a started workload has an init duration in both.
fn assert_ended(output: &Output, what: &str, code: i32, signal: Option<&str>, reason: &str) -> Value {
    let text = stderr_of(output);
    assert_eq!(output.status.code(), Some(code), "{what}: {text}");
    let r = report(output);
    assert_eq!(r["exit_reason"], reason, "{what}: {r}");
    assert_eq!(r["signal"], signal.map_or(Value::Null, Value::from), "{what}: {r}");
    let line = report_line(output);
    let exit = match signal {
        Some(signal) => format!("\tExit: {code} ({signal}, {reason})\t"),
        None => format!("\tExit: {code} ({reason})\t"),
    };
    assert!(line.contains(&exit), "{what}: {exit:?} in {line}");
    if reason == "not_started" {
        assert_eq!(r["init_duration_ms"], Value::Null, "{what}: {r}");
        assert!(!line.contains("Init Duration"), "{what}: left out, as Lambda does without an init: {line}");
    } else {
        let init = r["init_duration_ms"].as_f64().unwrap_or_else(|| panic!("{what}: init_duration_ms in {r}"));
        assert!(init > 0.0, "{what}: {r}");
        // Right after Duration, as on Lambda's REPORT line.
        let fields: Vec<&str> = line.split('\t').collect();
        assert!(fields[1].starts_with("Duration: "), "{what}: {line}");
        let value = fields[2].strip_prefix("Init Duration: ").and_then(|v| v.strip_suffix(" ms"));
        assert!(value.is_some_and(|v| v.parse::<f64>().is_ok()), "{what}: {line}");
    }
    r
}

#[test]
fn an_exit_is_exited_whatever_the_code() {
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        let tree = Tree::copy("v2-namespaced");
        for code in [0, 3] {
            let output = sh(mode, &tree, &[], &format!("exit {code}"));
            assert_ended(&output, &format!("{mode:?} exit {code}"), code, None, "exited");
        }
    }
}

#[test]
fn a_signal_from_elsewhere_is_signaled() {
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        let tree = Tree::copy("v2-namespaced");
        let output = sh(mode, &tree, &[], "kill -USR2 $$");
        assert_ended(&output, &format!("{mode:?} its own USR2"), 140, Some("SIGUSR2"), "signaled");

        // Someone else's SIGKILL, with the OOM-kill counter unchanged: not an OOM kill.
        let script = "touch \"$READY\"; while :; do sleep 0.05; done";
        let output = sh_until(mode, &tree, &[], script, |_, workload| assert!(signal(workload, libc::SIGKILL)));
        let r = assert_ended(&output, &format!("{mode:?} the test's SIGKILL"), 137, Some("SIGKILL"), "signaled");
        assert_eq!(r["killed_by_sentinit"], false, "{r}");
    }
}

#[test]
fn a_forwarded_stop_is_stopped_whether_the_workload_exits_or_dies_of_it() {
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        let tree = Tree::copy("v2-namespaced");
        let term = |sentinit: i32, _| assert!(signal(sentinit, libc::SIGTERM));
        let script = "trap 'exit 0' TERM; touch \"$READY\"; while :; do sleep 0.05; done";
        let output = sh_until(mode, &tree, &[], script, term);
        let r = assert_ended(&output, &format!("{mode:?} TERM trapped"), 0, None, "stopped");
        assert_eq!(r["stop_signal"], "SIGTERM", "{r}");

        let script = "touch \"$READY\"; while :; do sleep 0.05; done";
        let output = sh_until(mode, &tree, &[], script, term);
        assert_ended(&output, &format!("{mode:?} TERM fatal"), 143, Some("SIGTERM"), "stopped");
    }
}

#[test]
fn kill_after_is_killed_after_stop_and_a_forwarded_kill_is_stopped() {
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        let tree = Tree::copy("v2-namespaced");
        let term = |sentinit: i32, _| assert!(signal(sentinit, libc::SIGTERM));
        let script = "trap '' TERM; touch \"$READY\"; while :; do sleep 0.05; done";
        let output = sh_until(mode, &tree, &["--kill-after", "200ms"], script, term);
        let what = format!("{mode:?} --kill-after");
        let r = assert_ended(&output, &what, 137, Some("SIGKILL"), "killed_after_stop");
        assert_eq!(r["killed_by_sentinit"], true, "{r}");

        // Both SIGKILLs are sentinit's; only the escalation says the workload did not stop in time.
        let output = sh_until(mode, &tree, &["--rewrite", "TERM:KILL"], script, term);
        let r = assert_ended(&output, &format!("{mode:?} --rewrite TERM:KILL"), 137, Some("SIGKILL"), "stopped");
        assert_eq!(r["killed_by_sentinit"], true, "{r}");
        assert_eq!(r["stop_signal"], "SIGKILL", "{r}");
    }
}

#[test]
fn a_workload_that_never_started_is_not_started_without_an_init_duration() {
    let dir = TempDir::new("not-started");
    let directory = dir.path().to_str().unwrap().to_string();
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        let tree = Tree::copy("v2-namespaced");
        for (program, code) in [("definitely-not-a-command-xyz", 127), (directory.as_str(), 126)] {
            let output = run(sentinit(mode, &tree, &[], &[program]), LIMIT);
            assert_ended(&output, &format!("{mode:?} {program}"), code, None, "not_started");
        }
    }
}

#[test]
fn a_sigkill_while_the_oom_kill_counter_grows_is_oom_killed() {
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        let tree = Tree::copy("v2-namespaced");
        let output = sh(mode, &tree, &[], &format!("{OOM_KILL}; sleep 0.05; kill -KILL $$"));
        let r = assert_ended(&output, &format!("{mode:?} OOM"), 137, Some("SIGKILL"), "oom_killed");
        assert_eq!(r["oom_kills"], 1, "{r}");
        assert!(report_line(&output).ends_with("\tOOM: killed (1)"));

        // A worker was OOM-killed, the main process exited on its own: the exit is what ended the run.
        let tree = Tree::copy("v2-namespaced");
        let output = sh(mode, &tree, &[], &format!("{OOM_KILL}; sleep 0.05; exit 0"));
        let r = assert_ended(&output, &format!("{mode:?} a worker's OOM"), 0, None, "exited");
        assert_eq!(r["oom_killed"], true, "{r}");

        // sentinit's own escalation comes first, even when the counter grew meanwhile.
        let tree = Tree::copy("v2-namespaced");
        let script = format!("trap '' TERM; {OOM_KILL}; touch \"$READY\"; while :; do sleep 0.05; done");
        let term = |sentinit: i32, _| assert!(signal(sentinit, libc::SIGTERM));
        let output = sh_until(mode, &tree, &["--kill-after", "200ms"], &script, term);
        let what = format!("{mode:?} --kill-after after an OOM kill");
        let r = assert_ended(&output, &what, 137, Some("SIGKILL"), "killed_after_stop");
        assert_eq!(r["oom_kills"], 1, "{r}");
    }
}

#[test]
fn init_duration_is_an_emf_metric_when_known() {
    let metrics = |output: &Output| -> Vec<String> {
        let event = &json_lines(output, "sentinit.report")[0];
        let metrics = event["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array().unwrap().clone();
        assert!(
            metrics.contains(&serde_json::json!({"Name": "init_duration_ms", "Unit": "Milliseconds"}))
                || event["init_duration_ms"].is_null()
        );
        metrics.iter().map(|m| m["Name"].as_str().unwrap().to_string()).collect()
    };
    let tree = Tree::copy("v2-namespaced");
    let output = run(sentinit(Mode::Child, &tree, &["--report", "emf"], &["true"]), LIMIT);
    assert!(metrics(&output).contains(&"init_duration_ms".to_string()), "{}", stderr_of(&output));
    // Never started: null, so not declared (CloudWatch would reject the event).
    let output = run(sentinit(Mode::Child, &tree, &["--report", "emf"], &["definitely-not-a-command-xyz"]), LIMIT);
    assert!(!metrics(&output).contains(&"init_duration_ms".to_string()), "{}", stderr_of(&output));
}
