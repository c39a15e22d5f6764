use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};
use serde::{Deserialize, Serialize};

use crate::domain::{Event, EventId, Timestamp, UserId, Visibility};
use crate::envelope::Envelope;
use crate::ports::{
    Applied, Consistency, Cursor, EventReader, EventStore, EventView, Page, PageRequest, ReadModel,
    RsvpError, RsvpOutcome, StoreError, UpdateError, ViewedEvent, render_view,
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
/// The read model keeps each event's list view rendered (`view`) beside its attributes;
/// `view_format` says which rendering it is. Bump it whenever [`Event`]'s JSON changes shape:
/// items of another format are then rendered from their attributes on read, and rewritten by
/// the next envelope or `evently-admin rebuild-read-model` (the version guard lets an item of
/// the same version but an older format be replaced).
///
/// The view is stored as binary (the JSON's UTF-8 bytes), not as a string: the SDK decodes a
/// binary's base64 in bulk, where a string's escaped quotes are unescaped byte by byte (an
/// eighth of a warm GET /events), and DynamoDB sizes a binary by its bytes, not its base64.
/// Views stored as strings (by the first release of format 1) are still served.
const VIEW: &str = "view";
const VIEW_FORMAT: &str = "view_format";
const CURRENT_VIEW_FORMAT: u32 = 1;
/// How long an outbox item stays once written: long enough to replay the stream (24 h) twice.
const OUTBOX_RETENTION_SECONDS: i64 = 2 * 24 * 60 * 60;

fn event_key(id: &EventId) -> (String, String) {
    (format!("EVENT#{id}"), "EVENT".to_owned())
}

fn listing_sort_key(starts_at: Timestamp, id: &str) -> String {
    format!("{starts_at}#{id}")
}

/// An event's fields as attributes, as `serde_dynamo::to_item` writes them (a test holds the
/// two equal), with room for `extra` more. Built directly: through serde_dynamo every field
/// became serde_dynamo's attribute first, then the SDK's, in a second map, and that was a
/// sixth of read-model-updater's CPU per message (BENCHMARKS.md, "The consumer kit, leaner").
fn event_attributes(event: &Event, extra: usize) -> Item {
    let mut item = Item::with_capacity(13 + extra);
    let mut put = |name: &str, value: AttributeValue| {
        item.insert(name.to_owned(), value);
    };
    put("id", s(event.id.to_string()));
    put("title", s(event.title.as_str()));
    put("description", s(event.description.as_str()));
    put("starts_at", s(event.starts_at.to_string()));
    put("ends_at", s(event.ends_at.to_string()));
    put("venue", s(event.venue.as_str()));
    put(
        "tags",
        AttributeValue::L(event.tags.iter().map(|tag| s(tag.as_str())).collect()),
    );
    put("visibility", s(event.visibility.as_str()));
    if let Some(capacity) = event.capacity {
        put("capacity", AttributeValue::N(capacity.get().to_string()));
    }
    put("organizer_id", s(event.organizer_id.as_str()));
    put("status", s(event.status.as_str()));
    put("created_at", s(event.created_at.to_string()));
    put("version", AttributeValue::N(event.version.to_string()));
    item
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

    fn to_item(event: &Event) -> Item {
        // Room for the keys and the read model's view, so the map never grows on the way.
        let mut item = event_attributes(event, 7);
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
        item
    }

    fn from_item(mut item: Item) -> Result<Event, StoreError> {
        for key in [
            "pk",
            "sk",
            "entity",
            "list_pk",
            "list_sk",
            "attendees",
            VIEW,
            VIEW_FORMAT,
        ] {
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
        self.get_item(id, consistency, None)
            .await?
            .map(Self::from_item)
            .transpose()
    }

    async fn get_many(&self, ids: &[EventId]) -> Result<Vec<Event>, StoreError> {
        let keys = ids.iter().map(Self::key).collect();
        super::batch::get_all(&self.client, &self.table, keys, false, "events")
            .await?
            .into_iter()
            .map(Self::from_item)
            .collect()
    }

    async fn list_upcoming(&self, page: PageRequest) -> Result<Page<Event>, StoreError> {
        let events = self
            .query_listing(page, None)
            .await?
            .into_iter()
            .map(Self::from_item)
            .collect::<Result<Vec<_>, _>>()?;
        into_page(events, page.limit, |event| {
            Ok(Cursor {
                starts_at: event.starts_at,
                id: event.id,
            })
        })
    }
}

impl EventTable {
    /// The event's item, or only `projection`'s attributes of it if set.
    async fn get_item(
        &self,
        id: &EventId,
        consistency: Consistency,
        projection: Option<&Projection>,
    ) -> Result<Option<Item>, StoreError> {
        let mut request = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(id)))
            .consistent_read(consistency == Consistency::Strong);
        if let Some(projection) = projection {
            request = request
                .projection_expression(projection.expression)
                .set_expression_attribute_names(Some(projection.names()));
        }
        let output = request
            .send()
            .await
            .map_err(|e| StoreError::unavailable(e.into_service_error()))?;
        Ok(output.item)
    }

    /// The listing index from the page's start, one item more than the page (it tells whether
    /// another page exists without an empty last page); only `projection`'s attributes if set.
    async fn query_listing(
        &self,
        page: PageRequest,
        projection: Option<&Projection>,
    ) -> Result<Vec<Item>, StoreError> {
        let floor = listing_sort_key(page.after, AFTER_ALL_IDS);
        let from = match page.cursor {
            Some(cursor) => floor.max(listing_sort_key(cursor.starts_at, &cursor.id.to_string())),
            None => floor,
        };
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(LISTING_INDEX)
            .key_condition_expression("list_pk = :p AND list_sk > :from")
            .expression_attribute_values(":p", s(LISTING_PARTITION))
            .expression_attribute_values(":from", s(from))
            .limit(i32::from(page.limit) + 1);
        if let Some(projection) = projection {
            query = query
                .projection_expression(projection.expression)
                .set_expression_attribute_names(Some(projection.names()));
        }
        let output = query
            .send()
            .await
            .map_err(|e| StoreError::unavailable(e.into_service_error()))?;
        Ok(output.items.unwrap_or_default())
    }
}

/// A `ProjectionExpression` and the attribute names its placeholders stand for.
struct Projection {
    expression: &'static str,
    names: &'static [(&'static str, &'static str)],
}

impl Projection {
    fn names(&self) -> HashMap<String, String> {
        self.names
            .iter()
            .map(|(placeholder, name)| ((*placeholder).to_owned(), (*name).to_owned()))
            .collect()
    }
}

/// What GET /events/{id} needs: the view, its format, and what the ETag and the visibility
/// check read.
const VIEWED: Projection = Projection {
    expression: "#view, #format, #version, #visibility, #organizer",
    names: &[
        ("#view", VIEW),
        ("#format", VIEW_FORMAT),
        ("#version", "version"),
        ("#visibility", "visibility"),
        ("#organizer", "organizer_id"),
    ],
};

/// What the ETag and the visibility check read beside the view.
#[derive(Deserialize)]
struct ViewedItem {
    version: u64,
    visibility: Visibility,
    organizer_id: UserId,
}

impl ViewedItem {
    /// The item as a viewed event, or `None` if it has no view of the current format.
    fn parse(mut item: Item) -> Result<Option<ViewedEvent>, StoreError> {
        let Some(view) = current_view(&mut item)? else {
            return Ok(None);
        };
        let viewed: ViewedItem =
            serde_dynamo::from_item(item).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(Some(ViewedEvent {
            view,
            version: viewed.version,
            visibility: viewed.visibility,
            organizer_id: viewed.organizer_id,
        }))
    }
}

/// The item's view, taken out of it, if it is of the current format. Read straight from the
/// attribute map: a listing reads one per item, and going through serde_dynamo for them cost
/// about a tenth of a warm GET /events.
fn current_view(item: &mut Item) -> Result<Option<EventView>, StoreError> {
    let format = match item.get(VIEW_FORMAT) {
        Some(AttributeValue::N(n)) => n.parse::<u32>().ok(),
        _ => None,
    };
    if format != Some(CURRENT_VIEW_FORMAT) {
        return Ok(None);
    }
    match item.remove(VIEW) {
        Some(AttributeValue::B(view)) => String::from_utf8(view.into_inner())
            .map_err(|e| StoreError::Corrupt(format!("stored view: {e}")))
            .and_then(stored_view)
            .map(Some),
        Some(AttributeValue::S(view)) => stored_view(view).map(Some),
        None => Ok(None),
        Some(_) => Err(StoreError::Corrupt(
            "stored view: neither binary nor a string".into(),
        )),
    }
}

/// A stored view, checked to be JSON before it is spliced into a response.
fn stored_view(view: String) -> Result<EventView, StoreError> {
    serde_json::value::RawValue::from_string(view)
        .map_err(|e| StoreError::Corrupt(format!("stored view: {e}")))
}

/// What a listed view needs: the view and its format. The next page's cursor is read from the
/// last view (it carries the event's id and start): projecting `id` and `starts_at` too made
/// the SDK parse two more attributes for every item of every page.
const LISTED_VIEW: Projection = Projection {
    expression: "#view, #format",
    names: &[("#view", VIEW), ("#format", VIEW_FORMAT)],
};

/// The cursor that follows a listed view.
fn cursor_after(view: &EventView) -> Result<Cursor, StoreError> {
    #[derive(Deserialize)]
    struct Parts {
        id: EventId,
        starts_at: Timestamp,
    }
    let parts: Parts = serde_json::from_str(view.get())
        .map_err(|e| StoreError::Corrupt(format!("stored view: {e}")))?;
    Ok(Cursor {
        starts_at: parts.starts_at,
        id: parts.id,
    })
}

/// `items` (one more than `limit` if another page follows) as a page.
fn into_page<T>(
    mut items: Vec<T>,
    limit: u16,
    cursor_of: impl Fn(&T) -> Result<Cursor, StoreError>,
) -> Result<Page<T>, StoreError> {
    let next = if items.len() > usize::from(limit) {
        items.truncate(usize::from(limit));
        items.last().map(cursor_of).transpose()?
    } else {
        None
    };
    Ok(Page { items, next })
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

    async fn get_many(&self, ids: &[EventId]) -> Result<Vec<Event>, StoreError> {
        self.table.get_many(ids).await
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
            .transact_items(put_new(&self.table.table, EventTable::to_item(event))?)
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
    async fn update(
        &self,
        event: &Event,
        expected_version: u64,
        envelope: &Envelope,
    ) -> Result<(), UpdateError> {
        let table = &self.table.table;
        let mut item = EventTable::to_item(event);
        item.remove("pk");
        item.remove("sk");
        // SET every field of the new state; REMOVE what it no longer has. `attendees` is not
        // touched: RSVPs own it.
        let mut names = HashMap::new();
        let mut values = HashMap::new();
        let mut sets = Vec::new();
        for (i, (name, value)) in item.into_iter().enumerate() {
            names.insert(format!("#f{i}"), name);
            values.insert(format!(":v{i}"), value);
            sets.push(format!("#f{i} = :v{i}"));
        }
        let mut removes = Vec::new();
        if !event.is_listed_publicly() {
            removes.extend(["list_pk", "list_sk"]);
        }
        if event.capacity.is_none() {
            // `capacity` is a reserved word; SET aliases every name already.
            names.insert("#capacity".into(), "capacity".into());
            removes.push("#capacity");
        }
        let mut expression = format!("SET {}", sets.join(", "));
        if !removes.is_empty() {
            expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        let mut condition = "version = :expected".to_owned();
        values.insert(
            ":expected".into(),
            AttributeValue::N(expected_version.to_string()),
        );
        if let Some(capacity) = event.capacity {
            condition.push_str(" AND (attribute_not_exists(attendees) OR attendees <= :capacity)");
            values.insert(
                ":capacity".into(),
                AttributeValue::N(capacity.get().to_string()),
            );
        }
        let update = Update::builder()
            .table_name(table)
            .set_key(Some(EventTable::key(&event.id)))
            .update_expression(expression)
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(StoreError::unavailable)?;
        let result = self
            .table
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(update).build())
            .transact_items(outbox_put(table, envelope)?)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) => {
                let error = error.into_service_error();
                if !condition_failures(&error).contains(&0) {
                    return Err(StoreError::unavailable(error).into());
                }
                // Which half of the condition failed: the version, or the capacity?
                match self.table.get(&event.id, Consistency::Strong).await? {
                    Some(stored) if stored.version == expected_version => {
                        Err(UpdateError::CapacityBelowAttendees)
                    }
                    _ => Err(UpdateError::VersionMismatch),
                }
            }
        }
    }

    async fn rsvp(
        &self,
        event: &Event,
        user: &UserId,
        now: Timestamp,
        envelope: &Envelope,
    ) -> Result<RsvpOutcome, RsvpError> {
        let table = &self.table.table;
        let (pk, _) = event_key(&event.id);
        let mut rsvp: Item = HashMap::from([
            ("pk".to_owned(), s(pk)),
            ("sk".to_owned(), s(format!("RSVP#{user}"))),
            ("entity".to_owned(), s("rsvp")),
            ("event_id".to_owned(), s(event.id.to_string())),
            ("user_id".to_owned(), s(user.as_str())),
            ("at".to_owned(), s(now.to_string())),
        ]);
        rsvp.insert("user_pk".into(), s(format!("USER#{user}")));
        rsvp.insert("user_sk".into(), s(ulid::Ulid::generate().to_string()));
        let seat = Update::builder()
            .table_name(table)
            .set_key(Some(EventTable::key(&event.id)))
            .update_expression("SET attendees = if_not_exists(attendees, :zero) + :one")
            .condition_expression(
                "#status = :scheduled AND starts_at > :now \
                 AND (attribute_not_exists(#capacity) OR attribute_not_exists(attendees) \
                 OR attendees < #capacity)",
            )
            .expression_attribute_names("#status", "status")
            // `capacity` is a DynamoDB reserved word: expressions must alias it.
            .expression_attribute_names("#capacity", "capacity")
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":scheduled", s("scheduled"))
            .expression_attribute_values(":now", s(now.to_string()))
            .build()
            .map_err(StoreError::unavailable)?;
        let mut attempt = 0;
        loop {
            let result = self
                .table
                .client
                .transact_write_items()
                .transact_items(put_new(table, rsvp.clone())?)
                .transact_items(TransactWriteItem::builder().update(seat.clone()).build())
                .transact_items(outbox_put(table, envelope)?)
                .send()
                .await;
            let error = match result {
                Ok(_) => return Ok(RsvpOutcome::Created),
                Err(error) => error.into_service_error(),
            };
            let failed = condition_failures(&error);
            if failed.contains(&0) {
                return Ok(RsvpOutcome::AlreadyGoing);
            }
            if failed.contains(&1) {
                let current = self.table.get(&event.id, Consistency::Strong).await?;
                return Err(match current {
                    Some(e) if !e.is_cancelled() && e.starts_at > now => RsvpError::Full,
                    _ => RsvpError::Closed,
                });
            }
            // Two RSVPs racing for the same event item: DynamoDB cancels one with a
            // TransactionConflict. Retrying re-evaluates the seat count, so the loser either
            // gets the next seat or learns the event is full.
            attempt += 1;
            if !is_conflict(&error) || attempt >= 8 {
                return Err(StoreError::unavailable(error).into());
            }
            tokio::time::sleep(std::time::Duration::from_millis(20 * attempt + jitter_ms())).await;
        }
    }

    async fn cancel_rsvp(
        &self,
        event: &EventId,
        user: &UserId,
        envelope: &Envelope,
    ) -> Result<bool, StoreError> {
        let table = &self.table.table;
        let (pk, _) = event_key(event);
        let delete = Delete::builder()
            .table_name(table)
            .key("pk", s(pk))
            .key("sk", s(format!("RSVP#{user}")))
            .condition_expression("attribute_exists(pk)")
            .build()
            .map_err(StoreError::unavailable)?;
        let free = Update::builder()
            .table_name(table)
            .set_key(Some(EventTable::key(event)))
            .update_expression("SET attendees = attendees - :one")
            .condition_expression("attendees > :zero")
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .build()
            .map_err(StoreError::unavailable)?;
        let mut attempt = 0;
        loop {
            let result = self
                .table
                .client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().delete(delete.clone()).build())
                .transact_items(TransactWriteItem::builder().update(free.clone()).build())
                .transact_items(outbox_put(table, envelope)?)
                .send()
                .await;
            let error = match result {
                Ok(_) => return Ok(true),
                Err(error) => error.into_service_error(),
            };
            if condition_failures(&error).contains(&0) {
                return Ok(false);
            }
            attempt += 1;
            if !is_conflict(&error) || attempt >= 8 {
                return Err(StoreError::unavailable(error));
            }
            tokio::time::sleep(std::time::Duration::from_millis(20 * attempt + jitter_ms())).await;
        }
    }

    async fn attendees(
        &self,
        event: &EventId,
        resume: Option<String>,
        limit: u16,
    ) -> Result<(Vec<UserId>, Option<String>), StoreError> {
        let (pk, _) = event_key(event);
        let output = self
            .table
            .client
            .query()
            .table_name(&self.table.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :rsvp)")
            .expression_attribute_values(":pk", s(&pk))
            .expression_attribute_values(":rsvp", s("RSVP#"))
            .set_exclusive_start_key(resume_key(&pk, resume))
            .limit(i32::from(limit))
            .send()
            .await
            .map_err(|e| StoreError::unavailable(e.into_service_error()))?;
        let next = next_resume(output.last_evaluated_key.as_ref());
        let users = output
            .items
            .unwrap_or_default()
            .iter()
            .filter_map(|item| item.get("user_id")?.as_s().ok().cloned())
            .filter_map(|id| UserId::parse("user_id", &id).ok())
            .collect();
        Ok((users, next))
    }

    async fn rsvps_of(&self, user: &UserId, limit: u16) -> Result<Vec<EventId>, StoreError> {
        let output = self
            .table
            .client
            .query()
            .table_name(&self.table.table)
            .index_name(RSVP_INDEX)
            .key_condition_expression("user_pk = :u")
            .expression_attribute_values(":u", s(format!("USER#{user}")))
            .scan_index_forward(false)
            .limit(i32::from(limit))
            .send()
            .await
            .map_err(|e| StoreError::unavailable(e.into_service_error()))?;
        output
            .items
            .unwrap_or_default()
            .iter()
            .map(|item| {
                let raw = item.get("event_id").and_then(|v| v.as_s().ok());
                raw.and_then(|id| EventId::parse("event_id", id).ok())
                    .ok_or_else(|| StoreError::Corrupt("an RSVP without an event id".into()))
            })
            .collect()
    }
}

#[async_trait]
impl crate::ports::EventScan for DynamoEventStore {
    async fn scan_page(
        &self,
        resume: Option<String>,
    ) -> Result<(Vec<Event>, Option<String>), StoreError> {
        // The resume token is the last key DynamoDB evaluated, "pk\nsk": the filter runs after
        // the read, so that key may belong to any kind of item, not only an event.
        let start = match resume {
            Some(token) => {
                let (pk, sk) = token
                    .split_once('\n')
                    .ok_or_else(|| StoreError::Corrupt("malformed scan resume token".into()))?;
                Some(HashMap::from([
                    ("pk".to_owned(), s(pk)),
                    ("sk".to_owned(), s(sk)),
                ]))
            }
            None => None,
        };
        let output = self
            .table
            .client
            .scan()
            .table_name(&self.table.table)
            .filter_expression("entity = :event")
            .expression_attribute_values(":event", s(EVENT_ENTITY))
            .set_exclusive_start_key(start)
            .limit(200)
            .send()
            .await
            .map_err(|e| StoreError::unavailable(e.into_service_error()))?;
        let next = output.last_evaluated_key.as_ref().and_then(|key| {
            let pk = key.get("pk")?.as_s().ok()?;
            let sk = key.get("sk")?.as_s().ok()?;
            Some(format!("{pk}\n{sk}"))
        });
        let events = output
            .items
            .unwrap_or_default()
            .into_iter()
            .map(EventTable::from_item)
            .collect::<Result<_, _>>()?;
        Ok((events, next))
    }
}

/// Page tokens for queries within one partition: the last `sk` evaluated.
pub(crate) fn resume_key(pk: &str, resume: Option<String>) -> Option<Item> {
    resume.map(|sk| HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))]))
}

pub(crate) fn next_resume(output_key: Option<&Item>) -> Option<String> {
    output_key
        .and_then(|key| key.get("sk"))
        .and_then(|sk| sk.as_s().ok())
        .cloned()
}

/// The index of RSVPs by user (`user_pk`, newest `user_sk` first).
const RSVP_INDEX: &str = "by_user";

fn is_conflict(error: &TransactWriteItemsError) -> bool {
    match error {
        TransactWriteItemsError::TransactionCanceledException(e) => e
            .cancellation_reasons()
            .iter()
            .any(|r| r.code() == Some("TransactionConflict")),
        TransactWriteItemsError::TransactionInProgressException(_) => true,
        _ => false,
    }
}

/// A few milliseconds of spread, so racing retries do not collide again in lockstep.
fn jitter_ms() -> u64 {
    u64::from(ulid::Ulid::generate().random() as u8 % 20)
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

    /// The event's attributes plus its rendered view.
    fn to_item(event: &Event) -> Result<Item, StoreError> {
        let mut item = EventTable::to_item(event);
        let view: Box<str> = render_view(event)?.into();
        item.insert(
            VIEW.into(),
            AttributeValue::B(Blob::new(view.into_boxed_bytes().into_vec())),
        );
        item.insert(
            VIEW_FORMAT.into(),
            AttributeValue::N(CURRENT_VIEW_FORMAT.to_string()),
        );
        Ok(item)
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

    async fn get_many(&self, ids: &[EventId]) -> Result<Vec<Event>, StoreError> {
        self.table.get_many(ids).await
    }

    async fn list_upcoming(&self, page: PageRequest) -> Result<Page<Event>, StoreError> {
        self.table.list_upcoming(page).await
    }

    async fn get_view(
        &self,
        id: &EventId,
        consistency: Consistency,
    ) -> Result<Option<ViewedEvent>, StoreError> {
        let Some(item) = self.table.get_item(id, consistency, Some(&VIEWED)).await? else {
            return Ok(None);
        };
        match ViewedItem::parse(item)? {
            Some(viewed) => Ok(Some(viewed)),
            None => {
                tracing::warn!(
                    event_id = %id,
                    "read-model item without a current view; rendering it from its attributes \
                     (evently-admin rebuild-read-model rewrites it)"
                );
                // The events-table layout keeps no views: its reader renders them.
                self.table.get_view(id, consistency).await
            }
        }
    }

    async fn list_upcoming_views(&self, page: PageRequest) -> Result<Page<EventView>, StoreError> {
        let items = self.table.query_listing(page, Some(&LISTED_VIEW)).await?;
        let mut views = Vec::with_capacity(items.len());
        for mut item in items {
            match current_view(&mut item)? {
                Some(view) => views.push(view),
                None => {
                    tracing::warn!(
                        "read-model items without a current view; rendering the page from their \
                         attributes (evently-admin rebuild-read-model rewrites them)"
                    );
                    return self.table.list_upcoming_views(page).await;
                }
            }
        }
        into_page(views, page.limit, cursor_after)
    }
}

impl DynamoReadModel {
    /// An item of the same version but an older view format is rewritten, so a rebuild (or a
    /// redelivery) brings the views up to date.
    const NEWER: &str = "attribute_not_exists(pk) OR version < :v \
         OR (version = :v AND (attribute_not_exists(view_format) OR view_format < :f))";

    fn newer_values(event: &Event) -> HashMap<String, AttributeValue> {
        HashMap::from([
            (
                ":v".to_owned(),
                AttributeValue::N(event.version.to_string()),
            ),
            (
                ":f".to_owned(),
                AttributeValue::N(CURRENT_VIEW_FORMAT.to_string()),
            ),
        ])
    }

    /// [`ReadModel::apply`]'s write as a transaction entry, with the name of the item it
    /// writes.
    pub(crate) fn projection(&self, event: &Event) -> Result<super::once::Write, StoreError> {
        let (pk, sk) = event_key(&event.id);
        let put = Put::builder()
            .table_name(&self.table.table)
            .set_item(Some(Self::to_item(event)?))
            .condition_expression(Self::NEWER)
            .set_expression_attribute_values(Some(Self::newer_values(event)))
            .build()
            .map_err(StoreError::unavailable)?;
        Ok(super::once::Write::Own {
            item: super::once::item_name(
                &self.table.table,
                &HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))]),
            ),
            write: Box::new(TransactWriteItem::builder().put(put).build()),
        })
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
            .set_item(Some(Self::to_item(event)?))
            .condition_expression(Self::NEWER)
            .set_expression_attribute_values(Some(Self::newer_values(event)))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture_event() -> Event {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../events-fixtures/envelope-event-created.json"
        );
        let envelope: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        serde_json::from_value(envelope["data"].clone()).unwrap()
    }

    #[test]
    fn an_event_is_stored_with_the_attributes_serde_dynamo_would_write() {
        let fixture = fixture_event();
        let mut limited = fixture.clone();
        limited.capacity = Some(crate::domain::Capacity::new("capacity", 12).unwrap());
        limited.tags = crate::domain::Tags::default();
        limited.status = crate::domain::EventStatus::Cancelled;
        limited.visibility = Visibility::Private;
        assert_ne!(
            fixture.capacity, limited.capacity,
            "both shapes of capacity"
        );

        for event in [fixture, limited] {
            let built = event_attributes(&event, 0);

            let serialised: Item = serde_dynamo::to_item(&event).unwrap();
            assert_eq!(built, serialised, "{event:?}");
            assert_eq!(EventTable::from_item(built).unwrap(), event);
        }
    }

    #[test]
    fn the_view_format_names_the_fields_its_views_were_rendered_with() {
        let view: serde_json::Value =
            serde_json::from_str(render_view(&fixture_event()).unwrap().get()).unwrap();

        let mut fields: Vec<&str> = view
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        fields.sort_unstable();

        // If this fails, the event's JSON changed shape: stored views are now out of date.
        // Bump CURRENT_VIEW_FORMAT and update the list.
        assert_eq!(
            (CURRENT_VIEW_FORMAT, fields),
            (
                1,
                vec![
                    "capacity",
                    "created_at",
                    "description",
                    "ends_at",
                    "id",
                    "organizer_id",
                    "starts_at",
                    "status",
                    "tags",
                    "title",
                    "venue",
                    "version",
                    "visibility",
                ]
            )
        );
    }

    #[test]
    fn a_page_has_a_next_cursor_only_when_the_extra_item_came_back() {
        let event = fixture_event();
        let cursor = |e: &Event| {
            Ok(Cursor {
                starts_at: e.starts_at,
                id: e.id,
            })
        };

        let full = into_page(vec![event.clone(), event.clone(), event.clone()], 2, cursor).unwrap();
        let last = into_page(vec![event.clone(), event.clone()], 2, cursor).unwrap();

        assert_eq!((full.items.len(), full.next), (2, cursor(&event).ok()));
        assert_eq!((last.items.len(), last.next), (2, None));
    }

    #[test]
    fn the_next_page_starts_after_the_last_listed_view() {
        let event = fixture_event();

        let cursor = cursor_after(&render_view(&event).unwrap()).unwrap();

        assert_eq!(
            cursor,
            Cursor {
                starts_at: event.starts_at,
                id: event.id
            }
        );
    }

    fn viewed_item(view: AttributeValue, format: &str) -> Item {
        HashMap::from([
            (VIEW.to_owned(), view),
            (VIEW_FORMAT.to_owned(), AttributeValue::N(format.to_owned())),
            ("id".to_owned(), s("01J00000000000000000000000")),
        ])
    }

    #[test]
    fn only_a_stored_view_of_the_current_format_is_served() {
        const VIEW_JSON: &str = r#"{"id":"01J00000000000000000000000"}"#;
        let view = || AttributeValue::B(Blob::new(VIEW_JSON));
        let mut current = viewed_item(view(), &CURRENT_VIEW_FORMAT.to_string());
        let mut older = viewed_item(view(), &(CURRENT_VIEW_FORMAT - 1).to_string());
        let mut unversioned = viewed_item(view(), "1");
        unversioned.remove(VIEW_FORMAT);

        let served = current_view(&mut current).unwrap();

        assert_eq!(
            served.map(|v| v.get().to_owned()).as_deref(),
            Some(VIEW_JSON)
        );
        assert!(
            !current.contains_key(VIEW),
            "the view is moved out, not copied"
        );
        assert!(current_view(&mut older).unwrap().is_none());
        assert!(current_view(&mut unversioned).unwrap().is_none());
    }

    #[test]
    fn a_view_stored_as_a_string_by_the_first_release_is_still_served() {
        const VIEW_JSON: &str = r#"{"id":"01J00000000000000000000000"}"#;
        let mut item = viewed_item(s(VIEW_JSON), &CURRENT_VIEW_FORMAT.to_string());

        let served = current_view(&mut item).unwrap();

        assert_eq!(
            served.map(|v| v.get().to_owned()).as_deref(),
            Some(VIEW_JSON)
        );
    }

    #[test]
    fn the_read_model_stores_the_view_as_the_bytes_of_its_json() {
        let event = fixture_event();

        let item = DynamoReadModel::to_item(&event).unwrap();

        let Some(AttributeValue::B(view)) = item.get(VIEW) else {
            panic!("a binary view: {:?}", item.get(VIEW));
        };
        assert_eq!(view.as_ref(), render_view(&event).unwrap().get().as_bytes());
    }

    #[test]
    fn a_stored_view_that_is_not_json_is_a_corrupt_item_not_a_broken_page() {
        let format = CURRENT_VIEW_FORMAT.to_string();
        let mut truncated = viewed_item(AttributeValue::B(Blob::new(r#"{"id":"01J0"#)), &format);
        let mut not_utf8 = viewed_item(AttributeValue::B(Blob::new(vec![0xff, 0xfe])), &format);
        let mut number = viewed_item(AttributeValue::N("1".into()), &format);

        for item in [&mut truncated, &mut not_utf8, &mut number] {
            assert!(matches!(current_view(item), Err(StoreError::Corrupt(_))));
        }
    }
}
