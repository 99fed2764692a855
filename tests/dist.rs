//! The release artifacts and the multi-arch image build (issue 12), through the real scripts.
//!
//! `dist/build.sh` must write a static x86_64 and a static aarch64 sentinit under Docker's TARGETARCH
//! names, each answering `--version`, and a SHA256SUMS that `sha256sum -c` accepts. Dockerfile.example's
//! build stage runs `dist/build-static.sh "$TARGETARCH" /sentinit` on the build platform; there is no
//! Docker engine here, so buildx itself is not run: this runs that RUN line for both TARGETARCH values
//! (and the x86_64 build an arm64 builder makes, linked by rust-lld) and checks what it produces.
//!
//! Requirements: the x86_64 and aarch64 musl Rust targets, readelf, sha256sum, qemu-aarch64 (the
//! aarch64 binaries' --version runs under user-mode emulation, called directly). Missing ones fail the
//! tests when `CI=true`; elsewhere they skip.

mod common;

use common::in_ci;
use std::path::{Path, PathBuf};
use std::process::Command;

const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;

/// The release builds share tests/realkernel.rs's target directory (the same static binaries, built
/// once per run), which is not the default one: the `cargo test` running this holds that one's lock.
fn cargo_target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("realkernel/cargo")
}

fn which(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
        .unwrap_or(false)
}

fn requirements() -> Result<(), String> {
    for tool in ["qemu-aarch64", "readelf", "sha256sum", "cargo"] {
        if !which(tool) {
            return Err(format!("{tool} not found; run tests/vm/install-deps.sh as root"));
        }
    }
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(rustc).args(["--print", "sysroot"]).output().map_err(|e| format!("rustc: {e}"))?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    for target in ["x86_64-unknown-linux-musl", "aarch64-unknown-linux-musl"] {
        if !sysroot.join("lib/rustlib").join(target).join("lib").is_dir() {
            return Err(format!("the Rust target {target} is not installed (rustup target add {target})"));
        }
    }
    Ok(())
}

/// Fails in CI, skips (returns false) elsewhere.
fn ready() -> bool {
    match requirements() {
        Ok(()) => true,
        Err(reason) if in_ci() => panic!("cannot run in CI: {reason}"),
        Err(reason) => {
            eprintln!("SKIPPED (not CI): {reason}");
            false
        }
    }
}

/// e_machine, and whether the ELF file asks for no program interpreter (no PT_INTERP: static).
fn elf(path: &Path) -> (u16, bool) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(bytes.len() > 64 && bytes.starts_with(b"\x7fELF\x02\x01"), "{} is not a 64-bit LE ELF", path.display());
    let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]);
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
    let (table, entry_size, count) = (u64_at(0x20), u16_at(0x36) as usize, u16_at(0x38) as usize);
    let interp = (0..count).any(|i| u32::from_le_bytes(bytes[table + i * entry_size..][..4].try_into().unwrap()) == 3);
    (u16_at(18), !interp)
}

/// `--version` of a binary of `machine`: natively, or under qemu-aarch64 called directly.
fn version_of(binary: &Path, machine: u16) -> String {
    let output = if machine == EM_AARCH64 {
        Command::new("qemu-aarch64").arg(binary).arg("--version").output()
    } else {
        Command::new(binary).arg("--version").output()
    }
    .unwrap_or_else(|e| panic!("run {} --version: {e}", binary.display()));
    assert!(output.status.success(), "{} --version: {}", binary.display(), output.status);
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

fn expected_version() -> String {
    format!("sentinit {}", env!("CARGO_PKG_VERSION"))
}

#[test]
fn dockerfile_build_stage_cross_compiles_for_each_targetarch() {
    if !ready() {
        return;
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dockerfile = std::fs::read_to_string(manifest.join("Dockerfile.example")).unwrap();
    // The build stage runs on the build platform and takes TARGETARCH: the compiler is never emulated.
    let build_stage: Vec<&str> = dockerfile
        .lines()
        .skip_while(|l| !l.starts_with("FROM ") || !l.ends_with(" AS build"))
        .take_while(|l| !l.starts_with("FROM ") || l.ends_with(" AS build"))
        .collect();
    assert!(
        build_stage.first().is_some_and(|l| l.starts_with("FROM --platform=$BUILDPLATFORM rust:")),
        "the build stage must run on $BUILDPLATFORM: {build_stage:?}"
    );
    assert!(build_stage.contains(&"ARG TARGETARCH"), "the build stage takes no TARGETARCH: {build_stage:?}");
    let run: Vec<&str> = build_stage.iter().filter_map(|l| l.strip_prefix("RUN ")).collect();
    assert_eq!(run, ["dist/build-static.sh \"$TARGETARCH\" /sentinit"], "the build stage's RUN lines");

    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dockerfile");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    // (TARGETARCH, linker override, target dir, ELF machine): the two images an x86_64 builder makes,
    // and the amd64 one of an arm64 builder, where only rust-lld can link x86_64.
    let cases = [
        ("amd64", None, cargo_target_dir(), EM_X86_64),
        ("arm64", None, cargo_target_dir(), EM_AARCH64),
        ("amd64", Some("rust-lld"), out.join("cargo-lld"), EM_X86_64),
    ];
    for (arch, linker, target_dir, machine) in cases {
        let binary = out.join(format!("sentinit-{arch}-{}", linker.unwrap_or("default")));
        // The RUN line itself, in a shell, with buildx's TARGETARCH and the output moved off `/`.
        let script = run[0].replace(" /sentinit", " \"$OUT\"");
        let mut command = Command::new("sh");
        command
            .args(["-c", &script])
            .env("TARGETARCH", arch)
            .env("OUT", &binary)
            .env("CARGO_TARGET_DIR", &target_dir)
            .current_dir(manifest);
        if let Some(linker) = linker {
            command.env("SENTINIT_LINKER", linker);
        }
        let output = command.output().expect("run the build stage's RUN line");
        assert!(output.status.success(), "TARGETARCH={arch}: {}", String::from_utf8_lossy(&output.stderr));
        let (got, is_static) = elf(&binary);
        assert_eq!(got, machine, "TARGETARCH={arch} ({linker:?}) built e_machine {got}");
        assert!(is_static, "TARGETARCH={arch} ({linker:?}): not static");
        assert_eq!(version_of(&binary, machine), expected_version());
        let size = std::fs::metadata(&binary).unwrap().len();
        eprintln!("TARGETARCH={arch} linker={}: {size} bytes", linker.unwrap_or("default"));
    }
    // An architecture the script does not know is refused, not built as something else.
    let refused = Command::new(manifest.join("dist/build-static.sh"))
        .args(["riscv64", out.join("nothing").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2), "{}", String::from_utf8_lossy(&refused.stderr));
    assert!(!out.join("nothing").exists());
}

#[test]
fn release_script_writes_both_static_binaries_and_their_checksums() {
    if !ready() {
        return;
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dist/out");
    let output = Command::new(manifest.join("dist/build.sh"))
        .env("DIST_OUT", &out)
        .env("CARGO_TARGET_DIR", cargo_target_dir())
        .output()
        .expect("run dist/build.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "dist/build.sh: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );

    let version = env!("CARGO_PKG_VERSION");
    let mut files: Vec<String> =
        std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    files.sort();
    let amd64 = format!("sentinit-{version}-linux-amd64");
    let arm64 = format!("sentinit-{version}-linux-arm64");
    assert_eq!(files, ["SHA256SUMS".to_string(), amd64.clone(), arm64.clone()]);
    for (file, machine) in [(&amd64, EM_X86_64), (&arm64, EM_AARCH64)] {
        let (got, is_static) = elf(&out.join(file));
        assert_eq!(got, machine, "{file}: e_machine {got}");
        assert!(is_static, "{file} is not static");
        assert_eq!(version_of(&out.join(file), machine), expected_version(), "{file}");
    }

    // SHA256SUMS names both files, `sha256sum -c` accepts it, and rejects a changed binary.
    let sums = std::fs::read_to_string(out.join("SHA256SUMS")).unwrap();
    let named: Vec<&str> = sums.lines().filter_map(|l| l.split_whitespace().nth(1)).collect();
    assert_eq!(named, [amd64.as_str(), arm64.as_str()], "{sums}");
    let check = |dir: &Path| Command::new("sha256sum").args(["-c", "SHA256SUMS"]).current_dir(dir).output().unwrap();
    assert!(check(&out).status.success(), "{}", String::from_utf8_lossy(&check(&out).stdout));
    let tampered = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dist/tampered");
    let _ = std::fs::remove_dir_all(&tampered);
    std::fs::create_dir_all(&tampered).unwrap();
    for file in &files {
        std::fs::copy(out.join(file), tampered.join(file)).unwrap();
    }
    let mut bytes = std::fs::read(tampered.join(&arm64)).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(tampered.join(&arm64), bytes).unwrap();
    assert!(!check(&tampered).status.success(), "sha256sum -c accepted a changed binary");
}
