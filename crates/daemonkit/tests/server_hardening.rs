//! The control plane under hostile or sloppy clients: slow and idle connections, the
//! connection cap, and shutdown with requests in flight. Every timeout is shrunk to
//! milliseconds here; the defaults are seconds.

mod server_support;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::routing::{get, post};
use daemonkit::server::ControlPlane;
use server_support::{PATIENCE, Server, closed_within, request, socket_dir};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::Notify;

/// True when the server has not closed `conn` (nothing to read, no EOF).
fn still_open(conn: &UnixStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(conn.try_read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

/// Makes room for `n` more descriptors (client and server ends live in this process).
fn raise_fd_limit(n: u64) {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    let want = limit.current.unwrap_or(u64::MAX).max(n);
    let want = limit.maximum.map_or(want, |max| want.min(max));
    limit.current = Some(want);
    setrlimit(Resource::Nofile, limit).expect("raise RLIMIT_NOFILE");
}

// ===== slow and idle clients =====

#[tokio::test]
async fn a_thousand_slow_connections_do_not_starve_health_and_are_closed_by_the_header_timeout() {
    raise_fd_limit(4096);
    let captured = server_support::capture();
    let dir = socket_dir();
    let server = Server::start(
        ControlPlane::builder(dir.path().join("control.sock"))
            .header_read_timeout(Duration::from_millis(1000)),
    )
    .await;

    let mut slow = Vec::with_capacity(1000);
    for _ in 0..1000 {
        let mut conn = server.connect().await;
        // A request head that never ends.
        conn.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        slow.push(conn);
    }
    let res = server.get("/health").await;
    assert_eq!(res.status, 200);
    let open = slow.iter().filter(|c| still_open(c)).count();
    assert!(
        open >= 900,
        "/health answered while {open} of the slow connections were open"
    );

    for conn in &mut slow {
        assert!(
            closed_within(conn, PATIENCE).await,
            "a slow connection was closed by the header timeout"
        );
    }
    assert_eq!(captured.count("ControlPlaneHeaderTimeout"), 1000);
    assert_eq!(server.get("/health").await.status, 200);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn trickling_a_request_head_does_not_extend_the_header_timeout() {
    let dir = socket_dir();
    let server = Server::start(
        ControlPlane::builder(dir.path().join("control.sock"))
            .header_read_timeout(Duration::from_millis(300)),
    )
    .await;
    let mut conn = server.connect().await;
    let started = tokio::time::Instant::now();
    let mut closed = false;
    for byte in b"GET /health HTTP/1.1\r\nX-Slow: ".iter().cycle().take(200) {
        if conn.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        if closed_within(&mut conn, Duration::from_millis(50)).await {
            closed = true;
            break;
        }
    }
    assert!(closed, "a trickling client was never cut off");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "cut off after {:?}, long after the 300 ms header timeout",
        started.elapsed()
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_by_the_header_timeout() {
    let dir = socket_dir();
    let server = Server::start(
        ControlPlane::builder(dir.path().join("control.sock"))
            .header_read_timeout(Duration::from_millis(200)),
    )
    .await;
    let mut conn = server.connect().await;
    assert!(closed_within(&mut conn, PATIENCE).await);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let captured = server_support::capture();
    let dir = socket_dir();
    let server = Server::start(
        ControlPlane::builder(dir.path().join("control.sock"))
            .header_read_timeout(Duration::from_secs(30))
            .idle_timeout(Duration::from_millis(200)),
    )
    .await;
    let mut conn = server.connect().await;
    assert_eq!(
        request(&mut conn, "GET", "/health", &[], b"").await.status,
        200
    );
    assert!(still_open(&conn), "kept alive after the response");
    assert!(closed_within(&mut conn, PATIENCE).await);
    assert_eq!(captured.count("ControlPlaneIdleTimeout"), 1);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn after_a_head_request_the_idle_timeout_applies_not_the_write_timeout() {
    // A HEAD response has no body for hyper to take: the clock must still see the
    // response out and the connection idle.
    let captured = server_support::capture();
    let dir = socket_dir();
    let server = Server::start(
        ControlPlane::builder(dir.path().join("control.sock"))
            .idle_timeout(Duration::from_millis(200))
            .write_timeout(Duration::from_secs(60)),
    )
    .await;
    let mut conn = server.connect().await;
    conn.write_all(b"HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        assert_eq!(conn.read(&mut byte).await.unwrap(), 1, "the head arrives");
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 200 OK\r\n"));
    assert!(closed_within(&mut conn, PATIENCE).await);
    assert_eq!(captured.count("ControlPlaneIdleTimeout"), 1);
    assert_eq!(captured.count("ControlPlaneWriteTimeout"), 0);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_keep_alive_connection_in_use_outlives_the_idle_timeout() {
    let dir = socket_dir();
    let server = Server::start(
        ControlPlane::builder(dir.path().join("control.sock"))
            .idle_timeout(Duration::from_millis(300)),
    )
    .await;
    let mut conn = server.connect().await;
    // Ten requests 100 ms apart: a second in all, each gap well inside the idle timeout.
    for _ in 0..10 {
        assert_eq!(
            request(&mut conn, "GET", "/health", &[], b"").await.status,
            200
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_slow_handler_is_not_cut_off_by_the_header_or_idle_timeout() {
    let dir = socket_dir();
    let slow = Router::new().route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            "done"
        }),
    );
    let server = Server::start(
        ControlPlane::builder(dir.path().join("control.sock"))
            .header_read_timeout(Duration::from_millis(100))
            .idle_timeout(Duration::from_millis(100))
            .component("jobs", slow),
    )
    .await;
    let res = server.get("/jobs/slow").await;
    assert_eq!(res.status, 200);
    assert_eq!(res.text(), "done");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn pipelined_requests_are_all_answered_and_the_connection_then_idles() {
    let dir = socket_dir();
    let server = Server::start(
        ControlPlane::builder(dir.path().join("control.sock"))
            .header_read_timeout(Duration::from_secs(30))
            .idle_timeout(Duration::from_millis(300)),
    )
    .await;
    let mut conn = server.connect().await;
    conn.write_all(
        b"GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /ready HTTP/1.1\r\nHost: x\r\n\r\nGET /status HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await
    .unwrap();
    // All three answers, in order; then the 300 ms idle timeout (not the 30 s header
    // timeout) closes the connection, which ends the read.
    let started = tokio::time::Instant::now();
    let mut raw = Vec::new();
    tokio::time::timeout(PATIENCE, conn.read_to_end(&mut raw))
        .await
        .expect("closed by the idle timeout")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    let text = String::from_utf8(raw).unwrap();
    assert_eq!(text.matches("HTTP/1.1 200 OK\r\n").count(), 3, "{text}");
    let ok = text
        .find("{\"status\":\"ok\"}\n")
        .expect("the /health answer");
    let ready = text
        .find("{\"status\":\"ready\"}\n")
        .expect("the /ready answer");
    assert!(ok < ready && text.ends_with("\r\n\r\n{}\n"), "{text}");
    server.stop().await.unwrap();
}

// ===== body and write deadlines =====

/// A component whose `POST /echo` reads the whole body and returns it.
fn echo_route() -> Router {
    Router::new().route("/echo", post(|body: Bytes| async move { body }))
}

#[tokio::test]
async fn a_body_that_never_arrives_is_closed_by_the_body_timeout() {
    let captured = server_support::capture();
    let dir = socket_dir();
    let server = Server::start(
        ControlPlane::builder(dir.path().join("control.sock"))
            .body_read_timeout(Duration::from_millis(300))
            .component("demo", echo_route()),
    )
    .await;
    let mut conn = server.connect().await;
    let sent = tokio::time::Instant::now();
    conn.write_all(b"POST /demo/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
        .await
        .unwrap();
    assert!(closed_within(&mut conn, PATIENCE).await);
    assert!(
        sent.elapsed() >= Duration::from_millis(300),
        "not closed before the timeout"
    );
    assert_eq!(captured.count("ControlPlaneBodyTimeout"), 1);
    assert_eq!(server.get("/health").await.status, 200);
    server.stop().await.unwrap();
}

#[tokio::test]
/// hyper closes a connection whose request body was left unread and is still due, once
/// the response is out; the connection clock relies on it.
async fn a_body_nobody_reads_does_not_keep_the_connection() {
    let dir = socket_dir();
    let ignores = Router::new().route("/ignore", post(|| async { "ignored" }));
    let server = Server::start(
        ControlPlane::builder(dir.path().join("control.sock"))
            .header_read_timeout(Duration::from_millis(300))
            .idle_timeout(Duration::from_secs(60))
            .component("demo", ignores),
    )
    .await;
    for path in ["/health", "/demo/ignore"] {
        let mut conn = server.connect().await;
        conn.write_all(
            format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        // Answered (405 for the built-in route, 200 for the handler that ignores it)…
        let res = server_support::read_response(&mut conn).await;
        assert!(matches!(res.status, 200 | 405), "{path}: {}", res.status);
        // …then closed at once, not kept waiting for the rest of the body as if idle.
        let answered = tokio::time::Instant::now();
        assert!(closed_within(&mut conn, PATIENCE).await);
        assert!(
            answered.elapsed() < Duration::from_secs(5),
            "{path}: held {:?}, as if idle",
            answered.elapsed()
        );
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn trickling_a_body_does_not_extend_the_body_timeout() {
    let dir = socket_dir();
    let server = Server::start(
        ControlPlane::builder(dir.path().join("control.sock"))
            .body_read_timeout(Duration::from_millis(300))
            .component("demo", echo_route()),
    )
    .await;
    let mut conn = server.connect().await;
    conn.write_all(b"POST /demo/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let mut closed = false;
    for _ in 0..200 {
        if conn.write_all(b"x").await.is_err()
            || closed_within(&mut conn, Duration::from_millis(50)).await
        {
            closed = true;
            break;
        }
    }
    assert!(closed, "a trickling body was never cut off");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "cut off after {:?}, long after the 300 ms body timeout",
        started.elapsed()
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_body_sent_in_time_is_answered_and_the_handler_may_then_take_longer() {
    let dir = socket_dir();
    let slow = Router::new().route(
        "/slow",
        post(|body: Bytes| async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            body
        }),
    );
    let server = Server::start(
        ControlPlane::builder(dir.path().join("control.sock"))
            .body_read_timeout(Duration::from_millis(200))
            .component("demo", echo_route().merge(slow)),
    )
    .await;
    let mut conn = server.connect().await;
    let res = request(&mut conn, "POST", "/demo/echo", &[], b"{\"a\":1}").await;
    assert_eq!((res.status, res.text()), (200, "{\"a\":1}"));
    // The body is read within the timeout; the handler then sleeps past it.
    let res = request(&mut conn, "POST", "/demo/slow", &[], b"later").await;
    assert_eq!((res.status, res.text()), (200, "later"));
    // The connection is still good for more.
    let res = request(&mut conn, "GET", "/health", &[], b"").await;
    assert_eq!(res.status, 200);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_client_that_does_not_read_its_response_is_closed_by_the_write_timeout() {
    const SIZE: usize = 16 * 1024 * 1024;
    let captured = server_support::capture();
    let dir = socket_dir();
    let big = Router::new().route("/big", get(|| async { vec![b'x'; SIZE] }));
    let server = Server::start(
        ControlPlane::builder(dir.path().join("control.sock"))
            .write_timeout(Duration::from_millis(300))
            .component("dump", big),
    )
    .await;
    let mut conn = server.connect().await;
    conn.write_all(b"GET /dump/big HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // Read nothing for longer than the timeout: the socket buffers fill, the server's
    // write waits, and the timeout closes the connection.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut received = Vec::new();
    tokio::time::timeout(PATIENCE, conn.read_to_end(&mut received))
        .await
        .expect("the connection ends")
        .ok();
    assert!(
        received.len() < SIZE,
        "the whole response ({} bytes) got out",
        received.len()
    );
    assert_eq!(captured.count("ControlPlaneWriteTimeout"), 1);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_slowly_read_response_is_not_cut_if_it_is_read_within_the_write_timeout() {
    const SIZE: usize = 4 * 1024 * 1024;
    let dir = socket_dir();
    let big = Router::new().route("/big", get(|| async { vec![b'x'; SIZE] }));
    let server = Server::start(
        ControlPlane::builder(dir.path().join("control.sock"))
            .write_timeout(Duration::from_secs(5))
            .idle_timeout(Duration::from_millis(200))
            .component("dump", big),
    )
    .await;
    let mut conn = server.connect().await;
    conn.write_all(b"GET /dump/big HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // Longer than the idle timeout, well within the write timeout: the response is not
    // idle while it is being written.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let res = server_support::read_response(&mut conn).await;
    assert_eq!((res.status, res.body.len()), (200, SIZE));
    // Once written, the idle timeout applies again.
    assert!(closed_within(&mut conn, PATIENCE).await);
    server.stop().await.unwrap();
}

// ===== the connection cap =====

#[tokio::test]
async fn at_the_cap_the_oldest_idle_connection_makes_room_for_a_new_one() {
    let captured = server_support::capture();
    let dir = socket_dir();
    let server =
        Server::start(ControlPlane::builder(dir.path().join("control.sock")).max_connections(2))
            .await;
    let mut first = server.connect().await;
    let mut second = server.connect().await;
    assert_eq!(
        request(&mut first, "GET", "/health", &[], b"").await.status,
        200
    );
    assert_eq!(
        request(&mut second, "GET", "/health", &[], b"")
            .await
            .status,
        200
    );

    // Both are idle keep-alive connections: a third gets in, the oldest idle one goes.
    let mut third = server.connect().await;
    assert_eq!(
        request(&mut third, "GET", "/health", &[], b"").await.status,
        200
    );
    assert!(
        closed_within(&mut first, PATIENCE).await,
        "the oldest idle connection was closed to make room"
    );
    assert!(still_open(&second), "the younger idle connection was kept");
    assert_eq!(
        request(&mut second, "GET", "/health", &[], b"")
            .await
            .status,
        200
    );
    let reclaimed = captured.with_reason("ControlPlaneConnectionReclaimed");
    assert_eq!(reclaimed.len(), 1);
    assert_eq!(reclaimed[0].field("phase"), Some("idle"));
    assert_eq!(captured.count("ControlPlaneConnectionRejected"), 0);
    assert_eq!(captured.count("ControlPlaneConnectionCapReached"), 1);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn at_the_cap_an_idle_connection_makes_room_before_an_older_slow_one() {
    let captured = server_support::capture();
    let dir = socket_dir();
    let server =
        Server::start(ControlPlane::builder(dir.path().join("control.sock")).max_connections(2))
            .await;
    // The slow one is older, but an idle connection goes first.
    let mut slow = server.connect().await;
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut idle = server.connect().await;
    assert_eq!(
        request(&mut idle, "GET", "/health", &[], b"").await.status,
        200
    );

    assert_eq!(server.get("/health").await.status, 200);
    assert!(closed_within(&mut idle, PATIENCE).await);
    assert!(
        still_open(&slow),
        "the slow connection is only next in line"
    );
    // The slow one can still finish its request.
    slow.write_all(b"\r\n").await.unwrap();
    assert_eq!(server_support::read_response(&mut slow).await.status, 200);
    let reclaimed = captured.with_reason("ControlPlaneConnectionReclaimed");
    assert_eq!(reclaimed.len(), 1);
    assert_eq!(reclaimed[0].field("phase"), Some("idle"));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn at_the_cap_a_connection_still_sending_its_request_makes_room_before_a_busy_one() {
    let dir = socket_dir();
    let started = Arc::new(Notify::new());
    let server = Server::start(
        ControlPlane::builder(dir.path().join("control.sock"))
            .max_connections(2)
            .component("jobs", held_route(started.clone(), None)),
    )
    .await;
    let mut busy = server.connect().await;
    busy.write_all(b"GET /jobs/hold HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    started.notified().await;
    let mut slow = server.connect().await;
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();

    assert_eq!(server.get("/health").await.status, 200);
    assert!(
        closed_within(&mut slow, PATIENCE).await,
        "the connection still sending its head was closed to make room"
    );
    assert!(still_open(&busy), "the connection in a handler was kept");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn at_the_cap_with_every_connection_in_a_handler_a_new_one_is_closed_at_once() {
    let captured = server_support::capture();
    let dir = socket_dir();
    let started = Arc::new(Notify::new());
    let server = Server::start(
        ControlPlane::builder(dir.path().join("control.sock"))
            .max_connections(2)
            .shutdown_grace(Duration::from_millis(100))
            .component("jobs", held_route(started.clone(), None)),
    )
    .await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut conn = server.connect().await;
        conn.write_all(b"GET /jobs/hold HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        started.notified().await;
        held.push(conn);
    }

    let mut third = server.connect().await;
    assert!(
        closed_within(&mut third, PATIENCE).await,
        "the third connection is closed at once, not queued"
    );
    assert_eq!(captured.count("ControlPlaneConnectionRejected"), 1);
    assert!(
        held.iter().all(still_open),
        "the busy connections were kept"
    );

    server.stop().await.unwrap();
}

// ===== shutdown =====

/// A component route that signals when it starts, then waits `hold`.
fn held_route(started: Arc<Notify>, hold: Option<Duration>) -> Router {
    Router::new().route(
        "/hold",
        get(move || {
            let started = started.clone();
            async move {
                started.notify_one();
                match hold {
                    Some(hold) => tokio::time::sleep(hold).await,
                    None => std::future::pending::<()>().await,
                }
                "finished"
            }
        }),
    )
}

#[tokio::test]
async fn shutdown_lets_a_request_in_flight_finish() {
    let dir = socket_dir();
    let started = Arc::new(Notify::new());
    let server = Server::start(
        ControlPlane::builder(dir.path().join("control.sock")).component(
            "jobs",
            held_route(started.clone(), Some(Duration::from_millis(300))),
        ),
    )
    .await;
    let mut conn = server.connect().await;
    conn.write_all(b"GET /jobs/hold HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    started.notified().await;

    server.cancel.cancel();
    let res = server_support::read_response(&mut conn).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.text(), "finished");
    assert!(
        closed_within(&mut conn, PATIENCE).await,
        "closed after the response"
    );
    let path = server.path.clone();
    server.stop().await.unwrap();
    assert!(!path.exists());
}

#[tokio::test]
async fn shutdown_closes_requests_still_running_after_the_grace() {
    let captured = server_support::capture();
    let dir = socket_dir();
    let started = Arc::new(Notify::new());
    let server = Server::start(
        ControlPlane::builder(dir.path().join("control.sock"))
            .shutdown_grace(Duration::from_millis(100))
            .component("jobs", held_route(started.clone(), None)),
    )
    .await;
    let mut conn = server.connect().await;
    conn.write_all(b"GET /jobs/hold HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    started.notified().await;

    let path = server.path.clone();
    server.stop().await.unwrap();
    assert!(
        closed_within(&mut conn, PATIENCE).await,
        "no response, connection closed"
    );
    assert_eq!(captured.count("ControlPlaneShutdownDeadline"), 1);
    assert!(!path.exists());
}

#[tokio::test]
async fn shutdown_closes_idle_connections_without_waiting_for_the_grace() {
    let dir = socket_dir();
    let server = Server::start(
        ControlPlane::builder(dir.path().join("control.sock"))
            .shutdown_grace(Duration::from_secs(60)),
    )
    .await;
    let mut conn = server.connect().await;
    assert_eq!(
        request(&mut conn, "GET", "/health", &[], b"").await.status,
        200
    );
    // stop() fails the test if serve takes PATIENCE (10 s), far below the 60 s grace.
    server.stop().await.unwrap();
    assert!(closed_within(&mut conn, PATIENCE).await);
}

#[tokio::test]
async fn shutdown_does_not_wait_for_connections_still_sending_a_request_head() {
    let dir = socket_dir();
    let server = Server::start(
        ControlPlane::builder(dir.path().join("control.sock"))
            .header_read_timeout(Duration::from_secs(60))
            .shutdown_grace(Duration::from_secs(60)),
    )
    .await;
    let mut silent = server.connect().await;
    let mut partial = server.connect().await;
    partial
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // Make sure the server has accepted both before stopping.
    assert_eq!(server.get("/health").await.status, 200);
    // stop() fails the test if serve takes PATIENCE (10 s), far below the 60 s timeouts.
    server.stop().await.unwrap();
    assert!(closed_within(&mut silent, PATIENCE).await);
    assert!(closed_within(&mut partial, PATIENCE).await);
}
