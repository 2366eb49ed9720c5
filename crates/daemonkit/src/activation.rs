//! activation (systemd)
