//! The report names the processes: `top_processes` (the largest by peak RSS) and `oom_victims` (whom
//! the OOM killer took), and the text REPORT's `OOM:` names the first victim.
//!
//! Run on this machine's real cgroup v1 memory controller, as in tests/accounting_cgroup_v1.rs: each
//! test creates a child memory group under the test process's own memory cgroup, runs sentinit inside it
//! (a shell joins the group, then execs sentinit, or `unshare --pid --fork --mount-proc sentinit` for
//! sentinit as PID 1) and removes the group afterwards, also on failure. The workloads are Python
//! scripts whose workers fork from the main child and name themselves (PR_SET_NAME), so that the test
//! knows which pid and `comm` to expect; the pids they print are those of sentinit's PID namespace,
//! as are the report's. Needs root and a writable v1 memory hierarchy: outside CI the tests skip with a
//! reason, in CI (CI=true) they fail.

mod common;

use common::cgroup::MemoryGroup;
use common::{mode_available, report, stderr_of, stdout_of, Mode, TempDir, MODES};
use serde_json::Value;
use std::process::Output;

const MIB: u64 = 1024 * 1024;

/// The Python workload: the main child forks workers that name themselves and do what their role says,
/// then reaps them itself (os.wait, in the order they end) and prints what it saw.
const POOL: &str = r#"
import ctypes, os, sys, time

def name(text):
    ctypes.CDLL(None).prctl(15, text.encode(), 0, 0, 0)  # PR_SET_NAME: the comm

def touch(mib):
    block = bytearray(mib << 20)
    for i in range(0, len(block), 4096):
        block[i] = 1
    return block

def hog():
    # Grows by 1 MiB every 5 ms, so that the samples see it grow, until the OOM killer takes it.
    chunks = []
    while True:
        chunks.append(touch(1))
        time.sleep(0.005)

def hold(mib, seconds):
    block = touch(mib)
    time.sleep(seconds)

roles = sys.argv[1:]
pids = []
for index, role in enumerate(roles):
    pid = os.fork()
    if pid == 0:
        kind, _, arg = role.partition(":")
        name(f"{kind}-{index}")
        if kind == "hog":
            hog()
        else:
            hold(int(arg.split("/")[0]), float(arg.split("/")[1]))
        os._exit(0)
    pids.append(pid)
    print(f"worker {index} {role} {pid}", flush=True)
for _ in pids:
    pid, status = os.wait()
    print(f"ended {pid} {status}", flush=True)
"#;

/// Writes the pool script into `dir`.
fn pool_script(dir: &TempDir) -> String {
    let path = dir.join("pool.py");
    std::fs::write(&path, POOL).unwrap();
    path.to_string_lossy().into_owned()
}

/// The pid the pool printed for worker `index`.
fn worker_pid(output: &Output, index: usize) -> i64 {
    let prefix = format!("worker {index} ");
    let stdout = stdout_of(output);
    let line = stdout.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("no {prefix:?} in {stdout}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// The wait status the pool saw for `pid`.
fn ended_status(output: &Output, pid: i64) -> i64 {
    let prefix = format!("ended {pid} ");
    let stdout = stdout_of(output);
    let line = stdout.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("no {prefix:?} in {stdout}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

fn entry_for(list: &Value, pid: i64) -> Option<&Value> {
    list.as_array().unwrap().iter().find(|e| e["pid"] == pid)
}

fn number(value: &Value, key: &str) -> u64 {
    value[key].as_u64().unwrap_or_else(|| panic!("{key} is not a number in {value}"))
}

#[test]
fn a_pool_worker_killed_by_the_oom_killer_is_named_from_the_samples() {
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        let Some(group) = MemoryGroup::create(64 * MIB) else { return };
        let dir = TempDir::new("pool");
        let script = pool_script(&dir);
        // Seven workers that hold 1 MiB for 2 s, and one that grows until it is killed (index 3).
        let roles = ["hold:1/2", "hold:1/2", "hold:1/2", "hog", "hold:1/2", "hold:1/2", "hold:1/2", "hold:1/2"];
        let mut workload = vec!["python3", script.as_str()];
        workload.extend(roles);
        let output = group.run_as(mode, &["--report", "json,text", "--interval", "50ms"], &workload);
        let text = stderr_of(&output);
        assert_eq!(output.status.code(), Some(0), "{mode:?}: {text}");
        let hog = worker_pid(&output, 3);
        assert_eq!(ended_status(&output, hog), 9, "{mode:?}: the parent saw its worker die of SIGKILL");
        let r = report(&output);
        assert_eq!(r["oom_killed"], true, "{mode:?}: {r}");
        let victims = &r["oom_victims"];
        let victim = entry_for(victims, hog).unwrap_or_else(|| panic!("{mode:?}: worker {hog} not in {victims}"));
        assert_eq!(victim["comm"], "hog-3", "{mode:?}: {victim}");
        assert!(victim["command"].as_str().unwrap().contains("pool.py hold:1/2 hold:1/2"), "{mode:?}: {victim}");
        assert_eq!(victim["exact"], false, "{mode:?}: its parent reaped it, so only the samples saw it: {victim}");
        assert!(number(victim, "rss_bytes") >= 20 * MIB, "{mode:?}: its RSS at its last sample: {victim}");
        assert_eq!(victims.as_array().unwrap().len(), 1, "{mode:?}: nobody else: {victims}");
        // The text REPORT names it.
        let expected = format!("\tOOM: killed ({}): hog-3[{hog}] ", r["oom_kills"]);
        assert!(text.contains(&expected), "{mode:?}: {expected:?} in {text}");
        // It was the largest worker, and the main child (reaped by sentinit) is exact.
        let top = r["top_processes"].as_array().unwrap();
        assert!(top.iter().any(|e| e["pid"] == hog && e["exact"] == false), "{mode:?}: {top:?}");
        assert!(top.iter().any(|e| e["exact"] == true && e["exit_code"] == 0), "{mode:?}: {top:?}");
    }
}

#[test]
fn the_main_child_killed_by_the_oom_killer_is_an_exact_victim() {
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        let Some(group) = MemoryGroup::create(64 * MIB) else { return };
        // --grace 0: sentinit's own SIGKILL passes would start at once after the main child's exit,
        // which must not make the main child's own death look like sentinit's doing.
        let grow = "import os, time\nprint(os.getpid(), flush=True)\nchunks = []\nwhile True:\n    \
                    b = bytearray(1 << 20)\n    for i in range(0, len(b), 4096): b[i] = 1\n    chunks.append(b)\n";
        let output = group.run_as(
            mode,
            &["--report", "json,text", "--interval", "50ms", "--grace", "0"],
            &["python3", "-c", grow],
        );
        let text = stderr_of(&output);
        assert_eq!(output.status.code(), Some(137), "{mode:?}: {text}");
        let pid: i64 = stdout_of(&output).trim().parse().unwrap();
        let r = report(&output);
        let victims = r["oom_victims"].as_array().unwrap();
        assert_eq!(victims.len(), 1, "{mode:?}: {r}");
        let victim = &victims[0];
        assert_eq!(victim["pid"], pid, "{mode:?}: {victim}");
        assert_eq!(victim["exact"], true, "{mode:?}: sentinit reaped it and did not send the SIGKILL: {victim}");
        assert!(victim["comm"].as_str().unwrap().starts_with("python3"), "{mode:?}: {victim}");
        let rss = number(victim, "rss_bytes");
        assert!((40 * MIB..=80 * MIB).contains(&rss), "{mode:?}: its peak RSS from wait4, near the limit: {victim}");
        let first = &r["top_processes"][0];
        assert_eq!((first["pid"].as_i64(), &first["exact"]), (Some(pid), &Value::Bool(true)), "{mode:?}: {r}");
        assert_eq!((&first["exit_code"], &first["signal"]), (&Value::from(137), &Value::from("SIGKILL")));
        assert!(first["command"].as_str().unwrap().starts_with("python3 -c import os"), "{mode:?}: {first}");
        let expected = format!("\tOOM: killed ({}): {}[{pid}] ", r["oom_kills"], victim["comm"].as_str().unwrap());
        assert!(text.contains(&expected), "{mode:?}: {expected:?} in {text}");
    }
}

#[test]
fn a_sigkill_from_elsewhere_is_no_oom_victim() {
    let Some(group) = MemoryGroup::create(64 * MIB) else { return };
    let output =
        group.run_as(Mode::Child, &["--report", "json,text", "--interval", "50ms"], &["sh", "-c", "kill -9 $$"]);
    assert_eq!(output.status.code(), Some(137));
    let r = report(&output);
    assert_eq!(r["oom_killed"], false, "{r}");
    assert_eq!(r["oom_victims"], serde_json::json!([]), "{r}");
    assert_eq!(r["top_processes"][0]["signal"], "SIGKILL", "{r}");
    assert!(stderr_of(&output).contains("\tOOM: none"));
}

#[test]
fn top_processes_ranks_a_100_mib_worker_above_a_10_mib_one() {
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        let Some(group) = MemoryGroup::create(512 * MIB) else { return };
        let dir = TempDir::new("top");
        let script = pool_script(&dir);
        // Each worker touches its memory and holds it for 0.5 s, ten samples at 50 ms.
        let output = group.run_as(
            mode,
            &["--report", "json", "--interval", "50ms"],
            &["python3", &script, "hold:10/0.5", "hold:100/0.5"],
        );
        assert_eq!(output.status.code(), Some(0), "{mode:?}: {}", stderr_of(&output));
        let (small, big) = (worker_pid(&output, 0), worker_pid(&output, 1));
        let r = report(&output);
        let top = r["top_processes"].as_array().unwrap();
        assert!(top.len() <= 5, "{mode:?}: {top:?}");
        let peaks: Vec<u64> = top.iter().map(|e| number(e, "peak_rss_bytes")).collect();
        assert!(peaks.windows(2).all(|w| w[0] >= w[1]), "{mode:?}: sorted by peak RSS, descending: {peaks:?}");
        let position = |pid: i64| top.iter().position(|e| e["pid"] == pid);
        let (Some(at_big), Some(at_small)) = (position(big), position(small)) else {
            panic!("{mode:?}: workers {big} and {small} in {top:?}")
        };
        assert!(at_big < at_small, "{mode:?}: {top:?}");
        let (big, small) = (&top[at_big], &top[at_small]);
        assert_eq!((&big["comm"], &small["comm"]), (&Value::from("hold-1"), &Value::from("hold-0")), "{mode:?}");
        assert!(number(big, "peak_rss_bytes") >= 100 * MIB, "{mode:?}: {big}");
        let small_peak = number(small, "peak_rss_bytes");
        assert!((10 * MIB..100 * MIB).contains(&small_peak), "{mode:?}: {small}");
        for worker in [big, small] {
            assert_eq!(worker["exact"], false, "{mode:?}: reaped by their parent, sampled: {worker}");
            assert!(worker["exit_code"].is_null() || worker["exit_code"] == 0, "{mode:?}: {worker}");
            assert!(worker["cpu_ms"].is_u64(), "{mode:?}: {worker}");
            assert!(worker["command"].as_str().unwrap().contains("pool.py hold:10/0.5 hold:100/0.5"), "{worker}");
        }
        // The main child is exact; wait4's peak covers the workers it reaped.
        let main = top.iter().find(|e| e["exact"] == true).unwrap_or_else(|| panic!("{mode:?}: {top:?}"));
        assert_eq!(main["exit_code"], 0);
        assert!(number(main, "peak_rss_bytes") >= 100 * MIB, "{mode:?}: {main}");
        assert_eq!(r["oom_victims"], serde_json::json!([]), "{mode:?}");
    }
}

#[test]
fn a_burst_of_small_orphans_leaves_the_top_processes_named() {
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        let Some(group) = MemoryGroup::create(512 * MIB) else { return };
        // Forty small orphans end at once (sentinit reaps them; the 10 s interval keeps the samples out
        // of it), then a 60 MiB one that names itself: sentinit reads a name only for what can rank,
        // and what it lists is named.
        let big = "import ctypes, time; ctypes.CDLL(None).prctl(15, b\"big-orphan\", 0, 0, 0); \
                   block = bytearray(60 << 20); [block.__setitem__(i, 1) for i in range(0, len(block), 4096)]; \
                   time.sleep(0.2)";
        let script = format!("for i in $(seq 40); do (true &); done; sleep 0.3; (python3 -c '{big}' &); sleep 1.5");
        let output = group.run_as(mode, &["--report", "json", "--interval", "10s"], &["sh", "-c", &script]);
        assert_eq!(output.status.code(), Some(0), "{mode:?}: {}", stderr_of(&output));
        let r = report(&output);
        let top = r["top_processes"].as_array().unwrap();
        assert_eq!(top.len(), 5, "{mode:?}: {top:?}");
        assert_eq!(top[0]["comm"], "big-orphan", "{mode:?}: {top:?}");
        assert_eq!(top[0]["exact"], true, "{mode:?}: reaped by sentinit: {top:?}");
        assert!(number(&top[0], "peak_rss_bytes") >= 60 * MIB, "{mode:?}: {top:?}");
        assert!(top.iter().all(|p| p["comm"].is_string()), "{mode:?}: every listed process is named: {top:?}");
        assert!(r["processes"].as_u64().unwrap() >= 42, "{mode:?}: {r}");
    }
}
