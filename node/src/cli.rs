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
    /// Revoke an office's current certificate (--node) or any certificate
    /// by serial (--serial): adds it to the CA-signed revocation list
    /// (default PKI/revoked.crl) and prints the list's path. Publish it at
    /// the root (config key `revocations`); it travels down the tree.
    Revoke(CaRevokeArgs),
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["node", "serial"])))]
pub struct CaRevokeArgs {
    /// The PKI folder holding ca.pem and ca.key.
    #[arg(long, value_name = "PKI")]
    pub dir: PathBuf,
    /// Revoke the certificate this office has in the folder now.
    #[arg(long, value_name = "ID", value_parser = parse_node_id)]
    pub node: Option<NodeId>,
    /// Revoke the certificate with this serial (hex, as /v1/status shows it).
    #[arg(long, value_name = "HEX")]
    pub serial: Option<String>,
    /// The revocation list to extend (created if absent).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
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
        Command::Ca(CaCommand::Revoke(args)) => revoke(args),
        Command::Restore(args) => crate::ops::backup::restore(args),
    }
}

/// `jobmesh ca revoke`: extend (or start) the signed list and write it
/// whole through a temporary file.
fn revoke(args: CaRevokeArgs) -> anyhow::Result<()> {
    use crate::certs::revocation::{self, RevocationList, Revoked};
    let ca = pki::load_ca(&args.dir)?;
    let out = args.out.unwrap_or_else(|| args.dir.join(pki::REVOCATIONS_FILE));
    let cas: Vec<_> = rustls_pemfile::certs(&mut ca.cert_pem().as_bytes()).collect::<Result<_, _>>()?;
    let mut list = match std::fs::read(&out) {
        Ok(bytes) => revocation::verify(&bytes, &cas)
            .with_context(|| format!("{}: the existing list does not belong to this CA", out.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => RevocationList { issued_at_ms: 0, entries: Vec::new() },
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", out.display())),
    };
    let (serial, node_id) = match (&args.node, &args.serial) {
        (Some(node), _) => {
            let cert = pki::node_cert_paths(&args.dir, node).cert;
            let pem = std::fs::read(&cert).with_context(|| format!("cannot read {}", cert.display()))?;
            let der = rustls_pemfile::certs(&mut pem.as_slice())
                .next()
                .with_context(|| format!("{}: no certificate in the file", cert.display()))??;
            let serial =
                crate::certs::serial_of(&der).with_context(|| format!("{}: not a certificate", cert.display()))?;
            (serial, node.to_string())
        }
        (None, Some(s)) => {
            let s = s.trim().trim_start_matches("0x").replace(':', "").to_ascii_lowercase();
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
                anyhow::bail!("--serial {s:?}: expected hexadecimal digits");
            }
            (s, String::new())
        }
        (None, None) => anyhow::bail!("give --node or --serial"),
    };
    let now = crate::state::now_ms();
    if !list.entries.iter().any(|e| e.serial == serial) {
        list.entries.push(Revoked { serial: serial.clone(), node_id: node_id.clone(), revoked_at_ms: now });
    }
    // Later than the list it replaces, even if the clock went back.
    list.issued_at_ms = now.max(list.issued_at_ms + 1);
    let bytes = revocation::sign(&list, &ca.key_pem())?;
    pki::write_file(&out, &bytes, false)?;
    println!("{}", out.display());
    eprintln!(
        "revoked serial {serial}{}; the list holds {} certificate(s); publish it at the root (config key revocations)",
        if node_id.is_empty() { String::new() } else { format!(" ({node_id})") },
        list.entries.len()
    );
    Ok(())
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
