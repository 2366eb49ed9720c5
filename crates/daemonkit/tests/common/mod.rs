//! Test support: capture tracing records so tests can count `reason`s.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// One captured record: its level and fields (values as text).
#[derive(Debug, Clone)]
pub struct Record {
    pub level: tracing::Level,
    pub fields: BTreeMap<String, String>,
}

impl Record {
    pub fn reason(&self) -> &str {
        self.fields.get("reason").map(String::as_str).unwrap_or("")
    }
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

/// Records captured since [`capture`] was called on this thread.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<Record>>>);

impl Captured {
    pub fn all(&self) -> Vec<Record> {
        self.0.lock().unwrap().clone()
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

struct Capture(Captured);

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
        self.0.0.lock().unwrap().push(Record {
            level: *event.metadata().level(),
            fields,
        });
    }
}

/// Captures every tracing record emitted on this thread until the guard drops.
/// Use with a current-thread runtime so spawned tasks run on this thread too.
pub fn capture() -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::registry().with(Capture(captured.clone()));
    let guard = tracing::subscriber::set_default(subscriber);
    // Tests run in parallel threads, each with its own subscriber: make sure no callsite
    // keeps an interest cached while this thread had none.
    tracing::callsite::rebuild_interest_cache();
    (captured, guard)
}
