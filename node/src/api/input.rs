//! Reading requests: JSON bodies, query strings and path ids, with errors
//! that name the field.
//!
//! Bodies are parsed to a JSON object first and then read field by field
//! rather than through `serde` derive: that way every wrong type, missing
//! field and unknown field yields a message saying which field and what was
//! expected, instead of axum's plain-text rejections. Nothing is stored
//! before every field has been read, so a 4xx never leaves a trace.
//!
//! Optional text fields treat an empty or blank string like an absent one:
//! web forms send `""` for an empty input.

use std::collections::HashMap;

use axum::async_trait;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use jobmesh_protocol::record::{KeyGroup, Kind, PostingStatus, WorkType, MAX_POSITIONS, MAX_SKILLS, MAX_TEXT};
use jobmesh_protocol::{NodeId, RecordId};
use serde_json::{Map, Value};

use super::error::ApiError;

/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A request body that is a JSON object.
pub struct JsonObject(pub Map<String, Value>);

#[async_trait]
impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::TooLarge(format!("request body is larger than {MAX_BODY_BYTES} bytes"))
            } else {
                ApiError::BadRequest(format!("cannot read the request body: {}", r.body_text()))
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::BadRequest("body: expected a JSON object, found an empty body".into()));
        }
        let value: Value =
            serde_json::from_slice(&bytes).map_err(|e| ApiError::BadRequest(format!("body: not valid JSON: {e}")))?;
        match value {
            Value::Object(m) => Ok(JsonObject(m)),
            other => Err(ApiError::BadRequest(format!("body: expected a JSON object, found {}", type_name(&other)))),
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Typed access to the fields of a JSON object body.
pub struct Fields {
    map: Map<String, Value>,
}

impl Fields {
    /// Refuse any field not in `allowed` (the error lists the allowed ones).
    pub fn new(obj: JsonObject, allowed: &[&str]) -> Result<Fields, ApiError> {
        if let Some(unknown) = obj.0.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(ApiError::field(unknown, format!("unknown field; expected one of {}", allowed.join(", "))));
        }
        Ok(Fields { map: obj.0 })
    }

    /// Is the field present (even as null)?
    pub fn has(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    /// The value unless absent or null.
    fn value(&self, name: &str) -> Option<&Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    fn string<'a>(&'a self, name: &str, v: &'a Value) -> Result<&'a str, ApiError> {
        v.as_str().ok_or_else(|| ApiError::field(name, format!("expected a string, found {}", type_name(v))))
    }

    /// A required, non-blank text of at most [`MAX_TEXT`] bytes (trimmed).
    pub fn text(&self, name: &str) -> Result<String, ApiError> {
        let v = self.value(name).ok_or_else(|| ApiError::field(name, "missing required field"))?;
        let s = self.string(name, v)?.trim();
        if s.is_empty() {
            return Err(ApiError::field(name, "must not be empty"));
        }
        check_len(name, s)?;
        Ok(s.to_owned())
    }

    /// An optional text; absent, null and blank are `None`.
    pub fn opt_text(&self, name: &str) -> Result<Option<String>, ApiError> {
        let Some(v) = self.value(name) else { return Ok(None) };
        let s = self.string(name, v)?.trim();
        if s.is_empty() {
            return Ok(None);
        }
        check_len(name, s)?;
        Ok(Some(s.to_owned()))
    }

    /// For a PATCH: absent is `None` (unchanged), null or blank is
    /// `Some(None)` (cleared), a text is `Some(Some(text))`.
    pub fn patch_text(&self, name: &str) -> Result<Option<Option<String>>, ApiError> {
        if !self.has(name) {
            return Ok(None);
        }
        self.opt_text(name).map(Some)
    }

    /// For a PATCH of a required text: absent is `None`, null is refused.
    pub fn patch_required_text(&self, name: &str) -> Result<Option<String>, ApiError> {
        if !self.has(name) {
            return Ok(None);
        }
        self.text(name).map(Some)
    }

    /// A positive integer of positions (1..=[`MAX_POSITIONS`]).
    pub fn positions(&self, name: &str) -> Result<u32, ApiError> {
        let v = self.value(name).ok_or_else(|| ApiError::field(name, "missing required field"))?;
        let bad = || ApiError::field(name, format!("expected a positive integer 1..={MAX_POSITIONS}, found {v}"));
        let n = v.as_u64().ok_or_else(bad)?;
        if n == 0 || n > u64::from(MAX_POSITIONS) {
            return Err(bad());
        }
        Ok(n as u32)
    }

    pub fn opt_positions(&self, name: &str) -> Result<Option<u32>, ApiError> {
        if !self.has(name) {
            return Ok(None);
        }
        self.positions(name).map(Some)
    }

    /// A value from a closed list, parsed by `parse`.
    fn choice<T>(
        &self,
        name: &str,
        parse: impl Fn(&str) -> Option<T>,
        allowed: &[&str],
    ) -> Result<Option<T>, ApiError> {
        let Some(v) = self.value(name) else { return Ok(None) };
        let s = self.string(name, v)?;
        if s.trim().is_empty() {
            return Ok(None);
        }
        parse(s).map(Some).ok_or_else(|| ApiError::field(name, format!("{s:?} is not one of {}", allowed.join(", "))))
    }

    pub fn work_type(&self, name: &str) -> Result<Option<WorkType>, ApiError> {
        self.choice(name, WorkType::parse, &WorkType::ALL.map(WorkType::as_str))
    }

    pub fn key_group(&self, name: &str) -> Result<Option<KeyGroup>, ApiError> {
        self.choice(name, KeyGroup::parse, &KeyGroup::ALL.map(KeyGroup::as_str))
    }

    pub fn status(&self, name: &str) -> Result<Option<PostingStatus>, ApiError> {
        self.choice(name, PostingStatus::parse, &["open", "withdrawn", "closed"])
    }

    /// Require a value read by one of the optional readers.
    pub fn required<T>(name: &str, v: Option<T>) -> Result<T, ApiError> {
        v.ok_or_else(|| ApiError::field(name, "missing required field"))
    }

    /// An optional node id.
    pub fn node_id(&self, name: &str) -> Result<Option<NodeId>, ApiError> {
        let Some(v) = self.value(name) else { return Ok(None) };
        let s = self.string(name, v)?;
        if s.trim().is_empty() {
            return Ok(None);
        }
        NodeId::parse(s).map(Some).map_err(|e| ApiError::field(name, e))
    }

    /// An optional ISO date `YYYY-MM-DD`.
    pub fn date(&self, name: &str) -> Result<Option<String>, ApiError> {
        let Some(s) = self.opt_text(name)? else { return Ok(None) };
        if !jobmesh_protocol::time::is_iso_date(&s) {
            return Err(ApiError::field(name, format!("{s:?} is not a date YYYY-MM-DD")));
        }
        Ok(Some(s))
    }

    /// For a PATCH of an optional date.
    pub fn patch_date(&self, name: &str) -> Result<Option<Option<String>>, ApiError> {
        if !self.has(name) {
            return Ok(None);
        }
        self.date(name).map(Some)
    }

    /// A record id of `kind`.
    pub fn record_id(&self, name: &str, kind: Kind) -> Result<RecordId, ApiError> {
        let v = self.value(name).ok_or_else(|| ApiError::field(name, "missing required field"))?;
        parse_record_id(name, self.string(name, v)?, kind)
    }

    /// An optional list of non-blank strings (at most [`MAX_SKILLS`]).
    pub fn string_list(&self, name: &str) -> Result<Vec<String>, ApiError> {
        let Some(v) = self.value(name) else { return Ok(Vec::new()) };
        let items = v
            .as_array()
            .ok_or_else(|| ApiError::field(name, format!("expected a list of strings, found {}", type_name(v))))?;
        if items.len() > MAX_SKILLS {
            return Err(ApiError::field(name, format!("at most {MAX_SKILLS} entries, found {}", items.len())));
        }
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let s = item.as_str().ok_or_else(|| {
                ApiError::field(name, format!("entry {i}: expected a string, found {}", type_name(item)))
            })?;
            let s = s.trim();
            if s.is_empty() {
                return Err(ApiError::field(name, format!("entry {i} is empty")));
            }
            check_len(name, s)?;
            out.push(s.to_owned());
        }
        Ok(out)
    }
}

fn check_len(name: &str, s: &str) -> Result<(), ApiError> {
    if s.len() > MAX_TEXT {
        return Err(ApiError::field(name, format!("longer than {MAX_TEXT} bytes")));
    }
    Ok(())
}

/// Parse a record id that must be of `kind`; errors name `field`.
pub fn parse_record_id(field: &str, s: &str, kind: Kind) -> Result<RecordId, ApiError> {
    let id = RecordId::parse(s).map_err(|e| ApiError::field(field, e))?;
    if id.kind() != kind {
        return Err(ApiError::field(field, format!("{s:?} is a {} id, not a {} id", id.kind().name(), kind.name())));
    }
    Ok(id)
}

/// The `{id}` segment of a route, as given (checked by the handler).
pub struct IdPath(pub String);

#[async_trait]
impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|p| IdPath(p.0))
            .map_err(|r| ApiError::field("id", r.body_text()))
    }
}

/// Query parameters, decoded. Unknown parameters are ignored (the web page
/// may add cache busters or `token`).
pub struct QueryParams(pub HashMap<String, String>);

#[async_trait]
impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(QueryParams(parse_query(parts.uri.query().unwrap_or(""))))
    }
}

impl QueryParams {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// An optional boolean `true`/`false` (also `1`/`0`).
    pub fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.get(name) {
            None | Some("") => Ok(None),
            Some("true" | "1") => Ok(Some(true)),
            Some("false" | "0") => Ok(Some(false)),
            Some(other) => Err(ApiError::field(name, format!("{other:?} is not true or false"))),
        }
    }

    /// An optional non-negative integer.
    pub fn uint(&self, name: &str) -> Result<Option<u64>, ApiError> {
        match self.get(name) {
            None | Some("") => Ok(None),
            Some(s) => {
                s.parse().map(Some).map_err(|_| ApiError::field(name, format!("{s:?} is not a non-negative integer")))
            }
        }
    }

    /// An optional node id.
    pub fn node_id(&self, name: &str) -> Result<Option<NodeId>, ApiError> {
        match self.get(name) {
            None | Some("") => Ok(None),
            Some(s) => NodeId::parse(s).map(Some).map_err(|e| ApiError::field(name, e)),
        }
    }
}

/// Decode `a=1&b=x%20y` (`+` is a space). Later duplicates win.
pub fn parse_query(q: &str) -> HashMap<String, String> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding() {
        let q = parse_query("a=1&b=x%20y+z&c=%2Fgz&d=%&e=%4");
        assert_eq!(q["a"], "1");
        assert_eq!(q["b"], "x y z");
        assert_eq!(q["c"], "/gz");
        assert_eq!(q["d"], "%");
        assert_eq!(q["e"], "%4");
    }
}
