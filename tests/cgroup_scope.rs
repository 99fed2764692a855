//! Whose cgroup is it (issue 9, part 1), on this machine's real cgroup v1 memory controller: a group the
//! test creates under its own memory cgroup holds sentinit and, where a case needs it, a foreign
//! process (another program that joined the group and holds memory). sentinit then reports
//! `cgroup_scope` `container` (alone), `own` (it made a group of the workload's own below, and the
//! figures are the workload's alone) or `shared` (`--cgroup inherit`: the group as it is, said so in
//! the text REPORT). Every ending leaves no group of sentinit's behind. Outside CI the tests skip
//! without a writable v1 memory hierarchy; in CI they fail.

mod common;

use common::cgroup::MemoryGroup;
use common::{mode_available, report, Mode, TempDir};
use serde_json::Value;
use std::process::{Child, Output, Stdio};
use std::time::Duration;

const MIB: u64 = 1024 * 1024;

/// Touches `mib` MiB, says so through `ready` (argv[2], when given) and holds it for `hold` seconds.
const HOLDER: &str = "import sys, time\n\
b = bytearray(int(sys.argv[1]) << 20)\n\
for i in range(0, len(b), 4096): b[i] = 1\n\
if len(sys.argv) > 3: open(sys.argv[3], 'w').write('ready')\n\
time.sleep(float(sys.argv[2]))\n";

/// A process that is not sentinit's: it joins `group`, holds `mib` MiB and sleeps; killed on drop.
struct Foreign(Child);

impl Foreign {
    fn start(group: &MemoryGroup, mib: u64, dir: &TempDir) -> Foreign {
        let ready = dir.join("foreign-ready");
        let mut cmd = group.joined("python3", &["-c", HOLDER, &mib.to_string(), "60", ready.to_str().unwrap()]);
        let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let foreign = Foreign(child);
        assert!(
            common::wait_for(Duration::from_secs(10), || ready.exists().then_some(())).is_some(),
            "the foreign process did not get ready"
        );
        foreign
    }
}

impl Drop for Foreign {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn bytes(r: &Value, key: &str) -> u64 {
    r[key].as_u64().unwrap_or_else(|| panic!("{key} is not a number in {r}"))
}

/// `sentinit-<pid>-<8 hex>`, the name of a group sentinit makes (the test's own are `sentinit-test-...`).
fn is_own_group(leaf: &str) -> bool {
    let Some((pid, random)) = leaf.strip_prefix("sentinit-").and_then(|rest| rest.split_once('-')) else {
        return false;
    };
    !pid.is_empty()
        && pid.bytes().all(|b| b.is_ascii_digit())
        && random.len() == 8
        && random.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The last path component of the `memory` line the workload printed on stderr.
fn workload_group(text: &str) -> Option<String> {
    text.lines().find(|l| l.contains(":memory:")).map(|l| l.trim().rsplit('/').next().unwrap_or("").to_string())
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// With a foreign process holding 40 MiB in its group, sentinit makes a group of the workload's own:
/// the report says `own`, one foreign process, and a peak that is the workload's 30 MiB (within 10 %),
/// not the group's 70; the workload really ran in `sentinit-<pid>` below the group, which is gone
/// afterwards.
#[test]
fn a_shared_group_gets_a_group_of_the_workloads_own() {
    let Some(group) = MemoryGroup::create(512 * MIB) else { return };
    let dir = TempDir::new("scope-own");
    let _foreign = Foreign::start(&group, 40, &dir);
    let seen = dir.join("cgroup");
    // dd touches its 30 MiB buffer and little else: the peak to expect is the workload's.
    let script =
        format!("grep memory /proc/self/cgroup > {}; exec dd if=/dev/zero of=/dev/null bs=30M count=1", seen.display());
    let output = group.run(&["--report", "json,text", "--interval", "50ms"], &["sh", "-c", &script]);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    let r = report(&output);
    assert_eq!(r["cgroup_scope"], "own", "{r}");
    assert_eq!(r["cgroup_foreign_processes"], 1, "{r}");
    let peak = bytes(&r, "memory_peak_bytes");
    assert!((30 * MIB * 9 / 10..=33 * MIB).contains(&peak), "peak {} MiB is the workload's 30 MiB", peak / MIB);
    assert_eq!(r["memory_peak_source"], "memory.max_usage_in_bytes", "{r}");
    let line = std::fs::read_to_string(&seen).unwrap();
    let leaf = line.trim().rsplit('/').next().unwrap().to_string();
    assert!(is_own_group(&leaf), "the workload ran in {line}");
    assert!(!text.contains("cgroup shared with"), "{text}");
    assert!(group.children().is_empty(), "left behind: {:?}", group.children());
}

/// `--cgroup inherit` reads the group as it is: `shared`, the foreign processes counted, the peak is
/// the group's (the foreign 40 MiB included), and the text REPORT says the figure is not the
/// workload's alone.
#[test]
fn inherit_reads_the_shared_group_and_says_so() {
    let Some(group) = MemoryGroup::create(512 * MIB) else { return };
    let dir = TempDir::new("scope-inherit");
    let _one = Foreign::start(&group, 40, &dir);
    let dir2 = TempDir::new("scope-inherit-2");
    let _two = Foreign::start(&group, 1, &dir2);
    let output = group.run(&["--cgroup", "inherit", "--report", "json,text"], &["python3", "-c", HOLDER, "10", "0.2"]);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    let r = report(&output);
    assert_eq!(r["cgroup_scope"], "shared", "{r}");
    assert_eq!(r["cgroup_foreign_processes"], 2, "{r}");
    assert!(bytes(&r, "memory_peak_bytes") >= 45 * MIB, "the group's peak, foreign memory included: {r}");
    assert!(text.contains(" (cgroup shared with 2 other processes)\t"), "{text}");
    assert!(group.children().is_empty(), "{:?}", group.children());
}

/// sentinit alone in its group (as PID 1 of a new PID namespace, as in a container, and as an
/// ordinary child) reports `container` and makes no group; `--cgroup own` makes one all the same.
#[test]
fn alone_in_its_group_is_container_and_own_is_on_request() {
    for mode in common::MODES {
        if !mode_available(mode) {
            continue;
        }
        let Some(group) = MemoryGroup::create(512 * MIB) else { return };
        let output = group.run_as(mode, &["--report", "json"], &["sh", "-c", "grep memory /proc/self/cgroup >&2"]);
        let text = stderr(&output);
        assert_eq!(output.status.code(), Some(0), "{mode:?}: {text}");
        let r = report(&output);
        assert_eq!(r["cgroup_scope"], "container", "{mode:?}: {r}");
        assert_eq!(r["cgroup_foreign_processes"], 0, "{mode:?}: {r}");
        assert!(!workload_group(&text).is_some_and(|g| is_own_group(&g)), "{mode:?}: no group of its own: {text}");
        if mode == Mode::Child {
            let output =
                group.run(&["--cgroup", "own", "--report", "json"], &["sh", "-c", "grep memory /proc/self/cgroup >&2"]);
            let text = stderr(&output);
            assert_eq!(report(&output)["cgroup_scope"], "own", "{text}");
            assert!(workload_group(&text).is_some_and(|g| is_own_group(&g)), "a group of its own: {text}");
        }
        assert!(group.children().is_empty(), "{mode:?}: {:?}", group.children());
    }
}

/// A workload that makes a group of its own below sentinit's (a batch runner, a nested container) does
/// not make sentinit leave its group behind: the empty groups below are removed first.
#[test]
fn groups_the_workload_made_below_are_removed_too() {
    let Some(group) = MemoryGroup::create(256 * MIB) else { return };
    let dir = TempDir::new("scope-nested");
    let _foreign = Foreign::start(&group, 1, &dir);
    let script = "own=$(grep memory /proc/self/cgroup | cut -d: -f3); d=/sys/fs/cgroup/memory$own/sub/deeper; \
                  mkdir -p $d && echo $$ > $d/cgroup.procs && echo joined >&2";
    let output = group.run(&["--report", "json"], &["sh", "-c", script]);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.contains("joined"), "{text}");
    assert_eq!(report(&output)["cgroup_scope"], "own");
    assert!(!text.contains("cannot remove"), "{text}");
    assert!(group.children().is_empty(), "left behind: {:?}", group.children());
}

/// Two sentinits that are each PID 1 of their own namespace, in one group, both with `--cgroup own`:
/// both are pid 1, and each other's processes are invisible to them, so only a name of its own keeps
/// each from taking over the other's group. Each reports its own workload, and nothing is left.
#[test]
fn two_pid1_sentinits_in_one_group_keep_apart() {
    if !mode_available(Mode::Pid1) {
        return;
    }
    let Some(group) = MemoryGroup::create(512 * MIB) else { return };
    let start = |mib: &str| {
        let args =
            ["--pid", "--fork", "--mount-proc", env!("CARGO_BIN_EXE_sentinit"), "--cgroup", "own", "--report", "json"];
        let mut cmd = group.joined("unshare", &args);
        cmd.args(["--", "dd", "if=/dev/zero", "of=/dev/null", &format!("bs={mib}M"), "count=1"]);
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        cmd.spawn().unwrap()
    };
    let (one, two) = (start("20"), start("40"));
    let (one, two) = (common::finish(one, Duration::from_secs(20)), common::finish(two, Duration::from_secs(20)));
    for (output, mib) in [(one, 20), (two, 40)] {
        let text = stderr(&output);
        assert_eq!(output.status.code(), Some(0), "{text}");
        let r = report(&output);
        assert_eq!(r["cgroup_scope"], "own", "{r}");
        let peak = bytes(&r, "memory_peak_bytes");
        assert!((mib * MIB * 9 / 10..=(mib + 4) * MIB).contains(&peak), "peak {} MiB, its own {mib} MiB", peak / MIB);
        assert!(!text.contains("cannot remove"), "{text}");
    }
    assert!(group.children().is_empty(), "left behind: {:?}", group.children());
}

/// Every ending removes the workload's group: a normal exit, a TERM sent to sentinit, an OOM kill in
/// the 64 MiB group (reported as such: the own group's counters are exact), and a workload that cannot
/// start (127). (A sentinit killed with SIGKILL cannot; the next sentinit in the same group removes
/// such empty groups after a minute.)
#[test]
fn the_workloads_group_is_removed_on_every_ending() {
    let Some(group) = MemoryGroup::create(64 * MIB) else { return };
    let dir = TempDir::new("scope-endings");
    let _foreign = Foreign::start(&group, 1, &dir);

    let output = group.run(&["--report", "json"], &["sh", "-c", "exit 3"]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert_eq!(report(&output)["cgroup_scope"], "own");
    assert!(group.children().is_empty(), "after an exit: {:?}", group.children());

    let output = group.run(&["--report", "json"], &["dd", "if=/dev/zero", "of=/dev/null", "bs=200M", "count=1"]);
    assert_eq!(output.status.code(), Some(137), "{}", stderr(&output));
    let r = report(&output);
    assert_eq!((r["cgroup_scope"].clone(), r["oom_killed"].clone()), ("own".into(), true.into()), "{r}");
    assert_eq!(r["memory_limit_bytes"], 64 * MIB, "the parent's limit still binds: {r}");
    assert_eq!(r["oom_victims"][0]["comm"], "dd", "sentinit reaped it: the exact victim: {r}");
    assert_eq!(r["oom_victims"][0]["exact"], true, "{r}");
    assert!(group.children().is_empty(), "after an OOM kill: {:?}", group.children());

    // A worker of the workload, reaped by its own parent, OOM-killed in the workload's own group: named
    // from the samples (the counter of a fresh group is the workload's alone).
    let script = "dd if=/dev/zero of=/dev/null bs=200M count=1; echo \"worker $?\" >&2; exit 0";
    let output = group.run(&["--report", "json,text", "--interval", "20ms"], &["sh", "-c", script]);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.contains("worker 137"), "{text}");
    let r = report(&output);
    assert_eq!((r["cgroup_scope"].clone(), r["oom_killed"].clone()), ("own".into(), true.into()), "{r}");
    let victim = &r["oom_victims"][0];
    assert_eq!((victim["comm"].clone(), victim["exact"].clone()), ("dd".into(), false.into()), "{r}");
    assert!(text.contains("\tOOM: killed (1): dd["), "{text}");
    assert!(group.children().is_empty(), "after a worker's OOM kill: {:?}", group.children());

    let output = group.run(&["--report", "json"], &["definitely-not-a-command-xyz"]);
    assert_eq!(output.status.code(), Some(127), "{}", stderr(&output));
    assert!(group.children().is_empty(), "after a failed start: {:?}", group.children());

    let ready = dir.join("term-ready");
    let script = format!("trap 'exit 143' TERM; touch {}; while :; do sleep 0.05; done", ready.display());
    let mut cmd = group.joined(env!("CARGO_BIN_EXE_sentinit"), &["--report", "json", "--", "sh", "-c", &script]);
    let child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    assert!(common::wait_for(Duration::from_secs(10), || ready.exists().then_some(())).is_some());
    assert!(common::signal(child.id() as i32, libc::SIGTERM));
    let output = common::finish(child, Duration::from_secs(20));
    assert_eq!(output.status.code(), Some(143), "{}", stderr(&output));
    assert_eq!(report(&output)["cgroup_scope"], "own");
    assert!(group.children().is_empty(), "after a TERM: {:?}", group.children());
}

/// Under a descriptor limit that leaves nothing over once sentinit holds its signalfd and counter files,
/// the workload still joins its own group (sentinit opens the group's cgroup.procs before it starts
/// the workload, and the child only writes to it), or no group of its own is made: the report never
/// says `own` with the figures of a group the workload never entered (a 0 MiB peak).
#[test]
fn a_low_descriptor_limit_never_reports_an_empty_group_as_the_workloads() {
    let Some(group) = MemoryGroup::create(512 * MIB) else { return };
    let dir = TempDir::new("scope-nofile");
    let _foreign = Foreign::start(&group, 10, &dir);
    for limit in [8, 10, 12, 14, 16, 18] {
        let nofile = format!("--nofile={limit}");
        let args = [&nofile, "--", common::sentinit(), "--report", "json", "--", "python3", "-c", HOLDER, "30", "0.2"];
        let output = group.joined("prlimit", &args).output().unwrap();
        let text = stderr(&output);
        assert_eq!(output.status.code(), Some(0), "limit {limit}: {text}");
        let r = report(&output);
        if r["cgroup_scope"] == "own" {
            let peak = bytes(&r, "memory_peak_bytes");
            assert!(
                peak >= 30 * MIB,
                "limit {limit}: an own group's peak of {} MiB is not the workload's: {r}",
                peak / MIB
            );
        }
    }
    assert!(group.children().is_empty(), "left behind: {:?}", group.children());
}
