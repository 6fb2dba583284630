//! Matter figures in `GET /v1/summary`: each office's latest matters
//! summary as held here, summed over subtrees the way the other figures
//! are. Kept apart from `summary.rs` because matters summaries are their own
//! record kind (protocol 2): an office on 0.1.0 has none, and a subtree
//! below an office on 0.1.0 has not sent them up yet (they wait there).

use std::collections::BTreeMap;

use jobmesh_protocol::figures::DAILY_WINDOW;
use jobmesh_protocol::kv::{Kv, StoreError};
use jobmesh_protocol::matters::{MatterCounts, MatterFigures};
use jobmesh_protocol::store;
use jobmesh_protocol::time::{day_to_iso, local_day};
use jobmesh_protocol::{Body, Kind, NodeId};
use serde::Serialize;
use utoipa::ToSchema;

use super::summary::MAX_SUMMARIES;

/// One office's matter figures, or a subtree's, as a row shows them.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct MatterTotals {
    pub opened: i64,
    pub resolved: i64,
    pub open_now: i64,
    /// Median whole days from opening to resolving; `null` with none resolved.
    pub median_days_to_resolve: Option<f64>,
}

impl MatterTotals {
    pub fn of(f: &MatterFigures) -> MatterTotals {
        let MatterCounts { opened, resolved, open_now } = f.totals;
        MatterTotals { opened, resolved, open_now, median_days_to_resolve: f.median_days_to_resolve() }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MatterDay {
    pub day: String,
    pub opened: i64,
    pub resolved: i64,
}

/// The subtree's matter figures with breakdowns and the 30-day trend.
#[derive(Debug, Serialize, ToSchema)]
pub struct MattersView {
    #[serde(flatten)]
    pub totals: MatterTotals,
    #[schema(value_type = BTreeMap<String, super::openapi::types::figures::MatterCounts>)]
    pub by_category: BTreeMap<String, MatterCounts>,
    #[schema(value_type = BTreeMap<String, super::openapi::types::figures::MatterCounts>)]
    pub by_channel: BTreeMap<String, MatterCounts>,
    #[schema(value_type = BTreeMap<String, super::openapi::types::figures::MatterCounts>)]
    pub by_key_group: BTreeMap<String, MatterCounts>,
    /// The last 30 local days, oldest first.
    pub daily: Vec<MatterDay>,
    /// Offices in the subtree with a matters summary held here.
    pub offices_reporting: usize,
}

/// The matters summaries of subtree(`root`) held here, by office.
pub fn collect<K: Kv + ?Sized>(kv: &K, root: &NodeId) -> Result<BTreeMap<NodeId, MatterFigures>, StoreError> {
    let mut out = BTreeMap::new();
    for sr in store::list_records(kv, Kind::MattersSummary, &root.dotted(), None, MAX_SUMMARIES)? {
        let Body::MattersSummary(s) = sr.record.body else { continue };
        if sr.record.origin.is_in_subtree_of(root) {
            out.insert(sr.record.origin, s.figures);
        }
    }
    Ok(out)
}

/// The sum over subtree(`of`) of the offices' figures.
pub fn subtree(all: &BTreeMap<NodeId, MatterFigures>, of: &NodeId) -> MatterFigures {
    let mut f = MatterFigures::default();
    for (id, m) in all.range(of.clone()..) {
        if !id.as_str().starts_with(of.as_str()) {
            break;
        }
        if id.is_in_subtree_of(of) {
            f.add(m, 1);
        }
    }
    f
}

/// The subtree block of `/v1/summary`.
pub fn view(all: &BTreeMap<NodeId, MatterFigures>, root: &NodeId, now: u64) -> MattersView {
    let f = subtree(all, root);
    let today = local_day(now);
    let daily = (today - DAILY_WINDOW + 1..=today)
        .map(|d| {
            let v = f.daily.get(&d).copied().unwrap_or_default();
            MatterDay { day: day_to_iso(d), opened: v.opened, resolved: v.resolved }
        })
        .collect();
    MattersView {
        totals: MatterTotals::of(&f),
        by_category: f.by_category,
        by_channel: f.by_channel,
        by_key_group: f.by_key_group,
        daily,
        offices_reporting: all.keys().filter(|id| id.is_in_subtree_of(root)).count(),
    }
}
