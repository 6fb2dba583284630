//! Upkeep of this node's own figures: which own entities a write touches,
//! and what they contribute (see [`crate::figures`]).

use crate::figures::Figures;
use crate::kv::{Kv, StoreError};
use crate::matters::MatterFigures;
use crate::node_id::NodeId;
use crate::record::{Body, Kind, Record, RecordId};
use crate::store::{self, Change};

/// Page size when scanning own records at open.
const SCAN_PAGE: usize = 4096;

/// Own records whose contribution a set of changes may alter.
pub(super) fn touched(me: &NodeId, changes: &[Change]) -> Vec<RecordId> {
    let mut out = Vec::new();
    for c in changes {
        let r = &c.new;
        let own = &r.origin == me;
        match &r.body {
            Body::Posting(_) | Body::Worker(_) | Body::Placement(_) | Body::Fill(_) if own => out.push(r.id.clone()),
            _ => {}
        }
        match &r.body {
            Body::Placement(l) if &l.worker_office == me => out.push(l.worker_id.clone()),
            Body::Fill(f) if &f.posting_origin == me => out.push(f.posting_id.clone()),
            _ => {}
        }
    }
    out.sort();
    out.dedup();
    out
}

/// What these own records contribute to the figures as the store stands.
pub(super) fn contribution<K: Kv + ?Sized>(kv: &K, ids: &[RecordId]) -> Result<Figures, StoreError> {
    let mut f = Figures::default();
    for id in ids {
        let Some(stored) = store::get_record(kv, id)? else { continue };
        add_one(kv, &mut f, &stored.record.id, &stored.record.body)?;
    }
    Ok(f)
}

fn add_one<K: Kv + ?Sized>(kv: &K, f: &mut Figures, id: &RecordId, body: &Body) -> Result<(), StoreError> {
    match body {
        Body::Posting(p) => f.add(&Figures::of_posting(p, store::filled(kv, id)?), 1),
        Body::Worker(w) => f.add(&Figures::of_worker(w, store::placed(kv, id)?), 1),
        Body::Placement(l) => f.add(&Figures::of_placement(l), 1),
        Body::Fill(_) => f.add(&Figures::of_fill(), 1),
        Body::Summary(_) | Body::Matter(_) | Body::MattersSummary(_) | Body::Health(_) => {}
    }
    Ok(())
}

/// Keep own matter figures in step with a write; true if they changed. A
/// matter's contribution depends on nothing but the matter itself.
pub(super) fn matters_changed(me: &NodeId, changes: &[Change], f: &mut MatterFigures) -> bool {
    let mut changed = false;
    for c in changes {
        let Body::Matter(new) = &c.new.body else { continue };
        if &c.new.origin != me {
            continue;
        }
        if let Some(Record { body: Body::Matter(old), .. }) = &c.old {
            f.add(&MatterFigures::of_matter(old), -1);
        }
        f.add(&MatterFigures::of_matter(new), 1);
        changed = true;
    }
    changed
}

/// This node's matter figures from scratch, by scanning its own matters.
pub(super) fn scan_matter_figures<K: Kv + ?Sized>(kv: &K, me: &NodeId) -> Result<MatterFigures, StoreError> {
    let mut f = MatterFigures::default();
    let prefix = RecordId::origin_prefix(me, Kind::Matter);
    let mut after: Option<String> = None;
    loop {
        let page = store::list_records(kv, Kind::Matter, &prefix, after.as_deref(), SCAN_PAGE)?;
        for s in &page {
            if let Body::Matter(m) = &s.record.body {
                f.add(&MatterFigures::of_matter(m), 1);
            }
        }
        match page.last() {
            Some(last) if page.len() == SCAN_PAGE => after = Some(last.record.id.to_string()),
            _ => break,
        }
    }
    Ok(f)
}

/// This node's figures from scratch, by scanning its own records.
pub(super) fn scan_figures<K: Kv + ?Sized>(kv: &K, me: &NodeId) -> Result<Figures, StoreError> {
    let mut f = Figures::default();
    for kind in [Kind::Posting, Kind::Worker, Kind::Placement, Kind::Fill] {
        let prefix = RecordId::origin_prefix(me, kind);
        let mut after: Option<String> = None;
        loop {
            let page = store::list_records(kv, kind, &prefix, after.as_deref(), SCAN_PAGE)?;
            for s in &page {
                add_one(kv, &mut f, &s.record.id, &s.record.body)?;
            }
            match page.last() {
                Some(last) if page.len() == SCAN_PAGE => after = Some(last.record.id.to_string()),
                _ => break,
            }
        }
    }
    Ok(f)
}
