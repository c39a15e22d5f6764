//! Create, update and delete of the key ring resource, as pure logic over a [`KeyVault`].
//!
//! - Create: generate a key ring (or keep a valid one already in the secret, so a retried
//!   create does not change keys under running functions).
//! - Update: rotate when the `Generation` property changed: a new current key, the old one
//!   kept as previous so tokens signed before the rotation stay valid; otherwise keep.
//! - Delete: nothing; the secret is a resource of its own and goes with the stack.
//!
//! The response carries the public keys only. Nothing here logs or returns a private key.

use std::collections::HashMap;

use aws_lambda_events::event::cloudformation::{
    CloudFormationCustomResourceRequest, CloudFormationCustomResourceResponse,
    CloudFormationCustomResourceResponseStatus,
};
use evently_shared::ports::{KeyVault, StoreError};
use evently_shared::tokens::{KeyRing, format_public_keys};
use serde_json::Value;

const PHYSICAL_ID: &str = "evently-jwt-key-ring";

fn generation(properties: &Value) -> Option<&str> {
    properties.get("Generation").and_then(Value::as_str)
}

async fn stored_ring(vault: &impl KeyVault) -> Result<Option<KeyRing>, StoreError> {
    // A secret CloudFormation created holds a random placeholder until we write a ring.
    Ok(vault
        .read()
        .await?
        .and_then(|raw| KeyRing::from_json(&raw).ok()))
}

async fn ensure(vault: &impl KeyVault, rotate: bool) -> Result<KeyRing, StoreError> {
    let ring = match stored_ring(vault).await? {
        Some(ring) if rotate => ring.rotate(),
        Some(ring) => return Ok(ring),
        None => KeyRing::generate(),
    };
    vault.write(&ring.to_json()).await?;
    Ok(ring)
}

/// Handles one request; returns where to send the answer and the answer itself. Its lines and
/// its metric record carry CloudFormation's request id as the correlation id: the one id a
/// deploy's log lines share.
pub async fn handle(
    vault: &impl KeyVault,
    request: CloudFormationCustomResourceRequest,
) -> (String, CloudFormationCustomResourceResponse) {
    use tracing::Instrument;
    let request_id = match &request {
        CloudFormationCustomResourceRequest::Create(r) => r.request_id.as_str(),
        CloudFormationCustomResourceRequest::Update(r) => r.request_id.as_str(),
        CloudFormationCustomResourceRequest::Delete(r) => r.request_id.as_str(),
        _ => "",
    };
    let span = tracing::info_span!("custom_resource", correlation_id = %request_id);
    answer(vault, request).instrument(span).await
}

async fn answer(
    vault: &impl KeyVault,
    request: CloudFormationCustomResourceRequest,
) -> (String, CloudFormationCustomResourceResponse) {
    let started = std::time::Instant::now();
    let mut response = CloudFormationCustomResourceResponse::default();
    let (url, outcome) = match request {
        CloudFormationCustomResourceRequest::Create(create) => {
            response.stack_id = create.stack_id;
            response.request_id = create.request_id;
            response.logical_resource_id = create.logical_resource_id;
            response.physical_resource_id = PHYSICAL_ID.to_owned();
            (create.response_url, ensure(vault, false).await.map(Some))
        }
        CloudFormationCustomResourceRequest::Update(update) => {
            let rotate = generation(&update.resource_properties)
                != generation(&update.old_resource_properties);
            response.stack_id = update.stack_id;
            response.request_id = update.request_id;
            response.logical_resource_id = update.logical_resource_id;
            response.physical_resource_id = update.physical_resource_id;
            (update.response_url, ensure(vault, rotate).await.map(Some))
        }
        CloudFormationCustomResourceRequest::Delete(delete) => {
            response.stack_id = delete.stack_id;
            response.request_id = delete.request_id;
            response.logical_resource_id = delete.logical_resource_id;
            response.physical_resource_id = delete.physical_resource_id;
            (delete.response_url, Ok(None))
        }
        _ => {
            response.physical_resource_id = PHYSICAL_ID.to_owned();
            (String::new(), Ok(None))
        }
    };
    match outcome {
        Ok(ring) => {
            response.status = CloudFormationCustomResourceResponseStatus::Success;
            if let Some(ring) = ring {
                tracing::info!(current_kid = %ring.current.kid, keys = ring.public_keys().len(), "key ring ready");
                response.data = HashMap::from([
                    (
                        "PublicKeys".to_owned(),
                        format_public_keys(&ring.public_keys()),
                    ),
                    ("CurrentKid".to_owned(), ring.current.kid.clone()),
                ]);
            }
        }
        Err(error) => {
            tracing::error!(%error, "key ring request failed");
            response.status = CloudFormationCustomResourceResponseStatus::Failed;
            response.reason = Some(format!("key ring: {error}"));
        }
    }
    evently_shared::metrics::request(
        response.status == CloudFormationCustomResourceResponseStatus::Failed,
        started,
        Some(response.request_id.as_str()).filter(|id| !id.is_empty()),
    );
    (url, response)
}

#[cfg(test)]
mod tests {
    use evently_shared::fakes::InMemoryVault;
    use evently_shared::tokens::parse_public_keys;
    use serde_json::json;

    use super::*;

    /// A vault holding the random text CloudFormation puts in a new secret.
    fn fresh_vault() -> InMemoryVault {
        InMemoryVault::holding("Xq9!random-initial-secret")
    }

    fn ring_in(vault: &InMemoryVault) -> KeyRing {
        KeyRing::from_json(&vault.secret().unwrap()).unwrap()
    }

    fn request(
        kind: &str,
        generation: &str,
        old_generation: &str,
    ) -> CloudFormationCustomResourceRequest {
        serde_json::from_value(json!({
            "RequestType": kind,
            "RequestId": "req-1",
            "ResponseURL": "http://127.0.0.1:4566/_ministack/cfn-response/token",
            "StackId": "arn:aws:cloudformation:us-east-1:000000000000:stack/Evently/1",
            "ResourceType": "Custom::JwtKeyRing",
            "LogicalResourceId": "JwtKeys",
            "PhysicalResourceId": PHYSICAL_ID,
            "ResourceProperties": { "ServiceToken": "arn", "Generation": generation },
            "OldResourceProperties": { "ServiceToken": "arn", "Generation": old_generation }
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn create_stores_a_key_ring_and_returns_only_public_keys() {
        let vault = fresh_vault();

        let (url, response) = handle(&vault, request("Create", "1", "1")).await;

        assert!(url.ends_with("/token"));
        assert_eq!(
            response.status,
            CloudFormationCustomResourceResponseStatus::Success
        );
        let ring = ring_in(&vault);
        assert_eq!(
            parse_public_keys(&response.data["PublicKeys"]).unwrap(),
            ring.public_keys()
        );
        let printed = serde_json::to_string(&response).unwrap();
        assert!(!printed.contains(&ring.current.private_key));
    }

    #[tokio::test]
    async fn an_update_without_a_new_generation_keeps_the_keys() {
        let vault = fresh_vault();
        handle(&vault, request("Create", "1", "1")).await;
        let before = ring_in(&vault);

        let (_, response) = handle(&vault, request("Update", "1", "1")).await;

        assert_eq!(ring_in(&vault), before);
        assert_eq!(response.physical_resource_id, PHYSICAL_ID);
    }

    #[tokio::test]
    async fn a_new_generation_rotates_and_keeps_the_previous_key() {
        let vault = fresh_vault();
        handle(&vault, request("Create", "1", "1")).await;
        let before = ring_in(&vault);

        let (_, response) = handle(&vault, request("Update", "2", "1")).await;

        let after = ring_in(&vault);
        assert_ne!(after.current, before.current);
        assert_eq!(after.previous, Some(before.current.clone()));
        assert_eq!(response.data["CurrentKid"], after.current.kid);
        assert_eq!(
            parse_public_keys(&response.data["PublicKeys"])
                .unwrap()
                .len(),
            2
        );
    }

    #[tokio::test]
    async fn the_fixtures_create_then_rotate() {
        let vault = fresh_vault();
        let fixture = |raw: &str| serde_json::from_str(raw).unwrap();

        handle(
            &vault,
            fixture(include_str!(
                "../../../events-fixtures/cloudformation-create-key-ring.json"
            )),
        )
        .await;
        let created = ring_in(&vault);
        handle(
            &vault,
            fixture(include_str!(
                "../../../events-fixtures/cloudformation-rotate-key-ring.json"
            )),
        )
        .await;

        assert_eq!(ring_in(&vault).previous, Some(created.current));
    }

    #[tokio::test]
    async fn delete_succeeds_and_leaves_the_secret_alone() {
        let vault = fresh_vault();
        handle(&vault, request("Create", "1", "1")).await;
        let before = ring_in(&vault);

        let (_, response) = handle(&vault, request("Delete", "1", "1")).await;

        assert_eq!(
            response.status,
            CloudFormationCustomResourceResponseStatus::Success
        );
        assert_eq!(ring_in(&vault), before);
    }
}
