//! Files each event version in the search index, through the shared SQS batch kit. The
//! index's version guard makes redelivery and reordering harmless.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use evently_shared::consumer::{self, MessageError, Once};
use evently_shared::envelope::{DomainEvent, Envelope};
use evently_shared::ports::{Applied, Idempotency, SearchIndex, StoreError};
use lambda_runtime::Error;

/// The idempotency scope of this consumer.
pub const SCOPE: &str = "search-index";

pub async fn handle_batch(
    index: &impl SearchIndex,
    once: &Once<'_, impl Idempotency>,
    event: SqsEvent,
) -> Result<SqsBatchResponse, Error> {
    consumer::process_envelopes(event, once, |envelope| file(index, envelope)).await
}

async fn file(index: &impl SearchIndex, envelope: Envelope) -> Result<(), MessageError> {
    let event = match envelope
        .domain_event()
        .map_err(|e| MessageError::Permanent(e.to_string()))?
    {
        DomainEvent::EventCreated(event) | DomainEvent::EventCancelled(event) => event,
        DomainEvent::EventUpdated(change) => change.event,
        _ => {
            consumer::note("not indexed; envelope skipped");
            return Ok(());
        }
    };
    match index.index(&event).await {
        Ok(Applied::Changed) => {
            consumer::note("search entries updated");
            Ok(())
        }
        Ok(Applied::Stale) => {
            consumer::note("index already as new; envelope skipped");
            Ok(())
        }
        Err(StoreError::Corrupt(reason)) => Err(MessageError::Retryable(reason)),
        Err(error) => Err(MessageError::Retryable(error.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use evently_shared::domain::{SearchQuery, Timestamp};
    use evently_shared::fakes::InMemorySearch;
    use serde_json::{Value, json};

    use evently_shared::fakes::fresh_once;

    use super::*;

    /// One delivery to a consumer that has seen nothing yet.
    async fn deliver(target: &impl SearchIndex, event: SqsEvent) -> SqsBatchResponse {
        handle_batch(target, &fresh_once(SCOPE), event)
            .await
            .unwrap()
    }

    const CREATED: &str = include_str!("../../../events-fixtures/sqs-event-created.json");

    fn with(version: u64, status: &str, venue: &str) -> SqsEvent {
        let mut batch: Value = serde_json::from_str(CREATED).unwrap();
        let mut envelope: Value =
            serde_json::from_str(batch["Records"][0]["body"].as_str().unwrap()).unwrap();
        envelope["entityversion"] = json!(version);
        envelope["data"]["version"] = json!(version);
        envelope["data"]["status"] = json!(status);
        envelope["data"]["venue"] = json!(venue);
        if status == "cancelled" {
            envelope["type"] = json!("evently.event.cancelled.v1");
        }
        batch["Records"][0]["body"] = json!(envelope.to_string());
        serde_json::from_value(batch).unwrap()
    }

    async fn found(index: &InMemorySearch, q: &str) -> usize {
        let (words, prefix) = SearchQuery::parse_q(q).unwrap();
        let query = SearchQuery {
            words,
            prefix,
            ..Default::default()
        };
        let after = Timestamp::parse("t", "2026-01-01T00:00:00Z").unwrap();
        index
            .search(&query, after, 10, None)
            .await
            .unwrap()
            .items
            .len()
    }

    #[tokio::test]
    async fn an_event_is_findable_by_its_words_and_a_prefix() {
        let index = InMemorySearch::default();

        deliver(&index, serde_json::from_str(CREATED).unwrap()).await;

        assert_eq!(found(&index, "LAMBDA nig").await, 1);
        assert_eq!(found(&index, "python").await, 0);
    }

    #[tokio::test]
    async fn a_cancellation_removes_the_event_and_an_older_version_cannot_bring_it_back() {
        let index = InMemorySearch::default();

        deliver(&index, with(1, "scheduled", "Town hall")).await;
        deliver(&index, with(2, "cancelled", "Town hall")).await;
        deliver(&index, with(1, "scheduled", "Town hall")).await;

        assert_eq!(found(&index, "rust").await, 0);
    }

    #[tokio::test]
    async fn an_update_replaces_stale_terms() {
        let index = InMemorySearch::default();

        deliver(&index, with(1, "scheduled", "Town hall")).await;
        deliver(&index, with(2, "scheduled", "Library")).await;

        assert_eq!(found(&index, "town").await, 0);
        assert_eq!(found(&index, "library").await, 1);
    }
}
