//! daemonkit-eventlog
#![deny(missing_docs)]
