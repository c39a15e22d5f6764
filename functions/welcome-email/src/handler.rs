//! One welcome mail per `UserCreated` envelope, exactly once under redelivery.
//!
//! The idempotency record is keyed by this consumer and the envelope id. A batch's records are
//! claimed together before sending, for as long as this invocation may run; the batch's mails
//! go out in one bulk send; the records of the mails sent (or permanently rejected) are
//! completed together, and the claims of mails that may be retried are released so the retry
//! can go ahead.

use aws_lambda_events::event::sqs::SqsBatchResponse;
use evently_shared::consumer::{self, Handled, MessageError, SqsBatch};
use evently_shared::domain::{Timestamp, UserId};
use evently_shared::envelope::{DomainEvent, Envelope};
use evently_shared::ports::{Addressed, Begun, BulkMailer, Claim, Idempotency, MailError};
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

/// A signup to welcome.
pub struct Signup {
    user_id: UserId,
    correlation_id: String,
    to: Addressed,
}

fn signup_of(envelope: &Envelope) -> Result<Option<Signup>, MessageError> {
    match envelope
        .domain_event()
        .map_err(|e| MessageError::Permanent(e.to_string()))?
    {
        DomainEvent::UserCreated(user) => Ok(Some(Signup {
            to: mail::addressed(&user),
            user_id: user.id,
            correlation_id: envelope.correlationid.to_string(),
        })),
        _ => Ok(None),
    }
}

impl<M: BulkMailer, I: Idempotency> Welcome<M, I> {
    pub async fn handle_batch(
        &self,
        event: SqsBatch,
        lease_until: Timestamp,
    ) -> Result<SqsBatchResponse, Error> {
        consumer::process_together(event, signup_of, |signups| {
            self.welcome(signups, lease_until)
        })
        .await
    }

    async fn welcome(
        &self,
        signups: Vec<(String, Signup)>,
        lease_until: Timestamp,
    ) -> Vec<Result<Handled, MessageError>> {
        let keys: Vec<&str> = signups.iter().map(|(key, _)| key.as_str()).collect();
        let now = Timestamp::now();
        let mut results: Vec<Option<Result<Handled, MessageError>>> = vec![None; keys.len()];
        let mut claimed = Vec::new();
        let begun = self
            .idempotency
            .begin_each(SCOPE, &keys, now, lease_until)
            .await;
        for (i, begun) in begun.into_iter().enumerate() {
            results[i] = match begun {
                Ok(Begun::Started) => {
                    claimed.push(i);
                    None
                }
                Ok(Begun::AlreadyDone(_)) => {
                    Some(Ok("welcome mail already sent; envelope skipped".into()))
                }
                Ok(Begun::InProgressElsewhere) => Some(Err(MessageError::Retryable(
                    "another invocation is sending this mail".into(),
                ))),
                Err(error) => Some(Err(MessageError::Retryable(error.to_string()))),
            };
        }

        let recipients: Vec<Addressed> = claimed.iter().map(|&i| signups[i].1.to.clone()).collect();
        let sent = if recipients.is_empty() {
            Vec::new()
        } else {
            self.mailer.send_each(mail::template(), &recipients).await
        };
        let mut done = Vec::new();
        let mut mailed = 0;
        for (&i, sent) in claimed.iter().zip(sent) {
            let signup = &signups[i].1;
            results[i] = Some(match sent {
                Ok(mail_id) => {
                    mailed += 1;
                    done.push(keys[i]);
                    Ok(Handled {
                        result: "welcome mail sent",
                        mail_id: Some(mail_id),
                    })
                }
                Err(MailError::Rejected(reason)) => {
                    // Logged and counted, never retried: the address will not accept mail.
                    tracing::warn!(
                        correlation_id = %signup.correlation_id,
                        user_id = %signup.user_id,
                        %reason,
                        rejected_recipients = 1,
                        "welcome mail rejected"
                    );
                    done.push(keys[i]);
                    Ok("welcome mail rejected; not retried".into())
                }
                Err(error @ (MailError::Throttled(_) | MailError::Unavailable(_))) => {
                    if let Err(release) = self.idempotency.release(Claim::new(SCOPE, keys[i])).await
                    {
                        tracing::warn!(
                            correlation_id = %signup.correlation_id,
                            error = %release,
                            "claim not released; it lapses with its lease"
                        );
                    }
                    Err(MessageError::Retryable(error.to_string()))
                }
            });
        }
        evently_shared::metrics::mails_sent(mailed);

        if !done.is_empty() {
            let done_until = now.plus_seconds(REMEMBER_SECONDS);
            if let Err(error) = self
                .idempotency
                .complete_each(SCOPE, &done, done_until)
                .await
            {
                // The mails are out: from here on, a failure must not lead to second ones.
                for (key, signup) in &signups {
                    if done.contains(&key.as_str()) {
                        tracing::error!(
                            correlation_id = %signup.correlation_id,
                            %error,
                            "mail sent but not recorded; the in-progress claim blocks a resend until it lapses"
                        );
                    }
                }
            }
        }
        results
            .into_iter()
            .map(|result| {
                result.unwrap_or_else(|| {
                    Err(MessageError::Retryable(
                        "the mail service answered for fewer mails than were sent".into(),
                    ))
                })
            })
            .collect()
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

    fn batch(envelopes: &[&Envelope]) -> SqsBatch {
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

    fn signup_of(name: &str) -> Envelope {
        let user = User::create(
            Email::parse("email", &format!("{name}@example.com")).unwrap(),
            DisplayName::parse("display_name", name).unwrap(),
            Timestamp::now(),
        );
        DomainEvent::UserCreated(user).into_envelope(
            "/evently/auth-api",
            CorrelationId::generate(),
            Timestamp::now(),
        )
    }

    #[tokio::test]
    async fn a_batch_of_signups_is_welcomed_in_one_bulk_send() {
        let app = app();
        let (ada, bob, cy) = (signup_of("ada"), signup_of("bob"), signup_of("cy"));

        let response = app
            .handle_batch(batch(&[&ada, &bob, &cy]), lease())
            .await
            .unwrap();

        assert!(response.batch_item_failures.is_empty());
        let to: Vec<String> = app.mailer.sent().into_iter().map(|m| m.to).collect();
        assert_eq!(to, ["ada@example.com", "bob@example.com", "cy@example.com"]);
        assert_eq!(
            app.mailer
                .bulk_sends
                .load(std::sync::atomic::Ordering::SeqCst),
            1
        );
    }

    #[tokio::test]
    async fn a_mail_throttled_in_a_batch_fails_alone_and_its_retry_sends_it() {
        let app = app();
        let (ada, bob, cy) = (signup_of("ada"), signup_of("bob"), signup_of("cy"));
        *app.mailer.fail_after.lock().unwrap() = Some(2);

        let first = app
            .handle_batch(batch(&[&ada, &bob, &cy]), lease())
            .await
            .unwrap();
        *app.mailer.fail_after.lock().unwrap() = None;
        let redelivered = app
            .handle_batch(batch(&[&ada, &bob, &cy]), lease())
            .await
            .unwrap();

        let failed: Vec<&str> = first
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, ["m2"]);
        assert!(redelivered.batch_item_failures.is_empty());
        let to: Vec<String> = app.mailer.sent().into_iter().map(|m| m.to).collect();
        assert_eq!(to, ["ada@example.com", "bob@example.com", "cy@example.com"]);
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
        let event: SqsBatch = serde_json::from_value(
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
        let event: SqsBatch = serde_json::from_str(include_str!(
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
