//! The HTTP API and web page (axum). See `../shared/design.md`, Interfaces.

use std::sync::Arc;

use jobmesh_protocol::topology::Topology;
use jobmesh_protocol::NodeId;

use crate::state::NodeState;

/// What the API needs to know beyond the engine state.
#[derive(Debug, Clone, Default)]
pub struct ApiContext {
    /// Bearer token required on every request (set when `api` is not loopback).
    pub token: Option<String>,
    /// The tree below this node (from the config's `topology`), so that an
    /// office that never reported shows as missing.
    pub topology: Option<Topology>,
    /// Figures older than this are stale.
    pub stale_after_s: u64,
    /// The configured parent and its address, if any.
    pub parent: Option<(NodeId, String)>,
}

/// The API's router, ready to serve.
pub fn router(_state: Arc<NodeState>, _ctx: Arc<ApiContext>) -> axum::Router {
    axum::Router::new()
}
