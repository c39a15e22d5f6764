//! `outbox-relay`: publishes outbox items from the events table's stream to the SNS topic.

use outbox_relay::{config, handler};

use std::sync::Arc;

use aws_lambda_events::event::dynamodb::Event;
use evently_shared::aws::{SnsPublisher, lambda_sdk_config};
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
    let sns = aws_sdk_sns::Client::new(&lambda_sdk_config()?);
    let publisher = Arc::new(SnsPublisher::new(sns, config.topic_arn));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Event>| {
        let publisher = Arc::clone(&publisher);
        async move { handler::relay(publisher.as_ref(), event.payload).await }
    }))
    .await
}
