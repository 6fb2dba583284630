//! `jobmesh deploy up` / `jobmesh deploy down`: start any rendered subset of
//! offices on this machine, and stop them again, for rehearsals.
//!
//! `up` starts `jobmesh run --config OUT/offices/<stem>/node.toml` for each
//! chosen office, detached (its own process group, so the terminal's Ctrl-C
//! does not reach it), with its log in `OUT/offices/<stem>/node.log`, and
//! records pid and start time in `OUT/rehearsal.pids`. `down` signals exactly
//! the processes of that file that still run with their recorded start
//! time: never anything found by name. Offices already running are left as
//! they are, so `up` can add offices one subtree at a time.
//!
//! Rehearsals run on loopback only: `up` refuses a folder rendered with a
//! plan whose addresses are not loopback (that is a production render, whose
//! folders belong on the offices' own machines).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use jobmesh_protocol::NodeId;

use crate::process::{self, ProcessId};
use jobmesh_node::deploy::render::{read_index, IndexEntry};

/// The file in the rendered folder that lists the offices `up` started.
pub const PIDS_FILE: &str = "rehearsal.pids";
/// An office's log file in its folder.
pub const LOG_FILE: &str = "node.log";
/// Longest wait for the started offices to answer `/healthz`.
const HEALTH_WAIT: Duration = Duration::from_secs(90);
/// Longest wait for offices to stop after SIGTERM before SIGKILL. A node
/// drains its API and links for up to 10 s each.
const STOP_WAIT: Duration = Duration::from_secs(30);
/// How often process state and health are polled.
const POLL: Duration = Duration::from_millis(100);

/// Which offices `up` starts.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// The rendered folder (OUT of `deploy render`).
    pub dir: PathBuf,
    /// Only these offices (all when empty and no subtree).
    pub only: Vec<NodeId>,
    /// Only this office's subtree.
    pub subtree: Option<NodeId>,
}

/// Start the chosen offices; wait until each answers `/healthz`.
pub async fn up(opts: &UpOptions) -> anyhow::Result<()> {
    let dir = &opts.dir;
    let entries = read_index(dir)?;
    let chosen = choose(&entries, &opts.only, opts.subtree.as_ref())?;
    for e in &chosen {
        let parent = e.parent.as_ref().and_then(|p| entries.iter().find(|x| &x.id == p)).map(|x| x.quic);
        for addr in [Some(e.quic), Some(e.api), parent].into_iter().flatten() {
            if !addr.ip().is_loopback() {
                bail!(
                    "{}: {} uses {addr}, which is not a loopback address: `deploy up` is for rehearsals on one \
                     machine; render with the default (loopback) address plan",
                    dir.display(),
                    e.id
                );
            }
        }
    }

    let exe = std::env::current_exe().context("cannot find this program's path")?;
    let mut running = read_pids(dir)?;
    running.retain(|_, p| p.is_running());
    let mut started = Vec::new();
    for e in &chosen {
        if let Some(p) = running.get(&e.id) {
            println!("{}: already running (pid {})", e.id, p.pid);
            continue;
        }
        let folder = dir.join(&e.folder);
        let log = folder.join(LOG_FILE);
        let child = process::spawn_node(&exe, &e.config(dir), &log, true)
            .with_context(|| format!("{}: cannot start {}", e.id, exe.display()))?;
        let pid = child.id();
        // The child is detached: it is not waited for here, and outlives us.
        drop(child);
        match ProcessId::of(pid) {
            Some(p) => {
                running.insert(e.id.clone(), p);
                started.push((e.clone(), p, log));
            }
            None => eprintln!("{}: exited at once; log {}:\n{}", e.id, log.display(), process::log_tail(&log, 20)),
        }
        // Record as we go, so that an interrupted `up` can still be undone.
        write_pids(dir, &running)?;
    }

    let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(2)).build()?;
    let deadline = Instant::now() + HEALTH_WAIT;
    let mut failed = 0;
    let mut waiting: Vec<_> = started.into_iter().collect();
    while !waiting.is_empty() {
        let mut still = Vec::new();
        for (e, p, log) in waiting {
            if !p.is_running() {
                failed += 1;
                eprintln!("{}: stopped during start-up; log {}:\n{}", e.id, log.display(), process::log_tail(&log, 20));
            } else if healthy(&client, e.api).await {
                println!("{}\tpid {}\thttp://{}/\t{}", e.id, p.pid, e.api, log.display());
            } else {
                still.push((e, p, log));
            }
        }
        waiting = still;
        if Instant::now() >= deadline {
            for (e, _, log) in &waiting {
                failed += 1;
                eprintln!(
                    "{}: no answer from http://{}/healthz within {HEALTH_WAIT:?}; log {}",
                    e.id,
                    e.api,
                    log.display()
                );
            }
            break;
        }
        if !waiting.is_empty() {
            tokio::time::sleep(POLL).await;
        }
    }
    let total = running.values().filter(|p| p.is_running()).count();
    println!(
        "{total} offices running from {}; `jobmesh deploy down --dir {}` stops them",
        dir.display(),
        dir.display()
    );
    if failed > 0 {
        bail!("{failed} offices did not start");
    }
    Ok(())
}

/// Stop every office that `up` started from `dir` and that still runs.
pub async fn down(dir: &Path) -> anyhow::Result<()> {
    let recorded = read_pids(dir)?;
    let live: Vec<(NodeId, ProcessId)> = recorded.into_iter().filter(|(_, p)| p.is_running()).collect();
    let pids: Vec<u32> = live.iter().map(|(_, p)| p.pid).collect();
    process::signal("TERM", &pids)?;
    let deadline = Instant::now() + STOP_WAIT;
    while live.iter().any(|(_, p)| p.is_running()) && Instant::now() < deadline {
        tokio::time::sleep(POLL).await;
    }
    let stragglers: Vec<&(NodeId, ProcessId)> = live.iter().filter(|(_, p)| p.is_running()).collect();
    for (id, p) in &stragglers {
        eprintln!("{id}: still running {STOP_WAIT:?} after SIGTERM; sending SIGKILL to pid {}", p.pid);
    }
    process::signal("KILL", &stragglers.iter().map(|(_, p)| p.pid).collect::<Vec<_>>())?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while live.iter().any(|(_, p)| p.is_running()) && Instant::now() < deadline {
        tokio::time::sleep(POLL).await;
    }
    let left: BTreeMap<NodeId, ProcessId> = live.iter().filter(|(_, p)| p.is_running()).cloned().collect();
    if left.is_empty() {
        let path = dir.join(PIDS_FILE);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot remove {}", path.display())),
        }
        println!("stopped {} offices ({} with SIGKILL)", live.len(), stragglers.len());
        Ok(())
    } else {
        write_pids(dir, &left)?;
        bail!("{} offices are still running: {:?}", left.len(), left.values().map(|p| p.pid).collect::<Vec<_>>())
    }
}

/// The offices of the index that `only` / `subtree` select (all when both
/// are empty), in index order (parents first).
fn choose(entries: &[IndexEntry], only: &[NodeId], subtree: Option<&NodeId>) -> anyhow::Result<Vec<IndexEntry>> {
    for id in only.iter().chain(subtree) {
        if !entries.iter().any(|e| &e.id == id) {
            bail!("{id} is not in the rendered index");
        }
    }
    Ok(entries
        .iter()
        .filter(|e| {
            (only.is_empty() && subtree.is_none())
                || only.contains(&e.id)
                || subtree.is_some_and(|s| e.id.is_in_subtree_of(s))
        })
        .cloned()
        .collect())
}

async fn healthy(client: &reqwest::Client, api: std::net::SocketAddr) -> bool {
    client.get(format!("http://{api}/healthz")).send().await.is_ok_and(|r| r.status().is_success())
}

/// Read `DIR/rehearsal.pids` (empty when absent).
pub fn read_pids(dir: &Path) -> anyhow::Result<BTreeMap<NodeId, ProcessId>> {
    let path = dir.join(PIDS_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') || line.starts_with("id\t") {
            continue;
        }
        let bad = || format!("{}: line {}: expected id, pid, start_time", path.display(), i + 1);
        let cols: Vec<&str> = line.split('\t').collect();
        let [id, pid, start] = cols.as_slice() else { bail!(bad()) };
        let id = NodeId::parse(id).with_context(bad)?;
        let p = ProcessId { pid: pid.parse().with_context(bad)?, start_time: start.parse().with_context(bad)? };
        out.insert(id, p);
    }
    Ok(out)
}

fn write_pids(dir: &Path, running: &BTreeMap<NodeId, ProcessId>) -> anyhow::Result<()> {
    let mut s = String::from("# Offices started by `jobmesh deploy up`; `jobmesh deploy down` stops exactly these.\n");
    s.push_str("id\tpid\tstart_time\n");
    for (id, p) in running {
        s.push_str(&format!("{id}\t{}\t{}\n", p.pid, p.start_time));
    }
    let path = dir.join(PIDS_FILE);
    let tmp = dir.join(format!(".{PIDS_FILE}.tmp{}", std::process::id()));
    std::fs::write(&tmp, s)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str) -> IndexEntry {
        let id = NodeId::parse(id).unwrap();
        IndexEntry {
            folder: PathBuf::from("offices").join(id.file_stem()),
            parent: id.parent(),
            id,
            quic: "127.0.0.1:1".parse().unwrap(),
            api: "127.0.0.1:2".parse().unwrap(),
        }
    }

    #[test]
    fn choosing_offices() {
        let all: Vec<IndexEntry> = ["gz", "gz/a", "gz/a/x", "gz/b"].into_iter().map(entry).collect();
        let ids = |v: Vec<IndexEntry>| v.into_iter().map(|e| e.id.to_string()).collect::<Vec<_>>();
        assert_eq!(choose(&all, &[], None).unwrap().len(), 4);
        let a = NodeId::parse("gz/a").unwrap();
        assert_eq!(ids(choose(&all, &[], Some(&a)).unwrap()), ["gz/a", "gz/a/x"]);
        let b = NodeId::parse("gz/b").unwrap();
        assert_eq!(ids(choose(&all, std::slice::from_ref(&b), None).unwrap()), ["gz/b"]);
        assert_eq!(ids(choose(&all, &[b], Some(&a)).unwrap()), ["gz/a", "gz/a/x", "gz/b"]);
        let e = choose(&all, &[NodeId::parse("gz/c").unwrap()], None).unwrap_err().to_string();
        assert!(e.contains("gz/c is not in the rendered index"), "{e}");
    }

    #[test]
    fn the_pid_file_round_trips() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(read_pids(tmp.path()).unwrap().is_empty());
        let mut m = BTreeMap::new();
        m.insert(NodeId::parse("gz/a").unwrap(), ProcessId { pid: 12, start_time: 34 });
        write_pids(tmp.path(), &m).unwrap();
        assert_eq!(read_pids(tmp.path()).unwrap(), m);
    }
}
