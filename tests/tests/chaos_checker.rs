//! The chaos checker is not vacuous: a node that loses acknowledged writes
//! (killed, its data folder deleted, restarted) is caught by the safety
//! checker while the run goes on, and the report fails with the writes
//! counted as lost. (The checker's verdict on every other kind of damage —
//! a missing or extra replica, an old version, a duplicate, wrong figures —
//! is unit-tested in `src/chaos/checker.rs`.)

use std::time::Duration;

use jobmesh_tests::chaos::scenarios::{Opts, Run};
use jobmesh_tests::chaos::workload::WorkloadOpts;
use jobmesh_tests::chaos::{self, Layer};
use jobmesh_tests::within;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_checker_catches_a_node_that_loses_acknowledged_writes() {
    let _one = chaos::serial().await;
    let opts = Opts::from_env("chaos_checker_self_test", Layer::Loopback);
    within(Duration::from_secs(120), "chaos_checker_self_test", async {
        let ids = vec!["gz".to_string(), "gz/a".to_string()];
        let mut run = Run::start("checker-self-test", ids, "gz,gz/a", &opts).await;
        run.expect_damage();
        run.write(WorkloadOpts { rate_per_s: 20.0, targets: vec!["gz/a".into()], ..WorkloadOpts::default() });
        run.hold(Duration::from_secs(2)).await;
        run.cluster.kill9("gz/a");
        run.cluster.wipe_data("gz/a");
        run.cluster.start_node("gz/a").await;
        run.fault("kill -9 gz/a, delete its data folder, start it again".into());
        run.hold(Duration::from_secs(3)).await;
        let r = run.finish(true, Duration::from_secs(5)).await;
        assert!(!r.safety.lost.is_empty(), "the safety checker missed the lost writes:\n{r}");
        assert!(!r.lost.is_empty(), "the final check missed the lost writes:\n{r}");
        assert!(!r.ok(), "a run that lost acknowledged writes must fail:\n{r}");
        println!("checker caught {} lost writes during the run, {} at the end", r.safety.lost.len(), r.lost.len());
    })
    .await;
}
