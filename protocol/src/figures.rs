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

use crate::record::{Placement, Posting, Worker, MAX_BREAKDOWN, MAX_POSITIONS, MAX_TEXT};
use crate::time::local_day;

/// `dst.f += sign * src.f` for each field, saturating: a roll-up never
/// wraps or panics, whatever a peer sent. Figures that pass
/// [`Figures::validate`] are far from saturating (see [`MAX_COUNT`]).
macro_rules! add_fields {
    ($dst:expr, $src:expr, $sign:expr, $($f:ident),*) => {{
        $( $dst.$f = $dst.$f.saturating_add($src.$f.saturating_mul($sign)); )*
    }};
}

/// Most records of one kind an office's summary may count (postings open,
/// workers, placements, fills held, a day's postings or placements, and each
/// breakdown entry's counts). A county office registers on the order of
/// 10^5 workers in a decade; 10^9 leaves four orders of magnitude.
pub const MAX_COUNT: i64 = 1_000_000_000;
/// Most open positions an office's summary may count: [`MAX_COUNT`] postings
/// of [`crate::record::MAX_POSITIONS`] each (10^14). With every office at
/// these bounds, i64 sums stay exact up to 92,000 offices; past that they
/// saturate rather than wrap.
pub const MAX_POSITIONS_COUNT: i64 = MAX_COUNT * MAX_POSITIONS as i64;
/// Last local day number a summary's daily figures may name (9999-12-31).
pub const MAX_DAY: i32 = 2_932_896;

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
    /// `self += sign * other`, saturating (see [`Figures::add`]).
    pub fn add(&mut self, o: &Totals, sign: i64) {
        add_fields!(
            self,
            o,
            sign,
            postings_open,
            positions_open,
            positions_filled,
            workers_registered,
            workers_seeking,
            placements
        );
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
        if p.is_open(filled) {
            let remaining = i64::from(p.remaining(filled));
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
        let mut f = self.clamped();
        f.daily.retain(|d, _| *d > today.saturating_sub(DAILY_WINDOW) && *d <= today);
        f
    }

    /// Limits a receiver enforces on a peer's summary: at most
    /// [`MAX_BREAKDOWN`] entries per breakdown, keys of at most
    /// [`MAX_TEXT`] bytes, days in `0..=`[`MAX_DAY`], and every count in
    /// `0..=`[`MAX_COUNT`] (open positions: `0..=`[`MAX_POSITIONS_COUNT`]).
    /// The error names the first figure out of bounds.
    pub fn validate(&self) -> Result<(), String> {
        if self.by_category.len() > MAX_BREAKDOWN
            || self.by_work_type.len() > MAX_BREAKDOWN
            || self.by_key_group.len() > MAX_BREAKDOWN
            || self.daily.len() > MAX_BREAKDOWN
        {
            return Err(format!("a breakdown has more than {MAX_BREAKDOWN} entries"));
        }
        let count = |name: &str, v: i64| bounded(name, v, MAX_COUNT);
        let t = &self.totals;
        count("totals.postings_open", t.postings_open)?;
        bounded("totals.positions_open", t.positions_open, MAX_POSITIONS_COUNT)?;
        count("totals.positions_filled", t.positions_filled)?;
        count("totals.workers_registered", t.workers_registered)?;
        count("totals.workers_seeking", t.workers_seeking)?;
        count("totals.placements", t.placements)?;
        for (map, name) in [(&self.by_category, "by_category"), (&self.by_work_type, "by_work_type")] {
            for (k, b) in map {
                key(name, k)?;
                count(name, b.postings_open)?;
                bounded(name, b.positions_open, MAX_POSITIONS_COUNT)?;
                count(name, b.placements)?;
            }
        }
        for (k, g) in &self.by_key_group {
            key("by_key_group", k)?;
            count("by_key_group", g.workers_registered)?;
            count("by_key_group", g.workers_seeking)?;
            count("by_key_group", g.placements)?;
        }
        for (day, d) in &self.daily {
            if !(0..=MAX_DAY).contains(day) {
                return Err(format!("daily: day {day} is outside 0..={MAX_DAY}"));
            }
            count("daily", d.postings_published)?;
            count("daily", d.placements)?;
        }
        let h = &self.holds;
        count("holds.postings", h.postings)?;
        count("holds.workers", h.workers)?;
        count("holds.placements", h.placements)?;
        count("holds.fills", h.fills)?;
        Ok(())
    }

    /// The same figures with every count clamped into the bounds
    /// [`Figures::validate`] enforces, so that an office never publishes a
    /// summary its parent would refuse (which would stop its whole link).
    pub fn clamped(&self) -> Figures {
        let c = |v: &mut i64| *v = (*v).clamp(0, MAX_COUNT);
        let mut f = self.clone();
        let t = &mut f.totals;
        for v in [
            &mut t.postings_open,
            &mut t.positions_filled,
            &mut t.workers_registered,
            &mut t.workers_seeking,
            &mut t.placements,
        ] {
            c(v);
        }
        t.positions_open = t.positions_open.clamp(0, MAX_POSITIONS_COUNT);
        for b in f.by_category.values_mut().chain(f.by_work_type.values_mut()) {
            c(&mut b.postings_open);
            c(&mut b.placements);
            b.positions_open = b.positions_open.clamp(0, MAX_POSITIONS_COUNT);
        }
        for g in f.by_key_group.values_mut() {
            for v in [&mut g.workers_registered, &mut g.workers_seeking, &mut g.placements] {
                c(v);
            }
        }
        f.daily.retain(|day, _| (0..=MAX_DAY).contains(day));
        for d in f.daily.values_mut() {
            c(&mut d.postings_published);
            c(&mut d.placements);
        }
        let h = &mut f.holds;
        for v in [&mut h.postings, &mut h.workers, &mut h.placements, &mut h.fills] {
            c(v);
        }
        f
    }
}

fn bounded(name: &str, v: i64, max: i64) -> Result<(), String> {
    if (0..=max).contains(&v) {
        Ok(())
    } else {
        Err(format!("{name}: {v} is outside 0..={max}"))
    }
}

fn key(name: &str, k: &str) -> Result<(), String> {
    if k.len() > MAX_TEXT {
        return Err(format!("{name}: a key is longer than {MAX_TEXT} bytes"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node_id::NodeId;
    use crate::record::{PostingStatus, WorkType};

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

    fn huge() -> Figures {
        let mut f = Figures::default();
        f.totals.positions_open = i64::MAX;
        f.totals.placements = i64::MAX;
        f.by_category
            .insert("catering".into(), Breakdown { postings_open: i64::MAX, positions_open: 1, placements: 1 });
        f.daily.insert(20_000, Daily { postings_published: i64::MAX, placements: -1 });
        f
    }

    /// The defect of issue 17: a certified child could send counts that
    /// overflow the province's totals. Out-of-bound figures are refused on
    /// receipt, and each bound is checked on its own.
    #[test]
    fn figures_out_of_bounds_are_refused() {
        assert!(Figures::default().validate().is_ok());
        let e = huge().validate().unwrap_err();
        assert!(e.contains("totals.positions_open"), "{e}");
        type Breaker = fn(&mut Figures);
        let cases: [(&str, Breaker); 8] = [
            ("totals.workers_seeking", |f| f.totals.workers_seeking = -1),
            ("totals.placements", |f| f.totals.placements = MAX_COUNT + 1),
            ("totals.positions_open", |f| f.totals.positions_open = MAX_POSITIONS_COUNT + 1),
            ("by_category", |f| {
                f.by_category.insert("x".into(), Breakdown { postings_open: 0, positions_open: 0, placements: -5 });
            }),
            ("by_key_group", |f| {
                f.by_key_group
                    .insert("other".into(), GroupFigures { workers_registered: i64::MAX, ..Default::default() });
            }),
            ("daily: day", |f| {
                f.daily.insert(-1, Daily::default());
            }),
            ("daily", |f| {
                f.daily.insert(20_000, Daily { postings_published: MAX_COUNT + 1, placements: 0 });
            }),
            ("holds.fills", |f| f.holds.fills = i64::MIN),
        ];
        for (name, break_it) in cases {
            let mut f = Figures::default();
            break_it(&mut f);
            let e = f.validate().expect_err(name);
            assert!(e.starts_with(name), "{name}: {e}");
        }
        let mut f = Figures::default();
        f.by_work_type.insert("x".repeat(MAX_TEXT + 1), Breakdown::default());
        assert!(f.validate().is_err(), "a long key is refused");
    }

    /// Whatever is added, the roll-up saturates instead of wrapping or
    /// panicking (a debug build would panic on overflow).
    #[test]
    fn roll_up_never_wraps() {
        let mut sum = Figures::default();
        for _ in 0..3 {
            sum.add(&huge(), 1);
        }
        assert_eq!(sum.totals.positions_open, i64::MAX);
        assert_eq!(sum.by_category["catering"].postings_open, i64::MAX);
        sum.add(&huge(), -1);
        assert_eq!(sum.totals.placements, 0, "saturated at MAX, minus MAX");
        sum.add(&huge(), i64::MIN);
        assert_eq!(sum.totals.placements, i64::MIN, "sign * value saturates too");
        let mut t = Totals::default();
        t.add(&Totals { postings_open: i64::MIN, ..Default::default() }, -1);
        assert_eq!(t.postings_open, i64::MAX);
    }

    /// Within the bounds, sums over the largest simulated province (2,801
    /// offices) are exact: the bound leaves room for ~92,000 offices.
    #[test]
    fn sums_within_bounds_are_exact() {
        let mut one = Figures::default();
        one.totals.positions_open = MAX_POSITIONS_COUNT;
        one.totals.placements = MAX_COUNT;
        assert!(one.validate().is_ok());
        let mut sum = Figures::default();
        for _ in 0..92_000 {
            sum.add(&one, 1);
        }
        assert_eq!(sum.totals.positions_open, 92_000 * MAX_POSITIONS_COUNT);
        assert_eq!(sum.totals.placements, 92_000 * MAX_COUNT);
    }

    #[test]
    fn published_figures_always_pass_validation() {
        let f = huge().for_publication(20_000 * 86_400_000);
        assert!(f.validate().is_ok(), "{:?}", f.validate());
        assert_eq!(f.totals.positions_open, MAX_POSITIONS_COUNT);
        assert_eq!(f.daily[&20_000].placements, 0);
    }
}
