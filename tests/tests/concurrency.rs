//! Concurrent writers against one node: placements racing for the last
//! positions of a posting (exactly as many 201s as positions, the rest 409,
//! no fill increment lost), fills from two offices adding up everywhere,
//! and paging through a list while it grows (no record twice, none of the
//! records that existed before the listing missed).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::join_all;
use jobmesh_tests::{eventually, posting_body, within, worker_body, Api, Mesh, Oracle};
use serde_json::{json, Value};

const NODES: [&str; 3] = ["gz", "gz/a", "gz/a/x"];
const CONVERGE: Duration = Duration::from_secs(30);
const PARALLEL: usize = 8;

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap_or_else(|| panic!("no id in {v}")).to_string()
}

/// Run `n` jobs `PARALLEL` at a time; `job(i)` returns a result per job.
async fn parallel<T, F, Fut>(n: usize, job: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let job = Arc::new(job);
    let next = Arc::new(Mutex::new(0usize));
    let out: Arc<Mutex<Vec<(usize, T)>>> = Arc::new(Mutex::new(Vec::new()));
    let workers = (0..PARALLEL).map(|_| {
        let (job, next, out) = (job.clone(), next.clone(), out.clone());
        tokio::spawn(async move {
            loop {
                let i = {
                    let mut g = next.lock().unwrap_or_else(|p| p.into_inner());
                    let i = *g;
                    *g += 1;
                    i
                };
                if i >= n {
                    return;
                }
                let r = job(i).await;
                out.lock().unwrap_or_else(|p| p.into_inner()).push((i, r));
            }
        })
    });
    for w in join_all(workers).await {
        w.unwrap_or_else(|e| panic!("worker task: {e}"));
    }
    let mut v = std::mem::take(&mut *out.lock().unwrap_or_else(|p| p.into_inner()));
    v.sort_by_key(|(i, _)| *i);
    v.into_iter().map(|(_, r)| r).collect()
}

async fn register(api: &Api, n: usize, prefix: &str) -> Vec<String> {
    let (api, prefix) = (api.clone(), prefix.to_string());
    parallel(n, move |i| {
        let (api, prefix) = (api.clone(), prefix.clone());
        async move { id_of(&api.post_worker(&worker_body(&format!("{prefix} {i}"))).await) }
    })
    .await
}

/// Place each worker on `posting` at `api`, in parallel; (status, body) each.
async fn place_all(api: &Api, workers: &[String], posting: &str) -> Vec<(u16, Value)> {
    let (api, workers, posting) = (api.clone(), Arc::new(workers.to_vec()), posting.to_string());
    parallel(workers.len(), move |i| {
        let (api, w, p) = (api.clone(), workers[i].clone(), posting.clone());
        async move {
            let r = api
                .post_json("/v1/placements", &json!({"worker_id": w, "posting_id": p}))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            (r.status, r.json.unwrap_or(Value::String(r.text)))
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_lose_nothing_and_overbook_nothing() {
    within(Duration::from_secs(120), "concurrency", async {
        let mesh = Mesh::start(&NODES).await;
        let mut oracle = Oracle::new();
        let (x, a, gz) = (mesh.api("gz/a/x"), mesh.api("gz/a"), mesh.api("gz"));

        // 60 candidates race for 50 positions at one office.
        let p = id_of(&x.post_posting(&posting_body("fifty openings", 50, Some("gz/a/x"))).await);
        oracle.posting("gz/a/x", &p, "gz/a/x", 50);
        let wx = register(&x, 60, "candidate").await;
        for w in &wx {
            oracle.worker("gz/a/x", w);
        }
        let results = place_all(&x, &wx, &p).await;
        let created: Vec<&Value> = results.iter().filter(|(s, _)| *s == 201).map(|(_, v)| v).collect();
        let conflicts = results.iter().filter(|(s, _)| *s == 409).count();
        let other: Vec<_> = results.iter().filter(|(s, _)| *s != 201 && *s != 409).collect();
        println!("concurrency: 60 placements for 50 positions: {} created, {conflicts} conflicts", created.len());
        assert!(other.is_empty(), "unexpected answers: {other:?}");
        assert_eq!((created.len(), conflicts), (50, 10), "exactly as many placements as positions");
        for v in &created {
            let w = v["worker_id"].as_str().unwrap_or_default().to_string();
            oracle.placement("gz/a/x", &id_of(v), "gz/a/x", &p);
            assert!(wx.contains(&w), "{v}");
        }
        let held = x.get_posting(&p).await.unwrap_or_else(|e| panic!("{e}")).unwrap_or_default();
        assert_eq!((held["filled"].as_u64(), held["remaining"].as_u64()), (Some(50), Some(0)), "{held}");

        // Two offices fill one province posting at the same time.
        let q = id_of(&gz.post_posting(&posting_body("forty openings", 40, Some("gz"))).await);
        oracle.posting("gz", &q, "gz", 40);
        let wa = register(&a, 20, "city candidate").await;
        for w in &wa {
            oracle.worker("gz/a", w);
        }
        let wx2 = register(&x, 20, "county candidate").await;
        for w in &wx2 {
            oracle.worker("gz/a/x", w);
        }
        mesh.wait_held("postings", &q, &NODES, CONVERGE).await;
        let (ra, rx) = tokio::join!(place_all(&a, &wa, &q), place_all(&x, &wx2, &q));
        for ((at, office), results) in [(("gz/a", "gz/a"), ra), (("gz/a/x", "gz/a/x"), rx)] {
            let bad: Vec<_> = results.iter().filter(|(s, _)| *s != 201).collect();
            assert!(bad.is_empty(), "placements at {at} within the positions known there were refused: {bad:?}");
            for (_, v) in &results {
                oracle.placement(at, &id_of(v), office, &q);
            }
        }
        for n in NODES {
            let api = mesh.api(n);
            let q = q.clone();
            eventually(&format!("{q} filled 40 at {n}"), CONVERGE, || async {
                let h = api.get_posting(&q).await?.ok_or("404")?;
                if h["filled"] == 40 && h["remaining"] == 0 {
                    Ok(())
                } else {
                    Err(format!("filled={} remaining={}", h["filled"], h["remaining"]))
                }
            })
            .await;
        }

        // Paging while the list grows.
        let before: Vec<String> = {
            let gz = gz.clone();
            parallel(600, move |i| {
                let gz = gz.clone();
                async move { id_of(&gz.post_posting(&posting_body(&format!("page {i}"), 1, Some("gz"))).await) }
            })
            .await
        };
        let growing = {
            let gz = gz.clone();
            tokio::spawn(parallel(300, move |i| {
                let gz = gz.clone();
                async move { id_of(&gz.post_posting(&posting_body(&format!("growing {i}"), 1, Some("gz"))).await) }
            }))
        };
        let listed =
            gz.list_with("postings", 37, &[]).await.unwrap_or_else(|e| panic!("paging while writes go on: {e}"));
        let during: Vec<String> = growing.await.unwrap_or_else(|e| panic!("{e}"));
        let listed: BTreeSet<String> = listed.iter().filter_map(|v| v["id"].as_str().map(str::to_string)).collect();
        let missed: Vec<&String> = before.iter().filter(|id| !listed.contains(*id)).collect();
        assert!(
            missed.is_empty(),
            "paging while the list grew missed {} records that existed before it: {:?}",
            missed.len(),
            &missed[..missed.len().min(5)]
        );
        for id in before.iter().chain(during.iter()) {
            oracle.posting("gz", id, "gz", 1);
        }

        eventually("every node holds exactly its records", CONVERGE, || mesh.check_converged(&oracle)).await;

        // The province's figures are the sum over the records.
        eventually("the province's subtree figures add up", CONVERGE, || async {
            let s = gz.summary().await?;
            let t = &s["subtree"];
            let want = [
                ("postings_open", 900),
                ("positions_open", 900),
                ("positions_filled", 90),
                ("workers_registered", 100),
                ("workers_seeking", 10),
                ("placements", 90),
            ];
            let wrong: Vec<String> = want
                .iter()
                .filter(|(k, v)| t[*k].as_u64() != Some(*v))
                .map(|(k, v)| format!("{k}={} (want {v})", t[*k]))
                .collect();
            if wrong.is_empty() {
                Ok(())
            } else {
                Err(format!("{wrong:?}; subtree {t}"))
            }
        })
        .await;
        mesh.finish().await;
    })
    .await;
}
