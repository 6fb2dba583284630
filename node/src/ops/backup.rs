//! The backup file, `GET /v1/backup`, and `jobmesh restore --config F
//! --from FILE` (`jobmesh backup --config F --out FILE`, a client of the
//! HTTP API, is in the `jobmesh` binary's `ops` module).
//!
//! **Backup asks the running node.** The node holds its data directory's
//! lock and sled cannot be opened twice, so `jobmesh backup` reads the
//! config for the API address and token and fetches `GET /v1/backup`. The
//! node copies its store while holding the engine lock, after a flush:
//! every write goes through the engine under that lock, so the copy is one
//! consistent, durable cut (a batch and the checkpoint covering it are
//! both in or both out). Writes wait meanwhile, about a second per
//! 100,000 records; compressing and hashing happen after the lock is let go.
//!
//! **The file**: `JMBACKUP` (8 bytes), a u32 BE length and the [`Manifest`]
//! as JSON (readable without decompressing), then the body: a gzip stream
//! of entries `u32 BE key length, key, u32 BE value length, value`. The
//! manifest carries the body's SHA-256 and length, checked before restore
//! writes anything.
//!
//! **Restore** writes the entries into an empty data directory and marks
//! the store (see `jobmesh_protocol::engine::restore`): at its next start
//! the node gets its own later records back from its parent and continues
//! its ids and journal past everything its peers have seen.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context};
use clap::Args;
use jobmesh_protocol::engine::restore::{META_RESTORED_AT, META_RESTORE_PENDING};
use jobmesh_protocol::kv::{Entries, Kv, StoreError, WriteBatch};
use jobmesh_protocol::store::{u64_value, META_COUNTER, META_SEQ, STORE_FORMAT};
use jobmesh_protocol::Kind;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::state::now_ms;
use crate::storage::SledKv;

/// First bytes of every backup file.
pub const MAGIC: &[u8; 8] = b"JMBACKUP";
/// Version of the file layout described in the module docs.
pub const BACKUP_FORMAT: u32 = 1;
/// Largest manifest accepted, bytes.
const MAX_MANIFEST: usize = 1 << 20;
/// Largest key or value accepted from a backup body (a record is far less).
const MAX_ENTRY: usize = 64 << 20;
/// Entries per store write during restore.
const RESTORE_BATCH: usize = 10_000;

/// What a backup holds, readable without decompressing it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub backup_format: u32,
    pub node_id: String,
    pub store_format: u64,
    /// The store's last journal sequence at the cut.
    pub last_seq: u64,
    /// The store's id counter at the cut.
    pub id_counter: u64,
    /// Records by kind (`posting`, `worker`, ...).
    pub records: std::collections::BTreeMap<String, u64>,
    /// Key-value entries in the body.
    pub entries: u64,
    /// ISO-8601 UTC and Unix ms.
    pub created_at: String,
    pub created_at_ms: u64,
    /// `jobmesh --version` of the node that made it.
    pub jobmesh_version: String,
    /// SHA-256 (hex) and length of the compressed body.
    pub body_sha256: String,
    pub body_bytes: u64,
}

/// `GET /v1/backup`: the backup file of this node's store.
#[utoipa::path(
    get,
    path = "/v1/backup",
    tag = "operations",
    operation_id = "backup",
    responses(
        (status = 200, description = "The backup file of this node's store (see `jobmesh restore`).", content_type = "application/octet-stream", body = crate::api::openapi::types::BackupFile),
        (status = 401, description = "The API needs a bearer token (`unauthorized`) or the token is wrong (`bad_token`).", body = crate::api::openapi::types::Error),
        (status = 503, description = "The office is restoring from a backup (`restoring`) or its store is failing (`store_failing`); nothing was saved.", body = crate::api::openapi::types::Error),
        (status = 507, description = "The office's disk is full (`disk_full`); nothing was saved.", body = crate::api::openapi::types::Error),
    ),
    security((), ("bearer" = [])),
)]
pub async fn get(
    axum::extract::State(api): axum::extract::State<std::sync::Arc<crate::api::Api>>,
) -> crate::api::error::ApiResult<impl axum::response::IntoResponse> {
    let entries = api
        .state
        .call(|e| -> Result<Entries, StoreError> {
            e.kv().flush_blocking()?;
            e.kv().export()
        })
        .await??;
    let me = api.state.me.to_string();
    let file = crate::api::blocking(move || encode(&me, &entries, now_ms())).await?;
    Ok(([(axum::http::header::CONTENT_TYPE, "application/octet-stream")], file))
}

/// The backup file for `entries` of node `node_id`.
pub fn encode(node_id: &str, entries: &[(Vec<u8>, Vec<u8>)], now: u64) -> Vec<u8> {
    let get = |key: &[u8]| entries.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let mut records = std::collections::BTreeMap::new();
    for kind in Kind::ALL {
        let prefix = [b'r', kind.letter(), b'/'];
        let n = entries.iter().filter(|(k, _)| k.starts_with(&prefix)).count() as u64;
        records.insert(kind.name().to_owned(), n);
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for (k, v) in entries {
        // Writing into a Vec cannot fail.
        let _ = gz.write_all(&(k.len() as u32).to_be_bytes());
        let _ = gz.write_all(k);
        let _ = gz.write_all(&(v.len() as u32).to_be_bytes());
        let _ = gz.write_all(v);
    }
    let body = gz.finish().unwrap_or_default();
    let manifest = Manifest {
        backup_format: BACKUP_FORMAT,
        node_id: node_id.to_owned(),
        store_format: STORE_FORMAT,
        last_seq: u64_value(META_SEQ, get(META_SEQ)).unwrap_or(0),
        id_counter: u64_value(META_COUNTER, get(META_COUNTER)).unwrap_or(0),
        records,
        entries: entries.len() as u64,
        created_at: crate::api::views::iso_time(now),
        created_at_ms: now,
        jobmesh_version: env!("CARGO_PKG_VERSION").to_owned(),
        body_sha256: sha256_hex(&body),
        body_bytes: body.len() as u64,
    };
    let m = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + m.len() + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(m.len() as u32).to_be_bytes());
    out.extend_from_slice(&m);
    out.extend_from_slice(&body);
    out
}

fn sha256_hex(b: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, b).as_ref().iter().map(|x| format!("{x:02x}")).collect()
}

/// Read a backup file: the manifest, and the entries once the checksum
/// matches.
pub fn decode(bytes: &[u8]) -> anyhow::Result<(Manifest, Entries)> {
    ensure!(bytes.len() >= MAGIC.len() + 4 && &bytes[..MAGIC.len()] == MAGIC, "not a jobmesh backup file");
    let len = u32::from_be_bytes(bytes[8..12].try_into().unwrap_or([0; 4])) as usize;
    ensure!(len <= MAX_MANIFEST && bytes.len() >= 12 + len, "the backup's manifest is cut short");
    let manifest: Manifest = serde_json::from_slice(&bytes[12..12 + len]).context("the backup's manifest")?;
    ensure!(
        manifest.backup_format == BACKUP_FORMAT,
        "backup format {} is not {BACKUP_FORMAT}: use the jobmesh that made it",
        manifest.backup_format
    );
    ensure!(
        manifest.store_format <= STORE_FORMAT,
        "the backup's store format {} is newer than this build's {STORE_FORMAT}",
        manifest.store_format
    );
    let body = &bytes[12 + len..];
    ensure!(
        body.len() as u64 == manifest.body_bytes && sha256_hex(body) == manifest.body_sha256,
        "the backup is damaged: its checksum does not match (expected {} bytes with SHA-256 {})",
        manifest.body_bytes,
        manifest.body_sha256
    );
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(body).read_to_end(&mut raw).context("the backup's body does not decompress")?;
    let mut entries = Vec::with_capacity(manifest.entries.min(10_000_000) as usize);
    let mut at = 0usize;
    let mut take = |raw: &[u8]| -> anyhow::Result<Vec<u8>> {
        ensure!(raw.len() >= at + 4, "entry cut short");
        let n = u32::from_be_bytes(raw[at..at + 4].try_into().unwrap_or([0; 4])) as usize;
        ensure!(n <= MAX_ENTRY && raw.len() >= at + 4 + n, "entry cut short");
        let v = raw[at + 4..at + 4 + n].to_vec();
        at += 4 + n;
        Ok(v)
    };
    while entries.len() < manifest.entries as usize {
        let k = take(&raw)?;
        let v = take(&raw)?;
        entries.push((k, v));
    }
    Ok((manifest, entries))
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The office's config: `node_id` must be the backup's, `data_dir`
    /// must be empty or absent.
    #[arg(long, short, value_name = "FILE")]
    pub config: PathBuf,
    /// The backup file made by `jobmesh backup`.
    #[arg(long, value_name = "FILE")]
    pub from: PathBuf,
}

/// `jobmesh restore`.
pub fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let cfg = Config::load(&args.config)?;
    let bytes = std::fs::read(&args.from).with_context(|| format!("cannot read {}", args.from.display()))?;
    let (m, entries) = decode(&bytes).with_context(|| format!("{}", args.from.display()))?;
    if m.node_id != cfg.node_id.as_str() {
        bail!(
            "{} is a backup of office {}, not of {} (the config's node_id): refusing to restore another office",
            args.from.display(),
            m.node_id,
            cfg.node_id
        );
    }
    refuse_non_empty(&cfg.data_dir)?;
    let mut kv = SledKv::open(&cfg.data_dir).map_err(|e| cfg.error("data_dir", e))?;
    // The marks go in first: a restore cut short never starts as an
    // ordinary store (rerun it into an empty folder).
    let mut marks = WriteBatch::default();
    marks.put(META_RESTORE_PENDING.to_vec(), 0u64.to_be_bytes().to_vec());
    marks.put(META_RESTORED_AT.to_vec(), m.last_seq.to_be_bytes().to_vec());
    kv.write(marks)?;
    kv.flush_blocking()?;
    let mut chunk = WriteBatch::default();
    for (k, v) in entries {
        chunk.put(k, v);
        if chunk.len() >= RESTORE_BATCH {
            kv.write(std::mem::take(&mut chunk))?;
        }
    }
    kv.write(chunk)?;
    kv.flush_blocking()?;
    println!(
        "restored {} into {}: {} entries from {} (journal seq {}, {}). At start the office gets every record it \
         wrote after the backup back from its parent, and writes again once they are here.",
        m.node_id,
        cfg.data_dir.display(),
        m.entries,
        m.created_at,
        m.last_seq,
        m.records.iter().map(|(k, n)| format!("{n} {k}")).collect::<Vec<_>>().join(", ")
    );
    Ok(())
}

fn refuse_non_empty(dir: &Path) -> anyhow::Result<()> {
    match std::fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot read data_dir {}", dir.display())),
        Ok(mut it) => {
            if it.next().is_some() {
                bail!(
                    "data_dir {} is not empty: restore only into an empty or new folder (move the old one aside first)",
                    dir.display()
                );
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_round_trips_and_damage_is_caught() {
        let entries = vec![
            (b"mnode".to_vec(), b"gz/a".to_vec()),
            (META_SEQ.to_vec(), 42u64.to_be_bytes().to_vec()),
            (b"rp/gz.a_p1".to_vec(), vec![7; 300]),
        ];
        let file = encode("gz/a", &entries, 1_700_000_000_000);
        let (m, back) = decode(&file).unwrap();
        assert_eq!(back, entries);
        assert_eq!((m.node_id.as_str(), m.last_seq, m.entries), ("gz/a", 42, 3));
        assert_eq!(m.records["posting"], 1);
        let mut bad = file.clone();
        let last = bad.len() - 5;
        bad[last] ^= 1;
        assert!(decode(&bad).unwrap_err().to_string().contains("checksum"));
        assert!(decode(b"hello").is_err());
    }

    #[test]
    fn restore_refuses_a_folder_with_anything_in_it() {
        let d = tempfile::tempdir().unwrap();
        assert!(refuse_non_empty(&d.path().join("new")).is_ok());
        assert!(refuse_non_empty(d.path()).is_ok());
        std::fs::write(d.path().join("x"), "").unwrap();
        assert!(refuse_non_empty(d.path()).unwrap_err().to_string().contains("not empty"));
    }
}
