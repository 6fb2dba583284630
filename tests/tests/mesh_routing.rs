//! Routing on a 1+2+4 tree of real processes: every record created through
//! the API ends up at exactly the nodes `routing::holds` names, postings
//! carry the fills made anywhere they are visible, and the province's
//! summary adds up.

use std::time::Duration;

use jobmesh_protocol::record::Kind;
use jobmesh_tests::{eventually, posting_body, within, worker_body, Mesh, Oracle};
use serde_json::Value;

const NODES: [&str; 7] = ["gz", "gz/a", "gz/b", "gz/a/x", "gz/a/y", "gz/b/z", "gz/b/w"];
const CONVERGE: Duration = Duration::from_secs(30);

fn others<'a>(all: &[&'a str], keep: &[&str]) -> Vec<&'a str> {
    all.iter().copied().filter(|n| !keep.contains(n)).collect()
}

fn check_created(p: &Value, at: &str, audience: &str, positions: u64) {
    assert_eq!(p["origin"], at, "origin of a posting created at {at}: {p}");
    assert_eq!(p["audience"], audience, "audience of posting: {p}");
    assert!(p["version"].as_u64().is_some_and(|v| v >= 1), "version: {p}");
    assert_eq!(p["filled"], 0, "filled of a new posting: {p}");
    assert_eq!(p["remaining"].as_u64(), Some(positions), "remaining of a new posting: {p}");
    assert_eq!(p["status"], "open", "status of a new posting: {p}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_reach_exactly_the_nodes_the_routing_rule_names() {
    within(Duration::from_secs(120), "mesh_routing", async {
        // The county that publishes for another city holds the province's
        // tree, so the other city is an office it knows (an audience outside
        // a node's topology, lineage and children is refused).
        let tree = tempfile::NamedTempFile::new().unwrap();
        let mut tsv = String::from("id\tparent\ttier\tname\tname_zh\n");
        for id in NODES {
            let parent = id.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
            let tier = ["province", "city", "county"][id.matches('/').count()];
            tsv += &format!("{id}\t{parent}\t{tier}\t{id}\t{id}\n");
        }
        std::fs::write(tree.path(), tsv).unwrap();
        let mut mesh = Mesh::new_with(&NODES, |c| {
            if c.node_id == "gz/a/y" {
                c.extra.push(format!("topology = {:?}", tree.path().display().to_string()));
            }
        });
        mesh.start_all().await;
        let mut oracle = Oracle::new();

        // A province-wide posting.
        let p_gz = mesh.api("gz").post_posting(&posting_body("province-wide welder", 10, Some("gz"))).await;
        check_created(&p_gz, "gz", "gz", 10);
        let p_gz = p_gz["id"].as_str().unwrap_or_default().to_string();
        oracle.posting("gz", &p_gz, "gz", 10);

        // A county posting for its whole city.
        let p_x = mesh.api("gz/a/x").post_posting(&posting_body("city-wide cook", 5, Some("gz/a"))).await;
        check_created(&p_x, "gz/a/x", "gz/a", 5);
        let p_x = p_x["id"].as_str().unwrap_or_default().to_string();
        oracle.posting("gz/a/x", &p_x, "gz/a", 5);

        // A county posting without audience: defaults to the county itself.
        let p_z = mesh.api("gz/b/z").post_posting(&posting_body("county-only driver", 3, None)).await;
        check_created(&p_z, "gz/b/z", "gz/b/z", 3);
        let p_z = p_z["id"].as_str().unwrap_or_default().to_string();
        oracle.posting("gz/b/z", &p_z, "gz/b/z", 3);

        // A county publishing for another city.
        let p_yb = mesh.api("gz/a/y").post_posting(&posting_body("miners for city b", 2, Some("gz/b"))).await;
        check_created(&p_yb, "gz/a/y", "gz/b", 2);
        let p_yb = p_yb["id"].as_str().unwrap_or_default().to_string();
        oracle.posting("gz/a/y", &p_yb, "gz/b", 2);

        // Workers: up only.
        let w_x = mesh.api("gz/a/x").post_worker(&worker_body("Worker at x")).await;
        let w_x = w_x["id"].as_str().unwrap_or_default().to_string();
        oracle.worker("gz/a/x", &w_x);
        let w_y = mesh.api("gz/a/y").post_worker(&worker_body("Worker at y")).await;
        let w_y = w_y["id"].as_str().unwrap_or_default().to_string();
        oracle.worker("gz/a/y", &w_y);

        // The province-wide posting reaches all seven nodes.
        mesh.wait_held("postings", &p_gz, &NODES, CONVERGE).await;
        // The city-wide county posting reaches its sibling, its city and the province.
        mesh.wait_held("postings", &p_x, &["gz/a/x", "gz/a/y", "gz/a", "gz"], CONVERGE).await;
        // The worker at gz/a/x goes up only.
        mesh.wait_held("workers", &w_x, &["gz/a/x", "gz/a", "gz"], CONVERGE).await;

        // A placement at gz/a/y, of a worker registered there, for the gz/a/x posting.
        let pl = mesh.api("gz/a/y").post_placement(&w_y, &p_x).await;
        assert_eq!(pl["worker_id"], w_y.as_str(), "placement body: {pl}");
        assert_eq!(pl["posting_id"], p_x.as_str(), "placement body: {pl}");
        let pl = pl["id"].as_str().unwrap_or_default().to_string();
        oracle.placement("gz/a/y", &pl, "gz/a/y", &p_x);

        // Shown as filled at the posting's own office (a sibling) and at the province.
        for node in ["gz/a/x", "gz", "gz/a/y", "gz/a"] {
            let api = mesh.api(node);
            eventually(&format!("{p_x} shows filled=1 remaining=4 at {node}"), CONVERGE, || async {
                let p = api.get_posting(&p_x).await?.ok_or("404")?;
                if p["filled"] == 1 && p["remaining"] == 4 {
                    Ok(())
                } else {
                    Err(format!("filled={} remaining={}", p["filled"], p["remaining"]))
                }
            })
            .await;
        }

        // The worker placed is `placed` at its office; the other one still seeking.
        let api_y = mesh.api("gz/a/y");
        eventually("worker at y is placed at gz/a/y", CONVERGE, || async {
            let w = api_y.get_worker(&w_y).await?.ok_or("404")?;
            if w["status"] == "placed" {
                Ok(())
            } else {
                Err(w.to_string())
            }
        })
        .await;

        // Every node holds exactly what the routing rule gives it.
        eventually("every node holds exactly the records the routing rule gives it", CONVERGE, || {
            mesh.check_converged(&oracle)
        })
        .await;

        // Explicit negative checks, now that the mesh has converged.
        mesh.assert_absent("postings", &p_x, &["gz/b", "gz/b/z", "gz/b/w"]).await;
        mesh.assert_absent("postings", &p_z, &others(&NODES, &["gz/b/z", "gz/b", "gz"])).await;
        mesh.assert_absent("postings", &p_yb, &["gz/a/x"]).await;
        mesh.assert_absent("workers", &w_x, &others(&NODES, &["gz/a/x", "gz/a", "gz"])).await;
        mesh.assert_absent("workers", &w_y, &others(&NODES, &["gz/a/y", "gz/a", "gz"])).await;
        assert_eq!(oracle.holders(Kind::Placement, &pl, &NODES), vec!["gz", "gz/a", "gz/a/y"]);
        let w = mesh.api("gz/a/x").get_worker(&w_x).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(w.as_ref().map(|w| w["status"].clone()), Some("seeking".into()), "worker at x: {w:?}");

        // The province's figures are the sum over the records.
        let gz = mesh.api("gz");
        eventually("the province's subtree figures add up", CONVERGE, || async {
            let s = gz.summary().await?;
            let t = &s["subtree"];
            let want = [
                ("postings_open", 4),
                ("positions_open", 10 + 4 + 3 + 2),
                ("positions_filled", 1),
                ("workers_registered", 2),
                ("workers_seeking", 1),
                ("placements", 1),
            ];
            let wrong: Vec<String> = want
                .iter()
                .filter(|(k, v)| t[*k].as_u64() != Some(*v))
                .map(|(k, v)| format!("{k}={} (want {v})", t[*k]))
                .collect();
            let nodes: Vec<&str> = s["nodes"]
                .as_array()
                .map(|a| a.iter().filter_map(|n| n["node_id"].as_str()).collect())
                .unwrap_or_default();
            let missing: Vec<&&str> = NODES.iter().filter(|n| !nodes.contains(n)).collect();
            if wrong.is_empty() && missing.is_empty() {
                Ok(())
            } else {
                Err(format!("wrong {wrong:?}; offices missing from nodes {missing:?}; summary: {s}"))
            }
        })
        .await;

        // Links: every one up, nothing left to deliver.
        eventually("every link is connected with an empty backlog", CONVERGE, || async {
            let mut bad = Vec::new();
            for n in NODES {
                let st = mesh.api(n).status().await?;
                let mut links: Vec<&Value> = st["children"].as_array().map(|c| c.iter().collect()).unwrap_or_default();
                if !st["parent"].is_null() {
                    links.push(&st["parent"]);
                }
                let want_links =
                    NODES.iter().filter(|c| jobmesh_tests::nid(c).parent().is_some_and(|p| p.as_str() == n)).count()
                        + usize::from(n != "gz");
                if links.len() != want_links {
                    bad.push(format!("{n}: {} links, want {want_links}: {st}", links.len()));
                }
                for l in links {
                    if l["connected"] != true || l["backlog"] != 0 {
                        bad.push(format!(
                            "{n} link to {}: connected={} backlog={}",
                            l["node_id"], l["connected"], l["backlog"]
                        ));
                    }
                }
            }
            if bad.is_empty() {
                Ok(())
            } else {
                Err(bad.join("; "))
            }
        })
        .await;

        // The other endpoints answer.
        let r = mesh.api("gz").get("/metrics").await.unwrap_or_else(|e| panic!("{e}"));
        assert!(
            r.status == 200
                && (r.content_type.starts_with("text/plain")
                    || r.content_type.starts_with("application/openmetrics-text"))
                && r.text.contains("# TYPE"),
            "/metrics: {}",
            r.describe()
        );
        let r = mesh.api("gz").get("/").await.unwrap_or_else(|e| panic!("{e}"));
        assert!(r.status == 200 && r.content_type.starts_with("text/html"), "/: {}", r.describe());

        mesh.finish().await;
    })
    .await;
}
