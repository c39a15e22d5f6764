//! Warm CPU per request and per message (`make bench-warm`): the timed part parses the Lambda
//! event from its fixture and runs the handler; the SDK's HTTP layer answers from the
//! scenario's recording.
//!
//! Three groups: `warm` keeps one SDK client and its adapters across iterations, as a warm
//! Lambda instance does (the recorded responses replayed in a loop); `fresh-client` builds a
//! new client on a `StaticReplayClient` for every iteration (outside the timing), so each call
//! is that client's first, which is what the first event after a cold start pays; `sdk-alone`
//! sends the recorded DynamoDB requests of each GET, and of one consumer message, through the
//! same SDK client with no handler around them, the floor no change to our code can go below.
//! Before
//! timing, one run on a `StaticReplayClient` must succeed and send exactly the recorded
//! operations, so a stale recording fails loudly instead of timing an error path. The handlers
//! log through the functions' own subscriber, to stdout, as in Lambda.

use std::collections::HashMap;

use aws_sdk_dynamodb::config::SharedHttpClient;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use aws_smithy_http_client::test_util::StaticReplayClient;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use evently_shared::domain::{Password, UserId};
use evently_shared::fakes::test_keys;
use evently_shared::password::PasswordHasher;
use evently_shared::tokens::TokenConfig;
use evently_warm::{Recording, Replayer, Resources, Scenario, Wired, recordings_dir, sdk_config};
use serde_json::Value;

// The same allocator as the functions whose handlers run here (their main.rs): the figures are
// theirs only if the allocations cost what they cost there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ENDPOINT: &str = "http://127.0.0.1:4566";

fn on_static_replay(recording: &Recording, tokens: &TokenConfig) -> (Wired, StaticReplayClient) {
    let client = StaticReplayClient::new(recording.events());
    let sdk = sdk_config(SharedHttpClient::new(client.clone()), ENDPOINT);
    (Wired::new(&sdk, &Resources::replayed(), tokens), client)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

fn handlers(c: &mut Criterion) {
    // The functions' own log subscriber (JSON lines at `LOG_LEVEL`, `info` unless set), as
    // their main.rs installs it: formatting and writing each log line is part of a request's
    // or message's cost. `LOG_LEVEL=off` measures without it.
    evently_shared::telemetry::init();
    let runtime = runtime();
    let (signer, tokens) = test_keys("https://auth.evently.test", "evently-api");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64;
    let token = signer
        .issue(&UserId::parse("sub", "bench-user").expect("an id"), now)
        .token;

    let mut scenarios = Vec::new();
    for scenario in Scenario::ALL {
        let path = recordings_dir().join(format!("{}.json", scenario.name()));
        let recording = Recording::load(&path).unwrap_or_else(|e| panic!("{e} (make record-warm)"));
        let input = scenario.input(&token);
        let (check, client) = on_static_replay(&recording, &tokens);
        runtime
            .block_on(scenario.run(&check, &input))
            .unwrap_or_else(|e| panic!("{}: {e}", scenario.name()));
        recording
            .check(client.actual_requests())
            .unwrap_or_else(|e| panic!("{}: {e} (make record-warm)", scenario.name()));
        scenarios.push((scenario, recording, input));
    }

    let mut warm = c.benchmark_group("warm");
    for (scenario, recording, input) in &scenarios {
        let sdk = sdk_config(SharedHttpClient::new(Replayer::new(recording)), ENDPOINT);
        let wired = Wired::new(&sdk, &Resources::replayed(), &tokens);
        warm.bench_function(scenario.name(), |b| {
            b.to_async(&runtime).iter(|| async {
                let outcome = scenario.run(&wired, input).await;
                assert!(outcome.is_ok(), "{}: {outcome:?}", scenario.name());
            })
        });
    }
    warm.finish();

    let mut fresh = c.benchmark_group("fresh-client");
    for (scenario, recording, input) in &scenarios {
        fresh.bench_function(scenario.name(), |b| {
            b.to_async(&runtime).iter_batched(
                || on_static_replay(recording, &tokens),
                |(wired, client)| async move {
                    let outcome = scenario.run(&wired, input).await;
                    (outcome, wired, client)
                },
                BatchSize::SmallInput,
            )
        });
    }
    fresh.finish();
}

/// A recorded request's body (`TableName`, `Key`, `Item`, ...), to send it again.
struct Sent(Value);

impl Sent {
    fn of(recording: &Recording) -> Self {
        let [call] = recording.calls.as_slice() else {
            panic!("one call to replay, not {}", recording.len());
        };
        Self::from_body(&call.request_body)
    }

    fn from_body(body: &str) -> Self {
        Self(serde_json::from_str(body).expect("a JSON request body"))
    }

    fn str(&self, name: &str) -> &str {
        self.0[name]
            .as_str()
            .unwrap_or_else(|| panic!("{name} in the request"))
    }

    fn names(&self) -> Option<HashMap<String, String>> {
        serde_json::from_value(self.0["ExpressionAttributeNames"].clone()).ok()
    }

    /// An attribute map of the request (`Key`, `Item`, `ExpressionAttributeValues`).
    fn map(&self, name: &str) -> HashMap<String, AttributeValue> {
        attributes(&self.0[name])
    }
}

fn attributes(map: &Value) -> HashMap<String, AttributeValue> {
    map.as_object()
        .expect("an attribute map")
        .iter()
        .map(|(name, value)| (name.clone(), attribute(value)))
        .collect()
}

/// One attribute value from DynamoDB's JSON wire form.
fn attribute(value: &Value) -> AttributeValue {
    let (kind, inner) = value
        .as_object()
        .and_then(|typed| typed.iter().next())
        .expect("a typed attribute value");
    let text = || inner.as_str().expect("a string").to_owned();
    match kind.as_str() {
        "S" => AttributeValue::S(text()),
        "N" => AttributeValue::N(text()),
        "B" => AttributeValue::B(Blob::new(
            aws_smithy_types::base64::decode(text()).expect("base64"),
        )),
        "BOOL" => AttributeValue::Bool(inner.as_bool().expect("a boolean")),
        "NULL" => AttributeValue::Null(true),
        "L" => AttributeValue::L(
            inner
                .as_array()
                .expect("a list")
                .iter()
                .map(attribute)
                .collect(),
        ),
        "M" => AttributeValue::M(attributes(inner)),
        "SS" => AttributeValue::Ss(serde_json::from_value(inner.clone()).expect("a string set")),
        other => panic!("attribute type {other} is not replayed"),
    }
}

/// A recorded TransactWriteItems request's entries (puts and updates, as the adapters send).
fn transact_items(sent: &Sent) -> Vec<TransactWriteItem> {
    let text = |entry: &Value, name: &str| entry[name].as_str().map(str::to_owned);
    let names =
        |entry: &Value| serde_json::from_value(entry["ExpressionAttributeNames"].clone()).ok();
    let values = |entry: &Value| entry.get("ExpressionAttributeValues").map(attributes);
    sent.0["TransactItems"]
        .as_array()
        .expect("TransactItems")
        .iter()
        .map(|entry| {
            if let Some(put) = entry.get("Put") {
                let put = Put::builder()
                    .set_table_name(text(put, "TableName"))
                    .set_item(Some(attributes(&put["Item"])))
                    .set_condition_expression(text(put, "ConditionExpression"))
                    .set_expression_attribute_names(names(put))
                    .set_expression_attribute_values(values(put))
                    .set_return_values_on_condition_check_failure(
                        text(put, "ReturnValuesOnConditionCheckFailure").map(|v| v.as_str().into()),
                    )
                    .build()
                    .expect("a put");
                TransactWriteItem::builder().put(put).build()
            } else {
                let update = &entry["Update"];
                let update = Update::builder()
                    .set_table_name(text(update, "TableName"))
                    .set_key(Some(attributes(&update["Key"])))
                    .set_update_expression(text(update, "UpdateExpression"))
                    .set_expression_attribute_names(names(update))
                    .set_expression_attribute_values(values(update))
                    .build()
                    .expect("an update");
                TransactWriteItem::builder().update(update).build()
            }
        })
        .collect()
}

/// GET /events/{id}'s GetItem and GET /events' Query, each alone: the same request (rebuilt
/// from the recording) on the same client set-up, answered from the same recorded response.
fn sdk_alone(c: &mut Criterion) {
    let runtime = runtime();
    let load = |scenario: Scenario| {
        let path = recordings_dir().join(format!("{}.json", scenario.name()));
        Recording::load(&path).unwrap_or_else(|e| panic!("{e} (make record-warm)"))
    };
    let client = |recording: &Recording| {
        let http = SharedHttpClient::new(Replayer::new(recording));
        aws_sdk_dynamodb::Client::new(&sdk_config(http, ENDPOINT))
    };
    let mut group = c.benchmark_group("sdk-alone");

    let recording = load(Scenario::GetEvent);
    let (sent, dynamo) = (Sent::of(&recording), client(&recording));
    // Built once and cloned per call, as the adapters build theirs per call from constants.
    let (key, names) = (sent.map("Key"), sent.names());
    group.bench_function("dynamodb-get-item", |b| {
        b.to_async(&runtime).iter(|| async {
            let output = dynamo
                .get_item()
                .table_name(sent.str("TableName"))
                .set_key(Some(key.clone()))
                .consistent_read(false)
                .projection_expression(sent.str("ProjectionExpression"))
                .set_expression_attribute_names(names.clone())
                .send()
                .await;
            assert!(output.expect("the recorded answer").item.is_some());
        })
    });

    let recording = load(Scenario::GetEvents);
    let (sent, dynamo) = (Sent::of(&recording), client(&recording));
    let (values, names) = (sent.map("ExpressionAttributeValues"), sent.names());
    group.bench_function("dynamodb-query", |b| {
        b.to_async(&runtime).iter(|| async {
            let output = dynamo
                .query()
                .table_name(sent.str("TableName"))
                .index_name(sent.str("IndexName"))
                .key_condition_expression(sent.str("KeyConditionExpression"))
                .set_expression_attribute_values(Some(values.clone()))
                .limit(sent.0["Limit"].as_i64().expect("Limit") as i32)
                .projection_expression(sent.str("ProjectionExpression"))
                .set_expression_attribute_names(names.clone())
                .send()
                .await;
            assert!(!output.expect("the recorded answer").items().is_empty());
        })
    });

    // A consumer's one call alone: read-model-updater's transaction (each projection with the
    // kit's record of its envelope), for one message and for a batch of ten, rebuilt from the
    // recording.
    for scenario in [Scenario::ReadModelUpdater, Scenario::ReadModelUpdaterBatch] {
        let recording = load(scenario);
        let dynamo = client(&recording);
        let items = transact_items(&Sent::of(&recording));
        group.bench_function(format!("{}-call", scenario.name()), |b| {
            b.to_async(&runtime).iter(|| async {
                dynamo
                    .transact_write_items()
                    .set_transact_items(Some(items.clone()))
                    .send()
                    .await
                    .expect("the recorded answer");
            })
        });
    }
    group.finish();
}

/// Login's one CPU-bound step, for sizing auth-api's memory (BENCHMARKS.md): Argon2id at the
/// OWASP parameters (19 MiB, 2 passes, 1 lane) on one core.
fn password(c: &mut Criterion) {
    let runtime = runtime();
    let password = || Password::new_for("correct horse battery staple", None).expect("valid");
    let hasher = PasswordHasher::default();
    let stored = runtime.block_on(hasher.hash(password())).expect("a hash");
    assert!(runtime.block_on(hasher.verify(password(), Some(stored.clone()))));

    let mut group = c.benchmark_group("password");
    group.sample_size(10);
    group.bench_function("auth-api-argon2id-verify", |b| {
        b.to_async(&runtime)
            .iter(|| hasher.verify(password(), Some(stored.clone())))
    });
    group.finish();
}

criterion_group!(benches, handlers, sdk_alone, password);
criterion_main!(benches);
