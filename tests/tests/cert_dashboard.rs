//! Every office's health report reaches the province: the dashboard's
//! `/v1/summary` lists a county two hops down whose certificate expires
//! within 30 days, with its serial and days left, and drops it from the
//! list once the county is renewed and reloads (SIGHUP), without a restart.
//! Each row carries the office's release and certificate.

use std::time::Duration;

use jobmesh_tests::{eventually, within, Mesh, Pki};
use serde_json::Value;

const COUNTY: &str = "gz/a/x";
const CONVERGE: Duration = Duration::from_secs(40);

fn row<'a>(s: &'a Value, id: &str) -> Option<&'a Value> {
    s["nodes"].as_array()?.iter().find(|r| r["node_id"] == id)
}

fn listed<'a>(s: &'a Value, id: &str) -> Option<&'a Value> {
    s["certificates"].as_array()?.iter().find(|c| c["node_id"] == id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_province_lists_a_countys_expiring_certificate_until_it_is_renewed() {
    within(Duration::from_secs(180), "certificate dashboard", async {
        let mut mesh = Mesh::new_with(&["gz", "gz/a", COUNTY], |_| {});
        // Ten days left: expiring (within 30), not expired.
        mesh.pki().renew(COUNTY, &["--seconds", "864000"]);
        let short = Pki::serial_of(&mesh.pki().files_of(COUNTY).cert);
        for n in ["gz", "gz/a", COUNTY] {
            mesh.start_node(n).await;
        }
        let root = mesh.api("gz");
        eventually("the province lists the county's expiring certificate", CONVERGE, || async {
            let s = root.summary().await?;
            match listed(&s, COUNTY) {
                Some(c) if c["state"] == "expiring" && c["serial"] == short.as_str() && c["days_left"] == 9 => Ok(()),
                _ => Err(format!("certificates {}", s["certificates"])),
            }
        })
        .await;
        let s = root.summary().await.unwrap();
        assert!(listed(&s, "gz/a").is_none(), "a certificate with years left is not listed: {}", s["certificates"]);
        let county_row = row(&s, COUNTY).expect("the county has a row");
        assert_eq!(county_row["health"]["software"], env!("CARGO_PKG_VERSION"), "{county_row}");
        assert_eq!(county_row["health"]["cert_state"], "expiring");
        let city = row(&s, "gz/a").expect("the city has a row");
        assert_eq!(city["health"]["cert_state"], "valid", "{city}");

        // Renew for the default validity and reload: the new serial travels up.
        mesh.pki().renew(COUNTY, &[]);
        let renewed = Pki::serial_of(&mesh.pki().files_of(COUNTY).cert);
        assert_ne!(renewed, short);
        let pid = mesh.pid(COUNTY);
        mesh.signal(COUNTY, "HUP");
        eventually("the province sees the renewed certificate and lists it no more", CONVERGE, || async {
            let s = root.summary().await?;
            let serial = row(&s, COUNTY).map(|r| r["health"]["cert_serial"].clone()).unwrap_or_default();
            if serial == renewed.as_str() && listed(&s, COUNTY).is_none() {
                Ok(())
            } else {
                Err(format!("serial {serial}, certificates {}", s["certificates"]))
            }
        })
        .await;
        assert_eq!(mesh.pid(COUNTY), pid, "no restart");
    })
    .await;
}
