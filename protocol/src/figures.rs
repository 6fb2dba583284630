//! Figures: what a summary record carries, and how a node keeps its own
//! figures up to date without rescanning its records.
//!
//! Figures form an additive group: every own record contributes a fixed
//! amount given its current state (a posting's contribution depends on its
//! fill total, a worker's on whether a placement is known for it). When a
//! record or what it depends on changes, the engine subtracts the old
//! contribution and adds the new one. A subtree's figures are the sum of its
//! nodes' summaries, computed when asked.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::record::{Placement, Posting, PostingStatus, Worker, MAX_BREAKDOWN};
use crate::time::local_day;

/// The six figures of the contract, for one office's own records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Postings with status open and remaining > 0.
    pub postings_open: i64,
    /// Sum of remaining positions of those postings.
    pub positions_open: i64,
    /// Fills owned by this office, i.e. placements made here.
    pub positions_filled: i64,
    /// All workers registered here.
    pub workers_registered: i64,
    /// Workers with no placement known for them.
    pub workers_seeking: i64,
    /// Placements made here.
    pub placements: i64,
}

impl Totals {
    pub fn add(&mut self, o: &Totals, sign: i64) {
        self.postings_open += sign * o.postings_open;
        self.positions_open += sign * o.positions_open;
        self.positions_filled += sign * o.positions_filled;
        self.workers_registered += sign * o.workers_registered;
        self.workers_seeking += sign * o.workers_seeking;
        self.placements += sign * o.placements;
    }

    pub fn is_zero(&self) -> bool {
        *self == Totals::default()
    }
}

/// Postings and placements by occupation category or work type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Breakdown {
    pub postings_open: i64,
    pub positions_open: i64,
    pub placements: i64,
}

/// Workers and placements by key group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupFigures {
    pub workers_registered: i64,
    pub workers_seeking: i64,
    pub placements: i64,
}

/// One local day's activity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Daily {
    pub postings_published: i64,
    pub placements: i64,
}

/// How many of its own records an office holds, by kind: a receiver compares
/// these with what it holds from that office to show what is still in flight.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holds {
    pub postings: i64,
    pub workers: i64,
    pub placements: i64,
    pub fills: i64,
}

/// Everything one summary says about its office.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Figures {
    pub totals: Totals,
    pub by_category: BTreeMap<String, Breakdown>,
    pub by_work_type: BTreeMap<String, Breakdown>,
    pub by_key_group: BTreeMap<String, GroupFigures>,
    /// Local day number (see [`crate::time::local_day`]) → activity.
    pub daily: BTreeMap<i32, Daily>,
    pub holds: Holds,
}

/// Days of daily figures a summary carries.
pub const DAILY_WINDOW: i32 = 30;

macro_rules! add_fields {
    ($dst:expr, $src:expr, $sign:expr, $($f:ident),*) => {{ $( $dst.$f += $sign * $src.$f; )* }};
}

fn add_entry<K: Ord + Clone, V: Default + PartialEq + Copy>(map: &mut BTreeMap<K, V>, key: &K, f: impl FnOnce(&mut V)) {
    let v = map.entry(key.clone()).or_default();
    f(v);
    if *v == V::default() {
        map.remove(key);
    }
}

impl Figures {
    /// `self += sign * other`, dropping entries that become zero.
    pub fn add(&mut self, o: &Figures, sign: i64) {
        self.totals.add(&o.totals, sign);
        for (k, v) in &o.by_category {
            add_entry(&mut self.by_category, k, |d| add_fields!(d, v, sign, postings_open, positions_open, placements));
        }
        for (k, v) in &o.by_work_type {
            add_entry(&mut self.by_work_type, k, |d| {
                add_fields!(d, v, sign, postings_open, positions_open, placements)
            });
        }
        for (k, v) in &o.by_key_group {
            add_entry(&mut self.by_key_group, k, |d| {
                add_fields!(d, v, sign, workers_registered, workers_seeking, placements)
            });
        }
        for (k, v) in &o.daily {
            add_entry(&mut self.daily, k, |d| add_fields!(d, v, sign, postings_published, placements));
        }
        add_fields!(self.holds, o.holds, sign, postings, workers, placements, fills);
    }

    /// The contribution of one own posting whose fills sum to `filled`.
    pub fn of_posting(p: &Posting, filled: u32) -> Figures {
        let mut f = Figures::default();
        f.holds.postings = 1;
        f.daily.insert(local_day(p.created_at), Daily { postings_published: 1, placements: 0 });
        let remaining = i64::from(p.positions) - i64::from(filled);
        if p.status == PostingStatus::Open && remaining > 0 {
            f.totals.postings_open = 1;
            f.totals.positions_open = remaining;
            let b = Breakdown { postings_open: 1, positions_open: remaining, placements: 0 };
            f.by_category.insert(p.category.clone(), b);
            f.by_work_type.insert(p.work_type.as_str().to_owned(), b);
        }
        f
    }

    /// The contribution of one own worker with `placed` placements known.
    pub fn of_worker(w: &Worker, placed: u32) -> Figures {
        let mut f = Figures::default();
        f.holds.workers = 1;
        let seeking = i64::from(placed == 0);
        f.totals.workers_registered = 1;
        f.totals.workers_seeking = seeking;
        f.by_key_group.insert(
            w.key_group.as_str().to_owned(),
            GroupFigures { workers_registered: 1, workers_seeking: seeking, placements: 0 },
        );
        f
    }

    /// The contribution of one placement made here.
    pub fn of_placement(l: &Placement) -> Figures {
        let mut f = Figures::default();
        f.holds.placements = 1;
        f.totals.placements = 1;
        f.totals.positions_filled = 1;
        let b = Breakdown { postings_open: 0, positions_open: 0, placements: 1 };
        f.by_category.insert(l.category.clone(), b);
        f.by_work_type.insert(l.work_type.as_str().to_owned(), b);
        f.by_key_group.insert(
            l.key_group.as_str().to_owned(),
            GroupFigures { workers_registered: 0, workers_seeking: 0, placements: 1 },
        );
        f.daily.insert(local_day(l.placed_at), Daily { postings_published: 0, placements: 1 });
        f
    }

    /// The contribution of one own fill record.
    pub fn of_fill() -> Figures {
        let mut f = Figures::default();
        f.holds.fills = 1;
        f
    }

    /// A copy with only the last [`DAILY_WINDOW`] days, as published.
    pub fn for_publication(&self, now_ms: u64) -> Figures {
        let today = local_day(now_ms);
        let mut f = self.clone();
        f.daily.retain(|d, _| *d > today - DAILY_WINDOW && *d <= today);
        f
    }

    /// Limits a receiver enforces on a peer's summary.
    pub fn validate(&self) -> Result<(), String> {
        if self.by_category.len() > MAX_BREAKDOWN
            || self.by_work_type.len() > MAX_BREAKDOWN
            || self.by_key_group.len() > MAX_BREAKDOWN
            || self.daily.len() > MAX_BREAKDOWN
        {
            return Err(format!("a breakdown has more than {MAX_BREAKDOWN} entries"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node_id::NodeId;
    use crate::record::WorkType;

    #[test]
    fn contributions_cancel() {
        let p = Posting {
            title: "Waiter".into(),
            employer: "Huaxi Hotel".into(),
            category: "catering".into(),
            work_type: WorkType::FullTime,
            positions: 3,
            wage: None,
            location: None,
            valid_until: None,
            status: PostingStatus::Open,
            audience: NodeId::parse("gz").unwrap(),
            created_at: 1_700_000_000_000,
            updated_at: 1_700_000_000_000,
        };
        let mut f = Figures::default();
        f.add(&Figures::of_posting(&p, 0), 1);
        assert_eq!(f.totals.positions_open, 3);
        f.add(&Figures::of_posting(&p, 0), -1);
        f.add(&Figures::of_posting(&p, 3), 1);
        assert_eq!(f.totals.postings_open, 0);
        assert_eq!(f.totals.positions_open, 0);
        assert!(f.by_category.is_empty(), "zero entries are dropped");
        assert_eq!(f.holds.postings, 1);
    }
}
