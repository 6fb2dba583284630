//! Failover with real processes: a city killed for longer than its
//! counties' `failover_after_s`; they reach the province directly and come
//! back when it returns, nothing lost, nothing doubled. The scenario lives
//! in `jobmesh_tests::failover`, shared with the `jobmesh-failover-measure`
//! binary that runs it five times and prints the timings.

use std::time::Duration;

use jobmesh_tests::failover::{run_once, FAILOVER_AFTER_S};
use jobmesh_tests::within;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counties_fail_over_to_the_province_and_return() {
    within(Duration::from_secs(150), "failover", async {
        let t = run_once("failover").await;
        println!(
            "failover: counties fresh at the province {:.1} s after the city's kill -9 (failover_after_s = {FAILOVER_AFTER_S}); converged {:.1} s after its return",
            t.death_to_fresh.as_secs_f64(),
            t.return_to_converged.as_secs_f64()
        );
    })
    .await;
}
