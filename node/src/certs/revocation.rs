//! Revoked certificates: the set of serials every handshake refuses.

use std::collections::HashSet;
use std::sync::RwLock;

/// Serials (lowercase hex) refused at every handshake and on every live
/// link. Shared by all TLS configs a node builds.
#[derive(Debug, Default)]
pub struct RevokedSet {
    serials: RwLock<HashSet<String>>,
}

impl RevokedSet {
    /// True if `serial` is revoked.
    pub fn contains(&self, serial: &str) -> bool {
        !serial.is_empty() && self.serials.read().unwrap_or_else(|p| p.into_inner()).contains(serial)
    }

    /// Replace the whole set (a newer list supersedes the older one).
    pub fn replace(&self, serials: HashSet<String>) {
        *self.serials.write().unwrap_or_else(|p| p.into_inner()) = serials;
    }

    /// How many serials are revoked.
    pub fn len(&self) -> usize {
        self.serials.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// True when nothing is revoked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
