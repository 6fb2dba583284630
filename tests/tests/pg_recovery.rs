//! The PostgreSQL sink across failures, with a real server (see
//! `jobmesh_tests::postgres`): the root killed with SIGKILL mid-mirror,
//! PostgreSQL killed mid-mirror and restarted while a 100,000-record
//! backlog is mirrored, and the link between them cut and healed. After
//! each, the tables equal the root's records field by field, with no row
//! twice and each at its latest version, and the sink's checkpoint reaches
//! the journal's end. Then the configs a node must refuse at start.
//!
//! Backlogs are written straight into the root's store before it starts
//! (`jobmesh bench --fill-store`, the engine's local write path), so the
//! sink has a long way to go and the failure surely lands mid-mirror: each
//! test checks, before it strikes, that the sink has committed part of the
//! backlog and not all of it.

use std::process::Command;
use std::time::{Duration, Instant};

use jobmesh_tests::bin::jobmesh_bin;
use jobmesh_tests::postgres::{compare, Postgres, TcpCut};
use jobmesh_tests::{eventually, posting_body, within, worker_body, Api, Mesh};
use serde_json::{json, Value};

const SCHEMA: &str = "mirror";

/// Config lines for a sink at `url` with the password in `pg.password`.
fn sink_lines(url: &str, batch_rows: usize) -> Vec<String> {
    vec![
        "[sink.postgres]".into(),
        format!("url = \"{url}\""),
        "password_file = \"pg.password\"".into(),
        format!("schema = \"{SCHEMA}\""),
        format!("batch_rows = {batch_rows}"),
        "retry_max_ms = 300".into(),
        "connect_timeout_ms = 2000".into(),
    ]
}

/// A one-office mesh (the root `gz`) with a sink at `url` and `backlog`
/// postings already in its store. Not started.
fn root_with_backlog(url: &str, password: &str, batch_rows: usize, backlog: usize) -> Mesh {
    let lines = sink_lines(url, batch_rows);
    let mesh = Mesh::new_with(&["gz"], |c| c.extra.extend(lines.iter().cloned()));
    let dir = mesh.root().join("nodes/gz");
    std::fs::write(dir.join("pg.password"), format!("{password}\n")).unwrap();
    if backlog > 0 {
        let t = Instant::now();
        let out = Command::new(jobmesh_bin())
            .args(["bench", "--fill-node", "gz", "--fill-records", &backlog.to_string(), "--fill-store"])
            .arg(dir.join("data"))
            .output()
            .unwrap_or_else(|e| panic!("jobmesh bench --fill-store: {e}"));
        assert!(out.status.success(), "fill-store failed: {}", String::from_utf8_lossy(&out.stderr));
        eprintln!("wrote {backlog} postings into the root's store in {:.1} s", t.elapsed().as_secs_f64());
    }
    mesh
}

/// The sink's object in `/v1/status`.
async fn sink(api: &Api) -> Value {
    let st = api.status().await.unwrap_or_else(|e| panic!("status: {e}"));
    st["sink"].clone()
}

/// Wait until the sink has committed part of the backlog (a checkpoint
/// above 0) with more still to go; panics if it finished first (the
/// failure would then not be mid-mirror).
async fn wait_mid_mirror(api: &Api) -> Value {
    eventually("the sink is part way through the backlog", Duration::from_secs(60), || async {
        let s = sink(api).await;
        let (cp, lag) = (s["checkpoint"].as_u64().unwrap_or(0), s["lag_entries"].as_u64().unwrap_or(0));
        if lag == 0 && cp > 0 {
            panic!("the sink caught up before the failure could land mid-mirror: {s}");
        }
        if cp > 0 {
            Ok(s)
        } else {
            Err(format!("not started: {s}"))
        }
    })
    .await
}

/// Everything mirrored and equal to `api`'s records; the table counts.
async fn converged(pg: &Postgres, api: &Api, limit: Duration) -> std::collections::BTreeMap<&'static str, usize> {
    let client = pg.connect_as("analyst", "s3cret", "analytics").await;
    let counts = eventually("the mirror equals the root's records", limit, || async {
        compare::caught_up(api).await?;
        compare::mirror_equals(&client, SCHEMA, api).await
    })
    .await;
    // No row twice: the keys hold, and the history has one row per version.
    for (table, key) in [("postings", "id"), ("summaries", "id"), ("summaries_history", "origin, version")] {
        let r = client
            .query_one(&format!("SELECT count(*), count(DISTINCT ({key})) FROM {SCHEMA}.{table}"), &[])
            .await
            .unwrap();
        assert_eq!(r.get::<_, i64>(0), r.get::<_, i64>(1), "{table}: a row twice");
    }
    counts
}

/// A few writes through the API (a posting, a worker placed on it, a
/// withdrawn posting at version 2, a matter); each answered 201/200.
async fn some_writes(api: &Api, tag: &str) {
    let p = api.post_posting(&posting_body(&format!("{tag} job"), 2, Some("gz"))).await;
    let pid = p["id"].as_str().unwrap().to_string();
    let w = api.post_worker(&worker_body(&format!("{tag} worker"))).await;
    api.post_placement(w["id"].as_str().unwrap(), &pid).await;
    let q = api.post_posting(&posting_body(&format!("{tag} withdrawn"), 1, Some("gz"))).await;
    let r = api
        .patch_json(&format!("/v1/postings/{}", q["id"].as_str().unwrap()), &json!({"status": "withdrawn"}))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.describe());
    let body = json!({"category": "rights_protection", "channel": "hotline_12333", "summary": format!("{tag} wages")});
    let r = api.post_json("/v1/matters", &body).await.unwrap();
    assert_eq!(r.status, 201, "{}", r.describe());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_killed_mid_mirror_resumes_from_the_checkpoint() {
    let Some(pg) = Postgres::start(false) else { return };
    within(Duration::from_secs(200), "root kill -9 mid-mirror", async {
        pg.create_user_and_db("analyst", "s3cret", "analytics").await;
        let mut mesh = root_with_backlog(&pg.url("analyst", "analytics"), "s3cret", 20, 20_000);
        mesh.start_all().await;
        let api = mesh.api("gz");
        let at = wait_mid_mirror(&api).await;
        mesh.kill9("gz");
        eprintln!("killed the root mid-mirror: {at}");
        mesh.start_node("gz").await;
        let after = sink(&api).await;
        let resumed = after["checkpoint"].as_u64().unwrap_or(0);
        assert!(resumed >= at["checkpoint"].as_u64().unwrap_or(0), "the checkpoint went back: {at} then {after}");
        some_writes(&api, "after restart").await;
        let counts = converged(&pg, &api, Duration::from_secs(120)).await;
        assert_eq!(counts["postings"], 20_002, "{counts:?}");
        assert_eq!(counts["matters"], 1, "{counts:?}");
        mesh.finish().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_killed_mid_mirror_of_a_100k_backlog_then_restarted() {
    let Some(mut pg) = Postgres::start(false) else { return };
    within(Duration::from_secs(230), "PostgreSQL kill -9 mid-mirror, 100k backlog", async {
        pg.create_user_and_db("analyst", "s3cret", "analytics").await;
        let mut mesh = root_with_backlog(&pg.url("analyst", "analytics"), "s3cret", 2_000, 100_000);
        let started = Instant::now();
        mesh.start_all().await;
        let api = mesh.api("gz");
        let at = wait_mid_mirror(&api).await;
        pg.kill9();
        eprintln!("killed PostgreSQL mid-mirror: {at}");

        // PostgreSQL down: the API still answers at once, and the status
        // says the sink is behind and why.
        let t = Instant::now();
        some_writes(&api, "while PostgreSQL is down").await;
        let writes = t.elapsed();
        let down = eventually("the status shows the sink down", Duration::from_secs(30), || async {
            let s = sink(&api).await;
            if s["connected"] == false && s["error"].is_string() && s["lag_entries"].as_u64().unwrap_or(0) > 0 {
                Ok(s)
            } else {
                Err(format!("{s}"))
            }
        })
        .await;
        eprintln!("writes while down took {writes:?}; sink {down}");
        assert!(writes < Duration::from_secs(20), "writes waited for PostgreSQL: {writes:?}");
        let metrics = api.get("/metrics").await.unwrap().text;
        assert!(metrics.contains("jobmesh_sink_connected{schema=\"mirror\"} 0"), "{metrics}");

        pg.restart();
        let counts = converged(&pg, &api, Duration::from_secs(150)).await;
        eprintln!("100,000-record backlog mirrored {:.1} s after the root started", started.elapsed().as_secs_f64());
        assert_eq!(counts["postings"], 100_002, "{counts:?}");
        mesh.finish().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_between_the_root_and_postgres_heals() {
    let Some(pg) = Postgres::start(false) else { return };
    within(Duration::from_secs(200), "cut mid-mirror", async {
        pg.create_user_and_db("analyst", "s3cret", "analytics").await;
        let proxy = TcpCut::start(([127, 0, 0, 1], pg.port).into()).await;
        let url = format!("postgresql://analyst@127.0.0.1:{}/analytics", proxy.addr.port());
        let mut mesh = root_with_backlog(&url, "s3cret", 20, 20_000);
        mesh.start_all().await;
        let api = mesh.api("gz");
        let at = wait_mid_mirror(&api).await;
        proxy.cut();
        eprintln!("cut the link mid-mirror: {at}");
        some_writes(&api, "during the cut").await;
        let cut = eventually("the status shows the sink cut off", Duration::from_secs(30), || async {
            let s = sink(&api).await;
            if s["connected"] == false && s["error"].is_string() {
                Ok(s)
            } else {
                Err(format!("{s}"))
            }
        })
        .await;
        // It stays behind while the cut lasts.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let still = sink(&api).await;
        assert!(still["lag_entries"].as_u64().unwrap_or(0) > 0, "behind during the cut: {cut} then {still}");
        proxy.heal();
        let counts = converged(&pg, &api, Duration::from_secs(120)).await;
        assert_eq!(counts["postings"], 20_002, "{counts:?}");
        mesh.finish().await;
    })
    .await;
}

/// The node's log must name `key` and say `what`.
fn refused(log: &str, key: &str, what: &str) {
    assert!(log.contains(key) && log.contains(what), "the refusal must name {key} and say {what:?}:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_sink_config_is_refused_at_start_naming_the_key() {
    let Some(pg) = Postgres::start(false) else { return };
    within(Duration::from_secs(200), "bad sink config", async {
        pg.create_user_and_db("analyst", "s3cret", "analytics").await;
        let limit = Duration::from_secs(30);

        // Unreachable: nothing listens on the port.
        let nobody = jobmesh_tests::mesh::free_tcp().port();
        let mut mesh =
            root_with_backlog(&format!("postgresql://analyst@127.0.0.1:{nobody}/analytics"), "s3cret", 100, 0);
        let (_, log) = mesh.start_expect_failure("gz", limit).await;
        refused(&log, "sink.postgres.url", "cannot reach PostgreSQL");
        mesh.finish().await;

        // A wrong password.
        let mut mesh = root_with_backlog(&pg.url("analyst", "analytics"), "wrong", 100, 0);
        let (_, log) = mesh.start_expect_failure("gz", limit).await;
        refused(&log, "sink.postgres.password_file", "refused the login");
        mesh.finish().await;

        // A role that may not create the schema.
        let admin = pg.admin("postgres").await;
        admin.batch_execute("CREATE ROLE reader LOGIN PASSWORD 'r3ad'").await.unwrap();
        let mut mesh = root_with_backlog(&pg.url("reader", "analytics"), "r3ad", 100, 0);
        let (_, log) = mesh.start_expect_failure("gz", limit).await;
        refused(&log, "sink.postgres.schema", "permission denied");
        mesh.finish().await;

        // A password in the url.
        let url = format!("postgresql://analyst:s3cret@127.0.0.1:{}/analytics", pg.port);
        let mut mesh = root_with_backlog(&url, "s3cret", 100, 0);
        let (_, log) = mesh.start_expect_failure("gz", limit).await;
        refused(&log, "sink.postgres.url", "contains a password");
        mesh.finish().await;

        // A dropped column: the node started once (schema made), then an
        // operator dropped a column the sink writes.
        let mut mesh = root_with_backlog(&pg.url("analyst", "analytics"), "s3cret", 100, 0);
        mesh.start_all().await;
        mesh.stop("gz").await;
        let client = pg.connect_as("analyst", "s3cret", "analytics").await;
        client.batch_execute(&format!("ALTER TABLE {SCHEMA}.placements DROP COLUMN key_group")).await.unwrap();
        let (_, log) = mesh.start_expect_failure("gz", limit).await;
        refused(&log, "sink.postgres.schema", "placements.key_group is missing");
        mesh.finish().await;
    })
    .await;
}
