//! Chaos, rolling upgrade (loopback): a 1+2+4 mesh that starts on the
//! previous release (0.1.0, built from git history) is upgraded one office
//! at a time, in a random order, under a steady workload, with a `kill -9`
//! of one freshly upgraded node mid-write. Every write that got a 201 must
//! survive and the mesh must converge. Prints `seed=N`; `JOBMESH_SEED=N`
//! replays it, `JOBMESH_HEAVY=1` runs the long form; `jobmesh-chaos
//! scenario rolling-upgrade` runs it on any topology.

use std::time::Duration;

use jobmesh_tests::chaos::{self, scenarios, Layer, Opts};
use jobmesh_tests::within;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_rolling_upgrade_from_the_previous_release_loses_nothing() {
    // Built before the time limit starts (about two minutes when cold).
    jobmesh_tests::previous::previous_release_bin();
    let _one = chaos::serial().await;
    let opts = Opts::from_env("chaos_rolling_upgrade", Layer::Loopback);
    let limit = if opts.heavy { 900 } else { 240 };
    within(Duration::from_secs(limit), "chaos_rolling_upgrade", async {
        scenarios::rolling_upgrade(&opts).await.assert_ok();
    })
    .await;
}
