//! The demo and rehearsals: `jobmesh demo`, `jobmesh deploy up` / `down`.
//! They start `jobmesh run` processes of the running binary and drive them
//! through their HTTP APIs; nothing here is part of an office's node.
//!
//! - [`demo`]: `jobmesh demo`, a small mesh on loopback fed by the
//!   synthetic [`workload`].
//! - [`rehearsal`]: `jobmesh deploy up` / `down`, start and stop any
//!   rendered subset of offices on one machine.
//! - [`process`]: spawning office processes and signalling them by pid.
//!
//! Architecture invariants: `up`, `down` and the demo signal only processes
//! they started, identified by pid *and* start time; the demo and
//! rehearsals only ever address 127.0.0.1. Rendering the folders is the
//! node library's `deploy::render`, run in this process.

pub mod demo;
pub mod process;
pub mod rehearsal;
pub mod workload;
