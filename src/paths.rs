//! Where sentinit reads the kernel's views from: `/proc` and `/sys`, or the trees named by
//! `SENTINIT_PROC_ROOT` and `SENTINIT_SYS_ROOT`.
//!
//! Tests point these at fixture trees, and an operator can point them at a host's mounted `/proc`.
//! Identity and accounting both read through here so that one variable moves every read.

use std::path::PathBuf;

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
