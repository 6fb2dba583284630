//! Figures in a peer's summary: the bounds checked on receipt, and the
//! roll-up arithmetic the root does with what passes (it must never wrap,
//! and within the bounds it must be exact).
#![no_main]

use jobmesh_protocol::figures::{Figures, MAX_COUNT};
use libfuzzer_sys::fuzz_target;

/// Offices a roll-up adds up in this target (the province has 381; the
/// largest simulated tree 2,801).
const OFFICES: i64 = 3_000;

fuzz_target!(|data: &[u8]| {
    let Ok((f, _)) =
        bincode::serde::decode_from_slice::<Figures, _>(data, bincode::config::standard().with_limit::<{ 1 << 20 }>())
    else {
        return;
    };
    // Saturating whatever the values.
    let mut any = Figures::default();
    any.add(&f, 1);
    any.add(&f, i64::MAX);
    any.add(&f, i64::MIN);
    let published = f.for_publication(1_765_000_000_000);
    assert!(published.validate().is_ok(), "a published summary must pass its parent's check: {published:?}");

    if f.validate().is_err() {
        return;
    }
    let mut sum = Figures::default();
    for _ in 0..OFFICES {
        sum.add(&f, 1);
    }
    assert_eq!(sum.totals.placements, f.totals.placements * OFFICES);
    assert_eq!(sum.totals.positions_open, f.totals.positions_open * OFFICES);
    assert!(sum.totals.workers_registered <= MAX_COUNT * OFFICES);
    for _ in 0..OFFICES {
        sum.add(&f, -1);
    }
    assert_eq!(sum, Figures::default(), "within the bounds a roll-up is exact");
});
