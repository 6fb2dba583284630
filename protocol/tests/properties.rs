//! Property tests of the pure core: merge is commutative, associative and
//! idempotent; frames round-trip; random bytes never panic the decoder.

use jobmesh_protocol::record::{merge, Body, Fill, Kind, Merge, Posting, PostingStatus, Record, RecordId, WorkType};
use jobmesh_protocol::wire::{decode_body, encode_frame, Ack, Batch, Frame, FrameV1, Hello, Nack, LEN_PREFIX};
use jobmesh_protocol::NodeId;
use proptest::prelude::*;

fn node() -> impl Strategy<Value = NodeId> {
    prop::collection::vec(prop::sample::select(vec!["gz", "a", "b", "x-1", "s9"]), 1..4)
        .prop_map(|segs| NodeId::parse(&segs.join("/")).unwrap())
}

fn posting(origin: NodeId, n: u64, version: u64, title: String, positions: u32) -> Record {
    Record {
        id: RecordId::numbered(&origin, Kind::Posting, n),
        origin: origin.clone(),
        version,
        body: Body::Posting(Posting {
            title,
            employer: "e".into(),
            category: "c".into(),
            work_type: WorkType::OddJob,
            positions,
            wage: None,
            location: Some("Huaxi".into()),
            valid_until: Some("2026-12-31".into()),
            status: PostingStatus::Open,
            audience: origin,
            created_at: 1,
            updated_at: version,
        }),
    }
}

/// Versions of one record as its single writer makes them: each version has
/// exactly one body.
fn versions() -> impl Strategy<Value = Vec<Record>> {
    (node(), 1u64..1000, prop::collection::vec(1u64..6, 1..6)).prop_map(|(o, n, vs)| {
        vs.into_iter().map(|v| posting(o.clone(), n, v, format!("title v{v}"), v as u32)).collect()
    })
}

/// Apply versions in order to an empty replica using the merge rule.
fn replay(order: &[Record]) -> Option<Record> {
    let mut held: Option<Record> = None;
    for r in order {
        let m = merge(held.as_ref(), r);
        assert_ne!(m, Merge::Conflict, "one writer never conflicts with itself");
        if m.changes() {
            held = Some(r.clone());
        }
    }
    held
}

proptest! {
    #[test]
    fn merge_is_order_insensitive_and_idempotent(vs in versions(), seed in any::<u64>()) {
        let base = replay(&vs);
        // Commutative and associative: any permutation, with duplicates
        // (idempotent), gives the same result.
        let mut shuffled = vs.clone();
        let mut s = seed;
        for i in (1..shuffled.len()).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (s >> 33) as usize % (i + 1));
        }
        let mut doubled = shuffled.clone();
        doubled.extend(shuffled.iter().cloned());
        prop_assert_eq!(replay(&shuffled), base.clone());
        prop_assert_eq!(replay(&doubled), base.clone());
        // The result is the highest version.
        prop_assert_eq!(base.map(|r| r.version), vs.iter().map(|r| r.version).max());
    }

    #[test]
    fn frames_round_trip(o in node(), n in 1u64..u64::MAX / 2, v in 1u64..100, title in "\\PC{0,40}", from in 0u64..1000, extra in 0u64..1000) {
        let rec = posting(o.clone(), n, v, title, 3);
        let fill = Record {
            id: RecordId::fill(&o, &rec.id),
            origin: o.clone(),
            version: v,
            body: Body::Fill(Fill { posting_id: rec.id.clone(), posting_origin: o.clone(), audience: o.clone(), filled: 2 }),
        };
        let frames = vec![
            Frame::V1(FrameV1::Hello(Hello { protocol: 1, capabilities: 0, node_id: o, resume_after: from, seen_yours: true })),
            Frame::V1(FrameV1::Batch(Batch { from, through: from + extra, records: vec![rec, fill] })),
            Frame::V1(FrameV1::Ack(Ack { through: from })),
            Frame::V1(FrameV1::Nack(Nack { have: extra })),
        ];
        for f in frames {
            let bytes = encode_frame(&f);
            let len = u32::from_be_bytes(bytes[..LEN_PREFIX].try_into().unwrap()) as usize;
            prop_assert_eq!(len, bytes.len() - LEN_PREFIX);
            prop_assert_eq!(decode_body(&bytes[LEN_PREFIX..]).unwrap(), f);
        }
    }

    #[test]
    fn random_bytes_never_panic_the_decoder(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = decode_body(&bytes);
    }

    #[test]
    fn mutated_frames_never_panic_the_decoder(pos in any::<usize>(), byte in any::<u8>()) {
        let rec = posting(NodeId::parse("gz/a").unwrap(), 7, 2, "t".into(), 3);
        let bytes = encode_frame(&Frame::V1(FrameV1::Batch(Batch { from: 0, through: 9, records: vec![rec] })));
        let mut body = bytes[LEN_PREFIX..].to_vec();
        let i = pos % body.len();
        body[i] = byte;
        let _ = decode_body(&body);
    }
}

#[test]
fn hostile_lengths_are_refused_before_allocating() {
    use jobmesh_protocol::wire::{check_len, DecodeError, MAX_FRAME_BYTES};
    assert!(matches!(check_len(((MAX_FRAME_BYTES + 1) as u32).to_be_bytes()), Err(DecodeError::TooLarge { .. })));
    assert!(matches!(check_len(0u32.to_be_bytes()), Err(DecodeError::Empty)));
    // A batch claiming 2^60 records in a tiny body fails without allocating.
    let mut body = vec![0u8, 1u8]; // Frame::V1, FrameV1::Batch
    body.extend([0, 0]); // from, through
    body.push(0xfd); // varint u64 marker
    body.extend((1u64 << 60).to_le_bytes());
    assert!(decode_body(&body).is_err());
}

#[test]
fn unauthorized_records_are_named() {
    use jobmesh_protocol::routing::{authorize, RejectReason};
    let gz = NodeId::parse("gz").unwrap();
    let a = NodeId::parse("gz/a").unwrap();
    let b = NodeId::parse("gz/b").unwrap();
    let from_b = posting(b.clone(), 1, 1, "t".into(), 1);
    assert!(matches!(authorize(&gz, &a, &from_b), Err(RejectReason::OriginOutsideChild { .. })));
    let from_a = posting(a.clone(), 1, 1, "t".into(), 1);
    assert!(authorize(&gz, &a, &from_a).is_ok());
    assert!(matches!(authorize(&a, &gz, &from_a), Err(RejectReason::OriginInsideOwnSubtree { .. })));
    assert!(matches!(authorize(&a, &b, &from_b), Err(RejectReason::NotANeighbour { .. })));
}
