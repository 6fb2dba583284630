//! Certificates renewed under a running mesh, without a restart: on SIGHUP
//! and when the files change on their own. Links that are up stay up; the
//! next handshake presents the new serial; no record is lost. A CA rollover
//! (trust old and new, reissue every office, drop the old CA) with no
//! office down at any point; a bad renewed file is refused and the node
//! keeps its certificate.

use std::time::Duration;

use jobmesh_tests::pki::run as jobmesh;
use jobmesh_tests::{eventually, posting_body, within, Api, Mesh, Oracle, Pki};
use serde_json::Value;

const CONVERGE: Duration = Duration::from_secs(30);
/// The watcher polls every 2 s; a reload is well within this.
const RELOAD: Duration = Duration::from_secs(15);

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap_or_else(|| panic!("no id in {v}")).to_string()
}

async fn status(api: &Api) -> Result<Value, String> {
    api.status().await
}

/// This node's certificate serial as its `/v1/status` reports it.
async fn own_serial(api: &Api) -> Result<String, String> {
    let s = status(api).await?;
    s["certificate"]["serial"].as_str().map(str::to_string).ok_or_else(|| format!("no certificate.serial in {s}"))
}

/// The serial `peer` presented at its last handshake with the node of `api`.
async fn peer_serial(api: &Api, peer: &str) -> Result<String, String> {
    let s = status(api).await?;
    let links = s["children"].as_array().cloned().unwrap_or_default().into_iter().chain(Some(s["parent"].clone()));
    for l in links {
        if l["node_id"] == peer {
            return l["certificate"]["serial"].as_str().map(str::to_string).ok_or_else(|| format!("no serial in {l}"));
        }
    }
    Err(format!("{peer} not in {s}"))
}

/// The connects counter of the link to `peer` and whether it is up.
async fn link_of(api: &Api, peer: &str) -> Result<(u64, bool), String> {
    let s = status(api).await?;
    let links = s["children"].as_array().cloned().unwrap_or_default().into_iter().chain(Some(s["parent"].clone()));
    for l in links {
        if l["node_id"] == peer {
            let connects = l["stats"]["connects"].as_u64().ok_or_else(|| format!("no stats.connects in {l}"))?;
            return Ok((connects, l["connected"] == true));
        }
    }
    Err(format!("{peer} not in {s}"))
}

async fn wait_serial(api: &Api, want: &str, what: &str) {
    eventually(what, RELOAD, || async {
        let got = own_serial(api).await?;
        if got == want {
            Ok(())
        } else {
            Err(format!("serial {got}, waiting for {want}"))
        }
    })
    .await
}

async fn wait_linked(mesh: &Mesh, child: &str, parent: &str) {
    eventually(&format!("{child} linked to {parent}"), CONVERGE, || async {
        match link_of(&mesh.api(parent), child).await? {
            (_, true) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await
}

/// Post a posting at `at` and tell the oracle.
async fn post(mesh: &Mesh, oracle: &mut Oracle, at: &str, title: &str) {
    let p = id_of(&mesh.api(at).post_posting(&posting_body(title, 1, None)).await);
    oracle.posting(at, &p, at, 1);
}

const MESH: [&str; 4] = ["gz", "gz/a", "gz/a/b", "gz/a/b/s"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_county_renewed_under_a_running_mesh_keeps_its_links_and_records() {
    within(Duration::from_secs(240), "cert renewal", async {
        let mut mesh = Mesh::start(&MESH).await;
        let county = "gz/a/b";
        for (c, p) in [("gz/a", "gz"), (county, "gz/a"), ("gz/a/b/s", county)] {
            wait_linked(&mesh, c, p).await;
        }
        let pid = mesh.pid(county);
        let old = own_serial(&mesh.api(county)).await.unwrap();
        let files = mesh.pki().files_of(county);
        assert_eq!(old, Pki::serial_of(&files.cert));
        let (up_connects, _) = link_of(&mesh.api("gz/a"), county).await.unwrap();
        let (down_connects, _) = link_of(&mesh.api(county), "gz/a/b/s").await.unwrap();

        let mut oracle = Oracle::new();
        post(&mesh, &mut oracle, county, "before renewal").await;
        post(&mesh, &mut oracle, "gz/a/b/s", "station before renewal").await;

        // 1. Renew, then SIGHUP at once: the reload is logged.
        mesh.pki().renew(county, &[]);
        let renewed = Pki::serial_of(&files.cert);
        assert_ne!(renewed, old, "a renewal gives a new serial");
        mesh.signal(county, "HUP");
        wait_serial(&mesh.api(county), &renewed, "the county uses the renewed certificate after SIGHUP").await;
        eventually("the SIGHUP reload is logged", RELOAD, || async {
            let log = mesh.log(county);
            if log.contains("SIGHUP received") && log.lines().any(|l| l.contains("reload") && l.contains("Signal")) {
                Ok(())
            } else {
                Err(mesh.log_tail(county, 10))
            }
        })
        .await;
        post(&mesh, &mut oracle, county, "after SIGHUP").await;

        // 2. Renew again, no signal: the watcher sees the files change.
        mesh.pki().renew(county, &[]);
        let renewed2 = Pki::serial_of(&files.cert);
        assert_ne!(renewed2, renewed);
        wait_serial(&mesh.api(county), &renewed2, "the county picks up the changed files on its own").await;
        post(&mesh, &mut oracle, "gz/a/b/s", "station after file change").await;

        // Same process; the links that were up never dropped.
        assert_eq!(mesh.pid(county), pid, "the county was not restarted");
        assert_eq!(link_of(&mesh.api("gz/a"), county).await.unwrap(), (up_connects, true), "uplink stayed up");
        assert_eq!(link_of(&mesh.api(county), "gz/a/b/s").await.unwrap(), (down_connects, true), "downlink stayed up");

        // 3. A bad renewed file (a key that does not belong to the
        //    certificate) is refused; the county keeps the renewed pair.
        let good_key = std::fs::read(&files.key).unwrap();
        std::fs::write(&files.key, std::fs::read(mesh.pki().files_of("gz").key).unwrap()).unwrap();
        mesh.signal(county, "HUP");
        eventually("the mismatched key is refused with a message", RELOAD, || async {
            let log = mesh.log(county);
            if log.contains("certificate reload refused") && log.contains("does not belong to the certificate") {
                Ok(())
            } else {
                Err(mesh.log_tail(county, 10))
            }
        })
        .await;
        assert_eq!(own_serial(&mesh.api(county)).await.unwrap(), renewed2);
        std::fs::write(&files.key, good_key).unwrap();

        // 4. New handshakes present the new serial, both ways: the station
        //    redials the county (server side), the county redials its
        //    parent (client side) after the city's restart.
        mesh.stop("gz/a/b/s").await;
        mesh.start_node("gz/a/b/s").await;
        eventually("the station sees the county's new serial", CONVERGE, || async {
            let got = peer_serial(&mesh.api("gz/a/b/s"), county).await?;
            if got == renewed2 {
                Ok(())
            } else {
                Err(got)
            }
        })
        .await;
        mesh.stop("gz/a").await;
        mesh.start_node("gz/a").await;
        eventually("the city sees the county's new serial", CONVERGE, || async {
            let got = peer_serial(&mesh.api("gz/a"), county).await?;
            if got == renewed2 {
                Ok(())
            } else {
                Err(got)
            }
        })
        .await;
        assert_eq!(mesh.pid(county), pid, "the county was not restarted");

        // Nothing lost.
        eventually("every record where the routing rule puts it", CONVERGE, || mesh.check_converged(&oracle)).await;
        mesh.finish().await;
    })
    .await
}

const NEWCOMER: &str = "gz/a/z";
const ROLLOVER: [&str; 7] = ["gz", "gz/a", "gz/b", "gz/a/x", "gz/a/y", "gz/b/x", "gz/b/y"];

/// Every office is up and every link of the 1+2+4 tree is connected, now.
async fn all_up(mesh: &Mesh) -> Result<(), String> {
    for id in ROLLOVER {
        let s = status(&mesh.api(id)).await.map_err(|e| format!("{id} down: {e}"))?;
        if let Some(p) = s["parent"].as_object() {
            if p["connected"] != true {
                return Err(format!("{id}: parent link down: {s}"));
            }
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_rollover_across_a_1_2_4_mesh_keeps_every_office_up() {
    within(Duration::from_secs(300), "ca rollover", async {
        // gz/a/z joins only after the rollover, with a new-CA certificate.
        let mut with_newcomer = ROLLOVER.to_vec();
        with_newcomer.push(NEWCOMER);
        let mut mesh = Mesh::new(&with_newcomer);
        for id in ROLLOVER {
            mesh.start_node(id).await;
        }
        eventually("the mesh is linked", CONVERGE, || all_up(&mesh)).await;
        let mut oracle = Oracle::new();
        let root = mesh.root().to_path_buf();
        let ca_file = mesh.pki().ca_cert();
        let old_ca = std::fs::read_to_string(&ca_file).unwrap();

        // Step 1: a new CA, trusted beside the old one everywhere.
        let new_dir = root.join("pki-new");
        jobmesh(&["ca", "init", "--dir", &new_dir.to_string_lossy()]);
        let new_pki = Pki::at(&new_dir);
        let new_ca = std::fs::read_to_string(new_pki.ca_cert()).unwrap();
        std::fs::write(&ca_file, format!("{old_ca}{new_ca}")).unwrap();
        for id in ROLLOVER {
            eventually(&format!("{id} trusts both CAs"), RELOAD, || async {
                let s = status(&mesh.api(id)).await?;
                if s["certificate"]["trusted_cas"] == 2 {
                    Ok(())
                } else {
                    Err(s["certificate"].to_string())
                }
            })
            .await;
            all_up(&mesh).await.unwrap();
        }

        // Step 2: every office gets a certificate from the new CA.
        for (n, id) in ROLLOVER.iter().enumerate() {
            let issued = new_pki.issue(id);
            let target = mesh.pki().files_of(id);
            // Key first: in between the node refuses the pair and keeps its own.
            std::fs::copy(&issued.key, &target.key).unwrap();
            std::fs::copy(&issued.cert, &target.cert).unwrap();
            let serial = Pki::serial_of(&target.cert);
            wait_serial(&mesh.api(id), &serial, &format!("{id} presents its new-CA certificate")).await;
            all_up(&mesh).await.unwrap();
            let p = id_of(&mesh.api(id).post_posting(&posting_body(&format!("rollover {n}"), 1, None)).await);
            oracle.posting(id, &p, id, 1);
        }

        // Step 3: drop the old CA.
        std::fs::write(&ca_file, &new_ca).unwrap();
        for id in ROLLOVER {
            eventually(&format!("{id} trusts only the new CA"), RELOAD, || async {
                let s = status(&mesh.api(id)).await?;
                if s["certificate"]["trusted_cas"] == 1 {
                    Ok(())
                } else {
                    Err(s["certificate"].to_string())
                }
            })
            .await;
            all_up(&mesh).await.unwrap();
        }

        // A new handshake under the new CA alone: a station that joins now
        // with a new-CA certificate links to its city, which presents its
        // new certificate and checks the station's against the new CA.
        let issued = new_pki.issue(NEWCOMER);
        let target = mesh.pki().files_of(NEWCOMER);
        std::fs::copy(&issued.key, &target.key).unwrap();
        std::fs::copy(&issued.cert, &target.cert).unwrap();
        mesh.start_node(NEWCOMER).await;
        wait_linked(&mesh, NEWCOMER, "gz/a").await;
        let p = id_of(&mesh.api(NEWCOMER).post_posting(&posting_body("after rollover", 1, None)).await);
        oracle.posting(NEWCOMER, &p, NEWCOMER, 1);
        eventually("everything converged", CONVERGE, || mesh.check_converged(&oracle)).await;
        for id in ROLLOVER {
            assert!(mesh.is_alive(id), "{id} stayed up");
        }
        mesh.finish().await;
    })
    .await
}
