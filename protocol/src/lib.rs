//! jobmesh's pure core: records, routing, wire frames, the sans-IO sync
//! engine and the deterministic simulator.
//!
//! Architecture invariant: this crate does no IO. It opens no socket, reads
//! no clock, touches no file and spawns no thread; time, randomness and
//! messages are inputs, and frames, timers and events are polled out. The
//! node drives it with real sockets, disks and clocks; the simulator drives
//! it with a seeded network and a fake clock.

pub mod engine;
pub mod figures;
pub mod health;
pub mod integrity;
pub mod kv;
pub mod matters;
pub mod node_id;
pub mod record;
pub mod rollup;
pub mod routing;
pub mod rules;
pub mod sim;
pub mod store;
pub mod time;
pub mod topology;
pub mod wire;

pub use engine::{Engine, EngineConfig, Event, LinkError, Transmit};
pub use node_id::NodeId;
pub use record::{Body, Kind, Record, RecordId};
