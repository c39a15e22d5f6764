//! The AWS adapters against the emulator over HTTP, using the tables the local stack deployed
//! (so the schema under test is the one CDK declares) and a throwaway topic and queue.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use evently_e2e::{Stack, sdk_config};
use evently_shared::app::events::{ReadSource, list_events};
use evently_shared::aws::{
    DynamoAnalytics, DynamoEventStore, DynamoIdempotency, DynamoOnce, DynamoReadModel,
    DynamoSearchIndex, SnsPublisher,
};
use evently_shared::domain::{
    Description, Event, EventDraft, EventId, Schedule, SearchEntry, SearchQuery, Tags, Timestamp,
    Title, UserId, Venue, Visibility,
};
use evently_shared::envelope::{CorrelationId, DomainEvent};
use evently_shared::ports::{
    Analytics, Applied, Begun, Claim, Consistency, Count, CountOnce, EventReader, EventStore,
    EventView, Idempotency, IndexOnce, OutgoingMessage, PageRequest, ProjectOnce, Published,
    Publisher, ReadModel, SearchIndex, Settled, StoreError,
};

fn new_event(visibility: Visibility, starts_in_seconds: i64) -> Event {
    let now = Timestamp::now();
    let draft = EventDraft {
        title: Title::parse("title", "Adapter test").unwrap(),
        description: Description::parse("description", "").unwrap(),
        schedule: Schedule::upcoming(
            now.plus_seconds(starts_in_seconds),
            now.plus_seconds(starts_in_seconds + 3600),
            now,
        )
        .unwrap(),
        venue: Venue::parse("venue", "Emulator").unwrap(),
        tags: Tags::default(),
        visibility,
        capacity: None,
    };
    Event::create(draft, UserId::parse("sub", "adapter-test").unwrap(), now)
}

async fn stores() -> (Stack, DynamoEventStore, DynamoReadModel) {
    let stack = Stack::load().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk_config().await);
    let store = DynamoEventStore::new(dynamo.clone(), stack.output("EventsTableName"));
    let read_model = DynamoReadModel::new(dynamo, stack.output("ReadModelTableName"));
    (stack, store, read_model)
}

#[tokio::test]
async fn the_event_store_writes_the_event_and_its_outbox_item_in_one_transaction() {
    let (_stack, store, _) = stores().await;
    let event = new_event(Visibility::Public, 86_400 * 400);
    let envelope = DomainEvent::EventCreated(event.clone()).into_envelope(
        "/tests",
        CorrelationId::generate(),
        Timestamp::now(),
    );

    store.create(&event, &envelope).await.unwrap();
    let again = store.create(&event, &envelope).await;

    assert_eq!(
        store.get(&event.id, Consistency::Strong).await.unwrap(),
        Some(event)
    );
    assert!(matches!(again, Err(StoreError::AlreadyExists)), "{again:?}");
}

#[tokio::test]
async fn an_rsvp_to_an_event_that_has_started_is_refused() {
    let (_stack, store, _) = stores().await;
    let now = Timestamp::now();
    let draft = EventDraft {
        title: Title::parse("title", "Already started").unwrap(),
        description: Description::parse("description", "").unwrap(),
        schedule: Schedule::new(now.plus_seconds(-60), now.plus_seconds(3600)).unwrap(),
        venue: Venue::parse("venue", "Emulator").unwrap(),
        tags: Tags::default(),
        visibility: Visibility::Public,
        capacity: None,
    };
    let event = Event::create(draft, UserId::parse("sub", "adapter-test").unwrap(), now);
    let envelope = |e: DomainEvent| e.into_envelope("/tests", CorrelationId::generate(), now);
    store
        .create(&event, &envelope(DomainEvent::EventCreated(event.clone())))
        .await
        .unwrap();
    let rsvp = evently_shared::envelope::Rsvp {
        event_id: event.id,
        user_id: UserId::parse("sub", "late").unwrap(),
        at: now,
    };

    let result = store
        .rsvp(
            &event,
            &rsvp.user_id,
            now,
            &envelope(DomainEvent::RsvpCreated(rsvp.clone())),
        )
        .await;

    assert!(
        matches!(result, Err(evently_shared::ports::RsvpError::Closed)),
        "{result:?}"
    );
}

#[tokio::test]
async fn the_read_model_applies_only_newer_versions() {
    let (_stack, _, read_model) = stores().await;
    let mut event = new_event(Visibility::Public, 86_400 * 401);
    event.version = 2;

    let first = read_model.apply(&event).await.unwrap();
    let replay = read_model.apply(&event).await.unwrap();
    let mut older = event.clone();
    older.version = 1;
    older.title = Title::parse("title", "Older").unwrap();
    let late = read_model.apply(&older).await.unwrap();

    assert_eq!(
        (first, replay, late),
        (Applied::Changed, Applied::Stale, Applied::Stale)
    );
    let stored = read_model
        .get(&event.id, Consistency::Eventual)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored, event);
}

/// The read model with the idempotency kit's records, as read-model-updater wires them, and the
/// kit's own adapter on the same table.
async fn projections() -> (
    DynamoOnce<DynamoReadModel>,
    DynamoReadModel,
    DynamoIdempotency,
) {
    let stack = Stack::load().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk_config().await);
    let read_model = || DynamoReadModel::new(dynamo.clone(), stack.output("ReadModelTableName"));
    let records = DynamoIdempotency::new(dynamo.clone(), stack.output("IdempotencyTableName"));
    (
        DynamoOnce::new(read_model(), records.clone()),
        read_model(),
        records,
    )
}

fn unique_scope() -> String {
    format!("adapter-test-{}", ulid::Ulid::generate())
}

fn at_version(event: &Event, version: u64, title: &str) -> Event {
    let mut event = event.clone();
    event.version = version;
    event.title = Title::parse("title", title).unwrap();
    event
}

#[tokio::test]
async fn a_batch_of_projections_is_written_once_with_its_records() {
    let (projections, read_model, _) = projections().await;
    let scope = unique_scope();
    let events: Vec<Event> = (0..3)
        .map(|i| new_event(Visibility::Public, 86_400 * 402 + i))
        .collect();
    let batch: Vec<(&str, &Event)> = ["k0", "k1", "k2"].into_iter().zip(&events).collect();

    let first = projections.apply_once(&scope, &batch).await;
    let again = projections.apply_once(&scope, &batch).await;

    let first: Vec<_> = first.into_iter().map(Result::unwrap).collect();
    let again: Vec<_> = again.into_iter().map(Result::unwrap).collect();
    assert_eq!(first, [Settled::Done(Applied::Changed); 3]);
    assert_eq!(again, [Settled::AlreadyDone; 3]);
    for event in &events {
        let stored = read_model.get(&event.id, Consistency::Strong).await;
        assert_eq!(stored.unwrap().as_ref(), Some(event));
    }
}

#[tokio::test]
async fn versions_of_one_event_in_one_batch_end_at_the_newest_whatever_their_order() {
    let (projections, read_model, _) = projections().await;
    let scope = unique_scope();
    let event = new_event(Visibility::Public, 86_400 * 403);
    let (v3, v1, v2) = (
        at_version(&event, 3, "Third"),
        at_version(&event, 1, "First"),
        at_version(&event, 2, "Second"),
    );
    let other = new_event(Visibility::Public, 86_400 * 404);

    let settled = projections
        .apply_once(
            &scope,
            &[("v3", &v3), ("v1", &v1), ("other", &other), ("v2", &v2)],
        )
        .await;

    let settled: Vec<_> = settled.into_iter().map(Result::unwrap).collect();
    assert_eq!(
        settled,
        [
            Settled::Done(Applied::Changed),
            Settled::Done(Applied::Stale),
            Settled::Done(Applied::Changed),
            Settled::Done(Applied::Stale),
        ]
    );
    let stored = read_model.get(&event.id, Consistency::Strong).await;
    assert_eq!(stored.unwrap(), Some(v3));
}

#[tokio::test]
async fn a_batch_writes_its_new_entries_around_ones_already_done_or_held_elsewhere() {
    let (projections, read_model, records) = projections().await;
    let scope = unique_scope();
    let events: Vec<Event> = (0..4)
        .map(|i| new_event(Visibility::Public, 86_400 * 405 + i))
        .collect();
    projections
        .apply_once(&scope, &[("done", &events[0])])
        .await;
    let now = Timestamp::now();
    // Another invocation holds this key through the kit's claim.
    records
        .begin(Claim::new(&scope, "held"), now, now.plus_seconds(60))
        .await
        .unwrap();

    let settled = projections
        .apply_once(
            &scope,
            &[
                ("new-1", &events[1]),
                ("done", &events[0]),
                ("held", &events[2]),
                ("new-2", &events[3]),
            ],
        )
        .await;

    let settled: Vec<_> = settled.into_iter().map(Result::unwrap).collect();
    assert_eq!(
        settled,
        [
            Settled::Done(Applied::Changed),
            Settled::AlreadyDone,
            Settled::InProgressElsewhere,
            Settled::Done(Applied::Changed),
        ]
    );
    let held = read_model.get(&events[2].id, Consistency::Strong).await;
    assert_eq!(held.unwrap(), None, "nothing is written for a held key");
    let begun = records
        .begin(Claim::new(&scope, "new-1"), now, now.plus_seconds(60))
        .await
        .unwrap();
    assert!(matches!(begun, Begun::AlreadyDone(_)), "{begun:?}");
}

#[tokio::test]
async fn counts_of_a_batch_add_up_once_however_often_the_batch_comes() {
    let stack = Stack::load().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk_config().await);
    let analytics = DynamoAnalytics::new(dynamo.clone(), stack.output("AnalyticsTableName"));
    let counters = DynamoOnce::new(
        analytics.clone(),
        DynamoIdempotency::new(dynamo, stack.output("IdempotencyTableName")),
    );
    let scope = unique_scope();
    let event = EventId::generate();
    // A day no other test counts on: the counters start at zero.
    let day = format!("adapter-{}", ulid::Ulid::generate());
    let counts = [
        Count::EventCreated { day: day.clone() },
        Count::EventCreated { day: day.clone() },
        Count::Signup { day: day.clone() },
        Count::RsvpCreated { event },
        Count::RsvpCreated { event },
        Count::RsvpCancelled { event },
    ];
    let keys = ["e1", "e2", "s1", "r1", "r2", "c1"];
    let batch: Vec<(&str, &Count)> = keys.into_iter().zip(&counts).collect();

    let first = counters.record_once(&scope, &batch).await;
    let again = counters.record_once(&scope, &batch[..4]).await;

    let first: Vec<_> = first.into_iter().map(Result::unwrap).collect();
    let again: Vec<_> = again.into_iter().map(Result::unwrap).collect();
    assert_eq!(first, [Settled::Done(()); 6]);
    assert_eq!(again, [Settled::AlreadyDone; 4]);
    let stats = analytics.event_stats(&event).await.unwrap();
    assert_eq!(
        (stats.going, stats.rsvps_created, stats.rsvps_cancelled),
        (1, 2, 1)
    );
    let days = analytics.daily(&day, &day).await.unwrap();
    assert_eq!(
        days.iter()
            .map(|d| (d.events_created, d.signups))
            .collect::<Vec<_>>(),
        [(2, 1)]
    );
}

#[tokio::test]
async fn listing_pages_through_the_index_in_start_order_and_hides_private_events() {
    let (_stack, _, read_model) = stores().await;
    // Far in the future and one second apart, so other tests' events cannot interleave.
    let base = 86_400 * 3650 + (ulid::Ulid::generate().random() % 1_000_000) as i64 * 10;
    let public: Vec<Event> = (0..3)
        .map(|i| new_event(Visibility::Public, base + i))
        .collect();
    let private = new_event(Visibility::Private, base + 1);
    for event in public.iter().rev().chain([&private]) {
        read_model.apply(event).await.unwrap();
    }
    let after = public[0].starts_at.plus_seconds(-1);

    let first = read_model
        .list_upcoming(PageRequest {
            after,
            limit: 2,
            cursor: None,
        })
        .await
        .unwrap();
    let second = read_model
        .list_upcoming(PageRequest {
            after,
            limit: 2,
            cursor: first.next,
        })
        .await
        .unwrap();

    let ids = |events: &[Event]| events.iter().map(|e| e.id).collect::<Vec<_>>();
    assert_eq!(ids(&first.items), ids(&public[..2]));
    assert!(first.next.is_some());
    assert_eq!(second.items.first().map(|e| e.id), Some(public[2].id));
}

/// Three public events one second apart, far enough ahead that no other test's interleave.
async fn three_projected(read_model: &DynamoReadModel) -> (Vec<Event>, Timestamp) {
    let base = 86_400 * 3650 + (ulid::Ulid::generate().random() % 1_000_000) as i64 * 10;
    let events: Vec<Event> = (0..3)
        .map(|i| new_event(Visibility::Public, base + i))
        .collect();
    for event in &events {
        read_model.apply(event).await.unwrap();
    }
    let after = events[0].starts_at.plus_seconds(-1);
    (events, after)
}

fn as_json(views: &[EventView]) -> Vec<serde_json::Value> {
    views
        .iter()
        .map(|view| serde_json::from_str(view.get()).unwrap())
        .collect()
}

fn events_as_json(events: &[Event]) -> Vec<serde_json::Value> {
    events
        .iter()
        .map(|event| serde_json::to_value(event).unwrap())
        .collect()
}

#[tokio::test]
async fn listed_views_are_the_events_json_and_page_like_the_events() {
    let (_stack, _, read_model) = stores().await;
    let (events, after) = three_projected(&read_model).await;
    let page = |cursor| PageRequest {
        after,
        limit: 2,
        cursor,
    };

    let first = read_model.list_upcoming_views(page(None)).await.unwrap();
    let second = read_model
        .list_upcoming_views(page(first.next))
        .await
        .unwrap();

    let events_page = read_model.list_upcoming(page(None)).await.unwrap();
    assert_eq!(as_json(&first.items), events_as_json(&events[..2]));
    assert_eq!(first.next, events_page.next);
    assert_eq!(as_json(&second.items)[0], events_as_json(&events[2..])[0]);
}

#[tokio::test]
async fn listing_and_reading_serve_the_stored_views_without_rendering_them_again() {
    let (stack, _, read_model) = stores().await;
    let (events, after) = three_projected(&read_model).await;
    // A view that differs from what the attributes would render (still a valid event, for
    // whoever else lists far enough ahead): only the stored one has this title.
    let mut stored = events[0].clone();
    stored.title = Title::parse("title", "The stored view").unwrap();
    let marked = serde_json::to_string(&stored).unwrap();
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk_config().await);
    dynamo
        .update_item()
        .table_name(stack.output("ReadModelTableName"))
        .key("pk", AttributeValue::S(format!("EVENT#{}", events[0].id)))
        .key("sk", AttributeValue::S("EVENT".to_owned()))
        .update_expression("SET #view = :marked")
        .expression_attribute_names("#view", "view")
        .expression_attribute_values(
            ":marked",
            AttributeValue::B(marked.clone().into_bytes().into()),
        )
        .send()
        .await
        .unwrap();
    let page = PageRequest {
        after,
        limit: 1,
        cursor: None,
    };

    let listed = read_model.list_upcoming_views(page).await.unwrap();
    let read = read_model
        .get_view(&events[0].id, Consistency::Eventual)
        .await
        .unwrap()
        .unwrap();

    assert_eq!(listed.items[0].get(), marked);
    assert_eq!(read.view.get(), marked);
    assert_eq!(
        (read.version, read.visibility, read.organizer_id),
        (
            events[0].version,
            events[0].visibility,
            events[0].organizer_id.clone()
        )
    );
    // The cursor comes from the last view, which names the same event.
    assert_eq!(listed.next.map(|c| c.id), Some(events[0].id));
}

#[tokio::test]
async fn items_without_a_current_view_are_listed_from_their_attributes_until_rewritten() {
    let (stack, _, read_model) = stores().await;
    let (events, after) = three_projected(&read_model).await;
    // As an older release left them: the middle item has no view, the last an older format.
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk_config().await);
    let table = stack.output("ReadModelTableName");
    let key = |event: &Event| {
        std::collections::HashMap::from([
            (
                "pk".to_owned(),
                AttributeValue::S(format!("EVENT#{}", event.id)),
            ),
            ("sk".to_owned(), AttributeValue::S("EVENT".to_owned())),
        ])
    };
    for (event, expression) in [
        (&events[1], "REMOVE #view, view_format"),
        (&events[2], "SET view_format = :older"),
    ] {
        let update = dynamo
            .update_item()
            .table_name(&table)
            .set_key(Some(key(event)))
            .update_expression(expression);
        let update = if expression.contains("#view") {
            update.expression_attribute_names("#view", "view")
        } else {
            update.expression_attribute_values(":older", AttributeValue::N("0".into()))
        };
        update.send().await.unwrap();
    }
    let page = PageRequest {
        after,
        limit: 3,
        cursor: None,
    };

    let listed = read_model.list_upcoming_views(page).await.unwrap();
    let read = read_model
        .get_view(&events[1].id, Consistency::Eventual)
        .await
        .unwrap()
        .unwrap();
    let replayed: Vec<Applied> =
        futures::future::join_all(events[1..].iter().map(|event| read_model.apply(event)))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();

    assert_eq!(as_json(&listed.items), events_as_json(&events));
    assert_eq!(as_json(&[read.view]), events_as_json(&events[1..2]));
    assert_eq!(replayed, [Applied::Changed, Applied::Changed]);
    for event in &events[1..] {
        let item = dynamo
            .get_item()
            .table_name(&table)
            .set_key(Some(key(event)))
            .send()
            .await
            .unwrap()
            .item
            .unwrap();
        assert_eq!(
            item.get("view_format"),
            Some(&AttributeValue::N("1".into()))
        );
        let view: serde_json::Value =
            serde_json::from_slice(item["view"].as_b().unwrap().as_ref()).unwrap();
        assert_eq!(view, serde_json::to_value(event).unwrap());
    }
}

#[tokio::test]
async fn listing_falls_back_to_the_events_table_when_the_read_model_table_is_missing() {
    let (_stack, store, _) = stores().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk_config().await);
    let missing = DynamoReadModel::new(dynamo, "no-such-table");
    let page = PageRequest {
        after: Timestamp::now(),
        limit: 1,
        cursor: None,
    };

    let (_, source) = list_events(&missing, &store, page).await.unwrap();

    assert_eq!(source, ReadSource::Primary);
    assert!(matches!(
        missing.list_upcoming(page).await,
        Err(StoreError::Unavailable(_))
    ));
}

/// The ids the index finds for one whole word, among events starting from now on.
async fn found_by(index: &DynamoSearchIndex, word: &str) -> Vec<EventId> {
    let query = SearchQuery {
        words: vec![word.to_owned()],
        ..SearchQuery::default()
    };
    index
        .search(&query, Timestamp::now(), 10, None)
        .await
        .unwrap()
        .items
}

#[tokio::test]
async fn the_search_index_writes_and_replaces_every_chunk_of_an_event_with_many_words() {
    // Arrange: eighteen distinct 10-letter words (twelve in the title, six in the venue),
    // each filed under three prefixes (the longest its home), so the first version is
    // written in three BatchWriteItem chunks of 25 entries and the second (the first's
    // entries deleted, its own put) in five.
    let stack = Stack::load().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk_config().await);
    let index = DynamoSearchIndex::new(dynamo, stack.output("ReadModelTableName"));
    let unique = ulid::Ulid::generate().to_string().to_lowercase()[19..].to_owned();
    let words = |letter: char, range: std::ops::Range<usize>| {
        let words: Vec<String> = range.map(|i| format!("{letter}{i:02}{unique}")).collect();
        words.join(" ")
    };
    let mut first = new_event(Visibility::Public, 3600);
    first.title = Title::parse("title", &words('a', 0..12)).unwrap();
    first.venue = Venue::parse("venue", &words('a', 12..18)).unwrap();
    let mut second = first.clone();
    second.title = Title::parse("title", &words('b', 0..12)).unwrap();
    second.venue = Venue::parse("venue", &words('b', 12..18)).unwrap();
    second.version = first.version + 1;
    let entries = SearchEntry::of(&first).unwrap().partitions.len();
    assert!(entries > 50, "{entries} entries: fewer than three chunks");

    // Act and assert: every word of the first version is found, then none of them is, and
    // every word of the second version is.
    assert_eq!(index.index(&first).await.unwrap(), Applied::Changed);
    for i in [0, 6, 11, 17] {
        assert_eq!(
            found_by(&index, &format!("a{i:02}{unique}")).await,
            vec![first.id]
        );
    }
    assert_eq!(index.index(&second).await.unwrap(), Applied::Changed);
    for i in 0..18 {
        assert!(
            found_by(&index, &format!("a{i:02}{unique}"))
                .await
                .is_empty()
        );
        assert_eq!(
            found_by(&index, &format!("b{i:02}{unique}")).await,
            vec![second.id]
        );
    }
    assert_eq!(index.index(&first).await.unwrap(), Applied::Stale);
}

#[tokio::test]
async fn a_capacity_change_keeps_the_event_findable_and_a_later_title_replaces_its_words() {
    // Arrange: version 2 changes only the capacity, which no entry holds (its entries are not
    // written again); version 3 changes the title.
    let stack = Stack::load().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk_config().await);
    let index = DynamoSearchIndex::new(dynamo, stack.output("ReadModelTableName"));
    let word = |name: &str| {
        format!(
            "{name}{}",
            ulid::Ulid::generate().to_string().to_lowercase()
        )
    };
    let (first_word, next_word) = (word("kept"), word("renamed"));
    let mut v1 = new_event(Visibility::Public, 86_400 * 410);
    v1.title = Title::parse("title", &format!("Meetup {first_word}")).unwrap();
    let mut v2 = v1.clone();
    v2.capacity = Some(evently_shared::domain::Capacity::new("capacity", 40).unwrap());
    v2.version = 2;
    let mut v3 = v2.clone();
    v3.title = Title::parse("title", &format!("Meetup {next_word}")).unwrap();
    v3.version = 3;

    // Act and assert
    assert_eq!(index.index(&v1).await.unwrap(), Applied::Changed);
    assert_eq!(index.index(&v2).await.unwrap(), Applied::Changed);
    assert_eq!(found_by(&index, &first_word).await, vec![v1.id]);
    assert_eq!(index.index(&v2).await.unwrap(), Applied::Stale);
    assert_eq!(index.index(&v3).await.unwrap(), Applied::Changed);
    assert!(found_by(&index, &first_word).await.is_empty());
    assert_eq!(found_by(&index, &next_word).await, vec![v1.id]);
}

#[tokio::test]
async fn entries_written_with_lists_of_words_and_tags_are_still_found_and_checked() {
    // Arrange: an entry as the index wrote them before words and tags were joined, with its
    // event id in an attribute of its own.
    let stack = Stack::load().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk_config().await);
    let table = stack.output("ReadModelTableName");
    let index = DynamoSearchIndex::new(dynamo.clone(), &table);
    let event = new_event(Visibility::Public, 86_400 * 409);
    let word = format!(
        "listed{}",
        ulid::Ulid::generate().to_string().to_lowercase()
    );
    let list = |values: &[&str]| {
        AttributeValue::L(
            values
                .iter()
                .map(|v| AttributeValue::S((*v).to_owned()))
                .collect(),
        )
    };
    let query = |tag: &str| SearchQuery {
        words: vec![word.clone(), "second".into()],
        tag: Some(evently_shared::domain::Tag::parse("tag", tag).unwrap()),
        ..SearchQuery::default()
    };
    dynamo
        .put_item()
        .table_name(&table)
        .item(
            "pk",
            AttributeValue::S(query("kept").partition().expect("a word has a partition")),
        )
        .item(
            "sk",
            AttributeValue::S(format!("{}#{}", event.starts_at, event.id)),
        )
        .item("event_id", AttributeValue::S(event.id.to_string()))
        .item("organizer_id", AttributeValue::S("adapter-test".into()))
        .item("words", list(&[&word, "second"]))
        .item("tags", list(&["kept"]))
        .send()
        .await
        .unwrap();

    // Act
    let kept = index
        .search(&query("kept"), Timestamp::now(), 10, None)
        .await;
    let other = index
        .search(&query("other"), Timestamp::now(), 10, None)
        .await;

    // Assert
    assert_eq!(kept.unwrap().items, vec![event.id]);
    assert!(other.unwrap().items.is_empty());
}

#[tokio::test]
async fn an_event_filed_in_the_older_layout_is_filed_again_at_its_version() {
    // Arrange: an event as layout 1 filed it: its word under a partition of its own, and a
    // manifest at its version with no layout and no words.
    let stack = Stack::load().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk_config().await);
    let table = stack.output("ReadModelTableName");
    let index = DynamoSearchIndex::new(dynamo.clone(), &table);
    let word = format!(
        "layout{}",
        ulid::Ulid::generate().to_string().to_lowercase()
    );
    let mut event = new_event(Visibility::Public, 86_400 * 408);
    event.title = Title::parse("title", &word).unwrap();
    let sort_key = format!("{}#{}", event.starts_at, event.id);
    let old_partition = format!("TERM#{word}");
    let key = |pk: &str, sk: &str| {
        HashMap::from([
            ("pk".to_owned(), AttributeValue::S(pk.to_owned())),
            ("sk".to_owned(), AttributeValue::S(sk.to_owned())),
        ])
    };
    let mut entry = key(&old_partition, &sort_key);
    entry.insert("words".into(), AttributeValue::S(word.clone()));
    entry.insert(
        "organizer_id".into(),
        AttributeValue::S("adapter-test".into()),
    );
    let mut manifest = key(&format!("SEARCH#{}", event.id), "MANIFEST");
    manifest.insert(
        "version".into(),
        AttributeValue::N(event.version.to_string()),
    );
    manifest.insert("sort_key".into(), AttributeValue::S(sort_key.clone()));
    manifest.insert(
        "partitions".into(),
        AttributeValue::L(vec![AttributeValue::S(old_partition.clone())]),
    );
    for item in [entry, manifest] {
        let put = dynamo.put_item().table_name(&table).set_item(Some(item));
        put.send().await.unwrap();
    }

    // Act
    let refiled = index.index(&event).await.unwrap();
    let again = index.index(&event).await.unwrap();

    // Assert: found at the word's home, the old partition's entry gone, and filed once.
    assert_eq!(refiled, Applied::Changed);
    assert_eq!(again, Applied::Stale);
    assert_eq!(found_by(&index, &word).await, vec![event.id]);
    let old = dynamo
        .get_item()
        .table_name(&table)
        .set_key(Some(key(&old_partition, &sort_key)))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    assert!(old.item.is_none(), "the layout-1 entry is deleted");
}

#[tokio::test]
async fn a_batch_is_indexed_with_its_records_and_only_the_newest_version_of_an_event_is_filed() {
    // Arrange: two versions of one event (each titled by a word of its own), another event,
    // and one whose key another invocation holds.
    let stack = Stack::load().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk_config().await);
    let plain = DynamoSearchIndex::new(dynamo.clone(), stack.output("ReadModelTableName"));
    let records = DynamoIdempotency::new(dynamo.clone(), stack.output("IdempotencyTableName"));
    let index = DynamoOnce::new(
        DynamoSearchIndex::new(dynamo, stack.output("ReadModelTableName")),
        records.clone(),
    );
    let scope = unique_scope();
    let word = |name: &str| {
        format!(
            "{name}{}",
            ulid::Ulid::generate().to_string().to_lowercase()
        )
    };
    let (old_word, new_word, other_word) = (word("old"), word("new"), word("other"));
    let titled = |event: &Event, version: u64, word: &str| {
        at_version(event, version, &format!("Meetup {word}"))
    };
    let event = new_event(Visibility::Public, 86_400 * 406);
    let (v1, v2) = (titled(&event, 1, &old_word), titled(&event, 2, &new_word));
    let other = titled(&new_event(Visibility::Public, 86_400 * 407), 1, &other_word);
    let batch = [("v1", &v1), ("other", &other), ("v2", &v2)];
    let held = new_event(Visibility::Public, 86_400 * 408);
    let now = Timestamp::now();
    // Another invocation holds this key through the kit's claim.
    records
        .begin(Claim::new(&scope, "held"), now, now.plus_seconds(60))
        .await
        .unwrap();

    // Act
    let first = index.index_once(&scope, &batch).await;
    let again = index.index_once(&scope, &batch).await;
    let late = index
        .index_once(&scope, &[("v1-late", &v1), ("held", &held)])
        .await;

    // Assert
    let settled = |results: Vec<Result<Settled<Applied>, StoreError>>| -> Vec<_> {
        results.into_iter().map(Result::unwrap).collect()
    };
    let (changed, stale) = (
        Settled::Done(Applied::Changed),
        Settled::Done(Applied::Stale),
    );
    assert_eq!(settled(first), [stale, changed, changed]);
    // The manifests now cover every version: a redelivery is settled before any write.
    assert_eq!(settled(again), [stale, stale, stale]);
    assert_eq!(settled(late), [stale, Settled::InProgressElsewhere]);
    let recorded = records
        .begin(Claim::new(&scope, "other"), now, now.plus_seconds(60))
        .await
        .unwrap();
    assert!(matches!(recorded, Begun::AlreadyDone(_)), "{recorded:?}");
    assert_eq!(found_by(&plain, &new_word).await, vec![event.id]);
    assert!(found_by(&plain, &old_word).await.is_empty());
    assert_eq!(found_by(&plain, &other_word).await, vec![other.id]);
}

#[tokio::test]
async fn the_sns_publisher_delivers_type_and_correlation_id_as_message_attributes() {
    let config = sdk_config().await;
    let sns = aws_sdk_sns::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let name = format!("adapter-test-{}", ulid::Ulid::generate());
    let topic = sns
        .create_topic()
        .name(&name)
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let queue_url = sqs
        .create_queue()
        .queue_name(&name)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(&queue_arn)
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .unwrap();
    let publisher = SnsPublisher::new(sns.clone(), &topic);
    let messages: Vec<OutgoingMessage> = (0..3)
        .map(|i| OutgoingMessage {
            body: format!("{{\"n\":{i}}}"),
            event_type: "evently.event.created.v1".into(),
            correlation_id: format!("corr-{i}"),
        })
        .collect();

    let outcomes = publisher.publish(&messages).await.unwrap();

    assert_eq!(outcomes, vec![Published::Accepted; 3]);
    let received =
        evently_e2e::eventually("three messages", std::time::Duration::from_secs(10), || {
            let sqs = sqs.clone();
            let queue_url = queue_url.clone();
            async move {
                let out = sqs
                    .receive_message()
                    .queue_url(&queue_url)
                    .max_number_of_messages(10)
                    .message_attribute_names("All")
                    .visibility_timeout(0)
                    .send()
                    .await
                    .unwrap();
                let got = out.messages.unwrap_or_default();
                (got.len() == 3).then_some(got)
            }
        })
        .await;
    let mut correlation: Vec<String> = received
        .iter()
        .map(|m| {
            let attrs = m.message_attributes().unwrap();
            assert_eq!(
                attrs["type"].string_value(),
                Some("evently.event.created.v1")
            );
            attrs["correlationid"].string_value().unwrap().to_owned()
        })
        .collect();
    correlation.sort();
    assert_eq!(correlation, ["corr-0", "corr-1", "corr-2"]);
    sqs.delete_queue()
        .queue_url(&queue_url)
        .send()
        .await
        .unwrap();
    sns.delete_topic().topic_arn(&topic).send().await.unwrap();
}

mod accounts {
    use evently_e2e::{Stack, mail_to, sdk_config};
    use evently_shared::aws::{
        DynamoIdempotency, DynamoLoginThrottle, DynamoUserStore, MAX_FAILED_LOGINS,
        SecretsManagerVault, SesMailer,
    };
    use evently_shared::domain::{DisplayName, Email, Timestamp, User, UserId};
    use evently_shared::envelope::{CorrelationId, DomainEvent};
    use evently_shared::ports::{
        Addressed, Begun, BulkMailer, Claim, Completed, Follows, Idempotency, KeyVault, LoginGate,
        LoginThrottle, Mail, MailSettings, MailTemplate, Mailer, Preferences, SignUpError,
        UserStore,
    };

    fn unique(prefix: &str) -> String {
        format!(
            "{prefix}-{}",
            ulid::Ulid::generate().to_string().to_lowercase()
        )
    }

    async fn user_store() -> DynamoUserStore {
        let stack = Stack::load().await;
        DynamoUserStore::new(
            aws_sdk_dynamodb::Client::new(&sdk_config().await),
            stack.output("UsersTableName"),
            stack.output("EventsTableName"),
        )
    }

    fn email() -> Email {
        Email::parse("email", &format!("{}@example.com", unique("adapter"))).unwrap()
    }

    #[tokio::test]
    async fn the_user_store_claims_each_email_once_atomically() {
        let store = user_store().await;
        let address = email();
        let user = |email: &Email| {
            User::create(
                email.clone(),
                DisplayName::parse("n", "Ada").unwrap(),
                Timestamp::now(),
            )
        };
        let envelope = |user: &User| {
            DomainEvent::UserCreated(user.clone()).into_envelope(
                "/tests",
                CorrelationId::generate(),
                Timestamp::now(),
            )
        };
        let first = user(&address);
        let second = user(&address);

        store
            .create(&first, "$argon2id$first", &envelope(&first))
            .await
            .unwrap();
        let taken = store
            .create(&second, "$argon2id$second", &envelope(&second))
            .await;

        assert!(matches!(taken, Err(SignUpError::EmailTaken)), "{taken:?}");
        let credentials = store.credentials(&address).await.unwrap().unwrap();
        assert_eq!(credentials.user_id, first.id);
        assert_eq!(credentials.password_hash, "$argon2id$first");
        assert_eq!(store.profile(&first.id).await.unwrap(), Some(first));
        assert_eq!(
            store.profile(&second.id).await.unwrap(),
            None,
            "nothing of the loser was written"
        );
    }

    #[tokio::test]
    async fn mail_settings_read_the_preference_and_the_unsubscribe_token_together() {
        let store = user_store().await;
        let user = UserId::parse("id", &unique("adapter-user")).unwrap();
        let before = store.mail_settings(&user).await.unwrap();

        let token = store.unsubscribe_token(&user).await.unwrap();
        let made = store.mail_settings(&user).await.unwrap();
        assert!(store.unsubscribe(&token).await.unwrap());
        let after = store.mail_settings(&user).await.unwrap();

        assert_eq!(before, MailSettings::default(), "mail on, no token yet");
        assert_eq!(made.unsubscribe_token.as_deref(), Some(token.as_str()));
        assert!(made.preferences.notifications);
        assert_eq!(
            after,
            MailSettings {
                preferences: Preferences {
                    notifications: false
                },
                unsubscribe_token: Some(token.clone()),
            }
        );
        assert_eq!(store.unsubscribe_token(&user).await.unwrap(), token, "kept");
    }

    #[tokio::test]
    async fn mail_settings_of_many_users_come_in_the_order_asked_with_defaults_for_the_unset() {
        let store = user_store().await;
        let id = || UserId::parse("id", &unique("adapter-user")).unwrap();
        let (muted, tokened, unset) = (id(), id(), id());
        store
            .set_preferences(
                &muted,
                Preferences {
                    notifications: false,
                },
            )
            .await
            .unwrap();
        let token = store.make_unsubscribe_token(&tokened).await.unwrap();

        let settings = store
            .mail_settings_each(&[tokened.clone(), unset.clone(), muted.clone(), tokened])
            .await
            .unwrap();

        let expected = [
            MailSettings {
                preferences: Preferences::default(),
                unsubscribe_token: Some(token.clone()),
            },
            MailSettings::default(),
            MailSettings {
                preferences: Preferences {
                    notifications: false,
                },
                unsubscribe_token: None,
            },
            MailSettings {
                preferences: Preferences::default(),
                unsubscribe_token: Some(token),
            },
        ];
        assert_eq!(settings, expected);
    }

    #[tokio::test]
    async fn recipients_are_the_profiles_that_exist_in_the_order_asked_once_each() {
        let store = user_store().await;
        let mut users = Vec::new();
        for _ in 0..3 {
            let user = User::create(
                email(),
                DisplayName::parse("n", "Ada").unwrap(),
                Timestamp::now(),
            );
            let envelope = DomainEvent::UserCreated(user.clone()).into_envelope(
                "/tests",
                CorrelationId::generate(),
                Timestamp::now(),
            );
            store.create(&user, "$argon2id$x", &envelope).await.unwrap();
            users.push(user);
        }
        let ghost = UserId::parse("id", &unique("adapter-ghost")).unwrap();
        let asked = [
            users[2].id.clone(),
            ghost,
            users[0].id.clone(),
            users[1].id.clone(),
            users[0].id.clone(),
        ];

        let recipients = store.recipients(&asked).await.unwrap();

        let found: Vec<(&UserId, &Email)> =
            recipients.iter().map(|r| (&r.user_id, &r.email)).collect();
        let expected: Vec<(&UserId, &Email)> = [2, 0, 1]
            .iter()
            .map(|&i| (&users[i].id, &users[i].email))
            .collect();
        assert_eq!(found, expected);
    }

    #[tokio::test]
    async fn making_an_unsubscribe_token_twice_keeps_the_first_as_racing_first_mails_would() {
        let store = user_store().await;
        let user = UserId::parse("id", &unique("adapter-user")).unwrap();

        let first = store.make_unsubscribe_token(&user).await.unwrap();
        let second = store.make_unsubscribe_token(&user).await.unwrap();

        assert_eq!(second, first, "the conditional write kept the first");
        assert_eq!(
            store.mail_settings(&user).await.unwrap().unsubscribe_token,
            Some(first.clone())
        );
        assert!(store.unsubscribe(&first).await.unwrap(), "its link works");
        assert!(
            !store
                .mail_settings(&user)
                .await
                .unwrap()
                .preferences
                .notifications
        );
    }

    #[tokio::test]
    async fn the_login_throttle_locks_after_the_fifth_failure_and_reset_clears_it() {
        let stack = Stack::load().await;
        let dynamo = aws_sdk_dynamodb::Client::new(&sdk_config().await);
        let throttle = DynamoLoginThrottle::new(dynamo, stack.output("UsersTableName"));
        let address = email();
        let now = Timestamp::now();

        for _ in 0..MAX_FAILED_LOGINS - 1 {
            throttle.record_failure(&address, now).await.unwrap();
        }
        let before = throttle.gate(&address, now).await.unwrap();
        throttle.record_failure(&address, now).await.unwrap();
        let locked = throttle.gate(&address, now).await.unwrap();
        let after_window = throttle
            .gate(&address, now.plus_seconds(15 * 60 + 1))
            .await
            .unwrap();
        throttle.reset(&address).await.unwrap();
        let reset = throttle.gate(&address, now).await.unwrap();

        assert_eq!(before, LoginGate::Open);
        assert!(
            matches!(locked, LoginGate::Locked { retry_after_seconds } if (899..=900).contains(&retry_after_seconds))
        );
        assert_eq!(after_window, LoginGate::Open);
        assert_eq!(reset, LoginGate::Open);
    }

    #[tokio::test]
    async fn an_idempotency_record_moves_from_in_progress_to_complete_and_expires() {
        let stack = Stack::load().await;
        let dynamo = aws_sdk_dynamodb::Client::new(&sdk_config().await);
        let records = DynamoIdempotency::new(dynamo, stack.output("IdempotencyTableName"));
        let key = unique("key");
        let now = Timestamp::now();

        let claim = Claim::new("adapter-test", &key).with_fingerprint("request-1");

        let first = records
            .begin(claim, now, now.plus_seconds(30))
            .await
            .unwrap();
        let concurrent = records
            .begin(claim, now, now.plus_seconds(30))
            .await
            .unwrap();
        let after_lease = records
            .begin(claim, now.plus_seconds(31), now.plus_seconds(60))
            .await
            .unwrap();
        records
            .complete(claim, Some("the outcome"), now.plus_seconds(3600))
            .await
            .unwrap();
        let done = records
            .begin(claim, now, now.plus_seconds(30))
            .await
            .unwrap();
        records.release(claim).await.unwrap();
        let still_done = records
            .begin(claim, now, now.plus_seconds(30))
            .await
            .unwrap();
        let expired = records
            .begin(claim, now.plus_seconds(3601), now.plus_seconds(3630))
            .await
            .unwrap();

        let completed = Begun::AlreadyDone(Completed {
            fingerprint: Some("request-1".into()),
            outcome: Some("the outcome".into()),
        });
        assert_eq!(first, Begun::Started);
        assert_eq!(concurrent, Begun::InProgressElsewhere);
        assert_eq!(
            after_lease,
            Begun::Started,
            "a dead holder's lease runs out"
        );
        assert_eq!(done, completed, "the record replays what it remembered");
        assert_eq!(still_done, completed, "release never undoes completed work");
        assert_eq!(
            expired,
            Begun::Started,
            "an expired record no longer short-circuits"
        );
    }

    #[tokio::test]
    async fn the_ses_mailer_sends_from_the_stack_identity() {
        let stack = Stack::load().await;
        let mailer = SesMailer::new(
            aws_sdk_sesv2::Client::new(&sdk_config().await),
            stack.output("MailFrom"),
        );
        let to = format!("{}@example.com", unique("mailer"));

        let id = mailer
            .send(&Mail {
                to: to.clone(),
                subject: "Hello".into(),
                text: "plain".into(),
                html: "<p>html</p>".into(),
            })
            .await
            .unwrap();

        assert!(!id.is_empty());
        let sent = mail_to(&stack.http, &to).await;
        assert_eq!(sent.len(), 1);
        assert_eq!(
            (
                sent[0].subject.as_str(),
                sent[0].text.as_str(),
                sent[0].html.as_str()
            ),
            ("Hello", "plain", "<p>html</p>")
        );
    }

    #[tokio::test]
    async fn a_bulk_send_fills_the_template_for_each_recipient_in_one_call() {
        let stack = Stack::load().await;
        let mailer = SesMailer::new(
            aws_sdk_sesv2::Client::new(&sdk_config().await),
            stack.output("MailFrom"),
        );
        let template = MailTemplate {
            subject: "Hello {{name}}".into(),
            text: "Hi {{name}}".into(),
            html: "<p>Hi {{name_html}}</p>".into(),
        };
        let (ada, bob) = (
            format!("{}@example.com", unique("bulk-ada")),
            format!("{}@example.com", unique("bulk-bob")),
        );
        let to = |address: &str, name: &str, html: &str| Addressed {
            to: address.to_owned(),
            values: vec![("name", name.to_owned()), ("name_html", html.to_owned())],
        };

        let ids = mailer
            .send_each(
                &template,
                &[to(&ada, "Ada", "Ada"), to(&bob, "<Bob>", "&lt;Bob&gt;")],
            )
            .await;

        let ids: Vec<String> = ids.into_iter().map(Result::unwrap).collect();
        assert!(
            ids.iter().all(|id| !id.is_empty()) && ids[0] != ids[1],
            "{ids:?}"
        );
        let (to_ada, to_bob) = (
            mail_to(&stack.http, &ada).await,
            mail_to(&stack.http, &bob).await,
        );
        let parts = |sent: &[evently_e2e::SentMail]| {
            assert_eq!(sent.len(), 1);
            (
                sent[0].subject.clone(),
                sent[0].text.clone(),
                sent[0].html.clone(),
            )
        };
        assert_eq!(
            parts(&to_ada),
            ("Hello Ada".into(), "Hi Ada".into(), "<p>Hi Ada</p>".into())
        );
        assert_eq!(
            parts(&to_bob),
            (
                "Hello <Bob>".into(),
                "Hi <Bob>".into(),
                "<p>Hi &lt;Bob&gt;</p>".into()
            )
        );
    }

    #[tokio::test]
    async fn a_bulk_send_from_an_unverified_sender_is_rejected_for_every_recipient() {
        let mailer = SesMailer::new(
            aws_sdk_sesv2::Client::new(&sdk_config().await),
            "nobody@unverified.invalid",
        );
        let template = MailTemplate {
            subject: "s".into(),
            text: "t".into(),
            html: "h".into(),
        };
        let to = |address: &str| Addressed {
            to: address.to_owned(),
            values: Vec::new(),
        };

        let results = mailer
            .send_each(&template, &[to("x@example.com"), to("y@example.com")])
            .await;

        assert_eq!(results.len(), 2);
        assert!(
            results
                .iter()
                .all(|r| matches!(r, Err(evently_shared::ports::MailError::Rejected(_)))),
            "{results:?}"
        );
    }

    #[tokio::test]
    async fn idempotency_records_are_claimed_and_completed_a_batch_at_a_time() {
        let stack = Stack::load().await;
        let dynamo = aws_sdk_dynamodb::Client::new(&sdk_config().await);
        let records = DynamoIdempotency::new(dynamo, stack.output("IdempotencyTableName"));
        let scope = unique("batch");
        let now = Timestamp::now();
        let lease = now.plus_seconds(60);
        records
            .begin(Claim::new(&scope, "held"), now, lease)
            .await
            .unwrap();
        records
            .begin(Claim::new(&scope, "done"), now, lease)
            .await
            .unwrap();
        records
            .complete(
                Claim::new(&scope, "done"),
                Some("kept"),
                now.plus_seconds(3600),
            )
            .await
            .unwrap();

        let begun = records
            .begin_each(&scope, &["a", "held", "b", "done"], now, lease)
            .await;
        records
            .complete_each(&scope, &["a", "b"], now.plus_seconds(3600))
            .await
            .unwrap();
        let again = records.begin_each(&scope, &["a", "b"], now, lease).await;

        let begun: Vec<Begun> = begun.into_iter().map(Result::unwrap).collect();
        assert_eq!(
            begun,
            [
                Begun::Started,
                Begun::InProgressElsewhere,
                Begun::Started,
                Begun::AlreadyDone(Completed {
                    fingerprint: None,
                    outcome: Some("kept".into()),
                }),
            ]
        );
        let again: Vec<Begun> = again.into_iter().map(Result::unwrap).collect();
        assert!(
            again.iter().all(|b| matches!(b, Begun::AlreadyDone(_))),
            "{again:?}"
        );
    }

    #[tokio::test]
    async fn a_batch_of_one_record_is_claimed_and_completed_as_the_batches_are() {
        let stack = Stack::load().await;
        let dynamo = aws_sdk_dynamodb::Client::new(&sdk_config().await);
        let records = DynamoIdempotency::new(dynamo, stack.output("IdempotencyTableName"));
        let scope = unique("one");
        let now = Timestamp::now();
        let lease = now.plus_seconds(60);

        let first = records.begin_each(&scope, &["a"], now, lease).await;
        let held = records.begin_each(&scope, &["a"], now, lease).await;
        records
            .complete_each(&scope, &["a"], now.plus_seconds(3600))
            .await
            .unwrap();
        let done = records.begin_each(&scope, &["a"], now, lease).await;

        let one = |mut begun: Vec<Result<Begun, _>>| {
            assert_eq!(begun.len(), 1);
            begun.remove(0).unwrap()
        };
        assert_eq!(one(first), Begun::Started);
        assert_eq!(one(held), Begun::InProgressElsewhere);
        assert_eq!(one(done), Begun::AlreadyDone(Completed::default()));
    }

    #[tokio::test]
    async fn the_ses_mailer_reports_an_unverified_sender_as_rejected() {
        let mailer = SesMailer::new(
            aws_sdk_sesv2::Client::new(&sdk_config().await),
            "nobody@unverified.invalid",
        );

        let result = mailer
            .send(&Mail {
                to: "x@example.com".into(),
                subject: "s".into(),
                text: "t".into(),
                html: "h".into(),
            })
            .await;

        assert!(
            matches!(result, Err(evently_shared::ports::MailError::Rejected(_))),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn the_secrets_manager_vault_reads_what_it_wrote() {
        let client = aws_sdk_secretsmanager::Client::new(&sdk_config().await);
        let name = unique("adapter-secret");
        client
            .create_secret()
            .name(&name)
            .secret_string("initial")
            .send()
            .await
            .unwrap();
        let vault = SecretsManagerVault::new(client.clone(), &name);

        vault.write("second").await.unwrap();
        let read = vault.read().await.unwrap();
        let missing = SecretsManagerVault::new(client.clone(), unique("no-such-secret"))
            .read()
            .await
            .unwrap();

        assert_eq!(read.as_deref(), Some("second"));
        assert_eq!(missing, None);
        client
            .delete_secret()
            .secret_id(&name)
            .force_delete_without_recovery(true)
            .send()
            .await
            .unwrap();
    }
}
