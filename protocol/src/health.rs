//! An office's health report: what it says about itself besides its
//! figures, so that the province sees, for every office and not only its
//! own links, whose certificate runs out, whose clock is wrong and which
//! release it runs.
//!
//! One record per office (`{origin}_h`), replaced whole by its origin and
//! routed like a summary: up only, to every ancestor (protocol 2, so it
//! waits below a 0.1.0 office like matters do). The origin publishes a new
//! version only when a fact changes (a renewed certificate, an upgrade, a
//! clock offset that moved by more than [`OFFSET_STEP_MS`]), never on a
//! timer: freshness is the summary's business, so health adds a handful of
//! versions per office per year to the journal.
//!
//! The struct is shipped as it is here and never gains a field
//! (ARCHITECTURE.md, "Compatibility"); facts a later release adds go into
//! `counters` under a new name, which every release carries and shows.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Most named counters in one report.
pub const MAX_COUNTERS: usize = 64;
/// Longest counter name, software string or serial, in bytes.
pub const MAX_FACT: usize = 128;
/// A clock offset that moved by less than this since the last report is
/// not worth a new version (measurement noise on a lossy link is tens of
/// milliseconds; a wrong clock is minutes).
pub const OFFSET_STEP_MS: i64 = 5_000;
/// Certificates that expire within this many days are listed as expiring.
pub const EXPIRY_WARN_DAYS: u64 = 30;

/// What one office reports about itself (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// When the office made this report, by its own clock (Unix ms).
    pub generated_at: u64,
    /// The office's release, e.g. `0.2.0`.
    pub software: String,
    /// Serial of the certificate the office presents, lowercase hex.
    pub cert_serial: Option<String>,
    /// Its not-after, Unix seconds.
    pub cert_not_after: Option<i64>,
    /// The office's clock minus its parent's, in milliseconds, as measured
    /// on its link up; `None` until measured (or at the root).
    pub clock_offset_ms: Option<i64>,
    /// Named counters a later release adds without changing this struct.
    pub counters: BTreeMap<String, u64>,
}

/// The facts a node hands its engine; the engine stamps and publishes them
/// as a [`Health`] when they differ from what it last published.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthFacts {
    pub software: String,
    pub cert_serial: Option<String>,
    pub cert_not_after: Option<i64>,
    pub clock_offset_ms: Option<i64>,
    pub counters: BTreeMap<String, u64>,
}

impl HealthFacts {
    /// The report to publish at `now`.
    pub fn stamp(&self, now: u64) -> Health {
        Health {
            generated_at: now,
            software: self.software.clone(),
            cert_serial: self.cert_serial.clone(),
            cert_not_after: self.cert_not_after,
            clock_offset_ms: self.clock_offset_ms,
            counters: self.counters.clone(),
        }
    }

    /// Does `held` (the last published report) still say what these facts
    /// say? A clock offset within [`OFFSET_STEP_MS`] of the held one counts
    /// as the same, so noise never makes versions.
    pub fn same_as(&self, held: &Health) -> bool {
        let offset_same = match (self.clock_offset_ms, held.clock_offset_ms) {
            (Some(a), Some(b)) => (a - b).abs() < OFFSET_STEP_MS,
            (a, b) => a == b,
        };
        offset_same
            && self.software == held.software
            && self.cert_serial == held.cert_serial
            && self.cert_not_after == held.cert_not_after
            && self.counters == held.counters
    }
}

impl Health {
    /// Bounds a receiver checks: a peer's report can be shown and stored
    /// without growing without limit.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.software.len() > MAX_FACT {
            return Err(("software", format!("longer than {MAX_FACT} bytes")));
        }
        if let Some(s) = &self.cert_serial {
            if s.is_empty() || s.len() > MAX_FACT || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(("cert_serial", format!("must be 1..={MAX_FACT} hex digits")));
            }
        }
        if self.counters.len() > MAX_COUNTERS {
            return Err(("counters", format!("more than {MAX_COUNTERS}")));
        }
        if let Some(name) = self
            .counters
            .keys()
            .find(|k| k.is_empty() || k.len() > MAX_FACT || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        {
            return Err(("counters", format!("name {name:?} must be 1..={MAX_FACT} of a-z, 0-9, _")));
        }
        Ok(())
    }

    /// The certificate's standing at `now_s` (Unix seconds), `revoked`
    /// saying whether this node's revocation list names the serial.
    pub fn cert_state(&self, now_s: i64, revoked: bool) -> CertState {
        if revoked {
            return CertState::Revoked;
        }
        match self.cert_not_after {
            None => CertState::Unknown,
            Some(t) if t <= now_s => CertState::Expired,
            Some(t) if t - now_s <= (EXPIRY_WARN_DAYS * 86_400) as i64 => CertState::Expiring,
            Some(_) => CertState::Valid,
        }
    }
}

/// How an office's certificate stands, as the dashboard lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CertState {
    Revoked,
    Expired,
    Expiring,
    Valid,
    Unknown,
}

impl CertState {
    /// Listed on the dashboard (revoked, expired or expiring).
    pub fn needs_attention(self) -> bool {
        matches!(self, CertState::Revoked | CertState::Expired | CertState::Expiring)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> HealthFacts {
        HealthFacts {
            software: "0.2.0".into(),
            cert_serial: Some("0a1b".into()),
            cert_not_after: Some(2_000_000_000),
            clock_offset_ms: Some(600_000),
            counters: BTreeMap::new(),
        }
    }

    #[test]
    fn clock_noise_makes_no_version_but_a_changed_fact_does() {
        let held = facts().stamp(1);
        let mut f = facts();
        f.clock_offset_ms = Some(600_000 + OFFSET_STEP_MS - 1);
        assert!(f.same_as(&held));
        f.clock_offset_ms = Some(600_000 + OFFSET_STEP_MS);
        assert!(!f.same_as(&held));
        let mut f = facts();
        f.cert_serial = Some("0a1c".into());
        assert!(!f.same_as(&held), "a renewed certificate is news");
        let mut f = facts();
        f.clock_offset_ms = None;
        assert!(!f.same_as(&held));
    }

    #[test]
    fn a_peers_report_is_bounded() {
        let mut h = facts().stamp(1);
        assert!(h.validate().is_ok());
        h.cert_serial = Some("not hex".into());
        assert_eq!(h.validate().unwrap_err().0, "cert_serial");
        h.cert_serial = None;
        h.counters.insert("audit reads".into(), 1);
        assert_eq!(h.validate().unwrap_err().0, "counters");
        h.counters.clear();
        for i in 0..=MAX_COUNTERS {
            h.counters.insert(format!("c{i}"), 1);
        }
        assert_eq!(h.validate().unwrap_err().0, "counters");
        h.counters.clear();
        h.software = "x".repeat(MAX_FACT + 1);
        assert_eq!(h.validate().unwrap_err().0, "software");
    }

    #[test]
    fn certificate_standing() {
        let h = facts().stamp(1);
        let t = 2_000_000_000;
        assert_eq!(h.cert_state(t - 31 * 86_400, false), CertState::Valid);
        assert_eq!(h.cert_state(t - 29 * 86_400, false), CertState::Expiring);
        assert_eq!(h.cert_state(t, false), CertState::Expired);
        assert_eq!(h.cert_state(t - 400 * 86_400, true), CertState::Revoked);
        let mut h = h;
        h.cert_not_after = None;
        assert_eq!(h.cert_state(t, false), CertState::Unknown);
        assert!(!CertState::Unknown.needs_attention() && CertState::Expiring.needs_attention());
    }
}
