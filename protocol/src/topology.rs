//! Office trees: the province's real tree read from its TSV, and generated
//! trees for scale. Parsing takes text; reading the file is the caller's job.

use std::collections::BTreeMap;

use crate::node_id::NodeId;

/// The tier of an office that the topology does not list, by its depth
/// (1 is the province).
pub fn tier_by_depth(depth: usize) -> String {
    match depth {
        1 => "province".into(),
        2 => "city".into(),
        3 => "county".into(),
        4 => "station".into(),
        d => format!("level{d}"),
    }
}

/// One office of a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Office {
    pub id: NodeId,
    pub tier: String,
    pub name: String,
    pub name_zh: String,
}

/// A tree of offices, parents before children.
#[derive(Debug, Clone, Default)]
pub struct Topology {
    pub offices: Vec<Office>,
}

/// Why a topology file is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    #[error("line {line}: {problem}")]
    Line { line: usize, problem: String },
    #[error("the topology has no offices")]
    Empty,
    #[error("the topology has {0} roots; exactly one is needed")]
    Roots(usize),
}

impl Topology {
    /// Parse the TSV format of `guizhou-offices.tsv`: `#` comments, a header
    /// line starting with `id`, then `id parent tier name name_zh [origin]`.
    pub fn parse_tsv(text: &str) -> Result<Topology, TopologyError> {
        fn is_header(line: &str) -> bool {
            let mut cols = line.split('\t');
            cols.next() == Some("id") && cols.next() == Some("parent")
        }
        let mut offices = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for (i, line) in text.lines().enumerate() {
            let line_no = i + 1;
            // The header row names its columns; a root office whose id is
            // `id` has an empty parent column, so it is never taken for one.
            if line.trim().is_empty() || line.starts_with('#') || is_header(line) {
                continue;
            }
            let cols: Vec<&str> = line.split('\t').collect();
            let err = |problem: String| TopologyError::Line { line: line_no, problem };
            if cols.len() < 3 {
                return Err(err(format!("expected at least 3 tab-separated columns, found {}", cols.len())));
            }
            let id = NodeId::parse(cols[0]).map_err(|e| err(e.to_string()))?;
            let parent = cols[1].trim();
            match (id.parent(), parent) {
                (None, "") => {}
                (Some(p), q) if p.as_str() == q => {}
                (p, q) => {
                    return Err(err(format!(
                        "parent column {q:?} does not match the id's parent {:?}",
                        p.map(|p| p.to_string()).unwrap_or_default()
                    )))
                }
            }
            if let Some(p) = id.parent() {
                if !seen.contains(&p) {
                    return Err(err(format!("parent {p} of {id} is not listed before it")));
                }
            }
            if !seen.insert(id.clone()) {
                return Err(err(format!("{id} is listed twice")));
            }
            offices.push(Office {
                id,
                tier: cols[2].to_owned(),
                name: cols.get(3).unwrap_or(&"").to_string(),
                name_zh: cols.get(4).unwrap_or(&"").to_string(),
            });
        }
        let t = Topology { offices };
        t.check()?;
        Ok(t)
    }

    fn check(&self) -> Result<(), TopologyError> {
        if self.offices.is_empty() {
            return Err(TopologyError::Empty);
        }
        let roots = self.offices.iter().filter(|o| o.id.parent().is_none()).count();
        if roots != 1 {
            return Err(TopologyError::Roots(roots));
        }
        Ok(())
    }

    /// Render back to the TSV format.
    pub fn to_tsv(&self) -> String {
        let mut s = String::from("id\tparent\ttier\tname\tname_zh\n");
        for o in &self.offices {
            let parent = o.id.parent().map(|p| p.to_string()).unwrap_or_default();
            s.push_str(&format!("{}\t{}\t{}\t{}\t{}\n", o.id, parent, o.tier, o.name, o.name_zh));
        }
        s
    }

    /// A regular tree: `root`, then `fanout[0]` children, each with
    /// `fanout[1]` children, and so on. `[2, 2]` is the 1+2+4 mesh.
    pub fn generated(root: &str, fanout: &[usize]) -> Topology {
        let root = NodeId::parse(root).unwrap_or_else(|_| NodeId::parse("gz").unwrap_or_else(|_| unreachable!()));
        let mut offices =
            vec![Office { id: root.clone(), tier: tier_by_depth(1), name: root.to_string(), name_zh: String::new() }];
        let mut level = vec![root];
        for (depth, &n) in fanout.iter().enumerate() {
            let mut next = Vec::new();
            for parent in &level {
                for i in 0..n {
                    let prefix = ["c", "k", "s", "t", "u", "v", "x"][depth.min(6)];
                    let id = NodeId::parse(&format!("{parent}/{prefix}{i}")).unwrap_or_else(|_| unreachable!());
                    offices.push(Office {
                        id: id.clone(),
                        tier: tier_by_depth((depth + 2).min(8)),
                        name: id.to_string(),
                        name_zh: String::new(),
                    });
                    next.push(id);
                }
            }
            level = next;
        }
        Topology { offices }
    }

    /// The province's scale target: about 2,750 offices (1 + 10 + 90 + 2,700:
    /// 30 odd-job and labor stations under each county).
    pub fn generated_province() -> Topology {
        Topology::generated("gz", &[10, 9, 30])
    }

    /// The first `n` offices in an order that keeps every parent (breadth
    /// first, so a slice of the real tree stays a tree).
    pub fn slice(&self, n: usize) -> Topology {
        let mut by_depth: BTreeMap<usize, Vec<Office>> = BTreeMap::new();
        for o in &self.offices {
            by_depth.entry(o.id.depth()).or_default().push(o.clone());
        }
        let mut out = Vec::new();
        'outer: for (_, level) in by_depth {
            // Round-robin over parents so that the slice spreads across cities.
            let mut groups: BTreeMap<Option<NodeId>, std::collections::VecDeque<Office>> = BTreeMap::new();
            for o in level {
                groups.entry(o.id.parent()).or_default().push_back(o);
            }
            loop {
                let mut any = false;
                for g in groups.values_mut() {
                    if let Some(o) = g.pop_front() {
                        if out.len() >= n {
                            break 'outer;
                        }
                        if o.id.parent().is_none_or(|p| out.iter().any(|x: &Office| x.id == p)) {
                            out.push(o);
                        }
                        any = true;
                    }
                }
                if !any {
                    break;
                }
            }
        }
        Topology { offices: out }
    }

    pub fn ids(&self) -> Vec<NodeId> {
        self.offices.iter().map(|o| o.id.clone()).collect()
    }

    pub fn root(&self) -> &NodeId {
        &self.offices[0].id
    }

    pub fn len(&self) -> usize {
        self.offices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.offices.is_empty()
    }

    pub fn get(&self, id: &NodeId) -> Option<&Office> {
        self.offices.iter().find(|o| &o.id == id)
    }

    /// The offices in subtree(`root`).
    pub fn subtree(&self, root: &NodeId) -> Vec<&Office> {
        self.offices.iter().filter(|o| o.id.is_in_subtree_of(root)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_sizes() {
        assert_eq!(Topology::generated("gz", &[2, 2]).len(), 7);
        assert_eq!(Topology::generated_province().len(), 1 + 10 + 90 + 2700);
    }

    #[test]
    fn bad_lines_are_named() {
        let e = Topology::parse_tsv("gz\t\tprovince\tHQ\tx\ngz/a\tgz/b\tcity\tA\ty\n").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        let e = Topology::parse_tsv("gz\t\tprovince\tHQ\tx\ngz/a/b\tgz/a\tcity\tA\ty\n").unwrap_err();
        assert!(e.to_string().contains("not listed before"), "{e}");
    }

    #[test]
    fn header_row_is_skipped_but_an_office_named_id_is_not() {
        let t = Topology::parse_tsv("id\tparent\ttier\tname\nid\t\tprovince\tHQ\nid/a\tid\tcity\tA\n").unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t.root().as_str(), "id");
    }

    #[test]
    fn slice_keeps_parents() {
        let t = Topology::generated("gz", &[3, 3, 3]);
        let s = t.slice(10);
        assert_eq!(s.len(), 10);
        for o in &s.offices {
            if let Some(p) = o.id.parent() {
                assert!(s.get(&p).is_some());
            }
        }
    }
}
