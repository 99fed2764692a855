//! Shared test support: run the real sentinit binary as an ordinary child or as PID 1 of a new PID
//! namespace, find its host pid, wait with a safety timeout, and fail (not skip) in CI when a
//! privileged prerequisite is missing.
#![allow(dead_code)]

pub mod cgroup;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The sentinit the tests run: cargo's binary, or `SENTINIT_TEST_LAUNCHER` when set.
///
/// Tests cross-compiled for aarch64 and run by `qemu-aarch64` (tests/qemu_user.rs) cannot exec the
/// aarch64 sentinit themselves: without binfmt_misc the host kernel refuses a foreign ELF with ENOEXEC.
/// The launcher is a native script that execs `qemu-aarch64 <that sentinit> "$@"`; sentinit's own
/// children (`sh`, `python3`) are the host's and run natively.
pub fn sentinit() -> &'static str {
    static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        std::env::var("SENTINIT_TEST_LAUNCHER").unwrap_or_else(|_| env!("CARGO_BIN_EXE_sentinit").to_string())
    })
}

pub fn helper(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/helpers").join(name)
}

/// How sentinit is started in a test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// An ordinary child of the test (sentinit makes itself a subreaper).
    Child,
    /// PID 1 of a new PID namespace with its own /proc: `unshare --pid --fork --mount-proc`.
    Pid1,
}

pub const MODES: [Mode; 2] = [Mode::Child, Mode::Pid1];

/// True when running in CI, where a missing prerequisite is a failure rather than a skip.
pub fn in_ci() -> bool {
    std::env::var("CI").map(|v| !v.is_empty() && v != "false" && v != "0").unwrap_or(false)
}

/// Checks a prerequisite: returns false (skip, with a reason on stderr) outside CI, panics in CI.
pub fn require(ok: bool, what: &str) -> bool {
    if ok {
        return true;
    }
    if in_ci() {
        panic!("prerequisite missing in CI: {what}");
    }
    eprintln!("SKIPPED: {what}");
    false
}

/// Can this machine give sentinit a PID namespace? (root and a working unshare)
pub fn can_unshare() -> bool {
    Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Returns false (after `require`) when `mode` cannot be used here.
pub fn mode_available(mode: Mode) -> bool {
    match mode {
        Mode::Child => true,
        Mode::Pid1 => require(can_unshare(), "unshare --pid --fork --mount-proc (needs root)"),
    }
}

/// A command that runs `sentinit ARGS` in `mode`, with a small, controlled environment.
pub fn command(mode: Mode, args: &[&str]) -> Command {
    let mut cmd = match mode {
        Mode::Child => Command::new(sentinit()),
        Mode::Pid1 => {
            let mut cmd = Command::new("unshare");
            cmd.args(["--pid", "--fork", "--mount-proc", sentinit()]);
            cmd
        }
    };
    cmd.args(args);
    clean_env(&mut cmd);
    cmd.stdin(Stdio::null());
    cmd
}

/// Gives `cmd` an environment of PATH alone: nothing inherited from the machine running the tests
/// (on a CI runner inside ECS, ECS_CONTAINER_METADATA_URI* would send sentinit to the real endpoint).
pub fn clean_env(cmd: &mut Command) -> &mut Command {
    cmd.env_clear().env("PATH", std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()))
}

/// Runs to completion (killing it after `limit`) and returns the output.
pub fn run(mut cmd: Command, limit: Duration) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().expect("spawn sentinit");
    finish(child, limit)
}

/// Waits for `child` for at most `limit`, then kills it (and fails the test) so a hang never blocks CI.
pub fn finish(mut child: Child, limit: Duration) -> Output {
    let start = Instant::now();
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if start.elapsed() > limit {
            kill_tree(child.id() as i32);
            let output = child.wait_with_output().expect("output");
            panic!(
                "timed out after {limit:?}; stdout: {} stderr: {}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// SIGKILLs `pid` and everything below it.
pub fn kill_tree(pid: i32) {
    for child in children(pid) {
        kill_tree(child);
    }
    signal(pid, libc::SIGKILL);
}

pub fn signal(pid: i32, sig: i32) -> bool {
    // SAFETY: kill has no memory effects.
    unsafe { libc::kill(pid, sig) == 0 }
}

/// Direct children of `pid`, from /proc/<pid>/task/*/children.
pub fn children(pid: i32) -> Vec<i32> {
    let mut found = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return found };
    for task in tasks.flatten() {
        if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
            found.extend(text.split_whitespace().filter_map(|s| s.parse::<i32>().ok()));
        }
    }
    found
}

/// The host pid of the sentinit process started by `child` in `mode`: the child itself, or the
/// process `unshare --fork` started.
pub fn sentinit_pid(child: &Child, mode: Mode) -> i32 {
    let pid = child.id() as i32;
    if mode == Mode::Child {
        return pid;
    }
    wait_for(Duration::from_secs(10), || children(pid).first().copied()).expect("unshare started sentinit")
}

/// Polls `probe` every 10 ms until it yields a value or `limit` passes.
pub fn wait_for<T>(limit: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Is a process with this pid alive (and not a zombie)?
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat[stat.rfind(')').unwrap_or(0) + 1..].split_whitespace().next() != Some("Z"),
        Err(_) => false,
    }
}

/// Pids of live processes whose command line contains `needle`.
pub fn processes_with(needle: &str) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        if let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) {
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if text.contains(needle) && alive(pid) {
                found.push(pid);
            }
        }
    }
    found
}

/// The minimal release binary, built by minimal/build.sh (pinned toolchain, `-Zbuild-std`) in
/// target/minimal, a target directory of its own; `Err` says why it could not be built (the caller fails
/// in CI and skips elsewhere). The script prints the binary's path on stdout.
pub fn minimal_binary() -> Result<PathBuf, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("minimal/build.sh");
    let output = Command::new(&script)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !output.status.success() {
        return Err(format!("minimal/build.sh failed ({})", output.status));
    }
    let path = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!("minimal/build.sh printed {path:?}, which is no file"))
    }
}

/// A fresh temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("sentinit-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn stdout_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A private copy of a fixture cgroup tree (tests/fixtures/cgroup/<case>), removed on drop; used as
/// SENTINIT_PROC_ROOT=<tree>/proc and SENTINIT_SYS_ROOT=<tree>/sys.
pub struct Tree(pub PathBuf);

impl Tree {
    pub fn copy(case: &str) -> Tree {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sentinit-fixture-{}-{}-{case}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cgroup").join(case);
        let status = Command::new("cp").arg("-r").arg(&source).arg(&dir).status().unwrap();
        assert!(status.success(), "copying {}", source.display());
        Tree(dir)
    }

    pub fn sys(&self) -> PathBuf {
        self.0.join("sys")
    }

    pub fn write(&self, relative: &str, content: &str) {
        std::fs::write(self.0.join(relative), content).unwrap();
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The JSON lines of type `kind` (`sentinit.report`, `sentinit.heartbeat`) sentinit wrote to stderr.
pub fn json_lines(output: &Output, kind: &str) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .filter(|v| v["type"] == kind)
        .collect()
}

/// The one `sentinit.report` JSON line: there must be exactly one, and no panic.
pub fn report(output: &Output) -> serde_json::Value {
    let text = stderr_of(output);
    let mut reports = json_lines(output, "sentinit.report");
    assert_eq!(reports.len(), 1, "exactly one JSON report expected in:\n{text}");
    assert!(!text.contains("panicked"), "{text}");
    reports.remove(0)
}
