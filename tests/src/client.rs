//! A small HTTP client for one node's API (contract: design.md,
//! "Interfaces"). Methods that a test expects to succeed panic with the
//! node's answer; `try_*` and listing methods return `Result<_, String>` so
//! that [`crate::eventually`] can retry them while a node restarts.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};

/// Timeout of one request: a node that hangs fails the request, not the
/// whole test run.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Page size the listing helpers ask for, small enough that paging is
/// exercised by every test with a few hundred records.
pub const PAGE: usize = 500;
/// Most pages one listing may take before the helper calls it a loop.
pub const MAX_PAGES: usize = 1000;

/// One HTTP answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub text: String,
    /// The body parsed as JSON, if it is JSON.
    pub json: Option<Value>,
}

impl Reply {
    /// The `error` string of a JSON error body.
    pub fn error(&self) -> Option<&str> {
        self.json.as_ref().and_then(|j| j.get("error")).and_then(Value::as_str)
    }

    /// Short description for assertion messages.
    pub fn describe(&self) -> String {
        let body: String = self.text.chars().take(600).collect();
        format!("HTTP {} ({}) {body}", self.status, self.content_type)
    }
}

/// Client for one node's API.
#[derive(Debug, Clone)]
pub struct Api {
    base: String,
    http: reqwest::Client,
}

/// A shared reqwest client (connection pool); one per test is plenty.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(3))
        .pool_max_idle_per_host(16)
        .build()
        .unwrap_or_else(|e| panic!("reqwest client: {e}"))
}

impl Api {
    pub fn new(base: impl Into<String>, http: reqwest::Client) -> Api {
        Api { base: base.into(), http }
    }

    /// The same node through a client of its own that keeps no idle
    /// connections: for requests after which the node may close the
    /// connection (a 413 on a body it did not read), so that they cannot
    /// break a pooled connection the next request would reuse.
    pub fn unpooled(&self) -> Api {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .pool_max_idle_per_host(0)
            .build()
            .unwrap_or_else(|e| panic!("reqwest client: {e}"));
        Api { base: self.base.clone(), http }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> &str {
        &self.base
    }

    async fn reply(resp: Result<reqwest::Response, reqwest::Error>) -> Result<Reply, String> {
        let resp = resp.map_err(|e| format!("request failed: {e}"))?;
        let status = resp.status().as_u16();
        let content_type =
            resp.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let text = resp.text().await.map_err(|e| format!("reading body of HTTP {status}: {e}"))?;
        let json = serde_json::from_str(&text).ok();
        Ok(Reply { status, content_type, text, json })
    }

    /// GET a path (with query string if any).
    pub async fn get(&self, path: &str) -> Result<Reply, String> {
        Self::reply(self.http.get(format!("{}{path}", self.base)).send().await).await
    }

    /// GET with query parameters (encoded by reqwest).
    pub async fn get_query(&self, path: &str, query: &[(&str, String)]) -> Result<Reply, String> {
        Self::reply(self.http.get(format!("{}{path}", self.base)).query(query).send().await).await
    }

    /// Any method on a path, without a body.
    pub async fn request(&self, method: reqwest::Method, path: &str) -> Result<Reply, String> {
        Self::reply(self.http.request(method, format!("{}{path}", self.base)).send().await).await
    }

    /// POST a JSON value.
    pub async fn post_json(&self, path: &str, body: &Value) -> Result<Reply, String> {
        Self::reply(self.http.post(format!("{}{path}", self.base)).json(body).send().await).await
    }

    /// POST raw bytes with `Content-Type: application/json`.
    pub async fn post_raw(&self, path: &str, body: Vec<u8>) -> Result<Reply, String> {
        Self::reply(
            self.http
                .post(format!("{}{path}", self.base))
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body)
                .send()
                .await,
        )
        .await
    }

    /// PATCH a JSON value.
    pub async fn patch_json(&self, path: &str, body: &Value) -> Result<Reply, String> {
        Self::reply(self.http.patch(format!("{}{path}", self.base)).json(body).send().await).await
    }

    /// POST and require `201` with a JSON object that has a string `id`.
    async fn create(&self, path: &str, body: &Value) -> Value {
        let r = self.post_json(path, body).await.unwrap_or_else(|e| panic!("POST {}{path}: {e}", self.base));
        assert_eq!(r.status, 201, "POST {}{path} {body} should be 201: {}", self.base, r.describe());
        let v = r.json.unwrap_or_else(|| panic!("POST {}{path}: 201 without a JSON body: {}", self.base, r.text));
        assert!(v["id"].is_string(), "POST {}{path}: 201 body has no string id: {v}", self.base);
        v
    }

    /// POST /v1/postings; returns the stored posting.
    pub async fn post_posting(&self, body: &Value) -> Value {
        self.create("/v1/postings", body).await
    }

    /// POST /v1/postings without judging the answer.
    pub async fn try_post_posting(&self, body: &Value) -> Result<Reply, String> {
        self.post_json("/v1/postings", body).await
    }

    /// POST /v1/workers; returns the stored worker.
    pub async fn post_worker(&self, body: &Value) -> Value {
        self.create("/v1/workers", body).await
    }

    /// POST /v1/placements `{worker_id, posting_id}`; returns the placement.
    pub async fn post_placement(&self, worker_id: &str, posting_id: &str) -> Value {
        self.create("/v1/placements", &json!({"worker_id": worker_id, "posting_id": posting_id})).await
    }

    /// GET one record: `Ok(Some)` on 200, `Ok(None)` on 404, `Err` otherwise.
    pub async fn get_one(&self, collection: &str, id: &str) -> Result<Option<Value>, String> {
        let r = self.get(&format!("/v1/{collection}/{id}")).await?;
        match r.status {
            200 => r.json.map(Some).ok_or_else(|| format!("GET {collection}/{id}: 200 without JSON: {}", r.text)),
            404 => Ok(None),
            _ => Err(format!("GET {}/v1/{collection}/{id}: {}", self.base, r.describe())),
        }
    }

    pub async fn get_posting(&self, id: &str) -> Result<Option<Value>, String> {
        self.get_one("postings", id).await
    }

    pub async fn get_worker(&self, id: &str) -> Result<Option<Value>, String> {
        self.get_one("workers", id).await
    }

    /// Every item of a list endpoint (`/v1/postings` → key `postings`),
    /// following `next` cursors. Checks the paging contract on the way: each
    /// page is a JSON object with an array under `key` and a `next` that is a
    /// string or null, no id shows twice, ids are in ascending order.
    pub async fn list_all(&self, collection: &str) -> Result<Vec<Value>, String> {
        self.list_with(collection, PAGE, &[]).await
    }

    /// [`Api::list_all`] with a page size and filters (`("open", "true")`).
    pub async fn list_with(
        &self,
        collection: &str,
        limit: usize,
        filters: &[(&str, &str)],
    ) -> Result<Vec<Value>, String> {
        let path = format!("/v1/{collection}");
        let mut all = Vec::new();
        let mut seen = BTreeSet::new();
        let mut after: Option<String> = None;
        let mut last_id: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut q = vec![("limit", limit.to_string())];
            q.extend(filters.iter().map(|(k, v)| (*k, v.to_string())));
            if let Some(a) = &after {
                q.push(("after", a.clone()));
            }
            let r = self.get_query(&path, &q).await?;
            if r.status != 200 {
                return Err(format!("GET {}{path} {q:?}: {}", self.base, r.describe()));
            }
            let page = r.json.ok_or_else(|| format!("GET {}{path}: not JSON: {}", self.base, r.text))?;
            let items = page[collection]
                .as_array()
                .ok_or_else(|| format!("GET {}{path}: no `{collection}` array in {page}", self.base))?;
            for item in items {
                let id = item["id"].as_str().ok_or_else(|| format!("{collection} item without id: {item}"))?;
                if !seen.insert(id.to_string()) {
                    return Err(format!("GET {}{path}: id {id} listed twice while paging", self.base));
                }
                if let Some(prev) = &last_id {
                    if prev.as_str() >= id {
                        return Err(format!(
                            "GET {}{path}: ids out of order while paging: {prev} then {id}",
                            self.base
                        ));
                    }
                }
                last_id = Some(id.to_string());
                all.push(item.clone());
            }
            match &page["next"] {
                Value::Null => return Ok(all),
                Value::String(c) => {
                    if items.is_empty() {
                        return Err(format!("GET {}{path}: empty page with next={c:?}", self.base));
                    }
                    after = Some(c.clone());
                }
                other => return Err(format!("GET {}{path}: `next` is neither a string nor null: {other}", self.base)),
            }
        }
        Err(format!("GET {}{path}: more than {MAX_PAGES} pages", self.base))
    }

    /// The ids of every item of a list endpoint.
    pub async fn list_ids(&self, collection: &str) -> Result<BTreeSet<String>, String> {
        Ok(self.list_all(collection).await?.iter().filter_map(|v| v["id"].as_str().map(str::to_string)).collect())
    }

    /// GET /v1/summary (200 required).
    pub async fn summary(&self) -> Result<Value, String> {
        self.get_json("/v1/summary").await
    }

    /// GET /v1/status (200 required).
    pub async fn status(&self) -> Result<Value, String> {
        self.get_json("/v1/status").await
    }

    /// GET a path that must answer 200 with JSON.
    pub async fn get_json(&self, path: &str) -> Result<Value, String> {
        let r = self.get(path).await?;
        if r.status != 200 {
            return Err(format!("GET {}{path}: {}", self.base, r.describe()));
        }
        r.json.ok_or_else(|| format!("GET {}{path}: not JSON: {}", self.base, r.text))
    }

    /// GET /healthz answers 200.
    pub async fn healthy(&self) -> bool {
        matches!(self.get("/healthz").await, Ok(r) if r.status == 200)
    }
}

/// A valid posting body with a distinguishing title.
pub fn posting_body(title: &str, positions: u32, audience: Option<&str>) -> Value {
    let mut v = json!({
        "title": title,
        "employer": "Guizhou Test Works",
        "category": "manufacturing",
        "work_type": "full_time",
        "positions": positions,
        "wage": "4000-5000 CNY/month",
        "location": "Guiyang",
        "valid_until": "2030-12-31",
    });
    if let Some(a) = audience {
        v["audience"] = json!(a);
    }
    v
}

/// A valid worker body.
pub fn worker_body(name: &str) -> Value {
    json!({
        "name": name,
        "key_group": "migrant_worker",
        "phone": "13800000000",
        "skills": ["welding", "forklift"],
        "wanted_work_type": "full_time",
    })
}
