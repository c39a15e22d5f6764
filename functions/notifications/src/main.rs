//! `notifications`: mail followers about new events, and attendees about changes and
//! cancellations, once per (recipient, event, version).

use notifications::handler;

use std::sync::Arc;

use evently_shared::aws::{
    DynamoEventStore, DynamoIdempotency, DynamoUserStore, SesMailer, lambda_sdk_config,
};
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
    let events_table = required("EVENTS_TABLE")?;
    let users_table = required("USERS_TABLE")?;
    let idempotency_table = required("IDEMPOTENCY_TABLE")?;
    let mail_from = required("MAIL_FROM")?;
    let unsubscribe_url = required("UNSUBSCRIBE_URL")?;
    let sdk = lambda_sdk_config()?;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let app = Arc::new(handler::Notifier {
        events: DynamoEventStore::new(dynamo.clone(), &events_table),
        follows: DynamoUserStore::new(dynamo.clone(), users_table, &events_table),
        mailer: SesMailer::new(aws_sdk_sesv2::Client::new(&sdk), mail_from),
        idempotency: DynamoIdempotency::new(dynamo, idempotency_table),
        unsubscribe_url,
    });
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsBatch>| {
        let app = Arc::clone(&app);
        async move {
            let deadline_ms = i64::try_from(event.context.deadline).unwrap_or(i64::MAX);
            app.handle_batch(event.payload, deadline_ms).await
        }
    }))
    .await
}
