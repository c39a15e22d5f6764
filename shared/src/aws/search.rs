use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, PutRequest, WriteRequest};

use super::dynamo::{Item, s};
use crate::domain::{Event, EventId, SearchEntry, SearchQuery, Timestamp};
use crate::ports::{Applied, Cursor, Page, SearchIndex, StoreError};

/// Pages of entries one search reads at most before answering with what it has (and a
/// cursor to go on): bounded work per request whatever the query.
const MAX_PAGES: usize = 10;
const PAGE_ITEMS: i32 = 100;
/// BatchWriteItem calls one event's index update has in flight at once. An update of an event
/// with many words can take 30 chunks or more, and each message of a batch runs concurrently:
/// unbounded, that is hundreds of connections and requests at once against the table.
const CONCURRENT_CHUNKS: usize = 4;

fn list(values: impl IntoIterator<Item = String>) -> AttributeValue {
    AttributeValue::L(values.into_iter().map(AttributeValue::S).collect())
}

fn strings(item: &Item, name: &str) -> Vec<String> {
    item.get(name)
        .and_then(|v| v.as_l().ok())
        .map(|l| l.iter().filter_map(|v| v.as_s().ok().cloned()).collect())
        .unwrap_or_default()
}

fn manifest_key(id: &EventId) -> Item {
    HashMap::from([
        ("pk".to_owned(), s(format!("SEARCH#{id}"))),
        ("sk".to_owned(), s("MANIFEST")),
    ])
}

/// Search entries live in the read-model table: one item per (partition, event), keyed
/// `pk = <partition>`, `sk = <starts_at>#<id>`, and one manifest per event recording what it
/// is filed under, so an update or cancellation can remove stale entries.
#[derive(Debug, Clone)]
pub struct DynamoSearchIndex {
    client: Client,
    table: String,
}

impl DynamoSearchIndex {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Writes the entries in chunks of 25 (BatchWriteItem's limit), up to
    /// [`CONCURRENT_CHUNKS`] at a time: an event's entries are independent items, so a usual
    /// event costs one round trip, not one per chunk.
    async fn write(&self, requests: Vec<WriteRequest>) -> Result<(), StoreError> {
        use futures::{StreamExt, TryStreamExt};
        // Moved into their chunks, not cloned: an event's update is dozens of entries.
        let mut requests = requests.into_iter().peekable();
        let mut chunks = Vec::new();
        while requests.peek().is_some() {
            chunks.push(self.write_chunk(requests.by_ref().take(25).collect()));
        }
        futures::stream::iter(chunks)
            .buffer_unordered(CONCURRENT_CHUNKS)
            .try_collect()
            .await
    }

    /// One BatchWriteItem, its unprocessed items sent again with backoff (about 3 s in all).
    async fn write_chunk(&self, mut pending: Vec<WriteRequest>) -> Result<(), StoreError> {
        for attempt in 0..6 {
            if pending.is_empty() {
                return Ok(());
            }
            if attempt > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(50 << attempt)).await;
            }
            let output = self
                .client
                .batch_write_item()
                .request_items(&self.table, pending)
                .send()
                .await
                .map_err(|e| StoreError::unavailable(e.into_service_error()))?;
            pending = output
                .unprocessed_items
                .and_then(|mut m| m.remove(&self.table))
                .unwrap_or_default();
        }
        if pending.is_empty() {
            Ok(())
        } else {
            Err(StoreError::Corrupt("search entries left unwritten".into()))
        }
    }
}

fn key_of(pk: &str, sk: &str) -> Item {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

#[async_trait]
impl SearchIndex for DynamoSearchIndex {
    async fn index(&self, event: &Event) -> Result<Applied, StoreError> {
        let manifest = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(manifest_key(&event.id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::unavailable(e.into_service_error()))?
            .item;
        let indexed_version = manifest
            .as_ref()
            .and_then(|m| m.get("version")?.as_n().ok()?.parse::<u64>().ok());
        if indexed_version.is_some_and(|v| v >= event.version) {
            return Ok(Applied::Stale);
        }
        let old_sort_key = manifest
            .as_ref()
            .and_then(|m| m.get("sort_key")?.as_s().ok().cloned());
        let old_partitions: BTreeSet<String> = manifest
            .as_ref()
            .map(|m| strings(m, "partitions").into_iter().collect())
            .unwrap_or_default();
        let entry = SearchEntry::of(event);

        let mut requests = Vec::new();
        if let Some(old_sk) = &old_sort_key {
            for partition in &old_partitions {
                let still_there = entry
                    .as_ref()
                    .is_some_and(|e| &e.sort_key == old_sk && e.partitions.contains(partition));
                if !still_there {
                    let delete = DeleteRequest::builder()
                        .set_key(Some(key_of(partition, old_sk)))
                        .build()
                        .map_err(StoreError::unavailable)?;
                    requests.push(WriteRequest::builder().delete_request(delete).build());
                }
            }
        }
        if let Some(entry) = &entry {
            for partition in &entry.partitions {
                let mut item = key_of(partition, &entry.sort_key);
                item.insert("event_id".into(), s(event.id.to_string()));
                item.insert("organizer_id".into(), s(event.organizer_id.as_str()));
                item.insert("words".into(), list(entry.words.iter().cloned()));
                item.insert(
                    "tags".into(),
                    list(event.tags.iter().map(|t| t.as_str().to_owned())),
                );
                let put = PutRequest::builder()
                    .set_item(Some(item))
                    .build()
                    .map_err(StoreError::unavailable)?;
                requests.push(WriteRequest::builder().put_request(put).build());
            }
        }
        self.write(requests).await?;

        let mut new_manifest = manifest_key(&event.id);
        new_manifest.insert(
            "version".into(),
            AttributeValue::N(event.version.to_string()),
        );
        if let Some(entry) = &entry {
            new_manifest.insert("sort_key".into(), s(&entry.sort_key));
            new_manifest.insert("partitions".into(), list(entry.partitions.iter().cloned()));
        }
        let written = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(new_manifest))
            .condition_expression("attribute_not_exists(pk) OR version < :v")
            .expression_attribute_values(":v", AttributeValue::N(event.version.to_string()))
            .send()
            .await;
        match written {
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

    async fn search(
        &self,
        query: &SearchQuery,
        after: Timestamp,
        limit: u16,
        cursor: Option<Cursor>,
    ) -> Result<Page<EventId>, StoreError> {
        let partition = query.partition();
        // Sort keys are `<starts_at>#<id>`: "~" sorts after every id character, "\u{1}"
        // right after a given key, so the bounds below are exact.
        let mut low = format!("{after}#~");
        if let Some(from) = query.from {
            low = low.max(format!("{from}#"));
        }
        if let Some(cursor) = cursor {
            low = low.max(format!("{}#{}\u{1}", cursor.starts_at, cursor.id));
        }
        let high = query
            .to
            .map(|to| format!("{to}#~"))
            .unwrap_or_else(|| "~".to_owned());
        let mut ids = Vec::new();
        let mut last_seen: Option<String> = None;
        let mut start = None;
        let mut exhausted = false;
        if low > high {
            return Ok(Page {
                items: ids,
                next: None,
            });
        }
        for _ in 0..MAX_PAGES {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :p AND sk BETWEEN :low AND :high")
                .expression_attribute_values(":p", s(&partition))
                .expression_attribute_values(":low", s(&low))
                .expression_attribute_values(":high", s(&high))
                .set_exclusive_start_key(start)
                .limit(PAGE_ITEMS)
                .send()
                .await
                .map_err(|e| StoreError::unavailable(e.into_service_error()))?;
            for item in output.items.unwrap_or_default() {
                let sk = item
                    .get("sk")
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_default();
                let words: BTreeSet<String> = strings(&item, "words").into_iter().collect();
                let organizer = item
                    .get("organizer_id")
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_default();
                let id = item
                    .get("event_id")
                    .and_then(|v| v.as_s().ok())
                    .and_then(|id| EventId::parse("event_id", id).ok());
                if let Some(id) =
                    id.filter(|_| query.matches(&words, &strings(&item, "tags"), &organizer))
                {
                    ids.push(id);
                }
                last_seen = Some(sk);
                if ids.len() >= usize::from(limit) {
                    break;
                }
            }
            start = output.last_evaluated_key;
            if ids.len() >= usize::from(limit) {
                break;
            }
            if start.is_none() {
                exhausted = true;
                break;
            }
        }
        let next = if exhausted {
            None
        } else {
            last_seen.and_then(|sk| {
                let (at, id) = sk.split_once('#')?;
                Some(Cursor {
                    starts_at: Timestamp::parse("cursor", at).ok()?,
                    id: EventId::parse("cursor", id).ok()?,
                })
            })
        };
        Ok(Page { items: ids, next })
    }
}
