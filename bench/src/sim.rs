//! Case 8, the simulator (`jobmesh_protocol::sim`), in this process:
//!
//! - events per second of wall time: one seeded run of the simulator tests'
//!   381-office scenario (the real tree; loss, duplication, reordering,
//!   cuts, partitions, crashes, then heal to convergence) per run, each run
//!   a different seed;
//! - fan-out: simulated time for one province-wide posting to reach all
//!   2,801 offices of the generated province over a fault-free network
//!   with 5 ms per hop and 2 ms per flush; its floor is the province's
//!   flush, the three hops' delays and the two relays' flushes (the last
//!   office holds the posting once applied).

use std::time::Instant;

use anyhow::bail;
use jobmesh_protocol::sim::{fan_out, FaultMix, NetConfig, Scenario};
use jobmesh_protocol::topology::Topology;

use jobmesh_node::deploy::GUIZHOU_TSV;

use super::report::{Ceiling, Row, Unit, J};
use super::Bench;

fn scenario(chaos_ms: u64) -> anyhow::Result<Scenario> {
    Ok(Scenario {
        name: "guizhou-381".into(),
        topology: Topology::parse_tsv(GUIZHOU_TSV)?,
        net: NetConfig { loss: 0.05, duplicate: 0.05, delay_ms: 2, jitter_ms: 30, flush_ms: (1, 25) },
        chaos_ms,
        write_every_ms: 10,
        fault_every_ms: 300,
        faults: FaultMix::default(),
        heal_deadline_ms: 120_000,
        crash_after_write: 0.02,
        previous_release_share: 0.0,
        failover: None,
        outage_ms: 0,
        clock_skew_ms: 0,
        clock_jumps: false,
    })
}

pub fn run(b: &mut Bench) -> anyhow::Result<()> {
    let s = scenario(b.plan.sim_chaos_ms)?;
    let mut rates = Vec::new();
    for run in 0..=b.plan.runs {
        let t = Instant::now();
        let r = match s.run(run as u64) {
            Ok(r) => r,
            Err(f) => bail!("{f}"),
        };
        let secs = t.elapsed().as_secs_f64();
        let rate = r.stats.events as f64 / secs;
        b.progress(&format!(
            "8 sim run {run}: {} events in {secs:.2} s = {rate:.0}/s ({} records)",
            r.stats.events, r.records
        ));
        if run > 0 {
            b.report.json(
                "sim_events",
                run,
                &[("events", J::U(r.stats.events)), ("events_per_s", J::F(rate)), ("records", J::U(r.records as u64))],
            );
            rates.push(rate);
        }
    }
    b.report.row(Row::new("8 simulator", "events/s, the 381-office tree with faults", Unit::PerSec, rates));

    let topo = Topology::generated_province();
    let net = NetConfig { loss: 0.0, duplicate: 0.0, delay_ms: 5, jitter_ms: 0, flush_ms: (2, 2) };
    let mut sim_ms = Vec::new();
    let mut wall = Vec::new();
    let mut hops = 0;
    for run in 1..=b.plan.sim_fanout_runs {
        let t = Instant::now();
        let (h, ms) = fan_out(&topo, net.clone(), run as u64);
        let secs = t.elapsed().as_secs_f64();
        if ms == u64::MAX {
            bail!("the simulated posting did not reach every office");
        }
        hops = h;
        b.progress(&format!(
            "8 sim fan-out run {run}: {} offices, {h} hops, {ms} ms simulated, {secs:.1} s wall",
            topo.len()
        ));
        b.report.json(
            "sim_fanout",
            run,
            &[("offices", J::U(topo.len() as u64)), ("sim_ms", J::U(ms)), ("wall_s", J::F(secs))],
        );
        sim_ms.push(ms as f64);
        wall.push(secs);
    }
    // The province's flush, then per hop the delay, and a flush before each
    // forward (the last node holds the posting once it has applied it).
    let floor = (net.flush_ms.0 + hops as u64 * net.delay_ms + (hops as u64 - 1) * net.flush_ms.0) as f64;
    b.report.row(
        Row::new("8 simulator", format!("province-wide posting → all {} offices", topo.len()), Unit::SimMs, sim_ms)
            .ceiling(Some(Ceiling { label: format!("{hops} hops + {hops} flushes"), value: floor })),
    );
    b.report.row(Row::new("8 simulator", "wall time of that fan-out run", Unit::Secs, wall));
    Ok(())
}
