//! Use cases: what the functions do, in terms of ports only.

pub mod accounts;
pub mod analytics;
pub mod events;
pub mod read_model;
pub mod rebuild;
