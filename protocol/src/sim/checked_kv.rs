//! A [`FaultyKv`] (a [`crate::kv::MemKv`] whose disk can fail) that checks the simulator's safety properties on every write:
//! a record version never goes back, a node never holds a record the routing
//! rule does not give it, and a forged record is never stored anywhere.

use std::cell::RefCell;
use std::rc::Rc;

use crate::kv::{Entries, FaultyKv, Kv, StoreError, WriteBatch};
use crate::node_id::NodeId;
use crate::routing::holds;
use crate::store::{decode, StoredRecord};

/// Counters of forged records start here; no honest node gets near it.
pub const FORGED_COUNTER_BASE: u64 = 9_000_000_000;

/// Shared list of safety violations found during a run.
pub type Violations = Rc<RefCell<Vec<String>>>;

pub struct CheckedKv {
    pub inner: FaultyKv,
    pub node: NodeId,
    pub violations: Violations,
}

fn is_forged(id: &str) -> bool {
    id.rsplit(['p', 'w', 'l']).next().and_then(|n| n.parse::<u64>().ok()).is_some_and(|n| n >= FORGED_COUNTER_BASE)
}

impl Kv for CheckedKv {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key)
    }

    fn scan(&self, from: &[u8], to: &[u8], limit: usize) -> Result<Entries, StoreError> {
        self.inner.scan(from, to, limit)
    }

    fn write(&mut self, batch: WriteBatch) -> Result<(), StoreError> {
        for (key, value) in &batch.ops {
            let (Some(b'r'), Some(v)) = (key.first(), value) else { continue };
            let new: StoredRecord = decode(key, v)?;
            let r = &new.record;
            if !holds(&self.node, &r.route()) {
                self.violations
                    .borrow_mut()
                    .push(format!("{} stored {} which the routing rule does not give it", self.node, r.id));
            }
            if is_forged(r.id.as_str()) {
                self.violations.borrow_mut().push(format!("{} stored forged record {}", self.node, r.id));
            }
            if let Some(old) = self.inner.get(key)? {
                let old: StoredRecord = decode(key, &old)?;
                if new.record.version <= old.record.version {
                    self.violations.borrow_mut().push(format!(
                        "{}: {} went from version {} to {}",
                        self.node, r.id, old.record.version, new.record.version
                    ));
                }
            }
        }
        self.inner.write(batch)
    }
}
