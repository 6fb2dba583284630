//! The deterministic simulator (see mesh.rs).
