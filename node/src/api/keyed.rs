//! Creating records under external references, so that importing a file
//! twice, or re-running an import after a crash, creates nothing twice. The
//! engine keeps the office-local index (`store::external_ref_key`) in the
//! same atomic write as the records (`Engine::create_keyed`); this module
//! runs that write through the engine thread, waits until it is durable and
//! turns its outcomes into HTTP answers.

use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use jobmesh_protocol::engine::local::{KeyedWritten, NewRecord, WriteError, Written};
use jobmesh_protocol::Record;

use super::error::{ApiError, ApiResult};
use super::Api;

/// Create one record under `external_ref`: 201 when created now, 200 with
/// the record already held under the reference otherwise (no new version).
pub async fn create_one(api: &Api, external_ref: String, new: NewRecord) -> ApiResult<(StatusCode, Record)> {
    let written = create_many(api, vec![(external_ref, new)]).await?;
    let outcome =
        written.outcomes.into_iter().next().ok_or_else(|| ApiError::Internal("the engine answered nothing".into()))?;
    let keyed = outcome.map_err(ApiError::from)?;
    Ok((if keyed.created { StatusCode::CREATED } else { StatusCode::OK }, keyed.record))
}

/// Create records under their references in one atomic write and wait
/// until it is durable (also when every item already existed, so no answer
/// names a record before it survives a crash); outcomes are per item, in
/// order.
pub async fn create_many(api: &Api, items: Vec<(String, NewRecord)>) -> Result<KeyedWritten, WriteError> {
    let slot: Arc<Mutex<Option<KeyedWritten>>> = Arc::new(Mutex::new(None));
    let fill = slot.clone();
    api.state
        .write(move |e, now| {
            let keyed = e.create_keyed(items, now)?;
            let gen = keyed.gen;
            *fill.lock().unwrap_or_else(|p| p.into_inner()) = Some(keyed);
            Ok(Written { records: Vec::new(), gen })
        })
        .await?;
    let keyed = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
    keyed.ok_or_else(|| {
        WriteError::Store(jobmesh_protocol::kv::StoreError::Backend("the engine answered nothing".into()))
    })
}

/// The body's `external_ref`, checked (blank or absent: none).
pub fn external_ref(f: &super::input::Fields) -> ApiResult<Option<String>> {
    let r = f.opt_text("external_ref")?;
    if let Some(r) = &r {
        jobmesh_protocol::engine::local::check_external_ref(r).map_err(|p| {
            ApiError::field("external_ref", p).param("max_bytes", jobmesh_protocol::engine::local::MAX_EXTERNAL_REF)
        })?;
    }
    Ok(r)
}
