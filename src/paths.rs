//! Where sentinit reads the kernel's views from: `/proc` and `/sys`, or the trees named by
//! `SENTINIT_PROC_ROOT` and `SENTINIT_SYS_ROOT`.
//!
//! Tests point these at fixture trees, and an operator can point them at a host's mounted `/proc`.
//! Identity and accounting both read through here so that one variable moves every read. A tree named
//! by a variable can hold anything, so its files are read like untrusted input ([`read_guarded`]):
//! opened without blocking (a FIFO would wait for a writer for ever), used only when they are regular
//! files, and read up to a cap.

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
            read_guarded(&path, MAX_PROC_FILE)
                .map(into_text)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))
        };
        SelfFiles { cgroup: read("cgroup"), mountinfo: read("mountinfo") }
    }
}

/// Bytes read from a file as text: the same buffer when it is UTF-8 (it always is, from the kernel),
/// a lossy copy otherwise.
pub fn into_text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// The most read of one /proc file: mountinfo of a host with tens of thousands of mounts fits.
pub const MAX_PROC_FILE: u64 = 4 * 1024 * 1024;

/// Reads `path` whole, without blocking on open, only when it is a regular file (procfs, sysfs,
/// cgroupfs and fixture files all are), and only up to `max` bytes (more is an error, not a cut).
///
/// procfs and cgroupfs files report a size of 0, so std's `read_to_end` would start at 32 bytes and
/// double (eight reads for a mountinfo); the first 4 KiB go to a stack buffer instead, which holds
/// every file sentinit reads at start in one read(2) plus the one that sees the end.
pub fn read_guarded(path: &std::path::Path, max: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file =
        std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC).open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "not a regular file"));
    }
    let mut first = [0u8; 4096];
    let mut filled = 0;
    while filled < first.len() {
        match file.read(&mut first[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    let mut bytes = first[..filled].to_vec();
    if filled == first.len() {
        file.take((max + 1).saturating_sub(filled as u64)).read_to_end(&mut bytes)?;
    }
    if bytes.len() as u64 > max {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("larger than {max} bytes")));
    }
    Ok(bytes)
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

/// 64 unpredictable bits from the kernel (getrandom), or, should that fail, from the clock and pid: for
/// the names of what sentinit creates where others can look (temporary report files, cgroups).
pub fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    // SAFETY: getrandom writes at most 8 bytes into the live local buffer.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), libc::GRND_NONBLOCK) };
    if n == 8 {
        return u64::from_ne_bytes(bytes);
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    (now.as_nanos() as u64).rotate_left(17) ^ u64::from(std::process::id()).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}
