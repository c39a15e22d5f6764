//! One welcome mail per `UserCreated` envelope, exactly once under redelivery.
//!
//! The idempotency record is keyed by this consumer and the envelope id. It is claimed before
//! sending, for as long as this invocation may run; completed after a successful send (or a
//! permanent rejection); released after a retryable failure so the retry can go ahead.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use evently_shared::consumer::{self, Message, MessageError};
use evently_shared::domain::Timestamp;
use evently_shared::envelope::DomainEvent;
use evently_shared::ports::{Begun, Claim, Idempotency, MailError, Mailer};
use lambda_runtime::Error;

use crate::mail;

/// The idempotency scope: one record per (this consumer, envelope id).
pub const SCOPE: &str = "welcome-email";
/// How long a sent mail is remembered: longer than SQS keeps any message (14 days at most).
const REMEMBER_SECONDS: i64 = 15 * 24 * 60 * 60;

pub struct Welcome<M, I> {
    pub mailer: M,
    pub idempotency: I,
}

impl<M: Mailer, I: Idempotency> Welcome<M, I> {
    pub async fn handle_batch(
        &self,
        event: SqsEvent,
        lease_until: Timestamp,
    ) -> Result<SqsBatchResponse, Error> {
        consumer::process_batch(event, |message| self.welcome(message, lease_until)).await
    }

    async fn welcome(&self, message: Message, lease_until: Timestamp) -> Result<(), MessageError> {
        let envelope = message.envelope()?;
        let event = envelope
            .domain_event()
            .map_err(|e| MessageError::Permanent(e.to_string()))?;
        let DomainEvent::UserCreated(user) = event else {
            tracing::info!(event_type = %envelope.event_type, "not a signup; envelope skipped");
            return Ok(());
        };
        let retry = |e: evently_shared::ports::StoreError| MessageError::Retryable(e.to_string());

        let claim = Claim::new(SCOPE, &envelope.id);
        let now = Timestamp::now();
        match self
            .idempotency
            .begin(claim, now, lease_until)
            .await
            .map_err(retry)?
        {
            Begun::AlreadyDone(_) => {
                tracing::info!(user_id = %user.id, "welcome mail already sent; envelope skipped");
                return Ok(());
            }
            Begun::InProgressElsewhere => {
                return Err(MessageError::Retryable(
                    "another invocation is sending this mail".into(),
                ));
            }
            Begun::Started => {}
        }

        let done_until = now.plus_seconds(REMEMBER_SECONDS);
        match self.mailer.send(&mail::welcome(&user)).await {
            Ok(message_id) => {
                tracing::info!(user_id = %user.id, %message_id, "welcome mail sent");
                evently_shared::metrics::count(
                    evently_shared::metrics::name::MAILS_SENT,
                    Some(envelope.correlationid.as_str()),
                );
                // The mail is out: from here on, a failure must not lead to a second one.
                if let Err(error) = self.idempotency.complete(claim, None, done_until).await {
                    tracing::error!(%error, "mail sent but not recorded; the in-progress claim blocks a resend until it lapses");
                }
                Ok(())
            }
            Err(MailError::Rejected(reason)) => {
                // Logged and counted, never retried: the address will not accept mail.
                tracing::warn!(user_id = %user.id, %reason, rejected_recipients = 1, "welcome mail rejected");
                self.idempotency
                    .complete(claim, None, done_until)
                    .await
                    .map_err(retry)?;
                Ok(())
            }
            Err(error @ (MailError::Throttled(_) | MailError::Unavailable(_))) => {
                self.idempotency.release(claim).await.map_err(retry)?;
                Err(MessageError::Retryable(error.to_string()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use evently_shared::domain::{DisplayName, Email, User};
    use evently_shared::envelope::CorrelationId;
    use evently_shared::fakes::{InMemoryIdempotency, RecordingMailer};
    use evently_shared::ports::MailError;
    use serde_json::{Value, json};

    use evently_shared::envelope::Envelope;

    use super::*;

    fn app() -> Welcome<RecordingMailer, InMemoryIdempotency> {
        Welcome {
            mailer: RecordingMailer::default(),
            idempotency: InMemoryIdempotency::default(),
        }
    }

    fn envelope() -> Envelope {
        let user = User::create(
            Email::parse("email", "ada@example.com").unwrap(),
            DisplayName::parse("display_name", "Ada").unwrap(),
            Timestamp::now(),
        );
        DomainEvent::UserCreated(user).into_envelope(
            "/evently/auth-api",
            CorrelationId::generate(),
            Timestamp::now(),
        )
    }

    fn batch(envelopes: &[&Envelope]) -> SqsEvent {
        let records: Vec<Value> = envelopes
            .iter()
            .enumerate()
            .map(|(i, e)| json!({ "messageId": format!("m{i}"), "body": e.to_json() }))
            .collect();
        serde_json::from_value(json!({ "Records": records })).unwrap()
    }

    fn lease() -> Timestamp {
        Timestamp::now().plus_seconds(30)
    }

    #[tokio::test]
    async fn a_signup_gets_one_welcome_mail_even_when_delivered_three_times() {
        let app = app();
        let signup = envelope();

        for _ in 0..3 {
            let response = app.handle_batch(batch(&[&signup]), lease()).await.unwrap();
            assert!(response.batch_item_failures.is_empty());
        }
        let response = app
            .handle_batch(batch(&[&signup, &signup]), lease())
            .await
            .unwrap();

        assert!(response.batch_item_failures.is_empty());
        assert_eq!(app.mailer.sent().len(), 1);
        assert_eq!(app.mailer.sent()[0].to, "ada@example.com");
    }

    #[tokio::test]
    async fn throttling_is_retried_and_the_retry_sends_the_mail() {
        let app = app();
        let signup = envelope();
        *app.mailer.fail_with.lock().unwrap() = Some(MailError::Throttled);

        let first = app.handle_batch(batch(&[&signup]), lease()).await.unwrap();
        *app.mailer.fail_with.lock().unwrap() = None;
        let second = app.handle_batch(batch(&[&signup]), lease()).await.unwrap();

        assert_eq!(first.batch_item_failures.len(), 1);
        assert!(second.batch_item_failures.is_empty());
        assert_eq!(app.mailer.sent().len(), 1);
    }

    #[tokio::test]
    async fn a_rejected_recipient_is_not_retried() {
        let app = app();
        let signup = envelope();
        *app.mailer.fail_with.lock().unwrap() = Some(MailError::Rejected);

        let first = app.handle_batch(batch(&[&signup]), lease()).await.unwrap();
        *app.mailer.fail_with.lock().unwrap() = None;
        let redelivered = app.handle_batch(batch(&[&signup]), lease()).await.unwrap();

        assert!(first.batch_item_failures.is_empty());
        assert!(redelivered.batch_item_failures.is_empty());
        assert!(
            app.mailer.sent().is_empty(),
            "no mail after a permanent rejection"
        );
    }

    #[tokio::test]
    async fn a_claim_held_by_a_crashed_invocation_is_retried_after_its_lease() {
        let app = app();
        let signup = envelope();
        let now = Timestamp::now();
        // A previous invocation claimed the work and died before finishing.
        app.idempotency
            .begin(Claim::new(SCOPE, &signup.id), now, now.plus_seconds(2))
            .await
            .unwrap();

        let during = app.handle_batch(batch(&[&signup]), lease()).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
        let after = app.handle_batch(batch(&[&signup]), lease()).await.unwrap();

        assert_eq!(
            during.batch_item_failures.len(),
            1,
            "held elsewhere: retry later"
        );
        assert!(after.batch_item_failures.is_empty());
        assert_eq!(app.mailer.sent().len(), 1);
    }

    #[tokio::test]
    async fn a_malformed_message_is_a_permanent_failure() {
        let app = app();
        let event: SqsEvent = serde_json::from_value(
            json!({ "Records": [{ "messageId": "bad", "body": "{\"not\": \"an envelope\"}" }] }),
        )
        .unwrap();

        let response = app.handle_batch(event, lease()).await.unwrap();

        assert_eq!(response.batch_item_failures[0].item_identifier, "bad");
        assert!(app.mailer.sent().is_empty());
    }

    #[tokio::test]
    async fn the_fixture_message_gets_its_welcome_mail() {
        let app = app();
        let event: SqsEvent = serde_json::from_str(include_str!(
            "../../../events-fixtures/sqs-user-created.json"
        ))
        .unwrap();

        let response = app.handle_batch(event, lease()).await.unwrap();

        assert!(response.batch_item_failures.is_empty());
        assert_eq!(
            app.mailer.sent()[0].subject,
            "Welcome to Evently, Ada Lovelace"
        );
    }
}
