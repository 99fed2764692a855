//! The final report, printed once when the workload ends. (Placeholder: filled in by the accounting
//! work.)

use crate::accounting::Usage;
use crate::config::Config;
use crate::identity::Identity;
use crate::supervise::Outcome;

/// Prints the report in every format `config.report` asks for and writes `--report-file`.
pub fn emit(
    _config: &Config,
    _identity: &Identity,
    _usage: &Usage,
    _outcome: &Outcome,
    _command: &[std::ffi::OsString],
) {
}
