//! daemonkit-filepruner
#![deny(missing_docs)]
