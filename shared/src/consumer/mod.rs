//! The SQS batch kit every queue consumer runs its per-message logic in.
//!
//! Each message gets its own tracing span (message id, correlation id, receive count) and its
//! own panic boundary. Only failed message ids are returned, so Lambda deletes the rest:
//! the event source mapping must have `ReportBatchItemFailures` on.

use std::cell::RefCell;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse};
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
#[derive(Debug, Clone, thiserror::Error)]
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

/// An SQS event as Lambda hands it to a consumer, holding only what the kit reads of each
/// record: its id, body, receive count and `correlationid` attribute. The rest of a record
/// (receipt handle, digests, queue ARN, sender, timestamps) is passed over without being
/// allocated; read whole, as `aws_lambda_events`' `SqsEvent`, those fields and their maps were a
/// tenth of a batched consumer's CPU (BENCHMARKS.md, "The consumer kit, leaner"). The shape is
/// Lambda's: `events-fixtures/sqs-*.json` parse as both (`shared/tests/fixtures.rs`).
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct SqsBatch {
    #[serde(rename = "Records")]
    pub records: Vec<SqsRecord>,
}

/// One record of an [`SqsBatch`].
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SqsRecord {
    pub message_id: Option<String>,
    pub body: Option<String>,
    /// This map and the next are `null` in the events some test tools make.
    #[serde(default)]
    attributes: Option<RecordAttributes>,
    #[serde(default)]
    message_attributes: Option<MessageAttributes>,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
struct RecordAttributes {
    #[serde(rename = "ApproximateReceiveCount")]
    approximate_receive_count: Option<String>,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
struct MessageAttributes {
    correlationid: Option<StringAttribute>,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct StringAttribute {
    string_value: Option<String>,
}

impl SqsRecord {
    /// A record with just an id and a body, as a test or a tool would make one.
    pub fn new(message_id: impl Into<String>, body: impl Into<String>) -> Self {
        Self {
            message_id: Some(message_id.into()),
            body: Some(body.into()),
            ..Self::default()
        }
    }
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

    fn from_sqs(record: SqsRecord) -> Option<Self> {
        let correlation_id = record
            .message_attributes
            .and_then(|attributes| attributes.correlationid)
            .and_then(|attribute| attribute.string_value);
        let receive_count = record
            .attributes
            .and_then(|attributes| attributes.approximate_receive_count)
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        Some(Self {
            message_id: record.message_id?,
            body: record.body.unwrap_or_default(),
            correlation_id,
            receive_count,
        })
    }
}

/// How long a consumer remembers that it handled an envelope: longer than SQS keeps any
/// message (14 days at most), so no redelivery outlives the record.
pub const REMEMBER_SECONDS: i64 = 15 * 24 * 60 * 60;

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
    mail_id: Option<String>,
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
    event: SqsBatch,
    handle: F,
) -> Result<SqsBatchResponse, lambda_runtime::Error>
where
    F: Fn(Message) -> Fut,
    Fut: Future<Output = Result<(), MessageError>>,
{
    let started = std::time::Instant::now();
    let messages = messages_of(event)?;
    let runs = messages.into_iter().map(|message| {
        let span = span_of(&message);
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
                Ok((handled, said)) => report(Ok(handled), said),
                Err(panic) => report(Err(panic_reason(panic)), Said::default()),
            };
            (id, outcome)
        }
        .instrument(span)
    });
    let results = futures::future::join_all(runs).await;
    Ok(respond(&results, started))
}

/// [`process_batch`] for consumers that handle a batch's envelopes together: those whose effect
/// is a write that carries its own idempotency record ([`crate::ports::ProjectOnce`],
/// [`crate::ports::CountOnce`]: one round trip per batch; [`crate::ports::IndexOnce`]: one read,
/// the entries, one transaction), and welcome-email (claims, one bulk send, completions: three
/// per batch), where claiming and completing around each message made three calls per
/// message.
///
/// Each message's envelope goes to `prepare` in the message's span and panic boundary; it says
/// what to write (`None`: nothing, for this type). `commit` then gets every write, keyed by
/// envelope id (a batch that carries one envelope twice writes it once), and answers for each,
/// in order, what was done (for the message's line) or why it failed. A panic in `commit` fails
/// every message it was given.
pub async fn process_together<T, P, C, Fut>(
    event: SqsBatch,
    prepare: P,
    commit: C,
) -> Result<SqsBatchResponse, lambda_runtime::Error>
where
    P: Fn(&crate::envelope::Envelope) -> Result<Option<T>, MessageError>,
    C: FnOnce(Vec<(String, T)>) -> Fut,
    Fut: Future<Output = Vec<Result<Handled, MessageError>>>,
{
    enum Step {
        Finished(Result<Result<(), MessageError>, String>),
        Written(usize),
        Repeat(usize),
    }
    let started = std::time::Instant::now();
    let messages = messages_of(event)?;
    let mut writes: Vec<(String, T)> = Vec::new();
    let mut steps = Vec::with_capacity(messages.len());
    for message in messages {
        let span = span_of(&message);
        let (prepared, mut said) = span.in_scope(|| {
            SAID.sync_scope(RefCell::default(), || {
                let prepared = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    #[cfg(feature = "fault-injection")]
                    fault::panic_if_marked(&message);
                    let envelope = message.envelope()?;
                    Ok(prepare(&envelope)?.map(|write| (envelope.id, write)))
                }));
                (prepared, SAID.with(RefCell::take))
            })
        });
        let step = match prepared {
            Err(panic) => Step::Finished(Err(panic_reason(panic))),
            Ok(Err(error)) => Step::Finished(Ok(Err(error))),
            Ok(Ok(None)) => {
                said.result = Some("nothing to do for this type; envelope skipped");
                Step::Finished(Ok(Ok(())))
            }
            Ok(Ok(Some((key, write)))) => match writes.iter().position(|(k, _)| *k == key) {
                Some(first) => Step::Repeat(first),
                None => {
                    writes.push((key, write));
                    Step::Written(writes.len() - 1)
                }
            },
        };
        steps.push((message.message_id, span, said, step));
    }

    let expected = writes.len();
    let committed = if expected == 0 {
        Ok(Vec::new())
    } else {
        AssertUnwindSafe(commit(writes))
            .catch_unwind()
            .await
            .map_err(panic_reason)
    };
    let committed = match committed {
        Ok(results) if results.len() == expected => Ok(results),
        Ok(results) => Err(format!(
            "the batch's commit answered for {} of {expected} writes",
            results.len()
        )),
        Err(panic) => Err(panic),
    };

    let mut results = Vec::with_capacity(steps.len());
    for (id, span, mut said, step) in steps {
        let finished = match (step, &committed) {
            (Step::Finished(finished), _) => finished,
            (Step::Written(_) | Step::Repeat(_), Err(panic)) => Err(panic.clone()),
            (Step::Written(at), Ok(results)) => Ok(match &results[at] {
                Ok(done) => {
                    said.result = Some(done.result);
                    said.mail_id.clone_from(&done.mail_id);
                    Ok(())
                }
                Err(error) => Err(error.clone()),
            }),
            (Step::Repeat(at), Ok(results)) => Ok(match &results[at] {
                Ok(_) => {
                    said.result = Some("already handled in this batch; envelope skipped");
                    Ok(())
                }
                Err(_) => Err(MessageError::Retryable(
                    "the same envelope failed in another message of this batch".into(),
                )),
            }),
        };
        let outcome = span.in_scope(|| report(finished, said));
        results.push((id, outcome));
    }
    Ok(respond(&results, started))
}

/// What was done for one message of [`process_together`], for the message's line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handled {
    pub result: &'static str,
    /// The mail service's id of the mail sent, if one was.
    pub mail_id: Option<String>,
}

impl From<&'static str> for Handled {
    fn from(result: &'static str) -> Self {
        Self {
            result,
            mail_id: None,
        }
    }
}

/// A write settled by [`crate::ports::ProjectOnce`] or [`crate::ports::CountOnce`], as its
/// message's outcome for [`process_together`]: what `done` says was done, or why it failed.
pub fn outcome_of<T>(
    settled: Result<crate::ports::Settled<T>, crate::ports::StoreError>,
    done: impl FnOnce(T) -> &'static str,
) -> Result<Handled, MessageError> {
    use crate::ports::{Settled, StoreError};
    match settled {
        Ok(Settled::Done(how)) => Ok(done(how).into()),
        Ok(Settled::AlreadyDone) => Ok("already handled; envelope skipped".into()),
        Ok(Settled::InProgressElsewhere) => Err(MessageError::Retryable(
            "another invocation is handling this envelope".into(),
        )),
        Err(StoreError::Corrupt(reason)) => Err(MessageError::Permanent(reason)),
        Err(error) => Err(MessageError::Retryable(error.to_string())),
    }
}

/// The batch's messages, or an error if one cannot be reported on its own.
fn messages_of(event: SqsBatch) -> Result<Vec<Message>, lambda_runtime::Error> {
    event
        .records
        .into_iter()
        .map(|record| {
            Message::from_sqs(record)
                .ok_or_else(|| "an SQS record has no messageId; failing the whole batch".into())
        })
        .collect()
}

/// The span every line about `message` is written in.
fn span_of(message: &Message) -> tracing::Span {
    // With the id at creation when the message attributes carry it: recording it afterwards
    // formats the span's fields a second time.
    match &message.correlation_id {
        Some(id) => tracing::info_span!(
            "message",
            message_id = %message.message_id,
            correlation_id = id.as_str(),
            receive_count = message.receive_count,
        ),
        None => tracing::info_span!(
            "message",
            message_id = %message.message_id,
            correlation_id = field::Empty,
            receive_count = message.receive_count,
        ),
    }
}

fn panic_reason(panic: Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic payload".to_owned())
}

/// Logs how one message ended (in its span) and classifies it; `Err` is a panic's reason.
fn report(finished: Result<Result<(), MessageError>, String>, said: Said) -> Outcome {
    match finished {
        Ok(Ok(())) => {
            tracing::info!(
                outcome = "done",
                event_type = said.event_type,
                subject = said.subject,
                entity_version = said.entity_version,
                result = said.result,
                mail_id = said.mail_id,
                "message handled"
            );
            Outcome::Done
        }
        Ok(Err(MessageError::Retryable(reason))) => {
            tracing::warn!(%reason, "message failed; it will be retried");
            Outcome::Retryable
        }
        Ok(Err(MessageError::Permanent(reason))) => {
            tracing::error!(
                %reason,
                classification = "permanent",
                "message cannot be processed; it goes to the dead-letter queue after the last receive"
            );
            Outcome::Permanent
        }
        Err(reason) => {
            tracing::error!(%reason, "message handler panicked; counted as a failure");
            Outcome::Panicked
        }
    }
}

/// The batch response (only the failed ids), with the batch's metric record.
fn respond(results: &[(String, Outcome)], started: std::time::Instant) -> SqsBatchResponse {
    let total = results.len();
    let mut response = SqsBatchResponse::default();
    for (id, outcome) in results {
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
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(bodies: &[&str]) -> SqsBatch {
        SqsBatch {
            records: bodies
                .iter()
                .enumerate()
                .map(|(i, body)| SqsRecord::new(format!("m{i}"), *body))
                .collect(),
        }
    }

    #[cfg(feature = "fault-injection")]
    fn received(count: u32, record: &mut SqsRecord) {
        record.attributes = Some(RecordAttributes {
            approximate_receive_count: Some(count.to_string()),
        });
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
    fn capture_lines(
        level: &str,
    ) -> (
        crate::telemetry::Captured,
        tracing::subscriber::DefaultGuard,
    ) {
        // tracing caches whether a callsite is wanted once, process-wide, decided by the
        // thread that reaches it first. A test without a subscriber reaching a log line
        // first would cache "never" against no subscriber at all, and this capture would
        // then miss that line (1 run in 50 at 32 test threads). A bare global registry
        // wants every callsite, so the cache never says "never" for any of them.
        static ANCHOR: std::sync::Once = std::sync::Once::new();
        ANCHOR.call_once(|| {
            let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry());
        });
        let lines = crate::telemetry::Captured::default();
        let writer = lines.clone();
        let subscriber = crate::telemetry::json_lines(level, move || writer.clone());
        (lines, tracing::subscriber::set_default(subscriber))
    }

    #[tokio::test]
    async fn a_handled_envelope_costs_one_info_line_that_says_what_was_done_to_what() {
        let envelope = include_str!("../../../events-fixtures/envelope-event-created.json");
        let (lines, _guard) = capture_lines("info");

        let response = process_batch(event(&[envelope]), |message| async move {
            message.envelope()?;
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
        let (lines, _guard) = capture_lines("info");

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

    /// The fixture envelope with `id` as its envelope id and `title` as its event's title.
    fn envelope(id: &str, title: &str) -> String {
        let mut envelope: serde_json::Value = serde_json::from_str(include_str!(
            "../../../events-fixtures/envelope-event-created.json"
        ))
        .unwrap();
        envelope["id"] = serde_json::json!(id);
        envelope["data"]["title"] = serde_json::json!(title);
        envelope.to_string()
    }

    /// Prepares each envelope's title as its write; the title "skip" writes nothing and "bad"
    /// is a permanent failure.
    fn title_of(envelope: &crate::envelope::Envelope) -> Result<Option<String>, MessageError> {
        let title = match envelope.domain_event() {
            Ok(crate::envelope::DomainEvent::EventCreated(event)) => {
                event.title.as_str().to_owned()
            }
            _ => return Err(MessageError::Permanent("not an event".into())),
        };
        match title.as_str() {
            "skip" => Ok(None),
            "bad" => Err(MessageError::Permanent("bad title".into())),
            _ => Ok(Some(title)),
        }
    }

    #[tokio::test]
    async fn a_batch_is_committed_in_one_call_with_one_write_per_envelope() {
        let bodies = [
            envelope("e1", "one"),
            envelope("e2", "two"),
            envelope("e1", "one"),
            envelope("e3", "skip"),
        ];
        let bodies: Vec<&str> = bodies.iter().map(String::as_str).collect();
        let calls = std::sync::Mutex::new(Vec::new());
        let (lines, _guard) = capture_lines("info");

        let response = process_together(event(&bodies), title_of, |writes| {
            calls.lock().unwrap().push(writes.clone());
            async move { writes.iter().map(|_| Ok("written".into())).collect() }
        })
        .await
        .unwrap();

        assert!(response.batch_item_failures.is_empty());
        assert_eq!(
            *calls.lock().unwrap(),
            [vec![
                ("e1".to_owned(), "one".to_owned()),
                ("e2".to_owned(), "two".to_owned())
            ]]
        );
        let results: Vec<String> = lines
            .json()
            .iter()
            .map(|line| line["result"].as_str().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(
            results,
            [
                "written",
                "written",
                "already handled in this batch; envelope skipped",
                "nothing to do for this type; envelope skipped",
            ]
        );
    }

    #[tokio::test]
    async fn a_write_that_fails_fails_its_messages_and_no_other() {
        let bodies = [
            envelope("e1", "one"),
            envelope("e2", "down"),
            envelope("e2", "down"),
            envelope("e3", "bad"),
            "not an envelope".to_owned(),
        ];
        let bodies: Vec<&str> = bodies.iter().map(String::as_str).collect();

        let response = process_together(event(&bodies), title_of, |writes| async move {
            writes
                .iter()
                .map(|(_, title)| match title.as_str() {
                    "down" => Err(MessageError::Retryable("throttled".into())),
                    _ => Ok("written".into()),
                })
                .collect()
        })
        .await
        .unwrap();

        assert_eq!(failed_ids(&response), ["m1", "m2", "m3", "m4"]);
    }

    #[tokio::test]
    async fn a_panic_in_the_commit_fails_every_message_it_was_given_and_only_those() {
        let bodies = [envelope("e1", "one"), envelope("e2", "skip")];
        let bodies: Vec<&str> = bodies.iter().map(String::as_str).collect();

        let response = process_together(
            event(&bodies),
            title_of,
            |_: Vec<(String, String)>| async move {
                panic!("adapter bug");
                #[allow(unreachable_code)]
                Vec::new()
            },
        )
        .await
        .unwrap();

        assert_eq!(failed_ids(&response), ["m0"]);
    }

    #[tokio::test]
    async fn a_commit_that_answers_for_fewer_writes_fails_them_all() {
        let bodies = [envelope("e1", "one"), envelope("e2", "two")];
        let bodies: Vec<&str> = bodies.iter().map(String::as_str).collect();

        let response = process_together(event(&bodies), title_of, |_| async move {
            vec![Ok("written".into())]
        })
        .await
        .unwrap();

        assert_eq!(failed_ids(&response), ["m0", "m1"]);
    }

    #[tokio::test]
    async fn a_message_handled_together_says_what_was_done_on_its_own_line() {
        let bodies = [envelope("e1", "one")];
        let (lines, _guard) = capture_lines("info");

        process_together(event(&[&bodies[0]]), title_of, |writes| async move {
            writes
                .iter()
                .map(|_| Ok("projection updated".into()))
                .collect()
        })
        .await
        .unwrap();

        let lines = lines.json();
        let [line] = lines.as_slice() else {
            panic!("one line, not {lines:#?}");
        };
        assert_eq!(
            [
                &line["message"],
                &line["result"],
                &line["spans"][0]["correlation_id"],
                &line["spans"][0]["message_id"],
            ],
            [
                &serde_json::json!("message handled"),
                &serde_json::json!("projection updated"),
                &serde_json::json!("fixture-correlation-1"),
                &serde_json::json!("m0"),
            ]
        );
    }

    #[test]
    fn a_record_is_read_from_lambdas_shape_with_its_receive_count_and_correlation_id() {
        let mut record: serde_json::Value = serde_json::from_str(include_str!(
            "../../../events-fixtures/sqs-event-created.json"
        ))
        .unwrap();
        record = record["Records"][0].take();
        record["attributes"]["ApproximateReceiveCount"] = "3".into();
        let unset = serde_json::json!({
            "messageId": "m2", "body": "{}", "attributes": null, "messageAttributes": null
        });
        let batch: SqsBatch =
            serde_json::from_value(serde_json::json!({ "Records": [record, unset] })).unwrap();

        let messages = messages_of(batch).unwrap();

        assert_eq!(
            messages[0].message_id,
            "059f36b4-87a3-44ab-83d2-661975830a7d"
        );
        assert_eq!(messages[0].receive_count, 3);
        assert_eq!(
            messages[0].correlation_id.as_deref(),
            Some("fixture-correlation-1")
        );
        assert!(messages[0].envelope().is_ok());
        assert_eq!(
            (messages[1].receive_count, &messages[1].correlation_id),
            (1, &None)
        );
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
        received(1, &mut first.records[1]);
        received(2, &mut again.records[0]);

        let on_first = process_batch(first, |_| async { Ok(()) }).await.unwrap();
        let on_second = process_batch(again, |_| async { Ok(()) }).await.unwrap();

        assert_eq!(failed_ids(&on_first), ["m1"]);
        assert!(on_second.batch_item_failures.is_empty());
    }

    #[cfg(feature = "fault-injection")]
    #[tokio::test]
    async fn a_marked_message_handled_together_panics_alone_on_its_first_receive() {
        let marked = envelope("e2", fault::PANIC_ON_FIRST_RECEIVE);
        let bodies = [envelope("e1", "one"), marked];
        let mut first = event(&[&bodies[0], &bodies[1]]);
        received(1, &mut first.records[1]);
        let written = std::sync::Mutex::new(Vec::new());

        let response = process_together(first, title_of, |writes| {
            written
                .lock()
                .unwrap()
                .extend(writes.iter().map(|(k, _)| k.clone()));
            async move { writes.iter().map(|_| Ok("written".into())).collect() }
        })
        .await
        .unwrap();

        assert_eq!(failed_ids(&response), ["m1"]);
        assert_eq!(*written.lock().unwrap(), ["e1"]);
    }
}
