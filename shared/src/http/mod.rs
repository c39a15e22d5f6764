//! HTTP helpers shared by the API functions: the one error type of the HTTP boundary and its
//! mapping to statuses, problem+json bodies, bearer-token checks, body and query parsing.

mod auth;
mod body;
mod error;
mod idempotent;
mod query;
mod response;

pub use auth::{Caller, caller, optional_caller};
pub use body::{JsonObject, MAX_BODY_BYTES, Recorded, json_object};
pub use error::ApiError;
pub use idempotent::{
    IDEMPOTENCY_KEY_HEADER, KeyScope, REPLAYED_HEADER, idempotency_key, idempotent,
};
pub use query::{QueryParams, decode_cursor, encode_cursor};
pub use response::{CORRELATION_HEADER, ResponseContext, correlation_id_of, request_path, serve};

pub use lambda_http::{Body, Request, Response};
