//! notify (systemd)
