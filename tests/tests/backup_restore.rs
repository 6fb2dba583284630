//! The backup and restore drill: `jobmesh backup` of an office under write
//! load, more acked writes after it, `kill -9` of the office, `jobmesh
//! restore` into a new data directory, start. The restored office gets
//! back everything it wrote after the backup from its parent, converges
//! with lost 0 and doubled 0, and reuses no record id nor any journal
//! sequence its peers saw (new writes reach the parent and the child).
//! Restoring over a non-empty folder, or another office's backup, is
//! refused with a message.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use jobmesh_tests::{eventually, posting_body, within, worker_body, Mesh, Oracle};
use serde_json::Value;

const NODES: [&str; 3] = ["gz", "gz/a", "gz/a/x"];
const CONVERGE: Duration = Duration::from_secs(60);

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap_or_else(|| panic!("no id in {v}")).to_string()
}

fn config(mesh: &Mesh, id: &str) -> PathBuf {
    mesh.root().join("nodes").join(id.replace('/', "_")).join("node.toml")
}

/// Run `jobmesh ARGS`; returns (success, stdout + stderr).
fn jobmesh(args: &[&str]) -> (bool, String) {
    let out = Command::new(jobmesh_tests::bin::jobmesh_bin())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("jobmesh {args:?}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap_or_else(|| panic!("non-UTF-8 path {}", p.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_office_gets_everything_back_and_reuses_nothing() {
    within(Duration::from_secs(300), "backup/restore drill", async {
        let mut mesh = Mesh::start(&NODES).await;
        let mut oracle = Oracle::new();
        let (a, x) = (mesh.api("gz/a"), mesh.api("gz/a/x"));
        let mut seen: BTreeSet<String> = BTreeSet::new();

        // Before the backup: a posting with a placement (a fill owned by
        // gz/a), and records from the child and the parent.
        let p0 = id_of(&a.post_posting(&posting_body("before", 5, Some("gz"))).await);
        oracle.posting("gz/a", &p0, "gz", 5);
        let w0 = id_of(&a.post_worker(&worker_body("before")).await);
        oracle.worker("gz/a", &w0);
        let l0 = id_of(&a.post_placement(&w0, &p0).await);
        oracle.placement("gz/a", &l0, "gz/a", &p0);
        let c0 = id_of(&x.post_posting(&posting_body("child", 1, Some("gz/a"))).await);
        oracle.posting("gz/a/x", &c0, "gz/a", 1);
        seen.extend([p0.clone(), w0, l0, c0]);

        // The backup, taken while gz/a takes writes.
        let backup = mesh.root().join("gz_a.backup");
        let (cfg_a, out) = (config(&mesh, "gz/a"), backup.clone());
        let taking = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let r = jobmesh(&["backup", "--config", path(&cfg_a), "--out", path(&out)]);
            (r, started.elapsed())
        });
        let mut during = Vec::new();
        while !taking.is_finished() && during.len() < 200 {
            let p = id_of(&a.post_posting(&posting_body("during", 2, None)).await);
            oracle.posting("gz/a", &p, "gz/a", 2);
            during.push(p);
        }
        let ((ok, text), took) = taking.await.unwrap_or_else(|e| panic!("backup task: {e}"));
        assert!(ok, "jobmesh backup failed: {text}");
        assert!(text.contains("backup of gz/a"), "{text}");
        eprintln!("backup took {took:?} with {} writes during it: {text}", during.len());
        seen.extend(during);

        // After the backup: acked writes that only the parent (and the
        // child, for what the rule sends it) will hold once gz/a dies.
        let mut after = Vec::new();
        for i in 0..20 {
            let p = id_of(&a.post_posting(&posting_body(&format!("after {i}"), 3, Some("gz/a"))).await);
            oracle.posting("gz/a", &p, "gz/a", 3);
            after.push(p);
        }
        let w1 = id_of(&a.post_worker(&worker_body("after")).await);
        oracle.worker("gz/a", &w1);
        let l1 = id_of(&a.post_placement(&w1, &p0).await);
        oracle.placement("gz/a", &l1, "gz/a", &p0);
        let patched = a
            .patch_json(&format!("/v1/postings/{}", after[0]), &serde_json::json!({"status": "withdrawn"}))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(patched.status, 200, "{}", patched.describe());
        after.extend([w1, l1]);
        seen.extend(after.iter().cloned());
        eventually("everything gz/a wrote is at its parent", CONVERGE, || mesh.check_converged(&oracle)).await;

        // The machine dies.
        mesh.kill9("gz/a");

        // Refusals: over a non-empty folder, and another office's backup.
        let cfg = config(&mesh, "gz/a");
        let (ok, text) = jobmesh(&["restore", "--config", path(&cfg), "--from", path(&backup)]);
        assert!(!ok && text.contains("not empty"), "restore over the old data must be refused: {text}");
        let other = mesh.root().join("gz_a_x.backup");
        let (ok, text) = jobmesh(&["backup", "--config", path(&config(&mesh, "gz/a/x")), "--out", path(&other)]);
        assert!(ok, "{text}");

        // A new machine: the same config with a new, empty data directory.
        let toml = std::fs::read_to_string(&cfg).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&cfg, toml.replace("data_dir = \"data\"", "data_dir = \"data-new\""))
            .unwrap_or_else(|e| panic!("{e}"));
        let (ok, text) = jobmesh(&["restore", "--config", path(&cfg), "--from", path(&other)]);
        assert!(!ok && text.contains("another office"), "another office's backup must be refused: {text}");
        let (ok, text) = jobmesh(&["restore", "--config", path(&cfg), "--from", path(&backup)]);
        assert!(ok, "jobmesh restore failed: {text}");

        let started = Instant::now();
        mesh.start_node("gz/a").await;
        eventually("the restored gz/a has its own records back", CONVERGE, || async {
            let st = a.status().await?;
            if st["restoring"] == false {
                Ok(())
            } else {
                Err(st.to_string())
            }
        })
        .await;
        let restored_in = started.elapsed();
        let held = a.list_ids("postings").await.unwrap_or_else(|e| panic!("{e}"));
        let held_w = a.list_ids("workers").await.unwrap_or_else(|e| panic!("{e}"));
        let held_l = a.list_ids("placements").await.unwrap_or_else(|e| panic!("{e}"));
        let missing: Vec<&String> =
            after.iter().filter(|id| !held.contains(*id) && !held_w.contains(*id) && !held_l.contains(*id)).collect();
        assert!(missing.is_empty(), "acked after the backup but not back at gz/a: {missing:?}");
        eventually("converged after the restore", CONVERGE, || mesh.check_converged(&oracle)).await;

        // New writes: no id reused, and they reach the parent and the child
        // (a reused journal sequence would be skipped there as seen).
        let mut fresh = Vec::new();
        for i in 0..5 {
            let p = id_of(&a.post_posting(&posting_body(&format!("new {i}"), 1, Some("gz/a"))).await);
            assert!(!seen.contains(&p), "{p} reuses an id seen before the restore");
            oracle.posting("gz/a", &p, "gz/a", 1);
            fresh.push(p);
        }
        let w2 = id_of(&a.post_worker(&worker_body("new")).await);
        assert!(!seen.contains(&w2), "{w2} reuses an id");
        oracle.worker("gz/a", &w2);
        let l2 = id_of(&a.post_placement(&w2, &p0).await);
        assert!(!seen.contains(&l2), "{l2} reuses an id");
        oracle.placement("gz/a", &l2, "gz/a", &p0);
        mesh.wait_held("postings", &fresh[4], &NODES, CONVERGE).await;
        eventually("converged after new writes", CONVERGE, || mesh.check_converged(&oracle)).await;
        eprintln!(
            "drill: {} records written after the backup came back in {restored_in:?}; lost 0, doubled 0, no id reused",
            after.len()
        );
        mesh.finish().await;
    })
    .await;
}
