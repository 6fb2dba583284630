//! The spec against the code it describes: the committed copy, the
//! protocol's structs and the handlers' field lists.

use serde_json::Value;
use utoipa::PartialSchema;

use super::bodies::{self, Body};
use super::types::figures;
use super::{document, COMMITTED_PATH, REGENERATE};

fn spec() -> Value {
    serde_json::from_str(&document()).expect("the document is JSON")
}

fn properties(schema: utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>) -> Vec<String> {
    let v = serde_json::to_value(schema).unwrap();
    let mut keys: Vec<String> = v["properties"].as_object().expect("an object schema").keys().cloned().collect();
    keys.sort();
    keys
}

fn keys_of<T: serde::Serialize>(value: T) -> Vec<String> {
    let mut keys: Vec<String> = serde_json::to_value(value).unwrap().as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

/// `deploy/openapi.json` is what the node serves, byte for byte.
#[test]
fn committed_copy_is_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(COMMITTED_PATH);
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == document(),
        "{COMMITTED_PATH} differs from the spec the code generates; regenerate it with `{REGENERATE}` and commit it"
    );
}

#[test]
fn is_openapi_3_1_with_every_route() {
    let v = spec();
    assert_eq!(v["openapi"], "3.1.0");
    let paths: Vec<&str> = v["paths"].as_object().unwrap().keys().map(String::as_str).collect();
    for p in [
        "/v1/postings",
        "/v1/postings/{id}",
        "/v1/workers",
        "/v1/workers/{id}",
        "/v1/placements",
        "/v1/placements/{id}",
        "/v1/matters",
        "/v1/matters/{id}",
        "/v1/summary",
        "/v1/status",
        "/v1/backup",
        "/v1/openapi.json",
        "/metrics",
        "/healthz",
    ] {
        assert!(paths.contains(&p), "{p} is not in the spec");
    }
    // Every 4xx names the error body.
    for (path, item) in v["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for (status, resp) in op["responses"].as_object().unwrap() {
                if status.starts_with('4') || status.starts_with('5') {
                    let schema = &resp["content"]["application/json"]["schema"]["$ref"];
                    assert_eq!(schema, "#/components/schemas/Error", "{method} {path} {status}");
                }
            }
        }
    }
}

/// The stand-ins of protocol structs have exactly the protocol's fields.
#[test]
fn mirrors_match_the_protocol() {
    use jobmesh_protocol::engine::LinkStats;
    use jobmesh_protocol::figures::{Breakdown, GroupFigures, Totals};
    use jobmesh_protocol::matters::MatterCounts;
    assert_eq!(properties(figures::Totals::schema()), keys_of(Totals::default()));
    assert_eq!(properties(figures::Breakdown::schema()), keys_of(Breakdown::default()));
    assert_eq!(properties(figures::GroupFigures::schema()), keys_of(GroupFigures::default()));
    assert_eq!(properties(figures::MatterCounts::schema()), keys_of(MatterCounts::default()));
    assert_eq!(properties(figures::LinkStats::schema()), keys_of(LinkStats::default()));
    use jobmesh_protocol::rollup::{InFlight, Reporting};
    assert_eq!(properties(figures::InFlight::schema()), keys_of(InFlight::default()));
    assert_eq!(properties(figures::Reporting::schema()), keys_of(Reporting::default()));
}

/// Each body's schema lists exactly the fields its handler accepts (less
/// those it always refuses), and refuses any other.
#[test]
fn bodies_match_the_handlers_fields() {
    for body in Body::ALL {
        assert_eq!(bodies::missing_fields(body), Vec::<&str>::new(), "{body:?}: fields without a schema");
        let mut want: Vec<String> =
            body.fields().iter().filter(|f| !body.refused().contains(f)).map(|f| f.to_string()).collect();
        want.sort();
        assert_eq!(properties(body.schema()), want, "{body:?}");
        let v = serde_json::to_value(body.schema()).unwrap();
        assert_eq!(v["additionalProperties"], false, "{body:?}");
    }
}

/// The closed lists come from the protocol.
#[test]
fn enums_are_the_protocols() {
    use jobmesh_protocol::record::{KeyGroup, WorkType};
    let v = spec();
    let values = |name: &str| -> Vec<String> {
        v["components"]["schemas"][name]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().into())
            .collect()
    };
    assert_eq!(values("WorkType"), WorkType::ALL.map(|w| w.as_str().to_owned()));
    assert_eq!(values("KeyGroup"), KeyGroup::ALL.map(|w| w.as_str().to_owned()));
    let codes: Vec<String> = crate::api::error::Code::ALL.iter().map(|c| c.as_str().to_owned()).collect();
    assert_eq!(values("ErrorCode"), codes);
}
