//! The node's store: the protocol's key-value boundary on sled 0.34.
//!
//! One sled tree holds everything (records, journal, checkpoints, counters)
//! so that a batch and its checkpoint are one atomic `apply_batch`. sled only
//! flushes in the background every 500 ms, so durability comes from explicit
//! flushes made by the engine host's flusher thread (group commit), never
//! from here.
//!
//! sled latches the first IO error it meets (a full disk, say) and fails
//! every later call with it, so a store that failed is only usable again
//! after it is closed and opened anew. [`SledKv`] is therefore a handle on
//! a slot that [`SledKv::reopen`] can refill: readers take the open
//! database out of the slot for the length of one call (never across an
//! await), and while the slot is empty every call fails with
//! [`StoreError::Backend`], which the API answers with 503.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

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
    /// The previous database is still referenced by a reader; try again.
    #[error("the store in {0} is still in use by a reader")]
    Busy(PathBuf),
}

/// One open sled database.
struct Open {
    db: sled::Db,
    tree: sled::Tree,
}

struct Shared {
    dir: PathBuf,
    slot: RwLock<Option<Arc<Open>>>,
    /// A database taken out of the slot by [`SledKv::reopen`] that a
    /// reader still used at the time; it is dropped (closing sled's files)
    /// once nobody else holds it.
    retiring: std::sync::Mutex<Option<Arc<Open>>>,
    /// Held for the life of the node: a second node on the same data_dir is
    /// refused instead of corrupting it.
    _lock: File,
}

/// A handle on the node's store. Cheap to clone; all clones see one database.
#[derive(Clone)]
pub struct SledKv {
    shared: Arc<Shared>,
}

fn open_sled(dir: &Path) -> Result<Open, OpenError> {
    let db = sled::Config::new()
        .path(dir.join("store"))
        .cache_capacity(64 * 1024 * 1024)
        .mode(sled::Mode::HighThroughput)
        .open()
        .map_err(|source| OpenError::Sled { path: dir.to_owned(), source })?;
    let tree = db.open_tree("jobmesh").map_err(|source| OpenError::Sled { path: dir.to_owned(), source })?;
    Ok(Open { db, tree })
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
        let open = open_sled(data_dir)?;
        Ok(SledKv {
            shared: Arc::new(Shared {
                dir: data_dir.to_owned(),
                slot: RwLock::new(Some(Arc::new(open))),
                retiring: std::sync::Mutex::new(None),
                _lock: lock,
            }),
        })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The open database, for one call. The lock is held only to clone the
    /// `Arc`, never across IO.
    fn open_db(&self) -> Result<Arc<Open>, StoreError> {
        let slot = self.shared.slot.read().unwrap_or_else(|p| p.into_inner());
        slot.clone().ok_or_else(|| StoreError::Backend("the store is being reopened after a failure".into()))
    }

    /// Close the database and open it again, so that an IO error sled has
    /// latched (a full disk) no longer fails every call. What was written
    /// but not flushed before the failure may be lost, as in a crash: the
    /// caller rebuilds its state from the store afterwards.
    ///
    /// Returns [`OpenError::Busy`] while a reader still holds the old
    /// database (call again shortly); the slot stays empty meanwhile.
    pub fn reopen(&self) -> Result<(), OpenError> {
        let taken = self.shared.slot.write().unwrap_or_else(|p| p.into_inner()).take();
        let mut retiring = self.shared.retiring.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = taken {
            *retiring = Some(old);
        }
        if retiring.as_ref().is_some_and(|old| Arc::strong_count(old) > 1) {
            return Err(OpenError::Busy(self.shared.dir.clone()));
        }
        // The last reference: dropping it closes sled's files and releases
        // its file lock, so the database can be opened again.
        drop(retiring.take());
        drop(retiring);
        let open = open_sled(&self.shared.dir)?;
        *self.shared.slot.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(open));
        Ok(())
    }

    /// Make everything written so far durable (blocking: the flusher thread
    /// calls it, never an async worker).
    pub fn flush_blocking(&self) -> Result<usize, StoreError> {
        self.open_db()?.db.flush().map_err(backend)
    }

    /// Every entry, in key order (for backups: call it where no write can
    /// run meanwhile, i.e. on the engine thread).
    pub fn export(&self) -> Result<Entries, StoreError> {
        self.open_db()?.tree.iter().map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(backend)).collect()
    }

    /// Bytes the database occupies on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.open_db().ok().and_then(|o| o.db.size_on_disk().ok()).unwrap_or(0)
    }

    /// Bytes free on the data directory's filesystem.
    pub fn available_space(&self) -> std::io::Result<u64> {
        fs2::available_space(&self.shared.dir)
    }
}

/// Is this IO error a full disk or an exhausted quota?
pub fn is_disk_full(e: &std::io::Error) -> bool {
    const ENOSPC: i32 = 28;
    const EDQUOT: i32 = 122;
    e.kind() == std::io::ErrorKind::StorageFull || matches!(e.raw_os_error(), Some(ENOSPC | EDQUOT))
}

fn backend(e: sled::Error) -> StoreError {
    match &e {
        sled::Error::Io(io) if is_disk_full(io) => StoreError::Full(e.to_string()),
        _ => StoreError::Backend(e.to_string()),
    }
}

impl Kv for SledKv {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.open_db()?.tree.get(key).map_err(backend)?.map(|v| v.to_vec()))
    }

    fn scan(&self, from: &[u8], to: &[u8], limit: usize) -> Result<Entries, StoreError> {
        if from >= to {
            return Ok(Vec::new());
        }
        self.open_db()?
            .tree
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
        self.open_db()?.tree.apply_batch(b).map_err(backend)
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

    #[test]
    fn reopen_keeps_what_was_flushed_and_waits_for_readers() {
        let dir = tempfile::tempdir().unwrap();
        let mut kv = SledKv::open(dir.path()).unwrap();
        let mut b = WriteBatch::default();
        b.put(b"k".to_vec(), b"v".to_vec());
        kv.write(b).unwrap();
        kv.flush_blocking().unwrap();
        let reader = kv.open_db().unwrap();
        assert!(matches!(kv.reopen(), Err(OpenError::Busy(_))));
        assert!(kv.get(b"k").is_err(), "no database while the old one is retiring");
        drop(reader);
        kv.reopen().unwrap();
        assert_eq!(kv.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
    }
}
