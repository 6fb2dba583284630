//! The API's error boundary: every failure becomes `{"error": "..."}` with
//! the status the contract gives it. Messages for bad input name the field.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use jobmesh_protocol::engine::local::WriteError;
use jobmesh_protocol::kv::StoreError;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Bad input (400); the message names the field.
    #[error("{0}")]
    BadRequest(String),
    /// No or wrong bearer token (401).
    #[error("{0}")]
    Unauthorized(String),
    /// Only the origin may change the record (403).
    #[error("{0}")]
    Forbidden(String),
    /// The record, node or route is not known here (404).
    #[error("{0}")]
    NotFound(String),
    /// The route exists but not with this method (405).
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The write conflicts with the record's state (409).
    #[error("{0}")]
    Conflict(String),
    /// The body is larger than the API accepts (413).
    #[error("{0}")]
    TooLarge(String),
    /// The store or a task failed (500); details go to the log.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A 400 about one field: `field: problem`.
    pub fn field(field: &str, problem: impl std::fmt::Display) -> ApiError {
        ApiError::BadRequest(format!("{field}: {problem}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = Json(serde_json::json!({ "error": self.to_string() }));
        if status == StatusCode::UNAUTHORIZED {
            return (status, [(header::WWW_AUTHENTICATE, "Bearer")], body).into_response();
        }
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            // The unread rest of the body is still on the connection: say
            // that it closes, so a client does not reuse it.
            return (status, [(header::CONNECTION, "close")], body).into_response();
        }
        (status, body).into_response()
    }
}

impl From<WriteError> for ApiError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::Invalid(m) => ApiError::BadRequest(m),
            e @ WriteError::NotFound { .. } => ApiError::NotFound(e.to_string()),
            e @ WriteError::NotOrigin { .. } => ApiError::Forbidden(e.to_string()),
            WriteError::Conflict(m) => ApiError::Conflict(m),
            WriteError::Store(e) => e.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store error while serving the API");
        ApiError::Internal(format!("store error: {e}"))
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        tracing::error!(error = %e, "API task failed");
        ApiError::Internal("internal error while serving the request".into())
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
