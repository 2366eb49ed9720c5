//! JSON answers of the control plane: a body with `Content-Type: application/json`, and
//! the `{"error": …}` form every refusal takes.

use axum::body::{Body, Bytes};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, Response, StatusCode};
use serde::Serialize;

const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// `body` as a JSON answer with `status`.
pub(crate) fn json(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut res = Response::new(Body::from(body));
    *res.status_mut() = status;
    res.headers_mut().insert(CONTENT_TYPE, JSON);
    res
}

/// `{"error": message}` with `status`.
pub(crate) fn error(status: StatusCode, message: &str) -> Response<Body> {
    #[derive(Serialize)]
    struct ErrorBody<'a> {
        error: &'a str,
    }
    // Serialising a struct with one string field cannot fail.
    let mut buf = serde_json::to_vec(&ErrorBody { error: message }).unwrap_or_default();
    buf.push(b'\n');
    json(status, Bytes::from(buf))
}
