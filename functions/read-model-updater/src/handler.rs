//! Applies each envelope to the read model through the shared SQS batch kit: a batch's
//! projections are written together, each in one transaction with the idempotency kit's record
//! of its envelope, and the projection's version guard makes a late or repeated envelope
//! change nothing.

use aws_lambda_events::event::sqs::SqsBatchResponse;
use evently_shared::app::read_model::projection_of;
use evently_shared::consumer::{self, MessageError, SqsBatch};
use evently_shared::domain::Event;
use evently_shared::envelope::Envelope;
use evently_shared::ports::{Applied, ProjectOnce};
use lambda_runtime::Error;

/// The idempotency scope of this consumer.
pub const SCOPE: &str = "read-model-updater";

pub async fn handle_batch(
    projections: &impl ProjectOnce,
    event: SqsBatch,
) -> Result<SqsBatchResponse, Error> {
    consumer::process_together(event, prepare, |writes| project(projections, writes)).await
}

fn prepare(envelope: &Envelope) -> Result<Option<Event>, MessageError> {
    projection_of(envelope).map_err(|e| MessageError::Permanent(e.to_string()))
}

async fn project(
    projections: &impl ProjectOnce,
    writes: Vec<(String, Event)>,
) -> Vec<Result<consumer::Handled, MessageError>> {
    let batch: Vec<(&str, &Event)> = writes.iter().map(|(k, e)| (k.as_str(), e)).collect();
    projections
        .apply_once(SCOPE, &batch)
        .await
        .into_iter()
        .map(|settled| {
            consumer::outcome_of(settled, |applied| match applied {
                Applied::Changed => "projection updated",
                Applied::Stale => "projection already as new; envelope skipped",
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use evently_shared::domain::{Event, EventId};
    use evently_shared::fakes::{InMemoryEvents, Unavailable};
    use evently_shared::ports::{Consistency, EventReader};
    use serde_json::{Value, json};

    use super::*;

    async fn deliver(target: &impl ProjectOnce, event: SqsBatch) -> SqsBatchResponse {
        handle_batch(target, event).await.unwrap()
    }

    const CREATED: &str = include_str!("../../../events-fixtures/sqs-event-created.json");
    const MALFORMED: &str = include_str!("../../../events-fixtures/sqs-malformed.json");

    fn event(raw: &str) -> SqsBatch {
        serde_json::from_str(raw).unwrap()
    }

    /// The created fixture's message, re-versioned and re-titled.
    fn message_with_version(id: &str, version: u64, title: &str) -> Value {
        let mut batch: Value = serde_json::from_str(CREATED).unwrap();
        let mut message = batch["Records"][0].take();
        let mut envelope: Value = serde_json::from_str(message["body"].as_str().unwrap()).unwrap();
        envelope["entityversion"] = json!(version);
        envelope["data"]["version"] = json!(version);
        envelope["data"]["title"] = json!(title);
        message["body"] = json!(envelope.to_string());
        message["messageId"] = json!(id);
        message
    }

    fn fixture_event_id() -> EventId {
        let batch: Value = serde_json::from_str(CREATED).unwrap();
        let envelope: Value =
            serde_json::from_str(batch["Records"][0]["body"].as_str().unwrap()).unwrap();
        EventId::parse("id", envelope["subject"].as_str().unwrap()).unwrap()
    }

    async fn stored(read_model: &InMemoryEvents) -> Event {
        read_model
            .get(&fixture_event_id(), Consistency::Strong)
            .await
            .unwrap()
            .unwrap()
    }

    #[tokio::test]
    async fn an_event_created_envelope_becomes_a_projection() {
        let read_model = InMemoryEvents::default();

        let response = deliver(&read_model, event(CREATED)).await;

        assert!(response.batch_item_failures.is_empty());
        assert_eq!(
            stored(&read_model).await.title.as_str(),
            "Rust & Lambda night"
        );
    }

    #[tokio::test]
    async fn a_duplicated_delivery_leaves_the_projection_unchanged() {
        let read_model = InMemoryEvents::default();
        deliver(&read_model, event(CREATED)).await;
        let before = stored(&read_model).await;

        let response = deliver(&read_model, event(CREATED)).await;

        assert!(response.batch_item_failures.is_empty());
        assert_eq!(stored(&read_model).await, before);
    }

    #[tokio::test]
    async fn an_older_version_arriving_late_does_not_overwrite_a_newer_one() {
        let read_model = InMemoryEvents::default();
        let newer = json!({ "Records": [message_with_version("a", 3, "Newest")] });
        let older = json!({ "Records": [message_with_version("b", 2, "Older")] });

        deliver(&read_model, serde_json::from_value(newer).unwrap()).await;
        deliver(&read_model, serde_json::from_value(older).unwrap()).await;

        let projection = stored(&read_model).await;
        assert_eq!(projection.version, 3);
        assert_eq!(projection.title.as_str(), "Newest");
    }

    #[tokio::test]
    async fn a_malformed_message_fails_alone_and_the_rest_are_applied() {
        let read_model = InMemoryEvents::default();
        let mut batch: Value = serde_json::from_str(MALFORMED).unwrap();
        let good: Value = serde_json::from_str(CREATED).unwrap();
        batch["Records"]
            .as_array_mut()
            .unwrap()
            .push(good["Records"][0].clone());

        let response = deliver(&read_model, serde_json::from_value(batch).unwrap()).await;

        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, ["7b2f1c2e-5d7a-4c1e-9a55-000000000bad"]);
        assert_eq!(stored(&read_model).await.version, 1);
    }

    #[tokio::test]
    async fn a_read_model_outage_is_a_retryable_failure() {
        let response = deliver(&Unavailable, event(CREATED)).await;

        assert_eq!(response.batch_item_failures.len(), 1);
    }

    #[tokio::test]
    async fn an_envelope_id_already_handled_is_skipped_by_the_idempotency_kit() {
        let read_model = InMemoryEvents::default();
        let first = message_with_version("m1", 1, "First");
        // Same envelope id, other content: only the kit can tell it was handled.
        let replay = message_with_version("m2", 2, "Replayed");

        deliver(
            &read_model,
            serde_json::from_value(json!({ "Records": [first] })).unwrap(),
        )
        .await;
        let response = deliver(
            &read_model,
            serde_json::from_value(json!({ "Records": [replay] })).unwrap(),
        )
        .await;

        assert!(response.batch_item_failures.is_empty());
        let projected = stored(&read_model).await;
        assert_eq!((projected.version, projected.title.as_str()), (1, "First"));
    }
}
