//! The store's value decoding: a store whose keys and values were damaged
//! (bytes flipped, values cut short or replaced, keys lost or added).
//!
//! Whatever the damage, nothing panics, and either the check a node makes at
//! open ([`jobmesh_protocol::integrity::verify`]) refuses the store, or the
//! engine opens on it and every read it makes to serve or send succeeds.
//!
//! Input: a list of damage operations, 4 bytes each plus data:
//! `op, key index (u16 LE), position`, applied to a small store the engine
//! wrote (postings, a worker, a placement and its fill, a summary, a
//! checkpoint).
#![no_main]

use std::sync::OnceLock;

use jobmesh_protocol::engine::local::{NewPosting, NewWorker};
use jobmesh_protocol::kv::{Kv, MemKv, StoreError, WriteBatch};
use jobmesh_protocol::record::{KeyGroup, WorkType};
use jobmesh_protocol::store::{self, JournalEntry, StoredRecord};
use jobmesh_protocol::wire::{Frame, FrameV1, Hello, PROTOCOL_VERSION};
use jobmesh_protocol::{integrity, Engine, Kind, NodeId};
use libfuzzer_sys::fuzz_target;

fn me() -> NodeId {
    NodeId::parse("gz/a").expect("node id")
}

fn parent() -> NodeId {
    NodeId::parse("gz").expect("node id")
}

/// The undamaged store, written once through the engine.
fn base() -> &'static MemKv {
    static BASE: OnceLock<MemKv> = OnceLock::new();
    BASE.get_or_init(|| {
        let mut e = Engine::open(me(), MemKv::new(), Default::default(), 1_000).expect("open");
        let p = e
            .create_posting(
                NewPosting {
                    title: "Waiter".into(),
                    employer: "Huaxi Hotel".into(),
                    category: "catering".into(),
                    work_type: WorkType::FullTime,
                    positions: 3,
                    audience: None,
                    wage: Some("3500".into()),
                    location: None,
                    valid_until: Some("2027-01-31".into()),
                },
                2_000,
            )
            .expect("posting");
        let w = e
            .register_worker(
                NewWorker {
                    name: "Li Wei".into(),
                    key_group: KeyGroup::MigrantWorker,
                    phone: None,
                    skills: vec!["cooking".into()],
                    wanted_work_type: Some(WorkType::FullTime),
                },
                3_000,
            )
            .expect("worker");
        e.record_placement(&w.records[0].id, &p.records[0].id, 4_000).expect("placement");
        let t = e.begin_flush();
        e.kv_mut().flush();
        e.flushed(t, 5_000);
        e.handle_timeout(40_000).expect("summary");
        let mut kv = e.into_kv();
        let mut b = WriteBatch::default();
        b.put(store::checkpoint_key(&NodeId::parse("gz/a/x").expect("id")), 7u64.to_be_bytes().to_vec());
        kv.write(b).expect("checkpoint");
        integrity::verify(&kv).expect("the undamaged store verifies");
        kv
    })
}

fn damage(kv: &mut MemKv, data: &[u8]) {
    let mut ops = data;
    while ops.len() >= 4 {
        let (op, rest) = ops.split_at(4);
        ops = rest;
        let entries = kv.scan(b"", &[0xff; 16], usize::MAX).expect("scan");
        if entries.is_empty() {
            return;
        }
        let (key, mut value) = entries[usize::from(u16::from_le_bytes([op[1], op[2]])) % entries.len()].clone();
        let at = usize::from(op[3]);
        let mut b = WriteBatch::default();
        match op[0] % 6 {
            0 if !value.is_empty() => {
                let i = at % value.len();
                value[i] ^= 1 << (op[3] % 8);
                b.put(key, value);
            }
            1 => {
                value.truncate(at % (value.len() + 1));
                b.put(key, value);
            }
            2 => {
                // Replace the value with the next `at % 64` input bytes.
                let n = (at % 64).min(ops.len());
                b.put(key, ops[..n].to_vec());
                ops = &ops[n..];
            }
            3 => b.delete(key),
            4 if !value.is_empty() => {
                let i = at % value.len();
                value[i] = op[1];
                b.put(key, value);
            }
            _ => {
                // A new key: a known prefix and input bytes.
                let n = (at % 32).min(ops.len());
                let prefix: &[u8] = [&b"r"[..], b"j", b"c", b"n", b"w", b"m", b"rp/", b"rs/"][usize::from(op[1] % 8)];
                b.put([prefix, &ops[..n]].concat(), op.to_vec());
                ops = &ops[n..];
            }
        }
        kv.write(b).expect("write");
    }
}

fuzz_target!(|data: &[u8]| {
    let mut kv = base().clone();
    damage(&mut kv, data);

    // The decoders on their own: errors, never panics or huge allocations.
    for (k, v) in kv.scan(b"", &[0xff; 16], usize::MAX).expect("scan") {
        let _ = store::decode::<StoredRecord>(&k, &v);
        let _ = store::decode::<JournalEntry>(&k, &v);
        let _ = store::u64_value(&k, Some(v));
    }

    if integrity::verify(&kv).is_err() {
        return; // the node refuses to start
    }
    // Verified: the engine opens, and everything it reads to serve or send
    // decodes.
    let mut e = match Engine::open(me(), kv, Default::default(), 50_000) {
        Ok(e) => e,
        // Damage that made the store another node's, or of a newer format.
        Err(StoreError::Incompatible(_)) => return,
        Err(e) => panic!("a verified store does not open: {e}"),
    };
    for kind in Kind::ALL {
        store::list_records(e.kv(), kind, "", None, 1_000).expect("a verified store lists");
    }
    let last = e.last_seq();
    store::journal_range(e.kv(), 0, last, 1_000).expect("a verified journal reads");
    e.link_up(&parent(), 50_000).expect("link");
    let hello =
        Hello { protocol: PROTOCOL_VERSION, capabilities: 0, node_id: parent(), resume_after: 0, seen_yours: true };
    e.handle_frame(&parent(), Frame::V1(FrameV1::Hello(hello)), 50_001).expect("a verified store sends");
    while e.poll_transmit().is_some() {}
    e.handle_timeout(90_000).expect("timers on a verified store");
    while e.poll_transmit().is_some() {}
});
