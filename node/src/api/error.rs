//! The API's error boundary (**contract**): every 4xx body is
//!
//! ```json
//! {"error": "positions: expected …", "code": "out_of_range", "field": "positions",
//!  "params": {"min": 1, "max": 100000},
//!  "errors": [{"error": "…", "code": "…", "field": "…", "params": {…}}, …]}
//! ```
//!
//! `error` is the English sentence (it names the field), `code` one of
//! [`Code`] for programs and for the page's catalogue of messages
//! (`node/assets/errors.json`, checked complete by a test), `field` the
//! body, query or path field at fault or `null`, and `params` what the
//! message mentions (limits, ids, allowed values). When a form has several
//! bad fields, `errors` lists every one in field order and the top-level
//! keys repeat the first; `errors` is present on every 4xx, with one entry
//! when there is one problem.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use jobmesh_protocol::engine::local::WriteError;
use jobmesh_protocol::kv::StoreError;
use jobmesh_protocol::rules::RuleError;
use serde_json::{json, Map, Value};

macro_rules! codes {
    ($($variant:ident = $text:literal,)*) => {
        /// Machine-readable error codes (**contract**: the spelling is stable).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Code { $($variant,)* }

        impl Code {
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $text,)* }
            }
        }
    };
}

codes! {
    Required = "required",
    TooLong = "too_long",
    ControlCharacter = "control_character",
    WrongType = "wrong_type",
    NotInList = "not_in_list",
    OutOfRange = "out_of_range",
    NotADate = "not_a_date",
    DateInPast = "date_in_past",
    InvalidPhone = "invalid_phone",
    InvalidId = "invalid_id",
    WrongKind = "wrong_kind",
    InvalidNodeId = "invalid_node_id",
    UnknownAudience = "unknown_audience",
    AudienceFixed = "audience_fixed",
    UnknownField = "unknown_field",
    TooManyEntries = "too_many_entries",
    EmptyBody = "empty_body",
    NotAnObject = "not_an_object",
    InvalidJson = "invalid_json",
    DuplicateKey = "duplicate_key",
    TooDeep = "too_deep",
    NumberTooLarge = "number_too_large",
    NotUtf8 = "not_utf8",
    InvalidLimit = "invalid_limit",
    InvalidBool = "invalid_bool",
    Invalid = "invalid",
    Unauthorized = "unauthorized",
    BadToken = "bad_token",
    NotOrigin = "not_origin",
    NotFound = "not_found",
    NoRoute = "no_route",
    MethodNotAllowed = "method_not_allowed",
    PostingNotOpen = "posting_not_open",
    PostingExpired = "posting_expired",
    NoPositionsLeft = "no_positions_left",
    AlreadyPlaced = "already_placed",
    Conflict = "conflict",
    TooLarge = "too_large",
    Internal = "internal",
    Restoring = "restoring",
    DiskFull = "disk_full",
    StoreFailing = "store_failing",
}

/// One thing wrong with a request.
#[derive(Debug, Clone)]
pub struct Problem {
    pub code: Code,
    pub field: Option<String>,
    /// The English sentence; for a field it starts with `field: `.
    pub message: String,
    pub params: Map<String, Value>,
}

impl Problem {
    /// A problem with `field`; the message is prefixed with the field name.
    pub fn field(field: &str, code: Code, problem: impl std::fmt::Display) -> Problem {
        Problem { code, field: Some(field.to_owned()), message: format!("{field}: {problem}"), params: Map::new() }
    }

    /// A problem with the request as a whole.
    pub fn general(code: Code, message: impl Into<String>) -> Problem {
        Problem { code, field: None, message: message.into(), params: Map::new() }
    }

    /// Add a parameter the message mentions.
    pub fn param(mut self, key: &str, value: impl Into<Value>) -> Problem {
        self.params.insert(key.to_owned(), value.into());
        self
    }

    fn to_json(&self) -> Value {
        json!({ "error": self.message, "code": self.code.as_str(), "field": self.field, "params": self.params })
    }

    /// A data rule's refusal of `field`, with the rule's parameters.
    pub fn rule(field: &str, e: &RuleError) -> Problem {
        let code = match e {
            RuleError::Empty => Code::Required,
            RuleError::TooLong { .. } => Code::TooLong,
            RuleError::ControlCharacter { .. } => Code::ControlCharacter,
            RuleError::Phone(_) => Code::InvalidPhone,
            RuleError::DateInPast { .. } => Code::DateInPast,
            RuleError::UnknownAudience(_) => Code::UnknownAudience,
        };
        debug_assert_eq!(code.as_str(), e.code());
        let p = Problem::field(field, code, e);
        match e {
            RuleError::TooLong { max_chars, chars } => p.param("max_chars", *max_chars).param("chars", *chars),
            RuleError::ControlCharacter { code_point } => p.param("code_point", format!("U+{code_point:04X}")),
            RuleError::DateInPast { date, today } => p.param("date", date.as_str()).param("today", today.as_str()),
            RuleError::UnknownAudience(a) => p.param("audience", a.as_str()),
            RuleError::Empty | RuleError::Phone(_) => p,
        }
    }
}

/// Why a request failed: a status and at least one problem.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    problems: Vec<Problem>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let messages: Vec<&str> = self.problems.iter().map(|p| p.message.as_str()).collect();
        f.write_str(&messages.join("; "))
    }
}

impl std::error::Error for ApiError {}

/// The field named by a message written as `field: problem`, for callers
/// that pass only a sentence.
fn field_of(message: &str) -> Option<String> {
    let (head, _) = message.split_once(": ")?;
    (!head.is_empty() && head.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')).then(|| head.to_owned())
}

#[allow(non_snake_case)]
impl ApiError {
    pub fn new(status: StatusCode, problem: Problem) -> ApiError {
        ApiError { status, problems: vec![problem] }
    }

    /// A 400 listing every problem of a form (`problems` is not empty).
    pub fn invalid(problems: Vec<Problem>) -> ApiError {
        let mut problems = problems;
        if problems.is_empty() {
            problems.push(Problem::general(Code::Invalid, "the request is not valid"));
        }
        ApiError { status: StatusCode::BAD_REQUEST, problems }
    }

    /// A 400 about one field with a specific code.
    pub fn coded(field: &str, code: Code, problem: impl std::fmt::Display) -> ApiError {
        ApiError::invalid(vec![Problem::field(field, code, problem)])
    }

    /// A 400 about one field: `field: problem` (code `invalid`).
    pub fn field(field: &str, problem: impl std::fmt::Display) -> ApiError {
        ApiError::coded(field, Code::Invalid, problem)
    }

    /// Add a parameter to the first problem.
    pub fn param(mut self, key: &str, value: impl Into<Value>) -> ApiError {
        if let Some(first) = self.problems.first_mut() {
            first.params.insert(key.to_owned(), value.into());
        }
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    fn legacy(status: StatusCode, code: Code, message: String) -> ApiError {
        let field = field_of(&message);
        ApiError::new(status, Problem { code, field, message, params: Map::new() })
    }

    // The constructors below keep the first API's spelling
    // (`ApiError::NotFound(msg)`) for code that passes only a sentence; the
    // field is taken from a `field: ` prefix when there is one.

    /// Bad input (400); the message names the field.
    pub fn BadRequest(message: String) -> ApiError {
        ApiError::legacy(StatusCode::BAD_REQUEST, Code::Invalid, message)
    }
    /// No or wrong bearer token (401).
    pub fn Unauthorized(message: String) -> ApiError {
        ApiError::legacy(StatusCode::UNAUTHORIZED, Code::Unauthorized, message)
    }
    /// Only the origin may change the record (403).
    pub fn Forbidden(message: String) -> ApiError {
        ApiError::legacy(StatusCode::FORBIDDEN, Code::NotOrigin, message)
    }
    /// The record, node or route is not known here (404).
    pub fn NotFound(message: String) -> ApiError {
        ApiError::legacy(StatusCode::NOT_FOUND, Code::NotFound, message)
    }
    /// The route exists but not with this method (405).
    pub fn MethodNotAllowed(message: String) -> ApiError {
        ApiError::legacy(StatusCode::METHOD_NOT_ALLOWED, Code::MethodNotAllowed, message)
    }
    /// The write conflicts with the record's state (409).
    pub fn Conflict(message: String) -> ApiError {
        ApiError::legacy(StatusCode::CONFLICT, Code::Conflict, message)
    }
    /// The body is larger than the API accepts (413).
    pub fn TooLarge(message: String) -> ApiError {
        ApiError::legacy(StatusCode::PAYLOAD_TOO_LARGE, Code::TooLarge, message)
    }
    /// The store or a task failed (500); details go to the log.
    pub fn Internal(message: String) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, Problem::general(Code::Internal, message))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status;
        let mut body = match self.problems.first() {
            Some(p) => p.to_json(),
            None => json!({ "error": "error", "code": Code::Internal.as_str(), "field": null, "params": {} }),
        };
        body["errors"] = Value::Array(self.problems.iter().map(Problem::to_json).collect());
        let body = Json(body);
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
        let message = e.to_string();
        match e {
            WriteError::Invalid(m) => ApiError::BadRequest(m),
            WriteError::Rule { field, error } => ApiError::invalid(vec![Problem::rule(field, &error)]),
            WriteError::NotFound { field, id } => ApiError::new(
                StatusCode::NOT_FOUND,
                Problem::field(field, Code::NotFound, format!("{id} is not known at this office")).param("id", id),
            ),
            WriteError::NotOrigin { id, origin } => ApiError::new(
                StatusCode::FORBIDDEN,
                Problem::general(Code::NotOrigin, message).param("id", id).param("origin", origin.as_str()),
            ),
            WriteError::AlreadyPlaced { worker_id, posting_id, placement_id } => ApiError::new(
                StatusCode::CONFLICT,
                Problem::field("worker_id", Code::AlreadyPlaced, message)
                    .param("worker_id", worker_id.as_str())
                    .param("posting_id", posting_id.as_str())
                    .param("placement_id", placement_id.as_str()),
            ),
            WriteError::Conflict(m) => {
                let code = if m.contains("no positions left") {
                    Code::NoPositionsLeft
                } else if m.contains("expired") {
                    Code::PostingExpired
                } else if m.contains(" is withdrawn") || m.contains(" is closed") {
                    Code::PostingNotOpen
                } else {
                    Code::Conflict
                };
                let field = (code != Code::Conflict).then(|| "posting_id".to_owned());
                ApiError::new(StatusCode::CONFLICT, Problem { code, field, message: m, params: Map::new() })
            }
            WriteError::Store(e) => e.into(),
            e @ WriteError::Restoring => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, Problem::general(Code::Restoring, e.to_string()))
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            // The engine host logs the store's change of state once; a
            // refused request is not worth a line each.
            StoreError::Full(_) => ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                Problem::general(
                    Code::DiskFull,
                    "the office's disk is full: nothing was saved; free space on the office's disk and try again",
                ),
            ),
            StoreError::Backend(m) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, Problem::general(Code::StoreFailing, m))
            }
            e => {
                tracing::error!(error = %e, "store error while serving the API");
                ApiError::Internal(format!("store error: {e}"))
            }
        }
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        tracing::error!(error = %e, "API task failed");
        ApiError::Internal("internal error while serving the request".into())
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    /// The page's catalogue of messages: every code has a Chinese and an
    /// English text, and the catalogue names no code that does not exist.
    #[test]
    fn every_code_has_a_chinese_message() {
        let catalogue: Value = serde_json::from_str(include_str!("../../assets/errors.json")).unwrap();
        for lang in ["zh", "en"] {
            let texts = catalogue[lang].as_object().unwrap_or_else(|| panic!("errors.json has no {lang:?} object"));
            for code in Code::ALL {
                let text = texts.get(code.as_str()).and_then(Value::as_str).unwrap_or("");
                assert!(!text.trim().is_empty(), "errors.json: {lang}: code {:?} has no text", code.as_str());
            }
            for key in texts.keys() {
                assert!(Code::ALL.iter().any(|c| c.as_str() == key), "errors.json: {lang}: {key:?} is no code");
            }
        }
        let zh = catalogue["zh"].as_object().unwrap();
        for code in Code::ALL {
            let text = zh[code.as_str()].as_str().unwrap();
            assert!(text.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)), "{text:?} is not Chinese");
        }
    }

    #[test]
    fn body_has_code_field_params_and_every_problem() {
        let e = ApiError::invalid(vec![
            Problem::field("title", Code::Required, "must not be empty"),
            Problem::field("positions", Code::OutOfRange, "expected 1..=100000").param("max", 100_000),
        ]);
        let resp = e.into_response();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        let legacy = ApiError::NotFound("node: gz/x is not known".into());
        assert_eq!(legacy.problems()[0].field.as_deref(), Some("node"));
        assert_eq!(ApiError::BadRequest("the body is odd".into()).problems()[0].field, None);
    }
}
