//! The deterministic simulator: many engines on one seeded network.
//!
//! A [`Mesh`] holds one engine per office over a [`CheckedKv`], one link per
//! parent–child edge (and, with failover on, one per descendant–fallback
//! pair in use: see [`super::failover`]), and a queue of events ordered by
//! simulated time.
//! [`Mesh::step`] jumps to the next event; faults (loss, duplication,
//! reordering by jitter, delay, cuts, crashes) come from the seeded
//! generator, so a seed replays a run exactly. Frames go through the real
//! codec on every hop. Flushes take simulated time: a crash before a flush
//! completes loses what it would have made durable, exactly what the engine
//! must never have acknowledged or forwarded.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::rc::Rc;

use super::checked_kv::{CheckedKv, Violations};
use super::rng::Rng;
use crate::engine::{Engine, EngineConfig, FlushTicket};
use crate::kv::{DiskFault, FaultyKv};
use crate::node_id::NodeId;
use crate::record::{Record, RecordId};
use crate::topology::Topology;
use crate::wire::{decode_body, encode_frame, Frame, LEN_PREFIX};

/// Network and node fault settings for a run.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// Probability that a frame is lost.
    pub loss: f64,
    /// Probability that a frame is delivered twice.
    pub duplicate: f64,
    /// One-way delay in ms: base plus uniform jitter (jitter reorders).
    pub delay_ms: u64,
    pub jitter_ms: u64,
    /// Time a flush takes, in ms (range).
    pub flush_ms: (u64, u64),
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig { loss: 0.0, duplicate: 0.0, delay_ms: 5, jitter_ms: 0, flush_ms: (1, 3) }
    }
}

/// Engine settings suited to simulated time.
pub fn sim_engine_config() -> EngineConfig {
    EngineConfig {
        rto_ms: 1_500,
        hello_retry_ms: 700,
        progress_idle_ms: 1_000,
        batch_records: 64,
        ..EngineConfig::default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum EvKind {
    Deliver {
        to: usize,
        from: usize,
        conn: u64,
        bytes: Vec<u8>,
    },
    Flushed {
        node: usize,
        incarnation: u64,
        ticket: FlushTicket,
    },
    Timer {
        node: usize,
        incarnation: u64,
    },
    /// Node `node` publishes its health report (current release only).
    Health {
        node: usize,
        incarnation: u64,
    },
    /// Re-evaluate a link (a restarted node reconnecting).
    Reconnect {
        link: LinkKey,
    },
    /// The parent link of `child` has been down for the failover delay:
    /// attach to a fallback if it still is.
    FailoverCheck {
        child: usize,
    },
    /// The parent link of `child` came up as connection `conn`: if it is
    /// still that connection (stable since), leave the fallbacks.
    ReturnCheck {
        child: usize,
        conn: u64,
    },
    /// A long outage of `node` ends: it may start again.
    OutageEnds {
        node: usize,
    },
    /// Crash a node (scheduled shortly after a write, while it flushes).
    Crash {
        node: usize,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Ev {
    at: u64,
    seq: u64,
    kind: EvKind,
}

impl PartialOrd for Ev {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ev {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

pub(super) struct SimNode {
    pub(super) id: NodeId,
    pub(super) engine: Option<Engine<CheckedKv>>,
    /// The store while the node is down.
    down_kv: Option<CheckedKv>,
    incarnation: u64,
    /// The disk's failure mode; a node whose disk fails stays down until
    /// the disk is healed (as the node's engine host refuses everything).
    disk: DiskFault,
    flushing: bool,
    timer_at: Option<u64>,
    /// Local writes waiting for durability: (write gen, [(id, version)]).
    pending_acks: Vec<(u64, Vec<(RecordId, u64)>)>,
    parent: Option<usize>,
    pub(super) children: Vec<usize>,
}

/// A link's ends: (the lower node, the upper node). For the tree's own
/// edges the upper node is the parent; for a fallback link, an ancestor.
pub type LinkKey = (usize, usize);

pub(super) struct SimLink {
    /// Administratively cut (a fault).
    pub(super) cut: bool,
    /// Connection number; frames of older connections are dropped.
    pub(super) conn: u64,
    pub(super) connected: bool,
    /// A fallback link (not the tree's edge).
    pub(super) fallback: bool,
    /// The lower node wants this link (always, for the tree's edges; while
    /// attached, for a fallback link).
    pub(super) wanted: bool,
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct SimStats {
    pub events: u64,
    pub frames_sent: u64,
    pub frames_lost: u64,
    pub frames_duplicated: u64,
    pub frames_stale: u64,
    pub bytes_sent: u64,
    pub crashes: u64,
    /// Store failures (a failing disk surfaced as an error) that took a
    /// node down.
    pub disk_failures: u64,
    pub cuts: u64,
    pub link_closes: u64,
    pub writes_acked: u64,
    pub refused: u64,
    pub peak_node_bytes: usize,
    /// Fallback links opened (a descendant attached to an ancestor).
    pub failovers: u64,
    /// Fallback links closed because the parent link was back and stable.
    pub returns: u64,
    /// Records sent over fallback links.
    pub fallback_records: u64,
    /// Long outages of a node with children (see [`super::failover`]).
    pub outages: u64,
}

/// Many engines on one seeded network.
pub struct Mesh {
    pub net: NetConfig,
    pub(super) rng: Rng,
    pub now: u64,
    pub(super) nodes: Vec<SimNode>,
    pub(super) index: HashMap<NodeId, usize>,
    /// Every link, by its ends: the tree's edges from the start, fallback
    /// links once first wanted.
    pub(super) links: BTreeMap<LinkKey, SimLink>,
    queue: BinaryHeap<Reverse<Ev>>,
    seq: u64,
    pub stats: SimStats,
    /// Every write acknowledged as durable at its origin: id → version.
    pub acked: HashMap<RecordId, u64>,
    pub violations: Violations,
    engine_cfg: EngineConfig,
    /// Frames scheduled for delivery and not yet delivered or dropped.
    in_transit: u64,
    /// Set by [`Mesh::heal_all`]: scheduled crashes no longer happen.
    healing: bool,
    /// The newest protocol version each node's build speaks: a link speaks
    /// the lower of its two ends' (what ALPN negotiation gives).
    pub(super) speaks: Vec<u32>,
    /// The tree, which every engine's roll-up expects.
    topology: Topology,
    /// Failover policy; `None`: nodes only ever link to their parent.
    pub(super) failover: Option<super::failover::Failover>,
    /// A node in a long outage stays down until this time.
    pub(super) held_down_until: Vec<u64>,
    /// Each node's clock minus the true time (`now`).
    clock_offsets: Vec<i64>,
    /// A step back waiting for the node's next start.
    clock_next: Vec<Option<i64>>,
}

/// Simulated clock start: 2026-11-29 00:00 UTC, so that figures by day look real.
pub const SIM_EPOCH_MS: u64 = 1_795_910_400_000;

impl Mesh {
    pub fn new(topology: &Topology, net: NetConfig, seed: u64) -> Mesh {
        let violations: Violations = Rc::new(RefCell::new(Vec::new()));
        let engine_cfg = sim_engine_config();
        let mut index = HashMap::new();
        for (i, o) in topology.offices.iter().enumerate() {
            index.insert(o.id.clone(), i);
        }
        let mut nodes: Vec<SimNode> = topology
            .offices
            .iter()
            .map(|o| SimNode {
                id: o.id.clone(),
                engine: None,
                down_kv: Some(CheckedKv { inner: FaultyKv::new(), node: o.id.clone(), violations: violations.clone() }),
                incarnation: 0,
                disk: DiskFault::None,
                flushing: false,
                timer_at: None,
                pending_acks: Vec::new(),
                parent: o.id.parent().and_then(|p| index.get(&p).copied()),
                children: Vec::new(),
            })
            .collect();
        let mut links = BTreeMap::new();
        for i in 0..nodes.len() {
            if let Some(p) = nodes[i].parent {
                nodes[p].children.push(i);
                links.insert((i, p), SimLink { cut: false, conn: 0, connected: false, fallback: false, wanted: true });
            }
        }
        let mut mesh = Mesh {
            net,
            rng: Rng::new(seed),
            now: SIM_EPOCH_MS,
            nodes,
            index,
            links,
            queue: BinaryHeap::new(),
            seq: 0,
            stats: SimStats::default(),
            acked: HashMap::new(),
            violations,
            engine_cfg,
            in_transit: 0,
            healing: false,
            speaks: vec![crate::wire::PROTOCOL_VERSION; topology.offices.len()],
            topology: topology.clone(),
            failover: None,
            held_down_until: vec![0; topology.offices.len()],
            clock_offsets: vec![0; topology.offices.len()],
            clock_next: vec![None; topology.offices.len()],
        };
        for i in 0..mesh.nodes.len() {
            mesh.start_node(i);
        }
        mesh
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn idx(&self, id: &NodeId) -> usize {
        self.index[id]
    }

    pub fn id(&self, i: usize) -> &NodeId {
        &self.nodes[i].id
    }

    pub fn is_up(&self, i: usize) -> bool {
        self.nodes[i].engine.is_some()
    }

    /// Is node `i`'s disk failing?
    pub fn disk_failing(&self, i: usize) -> bool {
        self.nodes[i].disk != DiskFault::None
    }

    pub fn engine(&self, i: usize) -> Option<&Engine<CheckedKv>> {
        self.nodes[i].engine.as_ref()
    }

    /// Is the link above node `i` (to its parent) connected?
    pub fn link_connected(&self, i: usize) -> bool {
        self.parent_link(i).and_then(|k| self.links.get(&k)).is_some_and(|l| l.connected)
    }

    pub fn parent_of(&self, i: usize) -> Option<usize> {
        self.nodes[i].parent
    }

    /// Every link touching node `i`.
    pub(super) fn links_of(&self, i: usize) -> Vec<LinkKey> {
        self.links.keys().filter(|(a, b)| *a == i || *b == i).copied().collect()
    }

    /// The tree's edge above `child`.
    pub(super) fn parent_link(&self, child: usize) -> Option<LinkKey> {
        self.nodes[child].parent.map(|p| (child, p))
    }

    pub(super) fn push(&mut self, at: u64, kind: EvKind) {
        self.seq += 1;
        self.queue.push(Reverse(Ev { at, seq: self.seq, kind }));
    }

    /// Node `i`'s clock now.
    pub fn clock(&self, i: usize) -> u64 {
        (self.now as i64 + self.clock_offsets[i]).max(0) as u64
    }

    /// Node `i`'s clock minus the true time.
    pub fn clock_offset(&self, i: usize) -> i64 {
        self.clock_next[i].unwrap_or(self.clock_offsets[i])
    }

    /// Set node `i`'s clock `off` ms from the true time. A step back on a
    /// running node waits for its next start: the node's clock follows the
    /// system clock forward only while it runs.
    pub fn set_clock_offset(&mut self, i: usize, off: i64) {
        if self.is_up(i) && off < self.clock_offsets[i] {
            self.clock_next[i] = Some(off);
        } else {
            self.clock_offsets[i] = off;
            self.clock_next[i] = None;
        }
    }

    /// Oracle: every node's corrected time is the root's (true) time within
    /// a second per hop, whatever its clock says.
    pub fn clocks_corrected(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        for i in 0..self.len() {
            let Some(e) = self.engine(i) else { continue };
            let root = (0..self.len()).find(|&r| self.parent_of(r).is_none()).unwrap_or(0);
            let truth = self.clock(root) as i64;
            let got = e.corrected(self.clock(i)) as i64;
            let bound = 1_000 * self.id(i).depth() as i64;
            if (got - truth).abs() > bound {
                problems.push(format!(
                    "{}: corrected time {got} is {} ms off the root's (clock offset {})",
                    self.id(i),
                    got - truth,
                    self.clock_offsets[i]
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("\n"))
        }
    }

    fn start_node(&mut self, i: usize) {
        let Some(kv) = self.nodes[i].down_kv.take() else { return };
        if let Some(off) = self.clock_next[i].take() {
            self.clock_offsets[i] = off;
        }
        let now = self.clock(i);
        let mut engine = Engine::open(self.nodes[i].id.clone(), kv, self.engine_cfg.clone(), now)
            .unwrap_or_else(|e| panic!("open {}: {e}", self.nodes[i].id));
        engine.expect_offices(&self.topology);
        if self.failover.is_some() {
            let fallbacks = self.fallbacks_of(i).into_iter().map(|f| self.nodes[f].id.clone()).collect();
            engine.set_fallbacks(fallbacks).unwrap_or_else(|e| panic!("fallbacks of {}: {e}", self.nodes[i].id));
        }
        self.nodes[i].incarnation += 1;
        self.nodes[i].engine = Some(engine);
        self.nodes[i].timer_at = None;
        self.nodes[i].flushing = false;
        // An office reports its health just after it starts (as the node does
        // once its certificate is loaded); a restart stands for a renewed
        // certificate, so the report changes and travels up again.
        let incarnation = self.nodes[i].incarnation;
        self.push(self.now + 1, EvKind::Health { node: i, incarnation });
        // A restarted node serves its API at once but reconnects only after
        // a while, so writes made in between race with the peers' resume.
        for link in self.links_of(i) {
            let at = self.now + if self.nodes[i].incarnation == 1 { 0 } else { self.rng.below(400) };
            self.push(at, EvKind::Reconnect { link });
        }
        self.after(i);
    }

    /// Crash node `i`: everything not yet flushed is lost, links drop.
    pub fn crash(&mut self, i: usize) {
        let Some(engine) = self.nodes[i].engine.take() else { return };
        self.stats.crashes += 1;
        let mut kv = engine.into_kv();
        let keep = self.rng.below(kv.inner.unflushed_batches() as u64 + 1) as usize;
        kv.inner.crash_keeping(keep);
        self.nodes[i].down_kv = Some(kv);
        self.nodes[i].pending_acks.clear();
        for link in self.links_of(i) {
            self.update_link(link);
        }
    }

    /// Crash node `i` within `within_ms` from now.
    pub fn crash_soon(&mut self, i: usize, within_ms: u64) {
        let at = self.now + self.rng.below(within_ms + 1);
        self.push(at, EvKind::Crash { node: i });
    }

    /// Make node `i`'s disk fail (or work again, with `DiskFault::None`).
    pub fn disk_fault(&mut self, i: usize, fault: DiskFault) {
        self.nodes[i].disk = fault;
        if let Some(e) = self.nodes[i].engine.as_mut() {
            e.kv_mut().inner.set_fault(fault);
        } else if let Some(kv) = self.nodes[i].down_kv.as_mut() {
            kv.inner.set_fault(fault);
        }
        if fault == DiskFault::None {
            self.restart(i);
        }
    }

    /// The store of node `i` failed: the node goes down as the engine host
    /// takes it down (no more writes, acks or links), keeping what was
    /// flushed, until its disk is healed.
    pub(super) fn store_failed(&mut self, i: usize) {
        if self.nodes[i].engine.is_none() {
            return;
        }
        self.stats.disk_failures += 1;
        self.crash(i);
    }

    /// Restart a crashed node from what it had made durable (not while its
    /// disk fails).
    pub fn restart(&mut self, i: usize) {
        if self.nodes[i].engine.is_none()
            && self.nodes[i].disk == DiskFault::None
            && self.now >= self.held_down_until[i]
        {
            self.start_node(i);
        }
    }

    /// Node `i` runs the previous release: its links speak protocol 1.
    /// Call before any writes (a previous-release store holds no new kinds).
    pub fn run_previous_release(&mut self, i: usize) {
        self.speaks[i] = crate::wire::MIN_PROTOCOL_VERSION;
        for link in self.links_of(i) {
            if self.links[&link].connected {
                self.crash(i);
                self.restart(i);
                return;
            }
        }
    }

    /// The protocol version node `i`'s build speaks.
    pub fn speaks(&self, i: usize) -> u32 {
        self.speaks[i]
    }

    /// Upgrade node `i` to this build: it stops (abruptly: what it had not
    /// flushed is lost, as with `kill -9`) and starts again on its store.
    pub fn upgrade(&mut self, i: usize) {
        self.speaks[i] = crate::wire::PROTOCOL_VERSION;
        self.crash(i);
        self.restart(i);
    }

    /// Cut the link between `child` and its parent.
    pub fn cut(&mut self, child: usize) {
        let Some(key) = self.parent_link(child) else { return };
        if let Some(l) = self.links.get_mut(&key) {
            if !l.cut {
                l.cut = true;
                self.stats.cuts += 1;
            }
            self.update_link(key);
        }
    }

    /// Heal the link above `child`.
    pub fn heal(&mut self, child: usize) {
        let Some(key) = self.parent_link(child) else { return };
        if let Some(l) = self.links.get_mut(&key) {
            l.cut = false;
            self.update_link(key);
        }
    }

    /// Restart every node and heal every link; turn network faults off.
    pub fn heal_all(&mut self) {
        self.healing = true;
        self.net.loss = 0.0;
        self.net.duplicate = 0.0;
        self.held_down_until.iter_mut().for_each(|t| *t = 0);
        for i in 0..self.nodes.len() {
            self.disk_fault(i, DiskFault::None);
            self.restart(i);
        }
        let keys: Vec<LinkKey> = self.links.keys().copied().collect();
        for key in keys {
            if let Some(l) = self.links.get_mut(&key) {
                l.cut = false;
            }
            self.update_link(key);
        }
    }

    /// Bring a link in line with cuts, wishes and node liveness.
    pub(super) fn update_link(&mut self, key: LinkKey) {
        let (child, parent) = key;
        let Some(link) = self.links.get(&key) else { return };
        let want = !link.cut && link.wanted && self.is_up(child) && self.is_up(parent);
        let link = self.links.get_mut(&key).unwrap_or_else(|| unreachable!());
        if want == link.connected {
            return;
        }
        link.connected = want;
        link.conn += 1;
        let (fallback, conn) = (link.fallback, link.conn);
        self.link_changed(key, fallback, want, conn);
        let (cid, pid) = (self.nodes[child].id.clone(), self.nodes[parent].id.clone());
        let version = self.speaks[child].min(self.speaks[parent]);
        if want {
            for (a, b) in [(child, &pid), (parent, &cid)] {
                let now = self.clock(a);
                if let Some(e) = self.nodes[a].engine.as_mut() {
                    if let Err(err) = e.link_up_at(b, version, now) {
                        panic!("link_up {} -> {b}: {err}", self.nodes[a].id);
                    }
                }
            }
            self.after(child);
            self.after(parent);
        } else {
            self.stats.link_closes += 1;
            for (a, b) in [(child, &pid), (parent, &cid)] {
                if let Some(e) = self.nodes[a].engine.as_mut() {
                    e.link_down(b);
                }
            }
        }
    }

    /// After any call into node `i`'s engine: send its frames, schedule its
    /// flush and timer, and note acknowledged writes.
    pub(super) fn after(&mut self, i: usize) {
        let flushing = self.nodes[i].flushing;
        let node_id = self.nodes[i].id.clone();
        let Some(engine) = self.nodes[i].engine.as_mut() else { return };
        let mut out = Vec::new();
        while let Some(t) = engine.poll_transmit() {
            out.push(t);
        }
        let mut store_failed = false;
        while let Some(ev) = engine.poll_event() {
            match ev {
                crate::engine::Event::Refused { .. } => self.stats.refused += 1,
                crate::engine::Event::StoreFailed { .. } => store_failed = true,
                crate::engine::Event::Conflict { id, version } => self
                    .violations
                    .borrow_mut()
                    .push(format!("{node_id}: two different bodies of {id} at version {version}")),
                _ => {}
            }
        }
        if store_failed {
            self.store_failed(i);
            return;
        }
        let Some(engine) = self.nodes[i].engine.as_mut() else { return };
        let flush = (!flushing && engine.needs_flush()).then(|| engine.begin_flush());
        let timeout = engine.poll_timeout();
        if let Some(ticket) = flush {
            self.nodes[i].flushing = true;
            let at = self.now + self.rng.range(self.net.flush_ms.0, self.net.flush_ms.1);
            let incarnation = self.nodes[i].incarnation;
            self.push(at, EvKind::Flushed { node: i, incarnation, ticket });
        }
        if let Some(t) = timeout {
            // The engine's instant is on its own clock.
            let t = (t as i64 - self.clock_offsets[i]).max(0) as u64;
            let t = t.max(self.now + 1);
            if self.nodes[i].timer_at.is_none_or(|cur| t < cur || cur <= self.now) {
                self.nodes[i].timer_at = Some(t);
                let incarnation = self.nodes[i].incarnation;
                self.push(t, EvKind::Timer { node: i, incarnation });
            }
        }
        for t in out {
            let Some(&j) = self.index.get(&t.peer) else { continue };
            self.check_crossing(i, j, &t.frame);
            self.send(i, j, &t.frame);
        }
    }

    fn link_between(&self, a: usize, b: usize) -> Option<LinkKey> {
        [(a, b), (b, a)].into_iter().find(|k| self.links.contains_key(k))
    }

    fn send(&mut self, from: usize, to: usize, frame: &Frame) {
        let Some(key) = self.link_between(from, to) else { return };
        let link = &self.links[&key];
        if !link.connected {
            return;
        }
        let conn = link.conn;
        let bytes = encode_frame(frame);
        self.stats.frames_sent += 1;
        self.stats.bytes_sent += bytes.len() as u64;
        if self.rng.chance(self.net.loss) {
            self.stats.frames_lost += 1;
            return;
        }
        let copies = if self.rng.chance(self.net.duplicate) {
            self.stats.frames_duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let at = self.now + self.net.delay_ms + self.rng.below(self.net.jitter_ms + 1);
            self.in_transit += 1;
            self.push(at, EvKind::Deliver { to, from, conn, bytes: bytes.clone() });
        }
    }

    /// Process the next event; false when none is left.
    pub fn step(&mut self) -> bool {
        let Some(Reverse(ev)) = self.queue.pop() else { return false };
        self.now = self.now.max(ev.at);
        self.stats.events += 1;
        match ev.kind {
            EvKind::Deliver { to, from, conn, bytes } => {
                self.in_transit -= 1;
                let Some(child) = self.link_between(from, to) else { return true };
                if self.links[&child].conn != conn || !self.links[&child].connected {
                    self.stats.frames_stale += 1;
                    return true;
                }
                let frame = match decode_body(&bytes[LEN_PREFIX..]) {
                    Ok(f) => f,
                    Err(e) => panic!("a frame the engine encoded did not decode: {e}"),
                };
                let peer = self.nodes[from].id.clone();
                let now = self.clock(to);
                let Some(engine) = self.nodes[to].engine.as_mut() else { return true };
                if let Err(e) = engine.handle_frame(&peer, frame, now) {
                    if matches!(e, crate::engine::LinkError::Store(_)) {
                        self.store_failed(to);
                        return true;
                    }
                    // The driver closes the connection on any link error; the
                    // link then reopens as a new connection. Only refusals of
                    // forged batches are expected.
                    if !matches!(e, crate::engine::LinkError::Refused(_)) {
                        self.violations
                            .borrow_mut()
                            .push(format!("{} closed its link to {peer}: {e}", self.nodes[to].id));
                    }
                    if let Some(l) = self.links.get_mut(&child) {
                        l.connected = false;
                        l.conn += 1;
                    }
                    if let Some(e) = self.nodes[to].engine.as_mut() {
                        e.link_down(&peer);
                    }
                    let me = self.nodes[to].id.clone();
                    if let Some(e) = self.nodes[from].engine.as_mut() {
                        e.link_down(&me);
                    }
                    self.stats.link_closes += 1;
                    self.update_link(child);
                }
                self.after(to);
            }
            EvKind::Flushed { node, incarnation, ticket } => {
                if self.nodes[node].incarnation != incarnation || self.nodes[node].engine.is_none() {
                    return true;
                }
                self.nodes[node].flushing = false;
                let now = self.clock(node);
                if let Some(engine) = self.nodes[node].engine.as_mut() {
                    // The flush made durable what was written when it began
                    // (and possibly more; MemKv flushes all it has).
                    if engine_kv_flush(engine).is_err() {
                        self.store_failed(node);
                        return true;
                    }
                    engine.flushed(ticket, now);
                    let durable = engine.durable_gen();
                    let bytes = engine.kv().inner.bytes();
                    self.stats.peak_node_bytes = self.stats.peak_node_bytes.max(bytes);
                    let pending = std::mem::take(&mut self.nodes[node].pending_acks);
                    let (done, rest): (Vec<_>, Vec<_>) = pending.into_iter().partition(|(g, _)| *g <= durable);
                    self.nodes[node].pending_acks = rest;
                    for (_, recs) in done {
                        for (id, v) in recs {
                            self.stats.writes_acked += 1;
                            let e = self.acked.entry(id).or_insert(0);
                            *e = (*e).max(v);
                        }
                    }
                }
                self.after(node);
            }
            EvKind::Reconnect { link } => self.update_link(link),
            EvKind::Health { node, incarnation } => {
                let current = self.nodes[node].incarnation == incarnation;
                if current && self.speaks(node) >= crate::record::Kind::Health.since_protocol() {
                    let facts = crate::health::HealthFacts {
                        software: format!("sim-{}", self.speaks(node)),
                        cert_serial: Some(format!("{incarnation:x}")),
                        cert_not_after: Some(2_000_000_000 + incarnation as i64),
                        clock_offset_ms: None,
                        counters: Default::default(),
                    };
                    let now = self.now;
                    if let Some(engine) = self.nodes[node].engine.as_mut() {
                        if engine.set_health(&facts, now).is_err() {
                            self.store_failed(node);
                            return true;
                        }
                    }
                    self.after(node);
                }
            }
            EvKind::FailoverCheck { child } => self.failover_check(child),
            EvKind::ReturnCheck { child, conn } => self.return_check(child, conn),
            EvKind::OutageEnds { node } => {
                self.held_down_until[node] = 0;
                self.restart(node);
            }
            EvKind::Crash { node } => {
                if !self.healing {
                    self.crash(node)
                }
            }
            EvKind::Timer { node, incarnation } => {
                if self.nodes[node].incarnation != incarnation {
                    return true;
                }
                if self.nodes[node].timer_at.is_some_and(|t| t <= self.now) {
                    self.nodes[node].timer_at = None;
                }
                let now = self.clock(node);
                if let Some(engine) = self.nodes[node].engine.as_mut() {
                    if engine.poll_timeout().is_some_and(|t| t <= now) && engine.handle_timeout(now).is_err() {
                        self.store_failed(node);
                        return true;
                    }
                }
                self.after(node);
            }
        }
        true
    }

    /// Run events until simulated time `t`.
    pub fn run_until(&mut self, t: u64) {
        while self.queue.peek().is_some_and(|Reverse(ev)| ev.at <= t) {
            self.step();
        }
        self.now = self.now.max(t);
    }

    /// Note a local write at node `i` for durability tracking.
    pub(super) fn track_write(&mut self, i: usize, gen: u64, records: &[Record]) {
        self.nodes[i].pending_acks.push((gen, records.iter().map(|r| (r.id.clone(), r.version)).collect()));
        self.after(i);
    }

    /// Inject a forged batch on the link above `child`, as a compromised
    /// child with a valid certificate would send.
    pub fn inject(&mut self, child: usize, frame: Frame) {
        // Not checked by `check_crossing`: a forged frame is the peer's
        // doing, and the receiver's authorization refuses it.
        if let Some(p) = self.nodes[child].parent {
            self.send(child, p, &frame);
        }
    }

    /// No frame in transit and no flush under way.
    pub fn quiet(&self) -> bool {
        self.in_transit == 0 && self.nodes.iter().all(|n| !n.flushing)
    }

    /// A description of every node and link, for failure messages.
    pub fn diagnose(&self) -> String {
        let mut out =
            format!("t={} in_transit={} queued={}\n", self.now - SIM_EPOCH_MS, self.in_transit, self.queue.len());
        for n in &self.nodes {
            match &n.engine {
                None => out.push_str(&format!("  {} DOWN\n", n.id)),
                Some(e) => {
                    out.push_str(&format!(
                        "  {} last_seq={} durable_seq={} flushing={} needs_flush={} timer={:?}\n",
                        n.id,
                        e.last_seq(),
                        e.durable_seq(),
                        n.flushing,
                        e.needs_flush(),
                        e.poll_timeout().map(|t| t as i64 - self.now as i64)
                    ));
                    for (peer, s) in e.link_stats() {
                        out.push_str(&format!("    {peer}: ready={} {s:?}\n", e.is_ready(peer)));
                    }
                }
            }
        }
        for (c, l) in &self.links {
            out.push_str(&format!(
                "  link {} -> {}: cut={} connected={} conn={} fallback={} wanted={}\n",
                self.nodes[c.0].id, self.nodes[c.1].id, l.cut, l.connected, l.conn, l.fallback, l.wanted
            ));
        }
        out
    }

    /// Safety violations seen so far.
    pub fn violations(&self) -> Vec<String> {
        self.violations.borrow().clone()
    }
}

fn engine_kv_flush(engine: &mut Engine<CheckedKv>) -> Result<(), crate::kv::StoreError> {
    engine.kv_mut().inner.flush()
}
