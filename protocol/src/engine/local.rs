//! Writes made at this node (the API's postings, workers, placements and
//! service matters).
//!
//! Each call is one atomic store write; the returned [`Written::gen`] tells
//! the driver when it is durable (`durable_gen() >= gen`), which is when the
//! API may answer 201.

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

    /// Merge locally made records in one atomic write. Their times are
    /// already corrected (see [`super::clock`]); the engine's own clock is
    /// not moved by them.
    pub(super) fn write_local(&mut self, records: Vec<Record>) -> Result<Written, WriteError> {
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
        self.write_local(vec![rec])
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
        self.write_local(vec![rec])
    }

    /// Register a job seeker here.
    pub fn register_worker(&mut self, w: NewWorker, now: u64) -> Result<Written, WriteError> {
        // Record times are the corrected time (see `clock`).
        let now = self.corrected(now);
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
        self.write_local(vec![rec])
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
        self.write_local(vec![placement, fill])
    }

    /// Record a service matter handled here.
    pub fn open_matter(&mut self, m: NewMatter, now: u64) -> Result<Written, WriteError> {
        // Record times are the corrected time (see `clock`).
        let now = self.corrected(now);
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
        self.write_local(vec![rec])
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
        self.write_local(vec![rec])
    }
}
