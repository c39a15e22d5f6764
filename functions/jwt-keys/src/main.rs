//! `jwt-keys`: a CloudFormation custom resource that generates the token signing keys at
//! deploy time, keeps them in Secrets Manager, and hands only the public keys back to the
//! template (which passes them to the verifying functions).

mod handler;

use std::sync::Arc;

use aws_lambda_events::event::cloudformation::CloudFormationCustomResourceRequest;
use evently_shared::aws::{SecretsManagerVault, lambda_sdk_config};
use evently_shared::config::required;
use evently_shared::telemetry;
use lambda_runtime::{Error, LambdaEvent, service_fn};

// Lambda sends one event at a time: a single-threaded runtime starts no worker threads
// (BENCHMARKS.md, "Cold start").
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let secret_id = required("JWT_KEY_SECRET_ID")?;
    let vault = Arc::new(SecretsManagerVault::new(
        aws_sdk_secretsmanager::Client::new(&lambda_sdk_config()?),
        secret_id,
    ));
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<CloudFormationCustomResourceRequest>| {
            let vault = Arc::clone(&vault);
            async move {
                let (url, response) = handler::handle(vault.as_ref(), event.payload).await;
                // CloudFormation waits for this PUT to the pre-signed URL, not for our return
                // value; a lost PUT would hang the deploy until it times out.
                let body = serde_json::to_vec(&response)?;
                // Built here rather than at start: it loads the system trust store (the
                // response URL is S3's), and this function runs only on deploys.
                let http = reqwest::Client::builder()
                    .timeout(std::time::Duration::from_secs(20))
                    .build()?;
                let put = http
                    .put(url)
                    .header("content-type", "")
                    .body(body)
                    .send()
                    .await?;
                if !put.status().is_success() {
                    return Err(Error::from(format!(
                        "CloudFormation response URL answered {}",
                        put.status()
                    )));
                }
                Ok::<(), Error>(())
            }
        },
    ))
    .await
}
