//! The scenarios of the chaos suite, each a function returning a
//! [`Report`], shared by `tests/chaos_*.rs` (default, short forms) and
//! `jobmesh-chaos scenario NAME` (any form, any seed); and the randomized
//! schedule behind `jobmesh-chaos run`.
//!
//! Every scenario follows one shape ([`Run`]): start a cluster, the
//! workload and the safety checker; apply faults while the workload
//! writes (the fault phases are timed, not assertions); then stop writing,
//! undo every fault ("heal"), and poll for convergence against a deadline.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::checker::{await_convergence, link_totals, Safety};
use super::cluster::{Cluster, ClusterOpts, Layer, ProcState};
use super::report::Report;
use super::workload::{burst, Ack, AckLog, Hammer, Mix, Workload, WorkloadOpts, WriteKind};
use crate::oracle::nid;
use crate::proxy::Faults;
use crate::wait::Rng;

/// How to run a scenario.
#[derive(Debug, Clone)]
pub struct Opts {
    pub seed: u64,
    /// The long forms (`JOBMESH_HEAVY=1`).
    pub heavy: bool,
    pub layer: Layer,
    /// `jobmesh-chaos` binary, for the netns layer's agents.
    pub chaos_bin: Option<PathBuf>,
    /// Override of the scenario's topology (`1+2+4`, `guizhou:N`, ids).
    pub topology: Option<String>,
    /// Override of the fault phase's length.
    pub duration: Option<Duration>,
    /// Override of the workload's writes per second.
    pub rate: Option<f64>,
    /// Override of the convergence deadline.
    pub converge_limit: Option<Duration>,
    /// Faults set on every link for the whole run, under the scenario's own
    /// (e.g. loss and delay through the in-namespace proxies while a veth
    /// is cut).
    pub degrade_all: Option<Faults>,
}

impl Opts {
    /// Seed from `JOBMESH_SEED` (printed), heaviness from `JOBMESH_HEAVY`.
    pub fn from_env(name: &str, layer: Layer) -> Opts {
        Opts {
            seed: super::seed(name),
            heavy: super::heavy(),
            layer,
            chaos_bin: None,
            topology: None,
            duration: None,
            rate: None,
            converge_limit: None,
            degrade_all: None,
        }
    }

    fn pick(&self, default: Duration, heavy: Duration) -> Duration {
        self.duration.unwrap_or(if self.heavy { heavy } else { default })
    }

    fn limit(&self, default: Duration, heavy: Duration) -> Duration {
        self.converge_limit.unwrap_or(if self.heavy { heavy } else { default })
    }

    fn ids(&self, default: &str) -> Vec<String> {
        let spec = self.topology.as_deref().unwrap_or(default);
        super::topology(spec).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Names accepted by [`by_name`], in the order of the issue.
pub const SCENARIOS: [&str; 8] = [
    "city-cut",
    "flapping-link",
    "lossy-links",
    "kill9-random",
    "province-restart",
    "long-haul-station",
    "county-backlog",
    "rolling-upgrade",
];

/// Run a scenario by name (`jobmesh-chaos scenario NAME`).
pub async fn by_name(name: &str, opts: &Opts) -> Result<Report, String> {
    Ok(match name {
        "city-cut" => city_cut(opts).await,
        "flapping-link" => flapping_link(opts).await,
        "lossy-links" => lossy_links(opts).await,
        "kill9-random" => kill9_random(opts).await,
        "province-restart" => province_restart(opts).await,
        "long-haul-station" => long_haul_station(opts).await,
        "county-backlog" => county_backlog(opts).await,
        "rolling-upgrade" => rolling_upgrade(opts).await,
        other => return Err(format!("unknown scenario {other:?}; known: {}", SCENARIOS.join(", "))),
    })
}

/// One run in progress: cluster, workload, safety checker, fault log.
pub struct Run {
    pub cluster: Cluster,
    pub rng: Rng,
    log: Arc<AckLog>,
    workload: Option<Workload>,
    safety: Option<Safety>,
    t0: Instant,
    report: Report,
    /// Conditions the run needs to prove anything (e.g. writes on both sides
    /// of a cut); unmet ones fail it.
    unmet: Vec<String>,
    self_exits: Vec<String>,
    /// The run damages the mesh on purpose (the checker's own test): clean
    /// up even though it fails.
    damage: bool,
}

impl Run {
    /// Start the cluster on `ids` and the safety checker; the workload
    /// starts with [`Run::write`].
    pub async fn start(scenario: &str, ids: Vec<String>, topology: &str, opts: &Opts) -> Run {
        Run::start_on(scenario, ids, topology, opts, None).await
    }

    /// [`Run::start`] with every node on `binary` (another release) until
    /// [`Cluster::set_binary`] says otherwise.
    pub async fn start_on(
        scenario: &str,
        ids: Vec<String>,
        topology: &str,
        opts: &Opts,
        binary: Option<PathBuf>,
    ) -> Run {
        println!(
            "chaos {scenario}: seed={} layer={} topology={topology} ({} nodes){}",
            opts.seed,
            opts.layer.name(),
            ids.len(),
            if opts.heavy { " HEAVY" } else { "" }
        );
        let copts = ClusterOpts {
            layer: opts.layer,
            seed: opts.seed,
            chaos_bin: opts.chaos_bin.clone(),
            extra: vec!["stale_after_s = 5".into()],
            start_binary: binary,
        };
        let t0 = Instant::now();
        let cluster = Cluster::start(&ids, &copts).await;
        println!("chaos {scenario}: {} nodes ready in {:.1}s", ids.len(), t0.elapsed().as_secs_f64());
        let log = Arc::new(AckLog::new(opts.seed));
        let safety = Safety::start(&cluster.apis(), cluster.availability(), log.clone());
        let mut cluster = cluster;
        let mut degraded = None;
        if let Some(f) = &opts.degrade_all {
            for child in cluster.links() {
                cluster.set_faults(&child, f.clone()).await;
            }
            degraded = Some(format!("every link, whole run: {}", f.describe()));
        }
        let mut run = Run {
            rng: Rng::new(opts.seed),
            log,
            workload: None,
            safety: Some(safety),
            t0: Instant::now(),
            report: Report {
                scenario: scenario.to_string(),
                seed: opts.seed,
                layer: opts.layer.name().to_string(),
                topology: topology.to_string(),
                nodes: ids.len(),
                heavy: opts.heavy,
                ..Report::default()
            },
            cluster,
            unmet: Vec::new(),
            self_exits: Vec::new(),
            damage: false,
        };
        if let Some(d) = degraded {
            run.fault(d);
        }
        run
    }

    /// Start the steady workload.
    pub fn write(&mut self, mut wl: WorkloadOpts) {
        wl.seed = self.rng.next_u64();
        self.note(format!(
            "workload: {:.0} writes/s by {} writers on {}",
            wl.rate_per_s,
            wl.writers,
            if wl.targets.is_empty() { "every node".to_string() } else { wl.targets.join(", ") }
        ));
        self.workload = Some(Workload::start(self.log.clone(), &self.cluster.apis(), self.cluster.availability(), &wl));
    }

    pub async fn stop_writing(&mut self) {
        if let Some(w) = self.workload.take() {
            w.stop().await;
        }
    }

    pub fn log(&self) -> &Arc<AckLog> {
        &self.log
    }

    /// Seconds since the run started.
    pub fn t(&self) -> f64 {
        self.t0.elapsed().as_secs_f64()
    }

    /// A line about the run's parameters.
    pub fn note(&mut self, s: String) {
        println!("  note: {s}");
        self.report.notes.push(s);
    }

    /// Log a fault as applied now.
    pub fn fault(&mut self, s: String) {
        let t = self.t();
        println!("  [{t:>6.1}s] {s}");
        self.report.faults.push((t, s));
    }

    /// A precondition for the run to mean anything.
    pub fn require(&mut self, ok: bool, what: String) {
        if !ok {
            self.unmet.push(what);
        }
    }

    /// Let a fault phase run for `d` (this is the fault's duration, not a
    /// wait for a result), noticing nodes that exit by themselves.
    pub async fn hold(&mut self, d: Duration) {
        let end = Instant::now() + d;
        while Instant::now() < end {
            tokio::time::sleep(end.saturating_duration_since(Instant::now()).min(Duration::from_millis(250))).await;
            for (id, status) in self.cluster.crashed_by_themselves() {
                let t = self.t();
                self.self_exits.push(format!("{id} exited by itself ({status}) at {t:.1}s"));
                self.fault(format!("NODE {id} EXITED BY ITSELF ({status}); restarting it"));
                self.cluster.start_node(&id).await;
            }
        }
    }

    /// Two clients posting at `node` as fast as it answers (for a kill
    /// mid-write); postings for the node's own subtree.
    pub fn hammer(&mut self, node: &str) -> Hammer {
        let seed = self.rng.next_u64();
        Hammer::start(&self.log, &self.cluster.api(node), node, node, 2, seed)
    }

    /// `kill -9` of `node` at a random moment among writes to it: two
    /// clients post there as fast as it answers, the kill lands after a lead
    /// of `lead_ms` (a range), and the writes acknowledged there in that time
    /// are returned with the lead. The node is left down.
    pub async fn kill9_mid_write(&mut self, node: &str, lead_ms: (u64, u64)) -> (usize, Duration) {
        let hammer = self.hammer(node);
        let lead = Duration::from_millis(self.rng.range(lead_ms.0, lead_ms.1));
        self.hold(lead).await;
        self.cluster.kill9(node);
        (hammer.stop().await, lead)
    }

    /// Declare that this run damages the mesh on purpose: its temp folder is
    /// removed although the report fails.
    pub fn expect_damage(&mut self) {
        self.damage = true;
    }

    /// Acks logged since `since` (seconds).
    pub fn acks_since(&self, since: f64) -> Vec<Ack> {
        let from = self.t0 + Duration::from_secs_f64(since);
        self.log.all().into_iter().filter(|a| a.at >= from).collect()
    }

    /// Acks at nodes matching `pred` logged since `since` (seconds).
    pub fn acks_where(&self, since: f64, pred: impl Fn(&str) -> bool) -> usize {
        let from = self.t0 + Duration::from_secs_f64(since);
        self.log.all().iter().filter(|a| a.at >= from && pred(&a.node)).count()
    }

    /// Stop writing, undo every fault if `heal` (links clean, every node
    /// running), then poll for convergence for at most `limit`, and build the
    /// report. With `heal == false` link faults stay (a long-haul link is
    /// not a fault to heal) but every node is running.
    pub async fn finish(mut self, heal: bool, limit: Duration) -> Report {
        self.stop_writing().await;
        if heal {
            self.cluster.restore_all().await;
            self.fault("heal: writes stopped, every link clean, every node running".into());
        } else {
            for id in self.cluster.ids() {
                match self.cluster.state(&id) {
                    ProcState::Frozen => self.cluster.thaw(&id),
                    ProcState::Down => self.cluster.start_node(&id).await,
                    ProcState::Running => {}
                }
            }
            self.fault("writes stopped, every node running; link faults stay".into());
        }
        let apis = self.cluster.apis();
        let root = self.cluster.root().to_string();
        let before = link_totals(&apis).await;
        let conv = await_convergence(&apis, &root, &self.log, limit).await;
        let after = link_totals(&apis).await;
        let mut r = std::mem::take(&mut self.report);
        r.take_convergence(&conv, limit);
        if let Some(s) = self.safety.take() {
            r.safety = s.finish().await;
        }
        r.writes = self.log.stats();
        r.records_moved = after.records_applied.saturating_sub(before.records_applied);
        r.backlog_at_heal = before.backlog;
        r.proxy = self.cluster.proxy_totals().await;
        r.self_exits = std::mem::take(&mut self.self_exits);
        for (id, status) in self.cluster.crashed_by_themselves() {
            r.self_exits.push(format!("{id} exited by itself ({status}) after heal"));
        }
        r.panics = self.cluster.grep_logs(|l| l.contains("panicked at"), 20);
        r.wall = self.t0.elapsed();
        for u in std::mem::take(&mut self.unmet) {
            r.writes.errors.push(format!("precondition not met: {u}"));
        }
        if !r.converged && !self.damage {
            eprintln!("{}", self.cluster.all_log_tails(15));
        }
        let ok = r.ok() || self.damage;
        r.unclean = self.cluster.finish(ok).await;
        println!("{r}");
        r
    }
}

fn steady(rate: f64, opts: &Opts) -> WorkloadOpts {
    WorkloadOpts { rate_per_s: opts.rate.unwrap_or(rate), writers: 4, ..WorkloadOpts::default() }
}

/// Nodes at depth `d` (1 = root).
fn at_depth(ids: &[String], d: usize) -> Vec<String> {
    ids.iter().filter(|i| nid(i).depth() == d).cloned().collect()
}

fn pick_one(rng: &mut Rng, v: &[String]) -> String {
    v[rng.range(0, v.len() as u64) as usize].clone()
}

/// A city cut off from the province for a while, with writes on both sides;
/// heal; converge. Default cut 10 s (inside QUIC's 30 s idle timeout: the
/// connection survives and resumes); heavy 45 s (the connection dies and the
/// city redials).
pub async fn city_cut(opts: &Opts) -> Report {
    let topo = opts.topology.clone().unwrap_or_else(|| "1+2+4".into());
    let ids = opts.ids(&topo);
    let mut run = Run::start("city-cut", ids.clone(), &topo, opts).await;
    let cities = at_depth(&ids, 2);
    let city = pick_one(&mut run.rng, &cities);
    let cut_for = opts.pick(Duration::from_secs(10), Duration::from_secs(45));
    run.write(steady(30.0, opts));
    run.hold(Duration::from_secs(2)).await;
    run.cluster.cut(&city).await;
    run.fault(format!("cut {city} — {} for {cut_for:?}", run.cluster.root()));
    let from = run.t();
    run.hold(cut_for).await;
    let c = nid(&city);
    let inside = run.acks_where(from, |n| nid(n).is_in_subtree_of(&c));
    let outside = run.acks_where(from, |n| !nid(n).is_in_subtree_of(&c));
    run.note(format!("during the cut: {inside} writes acknowledged inside {city}'s subtree, {outside} outside"));
    // The cut really cuts: nothing written inside (half a second after the
    // cut began, so nothing was on its way) is at the province yet.
    let made: BTreeSet<String> = run
        .acks_since(from + 0.5)
        .into_iter()
        .filter(|a| a.kind != WriteKind::Patch && nid(&a.node).is_in_subtree_of(&c))
        .map(|a| a.id)
        .collect();
    let root_api = run.cluster.api(run.cluster.root());
    let mut at_root = BTreeSet::new();
    for coll in ["postings", "workers", "placements"] {
        at_root.extend(root_api.list_ids(coll).await.unwrap_or_default());
    }
    let leaked = made.intersection(&at_root).count();
    run.note(format!("{leaked} of {} writes made inside during the cut had crossed it before heal", made.len()));
    run.require(leaked == 0, format!("a cut that blocks the link ({leaked} writes crossed it)"));
    run.require(
        inside > 0 && outside > 0,
        format!("writes on both sides of the cut (inside {inside}, outside {outside})"),
    );
    run.finish(true, opts.limit(Duration::from_secs(60), Duration::from_secs(180))).await
}

/// A flapping link (up 2 s, down 1 s) under steady writes: a city's uplink
/// and a county's, out of phase.
pub async fn flapping_link(opts: &Opts) -> Report {
    let topo = opts.topology.clone().unwrap_or_else(|| "1+2+4".into());
    let ids = opts.ids(&topo);
    let mut run = Run::start("flapping-link", ids.clone(), &topo, opts).await;
    let city = pick_one(&mut run.rng, &at_depth(&ids, 2));
    let counties: Vec<String> =
        at_depth(&ids, 3).into_iter().filter(|k| !nid(k).is_in_subtree_of(&nid(&city))).collect();
    let county = (!counties.is_empty()).then(|| pick_one(&mut run.rng, &counties));
    let phase = opts.pick(Duration::from_secs(14), Duration::from_secs(90));
    run.write(steady(30.0, opts));
    run.hold(Duration::from_secs(1)).await;
    let (up, down) = (Duration::from_secs(2), Duration::from_secs(1));
    run.cluster.flap(&city, up, down).await;
    run.fault(format!("flap {city} uplink: up {up:?}, down {down:?}, for {phase:?}"));
    let from = run.t();
    if let Some(k) = &county {
        run.hold(Duration::from_millis(1_500)).await;
        run.cluster.flap(k, up, down).await;
        run.fault(format!("flap {k} uplink: up {up:?}, down {down:?} (out of phase)"));
    }
    run.hold(phase).await;
    // Progress while flapping: writes made in the city's subtree during the
    // flaps that already reached the province (a snapshot, not a wait).
    let c = nid(&city);
    let made: BTreeSet<String> = run
        .acks_since(from)
        .into_iter()
        .filter(|a| a.kind != WriteKind::Patch && nid(&a.node).is_in_subtree_of(&c))
        .map(|a| a.id)
        .collect();
    let root_api = run.cluster.api(run.cluster.root());
    let mut at_root = BTreeSet::new();
    for coll in ["postings", "workers", "placements"] {
        at_root.extend(root_api.list_ids(coll).await.unwrap_or_default());
    }
    let reached = made.intersection(&at_root).count();
    run.note(format!(
        "progress while flapping: {reached} of {} writes made in {city}'s subtree during the flaps had reached {} before heal",
        made.len(),
        run.cluster.root()
    ));
    run.require(
        reached > 0,
        format!("writes crossing the flapping link {city} before heal ({reached} of {})", made.len()),
    );
    run.finish(true, opts.limit(Duration::from_secs(60), Duration::from_secs(180))).await
}

/// 30% loss with reordering and duplication on every link. Convergence is
/// awaited with the loss still on: QUIC must get everything through it.
pub async fn lossy_links(opts: &Opts) -> Report {
    let topo = opts.topology.clone().unwrap_or_else(|| "1+2+4".into());
    let ids = opts.ids(&topo);
    let mut run = Run::start("lossy-links", ids.clone(), &topo, opts).await;
    let phase = opts.pick(Duration::from_secs(12), Duration::from_secs(90));
    let faults = Faults { loss: 0.30, dup: 0.10, reorder: 0.10, delay_ms: 2, jitter_ms: 2, ..Faults::none() };
    for child in run.cluster.links() {
        run.cluster.set_faults(&child, faults.clone()).await;
    }
    run.fault(format!("every link: {} (both directions), kept through convergence", faults.describe()));
    run.write(steady(25.0, opts));
    run.hold(phase).await;
    run.finish(false, opts.limit(Duration::from_secs(90), Duration::from_secs(300))).await
}

/// kill -9 of a random node every few seconds during writes, restarted each
/// time after a random pause.
pub async fn kill9_random(opts: &Opts) -> Report {
    let topo = opts.topology.clone().unwrap_or_else(|| "1+2+4".into());
    let ids = opts.ids(&topo);
    let mut run = Run::start("kill9-random", ids.clone(), &topo, opts).await;
    let phase = opts.pick(Duration::from_secs(16), Duration::from_secs(180));
    run.write(steady(30.0, opts));
    run.hold(Duration::from_secs(1)).await;
    let end = Instant::now() + phase;
    let mut kills = 0;
    while Instant::now() < end {
        let every = Duration::from_millis(run.rng.range(1_500, 3_500));
        run.hold(every).await;
        let victim = pick_one(&mut run.rng, &ids);
        let down = Duration::from_millis(run.rng.range(0, 1_500));
        // Two clients write to the victim as fast as it answers; the kill
        // lands at a random moment among their writes.
        let (acked, lead) = run.kill9_mid_write(&victim, (100, 1_200)).await;
        kills += 1;
        run.fault(format!("kill -9 {victim} mid-write ({acked} writes acknowledged there in the last {lead:?}); restart after {down:?}"));
        run.hold(down).await;
        run.cluster.start_node(&victim).await;
    }
    run.note(format!("{kills} kill -9 in {phase:?}"));
    run.finish(true, opts.limit(Duration::from_secs(60), Duration::from_secs(180))).await
}

/// The province upgraded office by office under load: every node starts on
/// the previous release (0.1.0, built from git history), then in a random
/// order each is stopped (SIGTERM), switched to this build on its own data
/// directory (whose store is upgraded in place) and started, while the
/// workload writes everywhere; one freshly upgraded node is killed with
/// `kill -9` mid-write; heavy: a second pass of `kill -9` at random once all
/// run this build. Every acknowledged write must survive the mixed-version
/// links of each step, and the mesh must converge.
pub async fn rolling_upgrade(opts: &Opts) -> Report {
    let topo = opts.topology.clone().unwrap_or_else(|| "1+2+4".into());
    let ids = opts.ids(&topo);
    let old = crate::previous::previous_release_bin().to_path_buf();
    let mut run = Run::start_on("rolling-upgrade", ids.clone(), &topo, opts, Some(old.clone())).await;
    run.note(format!("every node starts on {} ({})", crate::previous::PREVIOUS_VERSION, old.display()));
    run.write(steady(30.0, opts));
    run.hold(Duration::from_secs(2)).await;
    let mut order = ids.clone();
    for i in (1..order.len()).rev() {
        let j = run.rng.range(0, i as u64 + 1) as usize;
        order.swap(i, j);
    }
    let crash_at = run.rng.range(0, order.len() as u64) as usize;
    for (i, id) in order.iter().enumerate() {
        let before = run.acks_where(0.0, |_| true);
        run.cluster.stop(id).await;
        run.cluster.set_binary(id, None);
        run.cluster.start_node(id).await;
        run.fault(format!("{id} upgraded: SIGTERM on {}, started on this build", crate::previous::PREVIOUS_VERSION));
        let pause = Duration::from_millis(run.rng.range(1_500, 3_500));
        if i == crash_at {
            let (acked, _) = run.kill9_mid_write(id, (100, 1_000)).await;
            run.fault(format!("kill -9 {id} just after its upgrade, mid-write ({acked} writes acknowledged there)"));
            let down = Duration::from_millis(run.rng.range(200, 1_500));
            run.hold(down).await;
            run.cluster.start_node(id).await;
        }
        run.hold(pause).await;
        let during = run.acks_where(0.0, |_| true) - before;
        run.require(during > 0, format!("writes acknowledged around the upgrade of {id}"));
    }
    if opts.heavy {
        // A second pass of kill -9 at random, all on this build now.
        for _ in 0..ids.len() {
            let victim = pick_one(&mut run.rng, &ids);
            run.cluster.kill9(&victim);
            run.fault(format!("kill -9 {victim} (second pass)"));
            let down = Duration::from_millis(run.rng.range(200, 1_500));
            run.hold(down).await;
            run.cluster.start_node(&victim).await;
            let pause = Duration::from_millis(run.rng.range(1_000, 3_000));
            run.hold(pause).await;
        }
    }
    run.note(format!("{} nodes upgraded one at a time", order.len()));
    run.finish(true, opts.limit(Duration::from_secs(90), Duration::from_secs(240))).await
}

/// The province restarted under load: gracefully (SIGTERM, clean exit
/// required), then with kill -9; heavy: more rounds.
pub async fn province_restart(opts: &Opts) -> Report {
    let topo = opts.topology.clone().unwrap_or_else(|| "1+2+4".into());
    let ids = opts.ids(&topo);
    let mut run = Run::start("province-restart", ids.clone(), &topo, opts).await;
    let root = run.cluster.root().to_string();
    run.write(steady(40.0, opts));
    let rounds = if opts.heavy { 6 } else { 1 };
    run.hold(Duration::from_secs(3)).await;
    for _ in 0..rounds {
        let hammer = run.hammer(&root);
        let lead = Duration::from_millis(run.rng.range(100, 1_000));
        run.hold(lead).await;
        run.fault(format!("SIGTERM {root} under load"));
        run.cluster.stop(&root).await;
        let acked = hammer.stop().await;
        let down = Duration::from_millis(run.rng.range(200, 2_000));
        run.hold(down).await;
        run.cluster.start_node(&root).await;
        run.fault(format!("{root} restarted after {down:?} down ({acked} writes acknowledged there just before)"));
        let pause = Duration::from_millis(run.rng.range(2_000, 4_000));
        run.hold(pause).await;
        let (acked, _) = run.kill9_mid_write(&root, (100, 1_000)).await;
        let down = Duration::from_millis(run.rng.range(200, 2_000));
        run.fault(format!(
            "kill -9 {root} mid-write ({acked} writes acknowledged there just before); restart after {down:?}"
        ));
        run.hold(down).await;
        run.cluster.start_node(&root).await;
        let pause = Duration::from_millis(run.rng.range(2_000, 4_000));
        run.hold(pause).await;
    }
    let during = run.acks_where(0.0, |_| true);
    run.require(during > 0, "writes acknowledged during the restarts".into());
    run.finish(true, opts.limit(Duration::from_secs(60), Duration::from_secs(180))).await
}

/// A long-haul station link (200 ms RTT, 5% loss), as for the labor
/// cooperation stations in Guangdong: the 1+2+4 tree plus a station under a
/// county, writing with everyone else; convergence with the link as it is.
pub async fn long_haul_station(opts: &Opts) -> Report {
    let topo = opts.topology.clone().unwrap_or_else(|| "1+2+4+station".into());
    let mut ids = if opts.topology.is_some() { opts.ids(&topo) } else { super::topology("1+2+4").unwrap_or_default() };
    let station = match ids.iter().rev().find(|i| nid(i).depth() >= 4) {
        Some(s) if opts.topology.is_some() => s.clone(),
        _ => {
            let county = at_depth(&ids, 3).first().cloned().unwrap_or_else(|| ids[ids.len() - 1].clone());
            let s = format!("{county}/lc-guangdong");
            ids.push(s.clone());
            s
        }
    };
    let mut run = Run::start("long-haul-station", ids.clone(), &topo, opts).await;
    let faults = Faults::long_haul(200, 10, 0.05);
    run.cluster.set_faults(&station, faults.clone()).await;
    run.fault(format!("{station} uplink: {} (200 ms RTT), kept through convergence", faults.describe()));
    let phase = opts.pick(Duration::from_secs(12), Duration::from_secs(120));
    run.write(steady(30.0, opts));
    run.hold(phase).await;
    let at_station = run.acks_where(0.0, |n| n == station);
    run.note(format!("{at_station} writes acknowledged at the station {station}"));
    run.require(at_station > 0, format!("writes at the station {station}"));
    run.finish(false, opts.limit(Duration::from_secs(60), Duration::from_secs(300))).await
}

/// A county down long enough to build a backlog of records for it, then
/// back: 5,000 records by default, 100,000 with `JOBMESH_HEAVY=1`. "Down"
/// is, by seed, either the process stopped (SIGTERM) or frozen (SIGSTOP:
/// sockets open, nothing answered; past the 30 s idle timeout in the heavy
/// form).
pub async fn county_backlog(opts: &Opts) -> Report {
    let topo = opts.topology.clone().unwrap_or_else(|| "1+2+4".into());
    let ids = opts.ids(&topo);
    let mut run = Run::start("county-backlog", ids.clone(), &topo, opts).await;
    let total: usize = std::env::var("JOBMESH_BACKLOG").ok().and_then(|s| s.parse().ok()).unwrap_or(if opts.heavy {
        100_000
    } else {
        5_000
    });
    run.note(format!(
        "backlog of {total} records ({}; JOBMESH_HEAVY=1 for 100,000, JOBMESH_BACKLOG=N for any)",
        if opts.heavy { "heavy form" } else { "default form" }
    ));
    let counties = at_depth(&ids, 3);
    let county = if counties.is_empty() { ids[ids.len() - 1].clone() } else { pick_one(&mut run.rng, &counties) };
    let city = nid(&county).parent().map(|p| p.to_string()).unwrap_or_else(|| ids[0].clone());
    let root = run.cluster.root().to_string();
    let freeze = run.rng.range(0, 2) == 0;
    // A light steady load elsewhere keeps the rest of the tree busy.
    let others: Vec<String> = ids.iter().filter(|i| !nid(i).is_in_subtree_of(&nid(&city))).cloned().collect();
    run.write(WorkloadOpts { targets: others, ..steady(8.0, opts) });
    run.hold(Duration::from_secs(1)).await;
    if freeze {
        run.cluster.freeze(&county);
        run.fault(format!("SIGSTOP {county} (frozen, sockets open)"));
    } else {
        run.cluster.stop(&county).await;
        run.fault(format!("SIGTERM {county} (down)"));
    }
    // Records the routing rule sends to the county: postings for its city's
    // subtree, published at the province and at the city.
    let started = Instant::now();
    let half = total / 2;
    let (log, seed) = (run.log().clone(), run.rng.next_u64());
    let (api_root, api_city) = (run.cluster.api(&root), run.cluster.api(&city));
    let (a, b) = tokio::join!(
        burst(&log, &api_root, &root, &city, half, 4, seed),
        burst(&log, &api_city, &city, &city, total - half, 4, seed ^ 1)
    );
    run.fault(format!(
        "{} postings for {city}'s subtree acknowledged at {root} and {city} in {:.1}s while {county} is down",
        a + b,
        started.elapsed().as_secs_f64()
    ));
    run.require(a + b == total, format!("all {total} backlog postings acknowledged (got {})", a + b));
    let st = run.cluster.api(&city).status().await.unwrap_or_default();
    let backlog = st["children"]
        .as_array()
        .and_then(|c| c.iter().find(|l| l["node_id"] == county.as_str()))
        .map(|l| l["backlog"].clone())
        .unwrap_or_default();
    run.note(format!("{city}'s backlog towards {county} before it comes back: {backlog} journal entries"));
    if opts.heavy && freeze {
        // Past QUIC's idle timeout, so both ends drop the connection.
        let extra = Duration::from_secs(35).saturating_sub(started.elapsed());
        run.hold(extra).await;
    }
    let mode = if freeze { "SIGCONT" } else { "start" };
    run.fault(format!("{mode} {county}"));
    run.finish(true, opts.limit(Duration::from_secs(90), Duration::from_secs(900))).await
}

/// Options of the randomized schedule (`jobmesh-chaos run`).
#[derive(Debug, Clone)]
pub struct RandomOpts {
    pub topology: String,
    pub duration: Duration,
    pub rate: f64,
}

#[derive(Debug)]
enum Undo {
    /// Heal a link.
    Link(String),
    /// Start a killed node.
    Start(String),
    /// SIGCONT a frozen node.
    Thaw(String),
}

/// A randomized schedule of every fault kind on a chosen topology for a
/// chosen time: link cuts, flaps, degradations (loss, duplication,
/// reordering, delay), long-haul spells, kill -9 and restart, SIGSTOP for a
/// long time, graceful restarts of the root; then heal and converge.
pub async fn random(opts: &Opts, ro: &RandomOpts) -> Report {
    let ids = opts.ids(&ro.topology);
    let mut run = Run::start("random", ids.clone(), &ro.topology, opts).await;
    let links = run.cluster.links();
    run.write(WorkloadOpts {
        rate_per_s: ro.rate,
        writers: 4.max(ids.len() / 5),
        mix: Mix::default(),
        ..WorkloadOpts::default()
    });
    let end = Instant::now() + ro.duration;
    let mut pending: Vec<(Instant, Undo)> = Vec::new();
    let mut busy: BTreeMap<String, Instant> = BTreeMap::new();
    let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
    let s = |ms_lo: u64, ms_hi: u64, rng: &mut Rng| Duration::from_millis(rng.range(ms_lo, ms_hi));
    loop {
        let next = Instant::now() + s(800, 3_000, &mut run.rng);
        // Undo what is due before the next fault.
        loop {
            pending.sort_by_key(|(t, _)| *t);
            let Some((due, _)) = pending.first() else { break };
            if *due > next {
                break;
            }
            let due = *due;
            run.hold(due.saturating_duration_since(Instant::now())).await;
            let (_, undo) = pending.remove(0);
            match undo {
                Undo::Link(l) => {
                    run.cluster.set_faults(&l, Faults::none()).await;
                    run.fault(format!("heal {l} uplink"));
                    busy.remove(&format!("link:{l}"));
                }
                Undo::Start(n) => {
                    run.cluster.start_node(&n).await;
                    run.fault(format!("restart {n}"));
                    busy.remove(&format!("node:{n}"));
                }
                Undo::Thaw(n) => {
                    run.cluster.thaw(&n);
                    run.fault(format!("SIGCONT {n}"));
                    busy.remove(&format!("node:{n}"));
                }
            }
        }
        run.hold(next.saturating_duration_since(Instant::now())).await;
        if Instant::now() >= end {
            break;
        }
        let now = Instant::now();
        let kind = run.rng.range(0, 100);
        let heavy = opts.heavy;
        if kind < 45 && !links.is_empty() {
            let l = pick_one(&mut run.rng, &links);
            let key = format!("link:{l}");
            if busy.contains_key(&key) {
                continue;
            }
            let (what, faults, d) = match kind {
                0..=14 => {
                    let d = if heavy { s(2_000, 45_000, &mut run.rng) } else { s(2_000, 10_000, &mut run.rng) };
                    ("cut", Faults { cut: true, ..Faults::none() }, d)
                }
                15..=22 => (
                    "flap",
                    Faults { flap: Some(crate::proxy::Flap { up_ms: 2_000, down_ms: 1_000 }), ..Faults::none() },
                    s(6_000, 15_000, &mut run.rng),
                ),
                23..=37 => {
                    let f = Faults {
                        loss: run.rng.range(5, 35) as f64 / 100.0,
                        dup: run.rng.range(0, 15) as f64 / 100.0,
                        reorder: run.rng.range(0, 20) as f64 / 100.0,
                        delay_ms: run.rng.range(0, 50),
                        jitter_ms: run.rng.range(0, 20),
                        ..Faults::none()
                    };
                    ("degrade", f, s(5_000, 15_000, &mut run.rng))
                }
                _ => ("long-haul", Faults::long_haul(200, 10, 0.05), s(5_000, 20_000, &mut run.rng)),
            };
            *counts.entry(what).or_default() += 1;
            run.cluster.set_faults(&l, faults.clone()).await;
            run.fault(format!("{what} {l} uplink: {} for {d:?}", faults.describe()));
            busy.insert(key, now + d);
            pending.push((now + d, Undo::Link(l)));
        } else {
            let n = pick_one(&mut run.rng, &ids);
            let key = format!("node:{n}");
            if busy.contains_key(&key) || run.cluster.state(&n) != ProcState::Running {
                continue;
            }
            match kind {
                45..=79 => {
                    let d = s(0, 3_000, &mut run.rng);
                    // Land the kill among writes to the victim.
                    let (acked, lead) = run.kill9_mid_write(&n, (50, 600)).await;
                    *counts.entry("kill -9").or_default() += 1;
                    run.fault(format!(
                        "kill -9 {n} mid-write ({acked} acknowledged there in {lead:?}); restart after {d:?}"
                    ));
                    busy.insert(key, now + d);
                    pending.push((now + d, Undo::Start(n)));
                }
                80..=92 => {
                    let d = if heavy { s(5_000, 40_000, &mut run.rng) } else { s(2_000, 8_000, &mut run.rng) };
                    run.cluster.freeze(&n);
                    *counts.entry("SIGSTOP").or_default() += 1;
                    run.fault(format!("SIGSTOP {n} for {d:?}"));
                    busy.insert(key, now + d);
                    pending.push((now + d, Undo::Thaw(n)));
                }
                _ => {
                    let root = run.cluster.root().to_string();
                    if busy.contains_key(&format!("node:{root}")) || run.cluster.state(&root) != ProcState::Running {
                        continue;
                    }
                    *counts.entry("root restart").or_default() += 1;
                    run.fault(format!("SIGTERM {root} and start again"));
                    run.cluster.stop(&root).await;
                    run.cluster.start_node(&root).await;
                }
            }
        }
    }
    let c: Vec<String> = counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
    run.note(format!("faults over {:?}: {}", ro.duration, c.join(", ")));
    let limit = opts.converge_limit.unwrap_or(Duration::from_secs(120 + ids.len() as u64 * 3));
    run.finish(true, limit).await
}
