//! The crate's one error type.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while configuring or running a prune.
///
/// Configuration errors ([`InvalidPattern`](Error::InvalidPattern),
/// [`InvalidTimestampFormat`](Error::InvalidTimestampFormat)) are returned when
/// the value is built, never in the middle of a pass.
/// [`OpenDir`](Error::OpenDir) and [`ReadDir`](Error::ReadDir) abort a pass
/// before anything is removed (a directory that does not exist is not an
/// error: see [`Report::dir_missing`](crate::Report::dir_missing)). The other variants describe one file: they appear
/// inside a [`Report`](crate::Report) (why a file was protected, why a removal
/// failed) and never abort a pass.
///
/// Every variant names the file or directory involved; I/O variants carry the
/// original [`io::Error`] as their [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file-name pattern is not a glob over a single path component.
    #[error("invalid file pattern `{pattern}`: {reason}")]
    InvalidPattern {
        /// The pattern as given.
        pattern: String,
        /// What is wrong with it and what to do instead.
        reason: String,
    },

    /// The filename-timestamp format cannot be searched for in file names.
    #[error("invalid timestamp format `{format}`: {reason}")]
    InvalidTimestampFormat {
        /// The format as given.
        format: String,
        /// What is wrong with it and what to do instead.
        reason: String,
    },

    /// The directory to prune could not be opened.
    #[error("cannot open directory {}: {source}", dir.display())]
    OpenDir {
        /// The directory.
        dir: PathBuf,
        /// The error from `open(2)`.
        #[source]
        source: io::Error,
    },

    /// Listing the directory failed part-way; nothing was removed.
    #[error("cannot read directory {}: {source}", dir.display())]
    ReadDir {
        /// The directory.
        dir: PathBuf,
        /// The error from `getdents(2)`.
        #[source]
        source: io::Error,
    },

    /// A file's own metadata (`lstat`) could not be read, or was out of range.
    #[error("cannot read metadata of {}: {source}", path.display())]
    Metadata {
        /// The file.
        path: PathBuf,
        /// The error from `lstat(2)`, or an `InvalidData` error for a
        /// modification time outside the representable range.
        #[source]
        source: io::Error,
    },

    /// No timestamp in the expected format was found in a file's name.
    #[error("no timestamp in the format `{format}` in the name of {}", path.display())]
    NoTimestamp {
        /// The file.
        path: PathBuf,
        /// The timestamp format that was searched for.
        format: String,
    },

    /// Removing a file failed.
    #[error("cannot remove {}: {source}", path.display())]
    Remove {
        /// The file.
        path: PathBuf,
        /// The error from `unlinkat(2)`.
        #[source]
        source: io::Error,
    },

    /// The caller protected the file ([`Pruner::protect`](crate::Pruner::protect)), e.g.
    /// because a writer uses it now.
    #[error("{} is protected by the caller (a live file)", path.display())]
    Protected {
        /// The file.
        path: PathBuf,
    },

    /// Checking a file again just before removing it failed (opening it to probe its lock, or
    /// `lstat`); it was kept.
    #[error("cannot check {} again before removing it: {source}", path.display())]
    Recheck {
        /// The file.
        path: PathBuf,
        /// The error from `openat(2)`, `flock(2)` or `fstatat(2)`.
        #[source]
        source: io::Error,
    },

    /// A custom [`Strategy`](crate::Strategy) could not decide about a file.
    #[error("cannot decide whether to prune {}: {message}", path.display())]
    Strategy {
        /// The file.
        path: PathBuf,
        /// Why the strategy could not decide.
        message: String,
    },
}

impl Error {
    /// Whether this error says the file or directory does not exist (`ENOENT`).
    ///
    /// Returns `false` for variants that carry no [`io::Error`].
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::OpenDir { source, .. }
            | Error::ReadDir { source, .. }
            | Error::Metadata { source, .. }
            | Error::Remove { source, .. }
            | Error::Recheck { source, .. } => source.kind() == io::ErrorKind::NotFound,
            _ => false,
        }
    }
}
