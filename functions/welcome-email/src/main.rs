//! `welcome-email`: one welcome mail per new account, from the `user.created` queue.

use welcome_email::{config, handler};

use std::sync::Arc;

use evently_shared::aws::{DynamoIdempotency, SesMailer, lambda_sdk_config};
use evently_shared::consumer::SqsBatch;
use evently_shared::idempotency::lease_until;
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
    let sdk = lambda_sdk_config()?;
    let app = Arc::new(handler::Welcome {
        mailer: SesMailer::new(aws_sdk_sesv2::Client::new(&sdk), config.mail_from),
        idempotency: DynamoIdempotency::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            config.idempotency_table,
        ),
    });
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsBatch>| {
        let app = Arc::clone(&app);
        async move {
            let deadline = lease_until(Some(event.context.deadline));
            app.handle_batch(event.payload, deadline).await
        }
    }))
    .await
}
