//! The PostgreSQL mirror: a task that walks this node's journal and writes
//! each record's current version into the sink's tables.
//!
//! Exactly once: every transaction writes a batch of rows *and* the sink's
//! checkpoint (the last journal sequence the batch covers) in
//! `sink_checkpoint`. After any failure (the node killed, PostgreSQL killed,
//! the network cut) the sink reconnects, reads the checkpoint back from
//! PostgreSQL and resumes after it, so a batch is either wholly there with
//! its checkpoint or not at all. Rows are upserts that never lower a
//! version, and history rows are keyed by `(origin, version)`, so a batch
//! written twice (a commit whose answer was lost) changes nothing.
//!
//! Only durable journal entries are mirrored: the sink mirrors through the
//! durable sequence the engine thread publishes (every entry up to it has
//! been flushed); a record whose current version is newer than that is
//! left for a later batch. So PostgreSQL never holds
//! a version that a crash of the node could take back.
//!
//! Backpressure: the task reads the store through its own handle and never
//! sends the engine thread work; replication and the API never wait for it. While
//! PostgreSQL is down it only retries (with backoff) and its lag grows.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use jobmesh_protocol::kv::{Kv, StoreError};
use jobmesh_protocol::store::{self, StoredRecord};
use jobmesh_protocol::topology::Topology;
use jobmesh_protocol::NodeId;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls, Statement};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::config::PostgresConfig;
use super::mapping::{self, Rows, Table, OFFICES, TABLES};
use super::schema;
use super::status::SinkStatus;
use crate::state::{now_ms, NodeState};
use crate::storage::SledKv;

/// How often an idle sink looks for new journal entries.
const POLL: Duration = Duration::from_millis(50);
/// Longest one batch's transaction may take: past it the connection is
/// taken for lost (a link that went silent sends no reset) and the sink
/// reconnects; the uncommitted transaction leaves no trace.
const BATCH_TIMEOUT: Duration = Duration::from_secs(60);
/// First wait before reconnecting; doubles up to `retry_max_ms`.
const RETRY_MIN: Duration = Duration::from_millis(200);

/// Why the sink cannot write. Each names the config key to look at.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SinkError {
    /// No connection: refused, timed out, or lost.
    #[error("sink.postgres.url: cannot reach PostgreSQL at {target}: {detail}")]
    Unreachable { target: String, detail: String },
    /// The server refused the user or password.
    #[error("sink.postgres.password_file: PostgreSQL refused the login of {target}: {detail}")]
    Auth { target: String, detail: String },
    /// The database in the url does not exist.
    #[error("sink.postgres.url: {0}")]
    Database(String),
    /// The role may not create or write the schema's objects.
    #[error("sink.postgres.schema: permission denied: {0}")]
    Privilege(String),
    /// The schema is not what the sink writes (a dropped column, a newer
    /// version).
    #[error("sink.postgres.schema: {0}")]
    Schema(String),
    /// Any other error reported by PostgreSQL.
    #[error("PostgreSQL: {0}")]
    Other(String),
    /// The node's own store could not be read.
    #[error("reading the node's store: {0}")]
    Store(#[from] StoreError),
}

impl SinkError {
    /// The config key the error is about.
    pub fn key(&self) -> &'static str {
        match self {
            SinkError::Unreachable { .. } | SinkError::Database(_) => "sink.postgres.url",
            SinkError::Auth { .. } => "sink.postgres.password_file",
            SinkError::Privilege(_) | SinkError::Schema(_) => "sink.postgres.schema",
            SinkError::Other(_) | SinkError::Store(_) => "sink.postgres",
        }
    }

    /// The message without the key (for `ConfigError`, which adds it).
    pub fn problem(&self) -> String {
        let s = self.to_string();
        s.strip_prefix(&format!("{}: ", self.key())).map(str::to_owned).unwrap_or(s)
    }

    /// Turn a client error into one that says what is wrong.
    pub fn classify(e: tokio_postgres::Error, schema: &str, doing: &str) -> SinkError {
        SinkError::classify_for(e, schema, doing, "")
    }

    fn classify_for(e: tokio_postgres::Error, schema: &str, doing: &str, target: &str) -> SinkError {
        if let Some(db) = e.as_db_error() {
            let msg = format!("{} (while {doing})", db.message());
            let code = db.code();
            return if *code == SqlState::INVALID_PASSWORD || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION {
                SinkError::Auth { target: target.to_owned(), detail: msg }
            } else if *code == SqlState::INVALID_CATALOG_NAME {
                SinkError::Database(msg)
            } else if *code == SqlState::INSUFFICIENT_PRIVILEGE {
                SinkError::Privilege(format!(
                    "{msg}; grant the sink's role CREATE on the database or ownership of schema {schema}"
                ))
            } else if *code == SqlState::UNDEFINED_COLUMN || *code == SqlState::UNDEFINED_TABLE {
                SinkError::Schema(format!("{msg}: a column or table the sink writes is missing (dropped?)"))
            } else {
                SinkError::Other(format!("{msg} [SQLSTATE {}]", code.code()))
            };
        }
        let mut detail = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            detail = format!("{detail}: {s}");
            source = s.source();
        }
        if detail.contains("password") {
            SinkError::Auth { target: target.to_owned(), detail }
        } else {
            SinkError::Unreachable { target: target.to_owned(), detail }
        }
    }
}

/// A connection with the sink's statements prepared.
struct Conn {
    client: Client,
    statements: HashMap<&'static str, Statement>,
    offices: Statement,
    checkpoint: Statement,
    /// Offices already in the table (loaded at connect).
    known_offices: HashSet<String>,
    /// The checkpoint read back at connect.
    resume_after: u64,
}

/// What the sink needs besides its config.
pub struct SinkContext {
    pub node_id: NodeId,
    pub topology: Option<Arc<Topology>>,
    pub state: Arc<NodeState>,
    pub status: Arc<SinkStatus>,
}

/// Connect, migrate, verify and read the checkpoint.
async fn connect(cfg: &PostgresConfig, ctx: &SinkContext) -> Result<Conn, SinkError> {
    let s = &cfg.schema;
    let target = &cfg.target;
    let cls = |doing: &'static str| move |e| SinkError::classify_for(e, s, doing, target);
    let (mut client, connection) = match tokio::time::timeout(cfg.connect_timeout, cfg.pg.connect(NoTls)).await {
        Ok(r) => r.map_err(cls("connecting"))?,
        Err(_) => {
            return Err(SinkError::Unreachable {
                target: target.clone(),
                detail: format!(
                    "no answer within {} ms (sink.postgres.connect_timeout_ms)",
                    cfg.connect_timeout.as_millis()
                ),
            })
        }
    };
    let node = ctx.node_id.clone();
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(node_id = %node, error = %e, "PostgreSQL connection ended");
        }
    });
    let applied = schema::migrate(&mut client, s).await?;
    if !applied.is_empty() {
        info!(schema = %s, ?applied, "sink: applied schema migrations");
    }
    schema::verify(&client, s).await?;
    let mut statements = HashMap::new();
    for t in TABLES {
        let st = client.prepare(&mapping::bulk_statement(s, t)).await.map_err(cls("preparing statements"))?;
        statements.insert(t.name, st);
    }
    let offices = client.prepare(&mapping::bulk_statement(s, &OFFICES)).await.map_err(cls("preparing statements"))?;
    let checkpoint = client
        .prepare(&format!(
            "INSERT INTO {s}.sink_checkpoint (node_id, journal_seq, updated_at) VALUES ($1, $2, now()) \
             ON CONFLICT (node_id) DO UPDATE SET journal_seq = excluded.journal_seq, updated_at = now()"
        ))
        .await
        .map_err(cls("preparing statements"))?;
    let row = client
        .query_opt(&format!("SELECT journal_seq FROM {s}.sink_checkpoint WHERE node_id = $1"), &[&ctx.node_id.as_str()])
        .await
        .map_err(cls("reading the checkpoint"))?;
    let resume_after = row.map(|r| r.get::<_, i64>(0).max(0) as u64).unwrap_or(0);
    let known_offices: HashSet<String> = client
        .query(&format!("SELECT node_id FROM {s}.offices WHERE in_topology"), &[])
        .await
        .map_err(cls("reading offices"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut conn = Conn { client, statements, offices, checkpoint, known_offices, resume_after };
    // The topology's offices, once per connection (an upsert that only
    // replaces rows made up from an origin).
    if let Some(t) = &ctx.topology {
        let now = now_ms();
        let mut rows = Rows::new(&OFFICES);
        for o in t.offices.iter().filter(|o| !conn.known_offices.contains(o.id.as_str())) {
            rows.push(mapping::office_row(&o.id, Some(o), now));
        }
        if !rows.is_empty() {
            conn.client.execute(&conn.offices, &rows.params()).await.map_err(cls("writing offices"))?;
            conn.known_offices.extend(t.offices.iter().map(|o| o.id.to_string()));
        }
    }
    Ok(conn)
}

/// Check the sink's config against the server at start: reachable, the
/// login accepted, the schema created or migrated and complete. Errors
/// here stop the node at start, naming the key.
pub async fn check_at_start(cfg: &PostgresConfig, ctx: &SinkContext) -> Result<u64, SinkError> {
    connect(cfg, ctx).await.map(|c| c.resume_after)
}

/// One batch read from the store, ready to write.
struct Batch {
    tables: Vec<Rows>,
    offices: Vec<String>,
    office_rows: Rows,
    /// Journal sequence the batch covers through.
    through: u64,
    records: u64,
}

/// Read journal entries `(after, durable]`, at most `limit`, and the
/// current version of each record they name.
fn read_batch(
    kv: &SledKv,
    topology: Option<&Topology>,
    known: &HashSet<String>,
    after: u64,
    durable: u64,
    limit: usize,
) -> Result<Option<Batch>, StoreError> {
    let entries = store::journal_range(kv, after, durable, limit)?;
    let Some(&(through, _)) = entries.last() else { return Ok(None) };
    let received = now_ms();
    let mut tables: Vec<Rows> = TABLES.iter().map(|t| Rows::new(t)).collect();
    let mut seen = HashSet::new();
    let mut offices = Vec::new();
    let mut office_rows = Rows::new(&OFFICES);
    let mut records = 0;
    for (_, entry) in &entries {
        if !seen.insert(entry.key.clone()) {
            continue;
        }
        let Some(bytes) = kv.get(&entry.key)? else { continue };
        let stored: StoredRecord = store::decode(&entry.key, &bytes)?;
        // A newer version not yet durable: its own entry comes later.
        if stored.seq > durable {
            continue;
        }
        let rec = stored.record;
        let origin = rec.origin.as_str();
        if !known.contains(origin) && !offices.iter().any(|o: &String| o == origin) {
            let office = topology.and_then(|t| t.get(&rec.origin));
            office_rows.push(mapping::office_row(&rec.origin, office, received));
            offices.push(origin.to_owned());
        }
        for (table, vals) in mapping::rows_of(&rec, received) {
            if let Some(rows) = tables.iter_mut().find(|r| r.table.name == table.name) {
                rows.push(vals);
            }
        }
        records += 1;
    }
    Ok(Some(Batch { tables, offices, office_rows, through, records }))
}

/// Write one batch and the checkpoint in one transaction.
async fn write_batch(conn: &mut Conn, cfg: &PostgresConfig, node: &NodeId, batch: &Batch) -> Result<(), SinkError> {
    let s = &cfg.schema;
    let target = &cfg.target;
    let cls = |doing: &'static str| move |e| SinkError::classify_for(e, s, doing, target);
    let tx = conn.client.transaction().await.map_err(cls("starting a transaction"))?;
    if !batch.office_rows.is_empty() {
        tx.execute(&conn.offices, &batch.office_rows.params()).await.map_err(cls("writing offices"))?;
    }
    for rows in batch.tables.iter().filter(|r| !r.is_empty()) {
        let t: &Table = rows.table;
        let st = &conn.statements[t.name];
        tx.execute(st, &rows.params()).await.map_err(|e| SinkError::classify_for(e, s, t.name, target))?;
    }
    let through = i64::try_from(batch.through).unwrap_or(i64::MAX);
    tx.execute(&conn.checkpoint, &[&node.as_str(), &through]).await.map_err(cls("writing the checkpoint"))?;
    tx.commit().await.map_err(cls("committing"))?;
    Ok(())
}

/// The sink task: mirror until `stop`, reconnecting after any failure.
pub async fn run(cfg: PostgresConfig, ctx: SinkContext, stop: CancellationToken) {
    let mut backoff = RETRY_MIN;
    while !stop.is_cancelled() {
        let result = async {
            let mut conn = connect(&cfg, &ctx).await?;
            ctx.status.connected(conn.resume_after);
            backoff = RETRY_MIN;
            info!(target = %cfg.target, schema = %cfg.schema, resume_after = conn.resume_after, "sink: connected");
            mirror(&cfg, &ctx, &mut conn, &stop).await
        }
        .await;
        match result {
            Ok(()) => break,
            Err(e) => {
                warn!(error = %e, retry_ms = backoff.as_millis() as u64, "sink: PostgreSQL write failed; retrying");
                ctx.status.failed(e.to_string());
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.cancelled() => break,
                }
                backoff = (backoff * 2).min(cfg.retry_max);
            }
        }
    }
}

/// Read journal entries `(after, durable]` on the blocking pool (see
/// [`read_batch`]); `known` is a snapshot of the offices already written.
fn spawn_read(
    ctx: &SinkContext,
    known: HashSet<String>,
    after: u64,
    durable: u64,
    limit: usize,
) -> tokio::task::JoinHandle<Result<Option<Batch>, StoreError>> {
    let kv = ctx.state.kv.clone();
    let topology = ctx.topology.clone();
    tokio::task::spawn_blocking(move || read_batch(&kv, topology.as_deref(), &known, after, durable, limit))
}

async fn joined(h: tokio::task::JoinHandle<Result<Option<Batch>, StoreError>>) -> Result<Option<Batch>, SinkError> {
    Ok(h.await.map_err(|e| SinkError::Other(format!("sink reader task failed: {e}")))??)
}

/// Mirror over one connection until `stop` (Ok) or an error. The next
/// batch is read from the store while the current one is written, so the
/// store and PostgreSQL work at the same time. (The read-ahead may repeat
/// an office row the current batch writes; office upserts of rows already
/// there change nothing.)
async fn mirror(
    cfg: &PostgresConfig,
    ctx: &SinkContext,
    conn: &mut Conn,
    stop: &CancellationToken,
) -> Result<(), SinkError> {
    let mut after = conn.resume_after;
    let mut ahead: Option<Batch> = None;
    loop {
        if stop.is_cancelled() {
            return Ok(());
        }
        let durable = ctx.state.inspect(|v| v.durable_seq());
        if after > durable {
            warn!(
                checkpoint = after,
                last_seq = durable,
                "sink: PostgreSQL's checkpoint is past this node's journal (store replaced?): mirroring everything again"
            );
            after = 0;
            ahead = None;
        }
        let batch = match ahead.take() {
            Some(b) => b,
            None => match joined(spawn_read(ctx, conn.known_offices.clone(), after, durable, cfg.batch_rows)).await? {
                Some(b) => b,
                None => {
                    tokio::select! {
                        _ = tokio::time::sleep(POLL) => {}
                        _ = stop.cancelled() => return Ok(()),
                    }
                    continue;
                }
            },
        };
        let read_ahead = spawn_read(ctx, conn.known_offices.clone(), batch.through, durable, cfg.batch_rows);
        let written = tokio::time::timeout(BATCH_TIMEOUT, write_batch(conn, cfg, &ctx.node_id, &batch)).await;
        let next = joined(read_ahead).await;
        match written {
            Ok(r) => r?,
            Err(_) => {
                return Err(SinkError::Unreachable {
                    target: cfg.target.clone(),
                    detail: format!("a batch got no answer within {} s", BATCH_TIMEOUT.as_secs()),
                })
            }
        }
        conn.known_offices.extend(batch.offices.iter().cloned());
        after = batch.through;
        ctx.status.committed(after, batch.records, now_ms());
        ahead = next?;
    }
}
