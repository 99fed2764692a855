//! Accounting against fixture cgroup trees (SENTINIT_PROC_ROOT / SENTINIT_SYS_ROOT): v1, v1 and v2 under
//! a cgroup namespace, an older v2 kernel (no memory.peak, no oom_kill), a v1 kernel before 4.13 (no
//! oom_kill line), a limit on a parent group, a hybrid host, the host's root cgroup, unlimited limits,
//! and bad input (malformed, vanished, replaced files, a FIFO). Each test copies its tree to a private directory; the
//! workload itself changes the counter files while sentinit holds them open, as a kernel would.

mod common;

use common::{json_lines, report, stderr_of as stderr, Tree};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// Runs sentinit on `tree` with `args` then `sh -c script`; `$SYS` in the script is the tree's /sys.
fn run(tree: &Tree, args: &[&str], script: &str) -> Output {
    run_with_roots(&tree.0.join("proc"), &tree.sys(), args, script)
}

fn run_with_roots(proc: &Path, sys: &Path, args: &[&str], script: &str) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sentinit"));
    command
        .args(args)
        .args(["--", "sh", "-c", script])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()))
        .env("SENTINIT_PROC_ROOT", proc)
        .env("SENTINIT_SYS_ROOT", sys)
        .env("SYS", sys)
        .stdin(Stdio::null());
    // A hang (a FIFO opened for reading) fails the test instead of blocking the suite.
    common::run(command, Duration::from_secs(30))
}

fn report_line(output: &Output) -> String {
    let text = stderr(output);
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("REPORT\t")).collect();
    assert_eq!(lines.len(), 1, "exactly one REPORT line expected in:\n{text}");
    lines[0].to_string()
}

const FAST: &[&str] = &["--interval", "10ms", "--report", "text,json"];

#[test]
fn v1_counters_are_reported_as_deltas_of_the_run() {
    let tree = Tree::copy("v1");
    let output = run(
        &tree,
        FAST,
        "M=$SYS/fs/cgroup/memory; C=$SYS/fs/cgroup/cpu,cpuacct; sleep 0.2
         printf 'oom_kill_disable 0\\nunder_oom 0\\noom_kill 1\\n' > $M/memory.oom_control
         echo 5 > $M/memory.failcnt; echo 52428800 > $M/memory.max_usage_in_bytes
         printf 'nr_periods 20\\nnr_throttled 7\\nthrottled_time 350000000\\n' > $C/cpu.stat",
    );
    assert_eq!(output.status.code(), Some(0));
    let r = report(&output);
    assert_eq!(r["cgroup_version"], 1);
    assert_eq!(r["oom_killed"], true, "a kill of any process in the group counts");
    assert_eq!(r["oom_kills"], 1);
    assert_eq!(r["memory_limit_hits"], 5);
    assert_eq!(r["memory_peak_bytes"], 52428800);
    assert_eq!(r["memory_peak_source"], "memory.max_usage_in_bytes");
    assert_eq!(r["memory_limit_bytes"], 67108864, "the smaller of the own and the hierarchical limit");
    assert_eq!(r["cpu_throttled_ms"], 250, "throttled_time grew by 250 ms");
    assert_eq!(r["cpu_limit_cores"], 0.5);
    // usage 20 MiB minus total_inactive_file 4 MiB.
    assert_eq!(r["memory_working_set_max_bytes"], 16777216);
    assert_eq!(r["memory_working_set_mean_bytes"], 16777216);
    assert!(r["samples"].as_u64().unwrap() >= 2, "{r}");
    let line = report_line(&output);
    assert!(line.contains("\tMax Memory Used: 50 MiB\tMemory Limit: 64 MiB\t"), "{line}");
    assert!(line.contains("\tThrottled: 0.25 s\tOOM: killed (1)"), "{line}");
}

#[test]
fn v2_under_a_cgroup_namespace_uses_the_mount_itself() {
    let tree = Tree::copy("v2-namespaced");
    let output = run(
        &tree,
        FAST,
        "G=$SYS/fs/cgroup; sleep 0.2
         printf 'low 0\\nhigh 0\\nmax 7\\noom 2\\noom_kill 2\\noom_group_kill 0\\n' > $G/memory.events
         echo 60000000 > $G/memory.peak; echo 3 > $G/pids.peak
         printf 'usage_usec 200000\\nuser_usec 1\\nsystem_usec 1\\nnr_periods 9\\nnr_throttled 3\\nthrottled_usec 1500000\\n' > $G/cpu.stat
         printf 'some avg10=1.00 avg60=0.00 avg300=0.00 total=6000\\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=2500\\n' > $G/memory.pressure",
    );
    assert_eq!(output.status.code(), Some(0));
    let r = report(&output);
    assert_eq!(r["cgroup_version"], 2);
    assert_eq!(r["oom_killed"], true);
    assert_eq!(r["oom_kills"], 2);
    assert_eq!(r["memory_limit_hits"], 7, "memory.events max grew by 7");
    assert_eq!(r["memory_peak_bytes"], 60000000);
    assert_eq!(r["memory_peak_source"], "memory.peak");
    assert_eq!(r["memory_limit_bytes"], 134217728);
    assert_eq!(r["cpu_throttled_ms"], 1500);
    assert_eq!(r["cpu_limit_cores"], 2.0);
    assert_eq!(r["pids_peak"], 3);
    assert_eq!(r["memory_pressure_some_ms"], 5);
    assert_eq!(r["memory_pressure_full_ms"], 2);
    assert_eq!(r["memory_working_set_max_bytes"], 8388608, "memory.current minus inactive_file");
    // CPU time is the reaped process tree's (wait4), not the fixture's cpu.stat: a sleeping shell
    // cannot have used more CPU than the run's wall time.
    assert_cpu_within_the_run(&r);
}

/// The reaped tree of a shell that mostly sleeps used at most the run's wall time in CPU: a machine-wide
/// or fixture counter (seconds to hours) would break this.
fn assert_cpu_within_the_run(r: &Value) {
    let cpu = r["cpu_user_ms"].as_u64().unwrap() + r["cpu_system_ms"].as_u64().unwrap();
    assert!(cpu as f64 <= r["duration_ms"].as_f64().unwrap(), "{r}");
}

#[test]
fn v2_without_peak_or_oom_kill_falls_back_and_suspects_an_oom() {
    let tree = Tree::copy("v2-old-kernel");
    // 97.7 % of the 64 MiB limit, then a SIGKILL that sentinit did not send.
    let output = run(
        &tree,
        FAST,
        "echo 65536000 > $SYS/fs/cgroup/system.slice/docker-abc123.scope/memory.current; sleep 0.3; kill -9 $$",
    );
    assert_eq!(output.status.code(), Some(137));
    let r = report(&output);
    assert_eq!(r["signal"], "SIGKILL");
    assert_eq!(r["oom_killed"], Value::Null, "no oom_kill line: unknown, not false");
    assert_eq!(r["oom_kills"], Value::Null);
    assert_eq!(r["oom_suspected"], true);
    assert_eq!(r["memory_peak_source"], "sampled");
    assert_eq!(r["memory_peak_bytes"], 65536000);
    assert_eq!(r["pids_peak"], 1, "sampled pids.current when pids.peak is missing");
    let line = report_line(&output);
    assert!(line.contains("\tExit: 137 (SIGKILL, signaled)\t"), "{line}");
    assert!(line.ends_with("\tOOM: suspected"), "{line}");
    let warnings = stderr(&output).matches("passed 90% of the memory limit").count();
    assert_eq!(warnings, 1, "the 90% warning is printed once:\n{}", stderr(&output));
}

#[test]
fn hybrid_host_reads_v1_memory_and_refuses_the_root_cpu_groups() {
    let tree = Tree::copy("hybrid");
    // The host's machine-wide CPU counters keep growing during the run (by 1000 s here): none of it may
    // reach the heartbeats or the report.
    let output = run(
        &tree,
        &["--interval", "10ms", "--heartbeat", "20ms", "--report", "text,json"],
        "sleep 0.1; echo 1005000000000 > $SYS/fs/cgroup/cpuacct/cpuacct.usage
         printf 'nr_periods 90\nnr_throttled 90\nthrottled_time 9000000000\n' > $SYS/fs/cgroup/cpu/cpu.stat; sleep 0.1",
    );
    assert_eq!(output.status.code(), Some(0));
    let r = report(&output);
    assert_eq!(r["cgroup_version"], 1);
    assert_eq!(r["memory_working_set_max_bytes"], 3145728, "{r}");
    assert_eq!(r["memory_limit_bytes"], Value::Null, "9223372036854771712 is v1's unlimited");
    // cpu, cpuacct and pids are the host's root groups: their machine-wide numbers must not appear.
    assert_eq!(r["cpu_throttled_ms"], Value::Null);
    assert_eq!(r["cpu_limit_cores"], Value::Null);
    assert_eq!(r["pids_peak"], Value::Null);
    assert_cpu_within_the_run(&r);
    let beats = json_lines(&output, "sentinit.heartbeat");
    assert!(!beats.is_empty(), "{}", stderr(&output));
    for beat in &beats {
        // CPU time so far is the process tree's: at most wall time times the machine's cores.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
        let (cpu, elapsed) = (beat["cpu_ms"].as_u64().unwrap(), beat["elapsed_ms"].as_u64().unwrap());
        assert!(cpu <= elapsed * cores, "{beat}");
        assert_eq!(beat["cpu_throttled_ms"], Value::Null, "{beat}");
    }
    let line = report_line(&output);
    assert!(line.contains("\tMemory Limit: unlimited\t"), "{line}");
    assert!(line.contains("\tThrottled: unknown\t"), "{line}");
}

#[test]
fn the_hosts_root_cgroup_is_not_the_workloads() {
    let tree = Tree::copy("v2-host-root");
    let output = run(&tree, FAST, "sleep 0.05");
    assert_eq!(output.status.code(), Some(0));
    let r = report(&output);
    assert_eq!(r["cgroup_version"], Value::Null);
    assert_eq!(r["memory_working_set_max_bytes"], Value::Null);
    assert_eq!(r["memory_limit_bytes"], Value::Null);
    assert_eq!(r["oom_killed"], Value::Null);
    assert_eq!(r["memory_pressure_some_ms"], Value::Null);
    // Without a cgroup the peak is the largest reaped process's max RSS, and says so.
    assert_eq!(r["memory_peak_source"], "ru_maxrss");
    assert_eq!(r["memory_peak_bytes"], r["max_rss_bytes"], "{r}");
    assert!(r["memory_peak_bytes"].as_u64().unwrap() > 0, "{r}");
    assert!(report_line(&output).contains("\tMemory Limit: unknown\t"));
}

#[test]
fn unlimited_v2_limits_are_null() {
    let tree = Tree::copy("v2-namespaced");
    tree.write("sys/fs/cgroup/memory.max", "max\n");
    tree.write("sys/fs/cgroup/cpu.max", "max 100000\n");
    let output = run(&tree, FAST, "sleep 0.05");
    let r = report(&output);
    assert_eq!(r["memory_limit_bytes"], Value::Null);
    assert_eq!(r["cpu_limit_cores"], Value::Null);
    assert_eq!(r["memory_peak_source"], "sampled", "memory.peak never rose above its value at start");
    assert!(report_line(&output).contains("\tMemory Limit: unlimited\t"));
}

#[test]
fn malformed_files_give_nulls_and_keep_the_exit_code() {
    let tree = Tree::copy("v2-namespaced");
    for (file, content) in [
        ("memory.current", "garbage\n"),
        ("memory.max", ""),
        ("memory.events", "low 0\nhigh"),
        ("memory.stat", "anon"),
        ("memory.peak", "-5\n"),
        ("cpu.stat", "usage_usec\n"),
        ("cpu.max", "nonsense\n"),
        ("pids.peak", "\u{0}\u{1}"),
        ("pids.current", "1 2\n"),
        ("memory.pressure", "some avg10=0.00\n"),
    ] {
        tree.write(&format!("sys/fs/cgroup/{file}"), content);
    }
    let output = run(&tree, FAST, "sleep 0.05; exit 3");
    assert_eq!(output.status.code(), Some(3));
    let r = report(&output);
    for key in [
        "memory_peak_bytes",
        "memory_peak_source",
        "memory_limit_bytes",
        "memory_working_set_max_bytes",
        "oom_killed",
        "oom_kills",
        "memory_limit_hits",
        "cpu_limit_cores",
        "cpu_throttled_ms",
        "pids_peak",
        "memory_pressure_some_ms",
    ] {
        assert_eq!(r[key], Value::Null, "{key} in {r}");
    }
    assert_eq!(r["exit_code"], 3);
    assert!(report_line(&output).contains("\tExit: 3 (exited)\t"));
}

#[test]
fn files_that_are_truncated_or_vanish_mid_run() {
    let tree = Tree::copy("v2-namespaced");
    // Values written in place, then the whole tree deleted: the held descriptors still read what was
    // written before the deletion, where files opened again would be gone (null).
    let output = run(
        &tree,
        FAST,
        "G=$SYS/fs/cgroup; sleep 0.1; : > $G/memory.events
         echo 60000000 > $G/memory.peak; echo 4 > $G/pids.peak; echo 33554432 > $G/memory.max
         printf 'some avg10=1.00 avg60=0.00 avg300=0.00 total=6000\\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=2500\\n' > $G/memory.pressure
         sleep 0.1; rm -rf $SYS; [ ! -e $G ] || exit 1; sleep 0.1; exit 5",
    );
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    let r = report(&output);
    assert_eq!(r["exit_code"], 5);
    assert_eq!(r["oom_kills"], Value::Null, "memory.events is empty at the end");
    assert_eq!(r["memory_peak_bytes"], 60000000, "{r}");
    assert_eq!(r["pids_peak"], 4);
    assert_eq!(r["memory_pressure_some_ms"], 5);
    assert_eq!(r["memory_limit_bytes"], 33554432, "the limit read at the end, from the deleted file");
    // What the early samples saw is kept.
    assert_eq!(r["memory_working_set_max_bytes"], 8388608);
    report_line(&output);
}

#[test]
fn files_are_held_open_so_a_replaced_file_is_not_read() {
    let tree = Tree::copy("v1");
    // First written in place (the held descriptors see it), then each file replaced by a new inode with
    // `mv`: a reader that opened files again would report the replacements' values.
    let output = run(
        &tree,
        FAST,
        "M=$SYS/fs/cgroup/memory; C=$SYS/fs/cgroup/cpu,cpuacct; sleep 0.1
         printf 'oom_kill_disable 0\\nunder_oom 0\\noom_kill 1\\n' > $M/memory.oom_control
         echo 52428800 > $M/memory.max_usage_in_bytes; echo 2 > $M/memory.failcnt; sleep 0.1
         printf 'oom_kill_disable 0\\nunder_oom 0\\noom_kill 9\\n' > $M/new; mv $M/new $M/memory.oom_control
         echo 99999999 > $M/new; mv $M/new $M/memory.max_usage_in_bytes
         echo 900 > $M/new; mv $M/new $M/memory.failcnt
         echo 41943040 > $M/new; mv $M/new $M/memory.usage_in_bytes
         echo 16777216 > $M/new; mv $M/new $M/memory.limit_in_bytes
         echo 25000 > $C/new; mv $C/new $C/cpu.cfs_quota_us
         grep -q 'oom_kill 9' $M/memory.oom_control || exit 1; sleep 0.1",
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let r = report(&output);
    assert_eq!(r["oom_kills"], 1, "{r}");
    assert_eq!(r["memory_peak_bytes"], 52428800);
    assert_eq!(r["memory_limit_hits"], 2);
    assert_eq!(r["memory_limit_bytes"], 67108864, "the limit is re-read at the end through the held file");
    assert_eq!(r["cpu_limit_cores"], 0.5);
    // usage 20 MiB minus total_inactive_file 4 MiB, never the replacement's 40 MiB.
    assert_eq!(r["memory_working_set_max_bytes"], 16777216);
}

#[test]
fn a_fifo_among_the_cgroup_files_does_not_block_start_up() {
    let tree = Tree::copy("v2-namespaced");
    let stat = tree.sys().join("fs/cgroup/memory.stat");
    std::fs::remove_file(&stat).unwrap();
    let status = Command::new("mkfifo").arg(&stat).status().unwrap();
    assert!(status.success());
    let output = run(&tree, FAST, "echo started; sleep 0.05; exit 3");
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "started\n");
    let r = report(&output);
    // No memory.stat: the working set is memory.current itself; the other files still count.
    assert_eq!(r["memory_working_set_max_bytes"], 10485760, "{r}");
    assert_eq!(r["memory_limit_bytes"], 134217728);
    report_line(&output);
}

#[test]
fn v1_under_a_cgroup_namespace_uses_each_mount_itself() {
    let tree = Tree::copy("v1-namespaced");
    let output = run(
        &tree,
        FAST,
        "M=$SYS/fs/cgroup/memory; sleep 0.1
         printf 'oom_kill_disable 0\\nunder_oom 0\\noom_kill 3\\n' > $M/memory.oom_control
         echo 7 > $M/memory.failcnt; echo 62914560 > $M/memory.max_usage_in_bytes
         printf 'nr_periods 9\\nnr_throttled 4\\nthrottled_time 120000000\\n' > $SYS/fs/cgroup/cpu/cpu.stat
         echo 3 > $SYS/fs/cgroup/pids/pids.current; sleep 0.1",
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let r = report(&output);
    assert_eq!(r["cgroup_version"], 1);
    assert_eq!(r["oom_killed"], true);
    assert_eq!(r["oom_kills"], 1, "2 at start, 3 at the end");
    assert_eq!(r["memory_limit_hits"], 4);
    assert_eq!(r["memory_peak_bytes"], 62914560);
    assert_eq!(r["memory_peak_source"], "memory.max_usage_in_bytes");
    assert_eq!(r["memory_limit_bytes"], 268435456);
    assert_eq!(r["cpu_limit_cores"], 1.5);
    assert_eq!(r["cpu_throttled_ms"], 100);
    assert_eq!(r["pids_peak"], 3, "sampled pids.current");
    // usage 30 MiB minus total_inactive_file 10 MiB.
    assert_eq!(r["memory_working_set_max_bytes"], 20971520);
    let line = report_line(&output);
    assert!(line.contains("\tMax Memory Used: 60 MiB\tMemory Limit: 256 MiB\t"), "{line}");
}

#[test]
fn v1_before_4_13_has_no_oom_kill_line() {
    let tree = Tree::copy("v1");
    tree.write("sys/fs/cgroup/memory/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\n");
    // A SIGKILL nobody in sentinit sent, with the peak at 97 % of the 64 MiB limit: suspected.
    let output =
        run(&tree, FAST, "echo 65100000 > $SYS/fs/cgroup/memory/memory.max_usage_in_bytes; sleep 0.1; kill -9 $$");
    assert_eq!(output.status.code(), Some(137));
    let r = report(&output);
    assert_eq!(r["oom_killed"], Value::Null, "no counter: unknown, not false");
    assert_eq!(r["oom_kills"], Value::Null);
    assert_eq!(r["oom_suspected"], true, "{r}");
    assert_eq!(r["memory_peak_bytes"], 65100000);
    assert!(report_line(&output).ends_with("\tOOM: suspected"));

    // The same kill at 80 % of the limit: not suspected.
    let tree = Tree::copy("v1");
    tree.write("sys/fs/cgroup/memory/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\n");
    let output =
        run(&tree, FAST, "echo 53687091 > $SYS/fs/cgroup/memory/memory.max_usage_in_bytes; sleep 0.1; kill -9 $$");
    assert_eq!(output.status.code(), Some(137));
    let r = report(&output);
    assert_eq!(r["oom_killed"], Value::Null);
    assert_eq!(r["oom_suspected"], false, "{r}");
    assert!(report_line(&output).ends_with("\tOOM: unknown"));
}

#[test]
fn a_limit_on_a_parent_group_binds_the_container() {
    // The ECS task's (or Kubernetes pod's) limit on a parent group; the container's own is `max`.
    let tree = Tree::copy("v2-task-limit");
    let output =
        run(&tree, FAST, "echo 250000000 > $SYS/fs/cgroup/ecs/task1/ctr1/memory.current; sleep 0.1; kill -9 $$");
    assert_eq!(output.status.code(), Some(137));
    let r = report(&output);
    assert_eq!(r["memory_limit_bytes"], 268435456, "{r}");
    assert_eq!(r["memory_peak_bytes"], 250000000);
    // 93 % of the task's limit: the 90 % warning, but no OOM suspicion below 95 %.
    assert_eq!(r["oom_suspected"], false);
    assert_eq!(stderr(&output).matches("passed 90% of the memory limit (256 MiB)").count(), 1, "{}", stderr(&output));
    assert!(report_line(&output).contains("\tMemory Limit: 256 MiB\t"));

    // A tighter own limit wins; an ancestor's `max` changes nothing.
    let tree = Tree::copy("v2-task-limit");
    tree.write("sys/fs/cgroup/ecs/task1/ctr1/memory.max", "134217728\n");
    let r = report(&run(&tree, FAST, "sleep 0.05"));
    assert_eq!(r["memory_limit_bytes"], 134217728);
    let tree = Tree::copy("v2-task-limit");
    tree.write("sys/fs/cgroup/ecs/task1/memory.max", "max\n");
    let r = report(&run(&tree, FAST, "sleep 0.05"));
    assert_eq!(r["memory_limit_bytes"], Value::Null, "unlimited all the way up");
}

#[test]
fn a_group_outside_the_cgroup_namespace_is_not_read() {
    // The kernel prints `/../sibling` when sentinit's group lies outside the namespace's root; the
    // sibling's directory exists beside the mount and must not be read.
    let tree = Tree::copy("v2-namespaced");
    let sibling = tree.sys().join("fs/sibling");
    std::fs::create_dir(&sibling).unwrap();
    for entry in std::fs::read_dir(tree.sys().join("fs/cgroup")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), sibling.join(entry.file_name())).unwrap();
    }
    tree.write("proc/self/cgroup", "0::/../sibling\n");
    let output = run(&tree, FAST, "sleep 0.05; exit 2");
    assert_eq!(output.status.code(), Some(2));
    let r = report(&output);
    assert_eq!(r["cgroup_version"], Value::Null, "{r}");
    assert_eq!(r["memory_limit_bytes"], Value::Null);
    assert_eq!(r["memory_working_set_max_bytes"], Value::Null);
    assert_eq!(r["oom_killed"], Value::Null);

    // With -v, the reason.
    let output = run(&tree, &["-v", "--report", "json"], "exit 0");
    assert!(
        stderr(&output).contains("cgroup path /../sibling leads outside the cgroup namespace"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn unreadable_proc_and_sys() {
    let missing = Path::new("/nonexistent-sentinit-fixture");
    let output = run_with_roots(missing, missing, FAST, "exit 7");
    assert_eq!(output.status.code(), Some(7));
    let r = report(&output);
    assert_eq!(r["cgroup_version"], Value::Null);
    assert_eq!(r["oom_killed"], Value::Null);
    assert!(report_line(&output).contains("\tOOM: unknown"));

    // /proc/self/cgroup a directory, memory.stat a directory, cgroup.controllers unreadable as text.
    let tree = Tree::copy("v2-namespaced");
    std::fs::remove_file(tree.0.join("proc/self/cgroup")).unwrap();
    std::fs::create_dir(tree.0.join("proc/self/cgroup")).unwrap();
    let output = run(&tree, FAST, "exit 9");
    assert_eq!(output.status.code(), Some(9));
    assert_eq!(report(&output)["cgroup_version"], Value::Null);

    let tree = Tree::copy("v2-namespaced");
    std::fs::remove_file(tree.sys().join("fs/cgroup/memory.stat")).unwrap();
    std::fs::create_dir(tree.sys().join("fs/cgroup/memory.stat")).unwrap();
    let output = run(&tree, FAST, "sleep 0.05; exit 11");
    assert_eq!(output.status.code(), Some(11));
    let r = report(&output);
    assert_eq!(r["memory_limit_bytes"], 134217728);
    // No inactive_file: the working set is the usage itself, as docker stats does.
    assert_eq!(r["memory_working_set_max_bytes"], 10485760);

    // A sys root that is a file.
    let output = run_with_roots(&tree.0.join("proc"), &tree.0.join("proc/self/mountinfo"), FAST, "exit 4");
    assert_eq!(output.status.code(), Some(4));
    assert_eq!(report(&output)["cgroup_version"], Value::Null);
}

/// Writes a v1 memory group's counter files under the fixture's memory directory.
fn v1_child_group(tree: &Tree, relative: &str, oom_kills: u64, failcnt: u64) {
    let dir = tree.sys().join("fs/cgroup/memory").join(relative);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("memory.oom_control"), format!("oom_kill_disable 0\nunder_oom 0\noom_kill {oom_kills}\n"))
        .unwrap();
    std::fs::write(dir.join("memory.failcnt"), format!("{failcnt}\n")).unwrap();
}

#[test]
fn v1_counts_the_oom_kills_of_child_groups() {
    let tree = Tree::copy("v1");
    // A group that was there before the workload (its 3 earlier kills are not the run's), one the
    // workload makes, and one it makes and removes after the samples have seen it. New groups are
    // filled beside the tree and moved in whole, as the kernel makes a group with its files.
    v1_child_group(&tree, "runner", 3, 10);
    let output = run(
        &tree,
        FAST,
        "M=$SYS/fs/cgroup/memory; sleep 0.1
         printf 'oom_kill_disable 0\\nunder_oom 0\\noom_kill 4\\n' > $M/runner/memory.oom_control; echo 15 > $M/runner/memory.failcnt
         mkdir $SYS/job1 $SYS/job2
         printf 'oom_kill_disable 0\\nunder_oom 0\\noom_kill 2\\n' > $SYS/job1/memory.oom_control; echo 7 > $SYS/job1/memory.failcnt
         printf 'oom_kill_disable 0\\nunder_oom 0\\noom_kill 1\\n' > $SYS/job2/memory.oom_control; echo 0 > $SYS/job2/memory.failcnt
         mv $SYS/job1 $M/runner/; mv $SYS/job2 $M/; sleep 0.2; rm -r $M/job2; sleep 0.1",
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let r = report(&output);
    assert_eq!(r["oom_kills"], 1 + 2 + 1, "{r}");
    assert_eq!(r["oom_killed"], true);
    assert_eq!(r["memory_limit_hits"], 5 + 7, "{r}");
    // A fixture counter names no real victim; whatever ended in that interval may be named after it.
    assert!(report_line(&output).contains("\tOOM: killed (4)"), "{}", report_line(&output));
}

#[test]
fn v1_adds_memory_and_swap_limit_hits() {
    // One failed charge bumps one of the two counters: memory+swap is charged first.
    let tree = Tree::copy("v1");
    tree.write("sys/fs/cgroup/memory/memory.memsw.failcnt", "4\n");
    tree.write("sys/fs/cgroup/memory/memory.memsw.limit_in_bytes", "67108864\n");
    let output = run(
        &tree,
        FAST,
        "M=$SYS/fs/cgroup/memory; sleep 0.1; echo 2 > $M/memory.failcnt; echo 34 > $M/memory.memsw.failcnt
         printf 'oom_kill_disable 0\\nunder_oom 0\\noom_kill 1\\n' > $M/memory.oom_control; sleep 0.1",
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let r = report(&output);
    assert_eq!(r["memory_limit_hits"], 2 + 30, "{r}");

    // The same OOM kill with neither counter moving: a kernel that no longer maintains
    // memory.memsw.failcnt (6.18). Unknown, not 0.
    let tree = Tree::copy("v1");
    tree.write("sys/fs/cgroup/memory/memory.memsw.failcnt", "0\n");
    tree.write("sys/fs/cgroup/memory/memory.memsw.limit_in_bytes", "67108864\n");
    let script = "sleep 0.1; printf 'oom_kill_disable 0\\nunder_oom 0\\noom_kill 1\\n' > $SYS/fs/cgroup/memory/memory.oom_control";
    let r = report(&run(&tree, FAST, script));
    assert_eq!(r["oom_kills"], 1);
    assert_eq!(r["memory_limit_hits"], Value::Null, "{r}");

    // Without a memory+swap limit, no limit hit next to an OOM kill is a real 0 (a global OOM).
    let tree = Tree::copy("v1");
    let r = report(&run(&tree, FAST, script));
    assert_eq!(r["memory_limit_hits"], 0, "{r}");
}

/// The CPUs this test process may run on, which sentinit and its workload inherit.
fn affinity_cpus() -> usize {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity fills it in.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: the size is that of the live local above.
    assert_eq!(unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) }, 0);
    // SAFETY: reads the set filled in above.
    unsafe { libc::CPU_COUNT(&set) as usize }
}

#[test]
fn cpu_max_cores_from_clock_ticks_is_a_possible_figure() {
    // An empty /sys: no cgroup, so CPU time comes from /proc/<pid>/stat clock ticks and wait4. Rated
    // over 10 ms, one tick of rounding alone would read as a whole extra core.
    let sys = common::TempDir::new("empty-sys");
    let output = run_with_roots(
        Path::new("/proc"),
        sys.path(),
        &["--interval", "10ms", "--report", "json"],
        // A single-threaded busy loop of shell builtins (no process is started), about a second.
        "i=0; while [ $i -lt 1500000 ]; do i=$((i+1)); done",
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let r = report(&output);
    assert_eq!(r["cgroup_version"], Value::Null, "{r}");
    let max = r["cpu_max_cores"].as_f64().unwrap_or_else(|| panic!("no cpu_max_cores in {r}"));
    assert!(max > 0.0, "{r}");
    assert!(max <= affinity_cpus() as f64, "more cores than the CPUs it may run on: {r}");
    assert!(max <= 1.2, "a single-threaded loop: {r}");
}
