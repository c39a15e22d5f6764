//! Files each event version in the search index, through the shared SQS batch kit: a batch's
//! manifests are read together and its entries written together, and each manifest goes in
//! one transaction with the kit's record of its envelope. The manifest's version guard makes a
//! late or repeated envelope change nothing.

use aws_lambda_events::event::sqs::SqsBatchResponse;
use evently_shared::app::read_model::projection_of;
use evently_shared::consumer::{self, MessageError, SqsBatch};
use evently_shared::domain::Event;
use evently_shared::envelope::Envelope;
use evently_shared::ports::{Applied, IndexOnce};
use lambda_runtime::Error;

/// The idempotency scope of this consumer.
pub const SCOPE: &str = "search-index";

pub async fn handle_batch(
    index: &impl IndexOnce,
    event: SqsBatch,
) -> Result<SqsBatchResponse, Error> {
    consumer::process_together(event, prepare, |events| file(index, events)).await
}

/// The event as it is now: the index files what the read model projects.
fn prepare(envelope: &Envelope) -> Result<Option<Event>, MessageError> {
    projection_of(envelope).map_err(|e| MessageError::Permanent(e.to_string()))
}

async fn file(
    index: &impl IndexOnce,
    events: Vec<(String, Event)>,
) -> Vec<Result<consumer::Handled, MessageError>> {
    let batch: Vec<(&str, &Event)> = events.iter().map(|(k, e)| (k.as_str(), e)).collect();
    index
        .index_once(SCOPE, &batch)
        .await
        .into_iter()
        .map(|settled| {
            consumer::outcome_of(settled, |applied| match applied {
                Applied::Changed => "search entries updated",
                Applied::Stale => "index already as new; envelope skipped",
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use evently_shared::domain::{SearchQuery, Timestamp};
    use evently_shared::fakes::InMemorySearch;
    use evently_shared::ports::SearchIndex;
    use serde_json::{Value, json};

    use super::*;

    async fn deliver(target: &impl IndexOnce, event: SqsBatch) -> SqsBatchResponse {
        handle_batch(target, event).await.unwrap()
    }

    const CREATED: &str = include_str!("../../../events-fixtures/sqs-event-created.json");

    fn with(version: u64, status: &str, venue: &str) -> SqsBatch {
        let mut batch: Value = serde_json::from_str(CREATED).unwrap();
        let mut envelope: Value =
            serde_json::from_str(batch["Records"][0]["body"].as_str().unwrap()).unwrap();
        envelope["entityversion"] = json!(version);
        envelope["data"]["version"] = json!(version);
        envelope["data"]["status"] = json!(status);
        envelope["data"]["venue"] = json!(venue);
        // Each version is an envelope of its own, as the outbox publishes it.
        envelope["id"] = json!(format!("01M8HTENW0G063GZA2BHHMV{version:03}"));
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

    /// A batch of the created fixture's message in these versions (each its own envelope).
    fn batch_of(versions: &[(u64, &str)]) -> SqsBatch {
        let mut records = Vec::new();
        for (i, (version, venue)) in versions.iter().enumerate() {
            let mut record = with(*version, "scheduled", venue).records.remove(0);
            let mut envelope: Value =
                serde_json::from_str(record.body.as_deref().unwrap()).unwrap();
            envelope["id"] = json!(format!("01M8HTENW0G063GZA2BHHMT8{i:02}"));
            record.body = Some(envelope.to_string());
            record.message_id = Some(format!("m{i}"));
            records.push(record);
        }
        SqsBatch { records }
    }

    #[tokio::test]
    async fn versions_of_one_event_in_one_batch_leave_the_newest_filed_whatever_their_order() {
        let index = InMemorySearch::default();

        let response = deliver(
            &index,
            batch_of(&[(3, "Library"), (1, "Town hall"), (2, "Harbour")]),
        )
        .await;

        assert!(response.batch_item_failures.is_empty());
        assert_eq!(found(&index, "library").await, 1);
        assert_eq!(found(&index, "town").await, 0);
        assert_eq!(found(&index, "harbour").await, 0);
    }

    #[tokio::test]
    async fn an_index_outage_fails_every_message_of_the_batch_for_a_retry() {
        let response = deliver(
            &evently_shared::fakes::Unavailable,
            batch_of(&[(1, "Library"), (2, "Harbour")]),
        )
        .await;

        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, ["m0", "m1"]);
    }
}
