//! search-index's batch, its calls to DynamoDB answered from replayed responses (the emulator
//! cannot be made to fail one call on cue, nor say which calls it was sent), so the adapter's
//! own calls are the ones under test.

use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_smithy_http_client::test_util::{ReplayEvent, StaticReplayClient};
use aws_smithy_runtime_api::http::{Request, Response, StatusCode};
use aws_smithy_types::body::SdkBody;
use evently_shared::aws::{DynamoIdempotency, DynamoOnce, DynamoSearchIndex};
use evently_shared::domain::{
    Capacity, Description, Event, EventDraft, EventPatch, SEARCH_LAYOUT, Schedule, SearchEntry,
    Tags, Timestamp, Title, UserId, Venue, Visibility,
};
use evently_shared::ports::{Applied, IndexOnce, Settled, StoreError};

const TABLE: &str = "read-model";

fn event(title: &str) -> Event {
    let now = Timestamp::now();
    let draft = EventDraft {
        title: Title::parse("title", title).unwrap(),
        description: Description::parse("description", "").unwrap(),
        schedule: Schedule::upcoming(now.plus_seconds(3600), now.plus_seconds(7200), now).unwrap(),
        venue: Venue::parse("venue", "Hall").unwrap(),
        tags: Tags::default(),
        visibility: Visibility::Public,
        capacity: None,
    };
    Event::create(draft, UserId::parse("sub", "organizer").unwrap(), now)
}

/// DynamoDB's answer: `status` with a JSON `body`.
fn answer(status: u16, body: String) -> ReplayEvent {
    let mut response = Response::new(StatusCode::try_from(status).unwrap(), SdkBody::from(body));
    response
        .headers_mut()
        .insert("content-type", "application/x-amz-json-1.0");
    ReplayEvent::new(Request::new(SdkBody::empty()), response)
}

fn index_on(replay: &StaticReplayClient) -> DynamoOnce<DynamoSearchIndex> {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .endpoint_url("http://127.0.0.1:4566")
        .http_client(replay.clone())
        // One answer per call: the failure below is the call's last.
        .retry_config(RetryConfig::disabled())
        .build();
    let client = aws_sdk_dynamodb::Client::from_conf(config);
    DynamoOnce::new(
        DynamoSearchIndex::new(client.clone(), TABLE),
        DynamoIdempotency::new(client, "idempotency"),
    )
}

/// The operations sent, in order.
fn sent(replay: &StaticReplayClient) -> Vec<String> {
    replay
        .actual_requests()
        .map(|r| {
            r.headers()
                .get("x-amz-target")
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn a_failed_entries_write_fails_the_events_that_needed_it_and_writes_no_manifest() {
    // Arrange: `indexed` is already indexed at its version; `new` and `other` are not.
    let indexed = event("Indexed");
    let (new, other) = (event("New"), event("Other"));
    let manifest = serde_json::json!({
        "Responses": { TABLE: [{
            "pk": { "S": format!("SEARCH#{}", indexed.id) },
            "sk": { "S": "MANIFEST" },
            "version": { "N": indexed.version.to_string() },
            "layout": { "N": SEARCH_LAYOUT.to_string() },
        }] },
        "UnprocessedKeys": {},
    });
    let failure = serde_json::json!({
        "__type": "com.amazonaws.dynamodb.v20120810#InternalServerError",
        "message": "the store failed",
    });
    let replay = StaticReplayClient::new(vec![
        answer(200, manifest.to_string()),
        answer(500, failure.to_string()),
    ]);
    let index = index_on(&replay);

    // Act
    let settled = index
        .index_once(
            "search-index",
            &[("k1", &new), ("k2", &indexed), ("k3", &other)],
        )
        .await;

    // Assert: the covered event is settled; the others fail as retryable, and no transaction
    // (no manifest, no record) was sent after the failed write.
    assert!(
        matches!(settled[0], Err(StoreError::Unavailable(_))),
        "{:?}",
        settled[0]
    );
    assert_eq!(settled[1].as_ref().unwrap(), &Settled::Done(Applied::Stale));
    assert!(
        matches!(settled[2], Err(StoreError::Unavailable(_))),
        "{:?}",
        settled[2]
    );
    assert_eq!(
        sent(&replay),
        [
            "DynamoDB_20120810.BatchGetItem",
            "DynamoDB_20120810.BatchWriteItem"
        ]
    );
}

#[tokio::test]
async fn an_update_the_index_cannot_see_sends_only_the_manifest_and_its_record() {
    // Arrange: version 1 is filed; version 2 changes only the capacity.
    let filed = event("Rust night");
    let (update, _) = filed
        .patched(
            EventPatch {
                capacity: Some(Some(Capacity::new("capacity", 40).unwrap())),
                ..Default::default()
            },
            Timestamp::now(),
        )
        .unwrap();
    let entry = SearchEntry::of(&filed).unwrap();
    let partitions: Vec<serde_json::Value> = entry
        .partitions
        .iter()
        .map(|p| serde_json::json!({ "S": p }))
        .collect();
    let manifest = serde_json::json!({
        "Responses": { TABLE: [{
            "pk": { "S": format!("SEARCH#{}", filed.id) },
            "sk": { "S": "MANIFEST" },
            "version": { "N": filed.version.to_string() },
            "layout": { "N": SEARCH_LAYOUT.to_string() },
            "sort_key": { "S": entry.sort_key },
            "partitions": { "L": partitions },
            // The entries' words as written: the event has no tags, so no `#tag` follows them.
            "words": { "S": entry.words.iter().cloned().collect::<Vec<_>>().join(" ") },
        }] },
        "UnprocessedKeys": {},
    });
    let replay = StaticReplayClient::new(vec![
        answer(200, manifest.to_string()),
        answer(200, "{}".to_owned()),
    ]);
    let index = index_on(&replay);

    // Act
    let settled = index.index_once("search-index", &[("k1", &update)]).await;

    // Assert: filed as changed, with no entry written.
    assert_eq!(
        settled[0].as_ref().unwrap(),
        &Settled::Done(Applied::Changed)
    );
    assert_eq!(
        sent(&replay),
        [
            "DynamoDB_20120810.BatchGetItem",
            "DynamoDB_20120810.TransactWriteItems"
        ]
    );
}
