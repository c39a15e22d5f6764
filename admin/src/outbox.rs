//! Re-publishing outbox items: the recovery path for envelopes the stream relay never saw
//! (a stream mapping disabled for longer than the stream's 24 h retention, records lost by an
//! emulator restart). The outbox item outlives the stream record (two days), so every
//! envelope written in that window can be published again; consumers are idempotent, so
//! envelopes that did get through are harmless to send twice.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use evently_shared::aws::{OUTBOX_ENTITY, OutboxRecord};
use evently_shared::ports::{OutgoingMessage, Published, Publisher};

pub type Error = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Default, Clone, Copy)]
pub struct Replayed {
    pub scanned_pages: u64,
    pub found: u64,
    pub published: u64,
}

/// The smallest ULID of the millisecond `since_ms`: every envelope id made at or after it
/// sorts at or after this.
fn first_ulid_at(since_ms: u64) -> String {
    ulid::Ulid::from_parts(since_ms, 0).to_string()
}

/// Publishes every outbox envelope of `table` created at or after `since_ms`, oldest page first.
pub async fn replay<P: Publisher>(
    dynamo: &Client,
    table: &str,
    publisher: &P,
    since_ms: u64,
    progress: impl Fn(&Replayed),
) -> Result<Replayed, Error> {
    let mut done = Replayed::default();
    let mut resume: Option<HashMap<String, AttributeValue>> = None;
    loop {
        let page = dynamo
            .scan()
            .table_name(table)
            .filter_expression("entity = :outbox AND pk >= :from")
            .expression_attribute_values(":outbox", AttributeValue::S(OUTBOX_ENTITY.into()))
            .expression_attribute_values(
                ":from",
                AttributeValue::S(format!("OUTBOX#{}", first_ulid_at(since_ms))),
            )
            .set_exclusive_start_key(resume.take())
            .consistent_read(true)
            .send()
            .await?;
        done.scanned_pages += 1;
        let mut records: Vec<OutboxRecord> = page
            .items()
            .iter()
            .map(|item| serde_dynamo::from_item(item.clone()))
            .collect::<Result<_, _>>()?;
        // Oldest first within a page: envelope ids are ULIDs.
        records.sort_by(|a, b| a.pk.cmp(&b.pk));
        done.found += records.len() as u64;
        for chunk in records.chunks(P::MAX_BATCH) {
            let messages: Vec<OutgoingMessage> = chunk
                .iter()
                .map(|record| OutgoingMessage {
                    body: record.envelope.clone(),
                    event_type: record.event_type.clone(),
                    correlation_id: record.correlation_id.clone(),
                })
                .collect();
            let outcomes = publisher.publish(&messages).await?;
            for (record, outcome) in chunk.iter().zip(outcomes) {
                match outcome {
                    Published::Accepted => done.published += 1,
                    Published::Rejected { code, message } => {
                        return Err(format!(
                            "{} was rejected ({code}: {message}); rerun to continue",
                            record.pk
                        )
                        .into());
                    }
                }
            }
            progress(&done);
        }
        match page.last_evaluated_key {
            Some(key) if !key.is_empty() => resume = Some(key),
            _ => break,
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lower_bound_sorts_before_every_id_of_that_millisecond_and_after_earlier_ones() {
        let at = 1_800_000_000_123;
        let bound = first_ulid_at(at);
        let same_ms = ulid::Ulid::from_parts(at, 42).to_string();
        let earlier = ulid::Ulid::from_parts(at - 1, u128::MAX >> 48).to_string();

        assert!(bound <= same_ms);
        assert!(earlier < bound);
    }
}
