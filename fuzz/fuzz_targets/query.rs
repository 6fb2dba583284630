//! Query strings and paging cursors, decoded as the API's extractors do:
//! `parse_query`, the typed readers of `QueryParams`, `PageRequest`.
#![no_main]

use jobmesh::api::input::{parse_query, parse_record_id, QueryParams};
use jobmesh::api::paging::{PageRequest, MAX_LIMIT};
use jobmesh_protocol::Kind;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let q = String::from_utf8_lossy(data);
    let params = QueryParams(parse_query(&q));
    if let Ok(page) = PageRequest::from_query(&params) {
        assert!((1..=MAX_LIMIT).contains(&page.limit));
        if let Some(after) = &page.after {
            assert!(jobmesh_protocol::RecordId::parse(after).is_ok());
        }
    }
    for name in ["open", "in_flight"] {
        let _ = params.bool(name);
    }
    for name in ["depth", "limit"] {
        let _ = params.uint(name);
    }
    for name in ["node", "audience", "origin"] {
        let _ = params.node_id(name);
    }
    // Every value as a path id of each kind.
    for v in params.0.values() {
        for kind in Kind::ALL {
            if let Ok(id) = parse_record_id("id", v, kind) {
                assert_eq!(id.kind(), kind);
            }
        }
    }
});
