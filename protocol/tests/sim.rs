//! Seeded simulator runs: safety on every write, convergence after heal.
//!
//! `JOBMESH_SEED=<n>` replays one seed of every scenario; `JOBMESH_SIM_SEEDS=<n>`
//! runs n seeds per scenario instead of the default (the opt-in heavy run:
//! `JOBMESH_SIM_SEEDS=2500 cargo test --release -p jobmesh-protocol --test sim`
//! runs 2,500 seeds of each of the four small and medium scenarios, 10,000 in
//! all, plus 2 of the 381-office tree).

use jobmesh_protocol::sim::{fan_out, Failover, FaultMix, NetConfig, Scenario};
use jobmesh_protocol::topology::Topology;

const GUIZHOU: &str = include_str!("../../deploy/topology/guizhou-offices.tsv");

/// Seeds for a scenario: `default`, or `JOBMESH_SIM_SEEDS / divisor` (at
/// least 1) when the heavy run is asked for, or just `JOBMESH_SEED`.
fn seeds_scaled(default: u64, divisor: u64) -> Vec<u64> {
    if let Ok(s) = std::env::var("JOBMESH_SEED") {
        return vec![s.parse().expect("JOBMESH_SEED must be a number")];
    }
    let n = std::env::var("JOBMESH_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map(|n| (n / divisor).max(1))
        .unwrap_or(default);
    (0..n).collect()
}

fn seeds(default: u64) -> Vec<u64> {
    seeds_scaled(default, 1)
}

fn lossy() -> NetConfig {
    NetConfig { loss: 0.05, duplicate: 0.05, delay_ms: 2, jitter_ms: 30, flush_ms: (1, 25) }
}

fn run_all(test: &str, scenario: &Scenario, seeds: &[u64]) {
    let started = std::time::Instant::now();
    let mut events = 0;
    let mut records = 0;
    let mut worst_converge = 0;
    let mut peak_bytes = 0;
    for &seed in seeds {
        match scenario.run(seed) {
            Ok(r) => {
                events += r.stats.events;
                records += r.records;
                worst_converge = worst_converge.max(r.converge_ms);
                peak_bytes = peak_bytes.max(r.stats.peak_node_bytes);
            }
            Err(f) => panic!(
                "{f}\nreplay: JOBMESH_SEED={} cargo test -p jobmesh-protocol --test sim -- {test} --exact",
                f.seed
            ),
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{}: {} seeds ({}..={}) passed; {} events in {:.1} s ({:.0} events/s); {} records; slowest convergence {} ms simulated; peak store per node {} KiB",
        scenario.name,
        seeds.len(),
        seeds.first().copied().unwrap_or(0),
        seeds.last().copied().unwrap_or(0),
        events,
        secs,
        events as f64 / secs.max(1e-9),
        records,
        worst_converge,
        peak_bytes / 1024
    );
}

fn scenario(name: &str, topology: Topology, net: NetConfig, chaos_ms: u64, write_every_ms: u64) -> Scenario {
    Scenario {
        name: name.into(),
        topology,
        net,
        chaos_ms,
        write_every_ms,
        fault_every_ms: 700,
        faults: FaultMix::default(),
        heal_deadline_ms: 120_000,
        crash_after_write: 0.02,
        previous_release_share: 0.0,
        failover: None,
        outage_ms: 0,
        clock_skew_ms: 0,
        clock_jumps: false,
    }
}

/// A province half on the previous release, upgraded office by office
/// while links fail and nodes crash: nothing a protocol-1 office cannot
/// decode reaches it, and once all are upgraded everything converges,
/// matters held back below old offices included (the backfill).
#[test]
fn mixed_versions_upgraded_one_at_a_time() {
    let mut s = scenario("mixed_1_2_4_8", Topology::generated("gz", &[2, 2, 2]), lossy(), 40_000, 25);
    s.previous_release_share = 0.5;
    run_all("mixed_versions_upgraded_one_at_a_time", &s, &seeds(12));
}

#[test]
fn mesh_1_2_4_lossy_with_crashes() {
    let s = scenario("1+2+4", Topology::generated("gz", &[2, 2]), lossy(), 15_000, 60);
    run_all("mesh_1_2_4_lossy_with_crashes", &s, &seeds(100));
}

/// Every office's clock off by up to 15 minutes either way, and clocks set
/// an hour forward or back among the other faults: the roll-up is fresh
/// everywhere after heal (staleness by durations, never by another clock),
/// and every node's corrected time is the root's within a second per hop.
#[test]
fn clock_skew_and_jumps_1_2_4() {
    let mut s = scenario("clock skew and jumps 1+2+4", Topology::generated("gz", &[2, 2]), lossy(), 20_000, 40);
    s.clock_skew_ms = 15 * 60_000;
    s.clock_jumps = true;
    run_all("clock_skew_and_jumps_1_2_4", &s, &seeds(40));
}

#[test]
fn mesh_1_3_9_reordering() {
    let net = NetConfig { loss: 0.02, duplicate: 0.1, delay_ms: 2, jitter_ms: 80, flush_ms: (1, 20) };
    let s = scenario("1+3+9", Topology::generated("gz", &[3, 3]), net, 12_000, 50);
    run_all("mesh_1_3_9_reordering", &s, &seeds(60));
}

#[test]
fn province_slice_40_partitions() {
    let t = Topology::parse_tsv(GUIZHOU).unwrap().slice(40);
    let mut s = scenario("guizhou-40", t, lossy(), 12_000, 40);
    s.faults = FaultMix { partition: 4, ..FaultMix::default() };
    run_all("province_slice_40_partitions", &s, &seeds(30));
}

#[test]
fn deep_chain_crashes() {
    // A deeper tree than the province's: code keys on paths, not tiers.
    let s = scenario("chain-6", Topology::generated("gz", &[1, 2, 1, 2, 1]), lossy(), 12_000, 50);
    run_all("deep_chain_crashes", &s, &seeds(20));
}

#[test]
fn guizhou_381_offices() {
    let t = Topology::parse_tsv(GUIZHOU).unwrap();
    assert_eq!(t.len(), 381);
    let mut s = scenario("guizhou-381", t, lossy(), 6_000, 10);
    s.fault_every_ms = 300;
    run_all("guizhou_381_offices", &s, &seeds_scaled(1, 1000));
}

#[test]
fn fan_out_to_2750_offices() {
    let t = Topology::generated_province();
    let net = NetConfig { loss: 0.0, duplicate: 0.0, delay_ms: 5, jitter_ms: 0, flush_ms: (2, 2) };
    let started = std::time::Instant::now();
    let (hops, ms) = fan_out(&t, net, 1);
    assert_ne!(ms, u64::MAX, "the posting did not reach every office");
    println!(
        "fan-out: a province-wide posting reached all {} offices over {hops} hops in {ms} ms simulated (5 ms per hop, 2 ms per flush); {:.1} s wall",
        t.len(),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn mesh_1_3_9_failing_disks() {
    // Disks fill up, fail writes or flushes, tear batches; each failing
    // node goes down keeping only what it flushed and returns when its disk
    // does. Every acknowledged write must survive and the mesh converge.
    let mut s = scenario("1+3+9-disks", Topology::generated("gz", &[3, 3]), lossy(), 12_000, 40);
    s.faults = FaultMix { disk_fail: 4, disk_heal: 4, ..FaultMix::default() };
    run_all("mesh_1_3_9_failing_disks", &s, &seeds(40));
}

/// A county's summary that waited at a city cut off from the province
/// arrives at the province as old as it is: each hop passes on how long it
/// held it (`SummaryAges`), so the province judges it by its own clock and
/// shows the silent county stale, not fresh from the moment of the heal.
#[test]
fn a_summary_held_at_a_cut_off_city_arrives_as_old_as_it_is() {
    use jobmesh_protocol::rollup::judge;
    use jobmesh_protocol::sim::Mesh;
    use jobmesh_protocol::topology::Topology;
    use jobmesh_protocol::NodeId;

    let topo = Topology::generated("gz", &[1, 1]);
    let mut mesh = Mesh::new(&topo, NetConfig::default(), 7);
    let (root, city) = (mesh.idx(&NodeId::parse("gz").unwrap()), 1);
    let county = (0..mesh.len()).find(|&i| mesh.id(i).depth() == 3).unwrap();
    assert_eq!(mesh.parent_of(county), Some(city));
    let t = mesh.now + 5_000;
    mesh.run_until(t);
    // The city is cut off; the county goes on publishing to it...
    mesh.cut(city);
    let t = mesh.now + 40_000;
    mesh.run_until(t);
    // ...then falls silent too, and 200 s pass.
    mesh.cut(county);
    let silent_from = mesh.now;
    let t = mesh.now + 200_000;
    mesh.run_until(t);
    mesh.heal(city);
    let t = mesh.now + 5_000;
    mesh.run_until(t);
    let county_id = mesh.id(county).clone();
    let at_city = mesh.engine(city).unwrap().rollup().report(&county_id).unwrap().clone();
    let at_root = mesh.engine(root).unwrap().rollup().report(&county_id).unwrap().clone();
    assert_eq!(at_root.version, at_city.version, "the county's last summary reached the province");
    let (age_s, stale) = judge(Some(&at_root), mesh.now, 120, false);
    let age_s = age_s.unwrap();
    assert!(stale, "judged fresh at the province: age {age_s} s");
    assert!(
        age_s + 1 >= (mesh.now - silent_from) / 1000,
        "age {age_s} s, silent for {} s",
        (mesh.now - silent_from) / 1000
    );
}

/// Failover scenarios: a city goes down for longer than the failover delay
/// (its counties attach to the province, its stations' counties carry on),
/// comes back, and its counties return; other nodes attach to a fallback
/// while their parent is fine. Besides convergence, every frame is checked
/// as it is sent: no record crosses a link the routing rule does not allow.
fn failover_scenario(name: &str, topology: Topology, chaos_ms: u64, write_every_ms: u64) -> Scenario {
    let mut s = scenario(name, topology, lossy(), chaos_ms, write_every_ms);
    s.failover = Some(Failover::default());
    s.outage_ms = 6_000;
    s.faults = FaultMix { outage: 2, spurious_attach: 2, ..FaultMix::default() };
    s
}

/// Runs `scenario` like `run_all` and fails unless the scenario happened:
/// every seed had a long outage, and at least half of them (the chaos may
/// crash the province, or the counties, all through one) failed over, sent
/// records on a fallback link and returned.
fn run_failover(test: &str, scenario: &Scenario, seeds: &[u64]) {
    let mut happened = 0;
    let mut totals = (0, 0, 0);
    for &seed in seeds {
        match scenario.run(seed) {
            Ok(r) => {
                let s = &r.stats;
                assert!(s.outages > 0, "scenario {} seed {seed}: no long outage", scenario.name);
                if s.failovers > 0 && s.returns > 0 && s.fallback_records > 0 {
                    happened += 1;
                }
                totals = (totals.0 + s.failovers, totals.1 + s.returns, totals.2 + s.fallback_records);
            }
            Err(f) => panic!(
                "{f}\nreplay: JOBMESH_SEED={} cargo test -p jobmesh-protocol --test sim -- {test} --exact",
                f.seed
            ),
        }
    }
    println!(
        "{}: {} seeds passed, {happened} failed over and returned; {} fallback links opened, {} closed on return, {} records over them",
        scenario.name,
        seeds.len(),
        totals.0,
        totals.1,
        totals.2
    );
    assert!(
        happened * 2 >= seeds.len(),
        "scenario {}: only {happened} of {} seeds failed over and returned",
        scenario.name,
        seeds.len()
    );
}

#[test]
fn failover_1_3_9() {
    let s = failover_scenario("failover-1+3+9", Topology::generated("gz", &[3, 3]), 20_000, 40);
    run_failover("failover_1_3_9", &s, &seeds(40));
}

#[test]
fn failover_province_slice_40() {
    let t = Topology::parse_tsv(GUIZHOU).unwrap().slice(40);
    let s = failover_scenario("failover-guizhou-40", t, 20_000, 30);
    run_failover("failover_province_slice_40", &s, &seeds(15));
}

#[test]
fn failover_guizhou_381_offices() {
    let t = Topology::parse_tsv(GUIZHOU).unwrap();
    let mut s = failover_scenario("failover-guizhou-381", t, 12_000, 10);
    s.fault_every_ms = 300;
    run_failover("failover_guizhou_381_offices", &s, &seeds_scaled(2, 1000));
}
