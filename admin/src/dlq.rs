//! Dead-letter queues: find them, look inside, send their messages back, or empty them.
//!
//! Queues are found from the queues themselves, not from a file: a queue whose redrive policy
//! names a target is a source; the target is its dead-letter queue. A queue of the stack that is
//! neither is an on-failure destination (the outbox relay's), which holds failure records, not
//! messages to redrive.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message,
    MessageSystemAttributeName, QueueAttributeName, SendMessageBatchRequestEntry,
};
use serde_json::{Value, json};

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// How long peeked messages stay hidden while this tool reads them.
const WORKING_VISIBILITY_SECONDS: i32 = 60;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A redrive target: its messages go back to `source`.
    DeadLetter { source: String },
    /// Holds failure records of an event source (the stream relay); nothing to redrive to.
    FailureDestination,
}

#[derive(Debug, Clone)]
pub struct Queue {
    pub name: String,
    pub url: String,
    pub arn: String,
    /// Messages ready to be received (ApproximateNumberOfMessages).
    pub depth: u64,
    /// Messages received and not yet deleted or made visible again.
    pub in_flight: u64,
    pub kind: Kind,
}

fn attribute(attributes: &HashMap<QueueAttributeName, String>, name: QueueAttributeName) -> String {
    attributes.get(&name).cloned().unwrap_or_default()
}

fn count(attributes: &HashMap<QueueAttributeName, String>, name: QueueAttributeName) -> u64 {
    attribute(attributes, name).parse().unwrap_or(0)
}

fn name_of(url: &str) -> String {
    url.rsplit('/').next().unwrap_or(url).to_owned()
}

/// Every dead-letter queue and failure destination among the queues whose names start with
/// `prefix`, sorted by name.
pub async fn list(sqs: &Client, prefix: &str) -> Result<Vec<Queue>, Error> {
    let mut urls = Vec::new();
    let mut pages = sqs
        .list_queues()
        .queue_name_prefix(prefix)
        .max_results(1000)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        urls.extend(page?.queue_urls.unwrap_or_default());
    }

    let mut all = Vec::new();
    for url in urls {
        let attributes = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await?
            .attributes
            .unwrap_or_default();
        all.push((url, attributes));
    }
    // dead-letter target ARN -> source queue name
    let mut sources: HashMap<String, String> = HashMap::new();
    for (url, attributes) in &all {
        let policy = attribute(attributes, QueueAttributeName::RedrivePolicy);
        if let Ok(policy) = serde_json::from_str::<Value>(&policy)
            && let Some(target) = policy["deadLetterTargetArn"].as_str()
        {
            sources.insert(target.to_owned(), name_of(url));
        }
    }

    let mut queues: Vec<Queue> = all
        .into_iter()
        .filter_map(|(url, attributes)| {
            let arn = attribute(&attributes, QueueAttributeName::QueueArn);
            let has_redrive = !attribute(&attributes, QueueAttributeName::RedrivePolicy).is_empty();
            let kind = match sources.get(&arn) {
                Some(source) => Kind::DeadLetter {
                    source: source.clone(),
                },
                None if !has_redrive => Kind::FailureDestination,
                None => return None,
            };
            Some(Queue {
                name: name_of(&url),
                depth: count(&attributes, QueueAttributeName::ApproximateNumberOfMessages),
                in_flight: count(
                    &attributes,
                    QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
                ),
                url,
                arn,
                kind,
            })
        })
        .collect();
    queues.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(queues)
}

/// Finds one of [`list`]'s queues by name or URL.
pub async fn find(sqs: &Client, prefix: &str, wanted: &str) -> Result<Queue, Error> {
    let wanted_name = name_of(wanted);
    list(sqs, prefix)
        .await?
        .into_iter()
        .find(|q| q.name == wanted_name)
        .ok_or_else(|| {
            format!(
                "{wanted_name} is not a dead-letter queue of this stack (see `evently-admin dlq list`)"
            )
            .into()
        })
}

/// What a message in a DLQ is, as far as it can be told: the envelope fields when the body is
/// an Evently envelope, the raw body otherwise.
pub fn describe(message: &Message) -> Value {
    let body = message.body().unwrap_or_default();
    let system = message.attributes();
    let system_attribute = |name: MessageSystemAttributeName| {
        system
            .and_then(|a| a.get(&name))
            .cloned()
            .unwrap_or_default()
    };
    let received = system_attribute(MessageSystemAttributeName::ApproximateReceiveCount);
    let sent_ms = system_attribute(MessageSystemAttributeName::SentTimestamp);
    let mut described = json!({
        "message_id": message.message_id(),
        "receive_count": received.parse::<u64>().ok(),
        "sent_at": sent_ms
            .parse::<i64>()
            .ok()
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map(|t| t.to_rfc3339()),
    });
    match evently_shared::envelope::Envelope::from_json(body) {
        Ok(envelope) => {
            described["envelope"] = json!({
                "id": envelope.id,
                "type": envelope.event_type,
                "version": envelope.entityversion,
                "subject": envelope.subject,
                "time": envelope.time.to_string(),
                "correlation_id": envelope.correlationid.as_str(),
                "data": envelope.data,
            });
        }
        Err(error) => {
            described["undecodable"] = json!(error.to_string());
            described["body"] = json!(body);
        }
    }
    described
}

/// Up to `max` messages, left in the queue: they are received, described, and made visible
/// again at once. Each receive counts towards nothing here (DLQs have no redrive of their own).
pub async fn peek(sqs: &Client, queue: &Queue, max: usize) -> Result<Vec<Value>, Error> {
    let mut seen: Vec<Message> = Vec::new();
    let mut handles = Vec::new();
    while seen.len() < max {
        let batch = sqs
            .receive_message()
            .queue_url(&queue.url)
            .max_number_of_messages(i32::try_from((max - seen.len()).min(10)).unwrap_or(10))
            .visibility_timeout(WORKING_VISIBILITY_SECONDS)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await?
            .messages
            .unwrap_or_default();
        if batch.is_empty() {
            break;
        }
        for message in batch {
            if seen.iter().any(|m| m.message_id() == message.message_id()) {
                continue;
            }
            if let Some(handle) = message.receipt_handle() {
                handles.push(handle.to_owned());
            }
            seen.push(message);
        }
    }
    // Hand them back: a peek must not delay a redrive by the working visibility.
    for (index, chunk) in handles.chunks(10).enumerate() {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, handle)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(format!("{index}-{i}"))
                    .receipt_handle(handle)
                    .visibility_timeout(0)
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        sqs.change_message_visibility_batch()
            .queue_url(&queue.url)
            .set_entries(Some(entries))
            .send()
            .await?;
    }
    Ok(seen.iter().map(describe).collect())
}

/// How a redrive went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Moved {
    pub moved: u64,
    /// Whether SQS's own message-move task did the work (else receive, send, delete).
    pub by_move_task: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct RedriveOptions {
    /// Receive, send and delete even where `StartMessageMoveTask` exists.
    pub manual: bool,
    /// How long a received batch stays hidden in the DLQ while it is sent on: if this tool
    /// dies, the batch reappears in the DLQ after this long.
    pub visibility_seconds: i32,
}

/// Moves every message of a dead-letter queue back to its source queue.
///
/// SQS's `StartMessageMoveTask` does it server-side where it exists. Otherwise each batch is
/// received, sent to the source, and only then deleted from the DLQ: an interruption at any
/// point leaves a message in the DLQ, in the source, or (between send and delete) in both,
/// never in neither. Consumers are idempotent, so the duplicate is harmless.
pub async fn redrive(
    sqs: &Client,
    queue: &Queue,
    options: RedriveOptions,
    progress: impl Fn(u64, u64),
) -> Result<Moved, Error> {
    let Kind::DeadLetter { source } = &queue.kind else {
        return Err(format!(
            "{} holds failure records of an event source, not messages with a source queue",
            queue.name
        )
        .into());
    };
    let source_url = sqs
        .get_queue_url()
        .queue_name(source)
        .send()
        .await?
        .queue_url
        .ok_or("the source queue has no URL")?;
    let total = queue.depth;

    if !options.manual {
        match sqs
            .start_message_move_task()
            .source_arn(&queue.arn)
            .send()
            .await
        {
            Ok(started) => {
                let handle = started.task_handle.unwrap_or_default();
                return watch_move_task(sqs, queue, &handle, total, &progress).await;
            }
            Err(error) => {
                let error = error.into_service_error();
                eprintln!(
                    "StartMessageMoveTask is not available here ({}); moving messages one batch at a time",
                    error.meta().code().unwrap_or("unknown error")
                );
            }
        }
    }

    let mut moved = 0u64;
    progress(moved, total);
    loop {
        let batch = sqs
            .receive_message()
            .queue_url(&queue.url)
            .max_number_of_messages(10)
            .visibility_timeout(options.visibility_seconds)
            .message_attribute_names("All")
            .wait_time_seconds(1)
            .send()
            .await?
            .messages
            .unwrap_or_default();
        if batch.is_empty() {
            break;
        }
        let entries = batch
            .iter()
            .enumerate()
            .map(|(i, message)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(message.body().unwrap_or_default())
                    .set_message_attributes(message.message_attributes().cloned())
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let sent = sqs
            .send_message_batch()
            .queue_url(&source_url)
            .set_entries(Some(entries))
            .send()
            .await?;
        for failure in sent.failed() {
            eprintln!(
                "could not send message {} back ({}); it stays in the DLQ",
                failure.id(),
                failure.message().unwrap_or(failure.code())
            );
        }
        // Delete only what the source queue accepted.
        let deletes = sent
            .successful()
            .iter()
            .filter_map(|ok| {
                let message = batch.get(ok.id().parse::<usize>().ok()?)?;
                DeleteMessageBatchRequestEntry::builder()
                    .id(ok.id())
                    .receipt_handle(message.receipt_handle()?)
                    .build()
                    .ok()
            })
            .collect::<Vec<_>>();
        if deletes.is_empty() {
            return Err("the source queue accepted none of a batch; stopping".into());
        }
        let deleted = sqs
            .delete_message_batch()
            .queue_url(&queue.url)
            .set_entries(Some(deletes))
            .send()
            .await?;
        moved += deleted.successful().len() as u64;
        progress(moved, total.max(moved));
    }
    Ok(Moved {
        moved,
        by_move_task: false,
    })
}

async fn watch_move_task(
    sqs: &Client,
    queue: &Queue,
    handle: &str,
    total: u64,
    progress: &impl Fn(u64, u64),
) -> Result<Moved, Error> {
    loop {
        let tasks = sqs
            .list_message_move_tasks()
            .source_arn(&queue.arn)
            .max_results(10)
            .send()
            .await?
            .results
            .unwrap_or_default();
        let Some(task) = tasks
            .iter()
            .find(|t| t.task_handle() == Some(handle))
            .or_else(|| tasks.first())
        else {
            return Err("the message move task vanished".into());
        };
        let moved = u64::try_from(task.approximate_number_of_messages_moved()).unwrap_or(0);
        let to_move = task
            .approximate_number_of_messages_to_move()
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(total);
        progress(moved, to_move.max(moved));
        match task.status() {
            Some("COMPLETED") => {
                return Ok(Moved {
                    moved,
                    by_move_task: true,
                });
            }
            Some(status @ ("FAILED" | "CANCELLED")) => {
                return Err(format!(
                    "message move task {status}: {}",
                    task.failure_reason().unwrap_or("no reason given")
                )
                .into());
            }
            _ => tokio::time::sleep(Duration::from_secs(2)).await,
        }
    }
}

/// Deletes every message of the queue. The caller has the operator's confirmation.
pub async fn purge(sqs: &Client, queue: &Queue) -> Result<(), Error> {
    sqs.purge_queue().queue_url(&queue.url).send().await?;
    Ok(())
}
