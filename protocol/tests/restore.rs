//! Restoring an office from an old backup, engine level: its parent sends
//! back every own record written after the backup, the id counter and the
//! journal continue past everything the parent has seen, and writes made
//! after the restore reach the parent (none skipped as "already seen").

use jobmesh_protocol::engine::local::{NewPosting, WriteError};
use jobmesh_protocol::engine::restore::{META_RESTORED_AT, META_RESTORE_PENDING};
use jobmesh_protocol::kv::{Kv, MemKv, WriteBatch};
use jobmesh_protocol::record::{Kind, RecordId, WorkType};
use jobmesh_protocol::store::{self, META_SEQ};
use jobmesh_protocol::{Engine, EngineConfig, NodeId};

fn posting(n: u32) -> NewPosting {
    NewPosting {
        title: format!("job {n}"),
        employer: "employer".into(),
        category: "cook".into(),
        work_type: WorkType::FullTime,
        positions: 2,
        audience: None,
        wage: None,
        location: None,
        valid_until: None,
    }
}

/// Deliver frames both ways and flush both stores until nothing moves.
fn settle(a: &mut Engine<MemKv>, a_id: &NodeId, b: &mut Engine<MemKv>, b_id: &NodeId, now: &mut u64) {
    for _ in 0..10_000 {
        *now += 10;
        let mut moved = false;
        for e in [&mut *a, &mut *b] {
            let t = e.begin_flush();
            e.kv_mut().flush();
            e.flushed(t, *now);
            e.handle_timeout(*now).unwrap();
        }
        let mut to_b = Vec::new();
        while let Some(t) = a.poll_transmit() {
            assert_eq!(&t.peer, b_id);
            to_b.push(t.frame);
        }
        let mut to_a = Vec::new();
        while let Some(t) = b.poll_transmit() {
            assert_eq!(&t.peer, a_id);
            to_a.push(t.frame);
        }
        for f in to_b {
            moved = true;
            b.handle_frame(a_id, f, *now).unwrap();
        }
        for f in to_a {
            moved = true;
            a.handle_frame(b_id, f, *now).unwrap();
        }
        while a.poll_event().is_some() || b.poll_event().is_some() {}
        if !moved && !a.needs_flush() && !b.needs_flush() {
            return;
        }
    }
    panic!("no quiescence");
}

fn own_postings<K: Kv>(kv: &K, me: &NodeId) -> Vec<String> {
    let prefix = RecordId::origin_prefix(me, Kind::Posting);
    store::list_records(kv, Kind::Posting, &prefix, None, 10_000)
        .unwrap()
        .into_iter()
        .map(|s| s.record.id.as_str().to_owned())
        .collect()
}

#[test]
fn an_old_backup_gets_its_later_records_back_and_reuses_no_id_or_sequence() {
    let (gz, a_id) = (NodeId::parse("gz").unwrap(), NodeId::parse("gz/a").unwrap());
    let mut now = 1_700_000_000_000u64;
    let mut top = Engine::open(gz.clone(), MemKv::new(), EngineConfig::default(), now).unwrap();
    let mut a = Engine::open(a_id.clone(), MemKv::new(), EngineConfig::default(), now).unwrap();
    top.link_up(&a_id, now).unwrap();
    a.link_up(&gz, now).unwrap();
    for n in 0..3 {
        a.create_posting(posting(n), now).unwrap();
    }
    settle(&mut top, &gz, &mut a, &a_id, &mut now);

    // The backup: everything in the store now.
    let t = a.begin_flush();
    a.kv_mut().flush();
    a.flushed(t, now);
    let backup = a.kv().scan(&[], &[0xff; 8], usize::MAX).unwrap();
    let backup_seq = a.last_seq();

    // Hours of work after the backup, all of it reaching the parent.
    let mut after = Vec::new();
    for n in 3..8 {
        after.push(a.create_posting(posting(n), now).unwrap().records[0].id.as_str().to_owned());
    }
    settle(&mut top, &gz, &mut a, &a_id, &mut now);
    let parent_saw = a.last_seq();
    assert_eq!(own_postings(top.kv(), &a_id).len(), 8);
    drop(a);
    top.link_down(&a_id);

    // Restore on a new machine.
    let mut kv = MemKv::new();
    let mut b = WriteBatch::default();
    for (k, v) in backup {
        b.put(k, v);
    }
    b.put(META_RESTORE_PENDING.to_vec(), 0u64.to_be_bytes().to_vec());
    b.put(META_RESTORED_AT.to_vec(), backup_seq.to_be_bytes().to_vec());
    kv.write(b).unwrap();
    kv.flush();
    let mut a = Engine::open(a_id.clone(), kv, EngineConfig::default(), now).unwrap();
    assert!(a.restoring());
    assert!(matches!(a.create_posting(posting(99), now), Err(WriteError::Restoring)));
    assert_eq!(own_postings(a.kv(), &a_id).len(), 3);

    top.link_up(&a_id, now).unwrap();
    a.link_up(&gz, now).unwrap();
    settle(&mut top, &gz, &mut a, &a_id, &mut now);
    assert!(!a.restoring(), "the restore finished");
    let held = own_postings(a.kv(), &a_id);
    for id in &after {
        assert!(held.contains(id), "{id} came back: {held:?}");
    }
    assert!(a.last_seq() >= parent_saw, "journal continues past what the parent saw");

    // New writes: fresh ids, and they reach the parent.
    let new = a.create_posting(posting(100), now).unwrap().records[0].id.as_str().to_owned();
    assert!(!held.contains(&new), "{new} reuses an id");
    assert_eq!(new, RecordId::numbered(&a_id, Kind::Posting, 9).as_str(), "the counter is past every own id");
    settle(&mut top, &gz, &mut a, &a_id, &mut now);
    let at_parent = own_postings(top.kv(), &a_id);
    assert!(at_parent.contains(&new), "{new} reached the parent: {at_parent:?}");
    assert_eq!(at_parent.len(), 9);
    let seq = store::u64_value(META_SEQ, a.kv().get(META_SEQ).unwrap()).unwrap();
    assert!(seq > parent_saw);
}

/// Deliver frames among any engines (by peer id) and flush, until quiet.
fn settle_all(nodes: &mut [(&NodeId, &mut Engine<MemKv>)], now: &mut u64) {
    for _ in 0..10_000 {
        *now += 10;
        let mut frames = Vec::new();
        for (id, e) in nodes.iter_mut() {
            let t = e.begin_flush();
            e.kv_mut().flush();
            e.flushed(t, *now);
            e.handle_timeout(*now).unwrap();
            while let Some(t) = e.poll_transmit() {
                frames.push(((*id).clone(), t));
            }
        }
        let moved = !frames.is_empty();
        for (from, t) in frames {
            if let Some((_, e)) = nodes.iter_mut().find(|(id, _)| **id == t.peer) {
                if e.handle_frame(&from, t.frame.clone(), *now).is_err() {
                    e.link_down(&from);
                }
            }
        }
        for (_, e) in nodes.iter_mut() {
            while e.poll_event().is_some() {}
        }
        if !moved && nodes.iter().all(|(_, e)| !e.needs_flush()) {
            return;
        }
    }
    panic!("no quiescence");
}

#[test]
fn entries_journaled_before_a_later_peer_settles_move_above_its_checkpoint() {
    let (gz, a_id, x_id) =
        (NodeId::parse("gz").unwrap(), NodeId::parse("gz/a").unwrap(), NodeId::parse("gz/a/x").unwrap());
    let mut now = 1_700_000_000_000u64;
    let cfg = EngineConfig::default;
    let mut top = Engine::open(gz.clone(), MemKv::new(), cfg(), now).unwrap();
    let mut a = Engine::open(a_id.clone(), MemKv::new(), cfg(), now).unwrap();
    let mut x = Engine::open(x_id.clone(), MemKv::new(), cfg(), now).unwrap();
    top.link_up(&a_id, now).unwrap();
    a.link_up(&gz, now).unwrap();
    a.link_up(&x_id, now).unwrap();
    x.link_up(&a_id, now).unwrap();
    settle_all(&mut [(&gz, &mut top), (&a_id, &mut a), (&x_id, &mut x)], &mut now);
    let t = a.begin_flush();
    a.kv_mut().flush();
    a.flushed(t, now);
    let backup = a.kv().scan(&[], &[0xff; 8], usize::MAX).unwrap();
    let backup_seq = a.last_seq();
    // After the backup: own records (up to gz), seen by gz at higher
    // sequences than the child's checkpoint, which the child link being
    // down keeps behind.
    x.link_down(&a_id);
    a.link_down(&x_id);
    for n in 0..6 {
        a.create_posting(posting(n), now).unwrap();
    }
    settle_all(&mut [(&gz, &mut top), (&a_id, &mut a)], &mut now);
    let parent_saw = a.last_seq();
    drop(a);
    top.link_down(&a_id);

    let mut kv = MemKv::new();
    let mut b = WriteBatch::default();
    for (k, v) in backup {
        b.put(k, v);
    }
    b.put(META_RESTORE_PENDING.to_vec(), 0u64.to_be_bytes().to_vec());
    b.put(META_RESTORED_AT.to_vec(), backup_seq.to_be_bytes().to_vec());
    kv.write(b).unwrap();
    kv.flush();
    let mut a = Engine::open(a_id.clone(), kv, cfg(), now).unwrap();
    // The child comes back first and sends what it wrote meanwhile: the
    // restored node journals it just past the backup, inside the range the
    // parent has seen.
    for n in 0..4 {
        x.create_posting(posting(n), now).unwrap();
    }
    a.link_up(&x_id, now).unwrap();
    x.link_up(&a_id, now).unwrap();
    settle_all(&mut [(&a_id, &mut a), (&x_id, &mut x)], &mut now);
    assert!(a.last_seq() < parent_saw, "the child's records sit inside the range the parent saw");
    assert_eq!(own_postings(a.kv(), &x_id).len(), 4);

    // Then the parent: those entries move above its checkpoint, so it gets
    // the child's records instead of skipping them as seen.
    top.link_up(&a_id, now).unwrap();
    a.link_up(&gz, now).unwrap();
    settle_all(&mut [(&gz, &mut top), (&a_id, &mut a), (&x_id, &mut x)], &mut now);
    assert!(!a.restoring());
    assert_eq!(own_postings(top.kv(), &x_id).len(), 4, "the child's records reached the parent");
    assert_eq!(own_postings(a.kv(), &a_id).len(), 6);
    let id = a.create_posting(posting(50), now).unwrap().records[0].id.clone();
    settle_all(&mut [(&gz, &mut top), (&a_id, &mut a), (&x_id, &mut x)], &mut now);
    assert!(own_postings(top.kv(), &a_id).contains(&id.as_str().to_owned()));
}
