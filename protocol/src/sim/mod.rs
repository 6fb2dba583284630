//! The deterministic simulator: thousands of engines on a seeded network
//! with loss, duplication, reordering, delay, cuts, partitions and crashes.
//!
//! A run is a [`Scenario`] and a seed: a chaos phase (random writes and
//! faults, with safety checked on every store write by [`CheckedKv`]), then
//! a heal phase (every node restarted, every link healed, faults off) that
//! runs until [`Mesh::converged`] holds or a simulated deadline passes.
//! Every run reports its seed; `JOBMESH_SEED=<seed>` replays it.

mod check;
pub mod checked_kv;
pub mod failover;
pub mod mesh;
pub mod rng;
pub mod workload;

pub use checked_kv::CheckedKv;
pub use failover::Failover;
pub use mesh::{Mesh, NetConfig, SimStats};

use crate::node_id::NodeId;
use crate::topology::Topology;

/// Relative weights of the faults a chaos phase applies.
#[derive(Debug, Clone)]
pub struct FaultMix {
    pub cut: u32,
    pub heal: u32,
    pub partition: u32,
    pub crash: u32,
    pub restart: u32,
    pub forge: u32,
    /// A node's disk starts failing (full, write or flush errors, short
    /// writes)...
    pub disk_fail: u32,
    /// ...or a failing disk works again.
    pub disk_heal: u32,
    /// A node with children goes down for [`Scenario::outage_ms`], so that
    /// its children fail over (only with [`Scenario::failover`]).
    pub outage: u32,
    /// A node attaches to its first fallback although its parent is fine.
    pub spurious_attach: u32,
}

impl Default for FaultMix {
    fn default() -> Self {
        FaultMix {
            cut: 3,
            heal: 3,
            partition: 1,
            crash: 2,
            restart: 3,
            forge: 1,
            disk_fail: 0,
            disk_heal: 0,
            outage: 0,
            spurious_attach: 0,
        }
    }
}

/// A simulated run's shape; the seed is given separately.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub topology: Topology,
    pub net: NetConfig,
    /// Length of the chaos phase, simulated ms.
    pub chaos_ms: u64,
    /// Mean time between writes, simulated ms.
    pub write_every_ms: u64,
    /// Mean time between faults (0: none).
    pub fault_every_ms: u64,
    pub faults: FaultMix,
    /// How long after heal convergence may take, simulated ms.
    pub heal_deadline_ms: u64,
    /// Probability that a write is followed by a crash of its node while
    /// the write may still be flushing (the most dangerous moment).
    pub crash_after_write: f64,
    /// Share of offices that start on the previous release (protocol 1);
    /// the chaos phase upgrades them one at a time, the heal phase upgrades
    /// the rest. While an office is on it, nothing it cannot decode may
    /// reach it.
    pub previous_release_share: f64,
    /// Nodes fail over to their ancestors while their parent link is down;
    /// the run then starts with one long outage of a city (so the scenario
    /// surely happens) besides the [`FaultMix::outage`] faults.
    pub failover: Option<Failover>,
    /// How long a long outage lasts, simulated ms.
    pub outage_ms: u64,
    /// Each node's clock starts off the true time by up to this, either way.
    pub clock_skew_ms: u64,
    /// Faults include clocks set an hour forward or back (a step back takes
    /// effect at the node's next start, as the node's clock ignores it while
    /// it runs; see `node/src/state.rs`).
    pub clock_jumps: bool,
}

/// What a passing run measured.
#[derive(Debug, Clone)]
pub struct Report {
    pub seed: u64,
    pub nodes: usize,
    pub stats: SimStats,
    pub records: usize,
    /// Simulated ms from heal to convergence.
    pub converge_ms: u64,
}

/// A failing run: the seed and what went wrong.
#[derive(Debug, Clone)]
pub struct Failure {
    pub seed: u64,
    pub scenario: String,
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "scenario {} seed {} failed:\n{}", self.scenario, self.seed, self.message)
    }
}

/// Exponential-ish interval with the given mean (from the seeded generator).
fn interval(rng: &mut rng::Rng, mean: u64) -> u64 {
    // -ln(U) * mean, with U in (0, 1].
    let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let u = 1.0 - u;
    ((-u.ln()) * mean as f64) as u64 + 1
}

impl Scenario {
    /// Run with `seed`.
    pub fn run(&self, seed: u64) -> Result<Report, Failure> {
        let fail = |message: String| Failure { seed, scenario: self.name.clone(), message };
        let mut mesh = Mesh::new(&self.topology, self.net.clone(), seed);
        let mut rng = rng::Rng::new(seed.wrapping_mul(31).wrapping_add(7));
        let start = mesh.now;
        let end = start + self.chaos_ms;
        let mut first_outage = u64::MAX;
        if let Some(policy) = &self.failover {
            mesh.enable_failover(policy.clone());
            first_outage = start + self.chaos_ms / 5;
        }
        let mut next_write = start + interval(&mut rng, self.write_every_ms.max(1));
        let mut next_fault =
            if self.fault_every_ms > 0 { start + interval(&mut rng, self.fault_every_ms) } else { u64::MAX };
        if self.clock_skew_ms > 0 {
            for i in 0..mesh.len() {
                let off = rng.below(2 * self.clock_skew_ms + 1) as i64 - self.clock_skew_ms as i64;
                mesh.set_clock_offset(i, off);
            }
        }
        for i in 0..mesh.len() {
            if rng.chance(self.previous_release_share) {
                mesh.run_previous_release(i);
            }
        }
        while mesh.now < end {
            let t = next_write.min(next_fault).min(first_outage).min(end);
            mesh.run_until(t);
            if t == first_outage {
                first_outage = u64::MAX;
                let cities: Vec<usize> = (0..mesh.len())
                    .filter(|&i| mesh.id(i).depth() == 2 && (0..mesh.len()).any(|c| mesh.parent_of(c) == Some(i)))
                    .collect();
                if let Some(&c) = rng.pick(&cities) {
                    mesh.restart(c);
                    mesh.long_outage(c, self.outage_ms);
                }
            }
            if t == next_write {
                let (node, outcome) = mesh.random_write();
                if outcome == workload::WriteOutcome::Written && rng.chance(self.crash_after_write) {
                    mesh.crash_soon(node, self.net.flush_ms.1 + self.net.delay_ms + self.net.jitter_ms);
                }
                next_write = t + interval(&mut rng, self.write_every_ms.max(1));
            }
            if t == next_fault {
                self.fault(&mut mesh, &mut rng);
                if self.clock_jumps && rng.chance(0.1) {
                    let i = rng.below(mesh.len() as u64) as usize;
                    let step = if rng.chance(0.5) { 3_600_000 } else { -3_600_000 };
                    mesh.set_clock_offset(i, mesh.clock_offset(i) + step);
                }
                next_fault = t + interval(&mut rng, self.fault_every_ms);
                if rng.chance(0.1) {
                    let old: Vec<usize> = (0..mesh.len()).filter(|&i| mesh.speaks(i) == 1).collect();
                    if let Some(&i) = rng.pick(&old) {
                        mesh.check_previous_release(i).map_err(fail)?;
                        mesh.upgrade(i);
                    }
                }
            }
            let v = mesh.violations();
            if !v.is_empty() {
                return Err(fail(format!("safety violated at t+{} ms:\n{}", mesh.now - start, v.join("\n"))));
            }
        }
        for i in 0..mesh.len() {
            if mesh.speaks(i) < crate::wire::PROTOCOL_VERSION {
                mesh.check_previous_release(i).map_err(fail)?;
                mesh.upgrade(i);
            }
        }
        mesh.heal_all();
        let healed_at = mesh.now;
        let deadline = healed_at + self.heal_deadline_ms;
        let mut last = String::new();
        loop {
            mesh.run_until(mesh.now + 500);
            let v = mesh.violations();
            if !v.is_empty() {
                return Err(fail(format!("safety violated after heal:\n{}", v.join("\n"))));
            }
            if mesh.quiet() {
                match mesh.converged().and_then(|()| mesh.clocks_corrected()) {
                    Ok(()) => break,
                    Err(e) => last = e,
                }
            }
            if mesh.now >= deadline {
                return Err(fail(format!(
                    "not converged {} ms after heal; last differences:\n{last}\n{}",
                    self.heal_deadline_ms,
                    mesh.diagnose()
                )));
            }
        }
        Ok(Report {
            seed,
            nodes: mesh.len(),
            records: mesh.truth().len(),
            converge_ms: mesh.now - healed_at,
            stats: mesh.stats.clone(),
        })
    }

    fn fault(&self, mesh: &mut Mesh, rng: &mut rng::Rng) {
        let m = &self.faults;
        let total = m.cut
            + m.heal
            + m.partition
            + m.crash
            + m.restart
            + m.forge
            + m.disk_fail
            + m.disk_heal
            + m.outage
            + m.spurious_attach;
        if total == 0 || mesh.len() < 2 {
            return;
        }
        let mut roll = rng.below(u64::from(total)) as u32;
        let n = mesh.len() as u64;
        let pick_child = |rng: &mut rng::Rng| 1 + rng.below(n - 1) as usize;
        let mut take = |w: u32| {
            if roll < w {
                true
            } else {
                roll -= w;
                false
            }
        };
        if take(m.cut) {
            let c = pick_child(rng);
            mesh.cut(c);
        } else if take(m.heal) {
            let c = pick_child(rng);
            mesh.heal(c);
        } else if take(m.partition) {
            // Cut a whole city (a node at depth 2) off from its parent.
            let cities: Vec<usize> = (0..mesh.len()).filter(|&i| mesh.id(i).depth() == 2).collect();
            if let Some(&c) = rng.pick(&cities) {
                mesh.cut(c);
            }
        } else if take(m.crash) {
            let i = rng.below(n) as usize;
            mesh.crash(i);
        } else if take(m.restart) {
            let down: Vec<usize> = (0..mesh.len()).filter(|&i| !mesh.is_up(i)).collect();
            if let Some(&i) = rng.pick(&down) {
                mesh.restart(i);
            }
        } else if take(m.forge) {
            mesh.forge();
        } else if take(m.disk_fail) {
            use crate::kv::DiskFault;
            let kinds = [DiskFault::Full, DiskFault::WriteErrors, DiskFault::FlushErrors, DiskFault::ShortWrites];
            let i = rng.below(n) as usize;
            let kind = kinds[rng.below(kinds.len() as u64) as usize];
            mesh.disk_fault(i, kind);
        } else if take(m.disk_heal) {
            let failing: Vec<usize> = (0..mesh.len()).filter(|&i| mesh.disk_failing(i)).collect();
            if let Some(&i) = rng.pick(&failing) {
                mesh.disk_fault(i, crate::kv::DiskFault::None);
            }
        } else if take(m.outage) {
            let parents: Vec<usize> =
                (1..mesh.len()).filter(|&i| (0..mesh.len()).any(|c| mesh.parent_of(c) == Some(i))).collect();
            if let Some(&i) = rng.pick(&parents) {
                mesh.long_outage(i, self.outage_ms);
            }
        } else if take(m.spurious_attach) {
            let below: Vec<usize> = (0..mesh.len()).filter(|&i| mesh.id(i).depth() >= 3).collect();
            if let Some(&i) = rng.pick(&below) {
                mesh.spurious_attach(i);
            }
        }
    }
}

/// Hops and simulated time for one province-wide posting to reach every
/// node of a healthy mesh: (hops, ms).
pub fn fan_out(topology: &Topology, net: NetConfig, seed: u64) -> (usize, u64) {
    let mut mesh = Mesh::new(topology, net, seed);
    // Let links come up and first summaries settle.
    let t = mesh.now + 5_000;
    mesh.run_until(t);
    let root = topology.root().clone();
    let r = mesh.idx(&root);
    let start = mesh.now;
    let id = mesh.write_posting_for(r, &root);
    let hops = topology.offices.iter().map(|o| o.id.depth() - 1).max().unwrap_or(0);
    let deadline = start + 60_000;
    while mesh.now < deadline {
        if !mesh.step() {
            break;
        }
        if mesh.all_hold(&id) {
            return (hops, mesh.now - start);
        }
    }
    (hops, u64::MAX)
}

impl Mesh {
    /// Publish one posting at node `i` for `audience`; its id.
    pub fn write_posting_for(&mut self, i: usize, audience: &NodeId) -> crate::record::RecordId {
        let now = self.clock(i);
        let w = self
            .engine_for_tests(i)
            .create_posting(
                crate::engine::local::NewPosting {
                    title: "Province-wide posting".into(),
                    employer: "HQ".into(),
                    category: "technician".into(),
                    work_type: crate::record::WorkType::FullTime,
                    positions: 5,
                    audience: Some(audience.clone()),
                    wage: None,
                    location: None,
                    valid_until: None,
                },
                now,
            )
            .unwrap_or_else(|e| panic!("write: {e}"));
        let id = w.records[0].id.clone();
        self.track_write(i, w.gen, &w.records);
        id
    }

    fn engine_for_tests(&mut self, i: usize) -> &mut crate::engine::Engine<CheckedKv> {
        self.nodes[i].engine.as_mut().unwrap_or_else(|| panic!("node {i} is down"))
    }

    /// Does every node hold record `id`?
    pub fn all_hold(&self, id: &crate::record::RecordId) -> bool {
        (0..self.len())
            .all(|i| self.engine(i).is_some_and(|e| crate::store::get_record(e.kv(), id).ok().flatten().is_some()))
    }
}
