//! The supervisor's observable behaviour (issue 2): exit codes, signal forwarding and rewriting,
//! reaping, the end of the process tree, escalation, the workload's start state, terminals, idle cost
//! and messages. Every behaviour runs twice: sentinit as an ordinary child, and as PID 1 of a new PID
//! namespace.

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(30);

fn code(output: &std::process::Output) -> i32 {
    output.status.code().unwrap_or_else(|| panic!("sentinit itself died: {:?}", output.status))
}

#[test]
fn exit_codes_pass_through_for_every_value() {
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        // One sentinit per code: 0..=255, each through a real exit.
        for n in 0..=255 {
            let output = run(command(mode, &["-q", "--", "sh", "-c", &format!("exit {n}")]), LIMIT);
            assert_eq!(code(&output), n, "{mode:?}: exit {n}; stderr: {}", stderr_of(&output));
        }
    }
}

#[test]
fn killed_workload_gives_128_plus_signal() {
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        for (name, number) in [("TERM", 15), ("KILL", 9), ("HUP", 1), ("SEGV", 11), ("USR2", 12)] {
            let output = run(command(mode, &["-q", "sh", "-c", &format!("kill -{name} $$")]), LIMIT);
            assert_eq!(code(&output), 128 + number, "{mode:?} {name}");
        }
    }
}

#[test]
fn command_not_found_is_127_and_not_executable_is_126() {
    let dir = TempDir::new("exec");
    let no_x = dir.join("no-x-bit.sh");
    std::fs::write(&no_x, "#!/bin/sh\nexit 0\n").unwrap();
    let dir_path = dir.path().to_str().unwrap().to_string();
    let no_x_path = no_x.to_str().unwrap().to_string();
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        let cases: [(&str, i32); 4] = [
            ("definitely-not-a-command-xyz", 127),
            ("/nonexistent/path/to/prog", 127),
            (&dir_path, 126),
            (&no_x_path, 126),
        ];
        for (program, expected) in cases {
            let output = run(command(mode, &["-q", "--", program]), LIMIT);
            assert_eq!(code(&output), expected, "{mode:?} {program}");
            let stderr = stderr_of(&output);
            let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("sentinit:")).collect();
            assert_eq!(lines.len(), 1, "one line of error: {stderr}");
            assert!(lines[0].contains(program), "{stderr}");
            // The report is printed all the same, with the exit code and why.
            assert!(stderr.contains(&format!("\tExit: {expected} (not_started)\t")), "{stderr}");
        }
    }
}

/// Starts sigprint.py under sentinit and returns (child process, sentinit's host pid, record file).
fn start_printer(mode: Mode, extra: &[&str], dir: &TempDir) -> (std::process::Child, i32, std::path::PathBuf) {
    let record = dir.join("signals");
    let helper = helper("sigprint.py");
    let mut args: Vec<&str> = vec!["-q"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--", "python3", helper.to_str().unwrap(), record.to_str().unwrap()]);
    let mut cmd = command(mode, &args);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    let pid = sentinit_pid(&child, mode);
    let ready = record.with_extension("ready");
    wait_for(LIMIT, || std::fs::metadata(&ready).ok()).expect("signal printer ready");
    (child, pid, record)
}

fn recorded(record: &std::path::Path) -> Vec<i32> {
    std::fs::read_to_string(record).unwrap_or_default().lines().filter_map(|l| l.parse().ok()).collect()
}

/// Sends `signal` to sentinit and waits until the workload has recorded `expect` signals in all.
fn send_and_wait(pid: i32, signal: i32, record: &std::path::Path, expect: usize) -> bool {
    assert!(common::signal(pid, signal), "sentinit is gone before signal {signal}");
    wait_for(Duration::from_secs(10), || (recorded(record).len() >= expect).then_some(())).is_some()
}

#[test]
fn every_catchable_signal_is_forwarded() {
    let mut list: Vec<i32> = vec![
        libc::SIGHUP,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGALRM,
        libc::SIGCONT,
        libc::SIGWINCH,
        libc::SIGPIPE,
        libc::SIGURG,
        libc::SIGXCPU,
        libc::SIGXFSZ,
        libc::SIGVTALRM,
        libc::SIGPROF,
        libc::SIGIO,
        libc::SIGPWR,
        libc::SIGSYS,
        libc::SIGTSTP,
        // Synchronous-fault signals sent with kill(): forwarded, and they must not kill sentinit.
        libc::SIGSEGV,
        libc::SIGBUS,
        libc::SIGILL,
        libc::SIGFPE,
        libc::SIGABRT,
        libc::SIGTRAP,
    ];
    list.extend(libc::SIGRTMIN()..=libc::SIGRTMAX());
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        let dir = TempDir::new("forward");
        let (child, pid, record) = start_printer(mode, &[], &dir);
        for (index, &signal) in list.iter().enumerate() {
            assert!(send_and_wait(pid, signal, &record, index + 1), "{mode:?}: signal {signal} not forwarded");
        }
        assert!(send_and_wait(pid, libc::SIGTERM, &record, list.len() + 1), "{mode:?}: TERM");
        let output = finish(child, LIMIT);
        assert_eq!(code(&output), 42, "{mode:?}: the workload's TERM handler exit; {}", stderr_of(&output));
        let got = recorded(&record);
        let mut want = list.clone();
        want.push(libc::SIGTERM);
        assert_eq!(got, want, "{mode:?}");
    }
}

/// sentinit running `sh -c SCRIPT` in `mode`, once the script has touched "$READY" (set up its traps).
struct Running {
    child: std::process::Child,
    /// sentinit's pid as the test sees it.
    pid: i32,
    _scratch: TempDir,
}

fn start_sh(mode: Mode, options: &[&str], script: &str) -> Running {
    let scratch = TempDir::new("sh");
    let ready = scratch.join("ready");
    let mut args = options.to_vec();
    args.extend_from_slice(&["sh", "-c", script]);
    let mut cmd = command(mode, &args);
    cmd.env("READY", &ready);
    let child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = sentinit_pid(&child, mode);
    wait_for(LIMIT, || std::fs::metadata(&ready).ok()).expect("the workload got ready");
    Running { child, pid, _scratch: scratch }
}

#[test]
fn signals_32_to_34_are_forwarded_not_fatal() {
    // Below the C library's SIGRTMIN; musl's sigfillset leaves them unblocked, which killed musl-built
    // shims. sentinit forwards them like any other: `sleep` dies of them, sentinit reports 128+n.
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        for signal in [32, 33, 34] {
            let running = start_sh(mode, &["-q"], "touch \"$READY\"; exec sleep 100");
            std::thread::sleep(Duration::from_millis(100)); // past the exec
            common::signal(running.pid, signal);
            assert_eq!(code(&finish(running.child, LIMIT)), 128 + signal, "{mode:?}: signal {signal}");
        }
    }
}

#[test]
fn chld_ttin_and_ttou_are_not_forwarded() {
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        let dir = TempDir::new("notforward");
        let (child, pid, record) = start_printer(mode, &[], &dir);
        for signal in [libc::SIGCHLD, libc::SIGTTIN, libc::SIGTTOU] {
            common::signal(pid, signal);
        }
        // USR1 is the marker: once it arrived, anything sent before it would have arrived too.
        assert!(send_and_wait(pid, libc::SIGUSR1, &record, 1));
        assert!(send_and_wait(pid, libc::SIGTERM, &record, 2));
        assert_eq!(code(&finish(child, LIMIT)), 42);
        assert_eq!(recorded(&record), vec![libc::SIGUSR1, libc::SIGTERM], "{mode:?}");
    }
}

#[test]
fn no_signal_is_lost_in_a_storm() {
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        let dir = TempDir::new("storm");
        let (child, pid, _record) = start_printer(mode, &[], &dir);
        for _ in 0..1000 {
            common::signal(pid, libc::SIGUSR1);
        }
        common::signal(pid, libc::SIGTERM);
        let output = finish(child, LIMIT);
        assert_eq!(code(&output), 42, "{mode:?}: TERM after 1000 USR1 must arrive; {}", stderr_of(&output));
    }
}

#[test]
fn rewrite_translates_and_drops_signals() {
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        let dir = TempDir::new("rewrite");
        let (child, pid, record) =
            start_printer(mode, &["--rewrite", "QUIT:TERM", "-r", "USR1:0", "-r", "HUP:USR2"], &dir);
        common::signal(pid, libc::SIGUSR1); // dropped
        assert!(send_and_wait(pid, libc::SIGHUP, &record, 1));
        assert!(send_and_wait(pid, libc::SIGQUIT, &record, 2));
        assert_eq!(code(&finish(child, LIMIT)), 42, "{mode:?}: QUIT became TERM");
        assert_eq!(recorded(&record), vec![libc::SIGUSR2, libc::SIGTERM], "{mode:?}");
    }
    // The same, configured through the environment.
    let dir = TempDir::new("rewrite-env");
    let record = dir.join("signals");
    let helper = helper("sigprint.py");
    let mut cmd = command(Mode::Child, &["-q", "python3", helper.to_str().unwrap(), record.to_str().unwrap()]);
    cmd.env("SENTINIT_REWRITE", "TERM:USR2");
    let child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    wait_for(LIMIT, || std::fs::metadata(record.with_extension("ready")).ok()).unwrap();
    assert!(send_and_wait(child.id() as i32, libc::SIGTERM, &record, 1));
    assert_eq!(recorded(&record), vec![libc::SIGUSR2]);
    // The workload is killed, not sentinit: sentinit then ends as usual (and removes what it made).
    for workload in children(child.id() as i32) {
        common::signal(workload, libc::SIGKILL);
    }
    assert_eq!(code(&finish(child, LIMIT)), 137);
}

#[test]
fn nonsense_options_are_usage_errors() {
    for args in [
        vec!["--rewrite", "TERM:BANANA", "true"],
        vec!["--rewrite", "99:1", "true"],
        vec!["--rewrite", "TERM", "true"],
        vec!["--remap-exit", "143", "true"],
        vec!["--grace", "soon", "true"],
        vec!["--no-such-option", "true"],
        vec![],
    ] {
        let output = run(command(Mode::Child, &args), LIMIT);
        assert_eq!(code(&output), 2, "{args:?}");
        let stderr = stderr_of(&output);
        assert!(stderr.starts_with("sentinit: "), "{stderr}");
        assert!(stderr.contains("--help"), "a hint: {stderr}");
    }
    let mut cmd = command(Mode::Child, &["true"]);
    cmd.env("SENTINIT_KILL_AFTER", "never");
    let output = run(cmd, LIMIT);
    assert_eq!(code(&output), 2);
    assert!(stderr_of(&output).contains("SENTINIT_KILL_AFTER"));
}

#[test]
fn help_and_version_exit_zero() {
    let output = run(command(Mode::Child, &["--help"]), LIMIT);
    assert_eq!(code(&output), 0);
    let help = stdout_of(&output);
    for option in ["--single-child", "--rewrite", "--grace", "--kill-after", "--remap-exit", "SENTINIT_GRACE"] {
        assert!(help.contains(option), "help mentions {option}");
    }
    let output = run(command(Mode::Child, &["--version"]), LIMIT);
    assert_eq!(code(&output), 0);
    assert!(stdout_of(&output).starts_with("sentinit "));
    // Only the first `--` ends sentinit's options: the second is the command.
    let output = run(command(Mode::Child, &["-q", "--", "--", "true"]), LIMIT);
    assert_eq!(code(&output), 127);
    assert!(stderr_of(&output).contains("'--'"));
}

/// A python workload that ignores USR1 itself but runs `sleep` with USR1 at its default, and exits 7
/// when the sleep dies.
const GROUP_WORKLOAD: &str = r#"
import os, signal, subprocess, sys
signal.signal(signal.SIGUSR1, signal.SIG_IGN)
child = subprocess.Popen(["sleep", "1000"], preexec_fn=lambda: signal.signal(signal.SIGUSR1, signal.SIG_DFL))
open(sys.argv[1], "w").write(str(child.pid))
child.wait()
sys.exit(7)
"#;

#[test]
fn signals_reach_the_whole_process_group_unless_single_child() {
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        for single in [false, true] {
            let dir = TempDir::new("group");
            let pidfile = dir.join("sleep.pid");
            let mut args = vec!["-q"];
            if single {
                args.push("--single-child");
            }
            args.extend_from_slice(&["python3", "-c", GROUP_WORKLOAD, pidfile.to_str().unwrap()]);
            let mut cmd = command(mode, &args);
            let child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
            let pid = sentinit_pid(&child, mode);
            // The pid inside the namespace is not the host's: find the sleep by its parent chain instead.
            wait_for(LIMIT, || std::fs::read_to_string(&pidfile).ok().filter(|s| !s.is_empty())).unwrap();
            let sleep = wait_for(LIMIT, || {
                children(pid).into_iter().flat_map(children).find(|p| {
                    std::fs::read_to_string(format!("/proc/{p}/comm")).map(|c| c.trim() == "sleep").unwrap_or(false)
                })
            })
            .expect("the sleep grandchild");
            common::signal(pid, libc::SIGUSR1);
            if single {
                std::thread::sleep(Duration::from_millis(300));
                assert!(alive(sleep), "{mode:?} single-child: the grandchild must not get USR1");
                common::signal(pid, libc::SIGTERM);
                assert_eq!(code(&finish(child, LIMIT)), 143, "{mode:?}");
            } else {
                let output = finish(child, LIMIT);
                assert_eq!(code(&output), 7, "{mode:?}: the sleep got USR1 and died; {}", stderr_of(&output));
            }
            assert!(!alive(sleep), "{mode:?}: nothing left behind");
        }
    }
}

#[test]
fn orphans_are_reaped_double_fork_and_coalesced_exits() {
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        for (kind, count) in [("double-fork", "100"), ("burst", "200")] {
            let dir = TempDir::new("orphans");
            let parents = dir.join("parents");
            let helper = helper("zombies.py");
            let args = ["-q", "python3", helper.to_str().unwrap(), kind, count, parents.to_str().unwrap()];
            let output = run(command(mode, &args), LIMIT);
            assert_eq!(code(&output), 0, "{mode:?} {kind}: {}", stderr_of(&output));
            // Every orphan was adopted by sentinit (PID 1, or a subreaper), and none is left a zombie.
            assert_eq!(stdout_of(&output).trim(), format!("reparented={count} zombies=0"), "{mode:?} {kind}");
        }
    }
}

#[test]
fn grandchild_gets_term_and_time_to_run_its_handler() {
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        let dir = TempDir::new("grace");
        let done = dir.join("handler-ran");
        let script = format!(
            "(trap 'sleep 0.5; echo cleaned > {0}; exit 0' TERM; sleep 1000 & wait; wait) & sleep 0.3; exit 3",
            done.display()
        );
        let output = run(command(mode, &["-q", "sh", "-c", &script]), LIMIT);
        assert_eq!(code(&output), 3, "{mode:?}: the main child's code; {}", stderr_of(&output));
        assert_eq!(
            std::fs::read_to_string(&done).unwrap_or_default().trim(),
            "cleaned",
            "{mode:?}: the TERM handler finished before sentinit exited"
        );
    }
}

#[test]
fn survivors_are_killed_after_the_grace_period() {
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        let tag = format!("1000.{}{}", std::process::id(), mode as u8);
        // One survivor in the workload's group, one that left it with setsid: both ignore TERM.
        let script = format!("trap '' TERM; sleep {tag} & setsid sleep {tag} & sleep 0.2; exit 5");
        let output = run(command(mode, &["-q", "--grace", "300ms", "sh", "-c", &script]), LIMIT);
        assert_eq!(code(&output), 5, "{mode:?}: {}", stderr_of(&output));
        assert!(stderr_of(&output).contains("SIGKILL"), "says so: {}", stderr_of(&output));
        assert_eq!(processes_with(&tag), Vec::<i32>::new(), "{mode:?}: nothing survives sentinit");
    }
}

#[test]
fn nothing_left_means_no_grace_wait() {
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        // A 60 s grace that must not be waited for: nothing is left when the main child exits.
        let started = Instant::now();
        let output = run(
            command(mode, &["-q", "--grace", "60s", "sh", "-c", "sleep 0.1 & wait; exit 4"]),
            Duration::from_secs(90),
        );
        assert_eq!(code(&output), 4);
        // Not a timing benchmark: anything near the 60 s grace would mean sentinit waited for nothing.
        assert!(started.elapsed() < Duration::from_secs(3), "{mode:?}: sentinit waited for nothing");
    }
}

#[test]
fn kill_after_escalates_a_stop_signal() {
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        let script = "trap '' TERM INT; touch \"$READY\"; while :; do sleep 0.05; done";
        // With --kill-after the TERM-ignoring workload is SIGKILLed.
        let running = start_sh(mode, &["-q", "--kill-after", "300ms"], script);
        common::signal(running.pid, libc::SIGTERM);
        let output = finish(running.child, LIMIT);
        assert_eq!(code(&output), 137, "{mode:?}: {}", stderr_of(&output));

        // Without it (the default), the workload is still running after the same TERM.
        let running = start_sh(mode, &["-q"], script);
        common::signal(running.pid, libc::SIGTERM);
        std::thread::sleep(Duration::from_millis(800));
        assert!(alive(running.pid), "{mode:?}: no escalation by default");
        common::signal(running.pid, libc::SIGUSR1); // the shell does not ignore USR1
        assert_eq!(code(&finish(running.child, LIMIT)), 128 + libc::SIGUSR1);
    }
}

#[test]
fn exit_codes_can_be_remapped() {
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        let output = run(command(mode, &["-q", "--remap-exit", "143:0", "sh", "-c", "kill -TERM $$"]), LIMIT);
        assert_eq!(code(&output), 0, "{mode:?}");
        let output = run(command(mode, &["-q", "-e", "143:0", "-e", "1:9", "sh", "-c", "exit 1"]), LIMIT);
        assert_eq!(code(&output), 9, "{mode:?}");
        let output = run(command(mode, &["-q", "-e", "143:0", "sh", "-c", "exit 2"]), LIMIT);
        assert_eq!(code(&output), 2, "{mode:?}: other codes untouched");
        let mut cmd = command(mode, &["-q", "sh", "-c", "exit 3"]);
        cmd.env("SENTINIT_REMAP_EXIT", "3:0");
        assert_eq!(code(&run(cmd, LIMIT)), 0, "{mode:?}: from the environment");
    }
}

fn status_field(status: &str, field: &str) -> u64 {
    let line = status.lines().find(|l| l.starts_with(field)).unwrap_or_else(|| panic!("{field} in {status}"));
    u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
}

#[test]
fn workload_starts_with_a_clean_signal_state() {
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        let output = run(command(mode, &["-q", "cat", "/proc/self/status"]), LIMIT);
        let status = stdout_of(&output);
        assert_eq!(status_field(&status, "SigBlk:"), 0, "{mode:?}: nothing blocked");
        assert_eq!(status_field(&status, "SigIgn:"), 0, "{mode:?}: nothing ignored (SIGPIPE at default)");

        // The parent blocks TERM and ignores INT, TTOU (which sentinit ignores for itself too) and 33 (one
        // the C library keeps, ignored by glibc's posix_spawn): the block is not passed on, the chosen
        // ignores are, 33 is not.
        let program = format!(
            "import os, signal; signal.pthread_sigmask(signal.SIG_BLOCK, {{signal.SIGTERM}}); \
             signal.signal(signal.SIGINT, signal.SIG_IGN); signal.signal(signal.SIGTTOU, signal.SIG_IGN); \
             import ctypes; ignore = (ctypes.c_ulong * 4)(1, 0, 0, 0); \
             rt_sigaction = {{'x86_64': 13, 'aarch64': 134}}[os.uname().machine]; \
             assert ctypes.CDLL(None).syscall(rt_sigaction, 33, ignore, None, 8) == 0; \
             signal.signal(signal.SIGPIPE, signal.SIG_DFL); signal.signal(signal.SIGXFSZ, signal.SIG_DFL); \
             os.execv('{}', ['sentinit', '-q', 'cat', '/proc/self/status'])",
            sentinit()
        );
        let mut cmd = match mode {
            Mode::Child => Command::new("python3"),
            Mode::Pid1 => {
                let mut c = Command::new("unshare");
                c.args(["--pid", "--fork", "--mount-proc", "python3"]);
                c
            }
        };
        clean_env(&mut cmd).args(["-c", &program]);
        let status = stdout_of(&run(cmd, LIMIT));
        assert_eq!(status_field(&status, "SigBlk:"), 0, "{mode:?}");
        assert_eq!(
            status_field(&status, "SigIgn:"),
            (1 << (libc::SIGINT - 1)) | (1 << (libc::SIGTTOU - 1)),
            "{mode:?}: INT and TTOU stay ignored, 33 does not"
        );
    }
}

#[test]
fn workload_keeps_cwd_descriptors_and_stdin() {
    let dir = TempDir::new("cwd");
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        // cwd: the same directory.
        let mut cmd = command(mode, &["-q", "pwd"]);
        cmd.current_dir(dir.path());
        assert_eq!(stdout_of(&run(cmd, LIMIT)).trim(), dir.path().to_str().unwrap(), "{mode:?}");

        // Descriptors: fd 7 opened by the parent reaches the workload; none of sentinit's own does.
        // A parent with exactly 0, 1, 2 and 7 open execs sentinit.
        let mut argv = vec![];
        if mode == Mode::Pid1 {
            argv.extend(["unshare", "--pid", "--fork", "--mount-proc"]);
        }
        // sentinit's own descriptors (its signalfd, held cgroup files) are all close-on-exec.
        let check = "import os, sys; p = sys.argv[1]; \
                     own = [f for f in os.listdir(f'/proc/{p}/fd') if f not in ('0', '1', '2', '7')]; \
                     flags = [int([l for l in open(f'/proc/{p}/fdinfo/{f}') if l.startswith('flags')][0].split()[1], 8) for f in own]; \
                     print(len(own) > 0 and all(x & 0o2000000 for x in flags))";
        let workload = format!("ls /proc/$$/fd; echo --; python3 -c \"{check}\" $PPID");
        argv.extend([sentinit(), "-q", "--report", "none", "--", "sh", "-c", &workload]);
        let program = format!(
            "import os, shutil; fd = os.open('/etc/hostname', os.O_RDONLY); os.dup2(fd, 7); os.close(fd); \
             os.closerange(3, 7); os.closerange(8, 65536); argv = {argv:?}; os.execv(shutil.which(argv[0]), argv)"
        );
        let mut cmd = Command::new("python3");
        clean_env(&mut cmd).args(["-c", &program]).stdin(Stdio::null());
        let output = run(cmd, LIMIT);
        let stdout = stdout_of(&output);
        let lines: Vec<String> =
            stdout.split("--").map(|part| part.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
        assert_eq!(lines.len(), 2, "{mode:?}: {stdout} {}", stderr_of(&output));
        assert_eq!(lines[0], "0 1 2 7", "{mode:?}: the workload has the inherited fds and nothing of sentinit's");
        assert_eq!(lines[1], "True", "{mode:?}: sentinit's own descriptors are close-on-exec");

        // stdin reaches the workload.
        let mut cmd = command(mode, &["-q", "sh"]);
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"exit 3\n").unwrap();
        assert_eq!(code(&finish(child, LIMIT)), 3, "{mode:?}");
    }
}

fn pty(mode: Mode, scenario: &str, workload: &[&str]) -> String {
    let mut cmd = Command::new("python3");
    clean_env(&mut cmd).arg(helper("pty_run.py")).arg(scenario);
    if mode == Mode::Pid1 {
        cmd.args(["unshare", "--pid", "--fork", "--mount-proc"]);
    }
    cmd.arg(sentinit()).arg("-q").arg("--").args(workload);
    stdout_of(&run(cmd, LIMIT))
}

#[test]
fn terminal_goes_to_the_workload() {
    for mode in MODES {
        if !mode_available(mode) || !require(Command::new("bash").arg("-c").arg("true").status().is_ok(), "bash") {
            continue;
        }
        let out = pty(mode, "jobcontrol", &["bash", "--norc", "--noprofile", "-m", "-i"]);
        assert!(out.contains("exit=0"), "{mode:?}: {out}");
        // Output lines, minus the terminal escapes bash wraps them in; the command echo is skipped.
        let after = |tag: &str| -> String {
            out.lines()
                .filter_map(|l| l.find(tag).map(|at| l[at..].to_string()))
                .find(|l| !l.contains('$'))
                .unwrap_or_else(|| panic!("{tag} in {out}"))
        };
        let flags = after("flags=[");
        assert!(flags.contains('m'), "{mode:?}: job control on: {flags}");
        let fg = after("fg=");
        let parts: Vec<&str> = fg.split_whitespace().collect();
        assert_eq!(parts[0].trim_start_matches("fg="), parts[1].trim_start_matches("pg="), "{mode:?}: foreground");

        let out = pty(mode, "ctrl-c", &["sh", "-c", "echo ready; while :; do sleep 0.1; done"]);
        assert!(out.contains("exit=130"), "{mode:?}: Ctrl-C reached the workload: {out}");
    }
}

fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn idle_sentinit_uses_no_cpu_and_no_growing_memory() {
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        // The shortest interval wakes sentinit 100 times a second: still next to nothing.
        let mut cmd = command(mode, &["-q", "--interval", "10ms", "sleep", "3"]);
        let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let pid = sentinit_pid(&child, mode);
        std::thread::sleep(Duration::from_millis(700));
        let (ticks_before, rss_before) = (cpu_ticks(pid), rss_kib(pid));
        std::thread::sleep(Duration::from_secs(2));
        let (ticks_after, rss_after) = (cpu_ticks(pid), rss_kib(pid));
        finish(child, LIMIT);
        // A busy loop would use ~200 ticks in 2 s; 200 wake-ups cost well under 10.
        assert!(ticks_after - ticks_before <= 10, "{mode:?}: {} ticks while idle", ticks_after - ticks_before);
        assert!(rss_after <= rss_before + 64, "{mode:?}: RSS grew from {rss_before} to {rss_after} KiB");

        let mut cmd = command(mode, &["-q", "sleep", "2"]);
        let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let pid = sentinit_pid(&child, mode);
        std::thread::sleep(Duration::from_millis(300));
        let before = cpu_ticks(pid);
        std::thread::sleep(Duration::from_secs(1));
        assert!(cpu_ticks(pid) - before <= 1, "{mode:?}: default interval idles");
        finish(child, LIMIT);
    }
}

#[test]
fn messages_are_quiet_by_default_and_explain_with_verbose() {
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        // Without -v only the START line (and, at the end, the report) appear: no sentinit: chatter.
        let output = run(command(mode, &["sh", "-c", "sleep 0.1 & exit 0"]), LIMIT);
        let stderr = stderr_of(&output);
        assert!(stderr.starts_with("START "), "{mode:?}: {stderr}");
        assert!(!stderr.contains("sentinit:"), "{mode:?}: quiet: {stderr}");
        let output = run(command(mode, &["-q", "--report", "none", "sh", "-c", "sleep 0.1 & exit 0"]), LIMIT);
        assert_eq!(stderr_of(&output), "", "{mode:?}: --quiet");

        let dir = TempDir::new("verbose");
        let (child, pid, record) = start_printer(mode, &["-v"], &dir);
        assert!(send_and_wait(pid, libc::SIGUSR1, &record, 1));
        common::signal(pid, libc::SIGTERM);
        let output = finish(child, LIMIT);
        let stderr = stderr_of(&output);
        for line in stderr.lines() {
            assert!(
                ["sentinit: ", "START ", "END ", "REPORT\t"].iter().any(|p| line.starts_with(p)),
                "prefixed: {line}"
            );
        }
        assert!(stderr.contains("received SIGUSR1"), "{stderr}");
        assert!(stderr.contains("forwarded SIGUSR1 to process group"), "{stderr}");
        assert!(stderr.contains("exited: exit code 42"), "{stderr}");
    }
    let mut cmd = command(Mode::Child, &["-q", "true"]);
    cmd.env("SENTINIT_VERBOSE", "1");
    assert!(stderr_of(&run(cmd, LIMIT)).contains("started true"));
}

#[test]
fn a_stop_signal_during_identity_resolution_reaches_the_workload() {
    // `docker stop` can arrive while sentinit still waits for identity (here: a metadata file that never
    // becomes READY, 1.5 s budget). The signal is held and forwarded once the workload runs, instead of
    // killing sentinit (not PID 1) or being dropped (PID 1 ignores signals it has no handler for).
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        let dir = TempDir::new("early-term");
        let metadata = dir.join("metadata.json");
        std::fs::write(
            &metadata,
            r#"{"Cluster":"c","TaskARN":"arn:aws:ecs:us-east-1:1:task/c/0123","MetadataFileStatus":"NOT_READY"}"#,
        )
        .unwrap();
        let mut cmd = command(mode, &["-q", "--identity-timeout", "1500ms", "sleep", "30"]);
        cmd.env("ECS_CONTAINER_METADATA_FILE", &metadata).env("SENTINIT_PROC_ROOT", dir.path());
        let child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let pid = sentinit_pid(&child, mode);
        std::thread::sleep(Duration::from_millis(300));
        assert!(children(pid).is_empty(), "{mode:?}: still resolving identity, no workload yet");
        common::signal(pid, libc::SIGTERM);
        let output = finish(child, LIMIT);
        assert_eq!(code(&output), 143, "{mode:?}: the workload got the TERM; {}", stderr_of(&output));
        assert!(stderr_of(&output).contains("\tExit: 143 (SIGTERM, stopped)\t"), "{}", stderr_of(&output));
    }
}

#[test]
fn a_sigkill_sentinit_sends_is_reported_as_its_own_not_as_an_oom() {
    // Escalation (--kill-after) and a forwarded SIGKILL (--rewrite TERM:KILL) both end the workload with
    // SIGKILL: the report, printed once, says sentinit sent it, and the stop line tells the story.
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        for options in [&["--kill-after", "200ms"][..], &["--rewrite", "TERM:KILL"][..]] {
            let mut args = vec!["-q", "--report", "json"];
            args.extend_from_slice(options);
            let running = start_sh(mode, &args, "trap '' TERM; touch \"$READY\"; while :; do sleep 0.05; done");
            common::signal(running.pid, libc::SIGTERM);
            let output = finish(running.child, LIMIT);
            assert_eq!(code(&output), 137, "{mode:?} {options:?}");
            let report = report(&output);
            assert_eq!(report["signal"], "SIGKILL", "{mode:?} {options:?}");
            assert_eq!(report["killed_by_sentinit"], true, "{mode:?} {options:?}");
            assert_ne!(report["oom_suspected"], true, "{mode:?} {options:?}: not an OOM");
            let stderr = stderr_of(&output);
            assert!(stderr.contains("sentinit: forwarded SIG"), "{mode:?} {options:?}: the stop line: {stderr}");
        }
    }
}

#[test]
fn sentinits_own_sigpipe_is_not_forwarded() {
    // With stderr a pipe nobody reads, each -v line makes the kernel send SIGPIPE to sentinit itself.
    // That is about sentinit's descriptor, not the workload's: the workload must not get it.
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        let mut cmd = command(mode, &["-v", "sh", "-c", "sleep 0.3; exit 5"]);
        let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        drop(child.stderr.take());
        let output = finish(child, LIMIT);
        assert_eq!(code(&output), 5, "{mode:?}: the workload was not hit by sentinit's SIGPIPE");
    }
}

#[test]
fn draining_after_a_stop_signal_does_not_spin() {
    // --kill-after armed by a TERM, then the main child exits while a TERM-ignoring process remains:
    // sentinit waits out the grace period asleep, not in a busy loop. (The trap is set before READY says
    // the TERM may come.)
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        let script =
            "(trap '' TERM; exec sleep 30) & trap 'exit 0' TERM; touch \"$READY\"; while :; do sleep 0.05; done";
        let running = start_sh(mode, &["-q", "--report", "none", "--kill-after", "5s", "--grace", "3s"], script);
        common::signal(running.pid, libc::SIGTERM);
        std::thread::sleep(Duration::from_millis(500));
        let before = cpu_ticks(running.pid);
        std::thread::sleep(Duration::from_secs(1));
        let used = cpu_ticks(running.pid) - before;
        let output = finish(running.child, LIMIT);
        assert_eq!(code(&output), 0, "{mode:?}: {}", stderr_of(&output));
        assert!(used <= 5, "{mode:?}: {used} ticks in 1 s of draining");
    }
}

#[test]
fn a_stopped_leftover_is_woken_to_handle_its_term() {
    // A process stopped (SIGSTOP/TSTP) when the main child exits gets SIGCONT after the SIGTERM, so its
    // handler runs within the grace period instead of being SIGKILLed at its end.
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        let dir = TempDir::new("stopped");
        let done = dir.join("handler-ran");
        let script = format!(
            "(trap 'echo cleaned > {0}; exit 0' TERM; while :; do sleep 0.05; done) & sleep 0.2; kill -STOP $!; exit 3",
            done.display()
        );
        let output = run(command(mode, &["-q", "--report", "none", "--grace", "20s", "sh", "-c", &script]), LIMIT);
        assert_eq!(code(&output), 3, "{mode:?}: {}", stderr_of(&output));
        assert_eq!(std::fs::read_to_string(&done).unwrap_or_default().trim(), "cleaned", "{mode:?}");
        assert!(!stderr_of(&output).contains("SIGKILL"), "{mode:?}: no KILL needed: {}", stderr_of(&output));
    }
}

#[test]
fn a_sentinit_in_the_background_leaves_the_terminal_alone() {
    // Started in the background of an interactive shell with job control, sentinit is not in the
    // terminal's foreground group and must not hand the terminal to its workload.
    if !require(Command::new("bash").arg("-c").arg("true").status().is_ok(), "bash") {
        return;
    }
    let script = format!(
        "{} -q --report none -- sleep 1 & sleep 0.5; echo tpgid=$(ps -o tpgid= -p $$ | tr -d ' ') pgid=$(ps -o pgid= -p $$ | tr -d ' '); wait",
        sentinit()
    );
    let mut cmd = Command::new("python3");
    clean_env(&mut cmd).arg(helper("pty_run.py")).args(["plain", "bash", "-m", "-c", &script]);
    let out = stdout_of(&run(cmd, LIMIT));
    let line = out.lines().find(|l| l.starts_with("tpgid=")).unwrap_or_else(|| panic!("{out}"));
    let parts: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(parts[0].trim_start_matches("tpgid="), parts[1].trim_start_matches("pgid="), "{out}");
    assert!(out.contains("exit=0"), "{out}");
}

#[test]
fn a_failed_subreaper_registration_is_a_single_warning_not_a_failure() {
    // A seccomp filter (tests/helpers/no_subreaper.c) makes PR_SET_CHILD_SUBREAPER fail with EPERM, as
    // a locked-down runtime might. sentinit warns once and runs the workload all the same.
    let scratch = TempDir::new("no-subreaper");
    let helper_bin = scratch.join("no_subreaper");
    let compiled = Command::new("gcc")
        .args(["-O2", "-o"])
        .arg(&helper_bin)
        .arg(helper("no_subreaper.c"))
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !require(compiled, "gcc to build tests/helpers/no_subreaper.c") {
        return;
    }
    let mut cmd = Command::new(&helper_bin);
    clean_env(&mut cmd).args([sentinit(), "-q", "--report", "none", "--", "sh", "-c", "sh -c 'sleep 0.2 &'; exit 4"]);
    let output = run(cmd, LIMIT);
    assert_eq!(code(&output), 4, "{}", stderr_of(&output));
    let stderr = stderr_of(&output);
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("cannot become a child subreaper")).collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(warnings[0].starts_with("sentinit: warning:"), "{stderr}");
}
