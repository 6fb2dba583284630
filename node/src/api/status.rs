//! `GET /v1/status` (links and record counts) and `GET /metrics`.
//!
//! Counting records and link backlogs reads many keys, so both are cached:
//! a value is reused for at least [`MIN_CACHE`] and for ten times as long as
//! it took to compute (capped at [`MAX_CACHE`]), so a store of a million
//! records polled every two seconds spends at most a tenth of its time
//! counting. Link state (`connected`, counters, last contact) is always live.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use jobmesh_protocol::engine::LinkStats;
use jobmesh_protocol::{routing, store, Kind, NodeId};
use serde::Serialize;

use super::error::ApiResult;
use super::summary::count_records;
use super::views::iso_time;
use super::{blocking, Api};
use crate::metrics::{LinkSample, OfficeSample, Scrape};

/// Shortest time a count is reused.
pub const MIN_CACHE: Duration = Duration::from_secs(2);
/// Longest time a count is reused.
pub const MAX_CACHE: Duration = Duration::from_secs(60);
/// Journal entries examined per peer when counting its backlog.
pub const BACKLOG_CAP: usize = 100_000;

/// Records held on this node, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RecordCounts {
    pub postings: u64,
    pub workers: u64,
    pub placements: u64,
    pub fills: u64,
    pub summaries: u64,
}

/// One link as `/v1/status` shows it.
#[derive(Debug, Serialize)]
pub struct LinkView {
    pub node_id: NodeId,
    pub connected: bool,
    /// Last frame from the peer (ISO-8601 UTC), `null` if never.
    pub last_contact: Option<String>,
    /// Journal entries this node still has to deliver to the peer (counted
    /// over at most 100,000 entries past the peer's last ack).
    pub backlog: u64,
    pub tier: String,
    pub name: Option<String>,
    /// The office's Chinese name from the topology, when it has one.
    pub name_zh: Option<String>,
    pub stats: LinkStats,
}

#[derive(Debug, Serialize)]
pub struct ParentView {
    #[serde(flatten)]
    pub link: LinkView,
    /// The parent's address from the config.
    pub addr: Option<String>,
}

/// The `GET /v1/status` body.
#[derive(Debug, Serialize)]
pub struct StatusView {
    pub node_id: NodeId,
    pub parent: Option<ParentView>,
    pub children: Vec<LinkView>,
    pub records: RecordCounts,
    pub journal: Journal,
}

#[derive(Debug, Serialize)]
pub struct Journal {
    pub last_seq: u64,
    pub durable_seq: u64,
}

/// A neighbour: the parent or a direct child.
struct Peer {
    id: NodeId,
    is_parent: bool,
    connected: bool,
    stats: LinkStats,
}

impl Api {
    /// Records held, by kind (cached; see the module docs).
    pub async fn record_counts(self: &Arc<Self>) -> ApiResult<RecordCounts> {
        let api = self.clone();
        self.records
            .get(move || {
                let kv = &api.state.kv;
                let n = |k| count_records(kv, k, "", u64::MAX);
                Ok(RecordCounts {
                    postings: n(Kind::Posting)?,
                    workers: n(Kind::Worker)?,
                    placements: n(Kind::Placement)?,
                    fills: n(Kind::Fill)?,
                    summaries: n(Kind::Summary)?,
                })
            })
            .await
    }

    /// Backlog per neighbour (cached; see the module docs). Counted like
    /// [`jobmesh_protocol::Engine::backlog`] but on the store's read handle,
    /// so that the engine lock is held only to read the acks, never during
    /// the journal scan.
    async fn backlogs(self: &Arc<Self>) -> ApiResult<BTreeMap<NodeId, u64>> {
        let api = self.clone();
        self.backlogs
            .get(move || {
                let me = &api.state.me;
                let last_seq = api.state.inspect(|e| e.last_seq());
                let mut out = BTreeMap::new();
                for p in api.peers() {
                    let entries = store::journal_range(&api.state.kv, p.stats.acked, last_seq, BACKLOG_CAP)?;
                    let n = entries.iter().filter(|(_, e)| routing::sends_to(&e.route, me, &p.id)).count();
                    out.insert(p.id, n as u64);
                }
                Ok(out)
            })
            .await
    }

    /// The parent (if any) and the direct children: those the topology lists
    /// and those a link has been seen with.
    fn peers(&self) -> Vec<Peer> {
        let me = &self.state.me;
        let (parent, stats) = self.state.inspect(|e| (e.parent().cloned(), e.link_stats().clone()));
        let parent = self.ctx.parent.as_ref().map(|(id, _)| id.clone()).or(parent);
        let mut children: Vec<NodeId> = stats.keys().filter(|k| me.is_parent_of(k)).cloned().collect();
        if let Some(t) = &self.ctx.topology {
            children.extend(t.offices.iter().filter(|o| me.is_parent_of(&o.id)).map(|o| o.id.clone()));
        }
        children.sort();
        children.dedup();
        parent
            .into_iter()
            .map(|p| (p, true))
            .chain(children.into_iter().map(|c| (c, false)))
            .map(|(id, is_parent)| Peer {
                connected: self.state.connected(&id),
                stats: stats.get(&id).cloned().unwrap_or_default(),
                id,
                is_parent,
            })
            .collect()
    }

    fn link_view(&self, p: Peer, backlogs: &BTreeMap<NodeId, u64>) -> LinkView {
        LinkView {
            backlog: backlogs.get(&p.id).copied().unwrap_or(0),
            connected: p.connected,
            last_contact: p.stats.last_contact.map(iso_time),
            tier: self.tier(&p.id),
            name: self.office(&p.id).map(|o| o.name.clone()).filter(|s| !s.is_empty()),
            name_zh: self.office(&p.id).map(|o| o.name_zh.clone()).filter(|s| !s.is_empty()),
            stats: p.stats,
            node_id: p.id,
        }
    }
}

/// `GET /v1/status`
pub async fn get(State(api): State<Arc<Api>>) -> ApiResult<Json<StatusView>> {
    let records = api.record_counts().await?;
    let backlogs = api.backlogs().await?;
    let (last_seq, durable_seq) = api.state.inspect(|e| (e.last_seq(), e.durable_seq()));
    let mut parent = None;
    let mut children = Vec::new();
    for p in api.peers() {
        if p.is_parent {
            let addr = api.ctx.parent.as_ref().filter(|(id, _)| *id == p.id).map(|(_, a)| a.clone());
            parent = Some(ParentView { link: api.link_view(p, &backlogs), addr });
        } else {
            children.push(api.link_view(p, &backlogs));
        }
    }
    Ok(Json(StatusView {
        node_id: api.state.me.clone(),
        parent,
        children,
        records,
        journal: Journal { last_seq, durable_seq },
    }))
}

/// `GET /metrics` (Prometheus text format).
pub async fn metrics(State(api): State<Arc<Api>>) -> ApiResult<impl IntoResponse> {
    let records = api.record_counts().await?;
    let backlogs = api.backlogs().await?;
    let links = api
        .peers()
        .into_iter()
        .map(|p| LinkSample {
            peer: p.id.to_string(),
            role: if p.is_parent { "parent" } else { "child" },
            connected: p.connected,
            backlog: backlogs.get(&p.id).copied().unwrap_or(0),
            stats: p.stats,
        })
        .collect();
    let (last_seq, durable_seq) = api.state.inspect(|e| (e.last_seq(), e.durable_seq()));
    let api2 = api.clone();
    let (offices, store_bytes) = blocking(move || -> ApiResult<_> {
        let c = api2.collect(&api2.state.me)?;
        let offices = c
            .rows
            .iter()
            .map(|r| OfficeSample {
                node_id: r.node_id.to_string(),
                tier: api2.tier(&r.node_id),
                totals: r.summary.as_ref().map(|(_, f)| f.totals),
                age_s: r.age_s,
                stale: r.stale,
            })
            .collect::<Vec<_>>();
        Ok((offices, api2.state.kv.size_on_disk()))
    })
    .await??;
    let scrape = Scrape {
        records: vec![
            ("posting", records.postings),
            ("worker", records.workers),
            ("placement", records.placements),
            ("fill", records.fills),
            ("summary", records.summaries),
        ],
        links,
        offices,
        store_bytes,
        last_seq,
        durable_seq,
        transport: api.ctx.transport.snapshot(),
    };
    let body = api.state.metrics.render(&scrape);
    Ok(([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body))
}
