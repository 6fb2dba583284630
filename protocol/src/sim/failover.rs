//! Failover in the simulator: the driver's side of re-parenting, and the
//! check that no record crosses a link the routing rule does not allow.
//!
//! With a [`Failover`] policy set, every node below depth 2 has fallbacks:
//! its ancestors above its parent, nearest first (a county: the province; a
//! station: its city, then the province). The mesh plays the node's driver:
//!
//! - when a node's parent link has been down for `after_ms`, it attaches to
//!   the first fallback that is up (a fallback link: its own connection, with
//!   its own checkpoints at both ends);
//! - when the parent link has come back and stayed up for `return_ms` plus
//!   jitter, it closes its fallback links;
//! - a *spurious* attach (a fault) attaches a node whose parent is fine: the
//!   ancestor cannot tell, and convergence must not depend on it;
//! - a *long outage* (a fault) takes a node with children down for longer
//!   than `after_ms`, so that its children fail over, then brings it back.
//!
//! [`Mesh::check_crossing`] runs on every frame an engine sends and records a
//! violation for any record a link does not allow, stated here on its own
//! (not through [`crate::routing::sends_to`], so that a broken rule cannot
//! hide itself).

use super::mesh::{EvKind, LinkKey, Mesh, SimLink};
use crate::node_id::NodeId;
use crate::record::RouteMeta;
use crate::wire::{Frame, FrameV1, FrameV2};

/// The driver's failover timing, simulated ms.
#[derive(Debug, Clone)]
pub struct Failover {
    /// The parent link has been down this long: attach to a fallback.
    pub after_ms: u64,
    /// The parent link has been up this long: leave the fallbacks...
    pub return_ms: u64,
    /// ...plus up to this much, so that siblings do not all move at once.
    pub jitter_ms: u64,
}

impl Default for Failover {
    fn default() -> Self {
        Failover { after_ms: 2_000, return_ms: 1_500, jitter_ms: 1_000 }
    }
}

/// May a record with route `r` cross from `from` to `to`? Down to a
/// descendant: only what that descendant holds after convergence and did
/// not write; up to an ancestor: only what the sender's subtree wrote.
fn crossing_allowed(from: &NodeId, to: &NodeId, r: &RouteMeta) -> bool {
    let in_sub = |n: &NodeId, root: &NodeId| n.is_in_subtree_of(root);
    if to.is_ancestor_of(from) {
        return in_sub(&r.origin, from);
    }
    if from.is_ancestor_of(to) {
        let held = in_sub(&r.origin, to)
            || in_sub(&r.home, to)
            || r.audience.as_ref().is_some_and(|a| in_sub(a, to) || in_sub(to, a));
        return held && !in_sub(&r.origin, to);
    }
    false
}

impl Mesh {
    /// Turn failover on (before any fault; engines started already get
    /// their fallbacks now).
    pub fn enable_failover(&mut self, policy: Failover) {
        self.failover = Some(policy);
        for i in 0..self.len() {
            let fallbacks: Vec<NodeId> = self.fallbacks_of(i).into_iter().map(|f| self.id(f).clone()).collect();
            let me = self.id(i).clone();
            if let Some(e) = self.nodes[i].engine.as_mut() {
                e.set_fallbacks(fallbacks).unwrap_or_else(|e| panic!("fallbacks of {me}: {e}"));
            }
        }
    }

    /// Node `i`'s fallbacks: its ancestors above its parent, nearest first.
    pub(super) fn fallbacks_of(&self, i: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut up = self.parent_of(i).and_then(|p| self.parent_of(p));
        while let Some(a) = up {
            out.push(a);
            up = self.parent_of(a);
        }
        out
    }

    /// A link came up or went down (called by `update_link`).
    pub(super) fn link_changed(&mut self, key: LinkKey, fallback: bool, up: bool, conn: u64) {
        let Some(policy) = self.failover.clone() else { return };
        let child = key.0;
        if fallback {
            if up {
                self.stats.failovers += 1;
            } else if !self.parent_connected(child) {
                // The ancestor went away too: try the next one later.
                self.push(self.now + policy.after_ms, EvKind::FailoverCheck { child });
            }
            return;
        }
        if up {
            let at = self.now + policy.return_ms + self.rng.below(policy.jitter_ms + 1);
            self.push(at, EvKind::ReturnCheck { child, conn });
        } else {
            self.push(self.now + policy.after_ms, EvKind::FailoverCheck { child });
        }
    }

    fn parent_connected(&self, child: usize) -> bool {
        self.parent_link(child).is_some_and(|k| self.links[&k].connected)
    }

    fn attached(&self, child: usize) -> bool {
        self.links.iter().any(|((c, _), l)| *c == child && l.fallback && l.wanted && l.connected)
    }

    /// The parent link has been down for the failover delay (or the
    /// fallback in use went away): dial the first fallback that answers.
    pub(super) fn failover_check(&mut self, child: usize) {
        if self.failover.is_none() || !self.is_up(child) || self.parent_connected(child) || self.attached(child) {
            return;
        }
        for f in self.fallbacks_of(child) {
            if self.is_up(f) {
                self.attach(child, f);
                return;
            }
        }
        if let Some(p) = self.failover.clone() {
            self.push(self.now + p.after_ms, EvKind::FailoverCheck { child });
        }
    }

    /// Open (or keep wanting) the fallback link `child` → `ancestor`.
    fn attach(&mut self, child: usize, ancestor: usize) {
        let key = (child, ancestor);
        let link = self.links.entry(key).or_insert(SimLink {
            cut: false,
            conn: 0,
            connected: false,
            fallback: true,
            wanted: false,
        });
        link.wanted = true;
        self.update_link(key);
    }

    /// The parent link came up as `conn`: if it is still that connection,
    /// it has been stable for the return delay; close the fallback links.
    pub(super) fn return_check(&mut self, child: usize, conn: u64) {
        let Some(key) = self.parent_link(child) else { return };
        if !self.links[&key].connected || self.links[&key].conn != conn {
            return;
        }
        let fallbacks: Vec<LinkKey> =
            self.links.iter().filter(|((c, _), l)| *c == child && l.fallback && l.wanted).map(|(k, _)| *k).collect();
        for k in fallbacks {
            if let Some(l) = self.links.get_mut(&k) {
                l.wanted = false;
            }
            if self.links[&k].connected {
                self.stats.returns += 1;
            }
            self.update_link(k);
        }
    }

    /// Attach `child` to its first fallback although its parent may be
    /// fine (the ancestor cannot know), returning as the policy says.
    pub fn spurious_attach(&mut self, child: usize) {
        let Some(&f) = self.fallbacks_of(child).first() else { return };
        if self.failover.is_none() || !self.is_up(f) {
            return;
        }
        self.attach(child, f);
        if let (Some(key), Some(p)) = (self.parent_link(child), self.failover.clone()) {
            if self.links[&key].connected {
                let conn = self.links[&key].conn;
                let at = self.now + p.return_ms + self.rng.below(p.jitter_ms + 1);
                self.push(at, EvKind::ReturnCheck { child, conn });
            }
        }
    }

    /// Take node `i` down for `for_ms` (no restart before), so that its
    /// children fail over; it starts again when the outage ends.
    pub fn long_outage(&mut self, i: usize, for_ms: u64) {
        if !self.is_up(i) || self.held_down_until[i] > self.now {
            return;
        }
        self.stats.outages += 1;
        self.crash(i);
        self.held_down_until[i] = self.now + for_ms;
        self.push(self.now + for_ms, EvKind::OutageEnds { node: i });
    }

    /// Record a violation for every record in `frame` that may not cross
    /// from node `from` to node `to`; count records on fallback links.
    pub(super) fn check_crossing(&mut self, from: usize, to: usize, frame: &Frame) {
        let records = match frame {
            Frame::V1(FrameV1::Batch(b)) => &b.records,
            Frame::V2(FrameV2::Backfill(b)) => &b.records,
            _ => return,
        };
        if records.is_empty() {
            return;
        }
        let fallback = [(from, to), (to, from)].iter().any(|k| self.links.get(k).is_some_and(|l| l.fallback));
        if fallback {
            self.stats.fallback_records += records.len() as u64;
        }
        let (a, b) = (self.id(from).clone(), self.id(to).clone());
        for r in records {
            if !crossing_allowed(&a, &b, &r.route()) {
                let link = if fallback { "fallback link" } else { "link" };
                self.violations.borrow_mut().push(format!(
                    "{a} sent {} (origin {}) to {b} over a {link}: the routing rule does not allow it",
                    r.id, r.origin
                ));
            }
        }
    }
}
