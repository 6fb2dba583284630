//! The integration-test harness of jobmesh: real `jobmesh` processes on
//! loopback, driven only through the contract of design.md (CLI, config
//! TOML, HTTP API, wire protocol).
//!
//! - [`bin`]: the binary under test (`JOBMESH_BIN`, or built once on demand);
//! - [`pki`]: a CA made with `jobmesh ca init` / `ca issue`;
//! - [`mesh`]: a tree of node processes with temp dirs, free ports, logs,
//!   `stop` (SIGTERM) / `kill9` / `start_node`, and a convergence check;
//! - [`client`]: HTTP helpers (post, get, list with paging, summary, status);
//! - [`oracle`]: which nodes must hold each record, by
//!   `jobmesh_protocol::routing::holds`;
//! - [`wait`]: `eventually` (bounded polling), `within` (test time limit) and
//!   a seeded RNG (`JOBMESH_SEED`);
//! - [`previous`]: the previous release's binary, built from git history;
//! - [`quic`]: a hand-driven QUIC peer for trust tests;
//! - [`cdp`]: a headless Chromium driven over the DevTools protocol.

pub mod bin;
pub mod cdp;
pub mod chaos;
pub mod client;
pub mod failover;
pub mod mesh;
pub mod netns;
pub mod oracle;
pub mod pki;
pub mod postgres;
pub mod previous;
pub mod proxy;
pub mod quic;
pub mod wait;

pub use client::{posting_body, worker_body, Api, Reply};
pub use mesh::Mesh;
pub use oracle::{nid, Oracle};
pub use pki::Pki;
pub use wait::{eventually, within, Rng};
