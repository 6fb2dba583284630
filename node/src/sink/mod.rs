//! Sinks: continuous mirrors of the records this node holds into another
//! database. One kind so far, PostgreSQL ([`postgres`]), configured by
//! `[sink.postgres]`.
//!
//! A sink is its own tasks over the node's store handle: it reads the
//! durable journal (the engine thread publishes how far that is) and never
//! sends the engine thread work, so a slow or absent database makes the
//! sink fall behind, never the node. The runtime calls
//! [`start`] once (which refuses a config whose server, login or schema
//! privilege is wrong) and [`Sink::stopped`] at shutdown.

pub mod config;
pub mod mapping;
pub mod postgres;
pub mod schema;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use config::{PostgresConfig, RawSink};
pub use status::{SinkStatus, SinkView};

use crate::config::{Config, ConfigError};
use crate::state::now_ms;
use crate::state::NodeState;

/// Longest the sink may take to finish its transaction at shutdown.
const STOP_DRAIN: Duration = Duration::from_secs(5);

/// A running sink.
pub struct Sink {
    pub status: Arc<SinkStatus>,
    tasks: Vec<JoinHandle<()>>,
}

/// Start the sink the config names, if any. The server is checked first
/// (reachable, login, schema created or migrated and complete), so a wrong
/// `[sink.postgres]` stops the node at start with the key in the message.
pub async fn start(cfg: &Config, state: &Arc<NodeState>, stop: CancellationToken) -> Result<Option<Sink>, ConfigError> {
    let Some(pg) = cfg.sink_postgres.clone() else { return Ok(None) };
    let head = state.inspect(|v| v.last_seq());
    let status = Arc::new(SinkStatus::new(pg.target.clone(), pg.schema.clone(), 0, head, now_ms()));
    let ctx = postgres::SinkContext {
        node_id: cfg.node_id.clone(),
        topology: cfg.topology.clone().map(Arc::new),
        state: state.clone(),
        status: status.clone(),
    };
    let checkpoint = postgres::check_at_start(&pg, &ctx).await.map_err(|e| cfg.error(e.key(), e.problem()))?;
    status.connected(checkpoint);
    tracing::info!(target = %pg.target, schema = %pg.schema, checkpoint, head, "sink: PostgreSQL ready");
    let sampler = {
        let (state, status, stop) = (state.clone(), status.clone(), stop.clone());
        tokio::spawn(
            async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(status::SAMPLE_EVERY) => {}
                        _ = stop.cancelled() => return,
                    }
                    status.observe_head(state.inspect(|v| v.last_seq()), now_ms());
                }
            }
            .in_current_span(),
        )
    };
    let mirror = tokio::spawn(postgres::run(pg, ctx, stop).in_current_span());
    Ok(Some(Sink { status, tasks: vec![sampler, mirror] }))
}

impl Sink {
    /// Wait for the sink's tasks after the stop token was cancelled; a
    /// transaction still open after [`STOP_DRAIN`] is abandoned (PostgreSQL
    /// rolls it back, and the checkpoint it would have written stays).
    pub async fn stopped(self) {
        for t in self.tasks {
            let abort = t.abort_handle();
            if tokio::time::timeout(STOP_DRAIN, t).await.is_err() {
                tracing::warn!("sink: did not stop within {STOP_DRAIN:?}; abandoning its transaction");
                abort.abort();
            }
        }
    }
}
