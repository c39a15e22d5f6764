//! Warm CPU benchmarks (`cargo bench -p evently-warm`): each function's real handler, wired to
//! the real DynamoDB, SNS and SES v2 adapters, with the SDK's HTTP layer answered by a
//! `StaticReplayClient` from traffic recorded against the local stack (`make record-warm`,
//! files in `bench/warm/recorded/`).
//!
//! A figure holds: parsing the Lambda event from its JSON fixture, our code, and the SDK's
//! endpoint resolution, request signing and (de)serialisation. It leaves out the network, the
//! Runtime API round trip and password hashing (none of the scenarios hashes a password).
//!
//! Layout: [`Scenario`] names each benchmarked path and runs it once against a [`Wired`] set of
//! adapters; [`Recorder`] records a scenario's calls and [`Recording`] replays them; `src/bin/record.rs` makes the
//! recordings; `benches/warm.rs` times the scenarios.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_config::{Region, SdkConfig};
use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use aws_sdk_dynamodb::config::{Credentials, SharedCredentialsProvider, SharedHttpClient};
use aws_smithy_http_client::test_util::ReplayEvent;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;
use evently_shared::aws::{
    DynamoAnalytics, DynamoEventStore, DynamoIdempotency, DynamoOnce, DynamoReadModel,
    DynamoSearchIndex, DynamoUserStore, SesMailer, SnsPublisher, with_lambda_settings,
};
use evently_shared::consumer::SqsBatch;
use evently_shared::idempotency::lease_until;
use evently_shared::tokens::{TokenConfig, TokenVerifier};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where the recordings live.
pub fn recordings_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("recorded")
}

/// The resource names the adapters are built with. Recordings are stored with the names of
/// [`Resources::replayed`] in place of the deployed ones ([`Recording::renamed`]): a BatchGetItem
/// answer is keyed by table name, and an adapter reads only its own table's key.
#[derive(Debug, Clone)]
pub struct Resources {
    pub events_table: String,
    pub read_model_table: String,
    pub analytics_table: String,
    pub idempotency_table: String,
    pub users_table: String,
    pub topic_arn: String,
    pub mail_from: String,
    pub unsubscribe_url: String,
}

impl Resources {
    /// Names for replay, where no resource is reached.
    pub fn replayed() -> Self {
        Self {
            events_table: "evently-events".into(),
            read_model_table: "evently-read-model".into(),
            analytics_table: "evently-analytics".into(),
            idempotency_table: "evently-idempotency".into(),
            users_table: "evently-users".into(),
            topic_arn: "arn:aws:sns:us-east-1:000000000000:evently-events".into(),
            mail_from: "no-reply@evently.example".into(),
            unsubscribe_url: "https://api.evently.example/unsubscribe".into(),
        }
    }

    /// Each name, in the order of the fields.
    fn names(&self) -> [&str; 8] {
        [
            &self.events_table,
            &self.read_model_table,
            &self.analytics_table,
            &self.idempotency_table,
            &self.users_table,
            &self.topic_arn,
            &self.mail_from,
            &self.unsubscribe_url,
        ]
    }
}

/// An SDK configuration on `http`, with fixed test credentials and region where every
/// function reads its own from the Lambda environment, and the functions' own settings
/// (timeouts, whose timers each call arms, and the rest of [`with_lambda_settings`]).
pub fn sdk_config(http: SharedHttpClient, endpoint: &str) -> SdkConfig {
    with_lambda_settings(
        SdkConfig::builder()
            .region(Region::new("us-east-1"))
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                "test", "test", None, None, "bench",
            )))
            .endpoint_url(endpoint)
            .http_client(http)
            .build(),
    )
}

type EventsApp = events_api::handler::App<
    DynamoEventStore,
    DynamoReadModel,
    DynamoAnalytics,
    DynamoSearchIndex,
    DynamoIdempotency,
>;

/// Every benchmarked handler with the adapters its `main.rs` gives it.
pub struct Wired {
    pub events_api: EventsApp,
    pub projections: DynamoOnce<DynamoReadModel>,
    pub index: DynamoOnce<DynamoSearchIndex>,
    pub counters: DynamoOnce<DynamoAnalytics>,
    pub welcome: welcome_email::handler::Welcome<SesMailer, DynamoIdempotency>,
    pub notifier: notifications::handler::Notifier<
        DynamoEventStore,
        DynamoUserStore,
        SesMailer,
        DynamoIdempotency,
    >,
    pub publisher: SnsPublisher,
}

impl Wired {
    pub fn new(sdk: &SdkConfig, names: &Resources, tokens: &TokenConfig) -> Self {
        let dynamo = aws_sdk_dynamodb::Client::new(sdk);
        let ses = aws_sdk_sesv2::Client::new(sdk);
        let idempotency = || DynamoIdempotency::new(dynamo.clone(), &names.idempotency_table);
        let events = || DynamoEventStore::new(dynamo.clone(), &names.events_table);
        Self {
            events_api: events_api::handler::App {
                store: events(),
                read_model: DynamoReadModel::new(dynamo.clone(), &names.read_model_table),
                search: DynamoSearchIndex::new(dynamo.clone(), &names.read_model_table),
                analytics: DynamoAnalytics::new(dynamo.clone(), &names.analytics_table),
                idempotency: idempotency(),
                tokens: TokenVerifier::new(tokens).expect("test keys verify"),
            },
            projections: DynamoOnce::new(
                DynamoReadModel::new(dynamo.clone(), &names.read_model_table),
                idempotency(),
            ),
            index: DynamoOnce::new(
                DynamoSearchIndex::new(dynamo.clone(), &names.read_model_table),
                idempotency(),
            ),
            counters: DynamoOnce::new(
                DynamoAnalytics::new(dynamo.clone(), &names.analytics_table),
                idempotency(),
            ),
            welcome: welcome_email::handler::Welcome {
                mailer: SesMailer::new(ses.clone(), &names.mail_from),
                idempotency: idempotency(),
            },
            notifier: notifications::handler::Notifier {
                events: events(),
                follows: DynamoUserStore::new(
                    dynamo.clone(),
                    &names.users_table,
                    &names.events_table,
                ),
                mailer: SesMailer::new(ses, &names.mail_from),
                idempotency: idempotency(),
                unsubscribe_url: names.unsubscribe_url.clone(),
            },
            publisher: SnsPublisher::new(aws_sdk_sns::Client::new(sdk), &names.topic_arn),
        }
    }
}

/// One benchmarked path: a request to `events-api` or a one-message batch to a consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    GetEvents,
    GetEvent,
    PostEvents,
    ReadModelUpdater,
    /// Ten EventCreated in one SQS batch (`events-fixtures/sqs-event-created-batch.json`): one
    /// transaction for the ten. Divide by ten for a message's share.
    ReadModelUpdaterBatch,
    SearchIndex,
    /// The same ten, indexed: one BatchGetItem of manifests, the entries in BatchWriteItem
    /// chunks, one transaction of manifests and records.
    SearchIndexBatch,
    Analytics,
    /// The same ten, counted: one transaction, one counter update for the ten.
    AnalyticsBatch,
    WelcomeEmail,
    /// Ten UserCreated in one SQS batch: one claim transaction, one bulk send, one completion
    /// transaction for the ten.
    WelcomeEmailBatch,
    Notifications,
    /// The same ten EventCreated, one organizer and two tags between them, one follower: the
    /// three follower lists read once, one settings read, one claim transaction, one bulk send,
    /// one completion transaction for the ten mails.
    NotificationsBatch,
    OutboxRelay,
    /// Ten outbox inserts in one stream batch: one PublishBatch of ten, the relay's shape under
    /// load. Divide by ten for a record's share.
    OutboxRelayBatch,
}

const FIXTURE_ORGANIZER: &str = "user-1";
const FIXTURE_TAGS: &str = r#"[\"rust\",\"aws-lambda\"]"#;

impl Scenario {
    pub const ALL: [Scenario; 15] = [
        Self::GetEvents,
        Self::GetEvent,
        Self::PostEvents,
        Self::ReadModelUpdater,
        Self::ReadModelUpdaterBatch,
        Self::SearchIndex,
        Self::SearchIndexBatch,
        Self::Analytics,
        Self::AnalyticsBatch,
        Self::WelcomeEmail,
        Self::WelcomeEmailBatch,
        Self::Notifications,
        Self::NotificationsBatch,
        Self::OutboxRelay,
        Self::OutboxRelayBatch,
    ];

    /// The benchmark's and the recording's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::GetEvents => "events-api-get-events",
            Self::GetEvent => "events-api-get-event",
            Self::PostEvents => "events-api-post-events",
            Self::ReadModelUpdater => "read-model-updater-event-created",
            Self::ReadModelUpdaterBatch => "read-model-updater-batch-of-10",
            Self::SearchIndex => "search-index-event-created",
            Self::SearchIndexBatch => "search-index-batch-of-10",
            Self::Analytics => "analytics-event-created",
            Self::AnalyticsBatch => "analytics-batch-of-10",
            Self::WelcomeEmail => "welcome-email-user-created",
            Self::WelcomeEmailBatch => "welcome-email-batch-of-10",
            Self::Notifications => "notifications-event-created",
            Self::NotificationsBatch => "notifications-batch-of-10",
            Self::OutboxRelay => "outbox-relay-outbox-insert",
            Self::OutboxRelayBatch => "outbox-relay-outbox-batch-of-10",
        }
    }

    /// The Lambda event, from `events-fixtures/`.
    pub fn fixture(self) -> &'static str {
        match self {
            Self::GetEvents => include_str!("../../../events-fixtures/apigw-get-events.json"),
            Self::GetEvent => include_str!("../../../events-fixtures/apigw-get-event.json"),
            Self::PostEvents => include_str!("../../../events-fixtures/apigw-post-events.json"),
            Self::WelcomeEmail => include_str!("../../../events-fixtures/sqs-user-created.json"),
            Self::WelcomeEmailBatch => {
                include_str!("../../../events-fixtures/sqs-user-created-batch.json")
            }
            Self::OutboxRelay => {
                include_str!("../../../events-fixtures/dynamodb-outbox-insert.json")
            }
            Self::OutboxRelayBatch => {
                include_str!("../../../events-fixtures/dynamodb-outbox-batch.json")
            }
            Self::ReadModelUpdater | Self::SearchIndex | Self::Analytics | Self::Notifications => {
                include_str!("../../../events-fixtures/sqs-event-created.json")
            }
            Self::ReadModelUpdaterBatch
            | Self::SearchIndexBatch
            | Self::AnalyticsBatch
            | Self::NotificationsBatch => {
                include_str!("../../../events-fixtures/sqs-event-created-batch.json")
            }
        }
    }

    /// The fixture as the benchmark sends it: with `token` as the caller's bearer token.
    pub fn input(self, token: &str) -> String {
        let mut event: Value = serde_json::from_str(self.fixture()).expect("fixtures are JSON");
        if let Some(headers) = event.get_mut("headers").and_then(Value::as_object_mut)
            && headers.contains_key("authorization")
        {
            headers.insert("authorization".into(), format!("Bearer {token}").into());
        }
        event.to_string()
    }

    /// The input with every fixture id, the organizer and the tags replaced by fresh ones, so a
    /// recording takes the first-delivery path (no idempotency record, no projection yet) and
    /// meets no data left by other runs. `event_id` replaces the fixture event's id; the two
    /// tags become `<tag>-a` and `<tag>-b` (but search-index's: [`Self::fresh_tags`]), so the
    /// recording makes the calls the fixture makes.
    pub fn fresh_input(self, token: &str, event_id: &str, organizer: &str, tag: &str) -> String {
        let mut text = self.input(token);
        for old in fixture_ids(self.fixture()) {
            let new = if old == "01JDX5Q7ZK3M4N5P6Q7R8S9T0V" {
                event_id.to_owned()
            } else {
                ulid::Ulid::generate().to_string()
            };
            text = text.replace(&old, &new);
        }
        text.replace(
            &format!("\\\"{FIXTURE_ORGANIZER}\\\""),
            &format!("\\\"{organizer}\\\""),
        )
        .replace(FIXTURE_TAGS, &self.fresh_tags(tag))
    }

    /// The tags `fresh_input` gives the fixture's events. search-index keeps the fixture's:
    /// its entries are keyed by the fresh event ids already, and a tag's words are partitions,
    /// so other tags would record more or fewer writes than the timed run (on the fixture)
    /// makes.
    fn fresh_tags(self, tag: &str) -> String {
        match self {
            Self::SearchIndex | Self::SearchIndexBatch => FIXTURE_TAGS.to_owned(),
            _ => format!(r#"[\"{tag}-a\",\"{tag}-b\"]"#),
        }
    }

    /// Runs the handler once on `input`; `Err` unless it answered as on the happy path (the
    /// expected status, or no failed batch item), so a replay that drifted from its recording
    /// is never timed.
    pub async fn run(self, wired: &Wired, input: &str) -> Result<(), String> {
        match self {
            Self::GetEvents | Self::GetEvent | Self::PostEvents => {
                let request = lambda_http::request::from_str(input).map_err(|e| e.to_string())?;
                let response = wired.events_api.handle(request).await;
                let expected = if self == Self::PostEvents { 201 } else { 200 };
                if response.status().as_u16() == expected {
                    Ok(())
                } else {
                    Err(format!("{}: {:?}", response.status(), response.body()))
                }
            }
            Self::OutboxRelay | Self::OutboxRelayBatch => {
                let event: StreamEvent = serde_json::from_str(input).map_err(|e| e.to_string())?;
                let response = outbox_relay::handler::relay(&wired.publisher, event)
                    .await
                    .map_err(|e| e.to_string())?;
                none_failed(response.batch_item_failures.len())
            }
            _ => {
                let event: SqsBatch = serde_json::from_str(input).map_err(|e| e.to_string())?;
                let deadline_ms = now_ms() + 60_000;
                let response = match self {
                    Self::ReadModelUpdater | Self::ReadModelUpdaterBatch => {
                        read_model_updater::handler::handle_batch(&wired.projections, event).await
                    }
                    Self::SearchIndex | Self::SearchIndexBatch => {
                        search_index::handler::handle_batch(&wired.index, event).await
                    }
                    Self::Analytics | Self::AnalyticsBatch => {
                        analytics::handler::handle_batch(&wired.counters, event).await
                    }
                    Self::WelcomeEmail | Self::WelcomeEmailBatch => {
                        let lease = lease_until(Some(deadline_ms));
                        wired.welcome.handle_batch(event, lease).await
                    }
                    _ => {
                        let deadline = i64::try_from(deadline_ms).unwrap_or(i64::MAX);
                        wired.notifier.handle_batch(event, deadline).await
                    }
                }
                .map_err(|e| e.to_string())?;
                none_failed(response.batch_item_failures.len())
            }
        }
    }
}

fn none_failed(failed: usize) -> Result<(), String> {
    if failed == 0 {
        Ok(())
    } else {
        Err(format!("{failed} batch item(s) failed"))
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The fixture ULIDs (they all start `01JDX`), each once, in order of appearance.
fn fixture_ids(fixture: &str) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    let mut rest = fixture;
    while let Some(at) = rest.find("01JDX") {
        let candidate = rest.get(at..at + 26).unwrap_or_default();
        if candidate.len() == 26
            && candidate.bytes().all(|b| b.is_ascii_alphanumeric())
            && !ids.iter().any(|id| id == candidate)
        {
            ids.push(candidate.to_owned());
        }
        rest = &rest[at + 5..];
    }
    ids
}

/// One recorded call: the request as sent and the response as received.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Exchange {
    pub method: String,
    pub uri: String,
    /// The operation (`X-Amz-Target`, or the query `Action`), for a reader of the file.
    pub operation: String,
    pub request_body: String,
    pub status: u16,
    pub response_headers: Vec<(String, String)>,
    pub response_body: String,
}

/// The calls of one scenario, in order, as stored in `recorded/<scenario>.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Recording {
    pub calls: Vec<Exchange>,
}

impl Recording {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The recording with every name of `from` written as the same resource's name in `to`,
    /// in the URIs and both bodies.
    pub fn renamed(mut self, from: &Resources, to: &Resources) -> Self {
        let mut pairs: Vec<(&str, &str)> = from.names().into_iter().zip(to.names()).collect();
        // Longest first, so a name that holds another is replaced whole.
        pairs.sort_by_key(|(from, _)| std::cmp::Reverse(from.len()));
        for call in &mut self.calls {
            for text in [
                &mut call.uri,
                &mut call.request_body,
                &mut call.response_body,
            ] {
                for (from, to) in &pairs {
                    if !from.is_empty() && text.contains(from) {
                        *text = text.replace(from, to);
                    }
                }
            }
        }
        self
    }

    /// How many calls were recorded.
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// Whether `sent` are the recorded calls: as many, and the same operation each, in order.
    /// Ids, times and resource names may differ.
    pub fn check<'a>(&self, sent: impl Iterator<Item = &'a HttpRequest>) -> Result<(), String> {
        let sent: Vec<String> = sent
            .map(|request| operation(request, request.body().bytes().unwrap_or_default()))
            .collect();
        let recorded: Vec<&str> = self.calls.iter().map(|c| c.operation.as_str()).collect();
        if sent == recorded {
            Ok(())
        } else {
            Err(format!("sent {sent:?}, recorded {recorded:?}"))
        }
    }

    /// The recording as events for a `StaticReplayClient` (which consumes them).
    pub fn events(&self) -> Vec<ReplayEvent> {
        self.calls
            .iter()
            .map(|x| {
                let request = http::Request::builder()
                    .method(x.method.as_str())
                    .uri(x.uri.as_str())
                    .body(SdkBody::from(x.request_body.clone()))
                    .expect("a recorded request is a valid request");
                let mut response = http::Response::builder().status(x.status);
                for (name, value) in &x.response_headers {
                    response = response.header(name.as_str(), value.as_str());
                }
                let response = response
                    .body(SdkBody::from(x.response_body.clone()))
                    .expect("a recorded response is a valid response");
                ReplayEvent::new(request, response)
            })
            .collect()
    }
}

/// Answers every call with the next recorded response, starting over after the last, so one
/// SDK client serves any number of iterations, as one warm Lambda instance serves many
/// events. (A `StaticReplayClient` is used up by one pass; a client per iteration would time
/// each client's first-call set-up, which a warm instance has already paid.)
#[derive(Debug, Clone)]
pub struct Replayer {
    calls: Arc<Vec<Exchange>>,
    next: Arc<AtomicUsize>,
}

impl Replayer {
    pub fn new(recording: &Recording) -> Self {
        assert!(!recording.is_empty(), "nothing to replay");
        Self {
            calls: Arc::new(recording.calls.clone()),
            next: Arc::default(),
        }
    }
}

impl HttpClient for Replayer {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

impl HttpConnector for Replayer {
    fn call(&self, _request: HttpRequest) -> HttpConnectorFuture {
        let call = &self.calls[self.next.fetch_add(1, Ordering::Relaxed) % self.calls.len()];
        let status = StatusCode::try_from(call.status).expect("a recorded status is valid");
        let mut response = HttpResponse::new(status, SdkBody::from(call.response_body.clone()));
        for (name, value) in &call.response_headers {
            response.headers_mut().append(name.clone(), value.clone());
        }
        HttpConnectorFuture::ready(Ok(response))
    }
}

/// An HTTP client that passes every call to `inner` and keeps a copy of it. Response bodies
/// are read whole before they are handed on, which every JSON and query protocol call does
/// anyway.
#[derive(Debug, Clone)]
pub struct Recorder {
    inner: SharedHttpClient,
    calls: Arc<Mutex<Vec<Exchange>>>,
}

impl Recorder {
    pub fn new(inner: SharedHttpClient) -> Self {
        Self {
            inner,
            calls: Arc::default(),
        }
    }

    /// Everything recorded so far.
    pub fn recording(&self) -> Recording {
        Recording {
            calls: self.calls.lock().expect("not poisoned").clone(),
        }
    }
}

impl HttpClient for Recorder {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(RecordingConnector {
            inner: self.inner.http_connector(settings, components),
            calls: Arc::clone(&self.calls),
        })
    }
}

#[derive(Debug)]
struct RecordingConnector {
    inner: SharedHttpConnector,
    calls: Arc<Mutex<Vec<Exchange>>>,
}

impl HttpConnector for RecordingConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let body = request.body().bytes().unwrap_or_default();
        let mut exchange = Exchange {
            method: request.method().to_string(),
            uri: request.uri().to_string(),
            operation: operation(&request, body),
            request_body: String::from_utf8_lossy(body).into_owned(),
            ..Exchange::default()
        };
        let inner = self.inner.clone();
        let calls = Arc::clone(&self.calls);
        HttpConnectorFuture::new(async move {
            let response = inner.call(request).await?;
            exchange.status = response.status().as_u16();
            exchange.response_headers = response
                .headers()
                .iter()
                .map(|(name, value)| (name.to_owned(), value.to_owned()))
                .collect();
            let bytes = ByteStream::new(response.into_body())
                .collect()
                .await
                .map_err(|e| ConnectorError::io(e.into()))?
                .into_bytes();
            exchange.response_body = String::from_utf8_lossy(&bytes).into_owned();
            let mut replayed = HttpResponse::new(
                StatusCode::try_from(exchange.status)
                    .map_err(|e| ConnectorError::other(e.into(), None))?,
                SdkBody::from(bytes),
            );
            for (name, value) in &exchange.response_headers {
                replayed.headers_mut().append(name.clone(), value.clone());
            }
            calls.lock().expect("not poisoned").push(exchange);
            Ok(replayed)
        })
    }
}

/// DynamoDB's `X-Amz-Target`, SNS's query `Action`, or the method and path (SES v2's REST).
fn operation(request: &HttpRequest, body: &[u8]) -> String {
    if let Some(target) = request.headers().get("x-amz-target") {
        return target.to_owned();
    }
    let body = String::from_utf8_lossy(body);
    match body
        .split('&')
        .find_map(|pair| pair.strip_prefix("Action="))
    {
        Some(action) => action.to_owned(),
        None => format!(
            "{} {}",
            request.method(),
            request.uri().split('?').next().unwrap_or_default()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_inputs_share_no_id_with_the_fixture() {
        let input =
            Scenario::Notifications.fresh_input("t", "01ZZZZZZZZZZZZZZZZZZZZZZZZ", "org-9", "btag");

        assert!(fixture_ids(&input).is_empty(), "{input}");
        assert!(input.contains("01ZZZZZZZZZZZZZZZZZZZZZZZZ"));
        assert!(input.contains(r#"\"organizer_id\":\"org-9\""#), "{input}");
        assert!(
            input.contains(r#"\"tags\":[\"btag-a\",\"btag-b\"]"#),
            "{input}"
        );
    }

    #[test]
    fn a_renamed_recording_names_the_replayed_resources_in_uris_and_both_bodies() {
        let deployed = Resources {
            users_table: "Evently-UsersTable-ABC".into(),
            events_table: "Evently-UsersTable-ABC-events".into(),
            ..Resources::replayed()
        };
        let recording = Recording {
            calls: vec![Exchange {
                uri: "http://x/Evently-UsersTable-ABC".into(),
                request_body: r#"{"TableName":"Evently-UsersTable-ABC-events"}"#.into(),
                response_body: r#"{"Responses":{"Evently-UsersTable-ABC":[]}}"#.into(),
                ..Exchange::default()
            }],
        };

        let renamed = recording.renamed(&deployed, &Resources::replayed());

        let call = &renamed.calls[0];
        assert_eq!(call.uri, "http://x/evently-users");
        assert_eq!(call.request_body, r#"{"TableName":"evently-events"}"#);
        assert_eq!(call.response_body, r#"{"Responses":{"evently-users":[]}}"#);
    }

    #[test]
    fn every_scenario_has_a_recording_that_replays() {
        for scenario in Scenario::ALL {
            let path = recordings_dir().join(format!("{}.json", scenario.name()));

            let recording = Recording::load(&path).unwrap();

            assert!(
                !recording.is_empty(),
                "{} recorded no call",
                scenario.name()
            );
            assert_eq!(recording.events().len(), recording.len());
        }
    }
}
