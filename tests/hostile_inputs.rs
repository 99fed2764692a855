//! Hostile inputs: what comes from outside sentinit (the ECS metadata endpoint and file, the
//! environment, the file system around `--report-file`, a `/proc` or fixture tree that is not what it
//! seems, a program that cannot run) must never crash the start of the workload, forge a log line,
//! make sentinit write through someone else's symlink, hang start-up, or make sentinit signal
//! processes that are not its own.
//!
//! Every HTTP request goes to a loopback server of the test's own (`identity_support::FakeAgent`);
//! every wait is bounded and kills what it started. Each case runs with sentinit as an ordinary child
//! and as PID 1 of a new PID namespace, except where the case is about one of the two.

mod common;
mod identity_support;

use common::{Mode, MODES};
use identity_support::{fixture, ok, FakeAgent, Reply};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::ffi::{CString, OsStr, OsString};
use std::io::Read;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const EC2_ID: &str = "0a4f1c2e9b8d7c6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e";
const EC2_TASK: &str = "arn:aws:ecs:us-west-2:111122223333:task/prod/4d1f6c0b2a9e4e7f8a3b5c6d7e8f9a0b";
const EC2_TASK_ID: &str = "4d1f6c0b2a9e4e7f8a3b5c6d7e8f9a0b";
const FARGATE_ID: &str = "e40860c2b55a4200b03c3197f6c59714-2886439692";
const FARGATE_TASK: &str = "arn:aws:ecs:us-east-1:111122223333:task/batch/e40860c2b55a4200b03c3197f6c59714";
const FARGATE_CLUSTER: &str = "arn:aws:ecs:us-east-1:111122223333:cluster/batch";
const ENDPOINT: &str = "/v4/7d1a2b3c-4e5f-6a7b-8c9d-0e1f2a3b4c5d";
/// A line that, printed raw after a newline, would look like sentinit's own final report.
const FORGED_REPORT: &str = "\nREPORT\tDuration: 1 ms\tExit: 0";
/// The workload of the identity cases: its exact initial environment on stdout, then exit 7.
const ENV_WORKLOAD: &str = "cat /proc/$$/environ; exit 7";
/// Far above anything these cases need; a sentinit that blocks fails instead of hanging the suite.
const LIMIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// Running sentinit

/// One bounded run: exit status and both outputs (read by threads, so a large output never blocks).
struct Ran {
    mode: Mode,
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: String,
}

impl Ran {
    fn code(&self) -> i32 {
        self.status
            .code()
            .unwrap_or_else(|| panic!("{:?}: sentinit itself died: {:?}\n{}", self.mode, self.status, self.stderr))
    }

    /// The workload's environment (`cat /proc/$$/environ`), in order.
    fn environ(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        environ_entries(&self.stdout)
            .into_iter()
            .map(|entry| match entry.iter().position(|b| *b == b'=') {
                Some(at) => (entry[..at].to_vec(), entry[at + 1..].to_vec()),
                None => (entry, Vec::new()),
            })
            .collect()
    }

    /// The value of `name` in the workload's environment (the first one).
    fn var(&self, name: &str) -> Option<Vec<u8>> {
        self.environ().into_iter().find(|(k, _)| k == name.as_bytes()).map(|(_, v)| v)
    }

    fn lines_starting(&self, prefix: &str) -> Vec<&str> {
        self.stderr.lines().filter(|l| l.starts_with(prefix)).collect()
    }
}

/// NUL-terminated entries of a `/proc/<pid>/environ` dump.
fn environ_entries(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut entries: Vec<Vec<u8>> = bytes.split(|b| *b == 0).map(<[u8]>::to_vec).collect();
    if entries.last().is_some_and(Vec::is_empty) {
        entries.pop();
    }
    entries
}

/// Runs `cmd` for at most `limit`; on timeout kills its whole tree and fails the test.
fn run_bounded(mode: Mode, mut cmd: Command, limit: Duration) -> Ran {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd.spawn().expect("spawn");
    let reader = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = reader(Box::new(child.stdout.take().unwrap()));
    let stderr = reader(Box::new(child.stderr.take().unwrap()));
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if started.elapsed() > limit {
            timed_out = true;
            common::kill_tree(child.id() as i32);
            break child.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stdout = stdout.join().unwrap();
    let stderr = String::from_utf8_lossy(&stderr.join().unwrap()).into_owned();
    if timed_out {
        panic!(
            "{mode:?}: timed out after {limit:?} (killed)\nstdout: {}\nstderr: {stderr}",
            String::from_utf8_lossy(&stdout)
        );
    }
    Ran { mode, status, stdout, stderr }
}

/// `sentinit ARGS` in `mode` with PATH and `env` as its whole environment.
fn sentinit(mode: Mode, args: &[&str], env: &[(&str, &OsStr)]) -> Ran {
    let mut cmd = common::command(mode, args);
    for (name, value) in env {
        cmd.env(name, value);
    }
    run_bounded(mode, cmd, LIMIT)
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

fn show(bytes: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(bytes))
}

/// The variables sentinit itself exports.
fn is_sentinit_export(name: &[u8]) -> bool {
    name == b"DOCKER_CONTAINER_ID"
        || name.starts_with(b"ECS_")
        || [&b"SENTINIT_CPU_LIMIT"[..], b"SENTINIT_CPUS", b"SENTINIT_MEMORY_LIMIT_BYTES"].contains(&name)
}

// ---------------------------------------------------------------------------------------------
// A. Metadata values are validated before they reach an execve, an environment or a log line

/// The identity facts a fake ECS agent serves, in the container document (with the labels the ECS
/// agent sets) and the task document alike.
#[derive(Clone)]
struct Facts {
    docker_id: String,
    name: String,
    task_arn: String,
    cluster: String,
    family: String,
    revision: String,
}

impl Default for Facts {
    fn default() -> Facts {
        Facts {
            docker_id: EC2_ID.into(),
            name: "app".into(),
            task_arn: EC2_TASK.into(),
            cluster: "prod".into(),
            family: "web".into(),
            revision: "42".into(),
        }
    }
}

impl Facts {
    fn container_document(&self) -> String {
        json!({
            "DockerId": self.docker_id, "Name": self.name, "DockerName": "ecs-web-42-app-b4e2d6f8a0c2e4f6a801",
            "Image": "111122223333.dkr.ecr.us-west-2.amazonaws.com/web:1.8.3",
            "Labels": {
                "com.amazonaws.ecs.cluster": self.cluster,
                "com.amazonaws.ecs.container-name": self.name,
                "com.amazonaws.ecs.task-arn": self.task_arn,
                "com.amazonaws.ecs.task-definition-family": self.family,
                "com.amazonaws.ecs.task-definition-version": self.revision
            },
            "DesiredStatus": "RUNNING", "KnownStatus": "RUNNING", "Type": "NORMAL"
        })
        .to_string()
    }

    fn task_document(&self) -> String {
        json!({
            "Cluster": self.cluster, "TaskARN": self.task_arn, "Family": self.family, "Revision": self.revision,
            "DesiredStatus": "RUNNING", "KnownStatus": "RUNNING",
            "Containers": [{"DockerId": self.docker_id, "Name": self.name, "Type": "NORMAL"}]
        })
        .to_string()
    }
}

/// sentinit -v in `mode` against a loopback fake agent serving `facts` (v4 container and task
/// documents), on a fixture /proc that names no container; the workload dumps its environment and
/// exits 7.
fn run_against_agent(mode: Mode, facts: &Facts) -> Ran {
    let container = facts.container_document();
    let task = facts.task_document();
    let agent = FakeAgent::start(move |path, _| {
        if path == ENDPOINT {
            ok(&container)
        } else if path == format!("{ENDPOINT}/task") {
            ok(&task)
        } else {
            Reply::Status(404, "\"V4 container metadata handler: unknown\"".to_string())
        }
    });
    let uri = format!("{}{ENDPOINT}", agent.url);
    assert!(uri.starts_with("http://127.0.0.1:"), "{uri}");
    let proc_root = fixture("host-login-session");
    sentinit(
        mode,
        &["-v", "--identity-timeout", "3s", "--", "sh", "-c", ENV_WORKLOAD],
        &[("ECS_CONTAINER_METADATA_URI_V4", os(&uri)), ("SENTINIT_PROC_ROOT", os(&proc_root))],
    )
}

/// The common verdict for a dropped value: the workload ran and exited with its own code, the
/// variable is absent, the `kept` ones are exported as given, no exported value carries a control
/// character, and `-v` has a line naming the variable and saying it was dropped.
fn assert_dropped(ran: &Ran, dropped: &[&str], kept: &[(&str, &str)]) {
    let mode = ran.mode;
    let stderr = &ran.stderr;
    assert_eq!(ran.code(), 7, "{mode:?}: the workload must start and exit with its own code; stderr:\n{stderr}");
    for name in dropped {
        assert_eq!(ran.var(name).map(|v| show(&v)), None, "{mode:?}: {name} must not be exported; stderr:\n{stderr}");
        assert!(
            stderr.lines().any(|l| l.contains(name) && l.contains("dropped")),
            "{mode:?}: -v must say why {name} was dropped; stderr:\n{stderr}"
        );
    }
    for (name, value) in kept {
        assert_eq!(
            ran.var(name).map(|v| show(&v)),
            Some(show(value.as_bytes())),
            "{mode:?}: {name} is valid and must still be exported; stderr:\n{stderr}"
        );
    }
    for (name, value) in ran.environ() {
        if is_sentinit_export(&name) {
            assert!(
                !value.iter().any(|b| b.is_ascii_control()),
                "{mode:?}: {} exported with a control character: {}",
                show(&name),
                show(&value)
            );
        }
    }
}

/// A container `Name` with a NUL byte (JSON `\u0000`) is not exported; today it makes the workload's
/// execve fail ("argument contains a NUL byte", exit 126).
#[test]
fn tmds_container_name_with_a_nul_byte_is_dropped_and_the_workload_runs() {
    for mode in MODES {
        if !common::mode_available(mode) {
            continue;
        }
        let facts = Facts { name: "app\u{0}evil".into(), ..Facts::default() };
        let ran = run_against_agent(mode, &facts);
        assert_dropped(
            &ran,
            &["ECS_CONTAINER_NAME"],
            &[("DOCKER_CONTAINER_ID", EC2_ID), ("ECS_TASK_ARN", EC2_TASK), ("ECS_CLUSTER", "prod")],
        );
    }
}

/// A 200 KiB container `Name` is over the length cap and not exported; today the workload's execve
/// fails with E2BIG ("Argument list too long", exit 126).
#[test]
fn tmds_container_name_of_200_kib_is_dropped_and_the_workload_runs() {
    for mode in MODES {
        if !common::mode_available(mode) {
            continue;
        }
        let facts = Facts { name: "a".repeat(200 * 1024), ..Facts::default() };
        let ran = run_against_agent(mode, &facts);
        assert_dropped(
            &ran,
            &["ECS_CONTAINER_NAME"],
            &[("DOCKER_CONTAINER_ID", EC2_ID), ("ECS_TASK_ARN", EC2_TASK), ("ECS_TASK_FAMILY", "web")],
        );
    }
}

/// A task ARN carrying a newline and a forged `REPORT` line is dropped (no `ECS_TASK_ARN`, no
/// `ECS_TASK_ID`) and never reaches stderr raw: exactly one line starts with `REPORT`, the real one,
/// last. The valid values are still exported. Today the START line is split and the forged REPORT
/// line appears, and the workload gets the ARN.
#[test]
fn tmds_task_arn_with_a_forged_report_line_cannot_split_the_log() {
    for mode in MODES {
        if !common::mode_available(mode) {
            continue;
        }
        let facts = Facts { task_arn: format!("{EC2_TASK}{FORGED_REPORT}"), ..Facts::default() };
        let ran = run_against_agent(mode, &facts);
        let stderr = &ran.stderr;
        let reports = ran.lines_starting("REPORT");
        assert_eq!(reports.len(), 1, "{mode:?}: exactly one REPORT line, the real one:\n{stderr}");
        assert!(reports[0].contains("\tExit: 7 (exited)\t"), "{mode:?}: the REPORT line is the real one:\n{stderr}");
        assert_eq!(stderr.lines().last(), Some(reports[0]), "{mode:?}: the real REPORT line is last:\n{stderr}");
        assert_eq!(ran.lines_starting("START ").len(), 1, "{mode:?}:\n{stderr}");
        assert_dropped(
            &ran,
            &["ECS_TASK_ARN"],
            &[
                ("DOCKER_CONTAINER_ID", EC2_ID),
                ("ECS_CLUSTER", "prod"),
                ("ECS_TASK_FAMILY", "web"),
                ("ECS_TASK_REVISION", "42"),
                ("ECS_CONTAINER_NAME", "app"),
            ],
        );
        assert_eq!(ran.var("ECS_TASK_ID").map(|v| show(&v)), None, "{mode:?}: no task ID from a dropped ARN");
    }
}

/// Values of the wrong shape (a task ARN that is no task ARN, a cluster, family or container name
/// with characters no ECS name has, a revision that is not a number) are dropped one by one, each
/// with its `-v` line; well-formed Fargate values (the `<32 hex>-<digits>` container ID, a cluster
/// ARN) are still exported. Today every one of them is exported as given.
#[test]
fn tmds_values_of_the_wrong_shape_are_dropped() {
    for mode in MODES {
        if !common::mode_available(mode) {
            continue;
        }
        let hostile = Facts {
            docker_id: EC2_ID.into(),
            name: "app name".into(),
            task_arn: "arn:aws:ecs:us-west-2:111122223333:service/prod/web".into(),
            cluster: "prod cluster".into(),
            family: "web$(reboot)".into(),
            revision: "42abc".into(),
        };
        let ran = run_against_agent(mode, &hostile);
        assert_dropped(
            &ran,
            &["ECS_TASK_ARN", "ECS_CLUSTER", "ECS_TASK_FAMILY", "ECS_TASK_REVISION", "ECS_CONTAINER_NAME"],
            &[("DOCKER_CONTAINER_ID", EC2_ID)],
        );
        assert_eq!(ran.var("ECS_TASK_ID"), None, "{mode:?}: no task ID from a dropped ARN");

        // The validation is not stricter than ECS itself.
        let fargate = Facts {
            docker_id: FARGATE_ID.into(),
            name: "worker_2-b".into(),
            task_arn: FARGATE_TASK.into(),
            cluster: FARGATE_CLUSTER.into(),
            family: "batch-job_v2".into(),
            revision: "7".into(),
        };
        let ran = run_against_agent(mode, &fargate);
        assert_dropped(
            &ran,
            &[],
            &[
                ("DOCKER_CONTAINER_ID", FARGATE_ID),
                ("ECS_TASK_ARN", FARGATE_TASK),
                ("ECS_TASK_ID", "e40860c2b55a4200b03c3197f6c59714"),
                // Fargate names the cluster by its ARN: the short name is ECS_CLUSTER everywhere.
                ("ECS_CLUSTER", "batch"),
                ("ECS_CLUSTER_ARN", FARGATE_CLUSTER),
                ("ECS_TASK_FAMILY", "batch-job_v2"),
                ("ECS_TASK_REVISION", "7"),
                ("ECS_CONTAINER_NAME", "worker_2-b"),
            ],
        );
    }
}

/// Identity variables the user set explicitly are theirs: the workload gets them byte for byte, even
/// with control characters. But where they appear in a log line (START, END, `-v`), control
/// characters are escaped: there is exactly one START, one END and one REPORT line, the real REPORT
/// line is last, and stderr holds no raw control character other than tab and newline. Today the
/// START and END lines are split and forged lines appear.
#[test]
fn user_set_identity_reaches_the_workload_as_is_but_cannot_split_log_lines() {
    let task_arn = format!("{EC2_TASK}{FORGED_REPORT}");
    let container_id = format!("{EC2_ID}\nEND container=forged task=forged");
    let container_name = "app\u{1b}[2K\rERASED";
    for mode in MODES {
        if !common::mode_available(mode) {
            continue;
        }
        let ran = sentinit(
            mode,
            &["-v", "--", "sh", "-c", ENV_WORKLOAD],
            &[
                ("ECS_TASK_ARN", os(&task_arn)),
                ("DOCKER_CONTAINER_ID", os(&container_id)),
                ("ECS_CONTAINER_NAME", os(container_name)),
            ],
        );
        let stderr = &ran.stderr;
        assert_eq!(ran.code(), 7, "{mode:?}:\n{stderr}");
        for (name, value) in [
            ("ECS_TASK_ARN", task_arn.as_str()),
            ("DOCKER_CONTAINER_ID", &container_id),
            ("ECS_CONTAINER_NAME", container_name),
        ] {
            assert_eq!(
                ran.var(name).map(|v| show(&v)),
                Some(show(value.as_bytes())),
                "{mode:?}: the user's {name} is passed through unchanged"
            );
        }
        let reports = ran.lines_starting("REPORT");
        assert_eq!(reports.len(), 1, "{mode:?}: exactly one REPORT line:\n{stderr}");
        assert!(reports[0].contains("\tExit: 7 (exited)\t"), "{mode:?}: the REPORT line is the real one:\n{stderr}");
        assert_eq!(stderr.lines().last(), Some(reports[0]), "{mode:?}:\n{stderr}");
        assert_eq!(ran.lines_starting("START").len(), 1, "{mode:?}: one START line:\n{stderr}");
        assert_eq!(ran.lines_starting("END").len(), 1, "{mode:?}: one END line:\n{stderr}");
        let raw: Vec<char> = stderr.chars().filter(|c| c.is_control() && *c != '\t' && *c != '\n').collect();
        assert!(raw.is_empty(), "{mode:?}: raw control characters {raw:?} in stderr:\n{stderr}");
    }
}

/// The container metadata file is validated like the endpoint: a `ContainerName` with control
/// characters, or of 200 KiB, is dropped with a `-v` line, the file's valid values are exported and the
/// workload runs. Today the first is exported raw and the second makes the execve fail (E2BIG, 126).
#[test]
fn metadata_file_values_with_control_characters_or_huge_are_dropped() {
    let dir = common::TempDir::new("inputs-metadata-file");
    let file = dir.join("ecs-container-metadata.json");
    let proc_root = fixture("host-login-session");
    for name in ["app\u{1b}]0;pwned\u{7}\rforged".to_string(), "b".repeat(200 * 1024)] {
        let document = json!({
            "Cluster": "prod",
            "ContainerInstanceARN": "arn:aws:ecs:us-west-2:111122223333:container-instance/prod/5c0b",
            "TaskARN": EC2_TASK,
            "TaskDefinitionFamily": "web",
            "TaskDefinitionRevision": "42",
            "ContainerName": name,
            "ContainerID": EC2_ID,
            "MetadataFileStatus": "READY",
            "AvailabilityZone": "us-west-2a"
        });
        std::fs::write(&file, document.to_string()).unwrap();
        for mode in MODES {
            if !common::mode_available(mode) {
                continue;
            }
            let ran = sentinit(
                mode,
                &["-v", "--identity-timeout", "1s", "--", "sh", "-c", ENV_WORKLOAD],
                &[("ECS_CONTAINER_METADATA_FILE", file.as_os_str()), ("SENTINIT_PROC_ROOT", os(&proc_root))],
            );
            assert_dropped(
                &ran,
                &["ECS_CONTAINER_NAME"],
                &[
                    ("DOCKER_CONTAINER_ID", EC2_ID),
                    ("ECS_TASK_ARN", EC2_TASK),
                    ("ECS_TASK_ID", EC2_TASK_ID),
                    ("ECS_TASK_FAMILY", "web"),
                ],
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// B. sentinit trusts only what is its own

fn is_root() -> bool {
    // SAFETY: geteuid has no side effects.
    unsafe { libc::geteuid() == 0 }
}

fn has_program(name: &str) -> bool {
    Command::new(name).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

/// `--report-file`: another user who can write the report's directory plants symlinks at every
/// temporary name sentinit could predict (`.<name>.<pid>.tmp` for sentinit's pid as the workload sees
/// it, and 1) pointing at a root-owned file. The victim stays unchanged, PATH is a regular file with
/// the JSON report, nothing but PATH and the planted links (untouched or removed) is left in the
/// directory, and the exit code is the workload's. Today the report is written through the symlink
/// into the victim.
#[test]
fn report_file_never_writes_through_a_planted_symlink() {
    if !common::require(is_root(), "root (to own the victim file and switch to uid 65534)")
        || !common::require(has_program("setpriv"), "setpriv (util-linux)")
    {
        return;
    }
    const VICTIM_TEXT: &str = "precious, owned by root\n";
    for mode in MODES {
        if !common::mode_available(mode) {
            continue;
        }
        let safe = common::TempDir::new("inputs-victim");
        let victim = safe.join("victim");
        std::fs::write(&victim, VICTIM_TEXT).unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
        let dir = common::TempDir::new("inputs-report-dir");
        // Owned by nobody, not sticky: the kernel's protected_symlinks does not apply, as in a
        // volume the workload's user owns.
        let c_dir = CString::new(dir.path().as_os_str().as_bytes()).unwrap();
        // SAFETY: chown on a valid C string.
        assert_eq!(unsafe { libc::chown(c_dir.as_ptr(), 65534, 65534) }, 0);
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let report = dir.join("report.json");
        // $PPID is sentinit's pid as the workload sees it (1 as PID 1); 1 and 2 for good measure.
        let plant = r#"for p in $PPID 1 2; do ln -sf "$VICTIM" "$DIR/.report.json.$p.tmp" || exit 99; echo "PLANTED=$p"; done; exit 5"#;
        let ran = sentinit(
            mode,
            &[
                "--report-file",
                report.to_str().unwrap(),
                "--",
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "sh",
                "-c",
                plant,
            ],
            &[("VICTIM", victim.as_os_str()), ("DIR", dir.path().as_os_str())],
        );
        let stderr = &ran.stderr;
        assert_eq!(ran.code(), 5, "{mode:?}: the workload's exit code:\n{stderr}");
        let victim_now = std::fs::read_to_string(&victim).unwrap_or_else(|e| format!("<{e}>"));
        assert_eq!(victim_now, VICTIM_TEXT, "{mode:?}: the victim was written through the symlink:\n{stderr}");
        let meta =
            std::fs::symlink_metadata(&report).unwrap_or_else(|e| panic!("{mode:?}: no report file ({e}):\n{stderr}"));
        assert!(
            meta.file_type().is_file(),
            "{mode:?}: the report file must be a regular file, is {:?}",
            meta.file_type()
        );
        let text = std::fs::read_to_string(&report).unwrap();
        let value: Value =
            serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{mode:?}: not JSON ({e}): {text}"));
        assert_eq!(value["type"], "sentinit.report", "{mode:?}: {value}");
        assert_eq!(value["exit_code"], 5, "{mode:?}: {value}");
        let planted: BTreeSet<String> = String::from_utf8_lossy(&ran.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("PLANTED="))
            .map(|p| format!(".report.json.{p}.tmp"))
            .collect();
        // $PPID (sentinit's pid) may be 1 or 2 itself.
        assert!(planted.len() >= 2, "{mode:?}: the workload planted its links: {planted:?}");
        if mode == Mode::Pid1 {
            assert!(planted.contains(".report.json.1.tmp"), "{mode:?}: {planted:?}");
        }
        for entry in std::fs::read_dir(dir.path()).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == "report.json" {
                continue;
            }
            let is_planted = planted.contains(&name);
            let link = std::fs::read_link(entry.path()).ok();
            assert!(
                is_planted && link.as_deref() == Some(victim.as_path()),
                "{mode:?}: left in the report's directory: {name} (link: {link:?})"
            );
        }
    }
}

fn mkfifo(path: &Path) {
    let _ = std::fs::remove_file(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let c_path = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: mkfifo on a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o644) }, 0, "mkfifo {}", path.display());
}

/// `SENTINIT_PROC_ROOT` naming a tree whose `self/cgroup`, `self/mountinfo`, `self/cpuset` and
/// `sys/kernel/hostname` are FIFOs nobody writes to: start-up does not block; the workload runs, its
/// exit code comes back and the report is printed, well within 10 s. Today the first open blocks
/// forever.
#[test]
fn fifos_in_the_proc_root_cannot_block_start_up() {
    let limit = Duration::from_secs(10);
    for mode in MODES {
        if !common::mode_available(mode) {
            continue;
        }
        let tree = common::Tree::copy("v2-namespaced");
        let proc = tree.0.join("proc");
        for file in ["self/cgroup", "self/mountinfo", "self/cpuset", "sys/kernel/hostname"] {
            mkfifo(&proc.join(file));
        }
        let mut cmd = common::command(mode, &["--", "sh", "-c", "exit 4"]);
        cmd.env("SENTINIT_PROC_ROOT", &proc).env("SENTINIT_SYS_ROOT", tree.sys());
        let started = Instant::now();
        let ran = run_bounded(mode, cmd, limit);
        let stderr = &ran.stderr;
        assert_eq!(ran.code(), 4, "{mode:?}:\n{stderr}");
        let reports = ran.lines_starting("REPORT\t");
        assert_eq!(reports.len(), 1, "{mode:?}: the report is printed:\n{stderr}");
        assert!(reports[0].contains("\tExit: 4 (exited)\t"), "{mode:?}:\n{stderr}");
        assert!(started.elapsed() < limit, "{mode:?}: took {:?}", started.elapsed());
    }
}

/// A decoy process tree on the host: a shell (host pid `parent`) with one child (host pid `child`),
/// killed on drop.
struct Decoy {
    process: std::process::Child,
    parent: i32,
    child: i32,
}

impl Decoy {
    fn start() -> Decoy {
        let process = Command::new("sh")
            .args(["-c", "sleep 300 & wait"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the decoy");
        let parent = process.id() as i32;
        let child = common::wait_for(Duration::from_secs(5), || common::children(parent).first().copied())
            .expect("the decoy's child");
        Decoy { process, parent, child }
    }
}

impl Drop for Decoy {
    fn drop(&mut self) {
        common::kill_tree(self.parent);
        let _ = self.process.wait();
    }
}

/// The values `KEY=value` printed on stdout by a namespace script.
fn marker(stdout: &str, key: &str) -> Option<String> {
    stdout.lines().find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_string))
}

/// Child mode with a /proc of another PID namespace (`unshare --pid --fork` without
/// `--mount-proc`): the pids sentinit reads there are the host's. Made deterministic with
/// `ns_last_pid`: on the host a decoy shell (pid H) has a child (pid c); in the new namespace a
/// bystander `sleep` gets pid c and sentinit gets pid H. sentinit's workload leaves an orphan behind.
/// The bystander is not sentinit's descendant and must survive (the namespace shell kills it itself
/// afterwards and sees SIGKILL, 137, not sentinit's SIGTERM, 143); sentinit exits 0 and warns once that
/// /proc is `not this PID namespace's`. Today sentinit takes host pid c for its descendant and
/// SIGTERMs the bystander.
#[test]
fn a_foreign_proc_never_makes_sentinit_signal_strangers() {
    if !common::require(is_root() && common::can_unshare(), "root and unshare --pid (for ns_last_pid)") {
        return;
    }
    const SCRIPT: &str = r#"
echo $((C - 1)) > /proc/sys/kernel/ns_last_pid || { echo NS_LAST_PID=unwritable; exit 99; }
sleep 300 >/dev/null 2>&1 &
B=$!
echo BYSTANDER_PID=$B
echo $((H - 1)) > /proc/sys/kernel/ns_last_pid
sh -c 'echo SENTINIT_PID=$$; exec "$S" --grace 300ms -- sh -c "$W"'
echo SENTINIT_RC=$?
kill -KILL $B 2>/dev/null
wait $B
echo BYSTANDER_STATUS=$?
"#;
    for attempt in 1..=3 {
        let decoy = Decoy::start();
        let mut cmd = Command::new("unshare");
        cmd.args(["--pid", "--fork", "sh", "-c", SCRIPT]);
        common::clean_env(&mut cmd)
            .env("C", decoy.child.to_string())
            .env("H", decoy.parent.to_string())
            .env("S", common::sentinit())
            .env("W", "(sleep 2 &) ; exit 0");
        let ran = run_bounded(Mode::Child, cmd, LIMIT);
        let stdout = String::from_utf8_lossy(&ran.stdout).into_owned();
        let stderr = &ran.stderr;
        let context =
            format!("decoy parent {} child {}\nstdout:\n{stdout}\nstderr:\n{stderr}", decoy.parent, decoy.child);
        if marker(&stdout, "NS_LAST_PID").as_deref() == Some("unwritable") {
            common::require(false, &format!("a writable /proc/sys/kernel/ns_last_pid\n{context}"));
            return;
        }
        let bystander = marker(&stdout, "BYSTANDER_PID");
        let sentinit_pid = marker(&stdout, "SENTINIT_PID");
        if bystander != Some(decoy.child.to_string()) || sentinit_pid != Some(decoy.parent.to_string()) {
            eprintln!("attempt {attempt}: ns_last_pid did not give the wanted pids; retrying\n{context}");
            continue;
        }
        eprintln!(
            "pids: decoy {} -> {}, namespace: sentinit {sentinit_pid:?}, bystander {bystander:?}",
            decoy.parent, decoy.child
        );
        assert_eq!(
            marker(&stdout, "BYSTANDER_STATUS").as_deref(),
            Some("137"),
            "the bystander must be alive until the namespace shell kills it (143: sentinit SIGTERMed it)\n{context}"
        );
        assert_eq!(marker(&stdout, "SENTINIT_RC").as_deref(), Some("0"), "{context}");
        assert_eq!(stderr.matches("not this PID namespace's").count(), 1, "one warning about /proc\n{context}");
        return;
    }
    panic!("ns_last_pid never gave the wanted pids in 3 attempts");
}

/// sentinit as PID 1 of a PID namespace whose /proc is the host's (`unshare --pid --fork` without
/// `--mount-proc`): it still reaps the orphans reparented to it (the report counts them), ends the
/// leftover one, exits with the workload's code, and warns once that /proc is `not this PID
/// namespace's`. Today it says nothing.
#[test]
fn a_foreign_proc_as_pid1_still_reaps_and_says_so_once() {
    if !common::require(is_root() && common::can_unshare(), "root and unshare --pid") {
        return;
    }
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--pid",
        "--fork",
        common::sentinit(),
        "--report",
        "json",
        "--grace",
        "300ms",
        "--",
        "sh",
        "-c",
        "for i in 1 2 3; do (sleep 0.05 &); done; (sleep 30 &); sleep 0.3; exit 5",
    ]);
    common::clean_env(&mut cmd);
    let ran = run_bounded(Mode::Pid1, cmd, LIMIT);
    let stderr = &ran.stderr;
    assert_eq!(ran.code(), 5, "{stderr}");
    let report: Value = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["type"] == "sentinit.report")
        .unwrap_or_else(|| panic!("no JSON report:\n{stderr}"));
    assert!(report["processes"].as_u64().unwrap_or(0) >= 5, "main child and 4 orphans reaped: {report}");
    assert_eq!(stderr.matches("not this PID namespace's").count(), 1, "one warning about /proc:\n{stderr}");
}

// ---------------------------------------------------------------------------------------------
// C. Small rules

/// Every `SENTINIT_*` variable the README documents in a table (the Options table, and the
/// Identity section's `SENTINIT_PROC_ROOT` and `SENTINIT_SYS_ROOT`).
fn documented_variables() -> Vec<String> {
    // README's tables and the reference in docs/.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut text = std::fs::read_to_string(root.join("README.md")).unwrap();
    for entry in std::fs::read_dir(root.join("docs")).unwrap().flatten() {
        if entry.path().extension().is_some_and(|e| e == "md") {
            text.push_str(&std::fs::read_to_string(entry.path()).unwrap());
        }
    }
    let mut found: Vec<String> = Vec::new();
    for line in text.lines().filter(|l| l.starts_with('|')) {
        for (at, _) in line.match_indices("SENTINIT_") {
            let name: String =
                line[at..].chars().take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_').collect();
            if !name.starts_with("SENTINIT_VM_") && !found.contains(&name) {
                found.push(name);
            }
        }
    }
    found
}

/// An empty `SENTINIT_*` value means unset, for every documented variable, one at a time and all
/// together: sentinit runs `sh -c 'exit 6'`, exits 6, prints the START line and the default text
/// report, and says nothing it would not say without the variable. Today `SENTINIT_REPORT=` prints
/// no report and `SENTINIT_GRACE=` (and the other durations) is a usage error, exit 2.
#[test]
fn an_empty_sentinit_variable_means_unset() {
    let variables = documented_variables();
    for expected in
        ["SENTINIT_VERBOSE", "SENTINIT_GRACE", "SENTINIT_REPORT", "SENTINIT_REPORT_FILE", "SENTINIT_EMF_NAMESPACE"]
    {
        assert!(variables.iter().any(|v| v == expected), "README table parsing lost {expected}: {variables:?}");
    }
    assert!(variables.len() >= 16, "{variables:?}");
    let mut cases: Vec<Vec<&str>> = variables.iter().map(|v| vec![v.as_str()]).collect();
    cases.push(variables.iter().map(String::as_str).collect());
    let mut failures = Vec::new();
    for mode in MODES {
        if !common::mode_available(mode) {
            continue;
        }
        let baseline = sentinit(mode, &["--", "sh", "-c", "exit 6"], &[]);
        assert_eq!(baseline.code(), 6, "{}", baseline.stderr);
        let usual: BTreeSet<&str> = baseline.stderr.lines().filter(|l| l.starts_with("sentinit:")).collect();
        for case in &cases {
            let env: Vec<(&str, &OsStr)> = case.iter().map(|name| (*name, os(""))).collect();
            let ran = sentinit(mode, &["--", "sh", "-c", "exit 6"], &env);
            let label = if case.len() == 1 { format!("{}=", case[0]) } else { "all of them empty".to_string() };
            let stderr = &ran.stderr;
            let reports = ran.lines_starting("REPORT\t");
            let unusual: Vec<&str> =
                stderr.lines().filter(|l| l.starts_with("sentinit:") && !usual.contains(l)).collect();
            if ran.code() != 6 {
                failures.push(format!("{mode:?} {label}: exit {} instead of 6:\n{stderr}", ran.code()));
            } else if reports.len() != 1 || !reports[0].contains("\tExit: 6 (exited)\t") {
                failures.push(format!("{mode:?} {label}: no default text report:\n{stderr}"));
            } else if ran.lines_starting("START ").len() != 1 {
                failures.push(format!("{mode:?} {label}: no START line:\n{stderr}"));
            } else if !unusual.is_empty() {
                failures.push(format!("{mode:?} {label}: messages an unset variable does not cause: {unusual:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{} failure(s):\n{}", failures.len(), failures.join("\n"));
}

/// The environment reaches the workload exactly as sentinit received it: started through a raw
/// execve with entries Rust's own environment reading would drop or merge (no `=`, a leading `=`,
/// duplicate names, non-UTF-8 bytes, a newline), the workload's environ begins with exactly those
/// entries in the same order, and anything after them is a variable sentinit exports
/// (`DOCKER_CONTAINER_ID`, `ECS_*`). Today `JUSTANAME` and `=startswithequals` are lost.
#[test]
fn the_environment_reaches_the_workload_byte_for_byte() {
    let dir = common::TempDir::new("inputs-environ");
    let path_var = std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into());
    let entries: Vec<Vec<u8>> = vec![
        format!("PATH={path_var}").into_bytes(),
        b"HOME=/root".to_vec(),
        b"JUSTANAME".to_vec(),
        b"DUP=1".to_vec(),
        b"LANG=C".to_vec(),
        b"DUP=2".to_vec(),
        b"BYTES=\xff\xfe".to_vec(),
        b"=startswithequals".to_vec(),
        b"EQUALS=a=b".to_vec(),
        b"EMPTY=".to_vec(),
        b"MULTI=line1\nline2".to_vec(),
    ];
    let envfile = dir.join("envp");
    let mut data = Vec::new();
    for entry in &entries {
        data.extend_from_slice(entry);
        data.push(0);
    }
    std::fs::write(&envfile, &data).unwrap();
    let wrapper = common::helper("inputs_execve.py");
    for mode in MODES {
        if !common::mode_available(mode) {
            continue;
        }
        let mut cmd = match mode {
            Mode::Child => Command::new("python3"),
            Mode::Pid1 => {
                let mut cmd = Command::new("unshare");
                cmd.args(["--pid", "--fork", "--mount-proc", "python3"]);
                cmd
            }
        };
        cmd.arg(&wrapper).arg(&envfile).args([common::sentinit(), "--", "cat", "/proc/self/environ"]);
        common::clean_env(&mut cmd);
        let ran = run_bounded(mode, cmd, LIMIT);
        let stderr = &ran.stderr;
        assert_eq!(ran.code(), 0, "{mode:?}:\n{stderr}");
        let got = environ_entries(&ran.stdout);
        let shown = |list: &[Vec<u8>]| list.iter().map(|e| show(e)).collect::<Vec<_>>();
        assert!(
            got.len() >= entries.len() && got[..entries.len()] == entries[..],
            "{mode:?}: the workload's environment must begin with exactly the entries sentinit got\nwant: {:?}\ngot:  {:?}\nstderr:\n{stderr}",
            shown(&entries),
            shown(&got)
        );
        for extra in &got[entries.len()..] {
            let name = extra.split(|b| *b == b'=').next().unwrap_or_default();
            assert!(
                extra.contains(&b'=') && is_sentinit_export(name),
                "{mode:?}: {} added, which sentinit does not export",
                show(extra)
            );
        }
    }
}

/// The one `sentinit: error:` line of a run, which must exist alone.
fn error_line(ran: &Ran) -> String {
    let errors = ran.lines_starting("sentinit: error");
    assert_eq!(errors.len(), 1, "{:?}: one error line expected:\n{}", ran.mode, ran.stderr);
    errors[0].to_string()
}

/// A script whose `#!` interpreter does not exist is found but cannot run: exit 126 and one error
/// line naming the missing interpreter, never "command not found". Today: 127, "command not found".
#[test]
fn a_script_with_a_missing_interpreter_is_126_and_says_so() {
    let dir = common::TempDir::new("inputs-interpreter");
    let script = dir.join("script.sh");
    std::fs::write(&script, "#!/nonexistent/interpreter\necho hello\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(!Path::new("/nonexistent/interpreter").exists());
    for mode in MODES {
        if !common::mode_available(mode) {
            continue;
        }
        let ran = sentinit(mode, &["--", script.to_str().unwrap()], &[]);
        assert_eq!(ran.code(), 126, "{mode:?}:\n{}", ran.stderr);
        let line = error_line(&ran);
        assert!(line.contains("interpreter") && line.contains("/nonexistent/interpreter"), "{mode:?}: {line}");
        assert!(!ran.stderr.contains("not found"), "{mode:?}:\n{}", ran.stderr);
    }
}

/// The PT_INTERP string of a 64-bit little-endian ELF: (offset, length without the NUL).
fn elf_interpreter(elf: &[u8]) -> Option<(usize, usize)> {
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" || elf[4] != 2 || elf[5] != 1 {
        return None;
    }
    let u16_at = |at: usize| u16::from_le_bytes(elf[at..at + 2].try_into().unwrap()) as usize;
    let u64_at = |at: usize| u64::from_le_bytes(elf[at..at + 8].try_into().unwrap()) as usize;
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    (0..phnum).map(|i| phoff + i * phentsize).find_map(|ph| {
        let kind = u32::from_le_bytes(elf.get(ph..ph + 4)?.try_into().ok()?);
        (kind == 3).then(|| {
            let (offset, size) = (u64_at(ph + 8), u64_at(ph + 32));
            (offset, size.saturating_sub(1))
        })
    })
}

/// A dynamically linked program whose loader (PT_INTERP) does not exist is found but cannot run:
/// exit 126 and one error line that speaks of the loader, never "command not found". The program is
/// a copy of `true` with the last character of its loader path changed. Today: 127.
#[test]
fn a_program_with_a_missing_loader_is_126_and_says_so() {
    let original = ["/bin/true", "/usr/bin/true"].into_iter().map(PathBuf::from).find(|p| p.exists());
    let Some(original) = original else {
        common::require(false, "a /bin/true");
        return;
    };
    let mut elf = std::fs::read(&original).unwrap();
    let Some((offset, length)) = elf_interpreter(&elf) else {
        common::require(false, "a dynamically linked 64-bit /bin/true");
        return;
    };
    let last = offset + length - 1;
    elf[last] = if elf[last] == b'X' { b'Y' } else { b'X' };
    let loader = OsString::from_vec(elf[offset..offset + length].to_vec());
    assert!(!Path::new(&loader).exists(), "{loader:?} exists");
    let dir = common::TempDir::new("inputs-loader");
    let program = dir.join("true-without-loader");
    std::fs::write(&program, &elf).unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    for mode in MODES {
        if !common::mode_available(mode) {
            continue;
        }
        let ran = sentinit(mode, &["--", program.to_str().unwrap()], &[]);
        assert_eq!(ran.code(), 126, "{mode:?} ({loader:?}):\n{}", ran.stderr);
        let line = error_line(&ran);
        assert!(line.contains("loader"), "{mode:?}: {line}");
        assert!(!ran.stderr.contains("not found"), "{mode:?}:\n{}", ran.stderr);
    }
}
