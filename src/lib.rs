//! sentinit: a tiny PID 1 for containers.
//!
//! Data flows one way: [`config`] (flags and `SENTINIT_*` variables) → identity (who is this container)
//! → [`spawn`] and [`supervise`] (run the workload, forward signals, reap) → accounting (cgroup samples)
//! → report. [`run`] is that pipeline; `main.rs` only collects argv.

pub mod accounting;
pub mod arena;
pub mod config;
pub mod environ;
pub mod exit_reason;
pub mod http;
pub mod identity;
pub mod limits;
pub mod log;
pub mod otel;
pub mod paths;
pub mod processes;
pub mod proctree;
pub mod report;
pub mod signals;
pub mod spawn;
pub mod supervise;
pub mod termination_log;

use config::{Action, Config, UsageError};
use environ::Environ;
use std::ffi::OsString;
use std::time::{Duration, Instant};
use supervise::{Exit, Supervisor};

/// How long the final report may wait for a stderr that does not drain: worth waiting for, but not
/// worth hanging the container's exit over.
const FINAL_OUTPUT_WAIT: Duration = Duration::from_secs(2);

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Runs sentinit with `args` (argv, program name first) and `environ` (as received) and returns the
/// exit code.
pub fn run(args: Vec<OsString>, environ: Environ) -> i32 {
    // The report's init_duration_ms counts from here: argument parsing, identity and the exec are all
    // time the container spent before its workload ran.
    let sentinit_started = Instant::now();
    // Only sentinit's own variables are parsed here (the environment is not copied: a PID 1's memory
    // is what is left after its start); they must be text, anything else passes to the workload untouched.
    let own: Vec<(&[u8], &[u8])> = environ
        .entries()
        .iter()
        .filter(|entry| entry.starts_with(b"SENTINIT_"))
        .filter_map(|entry| entry.iter().position(|b| *b == b'=').map(|at| (&entry[..at], &entry[at + 1..])))
        .collect();
    if let Some((name, _)) = own.iter().find(|(_, value)| std::str::from_utf8(value).is_err()) {
        crate::log::line(format_args!("sentinit: {}: the value is not valid UTF-8", String::from_utf8_lossy(name)));
        crate::log::line(format_args!("Try 'sentinit --help' for more information."));
        return 2;
    }
    let text_env = own.iter().filter_map(|(name, value)| {
        Some((std::str::from_utf8(name).ok()?.to_string(), std::str::from_utf8(value).ok()?.to_string()))
    });
    let action = match config::parse(args.get(1..).unwrap_or(&[]), text_env) {
        Ok(action) => action,
        Err(UsageError(message)) => {
            crate::log::line(format_args!("sentinit: {message}"));
            crate::log::line(format_args!("Try 'sentinit --help' for more information."));
            return 2;
        }
    };
    match action {
        Action::Help => {
            print!("{}", config::help_text());
            0
        }
        Action::Version => {
            println!("sentinit {VERSION}");
            0
        }
        Action::Identity(config) => {
            log::set_verbose(config.verbose);
            let files = paths::SelfFiles::read();
            let identity = identity::resolve(&config, &environ, &files);
            let (memory, cpu) = accounting::limits_now(&files);
            let found = limits::Found::new(&identity, memory, cpu, accounting::affinity_cpus());
            let limits = limits::resolve(&environ, &found);
            let mut json = identity.json_value();
            if let Some(object) = json.as_object_mut() {
                object.extend(limits.json_fields().map(|(key, value)| (key.to_string(), value)));
            }
            println!("{json}");
            0
        }
        Action::Run(config) => run_workload(&config, environ, sentinit_started),
    }
}

/// Prepares the workload's environment, starts it, supervises it and returns its (remapped) exit code.
/// `sentinit_started` is when sentinit itself started, for the report's init duration.
fn run_workload(config: &Config, mut environ: Environ, sentinit_started: Instant) -> i32 {
    log::set_verbose(config.verbose);
    // Read before anything changes a disposition: what sentinit's parent ignored stays ignored (except
    // SIGCHLD, see signals::Inherited).
    let mut setup = spawn::ChildSetup { inherited: signals::Inherited::read(), join_cgroups: Vec::new() };
    // Signals are taken over before identity is resolved, so a `docker stop` that arrives during those
    // two seconds is held and forwarded to the workload once it exists, instead of being lost (PID 1
    // ignores signals it has no handler for) or killing sentinit before it started anything.
    let signal_fd = match supervise::take_signals() {
        Ok(fd) => fd,
        Err(e) => {
            // Without the signalfd sentinit cannot forward anything; running the workload bare is still
            // better than not running it at all.
            warn!("cannot set up signal handling ({e}); running the workload without supervision");
            return spawn::exec_in_place(&config.command, &environ, &setup);
        }
    };
    // After the signals are taken: from here on a write to a closed stderr raises a SIGPIPE that is only
    // read from the signalfd (and dropped), never one that kills sentinit.
    if std::process::id() != 1 {
        supervise::become_subreaper();
    }

    let self_files = paths::SelfFiles::read();
    let identity = identity::resolve(config, &environ, &self_files);

    // The baseline is taken before the workload exists, so every counter's delta is the workload's. It
    // also reads the limits, which go into the workload's environment.
    let mut accountant = accounting::Accountant::start(config, &self_files);
    setup.join_cgroups = accountant.join_on_start();
    let (memory_limit, cpu_limit, affinity) = accountant.limits();
    let limits = limits::resolve(&environ, &limits::Found::new(&identity, memory_limit, cpu_limit, affinity));
    for (name, value) in identity.exports() {
        // Explicit wins: a variable the user already set is left alone (identity took it as its value).
        environ.add_missing(&name, &value);
    }
    if config.otel {
        otel::apply(&identity, &mut environ);
    }
    for (name, value) in limits.exports() {
        environ.add_missing(name, &value);
    }
    if !config.quiet {
        log::line(format_args!("{}{}", identity.start_line(), limits.start_fields()));
    }

    let launch = spawn::Launch::prepare(&config.command, &environ);
    let started = launch.and_then(|launch| {
        let take_terminal = spawn::owns_foreground_terminal();
        let display = launch.display().to_string();
        let started = spawn::spawn(launch, &setup, take_terminal)?;
        let child = started.pid;
        // spawn returns once the child has exec'd: the workload's own program is running now.
        let init_duration = sentinit_started.elapsed();
        debug!(
            "started {display} as pid {child} in its own process group{}",
            if take_terminal { ", terminal foreground" } else { "" }
        );
        Ok((started, init_duration))
    });
    let outcome = match started {
        Ok((started, init_duration)) => {
            let child = started.pid;
            accountant.workload_started(child, started.join_errno);
            Supervisor::new(config, child, init_duration, signal_fd)
                .run(&mut report::Narrator { accountant: &mut accountant })
        }
        Err(e) => {
            // The report is printed for a workload that never started too: "exit 127" in the logs,
            // next to the START line, is the answer to "why did this task stop at once?".
            error!("{e}");
            supervise::Outcome::not_started(e.exit_code())
        }
    };
    let usage = accountant.finish(&outcome);
    // The report is what the logs are for: it may wait for a stalled stderr, within a bound.
    // The file is written on its own thread meanwhile, within the same bound.
    let deadline = Instant::now() + FINAL_OUTPUT_WAIT;
    // Kubernetes' termination message, on a thread of its own within the same bound, started before
    // anything may wait for stderr.
    let termination_message = termination_log::start(config, &usage, &outcome);
    log::wait_until(Some(deadline));
    report::emit(config, &identity, &usage, &outcome, deadline);
    if let Some(pending) = termination_message {
        pending.wait(deadline);
    }
    log::finish();
    let mut code = outcome.exit.code();
    if let Exit::Signal(signal) = outcome.exit {
        debug!("workload killed by {}: exit code {code}", signals::name(signal));
    }
    if outcome.timed_out {
        // As coreutils' timeout: 124 tells "it ran out of time" from the workload's own failures
        // (the report keeps the workload's code).
        debug!("--timeout reached: exit code 124 instead of {code}");
        code = 124;
    }
    let remapped = config.remap_exit.get(&code).copied().unwrap_or(code);
    if remapped != code {
        debug!("exit code {code} remapped to {remapped}");
    }
    remapped
}
