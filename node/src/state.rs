//! The handle every part of the node holds on its engine: a bounded channel
//! of inputs into the engine thread ([`crate::driver`]), the snapshot the
//! engine thread publishes of what it owns, and the store's read handle.
//!
//! Nothing here locks the engine: API handlers and link tasks *send* their
//! writes and frames to the engine thread and await its answer, so the
//! store's IO never runs on an async worker and no worker ever waits on a
//! lock held across disk IO. Read-only API queries read sled directly
//! through [`NodeState::kv`] (sled is thread-safe) on the blocking pool;
//! link state and counters come from [`NodeState::inspect`], a snapshot the
//! engine thread republishes as they change.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use jobmesh_protocol::engine::local::{WriteError, Written};
use jobmesh_protocol::engine::{ClockEstimate, LinkStats};
use jobmesh_protocol::kv::StoreError;
use jobmesh_protocol::wire::Frame;
use jobmesh_protocol::{Engine, NodeId};
use tokio::sync::{mpsc, oneshot, watch};

use crate::metrics::Metrics;
use crate::storage::SledKv;

/// Frames queued for one link's writer task. Bounded: the engine's window
/// keeps a healthy link far below it, so a full outbox means a stuck peer,
/// and that link is closed (it resumes from its checkpoint on reconnect).
pub const OUTBOX_FRAMES: usize = 1024;

/// Inputs queued for the engine thread. A full queue makes API writers and
/// link readers wait (backpressure onto HTTP clients and QUIC flow
/// control) instead of growing memory.
pub const ENGINE_INPUTS: usize = 4096;

/// A step forward of the system clock larger than this is followed.
const FOLLOW_STEP_MS: u64 = 1_000;

fn system_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Unix time in milliseconds, the engine's clock: the system clock as it
/// was when the process first asked, advanced by the monotonic clock, and
/// following the system clock when it steps forward, never when it steps
/// back. A clock set back by hand while the node runs therefore moves no
/// timer, no duration and no stamp back (timers would otherwise wait out
/// the step, and offices go stale); set forward (NTP fixing a slow clock),
/// it is followed at once. Across a restart the process starts from the
/// system clock again, whatever it says; the engine keeps `generated_at`
/// from going back, and the correction measured against the parent (see
/// `jobmesh_protocol::engine::clock`) fixes record times. One anchor per
/// process: it is a clock, not configuration, and every node of a process
/// reading the same clock is what the host would give them anyway.
pub fn now_ms() -> u64 {
    static ANCHOR: OnceLock<(Instant, u64)> = OnceLock::new();
    static STEPPED: AtomicU64 = AtomicU64::new(0);
    let (at, base) = *ANCHOR.get_or_init(|| (Instant::now(), system_ms()));
    let mono = base + at.elapsed().as_millis() as u64;
    let system = system_ms();
    let stepped = STEPPED.load(Ordering::Relaxed);
    if system > mono + stepped + FOLLOW_STEP_MS {
        let step = STEPPED.fetch_max(system - mono, Ordering::Relaxed).max(system - mono);
        return mono + step;
    }
    mono + stepped
}

/// This node's clock measurements, as the engine thread last saw them.
#[derive(Debug, Clone, Default)]
pub struct ClockView {
    /// Corrected time minus this node's clock (0 at the root and until
    /// measured).
    pub correction_ms: i64,
    /// This node's clock minus its parent's, if measured.
    pub offset_to_parent_ms: Option<i64>,
    /// Per peer: the peer's clock minus this node's.
    pub links: BTreeMap<NodeId, ClockEstimate>,
}

/// The reason given when a peer's newer connection takes over its outbox.
pub const REPLACED: &str = "replaced by a newer connection";

/// Why the engine thread closed a link, read by the link's task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closing {
    /// The engine refused the peer or a frame (authorization, version,
    /// the store failing): closed with code `refused`, the peer backs off.
    Refused(String),
    /// The node closed the link for its own reasons (outbox overflow, no
    /// progress, replaced by a newer connection): the peer redials at once.
    ByNode(String),
}

/// What a link's connection task hands the engine thread at link up, so the
/// engine's output reaches it.
pub struct Outbox {
    /// Connection generation: frames and the link-down of a replaced
    /// connection must not touch its successor.
    pub conn: u64,
    pub tx: mpsc::Sender<Frame>,
    /// Cancelled when the engine thread closes the link.
    pub close: tokio_util::sync::CancellationToken,
    /// Why, set just before `close` is cancelled.
    pub close_reason: Arc<Mutex<Option<Closing>>>,
}

impl Outbox {
    /// Ask the link's task to close its connection.
    pub fn close(&self, why: Closing) {
        *self.close_reason.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
        self.close.cancel();
    }
}

/// A local write: runs on the engine thread with the engine and the time.
pub type WriteOp = Box<dyn FnOnce(&mut Engine<SledKv>, u64) -> Result<Written, WriteError> + Send>;

/// Anything else run on the engine thread.
pub type CallOp = Box<dyn FnOnce(&mut Engine<SledKv>) + Send>;

/// What the engine thread takes in.
pub enum Input {
    /// A local write from the API; answered once durable (or refused).
    Write { op: WriteOp, reply: oneshot::Sender<Result<Written, WriteError>> },
    /// Anything else to run on the engine (tests, rare queries).
    Call(CallOp),
    /// A connection to a neighbour opened, speaking protocol `version`
    /// (what its ALPN settled on).
    LinkUp { peer: NodeId, version: u32, outbox: Outbox },
    /// A connection closed.
    LinkDown { peer: NodeId, conn: u64 },
    /// A frame arrived on connection `conn`.
    Frame { peer: NodeId, conn: u64, frame: Frame },
}

/// How the store is doing, as the engine thread last saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreHealth {
    Ok,
    /// Writes and links are refused until the store recovers.
    Failing {
        /// The first error, in words.
        problem: String,
        /// The disk is full (the node waits for free space).
        disk_full: bool,
        /// Unix ms when the store started failing.
        since_ms: u64,
    },
}

impl StoreHealth {
    pub fn is_ok(&self) -> bool {
        matches!(self, StoreHealth::Ok)
    }

    /// The error to answer a write with while failing, in words for people.
    pub fn refusal(&self) -> Option<StoreError> {
        match self {
            StoreHealth::Ok => None,
            StoreHealth::Failing { disk_full: true, .. } => Some(StoreError::Full(
                "the office's disk is full; nothing new can be saved until space is freed".into(),
            )),
            StoreHealth::Failing { problem, .. } => {
                Some(StoreError::Backend(format!("the office's store is failing ({problem}); try again later")))
            }
        }
    }
}

/// What the engine thread publishes of the state it owns.
#[derive(Debug, Clone)]
pub struct EngineView {
    parent: Option<NodeId>,
    last_seq: u64,
    durable_seq: u64,
    link_stats: BTreeMap<NodeId, LinkStats>,
    connected: BTreeSet<NodeId>,
    store: StoreHealth,
    restoring: bool,
    clock: ClockView,
}

impl EngineView {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        parent: Option<NodeId>,
        last_seq: u64,
        durable_seq: u64,
        link_stats: BTreeMap<NodeId, LinkStats>,
        connected: BTreeSet<NodeId>,
        store: StoreHealth,
        restoring: bool,
        clock: ClockView,
    ) -> EngineView {
        EngineView { parent, last_seq, durable_seq, link_stats, connected, store, restoring, clock }
    }

    /// Clock offsets measured on the links, and this node's correction.
    pub fn clock(&self) -> &ClockView {
        &self.clock
    }

    /// The store was restored from a backup and waits for its own records
    /// from the parent.
    pub fn restoring(&self) -> bool {
        self.restoring
    }

    pub fn parent(&self) -> Option<&NodeId> {
        self.parent.as_ref()
    }
    /// Last journal sequence written (durable or not).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }
    /// Last journal sequence known durable.
    pub fn durable_seq(&self) -> u64 {
        self.durable_seq
    }
    /// Per-link counters, including links that are down.
    pub fn link_stats(&self) -> &BTreeMap<NodeId, LinkStats> {
        &self.link_stats
    }
    /// Is a connection to `peer` up?
    pub fn connected(&self, peer: &NodeId) -> bool {
        self.connected.contains(peer)
    }
    /// Every peer with a connection up.
    pub fn connected_peers(&self) -> &BTreeSet<NodeId> {
        &self.connected
    }
    pub fn store(&self) -> &StoreHealth {
        &self.store
    }
}

/// The error a caller gets when the engine thread has stopped.
fn engine_gone() -> StoreError {
    StoreError::Backend("the node's engine has stopped".into())
}

/// The node's handle on its engine, shared by the API and the link tasks.
pub struct NodeState {
    pub me: NodeId,
    /// Read handle on the store, for the API's queries.
    pub kv: SledKv,
    pub metrics: Arc<Metrics>,
    inputs: mpsc::Sender<Input>,
    view: watch::Receiver<Arc<EngineView>>,
}

impl NodeState {
    pub(crate) fn new(
        me: NodeId,
        kv: SledKv,
        metrics: Arc<Metrics>,
        inputs: mpsc::Sender<Input>,
        view: watch::Receiver<Arc<EngineView>>,
    ) -> NodeState {
        NodeState { me, kv, metrics, inputs, view }
    }

    /// Hand an input to the engine thread, waiting while its queue is full.
    /// False if the engine thread has stopped.
    pub async fn send(&self, input: Input) -> bool {
        self.inputs.send(input).await.is_ok()
    }

    /// Make a local write and wait until it is durable. The closure runs on
    /// the engine thread; the answer comes only after the flush that covers
    /// the write (group commit), or at once if the store is failing.
    pub async fn write(
        &self,
        f: impl FnOnce(&mut Engine<SledKv>, u64) -> Result<Written, WriteError> + Send + 'static,
    ) -> Result<Written, WriteError> {
        let (reply, answer) = oneshot::channel();
        if !self.send(Input::Write { op: Box::new(f), reply }).await {
            return Err(WriteError::Store(engine_gone()));
        }
        answer.await.unwrap_or_else(|_| Err(WriteError::Store(engine_gone())))
    }

    /// Run `f` on the engine thread and return its result.
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Engine<SledKv>) -> R + Send + 'static,
    ) -> Result<R, StoreError> {
        let (tx, rx) = oneshot::channel();
        let job = Box::new(move |e: &mut Engine<SledKv>| {
            let _ = tx.send(f(e));
        });
        if !self.send(Input::Call(job)).await {
            return Err(engine_gone());
        }
        rx.await.map_err(|_| engine_gone())
    }

    /// Read the engine thread's latest snapshot (never waits for the engine).
    pub fn inspect<R>(&self, f: impl FnOnce(&EngineView) -> R) -> R {
        f(&self.view.borrow())
    }

    /// Is a connection to `peer` up?
    pub fn connected(&self, peer: &NodeId) -> bool {
        self.inspect(|v| v.connected(peer))
    }

    /// The corrected time now (see `jobmesh_protocol::engine::clock`):
    /// what record times and "today" are judged by.
    pub fn corrected_now_ms(&self) -> u64 {
        let c = self.inspect(|v| v.clock.correction_ms);
        (now_ms() as i64).saturating_add(c).max(0) as u64
    }

    /// How the store is doing.
    pub fn store_health(&self) -> StoreHealth {
        self.inspect(|v| v.store.clone())
    }
}
