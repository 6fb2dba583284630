//! Liveness checks poll against a deadline; nothing here sleeps and then
//! asserts. Safety checks are plain assertions made at the moment they must
//! hold.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often [`eventually`] re-checks.
pub const POLL: Duration = Duration::from_millis(200);

/// Poll `check` until it returns `Ok`, at most until `limit` has passed;
/// on timeout panic with `what` and the last state `check` described in its
/// `Err`. Returns the `Ok` value.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    let deadline = start + limit;
    let mut attempts = 0u64;
    loop {
        attempts += 1;
        // A single check may itself hang (a node that accepts but never
        // answers): bound it by the remaining time as well.
        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
        let last = match tokio::time::timeout(left, check()).await {
            Ok(Ok(v)) => return v,
            Ok(Err(e)) => e,
            Err(_) => "the check itself did not finish before the deadline".to_string(),
        };
        if Instant::now() >= deadline {
            panic!("not within {limit:?} ({attempts} checks): {what}\nlast observed: {last}");
        }
        tokio::time::sleep(POLL.min(deadline.saturating_duration_since(Instant::now()))).await;
    }
}

/// Run a whole test body under a time limit; on timeout the body's future is
/// dropped (so a `Mesh` in it kills its nodes and keeps its logs) and the
/// test panics.
///
/// The binary under test is built (or found) first, outside the limit: a
/// cold `cargo build` is not the test's time.
pub async fn within<F: Future>(limit: Duration, what: &str, body: F) -> F::Output {
    if let Err(e) = tokio::task::spawn_blocking(|| {
        crate::bin::jobmesh_bin();
    })
    .await
    {
        std::panic::resume_unwind(e.into_panic());
    }
    match tokio::time::timeout(limit, body).await {
        Ok(v) => v,
        Err(_) => panic!("test `{what}` exceeded its time limit of {limit:?}"),
    }
}

/// A small seeded generator (SplitMix64) so chaos tests replay exactly.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seed from `JOBMESH_SEED` if set, else from the clock; prints the seed
    /// so a failing run can be replayed.
    pub fn from_env(test: &str) -> Rng {
        let seed = match std::env::var("JOBMESH_SEED") {
            Ok(s) => s.trim().parse().unwrap_or_else(|_| panic!("JOBMESH_SEED={s:?} is not a u64")),
            Err(_) => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0x5eed),
        };
        println!("{test}: JOBMESH_SEED={seed}");
        eprintln!("{test}: JOBMESH_SEED={seed}");
        Rng(seed)
    }

    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi` (`hi > lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo)
    }
}
