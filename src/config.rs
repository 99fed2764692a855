//! Configuration: the command line and its `SENTINIT_*` environment twins.
//!
//! Every option can be set by a flag or by an environment variable, because ECS task definitions and
//! Kubernetes pod specs set environment without touching the image's ENTRYPOINT. A flag wins over its
//! variable. Parsing is pure (arguments and environment in, [`Action`] out) so that it is tested
//! without spawning anything; a usage error becomes exit code 2 in `lib.rs`.

use crate::signals;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::time::Duration;

/// What sentinit was asked to do.
#[derive(Debug)]
pub enum Action {
    Help,
    Version,
    /// Print the resolved identity as JSON and exit.
    Identity(Config),
    Run(Config),
}

/// A usage error: one line, printed with a hint, exit code 2.
#[derive(Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

/// Everything the rest of sentinit needs to know, resolved from flags and environment.
#[derive(Clone, Debug)]
pub struct Config {
    /// The workload: program and arguments, exactly as given.
    pub command: Vec<OsString>,
    pub verbose: bool,
    /// No START line (and, later, no report unless asked for).
    pub quiet: bool,
    /// Forward signals to the main child only instead of its process group.
    pub single_child: bool,
    /// `from -> to` signal rewrites; `to == 0` drops the signal.
    pub rewrites: BTreeMap<i32, i32>,
    /// How long the rest of the process tree gets after the main child exits, before SIGKILL.
    pub grace: Duration,
    /// SIGKILL the workload's group this long after a forwarded TERM, INT or QUIT; off when `None`.
    pub kill_after: Option<Duration>,
    /// `from -> to` exit-code remaps.
    pub remap_exit: BTreeMap<i32, i32>,
    /// The periodic tick (cgroup sampling).
    pub interval: Duration,
    /// Total time budget for identity resolution before the workload starts.
    pub identity_timeout: Duration,
    /// The ECS agent's introspection API, e.g. `http://172.17.0.1:51678`; never contacted unless set.
    pub ecs_agent_url: Option<String>,
    /// Report formats (`text`, `json`, `emf`, `none`).
    pub report: Vec<String>,
    pub report_file: Option<OsString>,
    pub heartbeat: Option<Duration>,
    pub emf_namespace: String,
    /// Whether the workload gets a cgroup of its own.
    pub cgroup: CgroupMode,
    /// `--timeout`: stop the workload this long after it started; off when `None`.
    pub timeout: Option<Duration>,
    /// The signal sent at the timeout (before `--rewrite`).
    pub timeout_signal: i32,
    /// Where the Kubernetes termination message goes.
    pub termination_log: TerminationLog,
    /// Add the identity to the workload's `OTEL_RESOURCE_ATTRIBUTES`.
    pub otel: bool,
}

/// `--termination-log`: where the end-of-run summary for Kubernetes is written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum TerminationLog {
    /// `/dev/termination-log`, only if it already exists (Kubernetes provides it; sentinit never
    /// creates a file in /dev).
    #[default]
    Default,
    /// An explicit path, created if missing.
    Path(OsString),
    /// `none`.
    Off,
}

impl Config {
    /// Does anything read the periodic samples: a report (text, json, emf, a report file, the
    /// termination message) or heartbeats? Without, sentinit does not wake up to sample at all.
    pub fn needs_samples(&self) -> bool {
        self.report.iter().any(|format| format != "none")
            || self.report_file.is_some()
            || self.heartbeat.is_some()
            || match &self.termination_log {
                TerminationLog::Off => false,
                TerminationLog::Path(_) => true,
                TerminationLog::Default => std::path::Path::new("/dev/termination-log").exists(),
            }
    }
}

/// `--cgroup`: when sentinit creates a group of the workload's own (see accounting::own_group).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CgroupMode {
    /// Only when the group sentinit starts in also holds other processes.
    #[default]
    Auto,
    /// Always; a warning, then `auto`'s behaviour, when impossible.
    Own,
    /// Never: read the group as it is.
    Inherit,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            command: Vec::new(),
            verbose: false,
            quiet: false,
            single_child: false,
            rewrites: BTreeMap::new(),
            grace: Duration::from_secs(5),
            kill_after: None,
            remap_exit: BTreeMap::new(),
            interval: Duration::from_secs(1),
            identity_timeout: Duration::from_secs(2),
            ecs_agent_url: None,
            report: vec!["text".to_string()],
            report_file: None,
            heartbeat: None,
            emf_namespace: "sentinit".to_string(),
            cgroup: CgroupMode::Auto,
            timeout: None,
            timeout_signal: libc::SIGTERM,
            termination_log: TerminationLog::Default,
            otel: true,
        }
    }
}

/// How an option takes its value.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Flag,
    Value,
}

/// One option: its long name, short letter, environment variable, help line, and how its value (from
/// the flag or from its variable, the same text either way) goes into the [`Config`]. An error is the
/// reason alone; [`parse`] prefixes the flag or variable it came from.
struct Spec {
    long: &'static str,
    short: Option<char>,
    kind: Kind,
    metavar: &'static str,
    help: &'static str,
    apply: fn(&mut Config, &str) -> Result<(), String>,
}

const SPECS: &[Spec] = &[
    Spec {
        long: "help",
        short: Some('h'),
        kind: Kind::Flag,
        metavar: "",
        help: "print this help and exit",
        apply: |_, value| flag(value).map(drop),
    },
    Spec {
        long: "version",
        short: Some('V'),
        kind: Kind::Flag,
        metavar: "",
        help: "print the version and exit",
        apply: |_, value| flag(value).map(drop),
    },
    Spec {
        long: "verbose",
        short: Some('v'),
        kind: Kind::Flag,
        metavar: "",
        help: "explain every decision on stderr",
        apply: |c, value| {
            c.verbose = flag(value)?;
            Ok(())
        },
    },
    Spec {
        long: "quiet",
        short: Some('q'),
        kind: Kind::Flag,
        metavar: "",
        help: "no START line; warnings and errors only",
        apply: |c, value| {
            c.quiet = flag(value)?;
            Ok(())
        },
    },
    Spec {
        long: "single-child",
        short: Some('s'),
        kind: Kind::Flag,
        metavar: "",
        help: "forward signals to the main child only, not its process group",
        apply: |c, value| {
            c.single_child = flag(value)?;
            Ok(())
        },
    },
    Spec {
        long: "rewrite",
        short: Some('r'),
        kind: Kind::Value,
        metavar: "SIG:SIG",
        help: "rewrite a signal before forwarding (repeatable; SIG:0 drops it)",
        apply: apply_rewrite,
    },
    Spec {
        long: "grace",
        short: Some('g'),
        kind: Kind::Value,
        metavar: "DUR",
        help: "after the main child exits, how long the rest get after SIGTERM before SIGKILL [5s]",
        apply: |c, value| {
            c.grace = parse_duration(value)?;
            Ok(())
        },
    },
    Spec {
        long: "kill-after",
        short: Some('k'),
        kind: Kind::Value,
        metavar: "DUR",
        help: "SIGKILL the workload this long after a forwarded TERM/INT/QUIT [off]",
        apply: |c, value| {
            c.kill_after = Some(parse_duration(value)?).filter(|d| !d.is_zero());
            Ok(())
        },
    },
    Spec {
        long: "remap-exit",
        short: Some('e'),
        kind: Kind::Value,
        metavar: "N:M",
        help: "exit with M when the workload exits with N (repeatable)",
        apply: apply_remap_exit,
    },
    Spec {
        long: "identity",
        short: None,
        kind: Kind::Flag,
        metavar: "",
        help: "print the resolved container/task identity as JSON and exit",
        apply: |_, value| flag(value).map(drop),
    },
    Spec {
        long: "identity-timeout",
        short: None,
        kind: Kind::Value,
        metavar: "DUR",
        help: "time budget for resolving identity before the workload starts [2s]",
        apply: |c, value| {
            c.identity_timeout = parse_duration(value)?;
            Ok(())
        },
    },
    Spec {
        long: "ecs-agent-url",
        short: None,
        kind: Kind::Value,
        metavar: "URL",
        help: "ECS agent introspection API, e.g. http://172.17.0.1:51678 [unset: never contacted]",
        apply: |c, value| {
            c.ecs_agent_url = Some(value.to_string()).filter(|s| !s.is_empty());
            Ok(())
        },
    },
    Spec {
        long: "interval",
        short: None,
        kind: Kind::Value,
        metavar: "DUR",
        help: "cgroup sampling interval, 10ms or more [1s]",
        apply: apply_interval,
    },
    Spec {
        long: "report",
        short: None,
        kind: Kind::Value,
        metavar: "FORMATS",
        help: "final report formats, comma-separated: text, json, emf, none [text]",
        apply: apply_report,
    },
    Spec {
        long: "report-file",
        short: None,
        kind: Kind::Value,
        metavar: "PATH",
        help: "also write the JSON report to PATH, atomically",
        apply: |c, value| {
            c.report_file = Some(OsString::from(value)).filter(|s| !s.is_empty());
            Ok(())
        },
    },
    Spec {
        long: "heartbeat",
        short: None,
        kind: Kind::Value,
        metavar: "DUR",
        help: "print a JSON usage line this often while the workload runs [off]",
        apply: |c, value| {
            c.heartbeat = Some(parse_duration(value)?).filter(|d| !d.is_zero());
            Ok(())
        },
    },
    Spec {
        long: "cgroup",
        short: None,
        kind: Kind::Value,
        metavar: "MODE",
        help: "auto: a cgroup of the workload's own when sentinit's is shared; own: always; inherit: never [auto]",
        apply: apply_cgroup,
    },
    Spec {
        long: "emf-namespace",
        short: None,
        kind: Kind::Value,
        metavar: "NAME",
        help: "CloudWatch namespace for --report emf [sentinit]",
        apply: |c, value| {
            check_emf_namespace(value).map_err(|e| format!("'{value}': {e}"))?;
            c.emf_namespace = value.to_string();
            Ok(())
        },
    },
    Spec {
        long: "timeout",
        short: None,
        kind: Kind::Value,
        metavar: "DUR",
        help: "stop the workload this long after its start; sentinit then exits 124 [off]",
        apply: |c, value| {
            c.timeout = Some(parse_duration(value)?).filter(|d| !d.is_zero());
            Ok(())
        },
    },
    Spec {
        long: "timeout-signal",
        short: None,
        kind: Kind::Value,
        metavar: "SIG",
        help: "the signal sent at --timeout; SIGKILL follows after --kill-after, else --grace [TERM]",
        apply: |c, value| {
            c.timeout_signal = signals::parse(value, false).map_err(|e| format!("'{value}': {e}"))?;
            Ok(())
        },
    },
    Spec {
        long: "termination-log",
        short: None,
        kind: Kind::Value,
        metavar: "PATH",
        help: "Kubernetes termination message file, or none [/dev/termination-log if it exists]",
        apply: |c, value| {
            c.termination_log = if value.trim().eq_ignore_ascii_case("none") {
                TerminationLog::Off
            } else {
                TerminationLog::Path(OsString::from(value))
            };
            Ok(())
        },
    },
    Spec {
        long: "otel",
        short: None,
        kind: Kind::Value,
        metavar: "on|off",
        help: "add the identity to the workload's OTEL_RESOURCE_ATTRIBUTES [on]",
        apply: |c, value| {
            c.otel = flag(value)?;
            Ok(())
        },
    },
];

impl Spec {
    /// `grace` → `SENTINIT_GRACE`.
    fn env_name(&self) -> String {
        format!("SENTINIT_{}", self.long.to_ascii_uppercase().replace('-', "_"))
    }
}

/// Options that may be given more than once; their environment form is a comma-separated list.
fn repeatable(long: &str) -> bool {
    matches!(long, "rewrite" | "remap-exit")
}

/// The `--help` text.
pub fn help_text() -> String {
    let mut text = String::from(
        "sentinit: a tiny PID 1 for containers: forwards signals, reaps zombies, exports the container ID\n\
         and ECS task ARN, and prints a final resource report.\n\n\
         Usage: sentinit [OPTIONS] [--] COMMAND [ARGS...]\n\nOptions (each also settable by its environment variable; a flag wins):\n",
    );
    for spec in SPECS {
        let short = spec.short.map(|c| format!("-{c}, ")).unwrap_or_default();
        let flag = if spec.kind == Kind::Value {
            format!("{short}--{} {}", spec.long, spec.metavar)
        } else {
            format!("{short}--{}", spec.long)
        };
        let env = if matches!(spec.long, "help" | "version" | "identity") {
            String::new()
        } else {
            format!(" (${})", spec.env_name())
        };
        text.push_str(&format!("  {flag:<32} {}{env}\n", spec.help));
    }
    text.push_str(
        "\nDurations: 500ms, 5s, 2m, 1.5s or plain seconds. Signals: TERM, SIGTERM, 15, RTMIN+2.\n\
         Exit code: the workload's; 128+n when it was killed by signal n; 124 --timeout reached;\n\
         127 command not found; 126 command not executable; 2 usage error.\n",
    );
    text
}

/// Parses `args` (without the program name) and the environment into an [`Action`].
pub fn parse<I>(args: &[OsString], env: I) -> Result<Action, UsageError>
where
    I: IntoIterator<Item = (String, String)>,
{
    // Raw values: environment first, then flags (which replace, or for repeatable options add to, them).
    // The first of duplicate entries wins, as for getenv (and for the workload's own lookups).
    let mut first_entries: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in env {
        first_entries.entry(name).or_insert(value);
    }
    let env = first_entries;
    let mut values: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    let mut from_flag: BTreeMap<&'static str, bool> = BTreeMap::new();
    for spec in SPECS {
        // An empty variable means unset, for every option: `SENTINIT_REPORT=` in a pod spec must not
        // turn the report off, nor `SENTINIT_GRACE=` be a usage error.
        if let Some(value) = env.get(&spec.env_name()).filter(|value| !value.is_empty()) {
            let list = if repeatable(spec.long) {
                value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
            } else {
                vec![value.clone()]
            };
            values.insert(spec.long, list);
        }
    }
    let mut set = |spec: &'static Spec, value: String| {
        let seen_flag = from_flag.insert(spec.long, true).unwrap_or(false);
        let slot = values.entry(spec.long).or_default();
        if !seen_flag || !repeatable(spec.long) {
            slot.clear();
        }
        slot.push(value);
    };

    let mut index = 0;
    while index < args.len() {
        let arg = args[index].to_string_lossy().into_owned();
        if arg == "--" {
            index += 1;
            break;
        }
        if !arg.starts_with('-') || arg == "-" {
            break;
        }
        if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((name, value)) => (name, Some(value.to_string())),
                None => (long, None),
            };
            let spec = SPECS
                .iter()
                .find(|s| s.long == name)
                .ok_or_else(|| UsageError(format!("unknown option '--{name}'")))?;
            let value = match (spec.kind, inline) {
                (Kind::Flag, None) => "1".to_string(),
                (Kind::Flag, Some(_)) => {
                    return Err(UsageError(format!("option '--{name}' takes no value")));
                }
                (Kind::Value, Some(value)) => value,
                (Kind::Value, None) => {
                    index += 1;
                    args.get(index)
                        .map(|v| v.to_string_lossy().into_owned())
                        .ok_or_else(|| UsageError(format!("option '--{name}' needs a value ({})", spec.metavar)))?
                }
            };
            set(spec, value);
        } else {
            // Short options: flags may be bundled (`-sv`); a value option takes the rest or the next arg.
            let letters: Vec<char> = arg[1..].chars().collect();
            let mut position = 0;
            while position < letters.len() {
                let letter = letters[position];
                let spec = SPECS
                    .iter()
                    .find(|s| s.short == Some(letter))
                    .ok_or_else(|| UsageError(format!("unknown option '-{letter}'")))?;
                if spec.kind == Kind::Flag {
                    set(spec, "1".to_string());
                    position += 1;
                    continue;
                }
                let rest: String = letters[position + 1..].iter().collect();
                let value = if !rest.is_empty() {
                    rest
                } else {
                    index += 1;
                    args.get(index)
                        .map(|v| v.to_string_lossy().into_owned())
                        .ok_or_else(|| UsageError(format!("option '-{letter}' needs a value ({})", spec.metavar)))?
                };
                set(spec, value);
                break;
            }
        }
        index += 1;
    }
    let command: Vec<OsString> = args[index..].to_vec();

    // --help and --version win over everything else, bad values of other options included.
    let given = |name: &str| -> Result<bool, UsageError> {
        match values.get(name).and_then(|v| v.last()) {
            None => Ok(false),
            Some(value) => flag(value).map_err(|e| UsageError(format!("{}: {e}", source(name, &from_flag)))),
        }
    };
    if given("help")? {
        return Ok(Action::Help);
    }
    if given("version")? {
        return Ok(Action::Version);
    }

    let mut config = Config { command, ..Config::default() };
    for spec in SPECS {
        for value in values.get(spec.long).into_iter().flatten() {
            (spec.apply)(&mut config, value)
                .map_err(|e| UsageError(format!("{}: {e}", source(spec.long, &from_flag))))?;
        }
    }
    if given("identity")? {
        return Ok(Action::Identity(config));
    }
    if config.command.is_empty() {
        return Err(UsageError("no command given".to_string()));
    }
    Ok(Action::Run(config))
}

/// A boolean option's value: 1/0, true/false, yes/no, on/off.
fn flag(value: &str) -> Result<bool, String> {
    parse_bool(value).ok_or_else(|| format!("expected 1/0, true/false, yes/no or on/off, got '{value}'"))
}

fn apply_interval(config: &mut Config, value: &str) -> Result<(), String> {
    let interval = parse_duration(value)?;
    if interval < Duration::from_millis(10) {
        return Err("the interval must be at least 10ms".to_string());
    }
    config.interval = interval;
    Ok(())
}

/// `text,json`: each format once, in the order given.
fn apply_report(config: &mut Config, value: &str) -> Result<(), String> {
    let mut list: Vec<String> = Vec::new();
    for format in value.split(',').map(|f| f.trim().to_ascii_lowercase()).filter(|f| !f.is_empty()) {
        if !list.contains(&format) {
            list.push(format);
        }
    }
    if let Some(bad) = list.iter().find(|f| !matches!(f.as_str(), "text" | "json" | "emf" | "none")) {
        return Err(format!("unknown report format '{bad}' (text, json, emf, none)"));
    }
    config.report = list;
    Ok(())
}

fn apply_cgroup(config: &mut Config, value: &str) -> Result<(), String> {
    config.cgroup = match value.trim().to_ascii_lowercase().as_str() {
        "auto" => CgroupMode::Auto,
        "own" => CgroupMode::Own,
        "inherit" => CgroupMode::Inherit,
        _ => return Err(format!("unknown mode '{value}' (auto, own, inherit)")),
    };
    Ok(())
}

/// One `SIG:SIG` rewrite (repeatable).
fn apply_rewrite(config: &mut Config, value: &str) -> Result<(), String> {
    let (from, to) = parse_pair(value, signals::parse).map_err(|e| format!("'{value}': {e}"))?;
    if from == libc::SIGKILL || from == libc::SIGSTOP {
        return Err(format!("'{value}': {} cannot be caught, so it cannot be rewritten", signals::name(from)));
    }
    config.rewrites.insert(from, to);
    Ok(())
}

/// One `N:M` exit-code remap (repeatable).
fn apply_remap_exit(config: &mut Config, value: &str) -> Result<(), String> {
    let (from, to) = parse_pair(value, |s, _| {
        s.trim()
            .parse::<i32>()
            .ok()
            .filter(|n| (0..=255).contains(n))
            .ok_or_else(|| format!("'{s}' is not an exit code 0..255"))
    })
    .map_err(|e| format!("'{value}': {e}"))?;
    config.remap_exit.insert(from, to);
    Ok(())
}

/// Names where a bad value came from: the flag or the environment variable.
fn source(long: &str, from_flag: &BTreeMap<&'static str, bool>) -> String {
    if from_flag.get(long).copied().unwrap_or(false) {
        format!("--{long}")
    } else {
        SPECS.iter().find(|s| s.long == long).map(|s| s.env_name()).unwrap_or_default()
    }
}

/// Parses `A:B` with `item` applied to each side (`true` for the right-hand side).
fn parse_pair<F>(text: &str, item: F) -> Result<(i32, i32), String>
where
    F: Fn(&str, bool) -> Result<i32, String>,
{
    let (left, right) = text.split_once(':').ok_or_else(|| "expected FROM:TO".to_string())?;
    Ok((item(left, false)?, item(right, true)?))
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "" | "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// A CloudWatch namespace: 1 to 255 characters of `A-Za-z0-9._#:/-` (what the EMF client libraries
/// accept), not starting with `:` (the CloudWatch API's pattern) nor with `AWS/` (reserved for AWS's
/// own metrics). CloudWatch drops an EMF event whose namespace breaks these rules without a word.
pub fn check_emf_namespace(namespace: &str) -> Result<(), String> {
    if namespace.is_empty() || namespace.len() > 255 {
        return Err("a CloudWatch namespace has 1 to 255 characters".to_string());
    }
    if let Some(bad) = namespace.chars().find(|c| !(c.is_ascii_alphanumeric() || "._#:/-".contains(*c))) {
        return Err(format!("'{bad}' is not allowed in a CloudWatch namespace (A-Z a-z 0-9 . _ # : / -)"));
    }
    if namespace.starts_with(':') {
        return Err("a CloudWatch namespace cannot start with ':'".to_string());
    }
    if namespace.starts_with("AWS/") {
        return Err("namespaces starting with AWS/ are reserved for AWS".to_string());
    }
    Ok(())
}

/// Parses `500ms`, `5s`, `1.5s`, `2m`, `1h`, `250us` or a plain number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let split = trimmed.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let not_a_duration = || format!("'{trimmed}' is not a duration (try 500ms, 5s, 2m)");
    let unit_nanos: u128 = match unit.trim() {
        "" | "s" | "sec" => 1_000_000_000,
        "ms" => 1_000_000,
        "us" | "µs" => 1_000,
        "m" | "min" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        other => return Err(format!("unknown unit '{other}' in '{trimmed}' (use ms, s, m or h)")),
    };
    // Whole and fractional digits in integers: parsing through f64 would pull float parsing (about
    // 15 KiB) into the binary for this alone.
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if (whole.is_empty() && fraction.is_empty()) || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return Err(not_a_duration());
    }
    let whole: u128 =
        if whole.is_empty() { 0 } else { whole.parse().map_err(|_| format!("'{trimmed}' is too long"))? };
    let mut nanos = whole.checked_mul(unit_nanos).ok_or_else(|| format!("'{trimmed}' is too long"))?;
    let mut scale = unit_nanos;
    for digit in fraction.bytes().take(24) {
        scale /= 10;
        nanos += u128::from(digit - b'0') * scale;
    }
    if nanos > 1_000_000_000 * 1_000_000_000 {
        return Err(format!("'{trimmed}' is too long"));
    }
    Ok(Duration::from_nanos(nanos as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    fn run(list: &[&str], env: &[(&str, &str)]) -> Result<Config, UsageError> {
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        match parse(&args(list), env)? {
            Action::Run(config) => Ok(config),
            other => panic!("expected Run, got {other:?}"),
        }
    }

    #[test]
    fn only_the_first_double_dash_ends_options() {
        let config = run(&["--", "--", "true"], &[]).unwrap();
        assert_eq!(config.command, args(&["--", "true"]));
        let config = run(&["-v", "sh", "-c", "exit 1"], &[]).unwrap();
        assert!(config.verbose);
        assert_eq!(config.command, args(&["sh", "-c", "exit 1"]));
    }

    #[test]
    fn an_empty_variable_is_unset() {
        let every: Vec<(String, String)> = SPECS.iter().map(|spec| (spec.env_name(), String::new())).collect();
        let config = match parse(&args(&["true"]), every).unwrap() {
            Action::Run(config) => config,
            other => panic!("expected Run, got {other:?}"),
        };
        let default = Config::default();
        assert_eq!(config.report, default.report);
        assert_eq!(config.grace, default.grace);
        assert_eq!(config.interval, default.interval);
        assert_eq!(config.emf_namespace, default.emf_namespace);
    }

    #[test]
    fn the_first_of_duplicate_variables_wins_as_for_getenv() {
        let env = vec![("SENTINIT_REPORT".to_string(), "none".to_string()), ("SENTINIT_REPORT".into(), "json".into())];
        match parse(&args(&["true"]), env).unwrap() {
            Action::Run(config) => assert_eq!(config.report, vec!["none".to_string()]),
            other => panic!("expected Run, got {other:?}"),
        }
    }

    #[test]
    fn flag_wins_over_environment() {
        let config = run(&["--grace", "2s", "true"], &[("SENTINIT_GRACE", "9s")]).unwrap();
        assert_eq!(config.grace, Duration::from_secs(2));
        let config = run(&["true"], &[("SENTINIT_GRACE", "9s"), ("SENTINIT_SINGLE_CHILD", "true")]).unwrap();
        assert_eq!(config.grace, Duration::from_secs(9));
        assert!(config.single_child);
        let config = run(&["-r", "TERM:QUIT", "true"], &[("SENTINIT_REWRITE", "INT:0,HUP:USR1")]).unwrap();
        assert_eq!(config.rewrites, BTreeMap::from([(15, 3)]));
        let config = run(&["true"], &[("SENTINIT_REWRITE", "INT:0, HUP:USR1")]).unwrap();
        assert_eq!(config.rewrites, BTreeMap::from([(2, 0), (1, 10)]));
    }

    #[test]
    fn repeatable_and_bundled_options() {
        let config =
            run(&["-sv", "-rTERM:QUIT", "--rewrite=USR1:0", "-e", "143:0", "--remap-exit", "1:3", "x"], &[]).unwrap();
        assert!(config.single_child && config.verbose);
        assert_eq!(config.rewrites, BTreeMap::from([(15, 3), (10, 0)]));
        assert_eq!(config.remap_exit, BTreeMap::from([(143, 0), (1, 3)]));
    }

    #[test]
    fn usage_errors_name_the_culprit() {
        let error = |list: &[&str], env: &[(&str, &str)]| run(list, env).unwrap_err().0;
        assert!(error(&["--bogus", "x"], &[]).contains("--bogus"));
        assert!(error(&["-Z", "x"], &[]).contains("-Z"));
        assert!(error(&[], &[]).contains("no command"));
        assert!(error(&["--rewrite", "TERM:NOPE", "x"], &[]).contains("NOPE"));
        assert!(error(&["--rewrite", "KILL:TERM", "x"], &[]).contains("SIGKILL"));
        assert!(error(&["--rewrite", "TERM", "x"], &[]).contains("FROM:TO"));
        assert!(error(&["--remap-exit", "300:0", "x"], &[]).contains("300"));
        assert!(error(&["--grace"], &[]).contains("needs a value"));
        assert!(error(&["x"], &[("SENTINIT_GRACE", "soon")]).contains("SENTINIT_GRACE"));
        assert!(error(&["x"], &[("SENTINIT_VERBOSE", "maybe")]).contains("SENTINIT_VERBOSE"));
        assert!(error(&["--interval", "1ms", "x"], &[]).contains("10ms"));
        assert!(error(&["--report", "xml", "x"], &[]).contains("xml"));
        assert!(error(&["--emf-namespace", "", "x"], &[]).contains("1 to 255"));
        assert!(error(&["--emf-namespace", "my jobs", "x"], &[]).contains("' '"));
        assert!(error(&["--emf-namespace", &"a".repeat(256), "x"], &[]).contains("1 to 255"));
        assert!(error(&["--emf-namespace", ":x", "x"], &[]).contains("':'"));
        assert!(error(&["--emf-namespace", "AWS/Lambda", "x"], &[]).contains("reserved"));
        assert!(error(&["x"], &[("SENTINIT_EMF_NAMESPACE", "jobs?")]).contains("SENTINIT_EMF_NAMESPACE"));
        assert!(error(&["--otel", "maybe", "x"], &[]).contains("--otel"));
    }

    #[test]
    fn report_formats_are_deduplicated_in_order() {
        assert_eq!(run(&["--report", "text,text", "x"], &[]).unwrap().report, ["text"]);
        assert_eq!(run(&["--report", "json, TEXT,json,emf,text", "x"], &[]).unwrap().report, ["json", "text", "emf"]);
    }

    #[test]
    fn valid_emf_namespaces() {
        for namespace in ["sentinit", "batch/jobs.v1", "a", "My_App#1:prod-x", &"n".repeat(255), "aws/lower"] {
            assert_eq!(run(&["--emf-namespace", namespace, "x"], &[]).unwrap().emf_namespace, namespace);
        }
        let config = run(&["x"], &[("SENTINIT_EMF_NAMESPACE", "from/env")]).unwrap();
        assert_eq!(config.emf_namespace, "from/env");
    }

    #[test]
    fn otel_is_on_unless_turned_off() {
        assert!(run(&["x"], &[]).unwrap().otel);
        assert!(run(&["x"], &[("SENTINIT_OTEL", "")]).unwrap().otel);
        assert!(!run(&["--otel", "off", "x"], &[]).unwrap().otel);
        assert!(!run(&["x"], &[("SENTINIT_OTEL", "0")]).unwrap().otel);
        assert!(run(&["--otel=on", "x"], &[("SENTINIT_OTEL", "no")]).unwrap().otel);
    }

    #[test]
    fn help_and_version_win() {
        assert!(matches!(parse(&args(&["--help", "x"]), Vec::new()), Ok(Action::Help)));
        assert!(matches!(parse(&args(&["-V"]), Vec::new()), Ok(Action::Version)));
        assert!(matches!(parse(&args(&["--identity"]), Vec::new()), Ok(Action::Identity(_))));
    }

    #[test]
    fn timeout_and_termination_log() {
        let config = run(&["x"], &[]).unwrap();
        assert_eq!((config.timeout, config.timeout_signal), (None, libc::SIGTERM));
        assert_eq!(config.termination_log, TerminationLog::Default);
        let config =
            run(&["--timeout", "2m", "--timeout-signal", "INT", "--termination-log", "/tmp/m", "x"], &[]).unwrap();
        assert_eq!((config.timeout, config.timeout_signal), (Some(Duration::from_secs(120)), libc::SIGINT));
        assert_eq!(config.termination_log, TerminationLog::Path("/tmp/m".into()));
        let env = [("SENTINIT_TIMEOUT", "0"), ("SENTINIT_TERMINATION_LOG", "None")];
        let config = run(&["x"], &env).unwrap();
        assert_eq!((config.timeout, config.termination_log), (None, TerminationLog::Off), "0 is no timeout");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }
}
