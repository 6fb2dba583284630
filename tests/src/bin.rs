//! Where the `jobmesh` binary under test comes from.
//!
//! A separate tests crate cannot use `env!("CARGO_BIN_EXE_jobmesh")` (cargo
//! only sets it for a package's own integration tests), so the binary is
//! either named by `JOBMESH_BIN` or built here, once per test process, with
//! `cargo build -p jobmesh --bin jobmesh`. Cargo's own lock on the target
//! directory keeps several test processes from racing each other; the
//! `OnceLock` keeps the tests of one process from building it twice.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The workspace root (the folder holding the workspace `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Path of the `jobmesh` binary: `$JOBMESH_BIN`, or a debug build made on
/// first use. Panics with cargo's output if the build fails.
pub fn jobmesh_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("JOBMESH_BIN") {
            let p = PathBuf::from(p);
            assert!(p.is_file(), "JOBMESH_BIN={} is not a file", p.display());
            return p;
        }
        build()
    })
}

fn build() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(&cargo)
        .args(["build", "-p", "jobmesh", "--bin", "jobmesh", "--message-format=json-render-diagnostics"])
        .current_dir(workspace_root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cargo:?} build: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        panic!(
            "`cargo build -p jobmesh --bin jobmesh` failed ({}):\n{}",
            out.status,
            tail(&String::from_utf8_lossy(&out.stderr), 60)
        );
    }
    // The last compiler-artifact for the `jobmesh` bin target names the
    // executable, wherever the target directory is.
    let exe = stdout
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "jobmesh")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from));
    let exe = exe.unwrap_or_else(|| workspace_root().join("target").join("debug").join("jobmesh"));
    assert!(exe.is_file(), "built jobmesh, but {} does not exist", exe.display());
    exe
}

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
