//! Parents named in DNS: a mesh whose configs name every parent
//! `localhost:PORT` converges, and a parent whose name does not resolve is
//! retried and reported in `/v1/status` (`parent.last_error`), never a crash.

use std::time::Duration;

use jobmesh_tests::{eventually, posting_body, within, Mesh};
use serde_json::Value;

const CONVERGE: Duration = Duration::from_secs(40);

/// Rewrite `[parent].addr = "127.0.0.1:PORT"` in a node's config as
/// `HOST:PORT`; the config must have had the IP form.
fn name_parent(mesh: &Mesh, id: &str, host: &str) {
    let path = mesh.root().join("nodes").join(id.replace('/', "_")).join("node.toml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let renamed = text.replace("addr    = \"127.0.0.1:", &format!("addr    = \"{host}:"));
    assert_ne!(text, renamed, "{} names no parent by IP:\n{text}", path.display());
    std::fs::write(&path, renamed).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mesh_of_parents_named_localhost_converges() {
    within(Duration::from_secs(120), "dns mesh", async {
        let ids = ["gz", "gz/a", "gz/a/x"];
        let mut mesh = Mesh::new(&ids);
        name_parent(&mesh, "gz/a", "localhost");
        name_parent(&mesh, "gz/a/x", "localhost");
        mesh.start_all().await;

        let p = mesh.api("gz/a/x").post_posting(&posting_body("named parents", 2, Some("gz"))).await;
        let id = p["id"].as_str().unwrap_or_else(|| panic!("no id in {p}")).to_string();
        mesh.wait_held("postings", &id, &ids, CONVERGE).await;
        let q = mesh.api("gz").post_posting(&posting_body("from the top", 1, Some("gz"))).await;
        let qid = q["id"].as_str().unwrap_or_else(|| panic!("no id in {q}")).to_string();
        mesh.wait_held("postings", &qid, &ids, CONVERGE).await;

        let st = mesh.api("gz/a/x").status().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(st["parent"]["connected"], true, "{st}");
        assert!(st["parent"]["addr"].as_str().is_some_and(|a| a.starts_with("localhost:")), "{st}");
        assert_eq!(st["parent"]["last_error"], Value::Null, "{st}");
        mesh.finish().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_name_that_does_not_resolve_is_retried_and_reported() {
    within(Duration::from_secs(90), "dns unresolved", async {
        let ids = ["gz", "gz/b"];
        let mut mesh = Mesh::new(&ids);
        name_parent(&mesh, "gz/b", "gz-parent.invalid");
        mesh.start_all().await;
        let b = mesh.api("gz/b");

        let first = eventually("gz/b reports why its parent is unreachable", CONVERGE, || async {
            let st = b.status().await?;
            let err = st["parent"]["last_error"].as_str().ok_or_else(|| st.to_string())?.to_string();
            if st["parent"]["connected"] == false && err.contains("gz-parent.invalid") {
                Ok(err)
            } else {
                Err(st.to_string())
            }
        })
        .await;
        // Retried with backoff: more dial attempts over time, node still up
        // and still taking writes.
        let attempts = || async {
            let m = b.get("/metrics").await?;
            let line = m
                .text
                .lines()
                .find(|l| l.starts_with("jobmesh_transport_dial_attempts") && !l.starts_with('#'))
                .ok_or_else(|| "no jobmesh_transport_dial_attempts in /metrics".to_string())?
                .to_string();
            line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()).ok_or(line)
        };
        let before = eventually("dial attempts counted", CONVERGE, attempts).await;
        eventually("gz/b redials its unresolved parent", CONVERGE, || async {
            let now = attempts().await?;
            if now > before {
                Ok(())
            } else {
                Err(format!("{now} attempts, {before} before"))
            }
        })
        .await;
        assert!(mesh.is_alive("gz/b"), "gz/b crashed:\n{}", mesh.log_tail("gz/b", 40));
        b.post_posting(&posting_body("still serving", 1, None)).await;
        assert!(!first.is_empty());
        mesh.finish().await;
    })
    .await;
}
