//! `read-model-updater`: projects domain events from its SQS queue into the read-model table.

use read_model_updater::{config, handler};

use std::sync::Arc;

use evently_shared::aws::{DynamoIdempotency, DynamoOnce, DynamoReadModel, lambda_sdk_config};
use evently_shared::consumer::SqsBatch;
use evently_shared::telemetry;
use lambda_runtime::{Error, LambdaEvent, service_fn};

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
    let projections = Arc::new(DynamoOnce::new(
        DynamoReadModel::new(dynamo.clone(), config.read_model_table),
        DynamoIdempotency::new(dynamo, config.idempotency_table),
    ));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsBatch>| {
        let projections = Arc::clone(&projections);
        async move { handler::handle_batch(projections.as_ref(), event.payload).await }
    }))
    .await
}
