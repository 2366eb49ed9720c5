//! `Retention` (feature `monitor`): a pruner run every period by a supervisor, with a
//! failed pass reported as degraded and recovered by a later one.

use std::sync::Arc;
use std::time::Duration;

use daemonkit::{MonitorState, Supervisor};
use daemonkit_filepruner::{FileSize, Pattern, Pruner, Retention};
use tokio_util::sync::CancellationToken;

async fn until(mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn prunes_every_period_until_shut_down() {
    let dir = tempfile::tempdir().unwrap();
    let big = |n: u32| dir.path().join(format!("app-{n}.log"));
    std::fs::write(big(1), vec![0; 2048]).unwrap();
    let retention = Retention::builder(
        Pruner::new(FileSize::new(1024)),
        dir.path(),
        Pattern::new("app-*.log").unwrap(),
    )
    .name("logs")
    .every(Duration::from_millis(20))
    .build();
    let supervisor = Supervisor::builder()
        .monitor(Arc::new(retention))
        .build()
        .unwrap();
    let tracker = supervisor.tracker().clone();
    let running = supervisor.start(&CancellationToken::new());

    until(|| !big(1).exists()).await;
    // A file written later goes at a later pass: the monitor keeps going.
    std::fs::write(big(2), vec![0; 2048]).unwrap();
    until(|| !big(2).exists()).await;
    assert_eq!(tracker.snapshot()["logs"].state, MonitorState::Running);
    assert!(running.shutdown(Duration::from_secs(1)).await.is_clean());
}

#[tokio::test(flavor = "current_thread")]
async fn a_directory_not_created_yet_is_nothing_to_prune() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("not-yet");
    let retention = Retention::builder(
        Pruner::new(FileSize::new(1)),
        &missing,
        Pattern::new("*.log").unwrap(),
    )
    .every(Duration::from_millis(10))
    .build();
    let supervisor = Supervisor::builder()
        .monitor(Arc::new(retention))
        .build()
        .unwrap();
    let tracker = supervisor.tracker().clone();
    let running = supervisor.start(&CancellationToken::new());
    tokio::time::sleep(Duration::from_millis(50)).await;
    let status = &tracker.snapshot()["retention"];
    assert_eq!(status.state, MonitorState::Running, "{:?}", status.error);
    assert_eq!(status.restarts, 0);
    assert!(running.shutdown(Duration::from_secs(1)).await.is_clean());
}

#[tokio::test(flavor = "current_thread")]
async fn a_failed_pass_is_degraded_until_a_later_pass_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    std::fs::write(logs.join("app-1.log"), vec![0; 2048]).unwrap();
    // A pass that fails for anyone, root included: the directory is swapped for a file
    // (ENOTDIR when the pass opens it).
    let retention = Retention::builder(
        Pruner::new(FileSize::new(1024)),
        &logs,
        Pattern::new("app-*.log").unwrap(),
    )
    .every(Duration::from_millis(20))
    .build();
    std::fs::remove_dir_all(&logs).unwrap();
    std::fs::write(&logs, b"not a directory").unwrap();
    let supervisor = Supervisor::builder()
        .monitor(Arc::new(retention))
        .build()
        .unwrap();
    let tracker = supervisor.tracker().clone();
    let running = supervisor.start(&CancellationToken::new());

    until(|| tracker.snapshot()["retention"].state == MonitorState::Degraded).await;
    let status = &tracker.snapshot()["retention"];
    let error = status.error.as_ref().unwrap();
    assert_eq!(error.reason, "PruneFailed");
    assert!(
        error.message.contains(&logs.display().to_string()),
        "{}",
        error.message
    );
    assert_eq!(status.restarts, 0, "degraded, not crashed");

    // The operator fixes it; the next pass recovers on its own.
    std::fs::remove_file(&logs).unwrap();
    std::fs::create_dir(&logs).unwrap();
    until(|| tracker.snapshot()["retention"].state == MonitorState::Running).await;
    assert!(running.shutdown(Duration::from_secs(1)).await.is_clean());
}
