//! The crate's one error type and the small enums that give it detail.

use std::fmt;
use std::io;
use std::path::PathBuf;

use jiff::Timestamp;

use crate::event::Field;
use crate::state_file::StateFileProblem;

/// Everything that can go wrong when opening, writing or reading an event log.
///
/// Each variant names what failed and where, so its `Display` is a complete one-line message for
/// an operator. I/O failures keep the original [`io::Error`] as their [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file name, operation id or prefix cannot be used to name a file inside the log directory.
    #[error("invalid {role} {name:?}: {problem}")]
    InvalidName {
        /// What the rejected string was meant to be: `"file name"`, `"operation id"` or `"prefix"`.
        role: &'static str,
        /// The rejected string, as given.
        name: String,
        /// Why it was rejected.
        problem: NameProblem,
    },

    /// An event lacks one or more required fields (an empty string counts as missing).
    ///
    /// Every missing field is listed, not just the first.
    #[error(
        "event is missing required field(s) {}: ts, level, reason, msg, operationId and nodeId must all be set and non-empty",
        join_fields(fields)
    )]
    MissingFields {
        /// The missing fields, in wire order.
        fields: Vec<Field>,
    },

    /// An event's timestamp is outside years 0000–9999, which RFC 3339 (and so the Go
    /// implementation) cannot represent.
    #[error("event timestamp {ts} is outside years 0000-9999, which RFC 3339 cannot represent")]
    TimestampOutOfRange {
        /// The rejected timestamp.
        ts: Timestamp,
    },

    /// A file-system operation failed.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: Op,
        /// The file or directory it was being done to.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },

    /// Another [`EventLog`](crate::EventLog), in this process or another, already writes this file.
    ///
    /// A file has one writer at a time: two writers would each believe they know where the last
    /// complete line ends, and torn-tail repair or the roll-back after a failed write by one could
    /// cut lines the other had acknowledged.
    #[error(
        "{} is already open for writing by another event log (in this or another process); \
         close that one first or use a different file name",
        path.display()
    )]
    Locked {
        /// The file that is locked.
        path: PathBuf,
    },

    /// A line of an event file is not a valid event.
    ///
    /// Returned by [`Events`](crate::Events) for that line only; the lines after it are still read.
    #[error("{}:{line}: {problem}", path.display())]
    MalformedLine {
        /// The file being read.
        path: PathBuf,
        /// The 1-based line number.
        line: u64,
        /// What is wrong with the line, for a person to read.
        problem: String,
    },

    /// [`EventLog::log_async`](crate::EventLog::log_async) could not run its write on the tokio
    /// runtime's blocking pool.
    #[error("cannot log to {} asynchronously: {detail}", path.display())]
    Runtime {
        /// The log file.
        path: PathBuf,
        /// What went wrong: no runtime, or the runtime shut down before the write ran.
        detail: String,
    },

    /// A [`StateFile`](crate::StateFile) exists but is not one whole state as
    /// [`StateFile::write`](crate::StateFile::write) leaves it: torn, damaged, or a foreign file.
    ///
    /// A missing state file is not an error: [`StateFile::read`](crate::StateFile::read) returns
    /// `Ok(None)`.
    #[error("state file {} is corrupt: {problem}", path.display())]
    CorruptStateFile {
        /// The state file.
        path: PathBuf,
        /// What is wrong with it.
        problem: StateFileProblem,
    },

    /// A state is larger than its [`StateFile`](crate::StateFile)'s limit: a file found on disk
    /// (refused unread), or a state given to write (refused, since it could not be read back).
    #[error(
        "state file {}: {len} bytes, over its limit of {limit} bytes; \
         raise the limit with StateFile::max_len if the state is meant to be this large",
        path.display()
    )]
    StateFileTooLarge {
        /// The state file.
        path: PathBuf,
        /// The size found or given, in bytes: the content's, or for a file refused unread, the
        /// whole file's (header line included).
        len: u64,
        /// The limit on the content, in bytes.
        limit: u64,
    },

    /// A value given to [`StateFile::write_json`](crate::StateFile::write_json) cannot be
    /// encoded as JSON (e.g. a map with non-string keys).
    #[error("cannot encode the state for {} as JSON: {source}", path.display())]
    StateEncode {
        /// The state file.
        path: PathBuf,
        /// The encoder's error.
        #[source]
        source: serde_json::Error,
    },

    /// A state file is intact (its checksum matches) but does not decode as the type asked of
    /// [`StateFile::read_json`](crate::StateFile::read_json): written by another version or
    /// program.
    #[error("state file {} is intact but does not decode as the expected type: {source}", path.display())]
    StateDecode {
        /// The state file.
        path: PathBuf,
        /// The decoder's error.
        #[source]
        source: serde_json::Error,
    },
}

fn join_fields(fields: &[Field]) -> String {
    let names: Vec<&str> = fields.iter().map(|f| f.as_str()).collect();
    names.join(", ")
}

// ===== impl Op =====

/// The file-system operation named by [`Error::Io`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Op {
    /// Making the log directory's path absolute.
    ResolveDirectory,
    /// Opening or creating a file.
    Open,
    /// Setting a new file's permissions to 0640.
    SetPermissions,
    /// Taking the exclusive writer's lock on a log file.
    Lock,
    /// Truncating a file (opening a per-operation log, repairing a torn tail, rolling back a
    /// failed write).
    Truncate,
    /// Reading a file.
    Read,
    /// Saving the bytes of a torn tail to its side file.
    SaveTornTail,
    /// Appending lines to a log file.
    Write,
    /// Flushing a file to stable storage (`fdatasync`).
    Sync,
    /// Flushing a directory to stable storage after a file was created in it.
    SyncDirectory,
    /// Reading a file's identity (`fstat`/`lstat`) to notice it was removed or replaced.
    Stat,
    /// Listing the log directory for the files of a rotating set.
    ListDirectory,
    /// Renaming a state file's temporary file over the state file.
    Rename,
    /// Setting a new state file's permissions to the mode asked for.
    SetMode,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::ResolveDirectory => "resolve the absolute path of",
            Op::Open => "open",
            Op::SetPermissions => "set mode 0640 on",
            Op::Lock => "lock",
            Op::Truncate => "truncate",
            Op::Read => "read",
            Op::SaveTornTail => "save the torn tail to",
            Op::Write => "write to",
            Op::Sync => "sync",
            Op::SyncDirectory => "sync directory",
            Op::Stat => "check the identity of",
            Op::ListDirectory => "list",
            Op::Rename => "rename a temporary file over",
            Op::SetMode => "set the mode of",
        })
    }
}

// ===== impl NameProblem =====

/// Why [`Error::InvalidName`] rejected a name.
///
/// A log's name must be a plain file name inside the directory it is opened in, so that nothing
/// outside that directory is created, truncated or appended to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NameProblem {
    /// The name is empty.
    Empty,
    /// The name is an absolute path.
    Absolute,
    /// The name contains `/`, so it would reach into another directory.
    ContainsSlash,
    /// The name contains a NUL byte, which no file name can hold.
    ContainsNul,
    /// The name is `.` or `..`, which name directories.
    DotOrDotDot,
}

impl fmt::Display for NameProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameProblem::Empty => "it is empty; give a plain file name such as \"events.jsonl\"",
            NameProblem::Absolute => {
                "it is an absolute path; give the directory separately and a plain file name here"
            }
            NameProblem::ContainsSlash => {
                "it contains '/'; give the directory separately and a plain file name here"
            }
            NameProblem::ContainsNul => "it contains a NUL byte; remove it",
            NameProblem::DotOrDotDot => {
                "'.' and '..' name directories, not files; give a plain file name such as \"events.jsonl\""
            }
        })
    }
}
