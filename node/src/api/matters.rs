//! `/v1/matters`: record, list, read and change service matters (labor-rights
//! protection, policy consultation, job-search help, …). A matter is written
//! at one office and flows up only; paging and errors follow the other kinds.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use jobmesh_protocol::engine::local::{MatterPatch, NewMatter, NewRecord};
use jobmesh_protocol::matters::{Channel, Matter, MatterCategory, MatterStatus};
use jobmesh_protocol::record::KeyGroup;
use jobmesh_protocol::{store, Body, Kind, NodeId, Record, RecordId};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult, Code};
use super::input::{got, parse_record_id, Fields, Form, IdPath, JsonObject, QueryParams};
use super::openapi::types;
use super::paging::{scan_page, PageRequest};
use super::views::iso_time;
use super::{blocking, Api};

pub const CREATE_FIELDS: &[&str] = &["category", "channel", "key_group", "summary", "status", "external_ref"];
pub const PATCH_FIELDS: &[&str] = &["category", "channel", "key_group", "summary", "status"];

/// A matter as the API returns it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MatterView {
    #[schema(value_type = types::MatterId)]
    pub id: RecordId,
    #[schema(value_type = types::NodeId)]
    pub origin: NodeId,
    pub version: u64,
    #[schema(value_type = types::MatterCategory)]
    pub category: MatterCategory,
    #[schema(value_type = types::Channel)]
    pub channel: Channel,
    #[schema(value_type = Option<types::KeyGroup>)]
    pub key_group: Option<KeyGroup>,
    pub summary: String,
    #[schema(value_type = types::MatterStatus)]
    pub status: MatterStatus,
    pub opened_at: String,
    pub resolved_at: Option<String>,
    pub updated_at: String,
    /// Recorded at this node: only then may it be changed here.
    pub own: bool,
}

impl MatterView {
    fn new(me: &NodeId, rec: &Record, m: &Matter) -> MatterView {
        MatterView {
            id: rec.id.clone(),
            origin: rec.origin.clone(),
            version: rec.version,
            category: m.category,
            channel: m.channel,
            key_group: m.key_group,
            summary: m.summary.clone(),
            status: m.status,
            opened_at: iso_time(m.opened_at),
            resolved_at: m.resolved_at.map(iso_time),
            updated_at: iso_time(m.updated_at),
            own: &rec.origin == me,
        }
    }

    fn of(me: &NodeId, rec: &Record) -> Option<MatterView> {
        match &rec.body {
            Body::Matter(m) => Some(MatterView::new(me, rec, m)),
            _ => None,
        }
    }
}

/// `{"matters": [...], "next": CURSOR | null}`
#[derive(Serialize, ToSchema)]
pub struct MatterList {
    pub matters: Vec<MatterView>,
    pub next: Option<String>,
}

/// A value from a closed list; blank is `None`.
/// A value of a closed list: coded `not_in_list` with the allowed values,
/// as the other kinds' lists are, so the page can say it in Chinese.
fn choice<T>(name: &str, s: Option<&str>, parse: impl Fn(&str) -> Option<T>, allowed: &[&str]) -> ApiResult<Option<T>> {
    match s.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => parse(s).map(Some).ok_or_else(|| {
            let shown: String = s.chars().take(64).collect();
            ApiError::coded(name, Code::NotInList, format!("{shown:?} is not one of {}", allowed.join(", ")))
                .param("allowed", allowed.to_vec())
        }),
    }
}

fn category(name: &str, s: Option<&str>) -> ApiResult<Option<MatterCategory>> {
    choice(name, s, MatterCategory::parse, &MatterCategory::ALL.map(MatterCategory::as_str))
}

fn channel(name: &str, s: Option<&str>) -> ApiResult<Option<Channel>> {
    choice(name, s, Channel::parse, &Channel::ALL.map(Channel::as_str))
}

fn status(name: &str, s: Option<&str>) -> ApiResult<Option<MatterStatus>> {
    choice(name, s, MatterStatus::parse, &MatterStatus::ALL.map(MatterStatus::as_str))
}

fn key_group(name: &str, s: Option<&str>) -> ApiResult<Option<KeyGroup>> {
    choice(name, s, KeyGroup::parse, &KeyGroup::ALL.map(KeyGroup::as_str))
}

/// A closed-list field of a JSON body: its text (absent or null is `None`).
fn body_text(f: &Fields, name: &str) -> ApiResult<Option<String>> {
    f.opt_text(name)
}

/// `POST /v1/matters` `{category, channel, key_group?, summary, status?}` → 201.
#[utoipa::path(
    post,
    path = "/v1/matters",
    tag = "matters",
    operation_id = "create_matter",
    request_body(content = crate::api::openapi::bodies::MatterCreate, content_type = "application/json"),
    responses(
        (status = 200, description = "The matter made earlier under the same `external_ref` (nothing written).", body = MatterView),
        (status = 201, description = "The stored matter (durable).", body = MatterView),
        (status = 400, description = "A parameter or the body is not valid; `errors` names every bad field.", body = crate::api::openapi::types::Error),
        (status = 401, description = "The API needs a bearer token (`unauthorized`) or the token is wrong (`bad_token`).", body = crate::api::openapi::types::Error),
        (status = 413, description = "The body is larger than 64 KiB.", body = crate::api::openapi::types::Error),
        (status = 503, description = "The office is restoring from a backup (`restoring`) or its store is failing (`store_failing`); nothing was saved.", body = crate::api::openapi::types::Error),
        (status = 507, description = "The office's disk is full (`disk_full`); nothing was saved.", body = crate::api::openapi::types::Error),
    ),
    security((), ("bearer" = [])),
)]
pub async fn create(State(api): State<Arc<Api>>, body: JsonObject) -> ApiResult<(StatusCode, Json<MatterView>)> {
    let f = Fields::new(body, CREATE_FIELDS)?;
    // Every bad field in one answer.
    let mut form = Form::default();
    let cat = form.take(
        body_text(&f, "category")
            .and_then(|s| category("category", s.as_deref()))
            .and_then(|c| Fields::required("category", c)),
    );
    let chan = form.take(
        body_text(&f, "channel")
            .and_then(|s| channel("channel", s.as_deref()))
            .and_then(|c| Fields::required("channel", c)),
    );
    let group = form.take(f.key_group("key_group"));
    let summary = form.take(f.text("summary"));
    let st = form.take(body_text(&f, "status").and_then(|s| status("status", s.as_deref())));
    form.finish()?;
    let new = NewMatter {
        category: got(cat)?,
        channel: got(chan)?,
        key_group: got(group)?,
        summary: got(summary)?,
        status: got(st)?.unwrap_or(MatterStatus::Open),
    };
    if let Some(r) = super::keyed::external_ref(&f)? {
        let (status, rec) = super::keyed::create_one(&api, r, NewRecord::Matter(new)).await?;
        let view = MatterView::of(&api.state.me, &rec)
            .ok_or_else(|| ApiError::Internal("the engine stored no matter".into()))?;
        return Ok((status, Json(view)));
    }
    let written = api.state.write(move |e, now| e.open_matter(new, now)).await?;
    let rec = written.records.first().ok_or_else(|| ApiError::Internal("the engine stored no record".into()))?;
    let view =
        MatterView::of(&api.state.me, rec).ok_or_else(|| ApiError::Internal("the engine stored no matter".into()))?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// `GET /v1/matters?office=&category=&channel=&key_group=&status=&limit=&after=`
#[utoipa::path(
    get,
    path = "/v1/matters",
    tag = "matters",
    operation_id = "list_matters",
    params(
        ("office" = Option<crate::api::openapi::types::NodeIdFilter>, Query, description = "Only matters recorded at this office."),
        ("category" = Option<crate::api::openapi::types::MatterCategoryFilter>, Query, description = "Only matters of this category."),
        ("channel" = Option<crate::api::openapi::types::ChannelFilter>, Query, description = "Only matters that came through this channel."),
        ("key_group" = Option<crate::api::openapi::types::KeyGroupFilter>, Query, description = "Only matters of people of this key group."),
        ("status" = Option<crate::api::openapi::types::MatterStatusFilter>, Query, description = "Only open or only resolved matters."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 5000, description = "Page size, 1..=5000 in plain digits (default 500)."),
        ("after" = Option<crate::api::openapi::types::Cursor>, Query, description = "Continue after this record id (the previous page's `next`)."),
    ),
    responses(
        (status = 200, description = "A page of matters, by id.", body = MatterList),
        (status = 400, description = "A parameter or the body is not valid; `errors` names every bad field.", body = crate::api::openapi::types::Error),
        (status = 401, description = "The API needs a bearer token (`unauthorized`) or the token is wrong (`bad_token`).", body = crate::api::openapi::types::Error),
    ),
    security((), ("bearer" = [])),
)]
pub async fn list(State(api): State<Arc<Api>>, q: QueryParams) -> ApiResult<Json<MatterList>> {
    let page = PageRequest::from_query(&q)?;
    let office = q.node_id("office")?;
    let category = category("category", q.get("category"))?;
    let channel = channel("channel", q.get("channel"))?;
    let key_group = key_group("key_group", q.get("key_group"))?;
    let status = status("status", q.get("status"))?;
    let prefix = office.map(|o| RecordId::origin_prefix(&o, Kind::Matter)).unwrap_or_default();
    let page = blocking(move || {
        let me = &api.state.me;
        scan_page(&api.state.kv, Kind::Matter, &prefix, &page, |sr| {
            let Body::Matter(m) = &sr.record.body else { return Ok(None) };
            let keep = category.is_none_or(|c| c == m.category)
                && channel.is_none_or(|c| c == m.channel)
                && key_group.is_none_or(|g| Some(g) == m.key_group)
                && status.is_none_or(|s| s == m.status);
            Ok(keep.then(|| MatterView::new(me, &sr.record, m)))
        })
    })
    .await??;
    Ok(Json(MatterList { matters: page.items, next: page.next }))
}

/// `GET /v1/matters/{id}`
#[utoipa::path(
    get,
    path = "/v1/matters/{id}",
    tag = "matters",
    operation_id = "get_matter",
    params(
        ("id" = crate::api::openapi::types::MatterId, Path, description = "The matter's id."),
    ),
    responses(
        (status = 200, description = "The matter as held here.", body = MatterView),
        (status = 400, description = "A parameter or the body is not valid; `errors` names every bad field.", body = crate::api::openapi::types::Error),
        (status = 401, description = "The API needs a bearer token (`unauthorized`) or the token is wrong (`bad_token`).", body = crate::api::openapi::types::Error),
        (status = 404, description = "No such record is held at this node.", body = crate::api::openapi::types::Error),
    ),
    security((), ("bearer" = [])),
)]
pub async fn get(State(api): State<Arc<Api>>, IdPath(raw): IdPath) -> ApiResult<Json<MatterView>> {
    let id = parse_record_id("id", &raw, Kind::Matter)?;
    let view = blocking(move || -> ApiResult<Option<MatterView>> {
        Ok(store::get_record(&api.state.kv, &id)?.and_then(|sr| MatterView::of(&api.state.me, &sr.record)))
    })
    .await??;
    view.map(Json).ok_or_else(|| ApiError::NotFound(format!("id: matter {raw} is not held at this node")))
}

/// `PATCH /v1/matters/{id}` (origin only), e.g. `{"status": "resolved"}` → 200
/// with the new version. Resolving sets `resolved_at`; reopening clears it.
#[utoipa::path(
    patch,
    path = "/v1/matters/{id}",
    tag = "matters",
    operation_id = "patch_matter",
    params(
        ("id" = crate::api::openapi::types::MatterId, Path, description = "The matter's id."),
    ),
    request_body(content = crate::api::openapi::bodies::MatterPatch, content_type = "application/json"),
    responses(
        (status = 200, description = "The matter's new version (durable).", body = MatterView),
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
pub async fn patch(State(api): State<Arc<Api>>, IdPath(raw): IdPath, body: JsonObject) -> ApiResult<Json<MatterView>> {
    let id = parse_record_id("id", &raw, Kind::Matter)?;
    let f = Fields::new(body, PATCH_FIELDS)?;
    let required = |name: &str, v: Option<String>| -> ApiResult<Option<String>> {
        match (f.has(name), v) {
            (true, None) => Err(ApiError::field(name, "must not be null or empty")),
            (_, v) => Ok(v),
        }
    };
    let patch = MatterPatch {
        category: category("category", required("category", body_text(&f, "category")?)?.as_deref())?,
        channel: channel("channel", required("channel", body_text(&f, "channel")?)?.as_deref())?,
        key_group: if f.has("key_group") { Some(f.key_group("key_group")?) } else { None },
        summary: f.patch_required_text("summary")?,
        status: status("status", required("status", body_text(&f, "status")?)?.as_deref())?,
    };
    let written = api.state.write(move |e, now| e.update_matter(&id, patch, now)).await?;
    let rec = written.records.first().ok_or_else(|| ApiError::Internal("the engine stored no record".into()))?;
    MatterView::of(&api.state.me, rec).map(Json).ok_or_else(|| ApiError::Internal("the engine stored no matter".into()))
}
