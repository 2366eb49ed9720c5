//! Socket activation: serve on the listening sockets systemd passed instead of binding
//! new ones.
//!
//! With a `.socket` unit, systemd creates and binds the sockets itself, then starts the
//! service with them open as descriptors 3, 4, … and describes them in `LISTEN_PID` (the
//! process they are for), `LISTEN_FDS` (how many) and `LISTEN_FDNAMES` (their
//! `FileDescriptorName=`s, colon-separated; the default name is the socket unit's name).
//! Connections that arrive before the daemon is ready wait in the socket's backlog
//! instead of failing, and the socket outlives restarts of the service.
//!
//! [`ListenFds::from_env`] claims those descriptors once per process, checks that each is
//! a socket, and hands them out as [`std::os::unix::net::UnixListener`] or
//! [`std::net::TcpListener`], by name or by kind. Outside socket activation it returns an
//! empty set, so a daemon asks unconditionally and binds its own socket when it gets
//! nothing:
//!
//! ```no_run
//! use daemonkit::systemd::activation::ListenFds;
//! use std::os::unix::net::UnixListener;
//!
//! let mut passed = ListenFds::from_env()?;
//! let listener = match passed.take_unix_listener(None)? {
//!     Some(listener) => listener, // systemd owns the socket file: do not remove it
//!     None => UnixListener::bind("/run/app/control.sock")?,
//! };
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What comes from the `sd-notify` crate
//!
//! Reading the variables — the `LISTEN_PID` check, the count, the names and marking the
//! descriptors close-on-exec — is `sd_notify::listen_fds_with_names`. Added here: taking
//! ownership exactly once, checking each descriptor really is a socket of the kind it is
//! used as (`fstat`, `SO_DOMAIN`, `SO_TYPE`, `SO_ACCEPTCONN` through rustix), and lookup by
//! name.

use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::FileType;
use rustix::net::{AddressFamily, SocketType};

use crate::Error;

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`); stdin, stdout and stderr
/// come before it.
pub const SD_LISTEN_FDS_START: i32 = 3;

/// Set once [`ListenFds::from_env`] has taken ownership of the passed descriptors, so a
/// second call cannot wrap the same descriptor numbers in a second `OwnedFd` (which would
/// close them twice, the second time possibly closing an unrelated, reused descriptor).
static CLAIMED: AtomicBool = AtomicBool::new(false);

// ===== ListenFds =====

/// The sockets systemd passed to this process, each with its name, not yet taken.
///
/// Each `take_*` call removes the socket it returns, so a socket is served by one owner.
/// Sockets never taken are closed when the `ListenFds` is dropped.
///
/// Listeners are returned in the mode systemd created them, which is blocking unless the
/// socket unit says `NonBlocking=yes`; call `set_nonblocking(true)` before handing one to
/// tokio (`tokio::net::UnixListener::from_std`).
///
/// # Examples
///
/// Sockets can also be given explicitly, e.g. ones inherited some other way or in tests:
///
/// ```
/// use std::os::fd::OwnedFd;
/// use std::os::unix::net::UnixListener;
/// use daemonkit::systemd::activation::ListenFds;
///
/// let dir = std::env::temp_dir().join(format!("daemonkit-activation-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("control.sock");
/// let _ = std::fs::remove_file(&path);
/// let bound = UnixListener::bind(&path)?;
///
/// let mut passed = ListenFds::from_fds([(OwnedFd::from(bound), "control".to_owned())])?;
/// assert_eq!(passed.names().collect::<Vec<_>>(), ["control"]);
/// assert!(passed.take_unix_listener(Some("metrics"))?.is_none());
/// let listener = passed.take_unix_listener(Some("control"))?.expect("passed above");
/// assert_eq!(listener.local_addr()?.as_pathname(), Some(path.as_path()));
/// assert!(passed.is_empty());
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct ListenFds {
    fds: Vec<ListenFd>,
}

/// One passed socket, inspected when it was received.
#[derive(Debug)]
struct ListenFd {
    fd: OwnedFd,
    name: String,
    domain: AddressFamily,
    kind: SocketType,
    listening: bool,
}

/// What a `take_*` call wants.
#[derive(Clone, Copy)]
enum Want {
    UnixListener,
    TcpListener,
}

impl Want {
    fn description(self) -> &'static str {
        match self {
            Want::UnixListener => "a listening Unix stream socket (ListenStream=/path)",
            Want::TcpListener => "a listening TCP socket (ListenStream=port or address:port)",
        }
    }

    fn accepts(self, fd: &ListenFd) -> bool {
        let domain_ok = match self {
            Want::UnixListener => fd.domain == AddressFamily::UNIX,
            Want::TcpListener => {
                fd.domain == AddressFamily::INET || fd.domain == AddressFamily::INET6
            }
        };
        domain_ok && fd.kind == SocketType::STREAM && fd.listening
    }
}

impl ListenFds {
    /// Claims the sockets systemd passed to this process.
    ///
    /// Returns an empty set when there are none for this process: `LISTEN_PID` unset or
    /// naming another process (the variables were inherited from a parent), or
    /// `LISTEN_FDS` unset or `0`. Names come from `LISTEN_FDNAMES`, or are `unknown` when
    /// it is unset.
    ///
    /// Only the first call in a process takes the descriptors; later calls log
    /// `ListenFdsAlreadyClaimed` and return an empty set, because a descriptor must have
    /// one owner. The variables are left in the environment (removing them is `unsafe` in
    /// edition 2024); children that inherit them see a `LISTEN_PID` that is not theirs and
    /// ignore them, and the descriptors themselves are marked close-on-exec.
    ///
    /// # Errors
    ///
    /// [`Error::ListenFds`] when the variables are malformed (a `LISTEN_PID` or
    /// `LISTEN_FDS` that is not a number, a `LISTEN_FDNAMES` with a different number of
    /// names than descriptors) or name a descriptor that is not open;
    /// [`Error::ListenFdKind`] when a passed descriptor is not a socket. On error the
    /// descriptors already claimed are closed.
    pub fn from_env() -> Result<ListenFds, Error> {
        let listen_fds_error = |source| Error::ListenFds { source };
        // sd-notify's `listen_fds_with_names` checks LISTEN_FDNAMES against the number of
        // descriptors even when LISTEN_PID names another process (0 descriptors), failing
        // where libsystemd returns "none for us". Ask for the descriptors first.
        if sd_notify::listen_fds().map_err(listen_fds_error)?.len() == 0 {
            tracing::debug!(
                reason = "ListenFdsAbsent",
                "no sockets passed by systemd for this process"
            );
            return Ok(ListenFds::default());
        }
        let passed = sd_notify::listen_fds_with_names().map_err(listen_fds_error)?;
        if CLAIMED.swap(true, Ordering::SeqCst) {
            tracing::warn!(
                reason = "ListenFdsAlreadyClaimed",
                count = passed.len(),
                "the sockets passed by systemd were already claimed in this process; ignoring them here"
            );
            return Ok(ListenFds::default());
        }
        let fds: Vec<(OwnedFd, String)> = passed
            .map(|(raw, name)| {
                // SAFETY: sd-notify returned this descriptor because LISTEN_PID names this
                // process and LISTEN_FDS covers it, i.e. the service manager passed it to
                // this process to own; sd-notify's fcntl(F_GETFD) on it succeeded, so it
                // is open. CLAIMED makes this the only place in the process that wraps
                // it, so it gets exactly one owner.
                let fd = unsafe { OwnedFd::from_raw_fd(raw) };
                (fd, name)
            })
            .collect();
        let fds = ListenFds::from_fds(fds)?;
        tracing::info!(
            reason = "ListenFdsReceived",
            count = fds.len(),
            names = %fds.names().collect::<Vec<_>>().join(":"),
            "received sockets from systemd"
        );
        Ok(fds)
    }

    /// Sockets given explicitly, each with a name, in the order they were passed.
    ///
    /// Each descriptor is marked close-on-exec and inspected: it must be a socket.
    ///
    /// # Errors
    ///
    /// [`Error::ListenFdKind`] when a descriptor is not a socket; [`Error::ListenFdIo`]
    /// when one cannot be inspected. All the descriptors are closed on error.
    pub fn from_fds(fds: impl IntoIterator<Item = (OwnedFd, String)>) -> Result<ListenFds, Error> {
        let fds = fds
            .into_iter()
            .map(|(fd, name)| ListenFd::inspect(fd, name))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ListenFds { fds })
    }

    /// How many sockets are left.
    pub fn len(&self) -> usize {
        self.fds.len()
    }

    /// Whether no sockets are left (or none were passed).
    pub fn is_empty(&self) -> bool {
        self.fds.is_empty()
    }

    /// The names of the sockets left, in the order they were passed.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.fds.iter().map(|fd| fd.name.as_str())
    }

    /// Takes a listening Unix stream socket: the first one named `name`, or with `None` the
    /// first one of that kind whatever its name.
    ///
    /// Returns `Ok(None)` when there is no socket of that name (or, with `None`, of that
    /// kind) — the caller then binds its own.
    ///
    /// # Errors
    ///
    /// [`Error::ListenFdKind`] when sockets named `name` were passed but none is a
    /// listening Unix stream socket (e.g. a datagram or TCP socket got the name): a
    /// misconfigured unit, reported rather than silently ignored.
    pub fn take_unix_listener(
        &mut self,
        name: Option<&str>,
    ) -> Result<Option<UnixListener>, Error> {
        Ok(self.take(name, Want::UnixListener)?.map(UnixListener::from))
    }

    /// Takes a listening TCP socket (IPv4 or IPv6): the first one named `name`, or with
    /// `None` the first one of that kind whatever its name.
    ///
    /// Returns `Ok(None)` when there is no socket of that name (or, with `None`, of that
    /// kind).
    ///
    /// # Errors
    ///
    /// [`Error::ListenFdKind`] when sockets named `name` were passed but none is a
    /// listening TCP socket.
    pub fn take_tcp_listener(&mut self, name: Option<&str>) -> Result<Option<TcpListener>, Error> {
        Ok(self.take(name, Want::TcpListener)?.map(TcpListener::from))
    }

    /// All the sockets left, with their names, for kinds the `take_*` methods do not hand
    /// out (datagram and sequential-packet sockets, for instance).
    pub fn into_fds(self) -> Vec<(String, OwnedFd)> {
        self.fds.into_iter().map(|fd| (fd.name, fd.fd)).collect()
    }

    fn take(&mut self, name: Option<&str>, want: Want) -> Result<Option<OwnedFd>, Error> {
        let named = |fd: &ListenFd| name.is_none_or(|name| fd.name == name);
        if let Some(at) = self.fds.iter().position(|fd| named(fd) && want.accepts(fd)) {
            let fd = self.fds.remove(at);
            tracing::debug!(
                reason = "ListenFdTaken",
                fd = fd.fd.as_raw_fd(),
                name = %fd.name,
                "serving on a socket passed by systemd"
            );
            return Ok(Some(fd.fd));
        }
        match (name, self.fds.iter().find(|fd| named(fd))) {
            (Some(_), Some(wrong)) => Err(Error::ListenFdKind {
                fd: wrong.fd.as_raw_fd(),
                name: wrong.name.clone(),
                expected: want.description(),
                found: wrong.describe(),
            }),
            _ => Ok(None),
        }
    }
}

// ===== impl ListenFd =====

impl ListenFd {
    /// Marks `fd` close-on-exec and reads what kind of socket it is.
    fn inspect(fd: OwnedFd, name: String) -> Result<ListenFd, Error> {
        let raw = fd.as_raw_fd();
        let io_error =
            |op: &'static str, name: &str, source: rustix::io::Errno| Error::ListenFdIo {
                op,
                fd: raw,
                name: name.to_owned(),
                source: source.into(),
            };
        let flags =
            rustix::io::fcntl_getfd(&fd).map_err(|e| io_error("reading the flags of", &name, e))?;
        if !flags.contains(rustix::io::FdFlags::CLOEXEC) {
            rustix::io::fcntl_setfd(&fd, flags | rustix::io::FdFlags::CLOEXEC)
                .map_err(|e| io_error("setting close-on-exec on", &name, e))?;
        }
        let stat = rustix::fs::fstat(&fd).map_err(|e| io_error("inspecting", &name, e))?;
        let file_type = FileType::from_raw_mode(stat.st_mode);
        if file_type != FileType::Socket {
            return Err(Error::ListenFdKind {
                fd: raw,
                name,
                expected: "a socket",
                found: describe_file_type(file_type).to_owned(),
            });
        }
        let read = |e| io_error("reading the socket options of", &name, e);
        let domain = rustix::net::sockopt::socket_domain(&fd).map_err(read)?;
        let kind = rustix::net::sockopt::socket_type(&fd).map_err(read)?;
        let listening = rustix::net::sockopt::socket_acceptconn(&fd).map_err(read)?;
        Ok(ListenFd {
            fd,
            name,
            domain,
            kind,
            listening,
        })
    }

    /// E.g. `a Unix datagram socket` or `an IPv4 stream socket that is not listening`.
    fn describe(&self) -> String {
        let domain = match self.domain {
            AddressFamily::UNIX => "a Unix".to_owned(),
            AddressFamily::INET => "an IPv4".to_owned(),
            AddressFamily::INET6 => "an IPv6".to_owned(),
            AddressFamily::NETLINK => "a netlink".to_owned(),
            other => format!("an address family {}", other.as_raw()),
        };
        let kind = match self.kind {
            SocketType::STREAM => "stream".to_owned(),
            SocketType::DGRAM => "datagram".to_owned(),
            SocketType::SEQPACKET => "sequential-packet".to_owned(),
            other => format!("type {}", other.as_raw()),
        };
        let listening = if self.listening || self.kind != SocketType::STREAM {
            ""
        } else {
            " that is not listening"
        };
        format!("{domain} {kind} socket{listening}")
    }
}

fn describe_file_type(file_type: FileType) -> &'static str {
    match file_type {
        FileType::RegularFile => "a regular file",
        FileType::Directory => "a directory",
        FileType::Symlink => "a symbolic link",
        FileType::Fifo => "a FIFO (pipe)",
        FileType::Socket => "a socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        FileType::Unknown => "an unknown kind of file",
    }
}
