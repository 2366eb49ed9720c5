//! The control plane: HTTP/1.1 on a Unix socket, so an operator (or `daemonctl`) can ask
//! a running daemon what it is doing, and Prometheus can scrape it — optionally over TCP
//! as well ([`ControlPlaneBuilder::tcp`]), for Kubernetes probes and remote scrapes.
//!
//! | route | answer |
//! |---|---|
//! | `GET /health` | `200 {"status":"ok"}` whenever the process serves (pure liveness) |
//! | `GET /status` | `200` and the JSON of the daemon's status function, verbatim (`{}` when none is set) |
//! | `GET /ready` | `200 {"status":"ready"}`, or `503 {"status":"not ready","errors":[…]}` with [`StatusError`](crate::StatusError)s |
//! | `GET /metrics` | the Prometheus text exposition (see [`ControlPlaneBuilder::metrics`]) |
//! | `/<component>/…` | a component's own routes (see [`ControlPlaneBuilder::component`]) |
//!
//! JSON answers carry `Content-Type: application/json` and end with a newline, as the Go
//! daemonkit's do; an unknown path is a 404 and a wrong method a 405, both with a JSON
//! body `{"error":"…"}`.
//!
//! Start-up is in two steps, so a daemon can tell systemd it is ready only once the
//! socket accepts connections: [`ControlPlaneBuilder::build`] checks the configuration,
//! [`ControlPlane::bind`] creates and listens on the socket, [`BoundControlPlane::serve`] answers requests until cancelled.
//!
//! # The socket
//!
//! Binding never steals a live daemon's socket (another copy of the daemon fails with
//! [`Error::SocketInUse`](crate::Error::SocketInUse)), never removes anything that is not a socket
//! ([`Error::SocketPathOccupied`](crate::Error::SocketPathOccupied)), and replaces a stale socket left by a crashed process.
//! The file has mode 0660 from the moment it appears at its path; its directory is created
//! with mode 0750 when missing. On shutdown it is removed only if it is still the file this
//! server created. A listener passed by systemd socket activation
//! ([`ControlPlaneBuilder::listener`]) is served as it is and never removed.
//!
//! # Hardening
//!
//! Every limit has a safe default and a builder method, and every deadline is a total
//! time that trickling bytes cannot extend: a client must send a complete request head
//! within the header read timeout (5 s, against slowloris) and then its body within the
//! body read timeout (10 s); a response must be written within the write timeout (10 s,
//! against clients that ask and do not read); a keep-alive connection with no request for
//! the idle timeout (60 s) is closed. At most 1024 connections are open at once; at the
//! cap a new connection takes the place of the connection idle the longest, else of the
//! one that has waited on its client the longest (still sending, or not reading), so idle
//! or slow clients cannot keep a health check out; only when every connection is busy in
//! a handler is the newcomer closed at once, never queued. Request bodies over 1 MiB get
//! 413 and request heads over 16 KiB get 431.
//! On cancellation the server stops accepting, closes idle connections and those that
//! have not sent a complete request yet, lets requests in flight finish for up to 5 s,
//! then closes what is left and removes the socket.

mod actions;
mod bind;
mod builder;
mod clock;
mod conn;
mod limits;
mod metrics;
mod respond;
mod routes;
mod serve;
mod socket;

pub use actions::{ActionError, LogLevel};
pub use bind::{BoundControlPlane, ControlPlane};
pub use builder::ControlPlaneBuilder;

/// The paths the built-in routes use; no component may take one as its name.
const RESERVED: [&str; 6] = [
    "health",
    "status",
    "ready",
    "metrics",
    "monitors",
    "log-level",
];

/// The rules a component name follows, because it is the component's route prefix: 1 to
/// 64 bytes of `a-z`, `0-9`, `_` and `-`, and none of the built-in routes.
pub(crate) fn check_component_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("a component name must not be empty");
    }
    if name.len() > 64 {
        return Err("a component name must be at most 64 bytes long");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        return Err(
            "a component name may contain only lower-case letters a-z, digits, `_` and `-`",
        );
    }
    if RESERVED.contains(&name) {
        return Err(
            "this name is a built-in route (health, status, ready, metrics, monitors, log-level); choose another component name",
        );
    }
    Ok(())
}
