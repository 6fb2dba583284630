//! `jobmesh status --api URL [--token-file F] [--json]`: one office at a
//! glance, for a person at a terminal or a monitoring check.
//!
//! It is a client of the HTTP API only (`/healthz`, `/v1/status`,
//! `/v1/summary`), so it works against any running node it can reach and
//! needs nothing from the node's machine but the token. The exit status is
//! what monitoring keys on: 0 healthy, 1 unhealthy (the [`Check`]s below
//! say why), 2 down (no answer, or `/healthz` is not 200).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde_json::{json, Value};

/// Longest one request may take: a node that hangs counts as down.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A certificate that expires sooner than this makes the node unhealthy:
/// two weeks leaves time to issue and install a new one.
pub const CERT_WARN_DAYS: i64 = 14;

/// Exit status: everything fine.
pub const EXIT_HEALTHY: i32 = 0;
/// Exit status: the node answers but something needs an operator.
pub const EXIT_UNHEALTHY: i32 = 1;
/// Exit status: the node does not answer, or is not ready.
pub const EXIT_DOWN: i32 = 2;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The node's API, e.g. http://127.0.0.1:7480.
    #[arg(long, value_name = "URL")]
    pub api: String,
    /// A file holding the API's bearer token (needed when the API is not
    /// on loopback).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Print JSON (the node's status and summary, plus `healthy` and
    /// `problems`) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Run the command; returns the exit status (see the module docs).
pub fn run(args: StatusArgs) -> anyhow::Result<i32> {
    let token = match &args.token_file {
        None => None,
        Some(f) => Some(
            std::fs::read_to_string(f)
                .with_context(|| format!("cannot read the token file {}", f.display()))?
                .trim()
                .to_owned(),
        ),
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the runtime")?;
    let report = rt.block_on(fetch(args.api.trim_end_matches('/'), token.as_deref()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.to_json()).unwrap_or_default());
    } else {
        print!("{}", report.table());
    }
    Ok(report.exit_code())
}

/// What the node said, or why it said nothing.
#[derive(Debug)]
pub struct Report {
    pub api: String,
    /// `Err` when the node is down: the reason.
    pub node: Result<(Value, Value), String>,
}

async fn fetch(api: &str, token: Option<&str>) -> anyhow::Result<Report> {
    let http = reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build().context("cannot build the HTTP client")?;
    let get = |path: &str| {
        let mut r = http.get(format!("{api}{path}"));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    let node = async {
        let h = get("/healthz").await.map_err(|e| format!("no answer from {api}: {e}"))?;
        if !h.status().is_success() {
            return Err(format!("{api}/healthz answered {}", h.status()));
        }
        let mut bodies = Vec::new();
        for path in ["/v1/status", "/v1/summary"] {
            let r = get(path).await.map_err(|e| format!("GET {path}: {e}"))?;
            let status = r.status();
            let body: Value = r.json().await.map_err(|e| format!("GET {path}: {status}, not JSON: {e}"))?;
            if !status.is_success() {
                return Err(format!("GET {path}: {status} {body}"));
            }
            bodies.push(body);
        }
        let summary = bodies.pop().unwrap_or_default();
        let status = bodies.pop().unwrap_or_default();
        Ok((status, summary))
    }
    .await;
    Ok(Report { api: api.to_owned(), node })
}

/// One reason the node is unhealthy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check(pub String);

impl Report {
    /// Why the node needs an operator: the parent link is down, or its
    /// certificate expires within [`CERT_WARN_DAYS`]. Children that are
    /// down are shown but do not count: a station's outage is its own
    /// office's problem, not this node's.
    pub fn problems(&self) -> Vec<Check> {
        let Ok((status, _)) = &self.node else { return vec![] };
        let mut out = Vec::new();
        let parent = &status["parent"];
        if parent.is_object() && parent["connected"] != true {
            let why = parent["last_error"].as_str().map(|e| format!(": {e}")).unwrap_or_default();
            out.push(Check(format!(
                "the link to the parent {} is down{why}",
                parent["node_id"].as_str().unwrap_or("?")
            )));
        }
        if status["restoring"] == true {
            out.push(Check("restored from a backup: own records are still coming back from the parent".into()));
        }
        if let Some(days) = status["certificate"]["days_left"].as_i64() {
            if days < CERT_WARN_DAYS {
                out.push(Check(format!(
                    "this node's certificate expires in {days} days ({})",
                    status["certificate"]["not_after"].as_str().unwrap_or("?")
                )));
            }
        }
        out
    }

    pub fn exit_code(&self) -> i32 {
        match &self.node {
            Err(_) => EXIT_DOWN,
            Ok(_) if self.problems().is_empty() => EXIT_HEALTHY,
            Ok(_) => EXIT_UNHEALTHY,
        }
    }

    pub fn to_json(&self) -> Value {
        match &self.node {
            Err(e) => json!({"api": self.api, "up": false, "healthy": false, "error": e}),
            Ok((status, summary)) => json!({
                "api": self.api,
                "up": true,
                "healthy": self.problems().is_empty(),
                "problems": self.problems().into_iter().map(|c| c.0).collect::<Vec<_>>(),
                "status": status,
                "summary": summary,
            }),
        }
    }

    /// The terminal table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let (status, summary) = match &self.node {
            Err(e) => {
                let _ = writeln!(s, "DOWN  {}: {e}", self.api);
                return s;
            }
            Ok(b) => b,
        };
        let problems = self.problems();
        let verdict = if problems.is_empty() { "HEALTHY" } else { "UNHEALTHY" };
        let _ = writeln!(s, "{verdict}  {}  ({})", str_of(&status["node_id"]), self.api);
        for p in &problems {
            let _ = writeln!(s, "  ! {}", p.0);
        }

        let _ = writeln!(s, "\nLINKS");
        let rows = status["parent"]
            .as_object()
            .map(|_| ("parent", &status["parent"]))
            .into_iter()
            .chain(status["children"].as_array().into_iter().flatten().map(|c| ("child", c)));
        let mut t = vec![row(&["role", "peer", "connected", "last contact", "backlog", "version", "error"])];
        for (role, l) in rows {
            t.push(vec![
                role.to_owned(),
                str_of(&l["node_id"]),
                if l["connected"] == true { "yes".into() } else { "NO".into() },
                l["last_contact"].as_str().unwrap_or("never").to_owned(),
                l["backlog"].to_string(),
                l["protocol"].as_u64().map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
                l["last_error"].as_str().unwrap_or("").to_owned(),
            ]);
        }
        render(&mut s, &t);

        let _ = writeln!(s, "\nSTORE");
        let r = &status["records"];
        let mut t = vec![row(&["postings", "workers", "placements", "fills", "summaries", "journal", "on disk"])];
        t.push(vec![
            r["postings"].to_string(),
            r["workers"].to_string(),
            r["placements"].to_string(),
            r["fills"].to_string(),
            r["summaries"].to_string(),
            format!("{}/{}", status["journal"]["durable_seq"], status["journal"]["last_seq"]),
            status["store_bytes"].as_u64().map(human_bytes).unwrap_or_else(|| "?".into()),
        ]);
        render(&mut s, &t);

        let _ = writeln!(
            s,
            "\nFIGURES ({} of {} offices reporting)",
            summary["reporting"]["offices"], summary["reporting"]["expected"]
        );
        let mut t = vec![row(&["office", "age", "stale"])];
        for n in summary["nodes"].as_array().into_iter().flatten() {
            t.push(vec![
                str_of(&n["node_id"]),
                n["age_s"].as_u64().map(|a| format!("{a} s")).unwrap_or_else(|| "never".into()),
                if n["stale"] == true { "STALE".into() } else { "".into() },
            ]);
        }
        render(&mut s, &t);

        let _ = writeln!(s, "\nCERTIFICATE");
        match status["certificate"].as_object() {
            Some(c) => {
                let _ = writeln!(
                    s,
                    "  expires {} ({} days left)",
                    c.get("not_after").and_then(Value::as_str).unwrap_or("?"),
                    c.get("days_left").and_then(Value::as_i64).map(|d| d.to_string()).unwrap_or_else(|| "?".into())
                );
            }
            None => {
                let _ = writeln!(s, "  not reported by this node");
            }
        }
        s
    }
}

fn str_of(v: &Value) -> String {
    v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())
}

fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

/// Left-aligned columns, two spaces apart.
fn render(out: &mut String, rows: &[Vec<String>]) {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let width: Vec<usize> =
        (0..cols).map(|c| rows.iter().map(|r| r.get(c).map_or(0, |x| x.chars().count())).max().unwrap_or(0)).collect();
    for r in rows {
        let mut line = String::from(" ");
        for (c, cell) in r.iter().enumerate() {
            let _ = write!(line, " {cell:<w$} ", w = width[c]);
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(status: Value) -> Report {
        Report { api: "http://x".into(), node: Ok((status, json!({"nodes": [], "reporting": {}}))) }
    }

    #[test]
    fn down_unhealthy_and_healthy_have_their_exit_codes() {
        let down = Report { api: "http://x".into(), node: Err("refused".into()) };
        assert_eq!(down.exit_code(), EXIT_DOWN);
        assert!(down.table().starts_with("DOWN"));
        let root = report(json!({"node_id": "gz", "parent": null, "children": [], "certificate": {"days_left": 300}}));
        assert_eq!(root.exit_code(), EXIT_HEALTHY, "{:?}", root.problems());
        let cut = report(json!({"node_id": "gz/a", "parent": {"node_id": "gz", "connected": false,
            "last_error": "cannot resolve gz.example"}, "children": []}));
        assert_eq!(cut.exit_code(), EXIT_UNHEALTHY);
        assert!(cut.problems()[0].0.contains("cannot resolve gz.example"), "{:?}", cut.problems());
        let expiring = report(json!({"node_id": "gz", "parent": null, "certificate": {"days_left": 3}}));
        assert_eq!(expiring.exit_code(), EXIT_UNHEALTHY);
        assert!(expiring.table().contains("UNHEALTHY"));
    }

    #[test]
    fn sizes_read_like_a_person_would_write_them() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 * 1024 * 1024 + 1024 * 512), "3.5 MiB");
    }
}
