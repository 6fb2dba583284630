//! The roll-up: the figures of this node's subtree, kept as summaries are
//! applied, so that the dashboard, `/v1/summary` and `/metrics` read them
//! from memory and the simulator checks the very same numbers.
//!
//! The engine feeds every summary record it applies ([`Rollup::apply`]) and
//! every summary in the store at open ([`Rollup::load`]). Each office of the
//! subtree has one entry: its latest summary (figures, `generated_at`, and
//! when this node received it, by this node's clock) and the sum of the
//! summaries of its whole subtree. A new summary changes the sums of its
//! office's ancestors by the difference from the one it replaces, so an
//! update costs the depth of the tree, and a question costs the rows asked.
//!
//! The offices expected are those the topology lists under this node
//! ([`Rollup::expect`]), every office that reported, and every office on the
//! path between this node and one that reported (the report came through
//! it). An office expected but without a summary is *missing*.
//!
//! Staleness ([`judge`]) is decided with `now` passed in: an office is stale
//! when the link from this node toward it is down, when its summary is
//! older than `stale_after_s`, or when it is missing. The age is measured by
//! this node's clock from when this node *heard the figures fresh*, never by
//! subtracting another machine's timestamp, so an office whose clock is
//! wrong is judged right:
//!
//! - A summary is dated when it is applied here (`received_at`, this node's
//!   clock). A peer that advertised `CAP_CLOCK` sends, just before each
//!   batch with summaries, how long it had held each one since it was
//!   fresh ([`crate::wire::FrameV2::SummaryAges`], by its own clock); the
//!   summary is then dated `now - age` ([`Rollup::heard`]). Each hop adds
//!   only a duration it measured itself, so a summary that waited at a cut
//!   off city arrives as old as it is. The one-way transit of the frame is
//!   not counted (milliseconds).
//! - From a peer without `CAP_CLOCK` (0.1.0, protocol-1 links) the receive
//!   time is all there is: a summary that waited below such a peer counts as
//!   fresh from its arrival, and a silent office still turns stale
//!   `stale_after_s` after its last summary arrived.
//! - Summaries already in the store when the node started are dated at the
//!   earlier of their own `generated_at` and the start: an office whose
//!   clock is ahead turns stale within `stale_after_s` of the start if it
//!   stays silent; one whose clock is behind may show stale until its next
//!   summary (30 s at most from a live office).

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::figures::{Figures, Holds, Totals};
use crate::health::Health;
use crate::kv::{Kv, StoreError};
use crate::node_id::NodeId;
use crate::record::{Body, Kind, Record, RecordId};
use crate::store;
use crate::topology::{tier_by_depth, Office, Topology};

/// Summary records read per step at open.
const LOAD_PAGE: usize = 4096;

/// One office's latest summary as held here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub version: u64,
    /// When the office made it, by the office's clock (Unix ms).
    pub generated_at: u64,
    /// When the figures were fresh, by this node's clock (Unix ms): when
    /// this node applied the summary, less the age its sender reported (see
    /// the module docs). `None` only for reports built by hand.
    pub received_at: Option<u64>,
    pub figures: Figures,
}

impl Report {
    /// Milliseconds since the office was last heard of, at `now` by this
    /// node's clock (see the module docs for the fallback).
    pub fn age_ms(&self, now: u64) -> u64 {
        now.saturating_sub(self.received_at.unwrap_or(self.generated_at))
    }
}

/// Whether an office counts as stale at this node, and its age in seconds.
///
/// The one rule: stale when the link toward it is down, when it is missing
/// (`report` is `None`), or when its age exceeds `stale_after_s`.
pub fn judge(report: Option<&Report>, now: u64, stale_after_s: u64, link_down: bool) -> (Option<u64>, bool) {
    let age_s = report.map(|r| r.age_ms(now) / 1000);
    let stale = link_down || age_s.is_none_or(|a| a > stale_after_s);
    (age_s, stale)
}

/// Node ids in tree order: segment by segment, so `gz/a` and everything
/// below it come before `gz/a-b`, and a subtree is one contiguous range.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TreeKey(NodeId);

impl Ord for TreeKey {
    fn cmp(&self, o: &Self) -> Ordering {
        self.0.as_str().split('/').cmp(o.0.as_str().split('/'))
    }
}

impl PartialOrd for TreeKey {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

#[derive(Debug, Clone, Default)]
struct Entry {
    /// The topology's entry, when the topology lists the office.
    listed: Option<Office>,
    report: Option<Report>,
    /// The office's latest health report held here, with its version.
    health: Option<(u64, Health)>,
    /// Sum of the figures of every report in the office's subtree.
    subtree: Figures,
}

/// The roll-up of one node's subtree. See the module docs.
#[derive(Debug, Clone)]
pub struct Rollup {
    me: NodeId,
    entries: BTreeMap<TreeKey, Entry>,
    /// When the store was last read (this node's clock): the latest date a
    /// summary loaded from it can have.
    loaded_at: u64,
}

/// One office as a question about a subtree sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfficeRow {
    pub node_id: NodeId,
    /// The topology's tier, else the tier of its depth.
    pub tier: String,
    pub name: Option<String>,
    pub name_zh: Option<String>,
    /// `generated_at` of the summary held here; `None` when missing.
    pub reported_at: Option<u64>,
    /// When this node received that summary, by its own clock.
    pub received_at: Option<u64>,
    /// The office's own figures; `None` when missing.
    pub totals: Option<Totals>,
    /// What the office says it holds of its own records.
    pub holds: Option<Holds>,
    /// The sum over the office's subtree of the reported figures.
    pub subtree: Totals,
    pub age_s: Option<u64>,
    pub stale: bool,
    /// The link from this node toward the office is down.
    pub link_down: bool,
    /// The office's latest health report held here.
    pub health: Option<Health>,
}

impl OfficeRow {
    pub fn missing(&self) -> bool {
        self.totals.is_none()
    }
}

/// Counts over a whole subtree, whatever depth of rows was asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Reporting {
    /// Offices with a summary held here.
    pub offices: usize,
    /// Offices known to exist: the topology's subtree, plus any office that
    /// reported or relays a report.
    pub expected: usize,
    pub stale: usize,
    pub missing: usize,
}

/// The answer about one subtree.
#[derive(Debug, Clone)]
pub struct SubtreeView {
    pub root: NodeId,
    /// The sum of every reported summary in the subtree.
    pub figures: Figures,
    pub reporting: Reporting,
    /// Tree order (parents before their children), down to the depth asked.
    pub rows: Vec<OfficeRow>,
}

impl Rollup {
    /// An empty roll-up for node `me`: only `me` is expected.
    pub fn new(me: NodeId) -> Rollup {
        let mut r = Rollup { me: me.clone(), entries: BTreeMap::new(), loaded_at: 0 };
        r.entries.insert(TreeKey(me), Entry::default());
        r
    }

    /// Every summary of `me`'s subtree in the store, at `now`.
    pub fn load<K: Kv + ?Sized>(kv: &K, me: &NodeId, now: u64) -> Result<Rollup, StoreError> {
        let mut r = Rollup::new(me.clone());
        r.reload(kv, now)?;
        Ok(r)
    }

    /// Forget the reports and read them again from the store at `now`, as
    /// at open (receive times are lost: see the module docs for how loaded
    /// summaries are dated); the expected offices stay.
    pub fn reload<K: Kv + ?Sized>(&mut self, kv: &K, now: u64) -> Result<(), StoreError> {
        self.loaded_at = now;
        for e in self.entries.values_mut() {
            e.report = None;
            e.health = None;
            e.subtree = Figures::default();
        }
        let prefix = self.me.dotted();
        for kind in [Kind::Summary, Kind::Health] {
            let mut after: Option<String> = None;
            loop {
                let page = store::list_records(kv, kind, &prefix, after.as_deref(), LOAD_PAGE)?;
                for s in &page {
                    self.apply(&s.record, None);
                }
                match page.last() {
                    Some(last) if page.len() == LOAD_PAGE => after = Some(last.record.id.to_string()),
                    _ => break,
                }
            }
        }
        Ok(())
    }

    pub fn node_id(&self) -> &NodeId {
        &self.me
    }

    /// Expect the offices the topology lists in this node's subtree.
    pub fn expect(&mut self, topology: &Topology) {
        for o in &topology.offices {
            if o.id.is_in_subtree_of(&self.me) {
                self.ensure(&o.id);
                if let Some(e) = self.entries.get_mut(&TreeKey(o.id.clone())) {
                    e.listed = Some(o.clone());
                }
            }
        }
    }

    /// Expect the offices `other` lists from its topology.
    pub fn expect_as(&mut self, other: &Rollup) {
        for e in other.entries.values() {
            if let Some(o) = e.listed.as_ref().filter(|o| o.id.is_in_subtree_of(&self.me)) {
                self.ensure(&o.id);
                if let Some(mine) = self.entries.get_mut(&TreeKey(o.id.clone())) {
                    mine.listed = Some(o.clone());
                }
            }
        }
    }

    /// Take a summary or health record applied by this node (`received_at`:
    /// now, by this node's clock; `None` when loaded from the store).
    /// Anything else, anything not of this subtree, or not newer than the
    /// one held, is ignored.
    pub fn apply(&mut self, record: &Record, received_at: Option<u64>) {
        if let Body::Health(h) = &record.body {
            self.apply_health(record, h);
            return;
        }
        let Body::Summary(s) = &record.body else { return };
        let origin = &record.origin;
        if !origin.is_in_subtree_of(&self.me) || record.id != RecordId::summary(origin) {
            return;
        }
        self.ensure(origin);
        let Some(entry) = self.entries.get_mut(&TreeKey(origin.clone())) else { return };
        if entry.report.as_ref().is_some_and(|r| r.version >= record.version) {
            return;
        }
        let received_at = Some(received_at.unwrap_or(s.generated_at.min(self.loaded_at)));
        let old = entry.report.replace(Report {
            version: record.version,
            generated_at: s.generated_at,
            received_at,
            figures: s.figures.clone(),
        });
        let mut cur = Some(origin.clone());
        while let Some(id) = cur {
            if !id.is_in_subtree_of(&self.me) {
                break;
            }
            if let Some(e) = self.entries.get_mut(&TreeKey(id.clone())) {
                if let Some(old) = &old {
                    e.subtree.add(&old.figures, -1);
                }
                e.subtree.add(&s.figures, 1);
            }
            cur = id.parent();
        }
    }

    fn apply_health(&mut self, record: &Record, h: &Health) {
        let origin = &record.origin;
        if !origin.is_in_subtree_of(&self.me) || record.id != RecordId::health(origin) {
            return;
        }
        self.ensure(origin);
        let Some(entry) = self.entries.get_mut(&TreeKey(origin.clone())) else { return };
        if entry.health.as_ref().is_some_and(|(v, _)| *v >= record.version) {
            return;
        }
        entry.health = Some((record.version, h.clone()));
    }

    /// The latest health report held from `id`.
    pub fn health(&self, id: &NodeId) -> Option<&Health> {
        self.entries.get(&TreeKey(id.clone()))?.health.as_ref().map(|(_, h)| h)
    }

    /// Health reports of subtree(`root`) held here, in tree order.
    pub fn health_reports(&self, root: &NodeId) -> Vec<(&NodeId, &Health)> {
        self.entries
            .range(TreeKey(root.clone())..)
            .take_while(|(k, _)| k.0.is_in_subtree_of(root))
            .filter_map(|(k, e)| e.health.as_ref().map(|(_, h)| (&k.0, h)))
            .collect()
    }

    /// The sender of version `version` of `office`'s summary had held it
    /// `age_ms` since it was fresh: date it `now - age_ms` if that is
    /// earlier than the date held. False if this version is not held (yet).
    pub fn heard(&mut self, office: &NodeId, version: u64, age_ms: u64, now: u64) -> bool {
        let Some(r) = self.entries.get_mut(&TreeKey(office.clone())).and_then(|e| e.report.as_mut()) else {
            return false;
        };
        if r.version != version {
            return false;
        }
        let at = now.saturating_sub(age_ms);
        r.received_at = Some(r.received_at.map_or(at, |held| held.min(at)));
        true
    }

    /// How long before `now` the figures of version `version` of `office`'s
    /// summary were fresh, as this node knows it: what it tells the next
    /// hop. `None` if another version is held.
    pub fn age_of(&self, office: &NodeId, version: u64, now: u64) -> Option<u64> {
        let r = self.entries.get(&TreeKey(office.clone()))?.report.as_ref()?;
        (r.version == version).then(|| r.age_ms(now))
    }

    /// Add `id` and every office between it and this node, if absent. A new
    /// entry never has entries below it (they would have added it), so its
    /// subtree sum starts at zero rightly.
    fn ensure(&mut self, id: &NodeId) {
        let mut cur = Some(id.clone());
        while let Some(n) = cur {
            if !n.is_in_subtree_of(&self.me) {
                break;
            }
            let key = TreeKey(n.clone());
            if self.entries.contains_key(&key) {
                break;
            }
            self.entries.insert(key, Entry::default());
            cur = n.parent();
        }
    }

    /// Is `id` known here (expected, reported or on a report's path)?
    pub fn knows(&self, id: &NodeId) -> bool {
        self.entries.contains_key(&TreeKey(id.clone()))
    }

    /// The latest summary held from `id`.
    pub fn report(&self, id: &NodeId) -> Option<&Report> {
        self.entries.get(&TreeKey(id.clone()))?.report.as_ref()
    }

    /// Offices known, in tree order, with their reports.
    pub fn offices(&self) -> impl Iterator<Item = (&NodeId, Option<&Report>)> {
        self.entries.iter().map(|(k, e)| (&k.0, e.report.as_ref()))
    }

    /// The subtree of `root` at `now`: counts over all of it, rows down to
    /// `depth` levels below `root` (all when `None`). `link_up(peer)` says
    /// whether this node's link to a peer is up (a direct child, or a
    /// descendant attached directly); it is asked at most once per office.
    /// `None` when `root` is not known here.
    pub fn view(
        &self,
        root: &NodeId,
        depth: Option<u64>,
        now: u64,
        stale_after_s: u64,
        mut link_up: impl FnMut(&NodeId) -> bool,
    ) -> Option<SubtreeView> {
        let root_entry = self.entries.get(&TreeKey(root.clone()))?;
        let root_depth = root.depth();
        let mut child_up: HashMap<NodeId, bool> = HashMap::new();
        let mut reporting = Reporting::default();
        let mut rows = Vec::new();
        for (key, e) in self.entries.range(TreeKey(root.clone())..) {
            let id = &key.0;
            if !id.is_in_subtree_of(root) {
                break;
            }
            // The way toward `id` is up when this node has a live link to
            // `id` or to any office between them: its child on the path, or
            // a descendant attached directly while its own parent is down
            // (failover), whose subtree is then reachable without the child.
            let link_down = if self.me.is_ancestor_of(id) {
                let mut up = false;
                let mut at = Some(id.clone());
                while let Some(hop) = at.filter(|h| h != &self.me) {
                    if *child_up.entry(hop.clone()).or_insert_with(|| link_up(&hop)) {
                        up = true;
                        break;
                    }
                    at = hop.parent();
                }
                !up
            } else {
                false
            };
            let (age_s, stale) = judge(e.report.as_ref(), now, stale_after_s, link_down);
            reporting.expected += 1;
            reporting.stale += usize::from(stale);
            match e.report {
                Some(_) => reporting.offices += 1,
                None => reporting.missing += 1,
            }
            if depth.is_some_and(|d| (id.depth() - root_depth) as u64 > d) {
                continue;
            }
            let listed = e.listed.as_ref();
            rows.push(OfficeRow {
                node_id: id.clone(),
                tier: listed.map(|o| o.tier.clone()).unwrap_or_else(|| tier_by_depth(id.depth())),
                name: listed.map(|o| o.name.clone()).filter(|s| !s.is_empty()),
                name_zh: listed.map(|o| o.name_zh.clone()).filter(|s| !s.is_empty()),
                reported_at: e.report.as_ref().map(|r| r.generated_at),
                received_at: e.report.as_ref().and_then(|r| r.received_at),
                totals: e.report.as_ref().map(|r| r.figures.totals),
                holds: e.report.as_ref().map(|r| r.figures.holds),
                subtree: e.subtree.totals,
                age_s,
                stale,
                link_down,
                health: e.health.as_ref().map(|(_, h)| h.clone()),
            });
        }
        Some(SubtreeView { root: root.clone(), figures: root_entry.subtree.clone(), reporting, rows })
    }

    /// The tier of an office: the topology's, else by depth.
    pub fn tier(&self, id: &NodeId) -> String {
        self.entries
            .get(&TreeKey(id.clone()))
            .and_then(|e| e.listed.as_ref())
            .map(|o| o.tier.clone())
            .unwrap_or_else(|| tier_by_depth(id.depth()))
    }
}

/// Records by kind, as counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct InFlight {
    pub postings: i64,
    pub workers: i64,
    pub placements: i64,
    pub fills: i64,
}

/// What `office` says it holds of its own records (`holds`) minus what this
/// node's store holds of them: records still on their way here. Counts stop
/// at what the office claims, so a large store is not scanned to the end.
pub fn in_flight<K: Kv + ?Sized>(kv: &K, office: &NodeId, holds: &Holds) -> Result<InFlight, StoreError> {
    let missing = |kind: Kind, holds: i64| -> Result<i64, StoreError> {
        if holds <= 0 {
            return Ok(0);
        }
        let here = store::count_records(kv, kind, &RecordId::origin_prefix(office, kind), holds as u64)?;
        Ok((holds - here as i64).max(0))
    };
    Ok(InFlight {
        postings: missing(Kind::Posting, holds.postings)?,
        workers: missing(Kind::Worker, holds.workers)?,
        placements: missing(Kind::Placement, holds.placements)?,
        fills: missing(Kind::Fill, holds.fills)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Summary;

    fn id(s: &str) -> NodeId {
        NodeId::parse(s).unwrap()
    }

    fn summary(origin: &str, version: u64, at: u64, open: i64) -> Record {
        let mut f = Figures::default();
        f.totals.postings_open = open;
        f.by_category.insert("mining".into(), crate::figures::Breakdown { postings_open: open, ..Default::default() });
        let origin = id(origin);
        Record {
            id: RecordId::summary(&origin),
            origin,
            version,
            body: Body::Summary(Summary { generated_at: at, figures: f }),
        }
    }

    fn row<'a>(v: &'a SubtreeView, n: &str) -> &'a OfficeRow {
        v.rows.iter().find(|r| r.node_id.as_str() == n).unwrap()
    }

    fn health(origin: &str, version: u64, serial: &str, not_after: i64) -> Record {
        let origin = id(origin);
        let facts = crate::health::HealthFacts {
            software: "0.2.0".into(),
            cert_serial: Some(serial.into()),
            cert_not_after: Some(not_after),
            clock_offset_ms: Some(-600_000),
            counters: Default::default(),
        };
        Record { id: RecordId::health(&origin), origin, version, body: Body::Health(facts.stamp(1)) }
    }

    #[test]
    fn health_reports_are_kept_per_office_latest_version_only() {
        let mut r = Rollup::new(id("gz"));
        r.apply(&health("gz/a/x", 2, "0b", 2_000), Some(10));
        r.apply(&health("gz/a/x", 1, "0a", 1_000), Some(11));
        r.apply(&health("gz/b", 1, "0c", 3_000), None);
        r.apply(&health("other", 1, "0d", 3_000), None);
        assert_eq!(r.health(&id("gz/a/x")).unwrap().cert_serial.as_deref(), Some("0b"), "an older version is ignored");
        let all: Vec<&str> = r.health_reports(&id("gz")).into_iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(all, ["gz/a/x", "gz/b"], "tree order, this subtree only");
        let under_a: Vec<&str> = r.health_reports(&id("gz/a")).into_iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(under_a, ["gz/a/x"]);
        let v = r.view(&id("gz"), None, 20, 120, |_| true).unwrap();
        assert_eq!(row(&v, "gz/a/x").health.as_ref().and_then(|h| h.clock_offset_ms), Some(-600_000));
        assert!(row(&v, "gz/a/x").missing(), "a health report is not figures");
    }

    #[test]
    fn sums_follow_replacements_and_missing_offices_are_counted() {
        let topo = Topology::parse_tsv("gz\t\tprovince\tGZ\t\ngz/a\tgz\tcity\tA\t\ngz/b\tgz\tcity\tB\t\n").unwrap();
        let mut r = Rollup::new(id("gz"));
        r.expect(&topo);
        r.apply(&summary("gz/a/x", 1, 1_000, 3), Some(1_000));
        r.apply(&summary("gz", 1, 1_000, 1), Some(1_000));
        let v = r.view(&id("gz"), None, 2_000, 120, |_| true).unwrap();
        let order: Vec<&str> = v.rows.iter().map(|r| r.node_id.as_str()).collect();
        assert_eq!(order, ["gz", "gz/a", "gz/a/x", "gz/b"]);
        assert_eq!(v.reporting, Reporting { offices: 2, expected: 4, stale: 2, missing: 2 });
        assert_eq!(row(&v, "gz").subtree.postings_open, 4);
        assert_eq!(row(&v, "gz/a").subtree.postings_open, 3);
        assert!(row(&v, "gz/a").missing() && row(&v, "gz/a").stale);
        assert_eq!(row(&v, "gz/a/x").tier, "county", "by depth when the topology does not list it");
        assert_eq!(v.figures.by_category["mining"].postings_open, 4);

        // A newer summary replaces the old one's share; an older one is ignored.
        r.apply(&summary("gz/a/x", 3, 3_000, 1), Some(3_000));
        r.apply(&summary("gz/a/x", 2, 2_000, 9), Some(3_100));
        let v = r.view(&id("gz/a"), Some(0), 3_500, 120, |_| true).unwrap();
        assert_eq!(v.rows.len(), 1, "depth 0: the root only");
        assert_eq!(v.reporting.expected, 2, "counts cover the whole subtree");
        assert_eq!(v.rows[0].subtree.postings_open, 1);
        assert_eq!(v.figures.by_category["mining"].postings_open, 1);
        assert!(r.view(&id("gz/c"), None, 0, 120, |_| true).is_none());
    }

    #[test]
    fn staleness_is_judged_by_the_receive_time_and_the_link() {
        let mut r = Rollup::new(id("gz"));
        // The office's clock is ten minutes behind: its summary says so,
        // but it arrived just now.
        r.apply(&summary("gz/a", 1, 400_000, 1), Some(1_000_000));
        r.apply(&summary("gz/b", 1, 1_000_000, 1), Some(1_000_000));
        let mut asked = Vec::new();
        let v = r
            .view(&id("gz"), None, 1_005_000, 120, |c| {
                asked.push(c.clone());
                c.as_str() != "gz/b"
            })
            .unwrap();
        assert_eq!((row(&v, "gz/a").age_s, row(&v, "gz/a").stale), (Some(5), false));
        assert!(row(&v, "gz/b").stale && row(&v, "gz/b").link_down);
        assert!(!row(&v, "gz").link_down && row(&v, "gz").stale, "gz itself has not reported");
        assert_eq!(asked.len(), 2, "one question per child");
        let v = r.view(&id("gz"), None, 1_200_000, 120, |_| true).unwrap();
        assert_eq!((row(&v, "gz/a").age_s, row(&v, "gz/a").stale), (Some(200), true));
        // The sender says it held gz/b's figures for 300 s: they are that old.
        assert!(r.heard(&id("gz/b"), 1, 300_000, 1_100_000));
        assert_eq!(r.report(&id("gz/b")).unwrap().received_at, Some(800_000));
        assert!(!r.heard(&id("gz/b"), 2, 0, 1_100_000), "another version");
        assert!(r.heard(&id("gz/b"), 1, 0, 1_100_000));
        assert_eq!(r.report(&id("gz/b")).unwrap().received_at, Some(800_000), "never made fresher");
        assert_eq!(r.age_of(&id("gz/b"), 1, 1_100_000), Some(300_000));
        assert_eq!(r.age_of(&id("gz/b"), 2, 1_100_000), None);
    }

    #[test]
    fn a_county_attached_directly_is_reachable_while_its_city_is_not() {
        let mut r = Rollup::new(id("gz"));
        r.apply(&summary("gz/b", 1, 1_000_000, 1), Some(1_000_000));
        r.apply(&summary("gz/b/k", 1, 1_000_000, 1), Some(1_000_000));
        r.apply(&summary("gz/b/k/s", 1, 1_000_000, 1), Some(1_000_000));
        let v = r.view(&id("gz"), None, 1_001_000, 120, |p| p.as_str() == "gz/b/k").unwrap();
        assert!(row(&v, "gz/b").link_down && row(&v, "gz/b").stale, "the city's own row stays stale");
        assert!(!row(&v, "gz/b/k").link_down && !row(&v, "gz/b/k").stale);
        assert!(!row(&v, "gz/b/k/s").link_down, "the county's subtree comes with it");
    }

    #[test]
    fn load_reads_the_subtree_only() {
        let mut kv = crate::kv::MemKv::new();
        let mut a = store::Applier::new(&kv, 0);
        for rec in [summary("gz/a", 1, 5, 2), summary("gz/a-b", 1, 5, 7), summary("gz/a/x", 1, 5, 3)] {
            a.merge(rec).unwrap();
        }
        kv.write(a.finish().batch).unwrap();
        let r = Rollup::load(&kv, &id("gz/a"), 3).unwrap();
        let v = r.view(&id("gz/a"), None, 10, 120, |_| true).unwrap();
        assert_eq!(v.rows.len(), 2);
        assert_eq!(v.rows[0].subtree.postings_open, 5);
        // Made at 5 by a clock ahead of this node's: dated at the load, 3.
        assert_eq!(v.rows[1].received_at, Some(3));
        let r = Rollup::load(&kv, &id("gz/a"), 50).unwrap();
        assert_eq!(r.report(&id("gz/a/x")).unwrap().received_at, Some(5));
    }
}
