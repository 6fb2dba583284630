//! What a node accepts from the server it dials as its parent. A raw QUIC
//! server (tests/src/quic.rs) plays `gz` for a real `gz/a` node: first with
//! a certificate from another CA, then with the right certificate but a
//! batch carrying a record whose origin is inside gz/a's own subtree (only
//! gz/a's subtree writes those), then, as a control, a valid batch.

use std::time::Duration;

use jobmesh_protocol::record::{Body, Posting, PostingStatus, Record, RecordId, WorkType};
use jobmesh_protocol::wire::{Batch, Frame, FrameV1, Hello, PROTOCOL_VERSION};
use jobmesh_tests::mesh::free_udp;
use jobmesh_tests::quic::{RawPeer, RawServer, ReadEnd};
use jobmesh_tests::{eventually, nid, within, Mesh, Pki};

const WAIT: Duration = Duration::from_secs(10);
/// The node may be in a reconnect backoff after a refused link.
const REDIAL: Duration = Duration::from_secs(40);

fn posting(id: &str, audience: &str) -> Record {
    let id = RecordId::parse(id).unwrap_or_else(|e| panic!("{e}"));
    Record {
        origin: id.origin(),
        id,
        version: 1,
        body: Body::Posting(Posting {
            title: "from the raw parent".into(),
            employer: "raw parent".into(),
            category: "testing".into(),
            work_type: WorkType::Temporary,
            positions: 2,
            wage: None,
            location: None,
            valid_until: Some("2030-01-31".into()),
            status: PostingStatus::Open,
            audience: nid(audience),
            created_at: 1_700_000_000_000,
            updated_at: 1_700_000_000_000,
        }),
    }
}

/// Read the node's hello, answer with ours and one batch; return the frames
/// read after the batch and how reading ended (None: still open after WAIT,
/// or the node acknowledged the batch).
async fn serve_batch(peer: &mut RawPeer, records: Vec<Record>) -> Result<(Vec<Frame>, Option<String>), String> {
    match peer.read(WAIT).await {
        ReadEnd::Frame(Frame::V1(FrameV1::Hello(h))) => {
            if h.node_id != nid("gz/a") {
                return Err(format!("node's hello names {}", h.node_id));
            }
        }
        other => return Err(format!("expected the node's hello first, got {other:?}")),
    }
    let hello =
        Hello { protocol: PROTOCOL_VERSION, capabilities: 0, node_id: nid("gz"), resume_after: 0, seen_yours: true };
    peer.send(&Frame::V1(FrameV1::Hello(hello))).await?;
    let through = records.len() as u64;
    peer.send(&Frame::V1(FrameV1::Batch(Batch { from: 0, through, records }))).await?;
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut frames = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match peer.read(left).await {
            ReadEnd::Frame(f) => {
                let ack = matches!(&f, Frame::V1(FrameV1::Ack(a)) if a.through >= through);
                frames.push(f);
                if ack {
                    return Ok((frames, None));
                }
            }
            ReadEnd::Closed(e) => return Ok((frames, Some(e))),
            ReadEnd::Timeout => return Ok((frames, None)),
        }
    }
}

fn acked(frames: &[Frame]) -> bool {
    frames.iter().any(|f| matches!(f, Frame::V1(FrameV1::Ack(a)) if a.through > 0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refuses_a_foreign_or_overreaching_parent() {
    within(Duration::from_secs(150), "trust_parent", async {
        let parent_addr = free_udp();
        let mut mesh = Mesh::new_with(&["gz/a"], |c| c.parent = Some(("gz".into(), parent_addr)));
        let right_gz = mesh.pki().issue("gz");
        let other = Pki::init(&mesh.root().join("other-pki"));
        let foreign_gz = other.issue("gz");
        let mut problems = Vec::new();

        // (a) The "parent" shows a certificate from another CA.
        let server = RawServer::bind(parent_addr, &foreign_gz.cert, &foreign_gz.key).unwrap_or_else(|e| panic!("{e}"));
        mesh.start_all().await;
        match server.accept(WAIT).await {
            Err(e) => println!("(a) foreign parent: refused: {e}"),
            Ok(mut peer) => {
                let r = serve_batch(&mut peer, vec![posting("gz_p9", "gz")]).await;
                problems.push(format!("(a) gz/a opened a link to a parent with another CA's certificate: {r:?}"));
            }
        }
        let status = mesh.api("gz/a").status().await.unwrap_or_else(|e| panic!("{e}"));
        if status["parent"]["connected"] != false {
            problems.push(format!("(a) status shows the foreign parent as connected: {status}"));
        }

        // (b) The right CA, but a batch with a record from inside gz/a's own
        // subtree (after a valid one): refused whole, link closed.
        server.set_identity(&right_gz.cert, &right_gz.key).unwrap_or_else(|e| panic!("{e}"));
        let mut peer = server.accept(REDIAL).await.unwrap_or_else(|e| panic!("(b) gz/a never dialed its parent: {e}"));
        let r = serve_batch(&mut peer, vec![posting("gz_p1", "gz"), posting("gz.a.x_p1", "gz")]).await;
        println!("(b) parent sends a record of the child's own subtree: {r:?}");
        match &r {
            Ok((frames, Some(_))) if !acked(frames) => {}
            other => {
                problems.push(format!("(b) gz/a did not refuse a batch with a record of its own subtree: {other:?}"))
            }
        }
        let held = mesh.api("gz/a").list_ids("postings").await.unwrap_or_else(|e| panic!("{e}"));
        if !held.is_empty() {
            problems.push(format!("(b) gz/a stored records of a refused batch from its parent: {held:?}"));
        }

        // (c) Control: a valid batch from the right parent is taken.
        let mut peer =
            server.accept(REDIAL).await.unwrap_or_else(|e| panic!("(c) gz/a never redialed its parent: {e}"));
        let r = serve_batch(&mut peer, vec![posting("gz_p2", "gz")]).await;
        println!("(c) control: {r:?}");
        let api = mesh.api("gz/a");
        eventually("gz/a stores gz_p2 from its parent", WAIT, || async {
            api.get_posting("gz_p2").await?.ok_or_else(|| format!("404 (link outcome {r:?})"))
        })
        .await;
        let held = api.list_ids("postings").await.unwrap_or_else(|e| panic!("{e}"));
        if held.into_iter().collect::<Vec<_>>() != vec!["gz_p2".to_string()] {
            problems.push("(c) after the control gz/a holds other postings than gz_p2".to_string());
        }
        peer.conn.close(0u32.into(), b"done");
        server.shutdown().await;

        assert!(problems.is_empty(), "problems:\n{}\n{}", problems.join("\n"), mesh.log_tail("gz/a", 60));
        mesh.finish().await;
    })
    .await;
}
