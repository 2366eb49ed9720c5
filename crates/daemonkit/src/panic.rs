//! The panic barrier: every call the kit makes into user code goes through one of these,
//! so a panic there becomes a reported failure of that monitor, probe or request, never
//! the silent death of a kit task.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};

use futures_util::FutureExt;

/// The text of a panic payload: the `&str` or `String` passed to `panic!`, or a
/// placeholder for other payload types.
///
/// # Examples
///
/// ```
/// let payload = std::panic::catch_unwind(|| panic!("disk {} vanished", 3)).unwrap_err();
/// assert_eq!(daemonkit::task::panic_message(payload.as_ref()), "disk 3 vanished");
///
/// let payload = std::panic::catch_unwind(|| std::panic::panic_any(42_u8)).unwrap_err();
/// assert_eq!(daemonkit::task::panic_message(payload.as_ref()), "non-string panic payload");
/// ```
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// Calls `f`, turning a panic into `Err(message)`.
///
/// `AssertUnwindSafe` is sound here because the caller discards whatever `f` was
/// mutating when it panicked: the kit only ever reads its own state after a caught
/// panic, never the user value that panicked.
pub(crate) fn call<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| panic_message(payload.as_ref()))
}

/// Makes a future with `make` and awaits it, turning a panic in either step (the
/// synchronous part that builds the future, or any poll) into `Err(message)`.
pub(crate) async fn call_async<T, Fut>(make: impl FnOnce() -> Fut) -> Result<T, String>
where
    Fut: Future<Output = T>,
{
    catch_async(call(make)?).await
}

/// Awaits `fut`, turning a panic in any poll into `Err(message)`.
pub(crate) fn catch_async<T>(
    fut: impl Future<Output = T>,
) -> impl Future<Output = Result<T, String>> {
    AssertUnwindSafe(fut)
        .catch_unwind()
        .map(|result| result.map_err(|payload| panic_message(payload.as_ref())))
}
