//! `/v1/postings`: publish, list, read and change job postings.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use jobmesh_protocol::engine::local::{NewPosting, NewRecord, PostingPatch};
use jobmesh_protocol::record::{PostingStatus, WorkType};
use jobmesh_protocol::{store, Body, Kind, NodeId, RecordId};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult, Code, Problem};
use super::input::{got, parse_record_id, Fields, Form, IdPath, JsonObject, QueryParams};
use super::paging::{scan_page, PageRequest};
use super::views::PostingView;
use super::{blocking, Api};

pub const CREATE_FIELDS: &[&str] = &[
    "title",
    "employer",
    "category",
    "work_type",
    "positions",
    "audience",
    "wage",
    "location",
    "valid_until",
    "external_ref",
];
pub const PATCH_FIELDS: &[&str] = &[
    "title",
    "employer",
    "category",
    "work_type",
    "positions",
    "wage",
    "location",
    "valid_until",
    "status",
    "audience",
];

/// `{"postings": [...], "next": CURSOR | null}`
#[derive(Serialize, ToSchema)]
pub struct PostingList {
    pub postings: Vec<PostingView>,
    pub next: Option<String>,
}

/// `POST /v1/postings` → 201 with the stored posting. Every bad field is
/// named in one answer; the data rules of `jobmesh_protocol::rules` apply
/// (audience known here, `valid_until` not before today). With an
/// `external_ref` already used at this office for a posting: 200 with that
/// posting, and nothing is written.
#[utoipa::path(
    post,
    path = "/v1/postings",
    tag = "postings",
    operation_id = "create_posting",
    request_body(content = crate::api::openapi::bodies::PostingCreate, content_type = "application/json"),
    responses(
        (status = 200, description = "The posting made earlier under the same `external_ref` (nothing written).", body = PostingView),
        (status = 201, description = "The stored posting (durable).", body = PostingView),
        (status = 400, description = "A parameter or the body is not valid; `errors` names every bad field.", body = crate::api::openapi::types::Error),
        (status = 401, description = "The API needs a bearer token (`unauthorized`) or the token is wrong (`bad_token`).", body = crate::api::openapi::types::Error),
        (status = 413, description = "The body is larger than 64 KiB.", body = crate::api::openapi::types::Error),
        (status = 503, description = "The office is restoring from a backup (`restoring`) or its store is failing (`store_failing`); nothing was saved.", body = crate::api::openapi::types::Error),
        (status = 507, description = "The office's disk is full (`disk_full`); nothing was saved.", body = crate::api::openapi::types::Error),
    ),
    security((), ("bearer" = [])),
)]
pub async fn create(State(api): State<Arc<Api>>, body: JsonObject) -> ApiResult<(StatusCode, Json<PostingView>)> {
    let f = Fields::new(body, CREATE_FIELDS)?;
    let mut form = Form::default();
    let title = form.take(f.text("title"));
    let employer = form.take(f.text("employer"));
    let category = form.take(f.text("category"));
    let work_type = form.take(f.work_type("work_type").and_then(|w| Fields::required("work_type", w)));
    let positions = form.take(f.positions("positions"));
    let audience = form.take(f.node_id("audience"));
    let wage = form.take(f.opt_text("wage"));
    let location = form.take(f.opt_text("location"));
    let valid_until = form.take(f.date("valid_until"));
    let external_ref = form.take(super::keyed::external_ref(&f));
    if let Some(Some(a)) = &audience {
        if let Err(e) = api.check_audience(a) {
            form.push(Problem::rule("audience", &e));
        }
    }
    if let Some(Some(d)) = &valid_until {
        if let Err(e) = jobmesh_protocol::rules::check_valid_until(d, api.state.corrected_now_ms()) {
            form.push(Problem::rule("valid_until", &e));
        }
    }
    form.finish()?;
    let new = NewPosting {
        title: got(title)?,
        employer: got(employer)?,
        category: got(category)?,
        work_type: got(work_type)?,
        positions: got(positions)?,
        audience: got(audience)?,
        wage: got(wage)?,
        location: got(location)?,
        valid_until: got(valid_until)?,
    };
    if let Some(r) = got(external_ref)? {
        let (status, rec) = super::keyed::create_one(&api, r, NewRecord::Posting(new)).await?;
        let me = api.state.me.clone();
        let view =
            blocking(move || PostingView::load(&api.state.kv, &me, &rec, api.state.corrected_now_ms())).await??;
        let view = view.ok_or_else(|| ApiError::Internal("the engine stored no posting".into()))?;
        return Ok((status, Json(view)));
    }
    let written = api.state.write(move |e, now| e.create_posting(new, now)).await?;
    let rec = written.records.first().ok_or_else(|| ApiError::Internal("the engine stored no record".into()))?;
    let Body::Posting(p) = &rec.body else { return Err(ApiError::Internal("the engine stored no posting".into())) };
    Ok((StatusCode::CREATED, Json(PostingView::new(&api.state.me, rec, p, 0, api.state.corrected_now_ms()))))
}

/// `GET /v1/postings?audience=&category=&work_type=&open=&origin=&limit=&after=`
#[utoipa::path(
    get,
    path = "/v1/postings",
    tag = "postings",
    operation_id = "list_postings",
    params(
        ("audience" = Option<crate::api::openapi::types::NodeIdFilter>, Query, description = "Only postings for this audience."),
        ("category" = Option<String>, Query, description = "Only postings of this category (exact); empty is no filter."),
        ("work_type" = Option<crate::api::openapi::types::WorkTypeFilter>, Query, description = "Only postings of this kind of work."),
        ("open" = Option<crate::api::openapi::types::Flag>, Query, description = "`true`: only open postings with positions left and not expired; `false`: only the others."),
        ("origin" = Option<crate::api::openapi::types::NodeIdFilter>, Query, description = "Only postings published by this office."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 5000, description = "Page size, 1..=5000 in plain digits (default 500)."),
        ("after" = Option<crate::api::openapi::types::Cursor>, Query, description = "Continue after this record id (the previous page's `next`)."),
    ),
    responses(
        (status = 200, description = "A page of postings, by id.", body = PostingList),
        (status = 400, description = "A parameter or the body is not valid; `errors` names every bad field.", body = crate::api::openapi::types::Error),
        (status = 401, description = "The API needs a bearer token (`unauthorized`) or the token is wrong (`bad_token`).", body = crate::api::openapi::types::Error),
    ),
    security((), ("bearer" = [])),
)]
pub async fn list(State(api): State<Arc<Api>>, q: QueryParams) -> ApiResult<Json<PostingList>> {
    let page = PageRequest::from_query(&q)?;
    let audience = q.node_id("audience")?;
    let origin = q.node_id("origin")?;
    let category = q.get("category").filter(|s| !s.is_empty()).map(str::to_owned);
    let work_type = match q.get("work_type").filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(WorkType::parse(s).ok_or_else(|| {
            ApiError::field(
                "work_type",
                format!("{s:?} is not one of {}", WorkType::ALL.map(WorkType::as_str).join(", ")),
            )
        })?),
    };
    let open = q.bool("open")?;
    let prefix = origin.map(|o| RecordId::origin_prefix(&o, Kind::Posting)).unwrap_or_default();
    let page = blocking(move || {
        let kv = &api.state.kv;
        let me = &api.state.me;
        let now = api.state.corrected_now_ms();
        scan_page(kv, Kind::Posting, &prefix, &page, |sr| {
            let Body::Posting(p) = &sr.record.body else { return Ok(None) };
            if audience.as_ref().is_some_and(|a| *a != p.audience)
                || category.as_ref().is_some_and(|c| *c != p.category)
                || work_type.is_some_and(|w| w != p.work_type)
                || (open == Some(true) && p.status != PostingStatus::Open)
            {
                return Ok(None);
            }
            let filled = store::filled(kv, &sr.record.id)?;
            let view = PostingView::new(me, &sr.record, p, filled, now);
            Ok(match open {
                Some(want) if view.is_open() != want => None,
                _ => Some(view),
            })
        })
    })
    .await??;
    Ok(Json(PostingList { postings: page.items, next: page.next }))
}

/// The posting id in the path, checked.
fn path_id(raw: &str) -> ApiResult<RecordId> {
    parse_record_id("id", raw, Kind::Posting)
}

/// `GET /v1/postings/{id}`
#[utoipa::path(
    get,
    path = "/v1/postings/{id}",
    tag = "postings",
    operation_id = "get_posting",
    params(
        ("id" = crate::api::openapi::types::PostingId, Path, description = "The posting's id."),
    ),
    responses(
        (status = 200, description = "The posting as held here.", body = PostingView),
        (status = 400, description = "A parameter or the body is not valid; `errors` names every bad field.", body = crate::api::openapi::types::Error),
        (status = 401, description = "The API needs a bearer token (`unauthorized`) or the token is wrong (`bad_token`).", body = crate::api::openapi::types::Error),
        (status = 404, description = "No such record is held at this node.", body = crate::api::openapi::types::Error),
    ),
    security((), ("bearer" = [])),
)]
pub async fn get(State(api): State<Arc<Api>>, IdPath(raw): IdPath) -> ApiResult<Json<PostingView>> {
    let id = path_id(&raw)?;
    let view = blocking(move || {
        let kv = &api.state.kv;
        match store::get_record(kv, &id)? {
            Some(sr) => PostingView::load(kv, &api.state.me, &sr.record, api.state.corrected_now_ms()),
            None => Ok(None),
        }
    })
    .await??;
    view.map(Json).ok_or_else(|| ApiError::NotFound(format!("id: posting {raw} is not held at this node")))
}

/// `PATCH /v1/postings/{id}` (origin only) → 200 with the new version.
#[utoipa::path(
    patch,
    path = "/v1/postings/{id}",
    tag = "postings",
    operation_id = "patch_posting",
    params(
        ("id" = crate::api::openapi::types::PostingId, Path, description = "The posting's id."),
    ),
    request_body(content = crate::api::openapi::bodies::PostingPatch, content_type = "application/json"),
    responses(
        (status = 200, description = "The posting's new version (durable).", body = PostingView),
        (status = 400, description = "A parameter or the body is not valid; `errors` names every bad field.", body = crate::api::openapi::types::Error),
        (status = 401, description = "The API needs a bearer token (`unauthorized`) or the token is wrong (`bad_token`).", body = crate::api::openapi::types::Error),
        (status = 403, description = "Only the record's origin may change it (`not_origin`).", body = crate::api::openapi::types::Error),
        (status = 404, description = "No such record is held at this node.", body = crate::api::openapi::types::Error),
        (status = 413, description = "The body is larger than 64 KiB.", body = crate::api::openapi::types::Error),
        (status = 503, description = "The office is restoring from a backup (`restoring`) or its store is failing (`store_failing`); nothing was saved.", body = crate::api::openapi::types::Error),
        (status = 507, description = "The office's disk is full (`disk_full`); nothing was saved.", body = crate::api::openapi::types::Error),
    ),
    security((), ("bearer" = [])),
)]
pub async fn patch(State(api): State<Arc<Api>>, IdPath(raw): IdPath, body: JsonObject) -> ApiResult<Json<PostingView>> {
    let id = path_id(&raw)?;
    let f = Fields::new(body, PATCH_FIELDS)?;
    let mut form = Form::default();
    if f.has("audience") {
        form.push(Problem::field(
            "audience",
            Code::AudienceFixed,
            "cannot change: the posting is already held across its audience; publish a new posting instead",
        ));
    }
    let work_type = form.take(if f.has("work_type") {
        f.work_type("work_type").and_then(|w| Fields::required("work_type", w)).map(Some)
    } else {
        Ok(None)
    });
    let status = form.take(if f.has("status") {
        f.status("status").and_then(|s| Fields::required("status", s)).map(Some)
    } else {
        Ok(None)
    });
    let title = form.take(f.patch_required_text("title"));
    let employer = form.take(f.patch_required_text("employer"));
    let category = form.take(f.patch_required_text("category"));
    let positions = form.take(f.opt_positions("positions"));
    let wage = form.take(f.patch_text("wage"));
    let location = form.take(f.patch_text("location"));
    let valid_until = form.take(f.patch_date("valid_until"));
    form.finish()?;
    let patch = PostingPatch {
        title: got(title)?,
        employer: got(employer)?,
        category: got(category)?,
        work_type: got(work_type)?,
        positions: got(positions)?,
        wage: got(wage)?,
        location: got(location)?,
        valid_until: got(valid_until)?,
        status: got(status)?,
    };
    let written = api.state.write(move |e, now| e.update_posting(&id, patch, now)).await?;
    let rec =
        written.records.first().cloned().ok_or_else(|| ApiError::Internal("the engine stored no record".into()))?;
    let me: NodeId = api.state.me.clone();
    let view = blocking(move || PostingView::load(&api.state.kv, &me, &rec, api.state.corrected_now_ms())).await??;
    view.map(Json).ok_or_else(|| ApiError::Internal("the engine stored no posting".into()))
}
