//! The real-kernel matrix (issue 5): sentinit on real Linux kernels in QEMU microVMs, and in real
//! runc containers, driven from `cargo test`.
//!
//! This machine's own kernel only has cgroup v1 controllers, so cgroup v2, the kernel-version corners
//! (6.1: no per-fd memory.peak reset; 6.12: per-fd reset, no cgroup v1 memory) and sentinit as the
//! kernel's own init can only be exercised by booting other kernels. Each test is one boot (or one host
//! container run); the guest runs the scenarios named on the kernel command line and prints `@@R`
//! observations and sentinit's output between `@@BEGIN`/`@@END` markers on the serial console; this file
//! parses that log and makes every assertion. The shell side lives in tests/vm/ (see "Real-kernel test matrix" in docs/testing.md).
//! Every test runs twice, with the same checks: once with the default build and once (`_minimal`) with
//! the minimal build of minimal/build.sh. Both binaries are in the one initramfs; the kernel command line
//! (`sentinit.build=`) says which one is /bin/sentinit in the guest.
//!
//! The same v2 scenarios also run on arm64 kernels (AWS Graviton's architecture) under
//! qemu-system-aarch64, with the static aarch64 sentinit as the guest's init (issue 12).
//!
//! Requirements (tests/vm/install-deps.sh installs them as root): qemu-system-x86_64, busybox-static,
//! runc, musl-gcc (or gcc), the musl Rust target (or a static glibc fallback), rustup (the minimal build's
//! pinned toolchain), root; for arm64 also qemu-system-aarch64, qemu-aarch64 (user mode, to list the
//! arm64 busybox's applets), aarch64-linux-gnu-gcc and the aarch64-unknown-linux-musl Rust target. The
//! minimal build is x86_64's only (its pinned toolchain builds std for that target). Missing ones fail
//! the test when `CI=true`; elsewhere the test prints why and skips.

mod common;

use common::{in_ci, minimal_binary};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

const MIB: f64 = 1024.0 * 1024.0;
const LIMIT_64M: u64 = 64 * 1024 * 1024;

/// The two release builds; `SENTINIT_VM_BUILDS` selects among them.
const DEFAULT: &str = "default";
const MINIMAL: &str = "minimal";

/// The cgroup v2 scenarios, all in one boot per kernel.
const V2_SCENARIOS: &[&str] = &[
    "pid1",
    "signals",
    "pidns",
    "zombie-control",
    "oom-main",
    "oom-worker",
    "normal",
    "peak-reset",
    "cpu-throttle",
    "oom-group",
    "cgroupns",
    "own-group",
    "shared-group",
    "own-readonly",
    "cpu-limit",
];

/// The guest's architecture. Both are emulated by TCG; only the QEMU binary, the machine, the kernel
/// package and the userland's architecture differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Arch {
    Amd64,
    Arm64,
}

impl Arch {
    /// Debian's (and Docker's TARGETARCH) name, as tests/vm/*.sh take it.
    fn name(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }

    /// A kernel series as tests/vm/fetch-kernels.sh and `SENTINIT_VM_KERNELS` name it: `6.1`, `arm64-6.1`.
    fn series(self, version: &str) -> String {
        match self {
            Arch::Amd64 => version.to_string(),
            Arch::Arm64 => format!("arm64-{version}"),
        }
    }
}

fn vm_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vm")
}

fn work_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("realkernel")
}

/// Prints a progress line that `cargo test` shows even for passing tests (libtest captures only the
/// print macros, not direct writes): kernel versions and boot times.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), "realkernel: {}", format_args!($($arg)*));
    }};
}

/// A requirement is missing: fail in CI, skip (with the reason) elsewhere. Returns from the test.
macro_rules! require {
    ($result:expr) => {
        match $result {
            Ok(value) => value,
            Err(reason) => {
                if in_ci() {
                    panic!("real-kernel matrix cannot run in CI: {reason}");
                }
                say!("SKIPPED (not CI): {reason}");
                return;
            }
        }
    };
}

/// The scenario and kernel selection from `SENTINIT_VM_SCENARIOS` / `SENTINIT_VM_KERNELS` (comma lists).
fn selected(var: &str, name: &str) -> bool {
    match std::env::var(var) {
        Ok(list) if !list.trim().is_empty() => list.split(',').any(|s| s.trim() == name),
        _ => true,
    }
}

// ------------------------------------------------------------------------------------------ setup

/// What every test of one architecture needs, built once per `cargo test` run.
struct Prepared {
    sentinit: PathBuf,
    /// The minimal build, or why there is none.
    minimal: Result<PathBuf, String>,
    initramfs: PathBuf,
    progs: PathBuf,
}

impl Prepared {
    /// The binary of `build`; `None` after a skip (outside CI) when it could not be built.
    fn binary(&self, build: &str) -> Option<&Path> {
        match (build, &self.minimal) {
            (DEFAULT, _) => Some(&self.sentinit),
            (_, Ok(minimal)) => Some(minimal),
            (_, Err(reason)) if !in_ci() => {
                say!("SKIPPED (not CI): no minimal build: {reason}");
                None
            }
            (_, Err(reason)) => panic!("real-kernel matrix cannot run in CI: no minimal build: {reason}"),
        }
    }
}

/// What must be on the machine: `Err` names the first missing piece (a skip outside CI, a failure in
/// CI). Anything that goes wrong after this is a test failure everywhere.
fn requirements(arch: Arch) -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("must run as root (device nodes in the initramfs, cgroups, runc)".into());
    }
    let tools: &[&str] = match arch {
        Arch::Amd64 => &["qemu-system-x86_64", "busybox", "runc", "setpriv"],
        Arch::Arm64 => &["qemu-system-aarch64", "qemu-aarch64", "aarch64-linux-gnu-gcc"],
    };
    for tool in tools.iter().chain(&["timeout", "dpkg-deb", "apt-get", "cpio", "readelf"]) {
        if which(tool).is_none() {
            return Err(format!("{tool} not found; run tests/vm/install-deps.sh as root"));
        }
    }
    match arch {
        Arch::Amd64 if which("musl-gcc").is_none() && which("gcc").is_none() => {
            Err("neither musl-gcc nor gcc found; run tests/vm/install-deps.sh as root".into())
        }
        Arch::Arm64 if std::env::var_os("SENTINIT_VM_BINARY_ARM64").is_none() && !has_rust_target(AARCH64) => {
            Err(format!("the Rust target {AARCH64} is not installed (rustup target add {AARCH64})"))
        }
        _ => Ok(()),
    }
}

const AARCH64: &str = "aarch64-unknown-linux-musl";

/// Is the standard library for `target` installed in the toolchain that runs these tests?
fn has_rust_target(target: &str) -> bool {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
        .is_some_and(|sysroot| sysroot.join("lib/rustlib").join(target).join("lib").is_dir())
}

/// The static sentinit, the test programs and the initramfs of `arch`, built once per `cargo test` run.
fn prepared(arch: Arch) -> &'static Prepared {
    static AMD64: OnceLock<Result<Prepared, String>> = OnceLock::new();
    static ARM64: OnceLock<Result<Prepared, String>> = OnceLock::new();
    let cell = match arch {
        Arch::Amd64 => &AMD64,
        Arch::Arm64 => &ARM64,
    };
    match cell.get_or_init(|| prepare(arch)) {
        Ok(prepared) => prepared,
        Err(e) => panic!("cannot prepare the {} guest: {e}", arch.name()),
    }
}

fn prepare(arch: Arch) -> Result<Prepared, String> {
    let sentinit = static_sentinit(arch)?;
    let minimal = match std::env::var_os("SENTINIT_VM_MINIMAL_BINARY") {
        _ if arch != Arch::Amd64 => Err("the minimal build is made for x86_64 only".to_string()),
        _ if !selected("SENTINIT_VM_BUILDS", MINIMAL) => Err("not selected by SENTINIT_VM_BUILDS".to_string()),
        Some(binary) => Ok(PathBuf::from(binary)),
        None => minimal_binary(),
    };
    let out = work_dir().join(match arch {
        Arch::Amd64 => "out",
        Arch::Arm64 => "out-arm64",
    });
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let mut build = Command::new(vm_dir().join("build-initramfs.sh"));
    build.arg(&sentinit).arg(&out).arg(arch.name()).args(minimal.as_ref().ok());
    run_script(&mut build, "build-initramfs.sh")?;
    Ok(Prepared { sentinit, minimal, initramfs: out.join("initramfs.cpio.gz"), progs: out.join("progs") })
}

fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(tool)).find(|p| p.is_file())
}

fn run_script(command: &mut Command, what: &str) -> Result<String, String> {
    let output = command.output().map_err(|e| format!("cannot run {what}: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        return Err(format!("{what} failed ({}):\n{stdout}{}", output.status, String::from_utf8_lossy(&output.stderr)));
    }
    Ok(stdout)
}

/// The static sentinit for the guest and the container: `SENTINIT_VM_BINARY` (`SENTINIT_VM_BINARY_ARM64`)
/// if given, else a release build for x86_64-unknown-linux-musl (a static glibc build when the musl
/// target is missing) or aarch64-unknown-linux-musl (cross-linked with rust-lld, .cargo/config.toml), in
/// a target directory of its own so it never waits on the lock of the `cargo test` that runs this.
fn static_sentinit(arch: Arch) -> Result<PathBuf, String> {
    let given = match arch {
        Arch::Amd64 => "SENTINIT_VM_BINARY",
        Arch::Arm64 => "SENTINIT_VM_BINARY_ARM64",
    };
    if let Some(binary) = std::env::var_os(given) {
        return Ok(PathBuf::from(binary));
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target_dir = work_dir().join("cargo");
    let build = |target: &str, rustflags: Option<&str>| {
        let mut command = Command::new(&cargo);
        command
            .args(["build", "--release", "--bin", "sentinit", "--target", target])
            .env("CARGO_TARGET_DIR", &target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if let Some(flags) = rustflags {
            command.env("RUSTFLAGS", flags);
        }
        run_script(&mut command, &format!("cargo build --release --target {target}"))
            .map(|_| target_dir.join(target).join("release/sentinit"))
    };
    if arch == Arch::Arm64 {
        return build(AARCH64, None);
    }
    build("x86_64-unknown-linux-musl", None).or_else(|musl_error| {
        say!("musl build failed, falling back to a static glibc build: {musl_error}");
        build("x86_64-unknown-linux-gnu", Some("-C target-feature=+crt-static"))
    })
}

/// A guest kernel from tests/vm/fetch-kernels.sh (downloaded once, then cached).
struct Kernel {
    vmlinuz: PathBuf,
    package: String,
    version: String,
}

fn kernel(series: &str) -> Result<Kernel, String> {
    let line = run_script(Command::new(vm_dir().join("fetch-kernels.sh")).arg(series), "fetch-kernels.sh")?;
    let mut fields = line.split_whitespace();
    let (Some(_), Some(package), Some(version)) = (fields.next(), fields.next(), fields.next()) else {
        return Err(format!("fetch-kernels.sh printed no kernel line: {line:?}"));
    };
    let cache = kernel_cache_dir(series)?;
    Ok(Kernel { vmlinuz: cache.join("vmlinuz"), package: package.to_string(), version: version.to_string() })
}

/// Where fetch-kernels.sh keeps a series (the same rule as tests/vm/lib.sh).
fn kernel_cache_dir(series: &str) -> Result<PathBuf, String> {
    let output = run_script(
        Command::new("sh").arg("-c").arg(". \"$0/lib.sh\" && echo \"$VM_CACHE\"").arg(vm_dir()),
        "tests/vm/lib.sh",
    )?;
    Ok(PathBuf::from(output.trim()).join("kernels").join(series))
}

// ------------------------------------------------------------------------------------------ log

/// One scenario's part of the log: its `@@R` observations and every other line printed inside it.
#[derive(Default, Debug)]
struct Scenario {
    results: Vec<(String, String)>,
    lines: Vec<String>,
}

impl Scenario {
    fn get(&self, key: &str) -> Option<&str> {
        self.results.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn all(&self, key: &str) -> Vec<&str> {
        self.results.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect()
    }

    fn number(&self, key: &str) -> Option<u64> {
        self.get(key)?.trim().parse().ok()
    }

    /// sentinit's JSON report: the line inside the scenario that is a `sentinit.report` object.
    fn report(&self) -> Option<Value> {
        self.lines.iter().find_map(|line| {
            let value: Value = serde_json::from_str(line.trim()).ok()?;
            (value.get("type")? == "sentinit.report").then_some(value)
        })
    }
}

/// The parsed serial log (or host script output).
struct Log {
    text: String,
    scenarios: BTreeMap<String, Scenario>,
}

fn parse_log(text: &str) -> Log {
    let mut scenarios: BTreeMap<String, Scenario> = BTreeMap::new();
    let mut current: Option<String> = None;
    for raw in text.lines() {
        let line = raw.trim_end_matches('\r');
        if let Some(name) = line.strip_prefix("@@BEGIN ") {
            current = Some(name.trim().to_string());
            scenarios.entry(name.trim().to_string()).or_default();
        } else if line.starts_with("@@END ") {
            current = None;
        } else if let Some(rest) = line.strip_prefix("@@R ") {
            let mut parts = rest.splitn(3, ' ');
            let (Some(name), Some(key)) = (parts.next(), parts.next()) else { continue };
            let value = parts.next().unwrap_or("").trim().to_string();
            scenarios.entry(name.to_string()).or_default().results.push((key.to_string(), value));
        } else if let Some(name) = &current {
            scenarios.entry(name.clone()).or_default().lines.push(line.to_string());
        }
    }
    Log { text: text.to_string(), scenarios }
}

// ------------------------------------------------------------------------------------------ checks

/// Collects every failed expectation so that one run shows all of them, with the log.
struct Checks {
    context: String,
    passed: usize,
    failures: Vec<String>,
}

impl Checks {
    fn new(context: &str) -> Checks {
        Checks { context: context.to_string(), passed: 0, failures: Vec::new() }
    }

    fn check(&mut self, ok: bool, what: impl Into<String>) {
        if ok {
            self.passed += 1;
        } else {
            self.failures.push(what.into());
        }
    }

    fn eq(&mut self, scenario: &Scenario, name: &str, key: &str, expected: &str) {
        let got = scenario.get(key);
        self.check(got == Some(expected), format!("{name}: {key} = {got:?}, expected {expected:?}"));
    }

    fn at_least(&mut self, scenario: &Scenario, name: &str, key: &str, minimum: u64) {
        let got = scenario.number(key);
        self.check(got.is_some_and(|n| n >= minimum), format!("{name}: {key} = {got:?}, expected >= {minimum}"));
    }

    /// Every orphan was reparented to PID 1 (of the VM, the PID namespace or the container).
    fn orphans_to_pid1(&mut self, scenario: &Scenario, name: &str, key: &str) {
        let parents: Vec<&str> = scenario
            .get(key)
            .and_then(|v| v.rsplit(':').next())
            .map(|v| v.split_whitespace().collect())
            .unwrap_or_default();
        self.check(
            parents.len() == 3 && parents.iter().all(|p| *p == "1"),
            format!("{name}: orphans reparented to {parents:?}, expected three times PID 1"),
        );
    }

    /// The report's `oom_victims`: at least `minimum` of them, and `ok` of the list.
    fn victims(&mut self, scenario: &Scenario, name: &str, minimum: usize, ok: impl Fn(&[Value]) -> bool) {
        let report = scenario.report().unwrap_or_default();
        let victims = report["oom_victims"].as_array().cloned().unwrap_or_default();
        self.check(
            victims.len() >= minimum && ok(&victims),
            format!("{name}: oom_victims = {}, expected at least {minimum} as described", report["oom_victims"]),
        );
    }

    /// The JSON report's fields, checked one by one.
    fn report(&mut self, scenario: &Scenario, name: &str, expectations: &[(&str, Expect)]) {
        let Some(report) = scenario.report() else {
            self.failures.push(format!("{name}: no sentinit.report JSON line in the scenario's output"));
            return;
        };
        self.check(report["schema"] == 1, format!("{name}: report schema = {}, expected 1", report["schema"]));
        for (field, expect) in expectations {
            let value = &report[*field];
            self.check(expect.matches(value), format!("{name}: report {field} = {value}, expected {expect:?}"));
        }
    }

    fn finish(self, log: &str) {
        say!("{}: {} checks passed, {} failed", self.context, self.passed, self.failures.len());
        if !self.failures.is_empty() {
            println!("----- log of {} -----\n{log}\n----- end of log -----", self.context);
            panic!("{}: {} failed checks:\n  {}", self.context, self.failures.len(), self.failures.join("\n  "));
        }
    }
}

/// What a report field must be.
#[derive(Debug)]
enum Expect {
    Int(i64),
    Str(String),
    Bool(bool),
    Null,
    /// A number in [min, max].
    Between(f64, f64),
}

impl Expect {
    fn matches(&self, value: &Value) -> bool {
        match self {
            Expect::Int(n) => value.as_i64() == Some(*n),
            Expect::Str(s) => value.as_str() == Some(s.as_str()),
            Expect::Bool(b) => value.as_bool() == Some(*b),
            Expect::Null => value.is_null(),
            Expect::Between(min, max) => value.as_f64().is_some_and(|n| n >= *min && n <= *max),
        }
    }
}

fn int(n: u64) -> Expect {
    Expect::Int(n as i64)
}

fn str_(s: &str) -> Expect {
    Expect::Str(s.to_string())
}

// ------------------------------------------------------------------------------------------ boots

/// Boots `series` (`6.1`, `arm64-6.12`) with the scenarios of `layout` that are selected and `build`'s
/// sentinit, and returns the parsed log. `None` when the selection leaves nothing to run here.
fn boot(arch: Arch, series: &str, layout: &str, scenarios: &[&str], build: &str) -> Option<(Log, Kernel)> {
    let chosen: Vec<&str> = scenarios.iter().copied().filter(|s| selected("SENTINIT_VM_SCENARIOS", s)).collect();
    if chosen.is_empty() || !selected("SENTINIT_VM_KERNELS", series) || !selected("SENTINIT_VM_BUILDS", build) {
        say!("linux {series} ({layout}, {build}): not selected by SENTINIT_VM_SCENARIOS / _KERNELS / _BUILDS");
        return None;
    }
    let prepared = prepared(arch);
    prepared.binary(build)?;
    let kernel = kernel(series).unwrap_or_else(|e| panic!("cannot fetch the {series} kernel: {e}"));
    let timeout: u64 = std::env::var("SENTINIT_VM_TIMEOUT").ok().and_then(|t| t.parse().ok()).unwrap_or(300);
    let log_path = work_dir().join(format!("serial-{series}-{layout}-{build}.log"));
    let started = Instant::now();
    let status = Command::new(vm_dir().join("run-vm.sh"))
        .env("VM_ARCH", arch.name())
        .arg(&kernel.vmlinuz)
        .arg(&prepared.initramfs)
        .arg(&log_path)
        .arg(timeout.to_string())
        .arg(format!("sentinit.layout={layout}"))
        .arg(format!("sentinit.scenarios={}", chosen.join(",")))
        .arg(format!("sentinit.build={build}"))
        .status()
        .unwrap_or_else(|e| panic!("cannot run tests/vm/run-vm.sh: {e}"));
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    say!(
        "linux {series} ({layout}, {build}): {} {} booted in {:.1} s, scenarios {}; serial log {}",
        kernel.package,
        kernel.version,
        started.elapsed().as_secs_f64(),
        chosen.join(","),
        log_path.display()
    );
    match status.code() {
        Some(0) => {}
        Some(124) | Some(137) => {
            panic!("linux {series}: QEMU timed out after {timeout} s\n----- serial log -----\n{text}\n-----")
        }
        _ => panic!("linux {series}: QEMU failed ({status})\n----- serial log -----\n{text}\n-----"),
    }
    Some((parse_log(&text), kernel))
}

/// Does the booted kernel reset memory.peak per descriptor (6.12+)? From the package name, e.g.
/// `linux-image-6.12.95+deb12-amd64`.
fn has_per_fd_peak_reset(kernel: &Kernel) -> bool {
    let release = kernel.package.trim_start_matches("linux-image-");
    let mut numbers = release.split(|c: char| !c.is_ascii_digit()).map(|n| n.parse::<u32>().unwrap_or(0));
    let (major, minor) = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
    (major, minor) >= (6, 12)
}

/// Checks that hold for every boot: the right kernel and the right sentinit (the VM's init and the
/// containers') ran, every scenario finished, and sentinit as the VM's PID 1 handed the runner's exit
/// code (7) to the kernel.
fn check_boot(c: &mut Checks, log: &Log, kernel: &Kernel, expected: &[&str], arch: Arch, build: &str) {
    let binary = prepared(arch).binary(build).expect("booted, so built");
    let sha256 = run_script(Command::new("sha256sum").arg(binary), "sha256sum").unwrap_or_else(|e| panic!("{e}"));
    let sha256 = sha256.split_whitespace().next().unwrap_or("-");
    // The container's root (and its sentinit) is in the amd64 guest only: runc runs there.
    let installed_paths: &[&str] = match arch {
        Arch::Amd64 => &["/bin/sentinit", "/ctroot/bin/sentinit"],
        Arch::Arm64 => &["/bin/sentinit"],
    };
    for installed in installed_paths {
        c.check(
            log.text.contains(&format!("@@SENTINIT {sha256}  /newroot{installed}")),
            format!("the guest's {installed} is not the {build} build {} (sha256 {sha256})", binary.display()),
        );
    }
    let uname = kernel.package.trim_start_matches("linux-image-");
    c.check(
        log.text.contains(&format!("@@VM kernel={uname} ")),
        format!("the guest did not report kernel {uname} (@@VM line)"),
    );
    c.check(log.text.contains("@@DONE"), "the guest's runner did not finish (no @@DONE)");
    c.check(
        log.text.contains("Attempted to kill init! exitcode=0x00000700"),
        "sentinit as PID 1 did not exit with the runner's code 7 (no 'exitcode=0x00000700' panic line)",
    );
    for name in expected.iter().filter(|s| selected("SENTINIT_VM_SCENARIOS", s)) {
        c.check(log.scenarios.contains_key(*name), format!("{name}: scenario did not run"));
    }
}

fn v2_matrix(arch: Arch, version: &str, build: &str) {
    require!(requirements(arch));
    let series = arch.series(version);
    let (log, kernel) = match boot(arch, &series, "v2", V2_SCENARIOS, build) {
        Some(booted) => booted,
        None => return,
    };
    let mut c = Checks::new(&format!("linux {series} v2 {build}"));
    check_boot(&mut c, &log, &kernel, V2_SCENARIOS, arch, build);
    let empty = Scenario::default();
    let s = |name: &str| log.scenarios.get(name).unwrap_or(&empty);

    if selected("SENTINIT_VM_SCENARIOS", "pid1") {
        let pid1 = s("pid1");
        c.eq(pid1, "pid1", "pid1_comm", "sentinit");
        c.eq(pid1, "pid1", "runner_ppid", "1");
        c.orphans_to_pid1(pid1, "pid1", "orphan");
        c.eq(pid1, "pid1", "zombies", "0");
    }
    if selected("SENTINIT_VM_SCENARIOS", "signals") {
        let signals = s("signals");
        c.eq(signals, "signals", "term_status", "42");
        c.check(signals.lines.iter().any(|l| l == "got-TERM"), "signals: the workload's TERM trap did not run");
        c.eq(signals, "signals", "exit3_status", "3");
        c.eq(signals, "signals", "killed_status", "137");
        c.eq(signals, "signals", "remapped_status", "0");
        c.eq(signals, "signals", "missing_status", "127");
    }
    if selected("SENTINIT_VM_SCENARIOS", "pidns") {
        let pidns = s("pidns");
        c.eq(pidns, "pidns", "status", "5");
        c.eq(pidns, "pidns", "ns_pid1_comm", "sentinit");
        c.eq(pidns, "pidns", "ns_shell_ppid", "1");
        c.orphans_to_pid1(pidns, "pidns", "orphan");
        c.eq(pidns, "pidns", "ns_zombies", "0");
    }
    if selected("SENTINIT_VM_SCENARIOS", "zombie-control") {
        // Without a reaping PID 1 the same orphans stay zombies: the zombie count can fail.
        c.at_least(s("zombie-control"), "zombie-control", "zombies", 3);
    }
    if selected("SENTINIT_VM_SCENARIOS", "oom-main") {
        let oom = s("oom-main");
        c.eq(oom, "oom-main", "status", "137");
        c.at_least(oom, "oom-main", "cg_oom_kill", 1);
        let kills = oom.number("cg_oom_kill").unwrap_or(1);
        c.report(
            oom,
            "oom-main",
            &[
                ("exit_code", int(137)),
                ("signal", str_("SIGKILL")),
                ("cgroup_version", int(2)),
                ("oom_killed", Expect::Bool(true)),
                ("oom_kills", int(kills)),
                ("memory_limit_bytes", int(LIMIT_64M)),
                ("memory_peak_bytes", Expect::Between(0.95 * LIMIT_64M as f64, LIMIT_64M as f64)),
                ("memory_limit_hits", Expect::Between(1.0, f64::MAX)),
                ("oom_suspected", Expect::Bool(false)),
                ("exit_reason", str_("oom_killed")),
            ],
        );
        // sentinit reaped the OOM-killed main child itself: an exact victim.
        c.victims(oom, "oom-main", 1, |victims| victims[0]["comm"] == "alloc" && victims[0]["exact"] == true);
    }
    if selected("SENTINIT_VM_SCENARIOS", "oom-worker") {
        let worker = s("oom-worker");
        c.eq(worker, "oom-worker", "status", "0");
        c.eq(worker, "oom-worker", "worker_status", "137");
        c.at_least(worker, "oom-worker", "cg_oom_kill", 1);
        let kills = worker.number("cg_oom_kill").unwrap_or(1);
        c.report(
            worker,
            "oom-worker",
            &[
                ("exit_code", int(0)),
                ("signal", Expect::Null),
                ("cgroup_version", int(2)),
                ("oom_killed", Expect::Bool(true)),
                ("oom_kills", int(kills)),
                ("memory_limit_bytes", int(LIMIT_64M)),
                ("exit_reason", str_("exited")),
            ],
        );
        // The worker was reaped by its own parent (the shell): named from the samples, not exact.
        c.victims(worker, "oom-worker", 1, |victims| victims[0]["comm"] == "alloc" && victims[0]["exact"] == false);
    }
    if selected("SENTINIT_VM_SCENARIOS", "normal") {
        let normal = s("normal");
        c.eq(normal, "normal", "status", "0");
        c.eq(normal, "normal", "cg_oom_kill", "0");
        c.at_least(normal, "normal", "cg_memory_peak", 30 * 1024 * 1024);
        let kernel_peak = normal.number("cg_memory_peak").unwrap_or(0) as f64;
        c.report(
            normal,
            "normal",
            &[
                ("exit_code", int(0)),
                ("signal", Expect::Null),
                ("cgroup_version", int(2)),
                ("oom_killed", Expect::Bool(false)),
                ("oom_kills", int(0)),
                ("memory_limit_bytes", int(LIMIT_64M)),
                // 30 MiB touched: the peak is within 10% of that and agrees with the kernel's.
                ("memory_peak_bytes", Expect::Between(30.0 * MIB, 33.0 * MIB)),
                ("memory_peak_bytes", Expect::Between(0.95 * kernel_peak, 1.05 * kernel_peak)),
                // A fresh group: reset (6.12+) or risen above its value at start (6.1), the kernel's
                // own peak is this run's on both kernels.
                ("memory_peak_source", str_("memory.peak")),
            ],
        );
        // The one process, reaped by sentinit: exact, with the 30 MiB it touched.
        let report = normal.report().unwrap_or_default();
        let top = &report["top_processes"][0];
        c.check(
            top["comm"] == "alloc"
                && top["exact"] == true
                && top["peak_rss_bytes"].as_f64().is_some_and(|b| (30.0 * MIB..34.0 * MIB).contains(&b)),
            format!("normal: top_processes[0] = {top}, expected alloc, exact, 30 to 34 MiB"),
        );
    }
    if selected("SENTINIT_VM_SCENARIOS", "peak-reset") {
        let peak = s("peak-reset");
        c.eq(peak, "peak-reset", "pre_status", "0");
        c.eq(peak, "peak-reset", "status", "0");
        c.eq(peak, "peak-reset", "cg_oom_kill", "0");
        // The setup holds: the group's lifetime peak is the earlier 40 MiB run's, before sentinit starts
        // and still after it (sentinit's reset is private to its descriptor).
        c.at_least(peak, "peak-reset", "cg_memory_peak_before", 40 * 1024 * 1024);
        c.at_least(peak, "peak-reset", "cg_memory_peak", 40 * 1024 * 1024);
        let run_peak = Expect::Between(12.0 * MIB, 30.0 * MIB);
        let source = if has_per_fd_peak_reset(&kernel) {
            // 6.12+: memory.peak reset through sentinit's descriptor covers this run only.
            str_("memory.peak")
        } else {
            // 6.1: the lifetime peak (40 MiB) never rose during the run, so it is not this run's;
            // sentinit falls back to its sampled maximum of memory.current.
            str_("sampled")
        };
        c.report(
            peak,
            "peak-reset",
            &[
                ("exit_code", int(0)),
                ("cgroup_version", int(2)),
                ("oom_killed", Expect::Bool(false)),
                ("memory_limit_bytes", int(LIMIT_64M)),
                ("memory_peak_source", source),
                ("memory_peak_bytes", run_peak),
            ],
        );
        if let Some(report) = peak.report() {
            say!(
                "linux {series}: peak-reset: memory_peak_bytes {} ({:.1} MiB) from {}, group's lifetime peak {:.1} MiB",
                report["memory_peak_bytes"],
                report["memory_peak_bytes"].as_f64().unwrap_or(0.0) / MIB,
                report["memory_peak_source"],
                peak.number("cg_memory_peak").unwrap_or(0) as f64 / MIB
            );
        }
    }
    if selected("SENTINIT_VM_SCENARIOS", "cpu-throttle") {
        let cpu = s("cpu-throttle");
        c.eq(cpu, "cpu-throttle", "status", "0");
        c.at_least(cpu, "cpu-throttle", "cg_nr_throttled", 1);
        c.at_least(cpu, "cpu-throttle", "cg_throttled_usec", 1);
        let throttled_ms = cpu.number("cg_throttled_usec").unwrap_or(0) as f64 / 1000.0;
        c.report(
            cpu,
            "cpu-throttle",
            &[
                ("exit_code", int(0)),
                ("cgroup_version", int(2)),
                ("cpu_limit_cores", Expect::Between(0.199, 0.201)),
                ("cpu_throttled_ms", Expect::Between(0.85 * throttled_ms, 1.05 * throttled_ms + 50.0)),
                ("cpu_throttled_ms", Expect::Between(1.0, f64::MAX)),
            ],
        );
    }
    if selected("SENTINIT_VM_SCENARIOS", "oom-group") {
        let group = s("oom-group");
        c.eq(group, "oom-group", "status", "137");
        c.at_least(group, "oom-group", "cg_oom_group_kill", 1);
        c.eq(group, "oom-group", "procs_left", "0");
        c.check(group.get("survived").is_none(), "oom-group: a process of the group survived the group kill");
        // With the report, sentinit (oom_score_adj -1000, which a group kill spares) outlives the kill.
        c.report(
            group,
            "oom-group",
            &[("exit_code", int(137)), ("oom_killed", Expect::Bool(true)), ("cgroup_version", int(2))],
        );
        // One group kill, several processes (the shell, alloc, sleep), each reaped by sentinit: all listed.
        c.victims(group, "oom-group", 2, |victims| {
            victims.len() <= 20
                && victims.iter().all(|v| v["exact"] == true)
                && victims.iter().any(|v| v["comm"] == "alloc")
        });
    }
    if selected("SENTINIT_VM_SCENARIOS", "cgroupns") {
        let ns = s("cgroupns");
        c.eq(ns, "cgroupns", "status", "0");
        c.eq(ns, "cgroupns", "ns_proc_self_cgroup", "0::/");
        c.eq(ns, "cgroupns", "ns_memory_max", &LIMIT_64M.to_string());
        let kernel_peak = ns.number("cg_memory_peak").unwrap_or(0) as f64;
        c.report(
            ns,
            "cgroupns",
            &[
                ("exit_code", int(0)),
                ("cgroup_version", int(2)),
                ("memory_limit_bytes", int(LIMIT_64M)),
                ("memory_peak_bytes", Expect::Between(16.0 * MIB, 1.05 * kernel_peak)),
                ("oom_killed", Expect::Bool(false)),
            ],
        );
    }
    if selected("SENTINIT_VM_SCENARIOS", "own-group") {
        let own = s("own-group");
        c.eq(own, "own-group", "status", "0");
        c.eq(own, "own-group", "leftover_groups", "0");
        c.eq(own, "own-group", "subtree_control", "");
        let cgroup = own.get("workload_cgroup").unwrap_or_default();
        c.check(
            cgroup.starts_with("0::/own-group/sentinit-") && !cgroup.ends_with("-self"),
            format!("own-group: the workload ran in {cgroup}, expected a group of its own"),
        );
        c.report(
            own,
            "own-group",
            &[
                ("exit_code", int(0)),
                ("cgroup_version", int(2)),
                ("cgroup_scope", str_("own")),
                ("cgroup_foreign_processes", int(0)),
                ("memory_limit_bytes", int(LIMIT_64M)),
                ("memory_peak_bytes", Expect::Between(30.0 * MIB, 33.0 * MIB)),
                ("memory_peak_source", str_("memory.peak")),
                ("oom_killed", Expect::Bool(false)),
            ],
        );
    }
    if selected("SENTINIT_VM_SCENARIOS", "shared-group") {
        let shared = s("shared-group");
        c.eq(shared, "shared-group", "status", "0");
        c.eq(shared, "shared-group", "leftover_groups", "0");
        c.report(
            shared,
            "shared-group",
            &[
                ("exit_code", int(0)),
                ("cgroup_scope", str_("shared")),
                ("cgroup_foreign_processes", int(1)),
                // The group's peak: the foreign 20 MiB and the workload's 10.
                ("memory_peak_bytes", Expect::Between(30.0 * MIB, 128.0 * MIB)),
            ],
        );
    }
    if selected("SENTINIT_VM_SCENARIOS", "own-readonly") {
        let ro = s("own-readonly");
        c.eq(ro, "own-readonly", "status", "0");
        c.eq(ro, "own-readonly", "leftover_groups", "0");
        c.check(
            ro.lines.iter().any(|l| l.contains("--cgroup own: cannot create a group for the workload")),
            "own-readonly: no warning says why there is no group of its own",
        );
        c.report(
            ro,
            "own-readonly",
            &[("exit_code", int(0)), ("cgroup_scope", str_("container")), ("memory_limit_bytes", int(LIMIT_64M))],
        );
    }
    if selected("SENTINIT_VM_SCENARIOS", "cpu-limit") {
        let limit = s("cpu-limit");
        c.eq(limit, "cpu-limit", "status", "0");
        c.eq(limit, "cpu-limit", "leftover_groups", "0");
        let cgroup = limit.get("workload_cgroup").unwrap_or_default();
        c.check(
            cgroup.starts_with("0::/cpu-limit/ctr/sentinit-"),
            format!("cpu-limit: the workload ran in {cgroup}, expected a group of its own below ctr"),
        );
        // The parent's 1.5 cores, rounded up to 2 CPUs, capped by the VM's vCPUs.
        let cpus = limit.number("vcpus").unwrap_or(0).min(2).to_string();
        c.eq(limit, "cpu-limit", "cpu_limit", "1.5");
        c.eq(limit, "cpu-limit", "cpus", &cpus);
        c.eq(limit, "cpu-limit", "memory_limit", &LIMIT_64M.to_string());
        let start = format!(" cpus={cpus} cpu_limit=1.5 memory_limit={LIMIT_64M}");
        c.check(
            limit.lines.iter().any(|l| l.starts_with("START ") && l.ends_with(&start)),
            format!("cpu-limit: no START line ending with '{start}'"),
        );
        c.report(
            limit,
            "cpu-limit",
            &[
                ("exit_code", int(0)),
                ("cgroup_scope", str_("own")),
                ("cpu_limit_cores", Expect::Between(1.499, 1.501)),
                ("memory_limit_bytes", int(LIMIT_64M)),
            ],
        );
    }
    c.finish(&log.text);
}

/// The container checks shared by runc in the VM (root, Docker's v1 layout) and rootless runc on the
/// host: sentinit is the container's PID 1, reaps orphans, and passes the OOM-killed child's status on.
fn check_container(c: &mut Checks, ct: &Scenario, name: &str, cgroup_version: u64, cpu_quota: Option<&str>) {
    // The limits for sizing worker pools: the 64 MiB limit, and in the VM's root runc the v1 CFS quota of
    // 1.5 cores (rounded up and capped at the VM's one vCPU for SENTINIT_CPUS).
    c.eq(ct, name, "ct_memory_limit_env", &LIMIT_64M.to_string());
    c.eq(ct, name, "ct_cpu_limit", cpu_quota.unwrap_or("unset"));
    if cpu_quota.is_some() {
        c.eq(ct, name, "ct_cpus", "1");
    }
    let id = ct.get("container_id").unwrap_or("").to_string();
    c.check(id.len() == 64, format!("{name}: no 64-hex container ID in the log"));
    c.eq(ct, name, "status", "137");
    c.eq(ct, name, "ct_pid1_comm", "sentinit");
    c.eq(ct, name, "ct_shell_ppid", "1");
    c.eq(ct, name, "ct_hostname", id.get(..12).unwrap_or(""));
    c.orphans_to_pid1(ct, name, "ct_orphan");
    c.eq(ct, name, "ct_zombies", "0");
    c.eq(ct, name, "ct_memory_limit", &LIMIT_64M.to_string());
    c.eq(ct, name, "ct_alloc_status", "137");
    c.at_least(ct, name, "ct_oom_kill", 1);
    c.eq(ct, name, "leftover_groups", "0");
    let memory_line = ct.all("ct_proc_self_cgroup").into_iter().find(|l| l.contains(":memory:"));
    c.check(
        memory_line.is_some_and(|l| l.ends_with(&format!("/{id}"))),
        format!("{name}: the container's memory cgroup {memory_line:?} does not end with its ID"),
    );
    let kills = ct.number("ct_oom_kill").unwrap_or(1);
    c.report(
        ct,
        name,
        &[
            // ct.sh exits with the OOM-killed child's status: a normal exit, code 137.
            ("exit_code", int(137)),
            ("signal", Expect::Null),
            ("cgroup_version", int(cgroup_version)),
            ("oom_killed", Expect::Bool(true)),
            ("oom_kills", int(kills)),
            ("memory_limit_bytes", int(LIMIT_64M)),
        ],
    );
    c.eq(ct, name, "ct_docker_container_id", &id);
    let identity: Value = serde_json::from_str(ct.get("ct_identity").unwrap_or("")).unwrap_or(Value::Null);
    c.check(
        identity["container_id"] == id.as_str(),
        format!("{name}: sentinit --identity gave container_id {}, expected {id}", identity["container_id"]),
    );
    let reported = ct.report().map(|r| r["container_id"].clone()).unwrap_or(Value::Null);
    c.check(reported == id.as_str(), format!("{name}: report container_id {reported}, expected {id}"));
}

#[test]
fn linux_6_1_cgroup_v2() {
    v2_matrix(Arch::Amd64, "6.1", DEFAULT);
}

#[test]
fn linux_6_1_cgroup_v2_minimal() {
    v2_matrix(Arch::Amd64, "6.1", MINIMAL);
}

#[test]
fn linux_6_12_cgroup_v2() {
    v2_matrix(Arch::Amd64, "6.12", DEFAULT);
}

#[test]
fn linux_6_12_cgroup_v2_minimal() {
    v2_matrix(Arch::Amd64, "6.12", MINIMAL);
}

/// The static aarch64 sentinit as the init of Debian's arm64 6.1 kernel (qemu-system-aarch64, virt).
#[test]
fn arm64_linux_6_1_cgroup_v2() {
    v2_matrix(Arch::Arm64, "6.1", DEFAULT);
}

/// The same on the arm64 6.12 kernel of bookworm-backports (per-fd memory.peak reset).
#[test]
fn arm64_linux_6_12_cgroup_v2() {
    v2_matrix(Arch::Arm64, "6.12", DEFAULT);
}

#[test]
fn linux_6_1_runc_docker_v1_layout() {
    runc_docker_v1_layout(DEFAULT);
}

#[test]
fn linux_6_1_runc_docker_v1_layout_minimal() {
    runc_docker_v1_layout(MINIMAL);
}

/// runc (root) inside a 6.1 VM with Docker's hybrid v1 layout: the container is in /docker/<64hex> in
/// every controller. (6.12 is built without cgroup v1 memory, so this runs on 6.1 only.)
fn runc_docker_v1_layout(build: &str) {
    require!(requirements(Arch::Amd64));
    let (log, kernel) = match boot(Arch::Amd64, "6.1", "v1", &["runc"], build) {
        Some(booted) => booted,
        None => return,
    };
    let mut c = Checks::new(&format!("linux 6.1 runc v1 {build}"));
    check_boot(&mut c, &log, &kernel, &["runc"], Arch::Amd64, build);
    let empty = Scenario::default();
    let ct = log.scenarios.get("runc").unwrap_or(&empty);
    check_container(&mut c, ct, "runc", 1, Some("1.5"));
    let id = ct.get("container_id").unwrap_or("-");
    let lines = ct.all("ct_proc_self_cgroup");
    c.check(
        lines.len() == 10 && lines.iter().all(|l| l.ends_with(&format!(":/docker/{id}"))),
        format!("runc: /proc/self/cgroup is not /docker/<id> in every hierarchy: {lines:?}"),
    );
    c.finish(&log.text);
}

#[test]
fn host_rootless_runc() {
    host_runc(DEFAULT);
}

#[test]
fn host_rootless_runc_minimal() {
    host_runc(MINIMAL);
}

/// Rootless runc on this machine's own kernel, confined to a child of the test's memory cgroup.
fn host_runc(build: &str) {
    if !selected("SENTINIT_VM_SCENARIOS", "host-runc") || !selected("SENTINIT_VM_BUILDS", build) {
        say!("host-runc ({build}): not selected by SENTINIT_VM_SCENARIOS / SENTINIT_VM_BUILDS");
        return;
    }
    require!(requirements(Arch::Amd64));
    let own_memory_group = std::fs::read_to_string("/proc/self/cgroup")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.split(':').nth(1).filter(|c| *c == "memory").map(|_| ()))
        .is_some();
    require!(if own_memory_group {
        Ok(())
    } else {
        Err("no cgroup v1 memory controller for rootless runc".to_string())
    });
    let prepared = prepared(Arch::Amd64);
    let Some(binary) = prepared.binary(build) else { return };
    let output = run_script(
        Command::new(vm_dir().join("host-runc.sh")).arg(binary).arg(&prepared.progs),
        "tests/vm/host-runc.sh",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let log = parse_log(&output);
    let mut c = Checks::new(&format!("host rootless runc {build}"));
    let empty = Scenario::default();
    let ct = log.scenarios.get("host-runc").unwrap_or(&empty);
    say!("host-runc: {}", ct.get("runc_version").unwrap_or("runc version unknown"));
    check_container(&mut c, ct, "host-runc", 1, None);
    c.finish(&log.text);
}

#[test]
fn log_parser_splits_scenarios_and_finds_the_report() {
    let log = parse_log(
        "noise\r\n@@BEGIN a\r\n@@R a status 137\r\nalloc: 16 MiB\r\n{\"type\":\"sentinit.report\",\"schema\":1}\r\n\
         @@END a\r\n@@R b empty \r\n{\"type\":\"sentinit.report\"}\r\n",
    );
    let a = &log.scenarios["a"];
    assert_eq!(a.get("status"), Some("137"));
    assert_eq!(a.lines, vec!["alloc: 16 MiB", "{\"type\":\"sentinit.report\",\"schema\":1}"]);
    assert_eq!(a.report().unwrap()["schema"], 1);
    let b = &log.scenarios["b"];
    assert_eq!(b.get("empty"), Some(""));
    assert!(b.report().is_none(), "a report outside a scenario's markers belongs to no scenario");
}
