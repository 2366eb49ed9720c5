//! The demo's `demo` component: `POST /demo/echo` reads a JSON body of at most 4 KiB and
//! returns it.
//!
//! It is there so the control plane's request-body defences run end to end on the binary
//! operators run: a body larger than 4 KiB is refused with 413 before it is read, a body
//! that does not arrive within `--body-read-timeout` closes the connection (logged with
//! reason `ControlPlaneBodyTimeout` at debug level), and malformed JSON is a 400. Every
//! answer is JSON, as the built-in routes' are:
//!
//! ```text
//! $ curl --unix-socket control.sock -d '{"hello":"world"}' http://localhost/demo/echo
//! {"hello":"world"}
//! ```

use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::post;

/// The component's name: its routes answer under `/demo/`.
pub const NAME: &str = "demo";

/// The largest body `/demo/echo` accepts.
pub const MAX_BODY: usize = 4 * 1024;

/// The component's routes, to mount with `ControlPlaneBuilder::component(NAME, …)`.
pub fn routes() -> Router {
    Router::new()
        .route("/echo", post(echo))
        // Tighter than the control plane's 1 MiB default, for this route only.
        .layer(DefaultBodyLimit::max(MAX_BODY))
}

async fn echo(body: Result<Bytes, BytesRejection>) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            let status = rejection.status();
            let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
                format!("the body is larger than {MAX_BODY} bytes")
            } else {
                format!("reading the body failed: {}", rejection.body_text())
            };
            return error(status, &message);
        }
    };
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(value) => {
            // Serialising a parsed `Value` cannot fail.
            let mut out = serde_json::to_vec(&value).unwrap_or_default();
            out.push(b'\n');
            json(StatusCode::OK, out)
        }
        Err(e) => error(
            StatusCode::BAD_REQUEST,
            &format!("the body is not JSON: {e}"),
        ),
    }
}

fn json(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(CONTENT_TYPE, "application/json")], body).into_response()
}

fn error(status: StatusCode, message: &str) -> Response {
    let mut body = serde_json::to_vec(&serde_json::json!({ "error": message })).unwrap_or_default();
    body.push(b'\n');
    json(status, body)
}
