//! Conventional locations for a daemon's runtime files.

use std::path::PathBuf;

/// The conventional control-socket path for an application called `app`:
/// `$XDG_RUNTIME_DIR/<app>/control.sock` when `XDG_RUNTIME_DIR` is set (systemd's
/// `RuntimeDirectory=` and user sessions), else `<temp dir>/<app>-<uid>/control.sock`.
///
/// The user id in the fallback keeps two users of one host from sharing (or hijacking)
/// each other's directory in a world-writable temp dir. `daemonctl` uses the same rule,
/// so both agree without configuration.
///
/// # Examples
///
/// ```
/// let path = daemonkit::paths::default_socket_path("demo");
/// assert!(path.ends_with("control.sock"));
/// ```
pub fn default_socket_path(app: &str) -> PathBuf {
    runtime_dir(app).join("control.sock")
}

/// The directory that [`default_socket_path`] puts the socket in:
/// `$XDG_RUNTIME_DIR/<app>`, else [`user_temp_dir`].
pub fn runtime_dir(app: &str) -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join(app),
        _ => user_temp_dir(app),
    }
}

/// `<temp dir>/<app>-<uid>`: a per-user directory for `app` under the system temp dir.
pub fn user_temp_dir(app: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{app}-{}", rustix::process::getuid().as_raw()))
}
