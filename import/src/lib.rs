//! Staff's data in and out of a jobmesh office: spreadsheets (CSV in UTF-8
//! or GB18030, xlsx) read and checked row by row into the records the node
//! creates, with a report naming each bad row's line, column and problem;
//! and the `jobmesh import` / `jobmesh export` clients.
//!
//! The `jobmesh` binary's `import`/`export` subcommands call [`cli`], and
//! the node's import endpoints use [`read`] and [`rows`], so a file
//! uploaded from the page is read and checked by the same code as one
//! imported from the command line. It depends on `jobmesh-protocol`
//! for the record types and limits (one rule, in one place) and never on
//! the node.

pub mod cli;
pub mod client;
pub mod columns;
pub mod read;
pub mod report;
pub mod rows;
pub mod template;
pub mod wire;

pub use columns::ImportKind;
