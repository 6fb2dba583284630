//! Figures roll up, and a subtree that goes silent keeps its last figures,
//! marked stale with their age; an office in the topology that never
//! reported shows as missing.

use std::time::Duration;

use jobmesh_tests::{eventually, posting_body, within, Mesh};
use serde_json::Value;

const NODES: [&str; 3] = ["gz", "gz/a", "gz/a/x"];
const STALE_AFTER_S: u64 = 3;

fn row<'a>(s: &'a Value, id: &str) -> Option<&'a Value> {
    s["nodes"].as_array()?.iter().find(|n| n["node_id"] == id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_subtree_keeps_its_figures_marked_stale() {
    within(Duration::from_secs(90), "summary_staleness", async {
        let mut mesh = Mesh::new_with(&NODES, |c| {
            if c.node_id == "gz" {
                c.extra.push(format!("stale_after_s = {STALE_AFTER_S}"));
                c.extra.push("topology = \"offices.tsv\"".into());
            }
        });
        let tsv = "id\tparent\ttier\tname\tname_zh\torigin\n\
                   gz\t\tprovince\tProvince\t省\tsynthetic\n\
                   gz/a\tgz\tcity\tCity A\t甲市\tsynthetic\n\
                   gz/a/x\tgz/a\tcounty\tCounty X\t乙县\tsynthetic\n\
                   gz/b\tgz\tcity\tCity B (never runs)\t丙市\tsynthetic\n";
        std::fs::write(mesh.root().join("nodes/gz/offices.tsv"), tsv).unwrap_or_else(|e| panic!("{e}"));
        mesh.start_all().await;
        let gz = mesh.api("gz");

        mesh.api("gz/a/x").post_posting(&posting_body("figures", 5, Some("gz/a/x"))).await;
        eventually("gz sees gz/a/x's figures, and gz/b as missing", Duration::from_secs(30), || async {
            let s = gz.summary().await?;
            let r = row(&s, "gz/a/x").ok_or_else(|| format!("no gz/a/x row: {s}"))?;
            let ok = r["totals"]["postings_open"] == 1
                && r["totals"]["positions_open"] == 5
                && s["subtree"]["positions_open"] == 5
                && s["reporting"]["offices"] == 3
                && s["reporting"]["expected"] == 4;
            if ok {
                Ok(())
            } else {
                Err(s.to_string())
            }
        })
        .await;

        mesh.stop("gz/a/x").await;
        eventually("gz/a/x's row turns stale and keeps its last figures", Duration::from_secs(30), || async {
            let s = gz.summary().await?;
            let r = row(&s, "gz/a/x").ok_or_else(|| format!("no gz/a/x row: {s}"))?;
            let ok = r["stale"] == true
                && r["age_s"].as_f64().is_some_and(|a| a >= STALE_AFTER_S as f64)
                && r["totals"]["positions_open"] == 5
                && s["subtree"]["positions_open"] == 5;
            if ok {
                Ok(())
            } else {
                Err(s.to_string())
            }
        })
        .await;

        mesh.start_node("gz/a/x").await;
        eventually("gz/a/x's row is fresh again after it comes back", Duration::from_secs(30), || async {
            let s = gz.summary().await?;
            let r = row(&s, "gz/a/x").ok_or_else(|| format!("no gz/a/x row: {s}"))?;
            if r["stale"] == false && r["totals"]["positions_open"] == 5 {
                Ok(())
            } else {
                Err(r.to_string())
            }
        })
        .await;
        mesh.finish().await;
    })
    .await;
}
