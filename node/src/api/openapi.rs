//! `GET /v1/openapi.json`: the OpenAPI 3.1 description of the HTTP API,
//! generated from the handlers' `#[utoipa::path]` attributes and the views'
//! `ToSchema` derives (**contract**; a copy is committed at
//! `deploy/openapi.json`, and a test fails when the two differ).
//!
//! Covered: every `/v1/...` route, `/metrics`, `/healthz` and this
//! document. Left out: the web page's own files (`/`, `/app.js`, `/app.css`,
//! `/matters.js`, `/import.js`, `/errors.json`), which are for the browser, not for
//! programs.
//!
//! Request bodies are read by hand (`api::input`), so their schemas are
//! built in [`bodies`] from the handlers' field lists; the protocol's ids,
//! closed lists and figure structs have stand-ins in [`types`].

pub mod bodies;
pub mod types;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// Where the committed copy lives, from the workspace root.
pub const COMMITTED_PATH: &str = "deploy/openapi.json";
/// How to bring the committed copy up to date.
pub const REGENERATE: &str = "cargo run --locked -p jobmesh -- openapi > deploy/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "jobmesh office node API",
        description = "The HTTP API of one jobmesh office node. Every 4xx (and 5xx) body is an `Error`. \
            When the node's API listens beyond loopback, every route except `/healthz` and this document needs \
            `Authorization: Bearer TOKEN` (or `?token=TOKEN`).",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        crate::api::postings::list,
        crate::api::postings::create,
        crate::api::postings::get,
        crate::api::postings::patch,
        crate::api::workers::list,
        crate::api::workers::create,
        crate::api::workers::get,
        crate::api::placements::list,
        crate::api::placements::create,
        crate::api::placements::get,
        crate::api::matters::list,
        crate::api::matters::create,
        crate::api::matters::get,
        crate::api::matters::patch,
        crate::api::summary::get,
        crate::api::export::summary_csv,
        crate::api::export::summary_xlsx,
        crate::api::export::postings_csv,
        crate::api::export::postings_xlsx,
        crate::api::import::batch,
        crate::api::import::file,
        crate::api::import::template,
        crate::api::status::get,
        crate::api::status::metrics,
        crate::ops::backup::get,
        crate::api::page::healthz,
        openapi_json,
    ),
    components(schemas(
        types::NodeId,
        types::RecordId,
        types::PostingId,
        types::WorkerId,
        types::PlacementId,
        types::MatterId,
        types::WorkType,
        types::KeyGroup,
        types::PostingStatus,
        types::MatterCategory,
        types::Channel,
        types::MatterStatus,
        types::WorkerStatus,
        types::ErrorCode,
        types::NodeIdFilter,
        types::Cursor,
        types::WorkerIdFilter,
        types::PostingIdFilter,
        types::Flag,
        types::WorkTypeFilter,
        types::KeyGroupFilter,
        types::WorkerStatusFilter,
        types::MatterCategoryFilter,
        types::ChannelFilter,
        types::MatterStatusFilter,
        types::Depth,
        types::BackupFile,
        types::Problem,
        types::Error,
        types::ImportKind,
        types::Lang,
        types::SummaryTable,
        types::DayFilter,
        types::ImportBatch,
        bodies::PostingCreate,
        bodies::PostingPatch,
        bodies::WorkerCreate,
        bodies::PlacementCreate,
        bodies::MatterCreate,
        bodies::MatterPatch,
    )),
    modifiers(&BearerToken),
    tags(
        (name = "postings", description = "Job postings: published at an office for an audience subtree."),
        (name = "workers", description = "Job seekers registered at an office."),
        (name = "placements", description = "A worker took a posting."),
        (name = "matters", description = "Service matters recorded at an office; they flow up only."),
        (name = "figures", description = "The subtree's figures."),
        (name = "import", description = "Staff's spreadsheets (CSV in UTF-8 or GB18030, xlsx) into records, each under an external reference so that nothing is created twice."),
        (name = "operations", description = "Health, status, metrics, backup and this document."),
    ),
)]
pub struct ApiDoc;

/// Declares the bearer token scheme the protected operations name.
struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "bearer",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some("The node's `api_token`; needed only when the API is not on loopback."))
                        .build(),
                ),
            );
        }
    }
}

/// The document as served and committed: pretty JSON and a final newline,
/// so that the committed copy diffs line by line.
pub fn document() -> String {
    let mut s = ApiDoc::openapi().to_pretty_json().unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    s.push('\n');
    s
}

/// `GET /v1/openapi.json`: public, like `/healthz` (it holds no data).
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "operations",
    operation_id = "openapi",
    responses(
        (status = 200, description = "This document (OpenAPI 3.1).", content_type = "application/json", body = Object),
    ),
)]
pub async fn openapi_json() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], document())
}

#[cfg(test)]
mod tests;
