//! Writes made at this node (the API's postings, workers, placements and
//! service matters).
//!
//! Each call is one atomic store write; the returned [`Written::gen`] tells
//! the driver when it is durable (`durable_gen() >= gen`), which is when the
//! API may answer 201.

use std::collections::HashMap;

use super::Engine;
use crate::kv::{Kv, StoreError};
use crate::matters::{Channel, Matter, MatterCategory, MatterStatus};
use crate::node_id::NodeId;
use crate::record::{
    Body, Fill, KeyGroup, Kind, Placement, Posting, PostingStatus, Record, RecordError, RecordId, WorkType, Worker,
};
use crate::rules::{self, RuleError};
use crate::store::{self, META_COUNTER};

/// A new posting as the API receives it (already typed).
#[derive(Debug, Clone)]
pub struct NewPosting {
    pub title: String,
    pub employer: String,
    pub category: String,
    pub work_type: WorkType,
    pub positions: u32,
    pub audience: Option<NodeId>,
    pub wage: Option<String>,
    pub location: Option<String>,
    pub valid_until: Option<String>,
}

/// Changes to a posting; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct PostingPatch {
    pub title: Option<String>,
    pub employer: Option<String>,
    pub category: Option<String>,
    pub work_type: Option<WorkType>,
    pub positions: Option<u32>,
    pub wage: Option<Option<String>>,
    pub location: Option<Option<String>>,
    pub valid_until: Option<Option<String>>,
    pub status: Option<PostingStatus>,
}

/// A new worker as the API receives it.
#[derive(Debug, Clone)]
pub struct NewWorker {
    pub name: String,
    pub key_group: KeyGroup,
    pub phone: Option<String>,
    pub skills: Vec<String>,
    pub wanted_work_type: Option<WorkType>,
}

/// A new service matter as the API receives it. A matter settled on the
/// spot (a consultation answered at the desk) is recorded as resolved.
#[derive(Debug, Clone)]
pub struct NewMatter {
    pub category: MatterCategory,
    pub channel: Channel,
    pub key_group: Option<KeyGroup>,
    pub summary: String,
    pub status: MatterStatus,
}

/// Changes to a matter; `None` leaves a field as it is. Resolving sets
/// `resolved_at`; reopening clears it.
#[derive(Debug, Clone, Default)]
pub struct MatterPatch {
    pub category: Option<MatterCategory>,
    pub channel: Option<Channel>,
    pub key_group: Option<Option<KeyGroup>>,
    pub summary: Option<String>,
    pub status: Option<MatterStatus>,
}

/// Longest external reference accepted, in characters.
pub const MAX_EXTERNAL_REF: usize = 128;
/// Most records one keyed write creates (one import batch).
pub const MAX_KEYED_BATCH: usize = 2_000;

/// A record to create under an external reference (an import row, or a
/// POST naming `external_ref`).
#[derive(Debug, Clone)]
pub enum NewRecord {
    Posting(NewPosting),
    Worker(NewWorker),
    Matter(NewMatter),
}

impl NewRecord {
    pub fn kind(&self) -> Kind {
        match self {
            NewRecord::Posting(_) => Kind::Posting,
            NewRecord::Worker(_) => Kind::Worker,
            NewRecord::Matter(_) => Kind::Matter,
        }
    }
}

/// Is `r` usable as an external reference? (Returns the problem if not.)
pub fn check_external_ref(r: &str) -> Result<(), String> {
    if r.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if r.chars().count() > MAX_EXTERNAL_REF {
        return Err(format!("longer than {MAX_EXTERNAL_REF} characters"));
    }
    if r.chars().any(char::is_control) {
        return Err("contains a control character".into());
    }
    Ok(())
}

/// What one keyed creation did: the record now held under the reference,
/// and whether this write created it (false: it existed, nothing changed).
#[derive(Debug, Clone)]
pub struct Keyed {
    pub record: Record,
    pub created: bool,
}

/// Outcomes of a keyed write, one per item in order, and the write
/// generation to wait for (it also covers records that already existed, so
/// an answer about them is never given before they are durable).
#[derive(Debug, Clone)]
pub struct KeyedWritten {
    pub outcomes: Vec<Result<Keyed, WriteError>>,
    pub gen: u64,
}

/// What a local write stored, and the write generation to wait for.
#[derive(Debug, Clone)]
pub struct Written {
    pub records: Vec<Record>,
    pub gen: u64,
}

/// Why a local write was refused. Nothing was stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// A field is invalid (named in the error).
    #[error("{0}")]
    Invalid(String),
    /// A referenced record is not held here.
    #[error("{field} {id:?} is not known at this office")]
    NotFound { field: &'static str, id: String },
    /// Only the origin may change a record.
    #[error("{id} was published by {origin}; only that office may change it")]
    NotOrigin { id: String, origin: NodeId },
    /// The write conflicts with the record's state (withdrawn, no positions).
    #[error("{0}")]
    Conflict(String),
    /// A field breaks a data rule of [`crate::rules`].
    #[error("{field}: {error}")]
    Rule { field: &'static str, error: RuleError },
    /// The worker already holds a placement on this posting (one per pair).
    #[error("worker {worker_id} is already placed on posting {posting_id} (placement {placement_id})")]
    AlreadyPlaced { worker_id: RecordId, posting_id: RecordId, placement_id: RecordId },
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The office was restored from a backup and its own records are still
    /// coming back from its parent; it writes again once they are here.
    #[error(
        "this office was restored from a backup and is getting its records back from its parent; try again shortly"
    )]
    Restoring,
}

impl From<RecordError> for WriteError {
    fn from(e: RecordError) -> Self {
        match e {
            RecordError::Field { field, problem, .. } => WriteError::Invalid(format!("{field}: {problem}")),
            other => WriteError::Invalid(other.to_string()),
        }
    }
}

/// The data rules of [`crate::rules`] for a posting as it will be stored.
fn posting_rules(p: &Posting) -> Result<(), WriteError> {
    let rule = |field: &'static str| move |error: RuleError| WriteError::Rule { field, error };
    rules::check_text(&p.title, true).map_err(rule("title"))?;
    rules::check_text(&p.employer, true).map_err(rule("employer"))?;
    rules::check_text(&p.category, true).map_err(rule("category"))?;
    for (field, v) in [("wage", &p.wage), ("location", &p.location)] {
        if let Some(v) = v {
            rules::check_text(v, false).map_err(rule(field))?;
        }
    }
    Ok(())
}

/// The data rules of [`crate::rules`] for a new worker.
fn worker_rules(w: &Worker) -> Result<(), WriteError> {
    let rule = |field: &'static str| move |error: RuleError| WriteError::Rule { field, error };
    rules::check_text(&w.name, true).map_err(rule("name"))?;
    if let Some(phone) = &w.phone {
        rules::check_phone(phone).map_err(rule("phone"))?;
    }
    for s in &w.skills {
        rules::check_text(s, true).map_err(rule("skills"))?;
    }
    Ok(())
}

impl<K: Kv> Engine<K> {
    fn next_id(&mut self, kind: Kind) -> RecordId {
        self.counter += 1;
        RecordId::numbered(&self.me, kind, self.counter)
    }

    /// Merge locally made records in one atomic write.
    pub(super) fn write_local(&mut self, records: Vec<Record>, now: u64) -> Result<Written, WriteError> {
        self.write_local_with(records, Vec::new(), now)
    }

    /// Merge locally made records and put office-local keys (which are not
    /// records and never replicate) in the same atomic write.
    fn write_local_with(
        &mut self,
        records: Vec<Record>,
        local: Vec<(Vec<u8>, Vec<u8>)>,
        now: u64,
    ) -> Result<Written, WriteError> {
        // Record times are already corrected (see `super::clock`); the
        // engine's own clock is not moved by them.
        let _ = now;
        if self.restoring() {
            return Err(WriteError::Restoring);
        }
        for r in &records {
            r.validate()?;
        }
        let finished = {
            let mut a = store::Applier::new(&self.kv, self.last_seq);
            for r in &records {
                a.merge(r.clone())?;
            }
            for (k, v) in local {
                a.put(k, v);
            }
            a.put(META_COUNTER.to_vec(), self.counter.to_be_bytes().to_vec());
            a.finish()
        };
        self.commit(finished)?;
        Ok(Written { records, gen: self.write_gen })
    }

    /// Publish a posting; its audience defaults to this node's subtree.
    pub fn create_posting(&mut self, p: NewPosting, now: u64) -> Result<Written, WriteError> {
        // Record times are the corrected time (see `clock`).
        let now = self.corrected(now);
        let rec = self.posting_record(p, now)?;
        self.write_local(vec![rec], now)
    }

    /// A new posting record, checked; a refused one gives its id back.
    fn posting_record(&mut self, p: NewPosting, now: u64) -> Result<Record, WriteError> {
        if let Some(date) = &p.valid_until {
            rules::check_valid_until(date, now).map_err(|error| WriteError::Rule { field: "valid_until", error })?;
        }
        let id = self.next_id(Kind::Posting);
        let rec = Record {
            id,
            origin: self.me.clone(),
            version: 1,
            body: Body::Posting(Posting {
                title: p.title,
                employer: p.employer,
                category: p.category,
                work_type: p.work_type,
                positions: p.positions,
                wage: p.wage,
                location: p.location,
                valid_until: p.valid_until,
                status: PostingStatus::Open,
                audience: p.audience.unwrap_or_else(|| self.me.clone()),
                created_at: now,
                updated_at: now,
            }),
        };
        let checked = match &rec.body {
            Body::Posting(p) => posting_rules(p),
            _ => Ok(()),
        };
        if let Err(e) = checked.and_then(|()| rec.validate().map_err(WriteError::from)) {
            self.counter -= 1;
            return Err(e);
        }
        Ok(rec)
    }

    /// Create records under external references, in one atomic write: an
    /// item whose reference was already used here for its kind (before, or
    /// earlier in `items`) yields the record held under it and creates
    /// nothing. The index keys (`store::external_ref_key`) go in the same
    /// batch as the records, and the engine thread runs one write at a
    /// time, so two requests with one reference create one record, and a
    /// crash leaves both the record and its index entry or neither.
    pub fn create_keyed(&mut self, items: Vec<(String, NewRecord)>, now: u64) -> Result<KeyedWritten, WriteError> {
        if items.len() > MAX_KEYED_BATCH {
            return Err(WriteError::Invalid(format!("at most {MAX_KEYED_BATCH} records in one write")));
        }
        let now = self.corrected(now);
        if self.restoring() {
            return Err(WriteError::Restoring);
        }
        let mut seen: HashMap<(Kind, String), usize> = HashMap::new();
        let mut fresh = Vec::new();
        let mut local = Vec::new();
        let mut outcomes: Vec<Result<Keyed, WriteError>> = Vec::with_capacity(items.len());
        for (external_ref, new) in items {
            let kind = new.kind();
            if let Err(problem) = check_external_ref(&external_ref) {
                outcomes.push(Err(WriteError::Invalid(format!("external_ref: {problem}"))));
                continue;
            }
            if let Some(&i) = seen.get(&(kind, external_ref.clone())) {
                let same = outcomes[i].as_ref().map(|k| k.record.clone()).map_err(Clone::clone);
                outcomes.push(same.map(|record| Keyed { record, created: false }));
                continue;
            }
            if let Some(id) = store::record_for_ref(&self.kv, kind, &external_ref)? {
                if let Some(held) = store::get_record(&self.kv, &id)? {
                    seen.insert((kind, external_ref), outcomes.len());
                    outcomes.push(Ok(Keyed { record: held.record, created: false }));
                    continue;
                }
            }
            let rec = match new {
                NewRecord::Posting(p) => self.posting_record(p, now),
                NewRecord::Worker(w) => self.worker_record(w, now),
                NewRecord::Matter(m) => self.matter_record(m, now),
            };
            let rec = match rec {
                Ok(r) => r,
                Err(e) => {
                    outcomes.push(Err(e));
                    continue;
                }
            };
            local.push((store::external_ref_key(kind, &external_ref), rec.id.as_str().as_bytes().to_vec()));
            local.push((store::record_ref_key(&rec.id), external_ref.as_bytes().to_vec()));
            seen.insert((kind, external_ref), outcomes.len());
            fresh.push(rec.clone());
            outcomes.push(Ok(Keyed { record: rec, created: true }));
        }
        let gen = if fresh.is_empty() { self.write_gen } else { self.write_local_with(fresh, local, now)?.gen };
        Ok(KeyedWritten { outcomes, gen })
    }

    /// Change a posting published here.
    pub fn update_posting(&mut self, id: &RecordId, patch: PostingPatch, now: u64) -> Result<Written, WriteError> {
        // Record times are the corrected time (see `clock`).
        let now = self.corrected(now);
        let held = store::get_record(&self.kv, id)?
            .filter(|s| s.record.kind() == Kind::Posting)
            .ok_or_else(|| WriteError::NotFound { field: "posting", id: id.to_string() })?;
        if held.record.origin != self.me {
            return Err(WriteError::NotOrigin { id: id.to_string(), origin: held.record.origin });
        }
        let Body::Posting(mut p) = held.record.body else {
            return Err(WriteError::NotFound { field: "posting", id: id.to_string() });
        };
        let before = p.clone();
        if let Some(v) = patch.title {
            p.title = v;
        }
        if let Some(v) = patch.employer {
            p.employer = v;
        }
        if let Some(v) = patch.category {
            p.category = v;
        }
        if let Some(v) = patch.work_type {
            p.work_type = v;
        }
        if let Some(v) = patch.positions {
            p.positions = v;
        }
        if let Some(v) = patch.wage {
            p.wage = v;
        }
        if let Some(v) = patch.location {
            p.location = v;
        }
        if let Some(v) = patch.valid_until {
            if let Some(date) = &v {
                if p.valid_until.as_ref() != Some(date) {
                    rules::check_valid_until(date, now)
                        .map_err(|error| WriteError::Rule { field: "valid_until", error })?;
                }
            }
            p.valid_until = v;
        }
        if let Some(v) = patch.status {
            p.status = v;
        }
        if p == before {
            // Nothing changed: no new version, nothing to replicate.
            return Ok(Written {
                records: vec![Record {
                    id: id.clone(),
                    origin: self.me.clone(),
                    version: held.record.version,
                    body: Body::Posting(p),
                }],
                gen: self.write_gen,
            });
        }
        posting_rules(&p)?;
        p.updated_at = now.max(p.updated_at);
        let rec = Record {
            id: id.clone(),
            origin: self.me.clone(),
            version: held.record.version + 1,
            body: Body::Posting(p),
        };
        self.write_local(vec![rec], now)
    }

    /// Register a job seeker here.
    pub fn register_worker(&mut self, w: NewWorker, now: u64) -> Result<Written, WriteError> {
        // Record times are the corrected time (see `clock`).
        let now = self.corrected(now);
        let rec = self.worker_record(w, now)?;
        self.write_local(vec![rec], now)
    }

    /// A new worker record, checked; a refused one gives its id back.
    fn worker_record(&mut self, w: NewWorker, now: u64) -> Result<Record, WriteError> {
        let id = self.next_id(Kind::Worker);
        let rec = Record {
            id,
            origin: self.me.clone(),
            version: 1,
            body: Body::Worker(Worker {
                name: w.name,
                key_group: w.key_group,
                phone: w.phone,
                skills: w.skills,
                wanted_work_type: w.wanted_work_type,
                registered_at: now,
            }),
        };
        let checked = match &rec.body {
            Body::Worker(w) => worker_rules(w),
            _ => Ok(()),
        };
        if let Err(e) = checked.and_then(|()| rec.validate().map_err(WriteError::from)) {
            self.counter -= 1;
            return Err(e);
        }
        Ok(rec)
    }

    /// Record that a worker held here took a posting held here: a placement
    /// record and this node's fill for the posting, in one write.
    pub fn record_placement(
        &mut self,
        worker_id: &RecordId,
        posting_id: &RecordId,
        now: u64,
    ) -> Result<Written, WriteError> {
        // Record times are the corrected time (see `clock`).
        let now = self.corrected(now);
        let worker = store::get_record(&self.kv, worker_id)?
            .and_then(|s| match s.record.body {
                Body::Worker(w) => Some((s.record.origin, w)),
                _ => None,
            })
            .ok_or_else(|| WriteError::NotFound { field: "worker_id", id: worker_id.to_string() })?;
        let posting = store::get_record(&self.kv, posting_id)?
            .and_then(|s| match s.record.body {
                Body::Posting(p) => Some((s.record.origin, p)),
                _ => None,
            })
            .ok_or_else(|| WriteError::NotFound { field: "posting_id", id: posting_id.to_string() })?;
        let (worker_office, w) = worker;
        let (posting_origin, p) = posting;
        if p.status != PostingStatus::Open {
            return Err(WriteError::Conflict(format!("posting {posting_id} is {}", p.status.as_str())));
        }
        if rules::is_expired(&p, now) {
            return Err(WriteError::Conflict(format!(
                "posting {posting_id} expired after {}",
                p.valid_until.as_deref().unwrap_or("")
            )));
        }
        // One placement per worker and posting: a second click, or a second
        // office placing the same person on the same job, would count twice.
        if let Some(placement_id) = rules::placement_of(&self.kv, worker_id, posting_id)? {
            return Err(WriteError::AlreadyPlaced {
                worker_id: worker_id.clone(),
                posting_id: posting_id.clone(),
                placement_id,
            });
        }
        let filled = store::filled(&self.kv, posting_id)?;
        if filled >= p.positions {
            return Err(WriteError::Conflict(format!(
                "posting {posting_id} has no positions left as known here ({filled} of {} filled)",
                p.positions
            )));
        }
        let fill_id = RecordId::fill(&self.me, posting_id);
        let (fill_version, own_filled) = match store::get_record(&self.kv, &fill_id)? {
            Some(s) => match s.record.body {
                Body::Fill(f) => (s.record.version, f.filled),
                _ => (s.record.version, 0),
            },
            None => (0, 0),
        };
        let placement_id = self.next_id(Kind::Placement);
        let placement = Record {
            id: placement_id,
            origin: self.me.clone(),
            version: 1,
            body: Body::Placement(Placement {
                worker_id: worker_id.clone(),
                worker_office,
                posting_id: posting_id.clone(),
                posting_origin: posting_origin.clone(),
                category: p.category.clone(),
                work_type: p.work_type,
                key_group: w.key_group,
                placed_at: now,
            }),
        };
        let fill = Record {
            id: fill_id,
            origin: self.me.clone(),
            version: fill_version + 1,
            body: Body::Fill(Fill {
                posting_id: posting_id.clone(),
                posting_origin,
                audience: p.audience.clone(),
                filled: own_filled + 1,
            }),
        };
        self.write_local(vec![placement, fill], now)
    }

    /// Record a service matter handled here.
    pub fn open_matter(&mut self, m: NewMatter, now: u64) -> Result<Written, WriteError> {
        // Record times are the corrected time (see `clock`).
        let now = self.corrected(now);
        let rec = self.matter_record(m, now)?;
        self.write_local(vec![rec], now)
    }

    /// A new matter record, checked; a refused one gives its id back.
    fn matter_record(&mut self, m: NewMatter, now: u64) -> Result<Record, WriteError> {
        let id = self.next_id(Kind::Matter);
        let rec = Record {
            id,
            origin: self.me.clone(),
            version: 1,
            body: Body::Matter(Matter {
                category: m.category,
                channel: m.channel,
                key_group: m.key_group,
                summary: m.summary,
                status: m.status,
                opened_at: now,
                resolved_at: (m.status == MatterStatus::Resolved).then_some(now),
                updated_at: now,
            }),
        };
        if let Err(e) = rec.validate() {
            self.counter -= 1;
            return Err(e.into());
        }
        Ok(rec)
    }

    /// Change a matter recorded here (resolve it, correct its fields).
    pub fn update_matter(&mut self, id: &RecordId, patch: MatterPatch, now: u64) -> Result<Written, WriteError> {
        // Record times are the corrected time (see `clock`).
        let now = self.corrected(now);
        let held = store::get_record(&self.kv, id)?
            .filter(|s| s.record.kind() == Kind::Matter)
            .ok_or_else(|| WriteError::NotFound { field: "matter", id: id.to_string() })?;
        if held.record.origin != self.me {
            return Err(WriteError::NotOrigin { id: id.to_string(), origin: held.record.origin });
        }
        let Body::Matter(mut m) = held.record.body else {
            return Err(WriteError::NotFound { field: "matter", id: id.to_string() });
        };
        let before = m.clone();
        if let Some(v) = patch.category {
            m.category = v;
        }
        if let Some(v) = patch.channel {
            m.channel = v;
        }
        if let Some(v) = patch.key_group {
            m.key_group = v;
        }
        if let Some(v) = patch.summary {
            m.summary = v;
        }
        if let Some(v) = patch.status {
            if v != m.status {
                m.resolved_at = (v == MatterStatus::Resolved).then_some(now.max(m.opened_at));
            }
            m.status = v;
        }
        let version = if m == before { held.record.version } else { held.record.version + 1 };
        if m != before {
            m.updated_at = now.max(m.updated_at);
        }
        let rec = Record { id: id.clone(), origin: self.me.clone(), version, body: Body::Matter(m) };
        if version == held.record.version {
            // Nothing changed: no new version, nothing to replicate.
            return Ok(Written { records: vec![rec], gen: self.write_gen });
        }
        self.write_local(vec![rec], now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::MemKv;
    use crate::matters::{Channel, MatterCategory, MatterStatus};

    fn posting(title: &str) -> NewRecord {
        NewRecord::Posting(NewPosting {
            title: title.into(),
            employer: "贵州钢铁".into(),
            category: "制造业".into(),
            work_type: WorkType::FullTime,
            positions: 3,
            audience: None,
            wage: None,
            location: None,
            valid_until: None,
        })
    }

    #[test]
    fn a_reference_creates_one_record_once() {
        let me = NodeId::parse("gz/guiyang/nanming").unwrap();
        let mut e = Engine::open(me, MemKv::new(), Default::default(), 1_000).unwrap();
        let matter = NewRecord::Matter(NewMatter {
            category: MatterCategory::JobSearch,
            channel: Channel::WalkIn,
            key_group: None,
            summary: "求职咨询".into(),
            status: MatterStatus::Open,
        });
        let first = e
            .create_keyed(
                vec![
                    ("a".into(), posting("焊工")),
                    ("a".into(), posting("焊工 again in the same batch")),
                    ("".into(), posting("no ref")),
                    ("b".into(), posting("")),
                    ("a".into(), matter),
                ],
                2_000,
            )
            .unwrap();
        let o = &first.outcomes;
        assert!(o[0].as_ref().unwrap().created);
        assert!(!o[1].as_ref().unwrap().created);
        assert_eq!(o[0].as_ref().unwrap().record.id, o[1].as_ref().unwrap().record.id);
        assert!(o[2].is_err() && o[3].is_err());
        // References are per kind: a matter may reuse a posting's.
        assert_eq!(o[4].as_ref().unwrap().record.kind(), Kind::Matter);
        let id = o[0].as_ref().unwrap().record.id.clone();
        let seq = e.last_seq();
        let again = e.create_keyed(vec![("a".into(), posting("changed"))], 3_000).unwrap();
        let k = again.outcomes[0].as_ref().unwrap();
        assert!(!k.created && k.record.id == id && k.record.version == 1);
        assert_eq!(e.last_seq(), seq, "a repeated reference writes nothing");
        assert_eq!(store::record_for_ref(e.kv(), Kind::Posting, "a").unwrap(), Some(id.clone()));
        assert_eq!(store::ref_of_record(e.kv(), &id).unwrap().as_deref(), Some("a"));
    }
}
