//! The PostgreSQL sink at the root of a converged 1+2+4 mesh: the tables
//! equal the root's records field by field, the views answer, and the
//! README's example query runs. A real PostgreSQL server is started for
//! the test (see `jobmesh_tests::postgres`).

use std::time::Duration;

use jobmesh_tests::postgres::{compare, Postgres};
use jobmesh_tests::{eventually, posting_body, within, worker_body, Mesh};
use serde_json::json;

const NODES: [&str; 7] = ["gz", "gz/a", "gz/b", "gz/a/x", "gz/a/y", "gz/b/x", "gz/b/y"];
const LEAVES: [&str; 4] = ["gz/a/x", "gz/a/y", "gz/b/x", "gz/b/y"];
const SCHEMA: &str = "mirror";

/// Config lines for a sink at `url` with the password in `pg.password`.
pub fn sink_lines(url: &str, schema: &str, batch_rows: usize) -> Vec<String> {
    vec![
        format!("sink.postgres.url = \"{url}\""),
        "sink.postgres.password_file = \"pg.password\"".into(),
        format!("sink.postgres.schema = \"{schema}\""),
        format!("sink.postgres.batch_rows = {batch_rows}"),
        "sink.postgres.retry_max_ms = 500".into(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converged_mesh_mirror_equals_the_roots_records() {
    let Some(pg) = Postgres::start(false) else { return };
    within(Duration::from_secs(240), "mesh mirror", async {
        pg.create_user_and_db("analyst", "s3cret", "analytics").await;
        let url = pg.url("analyst", "analytics");
        let mut mesh = Mesh::new_with(&NODES, |c| {
            if c.node_id == "gz" {
                c.extra.extend(sink_lines(&url, SCHEMA, 64));
            }
        });
        std::fs::write(mesh.root().join("nodes/gz/pg.password"), "s3cret\n").unwrap();
        mesh.start_all().await;

        // At every leaf: postings for the province, workers, placements of
        // its own workers on its own postings, a withdrawn posting (version
        // 2); at each city: a posting for its subtree.
        let mut expected_postings = 0;
        for (i, leaf) in LEAVES.iter().enumerate() {
            let api = mesh.api(leaf);
            let mut postings = Vec::new();
            for n in 0..12 {
                let p = api.post_posting(&posting_body(&format!("{leaf} job {n}"), 3, Some("gz"))).await;
                postings.push(p["id"].as_str().unwrap().to_string());
            }
            expected_postings += 12;
            for n in 0..6 {
                let mut body = worker_body(&format!("worker {i}-{n}"));
                body["key_group"] = json!(["college_graduate", "migrant_worker", "rural_labor"][n % 3]);
                let w = api.post_worker(&body).await;
                if n < 4 {
                    api.post_placement(w["id"].as_str().unwrap(), &postings[n]).await;
                }
            }
            let r = api
                .patch_json(&format!("/v1/postings/{}", postings[11]), &json!({"status": "withdrawn"}))
                .await
                .unwrap();
            assert_eq!(r.status, 200, "{}", r.describe());
            // A service matter, resolved (version 2, resolved_at set).
            let body = json!({"category": "rights_protection", "channel": "hotline_12333",
                              "key_group": "migrant_worker", "summary": format!("unpaid wages at {leaf}")});
            let r = api.post_json("/v1/matters", &body).await.unwrap();
            assert_eq!(r.status, 201, "{}", r.describe());
            let id = r.json.as_ref().and_then(|j| j["id"].as_str()).unwrap().to_string();
            let r = api.patch_json(&format!("/v1/matters/{id}"), &json!({"status": "resolved"})).await.unwrap();
            assert_eq!(r.status, 200, "{}", r.describe());
        }
        for city in ["gz/a", "gz/b"] {
            mesh.api(city).post_posting(&posting_body(&format!("{city} local"), 2, Some(city))).await;
            expected_postings += 1;
        }

        let root = mesh.api("gz");
        eventually("the root holds every posting", Duration::from_secs(60), || async {
            let n = root.list_ids("postings").await?.len();
            if n == expected_postings {
                Ok(())
            } else {
                Err(format!("{n} of {expected_postings}"))
            }
        })
        .await;

        eventually("the root's figures count every placement", Duration::from_secs(60), || async {
            let s = root.summary().await?;
            if s["subtree"]["placements"] == 16 && s["subtree"]["workers_registered"] == 24 {
                Ok(())
            } else {
                Err(format!("subtree {}", s["subtree"]))
            }
        })
        .await;

        let client = pg.connect_as("analyst", "s3cret", "analytics").await;
        let counts = eventually("the mirror equals the root's records", Duration::from_secs(60), || async {
            compare::caught_up(&root).await?;
            compare::mirror_equals(&client, SCHEMA, &root).await
        })
        .await;
        assert_eq!(counts["postings"], expected_postings);
        assert_eq!(counts["workers"], 24);
        assert_eq!(counts["placements"], 16);
        assert_eq!(counts["fills"], 16, "one fill per placed posting");
        assert_eq!(counts["summaries"], NODES.len(), "every office's summary");
        assert_eq!(counts["matters"], 4, "one matter per leaf, flowed up");
        let r = client
            .query_one(
                &format!("SELECT count(*) FROM {SCHEMA}.matters WHERE status = 'resolved' AND version = 2 AND resolved_at IS NOT NULL"),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(r.get::<_, i64>(0), 4);
        let r = client
            .query_one(
                &format!(
                    "SELECT count(*) FROM {SCHEMA}.matters_summaries m WHERE NOT EXISTS (SELECT 1 FROM \
                     {SCHEMA}.matters_summaries_history h WHERE h.origin = m.origin AND h.version = m.version)"
                ),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(r.get::<_, i64>(0), 0, "every latest matters summary is in the history");

        // Versions: the withdrawn postings are at version 2.
        let r = client
            .query_one(
                &format!("SELECT count(*) FROM {SCHEMA}.postings WHERE status = 'withdrawn' AND version = 2"),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(r.get::<_, i64>(0), 4);

        // Offices: every origin, with its city.
        let r = client
            .query(&format!("SELECT node_id, city, depth FROM {SCHEMA}.offices ORDER BY node_id"), &[])
            .await
            .unwrap();
        let offices: Vec<(String, Option<String>, i32)> = r.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
        assert_eq!(offices.len(), NODES.len(), "{offices:?}");
        assert!(offices.contains(&("gz/a/x".into(), Some("gz/a".into()), 3)), "{offices:?}");

        // History: one row per version, at least one per office; the daily
        // views answer for today.
        let r = client
            .query_one(&format!("SELECT count(DISTINCT origin), count(*) FROM {SCHEMA}.summaries_history"), &[])
            .await
            .unwrap();
        assert_eq!(r.get::<_, i64>(0), NODES.len() as i64);
        let r = client
            .query_one(
                &format!(
                    "SELECT placements, offices_reporting FROM {SCHEMA}.subtree_daily WHERE subtree = 'gz' \
                     ORDER BY day DESC LIMIT 1"
                ),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(r.get::<_, i64>(0), 16, "placements in the province's subtree today");
        assert_eq!(r.get::<_, i64>(1), NODES.len() as i64);

        // The README's example: placements by key group per city per month.
        let rows = client
            .query(
                &format!(
                    "SELECT coalesce(o.city, o.node_id) AS city, \
                     date_trunc('month', p.placed_at AT TIME ZONE 'Asia/Shanghai')::date AS month, \
                     p.key_group, count(*) AS placements \
                     FROM {SCHEMA}.placements p JOIN {SCHEMA}.offices o ON o.node_id = p.origin \
                     GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
                ),
                &[],
            )
            .await
            .unwrap();
        let per_city: i64 = rows.iter().filter(|r| r.get::<_, String>(0) == "gz/a").map(|r| r.get::<_, i64>(3)).sum();
        assert_eq!(per_city, 8, "two leaves of gz/a placed four each");

        // The status page and metrics show the sink.
        let metrics = root.get("/metrics").await.unwrap().text;
        assert!(metrics.contains("jobmesh_sink_lag_entries{schema=\"mirror\"} 0"), "{metrics}");
        assert!(metrics.trim_end().ends_with("# EOF"), "metrics still end with # EOF");
        mesh.finish().await;
    })
    .await;
}
