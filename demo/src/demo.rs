//! `jobmesh demo`: a whole small mesh on loopback, each office its own
//! process of this binary, fed a synthetic workload.
//!
//! Order of events:
//! 1. SIGINT and SIGTERM handlers are installed first, so a Ctrl-C at any
//!    later moment ends in the same clean stop.
//! 2. The tree is chosen (`demo`: nine real offices; `guizhou`: a slice of
//!    the real tree; or a TSV file), free loopback ports are found, and the
//!    offices are rendered by [`render`] into the demo folder (a temporary
//!    folder, or `--dir` to keep it): configs, a new CA, certificates.
//! 3. Every office starts as `jobmesh run --config …` with its output in its
//!    folder's `node.log`; the demo waits (bounded) until each answers
//!    `/healthz`, then prints the dashboard's and every office's URL.
//! 4. The [`Workload`] runs at `--rate` events per second through the
//!    offices' HTTP APIs, and every two seconds a progress line says how many
//!    offices answer, how many records the province holds, what the offices
//!    acknowledged, and when the mesh last converged.
//! 5. On Ctrl-C (or after `--duration-s`): the workload stops, every office
//!    gets SIGTERM, stragglers get SIGKILL after [`STOP_GRACE`], and the demo
//!    says where the data is, or that it removed the temporary folder.
//!
//! "Converged" means: every office answers, the province has a summary from
//! every office, and the province's subtree figures equal the sum of the
//! figures each office reports for itself (each office's own row of its
//! own `/v1/summary`). Summaries are records like any other, so this is the
//! moment when nothing is in flight towards the province.
//!
//! The demo only ever talks to 127.0.0.1.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use jobmesh_protocol::figures::Totals;
use jobmesh_protocol::time::local_day;
use jobmesh_protocol::topology::Topology;
use jobmesh_protocol::NodeId;
use serde::Deserialize;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

use crate::process;
use crate::rehearsal::LOG_FILE;
use crate::workload::{Counts, Driver, Workload};
use jobmesh_node::deploy::address_plan::{Address, AddressPlan};
use jobmesh_node::deploy::render::{render, RenderOptions};
use jobmesh_node::deploy::GUIZHOU_TSV;
use jobmesh_node::state::now_ms;

/// The `demo` tree: the province, two cities, four counties, an odd-jobs
/// market and an out-of-province labor cooperation station, all real ids of
/// `deploy/topology/guizhou-offices.tsv`.
pub const DEMO_OFFICES: [&str; 9] = [
    "gz",
    "gz/guiyang",
    "gz/zunyi",
    "gz/guiyang/guanshanhu",
    "gz/guiyang/huaxi",
    "gz/zunyi/honghuagang",
    "gz/zunyi/huichuan",
    "gz/guiyang/guanshanhu/oddjobs-danfeng",
    "gz/zunyi/huichuan/coop-shantou",
];
/// Offices started for `--topology guizhou` without `--max-offices`.
pub const DEFAULT_GUIZHOU_OFFICES: usize = 30;
/// Most offices a demo starts: one process each, on one machine.
pub const MAX_OFFICES: usize = 400;
/// Highest `--rate`.
pub const MAX_RATE: f64 = 200.0;
/// Longest wait for every office to answer `/healthz` at start.
const HEALTH_WAIT: Duration = Duration::from_secs(60);
/// Longest wait for the offices to stop after SIGTERM before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(20);
/// How often the progress line is refreshed.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);
/// Longest a progress or health request may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// The demo's links redial within this many milliseconds, so a mesh that
/// starts all at once links up quickly.
const DEMO_RECONNECT_MAX_MS: u64 = 1_000;

/// `jobmesh demo`
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Keep the mesh's folder (configs, keys, data, logs) here; running the
    /// demo again with the same folder keeps the data. Without it, a
    /// temporary folder is used and removed at exit.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The tree: `demo` (9 offices), `guizhou` (the real tree of 381
    /// offices, sliced by --max-offices), or a topology TSV file.
    #[arg(long, value_name = "demo|guizhou|FILE", default_value = "demo")]
    pub topology: String,
    /// Start at most this many offices (a breadth-first slice that keeps
    /// every parent; default 30 for `guizhou`).
    #[arg(long, value_name = "N")]
    pub max_offices: Option<usize>,
    /// Seed of the workload: the same seed sends the same requests (which
    /// placements are possible depends on what has arrived where).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Workload events (postings, registrations, placements) per second.
    #[arg(long, value_name = "EVENTS_PER_S", default_value_t = 4.0)]
    pub rate: f64,
    /// Stop after this many seconds, as on Ctrl-C.
    #[arg(long, value_name = "N")]
    pub duration_s: Option<u64>,
    /// Stop the workload after this many seconds; the mesh keeps running
    /// (and converges) until Ctrl-C.
    #[arg(long, value_name = "N")]
    pub workload_s: Option<u64>,
}

/// Run the demo until Ctrl-C, SIGTERM or `--duration-s`.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    if !(args.rate > 0.0 && args.rate <= MAX_RATE) {
        bail!("--rate must be above 0 and at most {MAX_RATE} events per second");
    }
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let (topo, label) = choose_topology(&args)?;
    let seed = args.seed.unwrap_or_else(random_seed);
    let dir = DemoDir::create(args.dir.as_deref())?;

    let stop = async {
        let duration = async {
            match args.duration_s {
                Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = interrupt.recv() => "Ctrl-C",
            _ = terminate.recv() => "SIGTERM",
            _ = duration => "the end of --duration-s",
        }
    };
    let result = run_in(&args, &topo, &label, seed, &dir.path, stop).await;
    let fate = dir.finish();
    println!("{fate}");
    result
}

/// The demo folder: kept (`--dir`) or temporary (removed at the end).
struct DemoDir {
    path: PathBuf,
    keep: bool,
}

impl DemoDir {
    fn create(dir: Option<&Path>) -> anyhow::Result<DemoDir> {
        match dir {
            Some(d) => {
                std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
                let path = std::fs::canonicalize(d).with_context(|| format!("cannot resolve {}", d.display()))?;
                Ok(DemoDir { path, keep: true })
            }
            None => {
                let path = std::env::temp_dir().join(format!(
                    "jobmesh-demo-{}-{:08x}",
                    std::process::id(),
                    random_seed() as u32
                ));
                std::fs::create_dir(&path).with_context(|| format!("cannot create {}", path.display()))?;
                Ok(DemoDir { path, keep: false })
            }
        }
    }

    /// Remove a temporary folder; say where the data is.
    fn finish(self) -> String {
        if self.keep {
            return format!(
                "data kept in {} (run `jobmesh demo --dir {}` again to go on)",
                self.path.display(),
                self.path.display()
            );
        }
        match std::fs::remove_dir_all(&self.path) {
            Ok(()) => format!("removed {}", self.path.display()),
            Err(e) => format!("could not remove {}: {e}", self.path.display()),
        }
    }
}

fn choose_topology(args: &DemoArgs) -> anyhow::Result<(Topology, String)> {
    let full = Topology::parse_tsv(GUIZHOU_TSV).context("the built-in Guizhou tree")?;
    let (topo, label) = match args.topology.as_str() {
        "demo" => {
            let offices = full.offices.iter().filter(|o| DEMO_OFFICES.contains(&o.id.as_str())).cloned().collect();
            (Topology { offices }, "the demo tree".to_owned())
        }
        "guizhou" => {
            let n = args.max_offices.unwrap_or(DEFAULT_GUIZHOU_OFFICES);
            (full.slice(n), format!("a slice of the Guizhou tree ({} offices)", full.len()))
        }
        file => {
            let text = std::fs::read_to_string(file).with_context(|| format!("cannot read the topology {file}"))?;
            (Topology::parse_tsv(&text).with_context(|| format!("topology {file}"))?, file.to_owned())
        }
    };
    let topo = match args.max_offices {
        Some(0) => bail!("--max-offices must be at least 1"),
        Some(n) if n < topo.len() => topo.slice(n),
        _ => topo,
    };
    if topo.len() > MAX_OFFICES {
        bail!(
            "{} offices is more than one machine should run as a demo ({MAX_OFFICES}); use --max-offices",
            topo.len()
        );
    }
    Ok((topo, label))
}

/// Everything between rendering and the last office stopping. Returns
/// when `stop` resolves (or start-up fails), always after stopping every
/// office it started.
async fn run_in(
    args: &DemoArgs,
    topo: &Topology,
    label: &str,
    seed: u64,
    dir: &Path,
    stop: impl std::future::Future<Output = &'static str>,
) -> anyhow::Result<()> {
    let plan = loopback_plan(topo).context("cannot find free loopback ports")?;
    let mut opts = RenderOptions::new(dir);
    opts.reconnect_max_ms = Some(DEMO_RECONNECT_MAX_MS);
    opts.listen_on_leaves = true;
    render(topo, &plan, &opts).context("cannot render the demo's offices")?;
    println!(
        "jobmesh demo: {} offices from {label} on 127.0.0.1, workload seed {seed} (--seed {seed} repeats it), {} events/s",
        topo.len(),
        args.rate
    );
    println!("data: {}", dir.display());

    let exe = std::env::current_exe().context("cannot find this program's path")?;
    let mut fleet = Fleet::default();
    tokio::pin!(stop);
    let mut outcome: anyhow::Result<()> = Ok(());
    for o in &topo.offices {
        let folder = dir.join(jobmesh_node::deploy::render::OFFICES_DIR).join(o.id.file_stem());
        let log = folder.join(LOG_FILE);
        match process::spawn_node(&exe, &folder.join(jobmesh_node::deploy::render::CONFIG_FILE), &log, false) {
            Ok(child) => fleet.members.push(Member {
                id: o.id.clone(),
                api: plan.get(&o.id).map(Address::api).unwrap_or_else(|| SocketAddr::from((Ipv4Addr::LOCALHOST, 0))),
                log,
                child,
                exited: None,
            }),
            Err(e) => {
                outcome = Err(anyhow::Error::new(e).context(format!("{}: cannot start {}", o.id, exe.display())));
                break;
            }
        }
    }
    if outcome.is_ok() {
        let session = Session { args, topo, seed, fleet: &mut fleet };
        outcome = tokio::select! {
            r = session.run() => r,
            why = &mut stop => {
                finish_progress_line();
                println!("{why}: stopping {} offices", topo.len());
                Ok(())
            }
        };
    }
    let (stopped, killed) = fleet.stop(STOP_GRACE).await;
    println!(
        "stopped {stopped} offices{}",
        if killed > 0 { format!(" ({killed} with SIGKILL)") } else { String::new() }
    );
    outcome
}

/// A plan on 127.0.0.1 with ports the kernel says are free right now: the
/// sockets are held until every office has its ports, so no two offices
/// get the same one.
fn loopback_plan(topo: &Topology) -> std::io::Result<AddressPlan> {
    let host = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut held = Vec::with_capacity(topo.len());
    let mut plan = AddressPlan::default();
    for o in &topo.offices {
        let udp = std::net::UdpSocket::bind((host, 0))?;
        let tcp = std::net::TcpListener::bind((host, 0))?;
        plan.insert(
            o.id.clone(),
            Address { host, quic_port: udp.local_addr()?.port(), api_port: tcp.local_addr()?.port() },
        );
        held.push((udp, tcp));
    }
    Ok(plan)
}

/// One office process.
struct Member {
    id: NodeId,
    api: SocketAddr,
    log: PathBuf,
    child: Child,
    /// Set once the process has been seen to exit.
    exited: Option<ExitStatus>,
}

/// The offices the demo started. Dropping it kills whatever still runs, so
/// not even an error path leaves a process behind.
#[derive(Default)]
struct Fleet {
    members: Vec<Member>,
}

impl Fleet {
    /// Offices that exited since the last call.
    fn newly_exited(&mut self) -> Vec<(NodeId, ExitStatus, PathBuf)> {
        let mut out = Vec::new();
        for m in &mut self.members {
            if m.exited.is_none() {
                if let Ok(Some(status)) = m.child.try_wait() {
                    m.exited = Some(status);
                    out.push((m.id.clone(), status, m.log.clone()));
                }
            }
        }
        out
    }

    fn running(&mut self) -> Vec<u32> {
        let mut pids = Vec::new();
        for m in &mut self.members {
            if m.exited.is_none() && matches!(m.child.try_wait(), Ok(None)) {
                pids.push(m.child.id());
            }
        }
        pids
    }

    /// SIGTERM to every office, then wait up to `grace` (a second Ctrl-C
    /// cuts it short), then SIGKILL. Returns (stopped, killed).
    async fn stop(&mut self, grace: Duration) -> (usize, usize) {
        let pids = self.running();
        if let Err(e) = process::signal("TERM", &pids) {
            eprintln!("cannot send SIGTERM: {e}");
        }
        let deadline = tokio::time::Instant::now() + grace;
        let mut again = signal(SignalKind::interrupt()).ok();
        loop {
            if self.running().is_empty() {
                break;
            }
            let second_ctrl_c = async {
                match &mut again {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                _ = tokio::time::sleep_until(deadline) => break,
                _ = second_ctrl_c => {
                    println!("second Ctrl-C: killing the offices now");
                    break;
                }
            }
        }
        let mut killed = 0;
        for m in &mut self.members {
            if matches!(m.child.try_wait(), Ok(None)) {
                let _ = m.child.kill();
                killed += 1;
            }
            let _ = m.child.wait();
        }
        (pids.len(), killed)
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for m in &mut self.members {
            if matches!(m.child.try_wait(), Ok(None)) {
                let _ = m.child.kill();
                let _ = m.child.wait();
            }
        }
    }
}

/// The running demo: start-up checks, URLs, workload and progress.
struct Session<'a> {
    args: &'a DemoArgs,
    topo: &'a Topology,
    seed: u64,
    fleet: &'a mut Fleet,
}

impl Session<'_> {
    async fn run(mut self) -> anyhow::Result<()> {
        let client = reqwest::Client::builder().no_proxy().timeout(PROBE_TIMEOUT).build()?;
        self.wait_until_up(&client).await?;
        let root = self.topo.root().clone();
        let apis: HashMap<NodeId, SocketAddr> = self.fleet.members.iter().map(|m| (m.id.clone(), m.api)).collect();
        println!("dashboard: http://{}/  {root} {}", apis[&root], office_title(self.topo, &root));
        for m in &self.fleet.members {
            println!("office: {} http://{}/ pid {}  {}", m.id, m.api, m.child.id(), office_title(self.topo, &m.id));
        }
        println!("all {} offices up; Ctrl-C stops them all", self.fleet.members.len());

        let stop_workload = CancellationToken::new();
        let _cancel_on_drop = stop_workload.clone().drop_guard();
        let mut driver = Driver::new(apis.clone())?;
        let counts = driver.counts.clone();
        let mut workload = Workload::new(self.topo, self.seed, local_day(now_ms()));
        let period = Duration::from_secs_f64(1.0 / self.args.rate);
        let workload_s = self.args.workload_s;
        let mut workload_task = Some(tokio::spawn(async move {
            let started = Instant::now();
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop_workload.cancelled() => break,
                    _ = tick.tick() => {}
                }
                if workload_s.is_some_and(|s| started.elapsed() >= Duration::from_secs(s)) {
                    break;
                }
                let action = workload.next_action();
                tokio::select! {
                    _ = stop_workload.cancelled() => break,
                    _ = driver.apply(&mut workload, action) => {}
                }
            }
            (started.elapsed(), driver.last_error)
        }));

        let mut progress = Progress::new();
        let mut last_converged: Option<Instant> = None;
        let mut tick = tokio::time::interval(PROGRESS_EVERY);
        let fleet = self.fleet;
        loop {
            tick.tick().await;
            for (id, status, log) in fleet.newly_exited() {
                progress.message(&format!(
                    "office {id} exited ({status}); last lines of {}:\n{}",
                    log.display(),
                    process::log_tail(&log, 10)
                ));
            }
            if workload_task.as_ref().is_some_and(|t| t.is_finished()) {
                if let Some(Ok((elapsed, last_error))) = workload_task.take().and_then(futures::FutureExt::now_or_never)
                {
                    let (p, w, pl) = counts.get();
                    progress.message(&format!(
                        "workload stopped after {:.0} s: acknowledged {p} postings, {w} workers, {pl} placements; the mesh keeps running",
                        elapsed.as_secs_f64()
                    ));
                    if let Some(e) = last_error {
                        progress.message(&format!("last workload error: {e}"));
                    }
                }
            }
            let snap = snapshot(&client, self.topo, &apis).await;
            if snap.converged {
                last_converged = Some(Instant::now());
            }
            progress.line(&progress_line(&snap, &counts, last_converged));
        }
    }

    /// Wait until every office answers `/healthz`; fail with its log if one
    /// stops during start-up.
    async fn wait_until_up(&mut self, client: &reqwest::Client) -> anyhow::Result<()> {
        let deadline = Instant::now() + HEALTH_WAIT;
        let mut waiting: Vec<usize> = (0..self.fleet.members.len()).collect();
        while !waiting.is_empty() {
            if let Some((id, status, log)) = self.fleet.newly_exited().into_iter().next() {
                bail!(
                    "office {id} stopped during start-up ({status}); last lines of {}:\n{}",
                    log.display(),
                    process::log_tail(&log, 20)
                );
            }
            let mut still = Vec::new();
            for i in waiting {
                let api = self.fleet.members[i].api;
                let ok =
                    client.get(format!("http://{api}/healthz")).send().await.is_ok_and(|r| r.status().is_success());
                if !ok {
                    still.push(i);
                }
            }
            waiting = still;
            if !waiting.is_empty() {
                if Instant::now() >= deadline {
                    let ids: Vec<String> = waiting.iter().map(|&i| self.fleet.members[i].id.to_string()).collect();
                    bail!(
                        "no answer from /healthz within {HEALTH_WAIT:?}: {}; see node.log in their folders",
                        ids.join(", ")
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }
}

fn office_title(topo: &Topology, id: &NodeId) -> String {
    topo.get(id).map(|o| format!("{} {}", o.name_zh, o.name).trim().to_owned()).unwrap_or_default()
}

/// The part of `GET /v1/summary` the demo reads.
#[derive(Debug, Clone, Deserialize)]
pub struct SummaryReply {
    pub node_id: NodeId,
    pub subtree: Totals,
    pub reporting: ReportingReply,
    pub nodes: Vec<RowReply>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ReportingReply {
    pub offices: usize,
    pub expected: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RowReply {
    pub node_id: NodeId,
    pub totals: Option<Totals>,
}

impl SummaryReply {
    /// The office's own figures, as it reports them.
    pub fn own(&self) -> Option<Totals> {
        self.nodes.iter().find(|r| r.node_id == self.node_id).and_then(|r| r.totals)
    }
}

/// What one progress round saw.
#[derive(Debug, Default)]
struct Snapshot {
    offices: usize,
    up: usize,
    /// Records held at the province (postings, workers, placements, fills).
    province_records: Option<u64>,
    converged: bool,
}

/// Ask every office for its summary (at once) and the province for its
/// status, and decide whether the mesh has converged (see the module doc).
async fn snapshot(client: &reqwest::Client, topo: &Topology, apis: &HashMap<NodeId, SocketAddr>) -> Snapshot {
    let get = |id: &NodeId, path: &str| {
        let url = apis.get(id).map(|a| format!("http://{a}{path}"));
        let client = client.clone();
        async move {
            let r = client.get(url?).send().await.ok()?;
            if !r.status().is_success() {
                return None;
            }
            r.json::<serde_json::Value>().await.ok()
        }
    };
    let replies = futures::future::join_all(topo.offices.iter().map(|o| get(&o.id, "/v1/summary?depth=0"))).await;
    let summaries: Vec<Option<SummaryReply>> =
        replies.into_iter().map(|v| v.and_then(|v| serde_json::from_value(v).ok())).collect();
    let status = get(topo.root(), "/v1/status").await;
    let province_records = status
        .map(|s| ["postings", "workers", "placements", "fills"].iter().filter_map(|k| s["records"][k].as_u64()).sum());
    let up = summaries.iter().filter(|s| s.is_some()).count();
    let mut sum = Totals::default();
    let mut all_own = true;
    for s in summaries.iter().flatten() {
        match s.own() {
            Some(t) => sum.add(&t, 1),
            None => all_own = false,
        }
    }
    let converged = match summaries.first() {
        Some(Some(root)) => up == topo.len() && all_own && root.reporting.offices == topo.len() && root.subtree == sum,
        _ => false,
    };
    Snapshot { offices: topo.len(), up, province_records, converged }
}

fn progress_line(s: &Snapshot, counts: &Arc<Counts>, last_converged: Option<Instant>) -> String {
    let (p, w, pl) = counts.get();
    let records = s.province_records.map(|r| r.to_string()).unwrap_or_else(|| "?".into());
    let converged = match last_converged {
        _ if s.converged => "converged now".to_owned(),
        Some(t) => format!("converged {:.1} s ago", t.elapsed().as_secs_f64()),
        None => "not converged yet".to_owned(),
    };
    let errors = counts.errors.load(Ordering::Relaxed);
    let errors = if errors > 0 { format!(" · {errors} failed requests") } else { String::new() };
    format!(
        "offices up {}/{} · records at province {records} · postings {p} workers {w} placements {pl} · {converged}{errors}",
        s.up, s.offices
    )
}

/// The progress line: rewritten in place on a terminal, one line per
/// refresh otherwise (logs, CI).
struct Progress {
    tty: bool,
    pending: bool,
}

impl Progress {
    fn new() -> Progress {
        Progress { tty: std::io::stderr().is_terminal(), pending: false }
    }

    fn line(&mut self, s: &str) {
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K{s}");
            self.pending = true;
        } else {
            let _ = writeln!(err, "{s}");
        }
        let _ = err.flush();
    }

    fn message(&mut self, s: &str) {
        if self.pending {
            finish_progress_line();
            self.pending = false;
        }
        println!("{s}");
    }
}

/// End a progress line left open on a terminal.
fn finish_progress_line() {
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
}

fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    h.write_u32(std::process::id());
    h.finish() % 1_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(topology: &str, max: Option<usize>) -> DemoArgs {
        DemoArgs {
            dir: None,
            topology: topology.into(),
            max_offices: max,
            seed: None,
            rate: 4.0,
            duration_s: None,
            workload_s: None,
        }
    }

    #[test]
    fn the_demo_tree_is_nine_real_offices() {
        let (t, _) = choose_topology(&args("demo", None)).unwrap();
        assert_eq!(t.len(), DEMO_OFFICES.len());
        assert_eq!(t.root().as_str(), "gz");
        for o in &t.offices {
            assert!(o.id.parent().is_none_or(|p| t.get(&p).is_some()), "{}", o.id);
            assert!(!o.name_zh.is_empty());
        }
        let (t, _) = choose_topology(&args("guizhou", None)).unwrap();
        assert_eq!(t.len(), DEFAULT_GUIZHOU_OFFICES);
        let (t, _) = choose_topology(&args("guizhou", Some(381))).unwrap();
        assert_eq!(t.len(), 381);
        let (t, _) = choose_topology(&args("demo", Some(3))).unwrap();
        assert_eq!(t.len(), 3);
        assert!(choose_topology(&args("demo", Some(0))).is_err());
        assert!(choose_topology(&args("/nonexistent.tsv", None)).is_err());
    }

    #[test]
    fn a_loopback_plan_has_distinct_free_ports() {
        let (t, _) = choose_topology(&args("demo", None)).unwrap();
        let plan = loopback_plan(&t).unwrap();
        plan.check(&t).unwrap();
    }
}
