//! `search-index`: keeps the search entries in the read-model table in step with events.

use search_index::handler;

use std::sync::Arc;

use evently_shared::aws::{DynamoIdempotency, DynamoOnce, DynamoSearchIndex, lambda_sdk_config};
use evently_shared::config::required;
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
    let table = required("READ_MODEL_TABLE")?;
    let idempotency_table = required("IDEMPOTENCY_TABLE")?;
    let dynamo = aws_sdk_dynamodb::Client::new(&lambda_sdk_config()?);
    let index = Arc::new(DynamoOnce::new(
        DynamoSearchIndex::new(dynamo.clone(), table),
        DynamoIdempotency::new(dynamo, idempotency_table),
    ));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsBatch>| {
        let index = Arc::clone(&index);
        async move { handler::handle_batch(index.as_ref(), event.payload).await }
    }))
    .await
}
