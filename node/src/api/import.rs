//! `/v1/import/{kind}`: staff's files into records.
//!
//! - `POST /v1/import/{kind}?dry_run=` `{"rows": [{line, cells}]}` — rows
//!   already read from a file (by `jobmesh import`), each checked with the
//!   import crate's row check and created under its external reference in
//!   one atomic, durable write per request.
//! - `POST /v1/import/{kind}/file?dry_run=&name=` — a whole `.csv` or
//!   `.xlsx` as the body (the page's upload). The body is streamed to a
//!   temporary file, never held whole; the same reader and check run here,
//!   and good rows are created in batches. The answer is JSON lines
//!   (`application/x-ndjson`), streamed: `{"progress": {...}}` after each
//!   batch, then `{"report": FileReport}`: counts, a preview of the first
//!   rows with their problems, and the problems.
//! - `GET /v1/import/{kind}/template.csv?lang=zh|en` — the template.

use std::io::Write;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use jobmesh_import::rows::{self, check, check_raw, rule_text, Good, Mapping, Problem};
use jobmesh_import::template::{self, Lang};
use jobmesh_import::wire::{
    BatchRequest, BatchResponse, FileReport, PreviewRow, RowResult, MAX_BATCH_ROWS, MAX_FILE_BYTES,
    MAX_LISTED_PROBLEMS, PREVIEW_ROWS,
};
use jobmesh_import::{read, ImportKind};
use jobmesh_protocol::engine::local::WriteError;
use jobmesh_protocol::store;

use super::error::{ApiError, ApiResult};
use super::input::QueryParams;
use super::{blocking, keyed, Api};
use crate::state::now_ms;

/// Rows per engine write when importing an uploaded file.
const FILE_BATCH_ROWS: usize = 500;

fn kind_of(raw: &str) -> ApiResult<ImportKind> {
    ImportKind::parse(raw).ok_or_else(|| {
        let known: Vec<&str> = ImportKind::ALL.iter().map(|k| k.as_str()).collect();
        ApiError::NotFound(format!("kind: {raw:?} cannot be imported; one of {}", known.join(", ")))
    })
}

/// A problem the engine found in a row the check let through.
fn write_problem(line: u64, e: &WriteError) -> Problem {
    match e {
        WriteError::Rule { field, error } => {
            let (zh, en) = rule_text(error);
            Problem { line, column: (*field).to_owned(), field: (*field).to_owned(), zh, en }
        }
        other => {
            Problem {
                line, column: String::new(), field: String::new(), zh: "无法写入".into(), en: other.to_string()
            }
        }
    }
}

/// Create (or, on a dry run, look up) the good rows; results in order.
async fn apply(api: &Api, goods: Vec<Good>, dry_run: bool) -> ApiResult<Vec<RowResult>> {
    if goods.is_empty() {
        return Ok(Vec::new());
    }
    if dry_run {
        let kv = api.state.kv.clone();
        return blocking(move || -> ApiResult<Vec<RowResult>> {
            goods
                .into_iter()
                .map(|g| {
                    let id = store::record_for_ref(&kv, g.record.kind(), &g.external_ref)?;
                    Ok(RowResult {
                        line: g.line,
                        external_ref: g.external_ref,
                        id: id.map(|i| i.to_string()),
                        created: false,
                        problems: Vec::new(),
                    })
                })
                .collect()
        })
        .await?;
    }
    let lines: Vec<(u64, String)> = goods.iter().map(|g| (g.line, g.external_ref.clone())).collect();
    let items = goods.into_iter().map(|g| (g.external_ref, g.record)).collect();
    let written = keyed::create_many(api, items).await?;
    Ok(lines
        .into_iter()
        .zip(written.outcomes)
        .map(|((line, external_ref), o)| match o {
            Ok(k) => RowResult {
                line,
                external_ref,
                id: Some(k.record.id.to_string()),
                created: k.created,
                problems: vec![],
            },
            Err(e) => {
                RowResult { line, external_ref, id: None, created: false, problems: vec![write_problem(line, &e)] }
            }
        })
        .collect())
}

/// `POST /v1/import/{kind}?dry_run=`
#[utoipa::path(
    post,
    path = "/v1/import/{kind}",
    tag = "import",
    operation_id = "import_rows",
    params(
        ("kind" = crate::api::openapi::types::ImportKind, Path, description = "`postings`, `workers` or `matters`."),
        ("dry_run" = Option<crate::api::openapi::types::Flag>, Query, description = "`true`: check the rows and look up their references, write nothing."),
    ),
    request_body(content = crate::api::openapi::types::ImportBatch, description = "`{\"rows\": [{\"line\": N, \"cells\": {API field: text}}]}`, at most 1,000 rows and 4 MiB; the cells are text as read from a file (Chinese or English words for closed lists), `external_ref` among them. `jobmesh import` sends these.", content_type = "application/json"),
    responses(
        (status = 200, description = "`{\"dry_run\": bool, \"results\": [{line, external_ref, id, created, problems}]}` in the rows' order. Good rows are created in one atomic, durable write; a row whose `external_ref` was already used here gets the record made under it (`created: false`).", body = Object),
        (status = 400, description = "A parameter or the body is not valid; `errors` names every bad field.", body = crate::api::openapi::types::Error),
        (status = 401, description = "The API needs a bearer token (`unauthorized`) or the token is wrong (`bad_token`).", body = crate::api::openapi::types::Error),
        (status = 404, description = "No such import kind.", body = crate::api::openapi::types::Error),
        (status = 413, description = "The body is larger than 4 MiB.", body = crate::api::openapi::types::Error),
        (status = 503, description = "The office is restoring from a backup (`restoring`) or its store is failing (`store_failing`); nothing was saved.", body = crate::api::openapi::types::Error),
        (status = 507, description = "The office's disk is full (`disk_full`); nothing was saved.", body = crate::api::openapi::types::Error),
    ),
    security((), ("bearer" = [])),
)]
pub async fn batch(
    State(api): State<Arc<Api>>,
    Path(kind): Path<String>,
    q: QueryParams,
    body: Bytes,
) -> ApiResult<Json<BatchResponse>> {
    let kind = kind_of(&kind)?;
    let dry_run = q.bool("dry_run")?.unwrap_or(false);
    let req: BatchRequest =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("body: not an import batch: {e}")))?;
    if req.rows.len() > MAX_BATCH_ROWS {
        return Err(ApiError::field("rows", format!("at most {MAX_BATCH_ROWS} rows, found {}", req.rows.len())));
    }
    let now = now_ms();
    let mut results: Vec<Option<RowResult>> = Vec::with_capacity(req.rows.len());
    let mut goods = Vec::new();
    let mut slots = Vec::new();
    for row in &req.rows {
        match check(kind, row.line, &row.cells, &|k| k.to_owned(), now) {
            Ok(g) => {
                slots.push(results.len());
                results.push(None);
                goods.push(g);
            }
            Err(problems) => results.push(Some(RowResult {
                line: row.line,
                external_ref: row.cells.get("external_ref").cloned().unwrap_or_default(),
                id: None,
                created: false,
                problems,
            })),
        }
    }
    for (slot, r) in slots.into_iter().zip(apply(&api, goods, dry_run).await?) {
        results[slot] = Some(r);
    }
    Ok(Json(BatchResponse { dry_run, results: results.into_iter().flatten().collect() }))
}

/// What the reading thread sends: checked rows, or the file's failure.
enum Read {
    Rows(Vec<(read::RawRow, rows::Checked)>),
    Failed(String),
}

/// One line of the file endpoint's answer.
#[derive(serde::Serialize)]
#[serde(rename_all = "snake_case")]
enum Line<'a> {
    Progress(&'a FileReport),
    Report(&'a FileReport),
}

fn ndjson(line: &Line<'_>) -> Bytes {
    let mut v = match line {
        // Progress lines carry the counts only, not the problems so far.
        Line::Progress(r) => serde_json::to_vec(&serde_json::json!({"progress": {
            "rows": r.rows, "rows_total": r.rows_total, "good": r.good, "bad": r.bad,
            "created": r.created, "existing": r.existing,
        }})),
        Line::Report(_) => serde_json::to_vec(line),
    }
    .unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

/// `POST /v1/import/{kind}/file?dry_run=&name=`
#[utoipa::path(
    post,
    path = "/v1/import/{kind}/file",
    tag = "import",
    operation_id = "import_file",
    params(
        ("kind" = crate::api::openapi::types::ImportKind, Path, description = "`postings`, `workers` or `matters`."),
        ("dry_run" = Option<crate::api::openapi::types::Flag>, Query, description = "`true`: check every row, write nothing."),
        ("name" = Option<String>, Query, description = "The file's name; its extension (`.csv`, `.xlsx`) says how to read it (else the content does)."),
    ),
    request_body(content = Vec<u8>, description = "The whole file (not empty), at most 256 MiB; streamed to a temporary file.", content_type = "application/octet-stream"),
    responses(
        (status = 200, description = "JSON lines, streamed: `{\"progress\": {rows, rows_total, good, bad, created, existing}}` after each batch of 500 rows, then `{\"report\": {...}}` with the counts, a preview of the first 10 rows with their problems, and up to 1,000 problems (`problems_total` counts all). A file that cannot be read is a report with `error` set.", content_type = "application/x-ndjson", body = String),
        (status = 400, description = "A parameter or the body is not valid; `errors` names every bad field.", body = crate::api::openapi::types::Error),
        (status = 401, description = "The API needs a bearer token (`unauthorized`) or the token is wrong (`bad_token`).", body = crate::api::openapi::types::Error),
        (status = 404, description = "No such import kind.", body = crate::api::openapi::types::Error),
        (status = 413, description = "The file is larger than 256 MiB.", body = crate::api::openapi::types::Error),
    ),
    security((), ("bearer" = [])),
)]
pub async fn file(
    State(api): State<Arc<Api>>,
    Path(kind): Path<String>,
    q: QueryParams,
    body: Body,
) -> ApiResult<Response> {
    let kind = kind_of(&kind)?;
    let dry_run = q.bool("dry_run")?.unwrap_or(false);
    let ext = match q.get("name").and_then(|n| n.rsplit_once('.')).map(|(_, e)| e.to_ascii_lowercase()) {
        Some(e) if e == "xlsx" || e == "csv" => e,
        _ => "upload".to_owned(),
    };
    // Spool the body to a temporary file (an xlsx needs seeking; a CSV is
    // then read streamed from it).
    let spool =
        blocking(move || tempfile::Builder::new().prefix("jobmesh-import-").suffix(&format!(".{ext}")).tempfile())
            .await?
            .map_err(|e| ApiError::Internal(format!("cannot make a temporary file: {e}")))?;
    let (f, path) = spool.into_parts();
    let mut f = std::io::BufWriter::new(f);
    let mut stream = body.into_data_stream();
    let mut size = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("cannot read the upload: {e}")))?;
        size += chunk.len() as u64;
        if size > MAX_FILE_BYTES {
            return Err(ApiError::TooLarge(format!("the file is larger than {MAX_FILE_BYTES} bytes"))
                .param("max_bytes", MAX_FILE_BYTES));
        }
        f.write_all(&chunk).map_err(|e| ApiError::Internal(format!("cannot spool the upload: {e}")))?;
    }
    f.flush().map_err(|e| ApiError::Internal(format!("cannot spool the upload: {e}")))?;
    drop(f);
    if size == 0 {
        return Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            super::error::Problem::general(
                super::error::Code::EmptyBody,
                "the upload is empty: send the file as the body",
            ),
        ));
    }

    let (out, answer) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    tokio::spawn(async move {
        let report = import_spooled(&api, kind, dry_run, path, &out).await;
        let _ = out.send(Ok(ndjson(&Line::Report(&report)))).await;
    });
    let stream = futures::stream::unfold(answer, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    let mut resp = Body::from_stream(stream).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/x-ndjson"));
    Ok(resp)
}

/// Read, check and (unless `dry_run`) create the rows of a spooled file,
/// sending a progress line after each batch; returns the report.
async fn import_spooled(
    api: &Api,
    kind: ImportKind,
    dry_run: bool,
    path: tempfile::TempPath,
    out: &tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
) -> FileReport {
    let mut report = FileReport { kind: kind.as_str().into(), dry_run, ..FileReport::default() };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Read>(4);
    let (htx, hrx) = tokio::sync::oneshot::channel::<Result<(Vec<String>, Option<u64>), String>>();
    let now = now_ms();
    let reader = tokio::task::spawn_blocking(move || {
        let keep = path; // the temporary file lives until reading ends
        let opened = read::open(&keep).map_err(|e| e.to_string()).and_then(|sheet| {
            let m = Mapping::new(kind, &sheet.headers).map_err(|e| e.to_string())?;
            Ok((sheet, m))
        });
        let (sheet, m) = match opened {
            Ok(x) => x,
            Err(e) => {
                let _ = htx.send(Err(e));
                return;
            }
        };
        let _ = htx.send(Ok((m.headers.clone(), sheet.rows_total)));
        let mut chunk = Vec::with_capacity(FILE_BATCH_ROWS);
        for row in sheet {
            match row {
                Ok(row) => {
                    if let Some(c) = check_raw(&m, &row, now) {
                        chunk.push((row, c));
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Read::Failed(e.to_string()));
                    return;
                }
            }
            if chunk.len() >= FILE_BATCH_ROWS && tx.blocking_send(Read::Rows(std::mem::take(&mut chunk))).is_err() {
                return;
            }
        }
        let _ = tx.blocking_send(Read::Rows(chunk));
    });
    match hrx.await {
        Ok(Ok((headers, total))) => {
            report.headers = headers;
            report.rows_total = total;
        }
        Ok(Err(e)) => {
            report.error = Some(e);
            return report;
        }
        Err(_) => {
            report.error = Some("the file reader stopped".into());
            return report;
        }
    }
    while let Some(msg) = rx.recv().await {
        let rows = match msg {
            Read::Rows(r) => r,
            Read::Failed(e) => {
                report.error = Some(e);
                break;
            }
        };
        let mut goods = Vec::new();
        for (raw, checked) in rows {
            report.rows += 1;
            let problems = match checked {
                Ok(g) => {
                    goods.push(g);
                    Vec::new()
                }
                Err(p) => {
                    report.bad += 1;
                    report.problems_total += p.len() as u64;
                    let room = MAX_LISTED_PROBLEMS.saturating_sub(report.problems.len());
                    report.problems.extend(p.iter().take(room).cloned());
                    p
                }
            };
            if report.preview.len() < PREVIEW_ROWS {
                report.preview.push(PreviewRow { line: raw.line, cells: raw.cells, problems });
            }
        }
        let applied = match apply(api, goods, dry_run).await {
            Ok(a) => a,
            Err(e) => {
                report.error = Some(e.to_string());
                break;
            }
        };
        for r in applied {
            if r.problems.is_empty() {
                report.good += 1;
                report.created += u64::from(r.created);
                report.existing += u64::from(!r.created && r.id.is_some());
            } else {
                report.bad += 1;
                report.problems_total += r.problems.len() as u64;
                let room = MAX_LISTED_PROBLEMS.saturating_sub(report.problems.len());
                report.problems.extend(r.problems.into_iter().take(room));
            }
        }
        if out.send(Ok(ndjson(&Line::Progress(&report)))).await.is_err() {
            // The client went away: stop reading (what was written stays).
            break;
        }
    }
    drop(rx);
    let _ = reader.await;
    report.problems.sort_by_key(|p| p.line);
    report
}

/// `GET /v1/import/{kind}/template.csv?lang=zh|en` (default by
/// `Accept-Language`).
#[utoipa::path(
    get,
    path = "/v1/import/{kind}/template.csv",
    tag = "import",
    operation_id = "import_template",
    params(
        ("kind" = crate::api::openapi::types::ImportKind, Path, description = "`postings`, `workers` or `matters`."),
        ("lang" = Option<crate::api::openapi::types::Lang>, Query, description = "`zh` or `en` headers (default: Chinese unless `Accept-Language` starts with another language)."),
    ),
    responses(
        (status = 200, description = "A CSV (UTF-8 with a BOM) with the header row and one example row.", content_type = "text/csv", body = String),
        (status = 400, description = "A parameter or the body is not valid; `errors` names every bad field.", body = crate::api::openapi::types::Error),
        (status = 401, description = "The API needs a bearer token (`unauthorized`) or the token is wrong (`bad_token`).", body = crate::api::openapi::types::Error),
        (status = 404, description = "No such import kind.", body = crate::api::openapi::types::Error),
    ),
    security((), ("bearer" = [])),
)]
pub async fn template(Path(kind): Path<String>, q: QueryParams, headers: HeaderMap) -> ApiResult<Response> {
    let kind = kind_of(&kind)?;
    let lang = lang_of(&q, &headers)?;
    let name = template::template_name(kind, lang);
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
        ],
        template::template_csv(kind, lang),
    )
        .into_response())
}

/// `?lang=zh|en`, else Chinese when `Accept-Language` puts it first.
pub fn lang_of(q: &QueryParams, headers: &HeaderMap) -> ApiResult<Lang> {
    match q.get("lang").filter(|s| !s.is_empty()) {
        Some(s) => Lang::parse(s).ok_or_else(|| ApiError::field("lang", format!("{s:?} is not zh or en"))),
        None => Ok(headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.trim().is_empty())
            .map(Lang::from_accept_language)
            .unwrap_or(Lang::Zh)),
    }
}
