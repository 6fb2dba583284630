//! Every route of the HTTP API, through the router the node serves, on a
//! real node state (sled store in a temp dir, engine, flusher): JSON bodies,
//! query strings, paging cursors and path ids are parsed exactly as the
//! handlers parse them.
//!
//! Input: `route byte, method byte, id '\n' query '\n' body`. The id and
//! query are percent-encoded where a URI needs it (so `%` sequences in the
//! input reach the decoder as they are). The node holds posting
//! `gz.a.x_p1` and worker `gz.a.x_w2` so that placements can succeed.
//!
//! A response of 500 or above is a crash: the API answers bad input with a
//! 4xx naming the field, and a healthy store never fails.
#![no_main]

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{header, Method, Request};
use http_body_util::BodyExt;
use jobmesh::api::{router, ApiContext};
use jobmesh::metrics::Metrics;
use jobmesh::state::now_ms;
use jobmesh::storage::SledKv;
use jobmesh_protocol::{Engine, NodeId};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

const ROUTES: &[&str] = &[
    "/v1/postings",
    "/v1/postings/",
    "/v1/workers",
    "/v1/workers/",
    "/v1/placements",
    "/v1/placements/",
    "/v1/summary",
    "/v1/status",
    "/metrics",
    "/healthz",
    "/",
];

struct Node {
    rt: tokio::runtime::Runtime,
    router: axum::Router,
    _host: jobmesh::driver::EngineHost,
    _dir: tempfile::TempDir,
}

fn node() -> &'static Node {
    static NODE: OnceLock<Node> = OnceLock::new();
    NODE.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
        let dir = tempfile::tempdir().expect("temp dir");
        let (router, host) = rt.block_on(async {
            let kv = SledKv::open(dir.path()).expect("store");
            let me = NodeId::parse("gz/a/x").expect("node id");
            let engine = Engine::open(me, kv.clone(), Default::default(), now_ms()).expect("engine");
            let (state, host) =
                jobmesh::driver::start(engine, kv, Arc::new(Metrics::new()), Default::default()).expect("engine host");
            let router = router(state, Arc::new(ApiContext::default()));
            for body in [
                r#"{"title":"Waiter","employer":"Huaxi Hotel","category":"catering","work_type":"full_time","positions":1000}"#,
                r#"{"name":"Li Wei","key_group":"migrant_worker"}"#,
            ] {
                let uri = if body.contains("title") { "/v1/postings" } else { "/v1/workers" };
                let req = Request::post(uri)
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(body))
                    .expect("request");
                let resp = router.clone().oneshot(req).await.expect("response");
                assert_eq!(resp.status(), 201, "fixture {uri}");
            }
            (router, host)
        });
        Node { rt, router, _host: host, _dir: dir }
    })
}

/// Percent-encode what a URI cannot carry; keep `keep` as it is.
fn encode(s: &[u8], keep: &[u8]) -> String {
    let mut out = String::new();
    for &b in s {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || keep.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let [route, method, rest @ ..] = data else { return };
    let mut parts = rest.splitn(3, |&b| b == b'\n');
    let id = parts.next().unwrap_or_default();
    let query = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default().to_vec();
    let path = ROUTES[usize::from(*route) % ROUTES.len()];
    let mut uri = path.to_owned();
    if path.ends_with('/') && path.len() > 1 {
        uri.push_str(&encode(id, b""));
    }
    if !query.is_empty() {
        uri.push('?');
        uri.push_str(&encode(query, b"=&%+"));
    }
    let method = [Method::GET, Method::POST, Method::PATCH, Method::DELETE][usize::from(*method) % 4].clone();
    let Ok(req) = Request::builder()
        .method(method.clone())
        .uri(&uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.clone()))
    else {
        return;
    };
    let n = node();
    n.rt.block_on(async {
        let resp = n.router.clone().oneshot(req).await.expect("the router always answers");
        let status = resp.status();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        assert!(
            !status.is_server_error(),
            "{method} {uri} {:?} → {status}: {}",
            String::from_utf8_lossy(&body),
            String::from_utf8_lossy(&bytes)
        );
    });
});
