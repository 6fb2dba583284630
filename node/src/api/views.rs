//! JSON views of records as the API returns them.
//!
//! Times are ISO-8601 UTC strings with second precision
//! (`"2026-11-29T05:01:02Z"`); the store keeps Unix milliseconds.

use jobmesh_protocol::kv::{Kv, StoreError};
use jobmesh_protocol::record::{KeyGroup, Placement, Posting, PostingStatus, WorkType, Worker};
use jobmesh_protocol::store;
use jobmesh_protocol::{Body, NodeId, Record, RecordId};
use serde::Serialize;
use utoipa::ToSchema;

use super::openapi::types;

/// `YYYY-MM-DDTHH:MM:SSZ` of a Unix time in milliseconds (UTC).
pub fn iso_time(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let day = (secs / 86_400) as i32;
    let s = secs % 86_400;
    format!("{}T{:02}:{:02}:{:02}Z", jobmesh_protocol::time::day_to_iso(day), s / 3600, s / 60 % 60, s % 60)
}

/// A posting with its fill total.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PostingView {
    #[schema(value_type = types::PostingId)]
    pub id: RecordId,
    #[schema(value_type = types::NodeId)]
    pub origin: NodeId,
    pub version: u64,
    pub title: String,
    pub employer: String,
    pub category: String,
    #[schema(value_type = types::WorkType)]
    pub work_type: WorkType,
    pub positions: u32,
    /// Sum of the fills held here.
    pub filled: u32,
    /// `positions - filled`, never below 0.
    pub remaining: u32,
    pub wage: Option<String>,
    pub location: Option<String>,
    pub valid_until: Option<String>,
    #[schema(value_type = types::PostingStatus)]
    pub status: PostingStatus,
    #[schema(value_type = types::NodeId)]
    pub audience: NodeId,
    pub created_at: String,
    pub updated_at: String,
    /// Published by this node: only then may it be changed here.
    pub own: bool,
    /// Past its `valid_until` by this node's corrected time (the
    /// province's clock, whatever this office's clock says). Its origin
    /// closes it at the local midnight of its own corrected time; until that
    /// version arrives here it does not count as open.
    pub expired: bool,
}

impl PostingView {
    /// `now`: the corrected time (`NodeState::corrected_now_ms`).
    pub fn new(me: &NodeId, rec: &Record, p: &Posting, filled: u32, now: u64) -> PostingView {
        PostingView {
            id: rec.id.clone(),
            origin: rec.origin.clone(),
            version: rec.version,
            title: p.title.clone(),
            employer: p.employer.clone(),
            category: p.category.clone(),
            work_type: p.work_type,
            positions: p.positions,
            filled,
            remaining: p.positions.saturating_sub(filled),
            wage: p.wage.clone(),
            location: p.location.clone(),
            valid_until: p.valid_until.clone(),
            status: p.status,
            audience: p.audience.clone(),
            created_at: iso_time(p.created_at),
            updated_at: iso_time(p.updated_at),
            own: &rec.origin == me,
            expired: jobmesh_protocol::rules::is_expired(p, now),
        }
    }

    /// The view of a stored posting record, reading its fill total.
    pub fn load<K: Kv + ?Sized>(
        kv: &K,
        me: &NodeId,
        rec: &Record,
        now: u64,
    ) -> Result<Option<PostingView>, StoreError> {
        let Body::Posting(p) = &rec.body else { return Ok(None) };
        let filled = store::filled(kv, &rec.id)?;
        Ok(Some(PostingView::new(me, rec, p, filled, now)))
    }

    /// Open with positions left, and not past its `valid_until`.
    pub fn is_open(&self) -> bool {
        self.status == PostingStatus::Open && self.remaining > 0 && !self.expired
    }
}

/// A worker's `status` once a placement for it is held here.
pub const PLACED: &str = "placed";
/// A worker's `status` while no placement for it is held here.
pub const SEEKING: &str = "seeking";
/// Every worker `status` (the spec's list).
pub const WORKER_STATUSES: &[&str] = &[PLACED, SEEKING];

/// A worker with its derived status.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WorkerView {
    #[schema(value_type = types::WorkerId)]
    pub id: RecordId,
    #[schema(value_type = types::NodeId)]
    pub origin: NodeId,
    /// The office the worker registered at (the record's origin).
    #[schema(value_type = types::NodeId)]
    pub office: NodeId,
    pub version: u64,
    pub name: String,
    #[schema(value_type = types::KeyGroup)]
    pub key_group: KeyGroup,
    pub phone: Option<String>,
    pub skills: Vec<String>,
    #[schema(value_type = Option<types::WorkType>)]
    pub wanted_work_type: Option<WorkType>,
    pub registered_at: String,
    /// `placed` once a placement for the worker is held here, else `seeking`.
    #[schema(value_type = types::WorkerStatus)]
    pub status: &'static str,
    /// Placements held here for the worker.
    pub placements: u32,
}

impl WorkerView {
    pub fn new(rec: &Record, w: &Worker, placed: u32) -> WorkerView {
        WorkerView {
            id: rec.id.clone(),
            origin: rec.origin.clone(),
            office: rec.origin.clone(),
            version: rec.version,
            name: w.name.clone(),
            key_group: w.key_group,
            phone: w.phone.clone(),
            skills: w.skills.clone(),
            wanted_work_type: w.wanted_work_type,
            registered_at: iso_time(w.registered_at),
            status: if placed > 0 { PLACED } else { SEEKING },
            placements: placed,
        }
    }

    pub fn load<K: Kv + ?Sized>(kv: &K, rec: &Record) -> Result<Option<WorkerView>, StoreError> {
        let Body::Worker(w) = &rec.body else { return Ok(None) };
        let placed = store::placed(kv, &rec.id)?;
        Ok(Some(WorkerView::new(rec, w, placed)))
    }
}

/// A placement.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PlacementView {
    #[schema(value_type = types::PlacementId)]
    pub id: RecordId,
    /// The office that recorded the placement.
    #[schema(value_type = types::NodeId)]
    pub origin: NodeId,
    pub version: u64,
    #[schema(value_type = types::WorkerId)]
    pub worker_id: RecordId,
    #[schema(value_type = types::NodeId)]
    pub worker_office: NodeId,
    #[schema(value_type = types::PostingId)]
    pub posting_id: RecordId,
    #[schema(value_type = types::NodeId)]
    pub posting_origin: NodeId,
    pub category: String,
    #[schema(value_type = types::WorkType)]
    pub work_type: WorkType,
    #[schema(value_type = types::KeyGroup)]
    pub key_group: KeyGroup,
    pub placed_at: String,
}

impl PlacementView {
    pub fn new(rec: &Record, l: &Placement) -> PlacementView {
        PlacementView {
            id: rec.id.clone(),
            origin: rec.origin.clone(),
            version: rec.version,
            worker_id: l.worker_id.clone(),
            worker_office: l.worker_office.clone(),
            posting_id: l.posting_id.clone(),
            posting_origin: l.posting_origin.clone(),
            category: l.category.clone(),
            work_type: l.work_type,
            key_group: l.key_group,
            placed_at: iso_time(l.placed_at),
        }
    }

    pub fn of(rec: &Record) -> Option<PlacementView> {
        match &rec.body {
            Body::Placement(l) => Some(PlacementView::new(rec, l)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_times() {
        assert_eq!(iso_time(0), "1970-01-01T00:00:00Z");
        let day = jobmesh_protocol::time::iso_to_day("2026-11-29").unwrap() as u64;
        assert_eq!(iso_time(day * 86_400_000 + (5 * 3600 + 62) * 1000 + 999), "2026-11-29T05:01:02Z");
    }
}
