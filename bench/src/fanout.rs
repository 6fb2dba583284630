//! Case 4, fan-out latency, on real processes: a 1+3+9+27 tree (`--quick`:
//! a 1+1+1+1 chain, the same three hops) of `jobmesh run` processes on
//! 127.0.0.1 with a generated CA. One sample: POST a province-wide posting
//! at the province (201 = durable there), then poll `GET
//! /v1/postings/{id}` at one station three hops down until it answers 200.
//! Stations are taken in turn. Every hop forwards only what is durable on
//! it, so at that moment the posting is durable at the province, its city
//! and its county, and applied at the station (whose own flush follows).
//!
//! Polling: one keep-alive connection per station from a plain thread, a
//! GET then a 100 µs sleep; the resolution is one poll round trip plus the
//! sleep, measured and printed. Samples are 5 ms apart so that one
//! posting's tail does not overlap the next.
//!
//! The same mesh gives case 7's idle station: after the samples, the
//! stations' resident memory is read from `/proc/PID/status` once they have
//! been idle for three seconds.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use jobmesh_protocol::topology::Topology;

use super::fixture::{posting_json, write_config, NodeSpec, Pki, Scratch};
use super::http::Http;
use super::nodes::{self, free_addrs, Fleet};
use super::report::{median, p50_p99, Ceiling, Row, Unit, J};
use super::Bench;

/// Sleep between two polls of the station.
const POLL_SLEEP: Duration = Duration::from_micros(100);
/// Pause between samples.
const BETWEEN: Duration = Duration::from_millis(5);
/// How long the idle mesh's CPU use is measured.
const IDLE_WINDOW: Duration = Duration::from_secs(2);
/// Samples thrown away before each case's runs.
const WARMUP: usize = 20;

pub fn run(b: &mut Bench, fanout: bool, footprint: bool) -> anyhow::Result<()> {
    let topo = Topology::generated("gz", &b.plan.fanout);
    let dir = Scratch::new(b.scratch.path(), "fanout")?;
    let pki = Pki::new(&dir.path().join("pki"))?;
    let addrs = free_addrs(topo.len())?;
    let index: std::collections::HashMap<_, _> =
        topo.offices.iter().enumerate().map(|(i, o)| (o.id.clone(), i)).collect();
    let mut fleet = Fleet::default();
    for (i, o) in topo.offices.iter().enumerate() {
        let parent = o.id.parent().map(|p| addrs[index[&p]].0);
        let spec = NodeSpec {
            id: o.id.clone(),
            listen: addrs[i].0,
            api: addrs[i].1,
            parent,
            data_dir: dir.path().join("data").join(o.id.file_stem()),
            topology: None,
        };
        let cfg = write_config(&pki, &spec)?;
        fleet.spawn(&b.exe, &cfg, &dir.path().join(format!("{}.log", o.id.file_stem())), o.id.clone(), addrs[i].1)?;
    }
    let t = Instant::now();
    fleet.wait_healthy()?;
    let root = fleet.procs[0].api;
    let depth = topo.offices.iter().map(|o| o.id.depth()).max().unwrap_or(1);
    let stations: Vec<usize> = (0..fleet.procs.len()).filter(|&i| fleet.procs[i].id.depth() == depth).collect();
    // Every link up: a posting reaches every station.
    let mut root_http = Http::new(root);
    let id = post(&mut root_http, 0)?;
    let deadline = Instant::now() + Duration::from_secs(120);
    for &s in &stations {
        nodes::wait_200(
            &mut Http::new(fleet.procs[s].api),
            &format!("/v1/postings/{id}"),
            Duration::from_millis(5),
            deadline,
        )
        .with_context(|| format!("the mesh did not link up: {}", fleet.procs[s].id))?;
    }
    b.progress(&format!(
        "4 {} processes up and linked in {:.1} s ({} hops to {} stations)",
        fleet.procs.len(),
        t.elapsed().as_secs_f64(),
        depth - 1,
        stations.len()
    ));

    if fanout {
        let mut station_http: Vec<Http> = stations.iter().map(|&s| Http::new(fleet.procs[s].api)).collect();
        let mut k = 1u64;
        for i in 0..WARMUP {
            k += 1;
            sample(&mut root_http, &mut station_http[i % stations.len()], k)?;
        }
        let (mut p50s, mut p99s, mut root_p50s) = (Vec::new(), Vec::new(), Vec::new());
        let (mut polls, mut poll_time) = (0u64, 0.0);
        let mesh_cpu = |fleet: &Fleet| fleet.procs.iter().map(|p| nodes::cpu_seconds(p.pid())).sum::<f64>();
        // What the mesh burns doing nothing (timers, keep-alives, summaries),
        // subtracted from the CPU per posting below.
        let (idle0, t_idle) = (mesh_cpu(&fleet), Instant::now());
        std::thread::sleep(IDLE_WINDOW);
        let idle_rate = (mesh_cpu(&fleet) - idle0) / t_idle.elapsed().as_secs_f64();
        let mut cpu_per_posting = Vec::new();
        for run in 1..=b.plan.runs {
            let (cpu0, t_run) = (mesh_cpu(&fleet), Instant::now());
            let mut total = Vec::with_capacity(b.plan.fanout_samples);
            let mut root_write = Vec::with_capacity(b.plan.fanout_samples);
            for i in 0..b.plan.fanout_samples {
                k += 1;
                let x = sample(&mut root_http, &mut station_http[i % stations.len()], k)?;
                total.push(x.total_us);
                root_write.push(x.root_us);
                polls += x.polls;
                poll_time += x.poll_secs;
            }
            let busy = mesh_cpu(&fleet) - cpu0 - idle_rate * t_run.elapsed().as_secs_f64();
            cpu_per_posting.push(1e6 * busy.max(0.0) / b.plan.fanout_samples as f64);
            let (p50, p99) = p50_p99(&mut total);
            let (r50, _) = p50_p99(&mut root_write);
            b.progress(&format!(
                "4 run {run}: p50 {:.2} ms, p99 {:.2} ms (province write p50 {:.2} ms)",
                p50 / 1e3,
                p99 / 1e3,
                r50 / 1e3
            ));
            b.report.json(
                "fanout_3hops",
                run,
                &[
                    ("samples", J::U(total.len() as u64)),
                    ("p50_us", J::F(p50)),
                    ("p99_us", J::F(p99)),
                    ("nodes", J::U(topo.len() as u64)),
                ],
            );
            p50s.push(p50);
            p99s.push(p99);
            root_p50s.push(r50);
        }
        let floor = |pick: fn((f64, f64)) -> f64| -> Option<Ceiling> {
            let f = b.ceilings.sled_write_flush_us.map(pick)?;
            let q = b.ceilings.quic_oneway_us.map(pick)?;
            Some(Ceiling {
                label: format!("4 durable writes + {} one-way QUIC", depth - 1),
                value: (depth as f64) * f + (depth - 1) as f64 * q,
            })
        };
        let shape = shape(&b.plan.fanout);
        b.report.row(
            Row::new("4 fan-out", format!("province → station, {shape} processes: p50"), Unit::Micros, p50s)
                .ceiling(floor(|x| x.0))
                .target("< 2 ms", 2000.0),
        );
        b.report.row(
            Row::new("4 fan-out", format!("province → station, {shape} processes: p99"), Unit::Micros, p99s)
                .ceiling(floor(|x| x.1))
                .target("< 10 ms", 10_000.0),
        );
        b.report.row(Row::new("4 fan-out", "of which POST at the province → 201 (p50)", Unit::Micros, root_p50s));
        b.report.row(Row::new(
            "4 fan-out",
            format!("CPU per posting, all {} processes, beyond idle (polls included)", fleet.procs.len()),
            Unit::CpuMicros,
            cpu_per_posting,
        ));
        b.report.note(format!(
            "4 fan-out: the idle mesh of {} processes burns {:.1}% of one core (timers, keep-alives, summaries)",
            fleet.procs.len(),
            100.0 * idle_rate
        ));
        b.report.note(format!(
            "4 fan-out: poll resolution: one GET round trip ({:.0} µs on average over {polls} polls) + {} µs sleep; \
             {:.1} polls per sample",
            1e6 * poll_time / polls.max(1) as f64,
            POLL_SLEEP.as_micros(),
            polls as f64 / (b.plan.runs * b.plan.fanout_samples) as f64
        ));
    }

    if footprint {
        std::thread::sleep(Duration::from_secs(3));
        let rss: Vec<f64> = stations.iter().filter_map(|&s| fleet.procs[s].rss()).map(|v| v as f64).collect();
        for (i, v) in rss.iter().enumerate() {
            b.report.json("footprint_idle_station", i + 1, &[("rss_bytes", J::U(*v as u64))]);
        }
        let probe = fleet.spawn_idle_probe(&b.exe, &dir.path().join("probe.log"))?;
        std::thread::sleep(Duration::from_secs(1));
        let floor = nodes::rss_bytes(probe).map(|v| Ceiling { label: "the binary idling".into(), value: v as f64 });
        b.idle_station_rss = Some(median(&rss));
        b.report.row(
            Row::new("7 footprint", format!("RSS of an idle station (over {} stations)", rss.len()), Unit::Bytes, rss)
                .ceiling(floor)
                .target("< 30 MB", 30e6),
        );
    }
    fleet.stop_all();
    Ok(())
}

/// One fan-out sample.
struct Sample {
    /// POST at the province → visible at the station.
    total_us: f64,
    /// POST at the province → 201.
    root_us: f64,
    polls: u64,
    /// Time spent in the station's GETs.
    poll_secs: f64,
}

/// Post posting `k` at the province, then poll `station` until it holds it.
fn sample(root: &mut Http, station: &mut Http, k: u64) -> anyhow::Result<Sample> {
    let t0 = Instant::now();
    let id = post(root, k)?;
    let t1 = Instant::now();
    let path = format!("/v1/postings/{id}");
    let (mut polls, mut poll_secs) = (0u64, 0.0);
    loop {
        let p = Instant::now();
        let (status, _) = station.get(&path)?;
        poll_secs += p.elapsed().as_secs_f64();
        polls += 1;
        match status {
            200 => break,
            404 => {}
            other => bail!("GET {path} at a station: {other}"),
        }
        if t0.elapsed() > Duration::from_secs(30) {
            bail!("posting {id} did not reach the station within 30 s");
        }
        std::thread::sleep(POLL_SLEEP);
    }
    let t2 = Instant::now();
    std::thread::sleep(BETWEEN);
    Ok(Sample {
        total_us: t2.duration_since(t0).as_secs_f64() * 1e6,
        root_us: t1.duration_since(t0).as_secs_f64() * 1e6,
        polls,
        poll_secs,
    })
}

/// POST a province-wide posting at the root; its id.
fn post(http: &mut Http, k: u64) -> anyhow::Result<String> {
    let (status, body) = http.post_json("/v1/postings", &posting_json(k, None))?;
    if status != 201 {
        bail!("POST at the province: {status} {}", String::from_utf8_lossy(&body));
    }
    let v: serde_json::Value = serde_json::from_slice(&body)?;
    Ok(v["id"].as_str().context("no id in the 201 body")?.to_owned())
}

/// `[3, 3, 3]` → `1+3+9+27`.
fn shape(fanout: &[usize]) -> String {
    let mut level = 1;
    let mut parts = vec!["1".to_owned()];
    for f in fanout {
        level *= f;
        parts.push(level.to_string());
    }
    parts.join("+")
}
