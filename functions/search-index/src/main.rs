//! `search-index`: keeps the search entries in the read-model table in step with events.

mod handler;

use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use evently_shared::aws::{DynamoSearchIndex, sdk_config};
use evently_shared::config::required;
use evently_shared::telemetry;
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let table = required("READ_MODEL_TABLE")?;
    let index = Arc::new(DynamoSearchIndex::new(
        aws_sdk_dynamodb::Client::new(&sdk_config().await),
        table,
    ));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let index = Arc::clone(&index);
        async move { handler::handle_batch(index.as_ref(), event.payload).await }
    }))
    .await
}
