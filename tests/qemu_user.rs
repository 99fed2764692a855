//! The supervisor and identity integration tests on arm64 (issue 12): `tests/supervisor.rs`,
//! `tests/identity_ecs.rs` and `tests/identity_files.rs` cross-compiled for aarch64-unknown-linux-musl
//! and run under `qemu-aarch64` user-mode emulation, against the aarch64 sentinit.
//!
//! The real-kernel matrix (tests/realkernel.rs) runs sentinit on an arm64 kernel; this runs the much
//! larger set of behaviour tests through the aarch64 code paths (signal numbers, signalfd records,
//! syscall structures, `c_char` signedness) without a VM. No binfmt_misc is assumed: each test binary is
//! started as `qemu-aarch64 <test>`, and since an emulated process cannot exec a foreign ELF itself, the
//! tests start sentinit through `SENTINIT_TEST_LAUNCHER`, a script that execs `qemu-aarch64 <sentinit>`.
//! Everything sentinit starts (`sh`, `python3`, `unshare`) is the host's own and runs natively.
//!
//! A few tests cannot pass under user-mode emulation for reasons of the emulator, not of sentinit; they
//! are skipped by name, each with its reason in `CANNOT_RUN` (and in docs/testing.md).
//!
//! Requirements: `qemu-aarch64` (tests/vm/install-deps.sh installs qemu-user) and the
//! aarch64-unknown-linux-musl Rust target. Missing ones fail the test when `CI=true`; elsewhere it skips.

mod common;

use common::in_ci;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const TARGET: &str = "aarch64-unknown-linux-musl";

/// The test files run under emulation.
const SUITES: &[&str] = &["supervisor", "identity_ecs", "identity_files"];

/// (suite, test, why it cannot pass under qemu-aarch64 user-mode emulation).
const CANNOT_RUN: &[(&str, &str, &str)] = &[
    (
        "supervisor",
        "every_catchable_signal_is_forwarded",
        "qemu-user keeps SIGSEGV and SIGBUS for its own fault handling (a kill()ed SIGSEGV is taken for a \
         fault of the translated code) and reserves real-time signals for itself, so not every signal \
         reaches the emulated sentinit",
    ),
    (
        "supervisor",
        "a_stop_signal_during_identity_resolution_reaches_the_workload",
        "a signal that arrives while sentinit has it blocked is queued by qemu-user's own handler, not by \
         the kernel, so the signalfd sentinit creates afterwards never sees it",
    ),
    (
        "supervisor",
        "idle_sentinit_uses_no_cpu_and_no_growing_memory",
        "qemu-user's own threads use CPU ticks while the emulated sentinit sleeps",
    ),
    (
        "supervisor",
        "workload_starts_with_a_clean_signal_state",
        "seen in one of two runs: the workload, a host program started by the emulated sentinit, had signal \
         32 ignored; 32-34 are the C libraries' internal signals, which qemu-user maps onto host signals of \
         its own, so their dispositions across an exec are the emulator's (not investigated further)",
    ),
];

macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), "qemu-user: {}", format_args!($($arg)*));
    }};
}

fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(tool)).find(|p| p.is_file())
}

/// What must be on the machine; `Err` is a skip outside CI and a failure in CI.
fn requirements() -> Result<(), String> {
    if which("qemu-aarch64").is_none() {
        return Err("qemu-aarch64 not found; run tests/vm/install-deps.sh as root (qemu-user)".into());
    }
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(rustc).args(["--print", "sysroot"]).output().map_err(|e| format!("rustc: {e}"))?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    if !sysroot.join("lib/rustlib").join(TARGET).join("lib").is_dir() {
        return Err(format!("the Rust target {TARGET} is not installed (rustup target add {TARGET})"));
    }
    Ok(())
}

/// The cross-compiled test executables (suite name, path) and the aarch64 sentinit, from cargo's JSON
/// messages. A target directory of its own: the `cargo test` running this holds the lock of the default one.
fn build() -> (Vec<(String, PathBuf)>, PathBuf) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args(["test", "--no-run", "--message-format=json", "--target", TARGET])
        .env("CARGO_TARGET_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("qemu-user/cargo"))
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    for suite in SUITES {
        command.args(["--test", suite]);
    }
    let started = Instant::now();
    let output = command.output().expect("run cargo test --no-run");
    assert!(
        output.status.success(),
        "cargo test --no-run --target {TARGET} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    say!("built the aarch64 test binaries in {:.1} s", started.elapsed().as_secs_f64());
    let mut tests = Vec::new();
    let mut sentinit = None;
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        let Some(executable) = message["executable"].as_str() else { continue };
        let name = message["target"]["name"].as_str().unwrap_or_default().to_string();
        let kinds = message["target"]["kind"].as_array().cloned().unwrap_or_default();
        if kinds.iter().any(|k| k == "bin") && name == "sentinit" {
            sentinit = Some(PathBuf::from(executable));
        } else if kinds.iter().any(|k| k == "test") && SUITES.contains(&name.as_str()) {
            tests.push((name, PathBuf::from(executable)));
        }
    }
    let sentinit = sentinit.expect("cargo built no aarch64 sentinit");
    let machine = elf_machine(&sentinit);
    assert_eq!(machine, 183, "{} is not an aarch64 ELF (e_machine {machine})", sentinit.display());
    assert_eq!(tests.len(), SUITES.len(), "cargo built {tests:?}, expected {SUITES:?}");
    (tests, sentinit)
}

/// e_machine of an ELF file (183 is EM_AARCH64).
fn elf_machine(path: &Path) -> u16 {
    let bytes = std::fs::read(path).unwrap_or_default();
    assert!(bytes.len() > 20 && bytes.starts_with(b"\x7fELF"), "{} is not an ELF file", path.display());
    u16::from_le_bytes([bytes[18], bytes[19]])
}

/// libtest's summary: (passed, failed).
fn summary(stdout: &str) -> Option<(usize, usize)> {
    let line = stdout.lines().find(|l| l.starts_with("test result: "))?;
    let count = |word: &str| -> Option<usize> {
        let before = line.split(&format!(" {word}")).next()?;
        before.rsplit(' ').next()?.parse().ok()
    };
    Some((count("passed")?, count("failed")?))
}

#[test]
fn supervisor_and_identity_tests_pass_under_qemu_aarch64() {
    if let Err(reason) = requirements() {
        if in_ci() {
            panic!("the arm64 user-mode tests cannot run in CI: {reason}");
        }
        say!("SKIPPED (not CI): {reason}");
        return;
    }
    let (tests, sentinit) = build();
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("qemu-user");
    let launcher = work.join("sentinit");
    std::fs::write(&launcher, format!("#!/bin/sh\nexec qemu-aarch64 '{}' \"$@\"\n", sentinit.display())).unwrap();
    std::fs::set_permissions(&launcher, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // The launcher really runs the aarch64 binary: its version, through the emulator.
    let version = Command::new(&launcher).arg("--version").output().expect("run the launcher");
    assert_eq!(String::from_utf8_lossy(&version.stdout).trim(), format!("sentinit {}", env!("CARGO_PKG_VERSION")));

    // One suite after the other: side by side on two cores, emulated, the tests with a time budget
    // (identity within 1 s) missed it.
    let failures: Vec<String> = tests
        .into_iter()
        .filter_map(|(suite, executable)| {
            let mut command = Command::new("qemu-aarch64");
            command
                .arg(&executable)
                .env("SENTINIT_TEST_LAUNCHER", &launcher)
                // Starting the emulated sentinit takes a few hundred ms: the identity tests' slack above
                // sentinit's own time budgets (never the budgets themselves) is tripled.
                .env("SENTINIT_TEST_SLACK_FACTOR", "3")
                .current_dir(env!("CARGO_MANIFEST_DIR"));
            let skipped: Vec<&str> = CANNOT_RUN.iter().filter(|(s, _, _)| *s == suite).map(|(_, t, _)| *t).collect();
            // --exact: a skip names one test, not every test whose name contains it.
            command.arg("--exact");
            for test in &skipped {
                command.args(["--skip", test]);
            }
            let started = Instant::now();
            let output = command.output().expect("run qemu-aarch64");
            let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
            let (passed, failed) = summary(&stdout).unwrap_or((0, usize::MAX));
            say!(
                "{suite}: {passed} passed, {failed} failed, {} skipped (cannot run emulated) in {:.1} s",
                skipped.len(),
                started.elapsed().as_secs_f64()
            );
            // A run that passed nothing (a filter gone wrong, a binary that would not start) fails too.
            (!output.status.success() || passed == 0).then(|| {
                format!(
                    "{suite} under qemu-aarch64: {}\n{stdout}\n{}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr)
                )
            })
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn the_summary_parser_reads_libtest_counts() {
    let out = "running 3 tests\n...\ntest result: ok. 26 passed; 0 failed; 3 ignored; 0 measured; 3 filtered out\n";
    assert_eq!(summary(out), Some((26, 0)));
    assert_eq!(summary("test result: FAILED. 1 passed; 2 failed; 0 ignored"), Some((1, 2)));
    assert_eq!(summary("no summary"), None);
}
