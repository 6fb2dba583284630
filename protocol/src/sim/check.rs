//! The liveness check after heal: every node holds exactly the records the
//! routing rule gives it, at their latest versions; no acknowledged write is
//! lost; every office's published figures equal the figures computed from
//! the records; and every node's roll-up, the one its API serves, gives for
//! each office of its subtree the sum of the latest summaries there, with
//! every office expected, none missing and none stale.

use std::collections::{BTreeMap, HashMap};

use super::mesh::Mesh;
use super::workload::{expected_figures, expected_matter_figures};
use crate::figures::Figures;
use crate::node_id::NodeId;
use crate::record::{Body, Kind, Record, RecordId};
use crate::rollup::Reporting;
use crate::routing::holds;
use crate::store::{self, prefix_end, StoredRecord};

/// Every record a store holds.
fn all_records<K: crate::kv::Kv>(kv: &K) -> BTreeMap<RecordId, Record> {
    let mut out = BTreeMap::new();
    let mut from = b"r".to_vec();
    let end = prefix_end(b"r");
    loop {
        let page = kv.scan(&from, &end, 4096).unwrap_or_default();
        for (k, v) in &page {
            if let Ok(s) = store::decode::<StoredRecord>(k, v) {
                out.insert(s.record.id.clone(), s.record);
            }
        }
        match page.last() {
            Some((k, _)) if page.len() == 4096 => {
                from = k.clone();
                from.push(0);
            }
            _ => return out,
        }
    }
}

impl Mesh {
    /// An office on the previous release holds only kinds that release
    /// knows: nothing newer was ever sent to it.
    pub fn check_previous_release(&self, i: usize) -> Result<(), String> {
        let Some(e) = self.engine(i) else { return Ok(()) };
        let version = self.speaks(i);
        for (id, r) in all_records(e.kv()) {
            if r.kind().since_protocol() > version {
                return Err(format!("{} speaks protocol {version} but holds {id}, a {}", self.id(i), r.kind().name()));
            }
        }
        Ok(())
    }

    /// The records at their origins: the truth every replica must match.
    pub fn truth(&self) -> BTreeMap<RecordId, Record> {
        let mut truth = BTreeMap::new();
        for i in 0..self.len() {
            let Some(e) = self.engine(i) else { continue };
            for kind in Kind::ALL {
                let prefix = if kind == Kind::Summary {
                    RecordId::summary(self.id(i)).to_string()
                } else if kind == Kind::MattersSummary {
                    RecordId::matters_summary(self.id(i)).to_string()
                } else {
                    RecordId::origin_prefix(self.id(i), kind)
                };
                let mut after: Option<String> = None;
                loop {
                    let page = store::list_records(e.kv(), kind, &prefix, after.as_deref(), 4096).unwrap_or_default();
                    for s in &page {
                        truth.insert(s.record.id.clone(), s.record.clone());
                    }
                    match page.last() {
                        Some(l) if page.len() == 4096 => after = Some(l.record.id.to_string()),
                        _ => break,
                    }
                }
            }
        }
        truth
    }

    /// `Ok` when the mesh has converged; otherwise the first differences.
    pub fn converged(&self) -> Result<(), String> {
        if let Some(i) = (0..self.len()).find(|&i| !self.is_up(i)) {
            return Err(format!("{} is down", self.id(i)));
        }
        let truth = self.truth();
        let mut problems = Vec::new();
        for (id, v) in &self.acked {
            match truth.get(id) {
                None => problems.push(format!("acknowledged write {id} v{v} is lost at its origin")),
                Some(r) if r.version < *v => {
                    problems.push(format!("acknowledged write {id} v{v} went back to v{} at its origin", r.version))
                }
                _ => {}
            }
        }
        for i in 0..self.len() {
            let n = self.id(i);
            let held = all_records(self.engine(i).map(|e| e.kv()).unwrap_or_else(|| unreachable!()));
            for (id, r) in &truth {
                let want = holds(n, &r.route());
                match held.get(id) {
                    Some(_) if !want => {
                        problems.push(format!("{n} holds {id}, which the routing rule does not give it"))
                    }
                    Some(h) if h.version != r.version => {
                        problems.push(format!("{n} holds {id} at v{}, latest is v{}", h.version, r.version))
                    }
                    Some(h) if h != r => {
                        problems.push(format!("{n} holds {id} v{} with a body its origin never wrote", h.version))
                    }
                    None if want => problems.push(format!("{n} lacks {id} v{}", r.version)),
                    _ => {}
                }
                if problems.len() > 8 {
                    return Err(problems.join("\n"));
                }
            }
            for id in held.keys() {
                if !truth.contains_key(id) {
                    problems.push(format!("{n} holds {id}, which its origin does not have"));
                }
            }
        }
        if !problems.is_empty() {
            return Err(problems.join("\n"));
        }
        let rules = rule_violations(&truth, &(0..self.len()).map(|i| self.id(i).clone()).collect::<Vec<_>>(), self.now);
        if !rules.is_empty() {
            return Err(rules.join("\n"));
        }
        // Figures: every office's latest summary equals what its records say.
        let expected = expected_figures(&truth);
        for i in 0..self.len() {
            let n = self.id(i);
            let want = expected.get(n.as_str()).cloned().unwrap_or_default();
            let Some(Record { body: Body::Summary(s), .. }) = truth.get(&RecordId::summary(n)) else {
                return Err(format!("{n} has published no summary"));
            };
            let got = &s.figures;
            if got.totals != want.totals
                || got.holds != want.holds
                || got.by_category != want.by_category
                || got.by_key_group != want.by_key_group
            {
                return Err(format!("{n}: summary says {:?}, records say {:?}", got.totals, want.totals));
            }
        }
        // Matter figures: every office with matters published them truly.
        for (n, want) in expected_matter_figures(&truth) {
            let Ok(id) = crate::node_id::NodeId::parse(&n) else { continue };
            let Some(Record { body: Body::MattersSummary(s), .. }) = truth.get(&RecordId::matters_summary(&id)) else {
                return Err(format!("{n} has matters but published no matters summary"));
            };
            if s.figures.totals != want.totals
                || s.figures.by_category != want.by_category
                || s.figures.by_channel != want.by_channel
                || s.figures.by_key_group != want.by_key_group
                || s.figures.resolve_days != want.resolve_days
            {
                return Err(format!("{n}: matters summary says {:?}, records say {:?}", s.figures.totals, want.totals));
            }
        }
        self.rollups_match(&truth)
    }

    /// Every node's roll-up against the truth's summaries, at every office
    /// of its subtree.
    fn rollups_match(&self, truth: &BTreeMap<RecordId, Record>) -> Result<(), String> {
        // The sum of the latest summaries over each office's subtree.
        let mut sums: HashMap<NodeId, Figures> = HashMap::new();
        for r in truth.values() {
            let Body::Summary(s) = &r.body else { continue };
            let mut cur = Some(r.origin.clone());
            while let Some(a) = cur {
                cur = a.parent();
                sums.entry(a).or_default().add(&s.figures, 1);
            }
        }
        for i in 0..self.len() {
            let n = self.id(i);
            let Some(e) = self.engine(i) else { continue };
            let Some(v) = e.rollup().view(n, None, self.now, u64::MAX / 1000, |c| self.link_connected(self.idx(c)))
            else {
                return Err(format!("{n}: its roll-up does not know itself"));
            };
            let offices = (0..self.len()).filter(|&j| self.id(j).is_in_subtree_of(n)).count();
            let want = Reporting { offices, expected: offices, stale: 0, missing: 0 };
            if v.reporting != want {
                return Err(format!("{n}: roll-up reports {:?}, the mesh has {want:?}", v.reporting));
            }
            for r in truth.values().filter(|r| r.origin.is_in_subtree_of(n)) {
                let Body::Health(h) = &r.body else { continue };
                if e.rollup().health(&r.origin) != Some(h) {
                    return Err(format!(
                        "{n}: roll-up holds health {:?} of {}, its origin {h:?}",
                        e.rollup().health(&r.origin),
                        r.origin
                    ));
                }
            }
            for row in &v.rows {
                let sum = sums.get(&row.node_id).cloned().unwrap_or_default();
                if row.subtree != sum.totals || row.stale {
                    return Err(format!(
                        "{n}: roll-up for {} says {:?} (stale {}), the summaries sum to {:?}",
                        row.node_id, row.subtree, row.stale, sum.totals
                    ));
                }
                if row.node_id == *n && (v.figures.by_category != sum.by_category || v.figures.holds != sum.holds) {
                    return Err(format!("{n}: roll-up breakdowns differ from the sum of the summaries"));
                }
            }
        }
        Ok(())
    }
}

/// The data rules of [`crate::rules`] over the converged records: no open
/// posting past its `valid_until`, every audience an office of the mesh, no
/// office placing one worker twice on one posting, phones and texts as the
/// rules say.
///
/// Two offices that cannot see each other (the worker's county and its city
/// during a partition) may each place the same worker on the same posting:
/// neither knows of the other's placement, and refusing would need a round
/// trip the mesh does not make. The check is what an office can promise:
/// it never records a second placement of a pair it already holds, and it
/// always holds its own.
pub fn rule_violations(
    truth: &BTreeMap<RecordId, Record>,
    offices: &[crate::node_id::NodeId],
    now: u64,
) -> Vec<String> {
    use crate::record::PostingStatus;
    use crate::rules;
    let mut problems = Vec::new();
    let mut pairs: BTreeMap<(&crate::node_id::NodeId, &RecordId, &RecordId), &RecordId> = BTreeMap::new();
    for (id, r) in truth {
        match &r.body {
            Body::Posting(p) => {
                if p.status == PostingStatus::Open && rules::is_expired(p, now) {
                    problems.push(format!("{id} is open past its valid_until {:?}", p.valid_until));
                }
                if !offices.contains(&p.audience) {
                    problems.push(format!("{id} has audience {}, which is no office of the mesh", p.audience));
                }
                for t in [&p.title, &p.employer, &p.category] {
                    if let Err(e) = rules::check_text(t, true) {
                        problems.push(format!("{id}: text {t:?}: {e}"));
                    }
                }
            }
            Body::Worker(w) => {
                if let Some(phone) = &w.phone {
                    if let Err(e) = rules::check_phone(phone) {
                        problems.push(format!("{id}: {e}"));
                    }
                }
            }
            Body::Placement(l) => {
                if let Some(first) = pairs.insert((&r.origin, &l.worker_id, &l.posting_id), id) {
                    problems.push(format!(
                        "worker {} is placed twice on posting {}: {first} and {id}",
                        l.worker_id, l.posting_id
                    ));
                }
            }
            _ => {}
        }
    }
    problems.truncate(8);
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node_id::NodeId;
    use crate::record::{KeyGroup, Placement, WorkType};

    #[test]
    fn a_double_placement_is_a_violation() {
        let office = NodeId::parse("gz").unwrap();
        let w = RecordId::numbered(&office, Kind::Worker, 1);
        let p = RecordId::numbered(&office, Kind::Posting, 2);
        let placement = |n| Record {
            id: RecordId::numbered(&office, Kind::Placement, n),
            origin: office.clone(),
            version: 1,
            body: Body::Placement(Placement {
                worker_id: w.clone(),
                worker_office: office.clone(),
                posting_id: p.clone(),
                posting_origin: office.clone(),
                category: "c".into(),
                work_type: WorkType::OddJob,
                key_group: KeyGroup::Other,
                placed_at: 0,
            }),
        };
        let mut truth: BTreeMap<RecordId, Record> = [placement(3)].into_iter().map(|r| (r.id.clone(), r)).collect();
        assert!(rule_violations(&truth, std::slice::from_ref(&office), 0).is_empty());
        let second = placement(4);
        truth.insert(second.id.clone(), second);
        let v = rule_violations(&truth, std::slice::from_ref(&office), 0);
        assert!(v.len() == 1 && v[0].contains("placed twice"), "{v:?}");
    }
}
