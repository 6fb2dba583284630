//! Deploying the province, and the demo.
//!
//! - [`address_plan`]: where each office listens (the TSV next to the tree).
//! - [`render`]: `jobmesh deploy render`, one self-contained folder per
//!   office (config, its part of the tree, CA certificate, its own
//!   certificate and key) and an index.
//! - [`rehearsal`]: `jobmesh deploy up` / `down`, start and stop any
//!   rendered subset of offices on one machine.
//! - [`demo`]: `jobmesh demo`, a small mesh on loopback fed by the
//!   synthetic [`workload`].
//! - [`process`]: spawning office processes and signalling them by pid.
//!
//! Architecture invariants: rendering runs in this process (no `jobmesh ca`
//! per office) and never deletes anything; `up`, `down` and the demo signal
//! only processes they started, identified by pid *and* start time; the demo
//! and rehearsals only ever address 127.0.0.1. The errors of [`render`] and
//! [`address_plan`] are typed (they are used by tests and by the demo); the
//! entry points of the subcommands use `anyhow`, being the command line.

pub mod address_plan;
pub mod demo;
pub mod process;
pub mod rehearsal;
pub mod render;
pub mod workload;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use jobmesh_protocol::topology::Topology;
use jobmesh_protocol::NodeId;

use address_plan::{AddressPlan, LOOPBACK_QUIC_BASE};

/// The province's real tree (`deploy/topology/guizhou-offices.tsv`), built
/// in so that `jobmesh demo --topology guizhou` works from any folder.
pub const GUIZHOU_TSV: &str = include_str!("../../../deploy/topology/guizhou-offices.tsv");

/// `jobmesh deploy …`
#[derive(Debug, Subcommand)]
pub enum DeployCommand {
    /// Write every office's folder (node.toml, certificate and key signed by
    /// the province CA, created if absent) and an index. Rendering again
    /// keeps existing keys and certificates.
    Render(RenderArgs),
    /// Start rendered offices on this machine (loopback renders only), for
    /// rehearsals; their pids go to DIR/rehearsal.pids.
    Up(UpArgs),
    /// Stop the offices that `deploy up` started from DIR.
    Down(DownArgs),
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// The tree (TSV: id, parent, tier, name, name_zh), e.g.
    /// deploy/topology/guizhou-offices.tsv.
    #[arg(long, value_name = "FILE")]
    pub topology: PathBuf,
    /// The address plan (TSV: id, host, quic_port, api_port). Default: every
    /// office on 127.0.0.1, ports from --port-base, for rehearsals.
    #[arg(long, value_name = "FILE")]
    pub addresses: Option<PathBuf>,
    /// First QUIC port of the default loopback plan (API ports are 1000
    /// higher).
    #[arg(long, value_name = "PORT", default_value_t = LOOPBACK_QUIC_BASE, conflicts_with = "addresses")]
    pub port_base: u16,
    /// The output folder.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The CA folder (ca.pem, ca.key); created with a new CA if absent.
    /// Default: OUT/pki.
    #[arg(long, value_name = "DIR")]
    pub ca: Option<PathBuf>,
    /// Validity of newly issued office certificates, in days.
    #[arg(long, value_name = "N", default_value_t = crate::pki::DEFAULT_NODE_DAYS)]
    pub days: u32,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// The rendered folder (OUT of `deploy render`).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Start only these offices (repeat the flag or list them).
    #[arg(long, value_name = "ID", num_args = 1.., value_parser = parse_node_id)]
    pub only: Vec<NodeId>,
    /// Start only this office and everything below it.
    #[arg(long, value_name = "ID", value_parser = parse_node_id)]
    pub subtree: Option<NodeId>,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    /// The rendered folder that `deploy up` started offices from.
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
}

fn parse_node_id(s: &str) -> Result<NodeId, String> {
    NodeId::parse(s).map_err(|e| e.to_string())
}

/// Run a `deploy` subcommand.
pub fn execute(cmd: DeployCommand) -> anyhow::Result<()> {
    match cmd {
        DeployCommand::Render(args) => render_command(args),
        DeployCommand::Up(args) => {
            block_on(rehearsal::up(&rehearsal::UpOptions { dir: args.dir, only: args.only, subtree: args.subtree }))
        }
        DeployCommand::Down(args) => block_on(rehearsal::down(&args.dir)),
    }
}

/// Run `jobmesh demo`.
pub fn execute_demo(args: demo::DemoArgs) -> anyhow::Result<()> {
    block_on(demo::run(args))
}

fn block_on(f: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    rt.block_on(f)
}

fn render_command(args: RenderArgs) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let text = std::fs::read_to_string(&args.topology)
        .with_context(|| format!("cannot read the topology {}", args.topology.display()))?;
    let topo = Topology::parse_tsv(&text).with_context(|| format!("{}", args.topology.display()))?;
    let plan = match &args.addresses {
        Some(file) => {
            let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
            AddressPlan::parse_tsv(&text).with_context(|| format!("{}", file.display()))?
        }
        None => AddressPlan::loopback(&topo, args.port_base)?,
    };
    let mut opts = render::RenderOptions::new(&args.out);
    opts.ca_dir = args.ca;
    opts.days = args.days;
    let r = render::render(&topo, &plan, &opts)?;
    let ca = opts.ca_dir();
    if r.ca_created {
        println!("created a new CA in {} (keep ca.key offline once every office has its certificate)", ca.display());
    }
    println!(
        "rendered {} offices into {} in {:.1} s: {} new certificates, {} kept",
        r.entries.len(),
        r.out.join(render::OFFICES_DIR).display(),
        started.elapsed().as_secs_f64(),
        r.issued.len(),
        r.kept
    );
    println!("index: {}", r.index_file.display());
    for o in &r.orphans {
        println!("not in the topology any more (left as is): {}", o.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    #[test]
    fn the_deploy_and_demo_command_lines_parse() {
        let c = Cli::try_parse_from(["jobmesh", "deploy", "render", "--topology", "t.tsv", "--out", "o"]).unwrap();
        match c.command {
            Command::Deploy(DeployCommand::Render(a)) => {
                assert_eq!((a.port_base, a.ca, a.addresses), (LOOPBACK_QUIC_BASE, None, None));
            }
            other => panic!("{other:?}"),
        }
        let e = Cli::try_parse_from([
            "jobmesh",
            "deploy",
            "render",
            "--topology",
            "t",
            "--out",
            "o",
            "--addresses",
            "a",
            "--port-base",
            "1",
        ]);
        assert!(e.is_err(), "a port base means nothing with an address plan");
        let c =
            Cli::try_parse_from(["jobmesh", "deploy", "up", "--dir", "d", "--only", "gz", "gz/a", "--subtree", "gz/b"])
                .unwrap();
        match c.command {
            Command::Deploy(DeployCommand::Up(a)) => {
                assert_eq!(a.only.len(), 2);
                assert_eq!(a.subtree.unwrap().as_str(), "gz/b");
            }
            other => panic!("{other:?}"),
        }
        assert!(Cli::try_parse_from(["jobmesh", "deploy", "up", "--dir", "d", "--only", "gz/A"]).is_err());
        assert!(matches!(
            Cli::try_parse_from(["jobmesh", "deploy", "down", "--dir", "d"]).unwrap().command,
            Command::Deploy(DeployCommand::Down(_))
        ));
        let c = Cli::try_parse_from(["jobmesh", "demo"]).unwrap();
        match c.command {
            Command::Demo(a) => assert_eq!((a.topology.as_str(), a.rate, a.dir), ("demo", 4.0, None)),
            other => panic!("{other:?}"),
        }
        let c = Cli::try_parse_from([
            "jobmesh",
            "demo",
            "--topology",
            "guizhou",
            "--max-offices",
            "40",
            "--seed",
            "7",
            "--rate",
            "2.5",
            "--duration-s",
            "20",
            "--workload-s",
            "10",
            "--dir",
            "x",
        ])
        .unwrap();
        match c.command {
            Command::Demo(a) => {
                assert_eq!(
                    (a.max_offices, a.seed, a.duration_s, a.workload_s),
                    (Some(40), Some(7), Some(20), Some(10))
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
