//! `/v1/workers`: register, list and read job seekers.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use jobmesh_protocol::engine::local::{NewRecord, NewWorker};
use jobmesh_protocol::record::KeyGroup;
use jobmesh_protocol::{store, Body, Kind, RecordId};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult, Problem};
use super::input::{got, parse_record_id, Fields, Form, IdPath, JsonObject, QueryParams};
use super::paging::{scan_page, PageRequest};
use super::views::WorkerView;
use super::{blocking, Api};

pub const CREATE_FIELDS: &[&str] = &["name", "key_group", "phone", "skills", "wanted_work_type", "external_ref"];

/// `{"workers": [...], "next": CURSOR | null}`
#[derive(Serialize, ToSchema)]
pub struct WorkerList {
    pub workers: Vec<WorkerView>,
    pub next: Option<String>,
}

/// `POST /v1/workers` → 201 with the stored worker.
#[utoipa::path(
    post,
    path = "/v1/workers",
    tag = "workers",
    operation_id = "create_worker",
    request_body(content = crate::api::openapi::bodies::WorkerCreate, content_type = "application/json"),
    responses(
        (status = 200, description = "The worker made earlier under the same `external_ref` (nothing written).", body = WorkerView),
        (status = 201, description = "The stored worker (durable).", body = WorkerView),
        (status = 400, description = "A parameter or the body is not valid; `errors` names every bad field.", body = crate::api::openapi::types::Error),
        (status = 401, description = "The API needs a bearer token (`unauthorized`) or the token is wrong (`bad_token`).", body = crate::api::openapi::types::Error),
        (status = 413, description = "The body is larger than 64 KiB.", body = crate::api::openapi::types::Error),
        (status = 503, description = "The office is restoring from a backup (`restoring`) or its store is failing (`store_failing`); nothing was saved.", body = crate::api::openapi::types::Error),
        (status = 507, description = "The office's disk is full (`disk_full`); nothing was saved.", body = crate::api::openapi::types::Error),
    ),
    security((), ("bearer" = [])),
)]
pub async fn create(State(api): State<Arc<Api>>, body: JsonObject) -> ApiResult<(StatusCode, Json<WorkerView>)> {
    let f = Fields::new(body, CREATE_FIELDS)?;
    let mut form = Form::default();
    let name = form.take(f.text("name"));
    let key_group = form.take(f.key_group("key_group").and_then(|k| Fields::required("key_group", k)));
    let phone = form.take(f.opt_text("phone"));
    if let Some(Some(p)) = &phone {
        if let Err(e) = jobmesh_protocol::rules::check_phone(p) {
            form.push(Problem::rule("phone", &e));
        }
    }
    let skills = form.take(f.string_list("skills"));
    let wanted_work_type = form.take(f.work_type("wanted_work_type"));
    let external_ref = form.take(super::keyed::external_ref(&f));
    form.finish()?;
    let new = NewWorker {
        name: got(name)?,
        key_group: got(key_group)?,
        phone: got(phone)?,
        skills: got(skills)?,
        wanted_work_type: got(wanted_work_type)?,
    };
    if let Some(r) = got(external_ref)? {
        let (status, rec) = super::keyed::create_one(&api, r, NewRecord::Worker(new)).await?;
        let view = blocking(move || WorkerView::load(&api.state.kv, &rec)).await??;
        let view = view.ok_or_else(|| ApiError::Internal("the engine stored no worker".into()))?;
        return Ok((status, Json(view)));
    }
    let written = api.state.write(move |e, now| e.register_worker(new, now)).await?;
    let rec = written.records.first().ok_or_else(|| ApiError::Internal("the engine stored no record".into()))?;
    let Body::Worker(w) = &rec.body else { return Err(ApiError::Internal("the engine stored no worker".into())) };
    Ok((StatusCode::CREATED, Json(WorkerView::new(rec, w, 0))))
}

/// `GET /v1/workers?office=&key_group=&status=placed|seeking&q=&limit=&after=`
///
/// `q` searches by name (a part of it, any case) or phone (a run of its
/// digits, ignoring spaces and dashes), for the placement form.
#[utoipa::path(
    get,
    path = "/v1/workers",
    tag = "workers",
    operation_id = "list_workers",
    params(
        ("office" = Option<crate::api::openapi::types::NodeIdFilter>, Query, description = "Only workers registered at this office."),
        ("key_group" = Option<crate::api::openapi::types::KeyGroupFilter>, Query, description = "Only workers of this key group."),
        ("status" = Option<crate::api::openapi::types::WorkerStatusFilter>, Query, description = "Only placed or only seeking workers."),
        ("q" = Option<String>, Query, description = "A part of the name (any case) or a run of at least 3 phone digits."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 5000, description = "Page size, 1..=5000 in plain digits (default 500)."),
        ("after" = Option<crate::api::openapi::types::Cursor>, Query, description = "Continue after this record id (the previous page's `next`)."),
    ),
    responses(
        (status = 200, description = "A page of workers, by id.", body = WorkerList),
        (status = 400, description = "A parameter or the body is not valid; `errors` names every bad field.", body = crate::api::openapi::types::Error),
        (status = 401, description = "The API needs a bearer token (`unauthorized`) or the token is wrong (`bad_token`).", body = crate::api::openapi::types::Error),
    ),
    security((), ("bearer" = [])),
)]
pub async fn list(State(api): State<Arc<Api>>, q: QueryParams) -> ApiResult<Json<WorkerList>> {
    let page = PageRequest::from_query(&q)?;
    let office = q.node_id("office")?;
    let key_group = match q.get("key_group").filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(KeyGroup::parse(s).ok_or_else(|| {
            ApiError::field(
                "key_group",
                format!("{s:?} is not one of {}", KeyGroup::ALL.map(KeyGroup::as_str).join(", ")),
            )
        })?),
    };
    let status = match q.get("status").filter(|s| !s.is_empty()) {
        None => None,
        Some(s @ ("placed" | "seeking")) => Some(s.to_owned()),
        Some(s) => return Err(ApiError::field("status", format!("{s:?} is not placed or seeking"))),
    };
    let search = q.get("q").map(str::trim).filter(|s| !s.is_empty()).map(Search::new);
    let prefix = office.map(|o| RecordId::origin_prefix(&o, Kind::Worker)).unwrap_or_default();
    let page = blocking(move || {
        let kv = &api.state.kv;
        scan_page(kv, Kind::Worker, &prefix, &page, |sr| {
            let Body::Worker(w) = &sr.record.body else { return Ok(None) };
            if key_group.is_some_and(|k| k != w.key_group) || search.as_ref().is_some_and(|s| !s.matches(w)) {
                return Ok(None);
            }
            let view = WorkerView::new(&sr.record, w, store::placed(kv, &sr.record.id)?);
            Ok(match &status {
                Some(s) if s != view.status => None,
                _ => Some(view),
            })
        })
    })
    .await??;
    Ok(Json(WorkerList { workers: page.items, next: page.next }))
}

/// A worker search: by a part of the name, or a run of phone digits.
struct Search {
    name: String,
    digits: String,
}

impl Search {
    fn new(q: &str) -> Search {
        let digits: String = q.chars().filter(char::is_ascii_digit).collect();
        let only_digits = q.chars().all(|c| c.is_ascii_digit() || " -+".contains(c));
        Search { name: q.to_lowercase(), digits: if only_digits { digits } else { String::new() } }
    }

    fn matches(&self, w: &jobmesh_protocol::record::Worker) -> bool {
        if w.name.to_lowercase().contains(&self.name) {
            return true;
        }
        let phone: String = w.phone.as_deref().unwrap_or("").chars().filter(char::is_ascii_digit).collect();
        self.digits.len() >= 3 && phone.contains(&self.digits)
    }
}

/// `GET /v1/workers/{id}`
#[utoipa::path(
    get,
    path = "/v1/workers/{id}",
    tag = "workers",
    operation_id = "get_worker",
    params(
        ("id" = crate::api::openapi::types::WorkerId, Path, description = "The worker's id."),
    ),
    responses(
        (status = 200, description = "The worker as held here.", body = WorkerView),
        (status = 400, description = "A parameter or the body is not valid; `errors` names every bad field.", body = crate::api::openapi::types::Error),
        (status = 401, description = "The API needs a bearer token (`unauthorized`) or the token is wrong (`bad_token`).", body = crate::api::openapi::types::Error),
        (status = 404, description = "No such record is held at this node.", body = crate::api::openapi::types::Error),
    ),
    security((), ("bearer" = [])),
)]
pub async fn get(State(api): State<Arc<Api>>, IdPath(raw): IdPath) -> ApiResult<Json<WorkerView>> {
    let id = parse_record_id("id", &raw, Kind::Worker)?;
    let view = blocking(move || {
        let kv = &api.state.kv;
        match store::get_record(kv, &id)? {
            Some(sr) => WorkerView::load(kv, &sr.record),
            None => Ok(None),
        }
    })
    .await??;
    view.map(Json).ok_or_else(|| ApiError::NotFound(format!("id: worker {raw} is not held at this node")))
}
