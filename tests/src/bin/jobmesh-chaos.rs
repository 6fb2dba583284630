//! `jobmesh-chaos`: prove on your own machine that a jobmesh mesh survives
//! what rural links and office machines do to it.
//!
//! ```text
//! jobmesh-chaos [run] --topology 1+2+4|guizhou:N|ID,ID,… --duration-s 120 [--seed S] [--netns]
//!                     [--rate W] [--heavy] [--converge-limit-s L]
//! jobmesh-chaos scenario NAME [--seed S] [--netns] [--heavy] [--topology T] [--duration-s D]
//! jobmesh-chaos list
//! ```
//!
//! `run` applies a randomized schedule of link faults (cut, flap, loss,
//! duplication, reordering, delay, long-haul spells) and process faults
//! (kill -9 and restart, SIGSTOP for a long time, graceful restarts of the
//! root) while writing, then heals everything and waits for convergence;
//! it prints the report (faults applied, writes acknowledged, lost,
//! duplicated, convergence time) and exits 0 only if nothing was lost or
//! duplicated and the mesh converged. `scenario` runs one of the test
//! suite's scenarios. The seed is printed; `--seed` (or `JOBMESH_SEED`)
//! replays it. `--netns` runs every node in its own network namespace
//! (root and iproute2).
//!
//! Internal subcommands, run inside namespaces by the harness: `agent`
//! (API bridge and fault proxy), `udp-echo` and `udp-probe` (to verify that
//! a cut link carries nothing).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use jobmesh_tests::chaos::scenarios::{self, Opts, RandomOpts};
use jobmesh_tests::chaos::Layer;
use jobmesh_tests::netns;
use jobmesh_tests::proxy::{serve_control, Proxy};

const USAGE: &str = "usage:
  jobmesh-chaos [run] --topology 1+2+4|guizhou:N|ID,ID,... --duration-s SECS [--seed S] [--netns]
                      [--rate WRITES_PER_S] [--heavy] [--converge-limit-s SECS]
  jobmesh-chaos scenario NAME [--seed S] [--netns] [--heavy] [--topology T] [--duration-s SECS]
  jobmesh-chaos list
scenarios: city-cut flapping-link lossy-links kill9-random province-restart long-haul-station county-backlog
environment: JOBMESH_SEED (replay), JOBMESH_HEAVY=1 (long forms), JOBMESH_BIN (the jobmesh binary;
             built with cargo when unset), JOBMESH_KEEP=1 (keep the temp folder)";

/// `--key value` and `--flag` arguments.
struct Args {
    positional: Vec<String>,
    named: BTreeMap<String, String>,
    flags: Vec<String>,
}

const FLAGS: [&str; 3] = ["--netns", "--heavy", "--help"];

fn parse(args: &[String]) -> Result<Args, String> {
    let mut a = Args { positional: Vec::new(), named: BTreeMap::new(), flags: Vec::new() };
    let mut i = 0;
    while i < args.len() {
        let s = &args[i];
        if FLAGS.contains(&s.as_str()) || s == "-h" {
            a.flags.push(if s == "-h" { "--help".into() } else { s.clone() });
        } else if let Some((k, v)) = s.split_once('=').filter(|_| s.starts_with("--")) {
            a.named.insert(k.to_string(), v.to_string());
        } else if s.starts_with("--") {
            let v = args.get(i + 1).ok_or_else(|| format!("{s} needs a value"))?;
            a.named.insert(s.clone(), v.clone());
            i += 1;
        } else {
            a.positional.push(s.clone());
        }
        i += 1;
    }
    Ok(a)
}

impl Args {
    fn get<T: std::str::FromStr>(&self, k: &str) -> Result<Option<T>, String> {
        match self.named.get(k) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| format!("{k} {v:?}: not a valid value")),
        }
    }

    fn flag(&self, f: &str) -> bool {
        self.flags.iter().any(|x| x == f)
    }

    fn reject_unknown(&self, known: &[&str]) -> Result<(), String> {
        match self.named.keys().find(|k| !known.contains(&k.as_str())) {
            Some(k) => Err(format!("unknown option {k}")),
            None => Ok(()),
        }
    }
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse(&argv) {
        Ok(a) => a,
        Err(e) => return usage_error(&e),
    };
    if args.flag("--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let cmd = args.positional.first().cloned().unwrap_or_else(|| "run".into());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("jobmesh-chaos: tokio runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match cmd.as_str() {
        "run" => rt.block_on(cmd_run(&args)),
        "scenario" => rt.block_on(cmd_scenario(&args)),
        "list" => {
            println!("{}", scenarios::SCENARIOS.join("\n"));
            Ok(true)
        }
        "agent" => rt.block_on(cmd_agent(&args)).map(|_| true),
        "udp-echo" => rt.block_on(cmd_udp_echo(&args)).map(|_| true),
        "udp-probe" => rt.block_on(cmd_udp_probe(&args)),
        other => return usage_error(&format!("unknown command {other:?}")),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => usage_error(&e),
    }
}

fn usage_error(e: &str) -> ExitCode {
    eprintln!("jobmesh-chaos: {e}\n{USAGE}");
    ExitCode::from(2)
}

fn opts(args: &Args, name: &str) -> Result<Opts, String> {
    let layer = if args.flag("--netns") {
        if let Err(why) = netns::available() {
            return Err(format!("--netns needs root and iproute2 ({why})"));
        }
        Layer::Netns
    } else {
        Layer::Loopback
    };
    if let Some(s) = args.named.get("--seed") {
        std::env::set_var("JOBMESH_SEED", s);
    }
    if args.flag("--heavy") {
        std::env::set_var("JOBMESH_HEAVY", "1");
    }
    let mut o = Opts::from_env(name, layer);
    o.chaos_bin = Some(std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?);
    o.topology = args.named.get("--topology").cloned();
    o.duration = args.get::<f64>("--duration-s")?.map(Duration::from_secs_f64);
    o.rate = args.get::<f64>("--rate")?;
    o.converge_limit = args.get::<f64>("--converge-limit-s")?.map(Duration::from_secs_f64);
    Ok(o)
}

async fn cmd_run(args: &Args) -> Result<bool, String> {
    args.reject_unknown(&["--topology", "--duration-s", "--seed", "--rate", "--converge-limit-s"])?;
    let o = opts(args, "jobmesh-chaos run")?;
    let ro = RandomOpts {
        topology: o.topology.clone().unwrap_or_else(|| "1+2+4".into()),
        duration: o.duration.unwrap_or(Duration::from_secs(120)),
        rate: o.rate.unwrap_or(30.0),
    };
    jobmesh_tests::chaos::topology(&ro.topology)?;
    interruptible(async { scenarios::random(&o, &ro).await.ok() }).await
}

/// Run until done or Ctrl-C; on Ctrl-C the run is dropped, which kills its
/// nodes, removes its namespaces and keeps its folder (logs, data).
async fn interruptible(run: impl std::future::Future<Output = bool>) -> Result<bool, String> {
    tokio::select! {
        ok = run => Ok(ok),
        _ = tokio::signal::ctrl_c() => {
            eprintln!("jobmesh-chaos: interrupted; stopping the nodes");
            Ok(false)
        }
    }
}

async fn cmd_scenario(args: &Args) -> Result<bool, String> {
    args.reject_unknown(&["--topology", "--duration-s", "--seed", "--rate", "--converge-limit-s"])?;
    let name = args.positional.get(1).ok_or("scenario: which one? (jobmesh-chaos list)")?;
    let o = opts(args, &format!("jobmesh-chaos scenario {name}"))?;
    if !scenarios::SCENARIOS.contains(&name.as_str()) {
        return Err(format!("unknown scenario {name:?}; known: {}", scenarios::SCENARIOS.join(", ")));
    }
    interruptible(async { scenarios::by_name(name, &o).await.map(|r| r.ok()).unwrap_or(false) }).await
}

/// Inside a node's namespace: bridge `--api-unix` to the node's API at
/// `--api-to`, and (for a child) run the fault proxy from `--proxy-listen`
/// to the parent at `--proxy-to`, controlled on `--control`. Exits when
/// the `--owner` process is gone.
async fn cmd_agent(args: &Args) -> Result<(), String> {
    let owner: u32 = args.get("--owner")?.ok_or("agent: --owner PID")?;
    let api_unix: PathBuf = args.get("--api-unix")?.ok_or("agent: --api-unix PATH")?;
    let api_to: SocketAddr = args.get("--api-to")?.ok_or("agent: --api-to ADDR")?;
    let mut keep = Vec::new();
    if let Some(listen) = args.get::<SocketAddr>("--proxy-listen")? {
        let to: SocketAddr = args.get("--proxy-to")?.ok_or("agent: --proxy-to ADDR")?;
        let control: PathBuf = args.get("--control")?.ok_or("agent: --control PATH")?;
        let seed: u64 = args.get("--seed")?.unwrap_or(0);
        let proxy = Proxy::start(listen, to, seed).await.map_err(|e| format!("proxy on {listen}: {e}"))?;
        let handle = proxy.handle();
        keep.push(proxy);
        tokio::spawn(async move {
            if let Err(e) = serve_control(&control, handle).await {
                eprintln!("agent: control socket {}: {e}", control.display());
            }
        });
        println!("agent: proxy {listen} -> {to}");
    }
    let _ = std::fs::remove_file(&api_unix);
    let l = tokio::net::UnixListener::bind(&api_unix).map_err(|e| format!("{}: {e}", api_unix.display()))?;
    tokio::spawn(async move {
        loop {
            let Ok((mut unix, _)) = l.accept().await else { continue };
            tokio::spawn(async move {
                if let Ok(mut tcp) = tokio::net::TcpStream::connect(api_to).await {
                    let _ = tokio::io::copy_bidirectional(&mut unix, &mut tcp).await;
                }
            });
        }
    });
    println!("agent: api {} -> {api_to}", api_unix.display());
    let owner_alive = PathBuf::from(format!("/proc/{owner}"));
    while owner_alive.exists() {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    drop(keep);
    Ok(())
}

/// Echo UDP datagrams on `--bind` until killed.
async fn cmd_udp_echo(args: &Args) -> Result<(), String> {
    let bind: SocketAddr = args.get("--bind")?.ok_or("udp-echo: --bind ADDR")?;
    let s = tokio::net::UdpSocket::bind(bind).await.map_err(|e| format!("bind {bind}: {e}"))?;
    println!("udp-echo: listening on {bind}");
    let mut b = vec![0u8; 2048];
    loop {
        if let Ok((n, from)) = s.recv_from(&mut b).await {
            let _ = s.send_to(&b[..n], from).await;
        }
    }
}

/// Send `--count` datagrams to `--to`; success iff at least one echo comes
/// back within `--timeout-ms`. Prints what happened.
async fn cmd_udp_probe(args: &Args) -> Result<bool, String> {
    let to: SocketAddr = args.get("--to")?.ok_or("udp-probe: --to ADDR")?;
    let count: u32 = args.get("--count")?.unwrap_or(5);
    let timeout = Duration::from_millis(args.get("--timeout-ms")?.unwrap_or(500));
    let s = tokio::net::UdpSocket::bind("0.0.0.0:0").await.map_err(|e| format!("bind: {e}"))?;
    let mut send_errors = 0;
    for i in 0..count {
        if s.send_to(&i.to_be_bytes(), to).await.is_err() {
            send_errors += 1;
        }
    }
    let mut echoes = 0;
    let mut b = [0u8; 64];
    while let Ok(Ok(_)) = tokio::time::timeout(timeout, s.recv_from(&mut b)).await {
        echoes += 1;
    }
    println!("udp-probe: {count} sent to {to}, {send_errors} send errors, {echoes} echoes");
    Ok(echoes > 0)
}
