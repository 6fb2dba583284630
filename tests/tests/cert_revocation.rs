//! Revoking an office's certificate across a running 1+3+9 mesh: the list
//! written by `jobmesh ca revoke` is published at the root (config key
//! `revocations`) and travels down the tree; the revoked office's parent
//! drops its link within seconds and refuses it from then on; nothing it
//! writes afterwards reaches the province; a freshly issued certificate
//! works at once. A tampered list, or one signed by another CA, is refused
//! and counted.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use jobmesh_tests::pki::run as jobmesh;
use jobmesh_tests::{eventually, posting_body, within, Api, Mesh, Pki};
use serde_json::Value;

const CONVERGE: Duration = Duration::from_secs(30);
/// The root polls its list every 2 s; a revocation is applied everywhere
/// well within this.
const APPLY: Duration = Duration::from_secs(20);

const REVOKED: &str = "gz/b/y";
const PARENT: &str = "gz/b";

fn nodes() -> Vec<String> {
    let mut v = vec!["gz".to_string()];
    for c in ["a", "b", "c"] {
        v.push(format!("gz/{c}"));
    }
    for c in ["a", "b", "c"] {
        for l in ["x", "y", "z"] {
            v.push(format!("gz/{c}/{l}"));
        }
    }
    v
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap_or_else(|| panic!("no id in {v}")).to_string()
}

/// The link to `child` as the parent's `/v1/status` shows it.
async fn child_link(parent: &Api, child: &str) -> Result<Value, String> {
    let s = parent.status().await?;
    s["children"]
        .as_array()
        .and_then(|c| c.iter().find(|l| l["node_id"] == child).cloned())
        .ok_or_else(|| format!("{child} not in {s}"))
}

async fn post_at(api: &Api, title: &str) -> Result<String, String> {
    let r = api.try_post_posting(&posting_body(title, 1, None)).await?;
    if r.status != 201 {
        return Err(r.describe());
    }
    Ok(id_of(r.json.as_ref().ok_or("no JSON")?))
}

async fn holds(api: &Api, id: &str) -> bool {
    matches!(api.get_posting(id).await, Ok(Some(_)))
}

async fn lists_refused(api: &Api) -> Result<u64, String> {
    let s = api.status().await?;
    s["revocations"]["lists_refused"].as_u64().ok_or_else(|| format!("no revocations.lists_refused in {s}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_office_is_dropped_and_shut_out_and_a_new_certificate_works() {
    within(Duration::from_secs(420), "revocation", async {
        let ids = nodes();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let mut mesh = Mesh::new_with(&refs, |cfg| {
            if cfg.node_id == "gz" {
                cfg.extra.push("revocations = \"../../pki/revoked.crl\"".into());
            }
            if cfg.node_id == REVOKED {
                cfg.extra.push("reconnect_max_ms = 2000".into());
            }
        });
        mesh.start_all().await;
        let (gz, parent, station) = (mesh.api("gz"), mesh.api(PARENT), mesh.api(REVOKED));
        eventually("the office is linked", CONVERGE, || async {
            let l = child_link(&parent, REVOKED).await?;
            if l["connected"] == true {
                Ok(())
            } else {
                Err(l.to_string())
            }
        })
        .await;
        let serial = Pki::serial_of(&mesh.pki().files_of(REVOKED).cert);

        let mut before = Vec::new();
        for n in 0..3 {
            before.push(post_at(&station, &format!("before {n}")).await.unwrap());
        }
        for id in &before {
            mesh.wait_held("postings", id, &["gz"], CONVERGE).await;
        }

        // Revoke while the office keeps writing.
        let pki = mesh.pki().dir().to_string_lossy().into_owned();
        let out = jobmesh(&["ca", "revoke", "--dir", &pki, "--node", REVOKED]);
        let published = Instant::now();
        assert!(out.contains("revoked.crl"), "ca revoke prints the list's path: {out}");
        let n = std::cell::Cell::new(0u32);
        eventually("the parent drops the revoked office's link", APPLY, || {
            n.set(n.get() + 1);
            let k = n.get();
            let (station, parent) = (&station, &parent);
            async move {
                let _ = post_at(station, &format!("during {k}")).await;
                let l = child_link(parent, REVOKED).await?;
                if l["connected"] == false && l["certificate"]["revoked"] == true {
                    Ok(())
                } else {
                    Err(l.to_string())
                }
            }
        })
        .await;
        let dropped_after = published.elapsed();
        eprintln!(
            "revocation: from `ca revoke` writing the list at the root to {PARENT} closing {REVOKED}'s link: {dropped_after:?} (1+3+9 mesh, status polled every 200 ms)"
        );

        // The province's dashboard lists the revoked office (its health
        // report reached the root before the revocation, with its serial).
        let root = mesh.api("gz");
        eventually("the province lists the revoked certificate", APPLY, || async {
            let s = root.summary().await?;
            let listed = s["certificates"].as_array().into_iter().flatten().find(|c| c["node_id"] == REVOKED);
            match listed {
                Some(c) if c["state"] == "revoked" => Ok(()),
                _ => Err(s["certificates"].to_string()),
            }
        })
        .await;

        // From now on it cannot reconnect, and what it writes stays there.
        let after = std::cell::RefCell::new(Vec::new());
        let failed_at_start = handshake_failures(&parent).await.unwrap();
        eventually("the revoked office keeps being refused", APPLY, || {
            let (station, parent, after) = (&station, &parent, &after);
            async move {
                let k = after.borrow().len();
                let id = post_at(station, &format!("after {k}")).await?;
                after.borrow_mut().push(id);
                let l = child_link(parent, REVOKED).await?;
                assert_eq!(l["connected"], false, "the revoked office got a link: {l}");
                let failed = handshake_failures(parent).await?;
                if failed >= failed_at_start + 2 {
                    Ok(())
                } else {
                    Err(format!("{failed} handshake failures, waiting for {}", failed_at_start + 2))
                }
            }
        })
        .await;
        // A marker written at the parent after everything above: once it is
        // at the root, whatever the parent had taken from the office is too.
        let after = after.into_inner();
        let marker = post_at(&parent, "marker").await.unwrap();
        mesh.wait_held("postings", &marker, &["gz"], CONVERGE).await;
        for id in &after {
            assert!(holds(&station, id).await, "{id} is kept at its own office");
            assert!(!holds(&parent, id).await, "{id}, written after the revocation, reached {PARENT}");
            assert!(!holds(&gz, id).await, "{id}, written after the revocation, reached the province");
        }
        for id in &before {
            assert!(holds(&gz, id).await, "{id}, written before the revocation, stays at the province");
        }
        // The list reached every office, and status says so.
        for id in &refs {
            if *id == REVOKED {
                continue;
            }
            eventually(&format!("{id} holds the list"), APPLY, || async {
                let s = mesh.api(id).status().await?;
                let listed = s["revocations"]["revoked"]
                    .as_array()
                    .is_some_and(|r| r.iter().any(|e| e["serial"] == serial.as_str() && e["node_id"] == REVOKED));
                if listed {
                    Ok(())
                } else {
                    Err(s["revocations"].to_string())
                }
            })
            .await;
        }

        // A freshly issued certificate works at once.
        mesh.pki().renew(REVOKED, &[]);
        let fresh = Pki::serial_of(&mesh.pki().files_of(REVOKED).cert);
        eventually("the office links again with its new certificate", CONVERGE, || async {
            let l = child_link(&parent, REVOKED).await?;
            if l["connected"] == true && l["certificate"]["serial"] == fresh.as_str() {
                Ok(())
            } else {
                Err(l.to_string())
            }
        })
        .await;
        // Trusted again: what it writes now gets in. (A new certificate on
        // the same machine re-admits its store, including what it wrote
        // while revoked; for a stolen machine the new certificate goes to
        // the replacement, restored from the office's backup.)
        let again = post_at(&station, "with the new certificate").await.unwrap();
        mesh.wait_held("postings", &again, &["gz"], CONVERGE).await;

        // A tampered list, then one from another CA: refused and counted; the
        // root keeps the list it has.
        let list_file = mesh.pki().dir().join("revoked.crl");
        let mut outer: Value = serde_json::from_slice(&std::fs::read(&list_file).unwrap()).unwrap();
        let body = outer["body"].as_str().unwrap().replace(&serial, &"0".repeat(serial.len()));
        outer["body"] = Value::String(body);
        std::fs::write(&list_file, serde_json::to_vec(&outer).unwrap()).unwrap();
        eventually("the tampered list is refused and counted", APPLY, || async {
            let refused = lists_refused(&gz).await?;
            if refused >= 1 && mesh.log("gz").contains("revocation list refused") {
                Ok(())
            } else {
                Err(format!("{refused} refused"))
            }
        })
        .await;
        let other = mesh.root().join("other-ca");
        jobmesh(&["ca", "init", "--dir", &other.to_string_lossy()]);
        let foreign = other.join("revoked.crl");
        jobmesh(&["ca", "revoke", "--dir", &other.to_string_lossy(), "--serial", "4a4a"]);
        std::fs::copy(&foreign, &list_file).unwrap();
        eventually("the list of another CA is refused and counted", APPLY, || async {
            let refused = lists_refused(&gz).await?;
            let metrics = gz.get("/metrics").await?.text;
            if refused >= 2 && metrics.contains("jobmesh_revocation_lists_refused_total 2") {
                Ok(())
            } else {
                Err(format!("{refused} refused"))
            }
        })
        .await;
        let s = gz.status().await.unwrap();
        let held: BTreeSet<String> = s["revocations"]["revoked"]
            .as_array()
            .map(|r| r.iter().filter_map(|e| e["serial"].as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        assert_eq!(held, BTreeSet::from([serial.clone()]), "the root keeps its valid list");
        mesh.finish().await;
    })
    .await
}

/// The parent's count of handshakes that failed (refused certificates).
async fn handshake_failures(api: &Api) -> Result<u64, String> {
    let text = api.get("/metrics").await?.text;
    text.lines()
        .find_map(|l| l.strip_prefix("jobmesh_transport_handshake_failures_total "))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| "no jobmesh_transport_handshake_failures_total in /metrics".to_string())
}
