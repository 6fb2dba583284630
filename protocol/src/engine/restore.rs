//! The engine's half of restoring an office from a backup.
//!
//! A backup is older than the office it replaces: since it was taken the
//! office wrote records (ids and versions from its counter), appended to
//! its journal (sequences its peers checkpointed), and sent all of it up.
//! `jobmesh restore` writes the backup into an empty data directory and
//! marks the store with two keys; the engine then does the rest:
//!
//! - **Own records back from the parent** ([`META_RESTORE_PENDING`], value:
//!   how far the parent's journal has been read). While it is set the node
//!   makes no record of its own — local writes are refused with
//!   [`WriteError::Restoring`](super::local::WriteError::Restoring) and the
//!   summary is not republished — because every id or version it would
//!   pick could already exist upstream. Once the parent's hello advertises
//!   [`CAP_RESTORE`], the engine asks it for every record with an origin in
//!   this subtree that it holds ([`RestoreRequest`]), page by page
//!   ([`RestorePage`]); merging them brings back each record at its latest
//!   version, and the id counter is raised past every own id seen. The
//!   last page clears the key.
//! - **No journal sequence reused** ([`META_RESTORED_AT`], value: the
//!   backup's last sequence). A peer's hello says how far it holds this
//!   node's journal. If that is past the backup, the sequences in between
//!   were seen by the peer and may have been given again since the
//!   restore: every entry in that range moves above the peer's checkpoint
//!   (one atomic write) and the journal continues from there, so the peer
//!   resumes exactly and misses nothing written since. Each peer is settled
//!   once ([`restore_peer_key`]); this is the other half of
//!   [`Event::JournalBehindPeer`](super::Event::JournalBehindPeer), which
//!   only resends.
//!
//! What cannot come back: a record that never left the office. Today every
//! kind an office writes flows up to its parent, so there is none; should a
//! kind ever stay local, [`Event::RestoreDone`](super::Event::RestoreDone)
//! is where its ids are to be reported.

use super::{Engine, Event, LinkError, Transmit};
use crate::kv::{Kv, StoreError, WriteBatch};
use crate::node_id::NodeId;
use crate::record::{Kind, Record, RecordId};
use crate::routing::RejectReason;
use crate::store::{self, journal_key, u64_value, META_COUNTER, META_SEQ};
use crate::wire::{Frame, FrameV2, RestorePage, RestoreRequest, CAP_RESTORE};

/// Set by `jobmesh restore`; present while this office's own records are
/// still to come back from the parent. Value: u64 BE, the parent's journal
/// position read so far.
pub const META_RESTORE_PENDING: &[u8] = b"mrestore_pending";
/// Set by `jobmesh restore`: the backup's last journal sequence.
pub const META_RESTORED_AT: &[u8] = b"mrestored_at";

/// The key marking that `peer`'s checkpoint has been settled after a restore.
pub fn restore_peer_key(peer: &NodeId) -> Vec<u8> {
    [b"mrestore_peer/", peer.as_str().as_bytes()].concat()
}

/// The own-records step in progress.
#[derive(Debug, Clone)]
pub(super) struct Pending {
    /// The parent's journal read through here (durable on this node).
    cursor: u64,
    /// When the outstanding request was sent, if one is.
    asked_at: Option<u64>,
}

/// Where a restore stands, for status pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestoreProgress {
    pub pending: bool,
    pub recovered: u64,
}

/// The number in a numbered id (`gz.a_p17` → 17) if `id` is one of `me`'s.
fn own_number(me_dotted: &str, id: &RecordId) -> Option<u64> {
    let rest = id.as_str().strip_prefix(me_dotted)?.strip_prefix('_')?;
    let (letter, n) = rest.split_at_checked(1)?;
    match Kind::from_letter(letter.as_bytes()[0])? {
        Kind::Posting | Kind::Worker | Kind::Placement | Kind::Matter => n.parse().ok(),
        Kind::Fill | Kind::Summary | Kind::MattersSummary | Kind::Health => None,
    }
}

/// What a store marked by `jobmesh restore` holds at open.
pub(super) fn load<K: Kv>(kv: &K) -> Result<(Option<Pending>, Option<u64>), StoreError> {
    let pending = kv
        .get(META_RESTORE_PENDING)?
        .map(|v| u64_value(META_RESTORE_PENDING, Some(v)))
        .transpose()?
        .map(|cursor| Pending { cursor, asked_at: None });
    let at = kv.get(META_RESTORED_AT)?.map(|v| u64_value(META_RESTORED_AT, Some(v))).transpose()?;
    Ok((pending, at))
}

impl<K: Kv> Engine<K> {
    /// True while own records are still to come back from the parent: the
    /// node must not write records of its own.
    pub fn restoring(&self) -> bool {
        self.restore.is_some()
    }

    pub fn restore_progress(&self) -> RestoreProgress {
        RestoreProgress { pending: self.restore.is_some(), recovered: self.restore_recovered }
    }

    /// A root has no parent to restore from: what it wrote after the backup
    /// and kept only itself cannot come back, so the step ends at once.
    pub(super) fn restore_without_parent(&mut self) -> Result<(), StoreError> {
        if self.restore.is_some() && self.parent.is_none() {
            let mut b = WriteBatch::default();
            b.delete(META_RESTORE_PENDING.to_vec());
            self.kv.write(b)?;
            self.write_gen += 1;
            self.restore = None;
            self.events.push_back(Event::RestoreDone { recovered: 0, unrecoverable: Vec::new() });
        }
        Ok(())
    }

    /// Settle `peer`'s checkpoint of this node's journal after a restore;
    /// returns where to resume sending to it, if settling decided it.
    pub(super) fn settle_restored_peer(&mut self, peer: &NodeId, checkpoint: u64) -> Result<Option<u64>, StoreError> {
        let Some(at) = self.restored_at else { return Ok(None) };
        let marker = restore_peer_key(peer);
        if self.kv.get(&marker)?.is_some() {
            return Ok(None);
        }
        let mut b = WriteBatch::default();
        b.put(marker, Vec::new());
        if checkpoint <= at {
            self.kv.write(b)?;
            self.write_gen += 1;
            return Ok(None);
        }
        // The peer saw sequences (at, checkpoint]: move what this node has
        // written there since the restore to fresh sequences above both.
        let mut next = self.last_seq.max(checkpoint);
        let mut after = at;
        let end = self.last_seq.min(checkpoint);
        let mut moved = 0u64;
        loop {
            let entries = store::journal_range(&self.kv, after, end, self.cfg.scan_limit)?;
            let Some((last, _)) = entries.last() else { break };
            after = *last;
            for (seq, entry) in entries {
                let held = self.kv.get(&entry.key)?.ok_or_else(|| StoreError::Corrupt {
                    key: String::from_utf8_lossy(&entry.key).into_owned(),
                    problem: format!("journal entry {seq} names a record that is not stored"),
                })?;
                let mut stored: store::StoredRecord = store::decode(&entry.key, &held)?;
                next += 1;
                stored.seq = next;
                b.delete(journal_key(seq));
                b.put(journal_key(next), store::encode(&entry));
                b.put(entry.key.clone(), store::encode(&stored));
                moved += 1;
            }
        }
        b.put(META_SEQ.to_vec(), next.to_be_bytes().to_vec());
        self.kv.write(b)?;
        self.write_gen += 1;
        self.last_seq = next;
        self.events.push_back(Event::JournalSettled { peer: peer.clone(), peer_checkpoint: checkpoint, moved });
        Ok(Some(checkpoint))
    }

    /// The parent's hello arrived: ask it for our records if we need them.
    pub(super) fn restore_on_parent_hello(&mut self, peer: &NodeId, caps: u64) {
        if self.parent.as_ref() != Some(peer) {
            return;
        }
        let version = self.links.get(peer).map(|l| l.version).unwrap_or(1);
        let Some(p) = self.restore.as_mut() else { return };
        if caps & CAP_RESTORE == 0 || version < 2 {
            self.events.push_back(Event::RestoreUnsupported { parent: peer.clone() });
            return;
        }
        p.asked_at = Some(self.now);
        let after = p.cursor;
        self.transmits.push_back(Transmit {
            peer: peer.clone(),
            frame: Frame::V2(FrameV2::RestoreRequest(RestoreRequest { after })),
        });
    }

    /// Ask again when a request went unanswered for `rto_ms`.
    pub(super) fn restore_timeout(&mut self, now: u64) {
        let rto = self.cfg.rto_ms;
        let Some(parent) = self.parent.clone() else { return };
        if !self.links.get(&parent).is_some_and(|l| l.peer_hello && l.version >= 2 && l.peer_caps & CAP_RESTORE != 0) {
            return;
        }
        let Some(p) = self.restore.as_mut() else { return };
        if p.asked_at.is_some_and(|t| now >= t + rto) {
            p.asked_at = Some(now);
            let after = p.cursor;
            self.transmits.push_back(Transmit {
                peer: parent,
                frame: Frame::V2(FrameV2::RestoreRequest(RestoreRequest { after })),
            });
        }
    }

    pub(super) fn restore_deadline(&self) -> Option<u64> {
        self.restore.as_ref().and_then(|p| p.asked_at).map(|t| t + self.cfg.rto_ms)
    }

    /// Parent side: a restored child asks for the records of its subtree.
    pub(super) fn on_restore_request(&mut self, peer: &NodeId, r: RestoreRequest) -> Result<(), LinkError> {
        if !self.me.is_parent_of(peer) {
            return Err(LinkError::Refused(RejectReason::Malformed {
                peer: peer.clone(),
                problem: "a restore request comes only from a child".into(),
            }));
        }
        let end = self.durable_seq;
        let entries = store::journal_range(&self.kv, r.after, end, self.cfg.scan_limit)?;
        let mut records: Vec<Record> = Vec::new();
        let mut through = if entries.len() < self.cfg.scan_limit { end } else { r.after };
        for (seq, entry) in &entries {
            through = *seq;
            if entry.route.origin.is_in_subtree_of(peer) {
                if let Some(held) = self.kv.get(&entry.key)? {
                    let stored: store::StoredRecord = store::decode(&entry.key, &held)?;
                    records.push(stored.record);
                }
                if records.len() >= self.cfg.batch_records {
                    break;
                }
            }
        }
        if records.len() < self.cfg.batch_records && entries.len() < self.cfg.scan_limit {
            through = end;
        }
        let through = through.max(r.after);
        let page = RestorePage { after: r.after, through, done: through >= end, records };
        self.transmits.push_back(Transmit { peer: peer.clone(), frame: Frame::V2(FrameV2::RestorePage(page)) });
        Ok(())
    }

    /// Child side: merge a page of own-subtree records from the parent.
    pub(super) fn on_restore_page(&mut self, peer: &NodeId, page: RestorePage) -> Result<(), LinkError> {
        if self.parent.as_ref() != Some(peer) {
            return Err(LinkError::Refused(RejectReason::Malformed {
                peer: peer.clone(),
                problem: "restore pages come only from the parent".into(),
            }));
        }
        let Some(p) = self.restore.as_ref() else { return Ok(()) };
        if page.after != p.cursor {
            // An answer to an earlier request (resent after a timeout).
            return Ok(());
        }
        for r in &page.records {
            let problem = if !r.origin.is_in_subtree_of(&self.me) {
                Some(format!("restore page record {} has origin {} outside this subtree", r.id, r.origin))
            } else {
                r.validate().err().map(|e| e.to_string())
            };
            if let Some(problem) = problem {
                let reason = RejectReason::Malformed { peer: peer.clone(), problem };
                self.events.push_back(Event::Refused { peer: peer.clone(), reason: reason.clone() });
                return Err(LinkError::Refused(reason));
            }
        }
        let me_dotted = self.me.dotted();
        let counter =
            page.records.iter().filter_map(|r| own_number(&me_dotted, &r.id)).max().unwrap_or(0).max(self.counter);
        let count = page.records.len() as u64;
        let finished = {
            let mut a = store::Applier::new(&self.kv, self.last_seq);
            for r in page.records {
                a.merge(r)?;
            }
            a.put(META_COUNTER.to_vec(), counter.to_be_bytes().to_vec());
            if !page.done {
                a.put(META_RESTORE_PENDING.to_vec(), page.through.to_be_bytes().to_vec());
            }
            a.finish()
        };
        let mut finished = finished;
        if page.done {
            finished.batch.delete(META_RESTORE_PENDING.to_vec());
        }
        self.commit(finished)?;
        self.counter = counter;
        self.restore_recovered += count;
        if page.done {
            self.restore = None;
            self.summary_dirty = true;
            self.events.push_back(Event::RestoreDone { recovered: self.restore_recovered, unrecoverable: Vec::new() });
        } else if let Some(p) = self.restore.as_mut() {
            p.cursor = page.through;
            p.asked_at = Some(self.now);
            self.transmits.push_back(Transmit {
                peer: peer.clone(),
                frame: Frame::V2(FrameV2::RestoreRequest(RestoreRequest { after: page.through })),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_numbers_are_read_only_from_own_numbered_ids() {
        let me = NodeId::parse("gz/a").unwrap();
        let d = me.dotted();
        assert_eq!(own_number(&d, &RecordId::numbered(&me, Kind::Posting, 17)), Some(17));
        assert_eq!(own_number(&d, &RecordId::numbered(&me, Kind::Placement, 3)), Some(3));
        let child = NodeId::parse("gz/a/x").unwrap();
        assert_eq!(own_number(&d, &RecordId::numbered(&child, Kind::Worker, 99)), None);
        assert_eq!(own_number(&d, &RecordId::summary(&me)), None);
        let p = RecordId::numbered(&me, Kind::Posting, 5);
        assert_eq!(own_number(&d, &RecordId::fill(&me, &p)), None);
    }
}
