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

/// Engines linked in a chain, each with its own clock: `offsets[i]` is node
/// i's clock minus the true time. Frames take `delay_ms` each way.
struct Chain {
    engines: Vec<Engine<MemKv>>,
    offsets: Vec<i64>,
    t: u64,
    delay_ms: u64,
}

impl Chain {
    fn new(ids: &[&str], offsets: &[i64], t: u64, delay_ms: u64) -> Chain {
        let engines: Vec<_> = ids
            .iter()
            .zip(offsets)
            .map(|(id, off)| {
                Engine::open(NodeId::parse(id).unwrap(), MemKv::new(), EngineConfig::default(), at(t, *off)).unwrap()
            })
            .collect();
        let mut c = Chain { engines, offsets: offsets.to_vec(), t, delay_ms };
        for i in 1..ids.len() {
            let (parent, child) = (c.engines[i - 1].node_id().clone(), c.engines[i].node_id().clone());
            let (tp, tc) = (c.clock(i - 1), c.clock(i));
            c.engines[i - 1].link_up(&child, tp).unwrap();
            c.engines[i].link_up(&parent, tc).unwrap();
        }
        c
    }

    fn clock(&self, i: usize) -> u64 {
        at(self.t, self.offsets[i])
    }

    fn index(&self, id: &NodeId) -> usize {
        self.engines.iter().position(|e| e.node_id() == id).unwrap()
    }

    /// Run for `ms` of true time: frames delivered after `delay_ms`,
    /// timers fired, stores flushed at once.
    fn run(&mut self, ms: u64) {
        let end = self.t + ms;
        while self.t < end {
            self.t += self.delay_ms;
            let mut frames = Vec::new();
            for e in &mut self.engines {
                while let Some(tr) = e.poll_transmit() {
                    frames.push((e.node_id().clone(), tr));
                }
            }
            for (from, tr) in frames {
                let to = self.index(&tr.peer);
                let now = self.clock(to);
                self.engines[to].handle_frame(&from, tr.frame, now).unwrap();
            }
            for i in 0..self.engines.len() {
                let now = self.clock(i);
                let e = &mut self.engines[i];
                if e.poll_timeout().is_some_and(|w| w <= now) {
                    e.handle_timeout(now).unwrap();
                }
                let ticket = e.begin_flush();
                e.flushed(ticket, now);
            }
        }
    }
}

fn at(t: u64, off: i64) -> u64 {
    (t as i64 + off) as u64
}

const MIN: i64 = 60_000;

#[test]
fn offsets_are_measured_on_every_link_and_records_carry_the_province_time() {
    let t0 = 1_796_000_000_000;
    // The city is 10 minutes behind the province, the county 5 ahead of it
    // (so 5 minutes behind true time); 40 ms each way.
    let mut c = Chain::new(&["gz", "gz/a", "gz/a/b"], &[0, -10 * MIN, -5 * MIN], t0, 40);
    // The county's first probe may be answered before the city has its own
    // correction; the next one (10 s later) carries it.
    c.run(12_000);
    let (gz, a, b) = (NodeId::parse("gz").unwrap(), NodeId::parse("gz/a").unwrap(), NodeId::parse("gz/a/b").unwrap());
    let near =
        |got: i64, want: i64, within: i64| assert!((got - want).abs() <= within, "{got} is not {want} ± {within}");
    // Each end knows the other's offset, within half the round trip.
    let est = c.engines[0].clock_estimate(&a).expect("the province measured the city");
    near(est.offset_ms, -10 * MIN, 40);
    assert!(est.rtt_ms <= 80 + 40, "{est:?}");
    near(c.engines[1].clock_estimate(&gz).unwrap().offset_ms, 10 * MIN, 40);
    near(c.engines[1].clock_estimate(&b).unwrap().offset_ms, 5 * MIN, 40);
    near(c.engines[2].clock_offset_to_parent_ms().unwrap(), 5 * MIN, 40);
    // Corrections chain to the root's clock.
    assert_eq!(c.engines[0].clock_correction_ms(), 0);
    near(c.engines[1].clock_correction_ms(), 10 * MIN, 40);
    near(c.engines[2].clock_correction_ms(), 5 * MIN, 80);

    // A record written at the county carries the true time, and so does its
    // summary's generated_at.
    let posting = jobmesh_protocol::engine::local::NewPosting {
        title: "保洁员".into(),
        employer: "e".into(),
        category: "services".into(),
        work_type: jobmesh_protocol::record::WorkType::OddJob,
        positions: 1,
        audience: None,
        wage: None,
        location: None,
        valid_until: None,
    };
    let now = c.clock(2);
    let w = c.engines[2].create_posting(posting, now).unwrap();
    let Body::Posting(p) = &w.records[0].body else { unreachable!() };
    near(p.created_at as i64, c.t as i64, 100);
    c.run(40_000);
    let (_, generated_at) = summary(&c.engines[2]);
    near(generated_at as i64, c.t as i64, 32_000);
    assert!(c.engines[0].clock_estimate(&a).unwrap().samples >= 3, "refreshed while the link lives");
    let _ = b;
}

#[test]
fn expiry_waits_for_the_province_midnight_not_a_fast_clock() {
    use jobmesh_protocol::record::PostingStatus;
    // 23:50 local (UTC+8) on 2026-11-29 is 15:50 UTC.
    let day = jobmesh_protocol::time::iso_to_day("2026-11-29").unwrap() as u64 * 86_400_000;
    let t0 = day + 15 * 3_600_000 + 50 * 60_000;
    // The county's clock is 20 minutes ahead: it thinks it is 00:10.
    let mut c = Chain::new(&["gz", "gz/a"], &[0, 20 * MIN], t0, 5);
    c.run(2_000);
    let new = jobmesh_protocol::engine::local::NewPosting {
        title: "保洁员".into(),
        employer: "e".into(),
        category: "services".into(),
        work_type: jobmesh_protocol::record::WorkType::OddJob,
        positions: 1,
        audience: None,
        wage: None,
        location: None,
        // Valid through 11-29, which by the county's raw clock is over.
        valid_until: Some("2026-11-29".into()),
    };
    let now = c.clock(1);
    let id = c.engines[1].create_posting(new, now).unwrap().records[0].id.clone();
    let status = |c: &Chain| match store::get_record(c.engines[1].kv(), &id).unwrap().unwrap().record.body {
        Body::Posting(p) => p.status,
        _ => unreachable!(),
    };
    // Eight minutes later (true 23:58): still open.
    c.run(8 * 60_000);
    assert_eq!(status(&c), PostingStatus::Open);
    // Within a minute of the true midnight it is closed.
    c.run(3 * 60_000);
    assert_eq!(status(&c), PostingStatus::Closed);
}
