//! A clock set back (by hand, or a dead CMOS battery found at a restart)
//! never makes the node's summary time, versions or journal go backwards,
//! and does not stop the summary from being republished.

use jobmesh_protocol::kv::MemKv;
use jobmesh_protocol::record::{Body, RecordId};
use jobmesh_protocol::{store, Engine, EngineConfig, NodeId};

const HOUR: u64 = 3_600_000;

fn summary(e: &Engine<MemKv>) -> (u64, u64) {
    let me = e.node_id().clone();
    match store::get_record(e.kv(), &RecordId::summary(&me)).unwrap().unwrap().record {
        r @ jobmesh_protocol::Record { body: Body::Summary(_), .. } => match &r.body {
            Body::Summary(s) => (r.version, s.generated_at),
            _ => unreachable!(),
        },
        _ => unreachable!(),
    }
}

#[test]
fn a_clock_set_back_an_hour_across_a_restart_moves_nothing_back() {
    let me = NodeId::parse("gz/a").unwrap();
    let t0 = 1_796_000_000_000;
    let mut e = Engine::open(me.clone(), MemKv::new(), EngineConfig::default(), t0).unwrap();
    e.handle_timeout(t0).unwrap();
    let t = e.begin_flush();
    e.flushed(t, t0);
    let (v1, at1) = summary(&e);
    let seq1 = e.last_seq();
    assert_eq!(at1, t0);

    // Restart with the clock an hour behind.
    let kv = e.into_kv();
    let back = t0 - HOUR;
    let mut e = Engine::open(me, kv, EngineConfig::default(), back).unwrap();
    let back = back + EngineConfig::default().summary_min_interval_ms;
    e.handle_timeout(back).unwrap();
    let (v2, at2) = summary(&e);
    assert!(v2 > v1 && e.last_seq() > seq1, "a new summary was published: v{v1} -> v{v2}");
    assert!(at2 >= at1, "generated_at went back: {at1} -> {at2}");
    // Republished on time by the clock as it now runs, not an hour later.
    let later = back + EngineConfig::default().summary_max_interval_ms + 1;
    e.handle_timeout(later).unwrap();
    let (v3, at3) = summary(&e);
    assert!(v3 > v2 && at3 >= at2, "republished: v{v2} -> v{v3}, {at2} -> {at3}");
}
