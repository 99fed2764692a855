//! The Kubernetes termination message (`--termination-log PATH`) through the real binary, as an
//! ordinary child and as PID 1: its shape for an exit, a signal, a timeout and a real OOM kill (cgroup
//! v1), the 4096-byte cap, and a path prepared by a hostile workload: a message the workload wrote
//! itself, a symlink, a FIFO. Always a temporary path, never the real /dev/termination-log.

mod common;

use common::cgroup::MemoryGroup;
use common::*;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(30);
const MIB: u64 = 1024 * 1024;

/// `sentinit -q --report json --termination-log PATH OPTIONS -- sh -c SCRIPT` in `mode`; `$TL` is PATH.
fn sh(mode: Mode, path: &Path, options: &[&str], script: &str) -> Output {
    let path = path.to_str().unwrap();
    let mut args = vec!["-q", "--report", "json", "--termination-log", path];
    args.extend_from_slice(options);
    args.extend_from_slice(&["--", "sh", "-c", script]);
    let mut cmd = command(mode, &args);
    cmd.env("TL", path);
    run(cmd, LIMIT)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Checks the message's shape: `exit CODE (REASON): ...; DURATION s; CPU N.N s`, one line, no more
/// than the kubelet keeps, and the code and reason the report has.
fn assert_message(text: &str, output: &Output, what: &str) {
    let r = report(output);
    let head = format!("exit {} ({}): ", r["exit_code"], r["exit_reason"].as_str().unwrap());
    assert!(text.starts_with(&head), "{what}: {head:?} in {text:?}");
    assert!(text.len() <= 4096 && !text.contains('\n'), "{what}: {text:?}");
    let parts: Vec<&str> = text[head.len()..].split("; ").collect();
    let last = parts.last().unwrap();
    let cpu = last.strip_prefix("CPU ").and_then(|s| s.strip_suffix(" s"));
    assert!(cpu.is_some_and(|v| v.split_once('.').is_some_and(|(_, d)| d.len() == 1)), "{what}: {text}");
    let duration = parts[parts.len() - 2].strip_suffix(" s");
    assert!(duration.is_some_and(|v| v.parse::<f64>().is_ok()), "{what}: {text}");
}

#[test]
fn an_exit_a_signal_and_a_timeout_are_summed_up() {
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        let dir = TempDir::new("tl-shapes");
        // Missing: created (an explicit path).
        let path = dir.join("exit");
        let output = sh(mode, &path, &[], "exit 3");
        assert_eq!(output.status.code(), Some(3), "{}", stderr_of(&output));
        let text = read(&path);
        assert_message(&text, &output, &format!("{mode:?} exit"));
        assert!(text.starts_with("exit 3 (exited): "), "{text}");
        assert!(!text.contains("OOM"), "{text}");

        // Empty and already there (as the kubelet provides it): written.
        let path = dir.join("signal");
        std::fs::write(&path, "").unwrap();
        let output = sh(mode, &path, &[], "kill -USR2 $$");
        assert_eq!(output.status.code(), Some(140));
        let text = read(&path);
        assert_message(&text, &output, &format!("{mode:?} signal"));
        assert!(text.starts_with("exit 140 (signaled): "), "{text}");

        let path = dir.join("timeout");
        let output = sh(mode, &path, &["--timeout", "300ms"], "trap 'exit 0' TERM; while :; do sleep 0.05; done");
        assert_eq!(output.status.code(), Some(124));
        let text = read(&path);
        assert_message(&text, &output, &format!("{mode:?} timeout"));
        assert!(text.starts_with("exit 0 (timed_out): --timeout 0.3 s; "), "{text}");

        // A workload that never started has a message too.
        let path = dir.join("not-started");
        let args = ["-q", "--termination-log", path.to_str().unwrap(), "--", "definitely-not-a-command-xyz"];
        let output = run(command(mode, &args), LIMIT);
        assert_eq!(output.status.code(), Some(127));
        assert!(read(&path).starts_with("exit 127 (not_started): "), "{}", read(&path));
    }
}

#[test]
fn an_oom_kill_names_the_victim_and_the_peak_against_the_limit() {
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        let Some(group) = MemoryGroup::create(64 * MIB) else { return };
        let dir = TempDir::new("tl-oom");
        let path = dir.join("message");
        let args = ["--report", "json", "--termination-log", path.to_str().unwrap()];
        let output = group.run_as(mode, &args, &["dd", "if=/dev/zero", "of=/dev/null", "bs=200M", "count=1"]);
        assert_eq!(output.status.code(), Some(137), "{mode:?}: {}", stderr_of(&output));
        let r = report(&output);
        let victim = &r["oom_victims"][0];
        let text = read(&path);
        assert_message(&text, &output, &format!("{mode:?} OOM"));
        let expected = format!("exit 137 (oom_killed): dd[{}] OOM-killed at ", victim["pid"]);
        assert!(text.starts_with(&expected), "{mode:?}: {expected:?} in {text:?}; {r}");
        assert!(text.contains(" MiB; peak ") && text.contains(" of 64 MiB; "), "{mode:?}: {text}");
    }
}

#[test]
fn what_the_workload_wrote_is_left_alone() {
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        let dir = TempDir::new("tl-own");
        let path = dir.join("message");
        std::fs::write(&path, "").unwrap();
        let output = sh(mode, &path, &[], "printf 'bad input: row 17' > \"$TL\"; exit 2");
        assert_eq!(output.status.code(), Some(2));
        assert_eq!(read(&path), "bad input: row 17", "{mode:?}");
        assert!(!stderr_of(&output).contains("warning"), "{}", stderr_of(&output));
    }
}

#[test]
fn none_turns_it_off() {
    let dir = TempDir::new("tl-none");
    let path = dir.join("message");
    std::fs::write(&path, "").unwrap();
    let output = run(command(Mode::Child, &["-q", "--termination-log", "none", "true"]), LIMIT);
    assert_eq!(output.status.code(), Some(0));
    assert!(!Path::new("none").exists(), "no file called none");
    let mut cmd = command(Mode::Child, &["-q", "true"]);
    cmd.env("SENTINIT_TERMINATION_LOG", "none");
    assert_eq!(run(cmd, LIMIT).status.code(), Some(0));
    // The variable names the path too; the flag wins over it.
    let mut cmd = command(Mode::Child, &["-q", "--termination-log", "none", "true"]);
    cmd.env("SENTINIT_TERMINATION_LOG", &path);
    assert_eq!(run(cmd, LIMIT).status.code(), Some(0));
    assert_eq!(read(&path), "");
    let mut cmd = command(Mode::Child, &["-q", "true"]);
    cmd.env("SENTINIT_TERMINATION_LOG", &path);
    assert_eq!(run(cmd, LIMIT).status.code(), Some(0));
    assert!(read(&path).starts_with("exit 0 (exited): "), "{}", read(&path));
}

#[test]
fn without_kubernetes_nothing_is_written_or_said() {
    // The default path is used only where it exists; this machine has none (and sentinit never makes
    // one in /dev).
    if Path::new("/dev/termination-log").exists() {
        eprintln!("SKIPPED: this machine has a /dev/termination-log");
        return;
    }
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        let output = run(command(mode, &["--report", "none", "true"]), LIMIT);
        assert_eq!(output.status.code(), Some(0));
        assert!(!stderr_of(&output).contains("termination"), "{}", stderr_of(&output));
        assert!(!Path::new("/dev/termination-log").exists());
    }
}

#[test]
fn a_symlink_at_the_path_is_not_followed() {
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        let dir = TempDir::new("tl-symlink");
        // A workload replaces the path with a link to a file it wants overwritten (empty, so that only
        // the link stops the write) and one to a file it wants created.
        let target = dir.join("victim");
        std::fs::write(&target, "").unwrap();
        let path = dir.join("message");
        let script = "ln -s \"$VICTIM\" \"$TL\" && ln -s \"$VICTIM-new\" \"$TL-dangling\"";
        let mut cmd = command(mode, &["-q", "--report", "none", "--termination-log", path.to_str().unwrap()]);
        cmd.args(["--", "sh", "-c", script]).env("TL", &path).env("VICTIM", &target);
        let output = run(cmd, LIMIT);
        assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
        assert_eq!(read(&target), "", "{mode:?}: the target is unchanged");
        assert!(std::fs::symlink_metadata(&path).unwrap().file_type().is_symlink());
        assert!(stderr_of(&output).contains("symlink"), "{mode:?}: {}", stderr_of(&output));

        let dangling = dir.join("message-dangling");
        let output = run(
            command(mode, &["-q", "--report", "none", "--termination-log", dangling.to_str().unwrap(), "true"]),
            LIMIT,
        );
        assert_eq!(output.status.code(), Some(0));
        assert!(!dir.join("victim-new").exists(), "{mode:?}: nothing created through a dangling link");
    }
}

/// A symlink anywhere on the path (a directory the workload controls, linked elsewhere) is not
/// followed either, nor is a hard link to another file written.
#[test]
fn a_symlinked_directory_or_a_hard_link_is_not_followed() {
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        let dir = TempDir::new("tl-symlinked-dir");
        let elsewhere = dir.join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::write(elsewhere.join("message"), "").unwrap();
        std::os::unix::fs::symlink(&elsewhere, dir.join("link")).unwrap();
        let through = dir.join("link/message");
        let output = run(
            command(mode, &["-q", "--report", "none", "--termination-log", through.to_str().unwrap(), "true"]),
            LIMIT,
        );
        assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
        assert_eq!(read(&elsewhere.join("message")), "", "{mode:?}: written through a symlinked directory");
        let created = dir.join("link/new");
        let output = run(
            command(mode, &["-q", "--report", "none", "--termination-log", created.to_str().unwrap(), "true"]),
            LIMIT,
        );
        assert_eq!(output.status.code(), Some(0));
        assert!(!elsewhere.join("new").exists(), "{mode:?}: created through a symlinked directory");

        let victim = dir.join("victim");
        std::fs::write(&victim, "").unwrap();
        let hard = dir.join("hard");
        std::fs::hard_link(&victim, &hard).unwrap();
        let output =
            run(command(mode, &["-q", "--report", "none", "--termination-log", hard.to_str().unwrap(), "true"]), LIMIT);
        assert_eq!(output.status.code(), Some(0));
        assert_eq!(read(&victim), "", "{mode:?}: written through a hard link");
    }
}

#[test]
fn a_fifo_does_not_block_and_gets_nothing() {
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        let dir = TempDir::new("tl-fifo");
        let path = dir.join("message");
        let fifo = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo reads the NUL-terminated path only.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        // No reader: a blocking open would wait for one forever.
        let args = ["-q", "--report", "none", "--termination-log", path.to_str().unwrap(), "--", "sh", "-c", "exit 4"];
        let output = run(command(mode, &args), LIMIT);
        assert_eq!(output.status.code(), Some(4), "{mode:?}: {}", stderr_of(&output));
        assert!(stderr_of(&output).contains("not a regular file"), "{mode:?}: {}", stderr_of(&output));

        // With a reader the open succeeds; nothing is written all the same.
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;
        let mut reader = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(&path).unwrap();
        let output = run(command(mode, &args), LIMIT);
        assert_eq!(output.status.code(), Some(4), "{mode:?}: {}", stderr_of(&output));
        let mut got = Vec::new();
        let _ = reader.read_to_end(&mut got);
        assert!(got.is_empty(), "{mode:?}: {}", String::from_utf8_lossy(&got));
        assert!(std::fs::metadata(&path).unwrap().file_type().is_fifo());
    }
}
