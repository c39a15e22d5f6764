//! `analytics`: exactly-once counters (events and signups per day, RSVPs per event).

use analytics::handler;

use std::sync::Arc;

use evently_shared::aws::{DynamoAnalytics, DynamoIdempotency, DynamoOnce, lambda_sdk_config};
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
    let table = required("ANALYTICS_TABLE")?;
    let idempotency_table = required("IDEMPOTENCY_TABLE")?;
    let dynamo = aws_sdk_dynamodb::Client::new(&lambda_sdk_config()?);
    let counters = Arc::new(DynamoOnce::new(
        DynamoAnalytics::new(dynamo.clone(), table),
        DynamoIdempotency::new(dynamo, idempotency_table),
    ));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsBatch>| {
        let counters = Arc::clone(&counters);
        async move { handler::handle_batch(counters.as_ref(), event.payload).await }
    }))
    .await
}
