//! Probes: checks of a host's prerequisites, run before a component starts work.
//!
//! A daemon that cannot write its data directory, or whose disk is full, should refuse to
//! start — early, with an exact reason and the command that fixes it — rather than crash
//! later in the middle of something. A [`Probe`] is one such check. They compose:
//!
//! | type | what it checks or does |
//! |---|---|
//! | [`Permissions`] | the permission bits a path must have (`mode & bits == bits`) |
//! | [`Ownership`] | a path's owner and/or group (by name, by id, or the daemon's own), plus optional bits |
//! | [`WriteTest`] | a file can really be created and written in a directory |
//! | [`FreeSpace`] | minimum free bytes or percent on the filesystem holding a path; its figures as a [`Space`] |
//! | [`Composite`] | runs probes concurrently under a component name; first failure wins |
//! | [`Tagged`] | attaches an operator-facing `reason` and `resolution` to a probe's failure |
//! | [`Retry`] | retries a probe with back-off until it passes or a deadline passes |
//! | [`probe_fn`] | a probe from a closure, for checks of your own |
//!
//! A failure is a [`ProbeError`] `{ reason, resolution, message, source }`, which turns
//! into the [`StatusError`] that `/status` and `/ready` report with
//! [`ProbeError::to_status_error`]. A monitor declares the probe it needs with
//! [`Monitor::prerequisite`](crate::Monitor::prerequisite), and
//! [`monitor::prerequisites`](crate::monitor::prerequisites) gathers a component's prerequisites into one probe.
//!
//! # Reasons
//!
//! An untagged built-in probe fails with one of the generic reasons in [`reason`]
//! (`PermissionsMissing`, `InsufficientSpace`, …) and an empty resolution: the probe
//! knows *what* is wrong but not the fix your deployment wants (`chown` to which user?
//! grow which volume?). Wrap it with [`ProbeExt::tagged`] to give the operator both.
//!
//! # Blocking
//!
//! Every built-in leaf probe does its file-system and user-database calls on tokio's
//! blocking pool ([`tokio::task::spawn_blocking`]): a `stat` on a dead NFS mount, a
//! `getpwnam` that asks LDAP, or a file creation waiting on a journal commit can block for
//! seconds, and must not stall the runtime (on a `current_thread` runtime, everything).
//! A probe runs once or a few times at start-up, so the hand-off (microseconds) is free.
//!
//! # Logging
//!
//! Records are emitted through `tracing`, each with a stable `reason` field:
//!
//! | reason | level | when |
//! |---|---|---|
//! | `ComponentProbePassed` | info | every probe of a [`Composite`] passed |
//! | `ComponentProbeFailed` | warn | a probe of a [`Composite`] failed (the others were cancelled) |
//! | `ProbeRetry` | warn | a [`Retry`] attempt failed and will be retried after a delay |
//! | `ProbeRecovered` | info | a [`Retry`] attempt passed after earlier ones failed |
//! | `ProbeGaveUp` | error | a [`Retry`] reached its deadline; its last failure is returned |
//!
//! The failure's own reason is in the `probe_reason` field.
//!
//! # Examples
//!
//! A component that needs a writable data directory with at least 1 MiB free:
//!
//! ```
//! use daemonkit::probe::{Composite, FreeSpace, Probe, ProbeExt, WriteTest};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let data_dir = tempfile::tempdir().unwrap();
//!
//! let probe = Composite::new("storage")
//!     .with(
//!         WriteTest::new(data_dir.path())
//!             .tagged("DataDirNotWritable", "sudo chown app:app /var/lib/app"),
//!     )
//!     .with(FreeSpace::min_bytes(data_dir.path(), 1024 * 1024));
//!
//! assert!(probe.check().await.is_ok());
//! // The write test left nothing behind.
//! assert_eq!(std::fs::read_dir(data_dir.path()).unwrap().count(), 0);
//! # }
//! ```

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use crate::boxed::{BoxError, BoxFuture};
use crate::status::StatusError;

mod composite;
mod free_space;
mod permissions;
mod retry;
mod tagged;
mod write_test;

pub use composite::Composite;
pub use free_space::{FreeSpace, Space};
pub use permissions::{Ownership, OwnershipBuilder, Permissions};
pub use retry::{Retry, RetryPolicy, RetryPolicyBuilder};
pub use tagged::Tagged;
pub use write_test::WriteTest;

// ===== Probe =====

/// An async check of one prerequisite of the host: a directory's permissions, free space,
/// a service being reachable…
///
/// [`check`](Self::check) returns `Ok(())` when the prerequisite holds and a
/// [`ProbeError`] saying what was expected and what was found when it does not. The trait
/// is object-safe, so probes of different types live together as `Arc<dyn Probe>` (the
/// type [`Monitor::prerequisite`](crate::Monitor::prerequisite) returns); `Arc<P>` and
/// `Box<P>` are probes themselves.
///
/// # Cancel safety
///
/// A [`Composite`] or [`Retry`] cancels a check by dropping its future. A probe must
/// leave nothing behind when that happens: put clean-up in the blocking work or in a
/// drop guard, never after an `.await`.
///
/// # Examples
///
/// ```
/// use daemonkit::BoxFuture;
/// use daemonkit::probe::{Probe, ProbeError};
///
/// struct PortConfigured(u16);
///
/// impl Probe for PortConfigured {
///     fn check(&self) -> BoxFuture<'_, Result<(), ProbeError>> {
///         Box::pin(async move {
///             if self.0 == 0 {
///                 return Err(ProbeError::new("PortNotConfigured", "port is 0, expected 1-65535"));
///             }
///             Ok(())
///         })
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let err = PortConfigured(0).check().await.unwrap_err();
/// assert_eq!(err.reason, "PortNotConfigured");
/// # }
/// ```
pub trait Probe: Send + Sync + 'static {
    /// Runs the check; `Ok(())` when the prerequisite holds.
    ///
    /// # Errors
    ///
    /// A [`ProbeError`] naming what failed, what was expected and what was found.
    fn check(&self) -> BoxFuture<'_, Result<(), ProbeError>>;

    /// A short description of what the probe checks, for log records, e.g.
    /// `write test in /var/lib/app`. The default is the type's name.
    fn describe(&self) -> Cow<'_, str> {
        Cow::Borrowed(std::any::type_name::<Self>())
    }
}

impl<P: Probe + ?Sized> Probe for Arc<P> {
    fn check(&self) -> BoxFuture<'_, Result<(), ProbeError>> {
        (**self).check()
    }

    fn describe(&self) -> Cow<'_, str> {
        (**self).describe()
    }
}

impl<P: Probe + ?Sized> Probe for Box<P> {
    fn check(&self) -> BoxFuture<'_, Result<(), ProbeError>> {
        (**self).check()
    }

    fn describe(&self) -> Cow<'_, str> {
        (**self).describe()
    }
}

impl fmt::Debug for dyn Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Probe").field(&self.describe()).finish()
    }
}

// ===== ProbeExt =====

/// Combinators for every [`Probe`]: tag its failure, retry it, share it.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use daemonkit::probe::{Probe, ProbeExt, RetryPolicy, WriteTest};
///
/// let policy = RetryPolicy::builder().timeout(Duration::from_secs(10)).build().unwrap();
/// let probe: Arc<dyn Probe> = WriteTest::new("/var/lib/app")
///     .tagged("DataDirNotWritable", "sudo chown app:app /var/lib/app")
///     .retry(policy)
///     .into_arc();
/// assert_eq!(probe.describe(), "write test in /var/lib/app");
/// ```
pub trait ProbeExt: Probe + Sized {
    /// Wraps the probe so that its failure carries this operator-facing `reason` and
    /// `resolution`; see [`Tagged`].
    fn tagged(self, reason: impl Into<String>, resolution: impl Into<String>) -> Tagged<Self> {
        Tagged::new(self, reason, resolution)
    }

    /// Wraps the probe so that it is retried with back-off until it passes or the
    /// policy's deadline passes; see [`Retry`].
    fn retry(self, policy: RetryPolicy) -> Retry<Self> {
        Retry::new(self, policy)
    }

    /// The probe as an `Arc<dyn Probe>`, the type
    /// [`Monitor::prerequisite`](crate::Monitor::prerequisite) returns.
    fn into_arc(self) -> Arc<dyn Probe> {
        Arc::new(self)
    }
}

impl<P: Probe> ProbeExt for P {}

// ===== probe_fn =====

/// A [`Probe`] built from a description and a closure; see [`probe_fn`].
pub struct FnProbe<F> {
    description: String,
    check: F,
}

impl<F> fmt::Debug for FnProbe<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnProbe")
            .field("description", &self.description)
            .finish()
    }
}

/// Makes a probe from a description (for log records) and a closure that returns the
/// check's future.
///
/// # Examples
///
/// ```
/// use daemonkit::probe::{probe_fn, Probe, ProbeError};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let config = probe_fn("config file present", || async {
///     if std::path::Path::new("/nonexistent/app.toml").exists() {
///         Ok(())
///     } else {
///         Err(ProbeError::new("ConfigMissing", "/nonexistent/app.toml: expected a file, found nothing"))
///     }
/// });
/// assert_eq!(config.check().await.unwrap_err().reason, "ConfigMissing");
/// # }
/// ```
pub fn probe_fn<F, Fut>(description: impl Into<String>, check: F) -> FnProbe<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), ProbeError>> + Send + 'static,
{
    FnProbe {
        description: description.into(),
        check,
    }
}

impl<F, Fut> Probe for FnProbe<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), ProbeError>> + Send + 'static,
{
    fn check(&self) -> BoxFuture<'_, Result<(), ProbeError>> {
        Box::pin((self.check)())
    }

    fn describe(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.description)
    }
}

// ===== ProbeError =====

/// The stable `reason` keys of the built-in probes' failures.
///
/// A [`Tagged`] probe replaces them with a reason of its own; these are what an untagged
/// probe reports.
pub mod reason {
    /// A failure with no more specific reason: what [`ProbeError::failed`](super::ProbeError::failed) uses.
    pub const PROBE_FAILED: &str = "ProbeFailed";
    /// A probe panicked (caught by a [`Composite`](super::Composite) or a built-in probe's
    /// blocking work).
    pub const PROBE_PANICKED: &str = "ProbePanicked";
    /// A [`Retry`](super::Retry) deadline passed during the first attempt, so no failure
    /// was ever seen.
    pub const PROBE_TIMEOUT: &str = "ProbeTimeout";
    /// The path could not be inspected at all: it does not exist, or a parent directory
    /// cannot be searched.
    pub const PATH_INACCESSIBLE: &str = "PathInaccessible";
    /// The path's mode lacks permission bits that are required.
    pub const PERMISSIONS_MISSING: &str = "PermissionsMissing";
    /// The path is owned by another user or group than required.
    pub const OWNERSHIP_MISMATCH: &str = "OwnershipMismatch";
    /// A required owner or group name is not in the user or group database.
    pub const UNKNOWN_OWNER: &str = "UnknownOwner";
    /// A file could not be created, written or removed in the directory.
    pub const NOT_WRITABLE: &str = "NotWritable";
    /// The filesystem has less free space than required.
    pub const INSUFFICIENT_SPACE: &str = "InsufficientSpace";
}

/// Why a probe failed, for an operator: a stable `reason`, a `resolution` hint, a
/// `message` naming what was expected and what was found, and the underlying error.
///
/// `message` is complete by itself — it already contains the text of `source` (for
/// example `… Permission denied (os error 13)`) — because it is what reaches `/status`
/// and `systemctl status`, where no error chain is printed. `source` is kept for programs
/// that want to inspect the cause (for example, downcast it to [`std::io::Error`]).
///
/// `Display` prints `reason: message`, followed by `(resolution: …)` when there is one,
/// as [`StatusError`] does.
///
/// # Examples
///
/// ```
/// use daemonkit::probe::ProbeError;
///
/// let err = ProbeError::new("DataDirNotWritable", "/var/lib/app: cannot create a file")
///     .with_resolution("sudo chown app:app /var/lib/app");
/// assert_eq!(
///     err.to_string(),
///     "DataDirNotWritable: /var/lib/app: cannot create a file \
///      (resolution: sudo chown app:app /var/lib/app)"
/// );
///
/// let status = err.to_status_error();
/// assert_eq!(status.reason, "DataDirNotWritable");
/// assert_eq!(status.resolution, "sudo chown app:app /var/lib/app");
/// ```
#[derive(Debug)]
pub struct ProbeError {
    /// A stable, machine-readable key in UpperCamelCase, e.g. `DataDirNotWritable`; one of
    /// [`reason`] for an untagged built-in probe.
    pub reason: String,
    /// What an operator can do about it, e.g. `sudo chown app:app /var/lib/app`. Empty when
    /// the probe was not [tagged](ProbeExt::tagged).
    pub resolution: String,
    /// What failed, where, what was expected and what was found, for a person.
    pub message: String,
    /// The error that caused the failure, when there was one (an [`std::io::Error`] for the
    /// built-in probes' system calls); `None` when the check ran and found a wrong value.
    pub source: Option<BoxError>,
}

impl ProbeError {
    /// A failure with `reason` and `message`, no resolution and no source.
    pub fn new(reason: impl Into<String>, message: impl Into<String>) -> Self {
        ProbeError {
            reason: reason.into(),
            resolution: String::new(),
            message: message.into(),
            source: None,
        }
    }

    /// A failure with the generic reason [`reason::PROBE_FAILED`].
    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(reason::PROBE_FAILED, message)
    }

    /// Sets the operator-facing resolution hint.
    pub fn with_resolution(mut self, resolution: impl Into<String>) -> Self {
        self.resolution = resolution.into();
        self
    }

    /// Sets the underlying error. Put its text in the message too: see the type's docs.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// The [`StatusError`] reporting this failure on `/status` and `/ready`: the same
    /// reason, message and resolution, with `since` unknown (the reporter fills it in).
    pub fn to_status_error(&self) -> StatusError {
        StatusError::new(self.reason.clone(), self.message.clone())
            .with_resolution(self.resolution.clone())
    }

    /// The error a panicking probe is turned into.
    pub(crate) fn panicked(what: &str, message: &str) -> Self {
        Self::new(
            reason::PROBE_PANICKED,
            format!("{what} panicked: {message}"),
        )
    }
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.message)?;
        if !self.resolution.is_empty() {
            write!(f, " (resolution: {})", self.resolution)?;
        }
        Ok(())
    }
}

impl StdError for ProbeError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

impl From<&ProbeError> for StatusError {
    fn from(err: &ProbeError) -> Self {
        err.to_status_error()
    }
}

impl From<ProbeError> for StatusError {
    fn from(err: ProbeError) -> Self {
        StatusError::new(err.reason, err.message).with_resolution(err.resolution)
    }
}

// ===== the panic barrier =====

/// Runs `probe`'s check behind the kit's panic barrier: a panic in the synchronous part
/// of [`Probe::check`] or in any poll of its future is a failure with reason
/// [`ProbePanicked`](reason::PROBE_PANICKED), never an unwind into the caller. The kit
/// runs every probe it is given this way; use it for probes you run yourself.
///
/// # Examples
///
/// ```
/// use daemonkit::BoxFuture;
/// use daemonkit::probe::{self, Probe, ProbeError};
///
/// struct Broken;
/// impl Probe for Broken {
///     fn check(&self) -> BoxFuture<'_, Result<(), ProbeError>> {
///         panic!("before any future exists")
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let err = probe::check_caught(&Broken).await.unwrap_err();
/// assert_eq!(err.reason, "ProbePanicked");
/// # }
/// ```
pub async fn check_caught(probe: &dyn Probe) -> Result<(), ProbeError> {
    match crate::panic::call_async(|| probe.check()).await {
        Ok(result) => result,
        Err(message) => {
            let describe = crate::panic::call(|| probe.describe().into_owned())
                .unwrap_or_else(|_| "a probe".to_owned());
            Err(ProbeError::panicked(
                &format!("probe {describe:?}"),
                &message,
            ))
        }
    }
}

// ===== helpers for the built-in probes =====

/// Runs blocking file-system or user-database work on tokio's blocking pool (see the
/// module docs for why), turning a panic in it into a [`reason::PROBE_PANICKED`] failure.
///
/// If the caller's future is dropped, the work still runs to its end: each closure must
/// therefore clean up after itself before returning, which the write test does.
async fn blocking<T, F>(what: &str, work: F) -> Result<T, ProbeError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, ProbeError> + Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(join) if join.is_panic() => Err(ProbeError::panicked(
            what,
            &crate::panic::panic_message(join.into_panic().as_ref()),
        )),
        Err(join) => Err(ProbeError::failed(format!(
            "{what} did not run: the runtime is shutting down"
        ))
        .with_source(join)),
    }
}

/// A mode's permission bits as `ls`-style octal, e.g. `0750`.
fn octal(mode: u32) -> String {
    format!("{:04o}", mode & 0o7777)
}

/// A byte count for a person: `1.5 GiB (1610612736 bytes)`.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {} ({bytes} bytes)", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_picks_the_largest_unit() {
        assert_eq!(human_bytes(512), "512 bytes");
        assert_eq!(human_bytes(1536), "1.5 KiB (1536 bytes)");
        assert_eq!(human_bytes(5 << 30), "5.0 GiB (5368709120 bytes)");
        assert!(human_bytes(u64::MAX).starts_with("16.0 EiB"));
    }

    #[test]
    fn octal_keeps_four_digits() {
        assert_eq!(octal(0o40750), "0750");
        assert_eq!(octal(0o1777), "1777");
    }
}
