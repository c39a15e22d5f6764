//! Counts each envelope once, through the shared SQS batch kit: a batch's counts move together,
//! in one transaction with the idempotency kit's record of each envelope, and envelopes that
//! add to one counter add in one update.

use aws_lambda_events::event::sqs::SqsBatchResponse;
use evently_shared::app::analytics::count_of;
use evently_shared::consumer::{self, MessageError, SqsBatch};
use evently_shared::envelope::Envelope;
use evently_shared::ports::{Count, CountOnce};
use lambda_runtime::Error;

/// The idempotency scope of this consumer.
pub const SCOPE: &str = "analytics";

pub async fn handle_batch(
    counters: &impl CountOnce,
    event: SqsBatch,
) -> Result<SqsBatchResponse, Error> {
    consumer::process_together(event, prepare, |counts| count(counters, counts)).await
}

fn prepare(envelope: &Envelope) -> Result<Option<Count>, MessageError> {
    count_of(envelope).map_err(|e| MessageError::Permanent(e.to_string()))
}

async fn count(
    counters: &impl CountOnce,
    counts: Vec<(String, Count)>,
) -> Vec<Result<consumer::Handled, MessageError>> {
    let batch: Vec<(&str, &Count)> = counts.iter().map(|(k, c)| (k.as_str(), c)).collect();
    counters
        .record_once(SCOPE, &batch)
        .await
        .into_iter()
        .map(|settled| consumer::outcome_of(settled, |()| "counted"))
        .collect()
}

#[cfg(test)]
mod tests {
    use evently_shared::domain::{EventId, Timestamp, UserId};
    use evently_shared::envelope::{CorrelationId, DomainEvent, Rsvp};
    use evently_shared::fakes::InMemoryAnalytics;
    use serde_json::json;

    use evently_shared::ports::Analytics;

    use super::*;

    async fn deliver(target: &impl CountOnce, event: SqsBatch) -> SqsBatchResponse {
        handle_batch(target, event).await.unwrap()
    }

    fn batch(envelopes: &[&Envelope]) -> SqsBatch {
        let records: Vec<_> = envelopes
            .iter()
            .enumerate()
            .map(|(i, e)| json!({ "messageId": format!("m{i}"), "body": e.to_json() }))
            .collect();
        serde_json::from_value(json!({ "Records": records })).unwrap()
    }

    fn rsvp(event: EventId, user: &str, created: bool) -> Envelope {
        let rsvp = Rsvp {
            event_id: event,
            user_id: UserId::parse("sub", user).unwrap(),
            at: Timestamp::now(),
        };
        let event = if created {
            DomainEvent::RsvpCreated(rsvp)
        } else {
            DomainEvent::RsvpCancelled(rsvp)
        };
        event.into_envelope("/t", CorrelationId::generate(), Timestamp::now())
    }

    #[tokio::test]
    async fn counts_stay_exact_when_every_message_arrives_three_times() {
        let analytics = InMemoryAnalytics::default();
        let event = EventId::generate();
        let (a, b, c) = (
            rsvp(event, "a", true),
            rsvp(event, "b", true),
            rsvp(event, "a", false),
        );

        for _ in 0..3 {
            let response = deliver(&analytics, batch(&[&a, &b, &c])).await;
            assert!(response.batch_item_failures.is_empty());
        }

        let stats = analytics.event_stats(&event).await.unwrap();
        assert_eq!(
            (stats.going, stats.rsvps_created, stats.rsvps_cancelled),
            (1, 2, 1)
        );
    }

    #[tokio::test]
    async fn events_and_signups_are_counted_per_day() {
        let analytics = InMemoryAnalytics::default();
        let fixture: SqsBatch = serde_json::from_str(include_str!(
            "../../../events-fixtures/sqs-user-created.json"
        ))
        .unwrap();
        let created: SqsBatch = serde_json::from_str(include_str!(
            "../../../events-fixtures/sqs-event-created.json"
        ))
        .unwrap();

        deliver(&analytics, fixture.clone()).await;
        deliver(&analytics, fixture).await;
        deliver(&analytics, created).await;

        let days = analytics.daily("2026-11-28", "2026-11-28").await.unwrap();
        assert_eq!(days.len(), 1);
        assert_eq!((days[0].signups, days[0].events_created), (1, 1));
    }

    #[tokio::test]
    async fn a_malformed_message_is_a_permanent_failure() {
        let analytics = InMemoryAnalytics::default();
        let event: SqsBatch = serde_json::from_value(
            json!({ "Records": [{ "messageId": "bad", "body": "not json" }] }),
        )
        .unwrap();

        let response = deliver(&analytics, event).await;

        assert_eq!(response.batch_item_failures.len(), 1);
    }
}
