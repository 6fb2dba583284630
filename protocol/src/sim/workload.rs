//! The seeded workload: postings with audiences of every kind, edits and
//! withdrawals, workers, placements (which write fills), service matters
//! opened and resolved, and forged batches.

use super::checked_kv::FORGED_COUNTER_BASE;
use super::mesh::Mesh;
use crate::engine::local::{MatterPatch, NewMatter, NewPosting, NewWorker, PostingPatch};
use crate::figures::Figures;
use crate::matters::{Channel, MatterCategory, MatterStatus};
use crate::record::{Body, KeyGroup, Kind, Posting, PostingStatus, Record, RecordId, WorkType};
use crate::store;
use crate::wire::{Batch, Frame, FrameV1};

const CATEGORIES: [&str; 8] =
    ["waiter", "assembler", "sorter", "courier", "domestic service", "elderly care", "technician", "construction"];

/// What a local write attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    Written,
    /// Refused by the engine for a reason a user could hit (409, 404).
    Refused,
    /// The chosen node is down.
    NodeDown,
}

impl Mesh {
    /// One random local write at a random node that is up; returns the
    /// node written at.
    pub fn random_write(&mut self) -> (usize, WriteOutcome) {
        let i = self.rng.below(self.len() as u64) as usize;
        (i, self.write_at(i))
    }

    fn write_at(&mut self, i: usize) -> WriteOutcome {
        if !self.is_up(i) {
            return WriteOutcome::NodeDown;
        }
        let mut roll = self.rng.below(100);
        if (50..62).contains(&roll) && self.speaks(i) < Kind::Matter.since_protocol() {
            // The previous release has no service matters.
            roll = 70;
        }
        let now = self.clock(i);
        let me = self.id(i).clone();
        let result = if roll < 35 {
            let audience = self.pick_audience(i);
            let p = NewPosting {
                title: format!("job {}", self.rng.below(1000)),
                employer: format!("employer {}", self.rng.below(50)),
                category: CATEGORIES[self.rng.below(CATEGORIES.len() as u64) as usize].to_string(),
                work_type: WorkType::ALL[self.rng.below(4) as usize],
                positions: self.rng.range(1, 4) as u32,
                audience: Some(audience),
                wage: None,
                location: None,
                valid_until: Some("2026-12-31".into()),
            };
            self.engine_mut(i).create_posting(p, now)
        } else if roll < 50 {
            let Some(id) = self.pick_record(i, Kind::Posting, Some(&me)) else { return WriteOutcome::Refused };
            let mut patch = PostingPatch::default();
            match self.rng.below(4) {
                0 => patch.status = Some(PostingStatus::Withdrawn),
                1 => patch.status = Some(PostingStatus::Closed),
                2 => patch.positions = Some(self.rng.range(1, 6) as u32),
                _ => patch.title = Some(format!("job {} (edited)", self.rng.below(1000))),
            }
            self.engine_mut(i).update_posting(&id, patch, now)
        } else if roll < 62 {
            // Service matters: open one, or resolve one of this office's.
            let open = self.pick_record(i, Kind::Matter, Some(&me));
            match open {
                Some(id) if self.rng.below(2) == 0 => {
                    let patch = MatterPatch { status: Some(MatterStatus::Resolved), ..Default::default() };
                    self.engine_mut(i).update_matter(&id, patch, now)
                }
                _ => {
                    let m = NewMatter {
                        category: MatterCategory::ALL[self.rng.below(7) as usize],
                        channel: Channel::ALL[self.rng.below(4) as usize],
                        key_group: (self.rng.below(3) > 0).then(|| KeyGroup::ALL[self.rng.below(6) as usize]),
                        summary: format!("matter {}", self.rng.below(100_000)),
                        status: if self.rng.below(5) == 0 { MatterStatus::Resolved } else { MatterStatus::Open },
                    };
                    self.engine_mut(i).open_matter(m, now)
                }
            }
        } else if roll < 75 {
            let w = NewWorker {
                name: format!("worker {}", self.rng.below(100_000)),
                key_group: KeyGroup::ALL[self.rng.below(6) as usize],
                phone: None,
                skills: vec!["cooking".into()],
                wanted_work_type: None,
            };
            self.engine_mut(i).register_worker(w, now)
        } else {
            let Some(worker) = self.pick_record(i, Kind::Worker, None) else { return WriteOutcome::Refused };
            let Some(posting) = self.pick_record(i, Kind::Posting, None) else { return WriteOutcome::Refused };
            self.engine_mut(i).record_placement(&worker, &posting, now)
        };
        match result {
            Ok(w) => {
                self.track_write(i, w.gen, &w.records);
                WriteOutcome::Written
            }
            Err(crate::engine::local::WriteError::Store(_)) => {
                // No ack: the write was never made durable.
                self.store_failed(i);
                WriteOutcome::NodeDown
            }
            Err(_) => {
                self.after(i);
                WriteOutcome::Refused
            }
        }
    }

    fn engine_mut(&mut self, i: usize) -> &mut crate::engine::Engine<super::checked_kv::CheckedKv> {
        self.nodes[i].engine.as_mut().unwrap_or_else(|| unreachable!("checked by caller"))
    }

    /// An audience of every kind: own subtree, an ancestor's, the province,
    /// or another branch's subtree.
    fn pick_audience(&mut self, i: usize) -> crate::node_id::NodeId {
        let me = self.id(i).clone();
        match self.rng.below(5) {
            0 | 1 => me,
            2 => me.parent().unwrap_or(me),
            3 => {
                let mut a = me;
                while let Some(p) = a.parent() {
                    a = p;
                }
                a
            }
            _ => {
                let j = self.rng.below(self.len() as u64) as usize;
                self.id(j).clone()
            }
        }
    }

    /// A random record of `kind` held at node `i` (written by `origin` if given).
    fn pick_record(&mut self, i: usize, kind: Kind, origin: Option<&crate::node_id::NodeId>) -> Option<RecordId> {
        let origin = match origin {
            Some(o) => o.clone(),
            None => {
                // Pick among the nodes whose records `i` may hold: itself, its
                // ancestors, and its subtree.
                let me = self.id(i).clone();
                let mut cands: Vec<usize> = (0..self.len())
                    .filter(|&j| me.is_in_subtree_of(self.id(j)) || self.id(j).is_in_subtree_of(&me))
                    .collect();
                if cands.len() > 64 {
                    let k = self.rng.below(cands.len() as u64) as usize;
                    cands = vec![cands[k]];
                }
                let j = *self.rng.pick(&cands)?;
                self.id(j).clone()
            }
        };
        let engine = self.engine(i)?;
        let prefix = RecordId::origin_prefix(&origin, kind);
        let list = store::list_records(engine.kv(), kind, &prefix, None, 200).ok()?;
        let ids: Vec<RecordId> = list.into_iter().map(|s| s.record.id).collect();
        self.rng.pick(&ids).cloned()
    }

    /// Send a forged batch up from a random child: a record whose origin is
    /// outside the child's subtree, next to a legitimate-looking one.
    pub fn forge(&mut self) {
        let child = self.rng.below(self.len() as u64) as usize;
        let Some(parent) = self.parent_of(child) else { return };
        let me = self.id(child).clone();
        let victim = self.id(parent).clone();
        let n = FORGED_COUNTER_BASE + self.rng.below(1_000_000);
        let forged = |origin: &crate::node_id::NodeId, n: u64| Record {
            id: RecordId::numbered(origin, Kind::Posting, n),
            origin: origin.clone(),
            version: 1,
            body: Body::Posting(Posting {
                title: "forged".into(),
                employer: "forged".into(),
                category: "forged".into(),
                work_type: WorkType::OddJob,
                positions: 1,
                wage: None,
                location: None,
                valid_until: None,
                status: PostingStatus::Open,
                audience: origin.clone(),
                created_at: 0,
                updated_at: 0,
            }),
        };
        let batch = Batch { from: 0, through: u64::MAX >> 1, records: vec![forged(&me, n), forged(&victim, n + 1)] };
        self.inject(child, Frame::V1(FrameV1::Batch(batch)));
    }
}

/// Expected own figures of every office, computed from the records at their
/// origins (the truth), for the convergence check.
pub fn expected_figures(
    truth: &std::collections::BTreeMap<RecordId, Record>,
) -> std::collections::BTreeMap<String, Figures> {
    use std::collections::{BTreeMap, HashMap};
    let mut filled: HashMap<&RecordId, u32> = HashMap::new();
    let mut placed: HashMap<&RecordId, u32> = HashMap::new();
    for r in truth.values() {
        match &r.body {
            Body::Fill(f) => *filled.entry(&f.posting_id).or_default() += f.filled,
            Body::Placement(l) => *placed.entry(&l.worker_id).or_default() += 1,
            _ => {}
        }
    }
    let mut out: BTreeMap<String, Figures> = BTreeMap::new();
    for r in truth.values() {
        let f = out.entry(r.origin.to_string()).or_default();
        match &r.body {
            Body::Posting(p) => f.add(&Figures::of_posting(p, filled.get(&r.id).copied().unwrap_or(0)), 1),
            Body::Worker(w) => f.add(&Figures::of_worker(w, placed.get(&r.id).copied().unwrap_or(0)), 1),
            Body::Placement(l) => f.add(&Figures::of_placement(l), 1),
            Body::Fill(_) => f.add(&Figures::of_fill(), 1),
            Body::Summary(_) | Body::Matter(_) | Body::MattersSummary(_) | Body::Health(_) => {}
        }
    }
    out
}

/// Expected own matter figures of every office, from the truth.
pub fn expected_matter_figures(
    truth: &std::collections::BTreeMap<RecordId, Record>,
) -> std::collections::BTreeMap<String, crate::matters::MatterFigures> {
    let mut out: std::collections::BTreeMap<String, crate::matters::MatterFigures> = Default::default();
    for r in truth.values() {
        if let Body::Matter(m) = &r.body {
            out.entry(r.origin.to_string()).or_default().add(&crate::matters::MatterFigures::of_matter(m), 1);
        }
    }
    out
}
