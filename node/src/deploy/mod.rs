//! Deploying the province: rendering every office's folder.
//!
//! - [`address_plan`]: where each office listens (the TSV next to the tree).
//! - [`render`]: `jobmesh deploy render`, one self-contained folder per
//!   office (config, its part of the tree, CA certificate, its own
//!   certificate and key) and an index.
//!
//! Starting and stopping rendered offices (`deploy up` / `down`) and the
//! demo live in the `jobmesh-demo` crate: process supervision is not part of
//! an office's node.
//!
//! Architecture invariants: rendering runs in this process (no `jobmesh ca`
//! per office) and never deletes anything. The errors of [`render`] and
//! [`address_plan`] are typed (they are used by tests and by the demo); the
//! entry point of the subcommand uses `anyhow`, being the command line.

pub mod address_plan;
pub mod render;

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use jobmesh_protocol::topology::Topology;

use address_plan::{AddressPlan, LOOPBACK_QUIC_BASE};

/// The province's real tree (`deploy/topology/guizhou-offices.tsv`), built
/// in so that `jobmesh demo --topology guizhou` works from any folder.
pub const GUIZHOU_TSV: &str = include_str!("../../../deploy/topology/guizhou-offices.tsv");

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
    /// Give every county and station the province as its `[[fallback]]`
    /// (reached directly while its parent is down). Off by default.
    #[arg(long)]
    pub failover: bool,
}

/// Run `jobmesh deploy render`.
pub fn render_command(args: RenderArgs) -> anyhow::Result<()> {
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
    opts.failover = args.failover;
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
