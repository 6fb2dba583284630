//! Schemas of the request bodies. The handlers read bodies field by field
//! (`api::input::Fields`), not through serde, so these schemas are built
//! here from the same constants the handlers use: each body's fields are its
//! handler's `CREATE_FIELDS`/`PATCH_FIELDS` list, limits come from
//! `jobmesh_protocol::rules` and `record`, and every body refuses unknown
//! fields (`additionalProperties: false`), as `Fields::new` does.
//!
//! Text rules (`input::Fields::text`): the value is trimmed first; a
//! required text must not be blank; an optional text that is blank or
//! `null` counts as absent; no control character may remain after trimming.
//! The patterns below say exactly that, with the whitespace that Rust's
//! `str::trim` removes spelled out (Python's and ECMAScript's `\s` differ
//! from it).

use std::borrow::Cow;

use jobmesh_protocol::matters::MAX_MATTER_SUMMARY;
use jobmesh_protocol::record::{MAX_POSITIONS, MAX_SKILLS};
use jobmesh_protocol::rules::MAX_TEXT_CHARS;
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, KnownFormat, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, SchemaType,
    Type,
};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

use super::types;

/// What `str::trim` removes: Unicode `White_Space`.
const WS: &str = r"[\t\n\x0B\x0C\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]";
/// Control characters (`char::is_control`, general category Cc).
const CONTROL: &str = r"\x00-\x1F\x7F-\x9F";

/// Any character but a control character.
fn not_control() -> String {
    format!("[^{CONTROL}]")
}

/// A character that is neither a control character nor trimmed whitespace.
fn visible() -> String {
    format!("[^{CONTROL}\\t\\n\\x0B\\x0C\\r \\x85\\xA0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]")
}

/// A text that, once trimmed, is not blank, has no control character and
/// is at most `max_chars` characters long. The bound is on the trimmed text,
/// as the node counts it, so it is in the pattern rather than `maxLength`
/// (which would count the whitespace around it).
pub fn required_text_pattern(max_chars: usize) -> String {
    format!("^{WS}*{nc}{{0,{n}}}{v}{WS}*$", nc = not_control(), v = visible(), n = max_chars - 1)
}

/// A text that, once trimmed, is blank, or has no control character and is
/// at most `max_chars` characters long.
pub fn optional_text_pattern(max_chars: usize) -> String {
    format!("^{WS}*({nc}{{0,{n}}}{v})?{WS}*$", nc = not_control(), v = visible(), n = max_chars - 1)
}

fn string_type(nullable: bool) -> SchemaType {
    if nullable {
        SchemaType::from_iter([Type::String, Type::Null])
    } else {
        SchemaType::new(Type::String)
    }
}

/// A required one-line text within the data rules.
fn text(description: &str, max_chars: usize) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .min_length(Some(1))
        .pattern(Some(required_text_pattern(max_chars)))
        .into()
}

/// An optional one-line text: `null` or blank is none (for a PATCH:
/// cleared).
fn opt_text(description: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(string_type(true))
        .description(Some(description))
        .pattern(Some(optional_text_pattern(MAX_TEXT_CHARS)))
        .into()
}

/// `YYYY-MM-DD`, not before the office's local today; `null` or blank is
/// none.
fn date(description: &str) -> RefOr<Schema> {
    OneOfBuilder::new()
        .description(Some(description))
        .item(ObjectBuilder::new().schema_type(Type::String).format(Some(SchemaFormat::KnownFormat(KnownFormat::Date))))
        .item(blank())
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .into()
}

/// A blank text, which the handlers read as absent.
fn blank() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some("Blank: none (for a PATCH: cleared)."))
        .pattern(Some(format!("^{WS}*$")))
}

fn positions() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .description(Some("Positions offered."))
        .minimum(Some(1))
        .maximum(Some(MAX_POSITIONS))
        .into()
}

/// A reference to a named schema of [`types`].
fn named<T: ToSchema>() -> RefOr<Schema> {
    Ref::from_schema_name(T::name()).into()
}

/// A named schema or `null` (`null` is none; for a PATCH, cleared).
fn nullable<T: ToSchema>() -> RefOr<Schema> {
    OneOfBuilder::new().item(named::<T>()).item(ObjectBuilder::new().schema_type(Type::Null)).into()
}

/// The schema of field `name` of a body, as its handler reads it.
fn field_schema(body: Body, name: &str) -> Option<RefOr<Schema>> {
    use Body as B;
    let text_max = |d| text(d, MAX_TEXT_CHARS);
    Some(match (body, name) {
        (B::PostingCreate | B::PostingPatch, "title") => text_max("The job's title."),
        (B::PostingCreate | B::PostingPatch, "employer") => text_max("The employer's name."),
        (B::PostingCreate | B::PostingPatch, "category") => text_max("Occupation category (free text)."),
        (B::PostingCreate | B::PostingPatch, "work_type") => named::<types::WorkType>(),
        (B::PostingCreate | B::PostingPatch, "positions") => positions(),
        (B::PostingCreate, "audience") => ObjectBuilder::new()
            .schema_type(string_type(true))
            .description(Some(
                "The office whose subtree the posting reaches (default: this node). It must be an office \
                 known here (in the topology, or this node's lineage or children); fixed once published.",
            ))
            .pattern(Some(format!("^{}$", types::node_id_regex())))
            .max_length(Some(types::MAX_NODE_ID_LEN))
            .into(),
        (B::PostingCreate | B::PostingPatch, "wage") => opt_text("Wage, as the office writes it."),
        (B::PostingCreate | B::PostingPatch, "location") => opt_text("Where the work is."),
        (B::PostingCreate | B::PostingPatch, "valid_until") => {
            date("Last day the posting is valid (`YYYY-MM-DD`), not before today at the office.")
        }
        (B::PostingPatch, "status") => named::<types::PostingStatus>(),
        (B::WorkerCreate, "name") => text_max("The worker's name."),
        (B::WorkerCreate, "key_group") => named::<types::KeyGroup>(),
        (B::WorkerCreate, "phone") => opt_text(
            "A mainland phone number: mobile `1[3-9]` and 9 digits, or a landline such as `0851-12345678`, \
             optionally with `+86`; spaces and `-` between parts are allowed.",
        ),
        (B::WorkerCreate, "skills") => ArrayBuilder::new()
            .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
            .description(Some("Skills, each a non-blank text; `null` is none."))
            .items(text_max("A skill."))
            .max_items(Some(MAX_SKILLS))
            .into(),
        (B::WorkerCreate, "wanted_work_type") => nullable::<types::WorkType>(),
        (B::PlacementCreate, "worker_id") => named::<types::WorkerId>(),
        (B::PlacementCreate, "posting_id") => named::<types::PostingId>(),
        (B::MatterCreate | B::MatterPatch, "category") => named::<types::MatterCategory>(),
        (B::MatterCreate | B::MatterPatch, "channel") => named::<types::Channel>(),
        (B::MatterCreate, "key_group") => nullable::<types::KeyGroup>(),
        (B::MatterPatch, "key_group") => nullable::<types::KeyGroup>(),
        (B::MatterCreate | B::MatterPatch, "summary") => {
            let d = format!("What the matter is about; at most {MAX_MATTER_SUMMARY} bytes in UTF-8.");
            text(&d, MAX_TEXT_CHARS)
        }
        (B::MatterCreate, "status") => OneOfBuilder::new()
            .description(Some("Default `open`; blank or `null` is the default."))
            .item(named::<types::MatterStatus>())
            .item(blank())
            .item(ObjectBuilder::new().schema_type(Type::Null))
            .into(),
        (B::MatterPatch, "status") => named::<types::MatterStatus>(),
        (B::PostingCreate | B::WorkerCreate | B::MatterCreate, "external_ref") => ObjectBuilder::new()
            .schema_type(string_type(true))
            .description(Some(
                "The record's reference in the system it comes from (a job fair's row, a platform's job id), \
                 at most 128 characters without control characters. A reference already used at this office for \
                 this kind answers 200 with the record made under it, and creates nothing.",
            ))
            .pattern(Some(format!("^[^{CONTROL}]*$")))
            .max_length(Some(jobmesh_protocol::engine::local::MAX_EXTERNAL_REF))
            .into(),
        _ => return None,
    })
}

/// The request bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    PostingCreate,
    PostingPatch,
    WorkerCreate,
    PlacementCreate,
    MatterCreate,
    MatterPatch,
}

impl Body {
    pub const ALL: [Body; 6] = [
        Body::PostingCreate,
        Body::PostingPatch,
        Body::WorkerCreate,
        Body::PlacementCreate,
        Body::MatterCreate,
        Body::MatterPatch,
    ];

    fn name(self) -> &'static str {
        match self {
            Body::PostingCreate => "PostingCreate",
            Body::PostingPatch => "PostingPatch",
            Body::WorkerCreate => "WorkerCreate",
            Body::PlacementCreate => "PlacementCreate",
            Body::MatterCreate => "MatterCreate",
            Body::MatterPatch => "MatterPatch",
        }
    }

    /// The fields the handler accepts (its own constant).
    pub fn fields(self) -> &'static [&'static str] {
        use crate::api::{matters, placements, postings, workers};
        match self {
            Body::PostingCreate => postings::CREATE_FIELDS,
            Body::PostingPatch => postings::PATCH_FIELDS,
            Body::WorkerCreate => workers::CREATE_FIELDS,
            Body::PlacementCreate => placements::CREATE_FIELDS,
            Body::MatterCreate => matters::CREATE_FIELDS,
            Body::MatterPatch => matters::PATCH_FIELDS,
        }
    }

    /// Fields that must be present (and not `null` or blank).
    fn required(self) -> &'static [&'static str] {
        match self {
            Body::PostingCreate => &["title", "employer", "category", "work_type", "positions"],
            Body::WorkerCreate => &["name", "key_group"],
            Body::PlacementCreate => &["worker_id", "posting_id"],
            Body::MatterCreate => &["category", "channel", "summary"],
            Body::PostingPatch | Body::MatterPatch => &[],
        }
    }

    /// Fields the handler names but always refuses: a posting's audience
    /// is fixed at creation (`audience_fixed`). The schema leaves them out.
    pub fn refused(self) -> &'static [&'static str] {
        match self {
            Body::PostingPatch => &["audience"],
            _ => &[],
        }
    }

    fn description(self) -> &'static str {
        match self {
            Body::PostingCreate => "A new posting.",
            Body::PostingPatch => {
                "Changes to a posting: only the fields given change; `null` or blank clears an optional text. \
                 `audience` cannot change (400 `audience_fixed`)."
            }
            Body::WorkerCreate => "A new job seeker.",
            Body::PlacementCreate => "A worker took a posting.",
            Body::MatterCreate => "A new service matter; `status` defaults to `open`.",
            Body::MatterPatch => {
                "Changes to a matter: only the fields given change. Resolving sets `resolved_at`; reopening \
                 clears it."
            }
        }
    }

    /// The body's schema. Every accepted field has one (checked by a test).
    pub fn schema(self) -> RefOr<Schema> {
        let mut o = ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(self.description()))
            .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)));
        for name in self.fields().iter().filter(|f| !self.refused().contains(f)) {
            if let Some(s) = field_schema(self, name) {
                o = o.property(*name, s);
            }
        }
        for name in self.required() {
            o = o.required(*name);
        }
        o.into()
    }
}

/// Declares the named schema type of one body.
macro_rules! body_type {
    ($($ty:ident),*) => {$(
        pub struct $ty;

        impl PartialSchema for $ty {
            fn schema() -> RefOr<Schema> {
                Body::$ty.schema()
            }
        }

        impl ToSchema for $ty {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(Body::$ty.name())
            }
        }
    )*};
}

body_type!(PostingCreate, PostingPatch, WorkerCreate, PlacementCreate, MatterCreate, MatterPatch);

/// Does every accepted field of `body` have a schema?
pub fn missing_fields(body: Body) -> Vec<&'static str> {
    body.fields().iter().copied().filter(|f| !body.refused().contains(f) && field_schema(body, f).is_none()).collect()
}
