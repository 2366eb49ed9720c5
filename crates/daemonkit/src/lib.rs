//! daemonkit: building blocks for long-running Linux daemons.
#![deny(missing_docs)]

mod error;
pub use error::Error;

#[cfg(feature = "systemd")]
pub mod activation;
#[cfg(feature = "systemd")]
pub mod notify;
#[cfg(feature = "systemd")]
pub mod watchdog;
