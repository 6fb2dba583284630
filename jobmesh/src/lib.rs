//! The `jobmesh` binary's command line, a library so that tests can parse
//! the command lines that deploy files (the systemd unit) contain.

pub mod cli;
pub mod ops;
