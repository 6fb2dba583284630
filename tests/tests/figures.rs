//! Roll-up figures on a live 1+2+4 mesh, against the records themselves.
//!
//! `summary_staleness.rs` covers one county going silent behind a live city.
//! This test covers the sums: every office's row at the root, every row's
//! subtree and the root's subtree total must equal what the records listed
//! at their origins give (and what the test itself did); then a whole city
//! is cut off while its subtree and the rest of the tree keep writing, and
//! the root must show the city's and its counties' last figures, stale, with
//! growing ages, while the live part stays exact and fresh, with `reporting`
//! as `GET /v1/summary` defines it; after the heal everything catches up,
//! including a fill made outside the cut subtree for a posting inside it.
//!
//! Two ways to cut: the city's link to the province blackholed by the fault
//! proxy (`tests/src/proxy.rs`; the city keeps running and keeps its
//! counties' figures fresh; the province notices the dead link only at the
//! QUIC idle timeout, 30 s), and the city's process stopped (SIGTERM; the
//! counties write alone; the province notices at once).
//!
//! Totals of one office, for its own records (design.md, contract):
//! `postings_open` (status open and remaining > 0), `positions_open` (the
//! sum of their remaining), `positions_filled` (placements made there),
//! `workers_registered`, `workers_seeking` (no placement known),
//! `placements` (made there).
//!
//! `reporting` (node/src/api/summary.rs): one row per office with a summary
//! held at the root, per office of the root's `topology`, and per office
//! between; `offices` = rows with a summary (a cut-off office's last summary
//! still counts), `expected` = rows, `missing` = rows without a summary,
//! `stale` = rows whose link from the root is down, older than
//! `stale_after_s`, or missing.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use jobmesh_tests::mesh::free_udp;
use jobmesh_tests::proxy::Proxy;
use jobmesh_tests::{eventually, posting_body, within, worker_body, Api, Mesh};
use serde_json::{json, Value};

const NODES: [&str; 7] = ["gz", "gz/a", "gz/b", "gz/a/x", "gz/a/y", "gz/b/z", "gz/b/w"];
/// In the root's topology, never started: reported as missing.
const NEVER: &str = "gz/b/v";
/// The city that is cut off, and its subtree.
const CUT: &str = "gz/a";
const CUT_SUBTREE: [&str; 3] = ["gz/a", "gz/a/x", "gz/a/y"];
/// Replication and a summary republish (at most once a second) per hop.
const CONVERGE: Duration = Duration::from_secs(20);
/// A blackholed link is noticed at the QUIC idle timeout (node
/// `transport::MAX_IDLE`, 30 s), and then the figures must show it.
const CUT_NOTICED: Duration = Duration::from_secs(50);

/// How the city is cut off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// Its process stopped with SIGTERM, and started again to heal.
    StopCity,
    /// Its link to the province blackholed by the fault proxy, then healed.
    ProxyLink,
}

const TOPOLOGY: &str = "id\tparent\ttier\tname\tname_zh\torigin\n\
    gz\t\tprovince\tProvince\t省\tsynthetic\n\
    gz/a\tgz\tcity\tCity A\t甲市\tsynthetic\n\
    gz/a/x\tgz/a\tcounty\tCounty X\t甲市X县\tsynthetic\n\
    gz/a/y\tgz/a\tcounty\tCounty Y\t甲市Y县\tsynthetic\n\
    gz/b\tgz\tcity\tCity B\t乙市\tsynthetic\n\
    gz/b/z\tgz/b\tcounty\tCounty Z\t乙市Z县\tsynthetic\n\
    gz/b/w\tgz/b\tcounty\tCounty W\t乙市W县\tsynthetic\n\
    gz/b/v\tgz/b\tcounty\tCounty V (never runs)\t乙市V县\tsynthetic\n";

/// The six figures of the contract.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Totals {
    postings_open: i64,
    positions_open: i64,
    positions_filled: i64,
    workers_registered: i64,
    workers_seeking: i64,
    placements: i64,
}

impl Totals {
    fn of_json(v: &Value) -> Result<Totals, String> {
        let f = |k: &str| v[k].as_i64().ok_or_else(|| format!("totals without integer `{k}`: {v}"));
        Ok(Totals {
            postings_open: f("postings_open")?,
            positions_open: f("positions_open")?,
            positions_filled: f("positions_filled")?,
            workers_registered: f("workers_registered")?,
            workers_seeking: f("workers_seeking")?,
            placements: f("placements")?,
        })
    }

    fn add(&mut self, o: &Totals) {
        self.postings_open += o.postings_open;
        self.positions_open += o.positions_open;
        self.positions_filled += o.positions_filled;
        self.workers_registered += o.workers_registered;
        self.workers_seeking += o.workers_seeking;
        self.placements += o.placements;
    }
}

/// What the test did, as far as figures go.
#[derive(Debug, Default)]
struct Model {
    /// id → (origin, positions, placements for it, open status).
    postings: BTreeMap<String, (String, i64, i64, bool)>,
    /// id → (office, placed).
    workers: BTreeMap<String, (String, bool)>,
    /// Offices where each placement was made.
    placements: Vec<String>,
}

impl Model {
    fn totals(&self, office: &str) -> Totals {
        let mut t = Totals::default();
        for (origin, positions, filled, open) in self.postings.values() {
            let remaining = positions - filled;
            if origin == office && *open && remaining > 0 {
                t.postings_open += 1;
                t.positions_open += remaining;
            }
        }
        for (o, placed) in self.workers.values() {
            if o == office {
                t.workers_registered += 1;
                t.workers_seeking += i64::from(!placed);
            }
        }
        let made = self.placements.iter().filter(|o| *o == office).count() as i64;
        t.placements = made;
        t.positions_filled = made;
        t
    }
}

fn post(m: &mut Model, at: &str, id: &str, positions: i64) {
    m.postings.insert(id.to_string(), (at.to_string(), positions, 0, true));
}

fn in_subtree(id: &str, of: &str) -> bool {
    id == of || id.starts_with(&format!("{of}/"))
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap_or_else(|| panic!("no id in {v}")).to_string()
}

/// An office's totals from the records it lists as its own.
async fn totals_at_origin(api: &Api, office: &str) -> Result<Totals, String> {
    let mut t = Totals::default();
    for p in api.list_all("postings").await?.iter().filter(|p| p["origin"] == office) {
        let remaining = p["remaining"].as_i64().ok_or_else(|| format!("posting without remaining: {p}"))?;
        if p["status"] == "open" && remaining > 0 {
            t.postings_open += 1;
            t.positions_open += remaining;
        }
    }
    for w in api.list_all("workers").await?.iter().filter(|w| w["origin"] == office) {
        t.workers_registered += 1;
        match w["status"].as_str() {
            Some("seeking") => t.workers_seeking += 1,
            Some("placed") => {}
            _ => return Err(format!("worker with status neither seeking nor placed: {w}")),
        }
    }
    let made = api.list_all("placements").await?.iter().filter(|l| l["origin"] == office).count() as i64;
    t.placements = made;
    t.positions_filled = made;
    Ok(t)
}

fn rows(s: &Value) -> Result<BTreeMap<String, Value>, String> {
    let nodes = s["nodes"].as_array().ok_or_else(|| format!("summary without nodes: {s}"))?;
    Ok(nodes.iter().filter_map(|n| Some((n["node_id"].as_str()?.to_string(), n.clone()))).collect())
}

/// The root's view must match `own` (each office's expected own totals):
/// rows, row subtrees, the root's subtree and `reporting`; offices in `cut`
/// are stale with their link down, every other reporting office is fresh.
fn check_root(s: &Value, own: &BTreeMap<&str, Totals>, cut: &[&str]) -> Result<(), String> {
    let rows = rows(s)?;
    let mut problems = Vec::new();
    let want_ids: BTreeSet<String> = NODES.iter().chain([&NEVER]).map(|s| s.to_string()).collect();
    let got_ids: BTreeSet<String> = rows.keys().cloned().collect();
    if got_ids != want_ids {
        problems.push(format!("rows for {got_ids:?}, expected {want_ids:?}"));
    }
    for id in NODES {
        let Some(r) = rows.get(id) else { continue };
        let totals = r["totals"].as_object().map(|_| Totals::of_json(&r["totals"])).transpose()?;
        if totals != Some(own[id]) {
            problems.push(format!("{id}: totals {totals:?}, expected {:?}", own[id]));
        }
        let mut sub = Totals::default();
        for t in own.iter().filter(|(o, _)| in_subtree(o, id)).map(|(_, t)| t) {
            sub.add(t);
        }
        let got_sub = Totals::of_json(&r["subtree"])?;
        if got_sub != sub {
            problems.push(format!("{id}: subtree {got_sub:?}, expected {sub:?}"));
        }
        let is_cut = cut.contains(&id);
        if r["stale"] != json!(is_cut) || r["link_down"] != json!(is_cut) || r["missing"] != false {
            problems.push(format!(
                "{id}: stale={} link_down={} missing={}, expected stale={is_cut} link_down={is_cut} missing=false",
                r["stale"], r["link_down"], r["missing"]
            ));
        }
        if !r["age_s"].is_u64() || !r["reported_at"].is_string() {
            problems.push(format!("{id}: age_s={} reported_at={}", r["age_s"], r["reported_at"]));
        }
    }
    if let Some(r) = rows.get(NEVER) {
        let ok = r["missing"] == true && r["stale"] == true && r["totals"].is_null() && r["age_s"].is_null();
        if !ok {
            problems.push(format!("{NEVER} should be missing (stale, totals null, age_s null): {r}"));
        }
    }
    let mut all = Totals::default();
    for t in own.values() {
        all.add(t);
    }
    let got_all = Totals::of_json(&s["subtree"])?;
    if got_all != all {
        problems.push(format!("root subtree {got_all:?}, expected {all:?}"));
    }
    let rep = &s["reporting"];
    let want_rep = json!({"offices": 7, "expected": 8, "missing": 1, "stale": 1 + cut.len()});
    if ["offices", "expected", "missing", "stale"].iter().any(|k| rep[k] != want_rep[k]) {
        problems.push(format!("reporting {rep}, expected {want_rep}"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// Every office in `offices` lists records whose totals are the model's.
async fn check_origins(mesh: &Mesh, model: &Model, offices: &[&str]) -> Result<(), String> {
    let mut problems = Vec::new();
    for id in offices {
        let got = totals_at_origin(&mesh.api(id), id).await?;
        if got != model.totals(id) {
            problems.push(format!("{id}: its own records give {got:?}, the test did {:?}", model.totals(id)));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

fn age_of(s: &Value, id: &str) -> Option<u64> {
    s["nodes"].as_array()?.iter().find(|n| n["node_id"] == id)?["age_s"].as_u64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn figures_sum_the_records_and_a_city_cut_off_by_the_network_shows_stale() {
    within(Duration::from_secs(90), "figures (proxy cut)", scenario(Cut::ProxyLink)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn figures_sum_the_records_and_a_stopped_city_shows_stale() {
    within(Duration::from_secs(60), "figures (city stopped)", scenario(Cut::StopCity)).await;
}

async fn scenario(how: Cut) {
    let t0 = Instant::now();
    // The proxy sits on the city's link to the province: the city's
    // `[parent].addr` is the proxy's address.
    let proxy_addr = free_udp();
    let mut province_addr = None;
    let mut mesh = Mesh::new_with(&NODES, |c| {
        // A restarted or reconnected city is redialed soon (default cap: 10 s).
        c.extra.push("reconnect_max_ms = 1000".into());
        if c.node_id == "gz" {
            c.extra.push("topology = \"offices.tsv\"".into());
        }
        if how == Cut::ProxyLink && c.node_id == CUT {
            if let Some((_, addr)) = &mut c.parent {
                province_addr = Some(*addr);
                *addr = proxy_addr;
            }
        }
    });
    std::fs::write(mesh.root().join("nodes/gz/offices.tsv"), TOPOLOGY).unwrap_or_else(|e| panic!("{e}"));
    let proxy = match province_addr {
        Some(upstream) => Some(
            Proxy::start(proxy_addr, upstream, 7)
                .await
                .unwrap_or_else(|e| panic!("start the fault proxy on {proxy_addr}: {e}")),
        ),
        None => None,
    };
    mesh.start_all().await;
    let gz = mesh.api("gz");
    let mut m = Model::default();

    // 1. Records everywhere, all links up.
    let p_gz = id_of(&gz.post_posting(&posting_body("province", 5, Some("gz"))).await);
    post(&mut m, "gz", &p_gz, 5);
    let w_gz = id_of(&gz.post_worker(&worker_body("w gz")).await);
    m.workers.insert(w_gz.clone(), ("gz".into(), false));

    let a = mesh.api("gz/a");
    let p_a = id_of(&a.post_posting(&posting_body("city a, withdrawn", 2, Some("gz/a"))).await);
    post(&mut m, "gz/a", &p_a, 2);
    let r = a
        .patch_json(&format!("/v1/postings/{p_a}"), &json!({"status": "withdrawn"}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 200, "withdraw {p_a}: {}", r.describe());
    m.postings.get_mut(&p_a).unwrap_or_else(|| panic!("model")).3 = false;

    let b = mesh.api("gz/b");
    let mut w_b = Vec::new();
    for i in 0..3 {
        let w = id_of(&b.post_worker(&worker_body(&format!("w b{i}"))).await);
        m.workers.insert(w.clone(), ("gz/b".into(), false));
        w_b.push(w);
    }

    let x = mesh.api("gz/a/x");
    let p_x = id_of(&x.post_posting(&posting_body("county x, for the province", 4, Some("gz"))).await);
    post(&mut m, "gz/a/x", &p_x, 4);
    let w_x = id_of(&x.post_worker(&worker_body("w x")).await);
    m.workers.insert(w_x.clone(), ("gz/a/x".into(), false));

    let y = mesh.api("gz/a/y");
    let p_y = id_of(&y.post_posting(&posting_body("county y, one position", 1, None)).await);
    post(&mut m, "gz/a/y", &p_y, 1);
    let w_y = id_of(&y.post_worker(&worker_body("w y")).await);
    m.workers.insert(w_y.clone(), ("gz/a/y".into(), false));
    y.post_placement(&w_y, &p_y).await; // fills it: no longer open
    m.placements.push("gz/a/y".into());
    m.postings.get_mut(&p_y).unwrap_or_else(|| panic!("model")).2 += 1;
    m.workers.get_mut(&w_y).unwrap_or_else(|| panic!("model")).1 = true;

    let z = mesh.api("gz/b/z");
    let p_z = id_of(&z.post_posting(&posting_body("county z, for city b", 3, Some("gz/b"))).await);
    post(&mut m, "gz/b/z", &p_z, 3);
    let w_z = id_of(&z.post_worker(&worker_body("w z")).await);
    m.workers.insert(w_z.clone(), ("gz/b/z".into(), false));

    let w = mesh.api("gz/b/w");
    let w_w = id_of(&w.post_worker(&worker_body("w w")).await);
    m.workers.insert(w_w.clone(), ("gz/b/w".into(), false));

    // Placements at the city, of records that came from elsewhere: the
    // fills go home to the postings' origins, the placement of w_z down
    // to its county.
    mesh.wait_held("postings", &p_gz, &["gz/b"], CONVERGE).await;
    mesh.wait_held("postings", &p_z, &["gz/b"], CONVERGE).await;
    mesh.wait_held("workers", &w_z, &["gz/b"], CONVERGE).await;
    b.post_placement(&w_b[0], &p_gz).await;
    m.placements.push("gz/b".into());
    m.postings.get_mut(&p_gz).unwrap_or_else(|| panic!("model")).2 += 1;
    m.workers.get_mut(&w_b[0]).unwrap_or_else(|| panic!("model")).1 = true;
    b.post_placement(&w_z, &p_z).await;
    m.placements.push("gz/b".into());
    m.postings.get_mut(&p_z).unwrap_or_else(|| panic!("model")).2 += 1;
    m.workers.get_mut(&w_z).unwrap_or_else(|| panic!("model")).1 = true;

    let own: BTreeMap<&str, Totals> = NODES.iter().map(|id| (*id, m.totals(id))).collect();
    eventually("the root's figures equal the sum over the records", CONVERGE, || async {
        check_origins(&mesh, &m, &NODES).await?;
        check_root(&gz.summary().await?, &own, &[])
    })
    .await;
    // A city's own view of its subtree sums the same way.
    let sb = b.summary().await.unwrap_or_else(|e| panic!("{e}"));
    let mut want_b = Totals::default();
    for id in ["gz/b", "gz/b/z", "gz/b/w"] {
        want_b.add(&own[id]);
    }
    assert_eq!(Totals::of_json(&sb["subtree"]).unwrap_or_else(|e| panic!("{e}")), want_b, "gz/b subtree: {sb}");
    eprintln!("figures: converged with all links up after {:?}", t0.elapsed());

    // 2. Cut the city off; its subtree and the rest keep writing.
    let frozen = own.clone();
    match &proxy {
        Some(p) => p.handle().cut(),
        None => {
            mesh.stop(CUT).await;
        }
    }
    let stopped = Instant::now();
    if how == Cut::ProxyLink {
        // The city itself is up, and writes too.
        let p_a2 = id_of(&a.post_posting(&posting_body("city a while cut off", 3, Some("gz/a"))).await);
        post(&mut m, "gz/a", &p_a2, 3);
    }

    let p_x2 = id_of(&x.post_posting(&posting_body("county x while cut off", 6, None)).await);
    post(&mut m, "gz/a/x", &p_x2, 6);
    let w_x2 = id_of(&x.post_worker(&worker_body("w x2")).await);
    m.workers.insert(w_x2.clone(), ("gz/a/x".into(), false));
    x.post_placement(&w_x2, &p_x2).await;
    m.placements.push("gz/a/x".into());
    m.postings.get_mut(&p_x2).unwrap_or_else(|| panic!("model")).2 += 1;
    m.workers.get_mut(&w_x2).unwrap_or_else(|| panic!("model")).1 = true;
    x.post_placement(&w_x, &p_x).await;
    m.placements.push("gz/a/x".into());
    m.postings.get_mut(&p_x).unwrap_or_else(|| panic!("model")).2 += 1;
    m.workers.get_mut(&w_x).unwrap_or_else(|| panic!("model")).1 = true;
    let w_y2 = id_of(&y.post_worker(&worker_body("w y2")).await);
    m.workers.insert(w_y2.clone(), ("gz/a/y".into(), false));

    // Outside the cut: a placement at city b for county x's posting (its
    // fill cannot reach county x until the city is back), and new records.
    mesh.wait_held("postings", &p_x, &["gz/b"], CONVERGE).await;
    b.post_placement(&w_b[1], &p_x).await;
    m.placements.push("gz/b".into());
    m.postings.get_mut(&p_x).unwrap_or_else(|| panic!("model")).2 += 1;
    m.workers.get_mut(&w_b[1]).unwrap_or_else(|| panic!("model")).1 = true;
    let p_w = id_of(&w.post_posting(&posting_body("county w while a is cut off", 2, None)).await);
    post(&mut m, "gz/b/w", &p_w, 2);
    let p_gz2 = id_of(&gz.post_posting(&posting_body("province while a is cut off", 2, Some("gz"))).await);
    post(&mut m, "gz", &p_gz2, 2);

    let live: Vec<&str> = NODES.iter().copied().filter(|id| !in_subtree(id, CUT)).collect();
    let mut during: BTreeMap<&str, Totals> = NODES.iter().map(|id| (*id, m.totals(id))).collect();
    for id in CUT_SUBTREE {
        during.insert(id, frozen[id]);
    }
    let noticed = if how == Cut::ProxyLink { CUT_NOTICED } else { CONVERGE };
    eventually("the root keeps the cut subtree's last figures, stale; the rest is exact", noticed, || async {
        check_origins(&mesh, &m, &live).await?;
        check_root(&gz.summary().await?, &during, &CUT_SUBTREE)
    })
    .await;
    eprintln!("figures: the province shows the cut after {:?}", stopped.elapsed());
    if how == Cut::ProxyLink {
        // The city, still running, sees its own subtree fresh and exact.
        eventually("the cut-off city's own view of its subtree is fresh and exact", CONVERGE, || async {
            let s = a.summary().await?;
            let rows = rows(&s)?;
            let mut sum = Totals::default();
            for id in CUT_SUBTREE {
                let want = totals_at_origin(&mesh.api(id), id).await?;
                sum.add(&want);
                let r = rows.get(id).ok_or_else(|| format!("gz/a has no {id} row: {s}"))?;
                if Totals::of_json(&r["totals"])? != want || r["stale"] != false {
                    return Err(format!("gz/a's row {r}, {id}'s records give {want:?}"));
                }
            }
            let got = Totals::of_json(&s["subtree"])?;
            if got != sum {
                return Err(format!("gz/a subtree {got:?}, its offices' records give {sum:?}"));
            }
            Ok(())
        })
        .await;
    }
    // The cut-off counties' own figures follow their local writes.
    for id in ["gz/a/x", "gz/a/y"] {
        let api = mesh.api(id);
        eventually(&format!("{id}'s own summary follows its local writes"), CONVERGE, || async {
            let want = totals_at_origin(&api, id).await?;
            let s = api.summary().await?;
            let r = rows(&s)?.remove(id).ok_or_else(|| format!("no {id} row: {s}"))?;
            let got = Totals::of_json(&r["totals"])?;
            if got == want && r["stale"] == false {
                Ok(())
            } else {
                Err(format!("{id} row {r}, its records give {want:?}"))
            }
        })
        .await;
    }
    let x_local = totals_at_origin(&x, "gz/a/x").await.unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(x_local, frozen["gz/a/x"], "gz/a/x wrote while cut off; its own figures must have changed");
    // Ages grow, and are at least the time since the cut.
    let s1 = gz.summary().await.unwrap_or_else(|e| panic!("{e}"));
    let ages1: Vec<u64> = CUT_SUBTREE.iter().map(|id| age_of(&s1, id).unwrap_or_else(|| panic!("{s1}"))).collect();
    eventually("the cut subtree's ages grow by 2 s", Duration::from_secs(10), || async {
        let s = gz.summary().await?;
        let since = stopped.elapsed().as_secs();
        for (id, a1) in CUT_SUBTREE.iter().zip(&ages1) {
            let a = age_of(&s, id).ok_or_else(|| format!("no age for {id}: {s}"))?;
            if a < a1 + 2 || a + 1 < since {
                return Err(format!("{id}: age_s {a} (first {a1}; {since} s since the cut)"));
            }
        }
        check_root(&s, &during, &CUT_SUBTREE)
    })
    .await;
    eprintln!("figures: cut-off subtree checked after {:?}", t0.elapsed());

    // 3. Heal: the city comes back, and everything catches up.
    match &proxy {
        Some(p) => p.handle().heal(),
        None => mesh.start_node(CUT).await,
    }
    let healed = Instant::now();
    let after: BTreeMap<&str, Totals> = NODES.iter().map(|id| (*id, m.totals(id))).collect();
    assert_eq!(after["gz/a/x"].positions_open, (4 - 2) + (6 - 1), "model: county x after the heal");
    // A reconnect after a blackhole can wait for the idle timeout too.
    let catch_up = if how == Cut::ProxyLink { CUT_NOTICED } else { CONVERGE };
    eventually("after the heal the root's figures equal the sum over the records", catch_up, || async {
        check_origins(&mesh, &m, &NODES).await?;
        check_root(&gz.summary().await?, &after, &[])
    })
    .await;
    let held = x.get_posting(&p_x).await.unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|| panic!("{p_x}"));
    assert_eq!(held["remaining"], 2, "gz/b's fill reached county x after the heal: {held}");
    eprintln!("figures ({how:?}): caught up {:?} after the heal, {:?} in all", healed.elapsed(), t0.elapsed());
    mesh.finish().await;
    drop(proxy);
}
