//! `GET /v1/summary`: the figures of this node's subtree, one row per office.
//!
//! The engine keeps the roll-up ([`jobmesh_protocol::rollup`]) as summaries
//! are applied: subtree sums, the offices expected, missing and stale. This
//! handler only asks it about one subtree and turns the answer into JSON;
//! it reads no summary from the store. Offices that the topology lists but
//! that never reported are `missing`, with `totals: null` rather than zeros.
//!
//! `in_flight` (what an office says it holds of its own records minus what
//! this node holds of them) needs a key count per office and kind, so it is
//! computed only when asked with `?in_flight=true`, and only for the rows
//! returned; otherwise it is `null`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use jobmesh_protocol::figures::{Breakdown, GroupFigures, Totals, DAILY_WINDOW};
use jobmesh_protocol::rollup::{self, InFlight, Reporting, SubtreeView};
use jobmesh_protocol::time::{day_to_iso, local_day};
use jobmesh_protocol::NodeId;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult};
use super::health_view::{CertificateRow, HealthRow};
use super::input::QueryParams;
use super::matters_figures::{self, MatterTotals};
use super::views::iso_time;
use super::{blocking, Api};
use crate::state::now_ms;

/// Most matters summary records read for one answer (the province has ~2,750
/// offices).
pub const MAX_SUMMARIES: usize = 100_000;

impl Api {
    /// The roll-up's answer about subtree(`root`) at `now`, rows down to
    /// `depth` levels below it; `Ok(None)` when `root` is not known here.
    /// The engine thread owns the roll-up, so the question runs there; the
    /// links' state is this side's snapshot, taken once.
    pub async fn subtree_view(&self, root: &NodeId, depth: Option<u64>, now: u64) -> ApiResult<Option<SubtreeView>> {
        let stale_after_s = self.ctx.stale_after_s;
        let connected = self.state.inspect(|v| v.connected_peers().clone());
        let root = root.clone();
        let view = self
            .state
            .call(move |e| e.rollup().view(&root, depth, now, stale_after_s, |child| connected.contains(child)))
            .await?;
        Ok(view)
    }

    /// The tier name of an office: the topology's, else by depth (the
    /// roll-up's rule, [`jobmesh_protocol::topology::tier_by_depth`]).
    pub fn tier(&self, id: &NodeId) -> String {
        match self.office(id) {
            Some(o) => o.tier.clone(),
            None => jobmesh_protocol::topology::tier_by_depth(id.depth()),
        }
    }
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
    #[schema(value_type = Option<super::openapi::types::figures::InFlight>)]
    pub in_flight: Option<InFlight>,
    /// The office's own matter figures; `null` if none are held here.
    pub matters: Option<MatterTotals>,
    /// Matter figures summed over the office's subtree (as held here).
    pub matters_subtree: MatterTotals,
    /// The office's health report (release, certificate, clock offset);
    /// `null` until one arrives (a 0.1.0 office sends none).
    pub health: Option<HealthRow>,
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
    #[schema(value_type = super::openapi::types::figures::Reporting)]
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
    pub matters: matters_figures::MattersView,
    /// Certificates in the whole subtree that are revoked, expired or
    /// expire within 30 days, the worst first.
    pub certificates: Vec<CertificateRow>,
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
    let now = now_ms();
    let Some(v) = api.subtree_view(&root, depth, now).await? else {
        return Err(ApiError::NotFound(format!("node: {root} is not known at this node")));
    };
    // Matters summaries are their own record kind (protocol 2), read from
    // the store by `matters_figures`; `in_flight` counts keys per office.
    let wanted: Vec<_> =
        v.rows.iter().map(|r| r.holds.filter(|_| want_in_flight).map(|h| (r.node_id.clone(), h))).collect();
    let (matters, in_flight) = {
        let api = api.clone();
        let root = root.clone();
        blocking(move || -> ApiResult<_> {
            let kv = &api.state.kv;
            let matters = matters_figures::collect(kv, &root)?;
            let in_flight = wanted
                .into_iter()
                .map(|w| w.map(|(id, h)| rollup::in_flight(kv, &id, &h)).transpose())
                .collect::<Result<Vec<Option<InFlight>>, _>>()?;
            Ok((matters, in_flight))
        })
        .await??
    };
    let reports = {
        let root = root.clone();
        api.state
            .call(move |e| {
                e.rollup().health_reports(&root).into_iter().map(|(n, h)| (n.clone(), h.clone())).collect::<Vec<_>>()
            })
            .await?
    };
    let certificates = api.certificates(&reports, now);
    let SubtreeView { figures, reporting, rows, .. } = v;
    let subtree = figures.totals;
    let nodes = rows
        .into_iter()
        .zip(in_flight)
        .map(|(r, in_flight)| NodeRow {
            matters: matters.get(&r.node_id).map(MatterTotals::of),
            matters_subtree: MatterTotals::of(&matters_figures::subtree(&matters, &r.node_id)),
            health: r.health.as_ref().map(|h| api.health_row(h, now)),
            parent: r.node_id.parent(),
            depth: r.node_id.depth(),
            missing: r.missing(),
            node_id: r.node_id,
            tier: r.tier,
            name: r.name,
            name_zh: r.name_zh,
            reported_at: r.reported_at.map(iso_time),
            age_s: r.age_s,
            stale: r.stale,
            link_down: r.link_down,
            totals: r.totals,
            subtree: r.subtree,
            in_flight,
        })
        .collect();
    let today = local_day(now);
    let daily = (today - DAILY_WINDOW + 1..=today)
        .map(|d| {
            let v = figures.daily.get(&d).copied().unwrap_or_default();
            DayRow { day: day_to_iso(d), postings_published: v.postings_published, placements: v.placements }
        })
        .collect();
    let matters_view = matters_figures::view(&matters, &root, now);
    Ok(Json(SummaryView {
        node_id: me,
        root,
        generated_at: iso_time(now),
        stale_after_s: api.ctx.stale_after_s,
        subtree,
        reporting,
        by_category: figures.by_category,
        by_work_type: figures.by_work_type,
        by_key_group: figures.by_key_group,
        daily,
        matters: matters_view,
        certificates,
        nodes,
    }))
}
