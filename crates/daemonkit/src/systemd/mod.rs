//! systemd integration: service notifications, the watchdog keepalive and socket
//! activation.
//!
//! | module | what it gives you |
//! |---|---|
//! | [`notify`] | [`Notifier`]: `READY=1`, `STOPPING=1`, `RELOADING=1`, `STATUS=…` to `NOTIFY_SOCKET` (also abstract `@` addresses) |
//! | [`watchdog`] | [`Watchdog`]: `WATCHDOG=1` every half `WATCHDOG_USEC`, gated by an is-alive check |
//! | [`activation`] | [`ListenFds`]: the listening sockets systemd passed (`LISTEN_FDS`) |
//!
//! None of these needs the control plane: a daemon with its own server (or none) can
//! use them with the `systemd` feature alone. Outside systemd each one is a no-op (no
//! `NOTIFY_SOCKET`, no `WATCHDOG_USEC`, no `LISTEN_FDS`), so a daemon uses them
//! unconditionally.

pub mod activation;
pub mod notify;
pub mod watchdog;

pub use activation::ListenFds;
pub use notify::Notifier;
pub use watchdog::Watchdog;
