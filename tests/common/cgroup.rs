//! A real cgroup v1 memory group for tests: created under the test process's own memory cgroup (the
//! `memory` line of /proc/self/cgroup), with a limit, and removed on drop with every group a workload
//! or sentinit made below it, also on failure.

use super::{in_ci, Mode};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// A child memory group, removed on drop.
pub struct MemoryGroup(pub PathBuf);

impl MemoryGroup {
    /// `None` (after printing why) when the machine cannot give us one and we are not in CI.
    pub fn create(limit: u64) -> Option<MemoryGroup> {
        let result = (|| -> Result<MemoryGroup, String> {
            let own = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| format!("/proc/self/cgroup: {e}"))?;
            let path = own
                .lines()
                .find_map(|l| {
                    let mut f = l.splitn(3, ':');
                    let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
                    controllers.split(',').any(|c| c == "memory").then(|| path.to_string())
                })
                .ok_or("no v1 memory controller in /proc/self/cgroup")?;
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let dir = PathBuf::from(format!("/sys/fs/cgroup/memory{path}")).join(format!(
                "sentinit-test-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
            let group = MemoryGroup(dir);
            std::fs::write(group.0.join("memory.limit_in_bytes"), limit.to_string())
                .map_err(|e| format!("setting the limit: {e}"))?;
            Ok(group)
        })();
        match result {
            Ok(group) => Some(group),
            Err(why) if in_ci() => panic!("prerequisite missing in CI: a cgroup v1 memory group ({why})"),
            Err(why) => {
                eprintln!("SKIPPED: needs a writable cgroup v1 memory hierarchy (root): {why}");
                None
            }
        }
    }

    /// Runs sentinit inside the group: a shell joins it, then execs sentinit.
    pub fn run(&self, args: &[&str], workload: &[&str]) -> Output {
        self.run_as(Mode::Child, args, workload)
    }

    /// [`MemoryGroup::run`] with sentinit in `mode`: as PID 1, the shell execs `unshare`, which starts
    /// sentinit in a new PID namespace, all inside the group.
    pub fn run_as(&self, mode: Mode, args: &[&str], workload: &[&str]) -> Output {
        let sentinit = env!("CARGO_BIN_EXE_sentinit");
        let start: &[&str] = match mode {
            Mode::Child => &[sentinit],
            Mode::Pid1 => &["unshare", "--pid", "--fork", "--mount-proc", sentinit],
        };
        let mut command = Command::new("sh");
        command
            .args(["-c", "echo $$ > \"$CG/cgroup.procs\" && exec \"$0\" \"$@\""])
            .args(start)
            .args(args)
            .arg("--")
            .args(workload)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("CG", &self.0)
            .stdin(Stdio::null());
        // Bounded: a sentinit that hangs fails its test instead of the suite.
        super::run(command, std::time::Duration::from_secs(60))
    }
}

impl Drop for MemoryGroup {
    fn drop(&mut self) {
        // Child groups a workload made and left behind go first, deepest first; every process has been
        // reaped by now, and the page-cache charge left behind does not block rmdir.
        fn remove(dir: &std::path::Path) {
            if let Ok(entries) = std::fs::read_dir(dir) {
                for entry in entries.flatten() {
                    if entry.file_type().is_ok_and(|t| t.is_dir()) {
                        remove(&entry.path());
                    }
                }
            }
            for _ in 0..50 {
                if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            eprintln!("could not remove {}", dir.display());
        }
        remove(&self.0);
    }
}

impl MemoryGroup {
    /// The groups directly below this one (a workload's own group, say), by name.
    pub fn children(&self) -> Vec<String> {
        std::fs::read_dir(&self.0)
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A command that joins the group, then execs `program ARGS`.
    pub fn joined(&self, program: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo $$ > \"$CG/cgroup.procs\" && exec \"$0\" \"$@\"", program]).args(args);
        cmd.env_clear().env("PATH", "/usr/local/bin:/usr/bin:/bin").env("CG", &self.0).stdin(Stdio::null());
        cmd
    }
}
