//! [`Limits`]: the control plane's hardening limits, with their documented defaults.

use std::time::Duration;

use tokio::sync::Semaphore;

use crate::Error;

// ===== Limits =====

/// The hardening limits, with the documented defaults.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) header_read_timeout: Duration,
    pub(crate) body_read_timeout: Duration,
    pub(crate) write_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_connections: usize,
    pub(crate) body_limit: usize,
    pub(crate) max_header_bytes: usize,
    pub(crate) shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(5),
            body_read_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
            body_limit: 1024 * 1024,
            max_header_bytes: 16 * 1024,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

impl Limits {
    pub(crate) fn validate(&self) -> Result<(), Error> {
        let invalid = |setting, problem: &str| {
            Err(Error::InvalidServerConfig {
                setting,
                problem: problem.to_owned(),
            })
        };
        if self.header_read_timeout.is_zero() {
            return invalid(
                "header_read_timeout",
                "must be longer than zero (zero would close every connection at once)",
            );
        }
        if self.body_read_timeout.is_zero() {
            return invalid(
                "body_read_timeout",
                "must be longer than zero (zero would close every request with a body)",
            );
        }
        if self.write_timeout.is_zero() {
            return invalid(
                "write_timeout",
                "must be longer than zero (zero would close every connection before its response is written)",
            );
        }
        if self.idle_timeout.is_zero() {
            return invalid(
                "idle_timeout",
                "must be longer than zero (zero would close every connection after its first response)",
            );
        }
        if self.max_connections == 0 || self.max_connections > Semaphore::MAX_PERMITS {
            return invalid(
                "max_connections",
                "must be at least 1 (and below 2^61); the default is 1024",
            );
        }
        if self.max_header_bytes < 1024 {
            return invalid(
                "max_header_bytes",
                "must be at least 1024 bytes, or ordinary requests would be refused; the default is 16 KiB",
            );
        }
        Ok(())
    }
}
