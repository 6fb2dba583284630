//! Records → rows: which table each record kind lands in, its columns, and
//! the statement that writes a batch of rows in one round trip.
//!
//! A table is described once ([`Table`]); from that description come the
//! bulk statement (`INSERT … SELECT FROM unnest($1, $2, …)`, one array per
//! column), the check that the live table still has every column
//! ([`super::schema::verify`]), and the test that the migrations create
//! exactly these columns. Adding a record kind means a migration that
//! creates its table, a [`Table`] here, and an arm in [`rows_of`] (the
//! `match` on the record body is exhaustive, so a new kind does not compile
//! until it has one).

use jobmesh_protocol::record::{Body, Record};
use jobmesh_protocol::time::day_to_iso;
use serde_json::{json, Map, Value};
use tokio_postgres::types::ToSql;

/// How a column is carried in the bulk statement and stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColType {
    Text,
    Int4,
    Int8,
    /// Unix milliseconds on the wire, `timestamptz` in the table.
    Time,
    /// As [`ColType::Time`], and may be null.
    TimeOpt,
    /// `YYYY-MM-DD` text on the wire, `date` in the table.
    Date,
    /// A JSON array of strings on the wire, `text[]` in the table (arrays
    /// of arrays would flatten in `unnest`).
    TextArray,
    Json,
    Bool,
}

impl ColType {
    /// The array type of the statement's parameter.
    fn param_type(self) -> &'static str {
        match self {
            ColType::Text | ColType::Date => "text[]",
            ColType::Int4 => "int4[]",
            ColType::Int8 | ColType::Time | ColType::TimeOpt => "int8[]",
            ColType::TextArray | ColType::Json => "jsonb[]",
            ColType::Bool => "bool[]",
        }
    }

    /// `information_schema.columns.data_type` of the stored column.
    pub fn data_type(self) -> &'static str {
        match self {
            ColType::Text => "text",
            ColType::Int4 => "integer",
            ColType::Int8 => "bigint",
            ColType::Time | ColType::TimeOpt => "timestamp with time zone",
            ColType::Date => "date",
            ColType::TextArray => "ARRAY",
            ColType::Json => "jsonb",
            ColType::Bool => "boolean",
        }
    }

    fn select(self, col: &str) -> String {
        match self {
            ColType::Time | ColType::TimeOpt => format!("to_timestamp(u.{col} / 1000.0)"),
            ColType::Date => format!("u.{col}::date"),
            ColType::TextArray => format!("ARRAY(SELECT jsonb_array_elements_text(u.{col}))"),
            _ => format!("u.{col}"),
        }
    }
}

/// One column of a mirrored table.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub ty: ColType,
}

/// What a row does when its key is already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnConflict {
    /// Keyed by record id; a row is replaced only by a higher version.
    NewerVersion,
    /// Keyed by `(origin, version)`: one row per version, written once.
    Keep,
}

/// A mirrored table.
#[derive(Debug)]
pub struct Table {
    pub name: &'static str,
    pub columns: &'static [Column],
    pub on_conflict: OnConflict,
}

const fn c(name: &'static str, ty: ColType) -> Column {
    Column { name, ty }
}

use ColType::*;

/// Leading columns of every record table.
macro_rules! record_columns {
    ($($rest:expr),* $(,)?) => {
        &[c("id", Text), c("origin", Text), c("version", Int8), $($rest,)* c("received_at", Time)]
    };
}

pub static POSTINGS: Table = Table {
    name: "postings",
    columns: record_columns![
        c("title", Text),
        c("employer", Text),
        c("category", Text),
        c("work_type", Text),
        c("positions", Int4),
        c("wage", Text),
        c("location", Text),
        c("valid_until", Date),
        c("status", Text),
        c("audience", Text),
        c("created_at", Time),
        c("updated_at", Time),
    ],
    on_conflict: OnConflict::NewerVersion,
};

pub static FILLS: Table = Table {
    name: "fills",
    columns: record_columns![c("posting_id", Text), c("posting_origin", Text), c("audience", Text), c("filled", Int4)],
    on_conflict: OnConflict::NewerVersion,
};

pub static WORKERS: Table = Table {
    name: "workers",
    columns: record_columns![
        c("name", Text),
        c("key_group", Text),
        c("phone", Text),
        c("skills", TextArray),
        c("wanted_work_type", Text),
        c("registered_at", Time),
    ],
    on_conflict: OnConflict::NewerVersion,
};

pub static PLACEMENTS: Table = Table {
    name: "placements",
    columns: record_columns![
        c("worker_id", Text),
        c("worker_office", Text),
        c("posting_id", Text),
        c("posting_origin", Text),
        c("category", Text),
        c("work_type", Text),
        c("key_group", Text),
        c("placed_at", Time),
    ],
    on_conflict: OnConflict::NewerVersion,
};

/// The figures columns shared by the latest summaries and their history.
macro_rules! summary_columns {
    () => {
        record_columns![
            c("generated_at", Time),
            c("postings_open", Int8),
            c("positions_open", Int8),
            c("positions_filled", Int8),
            c("workers_registered", Int8),
            c("workers_seeking", Int8),
            c("placements", Int8),
            c("figures", Json),
        ]
    };
}

pub static MATTERS: Table = Table {
    name: "matters",
    columns: record_columns![
        c("category", Text),
        c("channel", Text),
        c("key_group", Text),
        c("summary", Text),
        c("status", Text),
        c("opened_at", Time),
        c("resolved_at", TimeOpt),
        c("updated_at", Time),
    ],
    on_conflict: OnConflict::NewerVersion,
};

/// The figures columns shared by the latest matters summaries and their
/// history.
macro_rules! matters_summary_columns {
    () => {
        record_columns![
            c("generated_at", Time),
            c("opened", Int8),
            c("resolved", Int8),
            c("open_now", Int8),
            c("holds", Int8),
            c("figures", Json),
        ]
    };
}

/// Each office's latest matters summary.
pub static MATTERS_SUMMARIES: Table =
    Table { name: "matters_summaries", columns: matters_summary_columns!(), on_conflict: OnConflict::NewerVersion };

/// Every matters summary version the sink read, once.
pub static MATTERS_SUMMARIES_HISTORY: Table =
    Table { name: "matters_summaries_history", columns: matters_summary_columns!(), on_conflict: OnConflict::Keep };

/// Each office's latest summary.
pub static SUMMARIES: Table =
    Table { name: "summaries", columns: summary_columns!(), on_conflict: OnConflict::NewerVersion };

/// Every summary version the sink read, once.
pub static SUMMARIES_HISTORY: Table =
    Table { name: "summaries_history", columns: summary_columns!(), on_conflict: OnConflict::Keep };

/// Every mirrored table, in the order a batch writes them.
pub static TABLES: [&Table; 9] = [
    &POSTINGS,
    &FILLS,
    &WORKERS,
    &PLACEMENTS,
    &SUMMARIES,
    &SUMMARIES_HISTORY,
    &MATTERS,
    &MATTERS_SUMMARIES,
    &MATTERS_SUMMARIES_HISTORY,
];

/// The offices table: from the topology, and every origin seen.
pub static OFFICES: Table = Table {
    name: "offices",
    columns: &[
        c("node_id", Text),
        c("parent", Text),
        c("depth", Int4),
        c("tier", Text),
        c("city", Text),
        c("name", Text),
        c("name_zh", Text),
        c("in_topology", Bool),
        c("received_at", Time),
    ],
    on_conflict: OnConflict::NewerVersion,
};

/// One value of one row.
#[derive(Debug, Clone)]
pub enum Val {
    Text(Option<String>),
    Int4(i32),
    Int8(i64),
    Ms(u64),
    MsOpt(Option<u64>),
    Date(Option<String>),
    Json(Value),
    Bool(bool),
}

/// The rows of one batch for one table, as column arrays.
pub struct Rows {
    pub table: &'static Table,
    cols: Vec<ColumnValues>,
    len: usize,
}

enum ColumnValues {
    Text(Vec<Option<String>>),
    Int4(Vec<i32>),
    Int8(Vec<i64>),
    Int8Opt(Vec<Option<i64>>),
    Json(Vec<Value>),
    Bool(Vec<bool>),
}

impl Rows {
    pub fn new(table: &'static Table) -> Rows {
        let cols = table
            .columns
            .iter()
            .map(|c| match c.ty {
                Text | Date => ColumnValues::Text(Vec::new()),
                Int4 => ColumnValues::Int4(Vec::new()),
                Int8 | Time => ColumnValues::Int8(Vec::new()),
                TimeOpt => ColumnValues::Int8Opt(Vec::new()),
                TextArray | Json => ColumnValues::Json(Vec::new()),
                Bool => ColumnValues::Bool(Vec::new()),
            })
            .collect();
        Rows { table, cols, len: 0 }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Append a row; `vals` are in the table's column order.
    pub fn push(&mut self, vals: Vec<Val>) {
        debug_assert_eq!(vals.len(), self.cols.len(), "row of {}", self.table.name);
        for (col, v) in self.cols.iter_mut().zip(vals) {
            match (col, v) {
                (ColumnValues::Text(a), Val::Text(s) | Val::Date(s)) => a.push(s),
                (ColumnValues::Int4(a), Val::Int4(n)) => a.push(n),
                (ColumnValues::Int8(a), Val::Int8(n)) => a.push(n),
                (ColumnValues::Int8(a), Val::Ms(n)) => a.push(i64::try_from(n).unwrap_or(i64::MAX)),
                (ColumnValues::Int8Opt(a), Val::MsOpt(n)) => a.push(n.map(|n| i64::try_from(n).unwrap_or(i64::MAX))),
                (ColumnValues::Json(a), Val::Json(j)) => a.push(j),
                (ColumnValues::Bool(a), Val::Bool(b)) => a.push(b),
                (_, v) => unreachable!("value {v:?} does not fit a column of {}", self.table.name),
            }
        }
        self.len += 1;
    }

    /// The statement's parameters, one array per column.
    pub fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.cols
            .iter()
            .map(|c| -> &(dyn ToSql + Sync) {
                match c {
                    ColumnValues::Text(a) => a,
                    ColumnValues::Int4(a) => a,
                    ColumnValues::Int8(a) => a,
                    ColumnValues::Int8Opt(a) => a,
                    ColumnValues::Json(a) => a,
                    ColumnValues::Bool(a) => a,
                }
            })
            .collect()
    }
}

/// The bulk statement writing [`Rows`] of `table` into `schema`.
pub fn bulk_statement(schema: &str, table: &Table) -> String {
    let names: Vec<&str> = table.columns.iter().map(|c| c.name).collect();
    let params: Vec<String> =
        table.columns.iter().enumerate().map(|(i, c)| format!("${}::{}", i + 1, c.ty.param_type())).collect();
    let selects: Vec<String> = table.columns.iter().map(|c| c.ty.select(c.name)).collect();
    let mut sql = format!(
        "INSERT INTO {schema}.{t} AS t ({cols}) SELECT {sel} FROM unnest({params}) AS u({cols})",
        t = table.name,
        cols = names.join(", "),
        sel = selects.join(", "),
        params = params.join(", "),
    );
    match (table.on_conflict, table.name) {
        (OnConflict::Keep, _) => sql += " ON CONFLICT (origin, version) DO NOTHING",
        (OnConflict::NewerVersion, "offices") => {
            // Offices have no version: the topology's entry wins over one
            // made up from an origin, and otherwise the first row stays.
            let set: Vec<String> =
                names.iter().filter(|n| **n != "node_id").map(|n| format!("{n} = excluded.{n}")).collect();
            sql += &format!(
                " ON CONFLICT (node_id) DO UPDATE SET {} WHERE excluded.in_topology AND NOT t.in_topology",
                set.join(", ")
            );
        }
        (OnConflict::NewerVersion, _) => {
            let set: Vec<String> =
                names.iter().filter(|n| **n != "id").map(|n| format!("{n} = excluded.{n}")).collect();
            sql += &format!(" ON CONFLICT (id) DO UPDATE SET {} WHERE t.version < excluded.version", set.join(", "));
        }
    }
    sql
}

fn text(s: &str) -> Val {
    Val::Text(Some(s.to_owned()))
}

fn opt(s: &Option<String>) -> Val {
    Val::Text(s.clone())
}

/// The rows one record version makes: `(table, values)` pairs.
pub fn rows_of(rec: &Record, received_ms: u64) -> Vec<(&'static Table, Vec<Val>)> {
    let head = || vec![text(rec.id.as_str()), text(rec.origin.as_str()), Val::Int8(rec.version as i64)];
    let row = |table: &'static Table, fields: Vec<Val>| {
        let mut v = head();
        v.extend(fields);
        v.push(Val::Ms(received_ms));
        (table, v)
    };
    match &rec.body {
        Body::Posting(p) => vec![row(
            &POSTINGS,
            vec![
                text(&p.title),
                text(&p.employer),
                text(&p.category),
                text(p.work_type.as_str()),
                Val::Int4(p.positions as i32),
                opt(&p.wage),
                opt(&p.location),
                Val::Date(p.valid_until.clone()),
                text(p.status.as_str()),
                text(p.audience.as_str()),
                Val::Ms(p.created_at),
                Val::Ms(p.updated_at),
            ],
        )],
        Body::Fill(f) => vec![row(
            &FILLS,
            vec![
                text(f.posting_id.as_str()),
                text(f.posting_origin.as_str()),
                text(f.audience.as_str()),
                Val::Int4(f.filled.min(i32::MAX as u32) as i32),
            ],
        )],
        Body::Worker(w) => vec![row(
            &WORKERS,
            vec![
                text(&w.name),
                text(w.key_group.as_str()),
                opt(&w.phone),
                Val::Json(json!(w.skills)),
                Val::Text(w.wanted_work_type.map(|t| t.as_str().to_owned())),
                Val::Ms(w.registered_at),
            ],
        )],
        Body::Placement(l) => vec![row(
            &PLACEMENTS,
            vec![
                text(l.worker_id.as_str()),
                text(l.worker_office.as_str()),
                text(l.posting_id.as_str()),
                text(l.posting_origin.as_str()),
                text(&l.category),
                text(l.work_type.as_str()),
                text(l.key_group.as_str()),
                Val::Ms(l.placed_at),
            ],
        )],
        // Health reports (release, certificate, clock) are operational
        // state, shown by the dashboard; not mirrored (no table yet).
        Body::Health(_) => Vec::new(),
        Body::Matter(m) => vec![row(
            &MATTERS,
            vec![
                text(m.category.as_str()),
                text(m.channel.as_str()),
                Val::Text(m.key_group.map(|g| g.as_str().to_owned())),
                text(&m.summary),
                text(m.status.as_str()),
                Val::Ms(m.opened_at),
                Val::MsOpt(m.resolved_at),
                Val::Ms(m.updated_at),
            ],
        )],
        Body::MattersSummary(s) => {
            let t = &s.figures.totals;
            let fields = vec![
                Val::Ms(s.generated_at),
                Val::Int8(t.opened),
                Val::Int8(t.resolved),
                Val::Int8(t.open_now),
                Val::Int8(s.figures.holds),
                Val::Json(matters_figures_json(&s.figures)),
            ];
            vec![row(&MATTERS_SUMMARIES, fields.clone()), row(&MATTERS_SUMMARIES_HISTORY, fields)]
        }
        Body::Summary(s) => {
            let t = &s.figures.totals;
            let fields = vec![
                Val::Ms(s.generated_at),
                Val::Int8(t.postings_open),
                Val::Int8(t.positions_open),
                Val::Int8(t.positions_filled),
                Val::Int8(t.workers_registered),
                Val::Int8(t.workers_seeking),
                Val::Int8(t.placements),
                Val::Json(figures_json(&s.figures)),
            ];
            vec![row(&SUMMARIES, fields.clone()), row(&SUMMARIES_HISTORY, fields)]
        }
    }
}

/// A summary's figures as JSON, with daily figures keyed by ISO date (the
/// store keys them by day number) so that SQL can read them directly.
fn figures_json(f: &jobmesh_protocol::figures::Figures) -> Value {
    let mut v = serde_json::to_value(f).unwrap_or(Value::Null);
    let daily: Map<String, Value> = f
        .daily
        .iter()
        .map(|(day, d)| {
            (day_to_iso(*day), json!({"postings_published": d.postings_published, "placements": d.placements}))
        })
        .collect();
    if let Some(obj) = v.as_object_mut() {
        obj.insert("daily".into(), Value::Object(daily));
    }
    v
}

/// A matters summary's figures as JSON, daily figures keyed by ISO date.
fn matters_figures_json(f: &jobmesh_protocol::matters::MatterFigures) -> Value {
    let mut v = serde_json::to_value(f).unwrap_or(Value::Null);
    let daily: Map<String, Value> = f
        .daily
        .iter()
        .map(|(day, d)| (day_to_iso(*day), json!({"opened": d.opened, "resolved": d.resolved})))
        .collect();
    if let Some(obj) = v.as_object_mut() {
        obj.insert("daily".into(), Value::Object(daily));
    }
    v
}

/// The `offices` row of one office.
pub fn office_row(
    id: &jobmesh_protocol::NodeId,
    office: Option<&jobmesh_protocol::topology::Office>,
    received_ms: u64,
) -> Vec<Val> {
    let city = id.as_str().split('/').take(2).collect::<Vec<_>>();
    let tier = match office {
        Some(o) => o.tier.clone(),
        None => ["province", "city", "county", "station"]
            .get(id.depth().saturating_sub(1))
            .unwrap_or(&"station")
            .to_string(),
    };
    let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    vec![
        text(id.as_str()),
        Val::Text(id.parent().map(|p| p.as_str().to_owned())),
        Val::Int4(id.depth() as i32),
        Val::Text(Some(tier)),
        Val::Text((city.len() == 2).then(|| city.join("/"))),
        Val::Text(office.and_then(|o| nonempty(&o.name))),
        Val::Text(office.and_then(|o| nonempty(&o.name_zh))),
        Val::Bool(office.is_some()),
        Val::Ms(received_ms),
    ]
}
