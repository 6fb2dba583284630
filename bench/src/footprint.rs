//! Case 7, footprint. The idle station's memory is read in the fan-out
//! mesh (see `fanout`); here: the province holding N records (postings and
//! workers from every office of the generated tree, and every office's
//! summary), filled through the engine's batch path, then opened by a real
//! `jobmesh run` process. Its resident memory is read from
//! `/proc/PID/status` after it has answered `/v1/summary`, a page of
//! `/v1/postings` and `/v1/status` (which counts every record, so the
//! whole store has passed through sled's cache), and two seconds of quiet.
//! One process start per run.
//!
//! Bytes on disk per record: the files of the store (what `du -b` counts)
//! over the records held, beside the logical size (keys and values, as
//! read back) per record.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use jobmesh_protocol::kv::Kv;
use jobmesh_protocol::topology::Topology;
use jobmesh_protocol::{NodeId, Record};

use super::fixture::{
    open_store, posting_record, summary_record, worker_record, write_config, Filler, NodeSpec, Pki, Scratch,
};
use super::http::Http;
use super::nodes::{free_addrs, Fleet};
use super::report::{Ceiling, Row, Unit, J};
use super::Bench;
use jobmesh_node::state::now_ms;

const DELIVER_CHUNK: usize = 16_384;

pub fn run(b: &mut Bench) -> anyhow::Result<()> {
    let n = b.plan.footprint_records;
    let dir = Scratch::new(b.scratch.path(), "footprint")?;
    let pki = Pki::new(&dir.path().join("pki"))?;
    let topo = Topology::generated_province();
    let root = topo.root().clone();
    let data = dir.path().join("province");
    let t = Instant::now();
    let records = fill(&data, &topo, n)?;
    let secs = t.elapsed().as_secs_f64();
    b.progress(&format!(
        "7 filled the province with {records} records in {secs:.1} s ({:.0}/s through the engine's batch path)",
        records as f64 / secs
    ));
    let disk = dir_bytes(&data.join("store"));
    let logical = logical_bytes(&data)?;

    let addrs = free_addrs(1)?;
    let cfg = write_config(
        &pki,
        &NodeSpec {
            id: root.clone(),
            listen: addrs[0].0,
            api: addrs[0].1,
            parent: None,
            data_dir: data.clone(),
            topology: None,
        },
    )?;
    let mut values = Vec::new();
    for run in 1..=b.plan.runs {
        let mut fleet = Fleet::default();
        fleet.spawn(&b.exe, &cfg, &dir.path().join(format!("province-{run}.log")), root.clone(), addrs[0].1)?;
        let t = Instant::now();
        fleet.wait_healthy()?;
        let opened = t.elapsed().as_secs_f64();
        let mut http = Http::new(addrs[0].1);
        for path in ["/v1/summary", "/v1/postings", "/v1/status"] {
            let (status, _) = http.get(path)?;
            if status != 200 {
                bail!("GET {path} at the province: {status}");
            }
        }
        drop(http);
        std::thread::sleep(Duration::from_secs(2));
        let rss = fleet.procs[0].rss().context("cannot read the province's RSS")?;
        b.progress(&format!(
            "7 run {run}: province with {records} records: RSS {:.1} MiB (opened in {opened:.2} s)",
            rss as f64 / 1048576.0
        ));
        b.report.json(
            "footprint_province",
            run,
            &[("records", J::U(records as u64)), ("rss_bytes", J::U(rss)), ("disk_bytes", J::U(disk))],
        );
        values.push(rss as f64);
        fleet.stop_all();
    }
    let idle = b.idle_station_rss.map(|v| Ceiling { label: "an idle station".into(), value: v });
    b.report.row(
        Row::new(
            "7 footprint",
            format!("RSS of the province holding {} records", super::report::thousands(records as u64)),
            Unit::Bytes,
            values,
        )
        .ceiling(idle)
        .target("< 1 GiB", 1024.0 * 1024.0 * 1024.0),
    );
    b.report.row(
        Row::new("7 footprint", "bytes on disk per record", Unit::BytesPer, vec![disk as f64 / records as f64])
            .ceiling(Some(Ceiling {
                label: "keys + values per record".into(),
                value: logical as f64 / records as f64,
            })),
    );
    b.report.note(format!(
        "7 footprint: the store of {records} records is {:.0} MiB on disk, {:.0} MiB of keys and values",
        disk as f64 / 1048576.0,
        logical as f64 / 1048576.0
    ));
    Ok(())
}

/// Fill the province; the number of records it holds.
fn fill(data: &Path, topo: &Topology, n: usize) -> anyhow::Result<usize> {
    let root = topo.root().clone();
    let mut filler = Filler::open(data, &root)?;
    let now = now_ms();
    let below: Vec<&NodeId> = topo.offices.iter().map(|o| &o.id).filter(|id| **id != root).collect();
    let mut by_child: BTreeMap<NodeId, Vec<Record>> = BTreeMap::new();
    let mut pending = 0usize;
    for (i, id) in below.iter().enumerate() {
        let child = root.child_toward(id).context("an office outside the tree")?;
        by_child.entry(child).or_default().push(summary_record(id, now, i as u64));
    }
    for i in 0..n {
        let origin = below[i % below.len()];
        let number = (i / below.len()) as u64 + 1;
        let child = root.child_toward(origin).context("an office outside the tree")?;
        // Seven postings for every three workers.
        let rec =
            if i % 10 < 7 { posting_record(origin, number, origin, now) } else { worker_record(origin, number, now) };
        by_child.entry(child).or_default().push(rec);
        pending += 1;
        if pending >= DELIVER_CHUNK {
            for (child, recs) in by_child.iter_mut() {
                filler.deliver(child, std::mem::take(recs))?;
            }
            pending = 0;
        }
    }
    for (child, recs) in by_child.iter_mut() {
        filler.deliver(child, std::mem::take(recs))?;
    }
    filler.finish()?;
    Ok(n + below.len())
}

/// Total size of the files under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .filter_map(|e| e.ok())
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Keys and values held in the store, in bytes.
fn logical_bytes(data: &Path) -> anyhow::Result<u64> {
    let kv = open_store(data)?;
    let mut total = 0u64;
    let mut from = Vec::new();
    let end = vec![0xffu8; 8];
    loop {
        let chunk = kv.scan(&from, &end, 8192)?;
        for (k, v) in &chunk {
            total += (k.len() + v.len()) as u64;
        }
        match chunk.last() {
            Some((k, _)) if chunk.len() == 8192 => {
                from = k.clone();
                from.push(0);
            }
            _ => break,
        }
    }
    Ok(total)
}
