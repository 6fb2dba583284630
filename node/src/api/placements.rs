//! `/v1/placements`: record that a worker took a posting, and list them.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use jobmesh_protocol::{store, Body, Kind, RecordId};
use serde::Serialize;

use super::error::{ApiError, ApiResult};
use super::input::{got, parse_record_id, Fields, Form, IdPath, JsonObject, QueryParams};
use super::paging::{scan_page, PageRequest};
use super::views::PlacementView;
use super::{blocking, Api};

const CREATE_FIELDS: &[&str] = &["worker_id", "posting_id"];

/// `{"placements": [...], "next": CURSOR | null}`
#[derive(Serialize)]
pub struct PlacementList {
    pub placements: Vec<PlacementView>,
    pub next: Option<String>,
}

/// The 201 body: the placement plus where its posting stands now.
#[derive(Serialize)]
pub struct PlacementCreated {
    #[serde(flatten)]
    pub placement: PlacementView,
    /// The posting's fill total as held here after this placement.
    pub posting_filled: u32,
    /// The posting's positions left as known here after this placement.
    pub posting_remaining: u32,
}

/// `POST /v1/placements` `{worker_id, posting_id}` → 201.
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
pub async fn get(State(api): State<Arc<Api>>, IdPath(raw): IdPath) -> ApiResult<Json<PlacementView>> {
    let id = parse_record_id("id", &raw, Kind::Placement)?;
    let view = blocking(move || {
        Ok::<_, ApiError>(store::get_record(&api.state.kv, &id)?.and_then(|sr| PlacementView::of(&sr.record)))
    })
    .await??;
    view.map(Json).ok_or_else(|| ApiError::NotFound(format!("id: placement {raw} is not held at this node")))
}
