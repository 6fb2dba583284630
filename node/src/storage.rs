//! The node's store: the protocol's key-value boundary on sled 0.34.
//!
//! One sled tree holds everything (records, journal, checkpoints, counters)
//! so that a batch and its checkpoint are one atomic `apply_batch`. sled only
//! flushes in the background every 500 ms, so durability comes from explicit
//! `flush_async` calls made by the flusher task (group commit), never from
//! here.

use std::fs::File;
use std::path::{Path, PathBuf};

use fs2::FileExt;
use jobmesh_protocol::kv::{Entries, Kv, StoreError, WriteBatch};

/// Why the data directory could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot create data_dir {path}: {source}")]
    CreateDir { path: PathBuf, source: std::io::Error },
    #[error("data_dir {path} is already held by a running jobmesh node (lock file {lock})")]
    Locked { path: PathBuf, lock: PathBuf },
    #[error("cannot lock {lock}: {source}")]
    Lock { lock: PathBuf, source: std::io::Error },
    #[error("cannot open the store in {path}: {source}")]
    Sled { path: PathBuf, source: sled::Error },
}

/// A handle on the node's store. Cheap to clone; all clones see one database.
#[derive(Clone)]
pub struct SledKv {
    db: sled::Db,
    tree: sled::Tree,
    /// Held for the life of the node: a second node on the same data_dir is
    /// refused instead of corrupting it.
    _lock: std::sync::Arc<File>,
}

impl SledKv {
    /// Open (creating if needed) the store under `data_dir`.
    pub fn open(data_dir: &Path) -> Result<SledKv, OpenError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|source| OpenError::CreateDir { path: data_dir.to_owned(), source })?;
        let lock_path = data_dir.join("LOCK");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| OpenError::Lock { lock: lock_path.clone(), source })?;
        if lock.try_lock_exclusive().is_err() {
            return Err(OpenError::Locked { path: data_dir.to_owned(), lock: lock_path });
        }
        let db = sled::Config::new()
            .path(data_dir.join("store"))
            .cache_capacity(64 * 1024 * 1024)
            .mode(sled::Mode::HighThroughput)
            .open()
            .map_err(|source| OpenError::Sled { path: data_dir.to_owned(), source })?;
        let tree = db.open_tree("jobmesh").map_err(|source| OpenError::Sled { path: data_dir.to_owned(), source })?;
        Ok(SledKv { db, tree, _lock: std::sync::Arc::new(lock) })
    }

    /// Make everything written so far durable.
    pub async fn flush(&self) -> Result<usize, StoreError> {
        self.db.flush_async().await.map_err(backend)
    }

    /// Blocking flush, for shutdown paths outside the runtime.
    pub fn flush_blocking(&self) -> Result<usize, StoreError> {
        self.db.flush().map_err(backend)
    }

    /// Every entry, in key order (for backups: call it where no write can
    /// run meanwhile, i.e. under the engine lock).
    pub fn export(&self) -> Result<Entries, StoreError> {
        self.tree.iter().map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(backend)).collect()
    }

    /// Bytes the database occupies on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}

fn backend(e: sled::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl Kv for SledKv {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree.get(key).map_err(backend)?.map(|v| v.to_vec()))
    }

    fn scan(&self, from: &[u8], to: &[u8], limit: usize) -> Result<Entries, StoreError> {
        if from >= to {
            return Ok(Vec::new());
        }
        self.tree
            .range(from..to)
            .take(limit)
            .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(backend))
            .collect()
    }

    fn write(&mut self, batch: WriteBatch) -> Result<(), StoreError> {
        let mut b = sled::Batch::default();
        for (k, v) in batch.ops {
            match v {
                Some(v) => b.insert(k, v),
                None => b.remove(k),
            }
        }
        self.tree.apply_batch(b).map_err(backend)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_open_of_a_data_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _a = SledKv::open(dir.path()).unwrap();
        let err = SledKv::open(dir.path()).err().expect("second open must fail");
        assert!(err.to_string().contains("already held by a running jobmesh node"), "{err}");
    }
}
