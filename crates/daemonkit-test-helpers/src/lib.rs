//! Child processes that daemonkit's integration tests spawn, one binary each in
//! `src/bin/`: `sd_notify_child` (sd_notify and the watchdog), `sd_activation_echo`
//! (socket activation), `sd_daemon_child` (the `Daemon` runner).
//!
//! They live in this unpublished crate rather than in daemonkit's `examples/`, which
//! hold what a user would run. daemonkit's `tests/common::helper(NAME)` builds them on
//! first use (`cargo build -p daemonkit-test-helpers --bins`, same profile and target
//! directory as the running test) and returns the binary's path.
#![forbid(unsafe_code)]
