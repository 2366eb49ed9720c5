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
    /// A child of a [`TaskGroup`](crate::TaskGroup) returned an error.
    #[error("task {task:?} failed: {source}")]
    TaskFailed {
        /// The task's name.
        task: String,
        /// The error it returned.
        #[source]
        source: crate::BoxError,
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
        /// What was being done, e.g. `binding the control-plane TCP listener to`.
        op: &'static str,
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
