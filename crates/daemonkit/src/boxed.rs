//! The boxed error and future types every trait of the kit uses, so monitors, probes and
//! hooks of different types live together as trait objects.

use std::future::Future;
use std::pin::Pin;

/// The error a monitor's run loop (or a hook) returns when it fails: any error type will do.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A boxed, sendable future, which keeps [`Monitor`](crate::Monitor) and
/// [`Probe`](crate::Probe) object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
