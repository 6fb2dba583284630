//! `jobmesh bench [--quick]`: the replication mesh measured through its real
//! code paths (engine, sled store, node state and flusher, QUIC links with
//! mutual TLS, HTTP API), every figure beside a ceiling measured in the same
//! invocation.
//!
//! Cases, in order (each module's docs say exactly what is timed):
//!
//! 1. [`ceilings`]: a raw QUIC stream and raw sled batches with the same
//!    300-byte postings, and the latency floors (one-way QUIC, one durable
//!    write);
//! 2. [`catchup::one_hop`]: durable catch-up over one link;
//! 3. [`ingest`]: 16 HTTP clients posting at a county, and the rate at
//!    which the postings reach the province;
//! 4. [`fanout`]: fan-out latency across three hops of real processes;
//! 5. [`catchup::deep`]: a city's catch-up with the province;
//! 6. [`queries`]: the province's `/v1/summary` and `/v1/postings`;
//! 7. [`footprint`]: memory of an idle station and of a province holding a
//!    million records, bytes on disk per record;
//! 8. [`sim`]: the simulator's speed and its fan-out to the 2,801 offices
//!    of the generated province;
//! 9. [`pgsink`]: the PostgreSQL sink's catch-up beside a COPY of the same
//!    rows, and its lag during live ingest (not run, with why, without
//!    PostgreSQL's server binaries).
//!
//! Each case does a warm-up, then `runs` runs (5; `--quick`: 1, with smaller
//! sizes, for CI). Output: progress on stderr; one JSON line per case and
//! run on stdout and in the `--json` file; the table at the end. Nothing
//! here asserts a speed: the exit status says only whether every case ran.
//!
//! JSON lines: `{"bench":"jobmesh","case":…,"run":…, …}` then, for
//! throughputs, `"records"` and `"rec_per_s"`; for latencies, `"samples"`,
//! `"p50_us"` and `"p99_us"`; for footprints, `"rss_bytes"` (and
//! `"records"`, `"disk_bytes"`); a case may add fields after those (the
//! ceiling measured beside the run, CPU per record, …). Cases:
//! `ceiling_quic_stream`, `ceiling_quic_oneway`, `ceiling_sled_batch512`,
//! `ceiling_sled_write_flush`, `catchup_1hop`, `ingest`, `fanout_3hops`,
//! `catchup_deep`, `query_summary`, `query_summary_depth1`,
//! `query_postings`, `footprint_idle_station` (`run` is the station),
//! `footprint_province`, `sim_events`, `sim_fanout`, `pgsink_catchup`,
//! `pgsink_ingest_lag` (or `pgsink` with `not_run`).
//!
//! The machine is shared: the table ends with the load average at the
//! start and end of each case, and the catch-up and ingest cases measure
//! their ceiling again right before each run and report the median of the
//! per-run ratios.
//!
//! Nodes run either in this process through `runtime::run` (cases 2, 3, 5,
//! 6: loopback sockets, their own stores) or as `jobmesh run` processes of
//! this binary (cases 4, 7). Everything lives in one scratch folder that is
//! removed at the end; processes are killed by pid when their [`nodes::Fleet`]
//! is dropped.

mod catchup;
mod ceilings;
mod fanout;
mod fixture;
mod footprint;
mod http;
mod ingest;
mod nodes;
mod pgsink;
mod queries;
mod report;
mod sim;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;

use ceilings::Ceilings;
use fixture::Scratch;
use report::Report;

/// `jobmesh bench`
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Smaller sizes and one run per case after the warm-up (what CI runs).
    #[arg(long)]
    pub quick: bool,
    /// Where to write the JSON lines (they are printed on stdout too).
    #[arg(long, value_name = "FILE", default_value = "target/bench/bench.jsonl")]
    pub json: PathBuf,
    /// Run only these cases (1-9), e.g. `--only 2,5`.
    #[arg(long, value_name = "N", value_delimiter = ',', value_parser = clap::value_parser!(u8).range(1..=9))]
    pub only: Vec<u8>,
    /// Runs per case after the warm-up (default 5, or 1 with --quick).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=100))]
    pub runs: Option<u16>,
    /// Folder for the bench's stores, configs and logs (a fresh subfolder,
    /// removed at the end). Default: the system's temporary folder.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Internal: idle for a minute (the baseline of resident memory).
    #[arg(long, hide = true)]
    pub idle_probe: bool,
    /// Internal (tests): write `--fill-records` postings for the province
    /// into a fresh store at DIR as `--fill-node`, through the engine's
    /// local write path, and exit (a backlog made without HTTP).
    #[arg(long, hide = true, value_name = "DIR")]
    pub fill_store: Option<PathBuf>,
    #[arg(long, hide = true, value_name = "ID", default_value = "gz")]
    pub fill_node: String,
    #[arg(long, hide = true, value_name = "N", default_value_t = 100_000)]
    pub fill_records: usize,
}

/// Sizes of one invocation.
#[derive(Debug, Clone)]
pub struct Plan {
    pub quick: bool,
    pub runs: usize,
    pub quinn_records: usize,
    pub sled_records: usize,
    pub latency_samples: usize,
    pub catchup_records: usize,
    pub ingest_records: usize,
    pub ingest_clients: usize,
    pub fanout: Vec<usize>,
    pub fanout_samples: usize,
    pub deep_records: usize,
    pub deep_counties: usize,
    pub query_postings: usize,
    pub query_samples: usize,
    pub footprint_records: usize,
    pub sim_chaos_ms: u64,
    pub sim_fanout_runs: usize,
}

impl Plan {
    pub fn new(quick: bool, runs: Option<u16>) -> Plan {
        let runs = runs.map(usize::from).unwrap_or(if quick { 1 } else { 5 });
        if quick {
            Plan {
                quick,
                runs,
                quinn_records: 200_000,
                sled_records: 20_480,
                latency_samples: 300,
                catchup_records: 20_000,
                ingest_records: 5_000,
                ingest_clients: 16,
                fanout: vec![1, 1, 1],
                fanout_samples: 50,
                deep_records: 10_000,
                deep_counties: 3,
                query_postings: 10_000,
                query_samples: 100,
                footprint_records: 100_000,
                sim_chaos_ms: 6_000,
                sim_fanout_runs: 1,
            }
        } else {
            Plan {
                quick,
                runs,
                quinn_records: 2_000_000,
                sled_records: 204_800,
                latency_samples: 2_000,
                catchup_records: 200_000,
                ingest_records: 50_000,
                ingest_clients: 16,
                fanout: vec![3, 3, 3],
                fanout_samples: 1_000,
                deep_records: 100_000,
                deep_counties: 3,
                query_postings: 100_000,
                query_samples: 500,
                footprint_records: 1_000_000,
                sim_chaos_ms: 12_000,
                sim_fanout_runs: runs.min(3),
            }
        }
    }
}

/// Everything a case needs.
pub struct Bench {
    pub plan: Plan,
    pub rt: tokio::runtime::Runtime,
    pub scratch: Scratch,
    pub report: Report,
    pub ceilings: Ceilings,
    /// This binary, started as `jobmesh run` for the process cases.
    pub exe: PathBuf,
    /// Median RSS of the idle stations (case 7), for the province's row.
    pub idle_station_rss: Option<f64>,
    /// Cases asked for (`--only`); empty: all.
    only: Vec<u8>,
    /// Load average at the start and end of each case, for the notes.
    loads: Vec<String>,
    started: Instant,
}

impl Bench {
    pub fn selected(&self, case: u8) -> bool {
        self.only.is_empty() || self.only.contains(&case)
    }

    pub fn progress(&self, msg: &str) {
        eprintln!("[bench {:>6.1} s] {msg}", self.started.elapsed().as_secs_f64());
    }
}

/// The 1-minute load average, as `/proc/loadavg` says.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// Run `jobmesh bench`.
pub fn execute(args: BenchArgs) -> anyhow::Result<()> {
    if args.idle_probe {
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        rt.block_on(async { tokio::time::sleep(Duration::from_secs(60)).await });
        return Ok(());
    }
    if let Some(dir) = &args.fill_store {
        let id = jobmesh_protocol::NodeId::parse(&args.fill_node)
            .map_err(|e| anyhow::anyhow!("--fill-node {}: {e}", args.fill_node))?;
        let mut filler = fixture::Filler::open(dir, &id)?;
        let mut root = id.clone();
        while let Some(p) = root.parent() {
            root = p;
        }
        let (first, last) = filler.local_postings(args.fill_records, Some(&root))?;
        filler.finish()?;
        println!("{first} {last}");
        return Ok(());
    }
    let plan = Plan::new(args.quick, args.runs);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the runtime")?;
    let base = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let scratch = Scratch::new(&base, &format!("jobmesh-bench-{}", std::process::id()))?;
    let exe = std::env::current_exe().context("cannot find this binary")?;
    let mut b = Bench {
        plan,
        rt,
        scratch,
        report: Report::new(&args.json)?,
        ceilings: Ceilings::default(),
        exe,
        idle_station_rss: None,
        only: args.only.clone(),
        loads: Vec::new(),
        started: Instant::now(),
    };
    b.progress(&format!(
        "{} run: {} run(s) per case after a warm-up; {} CPUs; scratch {}; JSON lines to {}",
        if b.plan.quick { "quick" } else { "full" },
        b.plan.runs,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        b.scratch.path().display(),
        args.json.display()
    ));
    type Case = fn(&mut Bench) -> anyhow::Result<()>;
    let cases: [(u8, &str, Case); 9] = [
        (1, "ceilings", ceilings::run),
        (2, "durable catch-up", catchup::one_hop),
        (3, "live ingest", ingest::run),
        (4, "fan-out (and 7: idle station)", |b| {
            let (f, m) = (b.selected(4), b.selected(7));
            fanout::run(b, f, m)
        }),
        (5, "deep catch-up", catchup::deep),
        (6, "root queries", queries::run),
        (7, "footprint", footprint::run),
        (8, "simulator", sim::run),
        (9, "PostgreSQL sink", pgsink::run),
    ];
    for (n, name, case) in cases {
        // The fan-out mesh also gives case 7 its idle stations.
        let wanted = b.selected(n) || (n == 4 && b.selected(7));
        if !wanted {
            continue;
        }
        let t = Instant::now();
        let load = load_average();
        b.progress(&format!("case {n}: {name}"));
        if let Err(e) = case(&mut b) {
            b.progress(&format!("case {n} ({name}) failed: {e:#}"));
            b.report.failures.push((format!("{n} {name}"), format!("{e:#}")));
        } else {
            b.progress(&format!("case {n} done in {:.1} s", t.elapsed().as_secs_f64()));
        }
        b.loads.push(format!("{n}: {load} → {}", load_average()));
    }
    b.report.rows.sort_by_key(|r| r.case.split(' ').next().and_then(|n| n.parse::<u8>().ok()).unwrap_or(0));
    println!();
    print!("{}", b.report.table());
    for n in &b.report.notes {
        println!("- {n}");
    }
    println!(
        "- load average (1 min) of this shared {}-CPU machine at the start → end of each case: {}",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        b.loads.join("; ")
    );
    b.progress(&format!("finished in {:.0} s", b.started.elapsed().as_secs_f64()));
    let failures = std::mem::take(&mut b.report.failures);
    let Bench { rt, scratch, .. } = b;
    rt.shutdown_timeout(Duration::from_secs(10));
    drop(scratch);
    if !failures.is_empty() {
        let list: Vec<String> = failures.iter().map(|(c, e)| format!("case {c}: {e}")).collect();
        bail!("{} case(s) failed:\n{}", failures.len(), list.join("\n"));
    }
    Ok(())
}
