//! `auth-api`: POST /signup, POST /login, GET /me and GET /.well-known/jwks.json.

mod config;
mod handler;

use std::sync::Arc;

use evently_shared::aws::{
    DynamoIdempotency, DynamoLoginThrottle, DynamoUserStore, SecretsManagerVault, lambda_sdk_config,
};
use evently_shared::password::PasswordHasher;
use evently_shared::ports::KeyVault;
use evently_shared::telemetry;
use evently_shared::tokens::{KeyRing, TokenSigner, TokenVerifier};
use lambda_http::{Error, Request, service_fn};

// Lambda sends one event at a time: a single-threaded runtime starts no worker threads
// (BENCHMARKS.md, "Cold start"); Argon2 still runs on the blocking pool.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = config::Config::from_env()?;
    let sdk = lambda_sdk_config()?;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);

    // The signing key is read once per cold start; a rotation deploys new public keys to every
    // function, which restarts them.
    let vault = SecretsManagerVault::new(
        aws_sdk_secretsmanager::Client::new(&sdk),
        &config.key_secret_id,
    );
    let ring = KeyRing::from_json(&vault.read().await?.ok_or("the key secret is empty")?)
        .map_err(|_| "the key secret does not hold a valid key ring")?;
    if !config
        .tokens
        .public_keys
        .iter()
        .any(|k| k.kid == ring.current.kid)
    {
        return Err("JWT_PUBLIC_KEYS does not list the current signing key".into());
    }
    let signer = TokenSigner::new(
        &ring.current,
        &config.tokens.issuer,
        &config.tokens.audience,
        config.token_ttl_seconds,
    )?;
    let verifier = TokenVerifier::new(&config.tokens)?;
    // The signup fingerprint pepper is derived from the signing key: a secret every instance
    // shares and that never leaves the function.
    let idempotency_pepper = evently_shared::idempotency::fingerprint(&[
        b"evently signup idempotency pepper",
        ring.current.private_key.as_bytes(),
    ])
    .into_bytes();

    let app = Arc::new(handler::App {
        users: DynamoUserStore::new(dynamo.clone(), &config.users_table, &config.events_table),
        throttle: DynamoLoginThrottle::new(dynamo.clone(), &config.users_table),
        idempotency: DynamoIdempotency::new(dynamo, &config.idempotency_table),
        idempotency_pepper,
        hasher: PasswordHasher::default(),
        signer,
        verifier,
        public_keys: config.tokens.public_keys,
        admins: config.admins,
    });
    lambda_http::run(service_fn(move |request: Request| {
        let app = Arc::clone(&app);
        async move { Ok::<_, Error>(app.handle(request).await) }
    }))
    .await
}
