//! The check a node makes of its store before it starts on it: sled's own
//! checksums (sled reads every page a full scan touches) plus
//! [`jobmesh_protocol::integrity::verify`], which decodes every value and
//! checks that records and journal agree. A damaged store stops the node at
//! start with a message saying what to do, so that it never serves or sends
//! what it cannot read.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use jobmesh_protocol::integrity::{self, StoreReport};
use jobmesh_protocol::kv::StoreError;

use crate::storage::{OpenError, SledKv};

/// What to do about a damaged store, said in every such error.
pub const RESTORE_ADVICE: &str = "jobmesh will not start on it, so that it never serves or sends what it cannot \
     read. Stop this node, restore data_dir from the office's latest backup, and start again; do not delete it \
     instead (its records and journal numbers are what the office's neighbours resume from)";

/// Why a node does not start on its store.
#[derive(Debug, thiserror::Error)]
pub enum StoreCheckError {
    /// The store could not be read or does not hold what it should.
    #[error("the store in {path} is damaged: {problem}. {RESTORE_ADVICE}")]
    Damaged { path: PathBuf, problem: String },
    /// Opening failed for another reason (lock, permissions).
    #[error(transparent)]
    Open(OpenError),
}

/// Open the store under `data_dir` and check all of it.
pub fn open_checked(data_dir: &Path) -> Result<(SledKv, StoreReport, Duration), StoreCheckError> {
    let kv = SledKv::open(data_dir).map_err(|e| match e {
        OpenError::Sled { source, .. } if is_damage(&source) => {
            StoreCheckError::Damaged { path: data_dir.to_owned(), problem: source.to_string() }
        }
        other => StoreCheckError::Open(other),
    })?;
    let started = Instant::now();
    let report = integrity::verify(&kv).map_err(|e| {
        let problem = match e {
            StoreError::Backend(p) => format!("the store cannot be read: {p}"),
            other => other.to_string(),
        };
        StoreCheckError::Damaged { path: data_dir.to_owned(), problem }
    })?;
    Ok((kv, report, started.elapsed()))
}

/// sled errors that mean the files are damaged rather than unreachable.
fn is_damage(e: &sled::Error) -> bool {
    match e {
        sled::Error::Corruption { .. } | sled::Error::ReportableBug(_) | sled::Error::Unsupported(_) => true,
        sled::Error::Io(io) => {
            matches!(io.kind(), std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof)
        }
        sled::Error::CollectionNotFound(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jobmesh_protocol::kv::{Kv, WriteBatch};

    #[test]
    fn an_empty_store_passes_and_a_bad_value_is_refused_with_advice() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut kv, report, _) = open_checked(dir.path()).unwrap();
            assert_eq!(report, StoreReport::default());
            let mut b = WriteBatch::default();
            b.put(b"mseq".to_vec(), 1u64.to_be_bytes().to_vec());
            b.put(jobmesh_protocol::store::journal_key(1), vec![0xff; 12]);
            kv.write(b).unwrap();
            kv.flush_blocking().unwrap();
        }
        let e = open_checked(dir.path()).err().expect("a damaged store is refused").to_string();
        assert!(e.contains("is damaged"), "{e}");
        assert!(e.contains("restore data_dir from the office's latest backup"), "{e}");
    }
}
