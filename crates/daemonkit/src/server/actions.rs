//! The control plane's mutating routes — `POST /monitors/[<component>/]<monitor>/{restart,
//! stop,start}`, `GET`/`PUT /log-level` — and the authorization by peer credentials that
//! guards them (and the routes of components declared mutating).
//!
//! # Who may change the daemon
//!
//! Anyone who can connect to the Unix socket (its mode is 0660: the daemon's user and
//! group) may read `/health`, `/status`, `/ready`, `/metrics`. A route that changes the
//! daemon is allowed only to a peer whose credentials (`SO_PEERCRED`, read by the kernel
//! at `connect`, so they cannot be forged) name root, the daemon's own uid, or a uid or
//! primary gid the daemon allows ([`ControlPlaneBuilder::allow_uid`],
//! [`ControlPlaneBuilder::allow_gid`]). Over TCP, where there are no credentials,
//! mutating routes are refused unless [`ControlPlaneBuilder::tcp_mutations`] turns them
//! on. A refusal is `403` with a JSON error saying which credential is needed, logged
//! with reason `ControlPlaneDenied` and the peer's uid.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header::ALLOW;
use axum::http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use crate::boxed::BoxFuture;
use crate::duration::go_duration;
use crate::supervisor::{Command, Refused};

/// The largest `PUT /log-level` body: a filter, not a document.
const MAX_FILTER_BYTES: usize = 4096;

// ===== peers =====

/// The credentials of a Unix-socket peer, from `SO_PEERCRED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Credentials {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) pid: i32,
}

impl Credentials {
    /// The peer's credentials; `None` when the socket cannot say (not expected on Linux).
    pub(crate) fn of(stream: &tokio::net::UnixStream) -> Option<Credentials> {
        let ucred = rustix::net::sockopt::socket_peercred(stream).ok()?;
        Some(Credentials {
            uid: ucred.uid.as_raw(),
            gid: ucred.gid.as_raw(),
            pid: ucred.pid.as_raw_nonzero().get(),
        })
    }
}

/// Who is on the other end of a connection.
#[derive(Clone, Copy)]
pub(crate) enum Peer {
    Unix(Option<Credentials>),
    Tcp(SocketAddr),
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Unix(Some(c)) => write!(f, "uid {} (gid {}, pid {})", c.uid, c.gid, c.pid),
            Peer::Unix(None) => f.write_str("unix peer without credentials"),
            Peer::Tcp(addr) => write!(f, "tcp:{addr}"),
        }
    }
}

// ===== the daemon's side =====

/// Carries out an operator's command on the monitor at `path` (`monitor`, or
/// `component/monitor`), `by` naming the peer.
pub(crate) type MonitorActions =
    Arc<dyn Fn(&str, Command, &str) -> Result<(), ActionError> + Send + Sync>;

/// Why a monitor action was not carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ActionError {
    /// No monitor at that path.
    NoSuchMonitor,
    /// The monitor is not supervised right now.
    Refused(Refused),
}

/// The daemon's log filter: read it, replace it.
pub trait LogLevel: Send + Sync + 'static {
    /// The filter in force, e.g. `info` or `info,daemonkit=debug`.
    fn get(&self) -> String;

    /// Replaces the filter.
    ///
    /// # Errors
    ///
    /// A message for the operator when `filter` cannot be parsed.
    fn set(&self, filter: &str) -> Result<(), String>;
}

/// The authorization rules and the hooks behind the mutating routes.
pub(crate) struct Actions {
    pub(crate) own_uid: u32,
    pub(crate) uids: Vec<u32>,
    pub(crate) gids: Vec<u32>,
    pub(crate) tcp_mutations: bool,
    pub(crate) monitors: Option<MonitorActions>,
    pub(crate) log_level: Option<Arc<dyn LogLevel>>,
    /// Bumped on every log-level change, so a pending revert knows it was superseded.
    pub(crate) log_generation: Arc<AtomicU64>,
}

impl Actions {
    pub(crate) fn new() -> Actions {
        Actions {
            own_uid: rustix::process::getuid().as_raw(),
            uids: Vec::new(),
            gids: Vec::new(),
            tcp_mutations: false,
            monitors: None,
            log_level: None,
            log_generation: Arc::default(),
        }
    }

    /// The 403 answer when `peer` may not use a mutating route; `None` when it may.
    pub(crate) fn authorize(&self, peer: &Peer, path: &str) -> Option<Response<Body>> {
        let allowed = match peer {
            Peer::Unix(Some(c)) => {
                c.uid == 0
                    || c.uid == self.own_uid
                    || self.uids.contains(&c.uid)
                    || self.gids.contains(&c.gid)
            }
            Peer::Unix(None) => false,
            Peer::Tcp(_) => self.tcp_mutations,
        };
        if allowed {
            return None;
        }
        let needed = {
            let mut who = vec![
                "uid 0 (root)".to_owned(),
                format!("uid {} (the daemon's user)", self.own_uid),
            ];
            who.extend(self.uids.iter().map(|u| format!("uid {u}")));
            who.extend(self.gids.iter().map(|g| format!("primary gid {g}")));
            who.join(", ")
        };
        let message = match peer {
            Peer::Tcp(_) => format!(
                "{path} changes the daemon and is not served over TCP; use the Unix socket \
                 as {needed}"
            ),
            _ => format!("{path} changes the daemon: it needs {needed}; this peer is {peer}"),
        };
        let peer_uid = match peer {
            Peer::Unix(Some(c)) => Some(c.uid),
            _ => None,
        };
        tracing::warn!(reason = "ControlPlaneDenied", path = %path, peer = %peer, peer_uid = ?peer_uid, "refused a mutating request");
        Some(super::respond::error(StatusCode::FORBIDDEN, &message))
    }
}

/// Whether `path` is one of the mutating routes this module answers.
pub(crate) fn is_action(path: &str) -> bool {
    path == "/log-level" || path.starts_with("/monitors/") || path == "/monitors"
}

/// Answers a mutating route (after authorization).
pub(crate) fn handle(
    actions: Arc<Actions>,
    req: Request<Incoming>,
    peer: Peer,
) -> BoxFuture<'static, Response<Body>> {
    Box::pin(async move {
        let actions = &*actions;
        let path = req.uri().path().to_owned();
        if path == "/log-level" {
            return log_level(actions, req, &peer).await;
        }
        if req.method() != Method::POST {
            let mut res = super::respond::error(
                StatusCode::METHOD_NOT_ALLOWED,
                &format!("method {} is not allowed on {path}; use POST", req.method()),
            );
            res.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("POST"));
            return res;
        }
        if let Some(denied) = actions.authorize(&peer, &path) {
            return denied;
        }
        let rest = path.trim_start_matches("/monitors/");
        let Some((monitor, command)) = rest.rsplit_once('/') else {
            return super::respond::error(
                StatusCode::NOT_FOUND,
                "use POST /monitors/[<component>/]<monitor>/{restart,stop,start}",
            );
        };
        let command = match command {
            "restart" => Command::Restart,
            "stop" => Command::Stop,
            "start" => Command::Start,
            other => {
                return super::respond::error(
                    StatusCode::NOT_FOUND,
                    &format!("unknown command {other:?}; use restart, stop or start"),
                );
            }
        };
        let monitor = percent_decode(monitor);
        let Some(monitors) = &actions.monitors else {
            return super::respond::error(
                StatusCode::NOT_FOUND,
                "this daemon does not offer monitor commands",
            );
        };
        let by = peer.to_string();
        match crate::panic::call(|| monitors(&monitor, command, &by)) {
            Ok(Ok(())) => json_value(
                StatusCode::ACCEPTED,
                &serde_json::json!({"status": "accepted", "monitor": monitor, "command": command.as_str()}),
            ),
            Ok(Err(ActionError::NoSuchMonitor)) => super::respond::error(
                StatusCode::NOT_FOUND,
                &format!(
                    "no monitor {monitor:?} (give COMPONENT/MONITOR on a daemon with components)"
                ),
            ),
            Ok(Err(ActionError::Refused(refused))) => {
                super::respond::error(StatusCode::CONFLICT, &refused.to_string())
            }
            Err(message) => {
                tracing::error!(reason = "ControlPlaneActionPanicked", panic = %message, "a monitor action panicked");
                super::respond::error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the monitor action failed",
                )
            }
        }
    })
}

async fn log_level(actions: &Actions, req: Request<Incoming>, peer: &Peer) -> Response<Body> {
    let Some(hook) = actions.log_level.clone() else {
        return super::respond::error(StatusCode::NOT_FOUND, "this daemon has no log-level hook");
    };
    match *req.method() {
        Method::GET | Method::HEAD => {
            let filter = crate::panic::call(|| hook.get()).unwrap_or_default();
            json_value(StatusCode::OK, &serde_json::json!({"filter": filter}))
        }
        Method::PUT => {
            if let Some(denied) = actions.authorize(peer, "/log-level") {
                return denied;
            }
            let revert_after = match req.uri().query().map(parse_revert_after) {
                None => None,
                Some(Ok(after)) => after,
                Some(Err(message)) => {
                    return super::respond::error(StatusCode::BAD_REQUEST, &message);
                }
            };
            let body = match Limited::new(req.into_body(), MAX_FILTER_BYTES)
                .collect()
                .await
            {
                Ok(body) => body.to_bytes(),
                Err(_) => {
                    return super::respond::error(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        &format!("a filter is at most {MAX_FILTER_BYTES} bytes"),
                    );
                }
            };
            let Ok(filter) = std::str::from_utf8(&body).map(str::trim) else {
                return super::respond::error(StatusCode::BAD_REQUEST, "the filter is not UTF-8");
            };
            if filter.is_empty() {
                return super::respond::error(
                    StatusCode::BAD_REQUEST,
                    "an empty filter; send e.g. `debug` or `info,daemonkit=debug`",
                );
            }
            let previous = crate::panic::call(|| hook.get()).unwrap_or_default();
            // Logged under the filter in force before the change, so a stricter new filter
            // does not hide the record of who changed it.
            tracing::info!(reason = "LogLevelChanged", filter = %filter, previous = %previous, by = %peer, revert_after = ?revert_after.map(go_duration), "log filter changing");
            match crate::panic::call(|| hook.set(filter)) {
                Ok(Ok(())) => {}
                Ok(Err(message)) => {
                    return super::respond::error(StatusCode::BAD_REQUEST, &message);
                }
                Err(_) => {
                    return super::respond::error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "the log-level hook failed",
                    );
                }
            }
            let generation = actions.log_generation.fetch_add(1, Ordering::SeqCst) + 1;
            if let Some(after) = revert_after {
                let (hook, generations, previous) = (
                    hook.clone(),
                    actions.log_generation.clone(),
                    previous.clone(),
                );
                tokio::spawn(async move {
                    tokio::time::sleep(after).await;
                    // Only if nobody changed it since: a later change wins.
                    if generations.load(Ordering::SeqCst) == generation
                        && matches!(crate::panic::call(|| hook.set(&previous)), Ok(Ok(())))
                    {
                        tracing::info!(reason = "LogLevelReverted", filter = %previous, "log filter reverted");
                    }
                });
            }
            json_value(
                StatusCode::OK,
                &serde_json::json!({
                    "filter": filter,
                    "previous": previous,
                    "revert_after": revert_after.map(go_duration),
                }),
            )
        }
        _ => {
            let mut res = super::respond::error(
                StatusCode::METHOD_NOT_ALLOWED,
                &format!(
                    "method {} is not allowed on /log-level; use GET or PUT",
                    req.method()
                ),
            );
            res.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD, PUT"));
            res
        }
    }
}

/// `revert_after=10m` from the query string.
fn parse_revert_after(query: &str) -> Result<Option<Duration>, String> {
    for pair in query.split('&') {
        if let Some(value) = pair.strip_prefix("revert_after=") {
            let signed: jiff::SignedDuration = value
                .parse()
                .map_err(|e| format!("revert_after={value:?} is not a duration like 10m: {e}"))?;
            let after = Duration::try_from(signed)
                .map_err(|_| format!("revert_after={value:?} must not be negative"))?;
            return Ok(Some(after));
        }
    }
    Ok(None)
}

/// Decodes `%XX` escapes of a path segment (invalid ones are kept as they are).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(byte) = u8::from_str_radix(&text[i + 1..i + 3], 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn json_value(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut body = serde_json::to_vec(value).unwrap_or_default();
    body.push(b'\n');
    let mut res = Response::new(Body::from(Bytes::from(body)));
    *res.status_mut() = status;
    res.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_keeps_what_it_cannot_decode() {
        assert_eq!(percent_decode("a%20b"), "a b");
        assert_eq!(percent_decode("core/flaky"), "core/flaky");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn revert_after_is_read_from_the_query() {
        assert_eq!(
            parse_revert_after("revert_after=10m").unwrap(),
            Some(Duration::from_secs(600))
        );
        assert_eq!(parse_revert_after("x=1").unwrap(), None);
        assert!(parse_revert_after("revert_after=soon").is_err());
    }
}
