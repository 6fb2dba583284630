//! `jobmesh-failover-measure [RUNS]`: run the failover scenario of
//! `jobmesh_tests::failover` RUNS times (default 5) with real `jobmesh`
//! processes on loopback and print, per run and as min / median / max, the
//! time from a city's `kill -9` to its counties showing fresh at the
//! province, and from its return to full convergence. Exits non-zero if a
//! run fails (the run's panic names the step and keeps the node logs).

use std::time::Duration;

use jobmesh_tests::failover::{run_once, FAILOVER_AFTER_S};

fn stats(mut v: Vec<Duration>) -> String {
    v.sort();
    let s = |d: Duration| format!("{:.1} s", d.as_secs_f64());
    format!("min {}, median {}, max {}", s(v[0]), s(v[v.len() / 2]), s(v[v.len() - 1]))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let runs: usize = match std::env::args().nth(1) {
        None => 5,
        Some(a) => match a.parse() {
            Ok(n) if n > 0 => n,
            _ => {
                eprintln!("usage: jobmesh-failover-measure [RUNS]  (RUNS a positive number, default 5; got {a:?})");
                std::process::exit(2);
            }
        },
    };
    let (mut fresh, mut converged) = (Vec::new(), Vec::new());
    for i in 0..runs {
        let t = jobmesh_tests::within(Duration::from_secs(150), "failover run", run_once(&format!("run{i}"))).await;
        println!(
            "run {}: counties fresh at the province {:.1} s after the city's kill -9; converged {:.1} s after its return",
            i + 1,
            t.death_to_fresh.as_secs_f64(),
            t.return_to_converged.as_secs_f64()
        );
        fresh.push(t.death_to_fresh);
        converged.push(t.return_to_converged);
    }
    println!("failover_after_s = {FAILOVER_AFTER_S}, {runs} runs, 1+3+9 on loopback");
    println!("city death -> counties fresh at the province: {}", stats(fresh));
    println!("city return -> full convergence:              {}", stats(converged));
}
