//! Offices with wrong clocks (issue 13), with a county's process under
//! libfaketime (Debian's `faketime` package): its clock 10 minutes behind,
//! 10 minutes ahead, or set back an hour while it runs. The province judges
//! freshness by its own clock, every link measures the offset, and the
//! county's records carry the province's time.
//!
//! libfaketime fakes the system clock only (`FAKETIME_DONT_FAKE_MONOTONIC`):
//! a real machine's monotonic clock does not move when its date is set.
//! Without libfaketime these tests fail under `CI=true` and say loudly that
//! they did not run otherwise.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jobmesh_tests::{eventually, posting_body, within, Mesh};
use serde_json::Value;

const NODES: [&str; 3] = ["gz", "gz/a", "gz/a/x"];
const COUNTY: &str = "gz/a/x";
const TEN_MIN_S: f64 = 600.0;

/// libfaketime's multi-threaded library, if installed.
fn libfaketime() -> Option<PathBuf> {
    let dirs = ["/usr/lib/x86_64-linux-gnu/faketime", "/usr/lib/aarch64-linux-gnu/faketime", "/usr/lib/faketime"];
    dirs.iter().map(|d| PathBuf::from(d).join("libfaketimeMT.so.1")).find(|p| p.exists())
}

/// The library, or `None` after saying loudly that the test did not run
/// (a failure under CI).
fn need_faketime(test: &str) -> Option<PathBuf> {
    let lib = libfaketime();
    if lib.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{test}: libfaketime is not installed (apt-get install faketime); CI must run this test"
        );
        eprintln!("NOT RUN: {test} needs libfaketime (apt-get install faketime)");
    }
    lib
}

/// Run `id` with its system clock `spec` off (libfaketime's syntax,
/// "-10m"), read from `file` on every call so a test can change it.
fn fake_clock(mesh: &mut Mesh, id: &str, lib: &std::path::Path, spec: &str) -> PathBuf {
    let file = mesh.root().join(format!("faketime-{}.rc", id.replace('/', "_")));
    std::fs::write(&file, spec).unwrap_or_else(|e| panic!("{e}"));
    let lib = lib.display().to_string();
    let file_s = file.display().to_string();
    mesh.set_env(
        id,
        &[
            ("LD_PRELOAD", lib.as_str()),
            ("FAKETIME_TIMESTAMP_FILE", file_s.as_str()),
            ("FAKETIME_NO_CACHE", "1"),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
            ("DONT_FAKE_MONOTONIC", "1"),
        ],
    );
    file
}

fn true_now_s() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Seconds since the epoch of the API's `YYYY-MM-DDTHH:MM:SSZ`.
fn iso_s(s: &str) -> Option<f64> {
    let day = jobmesh_protocol::time::iso_to_day(s.get(..10)?)?;
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<f64>().ok();
    Some(day as f64 * 86_400.0 + n(11..13)? * 3600.0 + n(14..16)? * 60.0 + n(17..19)?)
}

fn row<'a>(s: &'a Value, id: &str) -> Option<&'a Value> {
    s["nodes"].as_array()?.iter().find(|n| n["node_id"] == id)
}

fn child<'a>(status: &'a Value, id: &str) -> Option<&'a Value> {
    status["children"].as_array()?.iter().find(|c| c["node_id"] == id)
}

/// Wait until the county's correction is measured and return its status.
async fn measured(mesh: &Mesh, want_correction_s: f64) -> Value {
    let x = mesh.api(COUNTY);
    eventually("the county measured its clock against its parent", Duration::from_secs(30), || async {
        let s = x.status().await?;
        let c = s["clock"]["correction_ms"].as_f64().unwrap_or(0.0) / 1000.0;
        if (c - want_correction_s).abs() < 2.0 {
            Ok(())
        } else {
            Err(s["clock"].to_string())
        }
    })
    .await;
    x.status().await.unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_county_ten_minutes_behind_is_fresh_at_the_province_and_its_skew_shown() {
    let test = "a_county_ten_minutes_behind";
    let Some(lib) = need_faketime(test) else { return };
    within(Duration::from_secs(120), test, async {
        let mut mesh = Mesh::new(&NODES);
        fake_clock(&mut mesh, COUNTY, &lib, "-10m");
        mesh.start_all().await;
        let (gz, a) = (mesh.api("gz"), mesh.api("gz/a"));

        let own = measured(&mesh, TEN_MIN_S).await;
        let off = own["clock"]["offset_to_parent_s"].as_f64().unwrap_or(f64::NAN);
        assert!((off + TEN_MIN_S).abs() < 2.0, "the county's own offset: {}", own["clock"]);
        assert_eq!(own["clock"]["skewed"], true);

        // At its parent: the child's clock 10 min behind, measured.
        eventually("the city shows the county's clock 10 min behind", Duration::from_secs(20), || async {
            let s = a.status().await?;
            let c = child(&s, COUNTY).ok_or_else(|| s.to_string())?;
            let off = c["clock_offset_s"].as_f64().ok_or_else(|| c.to_string())?;
            if (off + TEN_MIN_S).abs() < 2.0 && c["clock_skewed"] == true && c["clock_rtt_ms"].as_u64().is_some() {
                Ok(())
            } else {
                Err(c.to_string())
            }
        })
        .await;
        let s = a.status().await.unwrap_or_default();
        let c = child(&s, COUNTY).cloned().unwrap_or_default();
        eprintln!(
            "MEASURE loopback skew estimate error: {:.3} s (offset -600 s exactly), rtt {} ms",
            c["clock_offset_s"].as_f64().unwrap_or(f64::NAN) + TEN_MIN_S,
            c["clock_rtt_ms"]
        );
        let metrics = a.get("/metrics").await.map(|r| r.text).unwrap_or_default();
        assert!(
            metrics.lines().any(|l| l.starts_with("jobmesh_link_clock_offset_seconds{peer=\"gz/a/x\"")
                && l.split(' ')
                    .next_back()
                    .and_then(|v| v.parse::<f64>().ok())
                    .is_some_and(|v| (v + 600.0).abs() < 2.0)),
            "no clock offset metric for the county:\n{metrics}"
        );

        // Its records carry the true time, and it is fresh at the province.
        let before = true_now_s();
        let p = mesh.api(COUNTY).post_posting(&posting_body("时钟", 5, Some(COUNTY))).await;
        let created = p["created_at"].as_str().and_then(iso_s).unwrap_or(f64::NAN);
        assert!((created - before).abs() < 3.0, "created_at {} is not the true time {before}", p["created_at"]);
        eventually("the province shows the county fresh with its figures", Duration::from_secs(30), || async {
            let s = gz.summary().await?;
            let r = row(&s, COUNTY).ok_or_else(|| s.to_string())?;
            let fresh = r["stale"] == false && r["age_s"].as_u64().is_some_and(|a| a < 60);
            if fresh && r["totals"]["positions_open"] == 5 {
                Ok(())
            } else {
                Err(r.to_string())
            }
        })
        .await;
        let s = gz.summary().await.unwrap_or_default();
        let reported = row(&s, COUNTY).and_then(|r| r["reported_at"].as_str()).and_then(iso_s).unwrap_or(f64::NAN);
        assert!((reported - true_now_s()).abs() < 40.0, "the county's generated_at is not true time: {s}");
        mesh.finish().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_county_ten_minutes_ahead_goes_stale_on_time_once_stopped() {
    let test = "a_county_ten_minutes_ahead";
    let Some(lib) = need_faketime(test) else { return };
    // Above the 30 s republish interval of an idle office.
    const STALE_AFTER_S: u64 = 40;
    within(Duration::from_secs(150), test, async {
        let mut mesh = Mesh::new_with(&NODES, |c| {
            if c.node_id == "gz" {
                c.extra.push(format!("stale_after_s = {STALE_AFTER_S}"));
            }
        });
        fake_clock(&mut mesh, COUNTY, &lib, "+10m");
        mesh.start_all().await;
        let gz = mesh.api("gz");
        measured(&mesh, -TEN_MIN_S).await;
        mesh.api(COUNTY).post_posting(&posting_body("时钟", 3, Some(COUNTY))).await;
        eventually("the province has the county's figures, fresh", Duration::from_secs(30), || async {
            let s = gz.summary().await?;
            let r = row(&s, COUNTY).ok_or_else(|| s.to_string())?;
            if r["stale"] == false && r["totals"]["positions_open"] == 3 {
                Ok(())
            } else {
                Err(r.to_string())
            }
        })
        .await;
        mesh.stop(COUNTY).await;
        let stopped = std::time::Instant::now();
        // Stale within stale_after_s (plus a margin for the last republish
        // in flight and the polling), not ten minutes later.
        eventually(
            "the stopped county turns stale at the province",
            Duration::from_secs(STALE_AFTER_S + 20),
            || async {
                let s = gz.summary().await?;
                let r = row(&s, COUNTY).ok_or_else(|| s.to_string())?;
                if r["stale"] == true {
                    Ok(())
                } else {
                    Err(r.to_string())
                }
            },
        )
        .await;
        eprintln!("MEASURE stopped county (+10 min clock) stale at the province after {:?}", stopped.elapsed());
        mesh.finish().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_set_back_an_hour_while_running_moves_nothing_back() {
    let test = "a_clock_set_back_an_hour";
    let Some(lib) = need_faketime(test) else { return };
    within(Duration::from_secs(150), test, async {
        let mut mesh = Mesh::new(&NODES);
        let file = fake_clock(&mut mesh, COUNTY, &lib, "+0");
        mesh.start_all().await;
        let (gz, x) = (mesh.api("gz"), mesh.api(COUNTY));
        let mut ids = Vec::new();
        for i in 0..3 {
            let p = x.post_posting(&posting_body(&format!("before {i}"), 1, Some(COUNTY))).await;
            ids.push(p["id"].as_str().unwrap_or_default().to_string());
        }
        let seq_before = x.status().await.map(|s| s["journal"]["last_seq"].as_u64().unwrap_or(0)).unwrap_or(0);
        let reported = |s: &Value| row(s, COUNTY).and_then(|r| r["reported_at"].as_str()).and_then(iso_s);
        eventually("the province has the county's three postings in its figures", Duration::from_secs(30), || async {
            let s = gz.summary().await?;
            let r = row(&s, COUNTY).ok_or_else(|| s.to_string())?;
            if r["totals"]["positions_open"] == 3 {
                Ok(())
            } else {
                Err(r.to_string())
            }
        })
        .await;
        let at_before = gz.summary().await.ok().and_then(|s| reported(&s)).unwrap_or(0.0);

        // Set the county's clock back an hour while it runs.
        std::fs::write(&file, "-1h").unwrap_or_else(|e| panic!("{e}"));
        for i in 0..3 {
            let p = x.post_posting(&posting_body(&format!("after {i}"), 1, Some(COUNTY))).await;
            let created = p["created_at"].as_str().and_then(iso_s).unwrap_or(f64::NAN);
            assert!((created - true_now_s()).abs() < 5.0, "a record made after the step went back: {p}");
            ids.push(p["id"].as_str().unwrap_or_default().to_string());
        }
        let seq_after = x.status().await.map(|s| s["journal"]["last_seq"].as_u64().unwrap_or(0)).unwrap_or(0);
        assert!(seq_after > seq_before, "journal went from {seq_before} to {seq_after}");
        eventually("the province has all six, fresh, generated_at not back", Duration::from_secs(40), || async {
            let s = gz.summary().await?;
            let r = row(&s, COUNTY).ok_or_else(|| s.to_string())?;
            let at = reported(&s).unwrap_or(0.0);
            if at < at_before {
                panic!("generated_at went back: {at_before} -> {at}");
            }
            if r["totals"]["positions_open"] == 6 && r["stale"] == false && at > at_before {
                Ok(())
            } else {
                Err(r.to_string())
            }
        })
        .await;

        // Restarted with the clock still an hour behind: the process starts
        // from the wrong clock, the parent's correction puts records right.
        mesh.stop(COUNTY).await;
        mesh.start_node(COUNTY).await;
        measured(&mesh, 3600.0).await;
        let p = x.post_posting(&posting_body("after restart", 1, Some(COUNTY))).await;
        let created = p["created_at"].as_str().and_then(iso_s).unwrap_or(f64::NAN);
        assert!((created - true_now_s()).abs() < 5.0, "a record after the restart is not at true time: {p}");
        ids.push(p["id"].as_str().unwrap_or_default().to_string());
        let seq_restart = x.status().await.map(|s| s["journal"]["last_seq"].as_u64().unwrap_or(0)).unwrap_or(0);
        assert!(seq_restart > seq_after, "journal went from {seq_after} to {seq_restart}");
        eventually(
            "the province holds every posting and all seven in the figures",
            Duration::from_secs(40),
            || async {
                let s = gz.summary().await?;
                let r = row(&s, COUNTY).ok_or_else(|| s.to_string())?;
                let at = reported(&s).unwrap_or(0.0);
                if at < at_before {
                    panic!("generated_at went back after the restart: {at_before} -> {at}");
                }
                for id in &ids {
                    gz.get_posting(id).await?.ok_or_else(|| format!("{id} not at the province"))?;
                }
                if r["totals"]["positions_open"] == 7 {
                    Ok(())
                } else {
                    Err(r.to_string())
                }
            },
        )
        .await;
        mesh.finish().await;
    })
    .await;
}
