//! The province's topology TSV (`topology =` in node.toml, `deploy render`).
#![no_main]

use jobmesh_protocol::topology::Topology;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(t) = Topology::parse_tsv(text) else { return };
    // What parses renders back to text that parses to the same tree.
    let again = Topology::parse_tsv(&t.to_tsv()).expect("a rendered topology parses");
    assert_eq!(again.ids(), t.ids());
    let root = t.root().clone();
    assert_eq!(t.subtree(&root).len(), t.len());
    for n in [1, t.len() / 2, t.len()] {
        let _ = t.slice(n);
    }
});
