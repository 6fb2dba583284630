//! The sink's PostgreSQL schema: versioned migrations the node applies at
//! connect, and the check that the live tables still have every column the
//! sink writes.
//!
//! Migrations are frozen SQL: a released migration is never edited, a
//! change is a new one at the end. `{s}` stands for the configured schema.
//! They run in one transaction under an advisory lock, so two nodes
//! pointed at one schema do not race, and a failure leaves the schema as it
//! was. `schema_migrations` records what was applied.

use tokio_postgres::Client;

use super::mapping::{Table, OFFICES, TABLES};
use super::postgres::SinkError;

/// One migration: its version, a name, and its SQL.
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "tables, history and daily views",
        sql: r#"
CREATE TABLE {s}.sink_checkpoint (
    node_id     text PRIMARY KEY,
    journal_seq bigint NOT NULL,
    updated_at  timestamptz NOT NULL
);
CREATE TABLE {s}.offices (
    node_id     text PRIMARY KEY,
    parent      text,
    depth       integer NOT NULL,
    tier        text NOT NULL,
    city        text,
    name        text,
    name_zh     text,
    in_topology boolean NOT NULL,
    received_at timestamptz NOT NULL
);
CREATE TABLE {s}.postings (
    id          text PRIMARY KEY,
    origin      text NOT NULL,
    version     bigint NOT NULL,
    title       text NOT NULL,
    employer    text NOT NULL,
    category    text NOT NULL,
    work_type   text NOT NULL,
    positions   integer NOT NULL,
    wage        text,
    location    text,
    valid_until date,
    status      text NOT NULL,
    audience    text NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    received_at timestamptz NOT NULL
);
CREATE INDEX postings_origin ON {s}.postings (origin);
CREATE TABLE {s}.fills (
    id             text PRIMARY KEY,
    origin         text NOT NULL,
    version        bigint NOT NULL,
    posting_id     text NOT NULL,
    posting_origin text NOT NULL,
    audience       text NOT NULL,
    filled         integer NOT NULL,
    received_at    timestamptz NOT NULL
);
CREATE INDEX fills_posting ON {s}.fills (posting_id);
CREATE TABLE {s}.workers (
    id               text PRIMARY KEY,
    origin           text NOT NULL,
    version          bigint NOT NULL,
    name             text NOT NULL,
    key_group        text NOT NULL,
    phone            text,
    skills           text[] NOT NULL,
    wanted_work_type text,
    registered_at    timestamptz NOT NULL,
    received_at      timestamptz NOT NULL
);
CREATE INDEX workers_origin ON {s}.workers (origin);
CREATE TABLE {s}.placements (
    id             text PRIMARY KEY,
    origin         text NOT NULL,
    version        bigint NOT NULL,
    worker_id      text NOT NULL,
    worker_office  text NOT NULL,
    posting_id     text NOT NULL,
    posting_origin text NOT NULL,
    category       text NOT NULL,
    work_type      text NOT NULL,
    key_group      text NOT NULL,
    placed_at      timestamptz NOT NULL,
    received_at    timestamptz NOT NULL
);
CREATE INDEX placements_origin_placed ON {s}.placements (origin, placed_at);
CREATE TABLE {s}.summaries (
    id                 text PRIMARY KEY,
    origin             text NOT NULL,
    version            bigint NOT NULL,
    generated_at       timestamptz NOT NULL,
    postings_open      bigint NOT NULL,
    positions_open     bigint NOT NULL,
    positions_filled   bigint NOT NULL,
    workers_registered bigint NOT NULL,
    workers_seeking    bigint NOT NULL,
    placements         bigint NOT NULL,
    figures            jsonb NOT NULL,
    received_at        timestamptz NOT NULL
);
CREATE TABLE {s}.summaries_history (
    id                 text NOT NULL,
    origin             text NOT NULL,
    version            bigint NOT NULL,
    generated_at       timestamptz NOT NULL,
    postings_open      bigint NOT NULL,
    positions_open     bigint NOT NULL,
    positions_filled   bigint NOT NULL,
    workers_registered bigint NOT NULL,
    workers_seeking    bigint NOT NULL,
    placements         bigint NOT NULL,
    figures            jsonb NOT NULL,
    received_at        timestamptz NOT NULL,
    PRIMARY KEY (origin, version)
);
CREATE INDEX summaries_history_generated ON {s}.summaries_history (generated_at);

-- One row per office and local day (UTC+8, as the offices keep it): the
-- last summary that office made that day.
CREATE VIEW {s}.office_daily AS
SELECT DISTINCT ON (h.origin, h.day)
       h.origin AS node_id, h.day, h.generated_at AS as_of,
       h.postings_open, h.positions_open, h.positions_filled,
       h.workers_registered, h.workers_seeking, h.placements,
       coalesce((h.figures -> 'daily' -> h.day::text ->> 'postings_published')::bigint, 0) AS postings_published_today,
       coalesce((h.figures -> 'daily' -> h.day::text ->> 'placements')::bigint, 0) AS placements_today
FROM (SELECT *, ((generated_at AT TIME ZONE 'UTC') + interval '8 hours')::date AS day FROM {s}.summaries_history) h
ORDER BY h.origin, h.day, h.generated_at DESC;

-- One row per subtree root (every office) and day: the sum over the
-- offices of its subtree that reported that day.
CREATE VIEW {s}.subtree_daily AS
SELECT o.node_id AS subtree, d.day,
       count(*) AS offices_reporting,
       sum(d.postings_open)::bigint AS postings_open, sum(d.positions_open)::bigint AS positions_open,
       sum(d.positions_filled)::bigint AS positions_filled, sum(d.workers_registered)::bigint AS workers_registered,
       sum(d.workers_seeking)::bigint AS workers_seeking, sum(d.placements)::bigint AS placements,
       sum(d.postings_published_today)::bigint AS postings_published_today,
       sum(d.placements_today)::bigint AS placements_today
FROM {s}.offices o
JOIN {s}.office_daily d ON d.node_id = o.node_id OR starts_with(d.node_id, o.node_id || '/')
GROUP BY o.node_id, d.day;
"#,
    },
    Migration {
        version: 2,
        name: "service matters and their summaries",
        sql: r#"
CREATE TABLE {s}.matters (
    id          text PRIMARY KEY,
    origin      text NOT NULL,
    version     bigint NOT NULL,
    category    text NOT NULL,
    channel     text NOT NULL,
    key_group   text,
    summary     text NOT NULL,
    status      text NOT NULL,
    opened_at   timestamptz NOT NULL,
    resolved_at timestamptz,
    updated_at  timestamptz NOT NULL,
    received_at timestamptz NOT NULL
);
CREATE INDEX matters_origin_opened ON {s}.matters (origin, opened_at);
CREATE TABLE {s}.matters_summaries (
    id           text PRIMARY KEY,
    origin       text NOT NULL,
    version      bigint NOT NULL,
    generated_at timestamptz NOT NULL,
    opened       bigint NOT NULL,
    resolved     bigint NOT NULL,
    open_now     bigint NOT NULL,
    holds        bigint NOT NULL,
    figures      jsonb NOT NULL,
    received_at  timestamptz NOT NULL
);
CREATE TABLE {s}.matters_summaries_history (
    id           text NOT NULL,
    origin       text NOT NULL,
    version      bigint NOT NULL,
    generated_at timestamptz NOT NULL,
    opened       bigint NOT NULL,
    resolved     bigint NOT NULL,
    open_now     bigint NOT NULL,
    holds        bigint NOT NULL,
    figures      jsonb NOT NULL,
    received_at  timestamptz NOT NULL,
    PRIMARY KEY (origin, version)
);
CREATE INDEX matters_summaries_history_generated ON {s}.matters_summaries_history (generated_at);
"#,
    },
];

/// The newest schema version this build knows.
pub fn latest() -> i32 {
    MIGRATIONS.last().map(|m| m.version).unwrap_or(0)
}

/// Create the schema if needed and apply the migrations it lacks. Returns
/// the versions applied now.
pub async fn migrate(client: &mut Client, schema: &str) -> Result<Vec<i32>, SinkError> {
    let tx = client.transaction().await.map_err(|e| SinkError::classify(e, schema, "creating the schema"))?;
    // One lock per schema name, held to the end of the transaction.
    tx.execute("SELECT pg_advisory_xact_lock(hashtext('jobmesh-sink:' || $1))", &[&schema])
        .await
        .map_err(|e| SinkError::classify(e, schema, "locking the schema for migration"))?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {schema}; \
         CREATE TABLE IF NOT EXISTS {schema}.schema_migrations \
         (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
    ))
    .await
    .map_err(|e| SinkError::classify(e, schema, &format!("creating schema {schema}")))?;
    let row = tx
        .query_one(&format!("SELECT coalesce(max(version), 0) FROM {schema}.schema_migrations"), &[])
        .await
        .map_err(|e| SinkError::classify(e, schema, "reading schema_migrations"))?;
    let have: i32 = row.get(0);
    if have > latest() {
        return Err(SinkError::Schema(format!(
            "schema {schema} is at version {have}, newer than this jobmesh knows ({}): upgrade the node",
            latest()
        )));
    }
    let mut applied = Vec::new();
    for m in MIGRATIONS.iter().filter(|m| m.version > have) {
        tx.batch_execute(&m.sql.replace("{s}", schema))
            .await
            .map_err(|e| SinkError::classify(e, schema, &format!("applying migration {} ({})", m.version, m.name)))?;
        tx.execute(
            &format!("INSERT INTO {schema}.schema_migrations (version, name) VALUES ($1, $2)"),
            &[&m.version, &m.name],
        )
        .await
        .map_err(|e| SinkError::classify(e, schema, "recording a migration"))?;
        applied.push(m.version);
    }
    tx.commit().await.map_err(|e| SinkError::classify(e, schema, "committing the migrations"))?;
    Ok(applied)
}

/// Check that every table the sink writes has every column it writes, of
/// the right type, so that a dropped or changed column is reported by name
/// instead of failing every batch with a generic error.
pub async fn verify(client: &Client, schema: &str) -> Result<(), SinkError> {
    let rows = client
        .query(
            "SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_schema = $1",
            &[&schema],
        )
        .await
        .map_err(|e| SinkError::classify(e, schema, "reading the schema's columns"))?;
    let have: std::collections::HashSet<(String, String, String)> =
        rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    let tables: Vec<&Table> = TABLES.iter().copied().chain([&OFFICES]).collect();
    for t in tables {
        for c in t.columns {
            let key = (t.name.to_owned(), c.name.to_owned(), c.ty.data_type().to_owned());
            if !have.contains(&key) {
                let found = have.iter().find(|(tn, cn, _)| tn == t.name && cn == c.name);
                return Err(SinkError::Schema(match found {
                    Some((_, _, ty)) => format!(
                        "column {schema}.{}.{} is {ty}, the sink writes {}: restore the column's type",
                        t.name,
                        c.name,
                        c.ty.data_type()
                    ),
                    None if !have.iter().any(|(tn, _, _)| tn == t.name) => {
                        format!("table {schema}.{} is missing (dropped?): the sink writes it", t.name)
                    }
                    None => format!(
                        "column {schema}.{}.{} is missing (dropped?): the sink writes it; add it back \
                         (see migration {} in the README) or drop schema {schema} to rebuild the mirror",
                        t.name,
                        c.name,
                        latest()
                    ),
                }));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The columns a migration's `CREATE TABLE {s}.NAME (…)` makes.
    fn created_columns(table: &str) -> Vec<String> {
        let head = format!("CREATE TABLE {{s}}.{table} (");
        let m =
            MIGRATIONS.iter().find(|m| m.sql.contains(&head)).unwrap_or_else(|| panic!("no migration creates {table}"));
        let body = &m.sql[m.sql.find(&head).unwrap_or(0) + head.len()..];
        let body = &body[..body.find("\n);").unwrap_or(body.len())];
        body.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("PRIMARY KEY"))
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
            .collect()
    }

    #[test]
    fn migrations_create_exactly_the_columns_the_sink_writes() {
        for t in TABLES.iter().copied().chain([&OFFICES]) {
            let want: Vec<String> = t.columns.iter().map(|c| c.name.to_owned()).collect();
            assert_eq!(created_columns(t.name), want, "table {}", t.name);
        }
    }

    #[test]
    fn migration_versions_increase_by_one() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i32 + 1, "{}", m.name);
        }
        assert_eq!(latest(), MIGRATIONS.len() as i32);
    }
}
