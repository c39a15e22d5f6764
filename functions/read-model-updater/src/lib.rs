//! The handler of `read-model-updater`, a library so the warm benchmarks (`bench/warm`) drive the
//! same code the binary runs; `main.rs` only wires it to the Lambda runtime.

pub mod config;
pub mod handler;
