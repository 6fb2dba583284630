//! Case 3, live ingest: 16 HTTP clients post at a county as fast as they
//! are answered (closed loop, one keep-alive connection each), while the
//! county replicates up to its city and the province. A fresh chain
//! province ← city ← county runs in this process for every run.
//!
//! Measured: 201s per second at the county and the latency of each POST
//! (201 means durably stored there: group commit), beside the rate of the
//! engine's local writes alone (measured before each run, same count: the
//! part of a POST that runs under the engine mutex, one at a time), and the
//! rate at which the postings reach the province two hops up: all N
//! postings over the time from the first request to the last posting
//! visible at the province's API (the county's journal is in creation order
//! and links apply in order, so the highest-numbered posting implies all).
//!
//! Then, on the same county, a spreadsheet import (`jobmesh import`'s own
//! client, `jobmesh_import::client::import`): a CSV of N postings and an
//! xlsx of N/2, rows per second from opening the file to the last durable
//! batch, beside the live-ingest rate of the same run.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use jobmesh_protocol::NodeId;

use super::fixture::{node, posting_json, write_config, Filler, NodeSpec, Pki, Scratch};
use super::http::Http;
use super::nodes::{self, addrs, cpu_seconds_self, prebind, InProc};
use super::report::{median, p50_p99, Ceiling, Row, Unit, J};
use super::Bench;

struct RunResult {
    /// Local writes per second of the engine alone, measured before the run.
    engine: f64,
    secs: f64,
    latencies: Vec<f64>,
    province_secs: f64,
    cpu_secs: f64,
    flushes: u64,
    flush_secs: f64,
    /// Rows per second of a CSV and an xlsx import into the county.
    import_csv: f64,
    import_xlsx: f64,
}

pub fn run(b: &mut Bench) -> anyhow::Result<()> {
    let n = b.plan.ingest_records;
    let clients = b.plan.ingest_clients;
    let dir = Scratch::new(b.scratch.path(), "ingest")?;
    let pki = Pki::new(&dir.path().join("pki"))?;
    let mut results = Vec::new();
    for run in 0..=b.plan.runs {
        let count = if run == 0 { (n / 4).max(clients) } else { n };
        let engine = engine_probe(&dir.path().join(format!("probe-{run}")), count)?;
        let mut r = one_run(b, &pki, &dir.path().join(format!("run-{run}")), count, clients)
            .with_context(|| format!("ingest run {run}"))?;
        r.engine = engine;
        let (p50, p99) = p50_p99(&mut r.latencies.clone());
        b.progress(&format!(
            "3 run {run}: {count} postings by {clients} clients in {:.2} s = {:.0} 201s/s, p50 {:.2} ms, p99 {:.2} ms; \
             at the province after {:.2} s; import {:.0} rows/s (csv), {:.0} rows/s (xlsx)",
            r.secs,
            count as f64 / r.secs,
            p50 / 1000.0,
            p99 / 1000.0,
            r.province_secs,
            r.import_csv,
            r.import_xlsx
        ));
        if run > 0 {
            b.report.json(
                "ingest",
                run,
                &[
                    ("records", J::U(count as u64)),
                    ("rec_per_s", J::F(count as f64 / r.secs)),
                    ("samples", J::U(r.latencies.len() as u64)),
                    ("p50_us", J::F(p50)),
                    ("p99_us", J::F(p99)),
                    ("province_rec_per_s", J::F(count as f64 / r.province_secs)),
                    ("engine_rec_per_s", J::F(r.engine)),
                    ("clients", J::U(clients as u64)),
                    ("import_csv_rows_per_s", J::F(r.import_csv)),
                    ("import_xlsx_rows_per_s", J::F(r.import_xlsx)),
                ],
            );
            results.push(r);
        }
    }
    let rates: Vec<f64> = results.iter().map(|r| n as f64 / r.secs).collect();
    let mut p50s = Vec::new();
    let mut p99s = Vec::new();
    for r in &results {
        let (p50, p99) = p50_p99(&mut r.latencies.clone());
        p50s.push(p50);
        p99s.push(p99);
    }
    let province: Vec<f64> = results.iter().map(|r| n as f64 / r.province_secs).collect();
    let ingest_median = median(&rates);
    b.report.row(
        Row::new("3 live ingest", format!("{clients} clients: 201s/s at the county"), Unit::PerSec, rates)
            .paired("engine local writes alone, same N, before each run", results.iter().map(|r| r.engine).collect())
            .target(">= 20,000", 20_000.0),
    );
    let floor = b.ceilings.sled_write_flush_us;
    b.report.row(
        Row::new("3 live ingest", "POST → 201 p50", Unit::Micros, p50s)
            .ceiling(floor.map(|f| Ceiling { label: "sled write+flush p50".into(), value: f.0 })),
    );
    b.report.row(
        Row::new("3 live ingest", "POST → 201 p99", Unit::Micros, p99s)
            .ceiling(floor.map(|f| Ceiling { label: "sled write+flush p99".into(), value: f.1 })),
    );
    b.report.row(
        Row::new("3 live ingest", "postings/s reaching the province (2 hops up)", Unit::PerSec, province)
            .ceiling(Some(Ceiling { label: "201s/s at the county".into(), value: ingest_median })),
    );
    for (what, rates) in [
        (
            format!("import: CSV of {n} postings, rows/s into the county"),
            results.iter().map(|r| r.import_csv).collect(),
        ),
        (
            format!("import: xlsx of {} postings, rows/s into the county", n / 2),
            results.iter().map(|r| r.import_xlsx).collect::<Vec<f64>>(),
        ),
    ] {
        b.report.row(
            Row::new("3 live ingest", what, Unit::PerSec, rates)
                .ceiling(Some(Ceiling { label: "201s/s at the county (live ingest)".into(), value: ingest_median }))
                .target(">= 5,000", 5_000.0),
        );
    }
    let cpu: Vec<f64> = results.iter().map(|r| 1e6 * r.cpu_secs / n as f64).collect();
    b.report.row(Row::new("3 live ingest", "CPU per posting: clients + 3 nodes", Unit::CpuMicros, cpu));
    let r = &results[results.len() / 2];
    b.report.note(format!(
        "3 live ingest: the county made {} flushes for {n} postings ({:.1} postings per flush, {:.2} ms per flush, \
         flushing {:.0}% of the time); the bench process (16 clients and 3 nodes) used {:.1} CPU-s = {:.0} µs per \
         posting, {:.0}% of 2 cores",
        r.flushes,
        n as f64 / r.flushes.max(1) as f64,
        1000.0 * r.flush_secs / r.flushes.max(1) as f64,
        100.0 * r.flush_secs / r.secs,
        r.cpu_secs,
        1e6 * r.cpu_secs / n as f64,
        100.0 * r.cpu_secs / r.province_secs / 2.0
    ));
    Ok(())
}

fn one_run(b: &Bench, pki: &Pki, dir: &std::path::Path, n: usize, clients: usize) -> anyhow::Result<RunResult> {
    let ids: Vec<NodeId> = ["gz", "gz/c0", "gz/c0/k0"].iter().map(|s| node(s)).collect();
    let mut running: Vec<InProc> = Vec::new();
    let mut parent = None;
    for id in &ids {
        let s = prebind(&b.rt)?;
        let (listen, api) = addrs(&s)?;
        let data_dir = dir.join(id.file_stem());
        let cfg = write_config(pki, &NodeSpec { id: id.clone(), listen, api, parent, data_dir, topology: None })?;
        parent = Some(listen);
        running.push(InProc::start(&b.rt, &cfg, s)?);
    }
    for r in &running {
        nodes::wait_healthy(r.api, r.id.as_str())?;
    }
    let (province, county) = (running[0].api, running[2].api);
    // Links up: one posting travels all the way before the clock starts.
    let (status, body) = Http::new(county).post_json("/v1/postings", &posting_json(0, None))?;
    if status != 201 {
        bail!("warm-up posting: {status} {}", String::from_utf8_lossy(&body));
    }
    let id = posting_id(&body)?;
    nodes::wait_200(
        &mut Http::new(province),
        &format!("/v1/postings/{}", id.1),
        Duration::from_millis(5),
        Instant::now() + Duration::from_secs(60),
    )
    .context("the warm-up posting did not reach the province")?;

    let next = Arc::new(AtomicU64::new(0));
    let start = Arc::new(Barrier::new(clients + 1));
    let last: Arc<Mutex<(u64, String)>> = Arc::new(Mutex::new((0, String::new())));
    let mut threads = Vec::new();
    for _ in 0..clients {
        let (next, start, last) = (next.clone(), start.clone(), last.clone());
        threads.push(std::thread::spawn(move || -> anyhow::Result<Vec<f64>> {
            let mut http = Http::new(county);
            let mut lat = Vec::with_capacity(n / clients + 1);
            let mut mine = (0u64, String::new());
            start.wait();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n as u64 {
                    break;
                }
                let body = posting_json(i + 1, None);
                let t = Instant::now();
                let (status, resp) = http.post_json("/v1/postings", &body)?;
                lat.push(t.elapsed().as_secs_f64() * 1e6);
                if status != 201 {
                    bail!("POST /v1/postings: {status} {}", String::from_utf8_lossy(&resp));
                }
                let id = posting_id(&resp)?;
                if id.0 > mine.0 {
                    mine = id;
                }
            }
            let mut l = last.lock().unwrap_or_else(|p| p.into_inner());
            if mine.0 > l.0 {
                *l = mine;
            }
            Ok(lat)
        }));
    }
    let cpu0 = cpu_seconds_self();
    start.wait();
    let t0 = Instant::now();
    let mut latencies = Vec::with_capacity(n);
    for t in threads {
        latencies.extend(t.join().map_err(|_| anyhow::anyhow!("a client thread panicked"))??);
    }
    let secs = t0.elapsed().as_secs_f64();
    let last_id = last.lock().unwrap_or_else(|p| p.into_inner()).1.clone();
    let at_province = nodes::wait_200(
        &mut Http::new(province),
        &format!("/v1/postings/{last_id}"),
        Duration::from_millis(1),
        Instant::now() + Duration::from_secs(600),
    )?;
    let province_secs = at_province.duration_since(t0).as_secs_f64();
    let cpu_secs = cpu_seconds_self() - cpu0;
    let (flushes, flush_secs) = nodes::flush_metrics(county).unwrap_or((0, f64::NAN));
    let import_csv = import_rate(b, county, &dir.join("fair.csv"), n)?;
    let import_xlsx = import_rate(b, county, &dir.join("fair.xlsx"), n / 2)?;
    for r in running.into_iter().rev() {
        r.stop(&b.rt)?;
    }
    let _ = std::fs::remove_dir_all(dir);
    Ok(RunResult {
        engine: f64::NAN,
        secs,
        latencies,
        province_secs,
        cpu_secs,
        flushes,
        flush_secs,
        import_csv,
        import_xlsx,
    })
}

/// Write a sheet of `n` postings (Chinese headers, by extension CSV or
/// xlsx), import it into the county and return rows per second.
fn import_rate(b: &Bench, county: std::net::SocketAddr, path: &std::path::Path, n: usize) -> anyhow::Result<f64> {
    let head = ["外部编号", "岗位名称", "招聘单位", "职业类别", "用工类型", "岗位数", "薪资", "工作地点"];
    // References per file: the xlsx's rows are new postings, not the CSV's again.
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_owned();
    let row = |i: usize| -> [String; 8] {
        [
            format!("bench-{ext}-{i}"),
            format!("导入岗位 {i}"),
            format!("企业 {}", i % 97),
            "制造业".into(),
            ["全职", "兼职", "零工", "临时工"][i % 4].into(),
            (1 + i % 5).to_string(),
            "4000-6000元/月".into(),
            "观山湖区".into(),
        ]
    };
    if ext == "xlsx" {
        let mut wb = rust_xlsxwriter::Workbook::new();
        let ws = wb.add_worksheet();
        for (c, h) in head.iter().enumerate() {
            ws.write_string(0, c as u16, *h)?;
        }
        for i in 0..n {
            for (c, v) in row(i).iter().enumerate() {
                ws.write_string(i as u32 + 1, c as u16, v)?;
            }
        }
        wb.save(path)?;
    } else {
        let mut w = csv::Writer::from_path(path)?;
        w.write_record(head)?;
        for i in 0..n {
            w.write_record(row(i))?;
        }
        w.flush()?;
    }
    let api = jobmesh_import::client::Api::new(&format!("http://{county}"), None)?;
    let opts = jobmesh_import::client::ImportOptions {
        kind: jobmesh_import::ImportKind::Postings,
        file: path.to_path_buf(),
        dry_run: false,
        all_or_nothing: false,
        progress: false,
    };
    let out = b.rt.block_on(jobmesh_import::client::import(&api, &opts))?;
    if out.bad > 0 || out.created as usize != n {
        bail!("import of {}: {} created, {} bad of {n}", path.display(), out.created, out.bad);
    }
    Ok(out.rows as f64 / out.elapsed.as_secs_f64())
}

/// The bound every POST shares: the engine's local write (`create_posting`:
/// merge, journal, own figures, one sled batch), which runs under the
/// node's engine mutex, so one at a time. `n` of them back to back on a
/// fresh store, without HTTP and without waiting for flushes (the store is
/// flushed every 4,096); writes per second.
fn engine_probe(dir: &std::path::Path, n: usize) -> anyhow::Result<f64> {
    let t = Instant::now();
    let mut filler = Filler::open(dir, &node("gz/c0/k0"))?;
    filler.local_postings(n, None)?;
    let rate = n as f64 / t.elapsed().as_secs_f64();
    filler.finish()?;
    let _ = std::fs::remove_dir_all(dir);
    Ok(rate)
}

/// The counter number and id of a posting in a 201 body.
fn posting_id(body: &[u8]) -> anyhow::Result<(u64, String)> {
    let v: serde_json::Value = serde_json::from_slice(body)?;
    let id = v["id"].as_str().context("no id in the 201 body")?.to_owned();
    let n = id.rsplit('p').next().and_then(|s| s.parse::<u64>().ok()).context("unexpected posting id")?;
    Ok((n, id))
}
