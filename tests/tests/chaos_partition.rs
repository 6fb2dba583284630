//! Chaos, link partitions (loopback + fault proxies): a city cut off from
//! the province with writes on both sides, and a flapping link under
//! steady writes. Each prints `seed=N`; `JOBMESH_SEED=N` replays it,
//! `JOBMESH_HEAVY=1` runs the long form. See `src/chaos/README.md`.

use std::time::Duration;

use jobmesh_tests::chaos::{self, scenarios, Layer, Opts};
use jobmesh_tests::within;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_city_cut_off_with_writes_on_both_sides_converges_after_heal() {
    let _one = chaos::serial().await;
    let opts = Opts::from_env("chaos_city_cut", Layer::Loopback);
    let limit = if opts.heavy { 600 } else { 150 };
    within(Duration::from_secs(limit), "chaos_city_cut", async {
        scenarios::city_cut(&opts).await.assert_ok();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_flapping_link_under_steady_writes_converges_after_heal() {
    let _one = chaos::serial().await;
    let opts = Opts::from_env("chaos_flapping_link", Layer::Loopback);
    let limit = if opts.heavy { 600 } else { 150 };
    within(Duration::from_secs(limit), "chaos_flapping_link", async {
        scenarios::flapping_link(&opts).await.assert_ok();
    })
    .await;
}
