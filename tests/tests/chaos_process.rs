//! Chaos, process faults (loopback): kill -9 of a random node every few
//! seconds during writes, restarted each time; and the province restarted
//! under load (SIGTERM with a clean exit, then kill -9). Every write that
//! got a 201 must survive, and the mesh must converge. Each prints
//! `seed=N`; `JOBMESH_SEED=N` replays it, `JOBMESH_HEAVY=1` runs the long
//! form. See `src/chaos/README.md`.

use std::time::Duration;

use jobmesh_tests::chaos::{self, scenarios, Layer, Opts};
use jobmesh_tests::within;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_kill9_random_node_during_writes_loses_nothing() {
    let _one = chaos::serial().await;
    let opts = Opts::from_env("chaos_kill9_random", Layer::Loopback);
    let limit = if opts.heavy { 900 } else { 180 };
    within(Duration::from_secs(limit), "chaos_kill9_random", async {
        scenarios::kill9_random(&opts).await.assert_ok();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_province_restarted_under_load_loses_nothing() {
    let _one = chaos::serial().await;
    let opts = Opts::from_env("chaos_province_restart", Layer::Loopback);
    let limit = if opts.heavy { 900 } else { 150 };
    within(Duration::from_secs(limit), "chaos_province_restart", async {
        scenarios::province_restart(&opts).await.assert_ok();
    })
    .await;
}
