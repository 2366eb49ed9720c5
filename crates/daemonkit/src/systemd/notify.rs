//! Service-state notifications to systemd (`sd_notify`): ready, stopping, reloading,
//! status text, timeout extension and watchdog keepalives.
//!
//! A [`Notifier`] sends `KEY=VALUE` datagrams to the socket systemd names in
//! `NOTIFY_SOCKET` when it starts a `Type=notify` (or `notify-reload`) service. Outside
//! systemd — a manual run, a test, a container — the variable is absent and every call is
//! a no-op that returns `Ok`, so a daemon notifies unconditionally.
//!
//! # What comes from the `sd-notify` crate and what is hand-written
//!
//! The wire format of each state (`READY=1`, `STATUS=…`, …) and the `CLOCK_MONOTONIC`
//! reading for `MONOTONIC_USEC=` come from [`sd_notify::NotifyState`]. Sending is
//! hand-written because `sd_notify::notify` cannot serve here:
//!
//! - it passes `NOTIFY_SOCKET` to `UnixDatagram::connect`, which treats `@name` as a file
//!   called `@name`; systemd's abstract-namespace addresses (`@/org/freedesktop/...`)
//!   therefore fail;
//! - it reads the process environment on every call, so it cannot be pointed at a test
//!   socket without `std::env::set_var` (unsafe and racy in a multi-threaded program);
//! - it opens a new socket for every notification; a [`Notifier`] keeps one unbound
//!   datagram socket and sends with `sendto`, so a watchdog ping costs one system call.
//!
//! # Examples
//!
//! ```
//! use std::os::unix::net::UnixDatagram;
//! use daemonkit::systemd::notify::Notifier;
//!
//! // Stand in for systemd: bind a datagram socket and point a notifier at it.
//! let dir = std::env::temp_dir().join(format!("daemonkit-notify-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let path = dir.join("notify.sock");
//! let _ = std::fs::remove_file(&path);
//! let manager = UnixDatagram::bind(&path)?;
//!
//! let notifier = Notifier::new(&path)?;
//! notifier.ready()?;
//!
//! let mut buf = [0u8; 64];
//! let n = manager.recv(&mut buf)?;
//! assert_eq!(&buf[..n], b"READY=1");
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;

use crate::Error;
use crate::error::Op;

/// The environment variable in which systemd names its notify socket.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// How long one send may block when the manager's receive queue is full.
///
/// systemd drains its notify socket promptly; a send that blocks this long means the
/// manager is stuck, and the caller gets an error instead of a hung daemon.
const SEND_TIMEOUT: Duration = Duration::from_secs(1);

// ===== State =====

/// One service-state change to announce, for [`Notifier::notify`].
///
/// The convenience methods of [`Notifier`] send the common ones; `notify` sends several in
/// one datagram so systemd applies them together (e.g. `STATUS=` with `READY=1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum State<'a> {
    /// `READY=1`: start-up (or a reload) finished and the service is serving.
    Ready,
    /// `RELOADING=1` followed by `MONOTONIC_USEC=<now>`: the service began reloading.
    ///
    /// `Type=notify-reload` units require the `CLOCK_MONOTONIC` timestamp with every
    /// `RELOADING=1` and fail the reload without it, so it is always sent; it is read
    /// when the datagram is built.
    Reloading,
    /// `STOPPING=1`: the service began shutting down.
    Stopping,
    /// `STATUS=<text>`: a one-line, human-readable status shown by `systemctl status`.
    ///
    /// A newline would end the assignment and start a new one (letting status text forge
    /// other states), so each `\n` in the text is sent as a space.
    Status(&'a str),
    /// `EXTEND_TIMEOUT_USEC=<µs>`: the current start, stop or reload step needs this much
    /// more time, counted from now.
    ExtendTimeout(Duration),
    /// `WATCHDOG=1`: keepalive for `WatchdogSec=`.
    Watchdog,
    /// `WATCHDOG=trigger`: ask systemd to act as if the watchdog timer had expired.
    WatchdogTrigger,
    /// `ERRNO=<n>`: the service failed with this `errno`-style code.
    Errno(u32),
    /// A raw assignment sent as given, for states this enum does not name.
    ///
    /// Sent verbatim: the text must be one or more `KEY=VALUE` lines.
    Custom(&'a str),
}

impl State<'_> {
    /// The variable this state sets, used to name the payload in errors and logs.
    fn key(&self) -> &'static str {
        match self {
            State::Ready => "READY",
            State::Reloading => "RELOADING+MONOTONIC_USEC",
            State::Stopping => "STOPPING",
            State::Status(_) => "STATUS",
            State::ExtendTimeout(_) => "EXTEND_TIMEOUT_USEC",
            State::Watchdog => "WATCHDOG",
            State::WatchdogTrigger => "WATCHDOG=trigger",
            State::Errno(_) => "ERRNO",
            State::Custom(_) => "custom",
        }
    }

    /// Appends this state's line(s) to `msg`, without a trailing newline.
    fn write_to(&self, msg: &mut String) -> io::Result<()> {
        use std::fmt::Write as _;
        // `write!` into a `String` cannot fail: `String`'s `fmt::Write` is infallible and
        // `NotifyState`'s `Display` only forwards to it.
        let push = |msg: &mut String, state: NotifyState<'_>| {
            let _ = write!(msg, "{state}");
        };
        match *self {
            State::Ready => push(msg, NotifyState::Ready),
            State::Reloading => {
                push(msg, NotifyState::Reloading);
                msg.push('\n');
                push(msg, NotifyState::monotonic_usec_now()?);
            }
            State::Stopping => push(msg, NotifyState::Stopping),
            State::Status(text) => {
                if text.contains('\n') {
                    push(msg, NotifyState::Status(&text.replace('\n', " ")));
                } else {
                    push(msg, NotifyState::Status(text));
                }
            }
            State::ExtendTimeout(by) => {
                let usec = by.as_micros();
                match u32::try_from(usec) {
                    Ok(usec) => push(msg, NotifyState::ExtendTimeoutUsec(usec)),
                    // sd-notify's variant holds a u32 (about 71 minutes); systemd reads a
                    // u64, so longer extensions are formatted here.
                    Err(_) => {
                        let usec = u64::try_from(usec).unwrap_or(u64::MAX);
                        let _ = write!(msg, "EXTEND_TIMEOUT_USEC={usec}");
                    }
                }
            }
            State::Watchdog => push(msg, NotifyState::Watchdog),
            State::WatchdogTrigger => push(msg, NotifyState::WatchdogTrigger),
            State::Errno(errno) => push(msg, NotifyState::Errno(errno)),
            State::Custom(raw) => push(msg, NotifyState::Custom(raw)),
        }
        Ok(())
    }
}

// ===== Notifier =====

/// A handle that sends service-state notifications to systemd.
///
/// Build it once with [`Notifier::from_env`] (or [`Notifier::new`] with an explicit
/// address) and clone it freely: clones share one unbound datagram socket, and sending is
/// one `sendto`. A notifier with no address is *disabled*: every call returns `Ok(())`
/// without doing anything, so code notifies unconditionally and works the same under
/// systemd, by hand and in tests.
///
/// Addresses are those of `sd_notify(3)`: an absolute path (`/run/systemd/notify`) or an
/// abstract socket name starting with `@` (`@/org/freedesktop/systemd1/notify/...`).
///
/// # Errors
///
/// Every send returns [`Error::Notify`] naming the socket and the kinds of state when the
/// datagram cannot be delivered (the socket does not exist, nobody is bound to it, the
/// manager's receive queue stayed full for a second — a send blocks at most that long).
/// Nothing panics; a daemon usually logs the error and carries on, since a missed
/// notification is not a reason to stop serving.
///
/// # Examples
///
/// ```
/// use std::os::unix::net::UnixDatagram;
/// use std::time::Duration;
/// use daemonkit::systemd::notify::{Notifier, State};
///
/// let dir = std::env::temp_dir().join(format!("daemonkit-notifier-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("notify.sock");
/// let _ = std::fs::remove_file(&path);
/// let manager = UnixDatagram::bind(&path)?;
/// let mut buf = [0u8; 128];
///
/// let notifier = Notifier::new(&path)?;
/// notifier.status("migrating the database")?;
/// let n = manager.recv(&mut buf)?;
/// assert_eq!(&buf[..n], b"STATUS=migrating the database");
///
/// // Several states in one datagram, applied together by systemd.
/// notifier.notify(&[State::Ready, State::Status("serving")])?;
/// let n = manager.recv(&mut buf)?;
/// assert_eq!(&buf[..n], b"READY=1\nSTATUS=serving");
///
/// // Without an address every call is a successful no-op.
/// let off = Notifier::disabled();
/// assert!(!off.is_enabled());
/// off.extend_timeout(Duration::from_secs(30))?;
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct Notifier {
    /// `None` when disabled.
    target: Option<Arc<Target>>,
}

/// Where notifications go, and the socket they leave from.
struct Target {
    /// The address as given (`NOTIFY_SOCKET`), for errors and logs.
    display: String,
    /// The parsed address: a path or an abstract name.
    addr: SocketAddr,
    /// One unbound socket, shared by all clones; `sendto` needs no connection, so a
    /// manager that re-creates its socket is reached again on the next send.
    socket: UnixDatagram,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("address", &self.display)
            .finish_non_exhaustive()
    }
}

impl Notifier {
    /// A notifier for the socket named in `NOTIFY_SOCKET`, disabled when the variable is
    /// unset or empty.
    ///
    /// The variable is left in the environment: removing it is `unsafe` in edition 2024
    /// (other threads may read the environment concurrently), and a child process that
    /// inherits it can only notify on the daemon's behalf if `NotifyAccess=all` allows it.
    /// A daemon that spawns children it does not want notifying should remove it for them
    /// with [`std::process::Command::env_remove`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidNotifySocket`] when the variable is neither an absolute path nor an
    /// `@` abstract name (e.g. systemd's `vsock:` addresses, which this crate does not
    /// support), or is too long for a Unix socket address; [`Error::Io`] when the sending
    /// socket cannot be created (e.g. out of file descriptors).
    pub fn from_env() -> Result<Notifier, Error> {
        match std::env::var_os(NOTIFY_SOCKET) {
            Some(address) => Notifier::new(address),
            None => {
                tracing::debug!(
                    reason = "NotifyDisabled",
                    "NOTIFY_SOCKET is not set; systemd notifications are off"
                );
                Ok(Notifier::disabled())
            }
        }
    }

    /// A notifier for an explicit address: an absolute path, or an abstract socket name
    /// written `@name`. An empty address gives a disabled notifier, as an empty
    /// `NOTIFY_SOCKET` does.
    ///
    /// Nothing is sent and the address is not checked for a listener until the first
    /// notification.
    ///
    /// # Errors
    ///
    /// As [`Notifier::from_env`].
    pub fn new(address: impl AsRef<OsStr>) -> Result<Notifier, Error> {
        let address = address.as_ref();
        let label = address.to_string_lossy().into_owned();
        if address.is_empty() {
            tracing::debug!(
                reason = "NotifyDisabled",
                "the notify socket address is empty; systemd notifications are off"
            );
            return Ok(Notifier::disabled());
        }
        let invalid = |problem: String| Error::InvalidNotifySocket {
            address: label.clone(),
            problem,
        };
        let bytes = address.as_bytes();
        let addr = match bytes {
            [b'@', name @ ..] => SocketAddr::from_abstract_name(name),
            [b'/', ..] => SocketAddr::from_pathname(address),
            _ => {
                return Err(invalid(
                    "expected an absolute path or an abstract name starting with '@' \
                     (vsock: addresses are not supported)"
                        .to_owned(),
                ));
            }
        }
        .map_err(|e| invalid(format!("not a usable Unix socket address: {e}")))?;
        let socket = UnixDatagram::unbound()
            .and_then(|s| s.set_write_timeout(Some(SEND_TIMEOUT)).map(|()| s))
            .map_err(|source| Error::Io {
                op: Op::CreateNotifySocket,
                path: label.clone().into(),
                source,
            })?;
        tracing::debug!(
            reason = "NotifyEnabled",
            socket = %label,
            "systemd notifications go to this socket"
        );
        Ok(Notifier {
            target: Some(Arc::new(Target {
                display: label,
                addr,
                socket,
            })),
        })
    }

    /// A notifier that sends nothing; every call returns `Ok(())`.
    pub fn disabled() -> Notifier {
        Notifier { target: None }
    }

    /// Whether notifications are sent anywhere (an address was given).
    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// The notify socket address as given, or `None` when disabled.
    pub fn address(&self) -> Option<&str> {
        self.target.as_deref().map(|t| t.display.as_str())
    }

    /// Sends `READY=1`: start-up finished and the service is serving.
    ///
    /// # Errors
    ///
    /// [`Error::Notify`] when the datagram cannot be delivered.
    pub fn ready(&self) -> Result<(), Error> {
        self.notify(&[State::Ready])
    }

    /// Sends `STOPPING=1`: the service began shutting down.
    ///
    /// # Errors
    ///
    /// [`Error::Notify`] when the datagram cannot be delivered.
    pub fn stopping(&self) -> Result<(), Error> {
        self.notify(&[State::Stopping])
    }

    /// Sends `RELOADING=1` with `MONOTONIC_USEC=<now>`: the service began reloading its
    /// configuration. Send [`ready`](Notifier::ready) when the reload is done.
    ///
    /// # Errors
    ///
    /// [`Error::Notify`] when the datagram cannot be delivered.
    pub fn reloading(&self) -> Result<(), Error> {
        self.notify(&[State::Reloading])
    }

    /// Sends `STATUS=<text>`, shown by `systemctl status`. Newlines are sent as spaces.
    ///
    /// # Errors
    ///
    /// [`Error::Notify`] when the datagram cannot be delivered.
    pub fn status(&self, text: &str) -> Result<(), Error> {
        self.notify(&[State::Status(text)])
    }

    /// Sends `EXTEND_TIMEOUT_USEC=<µs>`: the current start, stop or reload step needs `by`
    /// more time, counted from now (systemd's `TimeoutStartSec=` and friends).
    ///
    /// # Errors
    ///
    /// [`Error::Notify`] when the datagram cannot be delivered.
    pub fn extend_timeout(&self, by: Duration) -> Result<(), Error> {
        self.notify(&[State::ExtendTimeout(by)])
    }

    /// Sends `WATCHDOG=1`, the keepalive for `WatchdogSec=`. See
    /// [`Watchdog`](crate::systemd::watchdog::Watchdog) for a task that sends it on schedule.
    ///
    /// # Errors
    ///
    /// [`Error::Notify`] when the datagram cannot be delivered.
    pub fn watchdog(&self) -> Result<(), Error> {
        self.notify(&[State::Watchdog])
    }

    /// Sends several states in one datagram, one `KEY=VALUE` per line, so systemd applies
    /// them together. An empty slice sends nothing.
    ///
    /// # Errors
    ///
    /// [`Error::Notify`], naming the socket and the state kinds, when the datagram cannot
    /// be built (the monotonic clock cannot be read) or delivered.
    pub fn notify(&self, states: &[State<'_>]) -> Result<(), Error> {
        let Some(target) = self.target.as_deref() else {
            return Ok(());
        };
        if states.is_empty() {
            return Ok(());
        }
        let fail = |source: io::Error| Error::Notify {
            socket: target.display.clone(),
            payload: payload_kinds(states),
            source,
        };
        let mut msg = String::new();
        for (i, state) in states.iter().enumerate() {
            if i > 0 {
                msg.push('\n');
            }
            state.write_to(&mut msg).map_err(fail)?;
        }
        let sent = target
            .socket
            .send_to_addr(msg.as_bytes(), &target.addr)
            .map_err(fail)?;
        if sent != msg.len() {
            return Err(fail(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("only {sent} of {} bytes were sent", msg.len()),
            )));
        }
        tracing::trace!(
            reason = "NotifySent",
            socket = %target.display,
            payload = %payload_kinds(states),
            "sent a notification to systemd"
        );
        Ok(())
    }
}

/// The kinds of the states, e.g. `READY+STATUS`, for errors and logs (never the values:
/// status text may be long or private).
fn payload_kinds(states: &[State<'_>]) -> String {
    let mut kinds = String::new();
    for (i, state) in states.iter().enumerate() {
        if i > 0 {
            kinds.push('+');
        }
        kinds.push_str(state.key());
    }
    kinds
}
