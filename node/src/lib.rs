//! The jobmesh node: one per office. Drives the protocol crate's sync engine
//! with sled, QUIC (quinn + rustls, mutual TLS) and an HTTP API (axum).

pub mod api;
pub mod certs;
pub mod cli;
pub mod clock_watch;
pub mod config;
pub mod deploy;
pub mod driver;
pub mod health;
pub mod logging;
pub mod metrics;
pub mod ops;
pub mod pki;
pub mod runtime;
pub mod sink;
pub mod state;
pub mod storage;
pub mod store_check;
pub mod tls;
pub mod transport;
