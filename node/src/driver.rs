//! The engine host: one OS thread that owns the node's engine, in the
//! manner of quinn's `ConnectionDriver` over `quinn-proto`, and one thread
//! that flushes the store.
//!
//! Everything that touches the engine arrives on one bounded channel
//! ([`crate::state::Input`]): the API's writes (answered through a oneshot
//! once durable), frames and link up/down from the link tasks, calls. The
//! engine thread waits for the first input or the engine's next timeout,
//! then drains what else is queued (up to [`MAX_DRAIN`]) before it sends
//! the engine's output to the links' outboxes and starts a flush: one
//! wakeup serves many inputs, and one flush covers every write before it
//! (group commit). Store IO therefore runs only on these two threads, never
//! on an async worker, and nobody waits on a lock held across disk IO.
//!
//! The flusher thread flushes while the engine thread goes on applying; a
//! flush's completion comes back on a channel of its own, served first.
//! Writes are answered, acks released and journal entries forwarded only
//! after the flush that covers them.
//!
//! A store that fails (a full disk, an IO error) puts the host in a failing
//! state, logged once: waiting writes and new ones are refused at once with
//! the reason, every link is closed as refused (children back off and
//! retry), and timers stop. The host then waits for free space (or backs
//! off) and reopens the store, rebuilding the engine from what is durable,
//! as after a crash; a line is logged when it recovers.
//!
//! A panic on the engine thread is logged and ends [`EngineHost::failed`],
//! which stops the node with an error: there is no lock to poison.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jobmesh_protocol::engine::local::{WriteError, Written};
use jobmesh_protocol::engine::{Event, FlushTicket, LinkError};
use jobmesh_protocol::kv::StoreError;
use jobmesh_protocol::{Engine, EngineConfig, NodeId};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::metrics::Metrics;
use crate::state::{now_ms, Closing, EngineView, Input, NodeState, Outbox, StoreHealth, ENGINE_INPUTS};
use crate::storage::{OpenError, SledKv};

/// Most inputs handled per wakeup before the engine's output is sent and a
/// flush started, so a flood of inputs cannot delay acks without bound.
pub const MAX_DRAIN: usize = 1024;
/// The snapshot for the API is republished at most this often while inputs
/// keep coming (and always before the engine thread goes idle).
const PUBLISH_EVERY: Duration = Duration::from_millis(2);
/// Longest the engine thread sleeps, so that a clock jump is noticed.
const MAX_SLEEP: Duration = Duration::from_secs(1);
/// While the disk is full, free space is looked at this often...
const FULL_DISK_POLL: Duration = Duration::from_millis(500);
/// ...and the store is reopened once at least this much is free.
const MIN_FREE_BYTES: u64 = 8 * 1024 * 1024;
/// After another store failure, reopening is tried after this long,
/// doubling up to [`RECOVER_MAX`].
const RECOVER_FIRST: Duration = Duration::from_millis(500);
const RECOVER_MAX: Duration = Duration::from_secs(30);
/// A reader still holds the old database: try again this soon.
const REOPEN_BUSY_RETRY: Duration = Duration::from_millis(20);
/// How the link is refused while the store fails (the peer backs off).
const STORE_FAILING: &str = "this office's store is failing; retry later";

/// Tunables of the host.
#[derive(Debug, Clone)]
pub struct HostConfig {
    pub engine: EngineConfig,
}

impl Default for HostConfig {
    fn default() -> Self {
        // QUIC never loses a frame within a connection, so a link with
        // batches out and no ack for a few seconds is a stuck connection
        // (after a cut, its retransmit timer has backed off to many
        // seconds): drop it, and the child redials in one round trip.
        let engine = EngineConfig { stall_ms: Some(4_000), ..EngineConfig::default() };
        HostConfig { engine }
    }
}

/// The running engine host of one node.
pub struct EngineHost {
    stop: Option<oneshot::Sender<()>>,
    ended: CancellationToken,
    panicked: Arc<std::sync::Mutex<Option<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EngineHost {
    /// Resolves if the engine thread ends by itself (it panicked), with
    /// what it said.
    pub async fn failed(&self) -> String {
        self.ended.cancelled().await;
        self.panicked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_else(|| "the engine thread ended".into())
    }

    /// Last step of shutdown, once the API and links have stopped: the
    /// engine thread makes a final flush of everything written or applied
    /// and ends. Errors if it had panicked.
    pub async fn stop(mut self) -> Result<(), String> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.ended.cancelled().await;
        if let Some(t) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        match self.panicked.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(p) => Err(p),
            None => Ok(()),
        }
    }
}

/// Start the engine thread and the flusher thread for `engine`.
pub fn start(
    engine: Engine<SledKv>,
    kv: SledKv,
    metrics: Arc<Metrics>,
    cfg: HostConfig,
) -> std::io::Result<(Arc<NodeState>, EngineHost)> {
    let me = engine.node_id().clone();
    let (inputs_tx, inputs) = mpsc::channel(ENGINE_INPUTS);
    let (flush_req, flush_jobs) = std::sync::mpsc::sync_channel::<FlushJob>(1);
    let (flush_done_tx, flush_done) = mpsc::unbounded_channel();
    let (stop_tx, stop) = oneshot::channel();
    let first = Arc::new(view_of(&engine, &HashMap::new(), &StoreHealth::Ok));
    let (view_tx, view_rx) = watch::channel(first);
    let ended = CancellationToken::new();
    let panicked = Arc::new(std::sync::Mutex::new(None));

    let flush_kv = kv.clone();
    let flusher = std::thread::Builder::new().name("jobmesh-flush".into()).spawn(move || {
        // Ends when the engine thread drops its sender.
        while let Ok(job) = flush_jobs.recv() {
            let started = Instant::now();
            let result = flush_kv.flush_blocking().map(|_| ());
            if flush_done_tx.send(FlushDone { job, result, took: started.elapsed() }).is_err() {
                break;
            }
        }
    })?;

    let span = tracing::Span::current();
    let driver = Driver {
        me: me.clone(),
        cfg: cfg.engine.clone(),
        engine,
        kv: kv.clone(),
        metrics: metrics.clone(),
        inputs,
        stop,
        flush_req: Some(flush_req),
        flush_done,
        flusher: Some(flusher),
        outboxes: HashMap::new(),
        pending: VecDeque::new(),
        flushing: false,
        epoch: 0,
        health: StoreHealth::Ok,
        recovery: None,
        view_tx,
        view_dirty: false,
        last_publish: Instant::now(),
    };
    let (ended2, panicked2) = (ended.clone(), panicked.clone());
    let thread = std::thread::Builder::new().name("jobmesh-engine".into()).spawn(move || {
        let _enter = span.enter();
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || driver.run()));
        if let Err(p) = run {
            let what = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            error!(panic = %what, "the engine thread panicked; stopping the node");
            *panicked2.lock().unwrap_or_else(|p| p.into_inner()) = Some(format!("the engine thread panicked: {what}"));
        }
        ended2.cancel();
    })?;
    let state = Arc::new(NodeState::new(me, kv, metrics, inputs_tx, view_rx));
    Ok((state, EngineHost { stop: Some(stop_tx), ended, panicked, thread: Some(thread) }))
}

fn view_of(engine: &Engine<SledKv>, outboxes: &HashMap<NodeId, Outbox>, health: &StoreHealth) -> EngineView {
    EngineView::new(
        engine.parent().cloned(),
        engine.last_seq(),
        engine.durable_seq(),
        engine.link_stats().clone(),
        outboxes.keys().cloned().collect::<BTreeSet<_>>(),
        health.clone(),
        engine.restoring(),
        crate::state::ClockView {
            correction_ms: engine.clock_correction_ms(),
            offset_to_parent_ms: engine.clock_offset_to_parent_ms(),
            links: engine
                .link_stats()
                .keys()
                .filter_map(|p| engine.clock_estimate(p).map(|e| (p.clone(), e)))
                .collect(),
        },
    )
}

/// A flush handed to the flusher thread.
struct FlushJob {
    /// Which engine incarnation took the ticket (the engine is rebuilt when
    /// the store is reopened; a late completion for the old one is ignored).
    epoch: u64,
    ticket: FlushTicket,
}

struct FlushDone {
    job: FlushJob,
    result: Result<(), StoreError>,
    took: Duration,
}

/// When and how the host next tries to reopen a failing store.
struct Recovery {
    at: Instant,
    delay: Duration,
}

struct Pending {
    gen: u64,
    written: Written,
    reply: oneshot::Sender<Result<Written, WriteError>>,
}

struct Driver {
    me: NodeId,
    cfg: EngineConfig,
    engine: Engine<SledKv>,
    kv: SledKv,
    metrics: Arc<Metrics>,
    inputs: mpsc::Receiver<Input>,
    stop: oneshot::Receiver<()>,
    flush_req: Option<std::sync::mpsc::SyncSender<FlushJob>>,
    flush_done: mpsc::UnboundedReceiver<FlushDone>,
    flusher: Option<std::thread::JoinHandle<()>>,
    outboxes: HashMap<NodeId, Outbox>,
    /// Writes waiting for their flush, in generation order.
    pending: VecDeque<Pending>,
    flushing: bool,
    epoch: u64,
    health: StoreHealth,
    recovery: Option<Recovery>,
    view_tx: watch::Sender<Arc<EngineView>>,
    view_dirty: bool,
    last_publish: Instant,
}

impl Driver {
    fn run(mut self) {
        let rt = match tokio::runtime::Builder::new_current_thread().enable_time().build() {
            Ok(rt) => rt,
            Err(e) => panic!("cannot build the engine thread's timer: {e}"),
        };
        rt.block_on(async {
            loop {
                let wake = self.next_wake();
                tokio::select! {
                    biased;
                    Some(done) = self.flush_done.recv() => self.on_flushed(done),
                    _ = &mut self.stop => break,
                    input = self.inputs.recv() => match input {
                        Some(input) => self.handle(input),
                        None => break,
                    },
                    _ = tokio::time::sleep_until(wake.into()) => {}
                }
                for _ in 0..MAX_DRAIN {
                    match self.inputs.try_recv() {
                        Ok(input) => self.handle(input),
                        Err(_) => break,
                    }
                }
                while let Ok(done) = self.flush_done.try_recv() {
                    self.on_flushed(done);
                }
                self.timers();
                self.after();
            }
            self.finish().await;
        });
    }

    /// The next moment something is due: the engine's timeout, a recovery
    /// attempt, or publishing a changed snapshot.
    fn next_wake(&self) -> Instant {
        let now = Instant::now();
        let mut wake = now + MAX_SLEEP;
        if self.health.is_ok() {
            if let Some(t) = self.engine.poll_timeout() {
                let ms = t.saturating_sub(now_ms());
                wake = wake.min(now + Duration::from_millis(ms));
            }
        }
        if let Some(r) = &self.recovery {
            wake = wake.min(r.at);
        }
        if self.view_dirty {
            wake = wake.min(self.last_publish + PUBLISH_EVERY);
        }
        wake
    }

    fn handle(&mut self, input: Input) {
        match input {
            Input::Write { op, reply } => {
                if let Some(e) = self.health.refusal() {
                    let _ = reply.send(Err(WriteError::Store(e)));
                    return;
                }
                match op(&mut self.engine, now_ms()) {
                    Ok(written) if written.gen <= self.engine.durable_gen() => {
                        let _ = reply.send(Ok(written));
                    }
                    Ok(written) => self.pending.push_back(Pending { gen: written.gen, written, reply }),
                    Err(WriteError::Store(e)) => {
                        self.store_failed(&e);
                        let refusal = self.health.refusal().unwrap_or(e);
                        let _ = reply.send(Err(WriteError::Store(refusal)));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
                self.view_dirty = true;
            }
            Input::Call(f) => {
                f(&mut self.engine);
                self.view_dirty = true;
            }
            Input::LinkUp { peer, version, outbox } => self.link_up(peer, version, outbox),
            Input::LinkDown { peer, conn } => {
                if self.outboxes.get(&peer).is_some_and(|o| o.conn == conn) {
                    self.outboxes.remove(&peer);
                    self.engine.link_down(&peer);
                    self.view_dirty = true;
                }
            }
            Input::Frame { peer, conn, frame } => {
                if !self.health.is_ok() || self.outboxes.get(&peer).is_none_or(|o| o.conn != conn) {
                    // A replaced or closed connection's frame, or the store
                    // is failing (the link is being closed): drop it.
                    return;
                }
                match self.engine.handle_frame(&peer, frame, now_ms()) {
                    Ok(()) => {}
                    Err(LinkError::Store(e)) => self.store_failed(&e),
                    Err(e) => self.close_link(&peer, Closing::Refused(e.to_string())),
                }
                self.view_dirty = true;
            }
        }
    }

    fn link_up(&mut self, peer: NodeId, version: u32, outbox: Outbox) {
        if !self.health.is_ok() {
            outbox.close(Closing::Refused(STORE_FAILING.into()));
            return;
        }
        if let Some(old) = self.outboxes.insert(peer.clone(), outbox) {
            old.close(Closing::ByNode(crate::state::REPLACED.into()));
        }
        match self.engine.link_up_at(&peer, version, now_ms()) {
            Ok(()) => {}
            Err(LinkError::Store(e)) => self.store_failed(&e),
            Err(e) => self.close_link(&peer, Closing::Refused(e.to_string())),
        }
        self.view_dirty = true;
    }

    /// Close a link's connection and forget it.
    fn close_link(&mut self, peer: &NodeId, why: Closing) {
        if let Some(ob) = self.outboxes.remove(peer) {
            ob.close(why);
        }
        self.engine.link_down(peer);
        self.view_dirty = true;
    }

    fn timers(&mut self) {
        if !self.health.is_ok() {
            if self.recovery.as_ref().is_some_and(|r| Instant::now() >= r.at) {
                self.try_recover();
            }
            return;
        }
        let now = now_ms();
        if self.engine.poll_timeout().is_some_and(|t| t <= now) {
            if let Err(e) = self.engine.handle_timeout(now) {
                self.store_failed(&e);
            }
            self.view_dirty = true;
        }
    }

    /// After a round of inputs: send frames, handle events, start a flush,
    /// publish the snapshot.
    fn after(&mut self) {
        self.dispatch();
        if self.health.is_ok() && !self.flushing && self.engine.needs_flush() {
            if let Some(req) = &self.flush_req {
                let ticket = self.engine.begin_flush();
                // Capacity 1 and at most one flush in flight: never blocks.
                if req.send(FlushJob { epoch: self.epoch, ticket }).is_ok() {
                    self.flushing = true;
                }
            }
        }
        if self.view_dirty && (self.inputs.is_empty() || self.last_publish.elapsed() >= PUBLISH_EVERY) {
            self.publish();
        }
    }

    fn publish(&mut self) {
        self.view_tx.send_replace(Arc::new(view_of(&self.engine, &self.outboxes, &self.health)));
        self.view_dirty = false;
        self.last_publish = Instant::now();
    }

    fn dispatch(&mut self) {
        let mut overflowed = Vec::new();
        while let Some(t) = self.engine.poll_transmit() {
            let Some(ob) = self.outboxes.get(&t.peer) else { continue };
            if let Err(e) = ob.tx.try_send(t.frame) {
                warn!(peer = %t.peer, "outbox full or closed ({e}); closing the link");
                overflowed.push(t.peer);
            }
        }
        for peer in overflowed {
            self.close_link(&peer, Closing::ByNode("outbox overflow".into()));
        }
        while let Some(ev) = self.engine.poll_event() {
            match ev {
                Event::Refused { peer, reason } => {
                    warn!(%peer, reason = %reason, "refused a batch; closing the link");
                    self.metrics.refused(reason.label());
                    self.close_link(&peer, Closing::Refused(reason.to_string()));
                }
                Event::Stalled { peer, waited_ms } => {
                    info!(%peer, waited_ms, "no ack from the peer with batches outstanding; closing the link to redial");
                    self.close_link(&peer, Closing::ByNode(format!("no ack for {waited_ms} ms")));
                }
                Event::StoreFailed { peer, error } => {
                    debug!(%peer, error = %error, "store failed on a link");
                    self.store_failed(&error);
                }
                Event::Conflict { id, version } => {
                    error!(%id, version, "same version with different content: store or peer is corrupt")
                }
                Event::JournalBehindPeer { peer, peer_checkpoint, last_seq } => warn!(
                    %peer, peer_checkpoint, last_seq,
                    "peer holds more of this node's journal than exists: resending everything"
                ),
                Event::JournalSettled { peer, peer_checkpoint, moved } => info!(
                    %peer, peer_checkpoint, moved,
                    "restored store: journal continues above the peer's checkpoint, so no sequence it saw is reused"
                ),
                Event::RestoreDone { recovered, unrecoverable } => info!(
                    recovered,
                    unrecoverable = unrecoverable.len(),
                    "restore complete: own records are back from the parent; writing again"
                ),
                Event::RestoreUnsupported { parent } => warn!(
                    %parent,
                    "restored store: the parent does not serve restores (older jobmesh); this office stays read-only until it does"
                ),
                Event::LinkReady { peer, resume_after } => info!(%peer, resume_after, "link ready"),
                Event::Applied { peer, records, changed, through } => {
                    debug!(%peer, records, changed, through, "applied batch")
                }
            }
        }
    }

    fn on_flushed(&mut self, done: FlushDone) {
        if done.job.epoch != self.epoch {
            // A flush of the engine before the store was reopened.
            self.flushing = false;
            return;
        }
        self.flushing = false;
        match done.result {
            Ok(()) => {
                self.metrics.flush_done(done.took);
                self.engine.flushed(done.job.ticket, now_ms());
                // Publish first, so that whoever gets a 201 next sees the
                // write in the status figures.
                self.publish();
                let durable = self.engine.durable_gen();
                while self.pending.front().is_some_and(|p| p.gen <= durable) {
                    if let Some(p) = self.pending.pop_front() {
                        let _ = p.reply.send(Ok(p.written));
                    }
                }
                self.view_dirty = true;
            }
            Err(e) => self.store_failed(&e),
        }
    }

    /// The store failed: refuse writes and links until it recovers. Logged
    /// once per change of state, not per attempt.
    fn store_failed(&mut self, e: &StoreError) {
        if !self.health.is_ok() {
            return;
        }
        let disk_full = matches!(e, StoreError::Full(_));
        error!(
            error = %e, disk_full,
            "the store is failing: refusing writes and links until it recovers"
        );
        self.health = StoreHealth::Failing { problem: e.to_string(), disk_full, since_ms: now_ms() };
        // A flush in flight belongs to the engine that is about to be
        // rebuilt: its completion proves nothing about the new one.
        self.epoch += 1;
        let refusal = self.health.refusal().unwrap_or_else(|| e.clone());
        for p in self.pending.drain(..) {
            let _ = p.reply.send(Err(WriteError::Store(refusal.clone())));
        }
        let peers: Vec<NodeId> = self.outboxes.keys().cloned().collect();
        for peer in peers {
            self.close_link(&peer, Closing::Refused(STORE_FAILING.into()));
        }
        let delay = if disk_full { FULL_DISK_POLL } else { RECOVER_FIRST };
        self.recovery = Some(Recovery { at: Instant::now() + delay, delay });
        self.view_dirty = true;
    }

    /// Reopen the store and rebuild the engine from what is durable.
    fn try_recover(&mut self) {
        let Some(r) = self.recovery.take() else { return };
        let disk_full = matches!(self.health, StoreHealth::Failing { disk_full: true, .. });
        let later = |delay: Duration| Recovery { at: Instant::now() + delay, delay };
        if self.flushing {
            // The flusher still holds the database; wait for it.
            self.recovery = Some(later(REOPEN_BUSY_RETRY));
            return;
        }
        if disk_full && self.kv.available_space().is_ok_and(|free| free < MIN_FREE_BYTES) {
            self.recovery = Some(later(FULL_DISK_POLL));
            return;
        }
        let next = if disk_full { FULL_DISK_POLL } else { (r.delay * 2).min(RECOVER_MAX) };
        match self.kv.reopen() {
            Ok(()) => {}
            Err(OpenError::Busy(_)) => {
                self.recovery = Some(Recovery { at: Instant::now() + REOPEN_BUSY_RETRY, delay: r.delay });
                return;
            }
            Err(e) => {
                debug!(error = %e, "the store cannot be reopened yet");
                self.recovery = Some(later(next));
                return;
            }
        }
        match Engine::open(self.me.clone(), self.kv.clone(), self.cfg.clone(), now_ms()) {
            Ok(mut engine) => {
                // The offices expected are configuration, not store: keep them.
                engine.expect_as(&self.engine);
                // The fallbacks were checked when the node started.
                if let Err(e) = engine.set_fallbacks(self.engine.fallbacks().to_vec()) {
                    warn!(error = %e, "the reopened engine refused the fallbacks");
                }
                self.engine = engine;
                self.health = StoreHealth::Ok;
                info!(last_seq = self.engine.last_seq(), "the store has recovered: accepting writes and links again");
            }
            Err(e) => {
                debug!(error = %e, "the reopened store is not usable yet");
                self.recovery = Some(later(next));
            }
        }
        self.view_dirty = true;
    }

    /// Shutdown: wait for the flush in flight, flush whatever is left so
    /// every acknowledged write and applied batch is on disk, answer the
    /// writes it covers, stop the flusher.
    async fn finish(&mut self) {
        // What was queued before the stop still goes in (the links and the
        // API have stopped, so this ends).
        self.inputs.close();
        while let Ok(input) = self.inputs.try_recv() {
            self.handle(input);
        }
        self.dispatch();
        if self.flushing {
            if let Some(done) = self.flush_done.recv().await {
                self.on_flushed(done);
            }
        }
        if self.health.is_ok() && self.engine.needs_flush() {
            let ticket = self.engine.begin_flush();
            match self.kv.flush_blocking() {
                Ok(_) => {
                    self.engine.flushed(ticket, now_ms());
                    let durable = self.engine.durable_gen();
                    while self.pending.front().is_some_and(|p| p.gen <= durable) {
                        if let Some(p) = self.pending.pop_front() {
                            let _ = p.reply.send(Ok(p.written));
                        }
                    }
                }
                Err(e) => warn!(error = %e, "the final flush failed"),
            }
        }
        self.publish();
        self.flush_req = None;
        if let Some(f) = self.flusher.take() {
            let _ = f.join();
        }
    }
}
