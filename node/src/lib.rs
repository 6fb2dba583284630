//! The jobmesh node: one per office. Drives the protocol crate's sync engine
//! with sled, QUIC (quinn + rustls, mutual TLS) and an HTTP API (axum).

pub mod api;
pub mod driver;
pub mod metrics;
pub mod state;
pub mod storage;
