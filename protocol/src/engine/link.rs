//! One link's replication state: the hello exchange, walking the journal for
//! the peer with a bounded window of batches in flight, and applying the
//! peer's batches behind this node's checkpoint of its journal.
//!
//! The engine tolerates a transport that loses, duplicates, reorders or
//! delays frames (the simulator does all four; QUIC does none of them within
//! a connection): batches say which journal range they cover, a receiver
//! applies only a batch that starts at or before its checkpoint, answers a
//! gap with a nack, and a sender with no ack progress for `rto_ms` goes back
//! to the last ack.
//!
//! Versions: a link speaks the protocol version the transport negotiated
//! (see [`crate::wire`]). The journal walk skips records of kinds that
//! version cannot carry; they are counted as held for the peer. Because the
//! peer's checkpoint still moves past them, a link that comes up at a newer
//! version than this node last completed with that peer (`v{peer}` in the
//! store) first runs a **backfill**: a second walk of the journal from the
//! start to the peer's resume point that sends only the kinds the older
//! version could not carry, in [`FrameV2::Backfill`] frames the peer applies
//! without moving its checkpoint. Once the peer has acknowledged the whole
//! backfill, `v{peer}` is raised; until then every reconnect backfills again
//! (merge is idempotent, so a repeat costs bandwidth, never correctness).

use serde::{Deserialize, Serialize};

use super::{Engine, EngineConfig, Event, LinkError, Transmit};
use crate::kv::{Kv, StoreError};
use crate::node_id::NodeId;
use crate::record::{Body, Kind, Record};
use crate::routing::{authorize, sends_to, RejectReason};
use crate::store::{self, checkpoint_key, JournalEntry};
use crate::wire::{
    Ack, Backfill, Batch, Frame, FrameV1, FrameV2, Hello, Nack, SummaryAge, SummaryAges, CAPABILITIES, CAP_CLOCK,
    MAX_SUMMARY_AGES, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION,
};

/// Counters per neighbour, kept across reconnects for metrics and status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkStats {
    pub connects: u64,
    pub batches_sent: u64,
    pub records_sent: u64,
    pub batches_applied: u64,
    pub records_applied: u64,
    pub refused: u64,
    pub rewinds: u64,
    pub nacks_sent: u64,
    /// Highest ack from the peer: how far it holds this node's journal.
    pub acked: u64,
    /// This node's checkpoint of the peer's journal.
    pub checkpoint: u64,
    /// Last time (Unix ms) a frame arrived from the peer.
    pub last_contact: Option<u64>,
    /// Protocol version of the current (or last) connection; 0 if never up.
    pub protocol: u32,
    /// Records sent in backfill frames (see the module docs).
    pub backfilled: u64,
    /// The link is backfilling after the peer's version rose.
    pub backfilling: bool,
}

/// The backfill walk of one link (see the module docs).
struct BackfillWalk {
    /// Kinds newer than this version are backfilled.
    from_version: u32,
    /// Journal walked and acknowledged through here.
    pos: u64,
    /// The peer's resume point at hello: the end of the walk.
    end: u64,
    /// `through` of the backfill frame in flight, and when it was sent.
    in_flight: Option<(u64, u64)>,
}

pub(super) struct Link {
    /// We have the peer's hello: we know where to resume sending.
    pub(super) peer_hello: bool,
    /// The peer has shown it has our hello.
    they_saw_ours: bool,
    hello_sent_at: u64,
    /// Through of the last batch sent (the next batch's `from`).
    sent_through: u64,
    /// How far the journal has been walked for this peer.
    scan_pos: u64,
    /// Journal entries read past `scan_pos` but not yet walked (read for a
    /// batch that filled up before them), through `read_through`: the next
    /// batch starts from them instead of reading the journal again.
    read_ahead: std::collections::VecDeque<(u64, store::JournalEntry)>,
    read_through: u64,
    acked: u64,
    in_flight: std::collections::VecDeque<u64>,
    last_progress_at: u64,
    last_sent_at: u64,
    last_rewind: Option<(u64, u64)>,
    /// This node's checkpoint of the peer's journal (as written).
    checkpoint: u64,
    /// The protocol version the transport negotiated for this connection.
    pub(super) version: u32,
    /// The version this node last completed with the peer (from the store).
    completed_version: u32,
    /// Nothing is sent until this write generation is durable (set when the
    /// peer's version went down, so the lower `v{peer}` is on disk before
    /// the checkpoint can pass a record the peer did not get).
    send_after_gen: u64,
    backfill: Option<BackfillWalk>,
    /// Capability bits of the peer's hello (0 until it arrives).
    pub(super) peer_caps: u64,
    /// Ages of summaries the peer sent ahead of the batch that carries them
    /// ([`FrameV2::SummaryAges`]); used when that batch is applied, then
    /// dropped.
    pending_ages: Vec<SummaryAge>,
}

impl Link {
    /// Walk the journal from `pos` again (after a rewind or a jump ahead).
    fn walk_from(&mut self, pos: u64) {
        self.scan_pos = pos;
        self.read_through = pos;
        self.read_ahead.clear();
    }

    pub(super) fn next_timeout(&self, cfg: &EngineConfig) -> Option<u64> {
        let mut t = Vec::with_capacity(3);
        if !self.they_saw_ours {
            t.push(self.hello_sent_at + cfg.hello_retry_ms);
        }
        if !self.in_flight.is_empty() {
            t.push(self.last_progress_at + cfg.stall_ms.unwrap_or(cfg.rto_ms).min(cfg.rto_ms));
        } else if self.peer_hello && self.scan_pos > self.sent_through {
            t.push(self.last_sent_at + cfg.progress_idle_ms);
        }
        if let Some((_, at)) = self.backfill.as_ref().and_then(|b| b.in_flight) {
            t.push(at + cfg.rto_ms);
        }
        t.into_iter().min()
    }
}

/// A cheap upper-ish estimate of a record's encoded size, to cap batches
/// without encoding twice.
fn approx_size(r: &Record) -> usize {
    let s = |x: &str| x.len() + 2;
    let o = |x: &Option<String>| x.as_deref().map(s).unwrap_or(1);
    64 + r.id.as_str().len()
        + r.origin.as_str().len()
        + match &r.body {
            Body::Posting(p) => {
                s(&p.title)
                    + s(&p.employer)
                    + s(&p.category)
                    + o(&p.wage)
                    + o(&p.location)
                    + 12
                    + p.audience.as_str().len()
            }
            Body::Fill(f) => f.posting_id.as_str().len() + f.posting_origin.as_str().len() + f.audience.as_str().len(),
            Body::Worker(w) => s(&w.name) + o(&w.phone) + w.skills.iter().map(|x| s(x)).sum::<usize>(),
            Body::Placement(l) => l.worker_id.as_str().len() * 2 + l.posting_id.as_str().len() * 2 + s(&l.category),
            Body::Summary(m) => {
                let f = &m.figures;
                (f.by_category.keys().map(|k| k.len() + 40).sum::<usize>())
                    + (f.by_work_type.len() + f.by_key_group.len() + f.daily.len()) * 48
                    + 128
            }
            Body::Matter(m) => s(&m.summary) + 40,
            Body::MattersSummary(m) => {
                let f = &m.figures;
                (f.by_category.len() + f.by_channel.len() + f.by_key_group.len() + f.daily.len() + f.resolve_days.len())
                    * 48
                    + 128
            }
            Body::Health(h) => {
                s(&h.software) + o(&h.cert_serial) + 32 + h.counters.keys().map(|k| s(k) + 8).sum::<usize>()
            }
        }
}

/// The kind of the record a journal entry names (the key's second byte).
fn entry_kind(e: &JournalEntry) -> Option<Kind> {
    e.key.get(1).copied().and_then(Kind::from_letter)
}

impl<K: Kv> Engine<K> {
    fn hello(&self, peer: &NodeId, seen_yours: bool) -> Result<Transmit, StoreError> {
        let protocol = self.links.get(peer).map(|l| l.version).unwrap_or(PROTOCOL_VERSION);
        Ok(Transmit {
            peer: peer.clone(),
            frame: Frame::V1(FrameV1::Hello(Hello {
                protocol,
                capabilities: CAPABILITIES,
                node_id: self.me.clone(),
                resume_after: store::checkpoint(&self.kv, peer)?,
                seen_yours,
            })),
        })
    }

    /// A connection to `peer` opened at this build's newest protocol.
    pub fn link_up(&mut self, peer: &NodeId, now: u64) -> Result<(), LinkError> {
        self.link_up_at(peer, PROTOCOL_VERSION, now)
    }

    /// A connection to `peer` opened, speaking `protocol` (what the
    /// transport negotiated). `peer` must be this node's parent, a direct
    /// child, one of its fallbacks ([`Engine::set_fallbacks`]) or a
    /// descendant attaching directly while its own parent is down (a
    /// temporary child; the transport checked its certificate). The engine
    /// does not need to know whether that parent really is down: the link
    /// follows the child rule either way, with checkpoints of its own.
    pub fn link_up_at(&mut self, peer: &NodeId, protocol: u32, now: u64) -> Result<(), LinkError> {
        self.now = self.now.max(now);
        if !(MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&protocol) {
            return Err(LinkError::Version { theirs: protocol, ours: PROTOCOL_VERSION });
        }
        let neighbour =
            self.parent.as_ref() == Some(peer) || self.fallbacks.contains(peer) || self.me.is_ancestor_of(peer);
        if !neighbour {
            return Err(LinkError::NotANeighbour(RejectReason::NotANeighbour {
                peer: peer.clone(),
                me: self.me.clone(),
            }));
        }
        self.drop_link_frames(peer);
        let checkpoint = store::checkpoint(&self.kv, peer)?;
        let completed_version = store::peer_version(&self.kv, peer)?;
        let mut send_after_gen = 0;
        if protocol < completed_version {
            // The peer went back to an older version: what it cannot carry
            // from now on must be backfilled when it upgrades again.
            let mut b = crate::kv::WriteBatch::default();
            b.put(store::peer_version_key(peer), protocol.to_be_bytes().to_vec());
            self.kv.write(b)?;
            self.write_gen += 1;
            send_after_gen = self.write_gen;
        }
        let stats = self.stats.entry(peer.clone()).or_default();
        stats.connects += 1;
        stats.checkpoint = checkpoint;
        stats.protocol = protocol;
        stats.backfilling = false;
        self.links.insert(
            peer.clone(),
            Link {
                peer_hello: false,
                they_saw_ours: false,
                hello_sent_at: self.now,
                sent_through: 0,
                scan_pos: 0,
                read_ahead: Default::default(),
                read_through: 0,
                acked: 0,
                in_flight: Default::default(),
                last_progress_at: self.now,
                last_sent_at: self.now,
                last_rewind: None,
                checkpoint,
                version: protocol,
                completed_version: completed_version.min(protocol),
                send_after_gen,
                backfill: None,
                peer_caps: 0,
                pending_ages: Vec::new(),
            },
        );
        self.clock_link_up(peer);
        let hello = self.hello(peer, false)?;
        self.transmits.push_back(hello);
        Ok(())
    }

    /// The connection to `peer` closed; frames queued for it are dropped.
    pub fn link_down(&mut self, peer: &NodeId) {
        self.links.remove(peer);
        self.drop_link_frames(peer);
    }

    pub(super) fn drop_link_frames(&mut self, peer: &NodeId) {
        self.transmits.retain(|t| &t.peer != peer);
        self.held_acks.retain(|(_, t)| &t.peer != peer);
    }

    /// A frame arrived from `peer`. An error means: close the link, giving
    /// the error as the reason; nothing of the offending frame was stored.
    pub fn handle_frame(&mut self, peer: &NodeId, frame: Frame, now: u64) -> Result<(), LinkError> {
        self.now = self.now.max(now);
        if !self.links.contains_key(peer) {
            return Err(LinkError::NoLink(peer.clone()));
        }
        if let Some(s) = self.stats.get_mut(peer) {
            s.last_contact = Some(self.now);
        }
        let version = self.links.get(peer).map(|l| l.version).unwrap_or(PROTOCOL_VERSION);
        if frame.since_protocol() > version {
            return Err(LinkError::Refused(RejectReason::Malformed {
                peer: peer.clone(),
                problem: format!("a frame of protocol {} on a link at protocol {version}", frame.since_protocol()),
            }));
        }
        match frame {
            Frame::V1(FrameV1::Hello(h)) => self.on_hello(peer, h),
            Frame::V1(FrameV1::Batch(b)) => self.on_batch(peer, b),
            Frame::V1(FrameV1::Ack(a)) => self.on_ack(peer, a).map_err(LinkError::from),
            Frame::V1(FrameV1::Nack(n)) => self.on_nack(peer, n).map_err(LinkError::from),
            Frame::V2(FrameV2::Backfill(b)) => self.on_backfill(peer, b),
            Frame::V2(FrameV2::BackfillAck(a)) => self.on_backfill_ack(peer, a).map_err(LinkError::from),
            Frame::V2(FrameV2::RestoreRequest(r)) => self.on_restore_request(peer, r),
            Frame::V2(FrameV2::RestorePage(p)) => self.on_restore_page(peer, p),
            // Certificate business: the node takes these before the engine.
            Frame::V2(FrameV2::Revocations(_)) => Ok(()),
            Frame::V2(FrameV2::SummaryAges(a)) => {
                self.on_summary_ages(peer, a);
                Ok(())
            }
            Frame::V2(FrameV2::ClockProbe(p)) => {
                self.on_clock_probe(peer, p);
                Ok(())
            }
            Frame::V2(FrameV2::ClockEcho(e)) => {
                self.on_clock_echo(peer, e);
                Ok(())
            }
        }
    }

    /// Ages for summaries the peer is about to send (or sent, if frames
    /// were reordered): date the ones held at that version now, keep the
    /// rest for the next batch.
    fn on_summary_ages(&mut self, peer: &NodeId, a: SummaryAges) {
        let now = self.now;
        let rest: Vec<SummaryAge> =
            a.ages.into_iter().filter(|s| !self.rollup.heard(&s.office, s.version, s.age_ms, now)).collect();
        if let Some(link) = self.links.get_mut(peer) {
            link.pending_ages = rest;
            link.pending_ages.truncate(MAX_SUMMARY_AGES);
        }
    }

    fn on_hello(&mut self, peer: &NodeId, h: Hello) -> Result<(), LinkError> {
        let version = self.links.get(peer).map(|l| l.version).unwrap_or(PROTOCOL_VERSION);
        if h.protocol != version {
            return Err(LinkError::Version { theirs: h.protocol, ours: version });
        }
        if &h.node_id != peer {
            return Err(LinkError::IdMismatch { claimed: h.node_id, peer: peer.clone() });
        }
        let first = !self.links.get(peer).is_some_and(|l| l.peer_hello);
        let settled = if first { self.settle_restored_peer(peer, h.resume_after)? } else { None };
        let durable_seq = self.durable_seq;
        let last_seq = self.last_seq;
        let link = self.links.get_mut(peer).ok_or_else(|| LinkError::NoLink(peer.clone()))?;
        if h.seen_yours {
            link.they_saw_ours = true;
        }
        link.peer_caps = h.capabilities;
        let mut reply = !h.seen_yours;
        if !link.peer_hello {
            link.peer_hello = true;
            let mut resume = h.resume_after;
            if let Some(r) = settled {
                // Settled after a restore: the journal now continues above
                // the peer's checkpoint; sending resumes once it is durable.
                resume = r;
            } else if resume > durable_seq {
                // The peer holds more of our journal than we have: our store
                // went back in time. Send everything again; merge is idempotent.
                self.events.push_back(super::Event::JournalBehindPeer {
                    peer: peer.clone(),
                    peer_checkpoint: resume,
                    last_seq,
                });
                resume = 0;
            }
            link.sent_through = resume;
            link.walk_from(resume);
            link.acked = resume;
            link.last_sent_at = self.now;
            let backfill = link.version > link.completed_version;
            if backfill {
                link.backfill =
                    Some(BackfillWalk { from_version: link.completed_version, pos: 0, end: resume, in_flight: None });
            }
            if let Some(s) = self.stats.get_mut(peer) {
                s.acked = resume;
                s.backfilling = backfill;
            }
            self.events.push_back(Event::LinkReady { peer: peer.clone(), resume_after: resume });
            reply = true;
            self.restore_on_parent_hello(peer, h.capabilities);
        }
        if reply {
            let hello = self.hello(peer, true)?;
            self.transmits.push_back(hello);
        }
        // The first clock sample right after the hellos (a no-op until the
        // peer's capabilities are known, and while one is not yet due).
        self.clock_probe(peer);
        self.pump(peer)?;
        Ok(())
    }

    /// The authorization rule over a whole batch: one bad record refuses it
    /// all, counted and reported, before anything is applied.
    fn authorize_all(&mut self, peer: &NodeId, records: &[Record]) -> Result<(), LinkError> {
        for r in records {
            if let Err(reason) = authorize(&self.me, peer, r) {
                if let Some(s) = self.stats.get_mut(peer) {
                    s.refused += 1;
                }
                self.events.push_back(Event::Refused { peer: peer.clone(), reason: reason.clone() });
                return Err(LinkError::Refused(reason));
            }
        }
        Ok(())
    }

    /// Records the peer held back while this link spoke an older version:
    /// apply them like a batch, but leave the checkpoint where it is.
    fn on_backfill(&mut self, peer: &NodeId, b: Backfill) -> Result<(), LinkError> {
        self.authorize_all(peer, &b.records)?;
        let count = b.records.len();
        if count > 0 {
            let finished = {
                let mut a = store::Applier::new(&self.kv, self.last_seq);
                for r in b.records {
                    a.merge(r)?;
                }
                a.finish()
            };
            let changes = self.commit(finished)?;
            if let Some(s) = self.stats.get_mut(peer) {
                s.records_applied += count as u64;
            }
            self.events.push_back(Event::Applied {
                peer: peer.clone(),
                records: count,
                changed: changes.len(),
                through: self.links.get(peer).map(|l| l.checkpoint).unwrap_or(0),
            });
        }
        self.hold_frame(peer, Frame::V2(FrameV2::BackfillAck(Ack { through: b.through })));
        Ok(())
    }

    fn on_backfill_ack(&mut self, peer: &NodeId, a: Ack) -> Result<(), StoreError> {
        let Some(link) = self.links.get_mut(peer) else { return Ok(()) };
        let Some(walk) = link.backfill.as_mut() else { return Ok(()) };
        if walk.in_flight.map(|(t, _)| t) != Some(a.through) {
            return Ok(());
        }
        walk.pos = a.through;
        walk.in_flight = None;
        if walk.pos >= walk.end {
            // The peer holds every record its older version missed, up to
            // where the normal walk started: the link is now complete at
            // its version.
            let version = link.version;
            link.backfill = None;
            link.completed_version = version;
            let mut b = crate::kv::WriteBatch::default();
            b.put(store::peer_version_key(peer), version.to_be_bytes().to_vec());
            self.kv.write(b)?;
            self.write_gen += 1;
            if let Some(s) = self.stats.get_mut(peer) {
                s.backfilling = false;
            }
            return Ok(());
        }
        self.pump_backfill(peer)
    }

    /// Send the next backfill frame if none is in flight.
    fn pump_backfill(&mut self, peer: &NodeId) -> Result<(), StoreError> {
        let now = self.now;
        loop {
            let Some(link) = self.links.get(peer) else { return Ok(()) };
            let Some(walk) = link.backfill.as_ref() else { return Ok(()) };
            if !link.peer_hello || walk.in_flight.is_some() || self.durable_gen < link.send_after_gen {
                return Ok(());
            }
            let (start, end, old, new) = (walk.pos, walk.end, walk.from_version, link.version);
            let entries = store::journal_range(&self.kv, start, end, self.cfg.scan_limit)?;
            let mut records = Vec::new();
            let mut through = if entries.len() < self.cfg.scan_limit { end } else { start };
            for (seq, entry) in &entries {
                through = *seq;
                let carried_now =
                    entry_kind(entry).is_some_and(|k| k.since_protocol() > old && k.since_protocol() <= new);
                if carried_now && sends_to(&entry.route, &self.me, peer) {
                    records.push(self.read_entry(*seq, entry)?);
                    if records.len() >= self.cfg.batch_records {
                        break;
                    }
                }
            }
            if records.len() < self.cfg.batch_records && entries.len() < self.cfg.scan_limit {
                through = end;
            }
            let Some(walk) = self.links.get_mut(peer).and_then(|l| l.backfill.as_mut()) else { return Ok(()) };
            if records.is_empty() && through < end && through - start < self.cfg.progress_every {
                walk.pos = through;
                continue;
            }
            walk.in_flight = Some((through, now));
            if let Some(s) = self.stats.get_mut(peer) {
                s.backfilled += records.len() as u64;
            }
            let frame = Frame::V2(FrameV2::Backfill(Backfill { from: start, through, records }));
            self.transmits.push_back(Transmit { peer: peer.clone(), frame });
            return Ok(());
        }
    }

    fn read_entry(&self, seq: u64, entry: &JournalEntry) -> Result<Record, StoreError> {
        let stored = self.kv.get(&entry.key)?.ok_or_else(|| StoreError::Corrupt {
            key: String::from_utf8_lossy(&entry.key).into_owned(),
            problem: format!("journal entry {seq} names a record that is not stored"),
        })?;
        let stored: store::StoredRecord = store::decode(&entry.key, &stored)?;
        Ok(stored.record)
    }

    /// Records of kinds the peer's version cannot carry that the routing
    /// rule gives it, counted up to `cap`: they wait here for it to upgrade.
    /// The version is the current link's, or the one last completed with
    /// the peer if the link is down (nothing is counted for a peer never
    /// met: its version is unknown).
    pub fn held_for_older_peer(&self, peer: &NodeId, cap: usize) -> Result<u64, StoreError> {
        let version = match self.links.get(peer) {
            Some(l) => Some(l.version),
            None => store::peer_version_known(&self.kv, peer)?,
        };
        match version {
            Some(v) => store::held_for_older_peer(&self.kv, &self.me, peer, v, cap),
            None => Ok(0),
        }
    }

    /// The protocol version of the link to `peer`, if it is up.
    pub fn link_version(&self, peer: &NodeId) -> Option<u32> {
        self.links.get(peer).map(|l| l.version)
    }

    fn on_batch(&mut self, peer: &NodeId, b: Batch) -> Result<(), LinkError> {
        let cp = self.links.get(peer).map(|l| l.checkpoint).unwrap_or(0);
        if b.from > cp {
            // A gap: an earlier batch was lost or is late. Ask for a resend.
            if let Some(s) = self.stats.get_mut(peer) {
                s.nacks_sent += 1;
            }
            self.transmits
                .push_back(Transmit { peer: peer.clone(), frame: Frame::V1(FrameV1::Nack(Nack { have: cp })) });
            return Ok(());
        }
        if b.through <= cp {
            // A duplicate: acknowledge again what we hold.
            self.hold_ack(peer, cp);
            return Ok(());
        }
        self.authorize_all(peer, &b.records)?;
        let count = b.records.len();
        let finished = {
            let mut a = store::Applier::new(&self.kv, self.last_seq);
            for r in b.records {
                a.merge(r)?;
            }
            a.put(checkpoint_key(peer), b.through.to_be_bytes().to_vec());
            a.finish()
        };
        let changes = self.commit(finished)?;
        let mut ages = Vec::new();
        if let Some(l) = self.links.get_mut(peer) {
            l.checkpoint = b.through;
            ages = std::mem::take(&mut l.pending_ages);
        }
        for s in ages {
            self.rollup.heard(&s.office, s.version, s.age_ms, self.now);
        }
        if let Some(s) = self.stats.get_mut(peer) {
            s.batches_applied += 1;
            s.records_applied += count as u64;
            s.checkpoint = b.through;
        }
        self.events.push_back(Event::Applied {
            peer: peer.clone(),
            records: count,
            changed: changes.len(),
            through: b.through,
        });
        self.hold_ack(peer, b.through);
        Ok(())
    }

    /// Queue an ack that leaves only once everything written so far is durable.
    fn hold_ack(&mut self, peer: &NodeId, through: u64) {
        self.hold_frame(peer, Frame::V1(FrameV1::Ack(Ack { through })));
    }

    fn hold_frame(&mut self, peer: &NodeId, frame: Frame) {
        let t = Transmit { peer: peer.clone(), frame };
        if self.write_gen <= self.durable_gen {
            self.transmits.push_back(t);
        } else {
            self.held_acks.push_back((self.write_gen, t));
        }
    }

    fn on_ack(&mut self, peer: &NodeId, a: Ack) -> Result<(), StoreError> {
        let now = self.now;
        let durable_seq = self.durable_seq;
        let Some(link) = self.links.get_mut(peer) else { return Ok(()) };
        link.they_saw_ours = true;
        if a.through <= link.acked || a.through > durable_seq {
            return Ok(());
        }
        link.acked = a.through;
        link.last_progress_at = now;
        while link.in_flight.front().is_some_and(|t| *t <= a.through) {
            link.in_flight.pop_front();
        }
        if a.through > link.sent_through {
            // An ack from before a rewind: the peer holds more than we resent.
            link.sent_through = a.through;
            if a.through > link.scan_pos {
                link.walk_from(a.through);
            }
            link.in_flight.clear();
        }
        if let Some(s) = self.stats.get_mut(peer) {
            s.acked = a.through;
        }
        self.pump(peer)
    }

    fn on_nack(&mut self, peer: &NodeId, n: Nack) -> Result<(), StoreError> {
        let now = self.now;
        let rto = self.cfg.rto_ms;
        let Some(link) = self.links.get_mut(peer) else { return Ok(()) };
        link.they_saw_ours = true;
        if n.have < link.acked || n.have >= link.sent_through {
            return Ok(());
        }
        // Several nacks follow one loss (one per later batch): go back once.
        if let Some((have, at)) = link.last_rewind {
            if have == n.have && now < at + rto {
                return Ok(());
            }
        }
        link.last_rewind = Some((n.have, now));
        link.sent_through = n.have;
        link.walk_from(n.have);
        link.in_flight.clear();
        link.last_progress_at = now;
        if let Some(s) = self.stats.get_mut(peer) {
            s.rewinds += 1;
        }
        self.pump(peer)
    }

    pub(super) fn link_timeout(&mut self, peer: &NodeId, now: u64) -> Result<(), StoreError> {
        self.clock_probe(peer);
        let cfg = self.cfg.clone();
        let Some(link) = self.links.get(peer) else { return Ok(()) };
        if !link.they_saw_ours && now >= link.hello_sent_at + cfg.hello_retry_ms {
            let hello = self.hello(peer, link.peer_hello)?;
            self.transmits.push_back(hello);
            if let Some(l) = self.links.get_mut(peer) {
                l.hello_sent_at = now;
            }
        }
        let Some(link) = self.links.get_mut(peer) else { return Ok(()) };
        if let Some(stall) = cfg.stall_ms {
            if !link.in_flight.is_empty() && now >= link.last_progress_at + stall {
                let waited_ms = now - link.last_progress_at;
                self.link_down(peer);
                self.events.push_back(Event::Stalled { peer: peer.clone(), waited_ms });
                return Ok(());
            }
        }
        if !link.in_flight.is_empty() && now >= link.last_progress_at + cfg.rto_ms {
            link.sent_through = link.acked;
            let acked = link.acked;
            link.walk_from(acked);
            link.in_flight.clear();
            link.last_progress_at = now;
            if let Some(s) = self.stats.get_mut(peer) {
                s.rewinds += 1;
            }
        }
        if let Some(walk) = self.links.get_mut(peer).and_then(|l| l.backfill.as_mut()) {
            if walk.in_flight.is_some_and(|(_, at)| now >= at + cfg.rto_ms) {
                walk.in_flight = None;
            }
        }
        self.pump(peer)?;
        let Some(link) = self.links.get_mut(peer) else { return Ok(()) };
        if link.peer_hello
            && link.in_flight.is_empty()
            && link.scan_pos > link.sent_through
            && now >= link.last_sent_at + cfg.progress_idle_ms
        {
            self.send_batch(peer, Vec::new())?;
        }
        Ok(())
    }

    /// Walk the durable journal for `peer` and send what the routing rule
    /// gives it, keeping at most `window` batches in flight. The journal is
    /// read in steps of `scan_limit` entries; what a full batch leaves of a
    /// step stays on the link for the next batch.
    pub(super) fn pump(&mut self, peer: &NodeId) -> Result<(), StoreError> {
        self.pump_backfill(peer)?;
        loop {
            let durable_seq = self.durable_seq;
            let durable_gen = self.durable_gen;
            let Some(link) = self.links.get_mut(peer) else { return Ok(()) };
            if !link.peer_hello
                || link.in_flight.len() >= self.cfg.window
                || link.scan_pos >= durable_seq
                || durable_gen < link.send_after_gen
            {
                return Ok(());
            }
            let version = link.version;
            if link.read_ahead.is_empty() {
                let from = link.read_through.max(link.scan_pos);
                let entries = store::journal_range(&self.kv, from, durable_seq, self.cfg.scan_limit)?;
                // A short read reached the durable end (later versions
                // removed their older entries, leaving holes).
                link.read_through = match entries.last() {
                    Some((seq, _)) if entries.len() >= self.cfg.scan_limit => *seq,
                    _ => durable_seq,
                };
                link.read_ahead.extend(entries);
            }
            let mut ahead = std::mem::take(&mut link.read_ahead);
            let read_through = link.read_through;
            let mut records = Vec::new();
            let mut bytes = 0;
            let mut end = link.scan_pos;
            while let Some((seq, entry)) = ahead.pop_front() {
                end = seq;
                // A kind the link's version cannot carry is held back: it
                // waits in the journal, and the backfill sends it once the
                // peer speaks a version that carries it.
                let carried = entry_kind(&entry).is_some_and(|k| k.since_protocol() <= version);
                if carried && sends_to(&entry.route, &self.me, peer) {
                    let record = self.read_entry(seq, &entry)?;
                    bytes += approx_size(&record);
                    records.push(record);
                    if records.len() >= self.cfg.batch_records || bytes >= self.cfg.batch_bytes {
                        break;
                    }
                }
            }
            if ahead.is_empty() {
                // Everything read so far is walked.
                end = read_through;
            }
            let Some(link) = self.links.get_mut(peer) else { return Ok(()) };
            link.read_ahead = ahead;
            link.scan_pos = end;
            let skipped = end - link.sent_through;
            if records.is_empty() && skipped < self.cfg.progress_every {
                continue;
            }
            self.send_batch(peer, records)?;
        }
    }

    fn send_batch(&mut self, peer: &NodeId, records: Vec<Record>) -> Result<(), StoreError> {
        let now = self.now;
        let Some(link) = self.links.get_mut(peer) else { return Ok(()) };
        let batch = Batch { from: link.sent_through, through: link.scan_pos, records };
        if link.in_flight.is_empty() {
            link.last_progress_at = now;
        }
        link.sent_through = link.scan_pos;
        link.in_flight.push_back(link.scan_pos);
        link.last_sent_at = now;
        let tells_ages = link.version >= 2 && link.peer_caps & CAP_CLOCK != 0;
        if let Some(s) = self.stats.get_mut(peer) {
            s.batches_sent += 1;
            s.records_sent += batch.records.len() as u64;
        }
        if tells_ages {
            // How long each summary has been held since it was fresh, by
            // this node's clock; it goes first so the peer dates the
            // summaries as it applies them (see `rollup`).
            let ages: Vec<SummaryAge> = batch
                .records
                .iter()
                .filter(|r| r.kind() == Kind::Summary)
                .filter_map(|r| {
                    let age_ms = self.rollup.age_of(&r.origin, r.version, now)?;
                    Some(SummaryAge { office: r.origin.clone(), version: r.version, age_ms })
                })
                .collect();
            if !ages.is_empty() {
                let frame = Frame::V2(FrameV2::SummaryAges(SummaryAges { ages }));
                self.transmits.push_back(Transmit { peer: peer.clone(), frame });
            }
        }
        self.transmits.push_back(Transmit { peer: peer.clone(), frame: Frame::V1(FrameV1::Batch(batch)) });
        Ok(())
    }
}
