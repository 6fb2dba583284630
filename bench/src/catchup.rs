//! Cases 2 and 5: durable catch-up after a cut link heals.
//!
//! Case 2 (one hop): a county's store holds N postings written through the
//! engine's local write path while its link was cut; the county runs and
//! dials a city whose socket exists but whose node has not started. "Heal"
//! is starting the city (fresh store). Measured: the time from the first
//! posting visible at the city's API to all of them held durably there, and
//! from heal to that moment.
//!
//! Case 5 (deep): N postings were written at three counties below a city
//! while the city was cut off from the province; the counties' links to the
//! city worked, so the city holds all N (set up once, untimed). "Heal" is
//! starting the province (fresh store) that the city dials. Measured as in
//! case 2, at the province.
//!
//! "All held" is detected by polling `GET /v1/postings/{id}` for the last
//! posting of each origin (a link applies a peer's journal in order, so the
//! last one implies all before it), every millisecond; "durably" by a
//! durability barrier (a local write at the receiver, whose 201 comes after
//! a flush that covers everything applied before it). Resolution: one poll
//! interval plus one flush.
//!
//! Nodes run in this process through `runtime::run`, with their real QUIC
//! links, engines, flushers and sled stores.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use jobmesh_protocol::{NodeId, RecordId};

use jobmesh_protocol::kv::{Kv, WriteBatch};
use jobmesh_protocol::store::checkpoint_key;

use super::fixture::{node, open_store, write_config, Filler, NodeSpec, Pki, Scratch};
use super::http::Http;
use super::nodes::{self, addrs, cpu_seconds_self, prebind, InProc};
use super::report::{Row, Unit, J};
use super::{ceilings, Bench};

/// Poll interval while waiting for records to arrive.
const POLL: Duration = Duration::from_millis(1);
/// Longest a catch-up may take before the case fails.
const CATCHUP_DEADLINE: Duration = Duration::from_secs(600);

/// What one catch-up took.
struct Timing {
    /// The sled ceiling, measured right before this run.
    sled: f64,
    heal_to_first: f64,
    first_to_durable: f64,
    cpu_secs: f64,
    flushes: u64,
    flush_secs: f64,
}

/// Start the receiver, then wait for `first` (any of) and `last` (all of)
/// at its API, then the durability barrier.
fn measure(
    rt: &tokio::runtime::Runtime,
    receiver_config: &Path,
    receiver: tokio::net::TcpListener,
    receiver_udp: std::net::UdpSocket,
    first: &[RecordId],
    last: &[RecordId],
    sled: f64,
) -> anyhow::Result<(InProc, Timing)> {
    let api = receiver.local_addr()?;
    let cpu0 = cpu_seconds_self();
    let heal = Instant::now();
    let node =
        InProc::start(rt, receiver_config, jobmesh_node::runtime::BoundSockets { udp: receiver_udp, api: receiver })?;
    let deadline = heal + CATCHUP_DEADLINE;
    let mut http = Http::new(api);
    let first_at = 'first: loop {
        for id in first {
            if let Ok((200, _)) = http.get(&format!("/v1/postings/{id}")) {
                break 'first Instant::now();
            }
        }
        anyhow::ensure!(Instant::now() < deadline, "no record arrived at {api} within {CATCHUP_DEADLINE:?}");
        std::thread::sleep(POLL);
    };
    for id in last {
        nodes::wait_200(&mut http, &format!("/v1/postings/{id}"), POLL, deadline)?;
    }
    let durable_at = nodes::durability_barrier(api)?;
    let cpu_secs = cpu_seconds_self() - cpu0;
    let (flushes, flush_secs) = nodes::flush_metrics(api).unwrap_or((0, f64::NAN));
    Ok((
        node,
        Timing {
            sled,
            heal_to_first: first_at.duration_since(heal).as_secs_f64(),
            first_to_durable: durable_at.duration_since(first_at).as_secs_f64(),
            cpu_secs,
            flushes,
            flush_secs,
        },
    ))
}

fn spec(
    id: &NodeId,
    s: &jobmesh_node::runtime::BoundSockets,
    parent: Option<SocketAddr>,
    data: &Path,
) -> anyhow::Result<NodeSpec> {
    let (listen, api) = addrs(s)?;
    Ok(NodeSpec { id: id.clone(), listen, api, parent, data_dir: data.to_owned(), topology: None })
}

/// A UDP socket that nothing answers on: the address of a parent that is
/// not running (a cut link).
fn dead_parent() -> anyhow::Result<(std::net::UdpSocket, SocketAddr)> {
    let s = std::net::UdpSocket::bind("127.0.0.1:0")?;
    let a = s.local_addr()?;
    Ok((s, a))
}

fn rows(b: &mut Bench, case: &'static str, key: &str, what: &str, n: usize, timings: &[Timing]) {
    let rates: Vec<f64> = timings.iter().map(|t| n as f64 / t.first_to_durable).collect();
    let heal: Vec<f64> = timings.iter().map(|t| t.heal_to_first + t.first_to_durable).collect();
    let cpu: Vec<f64> = timings.iter().map(|t| 1e6 * t.cpu_secs / n as f64).collect();
    for (run, t) in timings.iter().enumerate() {
        b.report.json(
            key,
            run + 1,
            &[
                ("records", J::U(n as u64)),
                ("rec_per_s", J::F(n as f64 / t.first_to_durable)),
                ("heal_to_durable_s", J::F(t.heal_to_first + t.first_to_durable)),
                ("sled_rec_per_s", J::F(t.sled)),
                ("cpu_us_per_record", J::F(1e6 * t.cpu_secs / n as f64)),
            ],
        );
    }
    let sled: Vec<f64> = timings.iter().map(|t| t.sled).collect();
    b.report.row(
        Row::new(case, format!("{what}: records/s, first arrival → all durable"), Unit::PerSec, rates)
            .paired("sled batch 512 + flush, same N, before each run", sled)
            .target_ratio(">= 0.70 × ceiling", 0.70),
    );
    b.report.row(Row::new(case, format!("{what}: heal → all durable"), Unit::Secs, heal));
    b.report.row(Row::new(case, format!("{what}: CPU per record, both nodes"), Unit::CpuMicros, cpu));
    let t = &timings[timings.len() / 2];
    b.report.note(format!(
        "{case}: in one run the receiver made {} flushes ({:.0} records per flush, {:.2} ms each, {:.0}% of the \
         transfer time); both nodes together used {:.2} CPU-s for {n} records, {:.0}% of 2 cores",
        t.flushes,
        n as f64 / t.flushes.max(1) as f64,
        1000.0 * t.flush_secs / t.flushes.max(1) as f64,
        100.0 * t.flush_secs / t.first_to_durable,
        t.cpu_secs,
        100.0 * t.cpu_secs / (t.heal_to_first + t.first_to_durable) / 2.0,
    ));
}

/// The next run's receiver is a fresh store: drop the sender's checkpoint
/// of the old receiver's journal, as if they had never been linked (else
/// the new receiver would see a peer ahead of its journal, and say so).
fn forget_peer(data: &Path, peer: &NodeId) -> anyhow::Result<()> {
    let mut kv = open_store(data)?;
    let mut batch = WriteBatch::default();
    batch.delete(checkpoint_key(peer));
    kv.write(batch)?;
    kv.flush_blocking()?;
    Ok(())
}

/// Case 2.
pub fn one_hop(b: &mut Bench) -> anyhow::Result<()> {
    let n = b.plan.catchup_records;
    let dir = Scratch::new(b.scratch.path(), "catchup-1hop")?;
    let pki = Pki::new(&dir.path().join("pki"))?;
    let (city, county) = (node("gz/c0"), node("gz/c0/k0"));
    let county_data = dir.path().join("county");
    let t = Instant::now();
    let mut filler = Filler::open(&county_data, &county)?;
    let (first, last) = filler.local_postings(n, None)?;
    filler.finish()?;
    b.progress(&format!("2 wrote {n} postings at {county} in {:.1} s (local writes)", t.elapsed().as_secs_f64()));
    let (_province_socket, province_addr) = dead_parent()?;

    let mut timings = Vec::new();
    for run in 0..=b.plan.runs {
        let city_sockets = prebind(&b.rt)?;
        let city_data = dir.path().join(format!("city-{run}"));
        let city_cfg = write_config(&pki, &spec(&city, &city_sockets, Some(province_addr), &city_data)?)?;
        let county_sockets = prebind(&b.rt)?;
        let county_cfg =
            write_config(&pki, &spec(&county, &county_sockets, Some(city_sockets.udp.local_addr()?), &county_data)?)?;
        let sled = ceilings::sled_probe(dir.path(), n)?;
        let county_node = InProc::start(&b.rt, &county_cfg, county_sockets)?;
        nodes::wait_healthy(county_node.api, "the county")?;
        let (city_node, timing) = measure(
            &b.rt,
            &city_cfg,
            city_sockets.api,
            city_sockets.udp,
            std::slice::from_ref(&first),
            std::slice::from_ref(&last),
            sled,
        )
        .context("catch-up county → city")?;
        b.progress(&format!(
            "2 run {run}: link up and first record after {:.2} s, all {n} durable {:.2} s later ({:.0}/s)",
            timing.heal_to_first,
            timing.first_to_durable,
            n as f64 / timing.first_to_durable
        ));
        county_node.stop(&b.rt)?;
        city_node.stop(&b.rt)?;
        let _ = std::fs::remove_dir_all(&city_data);
        forget_peer(&county_data, &city)?;
        if run > 0 {
            timings.push(timing);
        }
    }
    rows(b, "2 durable catch-up", "catchup_1hop", "county → city", n, &timings);
    Ok(())
}

/// Case 5.
pub fn deep(b: &mut Bench) -> anyhow::Result<()> {
    let n = b.plan.deep_records;
    let counties = b.plan.deep_counties;
    let dir = Scratch::new(b.scratch.path(), "catchup-deep")?;
    let pki = Pki::new(&dir.path().join("pki"))?;
    let city = node("gz/c0");
    let city_data = dir.path().join("city");
    let county_ids: Vec<NodeId> = (0..counties).map(|i| node(&format!("gz/c0/k{i}"))).collect();

    // Writes below the city while it is cut off from the province.
    let t = Instant::now();
    let mut first = Vec::new();
    let mut last = Vec::new();
    for (i, c) in county_ids.iter().enumerate() {
        let share = n / counties + usize::from(i < n % counties);
        let mut filler = Filler::open(&dir.path().join(format!("county-{i}")), c)?;
        let (f, l) = filler.local_postings(share, None)?;
        filler.finish()?;
        first.push(f);
        last.push(l);
    }
    b.progress(&format!("5 wrote {n} postings at {counties} counties in {:.1} s", t.elapsed().as_secs_f64()));
    let (_dead_socket, dead_addr) = dead_parent()?;
    {
        // The counties' links to the city work: the city takes them all in.
        let city_sockets = prebind(&b.rt)?;
        let city_cfg = write_config(&pki, &spec(&city, &city_sockets, Some(dead_addr), &city_data)?)?;
        let city_udp = city_sockets.udp.local_addr()?;
        let city_api = city_sockets.api.local_addr()?;
        let t = Instant::now();
        let city_node = InProc::start(&b.rt, &city_cfg, city_sockets)?;
        let mut running = Vec::new();
        for (i, c) in county_ids.iter().enumerate() {
            let s = prebind(&b.rt)?;
            let cfg = write_config(&pki, &spec(c, &s, Some(city_udp), &dir.path().join(format!("county-{i}")))?)?;
            running.push(InProc::start(&b.rt, &cfg, s)?);
        }
        let mut http = Http::new(city_api);
        let deadline = Instant::now() + CATCHUP_DEADLINE;
        for id in &last {
            nodes::wait_200(&mut http, &format!("/v1/postings/{id}"), Duration::from_millis(5), deadline)?;
        }
        nodes::durability_barrier(city_api)?;
        let secs = t.elapsed().as_secs_f64();
        b.report.note(format!(
            "5 deep catch-up, setup: {counties} counties → the city concurrently, {n} postings in {secs:.2} s \
             ({:.0}/s, from start)",
            n as f64 / secs
        ));
        for r in running {
            r.stop(&b.rt)?;
        }
        city_node.stop(&b.rt)?;
    }

    let province = node("gz");
    let mut timings = Vec::new();
    for run in 0..=b.plan.runs {
        let p_sockets = prebind(&b.rt)?;
        let p_data = dir.path().join(format!("province-{run}"));
        let p_cfg = write_config(&pki, &spec(&province, &p_sockets, None, &p_data)?)?;
        let c_sockets = prebind(&b.rt)?;
        let c_cfg = write_config(&pki, &spec(&city, &c_sockets, Some(p_sockets.udp.local_addr()?), &city_data)?)?;
        let sled = ceilings::sled_probe(dir.path(), n)?;
        let city_node = InProc::start(&b.rt, &c_cfg, c_sockets)?;
        nodes::wait_healthy(city_node.api, "the city")?;
        let (p_node, timing) = measure(&b.rt, &p_cfg, p_sockets.api, p_sockets.udp, &first, &last, sled)
            .context("catch-up city → province")?;
        b.progress(&format!(
            "5 run {run}: first record after {:.2} s, all {n} durable {:.2} s later ({:.0}/s)",
            timing.heal_to_first,
            timing.first_to_durable,
            n as f64 / timing.first_to_durable
        ));
        city_node.stop(&b.rt)?;
        p_node.stop(&b.rt)?;
        let _ = std::fs::remove_dir_all(&p_data);
        forget_peer(&city_data, &province)?;
        if run > 0 {
            timings.push(timing);
        }
    }
    rows(b, "5 deep catch-up", "catchup_deep", "city → province", n, &timings);
    Ok(())
}
