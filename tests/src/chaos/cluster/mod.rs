//! A tree of real `jobmesh` processes with a controllable link per tree edge
//! and process faults (kill -9, SIGTERM, SIGSTOP for a long time, restart).
//!
//! Two layers, same operations:
//!
//! - **loopback** (no privileges): every node on 127.0.0.1; a child's
//!   `[parent].addr` is a [`Proxy`] in this process that relays to the
//!   parent's real port. Cut, heal, flap and degrade are proxy settings.
//! - **netns** (root and iproute2): every node in its own namespace, a veth
//!   pair per tree link with a `/30` from `10.77.0.0/16` (inside the
//!   namespaces only). A cut sets the child's veth end down; degradation is
//!   a fault proxy running *inside the child's namespace* (the `agent`
//!   subcommand of `jobmesh-chaos`), controlled over a Unix socket. The
//!   nodes' APIs stay on 127.0.0.1 inside their namespaces; the agent
//!   bridges each to a Unix socket, and this process bridges that to a
//!   loopback TCP port of its own, so the test's HTTP client reaches every
//!   node without any address outside the namespaces.
//!
//! The [`mesh::Mesh`](crate::mesh::Mesh) harness starts processes itself and
//! has no hook for `ip netns exec` or SIGSTOP, so this module keeps its own
//! process table; it reuses the harness's config writer
//! ([`NodeConfig`]), PKI, free ports and HTTP client. Only processes started
//! here are ever signalled, by pid. Dropping the cluster kills them, removes
//! the namespaces and, unless [`Cluster::finish`] ran, keeps the temp folder
//! and prints the tail of every log.

mod links;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::bin::{jobmesh_bin, tail};
use crate::client::{http_client, Api};
use crate::mesh::NodeConfig;
use crate::netns::{self, Netns};
use crate::oracle::nid;
use crate::pki::Pki;
use crate::proxy::{Faults, Proxy, RemoteProxy};
use crate::wait::Rng;

/// How long a node gets to answer `/healthz` after a start.
pub const READY_LIMIT: Duration = Duration::from_secs(30);
/// How long a node gets to exit after SIGTERM before it is killed.
pub const STOP_LIMIT: Duration = Duration::from_secs(20);
/// Cap of a child's reconnect backoff in every config written here, so a
/// healed link is redialed within 2 s.
pub const RECONNECT_MAX_MS: u64 = 2_000;
/// Log lines printed per node when a run fails.
pub const LOG_TAIL_LINES: usize = 30;
/// Ports inside each namespace (every namespace has its own port space).
const NS_QUIC_PORT: u16 = 7400;
const NS_PROXY_PORT: u16 = 7401;
const NS_API_PORT: u16 = 7480;

/// Which layer the cluster runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    Loopback,
    Netns,
}

impl Layer {
    pub fn name(self) -> &'static str {
        match self {
            Layer::Loopback => "loopback+proxy",
            Layer::Netns => "netns+veth",
        }
    }
}

/// Options of a cluster.
#[derive(Debug, Clone)]
pub struct ClusterOpts {
    pub layer: Layer,
    pub seed: u64,
    /// The `jobmesh-chaos` binary (runs the agents inside namespaces);
    /// required for [`Layer::Netns`].
    pub chaos_bin: Option<PathBuf>,
    /// Extra top-level config lines for every node.
    pub extra: Vec<String>,
    /// The binary every node starts with, if not this build (the previous
    /// release, for a rolling upgrade); see [`Cluster::set_binary`].
    pub start_binary: Option<PathBuf>,
}

/// Which nodes are up, and how often each crashed; shared with the
/// workload and the safety checker so they leave down or frozen nodes alone
/// and know when a node's volatile state may legitimately have gone.
#[derive(Debug, Default)]
pub struct Availability {
    inner: Mutex<AvailInner>,
}

#[derive(Debug, Default)]
struct AvailInner {
    down: BTreeSet<String>,
    crashes: BTreeMap<String, u64>,
}

impl Availability {
    fn lock(&self) -> std::sync::MutexGuard<'_, AvailInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Running and not frozen (as far as the cluster knows).
    pub fn is_up(&self, id: &str) -> bool {
        !self.lock().down.contains(id)
    }

    /// How many times the node was killed with SIGKILL so far.
    pub fn crash_epoch(&self, id: &str) -> u64 {
        self.lock().crashes.get(id).copied().unwrap_or(0)
    }

    fn set_up(&self, id: &str, up: bool) {
        let mut g = self.lock();
        if up {
            g.down.remove(id);
        } else {
            g.down.insert(id.to_string());
        }
    }

    fn crashed(&self, id: &str) {
        *self.lock().crashes.entry(id.to_string()).or_default() += 1;
    }
}

/// Process state of one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcState {
    Down,
    Running,
    /// SIGSTOP'd.
    Frozen,
}

struct NodeProc {
    config: PathBuf,
    log: PathBuf,
    api: Api,
    child: Option<Child>,
    frozen: bool,
    starts: u32,
    /// Namespace (netns layer).
    ns: Option<String>,
    /// Another `jobmesh` binary than this build's (the previous release,
    /// for a rolling upgrade); used from the node's next start.
    bin: Option<PathBuf>,
}

/// The control of one tree link (child → parent).
enum LinkCtl {
    Local {
        proxy: Proxy,
    },
    Netns {
        child_ns: String,
        dev: String,
        remote: RemoteProxy,
        flapper: Option<JoinHandle<()>>,
        /// Bumped by every change of the link's state; a flap step of an
        /// older generation does nothing, so a stale flapper can never undo
        /// a heal.
        generation: Arc<Mutex<u64>>,
    },
}

struct Link {
    ctl: LinkCtl,
    faults: Faults,
}

/// A running cluster.
pub struct Cluster {
    tmp: Option<tempfile::TempDir>,
    root_dir: PathBuf,
    layer: Layer,
    order: Vec<String>,
    nodes: BTreeMap<String, NodeProc>,
    links: BTreeMap<String, Link>,
    avail: Arc<Availability>,
    agents: Vec<Child>,
    bridges: Vec<JoinHandle<()>>,
    unclean: Vec<String>,
    passed: bool,
    start_binary: Option<PathBuf>,
    /// Last field: dropped after the processes are gone.
    netns: Option<Netns>,
}

fn stem(id: &str) -> String {
    id.replace('/', "_")
}

impl Cluster {
    /// Make the PKI, configs, links (proxies or namespaces), then start
    /// every node and wait until each answers `/healthz`. `ids` lists parents
    /// before children.
    pub async fn start(ids: &[String], opts: &ClusterOpts) -> Cluster {
        let mut c = Cluster::create(ids, opts).await;
        for id in c.order.clone() {
            c.spawn(&id);
        }
        for id in c.order.clone() {
            c.wait_ready(&id).await;
        }
        c
    }

    async fn create(ids: &[String], opts: &ClusterOpts) -> Cluster {
        assert!(!ids.is_empty(), "cluster: no nodes");
        for (i, id) in ids.iter().enumerate() {
            if let Some(p) = nid(id).parent() {
                assert!(
                    ids[..i].iter().any(|x| *x == p.as_str()),
                    "cluster: parent {p} of {id} must be listed before it"
                );
            } else {
                assert_eq!(i, 0, "cluster: only the first id may be a root ({id})");
            }
        }
        // Built before the temp dir so a cold build is not in any timing.
        jobmesh_bin();
        let tmp =
            tempfile::Builder::new().prefix("jobmesh-chaos-").tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let root_dir = tmp.path().to_path_buf();
        let pki = Pki::init(&root_dir.join("pki"));
        let http = http_client();
        let mut rng = Rng::new(opts.seed ^ 0x0c1a_57e5);
        let mut c = Cluster {
            tmp: Some(tmp),
            root_dir: root_dir.clone(),
            layer: opts.layer,
            order: ids.to_vec(),
            nodes: BTreeMap::new(),
            links: BTreeMap::new(),
            avail: Arc::new(Availability::default()),
            agents: Vec::new(),
            bridges: Vec::new(),
            unclean: Vec::new(),
            passed: false,
            start_binary: opts.start_binary.clone(),
            netns: None,
        };
        match opts.layer {
            Layer::Loopback => c.create_loopback(ids, opts, &pki, &http, &mut rng).await,
            Layer::Netns => c.create_netns(ids, opts, &pki, &http, &mut rng).await,
        }
        c
    }

    fn node_dir(&self, id: &str) -> PathBuf {
        self.root_dir.join("nodes").join(stem(id))
    }

    fn base_config(&self, id: &str, opts: &ClusterOpts) -> NodeConfig {
        let s = stem(id);
        let mut extra = vec![format!("reconnect_max_ms = {RECONNECT_MAX_MS}")];
        extra.extend(opts.extra.iter().cloned());
        NodeConfig {
            node_id: id.to_string(),
            data_dir: "data".into(),
            listen: None,
            api: String::new(),
            parent: None,
            ca_cert: "../../pki/ca.pem".into(),
            cert: format!("../../pki/{s}.pem"),
            key: format!("../../pki/{s}.key"),
            extra,
        }
    }

    fn add_node(&mut self, id: &str, cfg: &NodeConfig, api: Api, ns: Option<String>) {
        let dir = self.node_dir(id);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        let config = dir.join("node.toml");
        std::fs::write(&config, cfg.to_toml()).unwrap_or_else(|e| panic!("write {}: {e}", config.display()));
        self.nodes.insert(
            id.to_string(),
            NodeProc {
                log: dir.join("node.log"),
                config,
                api,
                child: None,
                frozen: false,
                starts: 0,
                ns,
                bin: self.start_binary.clone(),
            },
        );
    }

    /// The temp folder (configs, data, logs).
    pub fn root_dir(&self) -> &Path {
        &self.root_dir
    }

    pub fn layer(&self) -> Layer {
        self.layer
    }

    /// Node ids, parents first.
    pub fn ids(&self) -> Vec<String> {
        self.order.clone()
    }

    /// The root's id.
    pub fn root(&self) -> &str {
        &self.order[0]
    }

    /// Children with a link to their parent (every node but the root).
    pub fn links(&self) -> Vec<String> {
        self.order[1..].to_vec()
    }

    /// A client for the node's API (works while the node is down; requests
    /// then fail).
    pub fn api(&self, id: &str) -> Api {
        self.node(id).api.clone()
    }

    /// Every node's API client.
    pub fn apis(&self) -> BTreeMap<String, Api> {
        self.order.iter().map(|id| (id.clone(), self.api(id))).collect()
    }

    pub fn availability(&self) -> Arc<Availability> {
        self.avail.clone()
    }

    fn node(&self, id: &str) -> &NodeProc {
        self.nodes.get(id).unwrap_or_else(|| panic!("cluster has no node {id}"))
    }

    fn node_mut(&mut self, id: &str) -> &mut NodeProc {
        self.nodes.get_mut(id).unwrap_or_else(|| panic!("cluster has no node {id}"))
    }

    pub fn state(&self, id: &str) -> ProcState {
        let n = self.node(id);
        match (&n.child, n.frozen) {
            (None, _) => ProcState::Down,
            (Some(_), true) => ProcState::Frozen,
            (Some(_), false) => ProcState::Running,
        }
    }

    /// Run `id` with `bin` instead of this build from its next start
    /// (`None`: this build again).
    pub fn set_binary(&mut self, id: &str, bin: Option<&Path>) {
        self.node_mut(id).bin = bin.map(Path::to_path_buf);
    }

    fn spawn(&mut self, id: &str) {
        let root = self.root_dir.clone();
        let n = self.node_mut(id);
        let bin = n.bin.clone().unwrap_or_else(|| jobmesh_bin().to_path_buf());
        assert!(n.child.is_none(), "node {id} is already running");
        n.starts += 1;
        let mut log =
            OpenOptions::new().create(true).append(true).open(&n.log).unwrap_or_else(|e| panic!("open log: {e}"));
        let _ = writeln!(log, "===== chaos harness: start #{} of {id}: {} =====", n.starts, bin.display());
        let err = log.try_clone().unwrap_or_else(|e| panic!("dup log: {e}"));
        let mut cmd = match &n.ns {
            Some(ns) => netns::exec_in(ns, &bin),
            None => Command::new(&bin),
        };
        let child = cmd
            .arg("run")
            .arg("--config")
            .arg(&n.config)
            .current_dir(&root)
            .env("RUST_LOG", std::env::var("JOBMESH_TEST_LOG").unwrap_or_else(|_| "info".into()))
            .env("RUST_BACKTRACE", "1")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        n.child = Some(child);
        n.frozen = false;
    }

    /// `Some(status)` if the node's process has exited (reaps it).
    fn exited(&mut self, id: &str) -> Option<String> {
        let n = self.node_mut(id);
        let c = n.child.as_mut()?;
        match c.try_wait() {
            Ok(Some(s)) => {
                n.child = None;
                Some(s.to_string())
            }
            Ok(None) => None,
            Err(e) => Some(format!("try_wait failed: {e}")),
        }
    }

    async fn wait_ready(&mut self, id: &str) {
        let api = self.api(id);
        let start = Instant::now();
        loop {
            if let Some(status) = self.exited(id) {
                panic!("node {id} exited ({status}) before answering /healthz\n{}", self.log_tail(id, 60));
            }
            if api.healthy().await {
                self.avail.set_up(id, true);
                return;
            }
            if start.elapsed() > READY_LIMIT {
                panic!("node {id} did not answer /healthz within {READY_LIMIT:?}\n{}", self.log_tail(id, 60));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Start a node that is down, with its config and data, and wait until it
    /// is ready.
    pub async fn start_node(&mut self, id: &str) {
        self.spawn(id);
        self.wait_ready(id).await;
    }

    /// `kill -9` the node and reap it.
    pub fn kill9(&mut self, id: &str) {
        self.avail.set_up(id, false);
        self.avail.crashed(id);
        let n = self.node_mut(id);
        let mut child = n.child.take().unwrap_or_else(|| panic!("kill9: node {id} is not running"));
        let _ = child.kill();
        let _ = child.wait();
        n.frozen = false;
    }

    fn signal(&self, id: &str, sig: &str) {
        let n = self.node(id);
        let pid = n.child.as_ref().unwrap_or_else(|| panic!("{sig}: node {id} is not running")).id().to_string();
        let sent = Command::new("kill").args([sig, &pid]).status();
        assert!(matches!(sent, Ok(s) if s.success()), "kill {sig} {pid} ({id}) failed: {sent:?}");
    }

    /// SIGSTOP: the node freezes with its sockets open (an office machine
    /// that hangs or sleeps).
    pub fn freeze(&mut self, id: &str) {
        self.avail.set_up(id, false);
        self.signal(id, "-STOP");
        self.node_mut(id).frozen = true;
    }

    /// SIGCONT a frozen node.
    pub fn thaw(&mut self, id: &str) {
        self.signal(id, "-CONT");
        self.node_mut(id).frozen = false;
        self.avail.set_up(id, true);
    }

    /// SIGTERM and wait for the exit; a stop that does not end in exit 0
    /// within [`STOP_LIMIT`] is remembered and fails [`Cluster::finish`].
    pub async fn stop(&mut self, id: &str) {
        if self.node(id).frozen {
            self.thaw(id);
        }
        self.avail.set_up(id, false);
        self.signal(id, "-TERM");
        let start = Instant::now();
        let mut child = self.node_mut(id).child.take().unwrap_or_else(|| unreachable!());
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    if !status.success() {
                        self.unclean.push(format!("{id}: SIGTERM ended with {status} after {:?}", start.elapsed()));
                    }
                    return;
                }
                Ok(None) if start.elapsed() < STOP_LIMIT => tokio::time::sleep(Duration::from_millis(50)).await,
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    self.unclean.push(format!("{id}: did not exit within {STOP_LIMIT:?} of SIGTERM; killed"));
                    return;
                }
                Err(e) => panic!("try_wait {id}: {e}"),
            }
        }
    }

    /// Delete a stopped node's data folder: the damage the checker's own
    /// test inflicts to prove that lost writes are caught.
    pub fn wipe_data(&mut self, id: &str) {
        assert_eq!(self.state(id), ProcState::Down, "wipe_data: stop {id} first");
        let data = self.node_dir(id).join("data");
        std::fs::remove_dir_all(&data).unwrap_or_else(|e| panic!("remove {}: {e}", data.display()));
    }

    /// Nodes whose process exited by itself (a crash the harness did not
    /// cause); reaps them.
    pub fn crashed_by_themselves(&mut self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for id in self.order.clone() {
            if let Some(status) = self.exited(&id) {
                self.avail.set_up(&id, false);
                out.push((id, status));
            }
        }
        out
    }

    /// Namespace of a node (netns layer).
    pub fn namespace(&self, id: &str) -> Option<&str> {
        self.node(id).ns.as_deref()
    }

    /// Everything back: links clean, frozen nodes thawed, down nodes
    /// started (and ready).
    pub async fn restore_all(&mut self) {
        self.heal_all().await;
        for id in self.order.clone() {
            match self.state(&id) {
                ProcState::Frozen => self.thaw(&id),
                ProcState::Down => self.start_node(&id).await,
                ProcState::Running => {}
            }
        }
    }

    // ----- logs -----

    pub fn log(&self, id: &str) -> String {
        std::fs::read(&self.node(id).log).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
    }

    pub fn log_tail(&self, id: &str, n: usize) -> String {
        tail(&self.log(id), n)
    }

    /// Log lines of every node matching `pred` (for reports: panics, errors).
    pub fn grep_logs(&self, pred: impl Fn(&str) -> bool, max: usize) -> Vec<String> {
        let mut out = Vec::new();
        for id in &self.order {
            for l in self.log(id).lines().filter(|l| pred(l)) {
                if out.len() >= max {
                    return out;
                }
                out.push(format!("{id}: {l}"));
            }
        }
        out
    }

    pub fn all_log_tails(&self, n: usize) -> String {
        let mut s = String::new();
        for id in &self.order {
            let log = &self.node(id).log;
            s += &format!("----- {id}: {} (last {n} lines) -----\n{}\n", log.display(), self.log_tail(id, n));
        }
        s
    }

    /// End of a passing run: thaw, SIGTERM every node (clean exits
    /// required), remove the namespaces and the temp folder. Returns the
    /// unclean stops (empty when all went well).
    pub async fn finish(mut self, passed: bool) -> Vec<String> {
        for id in self.order.clone().iter().rev() {
            if self.state(id) != ProcState::Down {
                self.stop(id).await;
            }
        }
        self.passed = passed && self.unclean.is_empty();
        std::mem::take(&mut self.unclean)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in self.nodes.values_mut() {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        for mut a in self.agents.drain(..) {
            let _ = a.kill();
            let _ = a.wait();
        }
        for b in self.bridges.drain(..) {
            b.abort();
        }
        for l in self.links.values_mut() {
            if let LinkCtl::Netns { flapper: Some(f), .. } = &mut l.ctl {
                f.abort();
            }
        }
        // Namespaces go after every process in them.
        self.netns.take();
        let keep = std::env::var_os("JOBMESH_KEEP").is_some();
        if !self.passed || keep || std::thread::panicking() {
            if let Some(mut t) = self.tmp.take() {
                t.disable_cleanup(true);
            }
            if !self.passed || std::thread::panicking() {
                eprintln!(
                    "chaos run failed; kept {} (configs, data, logs)\n{}",
                    self.root_dir.display(),
                    self.all_log_tails(LOG_TAIL_LINES)
                );
            } else {
                eprintln!("JOBMESH_KEEP: kept {}", self.root_dir.display());
            }
        }
    }
}
