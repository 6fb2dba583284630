//! Service matters: what an office did for a person (labor-rights
//! protection, policy consultation, job-search help, …), and the figures
//! offices publish about them.
//!
//! Matters are the first record kind added after 0.1.0, so they and their
//! figures travel only on links that negotiated protocol 2 or later (see
//! [`crate::record::Kind::since_protocol`]). Their figures are a record kind
//! of their own ([`MattersSummary`]) rather than new fields in
//! [`crate::figures::Figures`], because 0.1.0 decodes that struct and a
//! shipped struct never gains a field.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::record::{KeyGroup, MAX_BREAKDOWN};
use crate::time::local_day;

/// Longest matter summary, in bytes (a short note, not a case file).
pub const MAX_MATTER_SUMMARY: usize = 280;
/// Days-to-resolve beyond this are counted in the last histogram bucket.
pub const MAX_RESOLVE_DAYS: u32 = 366;

/// What a matter is about (**contract** spelling in JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatterCategory {
    RightsProtection,
    PolicyConsultation,
    JobSearch,
    ReturnToWork,
    EnterpriseVisit,
    TrainingReferral,
    Other,
}

impl MatterCategory {
    pub const ALL: [MatterCategory; 7] = [
        MatterCategory::RightsProtection,
        MatterCategory::PolicyConsultation,
        MatterCategory::JobSearch,
        MatterCategory::ReturnToWork,
        MatterCategory::EnterpriseVisit,
        MatterCategory::TrainingReferral,
        MatterCategory::Other,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            MatterCategory::RightsProtection => "rights_protection",
            MatterCategory::PolicyConsultation => "policy_consultation",
            MatterCategory::JobSearch => "job_search",
            MatterCategory::ReturnToWork => "return_to_work",
            MatterCategory::EnterpriseVisit => "enterprise_visit",
            MatterCategory::TrainingReferral => "training_referral",
            MatterCategory::Other => "other",
        }
    }
    pub fn parse(s: &str) -> Option<MatterCategory> {
        MatterCategory::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// How the person reached the office (**contract** spelling in JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    WalkIn,
    // snake_case alone would spell it `hotline12333`, not the contract's
    // `hotline_12333` (`as_str`); the wire (bincode) carries the index only.
    #[serde(rename = "hotline_12333")]
    Hotline12333,
    Online,
    Outreach,
}

impl Channel {
    pub const ALL: [Channel; 4] = [Channel::WalkIn, Channel::Hotline12333, Channel::Online, Channel::Outreach];
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::WalkIn => "walk_in",
            Channel::Hotline12333 => "hotline_12333",
            Channel::Online => "online",
            Channel::Outreach => "outreach",
        }
    }
    pub fn parse(s: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Open or resolved (**contract** spelling in JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatterStatus {
    Open,
    Resolved,
}

impl MatterStatus {
    pub const ALL: [MatterStatus; 2] = [MatterStatus::Open, MatterStatus::Resolved];
    pub fn as_str(self) -> &'static str {
        match self {
            MatterStatus::Open => "open",
            MatterStatus::Resolved => "resolved",
        }
    }
    pub fn parse(s: &str) -> Option<MatterStatus> {
        MatterStatus::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// One service matter, written at one office; it flows up only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Matter {
    pub category: MatterCategory,
    pub channel: Channel,
    pub key_group: Option<KeyGroup>,
    pub summary: String,
    pub status: MatterStatus,
    /// Unix milliseconds at the origin when first stored.
    pub opened_at: u64,
    /// Unix milliseconds at the origin when the matter was resolved.
    pub resolved_at: Option<u64>,
    /// Unix milliseconds at the origin when this version was stored.
    pub updated_at: u64,
}

impl Matter {
    /// Check the fields a receiver can check: summary length, and that
    /// `resolved_at` is set exactly when the matter is resolved.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.summary.trim().is_empty() {
            return Err(("summary", "must not be empty".into()));
        }
        if self.summary.len() > MAX_MATTER_SUMMARY {
            return Err(("summary", format!("longer than {MAX_MATTER_SUMMARY} bytes")));
        }
        match (self.status, self.resolved_at) {
            (MatterStatus::Open, Some(_)) => Err(("resolved_at", "is set on an open matter".into())),
            (MatterStatus::Resolved, None) => Err(("resolved_at", "is missing on a resolved matter".into())),
            (MatterStatus::Resolved, Some(t)) if t < self.opened_at => {
                Err(("resolved_at", "is before the matter was opened".into()))
            }
            _ => Ok(()),
        }
    }
}

/// Matters counted in one breakdown entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatterCounts {
    pub opened: i64,
    pub resolved: i64,
    pub open_now: i64,
}

/// One local day's matters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatterDaily {
    pub opened: i64,
    pub resolved: i64,
}

/// An office's figures about its own matters. Every part is additive, so a
/// subtree's figures are the sum of its offices' (the median is read from
/// the summed histogram of days to resolve).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatterFigures {
    pub totals: MatterCounts,
    pub by_category: BTreeMap<String, MatterCounts>,
    pub by_channel: BTreeMap<String, MatterCounts>,
    /// Matters with a key group, by group; matters without one are not here.
    pub by_key_group: BTreeMap<String, MatterCounts>,
    /// Local day number → matters opened and resolved that day.
    pub daily: BTreeMap<i32, MatterDaily>,
    /// Whole days from opening to resolving → resolved matters.
    pub resolve_days: BTreeMap<u32, i64>,
    /// Matters held by the office (for in-flight comparison).
    pub holds: i64,
}

fn add_entry<K: Ord + Clone, V: Default + PartialEq + Copy>(map: &mut BTreeMap<K, V>, key: &K, f: impl FnOnce(&mut V)) {
    let v = map.entry(key.clone()).or_default();
    f(v);
    if *v == V::default() {
        map.remove(key);
    }
}

fn add_counts(d: &mut MatterCounts, s: &MatterCounts, sign: i64) {
    d.opened += sign * s.opened;
    d.resolved += sign * s.resolved;
    d.open_now += sign * s.open_now;
}

impl MatterFigures {
    /// `self += sign * other`, dropping entries that become zero.
    pub fn add(&mut self, o: &MatterFigures, sign: i64) {
        add_counts(&mut self.totals, &o.totals, sign);
        for (map, other) in [
            (&mut self.by_category, &o.by_category),
            (&mut self.by_channel, &o.by_channel),
            (&mut self.by_key_group, &o.by_key_group),
        ] {
            for (k, v) in other {
                add_entry(map, k, |d| add_counts(d, v, sign));
            }
        }
        for (k, v) in &o.daily {
            add_entry(&mut self.daily, k, |d| {
                d.opened += sign * v.opened;
                d.resolved += sign * v.resolved;
            });
        }
        for (k, v) in &o.resolve_days {
            add_entry(&mut self.resolve_days, k, |d| *d += sign * v);
        }
        self.holds += sign * o.holds;
    }

    /// The contribution of one own matter.
    pub fn of_matter(m: &Matter) -> MatterFigures {
        let mut f = MatterFigures { holds: 1, ..Default::default() };
        let resolved = m.status == MatterStatus::Resolved;
        let c = MatterCounts { opened: 1, resolved: i64::from(resolved), open_now: i64::from(!resolved) };
        f.totals = c;
        f.by_category.insert(m.category.as_str().to_owned(), c);
        f.by_channel.insert(m.channel.as_str().to_owned(), c);
        if let Some(g) = m.key_group {
            f.by_key_group.insert(g.as_str().to_owned(), c);
        }
        f.daily.insert(local_day(m.opened_at), MatterDaily { opened: 1, resolved: 0 });
        if let (true, Some(at)) = (resolved, m.resolved_at) {
            add_entry(&mut f.daily, &local_day(at), |d| d.resolved += 1);
            let days = (at.saturating_sub(m.opened_at) / 86_400_000).min(u64::from(MAX_RESOLVE_DAYS)) as u32;
            f.resolve_days.insert(days, 1);
        }
        f
    }

    /// Median whole days from opening to resolving, over resolved matters.
    pub fn median_days_to_resolve(&self) -> Option<f64> {
        let n: i64 = self.resolve_days.values().sum();
        if n <= 0 {
            return None;
        }
        let at = |rank: i64| -> f64 {
            let mut seen = 0;
            for (d, c) in &self.resolve_days {
                seen += c;
                if seen > rank {
                    return f64::from(*d);
                }
            }
            f64::from(MAX_RESOLVE_DAYS)
        };
        Some(if n % 2 == 1 { at(n / 2) } else { (at(n / 2 - 1) + at(n / 2)) / 2.0 })
    }

    /// A copy with only the last [`crate::figures::DAILY_WINDOW`] days.
    pub fn for_publication(&self, now_ms: u64) -> MatterFigures {
        let today = local_day(now_ms);
        let mut f = self.clone();
        f.daily.retain(|d, _| *d > today - crate::figures::DAILY_WINDOW && *d <= today);
        f
    }

    /// Limits a receiver enforces on a peer's matters summary.
    pub fn validate(&self) -> Result<(), String> {
        if self.by_category.len() > MAX_BREAKDOWN
            || self.by_channel.len() > MAX_BREAKDOWN
            || self.by_key_group.len() > MAX_BREAKDOWN
            || self.daily.len() > MAX_BREAKDOWN
            || self.resolve_days.len() > MAX_BREAKDOWN
        {
            return Err(format!("a breakdown has more than {MAX_BREAKDOWN} entries"));
        }
        // Every count within the bound the main figures use, so that the
        // roll-up of any number of offices' figures cannot overflow.
        use crate::figures::MAX_COUNT;
        let bounded = |name: &str, v: i64| {
            if (0..=MAX_COUNT).contains(&v) {
                Ok(())
            } else {
                Err(format!("{name} is {v}, outside 0..={MAX_COUNT}"))
            }
        };
        let counts = |name: &str, c: &MatterCounts| {
            bounded(&format!("{name}.opened"), c.opened)?;
            bounded(&format!("{name}.resolved"), c.resolved)?;
            bounded(&format!("{name}.open_now"), c.open_now)
        };
        counts("totals", &self.totals)?;
        for (part, map) in
            [("by_category", &self.by_category), ("by_channel", &self.by_channel), ("by_key_group", &self.by_key_group)]
        {
            for (k, c) in map {
                counts(&format!("{part}[{k}]"), c)?;
            }
        }
        for (d, c) in &self.daily {
            bounded(&format!("daily[{d}].opened"), c.opened)?;
            bounded(&format!("daily[{d}].resolved"), c.resolved)?;
        }
        for (days, n) in &self.resolve_days {
            if *days > MAX_RESOLVE_DAYS {
                return Err(format!("resolve_days has key {days}, above {MAX_RESOLVE_DAYS}"));
            }
            bounded(&format!("resolve_days[{days}]"), *n)?;
        }
        bounded("holds", self.holds)
    }
}

/// One office's matter figures as it made them at `generated_at`: the
/// matters counterpart of [`crate::record::Summary`], up only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MattersSummary {
    pub generated_at: u64,
    pub figures: MatterFigures,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peers_matter_counts_are_bounded() {
        let mut f = MatterFigures::default();
        f.totals.opened = 5;
        assert!(f.validate().is_ok());
        f.by_channel.insert("hotline_12333".into(), MatterCounts { opened: i64::MAX, resolved: 0, open_now: 0 });
        let e = f.validate().unwrap_err();
        assert!(e.contains("by_channel[hotline_12333].opened"), "{e}");
        f.by_channel.clear();
        f.holds = -1;
        assert!(f.validate().unwrap_err().contains("holds"));
        f.holds = 0;
        f.resolve_days.insert(MAX_RESOLVE_DAYS + 1, 1);
        assert!(f.validate().unwrap_err().contains("resolve_days"));
    }

    fn matter(status: MatterStatus, opened: u64, resolved: Option<u64>) -> Matter {
        Matter {
            category: MatterCategory::RightsProtection,
            channel: Channel::Hotline12333,
            key_group: Some(KeyGroup::MigrantWorker),
            summary: "unpaid wages".into(),
            status,
            opened_at: opened,
            resolved_at: resolved,
            updated_at: resolved.unwrap_or(opened),
        }
    }

    #[test]
    fn contributions_cancel_and_median_reads_the_histogram() {
        let day = 86_400_000;
        let t0 = 1_700_000_000_000;
        let open = matter(MatterStatus::Open, t0, None);
        let mut f = MatterFigures::default();
        f.add(&MatterFigures::of_matter(&open), 1);
        assert_eq!(f.totals, MatterCounts { opened: 1, resolved: 0, open_now: 1 });
        f.add(&MatterFigures::of_matter(&open), -1);
        assert_eq!(f, MatterFigures::default(), "a removed contribution leaves nothing");
        for d in [1, 3, 10] {
            f.add(&MatterFigures::of_matter(&matter(MatterStatus::Resolved, t0, Some(t0 + d * day))), 1);
        }
        assert_eq!(f.median_days_to_resolve(), Some(3.0));
        f.add(&MatterFigures::of_matter(&matter(MatterStatus::Resolved, t0, Some(t0 + 20 * day))), 1);
        assert_eq!(f.median_days_to_resolve(), Some(6.5));
        assert_eq!(f.by_key_group["migrant_worker"].resolved, 4);
    }

    #[test]
    fn resolved_at_must_match_the_status() {
        assert!(matter(MatterStatus::Open, 5, Some(6)).validate().is_err());
        assert!(matter(MatterStatus::Resolved, 5, None).validate().is_err());
        assert!(matter(MatterStatus::Resolved, 5, Some(4)).validate().is_err());
        assert!(matter(MatterStatus::Resolved, 5, Some(5)).validate().is_ok());
    }
}
