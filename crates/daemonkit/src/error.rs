//! The crate's one error type, classified by [`ErrorKind`].
//!
//! # Design
//!
//! One enum whose variants carry the context a person needs (the path, the operation,
//! the setting at fault, the operating system's error as `source`), and whose
//! [`kind`](Error::kind) answers the question a caller can act on: is this a
//! configuration mistake (exit 78, do not restart), another instance holding the socket,
//! a failed prerequisite, or an I/O failure at run time? Callers match on the kind; the
//! variants can grow without breaking them. `From<Error> for io::Error` serves callers
//! who want the simple path.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::probe::ProbeError;

// ===== ErrorKind =====

/// What kind of failure an [`Error`] is: the question a caller can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A configuration mistake — a name, a limit, a timeout, or a value in the
    /// environment (`NOTIFY_SOCKET`, `WATCHDOG_*`, `LISTEN_FDS`). Restarting will not
    /// help; the daemon exits with 78 (`EX_CONFIG`).
    Config,
    /// Another live process serves on the control socket. The daemon exits with 75
    /// (`EX_TEMPFAIL`): it may succeed once the other instance has stopped.
    SocketInUse,
    /// A prerequisite probe failed. The daemon exits with 69 (`EX_UNAVAILABLE`).
    Probe,
    /// An operating-system call failed at run time (files, sockets, signals).
    Io,
    /// A task or hook failed or panicked at run time.
    Runtime,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Config => "configuration error",
            ErrorKind::SocketInUse => "control socket in use",
            ErrorKind::Probe => "prerequisite failed",
            ErrorKind::Io => "I/O error",
            ErrorKind::Runtime => "runtime failure",
        })
    }
}

// ===== Op =====

/// The operation an [`Error::Io`] or [`Error::TcpIo`] was doing: a typed value, so a
/// caller can match on it; its `Display` is the phrase the error message uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Op {
    /// Removing the control socket at …
    RemoveSocket,
    /// Inspecting the control socket before removing it at …
    InspectSocketBeforeRemoval,
    /// Binding the control socket at …
    BindSocket,
    /// Setting mode 0660 on the control socket at …
    ChmodSocket,
    /// Inspecting the newly bound control socket at …
    InspectBoundSocket,
    /// Moving the bound control socket into place at …
    MoveSocketIntoPlace,
    /// Creating the control socket's directory …
    CreateSocketDir,
    /// Inspecting the existing file at the control socket path …
    InspectSocketPath,
    /// Checking whether a process serves on the existing socket at …
    ProbeExistingSocket,
    /// Removing the stale control socket at …
    RemoveStaleSocket,
    /// Creating a private temporary directory for the control socket in …
    CreatePrivateTempDir,
    /// Binding the control-plane TCP listener to …
    BindTcp,
    /// Serving the passed control-plane TCP listener on …
    ServeTcpListener,
    /// Reading the local address of the control-plane TCP listener on …
    ReadTcpAddress,
    /// Serving the control socket at …
    ServeSocket,
    /// Creating the socket that sends systemd notifications to …
    CreateNotifySocket,
    /// Setting mode 0700 on a directory the kit just created …
    ChmodPrivateDir,
    /// Creating a private directory …
    CreatePrivateDir,
    /// Inspecting a directory the kit is about to trust …
    InspectDir,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::RemoveSocket => "removing the control socket at",
            Op::InspectSocketBeforeRemoval => "inspecting the control socket before removing it at",
            Op::BindSocket => "binding the control socket at",
            Op::ChmodSocket => "setting mode 0660 on the control socket at",
            Op::InspectBoundSocket => "inspecting the newly bound control socket at",
            Op::MoveSocketIntoPlace => "moving the bound control socket into place at",
            Op::CreateSocketDir => "creating the control socket's directory",
            Op::InspectSocketPath => "inspecting the existing file at the control socket path",
            Op::ProbeExistingSocket => {
                "checking whether a process serves on the existing socket at"
            }
            Op::RemoveStaleSocket => "removing the stale control socket at",
            Op::CreatePrivateTempDir => {
                "creating a private temporary directory for the control socket in"
            }
            Op::BindTcp => "binding the control-plane TCP listener to",
            Op::ServeTcpListener => "serving the passed control-plane TCP listener on",
            Op::ReadTcpAddress => "reading the local address of the control-plane TCP listener on",
            Op::ServeSocket => "serving the control socket at",
            Op::CreateNotifySocket => "creating the socket that sends systemd notifications to",
            Op::ChmodPrivateDir => "setting mode 0700 on the newly created directory",
            Op::CreatePrivateDir => "creating the private directory",
            Op::InspectDir => "inspecting the directory",
        })
    }
}

// ===== Error =====

/// Everything that can fail in daemonkit, each variant naming what failed and where.
///
/// Supervision itself never fails (a crashing monitor is restarted, not reported as
/// an `Error`); these are configuration mistakes found when a value is built, and I/O
/// failures of the control plane, probes and systemd integration. Ask
/// [`kind`](Self::kind) what to do about one; the design is explained in the source of this module.
///
/// # Examples
///
/// ```
/// use daemonkit::{ErrorKind, RestartPolicy};
///
/// let err = RestartPolicy::builder().multiplier(0.5).build().unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Config);
/// assert!(err.to_string().contains("multiplier"));
/// let io: std::io::Error = err.into();
/// assert_eq!(io.kind(), std::io::ErrorKind::InvalidInput);
/// ```
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
    /// A child of a [`TaskGroup`](crate::TaskGroup) returned an error.
    #[error("task {task:?} failed: {source}")]
    TaskFailed {
        /// The task's name.
        task: String,
        /// The error it returned.
        #[source]
        source: crate::boxed::BoxError,
    },
    /// A child of a [`TaskGroup`](crate::TaskGroup) panicked.
    #[error("task {task:?} panicked: {message}")]
    TaskPanicked {
        /// The task's name.
        task: String,
        /// The panic message.
        message: String,
    },
    /// Installing a signal handler (SIGINT, SIGTERM, SIGHUP) failed.
    #[error("cannot install the signal handlers: {source}")]
    Signal {
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The tokio runtime could not be built (threads, the I/O driver).
    #[error("cannot start the tokio runtime: {source}")]
    RuntimeStart {
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A file-system operation on `path` failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done, e.g. [`Op::BindSocket`].
        op: Op,
        /// The path involved.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A probe was configured with values that cannot work.
    #[error("invalid {probe} probe for {path}: {problem}")]
    InvalidProbe {
        /// The kind of probe, e.g. `ownership`.
        probe: &'static str,
        /// The path it was to check.
        path: PathBuf,
        /// What is wrong and what is allowed.
        problem: String,
    },
    /// A setting of the Daemon runner has a value that cannot work.
    #[error("invalid daemon setting `{setting}`: {problem}")]
    InvalidDaemonConfig {
        /// The builder method at fault, e.g. `probe_interval`.
        setting: &'static str,
        /// What is wrong with it and what is allowed.
        problem: String,
    },
    /// A prerequisite probe failed.
    #[error("prerequisite failed: {source}")]
    ProbeFailed {
        /// The probe's failure, with its reason and resolution.
        #[from]
        source: ProbeError,
    },
    /// A hook of the daemon's own (reload, status, readiness, watchdog is-alive) panicked.
    #[error("the {hook} hook panicked: {message}")]
    HookPanicked {
        /// Which hook, e.g. `reload`.
        hook: &'static str,
        /// The panic message.
        message: String,
    },
    // ===== control plane (server) =====
    /// A live process accepts connections on the control socket path; it was left alone.
    #[error(
        "another process is serving on the control socket {path}; stop it first, \
         or give this daemon another socket path"
    )]
    SocketInUse {
        /// The socket path.
        path: PathBuf,
    },
    /// Something that is not a socket occupies the control socket path; it was left alone.
    #[error(
        "the control socket path {path} is {found}, not a socket, and was left untouched; \
         move it away or give this daemon another socket path"
    )]
    SocketPathOccupied {
        /// The socket path.
        path: PathBuf,
        /// What is there, e.g. `a regular file`.
        found: &'static str,
    },
    /// The control socket path does not fit in a Unix socket address.
    #[error(
        "the control socket path {path} is {len} bytes long, but a Unix socket address holds at \
         most {max} (including the temporary name used while binding); choose a shorter path"
    )]
    SocketPathTooLong {
        /// The path that does not fit (the socket path, or the temporary path next to it).
        path: PathBuf,
        /// Its length in bytes.
        len: usize,
        /// The longest path that fits.
        max: usize,
    },
    /// A control-plane setting has a value that cannot work.
    #[error("invalid control-plane setting `{setting}`: {problem}")]
    InvalidServerConfig {
        /// The builder method at fault, e.g. `max_connections`.
        setting: &'static str,
        /// What is wrong with it and what is allowed.
        problem: String,
    },
    /// A TCP operation of the control plane on `addr` failed.
    #[error("{op} {addr}: {source}")]
    TcpIo {
        /// What was being done, e.g. [`Op::BindTcp`].
        op: Op,
        /// The address involved.
        addr: std::net::SocketAddr,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    // ===== systemd integration (notify, watchdog, activation) =====
    /// An environment variable set by the service manager has a value that cannot be used.
    #[error("invalid {variable}={value:?} in the environment: {problem}")]
    InvalidEnv {
        /// The variable, e.g. `WATCHDOG_USEC`.
        variable: &'static str,
        /// Its value as found.
        value: String,
        /// What is wrong with it and what is expected.
        problem: &'static str,
    },
    /// A systemd watchdog interval given in code cannot be used.
    #[error("invalid watchdog interval {interval:?}: {problem}")]
    InvalidWatchdogInterval {
        /// The interval as given.
        interval: std::time::Duration,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A systemd notify socket address (`NOTIFY_SOCKET`) is not one this process can send to.
    #[error("invalid systemd notify socket address {address:?}: {problem}")]
    InvalidNotifySocket {
        /// The address as given.
        address: String,
        /// What is wrong with it and what is expected.
        problem: String,
    },
    /// Sending a notification (`READY=1`, `WATCHDOG=1`, ...) to the service manager failed.
    #[error("sending {payload} to the systemd notify socket {socket}: {source}")]
    Notify {
        /// The notify socket address, as in `NOTIFY_SOCKET`.
        socket: String,
        /// The kinds of state sent, e.g. `READY` or `RELOADING+MONOTONIC_USEC`.
        payload: String,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The socket-activation variables (`LISTEN_PID`, `LISTEN_FDS`, `LISTEN_FDNAMES`) are
    /// malformed or name descriptors that are not open.
    #[error(
        "reading the sockets passed by systemd (LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES): {source}"
    )]
    ListenFds {
        /// What was wrong, as reported by the parser or the operating system.
        #[source]
        source: io::Error,
    },
    /// An operation on a descriptor passed by systemd failed.
    #[error("{op} socket-activation fd {fd} (name {name:?}): {source}")]
    ListenFdIo {
        /// What was being done, e.g. `inspecting`.
        op: &'static str,
        /// The descriptor number.
        fd: i32,
        /// Its name from `LISTEN_FDNAMES` (`unknown` when systemd gave none).
        name: String,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A descriptor passed by systemd is not the kind of socket it is used as.
    #[error(
        "socket-activation fd {fd} (name {name:?}) is {found}, expected {expected}; \
         check the Listen*= lines and FileDescriptorName= of the .socket unit"
    )]
    ListenFdKind {
        /// The descriptor number.
        fd: i32,
        /// Its name from `LISTEN_FDNAMES` (`unknown` when systemd gave none).
        name: String,
        /// What it was wanted as, e.g. `a listening Unix stream socket`.
        expected: &'static str,
        /// What it is, e.g. `a regular file`.
        found: String,
    },
    // ===== directories (paths) =====
    /// A directory the kit would create, write into or trust is not safe to use: a
    /// symbolic link, owned by another user, or writable by others. It was left alone.
    #[error("refusing to use {path} (owner {owner}, mode {mode:04o}): {problem}; {fix}")]
    UnsafeDirectory {
        /// The directory (or what is at its path).
        path: PathBuf,
        /// Its owner, e.g. `alice (uid 1000)`.
        owner: String,
        /// Its permission bits, with setuid, setgid and sticky.
        mode: u32,
        /// What is wrong with it.
        problem: String,
        /// What to do about it.
        fix: String,
    },
}

// ===== impl Error =====

impl Error {
    /// What kind of failure this is; see [`ErrorKind`].
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidPolicy { .. }
            | Error::InvalidName { .. }
            | Error::InvalidProbe { .. }
            | Error::SocketPathOccupied { .. }
            | Error::SocketPathTooLong { .. }
            | Error::InvalidServerConfig { .. }
            | Error::InvalidDaemonConfig { .. }
            | Error::InvalidEnv { .. }
            | Error::InvalidWatchdogInterval { .. }
            | Error::InvalidNotifySocket { .. }
            | Error::ListenFds { .. }
            | Error::ListenFdKind { .. }
            | Error::UnsafeDirectory { .. } => ErrorKind::Config,
            Error::SocketInUse { .. } => ErrorKind::SocketInUse,
            Error::ProbeFailed { .. } => ErrorKind::Probe,
            Error::Signal { .. }
            | Error::RuntimeStart { .. }
            | Error::Io { .. }
            | Error::TcpIo { .. }
            | Error::Notify { .. }
            | Error::ListenFdIo { .. } => ErrorKind::Io,
            Error::TaskFailed { .. } | Error::TaskPanicked { .. } | Error::HookPanicked { .. } => {
                ErrorKind::Runtime
            }
        }
    }

    /// The file-system path involved, when there is one (the socket path, a probed
    /// path); `None` for failures that concern no path (a policy value, a signal).
    pub fn path(&self) -> Option<&Path> {
        match self {
            Error::Io { path, .. }
            | Error::InvalidProbe { path, .. }
            | Error::SocketInUse { path }
            | Error::SocketPathOccupied { path, .. }
            | Error::SocketPathTooLong { path, .. }
            | Error::UnsafeDirectory { path, .. } => Some(path),
            _ => None,
        }
    }

    /// The operating system's error behind this one, when the failure came from a
    /// system call; `None` for configuration mistakes and failures of user code.
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            Error::Signal { source }
            | Error::RuntimeStart { source }
            | Error::Io { source, .. }
            | Error::TcpIo { source, .. }
            | Error::Notify { source, .. }
            | Error::ListenFds { source }
            | Error::ListenFdIo { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<Error> for io::Error {
    /// Keeps the operating system's error kind when there is one; configuration mistakes
    /// become `InvalidInput`, another instance on the socket `AddrInUse`, the rest `Other`.
    fn from(err: Error) -> io::Error {
        let kind = match (err.io_error(), err.kind()) {
            (Some(source), _) => source.kind(),
            (None, ErrorKind::Config) => io::ErrorKind::InvalidInput,
            (None, ErrorKind::SocketInUse) => io::ErrorKind::AddrInUse,
            (None, _) => io::ErrorKind::Other,
        };
        io::Error::new(kind, err)
    }
}
