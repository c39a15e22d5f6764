//! Shared plumbing for tests against the local stack: the deployed stack's outputs, the local
//! token key, SDK clients pointed at the emulator, and polling with deadlines.
//!
//! The stack must be up (`make up`); `make test` brings it up first. Nothing here fakes AWS:
//! every call goes over HTTP to the emulator.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use evently_shared::domain::UserId;
use evently_shared::tokens::{KeyRing, TokenSigner};
use serde_json::Value;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "http://127.0.0.1:4566".to_owned())
}

/// SDK configuration for the emulator: its endpoint, and dummy credentials and us-east-1
/// unless the environment gives others.
pub async fn sdk_config() -> aws_config::SdkConfig {
    let mut loader =
        aws_config::defaults(aws_config::BehaviorVersion::latest()).endpoint_url(endpoint());
    if std::env::var("AWS_ACCESS_KEY_ID").is_err() {
        loader = loader.credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test", "test", None, None, "emulator",
        ));
    }
    if std::env::var("AWS_REGION").is_err() && std::env::var("AWS_DEFAULT_REGION").is_err() {
        loader = loader.region(aws_config::Region::new("us-east-1"));
    }
    loader.load().await
}

/// The deployed local stack, as `make up` recorded it in `infra/outputs.local.json`.
pub struct Stack {
    outputs: Value,
    pub api: String,
    pub http: reqwest::Client,
    pub signer: TokenSigner,
    pub ring: KeyRing,
}

impl Stack {
    /// Reads the outputs, and the signing key from the stack's own secret, so tests can mint
    /// tokens the deployed functions accept.
    pub async fn load() -> Self {
        let name = std::env::var("STACK_NAME").unwrap_or_else(|_| "Evently".to_owned());
        let path = repo_root().join("infra/outputs.local.json");
        let raw = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}. Deploy the local stack first: make up",
                path.display()
            )
        });
        let all: Value = serde_json::from_str(&raw).expect("outputs.local.json is JSON");
        let outputs = all[&name].clone();
        assert!(
            outputs.is_object(),
            "no outputs for stack {name} in {}",
            path.display()
        );
        // The emulator's path form works with every client; EVENTLY_API_URL overrides it
        // (for example with LocalStack's own URL form, or a real deployment).
        let api = std::env::var("EVENTLY_API_URL").unwrap_or_else(|_| {
            format!(
                "{}/_aws/execute-api/{}",
                endpoint(),
                outputs["ApiId"].as_str().expect("ApiId output")
            )
        });
        let api = api.trim_end_matches('/').to_owned();
        let secrets = aws_sdk_secretsmanager::Client::new(&sdk_config().await);
        let secret = secrets
            .get_secret_value()
            .secret_id(
                outputs["JwtKeySecretArn"]
                    .as_str()
                    .expect("JwtKeySecretArn output"),
            )
            .send()
            .await
            .expect("the key secret")
            .secret_string
            .expect("a secret string");
        let ring = KeyRing::from_json(&secret).expect("the secret holds a key ring");
        let signer = TokenSigner::new(
            &ring.current,
            &Self::context("jwtIssuer"),
            &Self::context("jwtAudience"),
            600,
        )
        .expect("the current key signs");
        Self {
            outputs,
            api,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("http client"),
            signer,
            ring,
        }
    }

    fn context(key: &str) -> String {
        let raw = std::fs::read_to_string(repo_root().join("infra/cdk.json")).expect("cdk.json");
        let json: Value = serde_json::from_str(&raw).expect("cdk.json is JSON");
        json["context"][key]
            .as_str()
            .expect("context value")
            .to_owned()
    }

    pub fn output(&self, key: &str) -> String {
        self.outputs[key]
            .as_str()
            .unwrap_or_else(|| panic!("stack output {key} missing"))
            .to_owned()
    }

    /// A valid token for `sub`, signed with the key the stack trusts.
    pub fn token(&self, sub: &str) -> String {
        let user = UserId::parse("sub", sub).expect("a valid user id");
        self.signer
            .issue(&user, chrono::Utc::now().timestamp())
            .token
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.api)
    }

    /// The `message` of every log line the function wrote since `since_ms`.
    pub async fn log_lines(
        &self,
        logs: &aws_sdk_cloudwatchlogs::Client,
        function_output: &str,
        since_ms: i64,
    ) -> Vec<String> {
        let group = format!("/aws/lambda/{}", self.output(function_output));
        let mut lines = Vec::new();
        let mut token = None;
        loop {
            let page = logs
                .filter_log_events()
                .log_group_name(&group)
                .start_time(since_ms)
                .set_next_token(token)
                .send()
                .await
                .expect("FilterLogEvents");
            lines.extend(
                page.events()
                    .iter()
                    .filter_map(|e| e.message().map(str::to_owned)),
            );
            token = page.next_token().map(str::to_owned);
            if token.is_none() || page.events().is_empty() {
                break;
            }
        }
        lines
    }
}

/// Polls `check` until it returns `Some`, or panics with `what` after `deadline`.
pub async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A unique correlation id for one test run, so assertions never see another run's lines.
/// A valid POST /events body: `title` at `venue`, starting `days` from now, for an hour.
/// Callers add what their test is about (`capacity`, `visibility`, ...).
pub fn upcoming_event(title: &str, venue: &str, days: i64) -> Value {
    let start = chrono::Utc::now() + chrono::Duration::days(days);
    serde_json::json!({
        "title": title,
        "starts_at": start.to_rfc3339(),
        "ends_at": (start + chrono::Duration::hours(1)).to_rfc3339(),
        "venue": venue,
    })
}

pub fn correlation_id(test: &str) -> String {
    format!("e2e-{test}-{}", ulid::Ulid::generate())
}

/// One mail the emulator accepted for sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMail {
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Every mail the emulator has accepted, oldest first. ministack keeps them at
/// `/_ministack/ses/messages`; LocalStack at `/_aws/ses`. Both shapes are read here.
pub async fn sent_mail(http: &reqwest::Client) -> Vec<SentMail> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let ministack = http
        .get(format!("{}/_ministack/ses/messages", endpoint()))
        .send()
        .await
        .expect("the emulator answers");
    if ministack.status().is_success() {
        let body: Value = ministack.json().await.expect("JSON");
        return body["messages"]
            .as_object()
            .into_iter()
            .flat_map(|accounts| accounts.values())
            .flat_map(|list| list.as_array().cloned().unwrap_or_default())
            .map(|m| SentMail {
                to: m["To"].as_array().into_iter().flatten().map(text).collect(),
                subject: text(&m["Subject"]),
                text: text(&m["BodyText"]),
                html: text(&m["BodyHtml"]),
            })
            .collect();
    }
    let body: Value = http
        .get(format!("{}/_aws/ses", endpoint()))
        .send()
        .await
        .expect("the emulator answers")
        .json()
        .await
        .expect("JSON");
    body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| SentMail {
            to: m["Destination"]["ToAddresses"]
                .as_array()
                .into_iter()
                .flatten()
                .map(text)
                .collect(),
            subject: text(&m["Subject"]),
            text: text(&m["Body"]["text_part"]),
            html: text(&m["Body"]["html_part"]),
        })
        .collect()
}

/// Mail sent to `address` so far.
pub async fn mail_to(http: &reqwest::Client, address: &str) -> Vec<SentMail> {
    sent_mail(http)
        .await
        .into_iter()
        .filter(|m| m.to.iter().any(|to| to == address))
        .collect()
}

/// The envelope the outbox holds for the write made with `correlation` (found with a Scan:
/// acceptable in a test, never in the product).
pub async fn outbox_envelope(stack: &Stack, correlation: &str) -> String {
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk_config().await);
    let found = dynamo
        .scan()
        .table_name(stack.output("EventsTableName"))
        .filter_expression("correlation_id = :c")
        .expression_attribute_values(
            ":c",
            aws_sdk_dynamodb::types::AttributeValue::S(correlation.to_owned()),
        )
        .send()
        .await
        .expect("Scan");
    found.items()[0]["envelope"]
        .as_s()
        .expect("an outbox item holds its envelope")
        .clone()
}

/// Publishes `body` to the domain-event topic `times` times with the attributes the relay
/// sets: a redelivery, as SNS and SQS may make one.
pub async fn redeliver(
    stack: &Stack,
    body: &str,
    event_type: &str,
    correlation: &str,
    times: usize,
) {
    let sns = aws_sdk_sns::Client::new(&sdk_config().await);
    let attribute = |value: &str| {
        aws_sdk_sns::types::MessageAttributeValue::builder()
            .data_type("String")
            .string_value(value)
            .build()
            .expect("a string attribute")
    };
    for _ in 0..times {
        sns.publish()
            .topic_arn(stack.output("EventsTopicArn"))
            .message(body)
            .message_attributes("type", attribute(event_type))
            .message_attributes("correlationid", attribute(correlation))
            .send()
            .await
            .expect("Publish");
    }
}
