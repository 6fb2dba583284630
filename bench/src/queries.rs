//! Case 6, root queries: the province node (in this process, through
//! `runtime::run`) holding the summaries of all 2,801 offices of the
//! generated tree (`Topology::generated_province`, also given to the node
//! as its `topology`) and N postings from offices below it, all applied
//! through the engine's batch path as if its cities had sent them.
//!
//! Measured, one request at a time over one keep-alive connection:
//! `GET /v1/summary` (every office's row), `GET /v1/summary?depth=1` (the
//! province's and its cities' rows: what a dashboard's first view needs,
//! though the subtree sums still read every summary), and `GET /v1/postings` pages of
//! the default 500 walking the whole board with `after=`. The ceiling of
//! each is the store read it cannot avoid, timed on the same store opened
//! directly once the node has stopped: decoding every summary, and
//! reading one page of 500 postings with their fill counters.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use jobmesh_protocol::store;
use jobmesh_protocol::topology::Topology;
use jobmesh_protocol::{Kind, NodeId, Record};

use super::fixture::{open_store, posting_record, summary_record, write_config, Filler, NodeSpec, Pki, Scratch};
use super::http::Http;
use super::nodes::{self, addrs, prebind, InProc};
use super::report::{median, p50_p99, Ceiling, Row, Unit, J};
use super::Bench;
use jobmesh_node::state::now_ms;

/// Records handed to the engine per delivery.
const DELIVER_CHUNK: usize = 16_384;

pub fn run(b: &mut Bench) -> anyhow::Result<()> {
    let n = b.plan.query_postings;
    let dir = Scratch::new(b.scratch.path(), "queries")?;
    let pki = Pki::new(&dir.path().join("pki"))?;
    let topo = Topology::generated_province();
    let root = topo.root().clone();
    let data = dir.path().join("province");
    let t = Instant::now();
    fill(&data, &topo, n)?;
    b.progress(&format!(
        "6 filled the province with {} summaries and {n} postings in {:.1} s",
        topo.len() - 1,
        t.elapsed().as_secs_f64()
    ));
    let topo_file = dir.path().join("offices.tsv");
    std::fs::write(&topo_file, topo.to_tsv())?;

    let s = prebind(&b.rt)?;
    let (listen, api) = addrs(&s)?;
    let cfg = write_config(
        &pki,
        &NodeSpec { id: root.clone(), listen, api, parent: None, data_dir: data.clone(), topology: Some(topo_file) },
    )?;
    let node = InProc::start(&b.rt, &cfg, s)?;
    nodes::wait_healthy(api, "the province")?;
    let mut http = Http::new(api);
    // The node publishes its own summary at start: then every office has one.
    let summary_bytes;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = http.get("/v1/summary")?;
        if status != 200 {
            bail!("GET /v1/summary: {status}");
        }
        let v: serde_json::Value = serde_json::from_slice(&body)?;
        if v["reporting"]["offices"].as_u64() == Some(topo.len() as u64) {
            summary_bytes = body.len();
            break;
        }
        if Instant::now() > deadline {
            bail!("the province reports {} offices, not {}", v["reporting"]["offices"], topo.len());
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    let depth1_bytes = http.get("/v1/summary?depth=1")?.1.len();
    let samples = b.plan.query_samples;
    let mut cursor: Option<String> = None;
    let mut page_bytes = 0usize;
    let mut page = |http: &mut Http| -> anyhow::Result<f64> {
        let path = match &cursor {
            Some(c) => format!("/v1/postings?after={c}"),
            None => "/v1/postings".to_owned(),
        };
        let t = Instant::now();
        let (status, body) = http.get(&path)?;
        let us = t.elapsed().as_secs_f64() * 1e6;
        if status != 200 {
            bail!("GET {path}: {status}");
        }
        let v: serde_json::Value = serde_json::from_slice(&body)?;
        page_bytes = page_bytes.max(body.len());
        cursor = v["next"].as_str().map(str::to_owned);
        Ok(us)
    };
    let timed = |http: &mut Http, path: &str| -> anyhow::Result<f64> {
        let t = Instant::now();
        let (status, _) = http.get(path)?;
        let us = t.elapsed().as_secs_f64() * 1e6;
        if status != 200 {
            bail!("GET {path}: {status}");
        }
        Ok(us)
    };
    for _ in 0..(samples / 10).max(10) {
        timed(&mut http, "/v1/summary")?;
        timed(&mut http, "/v1/summary?depth=1")?;
        page(&mut http)?;
    }
    let mut out: BTreeMap<&str, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    for run in 1..=b.plan.runs {
        let mut s = Vec::with_capacity(samples);
        let mut d = Vec::with_capacity(samples);
        let mut p = Vec::with_capacity(samples);
        for _ in 0..samples {
            s.push(timed(&mut http, "/v1/summary")?);
            d.push(timed(&mut http, "/v1/summary?depth=1")?);
            p.push(page(&mut http)?);
        }
        for (key, mut v) in [("query_summary", s), ("query_summary_depth1", d), ("query_postings", p)] {
            let (p50, p99) = p50_p99(&mut v);
            b.report.json(key, run, &[("samples", J::U(v.len() as u64)), ("p50_us", J::F(p50)), ("p99_us", J::F(p99))]);
            b.progress(&format!("6 run {run} {key}: p50 {:.2} ms, p99 {:.2} ms", p50 / 1e3, p99 / 1e3));
            let e = out.entry(key).or_default();
            e.0.push(p50);
            e.1.push(p99);
        }
    }
    drop(http);
    node.stop(&b.rt)?;

    // The store reads the answers cannot avoid.
    let kv = open_store(&data)?;
    let mut raw_summary = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let rows = store::list_records(&kv, Kind::Summary, &root.dotted(), None, 100_000)?;
        raw_summary.push(t.elapsed().as_secs_f64() * 1e6);
        if rows.len() != topo.len() {
            bail!("the store holds {} summaries", rows.len());
        }
    }
    let mut raw_page = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..(n / 500).clamp(1, 200) {
        let t = Instant::now();
        let recs = store::list_records(&kv, Kind::Posting, "", after.as_deref(), 500)?;
        for r in &recs {
            store::filled(&kv, &r.record.id)?;
        }
        raw_page.push(t.elapsed().as_secs_f64() * 1e6);
        after = recs.last().map(|r| r.record.id.as_str().to_owned());
    }
    drop(kv);
    let raw_s = median(&raw_summary);
    let raw_p = median(&raw_page);
    let (s50, s99) = out.remove("query_summary").unwrap_or_default();
    let (d50, d99) = out.remove("query_summary_depth1").unwrap_or_default();
    let (p50, p99) = out.remove("query_postings").unwrap_or_default();
    let c = |label: &str, v: f64| Some(Ceiling { label: label.into(), value: v });
    let offices = super::report::thousands(topo.len() as u64);
    let sl = format!("store read: {offices} summaries");
    let pl = "store read: 500 postings + fills";
    for (what, v50, v99) in [("every office's row", s50, s99), ("?depth=1 (the cities' rows)", d50, d99)] {
        b.report.row(
            Row::new("6 root queries", format!("/v1/summary, {offices} offices, {what}: p50"), Unit::Micros, v50)
                .ceiling(c(&sl, raw_s)),
        );
        b.report.row(
            Row::new("6 root queries", format!("/v1/summary, {offices} offices, {what}: p99"), Unit::Micros, v99)
                .ceiling(c(&sl, raw_s))
                .target("< 10 ms", 10_000.0),
        );
    }
    b.report.row(
        Row::new("6 root queries", format!("/v1/postings page of 500, {n} held: p50"), Unit::Micros, p50)
            .ceiling(c(pl, raw_p)),
    );
    b.report.row(
        Row::new("6 root queries", format!("/v1/postings page of 500, {n} held: p99"), Unit::Micros, p99)
            .ceiling(c(pl, raw_p))
            .target("< 10 ms", 10_000.0),
    );
    b.report.note(format!(
        "6 root queries: /v1/summary is {summary_bytes} bytes of JSON ({} rows), ?depth=1 {depth1_bytes} bytes; a \
         /v1/postings page of 500 is {page_bytes} bytes",
        topo.len()
    ));
    Ok(())
}

/// The province's store: every office's summary and `n` postings, spread
/// over the offices below it, each posting for its own office's subtree.
fn fill(data: &std::path::Path, topo: &Topology, n: usize) -> anyhow::Result<()> {
    let root = topo.root().clone();
    let mut filler = Filler::open(data, &root)?;
    let now = now_ms();
    let below: Vec<&NodeId> = topo.offices.iter().map(|o| &o.id).filter(|id| **id != root).collect();
    let mut by_child: BTreeMap<NodeId, Vec<Record>> = BTreeMap::new();
    let flush = |filler: &mut Filler, by_child: &mut BTreeMap<NodeId, Vec<Record>>, all: bool| -> anyhow::Result<()> {
        for (child, recs) in by_child.iter_mut() {
            if all || recs.len() >= DELIVER_CHUNK {
                filler.deliver(child, std::mem::take(recs)).with_context(|| format!("records from {child}"))?;
            }
        }
        Ok(())
    };
    for (i, id) in below.iter().enumerate() {
        let child = root.child_toward(id).context("an office outside the tree")?;
        by_child.entry(child).or_default().push(summary_record(id, now, i as u64));
    }
    for i in 0..n {
        let origin = below[i % below.len()];
        let number = (i / below.len()) as u64 + 1;
        let child = root.child_toward(origin).context("an office outside the tree")?;
        by_child.entry(child).or_default().push(posting_record(origin, number, origin, now));
        if i % DELIVER_CHUNK == DELIVER_CHUNK - 1 {
            flush(&mut filler, &mut by_child, false)?;
        }
    }
    flush(&mut filler, &mut by_child, true)?;
    filler.finish()?;
    Ok(())
}
