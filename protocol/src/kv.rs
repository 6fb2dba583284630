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
    /// The disk is full (ENOSPC or a quota): nothing more can be written
    /// until space is freed. Distinct from [`StoreError::Backend`] so that
    /// users are told what to do and the driver knows what to wait for.
    #[error("the disk is full: {0}")]
    Full(String),
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

/// A failure of the disk under a [`FaultyKv`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DiskFault {
    /// The disk works.
    #[default]
    None,
    /// Every write and flush fails with [`StoreError::Full`].
    Full,
    /// Every write fails (an IO error); nothing of it is applied.
    WriteErrors,
    /// Writes succeed but flushes fail: nothing new becomes durable.
    FlushErrors,
    /// A write applies only the first half of its batch, then fails: the
    /// atomic batch was torn, so the store must be reopened (as after a
    /// crash) before it is trusted again.
    ShortWrites,
}

/// A [`MemKv`] whose disk fails on command, for the simulator and tests of
/// drivers. Like sled, it latches the first failure: every later write and
/// flush fails with it until [`FaultyKv::reopen`], which keeps only what was
/// flushed (a torn write is never durable) and clears the latch.
#[derive(Debug, Default, Clone)]
pub struct FaultyKv {
    pub inner: MemKv,
    fault: DiskFault,
    latched: Option<StoreError>,
}

impl FaultyKv {
    pub fn new() -> FaultyKv {
        FaultyKv::default()
    }

    /// Make the disk fail (or work again) from now on.
    pub fn set_fault(&mut self, fault: DiskFault) {
        self.fault = fault;
    }

    pub fn fault(&self) -> DiskFault {
        self.fault
    }

    /// A failure is latched: the store must be reopened.
    pub fn is_failed(&self) -> bool {
        self.latched.is_some()
    }

    fn fail(&mut self, e: StoreError) -> StoreError {
        self.latched.get_or_insert(e).clone()
    }

    /// Make everything written so far durable, unless the disk fails.
    pub fn flush(&mut self) -> Result<(), StoreError> {
        if let Some(e) = &self.latched {
            return Err(e.clone());
        }
        match self.fault {
            DiskFault::Full => Err(self.fail(StoreError::Full("no space left on device (simulated)".into()))),
            DiskFault::FlushErrors => Err(self.fail(StoreError::Backend("flush failed: EIO (simulated)".into()))),
            _ => {
                self.inner.flush();
                Ok(())
            }
        }
    }

    /// Close and open again: what was not flushed is lost except a prefix
    /// of `keep` whole batches, and the latched failure is cleared.
    pub fn reopen(&mut self, keep: usize) {
        let keep = if self.latched.is_some() { 0 } else { keep };
        self.inner.crash_keeping(keep);
        self.latched = None;
    }

    pub fn crash_keeping(&mut self, keep: usize) {
        self.reopen(keep)
    }

    pub fn unflushed_batches(&self) -> usize {
        self.inner.unflushed_batches()
    }

    pub fn bytes(&self) -> usize {
        self.inner.bytes()
    }
}

impl Kv for FaultyKv {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key)
    }

    fn scan(&self, from: &[u8], to: &[u8], limit: usize) -> Result<Entries, StoreError> {
        self.inner.scan(from, to, limit)
    }

    fn write(&mut self, batch: WriteBatch) -> Result<(), StoreError> {
        if let Some(e) = &self.latched {
            return Err(e.clone());
        }
        match self.fault {
            DiskFault::None | DiskFault::FlushErrors => self.inner.write(batch),
            DiskFault::Full => Err(self.fail(StoreError::Full("no space left on device (simulated)".into()))),
            DiskFault::WriteErrors => Err(self.fail(StoreError::Backend("write failed: EIO (simulated)".into()))),
            DiskFault::ShortWrites => {
                let half = batch.ops.len() / 2;
                let torn = WriteBatch { ops: batch.ops.into_iter().take(half).collect() };
                self.inner.write(torn)?;
                Err(self.fail(StoreError::Backend("short write (simulated)".into())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(k: &[u8]) -> WriteBatch {
        let mut b = WriteBatch::default();
        b.put(k.to_vec(), b"v".to_vec());
        b.put([k, b"2"].concat(), b"v".to_vec());
        b
    }

    #[test]
    fn a_failing_disk_latches_until_reopened_and_keeps_only_what_was_flushed() {
        let mut kv = FaultyKv::new();
        kv.write(put(b"a")).unwrap();
        kv.flush().unwrap();
        kv.set_fault(DiskFault::ShortWrites);
        assert!(kv.write(put(b"b")).is_err());
        assert_eq!(kv.get(b"b").unwrap().as_deref(), Some(&b"v"[..]), "the torn half is visible");
        kv.set_fault(DiskFault::None);
        assert!(kv.write(put(b"c")).is_err(), "latched until reopened");
        assert!(kv.flush().is_err());
        kv.reopen(5);
        assert_eq!(kv.get(b"a").unwrap().as_deref(), Some(&b"v"[..]));
        assert_eq!(kv.get(b"b").unwrap(), None, "a torn write is never durable");
        kv.write(put(b"c")).unwrap();
        kv.flush().unwrap();

        kv.set_fault(DiskFault::Full);
        assert!(matches!(kv.write(put(b"d")), Err(StoreError::Full(_))));
        kv.set_fault(DiskFault::FlushErrors);
        kv.reopen(0);
        kv.write(put(b"e")).unwrap();
        assert!(kv.flush().is_err());
        kv.set_fault(DiskFault::None);
        kv.reopen(0);
        assert_eq!(kv.get(b"e").unwrap(), None, "never flushed");
        assert_eq!(kv.get(b"c").unwrap().as_deref(), Some(&b"v"[..]));
    }
}
