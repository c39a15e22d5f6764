//! Turns outbox inserts on the events table's stream into SNS messages.
//!
//! A publish that fails (SNS down, throttled, a wrong topic) fails the whole invocation, so the
//! poller retries the batch from its first record: on AWS (which also bisects), on LocalStack,
//! and on emulators that do not honour batch item failures on stream mappings (ministack
//! advances past them, which would lose the events). The price is that envelopes published
//! before the failure are published again; every consumer is idempotent. An outbox item that
//! cannot be read at all is a batch item failure instead: retrying cannot fix it, so it goes
//! to the on-failure destination after the retry limit. Records that are not outbox inserts
//! are skipped here even though the mapping filter already drops them: the filter is an
//! optimisation, this check is the guard.

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use evently_shared::aws::{OUTBOX_ENTITY, OutboxRecord};
use evently_shared::ports::{OutgoingMessage, Published, Publisher};
use lambda_runtime::Error;
use tracing::Instrument;

/// What to do with one stream record.
#[derive(Debug)]
enum Plan {
    Skip(&'static str),
    Publish(OutgoingMessage),
    /// An outbox insert that cannot be read: fail it so it ends in the on-failure destination.
    Fail(String),
}

fn plan(record: &EventRecord) -> Plan {
    if record.event_name != "INSERT" {
        return Plan::Skip("not an insert");
    }
    let is_outbox = matches!(
        record.change.new_image.get("entity"),
        Some(serde_dynamo::AttributeValue::S(entity)) if entity == OUTBOX_ENTITY
    );
    if !is_outbox {
        return Plan::Skip("not an outbox item");
    }
    match serde_dynamo::from_item::<_, OutboxRecord>(record.change.new_image.clone()) {
        Ok(outbox) => Plan::Publish(OutgoingMessage {
            body: outbox.envelope,
            event_type: outbox.event_type,
            correlation_id: outbox.correlation_id,
        }),
        Err(error) => Plan::Fail(format!("unreadable outbox item: {error}")),
    }
}

pub async fn relay<P: Publisher>(
    publisher: &P,
    event: Event,
) -> Result<DynamoDbEventResponse, Error> {
    let started = std::time::Instant::now();
    let mut failed: Vec<String> = Vec::new();
    let mut published = 0usize;
    let mut pending: Vec<(String, OutgoingMessage)> = Vec::new();

    for record in &event.records {
        let Some(sequence) = record.change.sequence_number.clone() else {
            return Err("a stream record has no sequence number; failing the whole batch".into());
        };
        match plan(record) {
            Plan::Skip(reason) => tracing::debug!(%sequence, reason, "record skipped"),
            Plan::Publish(message) => pending.push((sequence, message)),
            Plan::Fail(reason) => {
                tracing::error!(%sequence, %reason, "outbox record failed");
                failed.push(sequence);
            }
        }
    }

    let mut publish_failures = 0usize;
    for chunk in pending.chunks(P::MAX_BATCH) {
        if publish_failures > 0 {
            // The batch is retried as a whole; publishing more of it now only adds duplicates.
            break;
        }
        let messages: Vec<OutgoingMessage> = chunk.iter().map(|(_, m)| m.clone()).collect();
        match publisher.publish(&messages).await {
            Ok(outcomes) => {
                for ((sequence, message), outcome) in chunk.iter().zip(outcomes) {
                    let span = tracing::info_span!(
                        "outbox",
                        correlation_id = %message.correlation_id,
                        event_type = %message.event_type,
                        %sequence,
                    );
                    async {
                        match outcome {
                            Published::Accepted => {
                                published += 1;
                                tracing::info!("envelope published");
                            }
                            Published::Rejected { code, message } => {
                                tracing::error!(%code, %message, "publish rejected; the batch will be retried");
                                publish_failures += 1;
                            }
                        }
                    }
                    .instrument(span)
                    .await;
                }
            }
            Err(error) => {
                tracing::error!(%error, messages = chunk.len(), "publish failed; the batch will be retried");
                publish_failures += chunk.len();
            }
        }
    }

    // Written on every outcome: a relay that cannot publish is the first thing to see.
    evently_shared::metrics::batch(published, failed.len() + publish_failures, started);
    if publish_failures > 0 {
        tracing::warn!(
            records = event.records.len(),
            published,
            publish_failures,
            "stream batch not relayed; failing the invocation so it is retried"
        );
        return Err(format!("{publish_failures} envelopes could not be published").into());
    }

    // A clean batch's counts are in its metric record; a line of its own only when an outbox
    // record failed, as the queue consumers do.
    if failed.is_empty() {
        tracing::debug!(
            records = event.records.len(),
            published,
            "stream batch relayed"
        );
    } else {
        tracing::info!(
            records = event.records.len(),
            published,
            failed = failed.len(),
            "stream batch relayed"
        );
    }
    let mut response = DynamoDbEventResponse::default();
    response.batch_item_failures = failed
        .into_iter()
        .map(|sequence| {
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = Some(sequence);
            failure
        })
        .collect();
    Ok(response)
}

#[cfg(test)]
mod tests {
    use evently_shared::fakes::RecordingPublisher;
    use serde_json::json;

    use super::*;

    const FIXTURE: &str = include_str!("../../../events-fixtures/dynamodb-outbox-insert.json");

    fn fixture() -> Event {
        serde_json::from_str(FIXTURE).unwrap()
    }

    fn outbox_record(sequence: &str, marker: &str) -> serde_json::Value {
        let mut record: serde_json::Value = serde_json::from_str(FIXTURE).unwrap();
        let mut one = record["Records"][0].take();
        one["dynamodb"]["SequenceNumber"] = json!(sequence);
        let envelope = one["dynamodb"]["NewImage"]["envelope"]["S"]
            .as_str()
            .unwrap()
            .replace("\"title\":\"", &format!("\"title\":\"{marker} "));
        one["dynamodb"]["NewImage"]["envelope"]["S"] = json!(envelope);
        one
    }

    fn batch(records: Vec<serde_json::Value>) -> Event {
        serde_json::from_value(json!({ "Records": records })).unwrap()
    }

    fn failures(response: &DynamoDbEventResponse) -> Vec<String> {
        response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone().unwrap())
            .collect()
    }

    #[tokio::test]
    async fn an_outbox_insert_is_published_with_type_and_correlation_id() {
        let publisher = RecordingPublisher::default();

        let response = relay(&publisher, fixture()).await.unwrap();

        assert!(response.batch_item_failures.is_empty());
        let published = publisher.published();
        assert_eq!(published.len(), 1);
        assert_eq!(published[0].event_type, "evently.event.created.v1");
        assert_eq!(published[0].correlation_id, "fixture-correlation-1");
        let envelope = evently_shared::envelope::Envelope::from_json(&published[0].body).unwrap();
        assert!(envelope.domain_event().is_ok());
    }

    #[tokio::test]
    async fn a_stream_batch_of_ten_outbox_inserts_is_one_publish_of_ten_in_order() {
        let publisher = RecordingPublisher::default();
        let event: Event = serde_json::from_str(include_str!(
            "../../../events-fixtures/dynamodb-outbox-batch.json"
        ))
        .unwrap();

        let response = relay(&publisher, event).await.unwrap();

        assert!(response.batch_item_failures.is_empty());
        let calls = publisher.calls.lock().unwrap().clone();
        assert_eq!(calls.len(), 1, "one call for the whole batch");
        let correlation_ids: Vec<&str> =
            calls[0].iter().map(|m| m.correlation_id.as_str()).collect();
        let expected: Vec<String> = (1..=10)
            .map(|i| format!("fixture-correlation-{i}"))
            .collect();
        assert_eq!(correlation_ids, expected);
    }

    #[tokio::test]
    async fn records_that_are_not_outbox_inserts_are_skipped() {
        let publisher = RecordingPublisher::default();
        let mut modify = outbox_record("1", "m");
        modify["eventName"] = json!("MODIFY");
        let mut event_item = outbox_record("2", "e");
        event_item["dynamodb"]["NewImage"]["entity"] = json!({ "S": "event" });
        let mut remove = outbox_record("3", "r");
        remove["eventName"] = json!("REMOVE");

        let response = relay(&publisher, batch(vec![modify, event_item, remove]))
            .await
            .unwrap();

        assert!(response.batch_item_failures.is_empty());
        assert!(publisher.published().is_empty());
    }

    #[tokio::test]
    async fn a_rejected_entry_fails_the_invocation_so_the_batch_is_retried() {
        let publisher = RecordingPublisher {
            reject_marker: Some("POISON".into()),
            ..Default::default()
        };
        let records = vec![
            outbox_record("10", "ok"),
            outbox_record("11", "POISON"),
            outbox_record("12", "ok"),
        ];

        let outcome = relay(&publisher, batch(records)).await;

        assert!(outcome.is_err(), "the whole batch is retried");
    }

    #[tokio::test]
    async fn a_failed_call_fails_the_invocation_and_batches_stay_within_ten() {
        let ok = RecordingPublisher::default();
        let records: Vec<_> = (0..23)
            .map(|i| outbox_record(&format!("{i:03}"), "x"))
            .collect();

        relay(&ok, batch(records.clone())).await.unwrap();
        let down = RecordingPublisher {
            fail_calls: true,
            ..Default::default()
        };
        let outcome = relay(&down, batch(records)).await;

        let sizes: Vec<usize> = ok.calls.lock().unwrap().iter().map(Vec::len).collect();
        assert_eq!(sizes, [10, 10, 3]);
        assert!(outcome.is_err());
    }

    #[tokio::test]
    async fn an_unreadable_outbox_item_is_failed_not_dropped() {
        let publisher = RecordingPublisher::default();
        let mut broken = outbox_record("7", "x");
        broken["dynamodb"]["NewImage"]
            .as_object_mut()
            .unwrap()
            .remove("envelope");

        let response = relay(&publisher, batch(vec![broken])).await.unwrap();

        assert_eq!(failures(&response), ["7"]);
    }
}
