//! watchdog (systemd)
