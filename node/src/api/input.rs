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
use jobmesh_protocol::record::{KeyGroup, Kind, PostingStatus, WorkType, MAX_POSITIONS, MAX_SKILLS};
use jobmesh_protocol::rules;
use jobmesh_protocol::{NodeId, RecordId};
use serde::de::{Deserialize, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::error::{ApiError, Code, Problem};

/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Deepest nesting of arrays and objects in a body: the API's bodies need
/// two levels (an object holding a list of skills).
pub const MAX_DEPTH: usize = 16;
/// Largest integer a JSON number may carry: 2^53, beyond which a
/// JavaScript client (the page) cannot represent it exactly.
pub const MAX_JSON_INT: u64 = 1 << 53;
/// Longest id accepted in a path or query before parsing it (a record id
/// is at most 1,200 bytes, a node id 8 × 64 + 7).
pub const MAX_ID_INPUT: usize = 1_200;

/// A request body that is a JSON object.
pub struct JsonObject(pub Map<String, Value>);

#[async_trait]
impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::TooLarge(format!("request body is larger than {MAX_BODY_BYTES} bytes"))
                    .param("max_bytes", MAX_BODY_BYTES)
            } else {
                ApiError::BadRequest(format!("cannot read the request body: {}", r.body_text()))
            }
        })?;
        parse_object(&bytes).map(JsonObject)
    }
}

/// Parse a body that must be one JSON object, strictly: valid UTF-8, no
/// duplicate keys, nesting at most [`MAX_DEPTH`], integers within 2^53.
/// Every refusal names the top-level field at fault (`body` when none).
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::coded("body", Code::EmptyBody, "expected a JSON object, found an empty body"));
    }
    let field_at = |at: usize| top_key_at(bytes, |i, _| i >= at).flatten().unwrap_or_else(|| "body".to_owned());
    if let Err(e) = std::str::from_utf8(bytes) {
        let field = field_at(e.valid_up_to());
        return Err(ApiError::coded(&field, Code::NotUtf8, format!("not valid UTF-8 at byte {}", e.valid_up_to())));
    }
    if let Some(key) = top_key_at(bytes, |_, depth| depth > MAX_DEPTH) {
        let field = key.unwrap_or_else(|| "body".to_owned());
        return Err(ApiError::coded(&field, Code::TooDeep, format!("nested deeper than {MAX_DEPTH} levels"))
            .param("max_depth", MAX_DEPTH));
    }
    let value = match serde_json::from_slice::<Strict>(bytes) {
        Ok(Strict(v)) => v,
        Err(e) => {
            let text = e.to_string();
            if let Some(key) = text.strip_prefix(DUPLICATE).and_then(|r| r.split('\u{1}').next()) {
                return Err(ApiError::coded(key, Code::DuplicateKey, "given twice in the body"));
            }
            let at = offset_of(bytes, e.line(), e.column());
            let field = field_at(at);
            return Err(ApiError::coded(&field, Code::InvalidJson, format!("not valid JSON: {e}")));
        }
    };
    let Value::Object(map) = value else {
        return Err(ApiError::coded(
            "body",
            Code::NotAnObject,
            format!("expected a JSON object, found {}", type_name(&value)),
        ));
    };
    for (k, v) in &map {
        if has_big_number(v) {
            return Err(ApiError::coded(k, Code::NumberTooLarge, format!("a number beyond 2^53 ({MAX_JSON_INT})"))
                .param("max", MAX_JSON_INT));
        }
    }
    Ok(map)
}

fn has_big_number(v: &Value) -> bool {
    match v {
        Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => u > MAX_JSON_INT,
            (_, Some(i), _) => i.unsigned_abs() > MAX_JSON_INT,
            (_, _, Some(f)) => !f.is_finite() || f.abs() > MAX_JSON_INT as f64,
            _ => true,
        },
        Value::Array(a) => a.iter().any(has_big_number),
        Value::Object(m) => m.values().any(has_big_number),
        _ => false,
    }
}

/// Byte offset of a 1-based line and column as serde_json reports them.
fn offset_of(bytes: &[u8], line: usize, column: usize) -> usize {
    let mut at = 0;
    for _ in 1..line {
        match bytes[at..].iter().position(|&b| b == b'\n') {
            Some(p) => at += p + 1,
            None => return bytes.len(),
        }
    }
    (at + column.saturating_sub(1)).min(bytes.len())
}

/// Walk the JSON text (without parsing it) and return the top-level key
/// being read when `hit(byte offset, depth)` first holds: `Some(None)` when
/// outside any key's value, `None` when it never holds.
fn top_key_at(bytes: &[u8], mut hit: impl FnMut(usize, usize) -> bool) -> Option<Option<String>> {
    let (mut depth, mut in_str, mut escaped) = (0usize, false, false);
    let (mut str_start, mut last_str) = (0usize, None::<(usize, usize)>);
    let mut key: Option<String> = None;
    for (i, &b) in bytes.iter().enumerate() {
        if in_str {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_str = false;
                last_str = Some((str_start, i));
            }
        } else {
            match b {
                b'"' => {
                    in_str = true;
                    str_start = i + 1;
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' => depth = depth.saturating_sub(1),
                b':' if depth == 1 => {
                    key = last_str.map(|(s, e)| String::from_utf8_lossy(&bytes[s..e]).chars().take(64).collect())
                }
                b',' if depth == 1 => key = None,
                _ => {}
            }
        }
        if hit(i, depth) {
            return Some(key);
        }
    }
    None
}

/// Marks a duplicate-key error raised inside the parser, so that
/// [`parse_object`] can name the key.
const DUPLICATE: &str = "\u{1}duplicate key:";

/// A JSON value parsed with duplicate keys refused (serde_json keeps the
/// last one silently).
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // Not finite cannot come from JSON text; keep it as null then.
        Ok(serde_json::Number::from_f64(v).map(Value::Number).unwrap_or(Value::Null))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            if out.contains_key(&k) {
                let shown: String = k.chars().take(64).collect();
                return Err(A::Error::custom(format!("{DUPLICATE}{shown}\u{1}")));
            }
            let Strict(v) = map.next_value()?;
            out.insert(k, v);
        }
        Ok(Value::Object(out))
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

/// Collects the problems of a whole form, so that one answer names every
/// bad field: `let x = form.take(f.text("x"));` for each field, then
/// `form.finish()?` before using any of them.
#[derive(Default)]
pub struct Form {
    problems: Vec<Problem>,
}

impl Form {
    /// The value, or `None` with its problems kept.
    pub fn take<T>(&mut self, r: Result<T, ApiError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.problems.extend(e.problems().iter().cloned());
                None
            }
        }
    }

    /// Keep a problem found by a check of its own.
    pub fn push(&mut self, p: Problem) {
        self.problems.push(p);
    }

    /// Has a field already a problem (so that later checks of it stay quiet)?
    pub fn has_problem(&self, field: &str) -> bool {
        self.problems.iter().any(|p| p.field.as_deref() == Some(field))
    }

    /// `Err` with every problem, if there was any.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid(self.problems))
        }
    }
}

/// A value taken by [`Form::take`] after [`Form::finish`] succeeded.
pub fn got<T>(v: Option<T>) -> Result<T, ApiError> {
    v.ok_or_else(|| ApiError::Internal("a form field was read after an error".into()))
}

/// Typed access to the fields of a JSON object body.
pub struct Fields {
    map: Map<String, Value>,
}

impl Fields {
    /// Refuse any field not in `allowed` (the error lists the allowed ones).
    pub fn new(obj: JsonObject, allowed: &[&str]) -> Result<Fields, ApiError> {
        let unknown: Vec<Problem> = obj
            .0
            .keys()
            .filter(|k| !allowed.contains(&k.as_str()))
            .map(|k| {
                let shown: String = k.chars().take(64).collect();
                Problem::field(
                    &shown,
                    Code::UnknownField,
                    format!("unknown field; expected one of {}", allowed.join(", ")),
                )
                .param("allowed", allowed.to_vec())
            })
            .collect();
        if !unknown.is_empty() {
            return Err(ApiError::invalid(unknown));
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
        v.as_str().ok_or_else(|| wrong_type(name, "a string", v))
    }

    fn missing(name: &str) -> ApiError {
        ApiError::coded(name, Code::Required, "missing required field")
    }

    /// A required, non-blank text (trimmed) within the data rules: at most
    /// [`rules::MAX_TEXT_CHARS`] characters, no control characters.
    pub fn text(&self, name: &str) -> Result<String, ApiError> {
        let v = self.value(name).ok_or_else(|| Self::missing(name))?;
        let s = self.string(name, v)?.trim();
        check_text(name, s, true)?;
        Ok(s.to_owned())
    }

    /// An optional text; absent, null and blank are `None`.
    pub fn opt_text(&self, name: &str) -> Result<Option<String>, ApiError> {
        let Some(v) = self.value(name) else { return Ok(None) };
        let s = self.string(name, v)?.trim();
        if s.is_empty() {
            return Ok(None);
        }
        check_text(name, s, false)?;
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
        let v = self.value(name).ok_or_else(|| Self::missing(name))?;
        let bad = || {
            ApiError::coded(
                name,
                Code::OutOfRange,
                format!("expected a positive integer 1..={MAX_POSITIONS}, found {v}"),
            )
            .param("min", 1)
            .param("max", MAX_POSITIONS)
        };
        if !v.is_number() {
            return Err(wrong_type(name, "a positive integer", v).param("min", 1).param("max", MAX_POSITIONS));
        }
        // JSON has one number type: `3.0` is the integer 3 (as JSON Schema
        // reads it), so it is accepted like `3`.
        let whole = v.as_f64().filter(|f| f.fract() == 0.0 && (0.0..=f64::from(MAX_POSITIONS)).contains(f));
        let n = v.as_u64().or(whole.map(|f| f as u64)).ok_or_else(bad)?;
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

    /// A value from a closed list, parsed by `parse`; absent or null is
    /// `None`, an empty string is refused (it is no value of the list).
    fn choice<T>(
        &self,
        name: &str,
        parse: impl Fn(&str) -> Option<T>,
        allowed: &[&str],
    ) -> Result<Option<T>, ApiError> {
        let Some(v) = self.value(name) else { return Ok(None) };
        let s = self.string(name, v)?;
        if s.trim().is_empty() {
            return Err(ApiError::coded(
                name,
                Code::Required,
                format!("must not be empty; expected one of {}", allowed.join(", ")),
            )
            .param("allowed", allowed.to_vec()));
        }
        parse(s).map(Some).ok_or_else(|| {
            let shown: String = s.chars().take(64).collect();
            ApiError::coded(name, Code::NotInList, format!("{shown:?} is not one of {}", allowed.join(", ")))
                .param("allowed", allowed.to_vec())
        })
    }

    pub fn work_type(&self, name: &str) -> Result<Option<WorkType>, ApiError> {
        self.choice(name, WorkType::parse, &WorkType::ALL.map(WorkType::as_str))
    }

    pub fn key_group(&self, name: &str) -> Result<Option<KeyGroup>, ApiError> {
        self.choice(name, KeyGroup::parse, &KeyGroup::ALL.map(KeyGroup::as_str))
    }

    pub fn status(&self, name: &str) -> Result<Option<PostingStatus>, ApiError> {
        self.choice(name, PostingStatus::parse, &PostingStatus::ALL.map(PostingStatus::as_str))
    }

    /// Require a value read by one of the optional readers.
    pub fn required<T>(name: &str, v: Option<T>) -> Result<T, ApiError> {
        v.ok_or_else(|| Self::missing(name))
    }

    /// An optional node id; an empty string is refused.
    pub fn node_id(&self, name: &str) -> Result<Option<NodeId>, ApiError> {
        let Some(v) = self.value(name) else { return Ok(None) };
        parse_node_id(name, self.string(name, v)?).map(Some)
    }

    /// An optional ISO date `YYYY-MM-DD`.
    pub fn date(&self, name: &str) -> Result<Option<String>, ApiError> {
        let Some(s) = self.opt_text(name)? else { return Ok(None) };
        if !jobmesh_protocol::time::is_iso_date(&s) {
            return Err(ApiError::coded(name, Code::NotADate, format!("{s:?} is not a date YYYY-MM-DD")));
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
        let v = self.value(name).ok_or_else(|| Self::missing(name))?;
        parse_record_id(name, self.string(name, v)?, kind)
    }

    /// An optional list of non-blank strings (at most [`MAX_SKILLS`]).
    pub fn string_list(&self, name: &str) -> Result<Vec<String>, ApiError> {
        let Some(v) = self.value(name) else { return Ok(Vec::new()) };
        let items = v.as_array().ok_or_else(|| wrong_type(name, "a list of strings", v))?;
        if items.len() > MAX_SKILLS {
            return Err(ApiError::coded(
                name,
                Code::TooManyEntries,
                format!("at most {MAX_SKILLS} entries, found {}", items.len()),
            )
            .param("max", MAX_SKILLS));
        }
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let s = item.as_str().ok_or_else(|| {
                ApiError::coded(
                    name,
                    Code::WrongType,
                    format!("entry {i}: expected a string, found {}", type_name(item)),
                )
                .param("expected", "a string")
            })?;
            let s = s.trim();
            check_text(name, s, true).map_err(|e| e.param("entry", i))?;
            out.push(s.to_owned());
        }
        Ok(out)
    }
}

fn wrong_type(name: &str, expected: &str, v: &Value) -> ApiError {
    ApiError::coded(name, Code::WrongType, format!("expected {expected}, found {}", type_name(v)))
        .param("expected", expected)
        .param("found", type_name(v))
}

/// The text rules of [`rules::check_text`], as an API error naming `name`.
fn check_text(name: &str, s: &str, required: bool) -> Result<(), ApiError> {
    rules::check_text(s, required).map_err(|e| ApiError::invalid(vec![Problem::rule(name, &e)]))
}

/// Parse a node id; errors name `field` and never echo more than 64
/// characters of it.
pub fn parse_node_id(field: &str, s: &str) -> Result<NodeId, ApiError> {
    if s.trim().is_empty() {
        return Err(ApiError::coded(field, Code::Required, "must not be empty; expected a node id such as gz/guiyang"));
    }
    if s.len() > MAX_ID_INPUT {
        return Err(ApiError::coded(field, Code::InvalidNodeId, format!("longer than {MAX_ID_INPUT} bytes")));
    }
    NodeId::parse(s).map_err(|e| ApiError::coded(field, Code::InvalidNodeId, e))
}

/// Parse a record id that must be of `kind`; errors name `field`.
pub fn parse_record_id(field: &str, s: &str, kind: Kind) -> Result<RecordId, ApiError> {
    if s.is_empty() {
        return Err(ApiError::coded(
            field,
            Code::Required,
            format!("must not be empty; expected a {} id", kind.name()),
        ));
    }
    let id = RecordId::parse(s).map_err(|e| ApiError::coded(field, Code::InvalidId, e))?;
    if id.kind() != kind {
        return Err(ApiError::coded(
            field,
            Code::WrongKind,
            format!("{s:?} is a {} id, not a {} id", id.kind().name(), kind.name()),
        )
        .param("expected", kind.name()));
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
/// may add cache busters). A parameter that is not valid UTF-8 once
/// percent-decoded is a 400 naming it.
pub struct QueryParams(pub HashMap<String, String>);

#[async_trait]
impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let mut out = HashMap::new();
        for (k, v) in split_query(parts.uri.query().unwrap_or("")) {
            let key = String::from_utf8(percent_decode(k))
                .map_err(|_| ApiError::coded("query", Code::NotUtf8, "a parameter name is not valid UTF-8"))?;
            let value = String::from_utf8(percent_decode(v))
                .map_err(|_| ApiError::coded(&key, Code::NotUtf8, "not valid UTF-8 once percent-decoded"))?;
            out.insert(key, value);
        }
        Ok(QueryParams(out))
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
            Some(other) => {
                let shown: String = other.chars().take(64).collect();
                Err(ApiError::coded(name, Code::InvalidBool, format!("{shown:?} is not true or false")))
            }
        }
    }

    /// An optional non-negative integer, in plain digits (no sign, no
    /// leading zeros).
    pub fn uint(&self, name: &str) -> Result<Option<u64>, ApiError> {
        match self.get(name) {
            None | Some("") => Ok(None),
            Some(s) => plain_uint(s).map(Some).ok_or_else(|| {
                let shown: String = s.chars().take(64).collect();
                ApiError::coded(
                    name,
                    Code::OutOfRange,
                    format!("{shown:?} is not a non-negative integer in plain digits"),
                )
            }),
        }
    }

    /// An optional node id.
    pub fn node_id(&self, name: &str) -> Result<Option<NodeId>, ApiError> {
        match self.get(name) {
            None | Some("") => Ok(None),
            Some(s) => parse_node_id(name, s).map(Some),
        }
    }
}

/// Digits only, no leading zero (except `0` itself), within u64.
pub fn plain_uint(s: &str) -> Option<u64> {
    let digits = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits || (s.len() > 1 && s.starts_with('0')) {
        return None;
    }
    s.parse().ok()
}

fn split_query(q: &str) -> impl Iterator<Item = (&str, &str)> {
    q.split('&').filter(|p| !p.is_empty()).map(|pair| pair.split_once('=').unwrap_or((pair, "")))
}

/// Decode `a=1&b=x%20y` (`+` is a space), lossily. Later duplicates win.
pub fn parse_query(q: &str) -> HashMap<String, String> {
    split_query(q)
        .map(|(k, v)| {
            (
                String::from_utf8_lossy(&percent_decode(k)).into_owned(),
                String::from_utf8_lossy(&percent_decode(v)).into_owned(),
            )
        })
        .collect()
}

fn percent_decode(s: &str) -> Vec<u8> {
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
    out
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

    fn refused(body: &str) -> (String, String) {
        let e = parse_object(body.as_bytes()).unwrap_err();
        let p = &e.problems()[0];
        (p.code.as_str().to_owned(), p.field.clone().unwrap_or_default())
    }

    #[test]
    fn strict_json() {
        assert_eq!(refused(r#"{"title": "a", "title": "b"}"#), ("duplicate_key".into(), "title".into()));
        let deep = format!(r#"{{"title": "x", "skills": {}{}}}"#, "[".repeat(1000), "]".repeat(1000));
        assert_eq!(refused(&deep), ("too_deep".into(), "skills".into()));
        assert_eq!(refused(&"[".repeat(1000)), ("too_deep".into(), "body".into()));
        assert_eq!(refused(r#"{"positions": 9007199254740993}"#), ("number_too_large".into(), "positions".into()));
        assert_eq!(refused(r#"{"positions": 1e300}"#), ("number_too_large".into(), "positions".into()));
        assert_eq!(refused(r#"{"positions": -9007199254740993}"#), ("number_too_large".into(), "positions".into()));
        assert!(parse_object(br#"{"positions": 9007199254740992}"#).is_ok());
        let mut bad_utf8 = br#"{"title": "ok", "employer": "x"#.to_vec();
        bad_utf8.extend([0xff, 0xfe]);
        bad_utf8.extend(br#""}"#);
        let e = parse_object(&bad_utf8).unwrap_err();
        assert_eq!((e.problems()[0].code, e.problems()[0].field.as_deref()), (Code::NotUtf8, Some("employer")));
        assert_eq!(refused("{\"title\": \"a\u{1}b\"}"), ("invalid_json".into(), "title".into()));
        assert_eq!(refused(r#"{"title": "a", "employer": }"#), ("invalid_json".into(), "employer".into()));
        assert_eq!(refused("  "), ("empty_body".into(), "body".into()));
        assert_eq!(refused("[1]"), ("not_an_object".into(), "body".into()));
    }

    #[test]
    fn plain_digits_only() {
        assert_eq!(plain_uint("5000"), Some(5000));
        assert_eq!(plain_uint("0"), Some(0));
        for bad in ["+5", "-1", "007", "", " 5", "5 ", "1e3", "99999999999999999999"] {
            assert_eq!(plain_uint(bad), None, "{bad:?}");
        }
    }
}
