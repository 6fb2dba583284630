//! Case 9, the PostgreSQL sink (`[sink.postgres]`), against a PostgreSQL
//! server this case starts (initdb in the scratch folder's temporary
//! sibling, a free loopback port, fsync on; see `jobmesh_tests::postgres`).
//! Without PostgreSQL's server binaries the case is reported as not run,
//! with why (under `CI=true` too: `.ci/run` installs them, so a missing
//! server there shows in the table rather than failing the bench).
//!
//! Catch-up: a province store is filled with N postings through the
//! engine's local write path, then a node with a sink into a fresh schema
//! starts on it. Timed: from the node answering `/healthz` (the sink has
//! connected and migrated by then) until `/v1/status` says the sink's
//! checkpoint is the journal's end; rows/s = records mirrored / that time.
//! The ceiling, in the same run: the very rows the sink wrote, copied out
//! of its `postings` table to a server-side file, then `COPY … FROM` that
//! file into an empty table made `LIKE` it (same columns, key and indexes)
//! — PostgreSQL's bulk load with no client, no upsert, no checkpoint; after
//! a `CHECKPOINT`, the fastest of three (truncated in between).
//!
//! Live ingest: 8 HTTP clients post M postings at a node with a sink; the
//! sink's `lag_s` in `/v1/status` is sampled every 100 ms from the first
//! request until the sink has caught up. Reported: the largest lag seen
//! and the time from the last 201 until the sink had everything.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use jobmesh_node::runtime::BoundSockets;
use jobmesh_tests::postgres::Postgres;

use super::fixture::{node, posting_json, write_config, Filler, NodeSpec, Pki, Scratch};
use super::http::Http;
use super::nodes::{self, addrs, prebind, InProc};
use super::report::{median, Ceiling, Row, Unit, J};
use super::Bench;

const CASE: &str = "9 PostgreSQL sink";
const USER: &str = "bench";
const PASSWORD: &str = "bench-secret";
const DB: &str = "analytics";
const INGEST_CLIENTS: usize = 8;
/// COPYs timed per run; the fastest is the ceiling.
const COPY_TRIES: usize = 3;

pub fn run(b: &mut Bench) -> anyhow::Result<()> {
    let pg = match Postgres::try_start(true) {
        Ok(pg) => pg,
        Err(why) => {
            b.progress(&format!("9: not run: {why}"));
            b.report.note(format!("{CASE}: not run: {why}"));
            b.report.json("pgsink", 0, &[("not_run", J::S(why))]);
            return Ok(());
        }
    };
    b.rt.block_on(pg.create_user_and_db(USER, PASSWORD, DB));
    let dir = Scratch::new(b.scratch.path(), "pgsink")?;
    let pki = Pki::new(&dir.path().join("pki"))?;
    let password_file = dir.path().join("pg.password");
    std::fs::write(&password_file, format!("{PASSWORD}\n"))?;
    let (n, m) = if b.plan.quick { (20_000, 3_000) } else { (100_000, 20_000) };

    let mut rates = Vec::new();
    let mut ceilings = Vec::new();
    for run in 0..=b.plan.runs {
        let count = if run == 0 { n / 5 } else { n };
        let schema = format!("catchup{run}");
        let (secs, rows) = catch_up(b, &pki, &pg, &password_file, &dir.path().join(format!("c{run}")), &schema, count)
            .with_context(|| format!("catch-up run {run}"))?;
        let copy_secs = copy_ceiling(b, &pg, &schema).with_context(|| format!("COPY ceiling, run {run}"))?;
        let (rate, ceiling) = (rows as f64 / secs, count as f64 / copy_secs);
        b.progress(&format!(
            "9 run {run}: {rows} records mirrored in {secs:.2} s = {rate:.0} rows/s; COPY of the same {count} \
             postings rows {copy_secs:.2} s = {ceiling:.0} rows/s"
        ));
        if run > 0 {
            b.report.json(
                "pgsink_catchup",
                run,
                &[
                    ("records", J::U(rows)),
                    ("rec_per_s", J::F(rate)),
                    ("copy_rows_per_s", J::F(ceiling)),
                    ("ratio", J::F(rate / ceiling)),
                ],
            );
            rates.push(rate);
            ceilings.push(ceiling);
        }
    }
    b.report.row(
        Row::new(CASE, format!("catch-up of {n} records into PostgreSQL, rows/s"), Unit::PerSec, rates)
            .paired("COPY of the same rows (server-side file), same run", ceilings)
            .target_ratio(">= 0.5 × COPY", 0.5),
    );

    let mut max_lags = Vec::new();
    let mut drains = Vec::new();
    for run in 1..=b.plan.runs {
        let (max_lag, drain, rate) =
            live_ingest(b, &pki, &pg, &password_file, &dir.path().join(format!("i{run}")), &format!("ingest{run}"), m)
                .with_context(|| format!("live ingest run {run}"))?;
        b.progress(&format!(
            "9 ingest run {run}: {m} postings at {rate:.0}/s; sink lag at most {max_lag:.2} s; caught up {drain:.2} s \
             after the last 201"
        ));
        b.report.json(
            "pgsink_ingest_lag",
            run,
            &[
                ("records", J::U(m as u64)),
                ("rec_per_s", J::F(rate)),
                ("max_lag_s", J::F(max_lag)),
                ("drain_s", J::F(drain)),
            ],
        );
        max_lags.push(max_lag);
        drains.push(drain);
    }
    b.report.row(
        Row::new(CASE, format!("sink lag during live ingest ({INGEST_CLIENTS} clients), max"), Unit::Secs, max_lags)
            .target("<= 2 s", 2.0),
    );
    b.report.row(
        Row::new(CASE, "sink caught up after the last 201", Unit::Secs, drains.clone())
            .ceiling(Some(Ceiling { label: "lag sampling period".into(), value: 0.1 })),
    );
    b.report.note(format!(
        "{CASE}: PostgreSQL {} on loopback, fsync on; batch_rows 2000; the ceiling is a server-side COPY of the \
         postings rows the sink wrote (median drain after ingest {:.2} s)",
        pg_version(b, &pg),
        median(&drains)
    ));
    drop(pg);
    Ok(())
}

fn pg_version(b: &Bench, pg: &Postgres) -> String {
    b.rt.block_on(async {
        let c = pg.admin("postgres").await;
        c.query_one("SHOW server_version", &[]).await.map(|r| r.get::<_, String>(0)).unwrap_or_default()
    })
}

/// A province node config with a sink into `schema`.
fn config(
    pki: &Pki,
    pg: &Postgres,
    password_file: &std::path::Path,
    dir: &std::path::Path,
    schema: &str,
    s: &BoundSockets,
) -> anyhow::Result<std::path::PathBuf> {
    let (listen, api) = addrs(s)?;
    let id = node("gz");
    let cfg =
        write_config(pki, &NodeSpec { id, listen, api, parent: None, data_dir: dir.join("data"), topology: None })?;
    let mut text = std::fs::read_to_string(&cfg)?;
    text += &format!(
        "[sink.postgres]\nurl = \"{}\"\npassword_file = {}\nschema = \"{schema}\"\nbatch_rows = 2000\nretry_max_ms = 500\n",
        pg.url(USER, DB),
        serde_json::Value::from(password_file.display().to_string())
    );
    std::fs::write(&cfg, text)?;
    Ok(cfg)
}

/// The sink's `(checkpoint, head, lag_s, connected)` from `/v1/status`.
fn sink_state(http: &mut Http) -> anyhow::Result<(u64, u64, f64, bool, u64)> {
    let (status, body) = http.get("/v1/status")?;
    if status != 200 {
        bail!("/v1/status: {status}");
    }
    let v: serde_json::Value = serde_json::from_slice(&body)?;
    let s = &v["sink"];
    if s.is_null() {
        bail!("/v1/status has no sink");
    }
    Ok((
        s["checkpoint"].as_u64().unwrap_or(0),
        s["head"].as_u64().unwrap_or(0),
        s["lag_s"].as_f64().unwrap_or(f64::NAN),
        s["connected"].as_bool().unwrap_or(false),
        s["records_written"].as_u64().unwrap_or(0),
    ))
}

/// Wait until the sink's checkpoint is the journal's end (and the head is
/// past `at_least`); the time it was first seen, and the records written.
fn wait_caught_up(http: &mut Http, at_least: u64, limit: Duration, every: Duration) -> anyhow::Result<(Instant, u64)> {
    let deadline = Instant::now() + limit;
    loop {
        let (cp, head, _, _, rows) = sink_state(http)?;
        if head >= at_least && cp >= head {
            return Ok((Instant::now(), rows));
        }
        if Instant::now() > deadline {
            bail!("the sink did not catch up within {limit:?} (checkpoint {cp}, head {head})");
        }
        std::thread::sleep(every);
    }
}

fn catch_up(
    b: &Bench,
    pki: &Pki,
    pg: &Postgres,
    password_file: &std::path::Path,
    dir: &std::path::Path,
    schema: &str,
    n: usize,
) -> anyhow::Result<(f64, u64)> {
    let mut filler = Filler::open(&dir.join("data"), &node("gz"))?;
    filler.local_postings(n, None)?;
    filler.finish()?;
    let s = prebind(&b.rt)?;
    let cfg = config(pki, pg, password_file, dir, schema, &s)?;
    let node = InProc::start(&b.rt, &cfg, s)?;
    nodes::wait_healthy(node.api, "gz")?;
    let t0 = Instant::now();
    let mut http = Http::new(node.api);
    let (done, rows) = wait_caught_up(&mut http, n as u64, Duration::from_secs(600), Duration::from_millis(5))?;
    let secs = done.duration_since(t0).as_secs_f64();
    node.stop(&b.rt)?;
    let _ = std::fs::remove_dir_all(dir);
    Ok((secs, rows))
}

/// Seconds to `COPY` the rows of `schema.postings` from a server-side file
/// into an empty table like it.
fn copy_ceiling(b: &Bench, pg: &Postgres, schema: &str) -> anyhow::Result<f64> {
    let file = pg.server_dir().join(format!("{schema}.copy"));
    let f = file.display().to_string().replace('\'', "''");
    b.rt.block_on(async {
        let admin = pg.admin(DB).await;
        admin
            .batch_execute(&format!(
                "COPY {schema}.postings TO '{f}'; \
                 CREATE TABLE {schema}.copy_ceiling (LIKE {schema}.postings INCLUDING ALL);"
            ))
            .await
            .context("preparing the COPY")?;
        // The sink's dirty pages written out first, so that the COPY does
        // not pay for them; the best of three (a ceiling).
        admin.batch_execute("CHECKPOINT").await.context("CHECKPOINT")?;
        let mut secs = f64::INFINITY;
        for _ in 0..COPY_TRIES {
            admin.batch_execute(&format!("TRUNCATE {schema}.copy_ceiling")).await.context("TRUNCATE")?;
            let t = Instant::now();
            admin.batch_execute(&format!("COPY {schema}.copy_ceiling FROM '{f}'")).await.context("COPY")?;
            secs = secs.min(t.elapsed().as_secs_f64());
        }
        admin.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).await.context("dropping the schema")?;
        let _ = std::fs::remove_file(&file);
        Ok(secs)
    })
}

fn live_ingest(
    b: &Bench,
    pki: &Pki,
    pg: &Postgres,
    password_file: &std::path::Path,
    dir: &std::path::Path,
    schema: &str,
    m: usize,
) -> anyhow::Result<(f64, f64, f64)> {
    let s = prebind(&b.rt)?;
    let cfg = config(pki, pg, password_file, dir, schema, &s)?;
    let node = InProc::start(&b.rt, &cfg, s)?;
    nodes::wait_healthy(node.api, "gz")?;
    let api = node.api;
    let next = Arc::new(AtomicU64::new(0));
    let start = Arc::new(Barrier::new(INGEST_CLIENTS + 1));
    let mut threads = Vec::new();
    for _ in 0..INGEST_CLIENTS {
        let (next, start) = (next.clone(), start.clone());
        threads.push(std::thread::spawn(move || -> anyhow::Result<()> {
            let mut http = Http::new(api);
            start.wait();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= m as u64 {
                    return Ok(());
                }
                let (status, resp) = http.post_json("/v1/postings", &posting_json(i + 1, None))?;
                if status != 201 {
                    bail!("POST /v1/postings: {status} {}", String::from_utf8_lossy(&resp));
                }
            }
        }));
    }
    start.wait();
    let t0 = Instant::now();
    let mut http = Http::new(api);
    let mut max_lag: f64 = 0.0;
    while threads.iter().any(|t| !t.is_finished()) {
        let (_, _, lag, _, _) = sink_state(&mut http)?;
        if lag.is_finite() {
            max_lag = max_lag.max(lag);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let ingest_secs = t0.elapsed().as_secs_f64();
    for t in threads {
        t.join().map_err(|_| anyhow::anyhow!("a client thread panicked"))??;
    }
    let last_201 = Instant::now();
    let deadline = last_201 + Duration::from_secs(300);
    let drained = loop {
        let (cp, head, lag, _, _) = sink_state(&mut http)?;
        if lag.is_finite() {
            max_lag = max_lag.max(lag);
        }
        if head >= m as u64 && cp >= head {
            break Instant::now();
        }
        if Instant::now() > deadline {
            bail!("the sink did not catch up within 300 s of the last posting (checkpoint {cp}, head {head})");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    node.stop(&b.rt)?;
    let _ = std::fs::remove_dir_all(dir);
    Ok((max_lag, drained.duration_since(last_201).as_secs_f64(), m as f64 / ingest_secs))
}
