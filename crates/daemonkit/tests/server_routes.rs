//! The control plane's routes, over a real Unix socket: built-in routes, JSON errors,
//! component mounting and its conflicts, readiness, and request size limits.

mod server_support;

use std::net::SocketAddr;
use std::os::unix::net::UnixListener as StdUnixListener;

use axum::Router;
use axum::body::Bytes;
use axum::routing::{get, post};
use daemonkit::server::ControlPlane;
use daemonkit::{Error, StatusError};
use server_support::{Server, request, socket_dir, tcp_get};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn builder(dir: &tempfile::TempDir) -> daemonkit::ControlPlaneBuilder {
    ControlPlane::builder(dir.path().join("control.sock"))
}

// ===== built-in routes =====

#[tokio::test]
async fn health_answers_ok_as_json() {
    let dir = socket_dir();
    let server = Server::start(builder(&dir)).await;
    let res = server.get("/health").await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("content-type"), Some("application/json"));
    assert_eq!(res.body, b"{\"status\":\"ok\"}\n");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn status_returns_the_status_function_value_verbatim() {
    let dir = socket_dir();
    let server = Server::start(
        builder(&dir).status(|| serde_json::json!({"monitors": {"db": {"state": "backoff:5s"}}})),
    )
    .await;
    let res = server.get("/status").await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("content-type"), Some("application/json"));
    assert_eq!(
        res.json(),
        serde_json::json!({"monitors": {"db": {"state": "backoff:5s"}}})
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn status_serialises_the_tracker_snapshot() {
    let dir = socket_dir();
    let tracker = daemonkit::StatusTracker::new();
    tracker
        .register("db")
        .unwrap()
        .set_state(daemonkit::MonitorState::Running);
    let snapshot_source = tracker.clone();
    let server = Server::start(builder(&dir).status(move || snapshot_source.snapshot())).await;
    let json = server.get("/status").await.json();
    assert_eq!(json["db"]["state"], "running");
    assert_eq!(json["db"]["restarts"], 0);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn status_without_a_function_is_an_empty_object() {
    let dir = socket_dir();
    let server = Server::start(builder(&dir)).await;
    let res = server.get("/status").await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("content-type"), Some("application/json"));
    assert_eq!(res.json(), serde_json::json!({}));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_panicking_status_function_gets_a_500_and_the_server_keeps_serving() {
    let dir = socket_dir();
    let server = Server::start(builder(&dir).status(|| -> u32 { panic!("status bug") })).await;
    let res = server.get("/status").await;
    assert_eq!(res.status, 500);
    assert!(res.json()["error"].as_str().unwrap().contains("panicked"));
    assert_eq!(server.get("/health").await.status, 200);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn requests_on_one_keep_alive_connection_are_all_answered() {
    let dir = socket_dir();
    let server = Server::start(builder(&dir)).await;
    let mut conn = server.connect().await;
    for path in ["/health", "/status", "/ready", "/metrics", "/health"] {
        let res = request(&mut conn, "GET", path, &[], b"").await;
        assert_eq!(res.status, 200, "{path}");
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn head_on_a_builtin_route_has_headers_and_no_body() {
    let dir = socket_dir();
    let server = Server::start(builder(&dir)).await;
    let mut conn = server.connect().await;
    conn.write_all(b"HEAD /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut raw = String::new();
    tokio::time::timeout(server_support::PATIENCE, conn.read_to_string(&mut raw))
        .await
        .unwrap()
        .unwrap();
    assert!(raw.starts_with("HTTP/1.1 200 OK\r\n"), "{raw}");
    assert!(raw.contains("content-type: application/json\r\n"), "{raw}");
    assert!(raw.contains("content-length: 16\r\n"), "{raw}");
    assert!(raw.ends_with("\r\n\r\n"), "no body after the head: {raw}");
    server.stop().await.unwrap();
}

// ===== errors =====

#[tokio::test]
async fn unknown_path_is_404_with_a_json_error() {
    let dir = socket_dir();
    let server = Server::start(builder(&dir)).await;
    for path in ["/", "/nope", "/health/", "/healthz"] {
        let res = server.get(path).await;
        assert_eq!(res.status, 404, "{path}");
        assert_eq!(
            res.header("content-type"),
            Some("application/json"),
            "{path}"
        );
        let error = res.json()["error"].as_str().unwrap().to_owned();
        assert!(error.contains(path), "{path}: {error}");
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn wrong_method_on_a_builtin_route_is_405_with_a_json_error() {
    let dir = socket_dir();
    let server = Server::start(builder(&dir)).await;
    for path in ["/health", "/status", "/ready", "/metrics"] {
        let mut conn = server.connect().await;
        let res = request(&mut conn, "POST", path, &[], b"x").await;
        assert_eq!(res.status, 405, "{path}");
        assert_eq!(res.header("content-type"), Some("application/json"));
        assert_eq!(res.header("allow"), Some("GET, HEAD"));
        assert!(res.json()["error"].as_str().unwrap().contains("POST"));
    }
    server.stop().await.unwrap();
}

// ===== components =====

fn backup_routes() -> Router {
    Router::new()
        .route(
            "/jobs",
            get(|| async { axum::Json(serde_json::json!({"jobs": ["nightly"]})) }),
        )
        .route("/health", get(|| async { "component health" }))
        .route("/echo", post(|body: Bytes| async move { body }))
}

#[tokio::test]
async fn component_routes_answer_under_the_component_name() {
    let dir = socket_dir();
    let server = Server::start(builder(&dir).component("backup", backup_routes())).await;
    let res = server.get("/backup/jobs").await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json(), serde_json::json!({"jobs": ["nightly"]}));
    assert_eq!(
        server.get("/jobs").await.status,
        404,
        "not mounted at the root"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_component_route_named_like_a_builtin_cannot_shadow_it() {
    let dir = socket_dir();
    let server = Server::start(builder(&dir).component("backup", backup_routes())).await;
    assert_eq!(
        server.get("/backup/health").await.text(),
        "component health"
    );
    assert_eq!(server.get("/health").await.body, b"{\"status\":\"ok\"}\n");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn two_components_each_keep_their_own_prefix() {
    let dir = socket_dir();
    let other = Router::new().route("/jobs", get(|| async { "other jobs" }));
    let server = Server::start(
        builder(&dir)
            .component("backup", backup_routes())
            .component("other", other),
    )
    .await;
    assert_eq!(server.get("/other/jobs").await.text(), "other jobs");
    assert_eq!(
        server.get("/backup/jobs").await.json()["jobs"][0],
        "nightly"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn unknown_component_path_and_wrong_component_method_are_json_errors() {
    let dir = socket_dir();
    let server = Server::start(builder(&dir).component("backup", backup_routes())).await;
    let res = server.get("/backup/nope").await;
    assert_eq!(res.status, 404);
    assert_eq!(res.header("content-type"), Some("application/json"));
    assert!(
        res.json()["error"]
            .as_str()
            .unwrap()
            .contains("/backup/nope")
    );

    let mut conn = server.connect().await;
    let res = request(&mut conn, "DELETE", "/backup/jobs", &[], b"").await;
    assert_eq!(res.status, 405);
    assert_eq!(res.header("content-type"), Some("application/json"));
    assert!(res.json()["error"].as_str().unwrap().contains("DELETE"));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn duplicate_component_name_is_a_startup_error() {
    let dir = socket_dir();
    let err = builder(&dir)
        .component("backup", backup_routes())
        .component("backup", Router::new())
        .build()
        .unwrap_err();
    match err {
        Error::InvalidName { name, problem } => {
            assert_eq!(name, "backup");
            assert!(problem.contains("already mounted"), "{problem}");
        }
        other => panic!("unexpected error: {other}"),
    }
    assert!(!dir.path().join("control.sock").exists(), "nothing bound");
}

#[tokio::test]
async fn reserved_component_names_are_startup_errors() {
    let dir = socket_dir();
    for name in ["health", "status", "ready", "metrics"] {
        let err = builder(&dir)
            .component(name, Router::new())
            .build()
            .unwrap_err();
        assert!(
            matches!(&err, Error::InvalidName { name: n, .. } if n == name),
            "{name}: {err}"
        );
        assert!(err.to_string().contains("built-in route"), "{err}");
    }
}

#[tokio::test]
async fn invalid_component_names_are_startup_errors() {
    let dir = socket_dir();
    let long = "x".repeat(65);
    for name in [
        "",
        "a/b",
        "/x",
        "Backup",
        "with space",
        "..",
        "a.b",
        "é",
        long.as_str(),
    ] {
        let err = builder(&dir)
            .component(name, Router::new())
            .build()
            .unwrap_err();
        assert!(
            matches!(&err, Error::InvalidName { name: n, .. } if n == name),
            "{name:?}: {err}"
        );
    }
    assert!(!dir.path().join("control.sock").exists());
}

// ===== readiness =====

#[tokio::test]
async fn ready_without_a_check_is_200() {
    let dir = socket_dir();
    let server = Server::start(builder(&dir)).await;
    let res = server.get("/ready").await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("content-type"), Some("application/json"));
    assert_eq!(res.json(), serde_json::json!({"status": "ready"}));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn ready_is_200_when_the_check_passes() {
    let dir = socket_dir();
    let server = Server::start(builder(&dir).ready(|| Ok(()))).await;
    assert_eq!(
        server.get("/ready").await.json(),
        serde_json::json!({"status": "ready"})
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn ready_is_503_with_the_failing_status_errors() {
    let dir = socket_dir();
    let server = Server::start(builder(&dir).ready(|| {
        Err(vec![
            StatusError::new("DirNotWritable", "/var/lib/app: permission denied")
                .with_resolution("sudo chown app:app /var/lib/app"),
        ])
    }))
    .await;
    let res = server.get("/ready").await;
    assert_eq!(res.status, 503);
    assert_eq!(res.header("content-type"), Some("application/json"));
    let json = res.json();
    assert_eq!(json["status"], "not ready");
    let errors = json["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["reason"], "DirNotWritable");
    assert_eq!(errors[0]["resolution"], "sudo chown app:app /var/lib/app");
    assert!(errors[0]["since"].is_string());
    // Liveness is not readiness.
    assert_eq!(server.get("/health").await.status, 200);
    server.stop().await.unwrap();
}

// ===== limits =====

#[tokio::test]
async fn body_within_the_limit_reaches_the_component() {
    let dir = socket_dir();
    let server = Server::start(
        builder(&dir)
            .body_limit(1024)
            .component("backup", backup_routes()),
    )
    .await;
    let mut conn = server.connect().await;
    let res = request(&mut conn, "POST", "/backup/echo", &[], &[b'a'; 1024]).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.body.len(), 1024);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn declared_body_over_the_limit_is_413() {
    let dir = socket_dir();
    let server = Server::start(
        builder(&dir)
            .body_limit(1024)
            .component("backup", backup_routes()),
    )
    .await;
    let mut conn = server.connect().await;
    let res = request(&mut conn, "POST", "/backup/echo", &[], &[b'a'; 1025]).await;
    assert_eq!(res.status, 413);
    assert_eq!(res.header("content-type"), Some("application/json"));
    assert!(res.json()["error"].as_str().unwrap().contains("1024"));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn chunked_body_over_the_limit_is_413() {
    let dir = socket_dir();
    let server = Server::start(
        builder(&dir)
            .body_limit(1024)
            .component("backup", backup_routes()),
    )
    .await;
    let mut conn = server.connect().await;
    let chunk = vec![b'a'; 2000];
    let mut raw = format!(
        "POST /backup/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
        chunk.len()
    )
    .into_bytes();
    raw.extend_from_slice(&chunk);
    raw.extend_from_slice(b"\r\n0\r\n\r\n");
    conn.write_all(&raw).await.unwrap();
    let res = server_support::read_response(&mut conn).await;
    assert_eq!(res.status, 413);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn request_head_over_the_header_limit_is_431() {
    let dir = socket_dir();
    let server = Server::start(builder(&dir).max_header_bytes(2048)).await;
    let mut conn = server.connect().await;
    let big = "v".repeat(4096);
    let res = request(&mut conn, "GET", "/health", &[("X-Big", &big)], b"").await;
    assert_eq!(res.status, 431);
    server.stop().await.unwrap();
}

// ===== listeners =====

#[tokio::test]
async fn tcp_listener_serves_the_same_routes() {
    let dir = socket_dir();
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server = Server::start(
        builder(&dir)
            .status(|| serde_json::json!({"a": 1}))
            .tcp(addr),
    )
    .await;
    let tcp = server.tcp.expect("TCP address");
    assert_ne!(tcp.port(), 0);
    let res = tcp_get(tcp, "/health").await;
    assert_eq!(res.status, 200);
    assert_eq!(res.body, b"{\"status\":\"ok\"}\n");
    assert_eq!(
        tcp_get(tcp, "/status").await.json(),
        serde_json::json!({"a": 1})
    );
    assert_eq!(tcp_get(tcp, "/nope").await.status, 404);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn no_tcp_listener_unless_configured() {
    let dir = socket_dir();
    let server = Server::start(builder(&dir)).await;
    assert_eq!(server.tcp, None);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_passed_listener_is_served_and_its_socket_left_in_place() {
    let dir = socket_dir();
    let path = dir.path().join("activated.sock");
    let listener = StdUnixListener::bind(&path).unwrap();
    let server =
        Server::start(ControlPlane::builder(dir.path().join("unused.sock")).listener(listener))
            .await;
    assert_eq!(server.path, path);
    assert_eq!(server.get("/health").await.status, 200);
    server.stop().await.unwrap();
    assert!(
        path.exists(),
        "the service manager's socket file is not removed"
    );
    assert!(
        !dir.path().join("unused.sock").exists(),
        "the configured path is not bound"
    );
}

#[tokio::test]
async fn a_tcp_address_in_use_fails_bind_and_leaves_no_socket_file() {
    let dir = socket_dir();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let err = builder(&dir)
        .tcp(addr)
        .build()
        .unwrap()
        .bind()
        .await
        .unwrap_err();
    match &err {
        Error::TcpIo { addr: a, .. } => assert_eq!(*a, addr),
        other => panic!("unexpected error: {other}"),
    }
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
    assert!(!dir.path().join("control.sock").exists());
}

#[tokio::test]
async fn invalid_limits_are_startup_errors() {
    let dir = socket_dir();
    let cases = [
        (
            "header_read_timeout",
            builder(&dir).header_read_timeout(std::time::Duration::ZERO),
        ),
        (
            "idle_timeout",
            builder(&dir).idle_timeout(std::time::Duration::ZERO),
        ),
        ("max_connections", builder(&dir).max_connections(0)),
        ("max_header_bytes", builder(&dir).max_header_bytes(100)),
    ];
    for (setting, builder) in cases {
        match builder.build().unwrap_err() {
            Error::InvalidServerConfig { setting: s, .. } => assert_eq!(s, setting),
            other => panic!("{setting}: unexpected error {other}"),
        }
    }
    assert!(!dir.path().join("control.sock").exists());
}

#[tokio::test]
async fn ready_follows_the_monitors_with_monitors_ready() {
    use daemonkit::MonitorState;
    use daemonkit::status::monitors_ready;
    let dir = socket_dir();
    let tracker = daemonkit::StatusTracker::new();
    tracker
        .register("db")
        .unwrap()
        .set_state(MonitorState::Running);
    let queue = tracker.register("queue").unwrap();
    queue.update(|s| {
        s.state = MonitorState::Backoff(std::time::Duration::from_secs(5));
        s.error = Some(StatusError::new("MonitorCrash", "connection reset"));
    });
    let checked = tracker.clone();
    let server = Server::start(builder(&dir).ready(move || monitors_ready(&checked))).await;

    let res = server.get("/ready").await;
    assert_eq!(res.status, 503);
    let errors = res.json()["errors"].as_array().unwrap().clone();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["reason"], "MonitorCrash");
    assert_eq!(errors[0]["message"], "monitor queue: connection reset");

    queue.set_state(MonitorState::Running);
    assert_eq!(server.get("/ready").await.status, 200);
    server.stop().await.unwrap();
}
