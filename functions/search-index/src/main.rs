//! `search-index`: keeps the search entries in the read-model table in step with events.

use search_index::handler;

use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use evently_shared::aws::{DynamoIdempotency, DynamoSearchIndex, lambda_sdk_config};
use evently_shared::config::required;
use evently_shared::consumer::Once;
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
    let index = Arc::new(DynamoSearchIndex::new(dynamo.clone(), table));
    let records = Arc::new(DynamoIdempotency::new(dynamo, idempotency_table));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let index = Arc::clone(&index);
        let records = Arc::clone(&records);
        async move {
            let once =
                Once::for_invocation(records.as_ref(), handler::SCOPE, event.context.deadline);
            handler::handle_batch(index.as_ref(), &once, event.payload).await
        }
    }))
    .await
}
