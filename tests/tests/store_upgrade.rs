//! The store format across releases, with real processes:
//!
//! - this build opens a data directory written by the previous release
//!   (0.1.0: records, checkpoints, journal) and upgrades it in place, and
//!   `kill -9` at random moments of that first start (the upgrade happens
//!   at open) never leaves a store it cannot open or one that lost anything;
//! - the previous release, given the upgraded store, refuses to start with a
//!   message naming both formats and changes nothing in it.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::time::{Duration, Instant};

use jobmesh_tests::previous::previous_release_bin;
use jobmesh_tests::{eventually, posting_body, within, worker_body, Mesh, Oracle, Rng};
use serde_json::Value;

const CONVERGE: Duration = Duration::from_secs(60);
/// `kill -9` points tried during the first start on the old store.
const KILLS: usize = 6;

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap_or_else(|| panic!("no id in {v}")).to_string()
}

/// Every file under `dir` with a hash of its bytes, except sled's
/// `snap.*`: an index of its own log that sled may rewrite whenever it
/// opens a store (0.1.0's open included) without changing what it holds.
/// The log (`db`) and `conf` must stay byte for byte, and this build must
/// still open the store with everything in it (checked after).
fn fingerprint(dir: &Path) -> BTreeMap<String, (u64, u64)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("read_dir {}: {e}", d.display())) {
            let p = e.unwrap_or_else(|e| panic!("dir entry: {e}")).path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n != "LOCK" && !n.starts_with("snap.")) {
                let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
                let mut h = std::collections::hash_map::DefaultHasher::new();
                bytes.hash(&mut h);
                out.insert(p.strip_prefix(dir).unwrap_or(&p).display().to_string(), (bytes.len() as u64, h.finish()));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_previous_release_store_upgrades_in_place_and_survives_kill9() {
    let old_bin = previous_release_bin();
    let mut rng = Rng::from_env("store_upgrade");
    within(Duration::from_secs(400), "store_upgrade", async {
        let mut mesh = Mesh::new(&["gz", "gz/a"]);
        mesh.set_binary("gz", Some(old_bin));
        mesh.set_binary("gz/a", Some(old_bin));
        mesh.start_all().await;
        let mut oracle = Oracle::new();
        for at in ["gz", "gz/a"] {
            for i in 0..5 {
                let p = id_of(&mesh.api(at).post_posting(&posting_body(&format!("job {i} at {at}"), 4, None)).await);
                oracle.posting(at, &p, at, 4);
                let w = id_of(&mesh.api(at).post_worker(&worker_body(&format!("worker {i} at {at}"))).await);
                oracle.worker(at, &w);
                let l = id_of(&mesh.api(at).post_placement(&w, &p).await);
                oracle.placement(at, &l, at, &p);
            }
        }
        let wide = id_of(&mesh.api("gz").post_posting(&posting_body("province-wide", 9, Some("gz"))).await);
        oracle.posting("gz", &wide, "gz", 9);
        eventually("0.1.0 mesh converges", CONVERGE, || mesh.check_converged(&oracle)).await;
        mesh.stop("gz").await;

        // The first starts of this build on the 0.1.0 store, killed at
        // random moments up to about how long a start takes.
        mesh.set_binary("gz", None);
        let started = Instant::now();
        mesh.start_node("gz").await;
        let start_ms = started.elapsed().as_millis().max(50) as u64;
        mesh.kill9("gz");
        for k in 0..KILLS {
            let after = rng.range(0, start_ms + start_ms / 2);
            eprintln!("kill -9 #{k} of gz {after} ms into its start");
            mesh.start_detached("gz");
            tokio::time::sleep(Duration::from_millis(after)).await;
            mesh.kill9("gz");
        }
        mesh.start_node("gz").await;
        eventually("upgraded gz holds everything, syncing with 0.1.0 gz/a", CONVERGE, || mesh.check_converged(&oracle))
            .await;
        // gz/a redials with backoff after the kills: wait for its link, then
        // check that it was negotiated at the previous protocol.
        let status = eventually("0.1.0 gz/a linked to the upgraded gz", CONVERGE, || async {
            let status = mesh.api("gz").status().await?;
            let child = &status["children"][0];
            if child["node_id"] == "gz/a" && child["connected"] == true {
                Ok(status)
            } else {
                Err(format!("gz/a not linked yet: {status}"))
            }
        })
        .await;
        assert_eq!(status["children"][0]["protocol"], 1, "gz/a runs 0.1.0: {status}");
        mesh.stop("gz").await;

        // The previous release refuses the upgraded store, naming both
        // formats, and changes nothing in it.
        let data = mesh.root().join("nodes").join("gz").join("data");
        let before = fingerprint(&data);
        mesh.set_binary("gz", Some(old_bin));
        let (_, log) = mesh.start_expect_failure("gz", Duration::from_secs(30)).await;
        let last = log.lines().rev().take(20).collect::<Vec<_>>().join("\n");
        assert!(
            last.contains("format 2") && last.contains("this build's 1"),
            "0.1.0 must name the store's format (2) and its own (1):\n{last}"
        );
        assert_eq!(fingerprint(&data), before, "0.1.0 changed the store it refused");

        // And this build still opens it, with everything in it.
        mesh.set_binary("gz", None);
        mesh.start_node("gz").await;
        eventually("gz serves its records after the refusal", CONVERGE, || mesh.check_converged(&oracle)).await;
        mesh.finish().await;
    })
    .await;
}
