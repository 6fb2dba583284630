//! The previous release's `jobmesh` binary, built from git history, for the
//! mixed-version tests.
//!
//! The commit is [`PREVIOUS_RELEASE`] (0.1.0). Its tree is exported with
//! `git archive` into `<target>/previous-release/<commit>/src` and built
//! there with `cargo build -p jobmesh --bin jobmesh --locked`, sharing this
//! workspace's target directory so that every dependency already built for
//! the workspace is reused (path crates of the old tree get their own
//! hashes, so nothing of the new build is replaced except the uplifted
//! `target/debug/jobmesh`, which is rebuilt right after). The binary is
//! copied to `<target>/previous-release/<commit>/jobmesh` and reused by
//! every later run (the cache is keyed by the commit).
//!
//! A clone without that commit (a shallow clone) cannot run these tests:
//! the build fails with a message saying so, it never skips.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::bin::{jobmesh_bin, tail, workspace_root};

/// Commit of the previous release, 0.1.0.
pub const PREVIOUS_RELEASE: &str = "217fa66e7bf2d8e5d5f18e1ce521ff87ea02f9d3";
/// What `jobmesh --version` prints for it.
pub const PREVIOUS_VERSION: &str = "jobmesh 0.1.0";

/// The workspace's target directory.
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => {
            let d = PathBuf::from(d);
            if d.is_absolute() {
                d
            } else {
                workspace_root().join(d)
            }
        }
        None => workspace_root().join("target"),
    }
}

fn version_of(bin: &Path) -> Option<String> {
    let out = Command::new(bin).arg("--version").stdin(Stdio::null()).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Path of the previous release's binary, built on first use (see the
/// module docs). Call it before starting any node in a test, so that the
/// build (and the restore of the new binary's uplift) is done first.
pub fn previous_release_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let new_bin = jobmesh_bin().to_path_buf();
        let cache = target_dir().join("previous-release").join(PREVIOUS_RELEASE);
        let bin = cache.join("jobmesh");
        if version_of(&bin).as_deref() == Some(PREVIOUS_VERSION) {
            return bin;
        }
        build(&cache, &bin);
        restore_new(&new_bin);
        bin
    })
}

fn run(cmd: &mut Command, what: &str) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    if !out.status.success() {
        panic!("{what} failed ({}):\n{}", out.status, tail(&String::from_utf8_lossy(&out.stderr), 60));
    }
    out
}

fn build(cache: &Path, bin: &Path) {
    let root = workspace_root();
    let have = Command::new("git")
        .args(["cat-file", "-e", &format!("{PREVIOUS_RELEASE}^{{commit}}")])
        .current_dir(&root)
        .status();
    if !matches!(have, Ok(s) if s.success()) {
        panic!(
            "the mixed-version tests need the previous release, commit {PREVIOUS_RELEASE} (0.1.0), in this \
             clone's git history, and it is not there (a shallow clone?). Fetch it: \
             `git fetch --unshallow` or `git fetch origin {PREVIOUS_RELEASE}`"
        );
    }
    let src = cache.join("src");
    if src.exists() {
        std::fs::remove_dir_all(&src).unwrap_or_else(|e| panic!("remove {}: {e}", src.display()));
    }
    std::fs::create_dir_all(&src).unwrap_or_else(|e| panic!("mkdir {}: {e}", src.display()));
    let tar = src.join("source.tar");
    run(
        Command::new("git").args(["archive", "--format=tar", "-o"]).arg(&tar).arg(PREVIOUS_RELEASE).current_dir(&root),
        "git archive of the previous release",
    );
    run(Command::new("tar").arg("-xf").arg(&tar).current_dir(&src), "tar -x of the previous release");
    let _ = std::fs::remove_file(&tar);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let started = std::time::Instant::now();
    run(
        Command::new(&cargo)
            .args(["build", "-p", "jobmesh", "--bin", "jobmesh", "--locked"])
            .env("CARGO_TARGET_DIR", target_dir())
            // Built once and cached: incremental state would only take space.
            .env("CARGO_INCREMENTAL", "0")
            .current_dir(&src),
        "cargo build of the previous release",
    );
    eprintln!("built the previous release ({PREVIOUS_RELEASE}) in {:.0?}", started.elapsed());
    let built = target_dir().join("debug").join("jobmesh");
    let partial = cache.join("jobmesh.partial");
    std::fs::copy(&built, &partial).unwrap_or_else(|e| panic!("copy {}: {e}", built.display()));
    std::fs::rename(&partial, bin).unwrap_or_else(|e| panic!("rename into {}: {e}", bin.display()));
    let v = version_of(bin);
    assert_eq!(v.as_deref(), Some(PREVIOUS_VERSION), "the binary built from {PREVIOUS_RELEASE} says {v:?}");
}

/// Put the new build's binary back where the previous release's build
/// uplifted its own (cargo re-links a fresh unit's output).
fn restore_new(new_bin: &Path) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run(
        Command::new(&cargo).args(["build", "-p", "jobmesh", "--bin", "jobmesh"]).current_dir(workspace_root()),
        "cargo build of the new jobmesh (restoring its binary)",
    );
    let v = version_of(new_bin);
    assert_ne!(v.as_deref(), Some(PREVIOUS_VERSION), "{} is still the previous release", new_bin.display());
}
