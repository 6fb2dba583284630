//! The HTTP API and web page (axum). See `../shared/design.md`, Interfaces.
//!
//! Reads go straight to the store's read handle (`NodeState::kv`) on the
//! blocking pool; writes go through [`NodeState::write`], which returns once
//! the write is durable, so a 201 means the record survives a crash. Every
//! error is `{"error": "..."}` (see [`error`]), including unknown routes
//! (404), wrong methods (405), oversized bodies (413) and a missing token
//! (401).
//!
//! Routes:
//!
//! | route | |
//! |---|---|
//! | `GET, POST /v1/postings`, `GET, PATCH /v1/postings/:id` | [`postings`] |
//! | `GET, POST /v1/workers`, `GET /v1/workers/:id` | [`workers`] |
//! | `GET, POST /v1/placements`, `GET /v1/placements/:id` | [`placements`] |
//! | `GET /v1/summary` | [`summary`] |
//! | `POST /v1/import/:kind`, `POST /v1/import/:kind/file`, `GET /v1/import/:kind/template.csv` | [`import`] |
//! | `GET /v1/summary.csv`, `.xlsx`, `GET /v1/postings.csv`, `.xlsx` | [`export`] |
//! | `GET /v1/status`, `GET /metrics` | [`status`] |
//! | `GET /v1/backup` | [`crate::ops::backup`] |
//! | `GET /v1/openapi.json` | [`openapi`] |
//! | `GET /`, `/app.js`, `/matters.js`, `/import.js`, `/app.css`, `/healthz` | [`page`] |
//!
//! When [`ApiContext::token`] is set, every route except `/healthz`,
//! `/v1/openapi.json` and the page's files needs `Authorization: Bearer
//! TOKEN` (or `?token=TOKEN`).

pub mod error;
pub mod export;
pub mod health_view;
pub mod import;
pub mod input;
pub mod keyed;
pub mod matters;
pub mod matters_figures;
pub mod openapi;
pub mod page;
pub mod paging;
pub mod placements;
pub mod postings;
pub mod status;
pub mod summary;
pub mod views;
pub mod workers;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use jobmesh_protocol::topology::{Office, Topology};
use jobmesh_protocol::NodeId;

use crate::state::NodeState;
use error::{ApiError, ApiResult};

/// Figures older than this many seconds are stale unless configured.
pub const DEFAULT_STALE_AFTER_S: u64 = 120;

/// What the API needs to know beyond the engine state.
#[derive(Debug, Clone)]
pub struct ApiContext {
    /// Bearer token required on every request (set when `api` is not loopback).
    pub token: Option<String>,
    /// The tree below this node (from the config's `topology`), so that an
    /// office that never reported shows as missing.
    pub topology: Option<Topology>,
    /// Figures older than this are stale.
    pub stale_after_s: u64,
    /// A link's clock offset beyond this is shown as skewed.
    pub clock_skew_warn_s: u64,
    /// The configured parent and its address, if any.
    pub parent: Option<(NodeId, String)>,
    /// Transport counters kept by the QUIC side.
    pub transport: Arc<crate::transport::TransportStats>,
    /// This node's and its peers' certificates, for `/v1/status` and
    /// `/metrics`.
    pub certs: Option<Arc<crate::certs::CertState>>,
    /// The fallback in use and since when the parent link is down.
    pub failover: Arc<crate::transport::FailoverState>,
    /// This node's health report, kept current by the runtime.
    pub health: Option<Arc<crate::health::HealthReporter>>,
    /// The `[sink.postgres]` mirror's state, when configured.
    pub sink: Option<Arc<crate::sink::SinkStatus>>,
}

impl Default for ApiContext {
    fn default() -> Self {
        ApiContext {
            token: None,
            topology: None,
            stale_after_s: DEFAULT_STALE_AFTER_S,
            clock_skew_warn_s: crate::config::DEFAULT_CLOCK_SKEW_WARN_S,
            parent: None,
            transport: Arc::new(crate::transport::TransportStats::new()),
            certs: None,
            failover: Arc::new(crate::transport::FailoverState::new()),
            health: None,
            sink: None,
        }
    }
}

/// A value recomputed on the blocking pool when older than its time to live,
/// which is ten times what computing it took (between
/// [`status::MIN_CACHE`] and [`status::MAX_CACHE`]). Concurrent callers wait
/// for one computation instead of starting their own.
pub struct Cached<T> {
    slot: tokio::sync::Mutex<Option<(Instant, Duration, T)>>,
}

impl<T> Default for Cached<T> {
    fn default() -> Self {
        Cached { slot: tokio::sync::Mutex::new(None) }
    }
}

impl<T: Clone + Send + 'static> Cached<T> {
    pub async fn get(&self, compute: impl FnOnce() -> ApiResult<T> + Send + 'static) -> ApiResult<T> {
        let mut slot = self.slot.lock().await;
        if let Some((at, ttl, v)) = &*slot {
            if at.elapsed() < *ttl {
                return Ok(v.clone());
            }
        }
        let started = Instant::now();
        let v = blocking(compute).await??;
        let ttl = (started.elapsed() * 10).clamp(status::MIN_CACHE, status::MAX_CACHE);
        *slot = Some((Instant::now(), ttl, v.clone()));
        Ok(v)
    }
}

/// The router's state: the node, its context, and caches.
pub struct Api {
    pub state: Arc<NodeState>,
    pub ctx: Arc<ApiContext>,
    /// Topology offices by id (the topology's own lookup is linear).
    offices: HashMap<NodeId, usize>,
    records: Cached<status::RecordCounts>,
    backlogs: Cached<std::collections::BTreeMap<NodeId, u64>>,
    /// Records waiting for each neighbour to upgrade (see `status`).
    held: Cached<std::collections::BTreeMap<NodeId, u64>>,
}

impl Api {
    fn new(state: Arc<NodeState>, ctx: Arc<ApiContext>) -> Api {
        let offices = ctx
            .topology
            .as_ref()
            .map(|t| t.offices.iter().enumerate().map(|(i, o)| (o.id.clone(), i)).collect())
            .unwrap_or_default();
        Api { state, ctx, offices, records: Cached::default(), backlogs: Cached::default(), held: Cached::default() }
    }

    /// May this node publish to `audience`? With a topology, the audience
    /// must be one of its offices; without, this node's lineage or the
    /// subtree of a child it has a link to (see `jobmesh_protocol::rules`).
    pub fn check_audience(&self, audience: &NodeId) -> Result<(), jobmesh_protocol::rules::RuleError> {
        let me = &self.state.me;
        if self.ctx.topology.is_some() {
            let known = |a: &NodeId| self.offices.contains_key(a);
            return jobmesh_protocol::rules::check_audience(me, audience, Some(&known), &[]);
        }
        let children: Vec<NodeId> =
            self.state.inspect(|e| e.link_stats().keys().filter(|p| me.is_parent_of(p)).cloned().collect());
        jobmesh_protocol::rules::check_audience(me, audience, None, &children)
    }

    /// The topology's entry for an office, if there is a topology.
    pub fn office(&self, id: &NodeId) -> Option<&Office> {
        let i = *self.offices.get(id)?;
        self.ctx.topology.as_ref()?.offices.get(i)
    }
}

/// Run blocking store work off the async threads.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> ApiResult<T> {
    Ok(tokio::task::spawn_blocking(f).await?)
}

/// The API's router, ready to serve.
pub fn router(state: Arc<NodeState>, ctx: Arc<ApiContext>) -> axum::Router {
    let api = Arc::new(Api::new(state, ctx));
    axum::Router::new()
        .route("/v1/postings", get(postings::list).post(postings::create))
        .route("/v1/backup", get(crate::ops::backup::get))
        .route("/v1/postings/:id", get(postings::get).patch(postings::patch))
        .route("/v1/workers", get(workers::list).post(workers::create))
        .route("/v1/workers/:id", get(workers::get))
        .route("/v1/placements", get(placements::list).post(placements::create))
        .route("/v1/placements/:id", get(placements::get))
        .route("/v1/matters", get(matters::list).post(matters::create))
        .route("/v1/matters/:id", get(matters::get).patch(matters::patch))
        .route("/v1/summary", get(summary::get))
        .route("/v1/summary.csv", get(export::summary_csv))
        .route("/v1/summary.xlsx", get(export::summary_xlsx))
        .route("/v1/postings.csv", get(export::postings_csv))
        .route("/v1/postings.xlsx", get(export::postings_xlsx))
        .route(
            "/v1/import/:kind",
            post(import::batch).layer(DefaultBodyLimit::max(jobmesh_import::wire::MAX_BATCH_BYTES)),
        )
        .route("/v1/import/:kind/file", post(import::file).layer(DefaultBodyLimit::disable()))
        .route("/v1/import/:kind/template.csv", get(import::template))
        .route("/v1/status", get(status::get))
        .route("/metrics", get(status::metrics))
        .route("/v1/openapi.json", get(openapi::openapi_json))
        .route("/healthz", get(page::healthz))
        .route("/", get(page::index))
        .route("/app.js", get(page::app_js))
        .route("/app.css", get(page::app_css))
        .route("/errors.json", get(page::errors_json))
        .route("/matters.js", get(page::matters_js))
        .route("/import.js", get(page::import_js))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(input::MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(api.clone(), auth))
        .layer(middleware::from_fn_with_state(api.clone(), track))
        .with_state(api)
}

async fn not_found(req: Request) -> ApiError {
    let path: String = req.uri().path().chars().take(200).collect();
    ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        error::Problem::general(error::Code::NoRoute, format!("no route {path}")),
    )
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::MethodNotAllowed(format!("{} is not allowed on {}", req.method(), req.uri().path()))
}

/// Routes anyone may fetch: the health check, the API's description and
/// the page's own files.
fn is_public(path: &str) -> bool {
    matches!(
        path,
        "/healthz" | "/v1/openapi.json" | "/" | "/app.js" | "/app.css" | "/errors.json" | "/matters.js" | "/import.js"
    )
}

/// Compare without leaking the position of the first difference.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn auth(State(api): State<Arc<Api>>, req: Request, next: Next) -> Response {
    let Some(token) = &api.ctx.token else { return next.run(req).await };
    if is_public(req.uri().path()) {
        return next.run(req).await;
    }
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").map(|t| t.trim().to_owned()));
    let given = bearer.or_else(|| input::parse_query(req.uri().query().unwrap_or("")).remove("token"));
    match given {
        Some(g) if same_secret(g.as_bytes(), token.as_bytes()) => next.run(req).await,
        Some(_) => ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            error::Problem::general(error::Code::BadToken, "the bearer token is not valid"),
        )
        .into_response(),
        None => ApiError::Unauthorized("this API needs `Authorization: Bearer TOKEN`".into()).into_response(),
    }
}

/// Count requests by route template and status, and time them.
async fn track(State(api): State<Arc<Api>>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned());
    let method: &'static str = match req.method().as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    };
    let started = Instant::now();
    let resp = next.run(req).await;
    let route = route.as_deref().unwrap_or("unmatched");
    api.state.metrics.api_request(route, method, resp.status().as_u16(), started.elapsed());
    resp
}
