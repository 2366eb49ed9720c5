//! Log capture, written once for every test support module: one process-wide subscriber
//! records every event with the thread it happened on; a test reads back the records of its
//! own thread. (Per-thread scoped subscribers race with tracing's global interest cache
//! when tests run in parallel and can drop events.) Tests that capture use a current-thread
//! runtime, so their tasks run on their thread.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Mutex, OnceLock};
use std::thread::ThreadId;

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// One captured record: its level and fields (values as text).
#[derive(Debug, Clone)]
pub struct Record {
    pub level: tracing::Level,
    pub fields: BTreeMap<String, String>,
    thread: ThreadId,
}

impl Record {
    pub fn reason(&self) -> &str {
        self.fields.get("reason").map(String::as_str).unwrap_or("")
    }
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

static RECORDS: OnceLock<Mutex<Vec<Record>>> = OnceLock::new();

fn records() -> &'static Mutex<Vec<Record>> {
    RECORDS.get_or_init(|| {
        let subscriber = tracing_subscriber::registry().with(Capture);
        tracing::subscriber::set_global_default(subscriber).expect("install the capture");
        Mutex::new(Vec::new())
    })
}

/// The records emitted on the capturing thread since [`capture`] was called.
#[derive(Clone)]
pub struct Captured {
    thread: ThreadId,
    from: usize,
}

impl Captured {
    pub fn all(&self) -> Vec<Record> {
        records().lock().unwrap()[self.from..]
            .iter()
            .filter(|r| r.thread == self.thread)
            .cloned()
            .collect()
    }
    pub fn with_reason(&self, reason: &str) -> Vec<Record> {
        self.all()
            .into_iter()
            .filter(|r| r.reason() == reason)
            .collect()
    }
    pub fn count(&self, reason: &str) -> usize {
        self.with_reason(reason).len()
    }
}

struct Capture;

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: tracing::Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        let record = Record {
            level: *event.metadata().level(),
            fields,
            thread: std::thread::current().id(),
        };
        records().lock().unwrap().push(record);
    }
}

/// Starts capturing this thread's records.
pub fn capture() -> Captured {
    let from = records().lock().unwrap().len();
    Captured {
        thread: std::thread::current().id(),
        from,
    }
}
