//! `events-api`: events, RSVPs and their stats behind API Gateway (HTTP API).

use events_api::{config, handler};

use std::sync::Arc;

use evently_shared::aws::{
    DynamoAnalytics, DynamoEventStore, DynamoIdempotency, DynamoReadModel, DynamoSearchIndex,
    lambda_sdk_config,
};
use evently_shared::telemetry;
use evently_shared::tokens::TokenVerifier;
use lambda_http::{Error, Request, service_fn};

// Under glibc malloc, allocation was a quarter of a warm request's CPU (the SDK allocates per
// call and per attribute); mimalloc takes 7-26 % off (BENCHMARKS.md, "Allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// Lambda sends one event at a time: a single-threaded runtime starts no worker threads
// (BENCHMARKS.md, "Cold start").
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = config::Config::from_env()?;
    let dynamo = aws_sdk_dynamodb::Client::new(&lambda_sdk_config()?);
    let app = Arc::new(handler::App {
        store: DynamoEventStore::new(dynamo.clone(), config.events_table),
        read_model: DynamoReadModel::new(dynamo.clone(), &config.read_model_table),
        search: DynamoSearchIndex::new(dynamo.clone(), config.read_model_table),
        analytics: DynamoAnalytics::new(dynamo.clone(), config.analytics_table),
        idempotency: DynamoIdempotency::new(dynamo, config.idempotency_table),
        tokens: TokenVerifier::new(&config.tokens)?,
    });
    lambda_http::run(service_fn(move |request: Request| {
        let app = Arc::clone(&app);
        async move { Ok::<_, Error>(app.handle(request).await) }
    }))
    .await
}
