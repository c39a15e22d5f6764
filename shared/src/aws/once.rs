//! Exactly-once DynamoDB effects for a batch of envelopes: each entry's writes and the
//! idempotency kit's record for its key (completed with the effect, or claimed in progress for
//! [`crate::ports::Idempotency::begin_each`]) go in one transaction, and a batch's entries
//! share it. A clean batch of ten is then one round trip, where the kit's claim and
//! completion around each effect made three per message (BENCHMARKS.md, "Consumers in one
//! transaction per batch").
//!
//! A transaction is all or nothing: when some entries' conditions fail (a redelivery, a stale
//! version), DynamoDB cancels it and says which writes failed. Those entries are settled from
//! the reasons, and the rest go again in the next transaction, so every round settles at least
//! one entry and a batch of n takes at most n + 1 rounds.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, CancellationReason, TransactWriteItem, Update};

use async_trait::async_trait;

use super::dynamo::Item;
use super::idempotency::RecordAs;
use super::search::Manifest;
use super::{DynamoAnalytics, DynamoIdempotency, DynamoReadModel, DynamoSearchIndex};
use crate::consumer::REMEMBER_SECONDS;
use crate::domain::{Event, EventId, SearchEntry, Timestamp};
use crate::ports::{
    Applied, Completed, Count, CountOnce, IndexOnce, ProjectOnce, Settled, StoreError,
};

/// DynamoDB's limit on the writes of one transaction.
const MAX_WRITES: usize = 100;

/// One envelope's effect: the writes to make, at most once, for `key`.
pub(crate) struct Entry<'a> {
    pub key: &'a str,
    pub writes: Vec<Write>,
}

/// One write of an entry.
pub(crate) enum Write {
    /// A write of this entry alone. `item` names the item it touches (table and key), because a
    /// transaction may not hold two writes of one item: entries that touch one item go in turn.
    Own {
        item: String,
        write: Box<TransactWriteItem>,
    },
    /// `delta` added to a counter. The entries of a transaction that add to one item share one
    /// update, so counters everyone adds to do not serialise the batch.
    Add {
        table: String,
        key: Item,
        attribute: &'static str,
        delta: i64,
    },
}

impl Write {
    fn item(&self) -> String {
        match self {
            Self::Own { item, .. } => item.clone(),
            Self::Add { table, key, .. } => item_name(table, key),
        }
    }
}

/// A name for the item of `table` at `key`, for telling writes of one item apart: each key
/// attribute, in name order, with its value's length before it, so no two keys share a name.
/// Written out rather than formatted (`{:?}` of every value, joined), which was 2 % of a
/// batched consumer's CPU.
pub(crate) fn item_name(table: &str, key: &Item) -> String {
    use std::fmt::Write as _;
    let mut attributes: Vec<(&String, &AttributeValue)> = key.iter().collect();
    attributes.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut name = String::with_capacity(table.len() + 96);
    name.push_str(table);
    for (attribute, value) in attributes {
        name.push('|');
        name.push_str(attribute);
        match value {
            AttributeValue::S(text) => {
                let _ = write!(name, "=S{}:{text}", text.len());
            }
            other => {
                let _ = write!(name, "={other:?}");
            }
        }
    }
    name
}

/// What became of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fate {
    /// Its writes and its record committed.
    Written,
    /// One of its own writes' conditions refused it (nothing of it was written, and no record:
    /// a redelivery meets the same condition).
    Refused,
    /// Its key was recorded as done, with what the record remembered.
    AlreadyDone(Completed),
    /// Its key is held in progress by another invocation.
    InProgressElsewhere,
}

/// Why an entry was cancelled with something a retry may fix (a conflict with another
/// transaction, throttling).
#[derive(Debug, thiserror::Error)]
#[error("the transaction was cancelled for this entry: {0}")]
struct Cancelled(String);

/// An adapter whose writes carry the idempotency kit's records in `records`' table (see the
/// module): `DynamoOnce<DynamoReadModel>` projects, `DynamoOnce<DynamoAnalytics>` counts,
/// `DynamoOnce<DynamoSearchIndex>` indexes.
#[derive(Debug, Clone)]
pub struct DynamoOnce<T> {
    effects: T,
    records: DynamoIdempotency,
}

impl<T> DynamoOnce<T> {
    pub fn new(effects: T, records: DynamoIdempotency) -> Self {
        Self { effects, records }
    }

    /// Each entry's writes (`writes_of`) at most once per `(scope, key)`, one result per entry,
    /// in order. An entry whose writes cannot be built fails alone.
    async fn settle<V, R>(
        &self,
        scope: &str,
        batch: &[(&str, &V)],
        writes_of: impl Fn(&T, &V) -> Result<Vec<Write>, StoreError>,
        done: impl Fn(Fate) -> Settled<R>,
    ) -> Vec<Result<Settled<R>, StoreError>>
    where
        V: ?Sized,
    {
        let plans = batch
            .iter()
            .map(|(key, value)| match writes_of(&self.effects, value) {
                Ok(writes) => Plan::Write(Entry { key, writes }),
                Err(error) => Plan::Decided(Err(error)),
            })
            .collect();
        self.settle_plans(scope, plans, done).await
    }

    /// Writes the entries of `plans` at most once each and returns every plan's result, in
    /// order: a decided one's as it is, a written one's from its fate.
    async fn settle_plans<R>(
        &self,
        scope: &str,
        plans: Vec<Plan<'_, R>>,
        done: impl Fn(Fate) -> Settled<R>,
    ) -> Vec<Result<Settled<R>, StoreError>> {
        let mut results = Vec::with_capacity(plans.len());
        let mut entries = Vec::new();
        for plan in plans {
            match plan {
                Plan::Write(entry) => {
                    results.push(None);
                    entries.push(entry);
                }
                Plan::Decided(result) => results.push(Some(result)),
            }
        }
        let now = Timestamp::now();
        let state = RecordAs::Done {
            until: now.plus_seconds(REMEMBER_SECONDS),
        };
        let mut fates = write_once(&self.records, scope, now, state, &entries)
            .await
            .into_iter();
        results
            .into_iter()
            .map(|result| match result {
                Some(decided) => decided,
                None => fates
                    .next()
                    .expect("one fate per entry")
                    .map(|fate| match fate {
                        Fate::AlreadyDone(_) => Settled::AlreadyDone,
                        Fate::InProgressElsewhere => Settled::InProgressElsewhere,
                        written_or_refused => done(written_or_refused),
                    }),
            })
            .collect()
    }
}

/// What to do with one entry of a batch: write it once, or nothing, its result already known.
enum Plan<'a, R> {
    Write(Entry<'a>),
    Decided(Result<Settled<R>, StoreError>),
}

/// Applied as the version guard of a projection or a manifest decided it.
fn applied(fate: Fate) -> Settled<Applied> {
    Settled::Done(match fate {
        Fate::Refused => Applied::Stale,
        _ => Applied::Changed,
    })
}

#[async_trait]
impl ProjectOnce for DynamoOnce<DynamoReadModel> {
    async fn apply_once(
        &self,
        scope: &str,
        batch: &[(&str, &Event)],
    ) -> Vec<Result<Settled<Applied>, StoreError>> {
        self.settle(
            scope,
            batch,
            |read_model, event| Ok(vec![read_model.projection(event)?]),
            applied,
        )
        .await
    }
}

#[async_trait]
impl CountOnce for DynamoOnce<DynamoAnalytics> {
    async fn record_once(
        &self,
        scope: &str,
        batch: &[(&str, &Count)],
    ) -> Vec<Result<Settled<()>, StoreError>> {
        self.settle(
            scope,
            batch,
            |analytics, count| Ok(analytics.additions(count)),
            |_| Settled::Done(()),
        )
        .await
    }
}

/// Search entries are many items per event (BatchWriteItem, no transaction can hold them), so
/// they are written first and the manifest last, with the record: a failure in between leaves
/// entries the manifest does not yet name, and the retry (the manifest still older) writes them
/// again and the manifest with them.
#[async_trait]
impl IndexOnce for DynamoOnce<DynamoSearchIndex> {
    async fn index_once(
        &self,
        scope: &str,
        batch: &[(&str, &Event)],
    ) -> Vec<Result<Settled<Applied>, StoreError>> {
        let mut ids: Vec<EventId> = batch.iter().map(|(_, event)| event.id).collect();
        ids.sort_unstable();
        ids.dedup();
        let manifests = match self.effects.manifests(&ids).await {
            Ok(manifests) => manifests,
            Err(error) => return failed_alike(batch.len(), &error),
        };
        let none = Manifest::default();
        let mut plans = Vec::with_capacity(batch.len());
        let mut requests = Vec::new();
        for (at, (key, event)) in batch.iter().enumerate() {
            let superseded = crate::app::read_model::superseded_in_batch(batch, at);
            let manifest = manifests.get(&event.id).unwrap_or(&none);
            if superseded || manifest.covers(event) {
                plans.push(Plan::Decided(Ok(Settled::Done(Applied::Stale))));
                continue;
            }
            let entry = SearchEntry::of(event);
            let planned =
                DynamoSearchIndex::requests(entry.as_ref(), manifest).and_then(|mut own| {
                    let write = self.effects.manifest_write(event, entry.as_ref())?;
                    requests.append(&mut own);
                    Ok(write)
                });
            plans.push(match planned {
                Ok(write) => Plan::Write(Entry {
                    key,
                    writes: vec![write],
                }),
                Err(error) => Plan::Decided(Err(error)),
            });
        }
        if let Err(error) = self.effects.write(requests).await {
            // Which events' entries made it is unknown: every manifest waits for the retry.
            return plans
                .into_iter()
                .map(|plan| match plan {
                    Plan::Write(_) => Err(copy_of(&error)),
                    Plan::Decided(result) => result,
                })
                .collect();
        }
        self.settle_plans(scope, plans, applied).await
    }
}

/// `n` results failed with `error`.
fn failed_alike<R>(n: usize, error: &StoreError) -> Vec<Result<R, StoreError>> {
    (0..n).map(|_| Err(copy_of(error))).collect()
}

/// A store error said again for another entry (the original is not `Clone`: it holds its
/// source).
fn copy_of(error: &StoreError) -> StoreError {
    match error {
        StoreError::AlreadyExists => StoreError::AlreadyExists,
        StoreError::Corrupt(reason) => StoreError::Corrupt(reason.clone()),
        StoreError::Unavailable(source) => StoreError::unavailable(Again(source.to_string())),
    }
}

/// The cause of a failure shared by several entries, as its message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Again(String);

/// Whose a write of the transaction is.
enum Role {
    Record(usize),
    Own(usize),
    Add(Vec<usize>),
}

/// Writes each entry at most once per `(scope, entry.key)` with its record written as `state`,
/// and returns one fate per entry, in order. Keys must be distinct (the caller folds
/// duplicates).
pub(crate) async fn write_once(
    records: &DynamoIdempotency,
    scope: &str,
    now: Timestamp,
    state: RecordAs,
    entries: &[Entry<'_>],
) -> Vec<Result<Fate, StoreError>> {
    let mut fates: Vec<Option<Result<Fate, StoreError>>> = std::iter::repeat_with(|| None)
        .take(entries.len())
        .collect();
    let mut pending: Vec<usize> = (0..entries.len()).collect();
    while !pending.is_empty() {
        let round = select(entries, &pending);
        let (writes, roles) = match transaction(records, scope, entries, &round, now, state) {
            Ok(built) => built,
            Err(error) => {
                let reason = error.to_string();
                for &i in &round {
                    fates[i] = Some(Err(StoreError::Corrupt(reason.clone())));
                }
                pending.retain(|i| fates[*i].is_none());
                continue;
            }
        };
        let sent = records
            .client()
            .transact_write_items()
            .set_transact_items(Some(writes))
            .send()
            .await;
        match sent.map_err(|e| e.into_service_error()) {
            Ok(_) => {
                for &i in &round {
                    fates[i] = Some(Ok(Fate::Written));
                }
            }
            Err(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
                settle(&mut fates, &roles, cancelled.cancellation_reasons());
                if round.iter().all(|&i| fates[i].is_none()) {
                    // Cancelled with no reason that names an entry: nothing tells which entry to
                    // drop, so none goes again in this invocation.
                    let reason = format!("{cancelled}");
                    for &i in &round {
                        fates[i] = Some(Err(StoreError::unavailable(Cancelled(reason.clone()))));
                    }
                }
            }
            Err(error) => {
                // The store itself failed: the next round would meet the same. Every entry
                // left is retried with its message.
                let reason = error.to_string();
                for &i in &pending {
                    fates[i] = Some(Err(StoreError::unavailable(Cancelled(reason.clone()))));
                }
            }
        }
        pending.retain(|i| fates[*i].is_none());
    }
    fates
        .into_iter()
        .map(|fate| fate.expect("every entry settled"))
        .collect()
}

/// The pending entries that can share one transaction, in order: none touching an item another
/// one's own write touches, none past the write limit. The first always goes.
fn select(entries: &[Entry<'_>], pending: &[usize]) -> Vec<usize> {
    let mut round = Vec::new();
    let mut owned: Vec<String> = Vec::new();
    let mut added: Vec<String> = Vec::new();
    let mut count = 0;
    for &i in pending {
        // Each write's item, named once: (own write?, item).
        let items: Vec<(bool, String)> = entries[i]
            .writes
            .iter()
            .map(|write| (matches!(write, Write::Own { .. }), write.item()))
            .collect();
        let mut needs = 1;
        let mut clash = false;
        let mut new_counters: Vec<&String> = Vec::new();
        for (own, item) in &items {
            if *own {
                clash |= owned.contains(item) || added.contains(item);
                needs += 1;
            } else {
                clash |= owned.contains(item);
                if !added.contains(item) && !new_counters.contains(&item) {
                    new_counters.push(item);
                    needs += 1;
                }
            }
        }
        if !round.is_empty() && (clash || count + needs > MAX_WRITES) {
            continue;
        }
        for (own, item) in items {
            if own {
                owned.push(item);
            } else if !added.contains(&item) {
                added.push(item);
            }
        }
        count += needs;
        round.push(i);
    }
    round
}

/// The round's transaction, and whose each of its writes is.
fn transaction(
    records: &DynamoIdempotency,
    scope: &str,
    entries: &[Entry<'_>],
    round: &[usize],
    now: Timestamp,
    state: RecordAs,
) -> Result<(Vec<TransactWriteItem>, Vec<Role>), StoreError> {
    let mut writes = Vec::new();
    let mut roles = Vec::new();
    // Counter item → (table, key, (attribute, sum) in first-seen order, contributors).
    type Sums = (String, Item, Vec<(&'static str, i64)>, Vec<usize>);
    let mut sums: Vec<(String, Sums)> = Vec::new();
    for &i in round {
        let entry = &entries[i];
        writes.push(records.record(scope, entry.key, now, state)?);
        roles.push(Role::Record(i));
        for write in &entry.writes {
            match write {
                Write::Own { write, .. } => {
                    writes.push(write.as_ref().clone());
                    roles.push(Role::Own(i));
                }
                Write::Add {
                    table,
                    key,
                    attribute,
                    delta,
                } => {
                    let name = write.item();
                    let at = match sums.iter().position(|(n, _)| *n == name) {
                        Some(at) => at,
                        None => {
                            sums.push((name, (table.clone(), key.clone(), Vec::new(), Vec::new())));
                            sums.len() - 1
                        }
                    };
                    let (_, _, attributes, contributors) = &mut sums[at].1;
                    match attributes.iter_mut().find(|(a, _)| a == attribute) {
                        Some((_, sum)) => *sum += delta,
                        None => attributes.push((attribute, *delta)),
                    }
                    if !contributors.contains(&i) {
                        contributors.push(i);
                    }
                }
            }
        }
    }
    for (_, (table, key, attributes, contributors)) in sums {
        let mut names = HashMap::new();
        let mut values = HashMap::new();
        let mut adds = Vec::new();
        for (n, (attribute, sum)) in attributes.into_iter().enumerate() {
            names.insert(format!("#a{n}"), attribute.to_owned());
            values.insert(format!(":a{n}"), AttributeValue::N(sum.to_string()));
            adds.push(format!("#a{n} :a{n}"));
        }
        let update = Update::builder()
            .table_name(table)
            .set_key(Some(key))
            .update_expression(format!("ADD {}", adds.join(", ")))
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(StoreError::unavailable)?;
        writes.push(TransactWriteItem::builder().update(update).build());
        roles.push(Role::Add(contributors));
    }
    Ok((writes, roles))
}

/// Settles the entries a cancellation's reasons name: a failed record condition says done or
/// in progress elsewhere (and wins over the entry's other reasons), a failed condition of an
/// entry's own write refuses it, and anything else (a conflict, throttling) fails the entries
/// the write belongs to, for a retry. Entries no reason names stay unsettled.
fn settle(
    fates: &mut [Option<Result<Fate, StoreError>>],
    roles: &[Role],
    reasons: &[CancellationReason],
) {
    let failed = |reason: &CancellationReason| {
        reason
            .code()
            .filter(|code| *code != "None")
            .map(str::to_owned)
    };
    for (role, reason) in roles.iter().zip(reasons) {
        if let (Role::Record(i), Some(code)) = (role, failed(reason))
            && code == "ConditionalCheckFailed"
        {
            fates[*i] = Some(Ok(match DynamoIdempotency::done(reason.item()) {
                Some(done) => Fate::AlreadyDone(done),
                None => Fate::InProgressElsewhere,
            }));
        }
    }
    for (role, reason) in roles.iter().zip(reasons) {
        let Some(code) = failed(reason) else { continue };
        let owners: &[usize] = match role {
            Role::Record(i) | Role::Own(i) => std::slice::from_ref(i),
            Role::Add(contributors) => contributors,
        };
        for &i in owners {
            if fates[i].is_some() {
                continue;
            }
            fates[i] = Some(if code == "ConditionalCheckFailed" {
                Ok(Fate::Refused)
            } else {
                Err(StoreError::unavailable(Cancelled(code.clone())))
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own(item: &str) -> Write {
        Write::Own {
            item: item.to_owned(),
            write: Box::new(TransactWriteItem::builder().build()),
        }
    }

    fn add(counter: &str) -> Write {
        Write::Add {
            table: "counters".into(),
            key: HashMap::from([("pk".to_owned(), AttributeValue::S(counter.to_owned()))]),
            attribute: "n",
            delta: 1,
        }
    }

    fn entry(key: &str, writes: Vec<Write>) -> Entry<'_> {
        Entry { key, writes }
    }

    #[test]
    fn an_item_is_named_by_its_table_and_key_whatever_the_key_holds() {
        let key = |pairs: &[(&str, &str)]| -> Item {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), AttributeValue::S((*v).to_owned())))
                .collect()
        };
        let event = key(&[("pk", "EVENT#1"), ("sk", "EVENT")]);
        let mut numbered = key(&[("pk", "EVENT#1")]);
        numbered.insert("sk".into(), AttributeValue::N("1".into()));

        let names = [
            item_name("events", &event),
            item_name("read-model", &event),
            item_name("events", &key(&[("pk", "EVENT#2"), ("sk", "EVENT")])),
            // A value that holds what a name puts between attributes.
            item_name("events", &key(&[("pk", "EVENT#1|sk=S5:EVENT")])),
            item_name("events", &numbered),
        ];

        let reordered = key(&[("sk", "EVENT"), ("pk", "EVENT#1")]);
        assert_eq!(names[0], item_name("events", &reordered));
        let distinct: std::collections::HashSet<&String> = names.iter().collect();
        assert_eq!(distinct.len(), names.len(), "{names:?}");
    }

    #[test]
    fn entries_that_write_one_item_go_in_separate_transactions() {
        let entries = [
            entry("a", vec![own("event-1")]),
            entry("b", vec![own("event-2")]),
            entry("c", vec![own("event-1")]),
        ];

        assert_eq!(select(&entries, &[0, 1, 2]), [0, 1]);
        assert_eq!(select(&entries, &[2]), [2]);
    }

    #[test]
    fn entries_that_add_to_one_counter_share_a_transaction() {
        let entries = [
            entry("a", vec![add("day")]),
            entry("b", vec![add("day")]),
            entry("c", vec![own("x"), add("day")]),
        ];

        assert_eq!(select(&entries, &[0, 1, 2]), [0, 1, 2]);
    }

    #[test]
    fn a_counter_an_entry_adds_to_twice_counts_as_one_write() {
        // Each entry: its record and one update of one counter item (two attributes of it).
        let names: Vec<String> = (0..60).map(|i| format!("event-{i}")).collect();
        let entries: Vec<Entry<'_>> = names
            .iter()
            .map(|n| entry(n, vec![add(n), add(n)]))
            .collect();
        let pending: Vec<usize> = (0..60).collect();

        assert_eq!(select(&entries, &pending).len(), 50);
    }

    #[test]
    fn a_transaction_stops_at_a_hundred_writes_and_the_rest_wait() {
        // Each entry is two writes: its record and its projection.
        let names: Vec<String> = (0..60).map(|i| format!("event-{i}")).collect();
        let entries: Vec<Entry<'_>> = names.iter().map(|n| entry(n, vec![own(n)])).collect();
        let pending: Vec<usize> = (0..60).collect();

        let round = select(&entries, &pending);

        assert_eq!(round.len(), 50);
        assert_eq!(select(&entries, &pending[50..]).len(), 10);
    }

    fn reason(code: &str, status: Option<&str>) -> CancellationReason {
        let mut reason = CancellationReason::builder().code(code);
        if let Some(status) = status {
            reason = reason.item("status", AttributeValue::S(status.to_owned()));
        }
        reason.build()
    }

    #[test]
    fn a_cancellation_settles_the_entries_it_names_and_leaves_the_rest_to_go_again() {
        let roles = [
            Role::Record(0),
            Role::Own(0),
            Role::Record(1),
            Role::Own(1),
            Role::Record(2),
            Role::Own(2),
            Role::Record(3),
            Role::Own(3),
            Role::Record(4),
            Role::Own(4),
        ];
        let reasons = [
            reason("None", None),
            reason("None", None),
            reason("ConditionalCheckFailed", Some("COMPLETED")),
            reason("None", None),
            reason("ConditionalCheckFailed", Some("IN_PROGRESS")),
            reason("None", None),
            reason("None", None),
            reason("ConditionalCheckFailed", None),
            reason("None", None),
            reason("TransactionConflict", None),
        ];
        let mut fates: Vec<Option<Result<Fate, StoreError>>> =
            std::iter::repeat_with(|| None).take(5).collect();

        settle(&mut fates, &roles, &reasons);

        assert!(fates[0].is_none(), "an entry no reason names goes again");
        assert!(matches!(fates[1], Some(Ok(Fate::AlreadyDone(_)))));
        assert!(matches!(fates[2], Some(Ok(Fate::InProgressElsewhere))));
        assert!(matches!(fates[3], Some(Ok(Fate::Refused))));
        assert!(matches!(fates[4], Some(Err(StoreError::Unavailable(_)))));
    }

    #[test]
    fn a_failed_shared_counter_fails_every_entry_that_added_to_it() {
        let roles = [Role::Record(0), Role::Record(1), Role::Add(vec![0, 1])];
        let reasons = [
            reason("None", None),
            reason("None", None),
            reason("ThrottlingError", None),
        ];
        let mut fates: Vec<Option<Result<Fate, StoreError>>> =
            std::iter::repeat_with(|| None).take(2).collect();

        settle(&mut fates, &roles, &reasons);

        assert!(fates.iter().all(|f| matches!(f, Some(Err(_)))));
    }
}
