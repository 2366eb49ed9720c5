//! Panic-safe helpers for the tasks a monitor spawns.
//!
//! A panic in a bare `tokio::spawn`ed task is silently parked in its `JoinHandle`; if
//! nobody awaits the handle nobody ever hears of it. These helpers put a panic barrier
//! around the task and turn the panic into a `reason`-tagged log record
//! ([`spawn_logged`]) or into the group's error ([`TaskGroup`]).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use futures_util::FutureExt;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::boxed::BoxError;
pub use crate::panic::panic_message;

/// Spawns a best-effort task: if it panics, the panic is caught and logged with reason
/// `TaskPanic` and the task's name, and nothing else is affected.
///
/// Use it for fire-and-forget work whose failure must not take its monitor down.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let handle = daemonkit::spawn_logged("flush-cache", async {
///     panic!("cache file vanished");
/// });
/// // The panic was caught and logged; the handle completes normally.
/// assert!(handle.await.is_ok());
/// # }
/// ```
///
/// # Panics
///
/// Outside a tokio runtime (as [`tokio::spawn`]).
pub fn spawn_logged<F>(name: impl Into<String>, task: F) -> JoinHandle<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let name = name.into();
    tokio::spawn(async move {
        if let Err(payload) = AssertUnwindSafe(task).catch_unwind().await {
            tracing::error!(
                reason = "TaskPanic",
                task = %name,
                panic = %panic_message(payload.as_ref()),
                "task panicked"
            );
        }
    })
}

/// A group of tasks that stand or fall together: the Rust counterpart of Go's errgroup.
///
/// Each child runs behind a panic barrier and receives the group's cancellation token.
/// The first child to fail (an `Err` or a panic) cancels the token, so its siblings
/// stop, and [`wait`](Self::wait) returns that first failure.
///
/// # Examples
///
/// ```
/// use daemonkit::{Error, TaskGroup};
/// use tokio_util::sync::CancellationToken;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let mut group = TaskGroup::new(&CancellationToken::new());
/// group.spawn("reader", |cancel| async move {
///     cancel.cancelled().await; // stops when the writer fails
///     Ok(())
/// });
/// group.spawn("writer", |_| async { Err("disk full".into()) });
///
/// match group.wait().await {
///     Err(Error::TaskFailed { task, .. }) => assert_eq!(task, "writer"),
///     other => panic!("unexpected {other:?}"),
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct TaskGroup {
    token: CancellationToken,
    tasks: JoinSet<()>,
    first: Arc<Mutex<Option<Error>>>,
}

impl TaskGroup {
    /// An empty group whose token is a child of `parent`: cancelling the parent stops
    /// the group; a failure in the group does not cancel the parent.
    pub fn new(parent: &CancellationToken) -> Self {
        TaskGroup {
            token: parent.child_token(),
            tasks: JoinSet::new(),
            first: Arc::default(),
        }
    }

    /// The group's token, cancelled at the first failure.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Spawns a child that receives the group's token.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (as [`tokio::task::JoinSet::spawn`]).
    pub fn spawn<F, Fut>(&mut self, name: impl Into<String>, task: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        let name = name.into();
        let token = self.token.clone();
        let first = self.first.clone();
        // The closure's synchronous part runs behind the barrier too, its panic
        // reported by the spawned task like any other.
        let fut = crate::panic::call(|| task(token.clone()));
        self.tasks.spawn(async move {
            let outcome = match fut {
                Ok(fut) => AssertUnwindSafe(fut)
                    .catch_unwind()
                    .await
                    .map_err(|payload| panic_message(payload.as_ref())),
                Err(message) => Err(message),
            };
            let failure = match outcome {
                Ok(Ok(())) => return,
                Ok(Err(source)) => Error::TaskFailed { task: name, source },
                Err(message) => {
                    tracing::error!(reason = "TaskPanic", task = %name, panic = %message, "task panicked");
                    Error::TaskPanicked { task: name, message }
                }
            };
            // A poisoned lock cannot happen here: nothing panics while holding it.
            let mut slot = first.lock().unwrap_or_else(|p| p.into_inner());
            if slot.is_none() {
                *slot = Some(failure);
            }
            drop(slot);
            token.cancel();
        });
    }

    /// Waits for every child to finish and returns the first failure, if any.
    ///
    /// # Errors
    ///
    /// [`Error::TaskFailed`] or [`Error::TaskPanicked`] for the first child that failed.
    pub async fn wait(mut self) -> Result<(), Error> {
        while self.tasks.join_next().await.is_some() {}
        let first = self.first.lock().unwrap_or_else(|p| p.into_inner()).take();
        match first {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }
}
