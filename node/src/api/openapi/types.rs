//! Schemas of the API's values that are not plain Rust types here: the
//! protocol's ids and closed lists, the protocol's figure structs, and the
//! error body.
//!
//! `jobmesh-protocol` stays free of `utoipa`, so each protocol type gets a
//! stand-in here. Closed lists are built from the protocol's own `ALL` and
//! `as_str`, and id patterns from its limits, so that the spec cannot drift
//! from what the API parses; the stand-ins of figure structs are checked
//! against the protocol's serialized field names by a test in
//! [`super::tests`].

use std::borrow::Cow;

use jobmesh_protocol::matters::{
    Channel as ProtoChannel, MatterCategory as ProtoCategory, MatterStatus as ProtoStatus,
};
use jobmesh_protocol::node_id::{MAX_SEGMENTS, MAX_SEGMENT_LEN};
use jobmesh_protocol::record::{
    KeyGroup as ProtoKeyGroup, Kind, PostingStatus as ProtoPostingStatus, WorkType as ProtoWorkType, MAX_ID_LEN,
};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use crate::api::error::Code;

/// A string schema with a closed list of values.
pub fn enum_schema(description: &str, values: &[&str]) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .enum_values(Some(values.iter().copied()))
        .into()
}

/// A string schema with a pattern and a length bound.
fn pattern_schema(description: &str, pattern: String, max_length: usize, example: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .pattern(Some(pattern))
        .max_length(Some(max_length))
        .examples([example])
        .into()
}

/// One segment of a node id: lowercase ASCII letters, digits and `-`.
fn segment() -> String {
    format!("[a-z0-9-]{{1,{MAX_SEGMENT_LEN}}}")
}

/// The regular expression of a node id (`gz/guiyang/nanming`), unanchored.
pub fn node_id_regex() -> String {
    format!("{s}(/{s}){{0,{n}}}", s = segment(), n = MAX_SEGMENTS - 1)
}

/// Longest node id: every segment at its longest, with the slashes.
pub const MAX_NODE_ID_LEN: usize = MAX_SEGMENTS * MAX_SEGMENT_LEN + MAX_SEGMENTS - 1;

/// The regular expression of a counter-numbered record id of `kind`
/// (`gz.guiyang_p12`), unanchored: the origin's dotted id, `_`, the kind's
/// letter and a number without leading zeros.
pub fn record_id_regex(kind: Kind) -> String {
    format!("{s}(\\.{s}){{0,{n}}}_{k}[1-9][0-9]*", s = segment(), n = MAX_SEGMENTS - 1, k = kind.letter() as char)
}

/// Declares a schema type named `$name` in the spec.
macro_rules! named_schema {
    ($(#[$doc:meta])* $ty:ident = $name:literal, $schema:expr) => {
        $(#[$doc])*
        pub struct $ty;

        impl PartialSchema for $ty {
            fn schema() -> RefOr<Schema> {
                $schema
            }
        }

        impl ToSchema for $ty {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }
        }
    };
}

named_schema!(
    /// A node id, a slash path.
    NodeId = "NodeId",
    pattern_schema(
        "An office's id: up to 8 segments of lowercase ASCII letters, digits and `-`, joined by `/`.",
        format!("^{}$", node_id_regex()),
        MAX_NODE_ID_LEN,
        "gz/guiyang/nanming"
    )
);

named_schema!(
    /// Any record id.
    RecordId = "RecordId",
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(
            "A record id: the origin's dotted node id, `_`, the kind's letter and a suffix (`gz.guiyang_p12`)."
        ))
        .pattern(Some("^[A-Za-z0-9._~-]+$"))
        .max_length(Some(MAX_ID_LEN))
        .examples(["gz.guiyang_p12"])
        .into()
);

/// Declares the id schema of one counter-numbered kind.
macro_rules! kind_id {
    ($ty:ident = $name:literal, $kind:expr, $example:literal) => {
        named_schema!(
            /// The id of a record of one kind.
            $ty = $name,
            pattern_schema(
                concat!("The id of a ", $name, ": the origin's dotted node id, `_`, the kind's letter and a number."),
                format!("^{}$", record_id_regex($kind)),
                MAX_ID_LEN,
                $example
            )
        );
    };
}

kind_id!(PostingId = "PostingId", Kind::Posting, "gz.guiyang_p12");
kind_id!(WorkerId = "WorkerId", Kind::Worker, "gz.guiyang_w3");
kind_id!(PlacementId = "PlacementId", Kind::Placement, "gz.guiyang_l7");
kind_id!(MatterId = "MatterId", Kind::Matter, "gz.guiyang_m5");

named_schema!(
    /// `jobmesh_protocol::record::WorkType`.
    WorkType = "WorkType",
    enum_schema("Kind of work.", &ProtoWorkType::ALL.map(ProtoWorkType::as_str))
);
named_schema!(
    /// `jobmesh_protocol::record::KeyGroup`.
    KeyGroup = "KeyGroup",
    enum_schema("Key group of a job seeker.", &ProtoKeyGroup::ALL.map(ProtoKeyGroup::as_str))
);
named_schema!(
    /// `jobmesh_protocol::record::PostingStatus`.
    PostingStatus = "PostingStatus",
    enum_schema("A posting's lifecycle.", &ProtoPostingStatus::ALL.map(ProtoPostingStatus::as_str))
);
named_schema!(
    /// `jobmesh_protocol::matters::MatterCategory`.
    MatterCategory = "MatterCategory",
    enum_schema("What a service matter is about.", &ProtoCategory::ALL.map(ProtoCategory::as_str))
);
named_schema!(
    /// `jobmesh_protocol::matters::Channel`.
    Channel = "Channel",
    enum_schema("How the person reached the office.", &ProtoChannel::ALL.map(ProtoChannel::as_str))
);
named_schema!(
    /// `jobmesh_protocol::matters::MatterStatus`.
    MatterStatus = "MatterStatus",
    enum_schema("Open or resolved.", &ProtoStatus::ALL.map(ProtoStatus::as_str))
);
named_schema!(
    /// A worker's derived status (see `views::WorkerView`).
    WorkerStatus = "WorkerStatus",
    enum_schema(
        "`placed` once a placement for the worker is held here, else `seeking`.",
        crate::api::views::WORKER_STATUSES
    )
);
named_schema!(
    /// [`Code`]: the error body's machine-readable code.
    ErrorCode = "ErrorCode",
    enum_schema(
        "Machine-readable error code (stable spelling; the page's catalogue of messages is keyed by it).",
        &Code::ALL.iter().map(|c| c.as_str()).collect::<Vec<_>>()
    )
);

/// One problem of a request (see `api::error`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Problem {
    /// The English sentence; for a field it starts with `field: `.
    pub error: String,
    #[schema(value_type = ErrorCode)]
    pub code: (),
    /// The body, query or path field at fault, or `null`.
    #[schema(required)]
    pub field: Option<String>,
    /// What the message mentions (limits, ids, allowed values).
    #[schema(value_type = Object)]
    pub params: (),
}

/// Every 4xx (and 5xx) body (**contract**, see `api::error`): the first
/// problem at the top level, and `errors` listing every problem.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Error {
    /// The English sentence; for a field it starts with `field: `.
    pub error: String,
    #[schema(value_type = ErrorCode)]
    pub code: (),
    /// The body, query or path field at fault, or `null`.
    #[schema(required)]
    pub field: Option<String>,
    /// What the message mentions (limits, ids, allowed values).
    #[schema(value_type = Object)]
    pub params: (),
    /// Every problem, in field order; the top-level keys repeat the first.
    pub errors: Vec<Problem>,
}

/// Stand-ins of the protocol's figure structs, which derive no schema.
/// `super::tests::mirrors_match_the_protocol` checks their fields.
pub mod figures {
    use utoipa::ToSchema;

    /// `jobmesh_protocol::figures::Totals`: the six figures of the contract.
    #[derive(ToSchema)]
    #[allow(dead_code)]
    pub struct Totals {
        /// Postings with status open and remaining > 0.
        pub postings_open: i64,
        /// Sum of remaining positions of those postings.
        pub positions_open: i64,
        /// Fills owned by the office, i.e. placements made there.
        pub positions_filled: i64,
        /// All workers registered there.
        pub workers_registered: i64,
        /// Workers with no placement known for them.
        pub workers_seeking: i64,
        /// Placements made there.
        pub placements: i64,
    }

    /// `jobmesh_protocol::rollup::InFlight`: records by kind, as counts.
    #[derive(ToSchema)]
    #[allow(dead_code)]
    pub struct InFlight {
        pub postings: i64,
        pub workers: i64,
        pub placements: i64,
        pub fills: i64,
    }

    /// `jobmesh_protocol::rollup::Reporting`: counts over the whole subtree,
    /// whatever depth of rows was asked for.
    #[derive(ToSchema)]
    #[allow(dead_code)]
    pub struct Reporting {
        /// Offices with a summary held here.
        pub offices: u64,
        /// Offices known to exist: the topology's subtree, plus any office
        /// that reported or relays a report.
        pub expected: u64,
        pub stale: u64,
        pub missing: u64,
    }

    /// `jobmesh_protocol::figures::Breakdown`.
    #[derive(ToSchema)]
    #[allow(dead_code)]
    pub struct Breakdown {
        pub postings_open: i64,
        pub positions_open: i64,
        pub placements: i64,
    }

    /// `jobmesh_protocol::figures::GroupFigures`.
    #[derive(ToSchema)]
    #[allow(dead_code)]
    pub struct GroupFigures {
        pub workers_registered: i64,
        pub workers_seeking: i64,
        pub placements: i64,
    }

    /// `jobmesh_protocol::matters::MatterCounts`.
    #[derive(ToSchema)]
    #[allow(dead_code)]
    pub struct MatterCounts {
        pub opened: i64,
        pub resolved: i64,
        pub open_now: i64,
    }

    /// `jobmesh_protocol::engine::LinkStats`: a link's counters.
    #[derive(ToSchema)]
    #[allow(dead_code)]
    pub struct LinkStats {
        pub connects: u64,
        pub batches_sent: u64,
        pub records_sent: u64,
        pub batches_applied: u64,
        pub records_applied: u64,
        pub refused: u64,
        pub rewinds: u64,
        pub nacks_sent: u64,
        /// Highest ack from the peer: how far it holds this node's journal.
        pub acked: u64,
        /// This node's checkpoint of the peer's journal.
        pub checkpoint: u64,
        /// Last time (Unix ms) a frame arrived from the peer.
        #[schema(required)]
        pub last_contact: Option<u64>,
        /// Protocol version of the current (or last) connection; 0 if never up.
        pub protocol: u32,
        /// Records sent in backfill frames.
        pub backfilled: u64,
        /// The link is backfilling after the peer's version rose.
        pub backfilling: bool,
    }
}

/// The regular expression of any record id, unanchored: counter-numbered
/// kinds, the two summaries (`_s`, `_t`) and fills (`_f~` and a posting id).
pub fn any_record_id_regex() -> String {
    let origin = format!("{s}(\\.{s}){{0,{n}}}", s = segment(), n = MAX_SEGMENTS - 1);
    let suffixes: Vec<String> = Kind::ALL
        .iter()
        .map(|k| match k {
            Kind::Summary | Kind::MattersSummary | Kind::Health => format!("{}", k.letter() as char),
            Kind::Fill => format!("{}~{}", k.letter() as char, record_id_regex(Kind::Posting)),
            _ => format!("{}[1-9][0-9]*", k.letter() as char),
        })
        .collect();
    format!("{origin}_({})", suffixes.join("|"))
}

/// Query filters: an empty value is the same as leaving the parameter out
/// (web forms send `?key_group=` for "any"), so each filter's schema also
/// admits `""`.
fn filter_enum(description: &str, values: &[&str]) -> RefOr<Schema> {
    let mut all = values.to_vec();
    all.push("");
    enum_schema(description, &all)
}

fn filter_pattern(description: &str, regex: String, max_length: usize) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .pattern(Some(format!("^({regex})?$")))
        .max_length(Some(max_length))
        .into()
}

named_schema!(
    /// A node id filter.
    NodeIdFilter = "NodeIdFilter",
    filter_pattern("A node id; empty is no filter.", node_id_regex(), MAX_NODE_ID_LEN)
);
named_schema!(
    /// A record id cursor (`after`).
    Cursor = "Cursor",
    filter_pattern(
        "A record id (the `next` of the previous page); the page starts after it. Empty is the first page.",
        any_record_id_regex(),
        MAX_ID_LEN
    )
);
named_schema!(
    /// A worker id filter.
    WorkerIdFilter = "WorkerIdFilter",
    filter_pattern("A worker id; empty is no filter.", record_id_regex(Kind::Worker), MAX_ID_LEN)
);
named_schema!(
    /// A posting id filter.
    PostingIdFilter = "PostingIdFilter",
    filter_pattern("A posting id; empty is no filter.", record_id_regex(Kind::Posting), MAX_ID_LEN)
);
named_schema!(
    /// `true` or `false` (also `1` and `0`); empty is not given.
    Flag = "Flag",
    enum_schema("`true` or `false` (also `1`, `0`); empty is the default.", &["true", "false", "1", "0", ""])
);
named_schema!(
    WorkTypeFilter = "WorkTypeFilter",
    filter_enum("A kind of work; empty is no filter.", &ProtoWorkType::ALL.map(ProtoWorkType::as_str))
);
named_schema!(
    KeyGroupFilter = "KeyGroupFilter",
    filter_enum("A key group; empty is no filter.", &ProtoKeyGroup::ALL.map(ProtoKeyGroup::as_str))
);
named_schema!(
    WorkerStatusFilter = "WorkerStatusFilter",
    filter_enum("A worker status; empty is no filter.", crate::api::views::WORKER_STATUSES)
);
named_schema!(
    MatterCategoryFilter = "MatterCategoryFilter",
    filter_enum("A matter category; empty is no filter.", &ProtoCategory::ALL.map(ProtoCategory::as_str))
);
named_schema!(
    ChannelFilter = "ChannelFilter",
    filter_enum("A channel; empty is no filter.", &ProtoChannel::ALL.map(ProtoChannel::as_str))
);
named_schema!(
    MatterStatusFilter = "MatterStatusFilter",
    filter_enum("A matter status; empty is no filter.", &ProtoStatus::ALL.map(ProtoStatus::as_str))
);

named_schema!(
    /// `depth` of `/v1/summary`: any u64 in plain digits.
    Depth = "Depth",
    OneOfBuilder::new()
        .description(Some("Levels below `node`, in plain digits (no sign, no leading zero); empty is all."))
        .item(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)).maximum(Some(u64::MAX)))
        .item(ObjectBuilder::new().schema_type(Type::String).enum_values(Some([""])))
        .into()
);

named_schema!(
    /// The `GET /v1/backup` body.
    BackupFile = "BackupFile",
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
        .content_media_type("application/octet-stream")
        .description(Some(
            "The backup file: `JMBACKUP`, a u32 big-endian length and the manifest as JSON, then the gzip \
             body; see `jobmesh restore`."
        ))
        .into()
);

named_schema!(
    /// `{kind}` of `/v1/import/{kind}`.
    ImportKind = "ImportKind",
    enum_schema("What a file holds.", &["postings", "workers", "matters"])
);
named_schema!(
    /// `lang` of the exports and templates.
    Lang = "Lang",
    filter_enum("Header language; empty is the default (Chinese unless `Accept-Language` says otherwise).", &["zh", "en"])
);
named_schema!(
    /// `table` of `/v1/summary.csv`.
    SummaryTable = "SummaryTable",
    filter_enum(
        "Which table; empty is `offices`.",
        &["offices", "overview", "daily", "by_category", "by_work_type", "by_key_group"]
    )
);
named_schema!(
    /// `from` and `to` of the summary exports.
    DayFilter = "DayFilter",
    OneOfBuilder::new()
        .description(Some("A local day `YYYY-MM-DD`; empty is no bound."))
        .item(ObjectBuilder::new().schema_type(Type::String).format(Some(SchemaFormat::KnownFormat(KnownFormat::Date))))
        .item(ObjectBuilder::new().schema_type(Type::String).enum_values(Some([""])))
        .into()
);
named_schema!(
    /// The body of `POST /v1/import/{kind}`.
    ImportBatch = "ImportBatch",
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(
            "Rows read from a file: each its file line and its cells as text by API field (`external_ref` among them).",
        ))
        .property(
            "rows",
            utoipa::openapi::schema::ArrayBuilder::new()
                .max_items(Some(jobmesh_import::wire::MAX_BATCH_ROWS))
                .items(
                    ObjectBuilder::new()
                        .schema_type(Type::Object)
                        .property(
                            "line",
                            ObjectBuilder::new()
                                .schema_type(Type::Integer)
                                .minimum(Some(0))
                                .maximum(Some(jobmesh_import::wire::MAX_LINE)),
                        )
                        .property(
                            "cells",
                            ObjectBuilder::new().schema_type(Type::Object).additional_properties(Some(
                                ObjectBuilder::new().schema_type(Type::String),
                            )),
                        )
                        .required("line")
                        .required("cells"),
                ),
        )
        .required("rows")
        .into()
);
