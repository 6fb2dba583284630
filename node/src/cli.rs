//! The node's subcommands of the `jobmesh` command line (clap). Each is one
//! [`Command`] variant and one arm in [`execute`]; its arguments are a struct
//! next to it. The binary (package `jobmesh`) flattens [`Command`] into its
//! own, beside the deploy, demo and bench tools, and adds the global
//! `--log-format`. `anyhow` is used here and in the binary
//! only: this is where errors become messages for a person.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use jobmesh_protocol::NodeId;

use crate::config::Config;
use crate::pki;
use crate::runtime::{self, BoundSockets};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one office's node until SIGTERM or Ctrl-C.
    Run(RunArgs),
    /// Manage the province's private certificate authority.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Restore an office from a backup (`jobmesh backup`) into an empty
    /// data directory; at its next start it gets its later records back
    /// from its parent.
    Restore(crate::ops::backup::RestoreArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The node's config file (TOML); relative paths in it are relative to
    /// its folder.
    #[arg(long, short, value_name = "FILE")]
    pub config: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Create a new CA: writes ca.pem and ca.key into the folder (created if
    /// needed). Prints both paths.
    Init(CaInitArgs),
    /// Issue an office's certificate and key, named after its id with '/' as
    /// '_' (gz/guiyang -> gz_guiyang.pem, gz_guiyang.key). Prints both paths.
    Issue(CaIssueArgs),
}

#[derive(Debug, Args)]
pub struct CaInitArgs {
    /// The PKI folder.
    #[arg(long, value_name = "PKI")]
    pub dir: PathBuf,
    /// Validity of the CA certificate, in days.
    #[arg(long, value_name = "N", default_value_t = pki::DEFAULT_CA_DAYS)]
    pub days: u32,
    /// Overwrite existing files.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct CaIssueArgs {
    /// The PKI folder holding ca.pem and ca.key; the new files go there too.
    #[arg(long, value_name = "PKI")]
    pub dir: PathBuf,
    /// The office's node id, e.g. gz/guiyang/guanshanhu.
    #[arg(long, value_name = "ID", value_parser = parse_node_id)]
    pub node: NodeId,
    /// Validity of the certificate, in days.
    #[arg(long, value_name = "N", default_value_t = pki::DEFAULT_NODE_DAYS)]
    pub days: u32,
    /// Validity in seconds instead of days (for expiry drills and tests).
    #[arg(long, value_name = "S", conflicts_with = "days")]
    pub seconds: Option<u64>,
    /// Overwrite existing files.
    #[arg(long)]
    pub force: bool,
    /// Renew: replace the office's certificate and key with new ones (a new
    /// key and serial). A running node picks them up on its own within
    /// seconds, or at once on SIGHUP.
    #[arg(long)]
    pub renew: bool,
}

fn parse_node_id(s: &str) -> Result<NodeId, String> {
    NodeId::parse(s).map_err(|e| e.to_string())
}

/// Run a parsed command line. The caller has installed logging.
pub fn execute(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run(args) => run(args),
        Command::Ca(CaCommand::Init(args)) => {
            let files = pki::init_ca(&args.dir, args.days, args.force)?;
            print_paths(&files);
            Ok(())
        }
        Command::Ca(CaCommand::Issue(args)) => {
            let ca = pki::load_ca(&args.dir)?;
            let validity = match args.seconds {
                Some(s) => pki::Validity::Seconds(s),
                None => pki::Validity::Days(args.days),
            };
            let old = pki::node_cert_paths(&args.dir, &args.node);
            if args.renew && !old.cert.exists() {
                anyhow::bail!("{}: no certificate to renew; issue one without --renew", old.cert.display());
            }
            let files = pki::issue_node_cert_valid(&ca, &args.dir, &args.node, validity, args.force || args.renew)?;
            print_paths(&files);
            if let Ok(info) = pki::describe_cert_file(&files.cert) {
                eprintln!("{}: {info}", args.node);
            }
            Ok(())
        }
        Command::Restore(args) => crate::ops::backup::restore(args),
    }
}

fn print_paths(files: &pki::CertFiles) {
    println!("{}", files.cert.display());
    println!("{}", files.key.display());
}

/// `jobmesh run`: parse the config, bind the sockets, run until a signal.
fn run(args: RunArgs) -> anyhow::Result<()> {
    let cfg = Config::load(&args.config)?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the runtime")?;
    rt.block_on(async move {
        let sockets = BoundSockets::bind(&cfg).await?;
        let shutdown = shutdown_signal()?;
        runtime::run(cfg, sockets, shutdown).await
    })
}

/// A future that resolves on SIGTERM or Ctrl-C (SIGINT).
pub fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    })
}
