//! `/status` served from a cached body keyed by a version: the cache is used while the
//! version holds and rebuilt when it moves (a write, or a running monitor's connectivity
//! check answering differently), over a real Unix socket.

mod server_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use daemonkit::server::ControlPlane;
use daemonkit::{MonitorState, StatusError, StatusTracker};
use server_support::{Server, socket_dir};

fn builder(dir: &tempfile::TempDir) -> daemonkit::ControlPlaneBuilder {
    ControlPlane::builder(dir.path().join("control.sock"))
}

#[tokio::test]
async fn a_versioned_status_function_runs_once_per_version() {
    let dir = socket_dir();
    let version = Arc::new(AtomicU64::new(1));
    let calls = Arc::new(AtomicUsize::new(0));
    let (v, c) = (version.clone(), calls.clone());
    let server = Server::start(builder(&dir).status_versioned(
        move || Some(v.load(Ordering::SeqCst)),
        move || serde_json::json!({"call": c.fetch_add(1, Ordering::SeqCst) + 1}),
    ))
    .await;
    for _ in 0..3 {
        assert_eq!(server.get("/status").await.json()["call"], 1);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    version.store(2, Ordering::SeqCst);
    assert_eq!(server.get("/status").await.json()["call"], 2);
    assert_eq!(server.get("/status").await.json()["call"], 2);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_status_function_without_a_version_runs_on_every_request() {
    let dir = socket_dir();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let server = Server::start(builder(&dir).status_versioned(
        || None,
        move || serde_json::json!({"call": c.fetch_add(1, Ordering::SeqCst) + 1}),
    ))
    .await;
    assert_eq!(server.get("/status").await.json()["call"], 1);
    assert_eq!(server.get("/status").await.json()["call"], 2);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_tracker_status_shows_every_transition() {
    let dir = socket_dir();
    let tracker = StatusTracker::new();
    let db = tracker.register("db").unwrap();
    let server = Server::start(builder(&dir).tracker_status(&tracker)).await;
    assert_eq!(server.get("/status").await.json()["db"]["state"], "stopped");
    assert_eq!(server.get("/status").await.json()["db"]["state"], "stopped");
    db.set_state(MonitorState::Running);
    assert_eq!(server.get("/status").await.json()["db"]["state"], "running");
    db.update(|status| status.restarts = 7);
    assert_eq!(server.get("/status").await.json()["db"]["restarts"], 7);
    let queue = tracker.register("queue").unwrap();
    queue.set_state(MonitorState::Backoff(std::time::Duration::from_secs(5)));
    let json = server.get("/status").await.json();
    assert_eq!(json["queue"]["state"], "backoff:5s");
    assert_eq!(json["db"]["state"], "running");
    server.stop().await.unwrap();
}

/// A running monitor `link` whose connectivity check answers healthy while `up` is
/// true, else `LinkDown`, and counts its calls.
fn running_link(
    tracker: &StatusTracker,
    up: bool,
) -> (daemonkit::MonitorHandle, Arc<AtomicBool>, Arc<AtomicUsize>) {
    let up = Arc::new(AtomicBool::new(up));
    let calls = Arc::new(AtomicUsize::new(0));
    let (u, c) = (up.clone(), calls.clone());
    let link = tracker
        .register_reporting("link", move || {
            c.fetch_add(1, Ordering::SeqCst);
            if u.load(Ordering::SeqCst) {
                Ok(())
            } else {
                Err(StatusError::new("LinkDown", "no carrier"))
            }
        })
        .unwrap();
    link.set_state(MonitorState::Running);
    (link, up, calls)
}

#[tokio::test]
async fn a_running_connectivity_check_is_read_on_every_request() {
    let dir = socket_dir();
    let tracker = StatusTracker::new();
    let (link, up, _calls) = running_link(&tracker, true);
    let server = Server::start(builder(&dir).tracker_status(&tracker)).await;
    assert_eq!(
        server.get("/status").await.json()["link"]["state"],
        "running"
    );
    // No transition: only the check's answer changes.
    up.store(false, Ordering::SeqCst);
    let json = server.get("/status").await.json();
    assert_eq!(json["link"]["state"], "degraded");
    assert_eq!(json["link"]["error"]["reason"], "LinkDown");
    up.store(true, Ordering::SeqCst);
    assert_eq!(
        server.get("/status").await.json()["link"]["state"],
        "running"
    );
    // Stopped, the check is not consulted and the body can be cached again.
    link.set_state(MonitorState::Stopped);
    up.store(false, Ordering::SeqCst);
    assert_eq!(
        server.get("/status").await.json()["link"]["state"],
        "stopped"
    );
    assert_eq!(
        server.get("/status").await.json()["link"]["state"],
        "stopped"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_steady_connectivity_answer_keeps_the_cached_body() {
    let dir = socket_dir();
    let tracker = StatusTracker::new();
    let (_link, up, calls) = running_link(&tracker, false);
    let server = Server::start(builder(&dir).tracker_status(&tracker)).await;
    let first = server.get("/status").await.body;
    let after_first = calls.load(Ordering::SeqCst);
    // A steady answer: each request asks the check once (for the version) and is
    // answered with the cached body; a rebuild would ask it a second time.
    for _ in 0..3 {
        assert_eq!(server.get("/status").await.body, first);
    }
    assert_eq!(calls.load(Ordering::SeqCst), after_first + 3);
    // A changed answer rebuilds the body, with no transition.
    up.store(true, Ordering::SeqCst);
    assert_eq!(
        server.get("/status").await.json()["link"]["state"],
        "running"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_panicking_version_function_gets_a_500() {
    let dir = socket_dir();
    let server = Server::start(
        builder(&dir).status_versioned(|| panic!("version"), || serde_json::json!({})),
    )
    .await;
    assert_eq!(server.get("/status").await.status, 500);
    assert_eq!(server.get("/health").await.status, 200);
    server.stop().await.unwrap();
}
