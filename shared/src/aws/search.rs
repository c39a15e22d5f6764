use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeValue, DeleteRequest, Put, PutRequest, TransactWriteItem, WriteRequest,
};

use super::batch::{ATTEMPTS, back_off, get_all};
use super::dynamo::{Item, s};
use super::once::{Write, item_name};
use crate::domain::{Event, EventId, SEARCH_LAYOUT, SearchEntry, SearchQuery, Timestamp};
use crate::ports::{Applied, Cursor, Page, SearchIndex, StoreError};

/// Pages of entries one search reads at most before answering with what it has (and a
/// cursor to go on): bounded work per request whatever the query.
const MAX_PAGES: usize = 10;
const PAGE_ITEMS: i32 = 100;
/// BatchWriteItem calls one event's index update has in flight at once. An update of an event
/// with many words can take 30 chunks or more, and each message of a batch runs concurrently:
/// unbounded, that is hundreds of connections and requests at once against the table.
const CONCURRENT_CHUNKS: usize = 4;
/// Values as one string attribute, separated by spaces (no word, tag or partition key can
/// hold one). An event has one entry per partition it is filed under, each with its words:
/// as one string they are one attribute value to write and sign, where a list was one per
/// word (BENCHMARKS.md, "search-index in batches").
fn spaced<'a>(values: impl Iterator<Item = &'a str>) -> String {
    values.collect::<Vec<_>>().join(" ")
}

/// The values of an attribute: one string of them, or a list as items were written before
/// they were joined.
fn split(item: &Item, name: &str) -> Vec<String> {
    match item.get(name) {
        Some(AttributeValue::S(joined)) => joined.split_whitespace().map(str::to_owned).collect(),
        Some(AttributeValue::L(values)) => values
            .iter()
            .filter_map(|v| v.as_s().ok().cloned())
            .collect(),
        _ => Vec::new(),
    }
}

/// Marks a tag among an entry's words: no word holds a `#` (words are letters and digits), so
/// a tag can never pass for a word, nor a word for a tag.
const TAG_MARK: char = '#';

/// An entry's words and tags as its `words` attribute holds them: `rust night #rust`. One
/// attribute where the tags had their own (BENCHMARKS.md, "Stop words and the organizer first").
fn terms_of(entry: &SearchEntry) -> String {
    let mut terms = spaced(entry.words.iter().map(String::as_str));
    for tag in &entry.tags {
        terms.push(' ');
        terms.push(TAG_MARK);
        terms.push_str(tag);
    }
    terms
}

/// The words and the tags of an entry as read: tags from its words (layout 3) or their own
/// attribute (before).
fn words_and_tags(item: &Item) -> (BTreeSet<String>, Vec<String>) {
    let mut words = BTreeSet::new();
    let mut tags = split(item, "tags");
    for term in split(item, "words") {
        match term.strip_prefix(TAG_MARK) {
            Some(tag) => tags.push(tag.to_owned()),
            None => {
                words.insert(term);
            }
        }
    }
    (words, tags)
}

fn manifest_key(id: &EventId) -> Item {
    HashMap::from([
        ("pk".to_owned(), s(format!("SEARCH#{id}"))),
        ("sk".to_owned(), s("MANIFEST")),
    ])
}

/// Search entries live in the read-model table: one item per (partition, event), keyed
/// `pk = <partition>`, `sk = <starts_at>#<id>`, with the event's words and tags for checking a
/// query's other conditions (the organizer is the partition's, when a query names one), and
/// one manifest per event recording what it is filed under, so an update or cancellation can
/// remove stale entries.
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

    /// The deletes of what the event's older version was filed under and is no longer, and
    /// the puts of its `entry` now (none for an event that must not be findable).
    pub(crate) fn requests(
        entry: Option<&SearchEntry>,
        manifest: &Manifest,
    ) -> Result<Vec<WriteRequest>, StoreError> {
        if let Some(entry) = entry
            && manifest.files(entry)
        {
            // An update the index cannot see (the capacity, say): every entry is already as it
            // would be written, so none is, where each was one write unit again.
            return Ok(Vec::new());
        }
        let mut requests = Vec::new();
        if let Some(old_sk) = &manifest.sort_key {
            for partition in &manifest.partitions {
                let still_there = entry
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
        if let Some(entry) = entry {
            // Every entry of the event carries the same words and tags: built once, cloned.
            let words = s(terms_of(entry));
            for partition in &entry.partitions {
                let mut item = Item::with_capacity(3);
                item.insert("pk".to_owned(), s(partition));
                item.insert("sk".to_owned(), s(&entry.sort_key));
                item.insert("words".into(), words.clone());
                let put = PutRequest::builder()
                    .set_item(Some(item))
                    .build()
                    .map_err(StoreError::unavailable)?;
                requests.push(WriteRequest::builder().put_request(put).build());
            }
        }
        Ok(requests)
    }

    /// The manifests of `ids` (distinct), read strongly in one BatchGetItem per 100 ids; an id
    /// with none is absent from the map.
    pub(crate) async fn manifests(
        &self,
        ids: &[EventId],
    ) -> Result<HashMap<EventId, Manifest>, StoreError> {
        let keys = ids.iter().map(manifest_key).collect();
        let items = get_all(&self.client, &self.table, keys, true, "search manifests").await?;
        let mut found = HashMap::with_capacity(items.len());
        for item in items {
            let id = item
                .get("pk")
                .and_then(|v| v.as_s().ok())
                .and_then(|pk| pk.strip_prefix("SEARCH#"))
                .and_then(|id| EventId::parse("pk", id).ok());
            if let Some(id) = id {
                found.insert(id, Manifest::of(Some(&item)));
            }
        }
        Ok(found)
    }

    /// `event`'s manifest, put only over an older one: alone ([`SearchIndex::index`]) or in a
    /// transaction ([`Self::manifest_write`]).
    fn manifest_put(&self, event: &Event, entry: Option<&SearchEntry>) -> Result<Put, StoreError> {
        Put::builder()
            .table_name(&self.table)
            .set_item(Some(manifest_item(event, entry)))
            .condition_expression(NEWER_MANIFEST)
            .set_expression_attribute_values(Some(newer_values(event)))
            .build()
            .map_err(StoreError::unavailable)
    }

    /// `event`'s manifest as a transaction entry, with the name of the item it writes.
    pub(crate) fn manifest_write(
        &self,
        event: &Event,
        entry: Option<&SearchEntry>,
    ) -> Result<Write, StoreError> {
        let put = self.manifest_put(event, entry)?;
        Ok(Write::Own {
            item: item_name(&self.table, &manifest_key(&event.id)),
            write: Box::new(TransactWriteItem::builder().put(put).build()),
        })
    }

    /// Writes the entries in chunks of 25 (BatchWriteItem's limit), up to
    /// [`CONCURRENT_CHUNKS`] at a time: an event's entries are independent items, so a usual
    /// event costs one round trip, not one per chunk.
    pub(crate) async fn write(&self, requests: Vec<WriteRequest>) -> Result<(), StoreError> {
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
        for attempt in 0..ATTEMPTS {
            if pending.is_empty() {
                return Ok(());
            }
            back_off(attempt).await;
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
            Err(StoreError::unavailable(Unwritten(ATTEMPTS)))
        }
    }
}

/// What an event is filed under now, as its manifest says (nothing, before its first index).
#[derive(Debug, Default)]
pub(crate) struct Manifest {
    version: Option<u64>,
    /// [`SEARCH_LAYOUT`] of its entries; 1 for a manifest written before layouts were named.
    layout: u32,
    sort_key: Option<String>,
    partitions: BTreeSet<String>,
    /// The entries' `words` attribute, as written in each; absent before layout 2.
    words: Option<String>,
}

impl Manifest {
    fn of(item: Option<&Item>) -> Self {
        let Some(item) = item else {
            return Self::default();
        };
        Self {
            version: item
                .get("version")
                .and_then(|v| v.as_n().ok()?.parse().ok()),
            layout: item
                .get("layout")
                .and_then(|v| v.as_n().ok()?.parse().ok())
                .unwrap_or(1),
            sort_key: item.get("sort_key").and_then(|v| v.as_s().ok().cloned()),
            partitions: split(item, "partitions").into_iter().collect(),
            words: item.get("words").and_then(|v| v.as_s().ok().cloned()),
        }
    }

    /// Whether `event` is already indexed as new or newer, in this release's layout or a later
    /// one: nothing to write. An event filed in an older layout is filed again, even at its
    /// version: that is how the rebuild moves the index to a new layout. One in a later
    /// layout is left alone, as the manifest's guard would refuse its manifest anyway, and
    /// entries written without their manifest could never be deleted.
    pub(crate) fn covers(&self, event: &Event) -> bool {
        self.version.is_some_and(|v| v >= event.version) && self.layout >= SEARCH_LAYOUT
    }

    /// Whether the entries this manifest names are `entry`'s, as written. An entry holds its
    /// partition and sort key, and the event's words and tags; the manifest keeps those
    /// words, which partitions alone do not tell (words sharing a home share its partition,
    /// and stop words have none): with all three the same, every entry would be written
    /// again as it is.
    pub(crate) fn files(&self, entry: &SearchEntry) -> bool {
        self.sort_key.as_deref() == Some(entry.sort_key.as_str())
            && self.partitions == entry.partitions
            && self.words.as_deref() == Some(terms_of(entry).as_str())
    }
}

/// The manifest's guard: only a newer version replaces it, or the same version filed in an
/// older layout (the rebuild's re-filing).
const NEWER_MANIFEST: &str = "attribute_not_exists(pk) OR version < :v \
     OR (version = :v AND (attribute_not_exists(layout) OR layout < :layout))";

fn newer_values(event: &Event) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (
            ":v".to_owned(),
            AttributeValue::N(event.version.to_string()),
        ),
        (
            ":layout".to_owned(),
            AttributeValue::N(SEARCH_LAYOUT.to_string()),
        ),
    ])
}

fn manifest_item(event: &Event, entry: Option<&SearchEntry>) -> Item {
    let mut manifest = manifest_key(&event.id);
    manifest.insert(
        "version".into(),
        AttributeValue::N(event.version.to_string()),
    );
    manifest.insert(
        "layout".into(),
        AttributeValue::N(SEARCH_LAYOUT.to_string()),
    );
    if let Some(entry) = entry {
        manifest.insert("sort_key".into(), s(&entry.sort_key));
        // One string, not a list of one value per partition: the manifests of a batch go in
        // one transaction, and this was most of its attribute values.
        manifest.insert(
            "partitions".into(),
            s(spaced(entry.partitions.iter().map(String::as_str))),
        );
        manifest.insert("words".into(), s(terms_of(entry)));
    }
    manifest
}

/// BatchWriteItem's unprocessed items were still unprocessed after its retries: throttling,
/// worth the message's retry.
#[derive(Debug, thiserror::Error)]
#[error("search entries left unwritten after {0} attempts")]
struct Unwritten(u32);

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
        let manifest = Manifest::of(manifest.as_ref());
        if manifest.covers(event) {
            return Ok(Applied::Stale);
        }
        let entry = SearchEntry::of(event);
        self.write(Self::requests(entry.as_ref(), &manifest)?)
            .await?;
        let put = self.manifest_put(event, entry.as_ref())?;
        let written = self
            .client
            .put_item()
            .table_name(put.table_name)
            .set_item(Some(put.item))
            .set_condition_expression(put.condition_expression)
            .set_expression_attribute_values(put.expression_attribute_values)
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
        let Some(partition) = query.partition() else {
            return Err(StoreError::Corrupt(
                "a query no partition narrows reads the listing, not the index".to_owned(),
            ));
        };
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
                let (words, tags) = words_and_tags(&item);
                // The id ends the sort key; entries written before it was left out of them
                // also carry it as `event_id`.
                let id = item
                    .get("event_id")
                    .and_then(|v| v.as_s().ok())
                    .map(String::as_str)
                    .or_else(|| sk.split_once('#').map(|(_, id)| id))
                    .and_then(|id| EventId::parse("event_id", id).ok());
                if let Some(id) = id.filter(|_| query.matches(&words, &tags)) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        Capacity, Description, EventDraft, EventPatch, Schedule, Tag, Tags, Title, UserId, Venue,
        Visibility,
    };

    /// A list attribute, as manifests held their partitions before layout 3.
    fn list(values: impl IntoIterator<Item = String>) -> AttributeValue {
        AttributeValue::L(values.into_iter().map(AttributeValue::S).collect())
    }

    fn event() -> Event {
        let now = Timestamp::now();
        let draft = EventDraft {
            title: Title::parse("title", "Rust & Lambda night").unwrap(),
            description: Description::parse("description", "Talks and pizza").unwrap(),
            schedule: Schedule::upcoming(now.plus_seconds(3600), now.plus_seconds(7200), now)
                .unwrap(),
            venue: Venue::parse("venue", "Town hall").unwrap(),
            tags: Tags::new(vec![Tag::parse("tags", "rust").unwrap()]).unwrap(),
            visibility: Visibility::Public,
            capacity: None,
        };
        Event::create(draft, UserId::parse("sub", "organizer").unwrap(), now)
    }

    /// What indexing `before`'s next version, after `patch`, writes over `before`'s entries:
    /// (deletes, puts), and how many partitions the new version is filed under.
    fn written_after(before: &Event, patch: EventPatch) -> ((usize, usize), usize) {
        let (after, changed) = before.patched(patch, Timestamp::now()).unwrap();
        assert!(!changed.is_empty(), "the patch must change something");
        let filed = SearchEntry::of(before);
        let manifest = Manifest::of(Some(&manifest_item(before, filed.as_ref())));
        let entry = SearchEntry::of(&after);

        let requests = DynamoSearchIndex::requests(entry.as_ref(), &manifest).unwrap();

        let deletes = requests
            .iter()
            .filter(|r| r.delete_request.is_some())
            .count();
        let partitions = entry.map_or(0, |e| e.partitions.len());
        ((deletes, requests.len() - deletes), partitions)
    }

    #[test]
    fn an_entry_holds_its_words_and_tags_and_not_its_organizer() {
        let event = event();
        let entry = SearchEntry::of(&event).unwrap();

        let requests = DynamoSearchIndex::requests(Some(&entry), &Manifest::default()).unwrap();

        assert_eq!(requests.len(), entry.partitions.len());
        for request in &requests {
            let item = &request.put_request.as_ref().unwrap().item;
            let mut names: Vec<&str> = item.keys().map(String::as_str).collect();
            names.sort_unstable();
            assert_eq!(names, ["pk", "sk", "words"]);
            let (words, tags) = words_and_tags(item);
            assert_eq!(words, entry.words);
            assert_eq!(tags, ["rust"]);
        }
    }

    #[test]
    fn an_entry_written_before_layout_3_is_read_with_its_own_tags() {
        let joined = HashMap::from([
            ("words".to_owned(), s("rust night")),
            ("tags".to_owned(), s("rust aws-lambda")),
        ]);
        let listed = HashMap::from([
            (
                "words".to_owned(),
                list(["rust".to_owned(), "night".to_owned()]),
            ),
            ("tags".to_owned(), list(["rust".to_owned()])),
        ]);

        let (words, tags) = words_and_tags(&joined);
        let (listed_words, listed_tags) = words_and_tags(&listed);

        assert_eq!(
            words,
            BTreeSet::from(["night".to_owned(), "rust".to_owned()])
        );
        assert_eq!(tags, ["rust", "aws-lambda"]);
        assert_eq!(listed_words, words);
        assert_eq!(listed_tags, ["rust"]);
    }

    #[test]
    fn an_update_the_index_cannot_see_writes_no_entry() {
        let capacity = Some(Some(Capacity::new("capacity", 40).unwrap()));

        let (written, _) = written_after(
            &event(),
            EventPatch {
                capacity,
                ..Default::default()
            },
        );

        assert_eq!(written, (0, 0));
    }

    #[test]
    fn a_new_title_writes_every_entry_again_and_deletes_the_words_gone() {
        let title = Some(Title::parse("title", "Rust & Axum night").unwrap());

        let (written, partitions) = written_after(
            &event(),
            EventPatch {
                title,
                ..Default::default()
            },
        );

        // Every entry carries the event's words, so all are written with the new ones; the
        // partitions only "lambda" was filed under (its prefixes, its home among them) are
        // removed.
        assert_eq!(written, (2, partitions));
    }

    #[test]
    fn a_new_word_at_the_home_of_the_old_one_writes_every_entry_again() {
        let description = Some(Description::parse("description", "Talks and pizzas").unwrap());

        let (written, partitions) = written_after(
            &event(),
            EventPatch {
                description,
                ..Default::default()
            },
        );

        // "pizza" and "pizzas" share PREFIX#pizza: the partitions are the same, the words not.
        assert_eq!(written, (0, partitions));
    }

    #[test]
    fn an_event_filed_in_the_older_layout_is_filed_again_at_its_version() {
        // Arrange: the manifest as layout 1 wrote it: no layout, no words, a partition per word.
        let event = event();
        let entry = SearchEntry::of(&event).unwrap();
        let mut older = manifest_item(&event, Some(&entry));
        older.remove("layout");
        older.remove("words");
        let mut partitions: Vec<String> = entry.partitions.iter().cloned().collect();
        partitions.push("TERM#talks".to_owned());
        older.insert("partitions".into(), list(partitions));

        // Act
        let manifest = Manifest::of(Some(&older));
        let requests = DynamoSearchIndex::requests(Some(&entry), &manifest).unwrap();

        // Assert: not covered, its word partition deleted, every entry written; then covered.
        assert!(!manifest.covers(&event));
        let deletes: Vec<&WriteRequest> = requests
            .iter()
            .filter(|r| r.delete_request.is_some())
            .collect();
        assert_eq!(deletes.len(), 1);
        assert_eq!(requests.len(), 1 + entry.partitions.len());
        let rewritten = Manifest::of(Some(&manifest_item(&event, Some(&entry))));
        assert!(rewritten.covers(&event) && rewritten.files(&entry));
    }

    #[test]
    fn an_event_filed_in_a_later_layout_is_left_alone() {
        let event = event();
        let mut later = manifest_item(&event, SearchEntry::of(&event).as_ref());
        later.insert(
            "layout".into(),
            AttributeValue::N((SEARCH_LAYOUT + 1).to_string()),
        );

        assert!(Manifest::of(Some(&later)).covers(&event));
    }

    #[test]
    fn a_new_start_moves_every_entry() {
        let before = event();

        let (written, partitions) = written_after(
            &before,
            EventPatch {
                starts_at: Some(before.starts_at.plus_seconds(600)),
                ends_at: Some(before.ends_at.plus_seconds(600)),
                ..Default::default()
            },
        );

        assert_eq!(written, (partitions, partitions));
    }

    #[test]
    fn an_event_made_private_is_removed_from_every_partition() {
        let before = event();

        let (written, _) = written_after(
            &before,
            EventPatch {
                visibility: Some(Visibility::Private),
                ..Default::default()
            },
        );

        let filed = SearchEntry::of(&before).unwrap().partitions.len();
        assert_eq!(written, (filed, 0));
    }
}
