//! Running nodes for the bench: in this process through the one entry point
//! `runtime::run` (several nodes share the bench's tokio runtime, each with
//! its own store, sockets and tasks), or as real `jobmesh run` processes.
//!
//! Every process is recorded in a [`Fleet`], which kills what still runs
//! when it is dropped, so no error path leaves a node behind.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use jobmesh_protocol::NodeId;
use tokio::runtime::Runtime;
use tokio::sync::oneshot;

use super::http::Http;
use jobmesh_node::config::Config;
use jobmesh_node::runtime::{self, BoundSockets};

/// Longest a node may take to answer `/healthz` after it starts.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// Longest a node may take to stop.
const STOP_DEADLINE: Duration = Duration::from_secs(30);

/// Sockets bound ahead of the node, so that its addresses are known before
/// it runs (a child's config names its parent's address; a "cut" link is a
/// parent whose socket exists but whose node has not started).
pub fn prebind(rt: &Runtime) -> anyhow::Result<BoundSockets> {
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").context("cannot bind a UDP socket")?;
    let api = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).context("cannot bind a TCP socket")?;
    Ok(BoundSockets { udp, api })
}

pub fn addrs(s: &BoundSockets) -> anyhow::Result<(SocketAddr, SocketAddr)> {
    Ok((s.udp.local_addr()?, s.api.local_addr()?))
}

/// A node running in this process.
pub struct InProc {
    pub id: NodeId,
    pub api: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl InProc {
    /// Start the node of `config` on `sockets` (does not wait for it).
    pub fn start(rt: &Runtime, config: &Path, sockets: BoundSockets) -> anyhow::Result<InProc> {
        let cfg = Config::load(config)?;
        let id = cfg.node_id.clone();
        let api = sockets.api.local_addr()?;
        let (stop, rx) = oneshot::channel::<()>();
        let task = rt.spawn(runtime::run(cfg, sockets, async move {
            let _ = rx.await;
        }));
        Ok(InProc { id, api, stop: Some(stop), task: Some(task) })
    }

    /// Stop the node in order and wait until it has returned.
    pub fn stop(mut self, rt: &Runtime) -> anyhow::Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let Some(task) = self.task.take() else { return Ok(()) };
        match rt.block_on(async { tokio::time::timeout(STOP_DEADLINE, task).await }) {
            Ok(Ok(r)) => r.with_context(|| format!("node {} failed", self.id)),
            Ok(Err(e)) => bail!("node {} panicked: {e}", self.id),
            Err(_) => bail!("node {} did not stop within {STOP_DEADLINE:?}", self.id),
        }
    }
}

impl Drop for InProc {
    fn drop(&mut self) {
        // An error path: ask the node to stop; the runtime's shutdown at the
        // end of the bench waits for it.
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Wait until the node at `api` answers `/healthz`.
pub fn wait_healthy(api: SocketAddr, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + START_DEADLINE;
    let mut http = Http::new(api);
    loop {
        if let Ok((200, _)) = http.get("/healthz") {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{what} at {api} did not answer /healthz within {START_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Poll `GET path` at `http` every `every` until it answers 200; the time
/// it first did. Fails after `deadline`.
pub fn wait_200(http: &mut Http, path: &str, every: Duration, deadline: Instant) -> anyhow::Result<Instant> {
    loop {
        let (status, _) = http.get(path).with_context(|| format!("GET {path} at {}", http.addr()))?;
        if status == 200 {
            return Ok(Instant::now());
        }
        if status != 404 {
            bail!("GET {path} at {} answered {status}", http.addr());
        }
        if Instant::now() > deadline {
            bail!("GET {path} at {} still 404 at the deadline", http.addr());
        }
        std::thread::sleep(every);
    }
}

/// Make everything `api`'s node has applied durable, and know it: a local
/// write answers 201 only after a flush that began after the write, and the
/// store flushes as a whole, so once the 201 is back everything applied
/// before the request is on disk. Costs one worker registration at that
/// node (workers only travel up, so the barrier never reaches the nodes
/// the bench reuses below it).
pub fn durability_barrier(api: SocketAddr) -> anyhow::Result<Instant> {
    let mut http = Http::new(api);
    let body = br#"{"name": "Durability barrier", "key_group": "other"}"#;
    let (status, text) = http.post_json("/v1/workers", body)?;
    if status != 201 {
        bail!("barrier posting at {api}: {status} {}", String::from_utf8_lossy(&text));
    }
    Ok(Instant::now())
}

/// Resident set size of a process, from `/proc/PID/status` (`VmRSS`).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// CPU time (user + system) this process has used, in seconds.
pub fn cpu_seconds_self() -> f64 {
    cpu_seconds_of("self")
}

/// CPU time (user + system) process `pid` has used, in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    cpu_seconds_of(&pid.to_string())
}

/// From `/proc/PID/stat`; clock ticks are taken as 100 per second (USER_HZ
/// on every Linux this runs on).
fn cpu_seconds_of(pid: &str) -> f64 {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return f64::NAN };
    let Some(close) = text.rfind(')') else { return f64::NAN };
    let fields: Vec<&str> = text[close + 1..].split_whitespace().collect();
    // Fields 14 and 15 (utime, stime) are at 11 and 12 after the name.
    let tick = |i: usize| fields.get(i).and_then(|s| s.parse::<f64>().ok()).unwrap_or(f64::NAN);
    (tick(11) + tick(12)) / 100.0
}

/// One `jobmesh` process started by the bench.
pub struct Proc {
    pub id: NodeId,
    pub api: SocketAddr,
    pub log: PathBuf,
    child: Child,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn rss(&self) -> Option<u64> {
        rss_bytes(self.pid())
    }
}

/// The processes the bench started; dropping it kills those still running.
#[derive(Default)]
pub struct Fleet {
    pub procs: Vec<Proc>,
}

impl Fleet {
    /// Start `exe run --config CONFIG`, output to `log`.
    pub fn spawn(&mut self, exe: &Path, config: &Path, log: &Path, id: NodeId, api: SocketAddr) -> anyhow::Result<()> {
        let out = File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
        let err = out.try_clone()?;
        let child = Command::new(exe)
            .arg("run")
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("cannot start {}", exe.display()))?;
        self.procs.push(Proc { id, api, log: log.to_owned(), child });
        Ok(())
    }

    /// Start a process that only idles (`jobmesh bench --idle-probe`): the
    /// binary's own floor of resident memory.
    pub fn spawn_idle_probe(&mut self, exe: &Path, log: &Path) -> anyhow::Result<u32> {
        let out = File::create(log)?;
        let child = Command::new(exe)
            .args(["bench", "--idle-probe"])
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()?;
        let pid = child.id();
        self.procs.push(Proc {
            id: super::fixture::node("probe"),
            api: "127.0.0.1:9".parse()?,
            log: log.into(),
            child,
        });
        Ok(pid)
    }

    /// Wait until every process answers `/healthz`; a process that exits
    /// first is reported with the end of its log.
    pub fn wait_healthy(&mut self) -> anyhow::Result<()> {
        for p in &mut self.procs {
            let deadline = Instant::now() + START_DEADLINE;
            let mut http = Http::new(p.api);
            loop {
                if let Ok((200, _)) = http.get("/healthz") {
                    break;
                }
                if let Ok(Some(status)) = p.child.try_wait() {
                    bail!("{} exited ({status}) at start:\n{}", p.id, log_tail(&p.log, 15));
                }
                if Instant::now() > deadline {
                    bail!("{} did not answer /healthz within {START_DEADLINE:?}:\n{}", p.id, log_tail(&p.log, 15));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    /// SIGTERM every process (by pid), wait for them (bounded), SIGKILL
    /// stragglers.
    pub fn stop_all(&mut self) {
        let pids: Vec<String> = self
            .procs
            .iter_mut()
            .filter_map(|p| matches!(p.child.try_wait(), Ok(None)).then(|| p.pid().to_string()))
            .collect();
        if !pids.is_empty() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .args(&pids)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let deadline = Instant::now() + STOP_DEADLINE;
        for p in &mut self.procs {
            loop {
                match p.child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() > deadline => {
                        let _ = p.child.kill();
                        let _ = p.child.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
        self.procs.clear();
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for p in &mut self.procs {
            if let Ok(None) = p.child.try_wait() {
                let _ = p.child.kill();
            }
            let _ = p.child.wait();
        }
    }
}

/// The last `n` lines of a log file.
pub fn log_tail(log: &Path, n: usize) -> String {
    let text = std::fs::read(log).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Loopback addresses that are free right now, `n` of each kind (UDP for
/// QUIC, TCP for the API): all sockets are held until every address is
/// chosen, so no two nodes get the same port.
pub fn free_addrs(n: usize) -> anyhow::Result<Vec<(SocketAddr, SocketAddr)>> {
    let mut held = Vec::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0")?;
        let tcp = std::net::TcpListener::bind("127.0.0.1:0")?;
        out.push((udp.local_addr()?, tcp.local_addr()?));
        held.push((udp, tcp));
    }
    Ok(out)
}

/// The node's flush count and total flush seconds, from `/metrics`.
pub fn flush_metrics(api: SocketAddr) -> Option<(u64, f64)> {
    let (status, body) = Http::new(api).get("/metrics").ok()?;
    if status != 200 {
        return None;
    }
    let text = String::from_utf8_lossy(&body);
    let value = |name: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
    };
    Some((value("jobmesh_store_flushes_total")? as u64, value("jobmesh_store_flush_seconds_sum")?))
}
