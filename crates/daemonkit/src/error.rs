//! The crate's one error type.

use std::io;
use std::path::PathBuf;

/// Everything that can fail in daemonkit, each variant naming what failed and where.
///
/// Supervision itself never fails (a crashing monitor is restarted, not reported as
/// an `Error`); these are configuration mistakes found when a value is built, and I/O
/// failures of the control plane, probes and systemd integration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A back-off policy field has a value that cannot work.
    #[error("invalid back-off policy: `{field}` {problem}")]
    InvalidPolicy {
        /// The policy field at fault, e.g. `initial`.
        field: &'static str,
        /// What is wrong with it and what is allowed.
        problem: String,
    },
    /// A monitor or component name is empty or otherwise unusable.
    #[error("invalid name {name:?}: {problem}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A file-system operation on `path` failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done, e.g. `binding the control socket at`.
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
}
