//! Evently's shared library: the domain, the event envelope, the ports and their AWS adapters,
//! and the HTTP and SQS kits the Lambda functions are built from.
//!
//! # Layout
//!
//! Dependencies point down this list, never up:
//!
//! | module        | holds                                                                  |
//! |---------------|------------------------------------------------------------------------|
//! | [`http`]      | request parsing, token checks, problem+json, the one error-to-status map |
//! | [`consumer`]  | the SQS batch kit: per-message spans, panic capture, partial failures  |
//! | [`app`]       | use cases (`create_event`, `list_events`, `projection_of`, ...)        |
//! | [`ports`]     | one small async trait per capability (store, read model, publisher)    |
//! | [`idempotency`] | leases from the invocation deadline, request fingerprints              |
//! | [`aws`]       | DynamoDB and SNS adapters implementing the ports                       |
//! | [`envelope`]  | the CloudEvents envelope and the event types it carries                |
//! | [`domain`]    | events and the newtypes that make invalid values unrepresentable        |
//! | [`tokens`]    | EdDSA access tokens: the key ring, issuing and verifying              |
//! | [`config`], [`telemetry`], [`metrics`] | config that fails fast; JSON logs; EMF metrics |
//!
//! `domain` and `envelope` import nothing from AWS, HTTP or Lambda crates. Function crates
//! touch SDK clients only in `main.rs`, to build the adapters. In-memory fakes for unit tests
//! are behind the `fakes` feature.

pub mod app;
pub mod aws;
pub mod config;
pub mod consumer;
pub mod domain;
pub mod envelope;
#[cfg(feature = "fakes")]
pub mod fakes;
pub mod http;
pub mod idempotency;
pub mod mail;
pub mod metrics;
pub mod password;
pub mod ports;
pub mod telemetry;
pub mod tokens;
