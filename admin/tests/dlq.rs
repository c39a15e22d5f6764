//! `evently-admin dlq ...` against the emulator's SQS, on a source queue and a dead-letter queue
//! of the test's own (so the deployed consumers never see these messages).

use std::collections::BTreeSet;
use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::QueueAttributeName;
use evently_e2e::{now_ms, sdk_config};
use serde_json::{Value, json};

struct Queues {
    sqs: Client,
    stack: String,
    source_url: String,
    dlq_url: String,
    dlq_name: String,
}

impl Queues {
    /// `<stack>-Source` redriving to `<stack>-Dlq` after 3 receives.
    async fn create(test: &str) -> Self {
        let sqs = Client::new(&sdk_config().await);
        let stack = format!("AdminTest{test}{}", now_ms());
        let dlq_name = format!("{stack}-Dlq");
        let dlq_url = sqs
            .create_queue()
            .queue_name(&dlq_name)
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        let dlq_arn = sqs
            .get_queue_attributes()
            .queue_url(&dlq_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap()[&QueueAttributeName::QueueArn]
            .clone();
        let source_url = sqs
            .create_queue()
            .queue_name(format!("{stack}-Source"))
            .attributes(
                QueueAttributeName::RedrivePolicy,
                json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": 3 }).to_string(),
            )
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        Self {
            sqs,
            stack,
            source_url,
            dlq_url,
            dlq_name,
        }
    }

    async fn fill_dlq(&self, bodies: &[String]) {
        for chunk in bodies.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, body)| {
                    aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(body)
                        .build()
                        .unwrap()
                })
                .collect();
            let sent = self
                .sqs
                .send_message_batch()
                .queue_url(&self.dlq_url)
                .set_entries(Some(entries))
                .send()
                .await
                .unwrap();
            assert!(sent.failed().is_empty());
        }
    }

    /// Every body in the queue, received and deleted (the queue ends empty).
    async fn drain(&self, url: &str) -> Vec<String> {
        let mut bodies = Vec::new();
        let mut empty_polls = 0;
        while empty_polls < 2 {
            let messages = self
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .unwrap()
                .messages
                .unwrap_or_default();
            if messages.is_empty() {
                empty_polls += 1;
                continue;
            }
            for message in messages {
                bodies.push(message.body().unwrap().to_owned());
                self.sqs
                    .delete_message()
                    .queue_url(url)
                    .receipt_handle(message.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
        bodies
    }

    async fn depth(&self, url: &str) -> u64 {
        self.sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap()[&QueueAttributeName::ApproximateNumberOfMessages]
            .parse()
            .unwrap()
    }

    fn admin(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_evently-admin"))
            .arg("dlq")
            .args(args)
            .args(["--stack", &self.stack])
            .output()
            .unwrap()
    }

    async fn delete(self) {
        for url in [&self.source_url, &self.dlq_url] {
            let _ = self.sqs.delete_queue().queue_url(url).send().await;
        }
    }
}

fn envelope(n: usize) -> String {
    json!({
        "specversion": "1.0",
        "id": format!("01JDLQTEST{n:016}"),
        "source": "evently/events-api",
        "type": "evently.event.created.v1",
        "subject": format!("event-{n}"),
        "time": "2026-11-28T10:00:00Z",
        "datacontenttype": "application/json",
        "correlationid": format!("dlq-test-{n}"),
        "entityversion": 1,
        "data": { "n": n }
    })
    .to_string()
}

/// Whether the redrive's progress output reports at least `n` messages moved.
fn moved_at_least(progress: &str, n: u64) -> bool {
    progress
        .split('\r')
        .filter_map(|line| line.split_whitespace().nth(1)?.parse::<u64>().ok())
        .any(|moved| moved >= n)
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[tokio::test]
async fn list_shows_the_dead_letter_queue_with_its_depth_and_source() {
    let queues = Queues::create("List").await;
    queues.fill_dlq(&[envelope(1), envelope(2)]).await;

    let listed: Value = serde_json::from_str(&stdout(&queues.admin(&["list", "--json"]))).unwrap();

    let rows = listed.as_array().unwrap();
    assert_eq!(rows.len(), 1, "only the DLQ, not its source: {listed}");
    assert_eq!(rows[0]["name"], queues.dlq_name.as_str());
    assert_eq!(rows[0]["depth"], 2);
    assert_eq!(rows[0]["source"], format!("{}-Source", queues.stack));
    queues.delete().await;
}

#[tokio::test]
async fn peek_decodes_envelopes_and_leaves_every_message_in_place() {
    let queues = Queues::create("Peek").await;
    let mut bodies: Vec<String> = (0..12).map(envelope).collect();
    bodies.push("not json at all".into());
    queues.fill_dlq(&bodies).await;

    let printed = stdout(&queues.admin(&["peek", &queues.dlq_name, "--max", "20"]));

    let shown: Vec<Value> = printed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(shown.len(), 13);
    let decoded = shown.iter().filter(|m| m.get("envelope").is_some()).count();
    assert_eq!(decoded, 12);
    assert!(
        shown
            .iter()
            .any(|m| m["envelope"]["correlation_id"] == "dlq-test-3")
    );
    assert_eq!(
        shown
            .iter()
            .filter(|m| m["body"] == "not json at all")
            .count(),
        1
    );
    assert_eq!(
        queues.depth(&queues.dlq_url).await,
        13,
        "peeked messages are visible again at once"
    );
    queues.delete().await;
}

#[tokio::test]
async fn purge_needs_the_queue_name_repeated_and_then_empties_it() {
    let queues = Queues::create("Purge").await;
    queues
        .fill_dlq(&[envelope(1), envelope(2), envelope(3)])
        .await;

    let refused = queues.admin(&["purge", &queues.dlq_name]);
    let wrong = queues.admin(&["purge", &queues.dlq_name, "--confirm", "SomethingElse"]);
    let depth_after_refusals = queues.depth(&queues.dlq_url).await;
    let confirmed = queues.admin(&["purge", &queues.dlq_name, "--confirm", &queues.dlq_name]);

    assert_eq!(refused.status.code(), Some(2));
    assert_eq!(wrong.status.code(), Some(2));
    assert_eq!(depth_after_refusals, 3, "a refused purge deletes nothing");
    stdout(&confirmed);
    assert_eq!(queues.drain(&queues.dlq_url).await.len(), 0);
    queues.delete().await;
}

#[tokio::test]
async fn redrive_moves_every_message_back_to_the_source_queue() {
    let queues = Queues::create("Redrive").await;
    let bodies: Vec<String> = (0..35).map(envelope).collect();
    queues.fill_dlq(&bodies).await;

    let output = queues.admin(&["redrive", &queues.dlq_name]);

    let printed = stdout(&output);
    assert!(printed.contains("35 messages moved back"), "{printed}");
    let in_source: BTreeSet<String> = queues.drain(&queues.source_url).await.into_iter().collect();
    assert_eq!(in_source, bodies.iter().cloned().collect::<BTreeSet<_>>());
    assert_eq!(queues.drain(&queues.dlq_url).await.len(), 0);
    queues.delete().await;
}

#[tokio::test]
async fn a_redrive_killed_midway_loses_no_message() {
    let queues = Queues::create("Interrupted").await;
    let bodies: Vec<String> = (0..600).map(envelope).collect();
    queues.fill_dlq(&bodies).await;

    let mut child = Command::new(env!("CARGO_BIN_EXE_evently-admin"))
        .args(["dlq", "redrive", &queues.dlq_name, "--manual"])
        .args(["--visibility-seconds", "2", "--stack", &queues.stack])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Let it move some batches (its progress line says how many), then kill it without warning.
    let mut progress = child.stderr.take().unwrap();
    let mut seen = String::new();
    let mut buffer = [0u8; 256];
    while !moved_at_least(&seen, 100) {
        let read = progress.read(&mut buffer).unwrap();
        assert!(read > 0, "redrive ended before it was killed: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buffer[..read]));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // The batch it held reappears in the DLQ once its visibility lapses.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let in_source = queues.drain(&queues.source_url).await;
    let in_dlq = queues.drain(&queues.dlq_url).await;
    let everywhere: BTreeSet<String> = in_source.iter().chain(&in_dlq).cloned().collect();
    assert_eq!(
        everywhere,
        bodies.iter().cloned().collect::<BTreeSet<_>>(),
        "every message is in the source or still in the DLQ"
    );
    assert!(!in_source.is_empty(), "the redrive had started moving");
    assert!(!in_dlq.is_empty(), "the redrive was stopped before the end");
    queues.delete().await;
}
