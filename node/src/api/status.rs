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
use jobmesh_protocol::engine::{ClockEstimate, LinkStats};
use jobmesh_protocol::{store, Kind, NodeId};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::ApiResult;
use super::views::iso_time;
use super::{blocking, Api};
use crate::metrics::{CertSample, LinkSample, OfficeSample, Scrape};

/// Shortest time a count is reused.
pub const MIN_CACHE: Duration = Duration::from_secs(2);
/// Longest time a count is reused.
pub const MAX_CACHE: Duration = Duration::from_secs(60);
/// Journal entries examined per peer when counting its backlog.
pub const BACKLOG_CAP: usize = 100_000;

/// Records held on this node, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct RecordCounts {
    pub postings: u64,
    pub workers: u64,
    pub placements: u64,
    pub fills: u64,
    pub summaries: u64,
    pub matters: u64,
}

/// One link as `/v1/status` shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkView {
    #[schema(value_type = super::openapi::types::NodeId)]
    pub node_id: NodeId,
    pub connected: bool,
    /// Last frame from the peer (ISO-8601 UTC), `null` if never.
    pub last_contact: Option<String>,
    /// Journal entries this node still has to deliver to the peer (counted
    /// over at most 100,000 entries past the peer's last ack).
    pub backlog: u64,
    /// Protocol version of the link now (or when it was last up); `null`
    /// if it has not been up since this node started.
    pub protocol: Option<u32>,
    /// Records this node holds for the peer that its protocol version
    /// cannot carry: they wait here until the peer upgrades.
    pub held_for_older_peer: u64,
    pub tier: String,
    pub name: Option<String>,
    /// The office's Chinese name from the topology, when it has one.
    pub name_zh: Option<String>,
    /// A descendant below this node's children, linked directly while its
    /// own parent's link is down (failover); `false` for a direct child.
    pub attached_directly: bool,
    /// For a descendant attached directly: since when its parent has been
    /// silent here (ISO-8601 UTC: the last contact or report of that
    /// parent this node knows of); `null` otherwise.
    pub parent_down_since: Option<String>,
    /// The skipped parent's id, for a descendant attached directly.
    #[schema(value_type = Option<super::openapi::types::NodeId>)]
    pub parent_id: Option<NodeId>,
    #[schema(value_type = super::openapi::types::figures::LinkStats)]
    pub stats: LinkStats,
    /// The certificate the peer presented at its last handshake with this
    /// node since it started; `null` if none.
    pub certificate: Option<PeerCertView>,
    /// The peer's clock minus this node's, in seconds (negative: the
    /// peer's clock is behind), measured on the link with round-trip
    /// compensation; `null` until measured (a peer without clock sync).
    pub clock_offset_s: Option<f64>,
    /// Round trip of the exchange the offset comes from (ms): the offset is
    /// off by at most half of it.
    pub clock_rtt_ms: Option<u64>,
    /// `clock_offset_s` is beyond `clock_skew_warn_s` either way.
    pub clock_skewed: bool,
}

/// This node's clock as its links measure it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClockStatus {
    /// This node's clock minus its parent's, in seconds; `null` at the
    /// root and until measured.
    pub offset_to_parent_s: Option<f64>,
    /// What this node adds to its clock to stamp records (province time
    /// minus its clock, ms, through every hop up to the root).
    pub correction_ms: i64,
    /// The threshold beyond which a link's offset is warned about.
    pub skew_warn_s: u64,
    /// `offset_to_parent_s` is beyond `skew_warn_s`.
    pub skewed: bool,
}

/// A peer's certificate as this node last saw it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PeerCertView {
    /// Serial number, lowercase hex.
    pub serial: String,
    /// ISO-8601 UTC.
    pub not_after: String,
    /// Whole days left (negative once expired).
    pub days_left: i64,
    /// The serial is on this node's revocation list: the peer's links are
    /// refused until it has a new certificate.
    pub revoked: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ParentView {
    #[serde(flatten)]
    pub link: LinkView,
    /// The parent's address from the config.
    pub addr: Option<String>,
    /// Why the last attempt to reach the parent failed (a name that does
    /// not resolve, no answer, a refused handshake); `null` once linked.
    pub last_error: Option<String>,
    /// True while this node reaches the tree through a `[[fallback]]`
    /// ancestor instead of its parent.
    pub via_fallback: bool,
    /// The fallback link in use (or `null`).
    pub fallback: Option<FallbackView>,
    /// Since when the parent link is down (ISO-8601 UTC), `null` while up.
    pub down_since: Option<String>,
}

/// The fallback ancestor a node is linked to while its parent is down.
#[derive(Debug, Serialize, ToSchema)]
pub struct FallbackView {
    #[serde(flatten)]
    pub link: LinkView,
    pub addr: Option<String>,
    /// When the fallback link came up (ISO-8601 UTC).
    pub since: Option<String>,
}

/// This node's certificate, so that expiry is seen before links fail.
#[derive(Debug, Serialize, ToSchema)]
pub struct CertView {
    /// ISO-8601 UTC.
    pub not_after: String,
    /// Whole days left (negative once expired).
    pub days_left: i64,
    /// Serial number of the certificate new handshakes present, lowercase hex.
    pub serial: String,
    /// CA certificates trusted (two during a CA rollover).
    pub trusted_cas: usize,
    /// Reloads of the TLS files that took effect / were refused since start.
    pub reloads: u64,
    pub reloads_refused: u64,
}

/// The `GET /v1/status` body.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusView {
    #[schema(value_type = super::openapi::types::NodeId)]
    pub node_id: NodeId,
    pub parent: Option<ParentView>,
    pub children: Vec<LinkView>,
    pub records: RecordCounts,
    pub journal: Journal,
    /// Bytes the store takes on disk.
    pub store_bytes: u64,
    pub certificate: Option<CertView>,
    /// The revocation list this node holds.
    pub revocations: Option<RevocationsView>,
    /// True after `jobmesh restore` until the office's own records are back
    /// from its parent (local writes answer 503 meanwhile).
    pub restoring: bool,
    /// The `[sink.postgres]` mirror and its lag; `null` without one.
    pub sink: Option<crate::sink::SinkView>,
    pub clock: ClockStatus,
}

/// The revocation list as `/v1/status` shows it. A revoked office's
/// records from before its link was closed stay; nothing it writes later
/// gets in, because every link it presents that certificate on is refused.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevocationsView {
    /// When the CA signed the list held (ISO-8601 UTC); `null` if none.
    pub issued_at: Option<String>,
    pub revoked: Vec<RevokedView>,
    /// Lists refused since start (bad signature, another CA, malformed).
    pub lists_refused: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RevokedView {
    pub serial: String,
    pub node_id: Option<String>,
    pub revoked_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Journal {
    pub last_seq: u64,
    pub durable_seq: u64,
}

/// A neighbour: the parent, a direct child, a descendant attached
/// directly, or a fallback ancestor.
struct Peer {
    id: NodeId,
    role: PeerRole,
    connected: bool,
    stats: LinkStats,
    clock: Option<ClockEstimate>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PeerRole {
    Parent,
    Child,
    /// A descendant below the children (failover).
    Attached,
    /// A `[[fallback]]` ancestor.
    Fallback,
}

impl PeerRole {
    /// The `role` label of the link metrics.
    fn label(self) -> &'static str {
        match self {
            PeerRole::Parent => "parent",
            PeerRole::Child => "child",
            PeerRole::Attached => "attached_directly",
            PeerRole::Fallback => "fallback",
        }
    }
}

impl Api {
    fn link_view_of(
        &self,
        p: Peer,
        backlogs: &BTreeMap<NodeId, u64>,
        held: &BTreeMap<NodeId, u64>,
    ) -> (PeerRole, LinkView) {
        (p.role, self.link_view(p, backlogs, held))
    }

    /// Records held, by kind (cached; see the module docs).
    pub async fn record_counts(self: &Arc<Self>) -> ApiResult<RecordCounts> {
        let api = self.clone();
        self.records
            .get(move || {
                let kv = &api.state.kv;
                let n = |k| store::count_records(kv, k, "", u64::MAX);
                Ok(RecordCounts {
                    postings: n(Kind::Posting)?,
                    workers: n(Kind::Worker)?,
                    placements: n(Kind::Placement)?,
                    fills: n(Kind::Fill)?,
                    summaries: n(Kind::Summary)?,
                    matters: n(Kind::Matter)?,
                })
            })
            .await
    }

    /// Backlog per neighbour (cached; see the module docs). Counted by
    /// [`store::backlog`], as [`jobmesh_protocol::Engine::backlog`] does, but
    /// on the store's read handle, so that the engine lock is held only to
    /// read the acks, never during the journal scan.
    async fn backlogs(self: &Arc<Self>) -> ApiResult<BTreeMap<NodeId, u64>> {
        let api = self.clone();
        self.backlogs
            .get(move || {
                let me = &api.state.me;
                let last_seq = api.state.inspect(|e| e.last_seq());
                let mut out = BTreeMap::new();
                for p in api.peers() {
                    let n = store::backlog(&api.state.kv, me, &p.id, p.stats.acked, last_seq, BACKLOG_CAP)?;
                    out.insert(p.id, n);
                }
                Ok(out)
            })
            .await
    }

    /// Records held back for each neighbour on an older protocol (cached
    /// like the backlogs). The version is the link's, or the one last
    /// completed with the peer while the link is down.
    async fn held(self: &Arc<Self>) -> ApiResult<BTreeMap<NodeId, u64>> {
        let api = self.clone();
        self.held
            .get(move || {
                let kv = &api.state.kv;
                let mut out = BTreeMap::new();
                for p in api.peers() {
                    let version = match p.stats.protocol {
                        0 => store::peer_version_known(kv, &p.id)?,
                        v => Some(v),
                    };
                    let n = match version {
                        Some(v) => store::held_for_older_peer(kv, &api.state.me, &p.id, v, BACKLOG_CAP)?,
                        None => 0,
                    };
                    out.insert(p.id, n);
                }
                Ok(out)
            })
            .await
    }

    /// The parent (if any) and the direct children: those the topology lists
    /// and those a link has been seen with.
    fn peers(&self) -> Vec<Peer> {
        let me = &self.state.me;
        let (parent, stats, clocks) =
            self.state.inspect(|e| (e.parent().cloned(), e.link_stats().clone(), e.clock().links.clone()));
        let parent = self.ctx.parent.as_ref().map(|(id, _)| id.clone()).or(parent);
        let mut children: Vec<NodeId> = stats.keys().filter(|k| me.is_parent_of(k)).cloned().collect();
        if let Some(t) = &self.ctx.topology {
            children.extend(t.offices.iter().filter(|o| me.is_parent_of(&o.id)).map(|o| o.id.clone()));
        }
        children.sort();
        children.dedup();
        // Descendants attached directly and fallback ancestors show while
        // their link is up (the engine keeps their counters afterwards).
        let attached = stats
            .keys()
            .filter(|k| me.is_ancestor_of(k) && !me.is_parent_of(k) && self.state.connected(k))
            .cloned()
            .map(|k| (k, PeerRole::Attached));
        let fallbacks = stats
            .keys()
            .filter(|k| k.is_ancestor_of(me) && parent.as_ref() != Some(*k) && self.state.connected(k))
            .cloned()
            .map(|k| (k, PeerRole::Fallback));
        parent
            .clone()
            .into_iter()
            .map(|p| (p, PeerRole::Parent))
            .chain(children.into_iter().map(|c| (c, PeerRole::Child)))
            .chain(attached)
            .chain(fallbacks)
            .map(|(id, role)| Peer {
                connected: self.state.connected(&id),
                stats: stats.get(&id).cloned().unwrap_or_default(),
                clock: clocks.get(&id).copied(),
                id,
                role,
            })
            .collect()
    }

    /// For a descendant attached directly: its parent's last sign of life
    /// here (Unix ms), from this node's link to that parent or, when that
    /// parent is further down, the last summary it reported. `None` if the
    /// parent is linked here now.
    fn parent_last_heard(&self, descendant: &NodeId) -> Option<u64> {
        let p = descendant.parent()?;
        if self.state.connected(&p) {
            return None;
        }
        let link = self.state.inspect(|e| e.link_stats().get(&p).and_then(|s| s.last_contact));
        let report = store::get_record(&self.state.kv, &jobmesh_protocol::RecordId::summary(&p))
            .ok()
            .flatten()
            .and_then(|r| match r.record.body {
                jobmesh_protocol::record::Body::Summary(s) => Some(s.generated_at),
                _ => None,
            });
        link.max(report)
    }

    fn link_view(&self, p: Peer, backlogs: &BTreeMap<NodeId, u64>, held: &BTreeMap<NodeId, u64>) -> LinkView {
        let attached = p.role == PeerRole::Attached;
        LinkView {
            attached_directly: attached,
            parent_down_since: if attached { self.parent_last_heard(&p.id).map(iso_time) } else { None },
            parent_id: if attached { p.id.parent() } else { None },
            backlog: backlogs.get(&p.id).copied().unwrap_or(0),
            protocol: Some(p.stats.protocol).filter(|v| *v > 0),
            held_for_older_peer: held.get(&p.id).copied().unwrap_or(0),
            connected: p.connected,
            last_contact: p.stats.last_contact.map(iso_time),
            tier: self.tier(&p.id),
            name: self.office(&p.id).map(|o| o.name.clone()).filter(|s| !s.is_empty()),
            name_zh: self.office(&p.id).map(|o| o.name_zh.clone()).filter(|s| !s.is_empty()),
            stats: p.stats,
            certificate: self.peer_cert(&p.id),
            clock_offset_s: p.clock.map(|c| c.offset_ms as f64 / 1000.0),
            clock_rtt_ms: p.clock.map(|c| c.rtt_ms),
            clock_skewed: p.clock.is_some_and(|c| self.skewed(c.offset_ms)),
            node_id: p.id,
        }
    }

    /// Is a clock offset beyond the warning threshold?
    fn skewed(&self, offset_ms: i64) -> bool {
        offset_ms.unsigned_abs() > self.ctx.clock_skew_warn_s.saturating_mul(1000)
    }

    fn clock_status(&self) -> ClockStatus {
        let c = self.state.inspect(|e| e.clock().clone());
        ClockStatus {
            offset_to_parent_s: c.offset_to_parent_ms.map(|o| o as f64 / 1000.0),
            correction_ms: c.correction_ms,
            skew_warn_s: self.ctx.clock_skew_warn_s,
            skewed: c.offset_to_parent_ms.is_some_and(|o| self.skewed(o)),
        }
    }

    fn peer_cert(&self, peer: &NodeId) -> Option<PeerCertView> {
        let certs = self.ctx.certs.as_ref()?;
        let c = certs.peer_certs().remove(peer)?;
        let now_s = (crate::state::now_ms() / 1000) as i64;
        Some(PeerCertView {
            serial: c.serial,
            not_after: crate::certs::iso_seconds(c.not_after),
            days_left: (c.not_after - now_s).div_euclid(86_400),
            revoked: c.revoked,
        })
    }
}

impl Api {
    /// Certificate expiry and reload counters for `/metrics`.
    fn cert_sample(&self) -> CertSample {
        let Some(c) = self.ctx.certs.as_ref() else { return CertSample::default() };
        let now_s = (crate::state::now_ms() / 1000) as i64;
        let (reloads, reloads_refused) = c.reload_counts();
        CertSample {
            own_expiry_s: c.current().cert_not_after().map(|t| t - now_s),
            peers: c.peer_certs().into_iter().map(|(id, p)| (id.to_string(), p.not_after - now_s)).collect(),
            reloads,
            reloads_refused,
            revoked_serials: c.revoked().len() as u64,
            lists_refused: c.revocations.refused(),
        }
    }
}

/// `GET /v1/status`
#[utoipa::path(
    get,
    path = "/v1/status",
    tag = "operations",
    operation_id = "status",
    responses(
        (status = 200, description = "Links, record counts, journal, store size and certificate.", body = StatusView),
        (status = 401, description = "The API needs a bearer token (`unauthorized`) or the token is wrong (`bad_token`).", body = crate::api::openapi::types::Error),
    ),
    security((), ("bearer" = [])),
)]
pub async fn get(State(api): State<Arc<Api>>) -> ApiResult<Json<StatusView>> {
    let records = api.record_counts().await?;
    let backlogs = api.backlogs().await?;
    let held = api.held().await?;
    let (last_seq, durable_seq) = api.state.inspect(|e| (e.last_seq(), e.durable_seq()));
    let restoring = api.state.call(|e| e.restoring()).await.unwrap_or(false);
    let mut parent = None;
    let mut children = Vec::new();
    let mut fallback = None;
    let peers = {
        let api = api.clone();
        // The attached descendants' parents are looked up in the store.
        blocking(move || api.peers().into_iter().map(|p| api.link_view_of(p, &backlogs, &held)).collect::<Vec<_>>())
            .await?
    };
    for (p, view) in peers {
        match p {
            PeerRole::Parent => {
                let addr = api.ctx.parent.as_ref().filter(|(id, _)| *id == view.node_id).map(|(_, a)| a.clone());
                let last_error = if view.connected { None } else { api.ctx.transport.parent_error() };
                parent = Some(ParentView {
                    link: view,
                    addr,
                    last_error,
                    via_fallback: false,
                    fallback: None,
                    down_since: None,
                });
            }
            PeerRole::Fallback => {
                let f = api.ctx.failover.view();
                let in_use = f.node_id.as_ref() == Some(&view.node_id);
                fallback = Some(FallbackView {
                    addr: f.addr.filter(|_| in_use),
                    since: f.since.filter(|_| in_use).map(iso_time),
                    link: view,
                });
            }
            PeerRole::Child | PeerRole::Attached => children.push(view),
        }
    }
    if let Some(parent) = parent.as_mut() {
        parent.down_since = api.ctx.failover.parent_down_since().filter(|_| !parent.link.connected).map(iso_time);
        parent.via_fallback = fallback.as_ref().is_some_and(|f| f.link.connected);
        parent.fallback = fallback;
    }
    let api2 = api.clone();
    let store_bytes = blocking(move || api2.state.kv.size_on_disk()).await?;
    let now_s = (crate::state::now_ms() / 1000) as i64;
    let certificate = api.ctx.certs.as_ref().and_then(|c| {
        let tls = c.current();
        let t = tls.cert_not_after()?;
        let (reloads, reloads_refused) = c.reload_counts();
        Some(CertView {
            not_after: iso_time(t.max(0) as u64 * 1000),
            days_left: (t - now_s).div_euclid(86_400),
            serial: tls.serial(),
            trusted_cas: tls.ca_certs().len(),
            reloads,
            reloads_refused,
        })
    });
    let revocations = api.ctx.certs.as_ref().map(|c| {
        let held = c.revocations.held();
        RevocationsView {
            issued_at: held.as_ref().map(|h| iso_time(h.list.issued_at_ms)),
            revoked: held
                .map(|h| {
                    h.list
                        .entries
                        .into_iter()
                        .map(|e| RevokedView {
                            serial: e.serial,
                            node_id: Some(e.node_id).filter(|n| !n.is_empty()),
                            revoked_at: iso_time(e.revoked_at_ms),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            lists_refused: c.revocations.refused(),
        }
    });
    Ok(Json(StatusView {
        revocations,
        node_id: api.state.me.clone(),
        parent,
        children,
        records,
        journal: Journal { last_seq, durable_seq },
        store_bytes,
        certificate,
        restoring,
        sink: api.ctx.sink.as_ref().map(|s| s.view(crate::state::now_ms())),
        clock: api.clock_status(),
    }))
}

/// `GET /metrics` (Prometheus text format).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    operation_id = "metrics",
    responses(
        (status = 200, description = "Prometheus metrics (OpenMetrics text).", content_type = "application/openmetrics-text", body = String),
        (status = 401, description = "The API needs a bearer token (`unauthorized`) or the token is wrong (`bad_token`).", body = crate::api::openapi::types::Error),
    ),
    security((), ("bearer" = [])),
)]
pub async fn metrics(State(api): State<Arc<Api>>) -> ApiResult<impl IntoResponse> {
    let records = api.record_counts().await?;
    let backlogs = api.backlogs().await?;
    let held = api.held().await?;
    let links = api
        .peers()
        .into_iter()
        .map(|p| LinkSample {
            peer: p.id.to_string(),
            role: p.role.label(),
            connected: p.connected,
            backlog: backlogs.get(&p.id).copied().unwrap_or(0),
            held_for_older_peer: held.get(&p.id).copied().unwrap_or(0),
            stats: p.stats,
            clock_offset_ms: p.clock.map(|c| c.offset_ms),
            clock_rtt_ms: p.clock.map(|c| c.rtt_ms),
        })
        .collect();
    let (last_seq, durable_seq) = api.state.inspect(|e| (e.last_seq(), e.durable_seq()));
    let api2 = api.clone();
    let me = api.state.me.clone();
    let (matter_rows, store_bytes) = blocking(move || -> ApiResult<_> {
        Ok((super::matters_figures::collect(&api2.state.kv, &me)?, api2.state.kv.size_on_disk()))
    })
    .await??;
    let offices = api
        .subtree_view(&api.state.me, None, crate::state::now_ms())
        .await?
        .map(|v| v.rows)
        .unwrap_or_default()
        .into_iter()
        .map(|r| OfficeSample {
            node_id: r.node_id.to_string(),
            tier: r.tier,
            totals: r.totals,
            age_s: r.age_s,
            stale: r.stale,
            matters: matter_rows.get(&r.node_id).map(|m| m.totals),
        })
        .collect();
    let matters = super::matters_figures::subtree(&matter_rows, &api.state.me);
    let scrape = Scrape {
        records: vec![
            ("posting", records.postings),
            ("worker", records.workers),
            ("placement", records.placements),
            ("fill", records.fills),
            ("summary", records.summaries),
            ("matter", records.matters),
        ],
        links,
        offices,
        store_bytes,
        last_seq,
        durable_seq,
        transport: api.ctx.transport.snapshot(),
        matters,
        certs: api.cert_sample(),
    };
    let body = api.state.metrics.render(&scrape);
    let body = crate::sink::status::append_metrics(body, api.ctx.sink.as_deref(), crate::state::now_ms());
    Ok(([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body))
}
