//! `auth-api`: POST /signup, POST /login, GET /me and GET /.well-known/jwks.json.

mod config;
mod handler;
mod keys;

use std::sync::Arc;

use evently_shared::aws::{
    DynamoIdempotency, DynamoLoginThrottle, DynamoUserStore, SecretsManagerVault, lambda_sdk_config,
};
use evently_shared::password::PasswordHasher;
use evently_shared::telemetry;
use evently_shared::tokens::TokenVerifier;
use keys::SigningKeys;
use lambda_http::{Error, Request, service_fn};

// Lambda sends one event at a time: a single-threaded runtime starts no worker threads
// (BENCHMARKS.md, "Cold start"); Argon2 still runs on the blocking pool.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = config::Config::from_env()?;
    let sdk = lambda_sdk_config()?;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);

    // The signing key is read once per instance (a rotation deploys new public keys to every
    // function, which restarts them), after init: see `keys`.
    let vault = SecretsManagerVault::new(
        aws_sdk_secretsmanager::Client::new(&sdk),
        &config.key_secret_id,
    );
    let verifier = TokenVerifier::new(&config.tokens)?;
    let app = Arc::new(handler::App {
        users: DynamoUserStore::new(dynamo.clone(), &config.users_table, &config.events_table),
        throttle: DynamoLoginThrottle::new(dynamo.clone(), &config.users_table),
        idempotency: DynamoIdempotency::new(dynamo, &config.idempotency_table),
        keys: SigningKeys::new(vault, config.tokens.clone(), config.token_ttl_seconds),
        hasher: PasswordHasher::default(),
        verifier,
        public_keys: config.tokens.public_keys,
        admins: config.admins,
    });
    // Runs once the runtime waits for its first event, so the read overlaps that wait; a
    // request that needs the key before it is read waits for this same read.
    let prefetch = Arc::clone(&app);
    tokio::spawn(async move {
        if let Err(error) = prefetch.keys.get().await {
            tracing::error!(error = %error, "the signing key could not be read; retried on use");
        }
    });
    lambda_http::run(service_fn(move |request: Request| {
        let app = Arc::clone(&app);
        async move { Ok::<_, Error>(app.handle(request).await) }
    }))
    .await
}
