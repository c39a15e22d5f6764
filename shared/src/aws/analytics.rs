use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;

use super::dynamo::{Item, s};
use super::once::Write;
use crate::domain::EventId;
use crate::ports::{Analytics, Count, DailyCounts, EventStats, StoreError};

fn number(item: &Item, name: &str) -> i64 {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn key(pk: String, sk: String) -> Item {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

/// Counters in their own table. They move only through [`super::DynamoOnce`], in one
/// transaction with the idempotency kit's record of the envelope, so a redelivered envelope
/// fails the record's condition and counts nothing.
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

impl DynamoAnalytics {
    /// What `count` adds, to which counters.
    pub(crate) fn additions(&self, count: &Count) -> Vec<Write> {
        let add = |key: Item, attribute, delta| Write::Add {
            table: self.table.clone(),
            key,
            attribute,
            delta,
        };
        let daily = |day: &str| key("DAILY".into(), day.to_owned());
        let stats = |event: &EventId| key(format!("EVENT#{event}"), "STATS".into());
        match count {
            Count::EventCreated { day } => vec![add(daily(day), "events_created", 1)],
            Count::Signup { day } => vec![add(daily(day), "signups", 1)],
            Count::RsvpCreated { event } => vec![
                add(stats(event), "going", 1),
                add(stats(event), "rsvps_created", 1),
            ],
            Count::RsvpCancelled { event } => vec![
                add(stats(event), "going", -1),
                add(stats(event), "rsvps_cancelled", 1),
            ],
        }
    }
}

#[async_trait]
impl Analytics for DynamoAnalytics {
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
