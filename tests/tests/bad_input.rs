//! Bad input to the HTTP API: every case gets a 4xx with a JSON
//! `{"error": "..."}` naming the offending field where there is one, and
//! nothing is stored.

use std::time::Duration;

use jobmesh_tests::{posting_body, within, worker_body, Mesh, Reply};
use serde_json::{json, Value};

fn without(mut v: Value, field: &str) -> Value {
    v.as_object_mut().map(|o| o.remove(field));
    v
}

fn with(mut v: Value, field: &str, value: Value) -> Value {
    v[field] = value;
    v
}

/// Require `status` and a JSON object whose `error` is a non-empty string
/// that mentions every word of `names`.
fn check(case: &str, r: &Reply, status: u16, names: &[&str]) -> Result<(), String> {
    println!("{case}: {}", r.describe());
    if r.status != status {
        return Err(format!("{case}: expected HTTP {status}, got {}", r.describe()));
    }
    let Some(err) = r.error() else {
        return Err(format!("{case}: body is not JSON {{\"error\": \"...\"}}: {}", r.describe()));
    };
    if err.trim().is_empty() {
        return Err(format!("{case}: empty error message"));
    }
    if !r.content_type.starts_with("application/json") {
        return Err(format!("{case}: content-type {:?} is not application/json", r.content_type));
    }
    for n in names {
        if !err.contains(n) {
            return Err(format!("{case}: error {err:?} does not name `{n}`"));
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_a_message_and_stores_nothing() {
    within(Duration::from_secs(60), "bad_input", async {
        let mesh = Mesh::start(&["gz"]).await;
        let api = mesh.api("gz");
        let good = posting_body("valid template", 2, Some("gz"));
        let mut problems = Vec::new();

        let posting_cases: Vec<(&str, Value, &[&str])> = vec![
            ("missing title", without(good.clone(), "title"), &["title"]),
            ("missing employer", without(good.clone(), "employer"), &["employer"]),
            ("missing category", without(good.clone(), "category"), &["category"]),
            ("missing work_type", without(good.clone(), "work_type"), &["work_type"]),
            ("missing positions", without(good.clone(), "positions"), &["positions"]),
            ("title is a number", with(good.clone(), "title", json!(5)), &["title"]),
            ("positions is a string", with(good.clone(), "positions", json!("three")), &["positions"]),
            ("positions is fractional", with(good.clone(), "positions", json!(1.5)), &["positions"]),
            ("positions is zero", with(good.clone(), "positions", json!(0)), &["positions"]),
            ("positions is negative", with(good.clone(), "positions", json!(-1)), &["positions"]),
            ("positions is huge", with(good.clone(), "positions", json!(u64::MAX)), &["positions"]),
            ("blank title", with(good.clone(), "title", json!("   ")), &["title"]),
            ("unknown work_type", with(good.clone(), "work_type", json!("gig")), &["work_type"]),
            ("audience Gz/Bad", with(good.clone(), "audience", json!("Gz/Bad")), &["audience"]),
            ("audience with empty segment", with(good.clone(), "audience", json!("gz//a")), &["audience"]),
            ("valid_until 2026-13-01", with(good.clone(), "valid_until", json!("2026-13-01")), &["valid_until"]),
            ("valid_until 2026-02-30", with(good.clone(), "valid_until", json!("2026-02-30")), &["valid_until"]),
            ("valid_until not a date", with(good.clone(), "valid_until", json!("next week")), &["valid_until"]),
            ("unknown field", with(good.clone(), "salary_max", json!(9000)), &["salary_max"]),
            ("title too long", with(good.clone(), "title", json!("x".repeat(10_000))), &["title"]),
            ("body is an array", json!([good.clone()]), &[]),
            ("body is null", Value::Null, &[]),
        ];
        for (case, body, names) in &posting_cases {
            match api.try_post_posting(body).await {
                Ok(r) => {
                    if let Err(e) = check(case, &r, 400, names) {
                        problems.push(e);
                    }
                }
                Err(e) => problems.push(format!("{case}: request failed: {e}")),
            }
        }

        // Not JSON at all.
        for (case, raw) in [("malformed JSON", b"{\"title\": ".to_vec()), ("empty body", Vec::new())] {
            match api.post_raw("/v1/postings", raw).await {
                Ok(r) => {
                    if let Err(e) = check(case, &r, 400, &[]) {
                        problems.push(e);
                    }
                }
                Err(e) => problems.push(format!("{case}: request failed: {e}")),
            }
        }

        // A 2 MiB body: too large, whatever it holds.
        let mut big = good.clone();
        big["title"] = json!("y".repeat(2 * 1024 * 1024));
        // Its own connection: the node answers 413 without reading the body
        // and then closes the connection without saying `Connection: close`,
        // which would break the next request on a pooled connection.
        match api.unpooled().post_raw("/v1/postings", serde_json::to_vec(&big).unwrap_or_default()).await {
            Ok(r) => {
                if let Err(e) = check("2 MiB body", &r, 413, &[]) {
                    problems.push(e);
                }
            }
            Err(e) => problems.push(format!("2 MiB body: request failed: {e}")),
        }

        // Workers.
        let gw = worker_body("valid worker");
        let worker_cases: Vec<(&str, Value, &[&str])> = vec![
            ("worker without name", without(gw.clone(), "name"), &["name"]),
            ("worker without key_group", without(gw.clone(), "key_group"), &["key_group"]),
            ("worker with unknown key_group", with(gw.clone(), "key_group", json!("astronaut")), &["key_group"]),
            ("worker skills not a list", with(gw.clone(), "skills", json!("welding")), &["skills"]),
            ("worker unknown field", with(gw.clone(), "age", json!(30)), &["age"]),
        ];
        for (case, body, names) in &worker_cases {
            match api.post_json("/v1/workers", body).await {
                Ok(r) => {
                    if let Err(e) = check(case, &r, 400, names) {
                        problems.push(e);
                    }
                }
                Err(e) => problems.push(format!("{case}: request failed: {e}")),
            }
        }

        // Placements naming records that do not exist: 404 naming the id.
        let pl = json!({"worker_id": "gz_w999", "posting_id": "gz_p999"});
        match api.post_json("/v1/placements", &pl).await {
            Ok(r) => {
                if let Err(e) = check("placement of unknown worker and posting", &r, 404, &[]) {
                    problems.push(e);
                } else if !r.error().is_some_and(|e| e.contains("gz_w999") || e.contains("gz_p999")) {
                    problems.push(format!("placement of unknown ids: error does not name the id: {}", r.describe()));
                }
            }
            Err(e) => problems.push(format!("placement: request failed: {e}")),
        }
        match api.post_json("/v1/placements", &json!({"worker_id": "gz_w1"})).await {
            Ok(r) => {
                if let Err(e) = check("placement without posting_id", &r, 400, &["posting_id"]) {
                    problems.push(e);
                }
            }
            Err(e) => problems.push(format!("placement: request failed: {e}")),
        }

        // Paging limits outside 1..=5000.
        for limit in ["0", "5001", "-1", "many"] {
            match api.get(&format!("/v1/postings?limit={limit}")).await {
                Ok(r) => {
                    if let Err(e) = check(&format!("GET /v1/postings?limit={limit}"), &r, 400, &["limit"]) {
                        problems.push(e);
                    }
                }
                Err(e) => problems.push(format!("limit={limit}: request failed: {e}")),
            }
        }
        // A record id that cannot exist.
        match api.get("/v1/postings/not-an-id").await {
            Ok(r) if (400..500).contains(&r.status) && r.error().is_some() => {}
            Ok(r) => problems.push(format!("GET /v1/postings/not-an-id: want 4xx with JSON error: {}", r.describe())),
            Err(e) => problems.push(format!("GET bad id: request failed: {e}")),
        }

        // Wrong method, unknown path: JSON errors too.
        for (method, path, status) in [
            (reqwest::Method::DELETE, "/v1/postings", 405),
            (reqwest::Method::PUT, "/v1/workers", 405),
            (reqwest::Method::GET, "/v1/no-such-thing", 404),
        ] {
            let case = format!("{method} {path}");
            match api.request(method, path).await {
                Ok(r) => {
                    if let Err(e) = check(&case, &r, status, &[]) {
                        problems.push(e);
                    }
                }
                Err(e) => problems.push(format!("{case}: request failed: {e}")),
            }
        }

        // The node is still healthy and holds nothing.
        assert!(api.healthy().await, "node unhealthy after bad input\n{}", mesh.log_tail("gz", 40));
        let postings = api.list_all("postings").await.unwrap_or_else(|e| panic!("{e}"));
        let workers = api.list_all("workers").await.unwrap_or_else(|e| panic!("{e}"));
        let placements = api.list_all("placements").await.unwrap_or_else(|e| panic!("{e}"));
        assert!(
            postings.is_empty() && workers.is_empty() && placements.is_empty(),
            "bad input was stored: postings {postings:?} workers {workers:?} placements {placements:?}"
        );
        assert!(problems.is_empty(), "{} bad-input cases answered wrongly:\n{}", problems.len(), problems.join("\n"));

        // And a good one still works afterwards.
        let p = api.post_posting(&good).await;
        assert_eq!(p["title"], "valid template");
        mesh.finish().await;
    })
    .await;
}
