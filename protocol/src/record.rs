//! Records: the kinds the mesh replicates, their ids, and the merge rule.
//!
//! Every record has exactly one writer, its origin; only the origin raises a
//! record's version. Merge keeps the higher version, so replicas converge
//! whatever the order, loss or duplication of messages. Two different bodies
//! under one version can only come from a bug or a corrupted store and are
//! reported, never silently resolved.
//!
//! These types travel on the wire inside [`crate::wire::FrameV1`] and are
//! stored with bincode: keep them plain (no `skip`, `flatten`, `untagged`).
//! A shipped field is never removed or reordered; a new kind is a new variant
//! at the end.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::figures::Figures;
pub use crate::health::Health;
pub use crate::matters::{Matter, MattersSummary};
use crate::node_id::{NodeId, NodeIdError};

/// Longest free-text field (title, employer, wage, …), in bytes.
pub const MAX_TEXT: usize = 512;
/// Most skills on a worker.
pub const MAX_SKILLS: usize = 32;
/// Most positions on one posting.
pub const MAX_POSITIONS: u32 = 100_000;
/// Longest record id, in bytes.
pub const MAX_ID_LEN: usize = 1200;
/// Most entries in one breakdown map of a summary.
pub const MAX_BREAKDOWN: usize = 512;

/// The record kinds. The single letter is part of the id and of store keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Posting,
    Fill,
    Worker,
    Placement,
    Summary,
    /// A service matter (protocol 2).
    Matter,
    /// One office's matter figures (protocol 2).
    MattersSummary,
    /// One office's health report: certificate, clock, release (protocol 2).
    Health,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::Posting,
        Kind::Fill,
        Kind::Worker,
        Kind::Placement,
        Kind::Summary,
        Kind::Matter,
        Kind::MattersSummary,
        Kind::Health,
    ];

    /// The first protocol version whose peers can decode this kind. A link
    /// that negotiated an older version never carries it: such records wait
    /// in the journal until the peer upgrades.
    pub fn since_protocol(self) -> u32 {
        match self {
            Kind::Posting | Kind::Fill | Kind::Worker | Kind::Placement | Kind::Summary => 1,
            Kind::Matter | Kind::MattersSummary | Kind::Health => 2,
        }
    }

    /// The letter used in ids and store keys.
    pub fn letter(self) -> u8 {
        match self {
            Kind::Posting => b'p',
            Kind::Fill => b'f',
            Kind::Worker => b'w',
            Kind::Placement => b'l',
            Kind::Summary => b's',
            Kind::Matter => b'm',
            Kind::MattersSummary => b't',
            Kind::Health => b'h',
        }
    }

    pub fn from_letter(c: u8) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.letter() == c)
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Posting => "posting",
            Kind::Fill => "fill",
            Kind::Worker => "worker",
            Kind::Placement => "placement",
            Kind::Summary => "summary",
            Kind::Matter => "matter",
            Kind::MattersSummary => "matters_summary",
            Kind::Health => "health",
        }
    }
}

/// Why a string is not a record id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordIdError {
    #[error("record id {0:?} is empty or longer than {MAX_ID_LEN} bytes")]
    Length(String),
    #[error("record id {0:?} has a character that is not URL-safe (letters, digits, '-', '.', '_', '~')")]
    Character(String),
    #[error("record id {0:?} has no '_' between origin and kind")]
    NoKind(String),
    #[error("record id {id:?}: origin part is not a node id: {source}")]
    Origin { id: String, source: NodeIdError },
    #[error("record id {0:?}: unknown kind letter")]
    UnknownKind(String),
    #[error("record id {0:?}: malformed suffix for its kind")]
    Suffix(String),
}

/// A record id: `{origin with '/' as '.'}_{kind letter}{suffix}`, URL-safe,
/// unique across the tree (origin plus the origin's counter) and stable.
/// Fills are the exception that proves the rule: a fill is "positions filled
/// at node N for posting P", one per pair, so its id is derived from the pair
/// (`{N}_f~{P}`) and every node can compute it.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RecordId(String);

impl RecordId {
    pub fn parse(s: &str) -> Result<RecordId, RecordIdError> {
        if s.is_empty() || s.len() > MAX_ID_LEN {
            return Err(RecordIdError::Length(s.chars().take(64).collect()));
        }
        if !s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)) {
            return Err(RecordIdError::Character(s.chars().take(64).collect()));
        }
        let (origin, rest) = s.split_once('_').ok_or_else(|| RecordIdError::NoKind(s.to_owned()))?;
        NodeId::from_dotted(origin).map_err(|source| RecordIdError::Origin { id: s.to_owned(), source })?;
        let kind =
            rest.bytes().next().and_then(Kind::from_letter).ok_or_else(|| RecordIdError::UnknownKind(s.to_owned()))?;
        let suffix = &rest[1..];
        let ok = match kind {
            Kind::Summary | Kind::MattersSummary | Kind::Health => suffix.is_empty(),
            Kind::Fill => suffix
                .strip_prefix('~')
                .map(|p| RecordId::parse(p).map(|p| p.kind() == Kind::Posting).unwrap_or(false))
                .unwrap_or(false),
            _ => !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit()) && !suffix.starts_with('0'),
        };
        if !ok {
            return Err(RecordIdError::Suffix(s.to_owned()));
        }
        Ok(RecordId(s.to_owned()))
    }

    /// The id of a counter-numbered record (posting, worker, placement).
    pub fn numbered(origin: &NodeId, kind: Kind, n: u64) -> RecordId {
        debug_assert!(matches!(kind, Kind::Posting | Kind::Worker | Kind::Placement | Kind::Matter));
        RecordId(format!("{}_{}{}", origin.dotted(), kind.letter() as char, n))
    }

    /// The id of the fill that node `at` owns for `posting`.
    pub fn fill(at: &NodeId, posting: &RecordId) -> RecordId {
        RecordId(format!("{}_f~{}", at.dotted(), posting.0))
    }

    /// The id of `origin`'s summary record.
    pub fn summary(origin: &NodeId) -> RecordId {
        RecordId(format!("{}_s", origin.dotted()))
    }

    /// The id of `origin`'s matters summary record.
    pub fn matters_summary(origin: &NodeId) -> RecordId {
        RecordId(format!("{}_t", origin.dotted()))
    }

    /// The id of `origin`'s health report.
    pub fn health(origin: &NodeId) -> RecordId {
        RecordId(format!("{}_h", origin.dotted()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The origin encoded in the id (ids are validated on construction).
    pub fn origin(&self) -> NodeId {
        let (origin, _) = self.0.split_once('_').unwrap_or((&self.0, ""));
        NodeId::from_dotted(origin).unwrap_or_else(|_| unreachable!("record ids are validated"))
    }

    /// The kind encoded in the id.
    pub fn kind(&self) -> Kind {
        let (_, rest) = self.0.split_once('_').unwrap_or(("", "s"));
        Kind::from_letter(rest.as_bytes()[0]).unwrap_or(Kind::Summary)
    }

    /// The prefix shared by every id of `kind` written by `origin`.
    pub fn origin_prefix(origin: &NodeId, kind: Kind) -> String {
        format!("{}_{}", origin.dotted(), kind.letter() as char)
    }
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordId({})", self.0)
    }
}

impl TryFrom<String> for RecordId {
    type Error = RecordIdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        RecordId::parse(&s)
    }
}

impl From<RecordId> for String {
    fn from(id: RecordId) -> String {
        id.0
    }
}

/// Kinds of work (**contract** spelling in JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkType {
    FullTime,
    PartTime,
    OddJob,
    Temporary,
}

impl WorkType {
    pub const ALL: [WorkType; 4] = [WorkType::FullTime, WorkType::PartTime, WorkType::OddJob, WorkType::Temporary];
    pub fn as_str(self) -> &'static str {
        match self {
            WorkType::FullTime => "full_time",
            WorkType::PartTime => "part_time",
            WorkType::OddJob => "odd_job",
            WorkType::Temporary => "temporary",
        }
    }
    pub fn parse(s: &str) -> Option<WorkType> {
        WorkType::ALL.into_iter().find(|w| w.as_str() == s)
    }
}

/// Key groups of job seekers the service reports on (**contract**).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyGroup {
    CollegeGraduate,
    MigrantWorker,
    ExServiceman,
    RuralLabor,
    Disabled,
    Other,
}

impl KeyGroup {
    pub const ALL: [KeyGroup; 6] = [
        KeyGroup::CollegeGraduate,
        KeyGroup::MigrantWorker,
        KeyGroup::ExServiceman,
        KeyGroup::RuralLabor,
        KeyGroup::Disabled,
        KeyGroup::Other,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            KeyGroup::CollegeGraduate => "college_graduate",
            KeyGroup::MigrantWorker => "migrant_worker",
            KeyGroup::ExServiceman => "ex_serviceman",
            KeyGroup::RuralLabor => "rural_labor",
            KeyGroup::Disabled => "disabled",
            KeyGroup::Other => "other",
        }
    }
    pub fn parse(s: &str) -> Option<KeyGroup> {
        KeyGroup::ALL.into_iter().find(|w| w.as_str() == s)
    }
}

/// A posting's lifecycle (**contract** spelling in JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PostingStatus {
    Open,
    Withdrawn,
    Closed,
}

impl PostingStatus {
    pub const ALL: [PostingStatus; 3] = [PostingStatus::Open, PostingStatus::Withdrawn, PostingStatus::Closed];
    pub fn as_str(self) -> &'static str {
        match self {
            PostingStatus::Open => "open",
            PostingStatus::Withdrawn => "withdrawn",
            PostingStatus::Closed => "closed",
        }
    }
    pub fn parse(s: &str) -> Option<PostingStatus> {
        PostingStatus::ALL.into_iter().find(|w| w.as_str() == s)
    }
}

/// A job offer. The audience is fixed at creation: changing it would leave
/// copies at offices that no longer should hold the posting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Posting {
    pub title: String,
    pub employer: String,
    pub category: String,
    pub work_type: WorkType,
    pub positions: u32,
    pub wage: Option<String>,
    pub location: Option<String>,
    /// ISO date `YYYY-MM-DD`.
    pub valid_until: Option<String>,
    pub status: PostingStatus,
    pub audience: NodeId,
    /// Unix milliseconds at the origin when first stored.
    pub created_at: u64,
    /// Unix milliseconds at the origin when this version was stored.
    pub updated_at: u64,
}

impl Posting {
    /// Positions not yet filled, given the fills known here (`filled`).
    pub fn remaining(&self, filled: u32) -> u32 {
        self.positions.saturating_sub(filled)
    }

    /// The one "open posting" rule, for the figures, the API's views and
    /// its `?open=` filter: status open and positions left.
    pub fn is_open(&self, filled: u32) -> bool {
        self.status == PostingStatus::Open && self.remaining(filled) > 0
    }
}

/// Positions filled at the fill's origin for one posting: a counter the
/// origin owns. It carries its posting's origin and audience so that it is
/// routed to every node that holds the posting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fill {
    pub posting_id: RecordId,
    pub posting_origin: NodeId,
    pub audience: NodeId,
    pub filled: u32,
}

/// A job seeker registered at an office.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Worker {
    pub name: String,
    pub key_group: KeyGroup,
    pub phone: Option<String>,
    pub skills: Vec<String>,
    pub wanted_work_type: Option<WorkType>,
    pub registered_at: u64,
}

/// Worker W took posting P, recorded at the placement's origin (W's office or
/// an ancestor of it). Copies of the posting's category and work type and of
/// the worker's key group let figures break placements down without lookups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    pub worker_id: RecordId,
    pub worker_office: NodeId,
    pub posting_id: RecordId,
    pub posting_origin: NodeId,
    pub category: String,
    pub work_type: WorkType,
    pub key_group: KeyGroup,
    pub placed_at: u64,
}

/// One node's own figures as it made them at `generated_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub generated_at: u64,
    pub figures: Figures,
}

/// What a record is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    Posting(Posting),
    Fill(Fill),
    Worker(Worker),
    Placement(Placement),
    Summary(Summary),
    /// Added in protocol 2: never sent to a peer that negotiated 1.
    Matter(Matter),
    /// Added in protocol 2: never sent to a peer that negotiated 1.
    MattersSummary(MattersSummary),
    /// Added in protocol 2: never sent to a peer that negotiated 1.
    Health(Health),
}

impl Body {
    pub fn kind(&self) -> Kind {
        match self {
            Body::Posting(_) => Kind::Posting,
            Body::Fill(_) => Kind::Fill,
            Body::Worker(_) => Kind::Worker,
            Body::Placement(_) => Kind::Placement,
            Body::Summary(_) => Kind::Summary,
            Body::Matter(_) => Kind::Matter,
            Body::MattersSummary(_) => Kind::MattersSummary,
            Body::Health(_) => Kind::Health,
        }
    }
}

/// One version of one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub id: RecordId,
    pub origin: NodeId,
    pub version: u64,
    pub body: Body,
}

/// Where a record goes: its origin, audience (for postings and fills) and
/// home (fills: the posting's origin; placements: the worker's office).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteMeta {
    pub origin: NodeId,
    pub audience: Option<NodeId>,
    pub home: NodeId,
}

/// Why a record is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("record {id}: version must be at least 1")]
    ZeroVersion { id: RecordId },
    #[error("record {id}: origin {origin} does not match the id")]
    OriginMismatch { id: RecordId, origin: NodeId },
    #[error("record {id}: body is a {body} but the id says {id_kind}")]
    KindMismatch { id: RecordId, body: &'static str, id_kind: &'static str },
    #[error("record {id}: field {field}: {problem}")]
    Field { id: RecordId, field: &'static str, problem: String },
}

impl Record {
    pub fn kind(&self) -> Kind {
        self.body.kind()
    }

    pub fn route(&self) -> RouteMeta {
        let (audience, home) = match &self.body {
            Body::Posting(p) => (Some(p.audience.clone()), self.origin.clone()),
            Body::Fill(f) => (Some(f.audience.clone()), f.posting_origin.clone()),
            Body::Placement(l) => (None, l.worker_office.clone()),
            Body::Worker(_) | Body::Summary(_) | Body::Matter(_) | Body::MattersSummary(_) | Body::Health(_) => {
                (None, self.origin.clone())
            }
        };
        RouteMeta { origin: self.origin.clone(), audience, home }
    }

    /// Check everything a receiver can check without other records: id,
    /// origin and kind agree, and every field is within its limits.
    pub fn validate(&self) -> Result<(), RecordError> {
        let id = &self.id;
        let field = |field: &'static str, problem: String| RecordError::Field { id: id.clone(), field, problem };
        if self.version == 0 {
            return Err(RecordError::ZeroVersion { id: id.clone() });
        }
        if id.origin() != self.origin {
            return Err(RecordError::OriginMismatch { id: id.clone(), origin: self.origin.clone() });
        }
        if id.kind() != self.kind() {
            return Err(RecordError::KindMismatch {
                id: id.clone(),
                body: self.kind().name(),
                id_kind: id.kind().name(),
            });
        }
        let text = |name: &'static str, s: &str, required: bool| -> Result<(), RecordError> {
            if s.len() > MAX_TEXT {
                return Err(field(name, format!("longer than {MAX_TEXT} bytes")));
            }
            if required && s.trim().is_empty() {
                return Err(field(name, "must not be empty".into()));
            }
            Ok(())
        };
        match &self.body {
            Body::Posting(p) => {
                text("title", &p.title, true)?;
                text("employer", &p.employer, true)?;
                text("category", &p.category, true)?;
                for (name, v) in [("wage", &p.wage), ("location", &p.location)] {
                    if let Some(v) = v {
                        text(name, v, false)?;
                    }
                }
                if let Some(v) = &p.valid_until {
                    if !crate::time::is_iso_date(v) {
                        return Err(field("valid_until", format!("{v:?} is not a date YYYY-MM-DD")));
                    }
                }
                if p.positions == 0 || p.positions > MAX_POSITIONS {
                    return Err(field("positions", format!("must be 1..={MAX_POSITIONS}")));
                }
            }
            Body::Fill(f) => {
                if *id != RecordId::fill(&self.origin, &f.posting_id) {
                    return Err(field("posting_id", "does not match the fill's id".into()));
                }
                if f.posting_id.origin() != f.posting_origin {
                    return Err(field("posting_origin", "does not match the posting id".into()));
                }
            }
            Body::Worker(w) => {
                text("name", &w.name, true)?;
                if let Some(p) = &w.phone {
                    text("phone", p, false)?;
                }
                if w.skills.len() > MAX_SKILLS {
                    return Err(field("skills", format!("more than {MAX_SKILLS}")));
                }
                for s in &w.skills {
                    text("skills", s, true)?;
                }
            }
            Body::Placement(l) => {
                if l.worker_id.kind() != Kind::Worker || l.worker_id.origin() != l.worker_office {
                    return Err(field("worker_id", "is not a worker of worker_office".into()));
                }
                if l.posting_id.kind() != Kind::Posting || l.posting_id.origin() != l.posting_origin {
                    return Err(field("posting_id", "is not a posting of posting_origin".into()));
                }
                if !l.worker_office.is_in_subtree_of(&self.origin) {
                    return Err(field("worker_office", "is not the placing office or below it".into()));
                }
                text("category", &l.category, true)?;
            }
            Body::Summary(s) => {
                if *id != RecordId::summary(&self.origin) {
                    return Err(field("id", "is not the origin's summary id".into()));
                }
                s.figures.validate().map_err(|p| field("figures", p))?;
            }
            Body::Matter(m) => m.validate().map_err(|(name, p)| field(name, p))?,
            Body::MattersSummary(s) => {
                if *id != RecordId::matters_summary(&self.origin) {
                    return Err(field("id", "is not the origin's matters summary id".into()));
                }
                s.figures.validate().map_err(|p| field("figures", p))?;
            }
            Body::Health(h) => {
                if *id != RecordId::health(&self.origin) {
                    return Err(field("id", "is not the origin's health report id".into()));
                }
                h.validate().map_err(|(name, p)| field(name, p))?;
            }
        }
        Ok(())
    }
}

/// What merging an incoming version into what a node holds does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merge {
    /// Not held yet: store it.
    Insert,
    /// Newer than what is held: replace.
    Replace,
    /// The same version and body: nothing to do (a duplicate).
    Duplicate,
    /// Older than what is held: nothing to do.
    Stale,
    /// Same version, different body: corruption or a second writer.
    Conflict,
}

impl Merge {
    pub fn changes(self) -> bool {
        matches!(self, Merge::Insert | Merge::Replace)
    }
}

/// The merge rule: keep the higher version.
pub fn merge(held: Option<&Record>, incoming: &Record) -> Merge {
    match held {
        None => Merge::Insert,
        Some(h) if incoming.version > h.version => Merge::Replace,
        Some(h) if incoming.version < h.version => Merge::Stale,
        Some(h) if h == incoming => Merge::Duplicate,
        Some(_) => Merge::Conflict,
    }
}
