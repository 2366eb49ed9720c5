//! Panic-safe task helpers.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use daemonkit::{Error, TaskGroup, spawn_logged};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "current_thread")]
async fn spawn_logged_catches_and_logs_a_panic() {
    let logs = common::capture();
    let handle = spawn_logged("rotate-keys", async { panic!("key store locked") });
    handle.await.expect("the panic is caught inside the task");
    let panics = logs.with_reason("TaskPanic");
    assert_eq!(panics.len(), 1);
    assert_eq!(panics[0].field("task"), Some("rotate-keys"));
    assert_eq!(panics[0].field("panic"), Some("key store locked"));
}

#[tokio::test(flavor = "current_thread")]
async fn task_group_cancels_siblings_on_first_failure() {
    let mut group = TaskGroup::new(&CancellationToken::new());
    let sibling_stopped = Arc::new(AtomicBool::new(false));
    let flag = sibling_stopped.clone();
    group.spawn("sibling", move |cancel| async move {
        cancel.cancelled().await;
        flag.store(true, Ordering::SeqCst);
        Ok(())
    });
    group.spawn("failing", |_| async {
        tokio::time::sleep(Duration::from_millis(5)).await;
        Err("upstream closed".into())
    });
    let err = group.wait().await.unwrap_err();
    match &err {
        Error::TaskFailed { task, source } => {
            assert_eq!(task, "failing");
            assert_eq!(source.to_string(), "upstream closed");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(sibling_stopped.load(Ordering::SeqCst));
}

#[tokio::test(flavor = "current_thread")]
async fn task_group_reports_a_panic_as_an_error() {
    let logs = common::capture();
    let mut group = TaskGroup::new(&CancellationToken::new());
    let token = group.token().clone();
    group.spawn("parser", |_| async { panic!("index out of range") });
    let err = group.wait().await.unwrap_err();
    assert!(
        matches!(&err, Error::TaskPanicked { task, message } if task == "parser" && message == "index out of range"),
        "{err:?}"
    );
    assert!(token.is_cancelled());
    assert_eq!(logs.count("TaskPanic"), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn task_group_succeeds_when_every_child_does() {
    let parent = CancellationToken::new();
    let mut group = TaskGroup::new(&parent);
    for i in 0..3 {
        group.spawn(format!("child-{i}"), |_| async { Ok(()) });
    }
    let token = group.token().clone();
    group.wait().await.unwrap();
    assert!(!token.is_cancelled());
    assert!(!parent.is_cancelled());
}

#[tokio::test(flavor = "current_thread")]
async fn cancelling_the_parent_stops_the_group() {
    let parent = CancellationToken::new();
    let mut group = TaskGroup::new(&parent);
    group.spawn("waiter", |cancel| async move {
        cancel.cancelled().await;
        Ok(())
    });
    parent.cancel();
    group.wait().await.unwrap();
}
