//! Offices' health reports as `/v1/summary` shows them: per row (release,
//! certificate, clock offset) and the list the province's dashboard shows
//! of certificates that need attention (revoked, expired, expiring within
//! [`jobmesh_protocol::health::EXPIRY_WARN_DAYS`] days) anywhere in the subtree.
//!
//! "Revoked" is this node's judgement: its revocation list names the
//! office's serial. The list travels down from the root, so the root and
//! every office below it that holds the list agree.

use jobmesh_protocol::health::{CertState, Health};
use jobmesh_protocol::NodeId;
use serde::Serialize;
use utoipa::ToSchema;

use super::Api;
use crate::certs::iso_seconds;

/// One office's health report, as held here.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HealthRow {
    /// The office's release.
    pub software: String,
    pub cert_serial: Option<String>,
    /// The certificate's not-after (ISO-8601 UTC).
    pub cert_not_after: Option<String>,
    /// Whole days to the not-after (negative once expired).
    pub cert_days_left: Option<i64>,
    /// `revoked`, `expired`, `expiring` (within 30 days), `valid` or `unknown`.
    #[schema(value_type = String)]
    pub cert_state: CertState,
    /// The office's clock minus its parent's, in seconds, as measured on
    /// its link up; `null` until measured.
    pub clock_offset_s: Option<f64>,
    /// When the office made the report (ISO-8601 UTC, by its own clock).
    pub reported_at: String,
}

/// A certificate the dashboard lists.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CertificateRow {
    #[schema(value_type = super::openapi::types::NodeId)]
    pub node_id: NodeId,
    pub name: Option<String>,
    pub name_zh: Option<String>,
    pub serial: Option<String>,
    pub not_after: Option<String>,
    pub days_left: Option<i64>,
    /// `revoked`, `expired` or `expiring`.
    #[schema(value_type = String)]
    pub state: CertState,
}

impl Api {
    /// Is `serial` on this node's revocation list?
    fn serial_revoked(&self, serial: Option<&str>) -> bool {
        match (serial, &self.ctx.certs) {
            (Some(s), Some(c)) => c.revoked().contains(s),
            _ => false,
        }
    }

    /// The row view of `h` at `now_ms`.
    pub fn health_row(&self, h: &Health, now_ms: u64) -> HealthRow {
        let now_s = (now_ms / 1000) as i64;
        HealthRow {
            software: h.software.clone(),
            cert_serial: h.cert_serial.clone(),
            cert_not_after: h.cert_not_after.map(iso_seconds),
            cert_days_left: h.cert_not_after.map(|t| (t - now_s).div_euclid(86_400)),
            cert_state: h.cert_state(now_s, self.serial_revoked(h.cert_serial.as_deref())),
            clock_offset_s: h.clock_offset_ms.map(|ms| ms as f64 / 1000.0),
            reported_at: super::views::iso_time(h.generated_at),
        }
    }

    /// Certificates needing attention among `reports`, the worst first
    /// (revoked, expired, then expiring, soonest first).
    pub fn certificates(&self, reports: &[(NodeId, Health)], now_ms: u64) -> Vec<CertificateRow> {
        let mut rows: Vec<CertificateRow> = reports
            .iter()
            .filter_map(|(id, h)| {
                let row = self.health_row(h, now_ms);
                row.cert_state.needs_attention().then(|| {
                    let office = self.office(id);
                    CertificateRow {
                        node_id: id.clone(),
                        name: office.map(|o| o.name.clone()).filter(|s| !s.is_empty()),
                        name_zh: office.map(|o| o.name_zh.clone()).filter(|s| !s.is_empty()),
                        serial: row.cert_serial,
                        not_after: row.cert_not_after,
                        days_left: row.cert_days_left,
                        state: row.cert_state,
                    }
                })
            })
            .collect();
        rows.sort_by(|a, b| (a.state, a.days_left, &a.node_id).cmp(&(b.state, b.days_left, &b.node_id)));
        rows
    }
}
