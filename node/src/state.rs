//! The node's shared state: the sync engine behind one mutex, the store's
//! read handle, and the plumbing that turns engine output into IO.
//!
//! Every call into the engine goes through [`NodeState::with_engine`], which
//! after the call drains the engine's transmits to the per-link outboxes and
//! its events to logs and metrics, and wakes the flusher when there is
//! something to make durable. Local writes go through [`NodeState::write`],
//! which returns only once the write is durable (group commit: one flush
//! covers every write made before it started).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use jobmesh_protocol::engine::local::{WriteError, Written};
use jobmesh_protocol::engine::Event;
use jobmesh_protocol::wire::Frame;
use jobmesh_protocol::{Engine, NodeId};
use tokio::sync::{mpsc, watch, Notify};

use crate::metrics::Metrics;
use crate::storage::SledKv;

/// Frames queued for one link's writer task. Bounded: the engine's window
/// keeps a healthy link far below it, so a full outbox means a stuck peer,
/// and that link is closed (it resumes from its checkpoint on reconnect).
pub const OUTBOX_FRAMES: usize = 1024;

/// Unix time in milliseconds, the engine's clock.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// What a link's connection task registers so the engine's output reaches it.
pub struct Outbox {
    /// Connection generation: a stale connection's removal must not remove
    /// its successor's outbox.
    pub conn: u64,
    pub tx: mpsc::Sender<Frame>,
    /// Cancelled when the engine refuses the peer or the outbox overflows.
    pub close: tokio_util::sync::CancellationToken,
    pub close_reason: Arc<Mutex<Option<String>>>,
}

/// State shared by the node's tasks and the HTTP API.
pub struct NodeState {
    pub me: NodeId,
    engine: Mutex<Engine<SledKv>>,
    /// Read handle on the store, for the API (reads need no engine lock).
    pub kv: SledKv,
    outboxes: Mutex<HashMap<NodeId, Outbox>>,
    /// Highest write generation known durable.
    durable: watch::Sender<u64>,
    /// Wakes the flusher.
    pub flush_wanted: Notify,
    /// Wakes the timer task when the engine's next timeout may have moved.
    pub timer_changed: Notify,
    pub metrics: Metrics,
}

impl NodeState {
    pub fn new(engine: Engine<SledKv>, kv: SledKv, metrics: Metrics) -> Arc<NodeState> {
        let me = engine.node_id().clone();
        Arc::new(NodeState {
            me,
            engine: Mutex::new(engine),
            kv,
            outboxes: Mutex::new(HashMap::new()),
            durable: watch::Sender::new(0),
            flush_wanted: Notify::new(),
            timer_changed: Notify::new(),
            metrics,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Engine<SledKv>> {
        // A panic while holding the lock would be a bug in the engine; the
        // engine's state is still consistent with the store at every await
        // point, so carry on rather than poison every later request.
        self.engine.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Run `f` on the engine, then dispatch what it produced.
    pub fn with_engine<R>(&self, f: impl FnOnce(&mut Engine<SledKv>) -> R) -> R {
        let mut engine = self.lock();
        let out = f(&mut engine);
        self.dispatch(&mut engine);
        if engine.needs_flush() {
            self.flush_wanted.notify_one();
        }
        drop(engine);
        self.timer_changed.notify_one();
        out
    }

    /// Read-only access to the engine (status, figures, link stats).
    pub fn inspect<R>(&self, f: impl FnOnce(&Engine<SledKv>) -> R) -> R {
        f(&self.lock())
    }

    fn dispatch(&self, engine: &mut Engine<SledKv>) {
        let outboxes = self.outboxes.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(t) = engine.poll_transmit() {
            let Some(ob) = outboxes.get(&t.peer) else { continue };
            if let Err(e) = ob.tx.try_send(t.frame) {
                tracing::warn!(peer = %t.peer, "outbox full or closed ({e}); closing the link");
                *ob.close_reason.lock().unwrap_or_else(|p| p.into_inner()) = Some("outbox overflow".into());
                ob.close.cancel();
            }
        }
        while let Some(ev) = engine.poll_event() {
            match &ev {
                Event::Refused { peer, reason } => {
                    tracing::warn!(%peer, reason = %reason, "refused a batch; closing the link");
                    self.metrics.refused(reason.label());
                    if let Some(ob) = outboxes.get(peer) {
                        *ob.close_reason.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason.to_string());
                        ob.close.cancel();
                    }
                }
                Event::Conflict { id, version } => {
                    tracing::error!(%id, version, "same version with different content: store or peer is corrupt")
                }
                Event::JournalBehindPeer { peer, peer_checkpoint, last_seq } => tracing::warn!(
                    %peer, peer_checkpoint, last_seq,
                    "peer holds more of this node's journal than exists: resending everything"
                ),
                Event::JournalSettled { peer, peer_checkpoint, moved } => tracing::info!(
                    %peer, peer_checkpoint, moved,
                    "restored store: journal continues above the peer's checkpoint, so no sequence it saw is reused"
                ),
                Event::RestoreDone { recovered, unrecoverable } => tracing::info!(
                    recovered,
                    unrecoverable = unrecoverable.len(),
                    "restore complete: own records are back from the parent; writing again"
                ),
                Event::RestoreUnsupported { parent } => tracing::warn!(
                    %parent,
                    "restored store: the parent does not serve restores (older jobmesh); this office stays read-only until it does"
                ),
                Event::LinkReady { peer, resume_after } => {
                    tracing::info!(%peer, resume_after, "link ready")
                }
                Event::Applied { peer, records, changed, through } => {
                    tracing::debug!(%peer, records, changed, through, "applied batch")
                }
            }
        }
    }

    /// Register a connection's outbox; returns the previous one's generation.
    pub fn register_outbox(&self, peer: &NodeId, outbox: Outbox) {
        let mut outboxes = self.outboxes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = outboxes.insert(peer.clone(), outbox) {
            *old.close_reason.lock().unwrap_or_else(|p| p.into_inner()) = Some("replaced by a newer connection".into());
            old.close.cancel();
        }
    }

    /// Remove a connection's outbox if it is still the registered one.
    /// Returns true if it was (the caller then reports link_down).
    pub fn unregister_outbox(&self, peer: &NodeId, conn: u64) -> bool {
        let mut outboxes = self.outboxes.lock().unwrap_or_else(|p| p.into_inner());
        if outboxes.get(peer).is_some_and(|o| o.conn == conn) {
            outboxes.remove(peer);
            true
        } else {
            false
        }
    }

    /// Is a connection to `peer` registered?
    pub fn connected(&self, peer: &NodeId) -> bool {
        self.outboxes.lock().unwrap_or_else(|p| p.into_inner()).contains_key(peer)
    }

    /// Make a local write and wait until it is durable.
    pub async fn write(
        &self,
        f: impl FnOnce(&mut Engine<SledKv>, u64) -> Result<Written, WriteError>,
    ) -> Result<Written, WriteError> {
        let written = self.with_engine(|e| f(e, now_ms()))?;
        self.wait_durable(written.gen).await;
        Ok(written)
    }

    /// Wait until write generation `gen` is durable.
    pub async fn wait_durable(&self, gen: u64) {
        let mut rx = self.durable.subscribe();
        self.flush_wanted.notify_one();
        // The sender lives as long as `self`; an error cannot happen while we
        // hold `&self`.
        let _ = rx.wait_for(|d| *d >= gen).await;
    }

    /// Called by the flusher once a flush covering `gen` completed.
    pub fn mark_durable(&self, gen: u64) {
        self.durable.send_if_modified(|d| {
            if gen > *d {
                *d = gen;
                true
            } else {
                false
            }
        });
    }

    /// Current durable generation.
    pub fn durable_gen(&self) -> u64 {
        *self.durable.borrow()
    }
}
