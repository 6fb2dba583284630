//! Offices keep working while a link is down, and catch up when it heals:
//! first a county is stopped (SIGTERM) while the province writes; then the
//! city above a county is stopped while the county and the province write.
//! Both sides converge to exactly what the routing rule gives them.

use std::time::Duration;

use jobmesh_tests::{eventually, posting_body, within, worker_body, Mesh, Oracle};

const NODES: [&str; 4] = ["gz", "gz/a", "gz/a/x", "gz/a/y"];
/// After a restart the node (or its child) may be in a reconnect backoff.
const CATCH_UP: Duration = Duration::from_secs(45);

fn id_of(v: &serde_json::Value) -> String {
    v["id"].as_str().unwrap_or_else(|| panic!("no id in {v}")).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_county_and_stopped_city_catch_up() {
    within(Duration::from_secs(150), "offline_catchup", async {
        let mut mesh = Mesh::start(&NODES).await;
        let mut oracle = Oracle::new();

        // Links work before any fault.
        let p0 = id_of(&mesh.api("gz").post_posting(&posting_body("before any fault", 4, Some("gz"))).await);
        oracle.posting("gz", &p0, "gz", 4);
        mesh.wait_held("postings", &p0, &NODES, CATCH_UP).await;

        // 1. A county is down while the province and its city write.
        mesh.stop("gz/a/x").await;
        let p1 = id_of(&mesh.api("gz").post_posting(&posting_body("while county x is down", 6, Some("gz"))).await);
        oracle.posting("gz", &p1, "gz", 6);
        let p2 = id_of(&mesh.api("gz/a").post_posting(&posting_body("city a while x is down", 2, Some("gz/a"))).await);
        oracle.posting("gz/a", &p2, "gz/a", 2);
        // Twenty changes of one posting while the county is away: it must
        // get the last version when it comes back.
        for i in 1..=20 {
            let r = mesh
                .api("gz")
                .patch_json(&format!("/v1/postings/{p1}"), &serde_json::json!({"title": format!("revision {i}")}))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(r.status, 200, "PATCH at the origin: {}", r.describe());
        }
        // The live part of the tree gets them without the county.
        mesh.wait_held("postings", &p1, &["gz", "gz/a", "gz/a/y"], CATCH_UP).await;
        mesh.wait_held("postings", &p2, &["gz/a", "gz/a/y"], CATCH_UP).await;

        mesh.start_node("gz/a/x").await;
        // Its data survived the stop.
        let held = mesh.api("gz/a/x").get_posting(&p0).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(held.is_some(), "gz/a/x lost {p0} across a SIGTERM restart");
        let x = mesh.api("gz/a/x");
        eventually("gz/a/x gets the last revision of p1", CATCH_UP, || async {
            let p = x.get_posting(&p1).await?.ok_or("404")?;
            if p["version"] == 21 && p["title"] == "revision 20" {
                Ok(())
            } else {
                Err(format!("version {} title {}", p["version"], p["title"]))
            }
        })
        .await;
        mesh.wait_held("postings", &p2, &["gz/a/x"], CATCH_UP).await;

        // The restarted county writes, and the rest of the tree gets it.
        let p3 = id_of(&mesh.api("gz/a/x").post_posting(&posting_body("county x after restart", 3, Some("gz"))).await);
        oracle.posting("gz/a/x", &p3, "gz", 3);
        assert_ne!(p3, p0, "a restarted node reused a record id");
        mesh.wait_held("postings", &p3, &NODES, CATCH_UP).await;
        eventually("converged after the county came back", CATCH_UP, || mesh.check_converged(&oracle)).await;

        // 2. The city above the county is down while the county and the
        // province write.
        mesh.stop("gz/a").await;
        let p4 = id_of(
            &mesh.api("gz/a/x").post_posting(&posting_body("county x while city a is down", 5, Some("gz"))).await,
        );
        oracle.posting("gz/a/x", &p4, "gz", 5);
        let w4 = id_of(&mesh.api("gz/a/x").post_worker(&worker_body("registered while city a is down")).await);
        oracle.worker("gz/a/x", &w4);
        let p5 =
            id_of(&mesh.api("gz").post_posting(&posting_body("province while city a is down", 7, Some("gz"))).await);
        oracle.posting("gz", &p5, "gz", 7);
        // Local writes are visible locally at once.
        mesh.wait_held("postings", &p4, &["gz/a/x"], Duration::from_secs(5)).await;
        mesh.wait_held("workers", &w4, &["gz/a/x"], Duration::from_secs(5)).await;
        // A placement at the county for the province's posting it already holds.
        let pl = id_of(&mesh.api("gz/a/x").post_placement(&w4, &p1).await);
        oracle.placement("gz/a/x", &pl, "gz/a/x", &p1);

        mesh.start_node("gz/a").await;
        // Up: the county's records reach the province through the restarted city.
        mesh.wait_held("postings", &p4, &NODES, CATCH_UP).await;
        mesh.wait_held("workers", &w4, &["gz/a/x", "gz/a", "gz"], CATCH_UP).await;
        // Down: the province's posting reaches both counties.
        mesh.wait_held("postings", &p5, &NODES, CATCH_UP).await;

        eventually("converged after the city came back", CATCH_UP, || mesh.check_converged(&oracle)).await;
        mesh.finish().await;
    })
    .await;
}
