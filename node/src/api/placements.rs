//! `/v1/placements`: record that a worker took a posting, and list them.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use jobmesh_protocol::{store, Body, Kind, RecordId};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult};
use super::input::{got, parse_record_id, Fields, Form, IdPath, JsonObject, QueryParams};
use super::paging::{scan_page, PageRequest};
use super::views::PlacementView;
use super::{blocking, Api};

pub const CREATE_FIELDS: &[&str] = &["worker_id", "posting_id"];

/// `{"placements": [...], "next": CURSOR | null}`
#[derive(Serialize, ToSchema)]
pub struct PlacementList {
    pub placements: Vec<PlacementView>,
    pub next: Option<String>,
}

/// The 201 body: the placement plus where its posting stands now.
#[derive(Serialize, ToSchema)]
pub struct PlacementCreated {
    #[serde(flatten)]
    pub placement: PlacementView,
    /// The posting's fill total as held here after this placement.
    pub posting_filled: u32,
    /// The posting's positions left as known here after this placement.
    pub posting_remaining: u32,
}

/// `POST /v1/placements` `{worker_id, posting_id}` → 201.
#[utoipa::path(
    post,
    path = "/v1/placements",
    tag = "placements",
    operation_id = "create_placement",
    request_body(content = crate::api::openapi::bodies::PlacementCreate, content_type = "application/json"),
    responses(
        (status = 201, description = "The stored placement and where its posting stands now (durable).", body = PlacementCreated),
        (status = 400, description = "A parameter or the body is not valid; `errors` names every bad field.", body = crate::api::openapi::types::Error),
        (status = 401, description = "The API needs a bearer token (`unauthorized`) or the token is wrong (`bad_token`).", body = crate::api::openapi::types::Error),
        (status = 404, description = "The worker or the posting is not held at this office (`field` says which).", body = crate::api::openapi::types::Error),
        (status = 409, description = "The posting is not open, expired or has no positions left, or the worker is already placed on it.", body = crate::api::openapi::types::Error),
        (status = 413, description = "The body is larger than 64 KiB.", body = crate::api::openapi::types::Error),
        (status = 503, description = "The office is restoring from a backup (`restoring`) or its store is failing (`store_failing`); nothing was saved.", body = crate::api::openapi::types::Error),
        (status = 507, description = "The office's disk is full (`disk_full`); nothing was saved.", body = crate::api::openapi::types::Error),
    ),
    security((), ("bearer" = [])),
)]
pub async fn create(State(api): State<Arc<Api>>, body: JsonObject) -> ApiResult<(StatusCode, Json<PlacementCreated>)> {
    let f = Fields::new(body, CREATE_FIELDS)?;
    let mut form = Form::default();
    let worker_id = form.take(f.record_id("worker_id", Kind::Worker));
    let posting_id = form.take(f.record_id("posting_id", Kind::Posting));
    form.finish()?;
    let (worker_id, posting_id) = (got(worker_id)?, got(posting_id)?);
    let written = {
        let (w, p) = (worker_id.clone(), posting_id.clone());
        api.state.write(move |e, now| e.record_placement(&w, &p, now)).await?
    };
    let placement = written
        .records
        .iter()
        .find_map(PlacementView::of)
        .ok_or_else(|| ApiError::Internal("the engine stored no placement".into()))?;
    let (filled, positions) = blocking(move || {
        let kv = &api.state.kv;
        let positions = match store::get_record(kv, &posting_id)?.map(|s| s.record.body) {
            Some(Body::Posting(p)) => p.positions,
            _ => 0,
        };
        Ok::<_, ApiError>((store::filled(kv, &posting_id)?, positions))
    })
    .await??;
    Ok((
        StatusCode::CREATED,
        Json(PlacementCreated {
            placement,
            posting_filled: filled,
            posting_remaining: positions.saturating_sub(filled),
        }),
    ))
}

/// `GET /v1/placements?origin=&worker_id=&posting_id=&limit=&after=`
#[utoipa::path(
    get,
    path = "/v1/placements",
    tag = "placements",
    operation_id = "list_placements",
    params(
        ("origin" = Option<crate::api::openapi::types::NodeIdFilter>, Query, description = "Only placements recorded at this office."),
        ("worker_id" = Option<crate::api::openapi::types::WorkerIdFilter>, Query, description = "Only placements of this worker."),
        ("posting_id" = Option<crate::api::openapi::types::PostingIdFilter>, Query, description = "Only placements on this posting."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 5000, description = "Page size, 1..=5000 in plain digits (default 500)."),
        ("after" = Option<crate::api::openapi::types::Cursor>, Query, description = "Continue after this record id (the previous page's `next`)."),
    ),
    responses(
        (status = 200, description = "A page of placements, by id.", body = PlacementList),
        (status = 400, description = "A parameter or the body is not valid; `errors` names every bad field.", body = crate::api::openapi::types::Error),
        (status = 401, description = "The API needs a bearer token (`unauthorized`) or the token is wrong (`bad_token`).", body = crate::api::openapi::types::Error),
    ),
    security((), ("bearer" = [])),
)]
pub async fn list(State(api): State<Arc<Api>>, q: QueryParams) -> ApiResult<Json<PlacementList>> {
    let page = PageRequest::from_query(&q)?;
    let origin = q.node_id("origin")?;
    let worker = q.get("worker_id").filter(|s| !s.is_empty()).map(|s| parse_record_id("worker_id", s, Kind::Worker));
    let worker = worker.transpose()?;
    let posting =
        q.get("posting_id").filter(|s| !s.is_empty()).map(|s| parse_record_id("posting_id", s, Kind::Posting));
    let posting = posting.transpose()?;
    let prefix = origin.map(|o| RecordId::origin_prefix(&o, Kind::Placement)).unwrap_or_default();
    let page = blocking(move || {
        scan_page(&api.state.kv, Kind::Placement, &prefix, &page, |sr| {
            let Body::Placement(l) = &sr.record.body else { return Ok(None) };
            if worker.as_ref().is_some_and(|w| *w != l.worker_id)
                || posting.as_ref().is_some_and(|p| *p != l.posting_id)
            {
                return Ok(None);
            }
            Ok(Some(PlacementView::new(&sr.record, l)))
        })
    })
    .await??;
    Ok(Json(PlacementList { placements: page.items, next: page.next }))
}

/// `GET /v1/placements/{id}`
#[utoipa::path(
    get,
    path = "/v1/placements/{id}",
    tag = "placements",
    operation_id = "get_placement",
    params(
        ("id" = crate::api::openapi::types::PlacementId, Path, description = "The placement's id."),
    ),
    responses(
        (status = 200, description = "The placement as held here.", body = PlacementView),
        (status = 400, description = "A parameter or the body is not valid; `errors` names every bad field.", body = crate::api::openapi::types::Error),
        (status = 401, description = "The API needs a bearer token (`unauthorized`) or the token is wrong (`bad_token`).", body = crate::api::openapi::types::Error),
        (status = 404, description = "No such record is held at this node.", body = crate::api::openapi::types::Error),
    ),
    security((), ("bearer" = [])),
)]
pub async fn get(State(api): State<Arc<Api>>, IdPath(raw): IdPath) -> ApiResult<Json<PlacementView>> {
    let id = parse_record_id("id", &raw, Kind::Placement)?;
    let view = blocking(move || {
        Ok::<_, ApiError>(store::get_record(&api.state.kv, &id)?.and_then(|sr| PlacementView::of(&sr.record)))
    })
    .await??;
    view.map(Json).ok_or_else(|| ApiError::NotFound(format!("id: placement {raw} is not held at this node")))
}
