//! The routing rule and the authorization rule, each as one function.
//!
//! The engine uses these to decide what to send and what to accept, and the
//! simulator and tests use [`holds`] as the expectation: after convergence a
//! node holds a record iff `holds` says so.
//!
//! Failover: a node whose parent is down may attach to an ancestor further
//! up (a *fallback*). Both rules treat such a link exactly as a parent–child
//! link: the ancestor sees the descendant as a child (a *temporary child*),
//! the descendant sees the ancestor as its parent. Every rule below is
//! therefore stated for "an ancestor" and "a descendant"; for the tree's own
//! edges that is the parent and the child of the design.

use crate::node_id::NodeId;
use crate::record::{Record, RouteMeta};

/// Does node `x` send a record with route `r` to its neighbour `to`?
///
/// - up: `x` sends to its parent (or a fallback ancestor) iff origin ∈ subtree(x);
/// - down: `x` sends to child `c` (or a descendant attached directly) iff
///   origin ∉ subtree(c) and
///   (c ∈ subtree(audience) or audience ∈ subtree(c) or home ∈ subtree(c)).
///
/// Down to a descendant `c` this sends exactly what [`holds`] gives `c` and
/// `c`'s subtree did not write, so a link that skips a node (the county
/// attached to the province while its city is down) carries nothing the
/// county would not hold anyway: the skipped city's share is not relayed.
///
/// A `to` that is neither ancestor nor descendant gets nothing.
pub fn sends_to(r: &RouteMeta, x: &NodeId, to: &NodeId) -> bool {
    if to.is_ancestor_of(x) {
        return r.origin.is_in_subtree_of(x);
    }
    if x.is_ancestor_of(to) {
        if r.origin.is_in_subtree_of(to) {
            return false;
        }
        let by_audience = r.audience.as_ref().is_some_and(|a| to.is_in_subtree_of(a) || a.is_in_subtree_of(to));
        return by_audience || r.home.is_in_subtree_of(to);
    }
    false
}

/// After convergence node `n` holds a record with route `r` iff `n` is an
/// ancestor-or-self of its origin, of its audience or of its home, or
/// `n` ∈ subtree(audience).
pub fn holds(n: &NodeId, r: &RouteMeta) -> bool {
    r.origin.is_in_subtree_of(n)
        || r.home.is_in_subtree_of(n)
        || r.audience.as_ref().is_some_and(|a| a.is_in_subtree_of(n) || n.is_in_subtree_of(a))
}

/// Why a record from a peer is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RejectReason {
    /// A child sent a record whose origin is outside the child's subtree.
    #[error("record {id} from child {peer}: origin {origin} is outside the child's subtree")]
    OriginOutsideChild { peer: NodeId, id: String, origin: NodeId },
    /// The parent sent a record whose origin is inside this node's subtree:
    /// only this subtree writes those.
    #[error("record {id} from parent {peer}: origin {origin} is inside this node's own subtree")]
    OriginInsideOwnSubtree { peer: NodeId, id: String, origin: NodeId },
    /// The peer is neither an ancestor of this node nor a descendant (nor,
    /// for a link, its parent, a child, a fallback or a descendant).
    #[error("peer {peer} is neither the parent nor a child of {me}")]
    NotANeighbour { peer: NodeId, me: NodeId },
    /// A fallback must be a strict ancestor other than the parent.
    #[error("{peer} cannot be a fallback of {me}: a fallback is an ancestor above the parent")]
    NotAFallback { peer: NodeId, me: NodeId },
    /// The routing rule does not give this node the record.
    #[error("record {id} from {peer}: the routing rule does not give it to {me}")]
    NotRoutedHere { peer: NodeId, id: String, me: NodeId },
    /// The record itself is malformed.
    #[error("record from {peer} is malformed: {problem}")]
    Malformed { peer: NodeId, problem: String },
}

impl RejectReason {
    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            RejectReason::OriginOutsideChild { .. } => "origin_outside_child",
            RejectReason::OriginInsideOwnSubtree { .. } => "origin_inside_own_subtree",
            RejectReason::NotANeighbour { .. } => "not_a_neighbour",
            RejectReason::NotAFallback { .. } => "not_a_fallback",
            RejectReason::NotRoutedHere { .. } => "not_routed_here",
            RejectReason::Malformed { .. } => "malformed",
        }
    }
}

/// May node `me` accept `record` from neighbour `peer`?
///
/// - from a child C (or a descendant C attached directly): only records with
///   origin ∈ subtree(C);
/// - from its parent (or a fallback ancestor): only records with origin ∉
///   subtree(me);
/// - and in both cases only records the routing rule gives `me`, well formed.
///
/// Which ancestors and descendants may link at all is the engine's and the
/// transport's decision ([`crate::engine::Engine::link_up_at`]); this rule
/// only says what such a link may carry.
pub fn authorize(me: &NodeId, peer: &NodeId, record: &Record) -> Result<(), RejectReason> {
    record.validate().map_err(|e| RejectReason::Malformed { peer: peer.clone(), problem: e.to_string() })?;
    let origin = &record.origin;
    if me.is_ancestor_of(peer) {
        if !origin.is_in_subtree_of(peer) {
            return Err(RejectReason::OriginOutsideChild {
                peer: peer.clone(),
                id: record.id.to_string(),
                origin: origin.clone(),
            });
        }
    } else if peer.is_ancestor_of(me) {
        if origin.is_in_subtree_of(me) {
            return Err(RejectReason::OriginInsideOwnSubtree {
                peer: peer.clone(),
                id: record.id.to_string(),
                origin: origin.clone(),
            });
        }
    } else {
        return Err(RejectReason::NotANeighbour { peer: peer.clone(), me: me.clone() });
    }
    if !holds(me, &record.route()) {
        return Err(RejectReason::NotRoutedHere { peer: peer.clone(), id: record.id.to_string(), me: me.clone() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> NodeId {
        NodeId::parse(s).unwrap()
    }

    fn route(o: &str, a: Option<&str>, h: &str) -> RouteMeta {
        RouteMeta { origin: id(o), audience: a.map(id), home: id(h) }
    }

    /// Routing table from the design, checked by flooding on a small tree:
    /// the set of nodes reached by applying `sends_to` hop by hop from the
    /// origin equals the set `holds` describes.
    #[test]
    fn flooding_reaches_exactly_holds() {
        let nodes: Vec<NodeId> =
            ["gz", "gz/a", "gz/b", "gz/a/x", "gz/a/y", "gz/b/z", "gz/b/w", "gz/a/x/s1", "gz/b/z/s2"]
                .iter()
                .map(|s| id(s))
                .collect();
        let cases = [
            route("gz/a/x", Some("gz/a/x"), "gz/a/x"),
            route("gz/a/x", Some("gz/a"), "gz/a/x"),
            route("gz/a/x", Some("gz"), "gz/a/x"),
            route("gz/a/x", Some("gz/b"), "gz/a/x"),
            route("gz/b/z/s2", Some("gz/a/y"), "gz/a/x"),
            route("gz/a/x", None, "gz/a/x"),
            route("gz/a", None, "gz/a/x/s1"),
            route("gz", Some("gz/b/z"), "gz"),
        ];
        for r in &cases {
            let mut reached = vec![r.origin.clone()];
            let mut frontier = vec![r.origin.clone()];
            while let Some(x) = frontier.pop() {
                for to in &nodes {
                    if sends_to(r, &x, to) && !reached.contains(to) {
                        reached.push(to.clone());
                        frontier.push(to.clone());
                    }
                }
            }
            for n in &nodes {
                assert_eq!(reached.contains(n), holds(n, r), "{r:?} at {n}");
            }
        }
    }

    /// A link that skips a level (a county attached to the province while
    /// its city is down) carries down exactly what the county holds and its
    /// subtree did not write, and up exactly its subtree's records.
    #[test]
    fn a_link_past_a_level_is_the_child_rule() {
        let (gz, city, county, station) = (id("gz"), id("gz/a"), id("gz/a/x"), id("gz/a/x/s1"));
        let others = ["gz", "gz/a", "gz/a/y", "gz/b", "gz/b/z", "gz/a/x", "gz/a/x/s1"];
        for o in others {
            for a in others.iter().map(|a| Some(*a)).chain([None]) {
                for h in others {
                    let r = route(o, a, h);
                    let origin = id(o);
                    let down = sends_to(&r, &gz, &county);
                    assert_eq!(down, holds(&county, &r) && !origin.is_in_subtree_of(&county), "{r:?}");
                    assert_eq!(sends_to(&r, &county, &gz), origin.is_in_subtree_of(&county), "{r:?}");
                    assert_eq!(sends_to(&r, &station, &gz), origin.is_in_subtree_of(&station), "{r:?}");
                }
            }
        }
        // A city's own posting for itself only reaches its counties through
        // the city or, while attached directly, from the province that holds it.
        let own = route("gz/a", Some("gz/a"), "gz/a");
        assert!(sends_to(&own, &gz, &county));
        assert!(!sends_to(&route("gz/a/y", None, "gz/a/y"), &gz, &county));
        assert!(sends_to(&route("gz/a/x", None, "gz/a/x"), &county, &city));
        assert!(!sends_to(&own, &id("gz/b"), &county), "siblings' subtrees never link");
    }

    #[test]
    fn authorization_on_a_link_past_a_level() {
        use crate::record::{Body, PostingStatus, WorkType};
        let posting = |origin: &str| Record {
            id: crate::record::RecordId::numbered(&id(origin), crate::record::Kind::Posting, 1),
            origin: id(origin),
            version: 1,
            body: Body::Posting(crate::record::Posting {
                title: "t".into(),
                employer: "e".into(),
                category: "c".into(),
                work_type: WorkType::OddJob,
                positions: 1,
                wage: None,
                location: None,
                valid_until: None,
                status: PostingStatus::Open,
                audience: id("gz"),
                created_at: 0,
                updated_at: 0,
            }),
        };
        let (gz, county) = (id("gz"), id("gz/a/x"));
        assert!(authorize(&gz, &county, &posting("gz/a/x/s1")).is_ok());
        assert!(matches!(authorize(&gz, &county, &posting("gz/a")), Err(RejectReason::OriginOutsideChild { .. })));
        assert!(matches!(authorize(&gz, &county, &posting("gz/a/y")), Err(RejectReason::OriginOutsideChild { .. })));
        assert!(authorize(&county, &gz, &posting("gz/a")).is_ok());
        assert!(matches!(
            authorize(&county, &gz, &posting("gz/a/x/s1")),
            Err(RejectReason::OriginInsideOwnSubtree { .. })
        ));
    }
}
