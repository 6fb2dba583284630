//! The checker: safety throughout, liveness after heal.
//!
//! **Safety** ([`Safety`]), a background task that polls every reachable
//! node while the faults run:
//! - every acknowledged write is still held at its origin, at a version at
//!   least the acknowledged one ("a 201 survives kill -9", "no acknowledged
//!   write disappears from its node");
//! - within one life of a node process (no SIGKILL in between: a graceful
//!   restart or a freeze keeps the life), no record it showed disappears
//!   and no version it showed goes back. Across a SIGKILL only the
//!   acknowledged writes count: a node may show a replica before it is
//!   flushed, and a crash may take it back until the sender resends it.
//!
//! **Liveness** ([`await_convergence`]), polled against a deadline after the
//! faults heal (never sleep-then-assert): every node holds exactly the
//! postings, workers and placements the routing rule
//! (`jobmesh_protocol::routing::holds`) gives it over the union of the
//! records at their origins, each at its origin's version; postings show
//! the filled count of their placements; workers show their placements;
//! `/v1/status` counts the fills the rule gives; the root's `/v1/summary`
//! shows, for every office, the figures computed from the records, and a
//! subtree total equal to their sum.
//!
//! **Lost and duplicated** ([`Evaluation`]): an acknowledged write absent at
//! its origin (or below its acknowledged version) is lost; a workload token
//! (posting title, worker name) under two ids, a worker placed twice, or an
//! id listed twice while paging is duplicated.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jobmesh_protocol::record::{Kind, RecordId, RouteMeta};

/// Unix time in milliseconds, for "today" in the data rules.
fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
use jobmesh_protocol::routing::holds;
use serde_json::Value;
use tokio::task::JoinHandle;

use super::cluster::Availability;
use super::workload::{write_clients, AckLog, WriteKind};
use crate::client::Api;
use crate::oracle::nid;
use crate::wait::POLL;

/// Page size of the safety checker's listings (the largest the API allows).
pub const SAFETY_PAGE: usize = 5_000;
/// Page size of the liveness listings: small, so paging is exercised (the
/// largest page when the run acknowledged more than 20,000 writes).
pub const LIVENESS_PAGE: usize = 500;
/// Pause between two safety rounds.
pub const SAFETY_INTERVAL: Duration = Duration::from_millis(1_000);
/// Most violation descriptions kept (all are counted).
const MAX_KEPT: usize = 200;

const COLLECTIONS: [(Kind, &str); 3] =
    [(Kind::Posting, "postings"), (Kind::Worker, "workers"), (Kind::Placement, "placements")];

/// id → version of every record a node listed, by collection.
type Listing = BTreeMap<String, Value>;

/// List one collection of a node completely, checking the paging contract.
async fn list(api: &Api, coll: &str, page: usize) -> Result<Listing, String> {
    let items = api.list_with(coll, page, &[]).await?;
    let mut out = Listing::new();
    for v in items {
        let id = v["id"].as_str().ok_or_else(|| format!("{coll} item without id: {v}"))?.to_string();
        out.insert(id, v);
    }
    Ok(out)
}

/// What the safety checker has found so far.
#[derive(Debug, Clone, Default)]
pub struct SafetySummary {
    pub rounds: u64,
    /// Node listings checked.
    pub node_checks: u64,
    /// Acknowledged writes found missing (or below their version) at their
    /// origin: `id@node`.
    pub lost: BTreeSet<String>,
    /// Records a node stopped showing within one life of its process.
    pub disappeared: u64,
    /// Versions that went back within one life of a node process.
    pub regressions: u64,
    /// Descriptions (the first few hundred).
    pub violations: Vec<String>,
}

impl SafetySummary {
    pub fn violation_count(&self) -> u64 {
        self.lost.len() as u64 + self.disappeared + self.regressions
    }

    fn violation(&mut self, s: String) {
        if self.violations.len() < MAX_KEPT {
            self.violations.push(s);
        }
    }
}

#[derive(Default)]
struct SafetyState {
    summary: SafetySummary,
    cursor: usize,
    /// node → id → highest acknowledged version.
    acked: HashMap<String, HashMap<String, u64>>,
    /// node → (crash epoch, id → version last shown).
    seen: HashMap<String, (u64, HashMap<String, u64>)>,
}

struct SafetyCtx {
    apis: BTreeMap<String, Api>,
    avail: Arc<Availability>,
    log: Arc<AckLog>,
    state: Mutex<SafetyState>,
    started: Instant,
}

/// The safety checker running in the background.
pub struct Safety {
    ctx: Arc<SafetyCtx>,
    stop: Arc<AtomicBool>,
    task: Option<JoinHandle<()>>,
}

impl Safety {
    pub fn start(apis: &BTreeMap<String, Api>, avail: Arc<Availability>, log: Arc<AckLog>) -> Safety {
        let ctx = Arc::new(SafetyCtx {
            apis: write_clients(apis),
            avail,
            log,
            state: Mutex::new(SafetyState::default()),
            started: Instant::now(),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let task = {
            let (ctx, stop) = (ctx.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    round(&ctx).await;
                    tokio::time::sleep(SAFETY_INTERVAL).await;
                }
            })
        };
        Safety { ctx, stop, task: Some(task) }
    }

    /// Findings so far.
    pub fn summary(&self) -> SafetySummary {
        self.ctx.state.lock().unwrap_or_else(|p| p.into_inner()).summary.clone()
    }

    /// Stop the background rounds, run one last round over every node, and
    /// return the findings.
    pub async fn finish(mut self) -> SafetySummary {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        round(&self.ctx).await;
        self.summary()
    }
}

impl Drop for Safety {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// One pass over every reachable node.
async fn round(ctx: &SafetyCtx) {
    // Acks logged before this point are checked in this round.
    {
        let mut st = ctx.state.lock().unwrap_or_else(|p| p.into_inner());
        let new = ctx.log.since(st.cursor);
        st.cursor += new.len();
        for a in new {
            let v = st.acked.entry(a.node.clone()).or_default().entry(a.id.clone()).or_default();
            *v = (*v).max(a.version);
        }
    }
    for (node, api) in &ctx.apis {
        if !ctx.avail.is_up(node) {
            continue;
        }
        let epoch = ctx.avail.crash_epoch(node);
        let mut shown: HashMap<String, u64> = HashMap::new();
        let mut complete = true;
        for (_, coll) in COLLECTIONS {
            match list(api, coll, SAFETY_PAGE).await {
                Ok(items) => shown.extend(items.iter().map(|(id, v)| (id.clone(), v["version"].as_u64().unwrap_or(0)))),
                Err(_) => {
                    complete = false;
                    break;
                }
            }
        }
        // A node killed while it was listed may have answered only part.
        if !complete || ctx.avail.crash_epoch(node) != epoch {
            continue;
        }
        let t = ctx.started.elapsed().as_secs_f64();
        let mut st = ctx.state.lock().unwrap_or_else(|p| p.into_inner());
        let st = &mut *st;
        st.summary.node_checks += 1;
        if let Some(acked) = st.acked.get(node) {
            for (id, &v) in acked {
                let problem = match shown.get(id) {
                    None => Some(format!("t={t:.1}s LOST: {node} no longer holds {id}, acknowledged at version {v}")),
                    Some(&have) if have < v => {
                        Some(format!("t={t:.1}s LOST: {node} holds {id} at version {have}, below the acknowledged {v}"))
                    }
                    _ => None,
                };
                if let Some(p) = problem {
                    if st.summary.lost.insert(format!("{id}@{node}")) {
                        st.summary.violation(p);
                    }
                }
            }
        }
        match st.seen.get(node) {
            Some((e, before)) if *e == epoch => {
                let mut found = Vec::new();
                for (id, &old) in before {
                    match shown.get(id) {
                        None => found.push((
                            true,
                            format!("t={t:.1}s {node} stopped showing {id} (version {old}) without a crash"),
                        )),
                        Some(&now) if now < old => found.push((
                            false,
                            format!(
                                "t={t:.1}s {node} shows {id} at version {now} after showing {old}, without a crash"
                            ),
                        )),
                        _ => {}
                    }
                }
                for (gone, f) in found {
                    if gone {
                        st.summary.disappeared += 1;
                    } else {
                        st.summary.regressions += 1;
                    }
                    st.summary.violation(f);
                }
            }
            _ => {}
        }
        st.seen.insert(node.clone(), (epoch, shown));
    }
    ctx.state.lock().unwrap_or_else(|p| p.into_inner()).summary.rounds += 1;
}

/// Everything every node holds, listed once.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// node → collection → id → item.
    pub nodes: BTreeMap<String, BTreeMap<&'static str, Listing>>,
    /// node → `/v1/status`.
    pub status: BTreeMap<String, Value>,
    /// The root's `/v1/summary`.
    pub summary: Value,
}

/// List every node (paging with `page` items a page), their status, and
/// the root's summary. `Err` if any node does not answer completely.
pub async fn snapshot(apis: &BTreeMap<String, Api>, root: &str, page: usize) -> Result<Snapshot, String> {
    let mut s = Snapshot::default();
    for (node, api) in apis {
        let mut colls = BTreeMap::new();
        for (_, coll) in COLLECTIONS {
            colls.insert(coll, list(api, coll, page).await.map_err(|e| format!("{node}: {e}"))?);
        }
        s.nodes.insert(node.clone(), colls);
        s.status.insert(node.clone(), api.status().await.map_err(|e| format!("{node}: {e}"))?);
    }
    s.summary = apis[root].summary().await?;
    Ok(s)
}

/// The figures of one office, computed from records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub postings_open: i64,
    pub positions_open: i64,
    pub positions_filled: i64,
    pub workers_registered: i64,
    pub workers_seeking: i64,
    pub placements: i64,
}

impl Totals {
    const FIELDS: [&'static str; 6] =
        ["postings_open", "positions_open", "positions_filled", "workers_registered", "workers_seeking", "placements"];

    fn get(&self, f: &str) -> i64 {
        match f {
            "postings_open" => self.postings_open,
            "positions_open" => self.positions_open,
            "positions_filled" => self.positions_filled,
            "workers_registered" => self.workers_registered,
            "workers_seeking" => self.workers_seeking,
            _ => self.placements,
        }
    }

    fn add(&mut self, o: &Totals) {
        self.postings_open += o.postings_open;
        self.positions_open += o.positions_open;
        self.positions_filled += o.positions_filled;
        self.workers_registered += o.workers_registered;
        self.workers_seeking += o.workers_seeking;
        self.placements += o.placements;
    }

    /// Differences from a JSON `Totals` object.
    fn diff(&self, got: &Value) -> Vec<String> {
        Totals::FIELDS
            .iter()
            .filter(|f| got[**f].as_i64() != Some(self.get(f)))
            .map(|f| format!("{f}={} (expected {})", got[*f], self.get(f)))
            .collect()
    }
}

/// The verdict on one snapshot.
#[derive(Debug, Clone, Default)]
pub struct Evaluation {
    /// Liveness differences (empty: converged).
    pub problems: Vec<String>,
    /// Acknowledged writes missing or behind at their origin.
    pub lost: Vec<String>,
    /// Duplicated records.
    pub duplicated: Vec<String>,
    /// Records at their origins, by collection (and fills).
    pub records: BTreeMap<&'static str, usize>,
    /// Copies held over all nodes (records × holders).
    pub copies: usize,
}

fn route_of(coll: &str, origin: &str, v: &Value) -> Option<RouteMeta> {
    let origin = jobmesh_protocol::NodeId::parse(origin).ok()?;
    match coll {
        "postings" => {
            let a = jobmesh_protocol::NodeId::parse(v["audience"].as_str()?).ok()?;
            Some(RouteMeta { origin: origin.clone(), audience: Some(a), home: origin })
        }
        "workers" => Some(RouteMeta { origin: origin.clone(), audience: None, home: origin }),
        _ => {
            let home = jobmesh_protocol::NodeId::parse(v["worker_office"].as_str()?).ok()?;
            Some(RouteMeta { origin, audience: None, home })
        }
    }
}

/// Judge a snapshot against the routing rule over the union of the records
/// at their origins, and the ack log.
pub fn evaluate(s: &Snapshot, log: &AckLog, root: &str) -> Evaluation {
    let mut ev = Evaluation::default();
    let mut problems = Vec::new();
    // The union: each node's own records, from its own listing.
    let mut union: BTreeMap<&'static str, BTreeMap<String, (String, Value)>> = BTreeMap::new();
    for (node, colls) in &s.nodes {
        for (coll, items) in colls {
            for (id, v) in items {
                if v["origin"].as_str() == Some(node.as_str()) {
                    union.entry(*coll).or_default().insert(id.clone(), (node.clone(), v.clone()));
                }
            }
        }
    }
    let empty = BTreeMap::new();
    let postings = union.get("postings").unwrap_or(&empty);
    let workers = union.get("workers").unwrap_or(&empty);
    let placements = union.get("placements").unwrap_or(&empty);

    // Placements per posting and per worker; fills (placement origin, posting).
    let mut filled: HashMap<&str, u64> = HashMap::new();
    let mut placed: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut fills: BTreeSet<(String, String)> = BTreeSet::new();
    for (id, (origin, v)) in placements {
        let p = v["posting_id"].as_str().unwrap_or("");
        *filled.entry(p).or_default() += 1;
        placed.entry(v["worker_id"].as_str().unwrap_or("")).or_default().push(id);
        fills.insert((origin.clone(), p.to_string()));
    }
    ev.records.insert("postings", postings.len());
    ev.records.insert("workers", workers.len());
    ev.records.insert("placements", placements.len());
    ev.records.insert("fills", fills.len());

    // Held sets and versions, per node.
    let mut routes: BTreeMap<&'static str, Vec<(&String, RouteMeta, u64)>> = BTreeMap::new();
    for (coll, recs) in &union {
        for (id, (origin, v)) in recs {
            match route_of(coll, origin, v) {
                Some(r) => routes.entry(*coll).or_default().push((id, r, v["version"].as_u64().unwrap_or(0))),
                None => problems.push(format!("{origin}: {coll}/{id} has no readable route: {v}")),
            }
        }
    }
    for (node, colls) in &s.nodes {
        let n = nid(node);
        for (coll, items) in colls {
            ev.copies += items.len();
            let mut missing = Vec::new();
            let mut stale = Vec::new();
            for (id, r, version) in routes.get(coll).map(Vec::as_slice).unwrap_or(&[]) {
                if !holds(&n, r) {
                    continue;
                }
                match items.get(*id) {
                    None => missing.push((*id).clone()),
                    Some(v) if v["version"].as_u64() != Some(*version) => {
                        stale.push(format!("{id} v{} (origin v{version})", v["version"]))
                    }
                    Some(_) => {}
                }
            }
            let extra: Vec<&String> = items
                .iter()
                .filter(|(id, v)| {
                    let origin = v["origin"].as_str().unwrap_or("");
                    match union.get(coll).and_then(|u| u.get(*id)) {
                        Some((o, uv)) => o != origin || route_of(coll, o, uv).is_some_and(|r| !holds(&n, &r)),
                        // Held here but not at its origin: either the
                        // origin lost it (counted as lost if acknowledged)
                        // or it should not be here.
                        None => true,
                    }
                })
                .map(|(id, _)| id)
                .collect();
            if !missing.is_empty() {
                problems.push(format!("{node} lacks {} {coll}: {}", missing.len(), sample(&missing)));
            }
            if !extra.is_empty() {
                problems.push(format!("{node} holds {} {coll} it should not: {}", extra.len(), sample(&extra)));
            }
            if !stale.is_empty() {
                problems.push(format!("{node} holds {} {coll} at an old version: {}", stale.len(), sample(&stale)));
            }
        }
        // Derived fields at every holder.
        let mut wrong = Vec::new();
        if let Some(items) = colls.get("postings") {
            for (id, v) in items {
                let Some((_, pv)) = postings.get(id) else { continue };
                let f = filled.get(id.as_str()).copied().unwrap_or(0);
                let positions = pv["positions"].as_u64().unwrap_or(0);
                if v["filled"].as_u64() != Some(f) || v["remaining"].as_u64() != Some(positions.saturating_sub(f)) {
                    wrong.push(format!(
                        "{id} filled={} remaining={} (expected {f}, {})",
                        v["filled"],
                        v["remaining"],
                        positions.saturating_sub(f)
                    ));
                }
            }
        }
        if let Some(items) = colls.get("workers") {
            for (id, v) in items {
                let k = placed.get(id.as_str()).map(Vec::len).unwrap_or(0) as u64;
                let status = if k > 0 { "placed" } else { "seeking" };
                if v["placements"].as_u64() != Some(k) || v["status"] != status {
                    wrong.push(format!(
                        "{id} status={} placements={} (expected {status}, {k})",
                        v["status"], v["placements"]
                    ));
                }
            }
        }
        if !wrong.is_empty() {
            problems.push(format!("{node}: {} derived fields differ: {}", wrong.len(), sample(&wrong)));
        }
        // Fills, from /v1/status.
        let want = fills
            .iter()
            .filter(|(at, p)| {
                let Some((porigin, pv)) = postings.get(p) else { return false };
                let Some(aud) = pv["audience"].as_str().and_then(|a| jobmesh_protocol::NodeId::parse(a).ok()) else {
                    return false;
                };
                holds(&n, &RouteMeta { origin: nid(at), audience: Some(aud), home: nid(porigin) })
            })
            .count() as u64;
        let got = &s.status.get(node).map(|st| st["records"]["fills"].clone()).unwrap_or(Value::Null);
        if got.as_u64() != Some(want) {
            problems.push(format!("{node} /v1/status records.fills = {got}, expected {want}"));
        }
    }

    // Figures at the root.
    let mut expected: BTreeMap<String, Totals> = s.nodes.keys().map(|n| (n.clone(), Totals::default())).collect();
    for (id, (origin, v)) in postings {
        let f = filled.get(id.as_str()).copied().unwrap_or(0);
        let remaining = v["positions"].as_u64().unwrap_or(0).saturating_sub(f) as i64;
        let t = expected.entry(origin.clone()).or_default();
        if v["status"] == "open" && remaining > 0 {
            t.postings_open += 1;
            t.positions_open += remaining;
        }
    }
    for (id, (origin, _)) in workers {
        let t = expected.entry(origin.clone()).or_default();
        t.workers_registered += 1;
        if !placed.contains_key(id.as_str()) {
            t.workers_seeking += 1;
        }
    }
    for (origin, _) in placements.values() {
        let t = expected.entry(origin.clone()).or_default();
        t.placements += 1;
        t.positions_filled += 1;
    }
    let rows: BTreeMap<String, &Value> = s.summary["nodes"]
        .as_array()
        .map(|a| a.iter().filter_map(|r| Some((r["node_id"].as_str()?.to_string(), r))).collect())
        .unwrap_or_default();
    let mut sum = Totals::default();
    for (node, want) in &expected {
        sum.add(want);
        match rows.get(node) {
            None => problems.push(format!("{root} /v1/summary has no row for {node}")),
            Some(r) => {
                let d = want.diff(&r["totals"]);
                if !d.is_empty() {
                    problems.push(format!("{root} /v1/summary row {node}: {}", d.join(", ")));
                }
            }
        }
    }
    let d = sum.diff(&s.summary["subtree"]);
    if !d.is_empty() {
        problems.push(format!("{root} /v1/summary subtree: {}", d.join(", ")));
    }

    // Lost: acknowledged writes against their origin's own listing.
    let mut acked: BTreeMap<(String, String), (WriteKind, u64)> = BTreeMap::new();
    for a in log.all() {
        let e = acked.entry((a.node.clone(), a.id.clone())).or_insert((a.kind, 0));
        e.1 = e.1.max(a.version);
    }
    for ((node, id), (kind, v)) in &acked {
        let coll = match kind.kind() {
            Kind::Posting => "postings",
            Kind::Worker => "workers",
            _ => "placements",
        };
        match s.nodes.get(node).and_then(|c| c.get(coll)).and_then(|l| l.get(id)) {
            None => ev.lost.push(format!("{coll}/{id} acknowledged at {node} (v{v}) is not there")),
            Some(x) if x["version"].as_u64().unwrap_or(0) < *v => {
                ev.lost.push(format!("{coll}/{id} at {node} is at v{}, acknowledged v{v}", x["version"]))
            }
            _ => {}
        }
    }

    // Duplicated: a token under two ids; a worker placed twice.
    let mut by_token: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (id, (_, v)) in postings {
        if let Some(t) = v["title"].as_str().filter(|t| log.is_token(t)) {
            by_token.entry(t).or_default().push(id);
        }
    }
    for (id, (_, v)) in workers {
        if let Some(t) = v["name"].as_str().filter(|t| log.is_token(t)) {
            by_token.entry(t).or_default().push(id);
        }
    }
    for (t, ids) in by_token.iter().filter(|(_, ids)| ids.len() > 1) {
        ev.duplicated.push(format!("one write ({t}) stored as {ids:?}"));
    }
    for (w, ids) in placed.iter().filter(|(_, ids)| ids.len() > 1) {
        ev.duplicated.push(format!("worker {w} placed {} times: {ids:?}", ids.len()));
    }
    // The data rules (jobmesh_protocol::rules): no office places one worker
    // twice on one posting, and no posting past its valid_until still
    // counts as open at its origin once converged.
    let mut pairs: HashMap<(&str, &str, &str), &str> = HashMap::new();
    for (id, (origin, v)) in placements {
        let key = (origin.as_str(), v["worker_id"].as_str().unwrap_or(""), v["posting_id"].as_str().unwrap_or(""));
        if let Some(first) = pairs.insert(key, id) {
            problems.push(format!("{origin} placed worker {} on posting {} twice: {first} and {id}", key.1, key.2));
        }
    }
    let today = jobmesh_protocol::time::local_day(now_ms());
    for (id, (_, v)) in postings {
        let day = v["valid_until"].as_str().and_then(jobmesh_protocol::time::iso_to_day);
        if v["status"] == "open" && day.is_some_and(|d| d < today) {
            problems.push(format!("postings/{id}: open past its valid_until {}", v["valid_until"]));
        }
    }
    // Ids must parse as the contract's record ids.
    for (coll, recs) in &union {
        for id in recs.keys() {
            if RecordId::parse(id).is_err() {
                problems.push(format!("{coll}/{id}: not a valid record id"));
            }
        }
    }
    ev.problems = problems;
    ev
}

fn sample<T: std::fmt::Display>(v: &[T]) -> String {
    let shown: Vec<String> = v.iter().take(5).map(|x| x.to_string()).collect();
    if v.len() > 5 {
        format!("{} …", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

/// Sums over every link of every node, from `/v1/status`.
#[derive(Debug, Clone, Copy, Default)]
pub struct LinkTotals {
    /// Records applied from peers (since each process started).
    pub records_applied: u64,
    /// Journal entries still to deliver.
    pub backlog: u64,
}

pub async fn link_totals(apis: &BTreeMap<String, Api>) -> LinkTotals {
    let mut t = LinkTotals::default();
    for api in apis.values() {
        let Ok(st) = api.status().await else { continue };
        let mut links: Vec<&Value> = st["children"].as_array().map(|a| a.iter().collect()).unwrap_or_default();
        if !st["parent"].is_null() {
            links.push(&st["parent"]);
        }
        for l in links {
            t.records_applied += l["stats"]["records_applied"].as_u64().unwrap_or(0);
            t.backlog += l["backlog"].as_u64().unwrap_or(0);
        }
    }
    t
}

/// The outcome of waiting for convergence.
#[derive(Debug, Clone)]
pub struct Convergence {
    pub converged: bool,
    /// From the start of the wait to the end of the first check that found
    /// the mesh converged: an upper bound of the convergence time.
    pub elapsed: Duration,
    /// How long that verifying check took (listing every node); the mesh
    /// converged at some point before `elapsed`, at most this much earlier
    /// than the check began plus its own duration.
    pub check_took: Duration,
    /// When `/v1/status` first showed every link up with an empty backlog
    /// (counts there are cached for about 2 s): the cheap estimate.
    pub drained: Option<Duration>,
    pub checks: u64,
    /// The last evaluation (the converged one, or the last failed one).
    pub evaluation: Evaluation,
    /// The last reason a check could not even be made.
    pub last_error: Option<String>,
}

/// Sum of backlogs and number of links not connected, over every node.
async fn drain_state(apis: &BTreeMap<String, Api>) -> Result<(u64, usize), String> {
    let (mut backlog, mut down) = (0, 0);
    for (node, api) in apis {
        let st = api.status().await.map_err(|e| format!("{node}: {e}"))?;
        let mut links: Vec<&Value> = st["children"].as_array().map(|a| a.iter().collect()).unwrap_or_default();
        if !st["parent"].is_null() {
            links.push(&st["parent"]);
        }
        for l in links {
            backlog += l["backlog"].as_u64().unwrap_or(0);
            down += usize::from(l["connected"] != true);
        }
    }
    Ok((backlog, down))
}

/// Poll until every node holds what the routing rule gives it (see the
/// module doc), at most `limit`. A full check lists every node; while
/// `/v1/status` still shows a backlog or a link down and the last full check
/// was slow (large stores), the full check waits, so that its own duration
/// does not swamp the measurement.
pub async fn await_convergence(apis: &BTreeMap<String, Api>, root: &str, log: &AckLog, limit: Duration) -> Convergence {
    let start = Instant::now();
    let mut checks = 0;
    let mut last = Convergence {
        converged: false,
        elapsed: Duration::ZERO,
        check_took: Duration::ZERO,
        drained: None,
        checks: 0,
        evaluation: Evaluation::default(),
        last_error: None,
    };
    let page = if log.len() > 20_000 { SAFETY_PAGE } else { LIVENESS_PAGE };
    let mut last_took = Duration::ZERO;
    loop {
        let left = limit.saturating_sub(start.elapsed()).max(Duration::from_millis(1));
        let drained = match tokio::time::timeout(left, drain_state(apis)).await {
            Ok(Ok((0, 0))) => {
                last.drained.get_or_insert(start.elapsed());
                true
            }
            Ok(Ok((b, d))) => {
                last.drained = None;
                last.last_error = Some(format!("/v1/status: backlog {b} journal entries, {d} links not connected"));
                if std::env::var_os("JOBMESH_CHAOS_DEBUG").is_some() {
                    eprintln!("gate at {:?}: backlog {b}, {d} links down", start.elapsed());
                }
                false
            }
            Ok(Err(e)) => {
                last.last_error = Some(e);
                false
            }
            Err(_) => false,
        };
        let slow = last_took > Duration::from_secs(2) || page == SAFETY_PAGE;
        let skip = !drained && slow && start.elapsed() < limit / 2;
        if !skip {
            checks += 1;
            let t = Instant::now();
            let left = limit.saturating_sub(start.elapsed()).max(Duration::from_millis(1));
            match tokio::time::timeout(left, snapshot(apis, root, page)).await {
                Ok(Ok(s)) => {
                    let ev = evaluate(&s, log, root);
                    let done = ev.problems.is_empty();
                    last.evaluation = ev;
                    last_took = t.elapsed();
                    if done {
                        last.converged = true;
                        last.elapsed = start.elapsed();
                        last.check_took = last_took;
                        last.checks = checks;
                        last.last_error = None;
                        return last;
                    }
                }
                Ok(Err(e)) => last.last_error = Some(e),
                Err(_) => last.last_error = Some("a check did not finish before the deadline".into()),
            }
        }
        if start.elapsed() >= limit {
            last.elapsed = start.elapsed();
            last.checks = checks;
            return last;
        }
        tokio::time::sleep(POLL.min(limit.saturating_sub(start.elapsed()))).await;
    }
}

#[cfg(test)]
#[path = "checker_tests.rs"]
mod tests;
