//! Postings past their `valid_until` close themselves at their origin.
//!
//! A posting's `valid_until` is the last local day on which it is valid, so
//! it can only expire at a local midnight: the engine looks once when it
//! opens and then at every local midnight of its corrected time (the
//! province's clock, see [`super::clock`]; [`next_check_at`]), and
//! writes each expired open posting of its own as a new version with status
//! `closed`. That version replicates like any edit, so the posting leaves
//! the open counts and the board everywhere it is held.

use super::Engine;
use crate::kv::{Kv, StoreError};
use crate::record::{Body, Kind, PostingStatus, Record, RecordId};
use crate::{rules, store, time};

/// Own postings read per step of the scan.
const SCAN_PAGE: usize = 1_024;

/// The next instant after `now_ms` at which a posting may expire: the next
/// local midnight (UTC+8).
pub(super) fn next_check_at(now_ms: u64) -> u64 {
    let next_day = i64::from(time::local_day(now_ms)) + 1;
    (next_day * 86_400_000 - time::LOCAL_OFFSET_MS).max(0) as u64
}

/// The first millisecond of a local day (UTC+8).
fn day_start_ms(day: i32) -> u64 {
    (i64::from(day) * 86_400_000 - time::LOCAL_OFFSET_MS).max(0) as u64
}

impl<K: Kv> Engine<K> {
    /// When (by this node's clock) own postings are next checked for
    /// expiry: at once after open, then at the next local midnight of the
    /// corrected time. Computed from the correction as it stands, so a
    /// correction measured after the check was planned moves it.
    pub(super) fn next_expiry_at(&self) -> Option<u64> {
        if self.restoring() {
            return None;
        }
        let Some(day) = self.expiry_checked_day else {
            // The first check waits (a little) for the clock to be measured
            // from above, so a fast clock does not close postings early.
            let waits = self.parent.is_some() && !self.clock_measured;
            return Some(if waits {
                self.now.max(self.opened_at + super::clock::CLOCK_FIRST_WAIT_MS)
            } else {
                self.now
            });
        };
        let midnight = next_check_at(day_start_ms(day));
        Some((midnight as i64).saturating_sub(self.clock_correction_ms).max(0) as u64)
    }

    /// Close every own open posting past its `valid_until` at `now` (this
    /// node's clock; judged and stamped by the corrected time), each as a
    /// new version. Returns how many were closed.
    pub fn close_expired(&mut self, now: u64) -> Result<usize, StoreError> {
        let at = self.corrected(now);
        let prefix = RecordId::origin_prefix(&self.me, Kind::Posting);
        let mut expired = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let batch = store::list_records(&self.kv, Kind::Posting, &prefix, after.as_deref(), SCAN_PAGE)?;
            for sr in &batch {
                if let Body::Posting(p) = &sr.record.body {
                    if p.status == PostingStatus::Open && rules::is_expired(p, at) {
                        let mut closed = p.clone();
                        closed.status = PostingStatus::Closed;
                        closed.updated_at = at.max(p.updated_at);
                        expired.push(Record {
                            id: sr.record.id.clone(),
                            origin: self.me.clone(),
                            version: sr.record.version + 1,
                            body: Body::Posting(closed),
                        });
                    }
                }
            }
            match batch.last() {
                Some(last) if batch.len() == SCAN_PAGE => after = Some(last.record.id.as_str().to_owned()),
                _ => break,
            }
        }
        let n = expired.len();
        for chunk in expired.chunks(SCAN_PAGE) {
            match self.write_local(chunk.to_vec(), self.now) {
                Ok(_) => {}
                Err(crate::engine::local::WriteError::Store(e)) => return Err(e),
                // A stored posting that no longer validates stays as it is:
                // closing it must not fail the timer.
                Err(_) => {}
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::local::NewPosting;
    use crate::engine::EngineConfig;
    use crate::kv::MemKv;
    use crate::node_id::NodeId;
    use crate::record::WorkType;

    #[test]
    fn midnight_is_local() {
        // 2026-11-29 16:30 UTC is 00:30 on 11-30 in Guizhou; the next check
        // is at 16:00 UTC on 11-30.
        let day = time::iso_to_day("2026-11-29").unwrap() as u64 * 86_400_000;
        assert_eq!(next_check_at(day + 16 * 3_600_000 + 1_800_000), day + 86_400_000 + 16 * 3_600_000);
        assert_eq!(next_check_at(day + 15 * 3_600_000), day + 16 * 3_600_000);
    }

    #[test]
    fn expired_postings_close_at_their_origin_as_a_new_version() {
        let me = NodeId::parse("gz/a").unwrap();
        let day = time::iso_to_day("2026-11-29").unwrap() as u64 * 86_400_000;
        let now = day + 3_600_000; // 09:00 local on 11-29
        let mut e = Engine::open(me.clone(), MemKv::new(), EngineConfig::default(), now).unwrap();
        let new = |valid_until: Option<&str>| NewPosting {
            title: "保洁员".into(),
            employer: "e".into(),
            category: "services".into(),
            work_type: WorkType::OddJob,
            positions: 1,
            audience: None,
            wage: None,
            location: None,
            valid_until: valid_until.map(str::to_owned),
        };
        let today = e.create_posting(new(Some("2026-11-29")), now).unwrap().records[0].id.clone();
        let later = e.create_posting(new(Some("2026-11-30")), now).unwrap().records[0].id.clone();
        let never = e.create_posting(new(None), now).unwrap().records[0].id.clone();
        assert_eq!(e.close_expired(now).unwrap(), 0);
        let after_midnight = next_check_at(now) + 1;
        e.handle_timeout(after_midnight).unwrap();
        let status = |e: &Engine<MemKv>, id: &RecordId| match store::get_record(e.kv(), id).unwrap().unwrap() {
            store::StoredRecord { record: Record { body: Body::Posting(p), version, .. }, .. } => (p.status, version),
            _ => unreachable!(),
        };
        assert_eq!(status(&e, &today), (PostingStatus::Closed, 2));
        assert_eq!(status(&e, &later), (PostingStatus::Open, 1));
        assert_eq!(status(&e, &never), (PostingStatus::Open, 1));
        assert_eq!(e.figures().totals.postings_open, 2);
        // Closing is idempotent: a closed posting is not written again.
        assert_eq!(e.close_expired(after_midnight + 1).unwrap(), 0);
    }
}
