//! `jobmesh status` against a live mesh (exit 0, a table, `--json`), a node
//! whose parent is gone (exit 1, the reason shown) and a dead node (exit 2).

use std::process::Command;
use std::time::Duration;

use jobmesh_tests::{eventually, within, Mesh};
use serde_json::Value;

/// `jobmesh status ARGS`: exit code and stdout.
fn status(args: &[&str]) -> (i32, String) {
    let out = Command::new(jobmesh_tests::bin::jobmesh_bin())
        .arg("status")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("jobmesh status: {e}"));
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_tells_healthy_unhealthy_and_down_apart() {
    within(Duration::from_secs(120), "status cli", async {
        let mut mesh = Mesh::start(&["gz", "gz/a"]).await;
        let url = mesh.url("gz/a");
        let table = eventually("gz/a healthy", Duration::from_secs(30), || {
            let url = url.clone();
            async move {
                match status(&["--api", &url]) {
                    (0, out) => Ok(out),
                    (code, out) => Err(format!("exit {code}: {out}")),
                }
            }
        })
        .await;
        for needle in ["HEALTHY", "gz/a", "LINKS", "parent", "STORE", "FIGURES", "CERTIFICATE", "days left"] {
            assert!(table.contains(needle), "{needle:?} missing from:\n{table}");
        }
        let (code, json) = status(&["--api", &url, "--json"]);
        assert_eq!(code, 0, "{json}");
        let v: Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
        assert_eq!(v["healthy"], true, "{v}");
        assert_eq!(v["status"]["node_id"], "gz/a", "{v}");
        assert!(v["status"]["store_bytes"].as_u64().is_some_and(|b| b > 0), "{v}");
        assert!(v["status"]["certificate"]["days_left"].as_i64().is_some_and(|d| d > 14), "{v}");

        // The parent goes away: gz/a is up but unhealthy.
        mesh.stop("gz").await;
        let out = eventually("gz/a unhealthy without its parent", Duration::from_secs(60), || {
            let url = url.clone();
            async move {
                match status(&["--api", &url]) {
                    (1, out) => Ok(out),
                    (code, out) => Err(format!("exit {code}: {out}")),
                }
            }
        })
        .await;
        assert!(out.contains("UNHEALTHY") && out.contains("parent gz is down"), "{out}");

        // gz/a dies: down.
        mesh.kill9("gz/a");
        let (code, out) = status(&["--api", &url]);
        assert_eq!(code, 2, "a dead node: {out}");
        assert!(out.starts_with("DOWN"), "{out}");
        let (code, json) = status(&["--api", &url, "--json"]);
        assert_eq!(code, 2);
        let v: Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
        assert_eq!(v["up"], false, "{v}");
        mesh.finish().await;
    })
    .await;
}
