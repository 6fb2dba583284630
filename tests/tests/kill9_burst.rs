//! "A 201 from the API survives `kill -9` of that node at any moment after
//! it" (sled's crash-test manner: kill at a random moment, reopen, check an
//! explicit invariant). 8 clients POST 2,000 postings to a county; the
//! county is killed with SIGKILL at a seeded random moment mid-burst and
//! restarted; two shorter bursts follow, each cut by another kill. Then:
//! every posting that got a 201 is there with its body, new postings never
//! reuse an id, and the province ends up with exactly the county's postings,
//! body for body. `JOBMESH_SEED=<n>` replays the kill points.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jobmesh_tests::{eventually, posting_body, within, Api, Mesh, Rng};
use serde_json::Value;

const NODES: [&str; 3] = ["gz", "gz/a", "gz/a/x"];
const COUNTY: &str = "gz/a/x";
const CLIENTS: usize = 8;
/// Posts per round: the first is the 2,000-post burst, then two shorter ones.
const ROUNDS: [usize; 3] = [2_000, 400, 400];

#[derive(Default)]
struct Tally {
    /// id → title of every posting that got a 201.
    acked: Mutex<BTreeMap<String, String>>,
    /// Requests that got no answer (connection refused or cut): unknown outcome.
    failed: AtomicUsize,
    /// Answers other than 201 (a node bug).
    other: Mutex<Vec<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn client(api: Api, round: usize, c: usize, posts: usize, tally: Arc<Tally>, killed: Arc<AtomicBool>) {
    for i in 0..posts {
        let title = format!("burst r{round} c{c} n{i}");
        match api.try_post_posting(&posting_body(&title, 1 + (i % 5) as u32, Some("gz"))).await {
            Ok(r) if r.status == 201 => match r.json.as_ref().and_then(|j| j["id"].as_str()).map(str::to_string) {
                Some(id) => {
                    if let Some(prev) = lock(&tally.acked).insert(id.clone(), title) {
                        lock(&tally.other).push(format!("id {id} acknowledged twice (first for {prev:?})"));
                    }
                }
                None => lock(&tally.other).push(format!("201 without id: {}", r.text)),
            },
            Ok(r) => {
                let after = killed.load(Ordering::SeqCst);
                lock(&tally.other).push(format!("{} (after kill: {after})", r.describe()));
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

/// One burst of `total` posts from [`CLIENTS`] clients, cut by `kill -9`
/// once `kill_after` more posts were acknowledged (plus `extra`).
async fn burst_and_kill(
    mesh: &mut Mesh,
    tally: &Arc<Tally>,
    round: usize,
    total: usize,
    kill_after: usize,
    extra: Duration,
) {
    let killed = Arc::new(AtomicBool::new(false));
    let base = lock(&tally.acked).len();
    let started = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| tokio::spawn(client(mesh.api(COUNTY), round, c, total / CLIENTS, tally.clone(), killed.clone())))
        .collect();
    let acked_now = || lock(&tally.acked).len() - base;
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked_now() < kill_after {
        assert!(Instant::now() < deadline, "round {round}: burst too slow: {} acknowledged in 60 s", acked_now());
        assert!(
            !tasks.iter().all(|t| t.is_finished()),
            "round {round}: clients stopped before the kill; other answers: {:?}",
            lock(&tally.other)
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::sleep(extra).await;
    killed.store(true, Ordering::SeqCst);
    mesh.kill9(COUNTY);
    let at_kill = acked_now();
    for t in tasks {
        t.await.unwrap_or_else(|e| panic!("client task: {e}"));
    }
    let n = acked_now();
    println!(
        "kill9_burst: round {round}: {n} of {total} acknowledged ({at_kill} when killed after {:?}); {} requests without answer so far",
        started.elapsed(),
        tally.failed.load(Ordering::SeqCst)
    );
    assert!(n < total, "round {round}: the kill did not land mid-burst");
    mesh.start_node(COUNTY).await;
}

/// GET every id (8 at a time) and return those missing or changed.
async fn lost_of(api: &Api, acked: &BTreeMap<String, String>) -> Vec<String> {
    let ids: Vec<(String, String)> = acked.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let lost = Arc::new(Mutex::new(Vec::new()));
    let getters: Vec<_> = ids
        .chunks(ids.len().div_ceil(CLIENTS).max(1))
        .map(<[_]>::to_vec)
        .map(|chunk| {
            let (api, lost) = (api.clone(), lost.clone());
            tokio::spawn(async move {
                for (id, title) in chunk {
                    let got = api.get_posting(&id).await;
                    let ok = matches!(&got, Ok(Some(p)) if p["title"] == title.as_str() && p["origin"] == COUNTY);
                    if !ok {
                        lock(&lost).push(format!("{id} ({title}): {got:?}"));
                    }
                }
            })
        })
        .collect();
    for g in getters {
        g.await.unwrap_or_else(|e| panic!("getter task: {e}"));
    }
    let lost = lock(&lost).clone();
    lost
}

fn titles(list: Vec<Value>, origin: &str) -> BTreeMap<String, String> {
    list.into_iter()
        .filter(|p| p["origin"] == origin)
        .filter_map(|p| Some((p["id"].as_str()?.to_string(), p["title"].as_str()?.to_string())))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_post_survives_kill9_mid_burst() {
    within(Duration::from_secs(170), "kill9_burst", async {
        let mut rng = Rng::from_env("kill9_burst");
        let mut mesh = Mesh::start(&NODES).await;
        let tally = Arc::new(Tally::default());
        for (round, total) in ROUNDS.into_iter().enumerate() {
            let kill_after = rng.range(total as u64 / 10, total as u64 * 9 / 10) as usize;
            let extra = Duration::from_micros(rng.range(0, 20_000));
            println!("kill9_burst: round {round}: kill {COUNTY} after {kill_after} acknowledgements + {extra:?}");
            burst_and_kill(&mut mesh, &tally, round, total, kill_after, extra).await;
        }
        let other = lock(&tally.other).clone();
        assert!(other.is_empty(), "answers other than 201 during the bursts: {other:#?}");
        let acked = lock(&tally.acked).clone();

        // Safety: every acknowledged posting is there, by id, with its body.
        let county = mesh.api(COUNTY);
        let lost = lost_of(&county, &acked).await;
        println!("kill9_burst: acknowledged {}, lost {}", acked.len(), lost.len());
        assert!(
            lost.is_empty(),
            "{} of {} acknowledged postings lost or changed after kill -9:\n{}",
            lost.len(),
            acked.len(),
            lost.join("\n")
        );

        // What the county holds now, acknowledged or not (a request cut by the
        // kill may have been stored without its 201 reaching the client).
        let before = titles(county.list_all("postings").await.unwrap_or_else(|e| panic!("{e}")), COUNTY);
        let acked_ids: BTreeSet<&String> = acked.keys().collect();
        assert!(
            before.keys().collect::<BTreeSet<_>>().is_superset(&acked_ids),
            "the county's listing misses acknowledged postings"
        );
        println!("kill9_burst: {} stored without acknowledgement", before.len() - acked.len());

        // New writes after the restarts never reuse an id.
        for i in 0..20 {
            let p = county.post_posting(&posting_body(&format!("after restarts {i}"), 1, Some("gz"))).await;
            let id = p["id"].as_str().unwrap_or_default().to_string();
            assert!(
                !before.contains_key(&id),
                "restarted county reused id {id} ({:?}) for a new posting",
                before.get(&id)
            );
        }
        let at_county = titles(county.list_all("postings").await.unwrap_or_else(|e| panic!("{e}")), COUNTY);
        for (id, title) in &before {
            assert_eq!(at_county.get(id), Some(title), "{id} changed after new writes");
        }

        // Liveness: the province ends up with exactly the county's postings,
        // body for body (a posting replicated before it was durable at the
        // county, then lost there and its id reused, would show here).
        let gz = mesh.api("gz");
        eventually("the province holds exactly the county's postings", Duration::from_secs(60), || async {
            let held = titles(gz.list_all("postings").await?, COUNTY);
            if held == at_county {
                return Ok(());
            }
            let missing = at_county.keys().filter(|k| !held.contains_key(*k)).count();
            let extra: Vec<_> = held.keys().filter(|k| !at_county.contains_key(*k)).take(5).collect();
            let differ: Vec<_> =
                held.iter().filter(|(k, v)| at_county.get(*k).is_some_and(|c| c != *v)).take(5).collect();
            Err(format!("{missing} missing at gz; at gz but not at the county: {extra:?}; bodies differ: {differ:?}"))
        })
        .await;

        // Figures survive the kills too: the county's row at the province
        // counts exactly its postings (all open, none filled).
        let list = county.list_all("postings").await.unwrap_or_else(|e| panic!("{e}"));
        let own: Vec<&Value> = list.iter().filter(|p| p["origin"] == COUNTY).collect();
        let positions: u64 = own.iter().filter_map(|p| p["positions"].as_u64()).sum();
        let want = (own.len() as u64, positions);
        eventually("the county's figures at the province match its records", Duration::from_secs(30), || async {
            let s = gz.summary().await?;
            let row = s["nodes"]
                .as_array()
                .and_then(|n| n.iter().find(|r| r["node_id"] == COUNTY))
                .cloned()
                .unwrap_or_default();
            let got = (
                row["totals"]["postings_open"].as_u64().unwrap_or(0),
                row["totals"]["positions_open"].as_u64().unwrap_or(0),
            );
            if got == want {
                Ok(())
            } else {
                Err(format!("(postings_open, positions_open) = {got:?}, want {want:?}; row {row}"))
            }
        })
        .await;
        mesh.finish().await;
    })
    .await;
}
