//! Accounting: samples the container's cgroup while the workload runs. (Placeholder: filled in by the
//! accounting work; the seams used by `lib.rs` are `Accountant::start`, the `Observer` hooks and
//! `Accountant::finish`.)

use crate::config::Config;
use crate::supervise::{Observer, Outcome};

/// Baseline and running samples of the container's resource counters.
pub struct Accountant {}

/// The resource usage of one run, for the report.
#[derive(Clone, Debug, Default)]
pub struct Usage {}

impl Accountant {
    /// Finds the cgroup and takes the baseline, before the workload starts.
    pub fn start(_config: &Config) -> Accountant {
        Accountant {}
    }

    /// The final sample, after the workload and everything it left are gone.
    pub fn finish(self, _outcome: &Outcome) -> Usage {
        Usage {}
    }
}

impl Observer for Accountant {}
