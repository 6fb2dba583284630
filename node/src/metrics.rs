//! Prometheus metrics of the node (placeholder set; the API module renders them).

use std::time::Duration;

/// The node's metric registry.
#[derive(Default)]
pub struct Metrics {}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics {}
    }

    /// A batch from a peer was refused for `reason`.
    pub fn refused(&self, _reason: &'static str) {}

    /// A store flush completed.
    pub fn flush_done(&self, _took: Duration) {}
}
