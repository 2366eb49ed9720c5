//! The routes: `/health`, `/status`, `/ready` and `/metrics`, answered directly, and the
//! components' routers, mounted by axum under their own prefixes.
//!
//! The four built-in routes are matched with one `match` on the path before any router
//! is involved: they are what monitoring systems and `daemonctl` poll, so they skip
//! axum's routing and middleware entirely. Everything else goes to an axum [`Router`]
//! holding only the component routes, with JSON 404 and 405 fallbacks.

use std::convert::Infallible;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::OriginalUri;
use axum::http::header::{ALLOW, CONTENT_TYPE};
use axum::http::{HeaderValue, Method, Request, Response, StatusCode};
use axum::routing::future::RouteFuture;
use http_body_util::Limited;
use hyper::body::{Body as _, Incoming};
use hyper::server::conn::http1;
use serde::Serialize;

use super::actions::{self, Actions, Peer};
use super::clock::{ConnClock, RequestBody, ResponseBody};
use super::limits::Limits;
use super::metrics::Metrics;
pub(crate) use super::respond::{error, json};
use crate::StatusError;
use crate::boxed::BoxFuture;

/// Writes the daemon's status as JSON into the buffer.
pub(crate) type StatusFn = Arc<dyn Fn(&mut Vec<u8>) -> serde_json::Result<()> + Send + Sync>;
/// The version of the daemon's status: `Some(v)` while the document is unchanged,
/// `None` when it must be built anew (see [`StatusSource`]).
pub(crate) type VersionFn = Arc<dyn Fn() -> Option<u64> + Send + Sync>;

/// What `/status` serves: the daemon's status function and, when it opted in, the
/// version that keys a cache of its serialised body.
///
/// The rule that keeps the cache honest: the version must change whenever the document
/// would, and must be `None` while a part of it computed on read could change without
/// moving it (the tracker's version counts the changed answers of connectivity checks,
/// which it calls, so it is never `None`). The version is read before the document is built, so a
/// change in between makes the body newer than its key and the next request rebuilds it.
pub(crate) struct StatusSource {
    pub(crate) write: StatusFn,
    pub(crate) version: Option<VersionFn>,
}
/// Says whether the daemon is ready, and if not, why.
pub(crate) type ReadyFn = Arc<dyn Fn() -> Result<(), Vec<StatusError>> + Send + Sync>;

const PROMETHEUS_TEXT: HeaderValue =
    HeaderValue::from_static(prometheus_client::encoding::prometheus_text::CONTENT_TYPE);
const GET_HEAD: HeaderValue = HeaderValue::from_static("GET, HEAD");

// The JSON bodies end in a newline, as the Go daemonkit's `json.Encoder` writes them.
const HEALTH_OK: &[u8] = b"{\"status\":\"ok\"}\n";
const READY: &[u8] = b"{\"status\":\"ready\"}\n";
const EMPTY_STATUS: &[u8] = b"{}\n";

// ===== App =====

/// Everything a connection needs, shared by all of them.
pub(crate) struct App {
    pub(crate) http: http1::Builder,
    pub(crate) limits: Limits,
    status: Option<StatusSource>,
    ready: Option<ReadyFn>,
    metrics: Metrics,
    components: Router,
    /// The size of the last status document, so the next buffer is allocated once.
    status_size: AtomicUsize,
    /// The mutating routes' rules and hooks.
    pub(crate) actions: Arc<Actions>,
    /// Components whose routes change the daemon: non-GET requests need authorization.
    mutating: Vec<String>,
    /// The last serialised status body and the version it was built at.
    status_cache: Mutex<Option<(u64, Bytes)>>,
}

impl App {
    pub(crate) fn new(
        limits: Limits,
        status: Option<StatusSource>,
        ready: Option<ReadyFn>,
        metrics: Metrics,
        components: Router,
        actions: Actions,
        mutating: Vec<String>,
    ) -> App {
        let mut http = http1::Builder::new();
        http.keep_alive(true)
            // The header read timeout is the connection clock's job (see `conn`).
            .header_read_timeout(None)
            .max_header_size(limits.max_header_bytes)
            // hyper refuses buffers under 8 KiB; the header limit is enforced above.
            .max_buf_size(limits.max_header_bytes.max(8192));
        App {
            http,
            limits,
            status,
            ready,
            metrics,
            components,
            status_size: AtomicUsize::new(1024),
            actions: Arc::new(actions),
            mutating,
            status_cache: Mutex::new(None),
        }
    }

    fn dispatch(
        self: &Arc<Self>,
        req: Request<Incoming>,
        clock: &Arc<ConnClock>,
        peer: Peer,
    ) -> Dispatch {
        // hyper has parsed Content-Length into the body's size hint: refuse a declared
        // oversized body before reading any of it.
        if req.body().size_hint().lower() > self.limits.body_limit as u64 {
            return Dispatch::Ready(Some(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!(
                    "the request body is larger than the limit of {} bytes",
                    self.limits.body_limit
                ),
            )));
        }
        if actions::is_action(req.uri().path()) {
            return Dispatch::Action(actions::handle(self.actions.clone(), req, peer));
        }
        let builtin = match req.uri().path() {
            "/health" => Builtin::Health,
            "/status" => Builtin::Status,
            "/ready" => Builtin::Ready,
            "/metrics" => Builtin::Metrics,
            path => {
                if req.method() != Method::GET
                    && req.method() != Method::HEAD
                    && self.is_mutating_component(path)
                    && let Some(denied) = self.actions.authorize(&peer, path)
                {
                    return Dispatch::Ready(Some(denied));
                }
                // A body without a declared length (chunked) is cut at the limit; axum's
                // extractors turn the resulting error into 413. The body read timeout
                // runs until the handler has read it all.
                let limit = self.limits.body_limit;
                let req =
                    req.map(|body| Limited::new(RequestBody::new(body, clock.clone()), limit));
                let mut router = self.components.clone();
                return Dispatch::Router(tower::Service::call(&mut router, req));
            }
        };
        let method = req.method();
        if method != Method::GET && method != Method::HEAD {
            return Dispatch::Ready(Some(method_not_allowed(method, req.uri().path())));
        }
        Dispatch::Ready(Some(match builtin {
            Builtin::Health => json(StatusCode::OK, Bytes::from_static(HEALTH_OK)),
            Builtin::Status => self.status(),
            Builtin::Ready => self.ready(),
            Builtin::Metrics => self.metrics(),
        }))
    }

    /// Whether `path` belongs to a component declared mutating.
    fn is_mutating_component(&self, path: &str) -> bool {
        let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
        self.mutating.iter().any(|name| name == first)
    }

    fn status(&self) -> Response<Body> {
        let Some(source) = &self.status else {
            return json(StatusCode::OK, Bytes::from_static(EMPTY_STATUS));
        };
        // The daemon's functions are its own code: a panic in one is a 500, not a dropped
        // connection.
        let version = match &source.version {
            None => None,
            Some(version) => match catch_unwind(AssertUnwindSafe(|| version())) {
                Ok(version) => version,
                Err(_) => {
                    tracing::error!(
                        reason = "ControlPlaneStatusFailed",
                        "the status version function panicked"
                    );
                    return error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "the status version function panicked",
                    );
                }
            },
        };
        if let Some(version) = version
            && let Some((cached, body)) = &*self.cache()
            && *cached == version
        {
            return json(StatusCode::OK, body.clone());
        }
        let mut buf = Vec::with_capacity(self.status_size.load(Ordering::Relaxed));
        match catch_unwind(AssertUnwindSafe(|| (source.write)(&mut buf))) {
            Ok(Ok(())) => {
                buf.push(b'\n');
                self.status_size.store(buf.len() + 64, Ordering::Relaxed);
                let body = Bytes::from(buf);
                if let Some(version) = version {
                    *self.cache() = Some((version, body.clone()));
                }
                json(StatusCode::OK, body)
            }
            Ok(Err(e)) => {
                tracing::error!(
                    reason = "ControlPlaneStatusFailed",
                    error = %e,
                    "the status function's value could not be serialised to JSON"
                );
                error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!("serialising the status to JSON: {e}"),
                )
            }
            Err(_) => {
                tracing::error!(
                    reason = "ControlPlaneStatusFailed",
                    "the status function panicked"
                );
                error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the status function panicked",
                )
            }
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Option<(u64, Bytes)>> {
        // Only assignments and clones run under this lock; a poisoned one still holds a
        // whole value.
        self.status_cache
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn ready(&self) -> Response<Body> {
        let Some(ready) = &self.ready else {
            return json(StatusCode::OK, Bytes::from_static(READY));
        };
        match catch_unwind(AssertUnwindSafe(|| ready())) {
            Ok(Ok(())) => json(StatusCode::OK, Bytes::from_static(READY)),
            Ok(Err(errors)) => {
                #[derive(Serialize)]
                struct NotReady<'a> {
                    status: &'static str,
                    errors: &'a [StatusError],
                }
                let body = NotReady {
                    status: "not ready",
                    errors: &errors,
                };
                match serde_json::to_vec(&body) {
                    Ok(mut buf) => {
                        buf.push(b'\n');
                        json(StatusCode::SERVICE_UNAVAILABLE, Bytes::from(buf))
                    }
                    Err(e) => error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        &format!("serialising the readiness errors to JSON: {e}"),
                    ),
                }
            }
            Err(_) => {
                tracing::error!(
                    reason = "ControlPlaneReadyFailed",
                    "the readiness function panicked"
                );
                error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the readiness function panicked",
                )
            }
        }
    }

    fn metrics(&self) -> Response<Body> {
        match self.metrics.render() {
            Ok(text) => {
                let mut res = Response::new(Body::from(text));
                res.headers_mut().insert(CONTENT_TYPE, PROMETHEUS_TEXT);
                res
            }
            Err(_) => {
                tracing::error!(
                    reason = "ControlPlaneMetricsFailed",
                    "a registered metric or collector failed to encode"
                );
                error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "encoding the metrics failed",
                )
            }
        }
    }
}

enum Builtin {
    Health,
    Status,
    Ready,
    Metrics,
}

// ===== ControlService =====

/// The per-connection service hyper calls for each request.
#[derive(Clone)]
pub(crate) struct ControlService {
    app: Arc<App>,
    clock: Arc<ConnClock>,
    peer: Peer,
}

impl ControlService {
    pub(crate) fn new(app: Arc<App>, clock: Arc<ConnClock>, peer: Peer) -> ControlService {
        ControlService { app, clock, peer }
    }
}

impl hyper::service::Service<Request<Incoming>> for ControlService {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn call(&self, req: Request<Incoming>) -> ResponseFuture {
        self.clock.request_started();
        ResponseFuture {
            dispatch: self.app.dispatch(req, &self.clock, self.peer),
            busy: Busy(self.clock.clone()),
        }
    }
}

/// Starts the write timeout once the response is ready (hyper drops the future then).
struct Busy(Arc<ConnClock>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.response_ready();
    }
}

/// The response of a built-in route (ready at once) or of a component's router.
pub(crate) struct ResponseFuture {
    dispatch: Dispatch,
    busy: Busy,
}

enum Dispatch {
    Ready(Option<Response<Body>>),
    Router(RouteFuture<Infallible>),
    Action(BoxFuture<'static, Response<Body>>),
}

impl Future for ResponseFuture {
    type Output = Result<Response<ResponseBody>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let response = match &mut this.dispatch {
            Dispatch::Ready(response) => response.take().unwrap_or_else(|| {
                // Only reachable by polling again after completion, which hyper does not.
                error(StatusCode::INTERNAL_SERVER_ERROR, "response already taken")
            }),
            Dispatch::Router(future) => match Pin::new(future).poll(cx) {
                Poll::Ready(Ok(response)) => response,
                Poll::Pending => return Poll::Pending,
            },
            Dispatch::Action(future) => match future.as_mut().poll(cx) {
                Poll::Ready(response) => response,
                Poll::Pending => return Poll::Pending,
            },
        };
        let clock = this.busy.0.clone();
        Poll::Ready(Ok(response.map(|body| ResponseBody::new(body, clock))))
    }
}

// ===== responses =====

fn method_not_allowed(method: &Method, path: &str) -> Response<Body> {
    let mut res = error(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("method {method} is not allowed on {path}; use GET"),
    );
    res.headers_mut().insert(ALLOW, GET_HEAD);
    res
}

/// The components router's fallback for paths nothing matches.
pub(crate) async fn not_found(OriginalUri(uri): OriginalUri) -> Response<Body> {
    error(
        StatusCode::NOT_FOUND,
        &format!(
            "no route for {}; the built-in routes are /health, /status, /ready and /metrics",
            uri.path()
        ),
    )
}

/// The components router's fallback for a known path asked with the wrong method.
pub(crate) async fn wrong_method(method: Method, OriginalUri(uri): OriginalUri) -> Response<Body> {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("method {method} is not allowed on {}", uri.path()),
    )
}
