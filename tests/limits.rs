//! SENTINIT_CPU_LIMIT, SENTINIT_CPUS and SENTINIT_MEMORY_LIMIT_BYTES through the binary: a v1 CFS
//! quota and a v2 cpu.max on a parent group (fixture trees: this machine's `cpu` hierarchy offers only
//! the host's root group, where no test group may go), a real cgroup v1 memory limit, the variables
//! you set, and the CPU affinity. The ECS sources are in identity_ecs.rs; a real cpu.max in the VMs
//! (realkernel.rs, scenario `cpu-limit`).

mod common;

use common::{cgroup::MemoryGroup, stderr_of, stdout_of, Tree};
use serde_json::Value;
use std::collections::HashMap;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// Runs `sentinit ARGS -- env` (or `taskset -c 0 sentinit ...` with `pinned`) on `tree`, with `vars`.
fn run_on(tree: Option<&Tree>, pinned: bool, args: &[&str], vars: &[(&str, &str)]) -> Output {
    let sentinit = env!("CARGO_BIN_EXE_sentinit");
    let mut command = if pinned {
        let mut c = Command::new("taskset");
        c.args(["-c", "0", sentinit]);
        c
    } else {
        Command::new(sentinit)
    };
    command.args(args);
    if !args.contains(&"--identity") {
        command.args(["--", "env"]);
    }
    common::clean_env(&mut command);
    // Without a tree: an empty /sys, so that no cgroup of this machine's gives a limit.
    let empty = common::TempDir::new("limits-sys");
    match tree {
        Some(tree) => command.env("SENTINIT_PROC_ROOT", tree.0.join("proc")).env("SENTINIT_SYS_ROOT", tree.sys()),
        None => command.env("SENTINIT_SYS_ROOT", empty.path()),
    };
    command.envs(vars.iter().copied()).stdin(Stdio::null());
    common::run(command, Duration::from_secs(30))
}

fn workload_env(output: &Output) -> HashMap<String, String> {
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(output));
    stdout_of(output).lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.into(), v.into())).collect()
}

fn start_line(output: &Output) -> String {
    stderr_of(output).lines().find(|l| l.starts_with("START ")).unwrap_or_default().to_string()
}

fn limits_of(vars: &HashMap<String, String>) -> [Option<&str>; 3] {
    ["SENTINIT_CPU_LIMIT", "SENTINIT_CPUS", "SENTINIT_MEMORY_LIMIT_BYTES"]
        .map(|name| vars.get(name).map(String::as_str))
}

/// The CPUs this test may run on (sentinit inherits them).
fn affinity_cpus() -> u64 {
    let out = Command::new("nproc").output().expect("nproc");
    String::from_utf8_lossy(&out.stdout).trim().parse().expect("nproc prints a number")
}

#[test]
fn v1_cfs_quota_and_hierarchical_memory_limit() {
    // The fixture: cpu.cfs_quota_us 50000 per 100000, memory.limit_in_bytes 64 MiB (memory.stat's
    // hierarchical limit is larger).
    let tree = Tree::copy("v1");
    let output = run_on(Some(&tree), false, &[], &[]);
    let vars = workload_env(&output);
    assert_eq!(limits_of(&vars), [Some("0.5"), Some("1"), Some("67108864")], "{vars:?}");
    assert!(start_line(&output).ends_with(" cpus=1 cpu_limit=0.5 memory_limit=67108864"), "{}", start_line(&output));

    let json: Value = serde_json::from_str(&stdout_of(&run_on(Some(&tree), false, &["--identity"], &[]))).unwrap();
    assert_eq!(json["cpu_limit"], "0.5", "{json}");
    assert_eq!(json["cpu_limit_source"], "cgroup");
    assert_eq!(json["cpus"], "1");
    assert_eq!(json["memory_limit_bytes"], "67108864");

    // 1.25 cores: two CPUs if this machine has them.
    tree.write("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "125000\n");
    let vars = workload_env(&run_on(Some(&tree), false, &[], &[]));
    assert_eq!(limits_of(&vars)[..2], [Some("1.25"), Some(&*2.min(affinity_cpus()).to_string())]);
    // No quota (-1) and no memory limit: only the CPU count.
    tree.write("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "-1\n");
    tree.write("sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");
    tree.write(
        "sys/fs/cgroup/memory/memory.stat",
        &std::fs::read_to_string(tree.0.join("sys/fs/cgroup/memory/memory.stat"))
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("hierarchical_memory_limit"))
            .map(|l| format!("{l}\n"))
            .collect::<String>(),
    );
    let output = run_on(Some(&tree), false, &[], &[]);
    let vars = workload_env(&output);
    let cpus = affinity_cpus().to_string();
    assert_eq!(limits_of(&vars), [None, Some(cpus.as_str()), None], "{vars:?}");
    assert!(start_line(&output).ends_with(&format!("task=unknown cpus={cpus}")), "{}", start_line(&output));
}

#[test]
fn v2_cpu_max_of_a_parent_group_binds_the_container() {
    // An ECS task's (or a pod's) quota on the parent; the container's own cpu.max is `max`.
    let tree = Tree::copy("v2-task-limit");
    tree.write("sys/fs/cgroup/ecs/task1/cpu.max", "150000 100000\n");
    let vars = workload_env(&run_on(Some(&tree), false, &[], &[]));
    let cpus = 2.min(affinity_cpus()).to_string();
    assert_eq!(limits_of(&vars), [Some("1.5"), Some(cpus.as_str()), Some("268435456")], "{vars:?}");
    // The report's cpu_limit_cores is the same tightest quota.
    let report = common::report(&run_on(Some(&tree), false, &["--report", "json"], &[]));
    assert_eq!(report["cpu_limit_cores"], 1.5, "{report}");
    // A tighter own quota wins.
    tree.write("sys/fs/cgroup/ecs/task1/ctr1/cpu.max", "25000 100000\n");
    let vars = workload_env(&run_on(Some(&tree), false, &[], &[]));
    assert_eq!(limits_of(&vars)[..2], [Some("0.25"), Some("1")]);
}

#[test]
fn the_variables_you_set_win() {
    let tree = Tree::copy("v1");
    let yours = [("SENTINIT_CPU_LIMIT", "3"), ("SENTINIT_MEMORY_LIMIT_BYTES", "")];
    let output = run_on(Some(&tree), false, &[], &yours);
    let vars = workload_env(&output);
    let cpus = 3.min(affinity_cpus()).to_string();
    assert_eq!(limits_of(&vars), [Some("3"), Some(cpus.as_str()), Some("")], "SENTINIT_CPUS follows yours: {vars:?}");
    assert_eq!(stdout_of(&output).matches("SENTINIT_CPU_LIMIT=").count(), 1, "not added a second time");
    assert!(start_line(&output).ends_with(&format!(" cpus={cpus} cpu_limit=3")), "{}", start_line(&output));
    let json: Value = serde_json::from_str(&stdout_of(&run_on(Some(&tree), false, &["--identity"], &yours))).unwrap();
    assert_eq!(json["cpu_limit"], "3", "{json}");
    assert_eq!(json["cpu_limit_source"], "environment");
    assert_eq!(json["memory_limit_bytes"], Value::Null, "set empty: stays empty, counts as unset");

    let output = run_on(Some(&tree), false, &[], &[("SENTINIT_CPUS", "12")]);
    let vars = workload_env(&output);
    assert_eq!(limits_of(&vars), [Some("0.5"), Some("12"), Some("67108864")]);
    assert!(start_line(&output).contains(" cpus=12 cpu_limit=0.5 "), "{}", start_line(&output));
}

#[test]
fn the_cpu_count_is_the_affinity_mask() {
    if !common::require(Command::new("taskset").arg("-V").output().is_ok(), "taskset (util-linux)") {
        return;
    }
    // No limit anywhere: the CPUs sentinit may run on, here one.
    let output = run_on(None, true, &[], &[]);
    let vars = workload_env(&output);
    assert_eq!(limits_of(&vars), [None, Some("1"), None], "{vars:?}");
    assert!(start_line(&output).ends_with(" cpus=1"), "{}", start_line(&output));
    // A limit above it: capped at the CPU.
    let tree = Tree::copy("v1");
    tree.write("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "400000\n");
    let vars = workload_env(&run_on(Some(&tree), true, &[], &[]));
    assert_eq!(limits_of(&vars)[..2], [Some("4"), Some("1")]);
}

#[test]
fn a_real_v1_memory_limit() {
    let Some(group) = MemoryGroup::create(48 << 20) else { return };
    // sentinit alone in the group, and with `--cgroup own` the workload in a group of its own below
    // it, which inherits the limit (its own memory.limit_in_bytes is unlimited): that is the one
    // exported. As a child and as PID 1.
    for mode in common::MODES {
        if !common::mode_available(mode) {
            continue;
        }
        for args in [&[][..], &["--cgroup", "own"][..]] {
            let output = group.run_as(
                mode,
                args,
                &["sh", "-c", "echo \"M=$SENTINIT_MEMORY_LIMIT_BYTES\"; cat /proc/self/cgroup"],
            );
            let (out, err) = (stdout_of(&output), stderr_of(&output));
            assert_eq!(output.status.code(), Some(0), "{err}");
            assert!(out.contains("M=50331648\n"), "{mode:?} {args:?}: {out}{err}");
            assert!(start_line(&output).contains(" memory_limit=50331648"), "{err}");
            if !args.is_empty() {
                assert!(out.lines().any(|l| l.contains(":memory:") && l.contains("/sentinit-")), "{out}");
            }
        }
    }
}
