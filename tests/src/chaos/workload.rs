//! The workload: writers that publish postings, register workers, change
//! postings and record placements at random nodes at a steady rate, and a
//! log of every write that got its 201 (or 200 for a change), with the
//! version the node answered.
//!
//! Every posting title and worker name is a token unique in the run, so a
//! record stored twice for one request shows up as one token under two ids.
//! A request that gets no answer (node killed, frozen, connection cut) has
//! an unknown outcome: it is counted and never retried, and a worker whose
//! placement went unanswered is never placed again, so two placements of
//! one worker are always a duplicate.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jobmesh_protocol::record::{Kind, RouteMeta};
use jobmesh_protocol::routing::holds;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use super::cluster::Availability;
use crate::client::{posting_body, worker_body, Api};
use crate::oracle::nid;
use crate::wait::Rng;

/// Timeout of one workload request: a frozen node stalls a writer this long.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// What one acknowledged write was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum WriteKind {
    Posting,
    Worker,
    /// A `PATCH` of a posting at its origin (a new version).
    Patch,
    Placement,
}

impl WriteKind {
    /// The record kind the write created or changed.
    pub fn kind(self) -> Kind {
        match self {
            WriteKind::Posting | WriteKind::Patch => Kind::Posting,
            WriteKind::Worker => Kind::Worker,
            WriteKind::Placement => Kind::Placement,
        }
    }
}

/// One acknowledged write.
#[derive(Debug, Clone)]
pub struct Ack {
    pub kind: WriteKind,
    pub id: String,
    /// Where it was written: the record's origin.
    pub node: String,
    /// The version in the answer.
    pub version: u64,
    pub at: Instant,
}

/// Relative weights of the operations.
#[derive(Debug, Clone, Copy)]
pub struct Mix {
    pub posting: u32,
    pub worker: u32,
    pub patch: u32,
    pub placement: u32,
}

impl Default for Mix {
    fn default() -> Mix {
        Mix { posting: 35, worker: 30, patch: 15, placement: 20 }
    }
}

/// How the workload writes.
#[derive(Debug, Clone)]
pub struct WorkloadOpts {
    /// Writes per second over all writers (attempts, acknowledged or not).
    pub rate_per_s: f64,
    /// Concurrent writers.
    pub writers: usize,
    pub mix: Mix,
    pub seed: u64,
    /// Nodes written to; empty means every node.
    pub targets: Vec<String>,
}

impl Default for WorkloadOpts {
    fn default() -> WorkloadOpts {
        WorkloadOpts { rate_per_s: 30.0, writers: 4, mix: Mix::default(), seed: 0, targets: Vec::new() }
    }
}

#[derive(Debug, Clone)]
struct PostingRef {
    id: String,
    origin: String,
    route: RouteMeta,
    positions: u64,
}

/// Counts of what happened to the writes.
#[derive(Debug, Clone, Default)]
pub struct WriteStats {
    pub acked: BTreeMap<&'static str, u64>,
    /// No answer: outcome unknown.
    pub unanswered: u64,
    /// Placements refused as the contract allows (404: worker or posting
    /// not held there yet; 409: posting closed or full).
    pub declined: u64,
    /// Answers the contract does not allow for these requests.
    pub errors: Vec<String>,
}

impl WriteStats {
    pub fn acked_total(&self) -> u64 {
        self.acked.values().sum()
    }
}

#[derive(Default)]
struct LogInner {
    acks: Vec<Ack>,
    postings: Vec<PostingRef>,
    free_workers: Vec<(String, String)>,
    stats: WriteStats,
    tokens: u64,
}

/// The log of acknowledged writes, shared by the writers and the checkers.
#[derive(Default)]
pub struct AckLog {
    inner: Mutex<LogInner>,
    tag: String,
}

impl AckLog {
    pub fn new(seed: u64) -> AckLog {
        AckLog { inner: Mutex::default(), tag: format!("cw{}", seed % 1_000_000) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LogInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Acks from index `from` on (the log only grows).
    pub fn since(&self, from: usize) -> Vec<Ack> {
        let g = self.lock();
        g.acks.get(from..).map(<[Ack]>::to_vec).unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.lock().acks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every ack so far.
    pub fn all(&self) -> Vec<Ack> {
        self.since(0)
    }

    pub fn stats(&self) -> WriteStats {
        self.lock().stats.clone()
    }

    fn token(&self) -> String {
        let mut g = self.lock();
        g.tokens += 1;
        format!("{}-{}", self.tag, g.tokens)
    }

    /// Is `s` a token of this run (a title or name the workload wrote)?
    pub fn is_token(&self, s: &str) -> bool {
        s.starts_with(&format!("{}-", self.tag))
    }

    pub(crate) fn ack(&self, kind: WriteKind, id: &str, node: &str, version: u64) {
        let mut g = self.lock();
        let name = match kind {
            WriteKind::Posting => "postings",
            WriteKind::Worker => "workers",
            WriteKind::Patch => "patches",
            WriteKind::Placement => "placements",
        };
        *g.stats.acked.entry(name).or_default() += 1;
        g.acks.push(Ack { kind, id: id.to_string(), node: node.to_string(), version, at: Instant::now() });
    }

    fn unanswered(&self) {
        self.lock().stats.unanswered += 1;
    }

    fn declined(&self) {
        self.lock().stats.declined += 1;
    }

    fn error(&self, e: String) {
        let mut g = self.lock();
        if g.stats.errors.len() < 100 {
            g.stats.errors.push(e);
        }
    }
}

/// Running writers; [`Workload::stop`] ends them.
pub struct Workload {
    log: Arc<AckLog>,
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
}

struct Ctx {
    log: Arc<AckLog>,
    apis: BTreeMap<String, Api>,
    avail: Arc<Availability>,
    targets: Vec<String>,
    mix: Mix,
}

const CATEGORIES: [&str; 4] = ["manufacturing", "construction", "logistics", "services"];
const WORK_TYPES: [&str; 4] = ["full_time", "part_time", "odd_job", "temporary"];
const KEY_GROUPS: [&str; 6] =
    ["college_graduate", "migrant_worker", "ex_serviceman", "rural_labor", "disabled", "other"];

/// API clients with [`WRITE_TIMEOUT`], for the given nodes.
pub fn write_clients(apis: &BTreeMap<String, Api>) -> BTreeMap<String, Api> {
    let http = reqwest::Client::builder()
        .timeout(WRITE_TIMEOUT)
        .connect_timeout(Duration::from_secs(2))
        .pool_max_idle_per_host(8)
        .build()
        .unwrap_or_else(|e| panic!("reqwest client: {e}"));
    apis.iter().map(|(id, a)| (id.clone(), Api::new(a.base(), http.clone()))).collect()
}

impl Workload {
    /// Start `opts.writers` writers on the nodes of `apis`.
    pub fn start(
        log: Arc<AckLog>,
        apis: &BTreeMap<String, Api>,
        avail: Arc<Availability>,
        opts: &WorkloadOpts,
    ) -> Workload {
        let targets = if opts.targets.is_empty() { apis.keys().cloned().collect() } else { opts.targets.clone() };
        let ctx = Arc::new(Ctx { log: log.clone(), apis: write_clients(apis), avail, targets, mix: opts.mix });
        let stop = Arc::new(AtomicBool::new(false));
        let writers = opts.writers.max(1);
        let period = Duration::from_secs_f64(writers as f64 / opts.rate_per_s.max(0.1));
        let tasks = (0..writers)
            .map(|w| {
                let (ctx, stop) = (ctx.clone(), stop.clone());
                let mut rng = Rng::new(opts.seed ^ (0x5772_1700 + w as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(period);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    while !stop.load(Ordering::SeqCst) {
                        tick.tick().await;
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        one_write(&ctx, &mut rng).await;
                    }
                })
            })
            .collect();
        Workload { log, stop, tasks }
    }

    pub fn log(&self) -> &Arc<AckLog> {
        &self.log
    }

    /// Stop writing; waits for the requests in flight.
    pub async fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

fn pick<'a, T>(rng: &mut Rng, v: &'a [T]) -> Option<&'a T> {
    if v.is_empty() {
        None
    } else {
        v.get(rng.range(0, v.len() as u64) as usize)
    }
}

fn version_of(v: &Value) -> u64 {
    v["version"].as_u64().unwrap_or(0)
}

/// A posting body with varied fields and the given audience.
fn posting(rng: &mut Rng, title: &str, positions: u64, audience: &str) -> Value {
    let mut b = posting_body(title, positions as u32, Some(audience));
    b["category"] = json!(*pick(rng, &CATEGORIES).unwrap_or(&"services"));
    b["work_type"] = json!(*pick(rng, &WORK_TYPES).unwrap_or(&"full_time"));
    b
}

async fn one_write(ctx: &Ctx, rng: &mut Rng) {
    let up: Vec<&String> = ctx.targets.iter().filter(|t| ctx.avail.is_up(t)).collect();
    let Some(node) = pick(rng, &up).map(|s| s.to_string()) else { return };
    let m = ctx.mix;
    let total = (m.posting + m.worker + m.patch + m.placement).max(1) as u64;
    let r = rng.range(0, total) as u32;
    if r < m.posting {
        write_posting(ctx, rng, &node).await
    } else if r < m.posting + m.worker {
        write_worker(ctx, rng, &node).await
    } else if r < m.posting + m.worker + m.patch {
        write_patch(ctx, rng, &node).await
    } else {
        write_placement(ctx, rng, &node).await
    }
}

/// Publish one posting at `node`: audience its own subtree, its parent's,
/// or the whole province.
async fn write_posting(ctx: &Ctx, rng: &mut Rng, node: &str) {
    let me = nid(node);
    let audience = match rng.range(0, 4) {
        0 | 1 => me.clone(),
        2 => me.parent().unwrap_or(me.clone()),
        _ => nid(node.split('/').next().unwrap_or(node)),
    };
    let title = ctx.log.token();
    let positions = rng.range(1, 6);
    let body = posting(rng, &title, positions, audience.as_str());
    post_posting(ctx, node, &body, &audience.to_string(), positions).await;
}

/// POST one posting; `true` if acknowledged.
async fn post_posting(ctx: &Ctx, node: &str, body: &Value, audience: &str, positions: u64) -> bool {
    match ctx.apis[node].post_json("/v1/postings", body).await {
        Ok(r) if r.status == 201 => {
            let Some(v) = r.json.filter(|v| v["id"].is_string()) else {
                ctx.log.error(format!("POST postings at {node}: 201 without an id: {}", r.text));
                return false;
            };
            let id = v["id"].as_str().unwrap_or_default().to_string();
            ctx.log.ack(WriteKind::Posting, &id, node, version_of(&v));
            let route = RouteMeta { origin: nid(node), audience: Some(nid(audience)), home: nid(node) };
            ctx.log.lock().postings.push(PostingRef { id, origin: node.to_string(), route, positions });
            true
        }
        Ok(r) => {
            ctx.log.error(format!("POST postings at {node}: {}", r.describe()));
            false
        }
        Err(_) => {
            ctx.log.unanswered();
            false
        }
    }
}

async fn write_worker(ctx: &Ctx, rng: &mut Rng, node: &str) {
    let name = ctx.log.token();
    let mut body = worker_body(&name);
    body["key_group"] = json!(*pick(rng, &KEY_GROUPS).unwrap_or(&"other"));
    match ctx.apis[node].post_json("/v1/workers", &body).await {
        Ok(r) if r.status == 201 => {
            let Some(v) = r.json.filter(|v| v["id"].is_string()) else {
                return ctx.log.error(format!("POST workers at {node}: 201 without an id: {}", r.text));
            };
            let id = v["id"].as_str().unwrap_or_default().to_string();
            ctx.log.ack(WriteKind::Worker, &id, node, version_of(&v));
            ctx.log.lock().free_workers.push((id, node.to_string()));
        }
        Ok(r) => ctx.log.error(format!("POST workers at {node}: {}", r.describe())),
        Err(_) => ctx.log.unanswered(),
    }
}

/// Change one of `node`'s own postings: its wage, one more position, or
/// (rarely) close it.
async fn write_patch(ctx: &Ctx, rng: &mut Rng, node: &str) {
    let own: Vec<PostingRef> = ctx.log.lock().postings.iter().filter(|p| p.origin == node).cloned().collect();
    let Some(p) = pick(rng, &own).cloned() else { return write_posting(ctx, rng, node).await };
    let body = match rng.range(0, 20) {
        0..=11 => json!({ "wage": format!("{} CNY/day", rng.range(150, 400)) }),
        12..=18 => json!({ "positions": p.positions + 1 }),
        _ => json!({ "status": "closed" }),
    };
    match ctx.apis[node].patch_json(&format!("/v1/postings/{}", p.id), &body).await {
        Ok(r) if r.status == 200 => {
            let v = r.json.unwrap_or_default();
            ctx.log.ack(WriteKind::Patch, &p.id, node, version_of(&v));
            if let Some(n) = v["positions"].as_u64() {
                if let Some(q) = ctx.log.lock().postings.iter_mut().find(|q| q.id == p.id) {
                    q.positions = n;
                }
            }
        }
        Ok(r) => ctx.log.error(format!(
            "PATCH postings/{} at its origin {node} (acknowledged earlier) {body}: {}",
            p.id,
            r.describe()
        )),
        Err(_) => ctx.log.unanswered(),
    }
}

/// Record a placement at `node` of a worker registered in its subtree for a
/// posting the routing rule gives it. 404 (not arrived yet) and 409 (full
/// or closed) are allowed answers.
async fn write_placement(ctx: &Ctx, rng: &mut Rng, node: &str) {
    let me = nid(node);
    // The worker is taken out of the free list while its placement is in
    // flight, so two writers never place one worker at once.
    let chosen = {
        let mut g = ctx.log.lock();
        let workers: Vec<usize> =
            (0..g.free_workers.len()).filter(|&i| nid(&g.free_workers[i].1).is_in_subtree_of(&me)).collect();
        let postings: Vec<&PostingRef> = g.postings.iter().filter(|p| holds(&me, &p.route)).collect();
        match (pick(rng, &workers).copied(), pick(rng, &postings).map(|p| (*p).clone())) {
            (Some(w), Some(p)) => Some((g.free_workers.swap_remove(w), p)),
            _ => None,
        }
    };
    let Some((worker, posting)) = chosen else { return write_worker(ctx, rng, node).await };
    let body = json!({ "worker_id": worker.0, "posting_id": posting.id });
    let used = match ctx.apis[node].post_json("/v1/placements", &body).await {
        Ok(r) if r.status == 201 => {
            match r.json.as_ref().and_then(|v| v["id"].as_str()) {
                Some(id) => {
                    ctx.log.ack(WriteKind::Placement, id, node, version_of(r.json.as_ref().unwrap_or(&Value::Null)))
                }
                None => ctx.log.error(format!("POST placements at {node}: 201 without an id: {}", r.text)),
            }
            true
        }
        Ok(r) if r.status == 404 || r.status == 409 => {
            ctx.log.declined();
            false
        }
        Ok(r) => {
            ctx.log.error(format!("POST placements at {node} {body}: {}", r.describe()));
            true
        }
        Err(_) => {
            ctx.log.unanswered();
            true
        }
    };
    if !used {
        ctx.log.lock().free_workers.push(worker);
    }
}

/// Publish `count` postings at `node` for `audience` as fast as `clients`
/// concurrent requests allow (a backlog in the making). Returns how many
/// were acknowledged.
pub async fn burst(
    log: &Arc<AckLog>,
    api: &Api,
    node: &str,
    audience: &str,
    count: usize,
    clients: usize,
    seed: u64,
) -> usize {
    let apis: BTreeMap<String, Api> = [(node.to_string(), api.clone())].into_iter().collect();
    let ctx = Arc::new(Ctx {
        log: log.clone(),
        apis: write_clients(&apis),
        avail: Arc::new(Availability::default()),
        targets: vec![node.to_string()],
        mix: Mix::default(),
    });
    let per = count.div_ceil(clients.max(1));
    let tasks: Vec<_> = (0..clients.max(1))
        .map(|c| {
            let (ctx, node, audience) = (ctx.clone(), node.to_string(), audience.to_string());
            let mut rng = Rng::new(seed ^ (0xb0b0 + c as u64));
            let n = per.min(count.saturating_sub(c * per));
            tokio::spawn(async move {
                let mut acked = 0;
                for _ in 0..n {
                    let title = ctx.log.token();
                    let positions = rng.range(1, 6);
                    let body = posting(&mut rng, &title, positions, &audience);
                    acked += usize::from(post_posting(&ctx, &node, &body, &audience, positions).await);
                }
                acked
            })
        })
        .collect();
    let mut acked = 0;
    for t in tasks {
        acked += t.await.unwrap_or(0);
    }
    acked
}

/// Writers that post to one node as fast as they can, so that a kill lands
/// in the middle of writes.
pub struct Hammer {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<usize>>,
}

impl Hammer {
    /// Start `clients` clients posting at `node` for `audience` until
    /// [`Hammer::stop`] or, per client, the first request without an answer
    /// (the node is gone; later requests would only be refused).
    pub fn start(log: &Arc<AckLog>, api: &Api, node: &str, audience: &str, clients: usize, seed: u64) -> Hammer {
        let apis: BTreeMap<String, Api> = [(node.to_string(), api.clone())].into_iter().collect();
        let ctx = Arc::new(Ctx {
            log: log.clone(),
            apis: write_clients(&apis),
            avail: Arc::new(Availability::default()),
            targets: vec![node.to_string()],
            mix: Mix::default(),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..clients.max(1))
            .map(|c| {
                let (ctx, stop, node, audience) = (ctx.clone(), stop.clone(), node.to_string(), audience.to_string());
                let mut rng = Rng::new(seed ^ (0x4a3e + c as u64));
                tokio::spawn(async move {
                    let mut acked = 0;
                    while !stop.load(Ordering::SeqCst) {
                        let title = ctx.log.token();
                        let positions = rng.range(1, 6);
                        let body = posting(&mut rng, &title, positions, &audience);
                        let before = ctx.log.stats().unanswered;
                        if post_posting(&ctx, &node, &body, &audience, positions).await {
                            acked += 1;
                        } else if ctx.log.stats().unanswered > before {
                            break;
                        }
                    }
                    acked
                })
            })
            .collect();
        Hammer { stop, tasks }
    }

    /// Stop; returns how many writes were acknowledged.
    pub async fn stop(self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        let mut n = 0;
        for t in self.tasks {
            n += t.await.unwrap_or(0);
        }
        n
    }
}
