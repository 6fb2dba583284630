//! `GET /v1/summary`: the figures of this node's subtree, one row per office.
//!
//! Summaries flow up, so a node holds the latest summary of every office in
//! its subtree that could reach it. One prefix scan reads them all (the
//! summary ids of subtree(N) all start with N's dotted id); rows for offices
//! that the topology lists but that never reported are added as `missing`,
//! with `totals: null` rather than zeros. Subtree sums walk each row's
//! ancestors (rows × depth additions), so the root answers for ~2,750
//! offices with one scan and no per-row reads.
//!
//! `in_flight` (what an office says it holds of its own records minus what
//! this node holds of them) needs a key scan per office and kind, so it is
//! computed only when asked with `?in_flight=true`, and only for the rows
//! returned; otherwise it is `null`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use jobmesh_protocol::figures::{Breakdown, Figures, GroupFigures, Totals, DAILY_WINDOW};
use jobmesh_protocol::kv::{Kv, StoreError};
use jobmesh_protocol::store::{self, prefix_end, record_key};
use jobmesh_protocol::time::{day_to_iso, local_day};
use jobmesh_protocol::{Body, Kind, NodeId, RecordId};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult};
use super::input::QueryParams;
use super::views::iso_time;
use super::{blocking, Api};
use crate::state::now_ms;

/// Most summary records read for one answer (the province target is ~2,750).
pub const MAX_SUMMARIES: usize = 100_000;
/// Keys read per step when counting records for `in_flight`.
const COUNT_CHUNK: usize = 4_096;

/// One office's latest summary as held here, or its absence.
#[derive(Debug, Clone)]
pub struct Row {
    pub node_id: NodeId,
    /// `(generated_at, figures)`; `None` for an office that never reported.
    pub summary: Option<(u64, Figures)>,
    pub subtree: Totals,
    pub age_s: Option<u64>,
    pub link_down: bool,
    pub stale: bool,
}

/// Every row of a subtree, in tree order (parents before their children).
pub struct Collected {
    pub root: NodeId,
    pub rows: Vec<Row>,
    pub now: u64,
}

/// Tree order: compare segment by segment, so `gz/a` and all below it come
/// before `gz/a-b`.
fn tree_order(a: &NodeId, b: &NodeId) -> std::cmp::Ordering {
    a.as_str().split('/').cmp(b.as_str().split('/'))
}

impl Api {
    /// Read the summaries of subtree(`root`) and build its rows (blocking).
    pub fn collect(&self, root: &NodeId) -> Result<Collected, StoreError> {
        let me = &self.state.me;
        let now = now_ms();
        let mut held: BTreeMap<NodeId, Option<(u64, Figures)>> = BTreeMap::new();
        for sr in store::list_records(&self.state.kv, Kind::Summary, &root.dotted(), None, MAX_SUMMARIES)? {
            let Body::Summary(s) = sr.record.body else { continue };
            if sr.record.origin.is_in_subtree_of(root) {
                held.insert(sr.record.origin, Some((s.generated_at, s.figures)));
            }
        }
        if let Some(topo) = &self.ctx.topology {
            for o in &topo.offices {
                if o.id.is_in_subtree_of(root) {
                    held.entry(o.id.clone()).or_insert(None);
                }
            }
        }
        // An office between `root` and a reporting office exists (the
        // summary came through it) even if it never reported itself.
        let reported: Vec<NodeId> = held.keys().cloned().collect();
        for id in reported {
            let mut cur = id.parent();
            while let Some(p) = cur {
                if !p.is_in_subtree_of(root) {
                    break;
                }
                held.entry(p.clone()).or_insert(None);
                cur = p.parent();
            }
        }
        held.entry(root.clone()).or_insert(None);

        let mut ids: Vec<NodeId> = held.keys().cloned().collect();
        ids.sort_by(tree_order);
        let index: HashMap<NodeId, usize> = ids.iter().cloned().enumerate().map(|(i, id)| (id, i)).collect();
        let mut subtree = vec![Totals::default(); ids.len()];
        for id in &ids {
            let Some(Some((_, f))) = held.get(id) else { continue };
            let mut cur = Some(id.clone());
            while let Some(n) = cur {
                if !n.is_in_subtree_of(root) {
                    break;
                }
                if let Some(&i) = index.get(&n) {
                    subtree[i].add(&f.totals, 1);
                }
                cur = n.parent();
            }
        }
        let mut child_up: HashMap<NodeId, bool> = HashMap::new();
        let stale_after_s = self.ctx.stale_after_s;
        let rows = ids
            .into_iter()
            .zip(subtree)
            .map(|(id, subtree)| {
                let summary = held.remove(&id).flatten();
                let age_s = summary.as_ref().map(|(at, _)| now.saturating_sub(*at) / 1000);
                let link_down = match me.child_toward(&id) {
                    Some(child) => !*child_up.entry(child.clone()).or_insert_with(|| self.state.connected(&child)),
                    None => false,
                };
                let stale = link_down || age_s.is_none_or(|a| a > stale_after_s);
                Row { node_id: id, summary, subtree, age_s, link_down, stale }
            })
            .collect();
        Ok(Collected { root: root.clone(), rows, now })
    }

    /// The tier name of an office: the topology's, else by depth.
    pub fn tier(&self, id: &NodeId) -> String {
        if let Some(o) = self.office(id) {
            return o.tier.clone();
        }
        match id.depth() {
            1 => "province".into(),
            2 => "city".into(),
            3 => "county".into(),
            4 => "station".into(),
            d => format!("level{d}"),
        }
    }
}

/// Records by kind, as counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct InFlight {
    pub postings: i64,
    pub workers: i64,
    pub placements: i64,
    pub fills: i64,
}

/// Count keys of `kind` whose id starts with `id_prefix`, up to `cap`.
pub fn count_records<K: Kv + ?Sized>(kv: &K, kind: Kind, id_prefix: &str, cap: u64) -> Result<u64, StoreError> {
    let prefix = record_key(kind, id_prefix);
    let end = prefix_end(&prefix);
    let mut from = prefix;
    let mut n = 0u64;
    while n < cap {
        let chunk = COUNT_CHUNK.min((cap - n).min(usize::MAX as u64) as usize);
        let batch = kv.scan(&from, &end, chunk)?;
        n += batch.len() as u64;
        match batch.last() {
            Some((k, _)) if batch.len() == chunk => {
                from = k.clone();
                from.push(0);
            }
            _ => break,
        }
    }
    Ok(n)
}

fn in_flight<K: Kv + ?Sized>(kv: &K, office: &NodeId, f: &Figures) -> Result<InFlight, StoreError> {
    let missing = |kind: Kind, holds: i64| -> Result<i64, StoreError> {
        if holds <= 0 {
            return Ok(0);
        }
        let here = count_records(kv, kind, &RecordId::origin_prefix(office, kind), holds as u64)?;
        Ok((holds - here as i64).max(0))
    };
    Ok(InFlight {
        postings: missing(Kind::Posting, f.holds.postings)?,
        workers: missing(Kind::Worker, f.holds.workers)?,
        placements: missing(Kind::Placement, f.holds.placements)?,
        fills: missing(Kind::Fill, f.holds.fills)?,
    })
}

/// One row of `nodes`.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeRow {
    #[schema(value_type = super::openapi::types::NodeId)]
    pub node_id: NodeId,
    #[schema(value_type = Option<super::openapi::types::NodeId>)]
    pub parent: Option<NodeId>,
    /// Segments in the id: 1 for the province.
    pub depth: usize,
    pub tier: String,
    pub name: Option<String>,
    pub name_zh: Option<String>,
    /// When the office made the summary held here (ISO-8601 UTC).
    pub reported_at: Option<String>,
    pub age_s: Option<u64>,
    /// Older than `stale_after_s`, or the link toward it is down, or missing.
    pub stale: bool,
    /// The office never reported (it is listed by the topology).
    pub missing: bool,
    /// The link from this node toward the office is down.
    pub link_down: bool,
    /// The office's own figures; `null` when missing.
    #[schema(value_type = Option<super::openapi::types::figures::Totals>)]
    pub totals: Option<Totals>,
    /// The sum over the office's subtree of reported figures.
    #[schema(value_type = super::openapi::types::figures::Totals)]
    pub subtree: Totals,
    /// Only with `?in_flight=true`: records the office holds of its own that
    /// have not reached this node yet.
    pub in_flight: Option<InFlight>,
    /// The office's own matter figures; `null` if none are held here.
    pub matters: Option<super::matters_figures::MatterTotals>,
    /// Matter figures summed over the office's subtree (as held here).
    pub matters_subtree: super::matters_figures::MatterTotals,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Reporting {
    /// Offices with a summary held here.
    pub offices: usize,
    /// Offices known to exist: the topology's subtree, plus any office that
    /// reported or relays a report.
    pub expected: usize,
    pub stale: usize,
    pub missing: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DayRow {
    pub day: String,
    pub postings_published: i64,
    pub placements: i64,
}

/// The `GET /v1/summary` body.
#[derive(Debug, Serialize, ToSchema)]
pub struct SummaryView {
    #[schema(value_type = super::openapi::types::NodeId)]
    pub node_id: NodeId,
    /// The office whose subtree this is (`?node=`, default this node).
    #[schema(value_type = super::openapi::types::NodeId)]
    pub root: NodeId,
    pub generated_at: String,
    pub stale_after_s: u64,
    #[schema(value_type = super::openapi::types::figures::Totals)]
    pub subtree: Totals,
    pub reporting: Reporting,
    #[schema(value_type = BTreeMap<String, super::openapi::types::figures::Breakdown>)]
    pub by_category: BTreeMap<String, Breakdown>,
    #[schema(value_type = BTreeMap<String, super::openapi::types::figures::Breakdown>)]
    pub by_work_type: BTreeMap<String, Breakdown>,
    #[schema(value_type = BTreeMap<String, super::openapi::types::figures::GroupFigures>)]
    pub by_key_group: BTreeMap<String, GroupFigures>,
    /// The last 30 local days, oldest first.
    pub daily: Vec<DayRow>,
    /// Service matters of the subtree: totals, breakdowns, 30-day trend.
    pub matters: super::matters_figures::MattersView,
    pub nodes: Vec<NodeRow>,
}

/// `GET /v1/summary?node=ID&depth=N&in_flight=true`
#[utoipa::path(
    get,
    path = "/v1/summary",
    tag = "figures",
    operation_id = "summary",
    params(
        ("node" = Option<crate::api::openapi::types::NodeIdFilter>, Query, description = "The office whose subtree to show (default: this node); it must be in this node's subtree."),
        ("depth" = Option<crate::api::openapi::types::Depth>, Query, description = "Only rows at most this many levels below `node`, in plain digits."),
        ("in_flight" = Option<crate::api::openapi::types::Flag>, Query, description = "`true`: compute each row's `in_flight` (a scan per office)."),
    ),
    responses(
        (status = 200, description = "The subtree's figures, one row per office.", body = SummaryView),
        (status = 400, description = "A parameter or the body is not valid; `errors` names every bad field.", body = crate::api::openapi::types::Error),
        (status = 401, description = "The API needs a bearer token (`unauthorized`) or the token is wrong (`bad_token`).", body = crate::api::openapi::types::Error),
        (status = 404, description = "`node` is not in this node's subtree, or not known here.", body = crate::api::openapi::types::Error),
    ),
    security((), ("bearer" = [])),
)]
pub async fn get(State(api): State<Arc<Api>>, q: QueryParams) -> ApiResult<Json<SummaryView>> {
    let me = api.state.me.clone();
    let root = q.node_id("node")?.unwrap_or_else(|| me.clone());
    if !root.is_in_subtree_of(&me) {
        return Err(ApiError::NotFound(format!("node: {root} is not in the subtree of this node ({me})")));
    }
    let depth = q.uint("depth")?;
    let want_in_flight = q.bool("in_flight")?.unwrap_or(false);
    let view = blocking(move || -> ApiResult<SummaryView> {
        let c = api.collect(&root)?;
        let matters = super::matters_figures::collect(&api.state.kv, &root)?;
        if root != me && c.rows.len() == 1 && c.rows[0].summary.is_none() && api.office(&root).is_none() {
            return Err(ApiError::NotFound(format!("node: {root} is not known at this node")));
        }
        let mut all = Figures::default();
        let (mut offices, mut stale, mut missing) = (0, 0, 0);
        for r in &c.rows {
            if let Some((_, f)) = &r.summary {
                all.add(f, 1);
                offices += 1;
            } else {
                missing += 1;
            }
            stale += usize::from(r.stale);
        }
        let root_depth = root.depth();
        let mut nodes = Vec::new();
        for r in &c.rows {
            if depth.is_some_and(|d| (r.node_id.depth() - root_depth) as u64 > d) {
                continue;
            }
            let in_flight = match (&r.summary, want_in_flight) {
                (Some((_, f)), true) => Some(in_flight(&api.state.kv, &r.node_id, f)?),
                _ => None,
            };
            let office = api.office(&r.node_id);
            nodes.push(NodeRow {
                node_id: r.node_id.clone(),
                parent: r.node_id.parent(),
                depth: r.node_id.depth(),
                tier: api.tier(&r.node_id),
                name: office.map(|o| o.name.clone()).filter(|s| !s.is_empty()),
                name_zh: office.map(|o| o.name_zh.clone()).filter(|s| !s.is_empty()),
                reported_at: r.summary.as_ref().map(|(at, _)| iso_time(*at)),
                age_s: r.age_s,
                stale: r.stale,
                missing: r.summary.is_none(),
                link_down: r.link_down,
                totals: r.summary.as_ref().map(|(_, f)| f.totals),
                subtree: r.subtree,
                in_flight,
                matters: matters.get(&r.node_id).map(super::matters_figures::MatterTotals::of),
                matters_subtree: super::matters_figures::MatterTotals::of(&super::matters_figures::subtree(
                    &matters, &r.node_id,
                )),
            });
        }
        let today = local_day(c.now);
        let daily = (today - DAILY_WINDOW + 1..=today)
            .map(|d| {
                let v = all.daily.get(&d).copied().unwrap_or_default();
                DayRow { day: day_to_iso(d), postings_published: v.postings_published, placements: v.placements }
            })
            .collect();
        Ok(SummaryView {
            node_id: me,
            root: root.clone(),
            generated_at: iso_time(c.now),
            stale_after_s: api.ctx.stale_after_s,
            subtree: c.rows.first().map(|r| r.subtree).unwrap_or_default(),
            reporting: Reporting { offices, expected: c.rows.len(), stale, missing },
            by_category: all.by_category,
            by_work_type: all.by_work_type,
            by_key_group: all.by_key_group,
            daily,
            matters: super::matters_figures::view(&matters, &root, c.now),
            nodes,
        })
    })
    .await??;
    Ok(Json(view))
}
