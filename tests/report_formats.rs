//! The report formats through the real binary: the text END/REPORT lines, the JSON field list, EMF
//! checked against the Embedded Metric Format rules, --report-file, heartbeats, the stop-signal line.
//! Counters come from a fixture cgroup v2 tree so that the values are known.

mod common;

use common::{json_lines, stderr_of as stderr, Tree};
use serde_json::Value;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn command(tree: &Tree, args: &[&str], script: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sentinit"));
    cmd.args(args)
        .args(["--", "sh", "-c", script])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()))
        .env("SENTINIT_PROC_ROOT", tree.0.join("proc"))
        .env("SENTINIT_SYS_ROOT", tree.0.join("sys"))
        .env("DIR", &tree.0)
        .stdin(Stdio::null());
    cmd
}

fn run(tree: &Tree, args: &[&str], script: &str) -> Output {
    command(tree, args, script).output().unwrap()
}

const REQUIRED: &[&str] = &[
    "type",
    "schema",
    "container_id",
    "task_arn",
    "command",
    "started_at",
    "ended_at",
    "duration_ms",
    "init_duration_ms",
    "exit_code",
    "signal",
    "exit_reason",
    "cgroup_version",
    "memory_peak_bytes",
    "memory_peak_source",
    "memory_limit_bytes",
    "memory_working_set_max_bytes",
    "memory_working_set_mean_bytes",
    "cpu_user_ms",
    "cpu_system_ms",
    "cpu_throttled_ms",
    "cpu_limit_cores",
    "cpu_mean_cores",
    "oom_killed",
    "oom_kills",
    "oom_suspected",
    "memory_limit_hits",
    "pids_peak",
    "samples",
];

fn is_rfc3339_utc(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 24
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.'
        && b[23] == b'Z'
        && [0..4, 5..7, 8..10, 11..13, 14..16, 17..19, 20..23]
            .iter()
            .all(|r| b[r.clone()].iter().all(u8::is_ascii_digit))
}

#[test]
fn json_report_has_every_field_with_its_type() {
    let tree = Tree::copy("v2-namespaced");
    let before = SystemTime::now();
    let output = run(&tree, &["--interval", "10ms", "--report", "json"], "sleep 0.1; exit 3");
    assert_eq!(output.status.code(), Some(3));
    let reports = json_lines(&output, "sentinit.report");
    assert_eq!(reports.len(), 1, "{}", stderr(&output));
    let r = &reports[0];
    for key in REQUIRED {
        assert!(r.get(key).is_some(), "missing {key} in {r}");
    }
    assert_eq!(r["schema"], 1);
    assert_eq!(r["command"], serde_json::json!(["sh", "-c", "sleep 0.1; exit 3"]));
    assert_eq!(r["exit_code"], 3);
    assert_eq!(r["signal"], Value::Null);
    assert_eq!(r["exit_reason"], "exited");
    assert!(r["init_duration_ms"].as_f64().is_some_and(|init| init > 0.0), "{r}");
    // The order of the line itself (serde_json's map sorts): each new field beside the one it explains.
    let line = stderr(&output).lines().find(|l| l.starts_with("{\"type\":\"sentinit.report\"")).unwrap().to_string();
    let at = |key: &str| line.find(&format!(",\"{key}\":")).unwrap_or_else(|| panic!("{key} in {line}"));
    assert!(at("duration_ms") < at("init_duration_ms") && at("init_duration_ms") < at("exit_code"), "{line}");
    assert!(line.contains(r#","signal":null,"exit_reason":"exited","#), "{line}");
    assert!(is_rfc3339_utc(r["started_at"].as_str().unwrap()), "{r}");
    assert!(is_rfc3339_utc(r["ended_at"].as_str().unwrap()), "{r}");
    assert!(r["started_at"].as_str() <= r["ended_at"].as_str());
    let duration = r["duration_ms"].as_f64().unwrap();
    assert!(duration >= 100.0 && (duration as u128) <= before.elapsed().unwrap().as_millis() + 1, "{r}");
    for key in ["cpu_user_ms", "cpu_system_ms", "samples", "memory_limit_bytes", "oom_kills"] {
        assert!(r[key].is_u64(), "{key} in {r}");
    }
    assert!(r["cpu_mean_cores"].is_f64() || r["cpu_mean_cores"].is_u64(), "{r}");
    assert!(r["oom_killed"].is_boolean() && r["oom_suspected"].is_boolean());
    // Nothing but the JSON line, no text report.
    assert!(!stderr(&output).contains("REPORT\t"));
}

#[test]
fn text_report_is_an_end_line_then_the_tab_separated_report() {
    let tree = Tree::copy("v1");
    let output = run(&tree, &["--interval", "10ms"], "sleep 0.05; kill -9 $$");
    assert_eq!(output.status.code(), Some(137));
    let text = stderr(&output);
    let lines: Vec<&str> = text.lines().collect();
    let at = lines.iter().position(|l| l.starts_with("REPORT\t")).unwrap_or_else(|| panic!("{text}"));
    assert_eq!(lines[at - 1], "END container=unknown task=unknown");
    let fields: Vec<&str> = lines[at].split('\t').collect();
    let labels: Vec<&str> = fields.iter().map(|f| f.split(": ").next().unwrap()).collect();
    assert_eq!(
        labels,
        ["REPORT", "Duration", "Init Duration", "Exit", "Max Memory Used", "Memory Limit", "CPU", "Throttled", "OOM"],
        "{}",
        lines[at]
    );
    for (field, label) in [(fields[1], "Duration: "), (fields[2], "Init Duration: ")] {
        let value = field.strip_prefix(label).and_then(|v| v.strip_suffix(" ms"));
        assert!(value.is_some_and(|v| v.parse::<f64>().is_ok()), "{field}");
    }
    assert_eq!(fields[3], "Exit: 137 (SIGKILL, signaled)");
    assert_eq!(fields[4], "Max Memory Used: 20 MiB", "sampled usage of the fixture");
    assert_eq!(fields[5], "Memory Limit: 64 MiB");
    assert!(fields[6].starts_with("CPU: ") && fields[6].contains(" s user, ") && fields[6].ends_with(" s sys"));
    assert_eq!(fields[7], "Throttled: 0.00 s");
    assert_eq!(fields[8], "OOM: none");
    assert_eq!(text.matches("REPORT\t").count(), 1);
}

const EMF_UNITS: &[&str] = &[
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// The Embedded Metric Format rules: `_aws` with a ms Timestamp and CloudWatchMetrics directives, a
/// valid namespace, dimension sets naming string members of the root (at most 30 each), at most 100
/// metrics each naming a number at the root, units from the allowed list.
fn check_emf(event: &Value, namespace: &str) -> usize {
    let root = event.as_object().expect("the event is one JSON object");
    let aws = root["_aws"].as_object().expect("_aws object");
    let timestamp = aws["Timestamp"].as_u64().expect("Timestamp is a number");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    assert!(timestamp <= now && now - timestamp < 60_000, "Timestamp is ms since the epoch: {timestamp}");
    let directives = aws["CloudWatchMetrics"].as_array().expect("CloudWatchMetrics array");
    assert!(!directives.is_empty());
    let mut metrics_seen = 0;
    for directive in directives {
        let ns = directive["Namespace"].as_str().expect("Namespace string");
        assert_eq!(ns, namespace);
        assert!(!ns.is_empty() && ns.len() <= 255);
        assert!(ns.chars().all(|c| c.is_ascii_alphanumeric() || "._#:/-".contains(c)), "{ns}");
        for set in directive["Dimensions"].as_array().expect("Dimensions array") {
            let set = set.as_array().expect("a dimension set is an array");
            assert!(set.len() <= 30);
            for name in set {
                let name = name.as_str().expect("dimension names are strings");
                assert!(root[name].is_string(), "dimension {name} must be a string member of the root");
            }
        }
        let metrics = directive["Metrics"].as_array().expect("Metrics array");
        assert!(!metrics.is_empty() && metrics.len() <= 100);
        for metric in metrics {
            let name = metric["Name"].as_str().expect("Name");
            assert!(root.get(name).is_some_and(Value::is_number), "metric {name} must be a number at the root");
            let unit = metric.get("Unit").map_or("None", |u| u.as_str().expect("Unit string"));
            assert!(EMF_UNITS.contains(&unit), "unit {unit}");
            metrics_seen += 1;
        }
    }
    metrics_seen
}

#[test]
fn emf_follows_the_embedded_metric_format_rules() {
    let tree = Tree::copy("v2-namespaced");
    let output =
        run(&tree, &["--interval", "10ms", "--report", "emf", "--emf-namespace", "batch/jobs.v1"], "sleep 0.05");
    let events = json_lines(&output, "sentinit.report");
    assert_eq!(events.len(), 1, "{}", stderr(&output));
    let event = &events[0];
    assert!(check_emf(event, "batch/jobs.v1") >= 10, "{event}");
    // No task family or container name known: one empty dimension set.
    assert_eq!(event["_aws"]["CloudWatchMetrics"][0]["Dimensions"], serde_json::json!([[]]));
    // The same flat fields as the JSON report.
    for key in REQUIRED {
        assert!(event.get(key).is_some(), "missing {key}");
    }

    // With most values unknown (the host's root cgroup), no metric may point at a null.
    let tree = Tree::copy("v2-host-root");
    let output = run(&tree, &["--report", "emf"], "exit 0");
    let events = json_lines(&output, "sentinit.report");
    assert_eq!(events[0]["memory_limit_bytes"], Value::Null);
    check_emf(&events[0], "sentinit");
}

#[test]
fn none_prints_no_report_and_several_formats_print_each() {
    let tree = Tree::copy("v2-namespaced");
    let output = run(&tree, &["--report", "none"], "exit 0");
    let text = stderr(&output);
    assert!(!text.contains("REPORT") && !text.contains("END ") && !text.contains('{'), "{text}");
    assert_eq!(output.status.code(), Some(0));

    let output = run(&tree, &["--report", "json,text"], "exit 0");
    let text = stderr(&output);
    assert_eq!(text.matches("REPORT\t").count(), 1, "{text}");
    assert_eq!(json_lines(&output, "sentinit.report").len(), 1, "{text}");

    // A format named twice is printed once.
    let output = run(&tree, &["--report", "text,json,TEXT, json"], "exit 0");
    let text = stderr(&output);
    assert_eq!(text.matches("REPORT\t").count(), 1, "{text}");
    assert_eq!(text.matches("END container=").count(), 1, "{text}");
    assert_eq!(json_lines(&output, "sentinit.report").len(), 1, "{text}");
}

#[test]
fn an_invalid_emf_namespace_is_a_usage_error() {
    let tree = Tree::copy("v2-namespaced");
    let marker = tree.0.join("ran");
    for namespace in ["my jobs", "", ":jobs", "AWS/EC2", &"n".repeat(256)] {
        let output = run(&tree, &["--report", "emf", "--emf-namespace", namespace], "touch $DIR/ran");
        assert_eq!(output.status.code(), Some(2), "{namespace:?}: {}", stderr(&output));
        assert!(stderr(&output).contains("--emf-namespace"), "{}", stderr(&output));
        assert!(!marker.exists(), "a usage error runs nothing");
    }
    let output =
        command(&tree, &["--report", "emf"], "touch $DIR/ran").env("SENTINIT_EMF_NAMESPACE", "jobs?").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("SENTINIT_EMF_NAMESPACE"), "{}", stderr(&output));
    assert!(!marker.exists());
}

#[test]
fn emf_dimensions_come_from_the_task_family_and_container_name() {
    // The ECS container metadata file (read locally, no network) names the task family and container.
    let tree = Tree::copy("v2-namespaced");
    let metadata = tree.0.join("ecs-container-metadata.json");
    let ready = |family: &str, name: &str| {
        serde_json::json!({
            "Cluster": "prod",
            "TaskARN": "arn:aws:ecs:us-west-2:111122223333:task/prod/feea4648b33480a0508ca2d215f7e5c1",
            "TaskDefinitionFamily": family,
            "TaskDefinitionRevision": "42",
            "ContainerName": name,
            "ContainerID": "9b3ff0c1d6f8f5bd1d20b4c2b37e5a4f6a7c8d9e0f1a2b3c4d5e6f708192a3b4",
            "MetadataFileStatus": "READY"
        })
        .to_string()
    };
    std::fs::write(&metadata, ready("etl-nightly", "worker")).unwrap();
    let output = command(&tree, &["--interval", "10ms", "--report", "emf"], "sleep 0.05")
        .env("ECS_CONTAINER_METADATA_FILE", &metadata)
        .output()
        .unwrap();
    let events = json_lines(&output, "sentinit.report");
    assert_eq!(events.len(), 1, "{}", stderr(&output));
    let event = &events[0];
    check_emf(event, "sentinit");
    assert_eq!(
        event["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
        serde_json::json!([["task_family", "container_name"]])
    );
    assert_eq!(event["task_family"], "etl-nightly");
    assert_eq!(event["container_name"], "worker");
    assert_eq!(event["task_arn"], "arn:aws:ecs:us-west-2:111122223333:task/prod/feea4648b33480a0508ca2d215f7e5c1");

    // An empty family is unknown, and not a dimension (CloudWatch rejects empty dimension values; the
    // report's own guard against an empty string is unit-tested in report.rs).
    std::fs::write(&metadata, ready("", "worker")).unwrap();
    let output =
        command(&tree, &["--report", "emf"], "exit 0").env("ECS_CONTAINER_METADATA_FILE", &metadata).output().unwrap();
    let event = &json_lines(&output, "sentinit.report")[0];
    check_emf(event, "sentinit");
    assert_eq!(event["task_family"], Value::Null, "{event}");
    assert_eq!(event["_aws"]["CloudWatchMetrics"][0]["Dimensions"], serde_json::json!([["container_name"]]));
}

#[test]
fn report_file_gets_the_json_object_atomically() {
    let tree = Tree::copy("v2-namespaced");
    let out_dir = tree.0.join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let path = out_dir.join("report.json");
    std::fs::write(&path, "old content").unwrap();
    let output = run(&tree, &["--report", "json", "--report-file", path.to_str().unwrap()], "exit 6");
    assert_eq!(output.status.code(), Some(6));
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let printed = &json_lines(&output, "sentinit.report")[0];
    assert_eq!(&written, printed);
    let left: Vec<_> = std::fs::read_dir(&out_dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from("report.json")], "no temporary file is left behind");

    // An unwritable path: a warning, the exit code unchanged, the report still printed.
    let output = run(&tree, &["--report", "text", "--report-file", "/nonexistent-dir/r.json"], "exit 6");
    assert_eq!(output.status.code(), Some(6));
    let text = stderr(&output);
    assert!(text.contains("warning: cannot write the report to /nonexistent-dir/r.json"), "{text}");
    assert!(text.contains("REPORT\t"));
}

#[test]
fn heartbeat_lines_while_the_workload_runs() {
    let tree = Tree::copy("v2-namespaced");
    let output = run(&tree, &["--interval", "10ms", "--heartbeat", "50ms", "--report", "none"], "sleep 0.4");
    let beats = json_lines(&output, "sentinit.heartbeat");
    assert!(beats.len() >= 3, "{}", stderr(&output));
    for beat in &beats {
        assert_eq!(beat["memory_working_set_bytes"], 8388608, "{beat}");
        assert_eq!(beat["memory_limit_bytes"], 134217728);
        assert_eq!(beat["oom_kills"], 0);
        assert!(beat["elapsed_ms"].as_u64().unwrap() >= 50);
    }
    // Without --heartbeat: none.
    let output = run(&tree, &["--interval", "10ms", "--report", "none"], "sleep 0.1");
    assert!(json_lines(&output, "sentinit.heartbeat").is_empty());
}

#[test]
fn a_forwarded_stop_signal_prints_the_usage_so_far_and_the_report_follows_once() {
    let tree = Tree::copy("v2-namespaced");
    let marker = tree.0.join("started");
    let child =
        command(&tree, &["--interval", "10ms"], "trap 'exit 0' TERM; touch $DIR/started; while :; do sleep 0.05; done")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !marker.exists() {
        assert!(Instant::now() < deadline, "the workload never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: kill on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let output = child.wait_with_output().unwrap();
    let text = stderr(&output);
    let stop: Vec<&str> = text.lines().filter(|l| l.starts_with("sentinit: forwarded SIGTERM after ")).collect();
    assert_eq!(stop.len(), 1, "{text}");
    assert!(stop[0].contains("working set 8 MiB of 128 MiB, CPU "), "{}", stop[0]);
    assert!(stop[0].contains(", throttled 0.00 s, OOM kills 0"), "{}", stop[0]);
    assert_eq!(text.matches("REPORT\t").count(), 1, "{text}");
    assert_eq!(output.status.code(), Some(0));
}
