//! The handler of `events-api`, a library so the warm benchmarks (`bench/warm`) drive the
//! same code the binary runs; `main.rs` only wires it to the Lambda runtime.

pub mod config;
pub mod handler;
