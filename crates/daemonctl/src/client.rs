//! Asking a daemon over its control socket, trusting nothing that comes back.
//!
//! The rules, each against a failure seen in the field:
//!
//! - **Which socket.** `--socket PATH` (or `DAEMONCTL_SOCKET`) names it; otherwise
//!   `--daemon NAME` (default `daemonkit-demo`) computes it with the kernel's own rule
//!   ([`daemonkit::paths::default_socket_path`]), and when nothing is there but
//!   `/run/NAME/control.sock` exists (a system service with `RuntimeDirectory=NAME`),
//!   that one. A computed directory under `XDG_RUNTIME_DIR` or the temp dir must be the
//!   user's private one ([`daemonkit::paths::check_private_dir`]).
//! - **Whose socket.** The socket's directory must not be a symbolic link nor writable by
//!   group or others ([`daemonkit::paths::check_client_socket_dir`]), and the server's
//!   peer credentials (`SO_PEERCRED`) must name root, this user, or the directory's owner.
//!   An operator in the service's group still reaches `/run/<daemon>/control.sock` owned by
//!   the service user; nobody else's socket is mistaken for the daemon's.
//! - **How much.** The response head is limited ([`MAX_HEAD`]), the body to `--max-body`
//!   (16 MiB by default, checked against `Content-Length` at once and counted while
//!   reading, so an endless chunked body stops there), and the whole exchange to
//!   `--timeout`.
//!
//! Every failure is one line on stderr and exit code [`UNREACHABLE`].

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

use crate::escape;

/// Exit code: every monitor running and healthy (or the request succeeded).
pub const OK: u8 = 0;
/// Exit code: some monitor is not running and healthy, or a prerequisite probe fails.
pub const UNHEALTHY: u8 = 1;
/// Exit code: no trustworthy answer (cannot connect, refused by the safety rules, timed
/// out, too large, not JSON, or an HTTP error).
pub const UNREACHABLE: u8 = 2;

/// The default limit on a response body: 16 MiB, far above any status document.
pub const DEFAULT_MAX_BODY: u64 = 16 << 20;
/// The limit on the response head (status line and headers).
pub const MAX_HEAD: usize = 64 << 10;
/// The limit on the number of response headers.
const MAX_HEADERS: usize = 64;
/// The daemon whose socket is the default.
pub const DEFAULT_DAEMON: &str = "daemonkit-demo";

/// A failure to get a trustworthy answer, worded for an operator: what happened and what
/// to check. Already escaped for the terminal.
#[derive(Debug)]
pub struct Failure(pub String);

/// Where to connect and how much to accept: the resolved connection options.
#[derive(Debug, Clone)]
pub struct Target {
    /// The socket.
    pub socket: PathBuf,
    /// Whether the path was computed (not given), so its directory must be the user's own.
    pub computed_private: bool,
    /// The body limit in bytes.
    pub max_body: u64,
    /// The limit on the whole exchange.
    pub timeout: Duration,
}

/// The socket for `daemon` by the kernel's rule, with whether it must be private: the
/// path `--help` prints and the one used when no `--socket` is given.
pub fn default_socket(daemon: &str) -> (PathBuf, bool) {
    use daemonkit::paths::{DirKind, Origin, locate};
    let location = locate(DirKind::Runtime, daemon);
    let socket = location.path.join("control.sock");
    let private = location.origin != Origin::Systemd;
    if !socket.exists() {
        // A system service (RuntimeDirectory=NAME) serves at /run/NAME/control.sock.
        let system = Path::new("/run").join(daemon).join("control.sock");
        if system.exists() {
            return (system, false);
        }
    }
    (socket, private)
}

/// Checks a `--daemon` name: one path component.
pub fn check_daemon_name(name: &str) -> Result<(), Failure> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(Failure(format!(
            "invalid --daemon name \"{}\": give the daemon's name as in its unit, e.g. inventory-agent",
            escape::text(name)
        )));
    }
    Ok(())
}

// ===== safety checks =====

/// Applies the directory rules and returns the uid owning the socket's directory.
fn check_socket_dir(target: &Target) -> Result<u32, Failure> {
    let socket = &target.socket;
    let parent = match socket.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let refused = |e: daemonkit::Error| Failure(escape::text(&e.to_string()).into_owned());
    if target.computed_private {
        match daemonkit::paths::check_private_dir(parent) {
            Ok(_) => {}
            // Not there: the connect below says "no control socket" more helpfully.
            Err(daemonkit::Error::Io { source, .. })
                if source.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(refused(e)),
        }
    }
    match daemonkit::paths::check_client_socket_dir(parent) {
        Ok(info) => Ok(info.owner()),
        Err(daemonkit::Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            Err(Failure(format!(
                "no control socket at {} (its directory does not exist; is the daemon \
                 running? pass --socket, --daemon or set DAEMONCTL_SOCKET)",
                escape::path(socket)
            )))
        }
        Err(e) => Err(refused(e)),
    }
}

/// The server must run as root, as this user, or as the owner of the socket's directory.
fn check_peer(stream: &UnixStream, socket: &Path, dir_owner: u32) -> Result<(), Failure> {
    let cred = stream.peer_cred().map_err(|e| {
        Failure(format!(
            "cannot read the peer credentials of {}: {e}",
            escape::path(socket)
        ))
    })?;
    let uid = cred.uid();
    let me = rustix::process::geteuid().as_raw();
    if uid == 0 || uid == me || uid == dir_owner {
        return Ok(());
    }
    Err(Failure(format!(
        "refusing the server on {}: it runs as uid {uid}, which is neither root, you \
         (uid {me}), nor the owner of the socket's directory (uid {dir_owner}); somebody \
         else may have put this socket there",
        escape::path(socket)
    )))
}

// ===== the exchange =====

/// Sends `GET path` and returns the status and the body, within the target's limits.
pub fn get(target: &Target, path: &str) -> Result<(StatusCode, Bytes), Failure> {
    send(target, Method::GET, path, Bytes::new())
}

/// Sends `method path` with `body` and returns the status and the body, within the
/// target's limits.
pub fn send(
    target: &Target,
    method: Method,
    path: &str,
    body: Bytes,
) -> Result<(StatusCode, Bytes), Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure(format!("cannot start the I/O runtime: {e}")))?;
    let result = runtime.block_on(send_async(target, method, path, body));
    // Do not wait for a connection task stuck on a server that keeps sending.
    runtime.shutdown_background();
    result
}

/// [`get`] inside a running runtime (current-thread, with I/O and time enabled).
pub async fn get_async(target: &Target, path: &str) -> Result<(StatusCode, Bytes), Failure> {
    send_async(target, Method::GET, path, Bytes::new()).await
}

async fn send_async(
    target: &Target,
    method: Method,
    path: &str,
    body: Bytes,
) -> Result<(StatusCode, Bytes), Failure> {
    let dir_owner = check_socket_dir(target)?;
    tokio::time::timeout(
        target.timeout,
        request(target, method, path, body, dir_owner),
    )
    .await
    .unwrap_or_else(|_| {
        Err(Failure(format!(
            "the daemon on {} did not answer {path} completely within {} \
                 (is it overloaded or stuck? check its logs, or raise --timeout)",
            escape::path(&target.socket),
            crate::humanize(target.timeout)
        )))
    })
}

async fn request(
    target: &Target,
    method: Method,
    path: &str,
    body: Bytes,
    dir_owner: u32,
) -> Result<(StatusCode, Bytes), Failure> {
    let socket = &target.socket;
    let shown = escape::path(socket);
    let stream = UnixStream::connect(socket)
        .await
        .map_err(|e| connect_failure(socket, &e))?;
    check_peer(&stream, socket, dir_owner)?;
    let broken = |e: hyper::Error| {
        // `is_parse_too_large` exists only with hyper's server feature; the message is stable.
        if e.is_parse() && e.to_string().contains("too large") {
            Failure(format!(
                "the daemon on {shown} answered with a response head over the {} KiB limit \
                 (or over {MAX_HEADERS} headers); refusing it",
                MAX_HEAD >> 10
            ))
        } else {
            Failure(format!(
                "the daemon on {shown} broke off the exchange: {} (check its logs)",
                escape::text(&e.to_string())
            ))
        }
    };
    let (mut sender, connection) = hyper::client::conn::http1::Builder::new()
        .max_buf_size(MAX_HEAD)
        .max_headers(MAX_HEADERS)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(broken)?;
    // The connection task ends with this exchange, answered or not (timeout, limit): a
    // server that keeps sending must not keep a `watch` loop reading.
    let _connection = AbortOnDrop(tokio::spawn(connection));
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, "localhost")
        .body(Full::new(body))
        .map_err(|e| {
            Failure(format!(
                "invalid request path \"{}\": {e}",
                escape::text(path)
            ))
        })?;
    let response = sender.send_request(request).await.map_err(broken)?;
    let status = response.status();
    let too_large = |what: &str| {
        Failure(format!(
            "the daemon on {shown} answered {path} with a body {what} the {} limit; refusing \
             it (raise --max-body if this daemon's answers are legitimately that large)",
            bytes_human(target.max_body)
        ))
    };
    if let Some(len) = response
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > target.max_body
    {
        return Err(too_large(&format!("of {len} bytes, over")));
    }
    let mut body = response.into_body();
    let mut collected: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(broken)?;
        if let Some(data) = frame.data_ref() {
            if collected.len() as u64 + data.len() as u64 > target.max_body {
                return Err(too_large("over"));
            }
            collected.extend_from_slice(data);
        }
    }
    Ok((status, Bytes::from(collected)))
}

/// Aborts the task when dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `16 MiB`, `1500 bytes`.
fn bytes_human(n: u64) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n}-byte")
    }
}

fn connect_failure(socket: &Path, err: &io::Error) -> Failure {
    let path = escape::path(socket);
    Failure(match err.kind() {
        io::ErrorKind::ConnectionRefused => {
            format!("no daemon is listening on {path} (connection refused; is it running?)")
        }
        io::ErrorKind::NotFound => format!(
            "no control socket at {path} (is the daemon running? pass --socket, --daemon or \
             set DAEMONCTL_SOCKET)"
        ),
        io::ErrorKind::PermissionDenied => {
            format!("permission denied on {path} (run as the daemon's user or group, or with sudo)")
        }
        _ => format!("cannot connect to {path}: {err}"),
    })
}

/// Parses a JSON body, or explains (escaped) that the daemon answered something else.
pub fn json(
    target: &Target,
    path: &str,
    status: StatusCode,
    body: &[u8],
) -> Result<serde_json::Value, Failure> {
    let shown = escape::path(&target.socket);
    let parsed: Result<serde_json::Value, _> = serde_json::from_slice(body);
    if !status.is_success() {
        let detail = match &parsed {
            Ok(value) => value
                .get("error")
                .and_then(serde_json::Value::as_str)
                .map(|s| escape::text(s).into_owned())
                .unwrap_or_else(|| escape::json_value(value, false)),
            Err(_) => {
                let head = &body[..body.len().min(200)];
                let more = if body.len() > 200 { "…" } else { "" };
                format!("{}{more}", escape::bytes(head))
            }
        };
        return Err(Failure(format!(
            "the daemon on {shown} answered {} with {status}: {detail}",
            escape::text(path)
        )));
    }
    parsed.map_err(|e| {
        Failure(format!(
            "the daemon on {shown} answered {} with something that is not JSON ({e})",
            escape::text(path)
        ))
    })
}

/// Prints a failure as one line on stderr and returns [`UNREACHABLE`].
pub fn fail(failure: Failure) -> std::process::ExitCode {
    eprintln!("daemonctl: {}", failure.0);
    std::process::ExitCode::from(UNREACHABLE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daemon_names_are_one_path_component() {
        assert!(check_daemon_name("inventory-agent").is_ok());
        for bad in ["", ".", "..", "a/b", "../etc"] {
            assert!(check_daemon_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(bytes_human(16 << 20), "16 MiB");
        assert_eq!(bytes_human(4096), "4 KiB");
        assert_eq!(bytes_human(1500), "1500-byte");
    }
}
