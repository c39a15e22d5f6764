use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use serde::{Deserialize, Serialize};

use crate::domain::{Event, EventId, Timestamp};
use crate::envelope::Envelope;
use crate::ports::{
    Applied, Consistency, Cursor, EventReader, EventStore, Page, PageRequest, ReadModel, StoreError,
};

pub(crate) type Item = HashMap<String, AttributeValue>;

/// Attribute values the stream filter and the relay both depend on.
pub const OUTBOX_ENTITY: &str = "outbox";
const EVENT_ENTITY: &str = "event";
/// The sparse index of upcoming public events: only public events carry `list_pk`.
const LISTING_INDEX: &str = "upcoming";
const LISTING_PARTITION: &str = "PUBLIC";
/// Sorts after every ULID character, so `<instant>#~` is past every event at that instant.
const AFTER_ALL_IDS: &str = "~";
/// How long an outbox item stays once written: long enough to replay the stream (24 h) twice.
const OUTBOX_RETENTION_SECONDS: i64 = 2 * 24 * 60 * 60;

fn event_key(id: &EventId) -> (String, String) {
    (format!("EVENT#{id}"), "EVENT".to_owned())
}

fn listing_sort_key(starts_at: Timestamp, id: &str) -> String {
    format!("{starts_at}#{id}")
}

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// How events are laid out in a table. The events table and the read model share it, so one
/// reader serves GET from either.
#[derive(Debug, Clone)]
pub struct EventTable {
    client: Client,
    table: String,
}

impl EventTable {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    fn to_item(event: &Event) -> Result<Item, StoreError> {
        let mut item: Item =
            serde_dynamo::to_item(event).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let (pk, sk) = event_key(&event.id);
        item.insert("pk".into(), s(pk));
        item.insert("sk".into(), s(sk));
        item.insert("entity".into(), s(EVENT_ENTITY));
        if event.is_listed_publicly() {
            item.insert("list_pk".into(), s(LISTING_PARTITION));
            item.insert(
                "list_sk".into(),
                s(listing_sort_key(event.starts_at, &event.id.to_string())),
            );
        }
        Ok(item)
    }

    fn from_item(mut item: Item) -> Result<Event, StoreError> {
        for key in ["pk", "sk", "entity", "list_pk", "list_sk"] {
            item.remove(key);
        }
        serde_dynamo::from_item(item).map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    fn key(id: &EventId) -> Item {
        let (pk, sk) = event_key(id);
        HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
    }
}

#[async_trait]
impl EventReader for EventTable {
    async fn get(
        &self,
        id: &EventId,
        consistency: Consistency,
    ) -> Result<Option<Event>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(id)))
            .consistent_read(consistency == Consistency::Strong)
            .send()
            .await
            .map_err(|e| StoreError::unavailable(e.into_service_error()))?;
        output.item.map(Self::from_item).transpose()
    }

    async fn list_upcoming(&self, page: PageRequest) -> Result<Page<Event>, StoreError> {
        let floor = listing_sort_key(page.after, AFTER_ALL_IDS);
        let from = match page.cursor {
            Some(cursor) => floor.max(listing_sort_key(cursor.starts_at, &cursor.id.to_string())),
            None => floor,
        };
        // One extra item tells whether another page exists without an empty last page.
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(LISTING_INDEX)
            .key_condition_expression("list_pk = :p AND list_sk > :from")
            .expression_attribute_values(":p", s(LISTING_PARTITION))
            .expression_attribute_values(":from", s(from))
            .limit(i32::from(page.limit) + 1)
            .send()
            .await
            .map_err(|e| StoreError::unavailable(e.into_service_error()))?;
        let mut items = output
            .items
            .unwrap_or_default()
            .into_iter()
            .map(Self::from_item)
            .collect::<Result<Vec<_>, _>>()?;
        let next = if items.len() > usize::from(page.limit) {
            items.truncate(usize::from(page.limit));
            items.last().map(|last| Cursor {
                starts_at: last.starts_at,
                id: last.id,
            })
        } else {
            None
        };
        Ok(Page { items, next })
    }
}

/// An outbox item as the stream hands it to the relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxRecord {
    pub pk: String,
    pub sk: String,
    pub entity: String,
    pub event_type: String,
    pub correlation_id: String,
    pub envelope: String,
    pub expires_at: i64,
}

impl OutboxRecord {
    pub fn new(envelope: &Envelope) -> Self {
        Self {
            pk: format!("OUTBOX#{}", envelope.id),
            sk: "OUTBOX".to_owned(),
            entity: OUTBOX_ENTITY.to_owned(),
            event_type: envelope.event_type.clone(),
            correlation_id: envelope.correlationid.to_string(),
            envelope: envelope.to_json(),
            expires_at: envelope.time.unix_seconds() + OUTBOX_RETENTION_SECONDS,
        }
    }
}

/// The events table: the system of record, with the outbox beside the events.
#[derive(Debug, Clone)]
pub struct DynamoEventStore {
    table: EventTable,
}

impl DynamoEventStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            table: EventTable::new(client, table),
        }
    }
}

#[async_trait]
impl EventReader for DynamoEventStore {
    async fn get(
        &self,
        id: &EventId,
        consistency: Consistency,
    ) -> Result<Option<Event>, StoreError> {
        self.table.get(id, consistency).await
    }

    async fn list_upcoming(&self, page: PageRequest) -> Result<Page<Event>, StoreError> {
        self.table.list_upcoming(page).await
    }
}

#[async_trait]
impl EventStore for DynamoEventStore {
    async fn create(&self, event: &Event, envelope: &Envelope) -> Result<(), StoreError> {
        let result = self
            .table
            .client
            .transact_write_items()
            .transact_items(put_new(&self.table.table, EventTable::to_item(event)?)?)
            .transact_items(outbox_put(&self.table.table, envelope)?)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) => {
                let error = error.into_service_error();
                if condition_failures(&error).is_empty() {
                    Err(StoreError::unavailable(error))
                } else {
                    Err(StoreError::AlreadyExists)
                }
            }
        }
    }
}

/// A transaction entry that puts `item` only if nothing has its key yet.
pub(crate) fn put_new(table: &str, item: Item) -> Result<TransactWriteItem, StoreError> {
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(pk)")
        .build()
        .map_err(StoreError::unavailable)?;
    Ok(TransactWriteItem::builder().put(put).build())
}

/// The transaction entry that records `envelope` in the outbox of `table` (the events table).
pub(crate) fn outbox_put(
    table: &str,
    envelope: &Envelope,
) -> Result<TransactWriteItem, StoreError> {
    let item: Item = serde_dynamo::to_item(OutboxRecord::new(envelope))
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    put_new(table, item)
}

/// The positions of the transaction entries whose condition failed, in request order.
pub(crate) fn condition_failures(error: &TransactWriteItemsError) -> Vec<usize> {
    match error {
        TransactWriteItemsError::TransactionCanceledException(e) => e
            .cancellation_reasons()
            .iter()
            .enumerate()
            .filter(|(_, r)| r.code() == Some("ConditionalCheckFailed"))
            .map(|(i, _)| i)
            .collect(),
        _ => Vec::new(),
    }
}

/// The read model table: projections of events, written only by the read-model-updater.
#[derive(Debug, Clone)]
pub struct DynamoReadModel {
    table: EventTable,
}

impl DynamoReadModel {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            table: EventTable::new(client, table),
        }
    }
}

#[async_trait]
impl EventReader for DynamoReadModel {
    async fn get(
        &self,
        id: &EventId,
        consistency: Consistency,
    ) -> Result<Option<Event>, StoreError> {
        self.table.get(id, consistency).await
    }

    async fn list_upcoming(&self, page: PageRequest) -> Result<Page<Event>, StoreError> {
        self.table.list_upcoming(page).await
    }
}

#[async_trait]
impl ReadModel for DynamoReadModel {
    async fn apply(&self, event: &Event) -> Result<Applied, StoreError> {
        let result = self
            .table
            .client
            .put_item()
            .table_name(&self.table.table)
            .set_item(Some(EventTable::to_item(event)?))
            .condition_expression("attribute_not_exists(pk) OR version < :v")
            .expression_attribute_values(":v", AttributeValue::N(event.version.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Applied::Changed),
            Err(error) => {
                let error = error.into_service_error();
                if error.is_conditional_check_failed_exception() {
                    Ok(Applied::Stale)
                } else {
                    Err(StoreError::unavailable(error))
                }
            }
        }
    }
}
