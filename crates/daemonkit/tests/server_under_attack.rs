//! Issue 11, items 1 and 2: 1,100 hostile connections — more than the default cap of
//! 1,024 — held open against the control plane, one kind per test: bodies that never
//! arrive on a body-reading component route, and idle keep-alive connections. With
//! either, `/health` must keep answering (p99 within 100 ms) and every attacker must be
//! closed within its deadline (or earlier, reclaimed for room at the cap).
//!
//! Each test runs the server and all clients in this process (both ends of every
//! connection), so it raises `RLIMIT_NOFILE` first.

mod server_support;

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use daemonkit::server::ControlPlane;
use server_support::{Server, closed_within, request, socket_dir};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::time::Instant;

const ATTACKERS: usize = 1100;
const HEALTH_CHECKS: usize = 200;
/// How much later than its deadline an attacker may be closed (scheduling slack on a
/// loaded machine, and the time to walk 1,100 connections).
const SLACK: Duration = Duration::from_secs(3);

/// Makes room for `n` descriptors (client and server ends live in this process).
fn raise_fd_limit(n: u64) {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    let want = limit.current.unwrap_or(u64::MAX).max(n);
    let want = limit.maximum.map_or(want, |max| want.min(max));
    limit.current = Some(want);
    setrlimit(Resource::Nofile, limit).expect("raise RLIMIT_NOFILE");
    let got = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    assert!(
        got >= n,
        "RLIMIT_NOFILE is {got}, below the {n} this test needs (hard limit too low)"
    );
}

/// `/health` on a new connection each time, as a health checker does: every one must be
/// answered 200. Returns the round-trip times, sorted.
async fn health_checks(server: &Server) -> Vec<Duration> {
    let mut times = Vec::with_capacity(HEALTH_CHECKS);
    for _ in 0..HEALTH_CHECKS {
        let started = Instant::now();
        let mut conn = server.connect().await;
        let res = request(&mut conn, "GET", "/health", &[("Connection", "close")], b"").await;
        assert_eq!(res.status, 200);
        times.push(started.elapsed());
    }
    times.sort_unstable();
    times
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn assert_health_p99(times: &[Duration]) {
    let (p50, p99) = (percentile(times, 0.50), percentile(times, 0.99));
    eprintln!("/health under attack: p50 {p50:?}, p99 {p99:?}");
    assert!(
        p99 <= Duration::from_millis(100),
        "/health p99 {p99:?} (p50 {p50:?}) with {ATTACKERS} attackers held open"
    );
}

/// Waits for every attacker to be closed, each by `deadline(i) + SLACK`.
async fn assert_all_closed(attackers: &mut [(UnixStream, Instant)], timeout: Duration) {
    for (i, (conn, since)) in attackers.iter_mut().enumerate() {
        let by = *since + timeout + SLACK;
        let left = by.saturating_duration_since(Instant::now());
        assert!(
            closed_within(conn, left).await,
            "attacker {i} still open {:?} after it began, past its {timeout:?} deadline",
            since.elapsed()
        );
    }
}

#[tokio::test]
async fn health_answers_while_1100_request_bodies_never_arrive() {
    raise_fd_limit(8192);
    let body_timeout = Duration::from_secs(2);
    let dir = socket_dir();
    let echo = Router::new().route("/echo", post(|body: Bytes| async move { body }));
    let server = Server::start(
        ControlPlane::builder(dir.path().join("control.sock"))
            .body_read_timeout(body_timeout)
            .component("demo", echo),
    )
    .await;

    let mut attackers = Vec::with_capacity(ATTACKERS);
    for _ in 0..ATTACKERS {
        let mut conn = server.connect().await;
        // A head that promises 1000 bytes, and 10 of them.
        conn.write_all(
            b"POST /demo/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789",
        )
        .await
        .unwrap();
        attackers.push((conn, Instant::now()));
    }
    let times = health_checks(&server).await;
    assert_health_p99(&times);
    assert_all_closed(&mut attackers, body_timeout).await;
    assert_eq!(server.get("/health").await.status, 200);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn health_answers_while_1100_idle_keep_alive_connections_are_held() {
    raise_fd_limit(8192);
    let idle_timeout = Duration::from_secs(3);
    let dir = socket_dir();
    let server = Server::start(
        ControlPlane::builder(dir.path().join("control.sock")).idle_timeout(idle_timeout),
    )
    .await;

    let mut attackers = Vec::with_capacity(ATTACKERS);
    for _ in 0..ATTACKERS {
        let mut conn = server.connect().await;
        let res = request(&mut conn, "GET", "/health", &[], b"").await;
        assert_eq!(res.status, 200);
        // Idle from here on: the idle timeout counts from the response.
        attackers.push((conn, Instant::now()));
    }
    let times = health_checks(&server).await;
    assert_health_p99(&times);
    assert_all_closed(&mut attackers, idle_timeout).await;
    assert_eq!(server.get("/health").await.status, 200);
    server.stop().await.unwrap();
}
