//! Many writers at once: every event lands, whole, exactly once.

mod common;

use std::collections::HashSet;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use daemonkit_eventlog::{Error, EventLog};

#[test]
fn sixteen_threads_logging_a_thousand_events_each_all_land_whole() {
    const THREADS: usize = 16;
    const EVENTS: usize = 1_000;
    let dir = common::fast_tempdir();
    let log = EventLog::open_append(dir.path(), "events.jsonl").unwrap();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let log = &log;
            s.spawn(move || {
                for i in 0..EVENTS {
                    log.log(&common::event(format!("{t}-{i}"))).unwrap();
                }
            });
        }
    });

    let messages = common::messages(log.path());
    assert_eq!(messages.len(), THREADS * EVENTS);
    let unique: HashSet<&String> = messages.iter().collect();
    assert_eq!(unique.len(), THREADS * EVENTS, "no event is written twice");
    for t in 0..THREADS {
        for i in 0..EVENTS {
            assert!(unique.contains(&format!("{t}-{i}")), "{t}-{i} missing");
        }
    }
}

/// Batches that never fill: writers pause between events, some stop early, and one logs
/// alone after the burst. Each partial batch must still be written (by its deadline, or by a
/// caller woken to gather it), or a caller would wait forever and the test would hang.
#[test]
fn writers_that_pause_or_stop_still_get_every_event_written() {
    const THREADS: usize = 12;
    let dir = common::fast_tempdir();
    let log = EventLog::open_append(dir.path(), "events.jsonl").unwrap();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let log = &log;
            s.spawn(move || {
                // Thread t logs 10 + 10 t events, so the crowd thins out as threads finish.
                for i in 0..10 + 10 * t {
                    log.log(&common::event(format!("{t}-{i}"))).unwrap();
                    if (t + i) % 3 == 0 {
                        std::thread::sleep(std::time::Duration::from_micros(300));
                    }
                }
            });
        }
    });
    // Alone now, after a burst of twelve: still written, one by one.
    for i in 0..20 {
        log.log(&common::event(format!("alone-{i}"))).unwrap();
    }
    let messages = common::messages(log.path());
    let expected = (0..THREADS).map(|t| 10 + 10 * t).sum::<usize>() + 20;
    assert_eq!(messages.len(), expected);
    assert_eq!(messages.iter().collect::<HashSet<_>>().len(), expected);
}

#[test]
fn each_thread_sees_its_own_events_in_the_order_it_logged_them() {
    let dir = common::fast_tempdir();
    let log = EventLog::open_append(dir.path(), "events.jsonl").unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let log = &log;
            s.spawn(move || {
                for i in 0..200 {
                    log.log(&common::event(format!("{t}-{i}"))).unwrap();
                }
            });
        }
    });
    let messages = common::messages(log.path());
    for t in 0..4 {
        let mine: Vec<&String> = messages
            .iter()
            .filter(|m| m.starts_with(&format!("{t}-")))
            .collect();
        let expected: Vec<String> = (0..200).map(|i| format!("{t}-{i}")).collect();
        assert_eq!(mine, expected.iter().collect::<Vec<_>>());
    }
}

#[test]
fn async_tasks_and_threads_share_one_log() {
    let dir = common::fast_tempdir();
    let log = EventLog::open_append(dir.path(), "events.jsonl").unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    std::thread::scope(|s| {
        let thread_log = &log;
        s.spawn(move || {
            for i in 0..200 {
                thread_log
                    .log(&common::event(format!("thread-{i}")))
                    .unwrap();
            }
        });
        runtime.block_on(async {
            let mut tasks = Vec::new();
            for t in 0..32 {
                let log = log.clone();
                tasks.push(tokio::spawn(async move {
                    for i in 0..20 {
                        log.log_async(&common::event(format!("task-{t}-{i}")))
                            .await
                            .unwrap();
                    }
                }));
            }
            for task in tasks {
                task.await.unwrap();
            }
        });
    });
    let messages = common::messages(log.path());
    assert_eq!(messages.len(), 200 + 32 * 20);
    assert_eq!(
        messages.iter().collect::<HashSet<_>>().len(),
        messages.len()
    );
}

#[test]
fn log_async_outside_a_tokio_runtime_is_an_error_not_a_panic() {
    let dir = common::fast_tempdir();
    let log = EventLog::open_append(dir.path(), "events.jsonl").unwrap();
    let event = common::event("m");
    let mut future = pin!(log.log_async(&event));
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(Err(Error::Runtime { detail, .. })) => {
            assert!(detail.contains("tokio runtime"), "{detail}")
        }
        other => panic!("expected Runtime error, got {other:?}"),
    }
    assert_eq!(common::messages(log.path()), Vec::<String>::new());
}
