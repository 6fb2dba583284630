//! The sync engine: one per node, sans-IO in the manner of quinn-proto.
//!
//! The engine owns the node's store handle and the state of every link, and
//! never does IO of its own: no sockets, no clock, no disk flush. Its driver
//! (the node's tokio tasks, or the simulator) calls, in any order:
//!
//! - [`Engine::link_up`] / [`Engine::link_down`] when a connection to the
//!   parent or a child opens or closes;
//! - [`Engine::handle_frame`] for every frame received on a link;
//! - [`Engine::handle_timeout`] when [`Engine::poll_timeout`]'s instant has come;
//! - the local writes in [`local`] for the API;
//! - [`Engine::begin_flush`], then makes the store durable, then
//!   [`Engine::flushed`]: only then are acks released and new journal
//!   entries forwarded, so nothing leaves a node before it is durable there;
//!
//! and after each call drains [`Engine::poll_transmit`] and
//! [`Engine::poll_event`]. Time is Unix milliseconds given by the caller.
//!
//! Architecture invariant: nothing that is not durable on this node is ever
//! acknowledged to a peer or sent to one.

pub mod clock;
mod expiry;
mod link;
pub mod local;
mod own;
pub mod restore;

use std::collections::{BTreeMap, VecDeque};

use crate::figures::Figures;
use crate::health::HealthFacts;
use crate::kv::{Kv, StoreError};
use crate::matters::MatterFigures;
use crate::node_id::NodeId;
use crate::record::{Body, RecordId};
use crate::rollup::Rollup;
use crate::routing::RejectReason;
use crate::store::{self, u64_value, Change, META_COUNTER, META_FORMAT, META_NODE, META_SEQ, STORE_FORMAT};
use crate::wire::Frame;

pub use clock::ClockEstimate;
pub use link::LinkStats;

/// Tunables, with limits on everything that grows.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Most records in one batch.
    pub batch_records: usize,
    /// Approximate bytes in one batch.
    pub batch_bytes: usize,
    /// Batches in flight (sent, not acknowledged) per link.
    pub window: usize,
    /// Journal entries read per scan step. Entries read past a full batch
    /// stay on the link for the next batch (the journal is read once), so
    /// this only sets how much is held in memory per link.
    pub scan_limit: usize,
    /// Resend from the last ack when no ack arrives for this long.
    pub rto_ms: u64,
    /// Give up on a link whose batches get no ack for this long: the
    /// engine drops the link and emits [`Event::Stalled`], and the driver
    /// closes the connection so that it is redialled. For a transport that
    /// never loses frames within a connection (QUIC), a missing ack means a
    /// stuck connection (its retransmit timer backed off during a cut), and
    /// a fresh one recovers in one round trip. `None`: never (the simulator,
    /// whose lossy links rely on `rto_ms`).
    pub stall_ms: Option<u64>,
    /// Repeat the hello until the peer shows it has ours.
    pub hello_retry_ms: u64,
    /// Send a progress-only batch after this many filtered-out entries...
    pub progress_every: u64,
    /// ...or after the link has been idle this long with progress pending.
    pub progress_idle_ms: u64,
    /// Republish the summary at most this often when figures change...
    pub summary_min_interval_ms: u64,
    /// ...and at least this often when they do not.
    pub summary_max_interval_ms: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            batch_records: 512,
            batch_bytes: 1 << 20,
            window: 8,
            scan_limit: 1024,
            rto_ms: 10_000,
            stall_ms: None,
            hello_retry_ms: 3_000,
            progress_every: 4096,
            progress_idle_ms: 5_000,
            summary_min_interval_ms: 1_000,
            summary_max_interval_ms: 30_000,
        }
    }
}

/// A frame to send to a neighbour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub peer: NodeId,
    pub frame: Frame,
}

/// Something the driver may want to log or count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Both hellos exchanged: the link replicates.
    LinkReady { peer: NodeId, resume_after: u64 },
    /// A batch was refused whole; the driver must close the link.
    Refused { peer: NodeId, reason: RejectReason },
    /// A peer resumed beyond this node's journal: this node's store went
    /// back in time (restored from a backup); replication restarts from 0.
    JournalBehindPeer { peer: NodeId, peer_checkpoint: u64, last_seq: u64 },
    /// After a restore, `peer` held this node's journal past the backup:
    /// `moved` entries written since the restore got sequences above its
    /// checkpoint, so none it has seen is reused.
    JournalSettled { peer: NodeId, peer_checkpoint: u64, moved: u64 },
    /// A restored node's own records are back from its parent: it writes
    /// again. `unrecoverable` lists records that could not come back (none
    /// today: every kind an office writes flows up).
    RestoreDone { recovered: u64, unrecoverable: Vec<RecordId> },
    /// The parent does not serve restores (an older build): this node
    /// stays read-only until a parent that does is reached.
    RestoreUnsupported { parent: NodeId },
    /// Same id and version, different body.
    Conflict { id: RecordId, version: u64 },
    /// A batch from `peer` was applied (not yet durable).
    Applied { peer: NodeId, records: usize, changed: usize, through: u64 },
    /// The link's batches got no ack for [`EngineConfig::stall_ms`]: the
    /// engine dropped the link; the driver must close its connection.
    Stalled { peer: NodeId, waited_ms: u64 },
    /// The store failed while serving `peer`'s link (reading the journal to
    /// send, or writing): the engine dropped the link. The driver decides
    /// what a failing store means for the node.
    StoreFailed { peer: NodeId, error: StoreError },
}

/// Why a link must be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// The batch broke the authorization rule or carried a malformed record.
    #[error("refused: {0}")]
    Refused(RejectReason),
    /// The peer speaks another protocol version.
    #[error("peer speaks protocol {theirs}, this node {ours}")]
    Version { theirs: u32, ours: u32 },
    /// The hello claims another id than the certificate carries.
    #[error("hello claims {claimed} but the link is to {peer}")]
    IdMismatch { claimed: NodeId, peer: NodeId },
    /// A frame on a link that is not up.
    #[error("no link to {0}")]
    NoLink(NodeId),
    /// The peer is neither parent nor child.
    #[error("{0}")]
    NotANeighbour(RejectReason),
    /// The store failed; the link is closed so the peer resends later.
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

/// A flush in progress: what becomes durable when it completes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushTicket {
    gen: u64,
    seq: u64,
}

impl FlushTicket {
    /// The write generation this flush makes durable.
    pub fn gen(&self) -> u64 {
        self.gen
    }
}

/// The sync engine of one node. See the module docs for the call order.
pub struct Engine<K: Kv> {
    me: NodeId,
    parent: Option<NodeId>,
    /// Ancestors this node may link to while its parent is down, in the
    /// order the driver tries them (see [`Engine::set_fallbacks`]).
    fallbacks: Vec<NodeId>,
    cfg: EngineConfig,
    kv: K,
    last_seq: u64,
    durable_seq: u64,
    write_gen: u64,
    durable_gen: u64,
    counter: u64,
    links: BTreeMap<NodeId, link::Link>,
    stats: BTreeMap<NodeId, LinkStats>,
    transmits: VecDeque<Transmit>,
    held_acks: VecDeque<(u64, Transmit)>,
    events: VecDeque<Event>,
    figures: Figures,
    /// This node's own matter figures, published as its matters summary.
    matter_figures: MatterFigures,
    rollup: Rollup,
    summary_dirty: bool,
    /// When the summary was last published, by the clock as given (for the
    /// republish timers; never later than the clock at open).
    last_summary_at: Option<u64>,
    /// The latest `generated_at` published: the next is never earlier, so
    /// a clock set back (by hand, across a restart) never makes the
    /// summary's time go backwards.
    summary_stamp: u64,
    now: u64,
    /// Own records still to come back from the parent after a restore.
    restore: Option<restore::Pending>,
    /// The backup's last journal sequence, on a restored store.
    restored_at: Option<u64>,
    restore_recovered: u64,
    /// Clock measurements per peer (see [`clock`]), kept while links are down.
    clocks: BTreeMap<NodeId, clock::LinkClock>,
    /// Corrected time minus this node's clock (see [`clock`]).
    clock_correction_ms: i64,
    /// The correction has been measured from above since open.
    clock_measured: bool,
    /// This node's clock when the engine was opened.
    opened_at: u64,
    /// The corrected local day whose expiries have been closed (`None`
    /// until the first check after open). See [`expiry`].
    expiry_checked_day: Option<i32>,
}

impl<K: Kv> Engine<K> {
    /// Open the engine over a store, creating the store's metadata if new.
    /// Everything in the store at open is taken as durable.
    pub fn open(me: NodeId, kv: K, cfg: EngineConfig, now: u64) -> Result<Self, StoreError> {
        let mut kv = kv;
        let format = u64_value(META_FORMAT, kv.get(META_FORMAT)?)?;
        if format > STORE_FORMAT {
            return Err(StoreError::Incompatible(format!(
                "the store has format {format}, newer than the format {STORE_FORMAT} this build (jobmesh {}) reads: \
                 run the newer jobmesh that wrote it; nothing was changed",
                env!("CARGO_PKG_VERSION")
            )));
        }
        if let Some((_from, upgrade)) = store::plan_upgrade(&kv)? {
            // One atomic write (see `plan_upgrade`); it becomes durable with
            // the node's first flush, and runs again if a crash comes first.
            kv.write(upgrade)?;
        }
        match kv.get(META_NODE)? {
            Some(held) if held != me.as_str().as_bytes() => {
                return Err(StoreError::Incompatible(format!(
                    "the store belongs to node {}, not {me}",
                    String::from_utf8_lossy(&held)
                )))
            }
            Some(_) => {}
            None => {
                let mut b = crate::kv::WriteBatch::default();
                b.put(META_FORMAT.to_vec(), STORE_FORMAT.to_be_bytes().to_vec());
                b.put(META_NODE.to_vec(), me.as_str().as_bytes().to_vec());
                kv.write(b)?;
            }
        }
        let last_seq = u64_value(META_SEQ, kv.get(META_SEQ)?)?;
        let counter = u64_value(META_COUNTER, kv.get(META_COUNTER)?)?;
        let figures = own::scan_figures(&kv, &me)?;
        let matter_figures = own::scan_matter_figures(&kv, &me)?;
        let rollup = Rollup::load(&kv, &me, now)?;
        let published = store::get_record(&kv, &RecordId::summary(&me))?.and_then(|s| match s.record.body {
            crate::record::Body::Summary(s) => Some(s.generated_at),
            _ => None,
        });
        // A clock now behind the last stamp must not hold the republish
        // timers back until it catches up.
        let last_summary_at = published.map(|at| at.min(now));
        let summary_stamp = published.unwrap_or(0);
        let (restore, restored_at) = restore::load(&kv)?;
        let mut engine = Engine {
            parent: me.parent(),
            fallbacks: Vec::new(),
            me,
            cfg,
            kv,
            last_seq,
            durable_seq: last_seq,
            write_gen: 1,
            durable_gen: 0,
            counter,
            links: BTreeMap::new(),
            stats: BTreeMap::new(),
            transmits: VecDeque::new(),
            held_acks: VecDeque::new(),
            events: VecDeque::new(),
            figures,
            matter_figures,
            rollup,
            summary_dirty: true,
            last_summary_at,
            summary_stamp,
            now,
            restore,
            restored_at,
            restore_recovered: 0,
            clocks: BTreeMap::new(),
            clock_correction_ms: 0,
            clock_measured: false,
            opened_at: now,
            expiry_checked_day: None,
        };
        engine.restore_without_parent()?;
        Ok(engine)
    }

    pub fn node_id(&self) -> &NodeId {
        &self.me
    }

    pub fn parent(&self) -> Option<&NodeId> {
        self.parent.as_ref()
    }

    /// Name the ancestors this node may link to besides its parent (in the
    /// order the driver tries them). A link to one of them is a link to a
    /// parent in every respect but one: it has its own checkpoints, so
    /// nothing it did moves the real parent link's resume points. Refused
    /// whole if one is not a strict ancestor other than the parent.
    pub fn set_fallbacks(&mut self, fallbacks: Vec<NodeId>) -> Result<(), LinkError> {
        for f in &fallbacks {
            if !f.is_ancestor_of(&self.me) || self.parent.as_ref() == Some(f) {
                return Err(LinkError::NotANeighbour(RejectReason::NotAFallback {
                    peer: f.clone(),
                    me: self.me.clone(),
                }));
            }
        }
        self.fallbacks = fallbacks;
        Ok(())
    }

    /// The fallback ancestors, in order.
    pub fn fallbacks(&self) -> &[NodeId] {
        &self.fallbacks
    }

    /// Is `peer` a descendant below this node's children, linked (or once
    /// linked) to it directly while its own parent was down?
    pub fn is_temporary_child(&self, peer: &NodeId) -> bool {
        self.me.is_ancestor_of(peer) && !self.me.is_parent_of(peer)
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// Read access to the store.
    pub fn kv(&self) -> &K {
        &self.kv
    }

    /// Mutable access to the store, for a driver whose backend needs `&mut`
    /// to flush. Writing through it would bypass the journal: don't.
    pub fn kv_mut(&mut self) -> &mut K {
        &mut self.kv
    }

    /// Give the store back (the simulator uses this to model a crash).
    pub fn into_kv(self) -> K {
        self.kv
    }

    /// This node's own figures as they stand now.
    pub fn figures(&self) -> &Figures {
        &self.figures
    }

    /// This node's own matter figures as they stand now.
    pub fn matter_figures(&self) -> &MatterFigures {
        &self.matter_figures
    }

    /// The roll-up of this node's subtree (kept as summaries are applied).
    pub fn rollup(&self) -> &Rollup {
        &self.rollup
    }

    /// Expect the offices the topology lists under this node (see
    /// [`Rollup::expect`]).
    pub fn expect_offices(&mut self, topology: &crate::topology::Topology) {
        self.rollup.expect(topology);
    }

    /// Expect the same offices as `other` (an engine reopened on the same
    /// store after a failure keeps what the configuration said).
    pub fn expect_as(&mut self, other: &Engine<K>) {
        self.rollup.expect_as(&other.rollup);
    }

    /// Read the roll-up again from the store, for a store written outside
    /// the engine (tests, a restored backup).
    pub fn reload_rollup(&mut self) -> Result<(), StoreError> {
        self.rollup.reload(&self.kv, self.now)
    }

    /// Last journal sequence written (durable or not).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Last journal sequence known durable.
    pub fn durable_seq(&self) -> u64 {
        self.durable_seq
    }

    /// Writes since the last completed flush exist.
    pub fn needs_flush(&self) -> bool {
        self.write_gen > self.durable_gen
    }

    /// Generation of the last write; a write is durable once
    /// [`Engine::durable_gen`] reaches it.
    pub fn write_gen(&self) -> u64 {
        self.write_gen
    }

    pub fn durable_gen(&self) -> u64 {
        self.durable_gen
    }

    /// Call just before flushing the store; pass the ticket to
    /// [`Engine::flushed`] once the flush has completed.
    pub fn begin_flush(&self) -> FlushTicket {
        FlushTicket { gen: self.write_gen, seq: self.last_seq }
    }

    /// Everything written before `ticket` was taken is now durable: release
    /// the acks it covers and forward the journal entries it made durable.
    pub fn flushed(&mut self, ticket: FlushTicket, now: u64) {
        self.now = self.now.max(now);
        self.durable_gen = self.durable_gen.max(ticket.gen);
        self.durable_seq = self.durable_seq.max(ticket.seq);
        while self.held_acks.front().is_some_and(|(g, _)| *g <= self.durable_gen) {
            if let Some((_, t)) = self.held_acks.pop_front() {
                self.transmits.push_back(t);
            }
        }
        let peers: Vec<NodeId> = self.links.keys().cloned().collect();
        for peer in peers {
            if let Err(e) = self.pump(&peer) {
                self.store_failed(&peer, e);
            }
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Engine::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<u64> {
        let summary = match self.last_summary_at {
            None => self.now,
            Some(t) if self.summary_dirty => t + self.cfg.summary_min_interval_ms,
            Some(t) => t + self.cfg.summary_max_interval_ms,
        };
        let summary = if self.restoring() { None } else { Some(summary) };
        self.links
            .values()
            .filter_map(|l| l.next_timeout(&self.cfg))
            .chain(summary)
            .chain(self.next_expiry_at())
            .chain(self.clock_timeout())
            .chain(self.restore_deadline())
            .min()
    }

    /// Timers: summary republication, hello retries, retransmission.
    pub fn handle_timeout(&mut self, now: u64) -> Result<(), StoreError> {
        self.now = self.now.max(now);
        let now = self.now;
        let due = match self.last_summary_at {
            None => true,
            Some(t) if self.summary_dirty => now >= t + self.cfg.summary_min_interval_ms,
            Some(t) => now >= t + self.cfg.summary_max_interval_ms,
        };
        // Closing expired postings writes new versions of own records: not
        // while a restore may still bring newer ones back.
        if self.next_expiry_at().is_some_and(|t| now >= t) {
            self.close_expired(now)?;
            self.expiry_checked_day = Some(crate::time::local_day(self.corrected(now)));
        }
        // A restoring node's summary version may exist upstream already:
        // it publishes once its own records are back.
        if due && !self.restoring() {
            self.publish_summary(now)?;
        }
        self.restore_timeout(now);
        let peers: Vec<NodeId> = self.links.keys().cloned().collect();
        for peer in peers {
            if let Err(e) = self.link_timeout(&peer, now) {
                self.store_failed(&peer, e);
            }
        }
        Ok(())
    }

    /// Per-link counters, including links that are down.
    pub fn link_stats(&self) -> &BTreeMap<NodeId, LinkStats> {
        &self.stats
    }

    /// Is the link to `peer` up and past its hello?
    pub fn is_ready(&self, peer: &NodeId) -> bool {
        self.links.get(peer).is_some_and(|l| l.peer_hello)
    }

    /// Journal entries this node still has to deliver to `peer`, counted up
    /// to `cap` (from the last ack seen from it, even if the link is down).
    pub fn backlog(&self, peer: &NodeId, cap: usize) -> Result<u64, StoreError> {
        let acked = self.stats.get(peer).map(|s| s.acked).unwrap_or(0);
        store::backlog(&self.kv, &self.me, peer, acked, self.last_seq, cap)
    }

    fn store_failed(&mut self, peer: &NodeId, e: StoreError) {
        // A store error on one link's path closes only that link; the peer
        // reconnects and resumes from its checkpoint.
        self.links.remove(peer);
        self.drop_link_frames(peer);
        self.events.push_back(Event::StoreFailed { peer: peer.clone(), error: e });
    }

    /// Write a batch built by an [`store::Applier`], keeping figures in step.
    fn commit(&mut self, finished: store::Finished) -> Result<Vec<Change>, StoreError> {
        let store::Finished { batch, changes, conflicts, last_seq } = finished;
        for (id, version) in conflicts {
            self.events.push_back(Event::Conflict { id, version });
        }
        let touched = own::touched(&self.me, &changes);
        let before = own::contribution(&self.kv, &touched)?;
        if !batch.is_empty() {
            self.kv.write(batch)?;
            self.write_gen += 1;
        }
        self.last_seq = self.last_seq.max(last_seq);
        for c in changes.iter().filter(|c| matches!(c.new.body, Body::Summary(_) | Body::Health(_))) {
            self.rollup.apply(&c.new, Some(self.now));
        }
        if !touched.is_empty() {
            let after = own::contribution(&self.kv, &touched)?;
            self.figures.add(&before, -1);
            self.figures.add(&after, 1);
            self.summary_dirty = true;
        }
        if own::matters_changed(&self.me, &changes, &mut self.matter_figures) {
            self.summary_dirty = true;
        }
        Ok(changes)
    }

    /// The next version of this node's matters summary, published with its
    /// summary; none while the office has never held a matter (most offices
    /// of a 0.1.0-era province), so they add nothing to the journal.
    fn matters_summary_record(&self, now: u64) -> Result<Option<crate::record::Record>, StoreError> {
        let id = RecordId::matters_summary(&self.me);
        let held = store::get_record(&self.kv, &id)?;
        if held.is_none() && self.matter_figures == MatterFigures::default() {
            return Ok(None);
        }
        let version = held.map(|h| h.record.version).unwrap_or(0) + 1;
        Ok(Some(crate::record::Record {
            id,
            origin: self.me.clone(),
            version,
            body: crate::record::Body::MattersSummary(crate::matters::MattersSummary {
                generated_at: now,
                figures: self.matter_figures.for_publication(now),
            }),
        }))
    }

    /// Publish this node's health report if `facts` differ from the one it
    /// last published ([`HealthFacts::same_as`]); true if a version was
    /// written. Its time never goes back, like the summary's.
    pub fn set_health(&mut self, facts: &HealthFacts, now: u64) -> Result<bool, StoreError> {
        let id = RecordId::health(&self.me);
        let held = store::get_record(&self.kv, &id)?.map(|h| h.record);
        let (version, stamp) = match &held {
            Some(crate::record::Record { body: Body::Health(h), .. }) if facts.same_as(h) => return Ok(false),
            Some(r @ crate::record::Record { body: Body::Health(h), .. }) => (r.version + 1, now.max(h.generated_at)),
            Some(r) => (r.version + 1, now),
            None => (1, now),
        };
        let rec =
            crate::record::Record { id, origin: self.me.clone(), version, body: Body::Health(facts.stamp(stamp)) };
        let mut a = store::Applier::new(&self.kv, self.last_seq);
        a.merge(rec)?;
        let finished = a.finish();
        self.commit(finished)?;
        Ok(true)
    }

    fn publish_summary(&mut self, now: u64) -> Result<(), StoreError> {
        let id = RecordId::summary(&self.me);
        let held = store::get_record(&self.kv, &id)?;
        let version = held.map(|h| h.record.version).unwrap_or(0) + 1;
        // Stamped and cut by day at the corrected time (see `clock`), and
        // never earlier than the last stamp: a clock set back does not take
        // `generated_at` back.
        let at = self.corrected(now);
        let stamp = at.max(self.summary_stamp);
        let rec = crate::record::Record {
            id,
            origin: self.me.clone(),
            version,
            body: crate::record::Body::Summary(crate::record::Summary {
                generated_at: stamp,
                figures: self.figures.for_publication(at),
            }),
        };
        let mut a = store::Applier::new(&self.kv, self.last_seq);
        a.merge(rec)?;
        if let Some(m) = self.matters_summary_record(stamp)? {
            a.merge(m)?;
        }
        let finished = a.finish();
        self.commit(finished)?;
        self.summary_dirty = false;
        self.last_summary_at = Some(now);
        self.summary_stamp = stamp;
        Ok(())
    }
}
