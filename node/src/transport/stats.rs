//! Link-level counters of one node's transport, for metrics and status.
//!
//! The runtime creates one [`TransportStats`] per node (no globals: several
//! nodes may run in one process) and hands an `Arc` of it to the transport
//! tasks, which bump it, and to the API, which reads [`TransportStats::snapshot`].
//! Replication counters (batches, records, acks) are the engine's
//! `LinkStats`; these count what only the transport sees.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

/// Counters of one node's QUIC links. All methods but the parent's last
/// error are lock-free.
#[derive(Debug, Default)]
pub struct TransportStats {
    connects: AtomicU64,
    disconnects: AtomicU64,
    links_up: AtomicU64,
    dial_attempts: AtomicU64,
    connect_failures: AtomicU64,
    handshake_failures: AtomicU64,
    protocol_errors: AtomicU64,
    links_refused: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    frames_sent: AtomicU64,
    frames_received: AtomicU64,
    /// Why the last dial to the parent failed (DNS, timeout, handshake);
    /// cleared when a link comes up.
    parent_error: Mutex<Option<String>>,
}

/// The counters' snapshot type lives with the metrics that render it, so
/// that the metrics module depends on nothing else in the node.
pub use crate::metrics::TransportSnapshot;

impl TransportStats {
    pub fn new() -> TransportStats {
        TransportStats::default()
    }

    /// Read every counter (each one atomically; not one consistent cut).
    pub fn snapshot(&self) -> TransportSnapshot {
        TransportSnapshot {
            connects: self.connects.load(Relaxed),
            disconnects: self.disconnects.load(Relaxed),
            links_up: self.links_up.load(Relaxed),
            dial_attempts: self.dial_attempts.load(Relaxed),
            connect_failures: self.connect_failures.load(Relaxed),
            handshake_failures: self.handshake_failures.load(Relaxed),
            protocol_errors: self.protocol_errors.load(Relaxed),
            links_refused: self.links_refused.load(Relaxed),
            bytes_sent: self.bytes_sent.load(Relaxed),
            bytes_received: self.bytes_received.load(Relaxed),
            frames_sent: self.frames_sent.load(Relaxed),
            frames_received: self.frames_received.load(Relaxed),
        }
    }

    /// Why the parent cannot be reached now, if it cannot.
    pub fn parent_error(&self) -> Option<String> {
        self.parent_error.lock().map(|e| e.clone()).unwrap_or(None)
    }

    pub(crate) fn set_parent_error(&self, e: Option<String>) {
        if let Ok(mut held) = self.parent_error.lock() {
            *held = e;
        }
    }

    pub(crate) fn link_up(&self) {
        self.connects.fetch_add(1, Relaxed);
        self.links_up.fetch_add(1, Relaxed);
    }

    pub(crate) fn link_down(&self) {
        self.disconnects.fetch_add(1, Relaxed);
        self.links_up.fetch_sub(1, Relaxed);
    }

    pub(crate) fn dial_attempt(&self) {
        self.dial_attempts.fetch_add(1, Relaxed);
    }

    pub(crate) fn connect_failure(&self) {
        self.connect_failures.fetch_add(1, Relaxed);
    }

    pub(crate) fn handshake_failure(&self) {
        self.handshake_failures.fetch_add(1, Relaxed);
    }

    pub(crate) fn protocol_error(&self) {
        self.protocol_errors.fetch_add(1, Relaxed);
    }

    pub(crate) fn link_refused(&self) {
        self.links_refused.fetch_add(1, Relaxed);
    }

    pub(crate) fn sent(&self, frames: u64, bytes: u64) {
        self.frames_sent.fetch_add(frames, Relaxed);
        self.bytes_sent.fetch_add(bytes, Relaxed);
    }

    pub(crate) fn received(&self, bytes: u64) {
        self.frames_received.fetch_add(1, Relaxed);
        self.bytes_received.fetch_add(bytes, Relaxed);
    }
}
