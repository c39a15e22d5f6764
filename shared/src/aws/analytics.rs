use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};

use super::dynamo::{Item, condition_failures, put_new, s};
use crate::domain::{EventId, Timestamp};
use crate::ports::{Analytics, Count, DailyCounts, EventStats, StoreError};

/// How long an envelope is remembered as counted: longer than any queue keeps a message.
const SEEN_SECONDS: i64 = 15 * 24 * 60 * 60;

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn number(item: &Item, name: &str) -> i64 {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn key(pk: String, sk: String) -> Item {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

/// Counters in their own table. Each increment is one transaction with a "seen" marker for
/// the envelope, so a redelivered envelope fails the marker's condition and counts nothing.
#[derive(Debug, Clone)]
pub struct DynamoAnalytics {
    client: Client,
    table: String,
}

impl DynamoAnalytics {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

#[async_trait]
impl Analytics for DynamoAnalytics {
    async fn record(&self, envelope_id: &str, count: &Count) -> Result<bool, StoreError> {
        let (counter_key, expression) = match count {
            Count::EventCreated { day } => {
                (key("DAILY".into(), day.clone()), "ADD events_created :one")
            }
            Count::Signup { day } => (key("DAILY".into(), day.clone()), "ADD signups :one"),
            Count::RsvpCreated { event } => (
                key(format!("EVENT#{event}"), "STATS".into()),
                "ADD going :one, rsvps_created :one",
            ),
            Count::RsvpCancelled { event } => (
                key(format!("EVENT#{event}"), "STATS".into()),
                "ADD going :minus_one, rsvps_cancelled :one",
            ),
        };
        let mut values = HashMap::from([(":one".to_owned(), n(1))]);
        if matches!(count, Count::RsvpCancelled { .. }) {
            values.insert(":minus_one".into(), n(-1));
        }
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(counter_key))
            .update_expression(expression)
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(StoreError::unavailable)?;
        let mut marker = key(format!("SEEN#{envelope_id}"), "SEEN".into());
        marker.insert(
            "expires_at".into(),
            n(Timestamp::now().unix_seconds() + SEEN_SECONDS),
        );
        let result = self
            .client
            .transact_write_items()
            .transact_items(put_new(&self.table, marker)?)
            .transact_items(TransactWriteItem::builder().update(update).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) => {
                let error = error.into_service_error();
                if condition_failures(&error).contains(&0) {
                    Ok(false)
                } else {
                    Err(StoreError::unavailable(error))
                }
            }
        }
    }

    async fn event_stats(&self, event: &EventId) -> Result<EventStats, StoreError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(format!("EVENT#{event}"), "STATS".into())))
            .send()
            .await
            .map_err(|e| StoreError::unavailable(e.into_service_error()))?
            .item
            .unwrap_or_default();
        Ok(EventStats {
            going: number(&item, "going"),
            rsvps_created: number(&item, "rsvps_created"),
            rsvps_cancelled: number(&item, "rsvps_cancelled"),
        })
    }

    async fn daily(&self, from: &str, to: &str) -> Result<Vec<DailyCounts>, StoreError> {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :daily AND sk BETWEEN :from AND :to")
            .expression_attribute_values(":daily", s("DAILY"))
            .expression_attribute_values(":from", s(from))
            .expression_attribute_values(":to", s(to))
            .send()
            .await
            .map_err(|e| StoreError::unavailable(e.into_service_error()))?;
        Ok(output
            .items
            .unwrap_or_default()
            .iter()
            .map(|item| DailyCounts {
                day: item
                    .get("sk")
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_default(),
                events_created: number(item, "events_created"),
                signups: number(item, "signups"),
            })
            .collect())
    }
}
