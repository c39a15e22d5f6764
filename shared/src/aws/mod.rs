//! AWS adapters for the ports (DynamoDB, SNS, SES v2, Secrets Manager). Each takes an SDK client built once in `main.rs`.
//!
//! Endpoints come from the SDK's own configuration chain, so `AWS_ENDPOINT_URL` points every
//! client at LocalStack or ministack without code changes.

mod analytics;
mod dynamo;
mod idempotency;
mod search;
mod secrets;
mod ses;
mod sns;
pub mod tls;
mod users;

pub use analytics::DynamoAnalytics;
pub use dynamo::{DynamoEventStore, DynamoReadModel, EventTable, OUTBOX_ENTITY, OutboxRecord};
pub use idempotency::DynamoIdempotency;
pub use search::DynamoSearchIndex;
pub use secrets::SecretsManagerVault;
pub use ses::SesMailer;
pub use sns::SnsPublisher;
pub use users::{DynamoLoginThrottle, DynamoUserStore, LOGIN_WINDOW_SECONDS, MAX_FAILED_LOGINS};

/// Loads the shared SDK configuration (region, credentials, endpoint) from the environment,
/// with an HTTPS client that trusts the roots [`tls::TrustedRoots::from_env`] picks.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(tls::https_client(tls::TrustedRoots::from_env()))
        .load()
        .await
}
