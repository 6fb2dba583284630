//! The expectation: for every record a test created through the API, its
//! route (origin, audience, home as design.md defines them) and therefore,
//! by `jobmesh_protocol::routing::holds`, the exact set of nodes that must
//! hold it once the mesh has converged.

use std::collections::{BTreeMap, BTreeSet};

use jobmesh_protocol::record::{Kind, RecordId, RouteMeta};
use jobmesh_protocol::routing::holds;
use jobmesh_protocol::NodeId;

/// Parse a node id the test wrote itself.
pub fn nid(s: &str) -> NodeId {
    NodeId::parse(s).unwrap_or_else(|e| panic!("test uses a bad node id {s:?}: {e}"))
}

/// A posting as the oracle knows it.
#[derive(Debug, Clone)]
pub struct PostingFacts {
    pub origin: NodeId,
    pub audience: NodeId,
    pub positions: u64,
}

/// Every record the test made, by kind and id, with its route.
#[derive(Debug, Default, Clone)]
pub struct Oracle {
    routes: BTreeMap<(Kind, String), RouteMeta>,
    postings: BTreeMap<String, PostingFacts>,
    /// Placements per fill id (a fill counts the placements made at one node
    /// for one posting).
    fills: BTreeMap<String, u64>,
    /// Fill ids of each posting.
    fills_of: BTreeMap<String, BTreeSet<String>>,
}

impl Oracle {
    pub fn new() -> Oracle {
        Oracle::default()
    }

    /// A posting created at `at` with `audience` (the node's own id when the
    /// request had none). Origin and home are `at`.
    pub fn posting(&mut self, at: &str, id: &str, audience: &str, positions: u64) {
        let (origin, audience) = (nid(at), nid(audience));
        let route = RouteMeta { origin: origin.clone(), audience: Some(audience.clone()), home: origin.clone() };
        self.routes.insert((Kind::Posting, id.to_string()), route);
        self.postings.insert(id.to_string(), PostingFacts { origin, audience, positions });
    }

    /// A worker registered at `at`: up only.
    pub fn worker(&mut self, at: &str, id: &str) {
        let origin = nid(at);
        self.routes
            .insert((Kind::Worker, id.to_string()), RouteMeta { origin: origin.clone(), audience: None, home: origin });
    }

    /// A placement made at `at` of a worker registered at `worker_office`
    /// for `posting_id`: the placement goes up from `at` and down to the
    /// worker's office; it also creates or bumps the fill `<at>_f~<posting>`,
    /// which carries the posting's audience and has the posting's origin as
    /// home.
    pub fn placement(&mut self, at: &str, id: &str, worker_office: &str, posting_id: &str) {
        let origin = nid(at);
        let facts = self
            .postings
            .get(posting_id)
            .unwrap_or_else(|| panic!("oracle: placement for unknown posting {posting_id}"))
            .clone();
        self.routes.insert(
            (Kind::Placement, id.to_string()),
            RouteMeta { origin: origin.clone(), audience: None, home: nid(worker_office) },
        );
        let posting =
            RecordId::parse(posting_id).unwrap_or_else(|e| panic!("oracle: bad posting id {posting_id}: {e}"));
        let fill = RecordId::fill(&origin, &posting).to_string();
        self.routes.insert(
            (Kind::Fill, fill.clone()),
            RouteMeta { origin, audience: Some(facts.audience.clone()), home: facts.origin.clone() },
        );
        *self.fills.entry(fill.clone()).or_default() += 1;
        self.fills_of.entry(posting_id.to_string()).or_default().insert(fill);
    }

    /// Route of a record the oracle knows.
    pub fn route(&self, kind: Kind, id: &str) -> Option<&RouteMeta> {
        self.routes.get(&(kind, id.to_string()))
    }

    /// The ids of `kind` that `node` must hold after convergence.
    pub fn expected(&self, node: &str, kind: Kind) -> BTreeSet<String> {
        let n = nid(node);
        self.routes.iter().filter(|((k, _), r)| *k == kind && holds(&n, r)).map(|((_, id), _)| id.clone()).collect()
    }

    /// Which of `nodes` must hold the record.
    pub fn holders<'a>(&self, kind: Kind, id: &str, nodes: &[&'a str]) -> Vec<&'a str> {
        let r = self.route(kind, id).unwrap_or_else(|| panic!("oracle: unknown {kind:?} {id}"));
        nodes.iter().copied().filter(|n| holds(&nid(n), r)).collect()
    }

    /// Facts about a posting.
    pub fn posting_facts(&self, id: &str) -> Option<&PostingFacts> {
        self.postings.get(id)
    }

    /// Positions filled for a posting, summed over its fills.
    pub fn filled(&self, posting_id: &str) -> u64 {
        self.fills_of.get(posting_id).map(|fs| fs.iter().map(|f| self.fills[f]).sum()).unwrap_or(0)
    }

    /// Every posting id the oracle knows.
    pub fn posting_ids(&self) -> impl Iterator<Item = &String> {
        self.postings.keys()
    }

    /// Number of records of `kind` the oracle knows.
    pub fn count(&self, kind: Kind) -> usize {
        self.routes.keys().filter(|(k, _)| *k == kind).count()
    }
}
