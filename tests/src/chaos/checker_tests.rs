//! Tests of [`super::evaluate`]: the checker must not be vacuous, each
//! kind of damage to a converged snapshot is reported.

use serde_json::json;

use super::*;

const TOKEN_SEED: u64 = 42;

fn totals(po: i64, pso: i64, wr: i64, ws: i64) -> Value {
    json!({"postings_open": po, "positions_open": pso, "positions_filled": 0,
           "workers_registered": wr, "workers_seeking": ws, "placements": 0})
}

/// gz with children gz/a and gz/b; a posting at gz/a for gz/a's
/// subtree (held by gz/a and gz), a worker at gz/b (held by gz/b and
/// gz), a posting at gz for everyone.
fn converged() -> (Snapshot, AckLog) {
    let log = AckLog::new(TOKEN_SEED);
    let tok = |n: u32| format!("cw{TOKEN_SEED}-{n}");
    let p1 = json!({"id": "gz.a_p1", "origin": "gz/a", "version": 2, "audience": "gz/a", "positions": 3,
                    "filled": 0, "remaining": 3, "status": "open", "title": tok(1)});
    let p2 = json!({"id": "gz_p1", "origin": "gz", "version": 1, "audience": "gz", "positions": 1,
                    "filled": 0, "remaining": 1, "status": "open", "title": tok(2)});
    let w1 = json!({"id": "gz.b_w1", "origin": "gz/b", "version": 1, "name": tok(3),
                    "status": "seeking", "placements": 0});
    let mut s = Snapshot::default();
    let mk = |ps: Vec<&Value>, ws: Vec<&Value>| {
        let mut m = BTreeMap::new();
        m.insert("postings", ps.into_iter().map(|v| (v["id"].as_str().unwrap_or("").to_string(), v.clone())).collect());
        m.insert("workers", ws.into_iter().map(|v| (v["id"].as_str().unwrap_or("").to_string(), v.clone())).collect());
        m.insert("placements", Listing::new());
        m
    };
    s.nodes.insert("gz".into(), mk(vec![&p1, &p2], vec![&w1]));
    s.nodes.insert("gz/a".into(), mk(vec![&p1, &p2], vec![]));
    s.nodes.insert("gz/b".into(), mk(vec![&p2], vec![&w1]));
    for n in ["gz", "gz/a", "gz/b"] {
        s.status.insert(n.into(), json!({"records": {"fills": 0}}));
    }
    s.summary = json!({
        "subtree": totals(2, 4, 1, 1),
        "nodes": [
            {"node_id": "gz", "totals": totals(1, 1, 0, 0)},
            {"node_id": "gz/a", "totals": totals(1, 3, 0, 0)},
            {"node_id": "gz/b", "totals": totals(0, 0, 1, 1)},
        ]
    });
    log.ack(WriteKind::Posting, "gz.a_p1", "gz/a", 1);
    log.ack(WriteKind::Patch, "gz.a_p1", "gz/a", 2);
    log.ack(WriteKind::Worker, "gz.b_w1", "gz/b", 1);
    (s, log)
}

fn posting_at<'a>(s: &'a mut Snapshot, node: &str) -> &'a mut Listing {
    s.nodes.get_mut(node).and_then(|c| c.get_mut("postings")).unwrap_or_else(|| panic!("no {node}"))
}

#[test]
fn a_converged_snapshot_passes() {
    let (s, log) = converged();
    let ev = evaluate(&s, &log, "gz");
    assert!(ev.problems.is_empty() && ev.lost.is_empty() && ev.duplicated.is_empty(), "{ev:?}");
    assert_eq!(ev.records["postings"], 2);
}

#[test]
fn a_missing_replica_is_found() {
    let (mut s, log) = converged();
    posting_at(&mut s, "gz").remove("gz.a_p1");
    let ev = evaluate(&s, &log, "gz");
    assert!(ev.problems.iter().any(|p| p.contains("gz lacks 1 postings")), "{:?}", ev.problems);
}

#[test]
fn a_record_where_the_rule_does_not_send_it_is_found() {
    let (mut s, log) = converged();
    let p1 = posting_at(&mut s, "gz/a")["gz.a_p1"].clone();
    posting_at(&mut s, "gz/b").insert("gz.a_p1".into(), p1);
    let ev = evaluate(&s, &log, "gz");
    assert!(ev.problems.iter().any(|p| p.contains("gz/b holds 1 postings it should not")), "{:?}", ev.problems);
}

#[test]
fn an_old_version_is_found() {
    let (mut s, log) = converged();
    if let Some(v) = posting_at(&mut s, "gz").get_mut("gz.a_p1") {
        v["version"] = json!(1);
    }
    let ev = evaluate(&s, &log, "gz");
    assert!(ev.problems.iter().any(|p| p.contains("old version")), "{:?}", ev.problems);
}

#[test]
fn a_lost_acknowledged_write_is_found() {
    let (mut s, log) = converged();
    // Gone everywhere: the mesh agrees, but the 201 was broken.
    for n in ["gz", "gz/a"] {
        posting_at(&mut s, n).remove("gz.a_p1");
    }
    let mut sm = s.summary.clone();
    sm["nodes"][1]["totals"] = totals(0, 0, 0, 0);
    sm["subtree"] = totals(1, 1, 1, 1);
    s.summary = sm;
    let ev = evaluate(&s, &log, "gz");
    assert!(ev.problems.is_empty(), "{:?}", ev.problems);
    assert_eq!(ev.lost.len(), 1, "{:?}", ev.lost);
    // Behind the acknowledged version is lost too.
    let (mut s, log) = converged();
    for n in ["gz", "gz/a"] {
        if let Some(v) = posting_at(&mut s, n).get_mut("gz.a_p1") {
            v["version"] = json!(1);
        }
    }
    assert_eq!(evaluate(&s, &log, "gz").lost.len(), 1);
}

#[test]
fn one_write_stored_twice_is_found() {
    let (mut s, log) = converged();
    let mut twin = posting_at(&mut s, "gz")["gz_p1"].clone();
    twin["id"] = json!("gz_p2");
    for n in ["gz", "gz/a", "gz/b"] {
        posting_at(&mut s, n).insert("gz_p2".into(), twin.clone());
    }
    s.summary["nodes"][0]["totals"] = totals(2, 2, 0, 0);
    s.summary["subtree"] = totals(3, 5, 1, 1);
    let ev = evaluate(&s, &log, "gz");
    assert!(ev.problems.is_empty(), "{:?}", ev.problems);
    assert_eq!(ev.duplicated.len(), 1, "{:?}", ev.duplicated);
}

#[test]
fn wrong_figures_at_the_root_are_found() {
    let (mut s, log) = converged();
    s.summary["nodes"][2]["totals"]["workers_seeking"] = json!(0);
    let ev = evaluate(&s, &log, "gz");
    assert!(ev.problems.iter().any(|p| p.contains("row gz/b: workers_seeking=0 (expected 1)")), "{:?}", ev.problems);
    let (mut s, log) = converged();
    s.summary["subtree"]["positions_open"] = json!(5);
    assert!(evaluate(&s, &log, "gz").problems.iter().any(|p| p.contains("subtree: positions_open=5")));
}

#[test]
fn a_wrong_fill_count_is_found() {
    let (mut s, log) = converged();
    s.status.insert("gz/b".into(), json!({"records": {"fills": 1}}));
    let ev = evaluate(&s, &log, "gz");
    assert!(
        ev.problems.iter().any(|p| p.contains("gz/b /v1/status records.fills = 1, expected 0")),
        "{:?}",
        ev.problems
    );
}

#[test]
fn an_open_posting_past_its_valid_until_is_found() {
    let (mut s, log) = converged();
    for node in ["gz", "gz/a"] {
        if let Some(p) = posting_at(&mut s, node).get_mut("gz.a_p1") {
            p["valid_until"] = json!("2020-01-01");
        }
    }
    let ev = evaluate(&s, &log, "gz");
    assert!(ev.problems.iter().any(|p| p.contains("open past its valid_until")), "{:?}", ev.problems);
}
