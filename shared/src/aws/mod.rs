//! AWS adapters for the ports (DynamoDB, SNS, SES v2, Secrets Manager). Each takes an SDK client built once in `main.rs`.
//!
//! `AWS_ENDPOINT_URL` points every client at LocalStack or ministack without code changes, both
//! in the functions ([`lambda_sdk_config`]) and in the tools ([`sdk_config`]).

mod analytics;
mod batch;
mod dynamo;
mod idempotency;
mod once;
mod search;
mod secrets;
mod ses;
mod sns;
pub mod tls;
mod users;

pub use analytics::DynamoAnalytics;
use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_sdk_dynamodb::config::SharedCredentialsProvider;
pub use dynamo::{DynamoEventStore, DynamoReadModel, EventTable, OUTBOX_ENTITY, OutboxRecord};
pub use idempotency::DynamoIdempotency;
pub use once::DynamoOnce;
pub use search::DynamoSearchIndex;
pub use secrets::SecretsManagerVault;
pub use ses::SesMailer;
pub use sns::SnsPublisher;

use crate::config::{ConfigError, parsed_or, required};

pub use users::{DynamoLoginThrottle, DynamoUserStore, LOGIN_WINDOW_SECONDS, MAX_FAILED_LOGINS};

/// Loads the shared SDK configuration (region, credentials, endpoint) through the SDK's full
/// default chain (profiles, SSO, web identity, container and instance credentials), with an
/// HTTPS client that trusts the roots [`tls::TrustedRoots::from_env`] picks. For tools and
/// tests that run wherever an operator does; the functions use [`lambda_sdk_config`].
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(tls::https_client(tls::TrustedRoots::from_env()))
        .load()
        .await
}

/// The SDK configuration inside Lambda, built from the variables Lambda always sets: the
/// region (`AWS_REGION`) and the execution role's credentials (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), plus the optional `AWS_ENDPOINT_URL`,
/// `AWS_USE_FIPS_ENDPOINT` and `AWS_USE_DUALSTACK_ENDPOINT`.
///
/// Why not the default chain: none of its other sources can apply in Lambda, and referring to
/// them links the STS, SSO, IMDS, container and profile-file providers into every binary and
/// builds them at every cold start (BENCHMARKS.md measures both). Retries and the credentials
/// cache are the SDK's defaults for the behaviour version, as with the chain; the rest is
/// [`with_lambda_settings`].
pub fn lambda_sdk_config() -> Result<aws_config::SdkConfig, ConfigError> {
    let region = required("AWS_REGION")
        .or_else(|_| required("AWS_DEFAULT_REGION"))
        .map_err(|_| ConfigError::Missing("AWS_REGION"))?;
    required("AWS_ACCESS_KEY_ID")?;
    required("AWS_SECRET_ACCESS_KEY")?;
    let flag = |name: &'static str| parsed_or(name, false);
    let mut config = aws_config::SdkConfig::builder()
        .region(aws_config::Region::new(region))
        .credentials_provider(SharedCredentialsProvider::new(
            EnvironmentVariableCredentialsProvider::new(),
        ))
        .http_client(tls::https_client(tls::TrustedRoots::from_env()))
        .use_fips(flag("AWS_USE_FIPS_ENDPOINT")?)
        .use_dual_stack(flag("AWS_USE_DUALSTACK_ENDPOINT")?);
    if let Ok(endpoint) = required("AWS_ENDPOINT_URL") {
        config = config.endpoint_url(endpoint);
    }
    Ok(with_lambda_settings(config.build()))
}

/// `config` with the settings every function's clients share, wherever their region,
/// credentials and HTTP client come from (the benchmarks give theirs fixed ones): the latest
/// behaviour version, [`lambda_timeouts`], and no stalled-stream protection.
///
/// Why no stalled-stream protection: it fails a response body that stops arriving, after a
/// 5 s grace period. Every call the functions make reads a small, non-streaming body inside
/// the attempt, and [`lambda_timeouts`] ends an attempt after 1.5 s, so the guard could never
/// fire first (`tests/lambda_sdk_timeouts.rs` stalls a body to show it). What it did cost was
/// a throughput-tracking wrapper around every body, its timer and two interceptors: 5-7 % of a
/// replayed call's CPU (BENCHMARKS.md, "The SDK without stalled-stream protection").
pub fn with_lambda_settings(config: aws_config::SdkConfig) -> aws_config::SdkConfig {
    use aws_config::stalled_stream_protection::StalledStreamProtectionConfig;
    config
        .into_builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .timeout_config(lambda_timeouts())
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
        .build()
}

/// How long a function waits on one AWS call. The SDK's own defaults bound only the connect
/// (3.1 s): an attempt whose peer goes silent once connected would wait until the Lambda
/// timeout. An HTTP caller would then get the gateway's bare error after 10 s instead of our
/// problem+json answer, and a consumer would fail its whole SQS batch for one stuck message.
///
/// Every call the functions make answers in milliseconds in region (the slowest, SES's
/// SendEmail, in well under a second), so an attempt that has not finished in 1.5 s is retried
/// on a fresh connection. The whole call, retries included, gives up after 4 s: twice that
/// still fits in events-api's 10 s timeout, so a listing whose read-model query hangs can
/// still be answered from the events table, its fallback. Tools ([`sdk_config`]) keep the
/// SDK's defaults: they run on an operator's network, with no Lambda timeout to stay inside.
pub fn lambda_timeouts() -> aws_config::timeout::TimeoutConfig {
    use std::time::Duration;
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .operation_attempt_timeout(Duration::from_millis(1500))
        .operation_timeout(Duration::from_secs(4))
        .build()
}
