//! Chaos, backlog (loopback): a county down (stopped or frozen, by seed)
//! while 5,000 records for it pile up at its city and the province
//! (100,000 with `JOBMESH_HEAVY=1`, or `JOBMESH_BACKLOG=N`), then back.
//! Prints `seed=N`; `JOBMESH_SEED=N` replays it. See
//! `src/chaos/README.md`.

use std::time::Duration;

use jobmesh_tests::chaos::{self, scenarios, Layer, Opts};
use jobmesh_tests::within;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_county_down_with_a_backlog_catches_up() {
    let _one = chaos::serial().await;
    let opts = Opts::from_env("chaos_county_backlog", Layer::Loopback);
    let limit = if opts.heavy { 3600 } else { 180 };
    within(Duration::from_secs(limit), "chaos_county_backlog", async {
        scenarios::county_backlog(&opts).await.assert_ok();
    })
    .await;
}
