//! The storage boundary: an ordered key-value store with atomic batches.
//!
//! The protocol owns the key layout ([`crate::store`]); a backend only has to
//! get, scan and write atomically. Durability is not part of `write`: the
//! driver flushes ([`crate::engine::Engine::begin_flush`] /
//! [`crate::engine::Engine::flushed`]) and the engine never acknowledges or
//! forwards anything that is not yet durable. `node/` implements this on
//! sled; [`MemKv`] serves the simulator and models a crash by dropping every
//! batch written since the last flush.

use std::collections::BTreeMap;
use std::ops::Bound;

/// Key-value pairs as returned by a scan.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// An atomic group of puts and deletes.
#[derive(Debug, Default, Clone)]
pub struct WriteBatch {
    pub ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl WriteBatch {
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.ops.push((key, Some(value)));
    }
    pub fn delete(&mut self, key: Vec<u8>) {
        self.ops.push((key, None));
    }
    pub fn len(&self) -> usize {
        self.ops.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// Why the store failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The backend reported an error (I/O, corruption detected by it).
    #[error("storage backend: {0}")]
    Backend(String),
    /// A stored value did not decode: the store is damaged or of another format.
    #[error("stored value under {key} is unreadable: {problem}")]
    Corrupt { key: String, problem: String },
    /// The store belongs to another node or a newer format.
    #[error("{0}")]
    Incompatible(String),
}

/// An ordered key-value store with atomic batch writes.
pub trait Kv {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Entries with `from <= key < to`, in key order, at most `limit`.
    fn scan(&self, from: &[u8], to: &[u8], limit: usize) -> Result<Entries, StoreError>;
    /// Apply all of `batch` or none of it. Not necessarily durable on return.
    fn write(&mut self, batch: WriteBatch) -> Result<(), StoreError>;
}

/// In-memory store with an explicit durable state, for the simulator.
#[derive(Debug, Default, Clone)]
pub struct MemKv {
    live: BTreeMap<Vec<u8>, Vec<u8>>,
    durable: BTreeMap<Vec<u8>, Vec<u8>>,
    unflushed: Vec<WriteBatch>,
}

impl MemKv {
    pub fn new() -> MemKv {
        MemKv::default()
    }

    /// Make everything written so far durable.
    pub fn flush(&mut self) {
        for batch in self.unflushed.drain(..) {
            apply(&mut self.durable, batch);
        }
    }

    /// Lose everything not yet flushed, as a power cut would.
    pub fn crash(&mut self) {
        self.crash_keeping(0);
    }

    /// Lose what was not flushed except the first `keep` batches written
    /// since the last flush: a log-structured store may have persisted a
    /// prefix of its writes when the power went, never a later write
    /// without an earlier one.
    pub fn crash_keeping(&mut self, keep: usize) {
        let unflushed = std::mem::take(&mut self.unflushed);
        for batch in unflushed.into_iter().take(keep) {
            apply(&mut self.durable, batch);
        }
        self.live = self.durable.clone();
    }

    /// Batches written since the last flush.
    pub fn unflushed_batches(&self) -> usize {
        self.unflushed.len()
    }

    /// Number of keys (live).
    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Approximate bytes held (live keys and values).
    pub fn bytes(&self) -> usize {
        self.live.iter().map(|(k, v)| k.len() + v.len()).sum()
    }
}

fn apply(map: &mut BTreeMap<Vec<u8>, Vec<u8>>, batch: WriteBatch) {
    for (k, v) in batch.ops {
        match v {
            Some(v) => {
                map.insert(k, v);
            }
            None => {
                map.remove(&k);
            }
        }
    }
}

impl Kv for MemKv {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.live.get(key).cloned())
    }

    fn scan(&self, from: &[u8], to: &[u8], limit: usize) -> Result<Entries, StoreError> {
        if from >= to {
            return Ok(Vec::new());
        }
        Ok(self
            .live
            .range::<[u8], _>((Bound::Included(from), Bound::Excluded(to)))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn write(&mut self, batch: WriteBatch) -> Result<(), StoreError> {
        apply(&mut self.live, batch.clone());
        self.unflushed.push(batch);
        Ok(())
    }
}
