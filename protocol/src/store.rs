//! The key layout of a node's store and typed access to it.
//!
//! One keyspace, so that a batch and the checkpoint it covers are one atomic
//! write:
//!
//! | key | value |
//! |---|---|
//! | `r{kind letter}/{record id}` | [`StoredRecord`]: journal seq + record |
//! | `j{seq: u64 BE}` | [`JournalEntry`]: record key + routing metadata |
//! | `c{peer id}` | u64 BE: checkpoint of that peer's journal |
//! | `v{peer id}` | u32 BE: protocol version last completed with that peer (format 2) |
//! | `n{posting id}` | u32 BE: sum of fills held for the posting |
//! | `w{worker id}` | u32 BE: placements held for the worker |
//! | `m{name}` | metadata (format, node id, last seq, id counter) |
//! | `x{kind letter}/{external ref}` | record id: the office-local index of the references imports and POSTs carry (never replicated) |
//! | `y{record id}` | the external reference the record was created with here |
//!
//! Replicating one new record costs one read and three writes (record,
//! journal entry, and the delete of its older journal entry if any); the
//! journal carries routing metadata so that walking it for a peer reads no
//! record the peer will not get.

use std::collections::HashMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::kv::{Kv, StoreError, WriteBatch};
use crate::node_id::NodeId;
use crate::record::{merge, Body, Kind, Merge, Record, RecordId, RouteMeta};

/// Format of the store written by this build. A store with a higher number
/// is refused; a lower one is upgraded in place at open ([`plan_upgrade`]).
///
/// - 1: 0.1.0.
/// - 2: record kinds `m` (matter) and `t` (matters summary) may be stored,
///   which 0.1.0 cannot decode, and `v{peer}` keys record the protocol
///   version each peer last completed a link at.
pub const STORE_FORMAT: u64 = 2;

pub const META_FORMAT: &[u8] = b"mformat";
pub const META_NODE: &[u8] = b"mnode";
pub const META_SEQ: &[u8] = b"mseq";
pub const META_COUNTER: &[u8] = b"mcounter";
/// The format the store had before its last in-place upgrade.
pub const META_UPGRADED_FROM: &[u8] = b"mupgraded_from";

/// A record as stored, with the journal sequence of its current version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRecord {
    pub seq: u64,
    pub record: Record,
}

/// One journal entry: which record, and where it goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub key: Vec<u8>,
    pub route: RouteMeta,
}

pub fn record_key(kind: Kind, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + id.len());
    k.push(b'r');
    k.push(kind.letter());
    k.push(b'/');
    k.extend_from_slice(id.as_bytes());
    k
}

pub fn journal_key(seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(b'j');
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

pub fn checkpoint_key(peer: &NodeId) -> Vec<u8> {
    [b"c", peer.as_str().as_bytes()].concat()
}

pub fn peer_version_key(peer: &NodeId) -> Vec<u8> {
    [b"v", peer.as_str().as_bytes()].concat()
}

pub fn filled_key(posting: &RecordId) -> Vec<u8> {
    [b"n", posting.as_str().as_bytes()].concat()
}

pub fn placed_key(worker: &RecordId) -> Vec<u8> {
    [b"w", worker.as_str().as_bytes()].concat()
}

/// Key of the office-local index from an external reference (a job-fair
/// sheet's row number, a platform's job id) to the record it created. Never
/// replicated: only the origin creates records, so only it needs the index.
pub fn external_ref_key(kind: Kind, external_ref: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(3 + external_ref.len());
    k.push(b'x');
    k.push(kind.letter());
    k.push(b'/');
    k.extend_from_slice(external_ref.as_bytes());
    k
}

/// Key of the reverse index: record id to its external reference.
pub fn record_ref_key(id: &RecordId) -> Vec<u8> {
    [b"y", id.as_str().as_bytes()].concat()
}

/// The record created here with this external reference, if any.
pub fn record_for_ref<K: Kv + ?Sized>(kv: &K, kind: Kind, external_ref: &str) -> Result<Option<RecordId>, StoreError> {
    let key = external_ref_key(kind, external_ref);
    let Some(bytes) = kv.get(&key)? else { return Ok(None) };
    let corrupt = |problem: String| StoreError::Corrupt { key: String::from_utf8_lossy(&key).into_owned(), problem };
    let s = String::from_utf8(bytes).map_err(|e| corrupt(e.to_string()))?;
    RecordId::parse(&s).map(Some).map_err(|e| corrupt(e.to_string()))
}

/// The external reference a record was created with here, if any.
pub fn ref_of_record<K: Kv + ?Sized>(kv: &K, id: &RecordId) -> Result<Option<String>, StoreError> {
    Ok(kv.get(&record_ref_key(id))?.map(|b| String::from_utf8_lossy(&b).into_owned()))
}

/// The smallest key greater than every key starting with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0xff; prefix.len() + 1]
}

pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(v, bincode::config::standard())
        .unwrap_or_else(|e| unreachable!("encoding into a Vec cannot fail: {e}"))
}

/// Decode a stored value. A value is one record or smaller, so bincode is
/// held to the frame limit: a damaged length inside a value cannot make it
/// allocate more than that. Bytes left over mean the value is not what was
/// written.
pub fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    let corrupt = |problem: String| StoreError::Corrupt { key: String::from_utf8_lossy(key).into_owned(), problem };
    let config = bincode::config::standard().with_limit::<{ crate::wire::MAX_FRAME_BYTES }>();
    let (v, used) = bincode::serde::decode_from_slice(bytes, config).map_err(|e| corrupt(e.to_string()))?;
    if used != bytes.len() {
        return Err(corrupt(format!("{} bytes left over after the value", bytes.len() - used)));
    }
    Ok(v)
}

pub fn u64_value(key: &[u8], bytes: Option<Vec<u8>>) -> Result<u64, StoreError> {
    match bytes {
        None => Ok(0),
        Some(b) => b.as_slice().try_into().map(u64::from_be_bytes).map_err(|_| StoreError::Corrupt {
            key: String::from_utf8_lossy(key).into_owned(),
            problem: format!("expected 8 bytes, found {}", b.len()),
        }),
    }
}

fn u32_value(key: &[u8], bytes: Option<Vec<u8>>) -> Result<u32, StoreError> {
    match bytes {
        None => Ok(0),
        Some(b) => b.as_slice().try_into().map(u32::from_be_bytes).map_err(|_| StoreError::Corrupt {
            key: String::from_utf8_lossy(key).into_owned(),
            problem: format!("expected 4 bytes, found {}", b.len()),
        }),
    }
}

/// The record with this id, if held.
pub fn get_record<K: Kv + ?Sized>(kv: &K, id: &RecordId) -> Result<Option<StoredRecord>, StoreError> {
    let key = record_key(id.kind(), id.as_str());
    kv.get(&key)?.map(|b| decode(&key, &b)).transpose()
}

/// Sum of fills held for a posting.
pub fn filled<K: Kv + ?Sized>(kv: &K, posting: &RecordId) -> Result<u32, StoreError> {
    let key = filled_key(posting);
    u32_value(&key, kv.get(&key)?)
}

/// Placements held for a worker.
pub fn placed<K: Kv + ?Sized>(kv: &K, worker: &RecordId) -> Result<u32, StoreError> {
    let key = placed_key(worker);
    u32_value(&key, kv.get(&key)?)
}

/// This node's checkpoint of a peer's journal.
pub fn checkpoint<K: Kv + ?Sized>(kv: &K, peer: &NodeId) -> Result<u64, StoreError> {
    let key = checkpoint_key(peer);
    u64_value(&key, kv.get(&key)?)
}

/// The protocol version this node last completed a link with `peer` at:
/// every record of a kind that version carries has been offered to the peer
/// up to its checkpoint. A store without the key (upgraded from format 1, or
/// a peer never met) says 1, the conservative answer: at worst the next link
/// at a newer version backfills records the peer already holds.
pub fn peer_version<K: Kv + ?Sized>(kv: &K, peer: &NodeId) -> Result<u32, StoreError> {
    let key = peer_version_key(peer);
    Ok(u32_value(&key, kv.get(&key)?)?.max(1))
}

/// The version last completed with `peer`, `None` if the store has no
/// record of it (never met since format 2).
pub fn peer_version_known<K: Kv + ?Sized>(kv: &K, peer: &NodeId) -> Result<Option<u32>, StoreError> {
    let key = peer_version_key(peer);
    kv.get(&key)?.map(|b| u32_value(&key, Some(b))).transpose()
}

/// Records held here of kinds protocol `version` cannot carry that the
/// routing rule gives `peer`, counted up to `cap`: what waits for the peer
/// to upgrade. Only the new kinds' records are read (they are few next to
/// the journal).
pub fn held_for_older_peer<K: Kv + ?Sized>(
    kv: &K,
    me: &NodeId,
    peer: &NodeId,
    version: u32,
    cap: usize,
) -> Result<u64, StoreError> {
    const PAGE: usize = 1024;
    let mut n = 0u64;
    for kind in Kind::ALL.into_iter().filter(|k| k.since_protocol() > version) {
        let mut after: Option<String> = None;
        loop {
            let page = list_records(kv, kind, "", after.as_deref(), PAGE)?;
            for s in &page {
                if crate::routing::sends_to(&s.record.route(), me, peer) {
                    n += 1;
                    if n as usize >= cap {
                        return Ok(n);
                    }
                }
            }
            match page.last() {
                Some(last) if page.len() == PAGE => after = Some(last.record.id.to_string()),
                _ => break,
            }
        }
    }
    Ok(n)
}

/// Most checkpoints a store upgrade reads (a node has one per neighbour).
const MAX_UPGRADE_PEERS: usize = 100_000;

/// The write that upgrades a store of an older format to [`STORE_FORMAT`],
/// or `None` if it is current (or new). It is one atomic batch, so a crash
/// at any moment leaves the store either entirely as it was or entirely
/// upgraded, and the upgrade simply runs again at the next open.
///
/// Format 1 → 2 keeps every record, journal entry and checkpoint as it is
/// (the encodings are unchanged: new kinds are new enum variants at the
/// end), records for every peer with a checkpoint that it was met at
/// protocol 1, and raises the format.
pub fn plan_upgrade<K: Kv + ?Sized>(kv: &K) -> Result<Option<(u64, WriteBatch)>, StoreError> {
    let format = u64_value(META_FORMAT, kv.get(META_FORMAT)?)?;
    if format == 0 || format >= STORE_FORMAT {
        return Ok(None);
    }
    let mut b = WriteBatch::default();
    for (k, _) in kv.scan(b"c", &prefix_end(b"c"), MAX_UPGRADE_PEERS)? {
        let mut v = k.clone();
        v[0] = b'v';
        b.put(v, 1u32.to_be_bytes().to_vec());
    }
    b.put(META_UPGRADED_FROM.to_vec(), format.to_be_bytes().to_vec());
    b.put(META_FORMAT.to_vec(), STORE_FORMAT.to_be_bytes().to_vec());
    Ok(Some((format, b)))
}

/// Records of one kind in id order, strictly after `after`, whose id starts
/// with `id_prefix`; at most `limit`.
pub fn list_records<K: Kv + ?Sized>(
    kv: &K,
    kind: Kind,
    id_prefix: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<StoredRecord>, StoreError> {
    let prefix = record_key(kind, id_prefix);
    let from = match after {
        Some(a) => {
            let mut k = record_key(kind, a);
            k.push(0);
            k.max(prefix.clone())
        }
        None => prefix.clone(),
    };
    kv.scan(&from, &prefix_end(&prefix), limit)?.into_iter().map(|(k, v)| decode(&k, &v)).collect()
}

/// Records of `kind` whose id starts with `id_prefix`, counted up to `cap`
/// (keys only, in steps of [`COUNT_STEP`]).
pub fn count_records<K: Kv + ?Sized>(kv: &K, kind: Kind, id_prefix: &str, cap: u64) -> Result<u64, StoreError> {
    let prefix = record_key(kind, id_prefix);
    let end = prefix_end(&prefix);
    let mut from = prefix;
    let mut n = 0u64;
    while n < cap {
        let step = COUNT_STEP.min((cap - n).min(usize::MAX as u64) as usize);
        let batch = kv.scan(&from, &end, step)?;
        n += batch.len() as u64;
        match batch.last() {
            Some((k, _)) if batch.len() == step => {
                from = k.clone();
                from.push(0);
            }
            _ => break,
        }
    }
    Ok(n)
}

/// Keys read per step by [`count_records`].
pub const COUNT_STEP: usize = 4_096;

/// Journal entries after `acked` (through `through`) that the routing rule
/// sends from `me` to `peer`, counted over at most `cap` entries: what this
/// node still has to deliver to that neighbour.
pub fn backlog<K: Kv + ?Sized>(
    kv: &K,
    me: &NodeId,
    peer: &NodeId,
    acked: u64,
    through: u64,
    cap: usize,
) -> Result<u64, StoreError> {
    let entries = journal_range(kv, acked, through, cap)?;
    Ok(entries.iter().filter(|(_, e)| crate::routing::sends_to(&e.route, me, peer)).count() as u64)
}

/// Journal entries with `after < seq <= through`, at most `limit`.
pub fn journal_range<K: Kv + ?Sized>(
    kv: &K,
    after: u64,
    through: u64,
    limit: usize,
) -> Result<Vec<(u64, JournalEntry)>, StoreError> {
    if after >= through {
        return Ok(Vec::new());
    }
    kv.scan(&journal_key(after + 1), &journal_key(through.saturating_add(1).max(after + 1)), limit)?
        .into_iter()
        .map(|(k, v)| {
            let seq = u64::from_be_bytes(k[1..9].try_into().unwrap_or([0; 8]));
            decode(&k, &v).map(|e| (seq, e))
        })
        .collect()
}

/// One applied change, for figure upkeep and events.
#[derive(Debug, Clone)]
pub struct Change {
    pub old: Option<Record>,
    pub new: Record,
    pub seq: u64,
}

/// A write ready to commit: the batch, what it changes, and conflicts seen.
#[derive(Debug)]
pub struct Finished {
    pub batch: WriteBatch,
    pub changes: Vec<Change>,
    pub conflicts: Vec<(RecordId, u64)>,
    pub last_seq: u64,
}

/// Builds one atomic write: merges records, keeps the journal and derived
/// counters in step, and reads its own writes through an overlay.
pub struct Applier<'a, K: Kv + ?Sized> {
    kv: &'a K,
    overlay: HashMap<Vec<u8>, Option<Vec<u8>>>,
    batch: WriteBatch,
    pub last_seq: u64,
    pub changes: Vec<Change>,
    pub conflicts: Vec<(RecordId, u64)>,
}

impl<'a, K: Kv + ?Sized> Applier<'a, K> {
    pub fn new(kv: &'a K, last_seq: u64) -> Self {
        Applier {
            kv,
            overlay: HashMap::new(),
            batch: WriteBatch::default(),
            last_seq,
            changes: Vec::new(),
            conflicts: Vec::new(),
        }
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.overlay.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.kv.get(key),
        }
    }

    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.overlay.insert(key.clone(), Some(value.clone()));
        self.batch.put(key, value);
    }

    fn delete(&mut self, key: Vec<u8>) {
        self.overlay.insert(key.clone(), None);
        self.batch.delete(key);
    }

    /// The record as it stands in this batch.
    pub fn record(&self, id: &RecordId) -> Result<Option<StoredRecord>, StoreError> {
        let key = record_key(id.kind(), id.as_str());
        self.get(&key)?.map(|b| decode(&key, &b)).transpose()
    }

    fn add_counter(&mut self, key: Vec<u8>, delta: i64) -> Result<(), StoreError> {
        let cur = u32_value(&key, self.get(&key)?)? as i64;
        let next = (cur + delta).max(0) as u32;
        if next == 0 {
            self.delete(key);
        } else {
            self.put(key, next.to_be_bytes().to_vec());
        }
        Ok(())
    }

    /// Merge one record version; returns what the merge did.
    pub fn merge(&mut self, rec: Record) -> Result<Merge, StoreError> {
        let key = record_key(rec.kind(), rec.id.as_str());
        let held: Option<StoredRecord> = self.get(&key)?.map(|b| decode(&key, &b)).transpose()?;
        let m = merge(held.as_ref().map(|h| &h.record), &rec);
        match m {
            Merge::Conflict => self.conflicts.push((rec.id.clone(), rec.version)),
            Merge::Insert | Merge::Replace => {
                self.last_seq += 1;
                let seq = self.last_seq;
                if let Some(h) = &held {
                    self.delete(journal_key(h.seq));
                }
                match &rec.body {
                    Body::Fill(f) => {
                        let old = match held.as_ref().map(|h| &h.record.body) {
                            Some(Body::Fill(o)) => i64::from(o.filled),
                            _ => 0,
                        };
                        self.add_counter(filled_key(&f.posting_id), i64::from(f.filled) - old)?;
                    }
                    Body::Placement(l) if held.is_none() => self.add_counter(placed_key(&l.worker_id), 1)?,
                    _ => {}
                }
                self.put(journal_key(seq), encode(&JournalEntry { key: key.clone(), route: rec.route() }));
                let old = held.map(|h| h.record);
                self.put(key, encode(&StoredRecord { seq, record: rec.clone() }));
                self.changes.push(Change { old, new: rec, seq });
            }
            Merge::Duplicate | Merge::Stale => {}
        }
        Ok(m)
    }

    /// The finished write, with the new last sequence recorded.
    pub fn finish(mut self) -> Finished {
        if !self.changes.is_empty() {
            self.batch.put(META_SEQ.to_vec(), self.last_seq.to_be_bytes().to_vec());
        }
        Finished { batch: self.batch, changes: self.changes, conflicts: self.conflicts, last_seq: self.last_seq }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_with_bytes_left_over_is_corrupt() {
        let mut bytes = encode(&(7u64, "x".to_owned()));
        assert_eq!(decode::<(u64, String)>(b"k", &bytes).unwrap(), (7, "x".to_owned()));
        bytes.push(0);
        let e = decode::<(u64, String)>(b"k", &bytes).unwrap_err().to_string();
        assert!(e.contains("left over") && e.contains('k'), "{e}");
    }

    #[test]
    fn a_damaged_length_cannot_allocate_beyond_the_frame_limit() {
        // A Vec whose varint length says 2^40 elements, followed by nothing.
        let mut bytes = vec![253];
        bytes.extend_from_slice(&(1u64 << 40).to_le_bytes());
        let e = decode::<Vec<u64>>(b"k", &bytes).unwrap_err();
        assert!(matches!(e, StoreError::Corrupt { .. }), "{e}");
    }
}
