//! The `jobmesh` binary: parse the command line, install logging, run.

use std::process::ExitCode;

use clap::Parser;
use jobmesh::cli::{execute, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    jobmesh_node::logging::init(cli.log_format);
    match execute(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
