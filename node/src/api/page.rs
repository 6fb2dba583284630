//! The web page (compiled in from `node/assets/`) and the health check.
//!
//! The page's files hold no data, so they are served without a token (a
//! browser cannot add a bearer header to `<script src>`); the page reads
//! `?token=` from its own address and sends it on every API call.

use axum::http::header;
use axum::response::IntoResponse;

const INDEX_HTML: &str = include_str!("../../assets/index.html");
const APP_JS: &str = include_str!("../../assets/app.js");
const APP_CSS: &str = include_str!("../../assets/app.css");
const ERRORS_JSON: &str = include_str!("../../assets/errors.json");
const MATTERS_JS: &str = include_str!("../../assets/matters.js");
const IMPORT_JS: &str = include_str!("../../assets/import.js");

/// `GET /`
pub async fn index() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], INDEX_HTML)
}

/// `GET /app.js`
pub async fn app_js() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], APP_JS)
}

/// `GET /matters.js` (service matters and protocol versions on the page)
pub async fn matters_js() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], MATTERS_JS)
}

/// `GET /import.js` (spreadsheets in and out)
pub async fn import_js() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], IMPORT_JS)
}

/// `GET /app.css`
pub async fn app_css() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], APP_CSS)
}

/// `GET /errors.json`: the page's catalogue of error messages by `code`.
pub async fn errors_json() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], ERRORS_JSON)
}

/// `GET /healthz`: 200 `ok` while the store works (the router only exists
/// once it is open); 507 (disk full) or 503 with the reason while it fails.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    operation_id = "healthz",
    responses(
        (status = 200, description = "`ok`: the store works.", content_type = "text/plain", body = String),
        (status = 503, description = "The store is failing (`store_failing`).", body = crate::api::openapi::types::Error),
        (status = 507, description = "The office's disk is full (`disk_full`); nothing was saved.", body = crate::api::openapi::types::Error),
    ),
)]
pub async fn healthz(
    axum::extract::State(api): axum::extract::State<std::sync::Arc<super::Api>>,
) -> axum::response::Response {
    match api.state.store_health().refusal() {
        None => "ok".into_response(),
        Some(e) => super::error::ApiError::from(e).into_response(),
    }
}
