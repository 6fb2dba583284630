//! Chaos: real `jobmesh` processes under link and process faults, a
//! workload that logs every acknowledged write, a safety checker that runs
//! throughout and a liveness checker polled after heal. See `README.md` in
//! this folder for how to run each layer and the `jobmesh-chaos` tool.
//!
//! - [`cluster`]: processes and links, on loopback with fault proxies or in
//!   network namespaces with veth pairs;
//! - [`workload`]: writers and the log of acknowledged writes;
//! - [`checker`]: safety (throughout) and liveness (after heal);
//! - [`report`]: what a run prints;
//! - [`scenarios`]: the scenarios and the randomized schedule, shared
//!   by `tests/chaos_*.rs` and the `jobmesh-chaos` binary.
//!
//! Every run is seeded: it prints `seed=N` and takes `JOBMESH_SEED=N` to
//! replay the same fault schedule and workload choices (timing still varies:
//! these are real processes). `JOBMESH_HEAVY=1` selects the long forms.

pub mod checker;
pub mod cluster;
pub mod report;
pub mod scenarios;
pub mod workload;

pub use cluster::{Cluster, ClusterOpts, Layer};
pub use report::Report;
pub use scenarios::Opts;

/// The run's seed: `JOBMESH_SEED` if set, else from the clock. Prints
/// `NAME: seed=N` (stdout and stderr) so a failure can be replayed.
pub fn seed(name: &str) -> u64 {
    let seed = match std::env::var("JOBMESH_SEED") {
        Ok(s) => s.trim().parse().unwrap_or_else(|_| panic!("JOBMESH_SEED={s:?} is not a u64")),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64 % 1_000_000_000)
            .unwrap_or(0x5eed),
    };
    println!("{name}: seed={seed} (replay: JOBMESH_SEED={seed})");
    eprintln!("{name}: seed={seed} (replay: JOBMESH_SEED={seed})");
    seed
}

/// `JOBMESH_HEAVY=1`: the long forms (100,000-record backlog, cuts past the
/// 30 s idle timeout, longer fault phases).
pub fn heavy() -> bool {
    std::env::var("JOBMESH_HEAVY").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// One chaos scenario at a time in a test process: they are timed, and two
/// meshes on two cores would slow each other into false alarms. An async
/// lock (held across the test's awaits); each test has its own runtime,
/// which a tokio mutex does not mind.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static ONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    ONE.lock().await
}

/// Parse a topology: `1+2+4` (a regular tree: each number a level, each a
/// multiple of the one above), `guizhou:N` (the first N offices of the real
/// province tree, breadth first), or explicit ids `gz,gz/a,gz/a/x`.
pub fn topology(spec: &str) -> Result<Vec<String>, String> {
    use jobmesh_protocol::topology::Topology;
    let spec = spec.trim();
    if let Some(n) = spec.strip_prefix("guizhou:") {
        let n: usize = n.parse().map_err(|_| format!("guizhou:N: {n:?} is not a number"))?;
        let path = crate::bin::workspace_root().join("deploy/topology/guizhou-offices.tsv");
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let t = Topology::parse_tsv(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if n == 0 || n > t.len() {
            return Err(format!("guizhou:N: N must be 1..={}", t.len()));
        }
        return Ok(t.slice(n).ids().iter().map(|i| i.to_string()).collect());
    }
    if spec.contains(',') || !spec.contains('+') && spec.parse::<usize>().is_err() {
        let ids: Vec<String> = spec.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
        for id in &ids {
            jobmesh_protocol::NodeId::parse(id).map_err(|e| format!("{id}: {e}"))?;
        }
        return Ok(ids);
    }
    let levels: Vec<usize> = spec
        .split('+')
        .map(|s| s.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("topology {spec:?}: expected like 1+2+4, guizhou:N, or ids separated by commas"))?;
    if levels.first() != Some(&1) {
        return Err(format!("topology {spec:?}: the first level is the root, 1"));
    }
    let mut fanout = Vec::new();
    for w in levels.windows(2) {
        if w[0] == 0 || w[1] % w[0] != 0 || w[1] == 0 {
            return Err(format!("topology {spec:?}: each level must be a multiple of the one above"));
        }
        fanout.push(w[1] / w[0]);
    }
    Ok(Topology::generated("gz", &fanout).ids().iter().map(|i| i.to_string()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topologies() {
        let t = topology("1+2+4").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t, ["gz", "gz/c0", "gz/c1", "gz/c0/k0", "gz/c0/k1", "gz/c1/k0", "gz/c1/k1"]);
        assert_eq!(topology("1+3").unwrap_or_else(|e| panic!("{e}")).len(), 4);
        assert!(topology("1+2+3").is_err());
        assert_eq!(topology("gz,gz/a").unwrap_or_else(|e| panic!("{e}")), ["gz", "gz/a"]);
        let g = topology("guizhou:40").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(g.len(), 40);
        assert_eq!(g[0], "gz");
    }
}
