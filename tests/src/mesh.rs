//! A mesh of real `jobmesh` processes on loopback.
//!
//! `Mesh::start(&["gz", "gz/a", ...])` makes a temp folder with a CA (made by
//! `jobmesh ca init/issue`), one folder per node with the config TOML of
//! design.md (relative paths, resolved against the config's folder: the
//! processes run with the mesh root as working directory so that a node
//! resolving against its cwd would fail), picks free loopback ports, starts
//! every node as `jobmesh run --config FILE` with stdout and stderr appended
//! to `<node folder>/node.log`, and waits for `GET /healthz`.
//!
//! Only processes this mesh started are ever signalled, by pid. Dropping the
//! mesh kills them; unless the test called [`Mesh::finish`] (i.e. it passed)
//! the temp folder is kept and the tail of every log is printed
//! (`JOBMESH_KEEP=1` keeps it after passing tests too).

use std::collections::{BTreeMap, HashSet};
use std::fs::OpenOptions;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use jobmesh_protocol::record::Kind;
use serde_json::Value;

use crate::bin::{jobmesh_bin, tail};
use crate::client::{http_client, Api};
use crate::oracle::{nid, Oracle};
use crate::pki::Pki;
use crate::wait::eventually;

/// How long a node gets to answer `/healthz` after it is started.
pub const READY_LIMIT: Duration = Duration::from_secs(30);
/// How long a node gets to exit after SIGTERM before it is killed.
pub const STOP_LIMIT: Duration = Duration::from_secs(20);
/// Lines of each log printed when a test fails.
pub const LOG_TAIL_LINES: usize = 40;

/// Ports handed out in this process, so that two meshes in one test binary
/// never get the same port between "bind :0, drop" and the node's bind.
static PORTS: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

fn claim(port: u16) -> bool {
    let mut g = PORTS.lock().unwrap_or_else(|p| p.into_inner());
    g.get_or_insert_with(HashSet::new).insert(port)
}

/// A free loopback UDP port (for a QUIC `listen`).
pub fn free_udp() -> SocketAddr {
    for _ in 0..100 {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind udp: {e}"));
        let a = s.local_addr().unwrap_or_else(|e| panic!("udp local_addr: {e}"));
        // The same number must be free for TCP too, in case a node also binds it.
        if TcpListener::bind(a).is_ok() && claim(a.port()) {
            return a;
        }
    }
    panic!("no free UDP port")
}

/// A free loopback TCP port (for the HTTP `api`).
pub fn free_tcp() -> SocketAddr {
    for _ in 0..100 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind tcp: {e}"));
        let a = l.local_addr().unwrap_or_else(|e| panic!("tcp local_addr: {e}"));
        if claim(a.port()) {
            return a;
        }
    }
    panic!("no free TCP port")
}

/// One node of the mesh.
#[derive(Debug)]
pub struct NodeProc {
    pub id: String,
    /// `<mesh root>/nodes/<id with / as _>`.
    pub dir: PathBuf,
    pub config: PathBuf,
    pub listen: SocketAddr,
    pub api: SocketAddr,
    pub log: PathBuf,
    child: Option<Child>,
    starts: u32,
}

/// A running (or partly stopped) mesh.
pub struct Mesh {
    tmp: Option<tempfile::TempDir>,
    root: PathBuf,
    pki: Pki,
    order: Vec<String>,
    nodes: BTreeMap<String, NodeProc>,
    http: reqwest::Client,
    passed: bool,
    /// SIGTERM stops that did not end in a clean exit; checked by `finish`.
    unclean: Vec<String>,
    /// Nodes that run another binary than the one under test (the previous
    /// release, in the mixed-version tests).
    binaries: BTreeMap<String, PathBuf>,
    /// Extra environment per node (e.g. libfaketime's), set at each start.
    envs: BTreeMap<String, Vec<(String, String)>>,
}

/// One node's config, rendered as the TOML of design.md by
/// [`NodeConfig::to_toml`]. Tests may change it before the node starts
/// (see [`Mesh::new_with`]).
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub node_id: String,
    /// `data_dir`, relative to the config's folder.
    pub data_dir: String,
    /// QUIC `listen`; `None` leaves the key out (allowed on leaves).
    pub listen: Option<SocketAddr>,
    /// The `api` address as written in the file.
    pub api: String,
    /// `[parent]` node id and address.
    pub parent: Option<(String, SocketAddr)>,
    /// `[tls]` paths, relative to the config's folder.
    pub ca_cert: String,
    pub cert: String,
    pub key: String,
    /// Extra top-level `key = value` lines (e.g. `stale_after_s = 3`).
    pub extra: Vec<String>,
}

impl NodeConfig {
    pub fn to_toml(&self) -> String {
        let mut s = format!("node_id  = \"{}\"\ndata_dir = \"{}\"\n", self.node_id, self.data_dir);
        if let Some(l) = self.listen {
            s += &format!("listen   = \"{l}\"\n");
        }
        s += &format!("api      = \"{}\"\n", self.api);
        for line in &self.extra {
            s += line;
            s += "\n";
        }
        if let Some((pid, paddr)) = &self.parent {
            s += &format!("[parent]\nnode_id = \"{pid}\"\naddr    = \"{paddr}\"\n");
        }
        s += &format!(
            "[tls]\nca_cert = \"{}\"\ncert    = \"{}\"\nkey     = \"{}\"\n",
            self.ca_cert, self.cert, self.key
        );
        s
    }
}

impl Mesh {
    /// Create the folders, CA, certificates and configs of `ids` (every
    /// non-root id's parent must be in `ids`), without starting anything.
    pub fn new(ids: &[&str]) -> Mesh {
        Mesh::new_with(ids, |_| {})
    }

    /// Like [`Mesh::new`], letting `tweak` change each node's config before
    /// it is written (a parent outside the mesh must be set by `tweak`).
    pub fn new_with(ids: &[&str], mut tweak: impl FnMut(&mut NodeConfig)) -> Mesh {
        let tmp = tempfile::Builder::new().prefix("jobmesh-test-").tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let root = tmp.path().to_path_buf();
        let pki = Pki::init(&root.join("pki"));
        let mut nodes = BTreeMap::new();
        for id in ids {
            nid(id);
            pki.issue(id);
            let dir = root.join("nodes").join(id.replace('/', "_"));
            std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
            let (listen, api) = (free_udp(), free_tcp());
            nodes.insert(
                id.to_string(),
                NodeProc {
                    id: id.to_string(),
                    config: dir.join("node.toml"),
                    log: dir.join("node.log"),
                    dir,
                    listen,
                    api,
                    child: None,
                    starts: 0,
                },
            );
        }
        for id in ids {
            let stem = id.replace('/', "_");
            let n = &nodes[*id];
            let mut cfg = NodeConfig {
                node_id: id.to_string(),
                data_dir: "data".into(),
                listen: Some(n.listen),
                api: n.api.to_string(),
                parent: nid(id).parent().and_then(|p| {
                    let p = p.to_string();
                    nodes.get(&p).map(|pn| (p, pn.listen))
                }),
                ca_cert: "../../pki/ca.pem".into(),
                cert: format!("../../pki/{stem}.pem"),
                key: format!("../../pki/{stem}.key"),
                extra: Vec::new(),
            };
            tweak(&mut cfg);
            if let Some(p) = nid(id).parent() {
                assert!(cfg.parent.is_some(), "mesh: parent {p} of {id} is neither in the mesh nor set by the test");
            }
            std::fs::write(&n.config, cfg.to_toml()).unwrap_or_else(|e| panic!("write {}: {e}", n.config.display()));
        }
        Mesh {
            tmp: Some(tmp),
            root,
            pki,
            order: ids.iter().map(|s| s.to_string()).collect(),
            nodes,
            http: http_client(),
            passed: false,
            unclean: Vec::new(),
            binaries: BTreeMap::new(),
            envs: BTreeMap::new(),
        }
    }

    /// Start every node that is not running and wait until all are ready.
    pub async fn start_all(&mut self) {
        let ids: Vec<String> = self.order.iter().filter(|id| self.nodes[*id].child.is_none()).cloned().collect();
        for id in &ids {
            self.spawn(id);
        }
        for id in &ids {
            self.wait_ready(id).await;
        }
    }

    /// [`Mesh::new`], then start every node and wait until all are ready.
    pub async fn start(ids: &[&str]) -> Mesh {
        let mut m = Mesh::new(ids);
        m.start_all().await;
        m
    }

    /// The mesh's temp folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The CA every node of the mesh trusts.
    pub fn pki(&self) -> &Pki {
        &self.pki
    }

    /// Ids in the order given at creation.
    pub fn ids(&self) -> Vec<&str> {
        self.order.iter().map(String::as_str).collect()
    }

    /// Ids of nodes the harness started and has not stopped (a node that
    /// crashed on its own still counts: its API calls will fail loudly).
    pub fn running(&self) -> Vec<String> {
        self.order.iter().filter(|id| self.nodes[*id].child.is_some()).cloned().collect()
    }

    fn node(&self, id: &str) -> &NodeProc {
        self.nodes.get(id).unwrap_or_else(|| panic!("mesh has no node {id}"))
    }

    fn node_mut(&mut self, id: &str) -> &mut NodeProc {
        self.nodes.get_mut(id).unwrap_or_else(|| panic!("mesh has no node {id}"))
    }

    /// The node's QUIC listen address.
    pub fn listen_addr(&self, id: &str) -> SocketAddr {
        self.node(id).listen
    }

    /// `http://127.0.0.1:PORT` of the node's API.
    pub fn url(&self, id: &str) -> String {
        format!("http://{}", self.node(id).api)
    }

    /// A client for the node's API.
    pub fn api(&self, id: &str) -> Api {
        Api::new(self.url(id), self.http.clone())
    }

    /// The node's log path.
    pub fn log_path(&self, id: &str) -> &Path {
        &self.node(id).log
    }

    /// The whole log of a node so far.
    pub fn log(&self, id: &str) -> String {
        std::fs::read(&self.node(id).log).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
    }

    /// The last `n` lines of a node's log.
    pub fn log_tail(&self, id: &str, n: usize) -> String {
        tail(&self.log(id), n)
    }

    /// Log tails of every node, for failure messages.
    pub fn all_log_tails(&self, n: usize) -> String {
        let mut s = String::new();
        for id in &self.order {
            s += &format!(
                "----- {id}: {} (last {n} lines) -----\n{}\n",
                self.node(id).log.display(),
                self.log_tail(id, n)
            );
        }
        s
    }

    /// The node's process id while it runs.
    pub fn pid(&self, id: &str) -> Option<u32> {
        self.node(id).child.as_ref().map(|c| c.id())
    }

    /// Send `signal` (a `kill` name such as `HUP`) to the node's process,
    /// by pid. Panics if it is not running or `kill` fails.
    pub fn signal(&self, id: &str, signal: &str) {
        let pid = self.pid(id).unwrap_or_else(|| panic!("node {id} is not running")).to_string();
        let sent = Command::new("kill").args([&format!("-{signal}"), &pid]).status();
        assert!(matches!(sent, Ok(s) if s.success()), "kill -{signal} {pid} ({id}) failed: {sent:?}");
    }

    /// Is the node's process alive right now (reaps it if it exited)?
    pub fn is_alive(&mut self, id: &str) -> bool {
        self.exited(id).is_none() && self.node(id).child.is_some()
    }

    /// Run node `id` with `bin` from its next start on; `None` goes back to
    /// the binary under test (an upgrade, when `bin` was an older release).
    /// Environment variables the node's process gets from its next start
    /// on (the clock tests preload libfaketime this way).
    pub fn set_env(&mut self, id: &str, vars: &[(&str, &str)]) {
        self.envs.insert(id.to_string(), vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
    }

    pub fn set_binary(&mut self, id: &str, bin: Option<&Path>) {
        match bin {
            Some(b) => self.binaries.insert(id.to_string(), b.to_path_buf()),
            None => self.binaries.remove(id),
        };
    }

    /// Start the node's process (same config and data as before).
    fn spawn(&mut self, id: &str) {
        let bin = self.binaries.get(id).cloned().unwrap_or_else(|| jobmesh_bin().to_path_buf());
        let bin = bin.as_path();
        let root = self.root.clone();
        let envs = self.envs.get(id).cloned().unwrap_or_default();
        let n = self.node_mut(id);
        assert!(n.child.is_none(), "node {id} is already running");
        n.starts += 1;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&n.log)
            .unwrap_or_else(|e| panic!("open {}: {e}", n.log.display()));
        let _ = writeln!(
            log,
            "===== harness: start #{} of {id}: {} run --config {} =====",
            n.starts,
            bin.display(),
            n.config.display()
        );
        let err = log.try_clone().unwrap_or_else(|e| panic!("dup log: {e}"));
        let child = Command::new(bin)
            .arg("run")
            .arg("--config")
            .arg(&n.config)
            .current_dir(&root)
            .env("RUST_LOG", std::env::var("JOBMESH_TEST_LOG").unwrap_or_else(|_| "info".into()))
            .env("RUST_BACKTRACE", "1")
            .env("NO_COLOR", "1")
            .envs(envs)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        n.child = Some(child);
    }

    /// Wait (bounded) until the node answers `GET /healthz` with 200; panic
    /// with its log if it exits or does not get there.
    pub async fn wait_ready(&mut self, id: &str) {
        let api = self.api(id);
        let start = Instant::now();
        loop {
            if let Some(status) = self.exited(id) {
                panic!(
                    "node {id} exited ({status}) before answering /healthz\n{}",
                    self.log_tail(id, LOG_TAIL_LINES * 2)
                );
            }
            if api.healthy().await {
                return;
            }
            if start.elapsed() > READY_LIMIT {
                panic!(
                    "node {id} did not answer GET /healthz within {READY_LIMIT:?}\n{}",
                    self.log_tail(id, LOG_TAIL_LINES * 2)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Start a node that must refuse to run (a bad config): it has to exit
    /// by itself, unsuccessfully, within `limit`. Returns its exit status and
    /// its log. Panics if it is still running (it is then killed) or exits 0.
    pub async fn start_expect_failure(&mut self, id: &str, limit: Duration) -> (String, String) {
        self.spawn(id);
        let start = Instant::now();
        loop {
            let done = {
                let n = self.node_mut(id);
                let c = n.child.as_mut().unwrap_or_else(|| panic!("{id} not spawned"));
                c.try_wait().unwrap_or_else(|e| panic!("try_wait {id}: {e}"))
            };
            if let Some(status) = done {
                self.node_mut(id).child = None;
                assert!(!status.success(), "node {id} should refuse to start, but exited 0\n{}", self.log_tail(id, 40));
                return (status.to_string(), self.log(id));
            }
            if start.elapsed() > limit {
                self.kill9(id);
                panic!("node {id} should refuse to start, but still runs after {limit:?}\n{}", self.log_tail(id, 40));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `Some(status)` if the node's process has exited (and reaps it).
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

    /// Start a stopped node without waiting for it (to kill it while it
    /// is still starting or catching up).
    pub fn start_detached(&mut self, id: &str) {
        self.spawn(id);
    }

    /// Restart a stopped node with the same config and data, and wait until
    /// it is ready.
    pub async fn start_node(&mut self, id: &str) {
        self.spawn(id);
        self.wait_ready(id).await;
    }

    /// SIGTERM the node (by pid) and wait for it to exit; after
    /// [`STOP_LIMIT`] it is killed. Returns the exit status. A stop that does
    /// not end in exit code 0 is remembered and reported by [`Mesh::finish`].
    pub async fn stop(&mut self, id: &str) -> ExitStatus {
        let mut child = self.node_mut(id).child.take().unwrap_or_else(|| panic!("stop: node {id} is not running"));
        let pid = child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(matches!(sent, Ok(s) if s.success()), "kill -TERM {pid} ({id}) failed: {sent:?}");
        let start = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    if !status.success() {
                        self.unclean.push(format!("{id}: SIGTERM ended with {status} after {:?}", start.elapsed()));
                    }
                    return status;
                }
                Ok(None) if start.elapsed() < STOP_LIMIT => tokio::time::sleep(Duration::from_millis(50)).await,
                Ok(None) => {
                    let _ = child.kill();
                    let status = child.wait().unwrap_or_else(|e| panic!("wait {id}: {e}"));
                    self.unclean.push(format!("{id}: did not exit within {STOP_LIMIT:?} of SIGTERM; killed"));
                    return status;
                }
                Err(e) => panic!("try_wait {id}: {e}"),
            }
        }
    }

    /// `kill -9` the node (by pid) and reap it. Panics if the process had
    /// already exited: a kill that hits nothing tests nothing.
    pub fn kill9(&mut self, id: &str) {
        let mut child = self.node_mut(id).child.take().unwrap_or_else(|| panic!("kill9: node {id} is not running"));
        if let Ok(Some(status)) = child.try_wait() {
            panic!("kill9: node {id} had already exited ({status}) before the kill\n{}", self.log_tail(id, 40));
        }
        let _ = child.kill();
        let status = child.wait().unwrap_or_else(|e| panic!("kill9: wait for {id}: {e}"));
        // Killed by the signal, not exited on its own in the meantime.
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "kill9: node {id} was not ended by SIGKILL ({status})");
    }

    /// Eventually every node in `nodes` answers 200 for
    /// `GET /v1/{collection}/{id}`; returns what each answered, in order.
    pub async fn wait_held(&self, collection: &str, id: &str, nodes: &[&str], limit: Duration) -> Vec<Value> {
        let what = format!("{collection}/{id} held at {nodes:?}");
        eventually(&what, limit, || async {
            let mut got = Vec::new();
            let mut lacking = Vec::new();
            for n in nodes {
                match self.api(n).get_one(collection, id).await? {
                    Some(v) => got.push(v),
                    None => lacking.push(*n),
                }
            }
            if lacking.is_empty() {
                Ok(got)
            } else {
                Err(format!("404 at {lacking:?}"))
            }
        })
        .await
    }

    /// Right now every node in `nodes` answers 404 for
    /// `GET /v1/{collection}/{id}`. Meaningful only after convergence.
    pub async fn assert_absent(&self, collection: &str, id: &str, nodes: &[&str]) {
        for n in nodes {
            let got = self.api(n).get_one(collection, id).await;
            assert!(
                matches!(got, Ok(None)),
                "{n} must not hold {collection}/{id} (routing rule), but GET answered {got:?}"
            );
        }
    }

    /// Check, at every running node, that it holds exactly the postings,
    /// workers and placements the routing rule gives it for the records in
    /// `oracle`, each posting at its origin's version and with the filled
    /// count the oracle expects, and as many fills as the rule gives it
    /// (from `/v1/status`). `Err` describes every difference.
    pub async fn check_converged(&self, oracle: &Oracle) -> Result<(), String> {
        let running = self.running();
        let mut problems = Vec::new();
        let mut listed: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
        for id in &running {
            let api = self.api(id);
            for (kind, coll) in
                [(Kind::Posting, "postings"), (Kind::Worker, "workers"), (Kind::Placement, "placements")]
            {
                let items = api.list_all(coll).await?;
                let held: std::collections::BTreeSet<String> =
                    items.iter().filter_map(|v| v["id"].as_str().map(str::to_string)).collect();
                let want = oracle.expected(id, kind);
                let missing: Vec<_> = want.difference(&held).collect();
                let extra: Vec<_> = held.difference(&want).collect();
                if !missing.is_empty() || !extra.is_empty() {
                    problems.push(format!("{id} {coll}: missing {missing:?}, should not hold {extra:?}"));
                }
                if kind == Kind::Posting {
                    listed.insert(
                        id.clone(),
                        items.into_iter().filter_map(|v| Some((v["id"].as_str()?.to_string(), v))).collect(),
                    );
                }
            }
            let status = api.status().await?;
            let fills = &status["records"]["fills"];
            let want = oracle.expected(id, Kind::Fill).len() as u64;
            if fills.as_u64() != Some(want) {
                problems.push(format!("{id} /v1/status records.fills = {fills}, expected {want}"));
            }
        }
        for pid in oracle.posting_ids() {
            let facts = oracle.posting_facts(pid).map(|f| (f.origin.to_string(), f.positions));
            let Some((origin, positions)) = facts else { continue };
            let origin_version = listed.get(&origin).and_then(|m| m.get(pid)).map(|v| v["version"].clone());
            let filled = oracle.filled(pid);
            for (node, items) in &listed {
                let Some(p) = items.get(pid) else { continue };
                if let Some(ov) = &origin_version {
                    if &p["version"] != ov {
                        problems
                            .push(format!("{node} holds {pid} at version {}, origin {origin} at {ov}", p["version"]));
                    }
                }
                if p["filled"].as_u64() != Some(filled) || p["remaining"].as_u64() != Some(positions - filled) {
                    problems.push(format!(
                        "{node} {pid}: filled={} remaining={}, expected filled={filled} remaining={}",
                        p["filled"],
                        p["remaining"],
                        positions - filled
                    ));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("\n"))
        }
    }

    /// End of a passing test: SIGTERM every running node, require clean
    /// exits (also of earlier `stop`s), and remove the temp folder.
    pub async fn finish(mut self) {
        for id in self.order.clone().iter().rev() {
            if self.node(id).child.is_some() {
                self.stop(id).await;
            }
        }
        if !self.unclean.is_empty() {
            panic!(
                "nodes did not shut down cleanly on SIGTERM:\n{}\n{}",
                self.unclean.join("\n"),
                self.all_log_tails(LOG_TAIL_LINES)
            );
        }
        self.passed = true;
    }
}

impl Drop for Mesh {
    fn drop(&mut self) {
        for n in self.nodes.values_mut() {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        if std::env::var_os("JOBMESH_KEEP").is_some() && self.passed {
            if let Some(mut t) = self.tmp.take() {
                t.disable_cleanup(true);
            }
            eprintln!("JOBMESH_KEEP: kept {}", self.root.display());
        }
        if !self.passed || std::thread::panicking() {
            let tails = self.all_log_tails(LOG_TAIL_LINES);
            if let Some(mut t) = self.tmp.take() {
                t.disable_cleanup(true);
            }
            eprintln!("jobmesh test failed; kept {} (configs, data, logs)\n{tails}", self.root.display());
        }
    }
}
