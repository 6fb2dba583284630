//! Replication survives `kill -9` of the relays in the middle of it: two
//! offices in different cities write bursts of province-wide postings while
//! the city between one of them and the province, and then the province
//! itself, are killed and restarted at seeded random moments. Afterwards
//! every node holds exactly the postings the routing rule gives it, each
//! once, at its origin's version. `JOBMESH_SEED=<n>` replays the kill times.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jobmesh_tests::{eventually, posting_body, within, Api, Mesh, Oracle, Rng};

const NODES: [&str; 5] = ["gz", "gz/a", "gz/a/x", "gz/b", "gz/b/z"];
const WRITERS: [&str; 2] = ["gz/a/x", "gz/b/z"];
const CLIENTS_PER_WRITER: usize = 2;
const POSTS_PER_CLIENT: usize = 500;

async fn writer(api: Api, at: &'static str, c: usize, acked: Arc<Mutex<Vec<(String, String)>>>) -> Result<(), String> {
    for i in 0..POSTS_PER_CLIENT {
        let r = api.try_post_posting(&posting_body(&format!("relay test {at} c{c} n{i}"), 1, Some("gz"))).await?;
        if r.status != 201 {
            return Err(format!("POST at {at}: {}", r.describe()));
        }
        let id = r.json.as_ref().and_then(|j| j["id"].as_str()).ok_or("201 without id")?.to_string();
        acked.lock().unwrap_or_else(|p| p.into_inner()).push((at.to_string(), id));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_survives_kill9_of_relays() {
    within(Duration::from_secs(150), "relay_kill9", async {
        let mut rng = Rng::from_env("relay_kill9");
        let mut mesh = Mesh::start(&NODES).await;
        let acked = Arc::new(Mutex::new(Vec::new()));
        let started = std::time::Instant::now();
        let mut tasks = Vec::new();
        for at in WRITERS {
            for c in 0..CLIENTS_PER_WRITER {
                tasks.push(tokio::spawn(writer(mesh.api(at), at, c, acked.clone())));
            }
        }
        // The faults. Sleeping here times the faults; nothing is asserted
        // after a sleep.
        for victim in ["gz/a", "gz"] {
            let before = Duration::from_millis(rng.range(50, 600));
            let down = Duration::from_millis(rng.range(0, 300));
            tokio::time::sleep(before).await;
            let n = acked.lock().unwrap_or_else(|p| p.into_inner()).len();
            println!("relay_kill9: kill -9 {victim} after {n} acknowledged posts, down for {down:?}");
            mesh.kill9(victim);
            tokio::time::sleep(down).await;
            mesh.start_node(victim).await;
        }
        for t in tasks {
            t.await.unwrap_or_else(|e| panic!("writer task: {e}")).unwrap_or_else(|e| panic!("writer failed: {e}"));
        }
        let acked = acked.lock().unwrap_or_else(|p| p.into_inner()).clone();
        println!("relay_kill9: {} posts acknowledged after {:?}", acked.len(), started.elapsed());
        assert_eq!(acked.len(), WRITERS.len() * CLIENTS_PER_WRITER * POSTS_PER_CLIENT);
        let mut oracle = Oracle::new();
        for (at, id) in &acked {
            oracle.posting(at, id, "gz", 1);
        }
        // 25 s, below QUIC's 30 s idle timeout: a node must notice a
        // restarted neighbour by its stateless reset, not by timing out a
        // dead connection (the node derives its reset key from its own key
        // so that a restart can reset the old connections).
        eventually("every node holds exactly every posting once, at its version", Duration::from_secs(25), || {
            mesh.check_converged(&oracle)
        })
        .await;
        println!("relay_kill9: converged after {:?}", started.elapsed());
        mesh.finish().await;
    })
    .await;
}
