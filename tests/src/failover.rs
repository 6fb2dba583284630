//! The failover scenario with real processes, shared by the test
//! (`tests/tests/failover.rs`, one run) and the measurement binary
//! (`jobmesh-failover-measure`, five runs and the timings).
//!
//! A 1+3+9 mesh whose counties name the province as their `[[fallback]]`
//! with `failover_after_s = 3`. The city `gz/c0` is killed (`kill -9`) and
//! kept down for longer than that. Its counties must attach to the province
//! directly: their writes made during the outage reach it (their rows fresh
//! there), and the province's posting for one of them reaches that county
//! during the outage. Then the city starts again: the counties return to it
//! (the province shows no descendant attached any more, each county's
//! parent link is up and not via the fallback) and every node holds exactly
//! the records the routing rule gives it, once (the [`Oracle`]).

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{eventually, posting_body, Api, Mesh, Oracle};

/// `failover_after_s` in the scenario's county configs.
pub const FAILOVER_AFTER_S: u64 = 3;
/// The city taken away, and its counties.
pub const CITY: &str = "gz/c0";
pub const COUNTIES: [&str; 3] = ["gz/c0/k0", "gz/c0/k1", "gz/c0/k2"];

/// The 1+3+9 tree.
pub fn nodes() -> Vec<String> {
    let mut v = vec!["gz".to_string()];
    for c in 0..3 {
        v.push(format!("gz/c{c}"));
    }
    for c in 0..3 {
        for k in 0..3 {
            v.push(format!("gz/c{c}/k{k}"));
        }
    }
    v
}

/// What one run measured.
#[derive(Debug, Clone, Copy)]
pub struct Timings {
    /// From the city's `kill -9` to every one of its counties attached at
    /// the province with its outage write held there and its row fresh.
    pub death_to_fresh: Duration,
    /// From the city's start to full convergence with every county back
    /// on its parent.
    pub return_to_converged: Duration,
}

async fn json(api: &Api, path: &str) -> Result<Value, String> {
    let r = api.get(path).await?;
    if r.status != 200 {
        return Err(format!("GET {path}: {}", r.describe()));
    }
    r.json.ok_or_else(|| format!("GET {path}: not JSON"))
}

async fn post(api: &Api, at: &str, title: &str, audience: &str, oracle: &mut Oracle) -> String {
    let v = api.post_posting(&posting_body(title, 2, Some(audience))).await;
    let id = v["id"].as_str().unwrap_or_else(|| panic!("POST at {at}: no id in {v}")).to_string();
    oracle.posting(at, &id, audience, 2);
    id
}

/// The entry for `id` in the `children` of a `/v1/status` body.
fn child<'a>(status: &'a Value, id: &str) -> Option<&'a Value> {
    status["children"].as_array()?.iter().find(|c| c["node_id"] == id)
}

/// Is each county attached directly at the province, with its outage
/// posting held there and its summary row fresh?
async fn counties_fresh_at_province(mesh: &Mesh, outage_posts: &[(String, String)]) -> Result<(), String> {
    let gz = mesh.api("gz");
    let status = json(&gz, "/v1/status").await?;
    let summary = json(&gz, "/v1/summary").await?;
    for (county, post_id) in outage_posts {
        let c = child(&status, county).ok_or_else(|| format!("{county} not among gz's links"))?;
        if c["attached_directly"] != true || c["connected"] != true {
            return Err(format!("{county} at gz: {c}"));
        }
        if c["parent_id"] != CITY {
            return Err(format!("{county} at gz: parent_id is {}, not {CITY}", c["parent_id"]));
        }
        if gz.get_posting(post_id).await?.is_none() {
            return Err(format!("{county}'s outage posting {post_id} not at gz yet"));
        }
        let row = summary["nodes"]
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["node_id"] == county.as_str()))
            .ok_or_else(|| format!("no summary row for {county} at gz"))?;
        // Two postings open: the one from before the outage and the one
        // written during it, which only the direct link can have brought.
        if row["stale"] != false || row["totals"]["postings_open"] != 2 {
            return Err(format!("{county}'s row at gz is not fresh: {row}"));
        }
    }
    Ok(())
}

/// Are the counties back on the city (and no longer attached at the
/// province), and does every node hold what the oracle says?
async fn returned_and_converged(mesh: &Mesh, oracle: &Oracle) -> Result<(), String> {
    let status = json(&mesh.api("gz"), "/v1/status").await?;
    for county in COUNTIES {
        if let Some(c) = child(&status, county) {
            if c["connected"] == true {
                return Err(format!("{county} still attached at gz: {c}"));
            }
        }
        let own = json(&mesh.api(county), "/v1/status").await?;
        let p = &own["parent"];
        if p["connected"] != true || p["via_fallback"] != false || !p["fallback"].is_null() {
            return Err(format!("{county} has not returned to {CITY}: {p}"));
        }
    }
    mesh.check_converged(oracle).await
}

/// Run the scenario once; panics (keeping the logs) when a step fails.
pub async fn run_once(label: &str) -> Timings {
    let ids = nodes();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut province = None;
    let mut mesh = Mesh::new_with(&ids, |cfg| {
        let depth = cfg.node_id.split('/').count();
        if depth == 1 {
            province = cfg.listen;
        } else if depth == 3 {
            let addr = province.unwrap_or_else(|| panic!("the province comes first"));
            cfg.extra.push(format!("failover_after_s = {FAILOVER_AFTER_S}"));
            cfg.extra.push(format!("[[fallback]]\nnode_id = \"gz\"\naddr = \"{addr}\""));
        }
    });
    mesh.start_all().await;
    let mut oracle = Oracle::new();
    // Before the outage: one posting at every county of the city, up to
    // the province through the city.
    let mut before = Vec::new();
    for county in COUNTIES {
        before.push(post(&mesh.api(county), county, &format!("{label} before {county}"), county, &mut oracle).await);
    }
    for id in &before {
        mesh.wait_held("postings", id, &["gz"], Duration::from_secs(20)).await;
    }

    mesh.kill9(CITY);
    let died = Instant::now();
    // Staff keep working at the counties, and the province publishes for one.
    let mut outage_posts = Vec::new();
    for county in COUNTIES {
        let id = post(&mesh.api(county), county, &format!("{label} outage {county}"), county, &mut oracle).await;
        outage_posts.push((county.to_string(), id));
    }
    let for_k1 = post(&mesh.api("gz"), "gz", &format!("{label} province for k1"), COUNTIES[1], &mut oracle).await;

    let limit = Duration::from_secs(FAILOVER_AFTER_S + 10);
    eventually("the city's counties fresh at the province", limit, || counties_fresh_at_province(&mesh, &outage_posts))
        .await;
    let death_to_fresh = died.elapsed();
    mesh.wait_held("postings", &for_k1, &[COUNTIES[1]], Duration::from_secs(10)).await;
    assert!(!mesh.is_alive(CITY), "the city must still be down while its county gets the province's posting");
    let k1 = json(&mesh.api(COUNTIES[1]), "/v1/status").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(k1["parent"]["via_fallback"], true, "{k1}");
    assert_eq!(k1["parent"]["fallback"]["node_id"], "gz", "{k1}");
    assert_eq!(k1["parent"]["node_id"], CITY, "{k1}");
    assert_eq!(k1["parent"]["connected"], false, "{k1}");

    mesh.start_node(CITY).await;
    let back = Instant::now();
    eventually("counties back on the city; every node holds exactly its records", Duration::from_secs(40), || {
        returned_and_converged(&mesh, &oracle)
    })
    .await;
    let return_to_converged = back.elapsed();
    // The city got what its counties wrote while it was down.
    for (_, id) in &outage_posts {
        mesh.wait_held("postings", id, &[CITY], Duration::from_secs(1)).await;
    }
    mesh.finish().await;
    Timings { death_to_fresh, return_to_converged }
}
