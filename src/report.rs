//! The final report, printed once to stderr when the workload ends, plus the lines printed while it
//! runs (heartbeats, the usage at a forwarded stop signal).
//!
//! Formats: `text` (an END line and a tab-separated REPORT line in the spirit of AWS Lambda's), `json`
//! (one flat object on one line), `emf` (that object with a CloudWatch Embedded Metric Format `_aws`
//! block, so CloudWatch Logs turns each run into metrics with no agent), `none`. `--report-file` gets the
//! JSON object, written to a temporary file and renamed so that a reader never sees half of it. The
//! temporary file has an unpredictable name and is created with O_EXCL and O_NOFOLLOW, so that a
//! workload running as another user cannot plant a symlink there and make root's sentinit overwrite a
//! file of its choosing; the write (fsync included) runs on a thread and is given up after a bound, so
//! a stalled filesystem cannot keep sentinit from exiting. Unknown values are null in JSON and
//! "unknown" in text, never a made-up 0.

use crate::accounting::files::Limit;
use crate::accounting::{Progress, Usage};
use crate::config::Config;
use crate::exit_reason;
use crate::identity::Identity;
use crate::signals;
use crate::supervise::{Exit, Outcome};
use serde_json::{json, Value};
use std::ffi::OsString;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Prints the report in every format `config.report` asks for and writes `--report-file`, giving up
/// on the file at `deadline`.
pub fn emit(config: &Config, identity: &Identity, usage: &Usage, outcome: &Outcome, deadline: std::time::Instant) {
    let fields = fields(identity, usage, outcome, &config.command);
    // The file first, on its own thread: a stderr that does not drain must not use up its time.
    let file = config.report_file.as_ref().map(|path| {
        let path = std::path::PathBuf::from(path);
        (path.clone(), start_writing(path, to_json(&fields)))
    });
    for format in &config.report {
        match format.as_str() {
            "text" => {
                crate::log::line(format_args!("{}", end_line(identity)));
                crate::log::line(format_args!("{}", report_line(usage, outcome)));
            }
            "json" => crate::log::line(format_args!("{}", to_json(&fields))),
            "emf" => crate::log::line(format_args!("{}", to_emf(&fields, &config.emf_namespace, usage))),
            _ => {}
        }
    }
    if let Some((path, writing)) = file {
        if let Err(e) = writing.wait(deadline) {
            crate::warn!("cannot write the report to {}: {e}", path.display());
        }
    }
}

/// A file being written: on a thread, or already done here when no thread could be created.
pub(crate) enum Writing {
    Thread(std::sync::mpsc::Receiver<std::io::Result<()>>),
    Done(std::io::Result<()>),
}

/// Starts [`write_atomically`] on a thread of its own, so that a stalled filesystem (fsync on a hung
/// NFS mount) costs at most the wait in [`Writing::wait`].
fn start_writing(path: std::path::PathBuf, text: String) -> Writing {
    in_background(std::sync::Arc::new(move || write_atomically(&path, &text)))
}

/// Runs the file job `job` on a thread of its own (or here, when no thread can be created), for
/// [`Writing::wait`] to wait for within a bound: the final files share this so that none of them can
/// keep sentinit from exiting. (A trait object: one copy of the thread code for every job.)
pub(crate) fn in_background(job: std::sync::Arc<dyn Fn() -> std::io::Result<()> + Send + Sync>) -> Writing {
    let (sender, receiver) = std::sync::mpsc::sync_channel(1);
    let for_thread = job.clone();
    let spawned = std::thread::Builder::new().stack_size(64 * 1024).spawn(move || sender.send(for_thread()).ok());
    match spawned {
        Ok(_) => Writing::Thread(receiver),
        Err(_) => Writing::Done(job()),
    }
}

impl Writing {
    /// The outcome, waiting for the thread until `deadline`.
    pub(crate) fn wait(self, deadline: std::time::Instant) -> std::io::Result<()> {
        let receiver = match self {
            Writing::Done(result) => return result,
            Writing::Thread(receiver) => receiver,
        };
        match receiver.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())) {
            Ok(result) => result,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "not finished in time (a stalled filesystem?); exiting without it",
            )),
        }
    }
}

/// The END line, the counterpart of START.
pub fn end_line(identity: &Identity) -> String {
    identity.line("END")
}

/// `REPORT\tDuration: 1234.56 ms\tInit Duration: 1.23 ms\tExit: 137 (SIGKILL, oom_killed)\t
/// Max Memory Used: 63.9 MiB\tMemory Limit: 64 MiB\tCPU: 1.20 s user, 0.10 s sys\tThrottled: 0.00 s\t
/// OOM: killed (1)`. `Init Duration` is left out when the workload never started, as Lambda leaves it
/// out when there was no init.
pub fn report_line(usage: &Usage, outcome: &Outcome) -> String {
    let reason = exit_reason::classify(outcome, usage).as_str();
    let exit = match outcome.exit {
        Exit::Code(code) => format!("{code} ({reason})"),
        Exit::Signal(signal) => format!("{} ({}, {reason})", outcome.exit.code(), signals::name(signal)),
    };
    let init =
        outcome.init_duration.map_or(String::new(), |init| format!("\tInit Duration: {} ms", hundredths_of_ms(init)));
    let mut memory = usage.memory_peak_bytes.map_or("unknown".to_string(), mib);
    if let (Some("shared"), Some(others), Some(_)) =
        (usage.cgroup_scope, usage.cgroup_foreign_processes, usage.memory_peak_bytes)
    {
        // The figure is the group's, not the workload's alone: say so where it is read.
        memory
            .push_str(&format!(" (cgroup shared with {others} other process{})", if others == 1 { "" } else { "es" }));
    }
    let limit = match usage.memory_limit {
        Some(Limit::Value(bytes)) => mib(bytes),
        Some(Limit::Unlimited) => "unlimited".to_string(),
        None => "unknown".to_string(),
    };
    let cpu = match (usage.cpu_user_ms, usage.cpu_system_ms) {
        (Some(user), Some(system)) => format!("{} user, {} sys", seconds(user), seconds(system)),
        _ => "unknown".to_string(),
    };
    let throttled = usage.cpu_throttled_ms.map_or("unknown".to_string(), seconds);
    let oom = match (usage.oom_killed, usage.oom_kills, usage.oom_suspected) {
        (Some(true), Some(kills), _) => match usage.oom_victims.as_deref().and_then(|v| v.first()) {
            // The first victim by name: the tab that separates fields is escaped in a name.
            Some(v) => format!(
                "killed ({kills}): {}[{}] {}",
                v.comm.as_deref().unwrap_or("?").replace('\t', "\\t"),
                v.pid,
                mib(v.rss_bytes)
            ),
            None => format!("killed ({kills})"),
        },
        (Some(false), ..) => "none".to_string(),
        (_, _, Some(true)) => "suspected".to_string(),
        _ => "unknown".to_string(),
    };
    format!(
        "REPORT\tDuration: {} ms{init}\tExit: {exit}\tMax Memory Used: {memory}\tMemory Limit: {limit}\tCPU: {cpu}\tThrottled: {throttled}\tOOM: {oom}",
        hundredths_of_ms(usage.duration)
    )
}

/// The flat report object, in a fixed key order.
pub fn fields(
    identity: &Identity,
    usage: &Usage,
    outcome: &Outcome,
    command: &[OsString],
) -> Vec<(&'static str, Value)> {
    let ended_at = usage.started_at + usage.duration;
    let signal = match outcome.exit {
        Exit::Signal(signal) => Some(signals::name(signal).to_string()),
        Exit::Code(_) => None,
    };
    vec![
        ("type", json!("sentinit.report")),
        ("schema", json!(1)),
        ("container_id", json!(identity.container_id)),
        ("task_arn", json!(identity.task_arn)),
        ("task_family", json!(identity.family)),
        ("container_name", json!(identity.container_name)),
        ("batch_job_id", json!(identity.batch_job_id)),
        ("batch_job_attempt", json!(identity.batch_job_attempt)),
        ("batch_job_queue", json!(identity.batch_job_queue)),
        ("command", json!(command.iter().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>())),
        ("started_at", json!(rfc3339(usage.started_at))),
        ("ended_at", json!(rfc3339(ended_at))),
        ("duration_ms", json!(round(millis(usage.duration), 2))),
        ("init_duration_ms", json!(outcome.init_duration.map(|init| round(millis(init), 2)))),
        ("exit_code", json!(outcome.exit.code())),
        ("signal", json!(signal)),
        ("exit_reason", json!(exit_reason::classify(outcome, usage).as_str())),
        ("timed_out", Value::Bool(outcome.timed_out)),
        ("killed_by_sentinit", json!(outcome.killed_by_sentinit)),
        ("stop_signal", json!(outcome.stop_signal.map(signals::name))),
        ("cgroup_version", json!(usage.cgroup_version)),
        ("cgroup_scope", json!(usage.cgroup_scope)),
        ("cgroup_foreign_processes", json!(usage.cgroup_foreign_processes)),
        ("memory_peak_bytes", json!(usage.memory_peak_bytes)),
        ("memory_peak_source", json!(usage.memory_peak_source)),
        ("memory_limit_bytes", json!(usage.memory_limit_bytes())),
        ("memory_working_set_max_bytes", json!(usage.memory_working_set_max_bytes)),
        ("memory_working_set_mean_bytes", json!(usage.memory_working_set_mean_bytes)),
        ("max_rss_bytes", json!(usage.max_rss_bytes)),
        ("swap_peak_bytes", json!(usage.swap_peak_bytes)),
        ("cpu_user_ms", json!(usage.cpu_user_ms)),
        ("cpu_system_ms", json!(usage.cpu_system_ms)),
        ("cpu_throttled_ms", json!(usage.cpu_throttled_ms)),
        ("cpu_limit_cores", json!(usage.cpu_limit_cores().map(|c| round(c, 3)))),
        ("cpu_mean_cores", json!(usage.cpu_mean_cores.map(|c| round(c, 3)))),
        ("cpu_max_cores", json!(usage.cpu_max_cores.map(|c| round(c, 3)))),
        ("oom_killed", json!(usage.oom_killed)),
        ("oom_kills", json!(usage.oom_kills)),
        ("oom_suspected", json!(usage.oom_suspected)),
        ("memory_limit_hits", json!(usage.memory_limit_hits)),
        ("pids_peak", json!(usage.pids_peak)),
        ("memory_pressure_some_ms", json!(usage.memory_pressure_some_ms)),
        ("memory_pressure_full_ms", json!(usage.memory_pressure_full_ms)),
        ("cpu_pressure_some_ms", json!(usage.cpu_pressure_some_ms)),
        ("processes", json!(usage.processes)),
        ("samples", json!(usage.samples)),
        ("top_processes", Value::Array(usage.top_processes.iter().map(|p| p.to_json()).collect())),
        ("oom_victims", json!(usage.oom_victims.as_ref().map(|v| v.iter().map(|v| v.to_json()).collect::<Vec<_>>()))),
    ]
}

/// One line of JSON with the keys in the order given.
pub fn to_json(fields: &[(&str, Value)]) -> String {
    let members: Vec<String> = fields.iter().map(|(key, value)| format!("{}:{}", Value::from(*key), value)).collect();
    format!("{{{}}}", members.join(","))
}

/// The metrics published through EMF and their CloudWatch units.
const EMF_METRICS: &[(&str, &str)] = &[
    ("duration_ms", "Milliseconds"),
    ("init_duration_ms", "Milliseconds"),
    ("exit_code", "None"),
    ("memory_peak_bytes", "Bytes"),
    ("memory_limit_bytes", "Bytes"),
    ("memory_working_set_max_bytes", "Bytes"),
    ("memory_working_set_mean_bytes", "Bytes"),
    ("cpu_user_ms", "Milliseconds"),
    ("cpu_system_ms", "Milliseconds"),
    ("cpu_throttled_ms", "Milliseconds"),
    ("cpu_mean_cores", "None"),
    ("oom_kills", "Count"),
    ("memory_limit_hits", "Count"),
    ("pids_peak", "Count"),
];

/// The JSON object plus an `_aws` block: only metrics whose value is a number are declared (a null
/// would be rejected), dimensions are the task family and container name when known (an empty string is
/// not known: CloudWatch rejects an empty dimension value).
pub fn to_emf(fields: &[(&str, Value)], namespace: &str, usage: &Usage) -> String {
    let number = |name: &str| fields.iter().any(|(key, value)| *key == name && value.is_number());
    let metrics: Vec<Value> = EMF_METRICS
        .iter()
        .filter(|(name, _)| number(name))
        .map(|(name, unit)| json!({"Name": name, "Unit": unit}))
        .collect();
    let dimensions: Vec<&str> = ["task_family", "container_name"]
        .into_iter()
        .filter(|name| fields.iter().any(|(key, value)| key == name && value.as_str().is_some_and(|v| !v.is_empty())))
        .collect();
    let ended_ms =
        (usage.started_at + usage.duration).duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64;
    let aws = json!({
        "Timestamp": ended_ms,
        "CloudWatchMetrics": [{"Namespace": namespace, "Dimensions": [dimensions], "Metrics": metrics}],
    });
    let mut with_aws = vec![("_aws", aws)];
    with_aws.extend(fields.iter().cloned());
    to_json(&with_aws)
}

/// The supervisor's observer for a run: the accountant does the counting, and every line it has to
/// say while the workload runs (heartbeats, the 90 % warning, the usage at a stop signal or at the
/// deadline) is printed here, so that accounting never calls the report: supervision -> accounting ->
/// report.
pub struct Narrator<'a> {
    pub accountant: &'a mut crate::accounting::Accountant,
}

impl Narrator<'_> {
    fn say(&mut self) {
        use crate::accounting::Event;
        for event in self.accountant.take_events() {
            match event {
                Event::NearLimit { working_set, limit } => crate::warn!(
                    "the working set ({}) has passed 90% of the memory limit ({})",
                    mib(working_set),
                    mib(limit)
                ),
                Event::Heartbeat(progress) => heartbeat(&progress),
                Event::StopForwarded { signal, progress } => stop_line(signal, &progress),
                Event::TimedOut { timeout, signal, kill_in, progress } => {
                    timeout_line(timeout, signal, kill_in, &progress)
                }
            }
        }
    }
}

impl crate::supervise::Observer for Narrator<'_> {
    fn tick(&mut self) {
        self.accountant.tick();
        self.say();
    }
    fn stop_forwarded(&mut self, signal: i32) {
        self.accountant.stop_forwarded(signal);
        self.say();
    }
    fn timed_out(&mut self, timeout: Duration, signal: i32, kill_in: Duration) {
        self.accountant.timed_out(timeout, signal, kill_in);
        self.say();
    }
    fn main_exited(&mut self) {
        self.accountant.main_exited();
        self.say();
    }
    fn child_exiting(&mut self, exiting: &crate::supervise::Exiting) {
        self.accountant.child_exiting(exiting);
    }
    fn child_reaped(&mut self, reaped: &crate::supervise::Reaped) {
        self.accountant.child_reaped(reaped);
    }
}

/// A heartbeat: one JSON line with the usage so far.
pub fn heartbeat(progress: &Progress) {
    let limit = match progress.memory_limit {
        Some(Limit::Value(bytes)) => Some(bytes),
        _ => None,
    };
    let line = to_json(&[
        ("type", json!("sentinit.heartbeat")),
        ("elapsed_ms", json!(progress.elapsed.as_millis() as u64)),
        ("memory_working_set_bytes", json!(progress.working_set)),
        ("memory_limit_bytes", json!(limit)),
        ("cpu_ms", json!(progress.cpu_us.map(|us| us / 1000))),
        ("cpu_cores", json!(progress.cpu_cores.map(|c| round(c, 3)))),
        ("cpu_throttled_ms", json!(progress.throttled_us.map(|us| us / 1000))),
        ("oom_kills", json!(progress.oom_kills)),
    ]);
    crate::log::line(format_args!("{line}"));
}

/// The one line printed when a stop signal is forwarded, so the logs tell the story even if an
/// orchestrator's SIGKILL follows before the report.
pub fn stop_line(signal: i32, progress: &Progress) {
    let after = seconds(progress.elapsed.as_millis() as u64);
    usage_line(format_args!("forwarded {} after {after}", signals::name(signal)), progress);
}

/// The line at `--timeout`: what sentinit does about it, and the usage so far, like [`stop_line`].
/// `signal` is 0 when `--rewrite` drops it.
pub fn timeout_line(timeout: Duration, signal: i32, kill_in: Duration, progress: &Progress) {
    let (timeout, kill_in) = (seconds(timeout.as_millis() as u64), seconds(kill_in.as_millis() as u64));
    let sending = match signal {
        0 => format!("dropped by --rewrite (SIGKILL in {kill_in})"),
        // Nothing follows a SIGKILL: promising another would only puzzle the reader.
        libc::SIGKILL => "sending SIGKILL".to_string(),
        _ => format!("sending {} (SIGKILL in {kill_in})", signals::name(signal)),
    };
    usage_line(format_args!("timeout after {timeout}: {sending}"), progress);
}

/// `sentinit: WHAT: working set ..., CPU ..., throttled ..., OOM kills N`.
fn usage_line(what: std::fmt::Arguments, progress: &Progress) {
    let working_set = progress.working_set.map_or("unknown".to_string(), mib);
    let limit = match progress.memory_limit {
        Some(Limit::Value(bytes)) => format!(" of {}", mib(bytes)),
        Some(Limit::Unlimited) => " (no limit)".to_string(),
        None => String::new(),
    };
    let unknown_or = |value: Option<u64>, show: fn(u64) -> String| value.map_or("unknown".to_string(), show);
    crate::log::line(format_args!(
        "sentinit: {what}: working set {working_set}{limit}, CPU {}, throttled {}, OOM kills {}",
        unknown_or(progress.cpu_us, |us| seconds(us / 1000)),
        unknown_or(progress.throttled_us, |us| seconds(us / 1000)),
        unknown_or(progress.oom_kills, |kills| kills.to_string()),
    ));
}

/// Bytes as MiB with one decimal, `.0` dropped: `63.9 MiB`, `64 MiB`.
pub fn mib(bytes: u64) -> String {
    // Fixed-point in integers: f64 formatting would pull 10 KiB of float printing into the binary.
    let tenths = (u128::from(bytes) * 10 + (1 << 19)) >> 20;
    match tenths % 10 {
        0 => format!("{} MiB", tenths / 10),
        frac => format!("{}.{frac} MiB", tenths / 10),
    }
}

/// Milliseconds as seconds with two decimals: `1.20 s`.
fn seconds(ms: u64) -> String {
    let hundredths = (ms + 5) / 10;
    format!("{}.{:02} s", hundredths / 100, hundredths % 100)
}

/// A duration in milliseconds with two decimals: `1234.56`.
fn hundredths_of_ms(duration: Duration) -> String {
    let hundredths = (duration.as_micros() + 5) / 10;
    format!("{}.{:02}", hundredths / 100, hundredths % 100)
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

/// RFC 3339 in UTC with milliseconds: `2026-11-03T12:00:00.123Z`.
pub fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        since.subsec_millis()
    )
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Writes `text` to a new temporary file beside `path` (unpredictable name, O_EXCL, O_NOFOLLOW), then
/// renames it over `path`; rename replaces a symlink at `path` itself rather than following it.
fn write_atomically(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let name =
        path.file_name().ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"))?;
    let (file, temporary) = (0..8)
        .find_map(|_| {
            let mut temporary_name = OsString::from(".");
            temporary_name.push(name);
            temporary_name.push(format!(".{:016x}.tmp", crate::paths::random_u64()));
            let temporary = path.with_file_name(temporary_name);
            let opened = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
                .open(&temporary);
            match opened {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => None,
                other => Some(other.map(|file| (file, temporary))),
            }
        })
        .unwrap_or_else(|| {
            Err(std::io::Error::new(std::io::ErrorKind::AlreadyExists, "no free temporary name beside it"))
        })?;
    let result = (|| {
        let mut file = file;
        file.write_all(text.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_mib_and_seconds() {
        assert_eq!(mib(67108864), "64 MiB");
        assert_eq!(mib(67003392), "63.9 MiB");
        assert_eq!(seconds(1200), "1.20 s");
    }

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_709_210_096_789); // a leap day
        assert_eq!(rfc3339(t), "2024-02-29T12:34:56.789Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(951_868_800)), "2000-03-01T00:00:00.000Z");
    }

    fn sample_usage() -> Usage {
        Usage {
            started_at: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            duration: Duration::from_millis(1500),
            cgroup_version: Some(2),
            cgroup_scope: Some("container"),
            cgroup_foreign_processes: Some(0),
            memory_peak_bytes: Some(1 << 20),
            memory_peak_source: Some("memory.peak"),
            memory_limit: Some(Limit::Unlimited),
            cpu_user_ms: Some(10),
            cpu_system_ms: Some(2),
            cpu_mean_cores: Some(0.008),
            oom_killed: Some(false),
            oom_kills: Some(0),
            oom_suspected: Some(false),
            memory_limit_hits: Some(0),
            samples: 1,
            oom_victims: Some(Vec::new()),
            ..Usage::unknown()
        }
    }

    #[test]
    fn emf_dimensions_are_family_and_container_name_when_known() {
        let usage = sample_usage();
        let outcome = Outcome {
            exit: Exit::Code(0),
            ended: std::time::Instant::now(),
            killed_by_sentinit: false,
            escalated: false,
            stop_signal: None,
            timed_out: false,
            reaped: 1,
            init_duration: Some(Duration::from_micros(1234)),
        };
        let identity =
            Identity { family: Some("etl".into()), container_name: Some("worker".into()), ..Default::default() };
        let fields = fields(&identity, &usage, &outcome, &[OsString::from("true")]);
        let event: Value = serde_json::from_str(&to_emf(&fields, "ns", &usage)).unwrap();
        let directive = &event["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Dimensions"], json!([["task_family", "container_name"]]));
        assert_eq!(event["task_family"], "etl");
        assert_eq!(event["container_name"], "worker");
        assert_eq!(event["_aws"]["Timestamp"], 1_800_000_001_500u64);
        let names: Vec<&str> =
            directive["Metrics"].as_array().unwrap().iter().map(|m| m["Name"].as_str().unwrap()).collect();
        assert!(names.contains(&"memory_peak_bytes") && !names.contains(&"memory_limit_bytes"), "{names:?}");
        let line = report_line(&usage, &outcome);
        assert_eq!(
            line,
            "REPORT\tDuration: 1500.00 ms\tInit Duration: 1.23 ms\tExit: 0 (exited)\tMax Memory Used: 1 MiB\tMemory Limit: unlimited\tCPU: 0.01 s user, 0.00 s sys\tThrottled: unknown\tOOM: none"
        );
    }

    #[test]
    fn empty_identity_values_are_no_dimensions() {
        let fields = vec![("task_family", json!("")), ("container_name", json!("worker")), ("exit_code", json!(0))];
        let usage = sample_usage();
        let event: Value = serde_json::from_str(&to_emf(&fields, "ns", &usage)).unwrap();
        assert_eq!(event["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["container_name"]]));
        let fields = vec![("task_family", json!("")), ("container_name", json!("")), ("exit_code", json!(0))];
        let event: Value = serde_json::from_str(&to_emf(&fields, "ns", &usage)).unwrap();
        assert_eq!(event["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([[]]));
    }

    #[test]
    fn json_keeps_key_order() {
        assert_eq!(to_json(&[("b", json!(1)), ("a", json!(null))]), r#"{"b":1,"a":null}"#);
    }
}
