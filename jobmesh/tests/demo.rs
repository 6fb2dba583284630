//! `jobmesh demo` end to end, as a user runs it, in about 20 seconds: every
//! office comes up, the workload gets acknowledged, the province's figures
//! become non-zero and equal the sum of the figures each office reports for
//! itself (and count every worker and placement the offices acknowledged),
//! and SIGINT stops the demo with exit code 0, no office process left, and
//! the temporary folder removed.
//!
//! Liveness is polled against deadlines; nothing sleeps and then asserts.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use jobmesh_demo::demo::{SummaryReply, DEMO_OFFICES};
use jobmesh_demo::process::{self, ProcessId};
use jobmesh_protocol::figures::Totals;
use jobmesh_protocol::NodeId;

const BIN: &str = env!("CARGO_BIN_EXE_jobmesh");
/// Seconds of workload; the mesh then converges while the test checks it.
const WORKLOAD_S: u64 = 14;
/// Every office answers within this.
const START_BOUND: Duration = Duration::from_secs(30);
/// The province agrees with the offices within this after the workload.
const CONVERGE_BOUND: Duration = Duration::from_secs(15);
/// The demo stops everything within this after SIGINT.
const STOP_BOUND: Duration = Duration::from_secs(30);

/// Kills the demo and every office it started if the test fails midway, so
/// that a failure leaves nothing running either.
struct Cleanup {
    demo: Child,
    offices: Vec<ProcessId>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let live: Vec<u32> = self.offices.iter().filter(|p| p.is_running()).map(|p| p.pid).collect();
        let _ = process::signal("KILL", &live);
        let _ = self.demo.kill();
        let _ = self.demo.wait();
    }
}

fn next_line(lines: &mpsc::Receiver<String>, deadline: Instant, seen: &mut Vec<String>) -> String {
    let left = deadline.saturating_duration_since(Instant::now());
    match lines.recv_timeout(left) {
        Ok(l) => {
            seen.push(l.clone());
            l
        }
        Err(e) => panic!("no line from the demo ({e}); its output so far:\n{}", seen.join("\n")),
    }
}

async fn summary(client: &reqwest::Client, api: SocketAddr) -> Option<SummaryReply> {
    let r = client.get(format!("http://{api}/v1/summary?depth=0")).send().await.ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json().await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_converges_and_ctrl_c_leaves_nothing_behind() {
    let started = Instant::now();
    let mut demo = Command::new(BIN)
        .args(["demo", "--seed", "20240601", "--rate", "8", "--workload-s", &WORKLOAD_S.to_string()])
        // A safety net if the test's SIGINT never comes.
        .args(["--duration-s", "90"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let demo_pid = demo.id();
    let stdout = demo.stdout.take().unwrap();
    let mut stderr = demo.stderr.take().unwrap();
    let mut cleanup = Cleanup { demo, offices: Vec::new() };
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let progress = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });

    // 1. Every office comes up; the demo prints the URLs and pids.
    let mut seen = Vec::new();
    let deadline = started + START_BOUND;
    let (mut dashboard, mut data_dir) = (None, None);
    let mut apis: HashMap<NodeId, SocketAddr> = HashMap::new();
    loop {
        let line = next_line(&lines, deadline, &mut seen);
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["data:", dir, ..] => data_dir = Some(std::path::PathBuf::from(dir)),
            ["dashboard:", url, ..] => dashboard = Some(url.to_string()),
            ["office:", id, url, "pid", pid, ..] => {
                let id = NodeId::parse(id).unwrap();
                let api: SocketAddr = url.trim_start_matches("http://").trim_end_matches('/').parse().unwrap();
                assert!(api.ip().is_loopback(), "{line}");
                let pid: u32 = pid.parse().unwrap();
                let p = ProcessId::of(pid).unwrap_or_else(|| panic!("office {id} (pid {pid}) is not running"));
                cleanup.offices.push(p);
                apis.insert(id, api);
            }
            ["all", n, "offices", "up;", ..] => {
                assert_eq!(n.parse::<usize>().unwrap(), DEMO_OFFICES.len());
                break;
            }
            _ => {}
        }
    }
    assert_eq!(apis.len(), DEMO_OFFICES.len(), "{seen:?}");
    let root = NodeId::parse("gz").unwrap();
    assert_eq!(dashboard.as_deref(), Some(format!("http://{}/", apis[&root]).as_str()));
    let data_dir = data_dir.expect("the demo says where its data is");
    assert!(data_dir.is_dir());
    // The offices are exactly the demo's children.
    let mut children = process::children_of(demo_pid);
    children.sort_unstable();
    let mut printed: Vec<u32> = cleanup.offices.iter().map(|p| p.pid).collect();
    printed.sort_unstable();
    assert_eq!(children, printed);

    // 2. The workload runs, then says what the offices acknowledged.
    let deadline = Instant::now() + Duration::from_secs(WORKLOAD_S + 15);
    let (workers, placements) = loop {
        let line = next_line(&lines, deadline, &mut seen);
        if let Some(rest) = line.strip_prefix("workload stopped after ") {
            let num = |label: &str| -> i64 {
                let words: Vec<&str> = rest.split([' ', ',', ';']).collect();
                let i = words.iter().position(|w| *w == label).unwrap_or_else(|| panic!("{label} in {line}"));
                words[i - 1].parse().unwrap()
            };
            assert!(num("postings") > 0, "{line}");
            break (num("workers"), num("placements"));
        }
    };
    assert!(workers > 0, "no worker was acknowledged: {seen:?}");

    // 3. The province converges on the offices' own figures.
    let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(2)).build().unwrap();
    let deadline = Instant::now() + CONVERGE_BOUND;
    let mut last = String::new();
    loop {
        let province = summary(&client, apis[&root]).await;
        let mut sum = Totals::default();
        let mut reported = 0;
        for api in apis.values() {
            if let Some(own) = summary(&client, *api).await.and_then(|s| s.own()) {
                sum.add(&own, 1);
                reported += 1;
            }
        }
        if let Some(p) = &province {
            let t = p.subtree;
            let nonzero = t.workers_registered > 0 && t.postings_open + t.positions_filled > 0;
            if nonzero
                && reported == apis.len()
                && p.reporting.offices == apis.len()
                && t == sum
                && t.workers_registered == workers
                && t.placements == placements
            {
                println!("converged after the workload: {t:?}");
                break;
            }
            last = format!(
                "province {t:?} ({} reporting), sum of own rows {sum:?} ({reported} answered), acknowledged {workers} \
                 workers and {placements} placements",
                p.reporting.offices
            );
        }
        assert!(Instant::now() < deadline, "the province did not converge: {last}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // 4. SIGINT: exit 0, no office left, the temporary folder removed.
    process::signal("INT", &[demo_pid]).unwrap();
    let deadline = Instant::now() + STOP_BOUND;
    let status = loop {
        if let Some(s) = cleanup.demo.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the demo did not stop within {STOP_BOUND:?} of SIGINT");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    while let Ok(l) = lines.recv_timeout(Duration::from_secs(5)) {
        seen.push(l);
    }
    let progress = progress.join().unwrap();
    assert!(status.success(), "demo exited with {status}; output:\n{}\n{progress}", seen.join("\n"));
    for p in &cleanup.offices {
        assert!(!p.is_running(), "office process {} is still running", p.pid);
        assert!(!std::path::Path::new(&format!("/proc/{}", p.pid)).exists() || ProcessId::of(p.pid) != Some(*p));
    }
    assert!(seen.iter().any(|l| l.starts_with("Ctrl-C: stopping")), "{seen:?}");
    assert!(seen.iter().any(|l| l == &format!("removed {}", data_dir.display())), "{seen:?}");
    assert!(!data_dir.exists(), "{} is still there", data_dir.display());
    assert!(progress.contains("offices up 9/9"), "{progress}");
    println!("demo test took {:?}", started.elapsed());
}
