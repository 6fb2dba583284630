//! Operator commands that are clients of a running node's HTTP API.

pub mod backup;
pub mod status;
