//! The SQS batch kit every queue consumer runs its per-message logic in.
//!
//! Each message gets its own tracing span (message id, correlation id, receive count) and its
//! own panic boundary. Only failed message ids are returned, so Lambda deletes the rest:
//! the event source mapping must have `ReportBatchItemFailures` on.

use std::cell::RefCell;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::FutureExt;
use tracing::{Instrument, field};

/// Faults the local fault-injection suite asks for, compiled only with the `fault-injection`
/// feature (local builds; never the release builds that are deployed to AWS).
#[cfg(feature = "fault-injection")]
pub mod fault {
    /// A message whose body holds this panics in the kit on its first receive, and is handled
    /// normally when it comes back.
    pub const PANIC_ON_FIRST_RECEIVE: &str = "evently-fault:panic-on-first-receive";

    pub(super) fn panic_if_marked(message: &super::Message) {
        if message.receive_count <= 1 && message.body.contains(PANIC_ON_FIRST_RECEIVE) {
            panic!("fault injection: panic on the first receive of this message");
        }
    }
}

/// Why a message could not be handled. This is the one place that decides what a retry can fix.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    /// A dependency failed (throttling, timeouts, 5xx): retrying later may succeed.
    #[error("retryable: {0}")]
    Retryable(String),
    /// The message itself is wrong (malformed, unknown type): retries cannot help. It is still
    /// reported as failed, so it reaches the dead-letter queue after `maxReceiveCount` receives
    /// instead of vanishing; it is never retried forever.
    #[error("permanent: {0}")]
    Permanent(String),
}

/// One message, with what the kit already read off it.
#[derive(Debug, Clone)]
pub struct Message {
    pub message_id: String,
    pub body: String,
    pub correlation_id: Option<String>,
    pub receive_count: u32,
}

impl Message {
    /// The envelope this message carries (a permanent failure if it carries none), with its
    /// correlation id recorded on the message's span when the message attributes had none, and
    /// its type, subject and entity version put on the message's "message handled" line.
    pub fn envelope(&self) -> Result<crate::envelope::Envelope, MessageError> {
        let envelope = crate::envelope::Envelope::from_json(&self.body)
            .map_err(|e| MessageError::Permanent(e.to_string()))?;
        if self.correlation_id.is_none() {
            tracing::Span::current().record("correlation_id", envelope.correlationid.as_str());
        }
        let _ = SAID.try_with(|said| {
            let mut said = said.borrow_mut();
            said.event_type = Some(envelope.event_type.clone());
            said.subject = Some(envelope.subject.clone());
            said.entity_version = Some(envelope.entityversion);
        });
        Ok(envelope)
    }

    fn from_sqs(message: SqsMessage) -> Option<Self> {
        let correlation_id = message
            .message_attributes
            .get("correlationid")
            .and_then(|a| a.string_value.clone());
        let receive_count = message
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        Some(Self {
            message_id: message.message_id?,
            body: message.body.unwrap_or_default(),
            correlation_id,
            receive_count,
        })
    }
}

/// How long a consumer remembers that it handled an envelope: longer than SQS keeps any
/// message (14 days at most), so no redelivery outlives the record.
pub const REMEMBER_SECONDS: i64 = 15 * 24 * 60 * 60;

/// The idempotency kit as a consumer uses it: each envelope's effect at most once per
/// `scope`, with claims that lapse at `lease` (the invocation's deadline).
pub struct Once<'a, I: ?Sized> {
    pub store: &'a I,
    pub scope: &'a str,
    pub lease: crate::domain::Timestamp,
}

impl<'a, I: crate::ports::Idempotency + ?Sized> Once<'a, I> {
    /// Claims held by the invocation whose deadline is `deadline_ms` (ms since the epoch).
    pub fn for_invocation(store: &'a I, scope: &'a str, deadline_ms: u64) -> Self {
        Self {
            store,
            scope,
            lease: crate::idempotency::lease_until(Some(deadline_ms)),
        }
    }

    /// Runs `work` unless `key` was done already. A failure releases the claim, so the retry
    /// can go ahead at once; another invocation holding the claim is a retryable failure.
    pub async fn run<F, Fut>(&self, key: &str, work: F) -> Result<(), MessageError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(), MessageError>>,
    {
        use crate::ports::{Begun, Claim};
        let claim = Claim::new(self.scope, key);
        let now = crate::domain::Timestamp::now();
        let retry = |e: crate::ports::StoreError| MessageError::Retryable(e.to_string());
        match self
            .store
            .begin(claim, now, self.lease)
            .await
            .map_err(retry)?
        {
            Begun::AlreadyDone(_) => {
                tracing::info!(key, "already handled; envelope skipped");
                return Ok(());
            }
            Begun::InProgressElsewhere => {
                return Err(MessageError::Retryable(
                    "another invocation is handling this envelope".into(),
                ));
            }
            Begun::Started => {}
        }
        match work().await {
            Ok(()) => {
                if let Err(error) = self
                    .store
                    .complete(claim, None, now.plus_seconds(REMEMBER_SECONDS))
                    .await
                {
                    // The effect is in place; a redelivery after the lease repeats work that
                    // is itself idempotent, so this is logged, not failed.
                    tracing::warn!(%error, "handled but not recorded");
                }
                Ok(())
            }
            Err(error) => {
                if let Err(release) = self.store.release(claim).await {
                    tracing::warn!(error = %release, "claim not released; it lapses with its lease");
                }
                Err(error)
            }
        }
    }
}

/// [`process_batch`] for consumers of envelopes: each message's envelope goes to `handle` at
/// most once per `once.scope`, keyed by the envelope id (redeliveries of one envelope share it,
/// whatever their SQS message ids).
pub async fn process_envelopes<I, F, Fut>(
    event: SqsEvent,
    once: &Once<'_, I>,
    handle: F,
) -> Result<SqsBatchResponse, lambda_runtime::Error>
where
    I: crate::ports::Idempotency + ?Sized,
    F: Fn(crate::envelope::Envelope) -> Fut,
    Fut: Future<Output = Result<(), MessageError>>,
{
    let handle = &handle;
    process_batch(event, |message| async move {
        let envelope = message.envelope()?;
        let key = envelope.id.clone();
        once.run(&key, || handle(envelope)).await
    })
    .await
}

/// Says what the handler did with the current message ("projection updated"). It is shown on
/// the message's "message handled" line rather than on a line of its own: CloudWatch Logs bills
/// ingestion by the byte, and at `info` logs cost more than the compute (BENCHMARKS.md, "Cost
/// model" and "Logging's share").
pub fn note(result: &'static str) {
    let _ = SAID.try_with(|said| said.borrow_mut().result = Some(result));
}

/// What a message's "message handled" line says beyond its outcome: the envelope it carried
/// ([`Message::envelope`]) and what the handler did ([`note`]). Kept beside the message's
/// future rather than recorded on its span, where every late field would re-serialise the
/// span's fields.
#[derive(Debug, Default)]
struct Said {
    event_type: Option<String>,
    subject: Option<String>,
    entity_version: Option<u64>,
    result: Option<&'static str>,
}

tokio::task_local! {
    static SAID: RefCell<Said>;
}

/// The outcome of one message, for the caller's logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    Retryable,
    Permanent,
    Panicked,
}

/// Runs `handle` on every message of the batch concurrently and reports only the failures.
///
/// A message without an id cannot be reported individually, so it fails the whole batch
/// (Lambda then retries every message, which idempotent handlers absorb).
pub async fn process_batch<F, Fut>(
    event: SqsEvent,
    handle: F,
) -> Result<SqsBatchResponse, lambda_runtime::Error>
where
    F: Fn(Message) -> Fut,
    Fut: Future<Output = Result<(), MessageError>>,
{
    let started = std::time::Instant::now();
    let total = event.records.len();
    let mut messages = Vec::with_capacity(total);
    for record in event.records {
        match Message::from_sqs(record) {
            Some(message) => messages.push(message),
            None => return Err("an SQS record has no messageId; failing the whole batch".into()),
        }
    }

    let runs = messages.into_iter().map(|message| {
        let span = tracing::info_span!(
            "message",
            message_id = %message.message_id,
            correlation_id = field::Empty,
            receive_count = message.receive_count,
        );
        if let Some(id) = &message.correlation_id {
            span.record("correlation_id", id.as_str());
        }
        let id = message.message_id.clone();
        let run = SAID.scope(
            RefCell::default(),
            AssertUnwindSafe(async {
                #[cfg(feature = "fault-injection")]
                fault::panic_if_marked(&message);
                let handled = handle(message).await;
                (handled, SAID.with(RefCell::take))
            })
            .catch_unwind(),
        );
        async move {
            let outcome = match run.await {
                Ok((Ok(()), said)) => {
                    tracing::info!(
                        outcome = "done",
                        event_type = said.event_type,
                        subject = said.subject,
                        entity_version = said.entity_version,
                        result = said.result,
                        "message handled"
                    );
                    Outcome::Done
                }
                Ok((Err(MessageError::Retryable(reason)), _)) => {
                    tracing::warn!(%reason, "message failed; it will be retried");
                    Outcome::Retryable
                }
                Ok((Err(MessageError::Permanent(reason)), _)) => {
                    tracing::error!(
                        %reason,
                        classification = "permanent",
                        "message cannot be processed; it goes to the dead-letter queue after the last receive"
                    );
                    Outcome::Permanent
                }
                Err(panic) => {
                    let reason = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown panic payload".to_owned());
                    tracing::error!(%reason, "message handler panicked; counted as a failure");
                    Outcome::Panicked
                }
            };
            (id, outcome)
        }
        .instrument(span)
    });
    let results = futures::future::join_all(runs).await;

    let mut response = SqsBatchResponse::default();
    for (id, outcome) in &results {
        if *outcome != Outcome::Done {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id.clone();
            response.batch_item_failures.push(failure);
        }
    }
    let failed = response.batch_item_failures.len();
    crate::metrics::batch(total - failed, failed, started);
    // A clean batch's counts are in the metric line above; a line of its own only when some
    // messages failed.
    if failed > 0 {
        tracing::info!(messages = total, failed, "batch processed");
    } else {
        tracing::debug!(messages = total, failed, "batch processed");
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(bodies: &[&str]) -> SqsEvent {
        let mut event = SqsEvent::default();
        for (i, body) in bodies.iter().enumerate() {
            let mut message = SqsMessage::default();
            message.message_id = Some(format!("m{i}"));
            message.body = Some((*body).to_owned());
            event.records.push(message);
        }
        event
    }

    fn failed_ids(response: &SqsBatchResponse) -> Vec<&str> {
        let mut ids: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        ids.sort();
        ids
    }

    /// Log lines written in the functions' format while the returned guard lives (this
    /// thread only: the tests run on a current-thread runtime).
    #[derive(Clone, Default)]
    struct Lines(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Lines {
        fn capture(level: &str) -> (Self, tracing::subscriber::DefaultGuard) {
            let lines = Self::default();
            let writer = lines.clone();
            let subscriber = crate::telemetry::json_lines(level, move || writer.clone());
            (lines, tracing::subscriber::set_default(subscriber))
        }

        fn json(&self) -> Vec<serde_json::Value> {
            String::from_utf8(self.0.lock().unwrap().clone())
                .unwrap()
                .lines()
                .map(|line| serde_json::from_str(line).expect("a JSON line"))
                .collect()
        }
    }

    #[tokio::test]
    async fn a_handled_envelope_costs_one_info_line_that_says_what_was_done_to_what() {
        let envelope = include_str!("../../../events-fixtures/envelope-event-created.json");
        let once = crate::fakes::fresh_once("log-test");
        let (lines, _guard) = Lines::capture("info");

        let response = process_envelopes(event(&[envelope]), &once, |_| async {
            note("projection updated");
            Ok(())
        })
        .await
        .unwrap();

        assert!(response.batch_item_failures.is_empty());
        let lines = lines.json();
        let messages: Vec<&str> = lines.iter().filter_map(|l| l["message"].as_str()).collect();
        assert_eq!(messages, ["message handled"], "{lines:#?}");
        let line = &lines[0];
        assert_eq!(
            [
                &line["event_type"],
                &line["subject"],
                &line["entity_version"],
                &line["result"],
                &line["spans"][0]["correlation_id"],
            ],
            [
                &serde_json::json!("evently.event.created.v1"),
                &serde_json::json!("01JDX5Q7ZK3M4N5P6Q7R8S9T0V"),
                &serde_json::json!(1),
                &serde_json::json!("projection updated"),
                &serde_json::json!("fixture-correlation-1"),
            ]
        );
    }

    #[tokio::test]
    async fn a_batch_with_a_failure_still_says_so_on_a_line_of_its_own() {
        let (lines, _guard) = Lines::capture("info");

        process_batch(event(&["ok", "retry"]), |m| async move {
            match m.body.as_str() {
                "retry" => Err(MessageError::Retryable("throttled".into())),
                _ => Ok(()),
            }
        })
        .await
        .unwrap();

        let lines = lines.json();
        let batch = lines
            .iter()
            .find(|l| l["message"] == "batch processed")
            .unwrap_or_else(|| panic!("no batch line in {lines:#?}"));
        assert_eq!(
            (batch["messages"].as_u64(), batch["failed"].as_u64()),
            (Some(2), Some(1))
        );
    }

    #[tokio::test]
    async fn only_failed_messages_are_reported() {
        let response = process_batch(event(&["ok", "retry", "ok", "bad"]), |m| async move {
            match m.body.as_str() {
                "retry" => Err(MessageError::Retryable("throttled".into())),
                "bad" => Err(MessageError::Permanent("malformed".into())),
                _ => Ok(()),
            }
        })
        .await
        .unwrap();
        assert_eq!(failed_ids(&response), ["m1", "m3"]);
    }

    #[tokio::test]
    async fn a_panic_counts_as_a_failure_never_as_success() {
        let response = process_batch(event(&["ok", "boom"]), |m| async move {
            if m.body == "boom" {
                panic!("handler bug");
            }
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(failed_ids(&response), ["m1"]);
    }

    #[tokio::test]
    async fn once_runs_work_once_per_key_and_again_after_a_failure() {
        use crate::fakes::InMemoryIdempotency;
        let store = InMemoryIdempotency::default();
        let once = Once {
            store: &store,
            scope: "test",
            lease: crate::domain::Timestamp::now().plus_seconds(30),
        };
        let runs = std::sync::atomic::AtomicUsize::new(0);
        let work = |fail: bool| {
            let runs = &runs;
            move || async move {
                runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if fail {
                    Err(MessageError::Retryable("down".into()))
                } else {
                    Ok(())
                }
            }
        };

        let failed = once.run("k", work(true)).await;
        let first = once.run("k", work(false)).await;
        let repeat = once.run("k", work(false)).await;
        let other = once.run("other", work(false)).await;

        assert!(failed.is_err());
        assert!(first.is_ok() && repeat.is_ok() && other.is_ok());
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_message_without_an_id_fails_the_whole_batch() {
        let mut batch = event(&["ok"]);
        batch.records[0].message_id = None;
        assert!(process_batch(batch, |_| async { Ok(()) }).await.is_err());
    }

    #[cfg(feature = "fault-injection")]
    #[tokio::test]
    async fn a_marked_message_panics_on_its_first_receive_and_passes_on_the_next() {
        let marked = format!("{{\"x\": \"{}\"}}", fault::PANIC_ON_FIRST_RECEIVE);
        let mut first = event(&["ok", &marked]);
        let mut again = event(&[&marked]);
        first.records[1]
            .attributes
            .insert("ApproximateReceiveCount".into(), "1".into());
        again.records[0]
            .attributes
            .insert("ApproximateReceiveCount".into(), "2".into());

        let on_first = process_batch(first, |_| async { Ok(()) }).await.unwrap();
        let on_second = process_batch(again, |_| async { Ok(()) }).await.unwrap();

        assert_eq!(failed_ids(&on_first), ["m1"]);
        assert!(on_second.batch_item_failures.is_empty());
    }
}
