//! [`ControlPlane::bind`]: claim the socket (or take systemd's), and the
//! [`BoundControlPlane`] that results.

use std::fmt;
use std::net::SocketAddr;
use std::os::unix::net::UnixListener as StdUnixListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::{TcpListener, UnixListener};

use super::builder::{ControlPlaneBuilder, TcpSource};
use super::limits::Limits;
use super::routes::App;
use super::socket::{self, SocketFile};
use crate::Error;
use crate::error::Op;

// ===== ControlPlane =====

/// A checked control-plane configuration, ready to [`bind`](Self::bind).
///
/// Made by [`ControlPlane::builder`] and [`ControlPlaneBuilder::build`]: every
/// configuration mistake is reported by `build`, before anything is touched on disk;
/// `bind` does the I/O. See the [module documentation](super) for the routes and the
/// guarantees.
pub struct ControlPlane {
    pub(super) app: Arc<App>,
    pub(super) socket_path: PathBuf,
    pub(super) listener: Option<StdUnixListener>,
    pub(super) tcp: Option<TcpSource>,
}

impl fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ControlPlane")
            .field("socket_path", &self.socket_path)
            .field("activated", &self.listener.is_some())
            .field("tcp", &self.tcp.is_some())
            .finish_non_exhaustive()
    }
}

impl ControlPlane {
    /// A builder for a control plane serving on the Unix socket at `socket_path`, with
    /// the default limits, no status function (`/status` answers `{}`), always ready,
    /// no components and no TCP listener.
    ///
    /// # Examples
    ///
    /// Bind, ask `/health` over the socket, and shut down:
    ///
    /// ```
    /// use daemonkit::server::ControlPlane;
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// use tokio_util::sync::CancellationToken;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("run").join("control.sock");
    ///
    /// let bound = ControlPlane::builder(&path)
    ///     .status(|| serde_json::json!({"jobs": 3}))
    ///     .build()?
    ///     .bind()
    ///     .await?;
    /// // The socket accepts from here on: a daemon would send READY=1 now.
    /// let cancel = CancellationToken::new();
    /// let server = tokio::spawn(bound.serve(cancel.clone()));
    ///
    /// let mut conn = tokio::net::UnixStream::connect(&path).await?;
    /// conn.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await?;
    /// let mut response = String::new();
    /// conn.read_to_string(&mut response).await?;
    /// assert!(response.starts_with("HTTP/1.1 200 OK\r\n"));
    /// assert!(response.contains("content-type: application/json\r\n"));
    /// assert!(response.ends_with("\r\n\r\n{\"status\":\"ok\"}\n"));
    ///
    /// cancel.cancel();
    /// server.await??;
    /// assert!(!path.exists(), "the socket is removed on shutdown");
    /// # Ok(())
    /// # }
    /// ```
    pub fn builder(socket_path: impl Into<PathBuf>) -> ControlPlaneBuilder {
        ControlPlaneBuilder {
            socket_path: socket_path.into(),
            listener: None,
            tcp: None,
            status: None,
            ready: None,
            components: Vec::new(),
            trackers: Vec::new(),
            registry: None,
            stall: None,
            limits: Limits::default(),
            actions: super::actions::Actions::new(),
            mutating: Vec::new(),
            invalid: None,
        }
    }

    /// The Unix socket path this control plane will serve on.
    pub fn socket_path(&self) -> &Path {
        &self.socket_path
    }

    /// Starts listening: once this returns, connections are accepted by the kernel and
    /// wait until [`BoundControlPlane::serve`] answers them.
    ///
    /// The file-system work (a few `stat`s, `mkdir`, `bind`, `chmod`, `rename`) is done
    /// inline: it takes microseconds on a local file system.
    ///
    /// # Errors
    ///
    /// - [`Error::SocketInUse`] when a live process accepts on the socket path;
    /// - [`Error::SocketPathOccupied`] when something other than a socket is there;
    /// - [`Error::SocketPathTooLong`] when the path does not fit in a socket address;
    /// - [`Error::Io`] when the directory, socket or rename fails;
    /// - [`Error::TcpIo`] when the TCP listener cannot be bound.
    ///
    /// On error nothing this call created is left behind.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with I/O enabled.
    pub async fn bind(self) -> Result<BoundControlPlane, Error> {
        let app = self.app;
        let activated = self.listener.is_some();
        let (unix, socket_path, socket_file) = match self.listener {
            Some(listener) => {
                let path = listener
                    .local_addr()
                    .ok()
                    .and_then(|addr| addr.as_pathname().map(Path::to_owned))
                    .unwrap_or(self.socket_path);
                (unix_to_tokio(listener, &path)?, path, None)
            }
            None => {
                let (listener, file) = socket::bind(&self.socket_path)?;
                let path = self.socket_path;
                (unix_to_tokio(listener, &path)?, path, Some(file))
            }
        };

        let (tcp, tcp_addr) = match self.tcp {
            Some(source) => {
                let (listener, addr) = bind_tcp(source).await?;
                (Some(listener), Some(addr))
            }
            None => (None, None),
        };

        tracing::info!(
            reason = "ControlPlaneListening",
            socket = %socket_path.display(),
            tcp = ?tcp_addr,
            activated,
            "control plane listening"
        );
        Ok(BoundControlPlane {
            app,
            unix,
            tcp,
            socket_path,
            socket_file,
            tcp_addr,
        })
    }
}

async fn bind_tcp(source: TcpSource) -> Result<(TcpListener, SocketAddr), Error> {
    let (listener, asked) = match source {
        TcpSource::Addr(addr) => {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| Error::TcpIo {
                    op: Op::BindTcp,
                    addr,
                    source,
                })?;
            (listener, addr)
        }
        TcpSource::Listener(listener) => {
            let addr = listener
                .local_addr()
                .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
            let listener = listener
                .set_nonblocking(true)
                .and_then(|()| TcpListener::from_std(listener))
                .map_err(|source| Error::TcpIo {
                    op: Op::ServeTcpListener,
                    addr,
                    source,
                })?;
            (listener, addr)
        }
    };
    let addr = listener.local_addr().map_err(|source| Error::TcpIo {
        op: Op::ReadTcpAddress,
        addr: asked,
        source,
    })?;
    Ok((listener, addr))
}

fn unix_to_tokio(listener: StdUnixListener, path: &Path) -> Result<UnixListener, Error> {
    listener
        .set_nonblocking(true)
        .and_then(|()| UnixListener::from_std(listener))
        .map_err(|source| Error::Io {
            op: Op::ServeSocket,
            path: path.to_owned(),
            source,
        })
}

// ===== BoundControlPlane =====

/// A control plane whose socket is listening, ready to [`serve`](Self::serve).
///
/// Connections made from now on wait in the socket's backlog until `serve` answers them,
/// so this is the moment to tell the service manager the daemon is ready. Dropping it
/// without serving removes the socket file it created.
pub struct BoundControlPlane {
    pub(super) app: Arc<App>,
    pub(super) unix: UnixListener,
    pub(super) tcp: Option<TcpListener>,
    pub(super) socket_path: PathBuf,
    pub(super) socket_file: Option<SocketFile>,
    pub(super) tcp_addr: Option<SocketAddr>,
}

impl fmt::Debug for BoundControlPlane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundControlPlane")
            .field("socket_path", &self.socket_path)
            .field("tcp_addr", &self.tcp_addr)
            .field("owns_socket_file", &self.socket_file.is_some())
            .finish_non_exhaustive()
    }
}

impl BoundControlPlane {
    /// The path of the Unix socket served: the configured path, or the path of the
    /// listener passed with [`ControlPlaneBuilder::listener`].
    pub fn socket_path(&self) -> &Path {
        &self.socket_path
    }

    /// The address of the TCP listener, when one is configured (with the actual port
    /// when port 0 was asked for).
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_addr
    }
}
