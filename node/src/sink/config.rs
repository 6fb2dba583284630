//! The `[sink.postgres]` config table, parsed into typed values.
//!
//! ```toml
//! [sink.postgres]
//! url           = "postgresql://jobmesh@10.0.0.5:5432/analytics"  # no password here
//! password_file = "pg.password"     # optional; the password, one line
//! schema        = "jobmesh"         # optional, default "jobmesh"
//! batch_rows    = 2000              # optional, journal entries per transaction
//! connect_timeout_ms = 5000         # optional
//! retry_max_ms  = 10000             # optional, cap of the reconnect backoff
//! ```
//!
//! A password in `url` is refused: config files are read by many and copied
//! into tickets, a password file can be readable by the service alone.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

/// Default PostgreSQL schema the sink creates and writes.
pub const DEFAULT_SCHEMA: &str = "jobmesh";
/// Default journal entries mirrored per transaction.
pub const DEFAULT_BATCH_ROWS: usize = 2_000;
/// Largest allowed batch: bounds the sink's memory and a transaction's size.
pub const MAX_BATCH_ROWS: usize = 50_000;
/// Default time allowed to connect (TCP, TLS-less startup, authentication).
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 5_000;
/// Default cap of the reconnect backoff.
pub const DEFAULT_RETRY_MAX_MS: u64 = 10_000;

/// `[sink]`: sinks by kind (only PostgreSQL so far).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSink {
    pub postgres: Option<RawPostgres>,
}

/// `[sink.postgres]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPostgres {
    url: String,
    password_file: Option<String>,
    schema: Option<String>,
    batch_rows: Option<usize>,
    connect_timeout_ms: Option<u64>,
    retry_max_ms: Option<u64>,
}

/// `[sink.postgres]`, checked.
#[derive(Debug, Clone)]
pub struct PostgresConfig {
    /// Connection parameters, with the password from `password_file`.
    pub pg: tokio_postgres::Config,
    /// `user@host:port/dbname`, for messages and `/v1/status` (no password).
    pub target: String,
    pub password_file: Option<PathBuf>,
    pub schema: String,
    pub batch_rows: usize,
    pub connect_timeout: Duration,
    pub retry_max: Duration,
}

/// A problem with one key: (`sink.postgres.KEY`, what is wrong).
pub type KeyError = (&'static str, String);

impl PostgresConfig {
    /// Check the raw table. `path` resolves a path relative to the config
    /// file; `read` reads a side file (both name the key in their errors).
    pub fn parse<PE, RE>(
        raw: RawPostgres,
        path: impl Fn(&str, &str) -> Result<PathBuf, PE>,
        read: impl Fn(&str, &Path) -> Result<String, RE>,
    ) -> Result<PostgresConfig, KeyError>
    where
        PE: std::fmt::Display,
        RE: std::fmt::Display,
    {
        const URL: &str = "sink.postgres.url";
        const PASSWORD: &str = "sink.postgres.password_file";
        let mut pg = tokio_postgres::Config::from_str(&raw.url).map_err(|e| {
            (URL, format!("not a PostgreSQL connection string (postgresql://user@host:port/dbname): {e}"))
        })?;
        if pg.get_password().is_some() {
            return Err((URL, "contains a password: put it in the file named by sink.postgres.password_file".into()));
        }
        if pg.get_user().is_none() {
            return Err((URL, "names no user (postgresql://USER@host:port/dbname)".into()));
        }
        if pg.get_hosts().is_empty() {
            return Err((URL, "names no host (postgresql://user@HOST:port/dbname)".into()));
        }
        let password_file = match raw.password_file {
            None => None,
            Some(f) => {
                let p = path(PASSWORD, &f).map_err(|e| (PASSWORD, e.to_string()))?;
                let text = read(PASSWORD, &p).map_err(|e| (PASSWORD, e.to_string()))?;
                let password = text.trim_end_matches(['\n', '\r']);
                if password.is_empty() {
                    return Err((PASSWORD, format!("{}: the password file is empty", p.display())));
                }
                pg.password(password);
                Some(p)
            }
        };
        let schema = raw.schema.unwrap_or_else(|| DEFAULT_SCHEMA.to_owned());
        let schema_ok = schema.len() <= 63
            && schema.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && schema.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && !schema.starts_with("pg_");
        if !schema_ok {
            return Err((
                "sink.postgres.schema",
                format!(
                    "{schema:?}: use lowercase letters, digits and '_' (at most 63, not starting with a digit or pg_)"
                ),
            ));
        }
        let batch_rows = raw.batch_rows.unwrap_or(DEFAULT_BATCH_ROWS);
        if !(1..=MAX_BATCH_ROWS).contains(&batch_rows) {
            return Err(("sink.postgres.batch_rows", format!("must be 1..={MAX_BATCH_ROWS}")));
        }
        let connect_timeout_ms = raw.connect_timeout_ms.unwrap_or(DEFAULT_CONNECT_TIMEOUT_MS);
        if !(100..=600_000).contains(&connect_timeout_ms) {
            return Err(("sink.postgres.connect_timeout_ms", "must be 100..=600000".into()));
        }
        let retry_max_ms = raw.retry_max_ms.unwrap_or(DEFAULT_RETRY_MAX_MS);
        if !(100..=3_600_000).contains(&retry_max_ms) {
            return Err(("sink.postgres.retry_max_ms", "must be 100..=3600000".into()));
        }
        let connect_timeout = Duration::from_millis(connect_timeout_ms);
        pg.connect_timeout(connect_timeout);
        pg.application_name("jobmesh-sink");
        // A silent link is noticed by TCP too, not only by the batch timeout.
        pg.keepalives(true);
        pg.keepalives_idle(Duration::from_secs(30));
        let target = target_of(&pg);
        Ok(PostgresConfig {
            pg,
            target,
            password_file,
            schema,
            batch_rows,
            connect_timeout,
            retry_max: Duration::from_millis(retry_max_ms),
        })
    }
}

/// `user@host:port/dbname` of a connection config.
fn target_of(pg: &tokio_postgres::Config) -> String {
    let host = match pg.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "?".into(),
    };
    let port = pg.get_ports().first().copied().unwrap_or(5432);
    let user = pg.get_user().unwrap_or("?");
    let db = pg.get_dbname().unwrap_or(user);
    format!("{user}@{host}:{port}/{db}")
}
