//! Where sentinit reads the kernel's views from: `/proc` and `/sys`, or the trees named by
//! `SENTINIT_PROC_ROOT` and `SENTINIT_SYS_ROOT`.
//!
//! Tests point these at fixture trees, and an operator can point them at a host's mounted `/proc`.
//! Identity and accounting both read through here so that one variable moves every read.

use std::path::PathBuf;

/// `/proc/self/cgroup` and `/proc/self/mountinfo`, read once before the workload starts: identity
/// (container ID) and accounting (which cgroup to sample) both work from them. A file that cannot be
/// read holds the error line naming it.
pub struct SelfFiles {
    pub cgroup: Result<String, String>,
    pub mountinfo: Result<String, String>,
}

impl SelfFiles {
    pub fn read() -> SelfFiles {
        let proc = proc_root();
        let read = |name: &str| {
            let path = proc.join("self").join(name);
            std::fs::read(&path)
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                .map_err(|e| format!("cannot read {}: {e}", path.display()))
        };
        SelfFiles { cgroup: read("cgroup"), mountinfo: read("mountinfo") }
    }
}

/// The `/proc` to read: `SENTINIT_PROC_ROOT`, else `/proc`.
pub fn proc_root() -> PathBuf {
    root_from_env("SENTINIT_PROC_ROOT", "/proc")
}

/// The `/sys` to read: `SENTINIT_SYS_ROOT`, else `/sys`.
pub fn sys_root() -> PathBuf {
    root_from_env("SENTINIT_SYS_ROOT", "/sys")
}

fn root_from_env(name: &str, default: &str) -> PathBuf {
    match std::env::var_os(name) {
        // An empty value means "unset", as for every other SENTINIT_* variable.
        Some(value) if !value.is_empty() => PathBuf::from(value),
        _ => PathBuf::from(default),
    }
}
