//! Mixed versions in one mesh of real processes: the previous release
//! (0.1.0, built from git history by `jobmesh_tests::previous`) next to this
//! build, in the three shapes an office-by-office upgrade passes through:
//!
//! - an old county under a new city under a new province (`gz/a/k`);
//! - a new county under an old city (`gz/b/k` under `gz/b`);
//! - an old station under a new county (`gz/c/k/s`).
//!
//! Every record kind 0.1.0 knows converges across all of them (nothing lost,
//! nothing doubled). Service matters written at the new county below the old
//! city wait there, counted as held for an older peer, and flow up the
//! moment that city is upgraded (stopped, started with the new binary on its
//! data directory, whose store is upgraded in place).

use std::collections::BTreeSet;
use std::time::Duration;

use jobmesh_protocol::record::Kind;
use jobmesh_tests::previous::previous_release_bin;
use jobmesh_tests::{eventually, posting_body, within, worker_body, Mesh, Oracle};
use serde_json::{json, Value};

const NODES: [&str; 8] = ["gz", "gz/a", "gz/a/k", "gz/b", "gz/b/k", "gz/c", "gz/c/k", "gz/c/k/s"];
const OLD: [&str; 3] = ["gz/a/k", "gz/b", "gz/c/k/s"];
const CONVERGE: Duration = Duration::from_secs(60);

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap_or_else(|| panic!("no id in {v}")).to_string()
}

/// A link of `/v1/status`: the parent, or the child `peer`.
fn link<'a>(status: &'a Value, peer: &str) -> &'a Value {
    if status["parent"]["node_id"] == peer {
        return &status["parent"];
    }
    status["children"]
        .as_array()
        .and_then(|c| c.iter().find(|l| l["node_id"] == peer))
        .unwrap_or_else(|| panic!("no link to {peer} in {status}"))
}

async fn matter_ids(mesh: &Mesh, node: &str) -> Result<BTreeSet<String>, String> {
    mesh.api(node).list_ids("matters").await
}

async fn post_matter(mesh: &Mesh, node: &str, n: usize) -> String {
    let category = ["rights_protection", "job_search", "policy_consultation"][n % 3];
    let channel = ["hotline_12333", "walk_in", "outreach"][n % 3];
    let body = json!({
        "category": category,
        "channel": channel,
        "key_group": "migrant_worker",
        "summary": format!("matter {n} at {node}"),
    });
    let r = mesh.api(node).post_json("/v1/matters", &body).await.unwrap_or_else(|e| panic!("POST matter: {e}"));
    assert_eq!(r.status, 201, "POST /v1/matters at {node}: {}", r.describe());
    id_of(r.json.as_ref().unwrap_or(&Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn previous_release_and_this_build_share_one_mesh() {
    let old_bin = previous_release_bin();
    within(Duration::from_secs(300), "mixed_versions", async {
        let mut mesh = Mesh::new(&NODES);
        for id in OLD {
            mesh.set_binary(id, Some(old_bin));
        }
        mesh.start_all().await;
        let mut oracle = Oracle::new();

        // Every kind 0.1.0 knows, written at every office, old and new.
        let province = id_of(&mesh.api("gz").post_posting(&posting_body("province welder", 20, Some("gz"))).await);
        oracle.posting("gz", &province, "gz", 20);
        let mut workers = Vec::new();
        for (i, at) in NODES.iter().enumerate() {
            let p = id_of(&mesh.api(at).post_posting(&posting_body(&format!("job at {at}"), 3, None)).await);
            oracle.posting(at, &p, at, 3);
            let w = id_of(&mesh.api(at).post_worker(&worker_body(&format!("worker {i} at {at}"))).await);
            oracle.worker(at, &w);
            workers.push((at.to_string(), w, p));
        }
        // Placements need the posting held where they are made: each office
        // places its own worker on its own posting now, and on the
        // province's posting once that has arrived.
        for (at, w, p) in &workers {
            let l = id_of(&mesh.api(at).post_placement(w, p).await);
            oracle.placement(at, &l, at, p);
        }
        for (at, _, _) in &workers {
            mesh.wait_held("postings", &province, &[at], CONVERGE).await;
            let w = id_of(&mesh.api(at).post_worker(&worker_body(&format!("second worker at {at}"))).await);
            oracle.worker(at, &w);
            let l = id_of(&mesh.api(at).post_placement(&w, &province).await);
            oracle.placement(at, &l, at, &province);
        }

        // Service matters at new offices; the previous release has no such
        // route at all.
        for at in OLD {
            let r =
                mesh.api(at).post_json("/v1/matters", &json!({"summary": "x"})).await.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(r.status, 404, "{at} runs 0.1.0, which has no /v1/matters: {}", r.describe());
        }
        let mut flowing = Vec::new();
        for (n, at) in ["gz", "gz/a", "gz/c", "gz/c/k"].iter().enumerate() {
            flowing.push(post_matter(&mesh, at, n).await);
        }
        let mut held_below_old = Vec::new();
        for n in 0..3 {
            held_below_old.push(post_matter(&mesh, "gz/b/k", 10 + n).await);
        }

        // Converged for every kind 0.1.0 knows, old offices included.
        eventually("0.1.0 kinds converge at mixed versions", CONVERGE, || mesh.check_converged(&oracle)).await;

        // Matters flow where every link on the way speaks protocol 2...
        let want_root: BTreeSet<String> = flowing.iter().cloned().collect();
        eventually("matters reach the province through new offices", CONVERGE, || async {
            let got = matter_ids(&mesh, "gz").await?;
            if got == want_root {
                Ok(())
            } else {
                Err(format!("gz holds {got:?}, expected {want_root:?}"))
            }
        })
        .await;
        let at_ck: BTreeSet<String> = matter_ids(&mesh, "gz/c/k").await.unwrap_or_default();
        assert_eq!(at_ck.len(), 1, "a station on 0.1.0 below gz/c/k sends no matters, holds none: {at_ck:?}");
        // ...and wait at the new county below the old city, counted.
        // Three matters and the office's matters summary (published within
        // a second of the matters).
        eventually("gz/b/k counts what waits for gz/b", CONVERGE, || async {
            let status = mesh.api("gz/b/k").status().await?;
            let parent = link(&status, "gz/b");
            if parent["protocol"] == 1 && parent["held_for_older_peer"] == 4 {
                Ok(())
            } else {
                Err(format!("link gz/b/k ↔ gz/b (0.1.0): {parent}"))
            }
        })
        .await;
        let root = mesh.api("gz").status().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(link(&root, "gz/a")["protocol"], 2, "{root}");
        assert_eq!(link(&root, "gz/b")["protocol"], 1, "{root}");
        assert_eq!(link(&root, "gz/c")["protocol"], 2, "{root}");
        let ck = mesh.api("gz/c/k").status().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(link(&ck, "gz/c/k/s")["protocol"], 1, "{ck}");
        assert_eq!(link(&ck, "gz/c/k/s")["held_for_older_peer"], 0, "matters flow up only: {ck}");
        let metrics = mesh.api("gz/b/k").get("/metrics").await.unwrap_or_else(|e| panic!("{e}")).text;
        assert!(
            metrics.contains("jobmesh_link_held_for_older_peer{peer=\"gz/b\",role=\"parent\"} 4"),
            "metrics of gz/b/k:\n{metrics}"
        );
        assert!(metrics.contains("jobmesh_link_protocol{peer=\"gz/b\",role=\"parent\"} 1"), "{metrics}");
        let opened = |s: &Value| s["matters"]["opened"].as_i64();
        let summary = mesh.api("gz").summary().await.unwrap_or_else(|e| panic!("{e}"));
        eventually("the province counts the matters that reached it", CONVERGE, || async {
            let s = mesh.api("gz").summary().await?;
            if opened(&s) == Some(4) {
                Ok(())
            } else {
                Err(format!("matters at gz: {}", s["matters"]))
            }
        })
        .await;
        drop(summary);

        // Upgrade the old city on its data directory: the held matters flow.
        mesh.stop("gz/b").await;
        mesh.set_binary("gz/b", None);
        mesh.start_node("gz/b").await;
        let all: BTreeSet<String> = flowing.iter().chain(&held_below_old).cloned().collect();
        eventually("held matters reach the province once gz/b is upgraded", CONVERGE, || async {
            let got = matter_ids(&mesh, "gz").await?;
            let at_b = matter_ids(&mesh, "gz/b").await?;
            let want_b: BTreeSet<String> = held_below_old.iter().cloned().collect();
            if got == all && at_b == want_b {
                Ok(())
            } else {
                Err(format!("gz holds {got:?}; gz/b holds {at_b:?}"))
            }
        })
        .await;
        eventually("nothing waits for gz/b any more", CONVERGE, || async {
            let s = mesh.api("gz/b/k").status().await?;
            let l = link(&s, "gz/b");
            if l["protocol"] == 2 && l["held_for_older_peer"] == 0 {
                Ok(())
            } else {
                Err(format!("{l}"))
            }
        })
        .await;
        eventually("the province counts every matter once", CONVERGE, || async {
            let s = mesh.api("gz").summary().await?;
            if opened(&s) == Some(7) {
                Ok(())
            } else {
                Err(format!("matters at gz: {}", s["matters"]))
            }
        })
        .await;
        // The upgraded city kept everything it held under 0.1.0.
        eventually("0.1.0 kinds still converge after the upgrade", CONVERGE, || mesh.check_converged(&oracle)).await;
        assert_eq!(oracle.count(Kind::Posting), NODES.len() + 1);
        mesh.finish().await;
    })
    .await;
}
