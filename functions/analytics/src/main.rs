//! `analytics`: exactly-once counters (events and signups per day, RSVPs per event).

mod handler;

use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use evently_shared::aws::{DynamoAnalytics, sdk_config};
use evently_shared::config::required;
use evently_shared::telemetry;
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let table = required("ANALYTICS_TABLE")?;
    let analytics = Arc::new(DynamoAnalytics::new(
        aws_sdk_dynamodb::Client::new(&sdk_config().await),
        table,
    ));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let analytics = Arc::clone(&analytics);
        async move { handler::handle_batch(analytics.as_ref(), event.payload).await }
    }))
    .await
}
