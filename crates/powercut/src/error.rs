//! The crate's one error type.

use std::io;
use std::path::PathBuf;

/// What went wrong running the power-cut filesystem, naming the operation and the path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file-system operation on the backing directory or the mount point failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// Where.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The backing directory holds something the model cannot represent (a symbolic link, a
    /// device, a FIFO): only regular files and directories are modelled.
    #[error("unsupported file type at {path}: only regular files and directories are modelled")]
    Unsupported {
        /// The offending entry.
        path: PathBuf,
    },
    /// A child process of the harness could not be started or waited for.
    #[error("child {program}: {source}")]
    Child {
        /// The program run.
        program: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

pub(crate) fn io_err(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { op, path, source }
}
