//! The whole `jobmesh` command line: the node's own subcommands (`run`,
//! `ca`, … from [`jobmesh_node::cli`]) flattened beside the tools that are
//! not part of an office's node: `deploy` (render from the node library,
//! `up`/`down` from `jobmesh-demo`), `demo`, `bench`, and the API clients
//! `status`, `backup`, `import` and `export`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use jobmesh_demo::{demo, rehearsal};
use jobmesh_node::deploy::RenderArgs;
use jobmesh_node::logging::LogFormat;
use jobmesh_protocol::NodeId;

/// jobmesh keeps the job and worker records of a public employment service
/// in sync across its offices: one node per office, in a tree, over QUIC
/// with mutual TLS.
#[derive(Debug, Parser)]
#[command(name = "jobmesh", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Log format on stderr (the level comes from RUST_LOG, default info).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    #[command(flatten)]
    Node(jobmesh_node::cli::Command),
    /// Render every office's folder, and start or stop rendered offices on
    /// one machine for rehearsals (see deploy/README.md).
    #[command(subcommand)]
    Deploy(DeployCommand),
    /// A whole small mesh on loopback, each office its own process, with a
    /// generated CA, a synthetic workload and the dashboard's URL; Ctrl-C
    /// stops everything.
    Demo(demo::DemoArgs),
    /// Measure the mesh (catch-up, ingest, fan-out, queries, footprint,
    /// simulator) beside ceilings measured in the same run; prints a table
    /// and JSON lines. --quick is the short form CI runs.
    Bench(jobmesh_bench::BenchArgs),
    /// One office at a glance (links, store, figures, certificate) from its
    /// HTTP API; exit status 0 healthy, 1 unhealthy, 2 down.
    Status(crate::ops::status::StatusArgs),
    /// Back up a running office's store into one file (compressed, with a
    /// manifest and a checksum), asking the node over its API.
    Backup(crate::ops::backup::BackupArgs),
    /// Print the HTTP API's OpenAPI 3.1 document (what `GET
    /// /v1/openapi.json` serves) on stdout; `deploy/openapi.json` is its
    /// committed copy.
    Openapi,
    /// Import a .csv (UTF-8 or GB18030) or .xlsx file of postings, workers
    /// or service matters into an office through its API, with a
    /// row-by-row report written beside the file; --template writes a
    /// template instead. Exit status 2 when some rows were bad.
    Import(jobmesh_import::cli::ImportArgs),
    /// Download the figures per office or the postings as .xlsx or .csv.
    Export(jobmesh_import::cli::ExportArgs),
}

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

/// Run a parsed command line. The caller has installed logging.
pub fn execute(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Node(cmd) => jobmesh_node::cli::execute(cmd),
        Command::Deploy(DeployCommand::Render(args)) => jobmesh_node::deploy::render_command(args),
        Command::Deploy(DeployCommand::Up(args)) => {
            block_on(rehearsal::up(&rehearsal::UpOptions { dir: args.dir, only: args.only, subtree: args.subtree }))
        }
        Command::Deploy(DeployCommand::Down(args)) => block_on(rehearsal::down(&args.dir)),
        Command::Demo(args) => block_on(demo::run(args)),
        Command::Bench(args) => jobmesh_bench::execute(args),
        Command::Status(args) => {
            let code = crate::ops::status::run(args)?;
            if code != 0 {
                std::process::exit(code);
            }
            Ok(())
        }
        Command::Backup(args) => crate::ops::backup::backup(args),
        Command::Import(args) => {
            let code = jobmesh_import::cli::import(args)?;
            if code != 0 {
                std::process::exit(i32::from(code));
            }
            Ok(())
        }
        Command::Export(args) => jobmesh_import::cli::export(args),
        Command::Openapi => {
            use std::io::Write;
            std::io::stdout().write_all(jobmesh_node::api::openapi::document().as_bytes())?;
            Ok(())
        }
    }
}

fn block_on(f: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    rt.block_on(f)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;
    use jobmesh_node::cli::{CaCommand, CaInitArgs, Command as NodeCommand, RunArgs};
    use jobmesh_node::deploy::address_plan::LOOPBACK_QUIC_BASE;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn contract_invocations_parse() {
        let c = Cli::try_parse_from(["jobmesh", "run", "--config", "node.toml", "--log-format", "json"]).unwrap();
        assert_eq!(c.log_format, LogFormat::Json);
        assert!(
            matches!(c.command, Command::Node(NodeCommand::Run(RunArgs { ref config })) if config == &PathBuf::from("node.toml"))
        );
        let c = Cli::try_parse_from(["jobmesh", "ca", "init", "--dir", "pki"]).unwrap();
        assert!(matches!(c.command, Command::Node(NodeCommand::Ca(CaCommand::Init(CaInitArgs { force: false, .. })))));
        let c =
            Cli::try_parse_from(["jobmesh", "ca", "issue", "--dir", "pki", "--node", "gz/a", "--days", "7"]).unwrap();
        match c.command {
            Command::Node(NodeCommand::Ca(CaCommand::Issue(a))) => assert_eq!((a.node.as_str(), a.days), ("gz/a", 7)),
            other => panic!("{other:?}"),
        }
        let e = Cli::try_parse_from(["jobmesh", "ca", "issue", "--dir", "pki", "--node", "gz/A"]).unwrap_err();
        assert!(e.to_string().contains("segment 1"), "{e}");
        let c = Cli::try_parse_from(["jobmesh", "bench", "--quick", "--only", "6"]).unwrap();
        match c.command {
            Command::Bench(a) => assert!(a.quick && a.only == [6]),
            other => panic!("{other:?}"),
        }
    }

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
