//! Record validation: a record as bincode decodes it from a peer, its id,
//! `validate`, routing metadata, merge, and the figures an own record
//! contributes.
#![no_main]

use jobmesh_protocol::figures::Figures;
use jobmesh_protocol::matters::MatterFigures;
use jobmesh_protocol::record::{merge, Body, Merge, Record, RecordId};
use jobmesh_protocol::routing::{authorize, holds};
use jobmesh_protocol::NodeId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Ids and node ids as text (paths and JSON carry them).
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(id) = RecordId::parse(s) {
            assert_eq!(RecordId::parse(id.as_str()).as_ref(), Ok(&id));
            let _ = (id.origin(), id.kind());
        }
        if let Ok(n) = NodeId::parse(s) {
            assert_eq!(NodeId::from_dotted(&n.dotted()).as_ref(), Ok(&n));
            let _ = (n.parent(), n.depth(), n.leaf_name(), n.file_stem());
        }
    }

    let Ok((rec, _)) =
        bincode::serde::decode_from_slice::<Record, _>(data, bincode::config::standard().with_limit::<{ 1 << 20 }>())
    else {
        return;
    };
    let valid = rec.validate().is_ok();
    let route = rec.route();
    let me = NodeId::parse("gz/a").expect("node id");
    for peer in ["gz", "gz/a/x", "gz/b"] {
        let peer = NodeId::parse(peer).expect("node id");
        if authorize(&me, &peer, &rec).is_ok() {
            assert!(valid, "authorize accepted a record validate refuses");
            assert!(holds(&me, &route));
        }
    }
    assert_eq!(merge(Some(&rec), &rec), Merge::Duplicate);
    assert_eq!(merge(None, &rec), Merge::Insert);
    if valid {
        // What an own record of this shape would contribute: adding and
        // removing it again leaves nothing.
        let f = match &rec.body {
            Body::Posting(p) => Some(Figures::of_posting(p, 0)),
            Body::Worker(w) => Some(Figures::of_worker(w, 0)),
            Body::Placement(l) => Some(Figures::of_placement(l)),
            Body::Fill(_) => Some(Figures::of_fill()),
            Body::Summary(s) => Some(s.figures.clone()),
            Body::Matter(_) | Body::MattersSummary(_) | Body::Health(_) => None,
        };
        if let Some(f) = f {
            let mut sum = Figures::default();
            sum.add(&f, 1);
            sum.add(&f, -1);
            assert_eq!(sum, Figures::default());
        }
        // Matter figures, kept apart from `Figures` (protocol 2), likewise.
        let m = match &rec.body {
            Body::Matter(m) => Some(MatterFigures::of_matter(m)),
            Body::MattersSummary(s) => Some(s.figures.clone()),
            _ => None,
        };
        if let Some(m) = m {
            let mut sum = MatterFigures::default();
            sum.add(&m, 1);
            sum.add(&m, -1);
            assert_eq!(sum, MatterFigures::default());
        }
    }
});
