//! An expired certificate (made with a short validity) is refused with a
//! message naming whose certificate expired and when, on both sides; once
//! it is renewed the link is back within the reconnect cap, without a
//! restart. `/metrics` exports the seconds to expiry.

use std::time::Duration;

use jobmesh_tests::{eventually, within, Mesh, Pki};

const LEAF: &str = "gz/x";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_certificate_is_refused_with_a_clear_message_and_renewal_brings_the_link_back() {
    within(Duration::from_secs(180), "cert expiry", async {
        let mut mesh = Mesh::new_with(&["gz", LEAF], |cfg| {
            if cfg.node_id == LEAF {
                cfg.extra.push("reconnect_max_ms = 2000".into());
            }
        });
        // Valid for 2 seconds from now.
        mesh.pki().renew(LEAF, &["--seconds", "2"]);
        let serial = Pki::serial_of(&mesh.pki().files_of(LEAF).cert);
        mesh.start_node("gz").await;
        // The scenario needs the certificate past its not-after; the leaf's
        // status below checks that it is (days_left < 0).
        tokio::time::sleep(Duration::from_secs(3)).await;
        mesh.start_node(LEAF).await;
        let (root, leaf) = (mesh.api("gz"), mesh.api(LEAF));

        eventually(
            "the root refuses the expired certificate, saying whose and when",
            Duration::from_secs(30),
            || async {
                let log = mesh.log("gz");
                let line = log
                    .lines()
                    .find(|l| l.contains(&format!("the certificate of {LEAF} (serial {serial}) expired at")));
                line.map(|_| ()).ok_or_else(|| mesh.log_tail("gz", 5))
            },
        )
        .await;
        eventually("the office's own status says its certificate expired", Duration::from_secs(30), || async {
            let s = leaf.status().await?;
            let e = s["parent"]["last_error"].as_str().unwrap_or_default().to_string();
            if e.contains(&format!("(serial {serial}) expired at")) && s["certificate"]["days_left"].as_i64() < Some(0)
            {
                Ok(())
            } else {
                Err(s.to_string())
            }
        })
        .await;
        let metrics = leaf.get("/metrics").await.unwrap().text;
        let expiry = metrics
            .lines()
            .find_map(|l| l.strip_prefix("jobmesh_cert_expiry_seconds "))
            .and_then(|v| v.trim().parse::<i64>().ok())
            .unwrap_or_else(|| panic!("no jobmesh_cert_expiry_seconds in\n{metrics}"));
        assert!(expiry < 0, "an expired certificate has negative seconds to expiry: {expiry}");
        assert!(mesh.log(LEAF).contains("this node's certificate expired at"), "the daily warning is logged");

        // Renewed in place: the link comes back without a restart.
        let pid = mesh.pid(LEAF);
        mesh.pki().renew(LEAF, &[]);
        eventually("the renewed office links", Duration::from_secs(30), || async {
            let s = root.status().await?;
            let up = s["children"]
                .as_array()
                .is_some_and(|c| c.iter().any(|l| l["node_id"] == LEAF && l["connected"] == true));
            if up {
                Ok(())
            } else {
                Err(s["children"].to_string())
            }
        })
        .await;
        assert_eq!(mesh.pid(LEAF), pid);
        mesh.finish().await;
    })
    .await
}
