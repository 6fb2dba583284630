//! Catching up a backlog bigger than one batch (`MAX_BATCH_RECORDS`), and
//! being killed in the middle of catching up: a county is stopped while the
//! province publishes 5,000 postings; it comes back, is killed with SIGKILL
//! once it has taken part of the backlog, comes back again, and ends up
//! with every posting exactly once.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::join_all;
use jobmesh_protocol::wire::MAX_BATCH_RECORDS;
use jobmesh_tests::{eventually, posting_body, within, Mesh, Oracle, Rng};

const NODES: [&str; 3] = ["gz", "gz/a", "gz/a/x"];
const BACKLOG: usize = 5_000;
const CLIENTS: usize = 8;
// The backlog must take several batches.
const _: () = assert!(BACKLOG > 2 * MAX_BATCH_RECORDS);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_county_catches_up_a_large_backlog_across_a_kill9() {
    within(Duration::from_secs(150), "backlog", async {
        let mut rng = Rng::from_env("backlog");
        let mut mesh = Mesh::start(&NODES).await;
        mesh.stop("gz/a/x").await;

        let started = Instant::now();
        let ids = Arc::new(Mutex::new(Vec::new()));
        let tasks = (0..CLIENTS).map(|c| {
            let (api, ids) = (mesh.api("gz"), ids.clone());
            tokio::spawn(async move {
                for i in 0..BACKLOG / CLIENTS {
                    let p = api.post_posting(&posting_body(&format!("backlog c{c} n{i}"), 1, Some("gz"))).await;
                    let id = p["id"].as_str().unwrap_or_default().to_string();
                    ids.lock().unwrap_or_else(|p| p.into_inner()).push(id);
                }
            })
        });
        for t in join_all(tasks).await {
            t.unwrap_or_else(|e| panic!("writer: {e}"));
        }
        let ids = ids.lock().unwrap_or_else(|p| p.into_inner()).clone();
        println!("backlog: {} postings written at gz in {:?}", ids.len(), started.elapsed());
        let mut oracle = Oracle::new();
        for id in &ids {
            oracle.posting("gz", id, "gz", 1);
        }

        // Back, then killed part way through the catch-up, which is fast:
        // from its start, poll the county for the k-th posting written (the
        // catch-up follows journal order, close to write order) and kill it
        // as soon as it holds that one.
        let k = rng.range(1, BACKLOG as u64 * 4 / 5) as usize;
        mesh.start_detached("gz/a/x");
        let x = mesh.api("gz/a/x").unpooled();
        let started_x = Instant::now();
        let mut polls = 0;
        let mut held_k = false;
        while started_x.elapsed() < Duration::from_secs(30) {
            polls += 1;
            if let Ok(Ok(Some(_))) = tokio::time::timeout(Duration::from_millis(200), x.get_posting(&ids[k])).await {
                held_k = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(held_k, "gz/a/x did not hold posting #{k} within 30 s of its start: no catch-up to kill");
        mesh.kill9("gz/a/x");
        println!(
            "backlog: killed gz/a/x {:?} after its start, once it held posting #{k} ({polls} polls)",
            started_x.elapsed()
        );
        // The precondition of the test: at the kill the county had not
        // acknowledged the whole backlog, so the restart below really
        // resumes a catch-up. The city's backlog toward it counts the
        // entries it has not acknowledged (the county acknowledges only what
        // is durable); nothing asked the city for it before, so the count is
        // fresh, and with no writes since, it can only have been larger at
        // the kill.
        let status = mesh.api("gz/a").status().await.unwrap_or_else(|e| panic!("status of gz/a: {e}"));
        let owed = status["children"]
            .as_array()
            .and_then(|c| c.iter().find(|l| l["node_id"] == "gz/a/x"))
            .and_then(|l| l["backlog"].as_u64())
            .unwrap_or_else(|| panic!("no backlog toward gz/a/x in gz/a's status: {status}"));
        // (Should the city itself still lack some of the backlog, the
        // county lacked those too.)
        let city_has = status["records"]["postings"].as_u64().unwrap_or(0);
        println!("backlog: after the kill gz/a holds {city_has} postings and still owes gz/a/x {owed}");
        assert!(
            owed > 0 || city_has < BACKLOG as u64,
            "gz/a/x had acknowledged the whole backlog before the kill: the kill missed the catch-up"
        );
        mesh.start_node("gz/a/x").await;

        eventually("every node holds the whole backlog exactly once", Duration::from_secs(60), || {
            mesh.check_converged(&oracle)
        })
        .await;
        println!("backlog: converged {:?} after the first write", started.elapsed());
        mesh.finish().await;
    })
    .await;
}
