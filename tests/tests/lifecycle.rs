//! A posting's life across the tree: placements up to the positions known
//! (409 beyond), placements at an ancestor of the worker's office, changes
//! only at the origin (403 elsewhere), new versions reaching every holder,
//! withdrawn postings refusing placements, filters and paging, and the
//! province's figures once it all settled.

use std::collections::BTreeSet;
use std::time::Duration;

use jobmesh_tests::{eventually, posting_body, within, worker_body, Mesh, Oracle};
use serde_json::{json, Value};

const NODES: [&str; 4] = ["gz", "gz/a", "gz/a/x", "gz/a/y"];
const CONVERGE: Duration = Duration::from_secs(30);

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap_or_else(|| panic!("no id in {v}")).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placements_patches_and_withdrawal_follow_the_contract() {
    within(Duration::from_secs(120), "lifecycle", async {
        let mesh = Mesh::start(&NODES).await;
        let mut oracle = Oracle::new();
        let (x, y, a, gz) = (mesh.api("gz/a/x"), mesh.api("gz/a/y"), mesh.api("gz/a"), mesh.api("gz"));

        // One position, two candidates at the same county.
        let p1 = id_of(&x.post_posting(&posting_body("single opening", 1, Some("gz/a"))).await);
        oracle.posting("gz/a/x", &p1, "gz/a", 1);
        let w1 = id_of(&x.post_worker(&worker_body("first")).await);
        let w2 = id_of(&x.post_worker(&worker_body("second")).await);
        oracle.worker("gz/a/x", &w1);
        oracle.worker("gz/a/x", &w2);
        let l1 = id_of(&x.post_placement(&w1, &p1).await);
        oracle.placement("gz/a/x", &l1, "gz/a/x", &p1);
        let r = x
            .post_json("/v1/placements", &json!({"worker_id": w2, "posting_id": p1}))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status, 409, "placement beyond the positions known: {}", r.describe());
        assert!(r.error().is_some(), "409 without JSON error: {}", r.describe());

        // A placement at an ancestor (gz/a) of the worker's office (gz/a/y)
        // travels down to the office, where the worker becomes placed.
        let q = id_of(&gz.post_posting(&posting_body("province job", 3, Some("gz"))).await);
        oracle.posting("gz", &q, "gz", 3);
        let w3 = id_of(&y.post_worker(&worker_body("third")).await);
        oracle.worker("gz/a/y", &w3);
        mesh.wait_held("workers", &w3, &["gz/a"], CONVERGE).await;
        mesh.wait_held("postings", &q, &NODES, CONVERGE).await;
        let l3 = id_of(&a.post_placement(&w3, &q).await);
        oracle.placement("gz/a", &l3, "gz/a/y", &q);
        eventually("worker placed at gz/a is `placed` at its office gz/a/y", CONVERGE, || async {
            let w = y.get_worker(&w3).await?.ok_or("404")?;
            if w["status"] == "placed" {
                Ok(())
            } else {
                Err(w.to_string())
            }
        })
        .await;
        mesh.wait_held("placements", &l3, &["gz/a/y", "gz/a", "gz"], CONVERGE).await;

        // A node that does not hold the worker cannot place it: 404 naming it.
        let r = x
            .post_json("/v1/placements", &json!({"worker_id": w3, "posting_id": q}))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status, 404, "placement of a worker not held here: {}", r.describe());
        assert!(r.error().is_some_and(|e| e.contains(&w3)), "404 should name {w3}: {}", r.describe());

        // Only the origin changes a posting.
        let r = a
            .patch_json(&format!("/v1/postings/{q}"), &json!({"status": "withdrawn"}))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status, 403, "PATCH at a non-origin: {}", r.describe());
        assert!(r.error().is_some(), "403 without JSON error: {}", r.describe());
        let r = gz
            .patch_json(&format!("/v1/postings/{q}"), &json!({"status": "deleted"}))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            r.status == 400 && r.error().is_some_and(|e| e.contains("status")),
            "PATCH with a bad status: {}",
            r.describe()
        );
        let r = gz
            .patch_json(&format!("/v1/postings/{q}"), &json!({"audience": "gz/a"}))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            (400..500).contains(&r.status) && r.error().is_some_and(|e| e.contains("audience")),
            "PATCH changing the audience (fixed at creation) must be refused naming it: {}",
            r.describe()
        );
        let r = gz
            .patch_json("/v1/postings/gz_p999", &json!({"status": "withdrawn"}))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status, 404, "PATCH of an unknown posting: {}", r.describe());

        let r = gz
            .patch_json(&format!("/v1/postings/{q}"), &json!({"title": "renamed", "positions": 4}))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status, 200, "PATCH fields at the origin: {}", r.describe());
        let v2 = r.json.unwrap_or_default();
        assert_eq!(
            (v2["version"].as_u64(), v2["title"].as_str(), v2["positions"].as_u64()),
            (Some(2), Some("renamed"), Some(4)),
            "{v2}"
        );
        oracle.posting("gz", &q, "gz", 4);
        let r = gz
            .patch_json(&format!("/v1/postings/{q}"), &json!({"status": "withdrawn"}))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status, 200, "PATCH status at the origin: {}", r.describe());
        let v3 = r.json.unwrap_or_default();
        assert_eq!((v3["version"].as_u64(), v3["status"].as_str()), (Some(3), Some("withdrawn")), "{v3}");

        // The newest version reaches every holder.
        for n in NODES {
            let api = mesh.api(n);
            let q = q.clone();
            eventually(&format!("{n} holds {q} at version 3"), CONVERGE, || async {
                let p = api.get_posting(&q).await?.ok_or("404")?;
                let got = (
                    p["version"].as_u64(),
                    p["status"].as_str(),
                    p["title"].as_str(),
                    p["filled"].as_u64(),
                    p["remaining"].as_u64(),
                );
                if got == (Some(3), Some("withdrawn"), Some("renamed"), Some(1), Some(3)) {
                    Ok(())
                } else {
                    Err(format!("{got:?}"))
                }
            })
            .await;
        }

        // A withdrawn posting takes no placement.
        let w4 = id_of(&y.post_worker(&worker_body("fourth")).await);
        oracle.worker("gz/a/y", &w4);
        let r = y
            .post_json("/v1/placements", &json!({"worker_id": w4, "posting_id": q}))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status, 409, "placement for a withdrawn posting: {}", r.describe());

        // Filters and paging.
        let mut open = posting_body("open catering job", 2, Some("gz"));
        open["category"] = json!("catering");
        open["work_type"] = json!("part_time");
        let r1 = id_of(&gz.post_posting(&open).await);
        oracle.posting("gz", &r1, "gz", 2);
        mesh.wait_held("postings", &r1, &NODES, CONVERGE).await;
        let ids =
            |v: Vec<Value>| v.iter().filter_map(|p| p["id"].as_str().map(str::to_string)).collect::<BTreeSet<_>>();
        let one = |s: &str| BTreeSet::from([s.to_string()]);
        let at_y = |f: &'static [(&'static str, &'static str)]| {
            let y = y.clone();
            async move { y.list_with("postings", 500, f).await.unwrap_or_else(|e| panic!("{e}")) }
        };
        assert_eq!(ids(at_y(&[("open", "true")]).await), one(&r1), "?open=true at gz/a/y");
        assert_eq!(ids(at_y(&[("category", "catering")]).await), one(&r1), "?category=catering");
        assert_eq!(ids(at_y(&[("work_type", "part_time")]).await), one(&r1), "?work_type=part_time");
        assert_eq!(ids(at_y(&[("audience", "gz/a")]).await), one(&p1), "?audience=gz/a");
        let all = ids(y.list_all("postings").await.unwrap_or_else(|e| panic!("{e}")));
        let by_one = ids(y.list_with("postings", 1, &[]).await.unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(all, by_one, "paging one by one gives the same set");
        assert_eq!(all.len(), 3);

        eventually("every node holds exactly its records at the latest versions", CONVERGE, || {
            mesh.check_converged(&oracle)
        })
        .await;

        // Figures at the province: nothing open but r1 (p1 full, q withdrawn).
        eventually("the province's subtree figures add up", CONVERGE, || async {
            let s = gz.summary().await?;
            let t = &s["subtree"];
            let want = [
                ("postings_open", 1),
                ("positions_open", 2),
                ("positions_filled", 2),
                ("workers_registered", 4),
                ("workers_seeking", 2),
                ("placements", 2),
            ];
            let wrong: Vec<String> = want
                .iter()
                .filter(|(k, v)| t[*k].as_u64() != Some(*v))
                .map(|(k, v)| format!("{k}={} (want {v})", t[*k]))
                .collect();
            if wrong.is_empty() {
                Ok(())
            } else {
                Err(format!("{wrong:?} in {s}"))
            }
        })
        .await;

        // Status: links up and record counts as held.
        let st = x.status().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(st["node_id"], "gz/a/x", "{st}");
        assert_eq!(st["parent"]["node_id"], "gz/a", "{st}");
        assert_eq!(st["parent"]["connected"], true, "{st}");
        let st = a.status().await.unwrap_or_else(|e| panic!("{e}"));
        let children: BTreeSet<&str> = st["children"]
            .as_array()
            .map(|c| c.iter().filter_map(|c| c["node_id"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(children, BTreeSet::from(["gz/a/x", "gz/a/y"]), "{st}");
        mesh.finish().await;
    })
    .await;
}
