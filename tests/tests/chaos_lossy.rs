//! Chaos, degraded links (loopback + fault proxies): 30% loss with
//! reordering and duplication on every link, and a long-haul station link
//! (200 ms RTT, 5% loss) as for the labor cooperation stations in
//! Guangdong. Both converge with the degradation still on. Each prints
//! `seed=N`; `JOBMESH_SEED=N` replays it, `JOBMESH_HEAVY=1` runs the long
//! form. See `src/chaos/README.md`.

use std::time::Duration;

use jobmesh_tests::chaos::{self, scenarios, Layer, Opts};
use jobmesh_tests::within;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_lossy_reordering_duplicating_links_converge() {
    let _one = chaos::serial().await;
    let opts = Opts::from_env("chaos_lossy_links", Layer::Loopback);
    let limit = if opts.heavy { 900 } else { 180 };
    within(Duration::from_secs(limit), "chaos_lossy_links", async {
        scenarios::lossy_links(&opts).await.assert_ok();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_long_haul_station_link_converges() {
    let _one = chaos::serial().await;
    let opts = Opts::from_env("chaos_long_haul_station", Layer::Loopback);
    let limit = if opts.heavy { 900 } else { 150 };
    within(Duration::from_secs(limit), "chaos_long_haul_station", async {
        scenarios::long_haul_station(&opts).await.assert_ok();
    })
    .await;
}
