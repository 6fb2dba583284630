//! A certified child that sends figures no office could have: a raw QUIC
//! peer with a valid certificate for `gz/a` (tests/src/quic.rs) first sends
//! a sane summary (the control: acknowledged and counted), then summaries
//! whose counts are out of bounds — huge enough to overflow the province's
//! totals, negative, or for impossible days, for itself and for an office
//! below it. Each batch is refused whole, the link is closed, the refusal is
//! counted in `/metrics`, and the province's totals stay as the control left
//! them.

use std::time::Duration;

use jobmesh_protocol::figures::{Breakdown, Daily, Figures, MAX_COUNT};
use jobmesh_protocol::record::{Body, Record, RecordId, Summary};
use jobmesh_protocol::wire::{Batch, Frame, FrameV1, Hello, PROTOCOL_VERSION};
use jobmesh_tests::pki::Issued;
use jobmesh_tests::quic::{RawPeer, ReadEnd};
use jobmesh_tests::{eventually, nid, within, Mesh};
use serde_json::Value;

const CLOSE_WAIT: Duration = Duration::from_secs(10);

fn summary(office: &str, version: u64, figures: Figures) -> Record {
    let origin = nid(office);
    Record {
        id: RecordId::summary(&origin),
        origin,
        version,
        body: Body::Summary(Summary { generated_at: 1_765_000_000_000 + version, figures }),
    }
}

/// Send one batch as the child `gz/a`; `Ok(through)` if the province
/// acknowledged it, `Err(how)` if it closed the link without doing so.
async fn send(mesh: &Mesh, who: &Issued, records: Vec<Record>) -> Result<u64, String> {
    let mut peer = RawPeer::connect(mesh.listen_addr("gz"), &who.cert, &who.key)
        .await
        .unwrap_or_else(|e| panic!("the certified child cannot connect: {e}"));
    let hello =
        Hello { protocol: PROTOCOL_VERSION, capabilities: 0, node_id: nid("gz/a"), resume_after: 0, seen_yours: false };
    peer.open().await.unwrap_or_else(|e| panic!("open: {e}"));
    peer.send(&Frame::V1(FrameV1::Hello(hello))).await.unwrap_or_else(|e| panic!("hello: {e}"));
    // Continue the child's journal where the province says it holds it, so
    // that the batch is new to it (an old range is acknowledged unread).
    let deadline = tokio::time::Instant::now() + CLOSE_WAIT;
    let from = loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match peer.read(left).await {
            ReadEnd::Frame(Frame::V1(FrameV1::Hello(h))) => break h.resume_after,
            ReadEnd::Frame(_) => {}
            other => panic!("no hello from the province: {other:?}"),
        }
    };
    let through = from + records.len() as u64;
    peer.send(&Frame::V1(FrameV1::Batch(Batch { from, through, records })))
        .await
        .unwrap_or_else(|e| panic!("batch: {e}"));
    let outcome = loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match peer.read(left).await {
            ReadEnd::Frame(Frame::V1(FrameV1::Ack(a))) if a.through >= through => break Ok(a.through),
            ReadEnd::Frame(_) => {}
            ReadEnd::Closed(e) => break Err(format!("closed: {e}")),
            ReadEnd::Timeout => panic!("the province neither acknowledged nor refused within {CLOSE_WAIT:?}"),
        }
    };
    peer.close().await;
    outcome
}

async fn totals(mesh: &Mesh) -> Value {
    let s = mesh.api("gz").summary().await.unwrap_or_else(|e| panic!("summary: {e}"));
    serde_json::json!({ "subtree": s["subtree"], "by_category": s["by_category"], "daily": s["daily"] })
}

/// `jobmesh_frames_refused_total{reason="malformed"}` at the province.
async fn malformed_refusals(mesh: &Mesh) -> u64 {
    let text = mesh.api("gz").get("/metrics").await.unwrap_or_else(|e| panic!("metrics: {e}")).text;
    text.lines()
        .filter(|l| l.contains("frames_refused") && l.contains("reason=\"malformed\"") && !l.starts_with('#'))
        .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_bound_figures_from_a_certified_child_are_refused() {
    within(Duration::from_secs(120), "hostile_child", async {
        let mesh = Mesh::start(&["gz"]).await;
        let child = mesh.pki().issue("gz/a");

        // Control: sane figures are acknowledged and counted.
        let mut sane = Figures::default();
        sane.totals.placements = 7;
        sane.totals.positions_filled = 7;
        sane.totals.workers_registered = 40;
        sane.by_category.insert("catering".into(), Breakdown { postings_open: 0, positions_open: 0, placements: 7 });
        let acked = send(&mesh, &child, vec![summary("gz/a", 1, sane)]).await;
        assert!(acked.is_ok(), "the control summary was refused: {acked:?}\n{}", mesh.log_tail("gz", 40));
        let before = eventually("the province counts the control summary", Duration::from_secs(15), || async {
            let t = totals(&mesh).await;
            if t["subtree"]["placements"] == 7 && t["subtree"]["workers_registered"] == 40 {
                Ok(t)
            } else {
                Err(format!("totals {t}"))
            }
        })
        .await;
        let refusals_before = malformed_refusals(&mesh).await;

        let huge = |f: fn(&mut Figures)| {
            let mut x = Figures::default();
            f(&mut x);
            x
        };
        let cases: Vec<(&str, Vec<Record>)> = vec![
            (
                "counts that overflow i64 when summed",
                vec![
                    summary("gz/a", 2, huge(|f| f.totals.placements = i64::MAX)),
                    summary("gz/a/x", 1, huge(|f| f.totals.placements = i64::MAX)),
                ],
            ),
            (
                "open positions beyond any office",
                vec![summary("gz/a", 3, huge(|f| f.totals.positions_open = i64::MAX))],
            ),
            ("a negative count", vec![summary("gz/a", 4, huge(|f| f.totals.workers_seeking = -1_000))]),
            (
                "a breakdown entry over the bound",
                vec![summary(
                    "gz/a",
                    5,
                    huge(|f| {
                        f.by_category.insert(
                            "catering".into(),
                            Breakdown { postings_open: MAX_COUNT + 1, positions_open: 0, placements: 0 },
                        );
                    }),
                )],
            ),
            (
                "a day before 1970",
                vec![summary(
                    "gz/a",
                    6,
                    huge(|f| {
                        f.daily.insert(-3, Daily { postings_published: 1, placements: 0 });
                    }),
                )],
            ),
            (
                "a grandchild's summary with huge values",
                vec![summary("gz/a/x", 1, huge(|f| f.holds.postings = i64::MAX))],
            ),
        ];
        let mut problems = Vec::new();
        let mut refused = 0;
        for (case, records) in cases {
            match send(&mesh, &child, records).await {
                Ok(t) => problems.push(format!("{case}: acknowledged through {t}")),
                Err(how) => {
                    refused += 1;
                    println!("{case}: refused ({how})");
                }
            }
            let now = totals(&mesh).await;
            if now != before {
                problems.push(format!("{case}: the province's totals changed from {before} to {now}"));
            }
        }
        let counted = malformed_refusals(&mesh).await - refusals_before;
        println!("{refused} batches refused; /metrics counted {counted} more malformed refusals");
        if counted < refused {
            problems.push(format!("{refused} refusals but /metrics counted {counted}"));
        }
        let log = mesh.log("gz");
        if !log.contains("figures") || !log.contains("refused a batch") {
            problems.push("the province's log does not say it refused figures".into());
        }
        assert!(mesh.api("gz").healthy().await, "gz unhealthy after the hostile child");
        assert!(problems.is_empty(), "{}\n{}", problems.join("\n"), mesh.log_tail("gz", 40));
        mesh.finish().await;
    })
    .await;
}
