//! "A 201 from the API survives `kill -9` of that node at any moment after
//! it": 8 clients POST 2,000 postings to a county; the county is killed with
//! SIGKILL at a seeded random moment mid-burst, restarted, and every posting
//! that got a 201 must be there (same id, same body) and must reach the
//! province. `JOBMESH_SEED=<n>` replays a run's kill point.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jobmesh_tests::{eventually, posting_body, within, Api, Mesh, Rng};

const NODES: [&str; 3] = ["gz", "gz/a", "gz/a/x"];
const COUNTY: &str = "gz/a/x";
const CLIENTS: usize = 8;
const TOTAL: usize = 2_000;

#[derive(Default)]
struct Tally {
    /// id → title of every posting that got a 201.
    acked: Mutex<BTreeMap<String, String>>,
    /// Requests that got no answer (connection refused or cut): unknown outcome.
    failed: AtomicUsize,
    /// Answers other than 201 (a node bug unless after the kill).
    other: Mutex<Vec<String>>,
}

async fn client(api: Api, c: usize, tally: Arc<Tally>, killed: Arc<AtomicBool>) {
    for i in 0..TOTAL / CLIENTS {
        let title = format!("burst c{c} n{i}");
        match api.try_post_posting(&posting_body(&title, 1 + (i % 5) as u32, Some("gz"))).await {
            Ok(r) if r.status == 201 => {
                let id = r.json.as_ref().and_then(|j| j["id"].as_str()).map(str::to_string);
                match id {
                    Some(id) => {
                        let prev = tally.acked.lock().unwrap_or_else(|p| p.into_inner()).insert(id.clone(), title);
                        if let Some(prev) = prev {
                            tally
                                .other
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .push(format!("id {id} acknowledged twice (first for {prev:?})"));
                        }
                    }
                    None => tally
                        .other
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(format!("201 without id: {}", r.text)),
                }
            }
            Ok(r) => {
                let after = killed.load(Ordering::SeqCst);
                tally
                    .other
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(format!("{} (after kill: {after})", r.describe()));
            }
            Err(_) => {
                // The county is gone: this request's outcome is unknown and so
                // is every later one's. Stop this client.
                tally.failed.fetch_add(1, Ordering::SeqCst);
                return;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_post_survives_kill9_mid_burst() {
    within(Duration::from_secs(170), "kill9_burst", async {
        let mut rng = Rng::from_env("kill9_burst");
        let kill_after = rng.range(200, 1_800) as usize;
        let extra_delay = Duration::from_micros(rng.range(0, 20_000));
        println!("kill9_burst: kill {COUNTY} after {kill_after} acknowledgements + {extra_delay:?}");

        let mut mesh = Mesh::start(&NODES).await;
        let tally = Arc::new(Tally::default());
        let killed = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|c| tokio::spawn(client(mesh.api(COUNTY), c, tally.clone(), killed.clone())))
            .collect();

        // Watch the acknowledgements and pull the plug at the chosen moment.
        let acked_now = || tally.acked.lock().unwrap_or_else(|p| p.into_inner()).len();
        let watch_deadline = Instant::now() + Duration::from_secs(90);
        while acked_now() < kill_after {
            assert!(Instant::now() < watch_deadline, "burst too slow: {} acknowledged in 90 s", acked_now());
            assert!(!tasks.iter().all(|t| t.is_finished()), "clients stopped before the kill; other answers: {:?}", tally.other.lock().map(|o| o.clone()));
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(extra_delay).await;
        killed.store(true, Ordering::SeqCst);
        mesh.kill9(COUNTY);
        let at_kill = acked_now();
        for t in tasks {
            t.await.unwrap_or_else(|e| panic!("client task: {e}"));
        }
        let acked: BTreeMap<String, String> = tally.acked.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let failed = tally.failed.load(Ordering::SeqCst);
        println!(
            "kill9_burst: {} acknowledged ({at_kill} when killed) of {TOTAL}, {failed} requests without answer, in {:?}",
            acked.len(),
            started.elapsed()
        );
        let other = tally.other.lock().unwrap_or_else(|p| p.into_inner()).clone();
        assert!(other.is_empty(), "answers other than 201 during the burst: {other:#?}");
        assert!(acked.len() < TOTAL, "the kill did not land mid-burst");

        mesh.start_node(COUNTY).await;

        // Safety: every acknowledged posting is there, by id, with its body.
        let county = mesh.api(COUNTY);
        let ids: Vec<(String, String)> = acked.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let lost = Arc::new(Mutex::new(Vec::new()));
        let chunks: Vec<Vec<(String, String)>> = ids.chunks(ids.len().div_ceil(CLIENTS).max(1)).map(<[_]>::to_vec).collect();
        let getters: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                let (api, lost) = (county.clone(), lost.clone());
                tokio::spawn(async move {
                    for (id, title) in chunk {
                        let got = api.get_posting(&id).await;
                        let ok = matches!(&got, Ok(Some(p)) if p["title"] == title.as_str() && p["origin"] == COUNTY);
                        if !ok {
                            lost.lock().unwrap_or_else(|p| p.into_inner()).push(format!("{id} ({title}): {got:?}"));
                        }
                    }
                })
            })
            .collect();
        for g in getters {
            g.await.unwrap_or_else(|e| panic!("getter task: {e}"));
        }
        let lost = lost.lock().unwrap_or_else(|p| p.into_inner()).clone();
        println!("kill9_burst: acknowledged {}, lost {}", acked.len(), lost.len());
        assert!(lost.is_empty(), "{} of {} acknowledged postings lost or changed after kill -9:\n{}", lost.len(), acked.len(), lost.join("\n"));

        // What the county holds now, acknowledged or not (a request cut by the
        // kill may have been stored without its 201 reaching the client).
        let at_county: BTreeSet<String> = county.list_ids("postings").await.unwrap_or_else(|e| panic!("{e}"));
        let acked_ids: BTreeSet<String> = acked.keys().cloned().collect();
        assert!(at_county.is_superset(&acked_ids), "listing at the county misses acknowledged postings");
        println!("kill9_burst: {} stored without acknowledgement", at_county.len() - acked_ids.len());

        // New writes after the restart never reuse an id.
        for i in 0..5 {
            let p = county.post_posting(&posting_body(&format!("after restart {i}"), 1, Some("gz"))).await;
            let id = p["id"].as_str().unwrap_or_default().to_string();
            assert!(!at_county.contains(&id), "restarted county reused id {id} for a new posting");
        }
        for (id, title) in acked.iter().take(20) {
            let p = county.get_posting(id).await.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(p.as_ref().map(|p| p["title"].clone()), Some(title.as_str().into()), "{id} changed after new writes");
        }
        let at_county: BTreeSet<String> = county.list_ids("postings").await.unwrap_or_else(|e| panic!("{e}"));

        // Liveness: everything the county holds reaches the province.
        let gz = mesh.api("gz");
        eventually("every posting of the county reaches the province", Duration::from_secs(60), || async {
            let held = gz.list_ids("postings").await?;
            let missing: Vec<&String> = at_county.difference(&held).collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!("{} of {} missing at gz, e.g. {:?}", missing.len(), at_county.len(), &missing[..missing.len().min(5)]))
            }
        })
        .await;
        mesh.finish().await;
    })
    .await;
}
