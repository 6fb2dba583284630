//! The API against a real node state: a sled store in a temp dir, the
//! engine host (engine and flusher threads), driven through the router with
//! `oneshot`.

use std::sync::Arc;

use axum::body::Body as HttpBody;
use axum::http::{header, Method, Request, StatusCode};
use http_body_util::BodyExt;
use jobmesh_protocol::figures::Figures;
use jobmesh_protocol::kv::Kv;
use jobmesh_protocol::record::{Posting, PostingStatus, Summary, WorkType};
use jobmesh_protocol::store::Applier;
use jobmesh_protocol::topology::Topology;
use jobmesh_protocol::{Body, Engine, NodeId, Record, RecordId};
use serde_json::{json, Value};
use tower::ServiceExt;

use super::{router, ApiContext};
use crate::metrics::Metrics;
use crate::state::{now_ms, NodeState};
use crate::storage::SledKv;

struct Node {
    state: Arc<NodeState>,
    router: axum::Router,
    kv: SledKv,
    /// Journal sequence once the first summary is durable.
    start_seq: u64,
    /// Dropping it stops the engine thread.
    _host: crate::driver::EngineHost,
    _dir: tempfile::TempDir,
}

fn id(s: &str) -> NodeId {
    NodeId::parse(s).unwrap()
}

async fn node(ctx: ApiContext) -> Node {
    node_at("gz/a/x", ctx).await
}

async fn node_at(me: &str, ctx: ApiContext) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let kv = SledKv::open(dir.path()).unwrap();
    let mut engine = Engine::open(id(me), kv.clone(), Default::default(), now_ms()).unwrap();
    if let Some(t) = &ctx.topology {
        engine.expect_offices(t);
    }
    let (state, host) = crate::driver::start(engine, kv.clone(), Arc::new(Metrics::new()), Default::default()).unwrap();
    // The engine thread publishes the node's own summary at once; wait for
    // it so that tests start from a settled store.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while state.inspect(|v| v.durable_seq()) == 0 {
        assert!(std::time::Instant::now() < deadline, "the node's first summary was not published");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let router = router(state.clone(), Arc::new(ctx));
    let start_seq = state.inspect(|v| v.last_seq());
    Node { state, router, kv, start_seq, _host: host, _dir: dir }
}

impl Node {
    async fn send(&self, req: Request<HttpBody>) -> (StatusCode, Value) {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v =
            serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, v)
    }

    async fn call(&self, method: Method, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        let body = match body {
            Some(b) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                HttpBody::from(b.to_string())
            }
            None => HttpBody::empty(),
        };
        self.send(req.body(body).unwrap()).await
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.call(Method::GET, uri, None).await
    }

    async fn post(&self, uri: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, uri, Some(body)).await
    }

    async fn patch(&self, uri: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, uri, Some(body)).await
    }

    /// Store records from other offices as if replicated here (written
    /// beside the engine, so its roll-up reads the store again, as at open).
    async fn inject(&self, records: Vec<Record>) {
        let mut kv = self.kv.clone();
        let finished = {
            let mut a = Applier::new(&kv, 1_000_000);
            for r in records {
                a.merge(r).unwrap();
            }
            a.finish()
        };
        kv.write(finished.batch).unwrap();
        self.state.call(|e| e.reload_rollup()).await.unwrap().unwrap();
    }

    async fn count(&self, what: &str) -> usize {
        let (s, v) = self.get(&format!("/v1/{what}")).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v[what].as_array().unwrap().len()
    }
}

fn posting_body(title: &str, positions: u32) -> Value {
    json!({"title": title, "employer": "Huaxi Hotel", "category": "catering", "work_type": "full_time", "positions": positions})
}

/// The local date `days` from today.
fn in_days(days: i32) -> String {
    jobmesh_protocol::time::day_to_iso(jobmesh_protocol::time::local_day(now_ms()) + days)
}

fn error_of(v: &Value) -> &str {
    v["error"].as_str().unwrap_or_else(|| panic!("no error message in {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_list_get_patch_posting() {
    let n = node(ApiContext::default()).await;
    let (s, p) = n
        .post(
            "/v1/postings",
            json!({"title": "Waiter", "employer": "Huaxi Hotel", "category": "catering", "work_type": "full_time",
                   "positions": 3, "wage": "3500/month", "valid_until": in_days(30), "audience": "gz/a"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let pid = p["id"].as_str().unwrap().to_owned();
    assert!(pid.starts_with("gz.a.x_p"), "{pid}");
    assert_eq!(p["origin"], "gz/a/x");
    assert_eq!(p["version"], 1);
    assert_eq!(p["filled"], 0);
    assert_eq!(p["remaining"], 3);
    assert_eq!(p["status"], "open");
    assert_eq!(p["audience"], "gz/a");
    assert_eq!(p["work_type"], "full_time");
    assert_eq!(p["location"], Value::Null);
    assert!(p["created_at"].as_str().unwrap().ends_with('Z'));

    // Audience defaults to this node.
    let (s, p2) = n.post("/v1/postings", posting_body("Cook", 1)).await;
    assert_eq!(s, StatusCode::CREATED, "{p2}");
    assert_eq!(p2["audience"], "gz/a/x");

    let (s, list) = n.get("/v1/postings").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["postings"].as_array().unwrap().len(), 2);
    assert_eq!(list["next"], Value::Null);

    let (_, list) = n.get("/v1/postings?audience=gz/a").await;
    assert_eq!(list["postings"].as_array().unwrap().len(), 1);
    assert_eq!(list["postings"][0]["id"], pid.as_str());
    let (_, list) = n.get("/v1/postings?category=nursing").await;
    assert_eq!(list["postings"].as_array().unwrap().len(), 0);
    let (s, v) = n.get("/v1/postings?work_type=bogus").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(error_of(&v).contains("work_type"), "{v}");

    let (s, got) = n.get(&format!("/v1/postings/{pid}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got, p);

    let (s, v) = n.patch(&format!("/v1/postings/{pid}"), json!({"title": "Head waiter", "positions": 4})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["version"], 2);
    assert_eq!(v["title"], "Head waiter");
    assert_eq!(v["remaining"], 4);
    assert_eq!(v["wage"], "3500/month");

    let (s, v) = n.patch(&format!("/v1/postings/{pid}"), json!({"wage": null, "status": "withdrawn"})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["version"], 3);
    assert_eq!(v["wage"], Value::Null);
    assert_eq!(v["status"], "withdrawn");
    let (_, list) = n.get("/v1/postings?open=true").await;
    assert_eq!(list["postings"].as_array().unwrap().len(), 1, "the withdrawn one is not open");

    let (s, v) = n.patch(&format!("/v1/postings/{pid}"), json!({"audience": "gz"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(code_and_field(&v), ("audience_fixed", "audience"), "{v}");
    let (s, v) = n.patch(&format!("/v1/postings/{pid}"), json!({"status": "paused"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(error_of(&v).contains("status"), "{v}");
    let (_, v) = n.get(&format!("/v1/postings/{pid}")).await;
    assert_eq!(v["version"], 3, "a refused patch stores nothing");

    let (s, v) = n.get("/v1/postings/not-an-id").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(error_of(&v).starts_with("id"), "{v}");
    let (s, v) = n.get("/v1/postings/gz.a.x_p999").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (s, v) = n.patch("/v1/postings/gz.a.x_p999", json!({"title": "x"})).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_origin_may_patch() {
    let n = node(ApiContext::default()).await;
    let pid = RecordId::numbered(&id("gz/a"), jobmesh_protocol::Kind::Posting, 1);
    n.inject(vec![Record {
        id: pid.clone(),
        origin: id("gz/a"),
        version: 1,
        body: Body::Posting(Posting {
            title: "Driver".into(),
            employer: "Bus Co".into(),
            category: "transport".into(),
            work_type: WorkType::FullTime,
            positions: 2,
            wage: None,
            location: None,
            valid_until: None,
            status: PostingStatus::Open,
            audience: id("gz"),
            created_at: now_ms(),
            updated_at: now_ms(),
        }),
    }])
    .await;
    let (s, v) = n.get(&format!("/v1/postings/{pid}")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["own"], false);
    let (s, v) = n.patch(&format!("/v1/postings/{pid}"), json!({"status": "closed"})).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    // A placement here on a posting held here is fine.
    let (_, w) = n.post("/v1/workers", json!({"name": "Li Lei", "key_group": "migrant_worker"})).await;
    let (s, v) = n.post("/v1/placements", json!({"worker_id": w["id"], "posting_id": pid.as_str()})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["posting_remaining"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_limits_and_disjoint_pages() {
    let n = node(ApiContext::default()).await;
    for i in 0..7 {
        let (s, _) = n.post("/v1/postings", posting_body(&format!("job {i}"), 1)).await;
        assert_eq!(s, StatusCode::CREATED);
    }
    for bad in ["0", "5001", "-1", "ten", "1.5"] {
        let (s, v) = n.get(&format!("/v1/postings?limit={bad}")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "limit={bad}");
        assert!(error_of(&v).contains("limit"), "{v}");
    }
    let (s, v) = n.get("/v1/postings?after=%%%").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(error_of(&v).contains("after"), "{v}");
    let (s, _) = n.get("/v1/postings?limit=5000").await;
    assert_eq!(s, StatusCode::OK);

    let mut seen = Vec::new();
    let mut uri = "/v1/postings?limit=3".to_owned();
    let mut sizes = Vec::new();
    loop {
        let (s, v) = n.get(&uri).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let page: Vec<String> =
            v["postings"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap().to_owned()).collect();
        sizes.push(page.len());
        seen.extend(page);
        match v["next"].as_str() {
            Some(next) => uri = format!("/v1/postings?limit=3&after={next}"),
            None => break,
        }
    }
    assert_eq!(sizes, vec![3, 3, 1]);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(sorted, seen, "pages are in id order");
    sorted.dedup();
    assert_eq!(sorted.len(), 7, "every posting once");

    // The same holds for workers.
    for i in 0..4 {
        n.post("/v1/workers", json!({"name": format!("w{i}"), "key_group": "other"})).await;
    }
    let (_, v) = n.get("/v1/workers?limit=2").await;
    assert_eq!(v["workers"].as_array().unwrap().len(), 2);
    let next = v["next"].as_str().unwrap().to_owned();
    let (_, v2) = n.get(&format!("/v1/workers?limit=2&after={next}")).await;
    assert_eq!(v2["workers"].as_array().unwrap().len(), 2);
    assert_ne!(v["workers"][0]["id"], v2["workers"][0]["id"]);
    assert_eq!(v2["next"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_and_placements() {
    let n = node(ApiContext::default()).await;
    let (s, p) = n.post("/v1/postings", posting_body("Waiter", 2)).await;
    assert_eq!(s, StatusCode::CREATED);
    let pid = p["id"].as_str().unwrap().to_owned();
    let (s, w) = n
        .post(
            "/v1/workers",
            json!({"name": "Han Meimei", "key_group": "college_graduate", "phone": "138 1234 5678",
                   "skills": ["cooking", "english"], "wanted_work_type": "part_time"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{w}");
    let wid = w["id"].as_str().unwrap().to_owned();
    assert_eq!(w["status"], "seeking");
    assert_eq!(w["office"], "gz/a/x");
    assert_eq!(w["skills"], json!(["cooking", "english"]));
    assert_eq!(w["wanted_work_type"], "part_time");

    let (s, l) = n.post("/v1/placements", json!({"worker_id": wid, "posting_id": pid})).await;
    assert_eq!(s, StatusCode::CREATED, "{l}");
    assert_eq!(l["worker_id"], wid.as_str());
    assert_eq!(l["posting_id"], pid.as_str());
    assert_eq!(l["posting_filled"], 1);
    assert_eq!(l["posting_remaining"], 1);
    assert_eq!(l["key_group"], "college_graduate");

    let (_, p) = n.get(&format!("/v1/postings/{pid}")).await;
    assert_eq!(p["filled"], 1);
    assert_eq!(p["remaining"], 1);
    let (_, w) = n.get(&format!("/v1/workers/{wid}")).await;
    assert_eq!(w["status"], "placed");
    let (_, v) = n.get("/v1/workers?status=placed").await;
    assert_eq!(v["workers"].as_array().unwrap().len(), 1);
    let (_, v) = n.get("/v1/workers?status=seeking").await;
    assert_eq!(v["workers"].as_array().unwrap().len(), 0);
    let (_, v) = n.get("/v1/placements").await;
    assert_eq!(v["placements"].as_array().unwrap().len(), 1);
    let lid = v["placements"][0]["id"].as_str().unwrap().to_owned();
    let (s, _) = n.get(&format!("/v1/placements/{lid}")).await;
    assert_eq!(s, StatusCode::OK);

    // Unknown ids: 404 naming which.
    let (s, v) = n.post("/v1/placements", json!({"worker_id": "gz.a.x_w999", "posting_id": pid})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(error_of(&v).contains("worker_id"), "{v}");
    let (s, v) = n.post("/v1/placements", json!({"worker_id": wid, "posting_id": "gz.a.x_p999"})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(error_of(&v).contains("posting_id"), "{v}");
    // Malformed ids and ids of the wrong kind: 400 naming the field.
    let (s, v) = n.post("/v1/placements", json!({"worker_id": pid, "posting_id": pid})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(error_of(&v).starts_with("worker_id"), "{v}");
    let (s, v) = n.post("/v1/placements", json!({"worker_id": wid})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(error_of(&v).starts_with("posting_id"), "{v}");

    // Fill the last position, then no positions left: 409.
    let (_, w2) = n.post("/v1/workers", json!({"name": "B", "key_group": "rural_labor"})).await;
    let (_, w3) = n.post("/v1/workers", json!({"name": "C", "key_group": "disabled"})).await;
    let (s, l) = n.post("/v1/placements", json!({"worker_id": w2["id"], "posting_id": pid})).await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(l["posting_remaining"], 0);
    let (s, v) = n.post("/v1/placements", json!({"worker_id": w3["id"], "posting_id": pid})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");

    // Withdrawn: 409.
    let (_, p2) = n.post("/v1/postings", posting_body("Cook", 5)).await;
    let p2id = p2["id"].as_str().unwrap().to_owned();
    n.patch(&format!("/v1/postings/{p2id}"), json!({"status": "withdrawn"})).await;
    let (s, v) = n.post("/v1/placements", json!({"worker_id": w3["id"], "posting_id": p2id})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(error_of(&v).contains("withdrawn"), "{v}");
    assert_eq!(n.count("placements").await, 2, "refused placements store nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_stores_nothing() {
    let n = node(ApiContext::default()).await;
    let seq_at_start = n.state.inspect(|e| e.last_seq());
    let base = posting_body("Waiter", 2);
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    let without = |k: &str| {
        let mut b = base.clone();
        b.as_object_mut().unwrap().remove(k);
        b
    };
    let cases: Vec<(Value, &str)> = vec![
        (without("title"), "title"),
        (without("positions"), "positions"),
        (without("work_type"), "work_type"),
        (with("title", json!("   ")), "title"),
        (with("title", json!(42)), "title"),
        (with("title", json!("x".repeat(600))), "title"),
        (with("positions", json!("3")), "positions"),
        (with("positions", json!(0)), "positions"),
        (with("positions", json!(-1)), "positions"),
        (with("positions", json!(1.5)), "positions"),
        (with("positions", json!(100_001)), "positions"),
        (with("audience", json!("Gz/x")), "audience"),
        (with("audience", json!(["gz"])), "audience"),
        (with("work_type", json!("forever")), "work_type"),
        (with("valid_until", json!("2026-13-01")), "valid_until"),
        (with("valid_until", json!("tomorrow")), "valid_until"),
        (with("wage", json!(3500)), "wage"),
        (with("salary", json!("lots")), "salary"),
    ];
    for (body, field) in cases {
        let (s, v) = n.post("/v1/postings", body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body} → {v}");
        assert!(error_of(&v).contains(field), "{body}: error {v} does not name {field}");
    }
    for (raw, what) in [("{not json", "JSON"), ("[1,2]", "object"), ("", "empty")] {
        let req = Request::post("/v1/postings").header(header::CONTENT_TYPE, "application/json").body(raw.into());
        let (s, v) = n.send(req.unwrap()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{raw:?}");
        assert!(error_of(&v).contains(what), "{v}");
    }
    let huge = json!({"title": "x".repeat(2 * 1024 * 1024), "employer": "e", "category": "c",
                      "work_type": "odd_job", "positions": 1});
    let (s, v) = n.post("/v1/postings", huge).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(error_of(&v).contains("larger than"), "{v}");

    let worker_cases: Vec<(Value, &str)> = vec![
        (json!({"key_group": "other"}), "name"),
        (json!({"name": "A"}), "key_group"),
        (json!({"name": "A", "key_group": "veteran"}), "key_group"),
        (json!({"name": "A", "key_group": "other", "skills": "cooking"}), "skills"),
        (json!({"name": "A", "key_group": "other", "skills": [1]}), "skills"),
        (json!({"name": "A", "key_group": "other", "wanted_work_type": "gig"}), "wanted_work_type"),
        (json!({"name": "A", "key_group": "other", "age": 30}), "age"),
    ];
    for (body, field) in worker_cases {
        let (s, v) = n.post("/v1/workers", body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body} → {v}");
        assert!(error_of(&v).contains(field), "{body}: error {v} does not name {field}");
    }
    assert_eq!(n.count("postings").await, 0, "nothing stored on a 4xx");
    assert_eq!(n.count("workers").await, 0, "nothing stored on a 4xx");
    assert_eq!(n.state.inspect(|e| e.last_seq()), seq_at_start, "not even a journal entry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summary_rows_missing_offices_and_in_flight() {
    // The whole province's file; only the subtree of this node counts.
    let topo = Topology::parse_tsv(
        "gz\t\tprovince\tGZ\t\ngz/a\tgz\tcity\tA\t\ngz/b\tgz\tcity\tB\t\ngz/a/x\tgz/a\tcounty\tXiuwen\t修文\n\
         gz/a/x/s1\tgz/a/x\tstation\tS1\t\ngz/a/x/s2\tgz/a/x\tstation\tS2\t\n",
    )
    .unwrap();
    let ctx = ApiContext {
        topology: Some(topo),
        stale_after_s: 120,
        parent: Some((id("gz/a"), "10.0.1.1:7400".into())),
        ..Default::default()
    };
    let n = node(ctx).await;
    n.post("/v1/postings", posting_body("Waiter", 3)).await;
    n.post("/v1/workers", json!({"name": "A", "key_group": "migrant_worker"})).await;
    n.state.call(|e| e.handle_timeout(now_ms() + 2_000)).await.unwrap().unwrap();

    // A child's summary, as replicated up: it claims 5 postings of its own,
    // none of which has arrived here yet.
    let s1 = id("gz/a/x/s1");
    let mut f = Figures::default();
    f.totals.postings_open = 5;
    f.totals.positions_open = 9;
    f.holds.postings = 5;
    f.by_category.insert(
        "mining".into(),
        jobmesh_protocol::figures::Breakdown { postings_open: 5, positions_open: 9, placements: 0 },
    );
    n.inject(vec![Record {
        id: RecordId::summary(&s1),
        origin: s1.clone(),
        version: 1,
        body: Body::Summary(Summary { generated_at: now_ms() - 5_000, figures: f }),
    }])
    .await;

    let (s, v) = n.get("/v1/summary").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["node_id"], "gz/a/x");
    assert_eq!(v["reporting"]["offices"], 2);
    assert_eq!(v["reporting"]["expected"], 3);
    assert_eq!(v["subtree"]["postings_open"], 6);
    assert_eq!(v["subtree"]["positions_open"], 12);
    assert_eq!(v["subtree"]["workers_registered"], 1);
    assert_eq!(v["by_category"]["catering"]["postings_open"], 1);
    assert_eq!(v["by_category"]["mining"]["positions_open"], 9);
    assert_eq!(v["daily"].as_array().unwrap().len(), 30);
    assert_eq!(v["daily"][29]["postings_published"], 1, "{}", v["daily"]);
    let nodes = v["nodes"].as_array().unwrap();
    let ids: Vec<&str> = nodes.iter().map(|r| r["node_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["gz/a/x", "gz/a/x/s1", "gz/a/x/s2"]);
    let me = &nodes[0];
    assert_eq!(me["totals"]["postings_open"], 1);
    assert_eq!(me["totals"]["workers_seeking"], 1);
    assert_eq!(me["subtree"]["postings_open"], 6);
    assert_eq!(me["stale"], false);
    assert_eq!(me["missing"], false);
    assert_eq!(me["name"], "Xiuwen");
    assert_eq!(me["tier"], "county");
    let child = &nodes[1];
    assert_eq!(child["totals"]["postings_open"], 5);
    assert!(child["age_s"].as_u64().unwrap() >= 4);
    assert_eq!(child["link_down"], true, "no connection to s1");
    assert_eq!(child["stale"], true, "its link is down");
    assert_eq!(child["in_flight"], Value::Null, "only on request");
    let missing = &nodes[2];
    assert_eq!(missing["missing"], true);
    assert_eq!(missing["stale"], true);
    assert_eq!(missing["totals"], Value::Null);
    assert_eq!(missing["reported_at"], Value::Null);

    let (_, v) = n.get("/v1/summary?in_flight=true").await;
    assert_eq!(v["nodes"][1]["in_flight"]["postings"], 5);
    assert_eq!(v["nodes"][0]["in_flight"]["postings"], 0);

    let (_, v) = n.get("/v1/summary?depth=0").await;
    assert_eq!(v["nodes"].as_array().unwrap().len(), 1);
    assert_eq!(v["subtree"]["postings_open"], 6, "depth limits rows, not sums");

    let (s, v) = n.get("/v1/summary?node=gz/a/x/s1").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["nodes"].as_array().unwrap().len(), 1);
    assert_eq!(v["subtree"]["postings_open"], 5);
    let (s, v) = n.get("/v1/summary?node=gz/b").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert!(error_of(&v).contains("node"), "{v}");
    let (s, _) = n.get("/v1/summary?node=gz/a/x/s9").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = n.get("/v1/summary?node=GZ").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, _) = n.get("/v1/summary?depth=x").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Status: parent from the node id, children from the topology.
    let (s, v) = n.get("/v1/status").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["node_id"], "gz/a/x");
    assert_eq!(v["parent"]["node_id"], "gz/a");
    assert_eq!(v["parent"]["connected"], false);
    assert_eq!(v["parent"]["addr"], "10.0.1.1:7400");
    assert_eq!(v["parent"]["last_contact"], Value::Null);
    assert!(v["parent"]["backlog"].as_u64().unwrap() >= 2, "{v}");
    let children: Vec<&str> =
        v["children"].as_array().unwrap().iter().map(|c| c["node_id"].as_str().unwrap()).collect();
    assert_eq!(children, ["gz/a/x/s1", "gz/a/x/s2"]);
    assert_eq!(v["records"]["postings"], 1);
    assert_eq!(v["records"]["workers"], 1);
    assert_eq!(v["records"]["summaries"], 2);

    // Metrics.
    let (s, v) = n.get("/metrics").await;
    assert_eq!(s, StatusCode::OK);
    let text = v.as_str().unwrap();
    for want in [
        "jobmesh_records{kind=\"posting\"} 1",
        "jobmesh_link_connected{peer=\"gz/a\",role=\"parent\"} 0",
        "jobmesh_office_postings_open{node_id=\"gz/a/x/s1\",tier=\"station\"} 5",
        "jobmesh_office_stale{node_id=\"gz/a/x/s2\",tier=\"station\"} 1",
        "jobmesh_store_flushes_total",
        "jobmesh_api_requests_total{route=\"/v1/summary\",method=\"GET\",status=\"200\"}",
    ] {
        assert!(text.contains(want), "missing {want} in\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summary_without_topology_shows_own_totals() {
    let n = node(ApiContext::default()).await;
    n.post("/v1/postings", posting_body("Waiter", 3)).await;
    n.state.call(|e| e.handle_timeout(now_ms() + 2_000)).await.unwrap().unwrap();
    let (s, v) = n.get("/v1/summary").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["reporting"]["offices"], 1);
    assert_eq!(v["reporting"]["expected"], 1);
    assert_eq!(v["nodes"][0]["totals"]["positions_open"], 3);
    assert_eq!(v["nodes"][0]["tier"], "county");
    assert_eq!(v["subtree"]["postings_open"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_methods_and_unknown_routes() {
    let n = node(ApiContext { token: Some("s3cret".into()), ..Default::default() }).await;
    let (s, v) = n.get("/v1/status").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(error_of(&v).contains("Bearer"), "{v}");
    let req = Request::get("/v1/status").header(header::AUTHORIZATION, "Bearer wrong").body(HttpBody::empty());
    let (s, _) = n.send(req.unwrap()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let req = Request::get("/v1/status").header(header::AUTHORIZATION, "Bearer s3cret").body(HttpBody::empty());
    let (s, _) = n.send(req.unwrap()).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = n.get("/v1/status?token=s3cret").await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = n.post("/v1/postings", posting_body("x", 1)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    let (s, v) = n.get("/healthz").await;
    assert_eq!((s, v), (StatusCode::OK, Value::String("ok".into())));
    let (s, v) = n.get("/").await;
    assert_eq!(s, StatusCode::OK);
    assert!(v.as_str().unwrap().contains("<html") || v.as_str().unwrap().contains("<!"), "the page");
    let (s, _) = n.get("/app.js").await;
    assert_eq!(s, StatusCode::OK);

    let auth = |m: Method, uri: &str| {
        Request::builder().method(m).uri(uri).header(header::AUTHORIZATION, "Bearer s3cret").body(HttpBody::empty())
    };
    let (s, v) = n.send(auth(Method::DELETE, "/v1/postings").unwrap()).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    assert!(error_of(&v).contains("DELETE"), "{v}");
    let (s, v) = n.send(auth(Method::PUT, "/v1/workers/gz.a.x_w1").unwrap()).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED, "{v}");
    let (s, v) = n.send(auth(Method::GET, "/v2/nothing").unwrap()).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(error_of(&v).contains("/v2/nothing"), "{v}");
}

/// The province root answers `/v1/summary` and `/metrics` for ~2,800
/// offices quickly: one scan of the summaries, no per-row reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summary_at_the_root_of_the_province() {
    let topo = Topology::generated_province();
    let n = node_at("gz", ApiContext { topology: Some(topo.clone()), ..Default::default() }).await;
    let now = now_ms();
    let mut records = Vec::new();
    for (i, o) in topo.offices.iter().enumerate().skip(1) {
        if i % 10 == 0 {
            continue; // some never reported
        }
        let mut f = Figures::default();
        f.totals.postings_open = 2;
        f.totals.workers_registered = 3;
        for c in ["catering", "mining", "construction", "retail"] {
            f.by_category.insert(
                c.into(),
                jobmesh_protocol::figures::Breakdown { postings_open: 1, positions_open: 2, placements: 1 },
            );
        }
        for d in 0..30 {
            f.daily.insert(
                jobmesh_protocol::time::local_day(now) - d,
                jobmesh_protocol::figures::Daily { postings_published: 1, placements: 1 },
            );
        }
        records.push(Record {
            id: RecordId::summary(&o.id),
            origin: o.id.clone(),
            version: 1,
            body: Body::Summary(Summary { generated_at: now, figures: f }),
        });
    }
    let reported = records.len() as u64;
    n.inject(records).await;
    let started = std::time::Instant::now();
    let (s, v) = n.get("/v1/summary").await;
    let took = started.elapsed();
    assert_eq!(s, StatusCode::OK);
    // The root's own summary reports too.
    assert_eq!(v["reporting"]["offices"], reported + 1);
    assert_eq!(v["reporting"]["expected"], topo.len());
    assert_eq!(v["subtree"]["postings_open"], 2 * reported);
    assert_eq!(v["nodes"].as_array().unwrap().len(), topo.len());
    let (_, v1) = n.get("/v1/summary?depth=1").await;
    assert_eq!(v1["nodes"].as_array().unwrap().len(), 11);
    let started = std::time::Instant::now();
    let (s, _) = n.get("/metrics").await;
    let took_metrics = started.elapsed();
    assert_eq!(s, StatusCode::OK);
    eprintln!("summary of {} offices: {took:?}; metrics: {took_metrics:?}", topo.len());
    // Generous bound for a debug build on a busy machine.
    assert!(took < std::time::Duration::from_secs(10), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matters_record_resolve_list_and_roll_up() {
    let n = node(ApiContext::default()).await;
    let (s, v) = n
        .post(
            "/v1/matters",
            json!({"category": "rights_protection", "channel": "hotline_12333", "key_group": "migrant_worker",
                   "summary": "wages unpaid for two months"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["status"], "open");
    // The view spells the channel as the request did (Schemathesis found
    // `hotline12333` here).
    assert_eq!(v["channel"], "hotline_12333", "{v}");
    assert_eq!(v["resolved_at"], Value::Null);
    let first = v["id"].as_str().unwrap().to_owned();
    let (s, v) = n
        .post(
            "/v1/matters",
            json!({"category": "policy_consultation", "channel": "walk_in", "summary": "subsidy for hiring",
                   "status": "resolved"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert!(v["resolved_at"].is_string(), "resolved on the spot: {v}");
    assert_eq!(v["key_group"], Value::Null);

    let (s, v) = n.patch(&format!("/v1/matters/{first}"), json!({"status": "resolved"})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["version"], 2);
    assert!(v["resolved_at"].is_string());
    let (s, v) = n.get(&format!("/v1/matters/{first}")).await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("resolved")));
    assert_eq!(n.count("matters").await, 2);
    let (_, v) = n.get("/v1/matters?channel=walk_in").await;
    assert_eq!(v["matters"].as_array().unwrap().len(), 1);
    let (_, v) = n.get("/v1/matters?limit=1").await;
    assert_eq!(v["matters"].as_array().unwrap().len(), 1);
    let next = v["next"].as_str().unwrap().to_owned();
    let (_, v) = n.get(&format!("/v1/matters?limit=1&after={next}")).await;
    assert_ne!(v["matters"][0]["id"].as_str(), Some(next.as_str()), "pages are disjoint");

    for (body, field) in [
        (json!({"category": "gossip", "channel": "walk_in", "summary": "x"}), "category"),
        (json!({"category": "other", "summary": "x"}), "channel"),
        (json!({"category": "other", "channel": "fax", "summary": "x"}), "channel"),
        (json!({"category": "other", "channel": "online", "summary": " "}), "summary"),
        (json!({"category": "other", "channel": "online", "summary": "x".repeat(300)}), "summary"),
        (json!({"category": "other", "channel": "online", "summary": "x", "key_group": "giants"}), "key_group"),
        (json!({"category": "other", "channel": "online", "summary": "x", "status": "pending"}), "status"),
        (json!({"category": "other", "channel": "online", "summary": "x", "colour": "red"}), "colour"),
    ] {
        let (s, v) = n.post("/v1/matters", body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body} → {v}");
        assert!(error_of(&v).contains(field), "{body}: the error names {field}: {v}");
    }
    assert_eq!(n.count("matters").await, 2, "refused input stored nothing");
    // Every bad field at once, each coded for the page's catalogue.
    let (s, v) = n.post("/v1/matters", json!({"category": "gossip", "summary": " ", "status": "pending"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let problems: Vec<(String, String)> = v["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors list: {v}"))
        .iter()
        .map(|p| (p["field"].as_str().unwrap_or("").to_owned(), p["code"].as_str().unwrap_or("").to_owned()))
        .collect();
    let want: Vec<(String, String)> =
        [("category", "not_in_list"), ("channel", "required"), ("summary", "required"), ("status", "not_in_list")]
            .iter()
            .map(|(f, c)| (f.to_string(), c.to_string()))
            .collect();
    assert_eq!(problems, want, "{v}");
    assert!(v["errors"][0]["params"]["allowed"].as_array().is_some_and(|a| a.len() == 7), "{v}");
    assert_eq!(n.count("matters").await, 2, "refused input stored nothing");
    let (s, v) = n.get("/v1/matters/gz.a.x_m999").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (s, v) = n.get("/v1/matters?status=maybe").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");

    n.state.call(|e| e.handle_timeout(now_ms() + 2_000)).await.unwrap().unwrap();
    let (s, v) = n.get("/v1/summary").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let m = &v["matters"];
    assert_eq!((m["opened"].as_i64(), m["resolved"].as_i64(), m["open_now"].as_i64()), (Some(2), Some(2), Some(0)));
    assert_eq!(m["by_channel"]["hotline_12333"]["resolved"], 1);
    assert_eq!(m["by_key_group"]["migrant_worker"]["opened"], 1);
    assert_eq!(m["median_days_to_resolve"], 0.0);
    assert_eq!(m["daily"].as_array().unwrap().last().unwrap()["opened"], 2);
    assert_eq!(v["nodes"][0]["matters"]["opened"], 2);
    let (_, text) = n.get("/metrics").await;
    let text = text.as_str().unwrap_or_default().to_owned();
    assert!(text.contains("jobmesh_office_matters_opened{node_id=\"gz/a/x\",tier=\"county\"} 2"), "{text}");
    assert!(text.contains("jobmesh_records{kind=\"matter\"} 2"), "{text}");
}

/// A node at `gz/a/x` holding a topology of its ancestors and subtree.
async fn node_with_topology() -> Node {
    let topo = Topology::parse_tsv(
        "gz\t\tprovince\tGZ\t贵州\ngz/a\tgz\tcity\tA\t甲市\ngz/a/x\tgz/a\tcounty\tXiuwen\t修文县\n\
         gz/a/x/s1\tgz/a/x\tstation\tS1\t一站\n",
    )
    .unwrap();
    node(ApiContext { topology: Some(topo), ..Default::default() }).await
}

/// Everything a refusal must leave untouched.
async fn assert_nothing_stored(n: &Node, seq: u64) {
    assert_eq!(n.state.inspect(|e| e.last_seq()), seq, "a refusal writes no journal entry");
}

fn code_and_field(v: &Value) -> (&str, &str) {
    (v["code"].as_str().unwrap_or("?"), v["field"].as_str().unwrap_or(""))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audience_must_be_an_office_known_here() {
    let n = node_with_topology().await;
    let with = |a: &str| {
        let mut b = posting_body("Waiter", 1);
        b["audience"] = json!(a);
        b
    };
    for (audience, code) in [
        ("nonsense!", "invalid_node_id"),
        ("", "required"),
        ("   ", "required"),
        ("gz/a/x/nosuch", "unknown_audience"),
        ("gz/b", "unknown_audience"),
        ("gz/a/x/s1/deeper", "unknown_audience"),
    ] {
        let (s, v) = n.post("/v1/postings", with(audience)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{audience:?} → {v}");
        assert_eq!(code_and_field(&v), (code, "audience"), "{audience:?} → {v}");
        assert!(v["errors"].as_array().is_some_and(|e| e.len() == 1), "{v}");
    }
    assert_nothing_stored(&n, n.start_seq).await;
    for audience in ["gz", "gz/a", "gz/a/x", "gz/a/x/s1"] {
        let (s, v) = n.post("/v1/postings", with(audience)).await;
        assert_eq!(s, StatusCode::CREATED, "{audience:?} → {v}");
    }
    // Without a topology: the lineage, or a known child's subtree.
    let bare = node(ApiContext::default()).await;
    let (s, v) = bare.post("/v1/postings", with("gz/a/x/s1")).await;
    assert_eq!((s, code_and_field(&v)), (StatusCode::BAD_REQUEST, ("unknown_audience", "audience")), "{v}");
    let (s, _) = bare.post("/v1/postings", with("gz")).await;
    assert_eq!(s, StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_until_before_today_and_phones_are_refused() {
    let n = node(ApiContext::default()).await;
    let mut b = posting_body("Waiter", 1);
    b["valid_until"] = json!("2020-01-01");
    let (s, v) = n.post("/v1/postings", b.clone()).await;
    assert_eq!((s, code_and_field(&v)), (StatusCode::BAD_REQUEST, ("date_in_past", "valid_until")), "{v}");
    assert_eq!(v["params"]["today"], in_days(0), "{v}");
    b["valid_until"] = json!(in_days(-1));
    let (s, _) = n.post("/v1/postings", b.clone()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_nothing_stored(&n, n.start_seq).await;
    b["valid_until"] = json!(in_days(0));
    let (s, p) = n.post("/v1/postings", b.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "today is still valid: {p}");
    let seq = n.state.inspect(|e| e.last_seq());
    let (s, v) =
        n.patch(&format!("/v1/postings/{}", p["id"].as_str().unwrap()), json!({"valid_until": "2021-05-05"})).await;
    assert_eq!((s, code_and_field(&v)), (StatusCode::BAD_REQUEST, ("date_in_past", "valid_until")), "{v}");
    assert_nothing_stored(&n, seq).await;

    for phone in ["abc", "12345", "1381234567", "0851-0123", "+1 202 555 0123"] {
        let (s, v) = n.post("/v1/workers", json!({"name": "A", "key_group": "other", "phone": phone})).await;
        assert_eq!((s, code_and_field(&v)), (StatusCode::BAD_REQUEST, ("invalid_phone", "phone")), "{phone} → {v}");
    }
    assert_nothing_stored(&n, seq).await;
    for phone in ["13812345678", "+86 138 1234 5678", "0851-12345678", "085112345678"] {
        let (s, v) = n.post("/v1/workers", json!({"name": "A", "key_group": "other", "phone": phone})).await;
        assert_eq!(s, StatusCode::CREATED, "{phone} → {v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_placement_per_worker_and_posting() {
    let n = node(ApiContext::default()).await;
    let (_, p) = n.post("/v1/postings", posting_body("保洁员", 3)).await;
    let (_, p2) = n.post("/v1/postings", posting_body("厨师", 3)).await;
    let (_, w) = n.post("/v1/workers", json!({"name": "王小花", "key_group": "rural_labor"})).await;
    let body = json!({"worker_id": w["id"], "posting_id": p["id"]});
    let (s, first) = n.post("/v1/placements", body.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "{first}");
    let seq = n.state.inspect(|e| e.last_seq());
    let (s, v) = n.post("/v1/placements", body.clone()).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["code"], "already_placed", "{v}");
    assert_eq!(v["params"]["worker_id"], w["id"], "{v}");
    assert_eq!(v["params"]["posting_id"], p["id"], "{v}");
    assert_eq!(v["params"]["placement_id"], first["id"], "{v}");
    let e = error_of(&v);
    assert!(e.contains(w["id"].as_str().unwrap()) && e.contains(p["id"].as_str().unwrap()), "{v}");
    assert_nothing_stored(&n, seq).await;
    let (_, held) = n.get(&format!("/v1/postings/{}", p["id"].as_str().unwrap())).await;
    assert_eq!(held["filled"], 1, "the second click does not fill a second position");
    // Several placements at once on different postings are allowed (odd jobs).
    let (s, v) = n.post("/v1/placements", json!({"worker_id": w["id"], "posting_id": p2["id"]})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(n.count("placements").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_field_comes_back_at_once() {
    let n = node(ApiContext::default()).await;
    let body = json!({"title": "  ", "employer": "岗".repeat(200), "category": "c", "work_type": "gig",
                      "positions": 0, "valid_until": "2020-01-01", "audience": ""});
    let (s, v) = n.post("/v1/postings", body).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let got: Vec<(&str, &str)> = v["errors"].as_array().unwrap().iter().map(code_and_field).collect();
    assert_eq!(
        got,
        vec![
            ("required", "title"),
            ("too_long", "employer"),
            ("not_in_list", "work_type"),
            ("out_of_range", "positions"),
            ("required", "audience"),
            ("date_in_past", "valid_until"),
        ],
        "{v}"
    );
    assert_eq!(code_and_field(&v), ("required", "title"), "the first problem is also at the top: {v}");
    assert_eq!(v["errors"][1]["params"]["max_chars"], jobmesh_protocol::rules::MAX_TEXT_CHARS, "{v}");
    assert!(error_of(&v).starts_with("title: "), "the English sentence stays: {v}");
    // Lengths count characters: 128 汉字 is fine though it is 384 bytes.
    let (s, v) = n.post("/v1/postings", posting_body(&"岗".repeat(128), 1)).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = n.post("/v1/workers", json!({"name": "", "key_group": "", "phone": "abc", "skills": [""]})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let got: Vec<(&str, &str)> = v["errors"].as_array().unwrap().iter().map(code_and_field).collect();
    assert_eq!(
        got,
        vec![("required", "name"), ("required", "key_group"), ("invalid_phone", "phone"), ("required", "skills")],
        "{v}"
    );
}

/// The HTTP input sweep: each hostile or broken input is a 400 naming the
/// field, with a code, and stores nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_inputs_are_400_naming_the_field() {
    let n = node(ApiContext::default()).await;
    let raw = |body: Vec<u8>| {
        Request::post("/v1/postings")
            .header(header::CONTENT_TYPE, "application/json")
            .body(HttpBody::from(body))
            .unwrap()
    };
    let good = r#""employer": "e", "category": "c", "work_type": "odd_job", "positions": 1"#;
    let mut bad_utf8 = format!(r#"{{{good}, "title": "a"#).into_bytes();
    bad_utf8.extend([0xc3, 0x28]);
    bad_utf8.extend(br#""}"#);
    let deep = format!(r#"{{{good}, "title": {}1{}}}"#, "[".repeat(1000), "]".repeat(1000));
    let cases: Vec<(Vec<u8>, &str, &str)> = vec![
        (format!(r#"{{{good}, "title": "   "}}"#).into_bytes(), "required", "title"),
        (format!(r#"{{{good}, "title": "\u3000\t"}}"#).into_bytes(), "required", "title"),
        (format!(r#"{{{good}, "title": "a\u0007b"}}"#).into_bytes(), "control_character", "title"),
        (format!(r#"{{{good}, "title": "a\nb"}}"#).into_bytes(), "control_character", "title"),
        (format!(r#"{{{good}, "title": "a", "wage": "x\u0000"}}"#).into_bytes(), "control_character", "wage"),
        (format!(r#"{{{good}, "title": "t", "title": "u"}}"#).into_bytes(), "duplicate_key", "title"),
        (r#"{"title": "t", "employer": "e", "category": "c", "work_type": "odd_job", "positions": 9007199254740993}"#.into(), "number_too_large", "positions"),
        (bad_utf8, "not_utf8", "title"),
        (deep.into_bytes(), "too_deep", "title"),
        (format!(r#"{{{good}, "title": "t", "work_type": ""}}"#).into_bytes(), "duplicate_key", "work_type"),
        (r#"{"title": "t", "employer": "e", "category": "c", "work_type": "", "positions": 1}"#.into(), "required", "work_type"),
        (r#"{"title": "t", "employer": "e", "category": "", "work_type": "odd_job", "positions": 1}"#.into(), "required", "category"),
    ];
    for (body, code, field) in cases {
        let shown = String::from_utf8_lossy(&body).chars().take(120).collect::<String>();
        let (s, v) = n.send(raw(body)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{shown} → {v}");
        assert_eq!(code_and_field(&v), (code, field), "{shown} → {v}");
        assert!(error_of(&v).len() < 600, "the message does not echo the whole input: {v}");
    }
    // Empty ids and enums in the other forms.
    let (s, v) = n.post("/v1/placements", json!({"worker_id": "", "posting_id": ""})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let got: Vec<(&str, &str)> = v["errors"].as_array().unwrap().iter().map(code_and_field).collect();
    assert_eq!(got, vec![("required", "worker_id"), ("required", "posting_id")], "{v}");
    let (s, v) = n.post("/v1/workers", json!({"name": "A", "key_group": "other", "wanted_work_type": ""})).await;
    assert_eq!((s, code_and_field(&v)), (StatusCode::BAD_REQUEST, ("required", "wanted_work_type")), "{v}");
    // Query strings: `limit` in plain digits only.
    for limit in ["+5", "-1", "007", "0", "5001", "1e3", " 5"] {
        let (s, v) = n.get(&format!("/v1/postings?limit={}", limit.replace(' ', "%20").replace('+', "%2B"))).await;
        assert_eq!((s, code_and_field(&v)), (StatusCode::BAD_REQUEST, ("invalid_limit", "limit")), "{limit} → {v}");
    }
    let (s, v) = n.get("/v1/postings?category=%FF%FE").await;
    assert_eq!((s, code_and_field(&v)), (StatusCode::BAD_REQUEST, ("not_utf8", "category")), "{v}");
    // Very long ids in paths and queries.
    let long = "a".repeat(5_000);
    for uri in [
        format!("/v1/postings/{long}"),
        format!("/v1/workers/gz.a.x_w{}", "1".repeat(5_000)),
        format!("/v1/placements/{long}"),
    ] {
        let (s, v) = n.get(&uri).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert_eq!(v["field"], "id", "{v}");
        assert!(error_of(&v).len() < 600, "{v}");
    }
    let (s, v) = n.get(&format!("/v1/postings?audience={long}")).await;
    assert_eq!((s, code_and_field(&v)), (StatusCode::BAD_REQUEST, ("invalid_node_id", "audience")), "{v}");
    let (s, v) = n.get(&format!("/v1/postings?after={long}")).await;
    assert_eq!((s, code_and_field(&v)), (StatusCode::BAD_REQUEST, ("invalid_id", "after")), "{v}");
    assert_eq!(n.count("postings").await, 0, "nothing stored");
    assert_eq!(n.count("workers").await, 0, "nothing stored");
    assert_nothing_stored(&n, n.start_seq).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_search_by_name_or_phone() {
    let n = node(ApiContext::default()).await;
    for (name, phone) in [("王小花", "138 1234 5678"), ("王大山", "0851-87654321"), ("Li Lei", "13900001111")] {
        let (s, v) = n.post("/v1/workers", json!({"name": name, "key_group": "other", "phone": phone})).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let names = |v: &Value| -> Vec<String> {
        v["workers"].as_array().unwrap().iter().map(|w| w["name"].as_str().unwrap().to_owned()).collect()
    };
    let (_, v) = n.get("/v1/workers?q=%E7%8E%8B").await; // 王
    assert_eq!(names(&v), vec!["王小花", "王大山"]);
    let (_, v) = n.get("/v1/workers?q=12345678").await;
    assert_eq!(names(&v), vec!["王小花"]);
    let (_, v) = n.get("/v1/workers?q=8765").await;
    assert_eq!(names(&v), vec!["王大山"]);
    let (_, v) = n.get("/v1/workers?q=li").await;
    assert_eq!(names(&v), vec!["Li Lei"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_postings_are_not_open_here() {
    let n = node(ApiContext::default()).await;
    // A posting from another office, past its date, whose closing version
    // has not arrived yet.
    let origin = id("gz/a");
    let now = now_ms();
    n.inject(vec![Record {
        id: RecordId::numbered(&origin, jobmesh_protocol::Kind::Posting, 1),
        origin: origin.clone(),
        version: 1,
        body: Body::Posting(Posting {
            title: "t".into(),
            employer: "e".into(),
            category: "c".into(),
            work_type: WorkType::OddJob,
            positions: 1,
            wage: None,
            location: None,
            valid_until: Some(in_days(-2)),
            status: PostingStatus::Open,
            audience: id("gz"),
            created_at: now,
            updated_at: now,
        }),
    }])
    .await;
    let (_, v) = n.get("/v1/postings").await;
    assert_eq!(v["postings"][0]["expired"], true, "{v}");
    let (_, v) = n.get("/v1/postings?open=true").await;
    assert_eq!(v["postings"].as_array().unwrap().len(), 0, "{v}");
}

/// `GET /v1/openapi.json` serves the generated document, without a token,
/// and every operation it lists is routed (none falls through to the
/// unknown-route or wrong-method answers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_is_served_and_matches_the_router() {
    let n = node(ApiContext { token: Some("s3cret".into()), ..Default::default() }).await;
    let resp = n.router.clone().oneshot(Request::get("/v1/openapi.json").body(HttpBody::empty()).unwrap()).await;
    let resp = resp.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(String::from_utf8(bytes.to_vec()).unwrap(), super::openapi::document());
    let spec: Value = serde_json::from_slice(&bytes).unwrap();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let uri = path.replace("{id}", "gz.a.x_p1");
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let req = Request::builder().method(m).uri(&uri).header(header::AUTHORIZATION, "Bearer s3cret");
            let (s, v) = n.send(req.body(HttpBody::empty()).unwrap()).await;
            let code = v.get("code").and_then(Value::as_str).unwrap_or("");
            assert!(
                s != StatusCode::METHOD_NOT_ALLOWED && code != "no_route",
                "{method} {uri}: the spec lists it but the router answers {s} {v}"
            );
        }
    }
}

/// Every closed list reads back in JSON as it is written in requests: the
/// serde name of each value is its `as_str` (the spec's `enum`).
#[test]
fn closed_lists_serialize_as_they_parse() {
    use jobmesh_protocol::matters::{Channel, MatterCategory, MatterStatus};
    use jobmesh_protocol::record::KeyGroup;
    fn check<T: serde::Serialize>(values: &[T], as_str: impl Fn(&T) -> &'static str) {
        for v in values {
            assert_eq!(serde_json::to_value(v).unwrap(), as_str(v), "serde and as_str disagree");
        }
    }
    check(&WorkType::ALL, |v| v.as_str());
    check(&KeyGroup::ALL, |v| v.as_str());
    check(&PostingStatus::ALL, |v| v.as_str());
    check(&MatterCategory::ALL, |v| v.as_str());
    check(&Channel::ALL, |v| v.as_str());
    check(&MatterStatus::ALL, |v| v.as_str());
}

/// JSON has one number type: `positions: 3.0` is the integer 3, as JSON
/// Schema reads it (Schemathesis sent `352.0` and got a 400); a fraction or
/// a value out of range is still refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_numbers_written_with_a_point_are_integers() {
    let n = node(ApiContext::default()).await;
    let mut body = posting_body("cook", 1);
    body["positions"] = json!(3.0);
    let (s, v) = n.post("/v1/postings", body.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["positions"], 3);
    let id = v["id"].as_str().unwrap().to_owned();
    let (s, v) = n.patch(&format!("/v1/postings/{id}"), json!({"positions": 5.0})).await;
    assert_eq!((s, &v["positions"]), (StatusCode::OK, &json!(5)), "{v}");
    for bad in [json!(3.5), json!(0.0), json!(100001.0), json!(-2.0)] {
        body["positions"] = bad.clone();
        let (s, v) = n.post("/v1/postings", body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
        assert_eq!(code_and_field(&v), ("out_of_range", "positions"), "{bad}: {v}");
    }
}
