//! Node identities: an office is named by its position in the tree, a slash
//! path such as `gz/guiyang/guanshanhu` (**contract**).
//!
//! Everything about the tree (parent, subtree, the child on the way to a
//! descendant) is computed from the path alone, never from a tier name, so
//! deeper or shallower trees work unchanged.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Most segments a node id may have: the province tree is four deep, eight
/// leaves room for deeper organisations without letting paths grow unbounded.
pub const MAX_SEGMENTS: usize = 8;
/// Longest segment, in bytes.
pub const MAX_SEGMENT_LEN: usize = 64;

/// Why a string is not a node id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeIdError {
    /// The whole id was empty.
    #[error("node id is empty")]
    Empty,
    /// More segments than [`MAX_SEGMENTS`].
    #[error("node id {id:?} has {count} segments; at most {MAX_SEGMENTS} are allowed")]
    TooDeep { id: String, count: usize },
    /// A segment was empty (leading, trailing or doubled slash).
    #[error("node id {id:?}: segment {index} is empty (leading, trailing or doubled '/')")]
    EmptySegment { id: String, index: usize },
    /// A segment longer than [`MAX_SEGMENT_LEN`].
    #[error("node id {id:?}: segment {index} ({segment:?}) is longer than {MAX_SEGMENT_LEN} characters")]
    SegmentTooLong { id: String, index: usize, segment: String },
    /// A character outside lowercase ASCII letters, digits and `-`.
    #[error("node id {id:?}: segment {index} ({segment:?}) has {found:?}; only lowercase letters a-z, digits and '-' are allowed")]
    BadCharacter { id: String, index: usize, segment: String, found: char },
}

/// A validated node id. Construct with [`NodeId::parse`]; the inner string is
/// always well formed, so the tree relations below cannot fail.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NodeId(String);

impl NodeId {
    /// Parse and validate a slash path.
    pub fn parse(s: &str) -> Result<NodeId, NodeIdError> {
        if s.is_empty() {
            return Err(NodeIdError::Empty);
        }
        let count = s.split('/').count();
        if count > MAX_SEGMENTS {
            return Err(NodeIdError::TooDeep { id: s.to_owned(), count });
        }
        for (index, segment) in s.split('/').enumerate() {
            if segment.is_empty() {
                return Err(NodeIdError::EmptySegment { id: s.to_owned(), index });
            }
            if segment.len() > MAX_SEGMENT_LEN {
                return Err(NodeIdError::SegmentTooLong { id: s.to_owned(), index, segment: segment.to_owned() });
            }
            if let Some(found) = segment.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
            {
                return Err(NodeIdError::BadCharacter { id: s.to_owned(), index, segment: segment.to_owned(), found });
            }
        }
        Ok(NodeId(s.to_owned()))
    }

    /// The id as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Number of segments: 1 for the root.
    pub fn depth(&self) -> usize {
        self.0.split('/').count()
    }

    /// The parent: the path minus its last segment; `None` at a root.
    pub fn parent(&self) -> Option<NodeId> {
        self.0.rfind('/').map(|i| NodeId(self.0[..i].to_owned()))
    }

    /// The last segment.
    pub fn leaf_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// True when `self` ∈ subtree(`root`): `root` is `self` or an ancestor.
    pub fn is_in_subtree_of(&self, root: &NodeId) -> bool {
        self.0 == root.0
            || (self.0.len() > root.0.len() && self.0.starts_with(&root.0) && self.0.as_bytes()[root.0.len()] == b'/')
    }

    /// True when `self` is a strict ancestor of `other`.
    pub fn is_ancestor_of(&self, other: &NodeId) -> bool {
        other != self && other.is_in_subtree_of(self)
    }

    /// True when `other` is a direct child of `self`.
    pub fn is_parent_of(&self, other: &NodeId) -> bool {
        other.parent().as_ref() == Some(self)
    }

    /// The direct child of `self` on the way down to `descendant`, if
    /// `descendant` is strictly below `self`.
    pub fn child_toward(&self, descendant: &NodeId) -> Option<NodeId> {
        if !self.is_ancestor_of(descendant) {
            return None;
        }
        let rest = &descendant.0[self.0.len() + 1..];
        let next = rest.split('/').next().unwrap_or(rest);
        Some(NodeId(format!("{}/{}", self.0, next)))
    }

    /// The id with `/` replaced by `.`: used inside record ids (URL-safe,
    /// and `.` never occurs in a segment so the mapping is reversible).
    pub fn dotted(&self) -> String {
        self.0.replace('/', ".")
    }

    /// The id with `/` replaced by `_`: used for file names of certificates
    /// (**contract**: `gz_guiyang_guanshanhu.pem`).
    pub fn file_stem(&self) -> String {
        self.0.replace('/', "_")
    }

    /// Inverse of [`NodeId::dotted`].
    pub fn from_dotted(s: &str) -> Result<NodeId, NodeIdError> {
        NodeId::parse(&s.replace('.', "/"))
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.0)
    }
}

impl TryFrom<String> for NodeId {
    type Error = NodeIdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        NodeId::parse(&s)
    }
}

impl From<NodeId> for String {
    fn from(id: NodeId) -> String {
        id.0
    }
}

impl std::str::FromStr for NodeId {
    type Err = NodeIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NodeId::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> NodeId {
        NodeId::parse(s).unwrap()
    }

    #[test]
    fn parses_and_rejects_with_reasons() {
        assert!(NodeId::parse("gz/guiyang/guanshanhu/oddjobs-danfeng").is_ok());
        assert_eq!(NodeId::parse(""), Err(NodeIdError::Empty));
        assert!(matches!(NodeId::parse("gz//x"), Err(NodeIdError::EmptySegment { index: 1, .. })));
        assert!(matches!(NodeId::parse("gz/"), Err(NodeIdError::EmptySegment { index: 1, .. })));
        assert!(matches!(NodeId::parse("gz/Guiyang"), Err(NodeIdError::BadCharacter { index: 1, found: 'G', .. })));
        assert!(matches!(NodeId::parse("a/b/c/d/e/f/g/h/i"), Err(NodeIdError::TooDeep { count: 9, .. })));
        let long = "x".repeat(65);
        assert!(matches!(NodeId::parse(&long), Err(NodeIdError::SegmentTooLong { index: 0, .. })));
        let msg = NodeId::parse("gz/gui yang").unwrap_err().to_string();
        assert!(msg.contains("segment 1"), "{msg}");
    }

    #[test]
    fn tree_relations() {
        let gz = id("gz");
        let gy = id("gz/guiyang");
        let gs = id("gz/guiyang/guanshanhu");
        let gyx = id("gz/guiyangx");
        assert_eq!(gs.parent(), Some(gy.clone()));
        assert_eq!(gz.parent(), None);
        assert!(gs.is_in_subtree_of(&gz));
        assert!(gs.is_in_subtree_of(&gs));
        assert!(!gyx.is_in_subtree_of(&gy), "prefix of a segment is not an ancestor");
        assert!(gz.is_ancestor_of(&gs));
        assert!(!gs.is_ancestor_of(&gs));
        assert!(gy.is_parent_of(&gs));
        assert!(!gz.is_parent_of(&gs));
        assert_eq!(gz.child_toward(&gs), Some(gy.clone()));
        assert_eq!(gy.child_toward(&gs), Some(gs.clone()));
        assert_eq!(gs.child_toward(&gs), None);
        assert_eq!(NodeId::from_dotted(&gs.dotted()).unwrap(), gs);
        assert_eq!(gs.file_stem(), "gz_guiyang_guanshanhu");
    }
}
