//! What a chaos run reports: the faults applied, the writes acknowledged,
//! lost (must be 0) and duplicated (must be 0), what the safety checker saw,
//! the convergence time after heal and the records moved.

use std::fmt;
use std::time::Duration;

use super::checker::{Convergence, SafetySummary};
use super::workload::WriteStats;
use crate::proxy::ProxyStats;

/// The report of one run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub scenario: String,
    pub seed: u64,
    pub layer: String,
    pub topology: String,
    pub nodes: usize,
    pub heavy: bool,
    /// Lines about the run's parameters (e.g. the backlog size chosen).
    pub notes: Vec<String>,
    /// `(seconds since start, what)`.
    pub faults: Vec<(f64, String)>,
    pub writes: WriteStats,
    pub safety: SafetySummary,
    pub lost: Vec<String>,
    pub duplicated: Vec<String>,
    pub converged: bool,
    /// From heal (writes stopped, every fault undone) to the first
    /// converged check.
    pub convergence: Option<Duration>,
    /// How long the check that verified convergence took.
    pub check_took: Duration,
    /// When every backlog was empty and every link up (from `/v1/status`).
    pub drained: Option<Duration>,
    pub converge_limit: Duration,
    pub converge_checks: u64,
    /// What still differed at the deadline.
    pub remaining_problems: Vec<String>,
    pub last_error: Option<String>,
    /// Records applied from peers between heal and convergence, over all
    /// links (summaries included).
    pub records_moved: u64,
    /// Journal entries waiting on all links at heal.
    pub backlog_at_heal: u64,
    /// Records at their origins, by kind; and copies held in all.
    pub records: Vec<(String, usize)>,
    pub copies: usize,
    pub proxy: ProxyStats,
    /// Nodes that exited without the harness asking.
    pub self_exits: Vec<String>,
    /// Panics found in node logs.
    pub panics: Vec<String>,
    /// SIGTERM stops that did not end cleanly.
    pub unclean: Vec<String>,
    pub wall: Duration,
}

impl Report {
    /// Everything that makes this run a failure.
    pub fn failures(&self) -> Vec<String> {
        let mut f = Vec::new();
        if !self.lost.is_empty() {
            f.push(format!("{} acknowledged writes lost", self.lost.len()));
        }
        if !self.duplicated.is_empty() {
            f.push(format!("{} records duplicated", self.duplicated.len()));
        }
        if self.safety.violation_count() > 0 {
            f.push(format!("{} safety violations during the run", self.safety.violation_count()));
        }
        if !self.converged {
            f.push(format!("did not converge within {:?} after heal", self.converge_limit));
        }
        if !self.writes.errors.is_empty() {
            f.push(format!("{} answers the contract does not allow", self.writes.errors.len()));
        }
        if !self.self_exits.is_empty() {
            f.push(format!("nodes exited by themselves: {:?}", self.self_exits));
        }
        if !self.panics.is_empty() {
            f.push(format!("{} panics in node logs", self.panics.len()));
        }
        if !self.unclean.is_empty() {
            f.push(format!("unclean shutdowns: {:?}", self.unclean));
        }
        if self.writes.acked_total() == 0 {
            f.push("no write was acknowledged: the run proves nothing".into());
        }
        f
    }

    pub fn ok(&self) -> bool {
        self.failures().is_empty()
    }

    /// Panic with the whole report unless the run passed.
    pub fn assert_ok(&self) {
        let f = self.failures();
        assert!(
            f.is_empty(),
            "chaos scenario {} failed (replay: JOBMESH_SEED={}):\n- {}\n\n{self}",
            self.scenario,
            self.seed,
            f.join("\n- ")
        );
    }

    /// One line for logs and CI: `RESULT scenario=… seed=… …`.
    pub fn one_line(&self) -> String {
        format!(
            "RESULT scenario={} seed={} layer={} nodes={} acked={} lost={} duplicated={} violations={} converged={} convergence={} drained={} records_moved={} verdict={}",
            self.scenario,
            self.seed,
            self.layer,
            self.nodes,
            self.writes.acked_total(),
            self.lost.len(),
            self.duplicated.len(),
            self.safety.violation_count(),
            self.converged,
            self.convergence.map(|d| format!("{:.1}s", d.as_secs_f64())).unwrap_or_else(|| "-".into()),
            self.drained.map(|d| format!("{:.1}s", d.as_secs_f64())).unwrap_or_else(|| "-".into()),
            self.records_moved,
            if self.ok() { "PASS" } else { "FAIL" }
        )
    }

    pub(crate) fn take_convergence(&mut self, c: &Convergence, limit: Duration) {
        self.converged = c.converged;
        self.convergence = c.converged.then_some(c.elapsed);
        self.check_took = c.check_took;
        self.drained = c.drained;
        self.converge_limit = limit;
        self.converge_checks = c.checks;
        self.remaining_problems = if c.converged { Vec::new() } else { c.evaluation.problems.clone() };
        self.last_error = c.last_error.clone();
        self.lost = c.evaluation.lost.clone();
        self.duplicated = c.evaluation.duplicated.clone();
        self.records = c.evaluation.records.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        self.copies = c.evaluation.copies;
    }
}

fn list(f: &mut fmt::Formatter<'_>, title: &str, items: &[String], max: usize) -> fmt::Result {
    if items.is_empty() {
        return Ok(());
    }
    writeln!(f, "  {title} ({}):", items.len())?;
    for i in items.iter().take(max) {
        writeln!(f, "    - {i}")?;
    }
    if items.len() > max {
        writeln!(f, "    … {} more", items.len() - max)?;
    }
    Ok(())
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "==== chaos report: {} ====", self.scenario)?;
        writeln!(f, "  seed={}   (replay: JOBMESH_SEED={})", self.seed, self.seed)?;
        writeln!(
            f,
            "  layer: {}   topology: {} ({} nodes)   mode: {}   wall time: {:.1}s",
            self.layer,
            self.topology,
            self.nodes,
            if self.heavy { "heavy (JOBMESH_HEAVY=1)" } else { "default" },
            self.wall.as_secs_f64()
        )?;
        for n in &self.notes {
            writeln!(f, "  note: {n}")?;
        }
        writeln!(f, "  faults applied ({}):", self.faults.len())?;
        for (t, what) in &self.faults {
            writeln!(f, "    {t:>7.1}s  {what}")?;
        }
        let w = &self.writes;
        let by_kind: Vec<String> = w.acked.iter().map(|(k, v)| format!("{k} {v}")).collect();
        writeln!(f, "  writes acknowledged: {} ({})", w.acked_total(), by_kind.join(", "))?;
        writeln!(
            f,
            "  writes without answer (outcome unknown): {}   placements declined (404/409): {}",
            w.unanswered, w.declined
        )?;
        writeln!(f, "  LOST: {}   DUPLICATED: {}", self.lost.len(), self.duplicated.len())?;
        let s = &self.safety;
        writeln!(
            f,
            "  safety: {} rounds, {} node listings checked; lost {}, disappeared {}, versions back {}",
            s.rounds,
            s.node_checks,
            s.lost.len(),
            s.disappeared,
            s.regressions
        )?;
        match self.convergence {
            Some(d) => writeln!(
                f,
                "  converged {:.1}s after heal (verified by a full check of {:.1}s, {} checks, limit {:?}; backlogs empty at {})",
                d.as_secs_f64(),
                self.check_took.as_secs_f64(),
                self.converge_checks,
                self.converge_limit,
                self.drained
                    .map(|x| format!("{:.1}s", x.as_secs_f64()))
                    .unwrap_or_else(|| "not yet shown by /v1/status, whose counts are cached ~2 s".into())
            )?,
            None => writeln!(
                f,
                "  NOT converged within {:?} after heal ({} checks)",
                self.converge_limit, self.converge_checks
            )?,
        }
        writeln!(
            f,
            "  records moved after heal: {}   backlog at heal: {} journal entries",
            self.records_moved, self.backlog_at_heal
        )?;
        let recs: Vec<String> = self.records.iter().map(|(k, v)| format!("{k} {v}")).collect();
        writeln!(f, "  records at their origins: {}   copies held: {}", recs.join(", "), self.copies)?;
        let p = &self.proxy;
        if p.received_up + p.received_down > 0 {
            writeln!(
                f,
                "  proxies: {} datagrams in, {} out; lost {}, blackholed {}, duplicated {}, reordered {}, overflow {}, send errors {}",
                p.received_up + p.received_down,
                p.sent,
                p.lost,
                p.blackholed,
                p.duplicated,
                p.reordered,
                p.overflow,
                p.send_errors
            )?;
        }
        list(f, "lost", &self.lost, 20)?;
        list(f, "duplicated", &self.duplicated, 20)?;
        list(f, "safety violations", &s.violations, 20)?;
        list(f, "still different at the deadline", &self.remaining_problems, 20)?;
        if let Some(e) = &self.last_error {
            writeln!(f, "  last check error: {e}")?;
        }
        list(f, "answers the contract does not allow", &w.errors, 20)?;
        list(f, "nodes that exited by themselves", &self.self_exits, 20)?;
        list(f, "panics in node logs", &self.panics, 10)?;
        list(f, "unclean shutdowns", &self.unclean, 10)?;
        writeln!(f, "  {}", self.one_line())
    }
}
