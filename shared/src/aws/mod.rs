//! AWS adapters for the ports. Each takes an SDK client built once in `main.rs`.
//!
//! Endpoints come from the SDK's own configuration chain, so `AWS_ENDPOINT_URL` points every
//! client at LocalStack or ministack without code changes.

mod dynamo;
mod sns;

pub use dynamo::{DynamoEventStore, DynamoReadModel, EventTable, OUTBOX_ENTITY, OutboxRecord};
pub use sns::SnsPublisher;

/// Loads the shared SDK configuration (region, credentials, endpoint) from the environment.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}
