//! A real full disk: the city `gz/a` keeps its store on a small tmpfs that
//! this test mounts (as root; with `CI=true` a failed mount fails the test
//! instead of skipping it), and 8 clients fill it with POSTs. Wanted:
//!
//! - a prompt 507 that says the office's disk is full, in the `{"error"}`
//!   body, for every write while the disk is full;
//! - `/healthz` not 200 while the store fails;
//! - one log line when the store starts failing and one when it recovers,
//!   not one per attempt;
//! - the county below is refused (told to back off) meanwhile;
//! - recovery without a restart once the filesystem grows, links included
//!   (a posting made at the county during the failure reaches the province);
//! - every 201 still there after a `kill -9` and restart.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jobmesh_tests::{eventually, posting_body, within, Mesh};

const CITY: &str = "gz/a";
const COUNTY: &str = "gz/a/x";
const CLIENTS: usize = 8;
/// Small enough to fill in seconds, large enough for sled to open.
const SIZE_FULL: &str = "size=12m";
const SIZE_GROWN: &str = "size=96m";
/// Longest a refused write may take: "prompt".
const PROMPT: Duration = Duration::from_secs(3);
const MAX_POSTS: usize = 200_000;

/// Unmounts the tmpfs when the test ends, however it ends.
struct Tmpfs(std::path::PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn mount(dir: &Path) -> Result<Tmpfs, String> {
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o", SIZE_FULL, "jobmesh-test-tmpfs"])
        .arg(dir)
        .output()
        .map_err(|e| format!("cannot run mount: {e}"))?;
    if !out.status.success() {
        return Err(format!("mount failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(Tmpfs(dir.to_owned()))
}

fn grow(dir: &Path) {
    let st = Command::new("mount").args(["-o", &format!("remount,{SIZE_GROWN}")]).arg(dir).status().expect("run mount");
    assert!(st.success(), "remount of the tmpfs failed");
}

fn count(log: &str, needle: &str) -> usize {
    log.matches(needle).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_refused_promptly_reported_and_recovered_without_restart() {
    let disk = tempfile::Builder::new().prefix("jobmesh-disk-").tempdir().unwrap();
    let tmpfs = match mount(disk.path()) {
        Ok(t) => t,
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true: this test must run, but the tmpfs cannot be mounted ({e}); run as root")
        }
        Err(e) => {
            eprintln!("skipping: the tmpfs cannot be mounted ({e}); run as root or with CI=true to require it");
            return;
        }
    };
    let data = disk.path().join("city");
    within(Duration::from_secs(300), "disk_full", async {
        let mut mesh = Mesh::new_with(&["gz", CITY, COUNTY], |c| {
            if c.node_id == CITY {
                c.data_dir = data.display().to_string();
            }
        });
        mesh.start_all().await;
        let city = mesh.api(CITY);

        // Fill the disk: 8 clients POST until they are refused.
        let acked = Arc::new(Mutex::new(Vec::<String>::new()));
        let refusals = Arc::new(Mutex::new(Vec::<(u16, String, Duration)>::new()));
        let mut tasks = Vec::new();
        for c in 0..CLIENTS {
            let (api, acked, refusals) = (city.clone(), acked.clone(), refusals.clone());
            tasks.push(tokio::spawn(async move {
                for i in 0..MAX_POSTS / CLIENTS {
                    let started = Instant::now();
                    let body = posting_body(&format!("fill c{c} n{i} {}", "x".repeat(100)), 1, None);
                    match api.try_post_posting(&body).await {
                        Ok(r) if r.status == 201 => {
                            let id = r.json.as_ref().and_then(|j| j["id"].as_str()).unwrap_or_default().to_owned();
                            acked.lock().unwrap().push(id);
                        }
                        Ok(r) => {
                            let mut rs = refusals.lock().unwrap();
                            rs.push((r.status, r.error().unwrap_or(&r.text).to_owned(), started.elapsed()));
                            if rs.len() >= 200 {
                                return;
                            }
                        }
                        Err(e) => panic!("a POST got no answer: {e}"),
                    }
                }
            }));
        }
        for t in tasks {
            t.await.expect("client");
        }
        let acked: Vec<String> = acked.lock().unwrap().clone();
        let refusals = refusals.lock().unwrap().clone();
        assert!(!acked.is_empty(), "nothing was stored before the disk filled");
        assert!(refusals.len() >= 200, "the disk never filled ({} postings stored)", acked.len());
        let first_507 = refusals.iter().position(|(s, _, _)| *s == 507).expect("no 507 among the refusals");
        for (status, error, took) in &refusals[first_507..] {
            assert_eq!(*status, 507, "after the first 507 every write is a 507, got {status}: {error}");
            assert!(error.contains("disk is full"), "the 507 does not say the disk is full: {error}");
            assert!(*took < PROMPT, "a refused write took {took:?}");
        }
        eprintln!("{} postings stored, then {} refusals", acked.len(), refusals.len());

        // Health says so; the log said it once.
        let h = city.get("/healthz").await.expect("healthz answers");
        assert_ne!(h.status, 200, "/healthz is 200 while the disk is full: {}", h.describe());
        assert!(h.text.contains("disk is full"), "{}", h.describe());
        let log = mesh.log(CITY);
        assert_eq!(
            count(&log, "the store is failing"),
            1,
            "one line per change of state:\n{}",
            mesh.log_tail(CITY, 40)
        );

        // The county is refused meanwhile, and keeps its writes.
        let county = mesh.api(COUNTY);
        let during = county.post_posting(&posting_body("made at the county during the failure", 1, None)).await;
        let during_id = during["id"].as_str().unwrap().to_owned();
        eventually("the county is told to back off", Duration::from_secs(30), || async {
            let log = mesh.log(COUNTY);
            if log.contains("store is failing") {
                Ok(())
            } else {
                Err(mesh.log_tail(COUNTY, 10))
            }
        })
        .await;

        // Space returns: the node recovers by itself.
        grow(disk.path());
        eventually("the city is healthy again", Duration::from_secs(20), || async {
            match city.get("/healthz").await {
                Ok(r) if r.status == 200 => Ok(()),
                Ok(r) => Err(r.describe()),
                Err(e) => Err(e),
            }
        })
        .await;
        let after = city.post_posting(&posting_body("after the disk grew", 1, None)).await;
        assert!(after["id"].is_string());
        mesh.wait_held("postings", &during_id, &["gz", CITY], Duration::from_secs(30)).await;
        let log = mesh.log(CITY);
        assert_eq!(count(&log, "the store is failing"), 1, "{}", mesh.log_tail(CITY, 40));
        assert_eq!(count(&log, "the store has recovered"), 1, "{}", mesh.log_tail(CITY, 40));

        // Nothing acknowledged is lost across kill -9.
        mesh.kill9(CITY);
        mesh.start_node(CITY).await;
        let held = city.list_ids("postings").await.expect("list postings");
        let missing: BTreeSet<&String> = acked.iter().filter(|id| !held.contains(*id)).collect();
        assert!(missing.is_empty(), "{} acknowledged postings lost, e.g. {:?}", missing.len(), missing.iter().next());
        mesh.finish().await;
    })
    .await;
    drop(tmpfs);
}
