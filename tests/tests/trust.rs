//! What a node's QUIC listener accepts from a peer it did not choose. A raw
//! QUIC client (tests/src/quic.rs) plays the peer with real certificates:
//! from another CA, from the right CA for a valid child, for a node that is
//! not a direct child, and for a child that claims to be someone else.
//! "A peer with a certificate from another CA, or one that sends records
//! outside its subtree, gets nothing in and changes nothing."
//!
//! The raw client accepts any server certificate: the tests are about what
//! the SERVER accepts (see the module doc of `jobmesh_tests::quic`).

use std::time::Duration;

use jobmesh_protocol::record::{Body, Posting, PostingStatus, Record, RecordId, WorkType};
use jobmesh_protocol::wire::{
    encode_frame, Batch, Frame, FrameV1, Hello, MAX_BATCH_RECORDS, MAX_FRAME_BYTES, PROTOCOL_VERSION,
};
use jobmesh_tests::pki::Issued;
use jobmesh_tests::quic::{RawPeer, ReadEnd};
use jobmesh_tests::{eventually, nid, within, Mesh, Pki};

const CLOSE_WAIT: Duration = Duration::from_secs(10);

fn posting(id: &str, audience: &str) -> Record {
    let id = RecordId::parse(id).unwrap_or_else(|e| panic!("{e}"));
    Record {
        origin: id.origin(),
        id,
        version: 1,
        body: Body::Posting(Posting {
            title: "raw peer posting".into(),
            employer: "raw peer".into(),
            category: "testing".into(),
            work_type: WorkType::OddJob,
            positions: 1,
            wage: None,
            location: None,
            valid_until: None,
            status: PostingStatus::Open,
            audience: nid(audience),
            created_at: 1_700_000_000_000,
            updated_at: 1_700_000_000_000,
        }),
    }
}

fn hello(claim: &str) -> Frame {
    Frame::V1(FrameV1::Hello(Hello {
        protocol: PROTOCOL_VERSION,
        capabilities: 0,
        node_id: nid(claim),
        resume_after: 0,
        seen_yours: false,
    }))
}

fn batch(records: Vec<Record>) -> Frame {
    Frame::V1(FrameV1::Batch(Batch { from: 0, through: records.len() as u64, records }))
}

fn acked(frames: &[Frame]) -> Option<u64> {
    frames.iter().find_map(|f| match f {
        Frame::V1(FrameV1::Ack(a)) if a.through > 0 => Some(a.through),
        _ => None,
    })
}

/// Connect as `who`, say hello as `claim`, send one batch, and report how the
/// node reacted: `Refused(how)` if the handshake failed or the node closed
/// the link without acknowledging the batch; `NotRefused(detail)` otherwise.
#[derive(Debug)]
enum Outcome {
    Refused(String),
    NotRefused(String),
}

async fn attempt(mesh: &Mesh, who: &Issued, claim: &str, records: Vec<Record>) -> Outcome {
    let mut peer = match RawPeer::connect(mesh.listen_addr("gz"), &who.cert, &who.key).await {
        Ok(p) => p,
        Err(e) => return Outcome::Refused(format!("handshake: {e}")),
    };
    let sent = async {
        peer.open().await?;
        peer.send(&hello(claim)).await?;
        peer.send(&batch(records)).await
    }
    .await;
    if let Err(e) = sent {
        return Outcome::Refused(format!("sending: {e}"));
    }
    // Read until the node acknowledges the batch, closes, or the wait ends.
    let deadline = tokio::time::Instant::now() + CLOSE_WAIT;
    let mut frames = Vec::new();
    let end = loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match peer.read(left).await {
            ReadEnd::Frame(f) => {
                frames.push(f);
                if acked(&frames).is_some() {
                    break None;
                }
            }
            ReadEnd::Closed(e) => break Some(e),
            ReadEnd::Timeout => break None,
        }
    };
    let closed = peer.closed(Duration::from_secs(2)).await;
    let outcome = match (acked(&frames), end, closed) {
        (Some(t), _, _) => Outcome::NotRefused(format!("node acknowledged the batch through {t}; frames {frames:?}")),
        (None, Some(end), Some(reason)) => {
            Outcome::Refused(format!("closed: read ended with {end}; connection closed: {reason}"))
        }
        (None, end, closed) => Outcome::NotRefused(format!(
            "the node did not close the connection within {CLOSE_WAIT:?} (read end {end:?}, close {closed:?}); frames {frames:?}"
        )),
    };
    peer.close().await;
    outcome
}

/// Connect as the valid child gz/a, say hello, then write `bytes` raw: the
/// node must close the connection (a malformed or oversized frame).
async fn attempt_raw(mesh: &Mesh, who: &Issued, bytes: &[u8]) -> Outcome {
    let mut peer = match RawPeer::connect(mesh.listen_addr("gz"), &who.cert, &who.key).await {
        Ok(p) => p,
        Err(e) => return Outcome::NotRefused(format!("the valid child could not even connect: {e}")),
    };
    let sent = async {
        peer.open().await?;
        peer.send(&hello("gz/a")).await?;
        peer.send_raw(bytes).await
    }
    .await;
    let outcome = match (sent, peer.closed(CLOSE_WAIT).await) {
        (_, Some(reason)) => Outcome::Refused(format!("connection closed: {reason}")),
        (Err(e), None) => Outcome::NotRefused(format!("write failed ({e}) but the connection stayed open")),
        (Ok(()), None) => Outcome::NotRefused(format!("connection still open {CLOSE_WAIT:?} after the bad frame")),
    };
    peer.close().await;
    outcome
}

async fn postings_at_gz(mesh: &Mesh) -> Vec<String> {
    mesh.api("gz").list_ids("postings").await.unwrap_or_else(|e| panic!("{e}")).into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refuses_foreign_and_overreaching_peers() {
    within(Duration::from_secs(120), "trust", async {
        // Only the province runs; no real gz/a exists.
        let mesh = Mesh::start(&["gz"]).await;
        let right_a = mesh.pki().issue("gz/a");
        let right_ax = mesh.pki().issue("gz/a/x");
        let other = Pki::init(&mesh.root().join("other-pki"));
        let foreign_a = other.issue("gz/a");
        let mut problems = Vec::new();

        // (a) A certificate from another CA, for an id that would be a valid child.
        let out = attempt(&mesh, &foreign_a, "gz/a", vec![posting("gz.a_p11", "gz/a")]).await;
        println!("(a) other CA: {out:?}");
        if let Outcome::NotRefused(d) = &out {
            problems.push(format!("(a) peer with a certificate from another CA was not refused: {d}"));
        }
        let held = postings_at_gz(&mesh).await;
        if !held.is_empty() {
            problems.push(format!("(a) gz holds postings after the foreign peer: {held:?}"));
        }

        // (b) A valid child (right CA, gz/a) sends a batch with a valid record
        // first and then one whose origin (gz/b) is outside its subtree: the
        // whole batch is refused and the link closed.
        let out = attempt(&mesh, &right_a, "gz/a", vec![posting("gz.a_p2", "gz/a"), posting("gz.b_p1", "gz")]).await;
        println!("(b) record outside the child's subtree: {out:?}");
        if let Outcome::NotRefused(d) = &out {
            problems.push(format!("(b) batch with a record outside the child's subtree was not refused: {d}"));
        }
        let held = postings_at_gz(&mesh).await;
        if !held.is_empty() {
            problems.push(format!("(b) gz stored records of a refused batch: {held:?}"));
        }

        // (c) Right CA, gz/a/x below gz's child: gz accepts it as a
        // descendant attached directly (failover), under the child rule, so
        // a record of its parent gz/a is refused.
        let out = attempt(&mesh, &right_ax, "gz/a/x", vec![posting("gz.a_p3", "gz")]).await;
        println!("(c) grandchild sending its parent's record to the province: {out:?}");
        if let Outcome::NotRefused(d) = &out {
            problems.push(format!("(c) a descendant's record from outside its subtree was not refused: {d}"));
        }

        // (d) A valid child claiming in its hello to be gz/b and sending gz/b's
        // records: the id comes from the certificate, not from the hello.
        let out = attempt(&mesh, &right_a, "gz/b", vec![posting("gz.b_p5", "gz")]).await;
        println!("(d) child claiming another id: {out:?}");
        if let Outcome::NotRefused(d) = &out {
            problems.push(format!("(d) a child claiming to be gz/b got gz/b's record in: {d}"));
        }
        let held = postings_at_gz(&mesh).await;
        if !held.is_empty() {
            problems.push(format!("(c)/(d) gz stored records from refused peers: {held:?}"));
        }
        assert!(mesh.api("gz").healthy().await, "gz unhealthy after hostile peers");

        // (e) Control: the same raw client, with the valid child certificate and
        // a batch of only its own record, gets it in. This shows the refusals
        // above were about trust, not a broken test client.
        let out = attempt(&mesh, &right_a, "gz/a", vec![posting("gz.a_p1", "gz/a")]).await;
        println!("(e) control: {out:?}");
        if let Outcome::Refused(d) = &out {
            problems.push(format!("(e) control: the valid child with a valid batch was refused: {d}"));
        }
        let api = mesh.api("gz");
        let stored =
            eventually("gz stores the control record gz.a_p1 from a valid child", Duration::from_secs(15), || async {
                api.get_posting("gz.a_p1").await?.ok_or_else(|| format!("404 (peer outcome {out:?})"))
            })
            .await;
        assert_eq!(stored["origin"], "gz/a", "{stored}");
        let held = postings_at_gz(&mesh).await;
        if held != vec!["gz.a_p1".to_string()] {
            problems.push(format!("after the control gz holds {held:?}, expected only gz.a_p1"));
        }

        // (f) Malformed and oversized frames from a valid child close the
        // link and touch nothing already stored.
        let body = vec![0xffu8; 5];
        let mut malformed = (body.len() as u32).to_be_bytes().to_vec();
        malformed.extend_from_slice(&body);
        let oversized = ((MAX_FRAME_BYTES + 1) as u32).to_be_bytes().to_vec();
        let empty = 0u32.to_be_bytes().to_vec();
        let backwards = encode_frame(&Frame::V1(FrameV1::Batch(Batch {
            from: 5,
            through: 1,
            records: vec![posting("gz.a_p3", "gz/a")],
        })));
        let too_many = encode_frame(&batch(
            (1..=MAX_BATCH_RECORDS as u64 + 1).map(|i| posting(&format!("gz.a_p{}", 100 + i), "gz/a")).collect(),
        ));
        let mut trailing = encode_frame(&batch(vec![posting("gz.a_p4", "gz/a")]));
        let len = u32::from_be_bytes([trailing[0], trailing[1], trailing[2], trailing[3]]) + 3;
        trailing[..4].copy_from_slice(&len.to_be_bytes());
        trailing.extend_from_slice(&[0, 0, 0]);
        for (case, bytes) in [
            ("malformed body", malformed),
            ("length prefix over the limit", oversized),
            ("zero-length frame", empty),
            ("batch with from > through", backwards),
            ("batch over MAX_BATCH_RECORDS", too_many),
            ("frame with trailing bytes", trailing),
        ] {
            let out = attempt_raw(&mesh, &right_a, &bytes).await;
            println!("(f) {case}: {out:?}");
            if let Outcome::NotRefused(d) = &out {
                problems.push(format!("(f) {case}: {d}"));
            }
            let held = postings_at_gz(&mesh).await;
            if held != vec!["gz.a_p1".to_string()] {
                problems.push(format!("(f) {case}: gz now holds {held:?}, expected only gz.a_p1"));
            }
        }
        assert!(mesh.api("gz").healthy().await, "gz unhealthy after malformed frames");

        assert!(problems.is_empty(), "trust problems:\n{}\n{}", problems.join("\n"), mesh.log_tail("gz", 60));
        mesh.finish().await;
    })
    .await;
}
