//! Exports for staff and the department: `GET /v1/summary.csv|xlsx` and
//! `GET /v1/postings.csv|xlsx`.
//!
//! Both are built by calling the JSON handlers themselves
//! ([`summary::get`], [`postings::list`]) and laying their answer out as
//! tables, so an export always says what the API says, and follows any
//! change to how the figures are computed. Columns come from the JSON
//! (nested objects flattened to `totals.postings_open`), so a new figure
//! shows up in the export without a change here; headers are the JSON keys
//! in English, or Chinese names with `?lang=zh` (the default when
//! `Accept-Language` starts with `zh`).
//!
//! The postings list is read page by page (5,000 a page): the CSV is
//! streamed as pages arrive, and the xlsx is written in rust_xlsxwriter's
//! constant-memory mode, so a large list is never held whole.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use jobmesh_import::template::Lang;
use serde_json::Value;

use super::error::{ApiError, ApiResult};
use super::import::lang_of;
use super::input::QueryParams;
use super::paging::MAX_LIMIT;
use super::{postings, summary, Api};

/// Most postings one export holds (an Excel sheet has 1,048,576 rows).
pub const MAX_EXPORT_ROWS: usize = 1_000_000;

/// A table: its sheet name, column keys and rows of JSON values.
pub struct Table {
    pub name: &'static str,
    pub name_zh: &'static str,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

/// Chinese names of the keys the exports use.
fn zh_key(key: &str) -> Option<&'static str> {
    Some(match key {
        "node_id" => "机构编号",
        "root" => "辖区",
        "parent" => "上级机构",
        "depth" => "层级深度",
        "tier" => "层级",
        "name" => "名称",
        "name_zh" => "中文名称",
        "generated_at" => "生成时间",
        "stale_after_s" => "过期阈值(秒)",
        "reported_at" => "上报时间",
        "age_s" => "数据时长(秒)",
        "stale" => "已过期",
        "missing" => "未上报",
        "link_down" => "链路中断",
        "offices" => "已上报机构",
        "expected" => "应上报机构",
        "postings_open" => "在招岗位信息",
        "positions_open" => "空缺岗位数",
        "positions_filled" => "已招岗位数",
        "workers_registered" => "登记求职人数",
        "workers_seeking" => "求职中人数",
        "placements" => "已就业人数",
        "day" => "日期",
        "postings_published" => "新发布岗位",
        "category" => "职业类别",
        "work_type" => "用工类型",
        "key_group" => "重点群体",
        "id" => "编号",
        "origin" => "发布机构",
        "version" => "版本",
        "title" => "岗位名称",
        "employer" => "招聘单位",
        "positions" => "岗位数",
        "filled" => "已招",
        "remaining" => "剩余",
        "wage" => "薪资",
        "location" => "工作地点",
        "valid_until" => "有效期至",
        "status" => "状态",
        "audience" => "发布范围",
        "created_at" => "发布时间",
        "updated_at" => "更新时间",
        "own" => "本机构发布",
        "external_ref" => "外部编号",
        "opened" => "受理事项",
        "resolved" => "已办结",
        "open_now" => "办理中",
        _ => return None,
    })
}

/// A column's header: the key, or its Chinese name (`totals.x` → `本级x`,
/// `subtree.x` → `辖区x`, `reporting.x` → `x`).
pub fn header(key: &str, lang: Lang) -> String {
    if lang == Lang::En {
        return key.to_owned();
    }
    let (prefix, last) = match key.rsplit_once('.') {
        Some((p, l)) => (p, l),
        None => ("", key),
    };
    let p = match prefix {
        "" | "reporting" => "",
        "totals" => "本级",
        "subtree" => "辖区",
        "matters" => "本级服务事项",
        "matters_subtree" => "辖区服务事项",
        _ => return zh_key(last).map(|z| format!("{prefix}.{z}")).unwrap_or_else(|| key.to_owned()),
    };
    zh_key(last).map(|z| format!("{p}{z}")).unwrap_or_else(|| key.to_owned())
}

/// Flatten nested objects into `a.b` keys, in the JSON's order.
fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&key, v, out);
            }
        }
        other => out.push((prefix.to_owned(), other.clone())),
    }
}

/// Rows of objects as a table whose columns are every key seen, in order
/// of first appearance. A null object (a missing office's `totals`)
/// leaves its columns empty.
fn table_of(name: &'static str, name_zh: &'static str, items: &[Value], skip: &[&str]) -> Table {
    let flat: Vec<Vec<(String, Value)>> = items
        .iter()
        .map(|v| {
            let mut out = Vec::new();
            flatten("", v, &mut out);
            out.retain(|(k, v)| {
                let empty_object = v.is_null() && !k.contains('.') && is_object_key(k);
                !(skip.contains(&k.as_str()) || empty_object)
            });
            out
        })
        .collect();
    let mut columns: Vec<String> = Vec::new();
    for row in &flat {
        for (k, _) in row {
            if !columns.contains(k) {
                columns.push(k.clone());
            }
        }
    }
    let rows = flat
        .into_iter()
        .map(|row| {
            let m: HashMap<String, Value> = row.into_iter().collect();
            columns.iter().map(|c| m.get(c).cloned().unwrap_or(Value::Null)).collect()
        })
        .collect();
    Table { name, name_zh, columns, rows }
}

/// Keys whose value is an object when present (null for a missing office).
fn is_object_key(k: &str) -> bool {
    matches!(k, "totals" | "in_flight" | "matters")
}

/// Breakdown maps (`{"manufacturing": {...}}`) as rows with the key first.
fn map_table(name: &'static str, name_zh: &'static str, key: &str, map: &Value) -> Table {
    let items: Vec<Value> = map
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let mut o = serde_json::Map::new();
                    o.insert(key.to_owned(), Value::String(k.clone()));
                    if let Value::Object(f) = v {
                        o.extend(f.clone());
                    }
                    Value::Object(o)
                })
                .collect()
        })
        .unwrap_or_default();
    table_of(name, name_zh, &items, &[])
}

/// The summary's tables: overview, offices, daily (within `from..=to`) and
/// the three breakdowns.
pub fn summary_tables(view: &Value, from: Option<&str>, to: Option<&str>) -> Vec<Table> {
    let mut overview = serde_json::Map::new();
    for k in ["node_id", "root", "generated_at", "stale_after_s", "reporting", "subtree"] {
        if let Some(v) = view.get(k) {
            overview.insert(k.to_owned(), v.clone());
        }
    }
    let nodes = view.get("nodes").and_then(Value::as_array).cloned().unwrap_or_default();
    let daily: Vec<Value> = view
        .get("daily")
        .and_then(Value::as_array)
        .map(|days| {
            days.iter()
                .filter(|d| {
                    let day = d.get("day").and_then(Value::as_str).unwrap_or("");
                    from.is_none_or(|f| day >= f) && to.is_none_or(|t| day <= t)
                })
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    vec![
        table_of("overview", "总览", &[Value::Object(overview)], &[]),
        table_of("offices", "机构", &nodes, &["in_flight"]),
        table_of("daily", "每日", &daily, &[]),
        map_table("by_category", "按职业类别", "category", view.get("by_category").unwrap_or(&Value::Null)),
        map_table("by_work_type", "按用工类型", "work_type", view.get("by_work_type").unwrap_or(&Value::Null)),
        map_table("by_key_group", "按重点群体", "key_group", view.get("by_key_group").unwrap_or(&Value::Null)),
    ]
}

fn date_param(q: &QueryParams, name: &str) -> ApiResult<Option<String>> {
    match q.get(name).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) if jobmesh_protocol::time::is_iso_date(s) => Ok(Some(s.to_owned())),
        Some(s) => Err(ApiError::field(name, format!("{s:?} is not a date YYYY-MM-DD"))),
    }
}

/// Call `/v1/summary` itself and lay it out.
async fn summary_of(api: &Arc<Api>, q: &QueryParams) -> ApiResult<Vec<Table>> {
    let from = date_param(q, "from")?;
    let to = date_param(q, "to")?;
    let mut params = HashMap::new();
    if let Some(n) = q.get("node") {
        params.insert("node".to_owned(), n.to_owned());
    }
    let view = summary::get(State(api.clone()), QueryParams(params)).await?.0;
    let json =
        serde_json::to_value(&view).map_err(|e| ApiError::Internal(format!("cannot lay out the summary: {e}")))?;
    Ok(summary_tables(&json, from.as_deref(), to.as_deref()))
}

fn cell_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(cell_text).collect::<Vec<_>>().join("; "),
        other => other.to_string(),
    }
}

fn csv_bytes(t: &Table, lang: Lang) -> Result<Vec<u8>, ApiError> {
    let mut w = csv::Writer::from_writer(b"\xEF\xBB\xBF".to_vec());
    let bad = |e: csv::Error| ApiError::Internal(format!("cannot write the CSV: {e}"));
    w.write_record(t.columns.iter().map(|c| header(c, lang))).map_err(bad)?;
    for row in &t.rows {
        w.write_record(row.iter().map(cell_text)).map_err(bad)?;
    }
    w.into_inner().map_err(|e| ApiError::Internal(format!("cannot write the CSV: {e}")))
}

fn write_cell(
    ws: &mut rust_xlsxwriter::Worksheet,
    r: u32,
    c: u16,
    v: &Value,
) -> Result<(), rust_xlsxwriter::XlsxError> {
    match v {
        Value::Null => {}
        Value::Bool(b) => {
            ws.write_boolean(r, c, *b)?;
        }
        Value::Number(n) => {
            ws.write_number(r, c, n.as_f64().unwrap_or(0.0))?;
        }
        other => {
            ws.write_string(r, c, cell_text(other))?;
        }
    }
    Ok(())
}

fn xlsx_err(e: rust_xlsxwriter::XlsxError) -> ApiError {
    ApiError::Internal(format!("cannot write the workbook: {e}"))
}

fn xlsx_bytes(tables: &[Table], lang: Lang) -> Result<Vec<u8>, ApiError> {
    let mut wb = rust_xlsxwriter::Workbook::new();
    for t in tables {
        let ws = wb.add_worksheet();
        ws.set_name(if lang == Lang::Zh { t.name_zh } else { t.name }).map_err(xlsx_err)?;
        for (c, key) in t.columns.iter().enumerate() {
            ws.write_string(0, c as u16, header(key, lang)).map_err(xlsx_err)?;
        }
        for (r, row) in t.rows.iter().enumerate() {
            for (c, v) in row.iter().enumerate() {
                write_cell(ws, r as u32 + 1, c as u16, v).map_err(xlsx_err)?;
            }
        }
    }
    wb.save_to_buffer().map_err(xlsx_err)
}

fn download(bytes: Vec<u8>, content_type: &'static str, name: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
                    .unwrap_or_else(|_| HeaderValue::from_static("attachment")),
            ),
        ],
        bytes,
    )
        .into_response()
}

const CSV: &str = "text/csv; charset=utf-8";
const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// `GET /v1/summary.csv?node=&from=&to=&lang=&table=offices|overview|daily|by_category|by_work_type|by_key_group`
#[utoipa::path(
    get,
    path = "/v1/summary.csv",
    tag = "figures",
    operation_id = "summary_csv",
    params(
        ("node" = Option<crate::api::openapi::types::NodeIdFilter>, Query, description = "The office whose subtree to show (default: this node); it must be in this node's subtree."),
        ("from" = Option<crate::api::openapi::types::DayFilter>, Query, description = "First day (`YYYY-MM-DD`) of the daily figures to include (within the last 30 local days)."),
        ("to" = Option<crate::api::openapi::types::DayFilter>, Query, description = "Last day (`YYYY-MM-DD`) of the daily figures to include."),
        ("lang" = Option<crate::api::openapi::types::Lang>, Query, description = "`zh` or `en` headers (default: Chinese unless `Accept-Language` starts with another language)."),
        ("table" = Option<crate::api::openapi::types::SummaryTable>, Query, description = "Which table: `offices` (default: one row per office with `reported_at`, `age_s`, `stale`, `missing`, `link_down` and every figure, own and subtree), `overview`, `daily`, `by_category`, `by_work_type`, `by_key_group`."),
    ),
    responses(
        (status = 200, description = "The table as CSV (UTF-8 with a BOM); columns are `/v1/summary`'s keys, nested ones joined with `.`.", content_type = "text/csv", body = String),
        (status = 400, description = "A parameter or the body is not valid; `errors` names every bad field.", body = crate::api::openapi::types::Error),
        (status = 401, description = "The API needs a bearer token (`unauthorized`) or the token is wrong (`bad_token`).", body = crate::api::openapi::types::Error),
        (status = 404, description = "`node` is not in this node's subtree, or not known here.", body = crate::api::openapi::types::Error),
    ),
    security((), ("bearer" = [])),
)]
pub async fn summary_csv(State(api): State<Arc<Api>>, q: QueryParams, headers: HeaderMap) -> ApiResult<Response> {
    let lang = lang_of(&q, &headers)?;
    let want = q.get("table").filter(|s| !s.is_empty()).unwrap_or("offices").to_owned();
    let tables = summary_of(&api, &q).await?;
    let names: Vec<&str> = tables.iter().map(|t| t.name).collect();
    let t = tables
        .iter()
        .find(|t| t.name == want)
        .ok_or_else(|| ApiError::field("table", format!("{want:?} is not one of {}", names.join(", "))))?;
    Ok(download(csv_bytes(t, lang)?, CSV, format!("summary-{want}.csv")))
}

/// `GET /v1/summary.xlsx?node=&from=&to=&lang=` — one sheet per table.
#[utoipa::path(
    get,
    path = "/v1/summary.xlsx",
    tag = "figures",
    operation_id = "summary_xlsx",
    params(
        ("node" = Option<crate::api::openapi::types::NodeIdFilter>, Query, description = "The office whose subtree to show (default: this node); it must be in this node's subtree."),
        ("from" = Option<crate::api::openapi::types::DayFilter>, Query, description = "First day (`YYYY-MM-DD`) of the daily figures to include (within the last 30 local days)."),
        ("to" = Option<crate::api::openapi::types::DayFilter>, Query, description = "Last day (`YYYY-MM-DD`) of the daily figures to include."),
        ("lang" = Option<crate::api::openapi::types::Lang>, Query, description = "`zh` or `en` headers (default: Chinese unless `Accept-Language` starts with another language)."),
    ),
    responses(
        (status = 200, description = "A workbook with one sheet per table of `/v1/summary.csv` (`offices` second, after `overview`).", content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", body = Vec<u8>),
        (status = 400, description = "A parameter or the body is not valid; `errors` names every bad field.", body = crate::api::openapi::types::Error),
        (status = 401, description = "The API needs a bearer token (`unauthorized`) or the token is wrong (`bad_token`).", body = crate::api::openapi::types::Error),
        (status = 404, description = "`node` is not in this node's subtree, or not known here.", body = crate::api::openapi::types::Error),
    ),
    security((), ("bearer" = [])),
)]
pub async fn summary_xlsx(State(api): State<Arc<Api>>, q: QueryParams, headers: HeaderMap) -> ApiResult<Response> {
    let lang = lang_of(&q, &headers)?;
    let tables = summary_of(&api, &q).await?;
    let bytes = super::blocking(move || xlsx_bytes(&tables, lang)).await??;
    Ok(download(bytes, XLSX, "summary.xlsx".into()))
}

/// The columns of a postings export (the fields of the JSON view).
pub const POSTING_COLUMNS: &[&str] = &[
    "id",
    "origin",
    "title",
    "employer",
    "category",
    "work_type",
    "positions",
    "filled",
    "remaining",
    "wage",
    "location",
    "valid_until",
    "status",
    "audience",
    "created_at",
    "updated_at",
    "version",
    "external_ref",
];

/// One page of `/v1/postings` with the request's filters, as rows.
async fn postings_page(
    api: &Arc<Api>,
    q: &QueryParams,
    after: Option<String>,
) -> ApiResult<(Vec<Vec<Value>>, Option<String>)> {
    let mut params: HashMap<String, String> = q.0.clone();
    params.insert("limit".into(), MAX_LIMIT.to_string());
    params.remove("after");
    if let Some(a) = after {
        params.insert("after".into(), a);
    }
    let page = postings::list(State(api.clone()), QueryParams(params)).await?.0;
    let rows = page
        .postings
        .iter()
        .map(|p| {
            let v = serde_json::to_value(p).unwrap_or(Value::Null);
            POSTING_COLUMNS.iter().map(|c| v.get(*c).cloned().unwrap_or(Value::Null)).collect()
        })
        .collect();
    Ok((rows, page.next))
}

/// `GET /v1/postings.csv?audience=&category=&work_type=&open=&origin=&lang=` — streamed.
#[utoipa::path(
    get,
    path = "/v1/postings.csv",
    tag = "postings",
    operation_id = "postings_csv",
    params(
        ("audience" = Option<crate::api::openapi::types::NodeIdFilter>, Query, description = "Only postings for this audience."),
        ("category" = Option<String>, Query, description = "Only postings of this category (exact); empty is no filter."),
        ("work_type" = Option<crate::api::openapi::types::WorkTypeFilter>, Query, description = "Only postings of this kind of work."),
        ("open" = Option<crate::api::openapi::types::Flag>, Query, description = "`true`: only open postings with positions left and not expired; `false`: only the others."),
        ("origin" = Option<crate::api::openapi::types::NodeIdFilter>, Query, description = "Only postings published by this office."),
        ("lang" = Option<crate::api::openapi::types::Lang>, Query, description = "`zh` or `en` headers (default: Chinese unless `Accept-Language` starts with another language)."),
    ),
    responses(
        (status = 200, description = "Every posting that `/v1/postings` lists with these filters (all pages, at most 1,000,000), as CSV (UTF-8 with a BOM), streamed.", content_type = "text/csv", body = String),
        (status = 400, description = "A parameter or the body is not valid; `errors` names every bad field.", body = crate::api::openapi::types::Error),
        (status = 401, description = "The API needs a bearer token (`unauthorized`) or the token is wrong (`bad_token`).", body = crate::api::openapi::types::Error),
    ),
    security((), ("bearer" = [])),
)]
pub async fn postings_csv(State(api): State<Arc<Api>>, q: QueryParams, headers: HeaderMap) -> ApiResult<Response> {
    let lang = lang_of(&q, &headers)?;
    // The first page is read before answering, so a bad filter is a 400.
    let (first, mut next) = postings_page(&api, &q, None).await?;
    let head = Table {
        name: "postings",
        name_zh: "岗位",
        columns: POSTING_COLUMNS.iter().map(|s| s.to_string()).collect(),
        rows: first,
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let first_bytes = csv_bytes(&head, lang)?;
    tokio::spawn(async move {
        if tx.send(Ok(first_bytes)).await.is_err() {
            return;
        }
        let mut sent = head.rows.len();
        while let Some(after) = next.take() {
            if sent >= MAX_EXPORT_ROWS {
                break;
            }
            match postings_page(&api, &q, Some(after)).await {
                Ok((rows, n)) => {
                    sent += rows.len();
                    next = n;
                    let mut w = csv::Writer::from_writer(Vec::new());
                    for row in &rows {
                        let _ = w.write_record(row.iter().map(cell_text));
                    }
                    if tx.send(Ok(w.into_inner().unwrap_or_default())).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                    return;
                }
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    let mut resp = Body::from_stream(stream).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(CSV));
    h.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment; filename=\"postings.csv\""));
    Ok(resp)
}

/// `GET /v1/postings.xlsx?…` — written in constant-memory mode by a
/// blocking task while the pages are read.
#[utoipa::path(
    get,
    path = "/v1/postings.xlsx",
    tag = "postings",
    operation_id = "postings_xlsx",
    params(
        ("audience" = Option<crate::api::openapi::types::NodeIdFilter>, Query, description = "Only postings for this audience."),
        ("category" = Option<String>, Query, description = "Only postings of this category (exact); empty is no filter."),
        ("work_type" = Option<crate::api::openapi::types::WorkTypeFilter>, Query, description = "Only postings of this kind of work."),
        ("open" = Option<crate::api::openapi::types::Flag>, Query, description = "`true`: only open postings with positions left and not expired; `false`: only the others."),
        ("origin" = Option<crate::api::openapi::types::NodeIdFilter>, Query, description = "Only postings published by this office."),
        ("lang" = Option<crate::api::openapi::types::Lang>, Query, description = "`zh` or `en` headers (default: Chinese unless `Accept-Language` starts with another language)."),
    ),
    responses(
        (status = 200, description = "The same rows as `/v1/postings.csv`, as a workbook of one sheet.", content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", body = Vec<u8>),
        (status = 400, description = "A parameter or the body is not valid; `errors` names every bad field.", body = crate::api::openapi::types::Error),
        (status = 401, description = "The API needs a bearer token (`unauthorized`) or the token is wrong (`bad_token`).", body = crate::api::openapi::types::Error),
    ),
    security((), ("bearer" = [])),
)]
pub async fn postings_xlsx(State(api): State<Arc<Api>>, q: QueryParams, headers: HeaderMap) -> ApiResult<Response> {
    let lang = lang_of(&q, &headers)?;
    let (first, mut next) = postings_page(&api, &q, None).await?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Vec<Value>>>(2);
    let writer = tokio::task::spawn_blocking(move || -> ApiResult<Vec<u8>> {
        let mut wb = rust_xlsxwriter::Workbook::new();
        let ws = wb.add_worksheet_with_constant_memory();
        ws.set_name(if lang == Lang::Zh { "岗位" } else { "postings" }).map_err(xlsx_err)?;
        for (c, key) in POSTING_COLUMNS.iter().enumerate() {
            ws.write_string(0, c as u16, header(key, lang)).map_err(xlsx_err)?;
        }
        let mut r = 1u32;
        while let Some(rows) = rx.blocking_recv() {
            for row in rows {
                for (c, v) in row.iter().enumerate() {
                    write_cell(ws, r, c as u16, v).map_err(xlsx_err)?;
                }
                r += 1;
            }
        }
        wb.save_to_buffer().map_err(xlsx_err)
    });
    let mut sent = first.len();
    let mut failed = None;
    if tx.send(first).await.is_ok() {
        while let Some(after) = next.take() {
            if sent >= MAX_EXPORT_ROWS {
                break;
            }
            match postings_page(&api, &q, Some(after)).await {
                Ok((rows, n)) => {
                    sent += rows.len();
                    next = n;
                    if tx.send(rows).await.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
    }
    drop(tx);
    let bytes = writer.await??;
    if let Some(e) = failed {
        return Err(e);
    }
    Ok(download(bytes, XLSX, "postings.xlsx".into()))
}
