//! Records the SDK traffic of every warm-benchmark scenario against the local stack
//! (`make up && make record-warm`, or `make record-warm RECORD=<part of a name>` for some),
//! into `bench/warm/recorded/<scenario>.json`.
//!
//! The handlers run here, in-process, on the deployed tables, topic and mail sender (names read
//! from the Lambda API), so every recorded response is one the emulator really gave. Fresh ids
//! make each recording the first delivery of its message; one follower of a fresh organizer
//! gives `notifications` one mail to send.

use std::collections::HashMap;
use std::error::Error;
use std::time::Duration;

use aws_sdk_dynamodb::config::SharedHttpClient;
use evently_shared::aws::tls::{TrustedRoots, https_client};
use evently_shared::domain::{DisplayName, Email, Timestamp, User, UserId};
use evently_shared::envelope::{CorrelationId, DomainEvent};
use evently_shared::fakes::test_keys;
use evently_shared::ports::{FollowTarget, Follows, UserStore};
use evently_warm::{Recorder, Resources, Scenario, Wired, recordings_dir, sdk_config};
use serde_json::Value;

const ISSUER: &str = "https://auth.evently.test";
const AUDIENCE: &str = "evently-api";

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let endpoint =
        std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "http://127.0.0.1:4566".into());
    let stack = std::env::var("STACK_NAME").unwrap_or_else(|_| "Evently".into());
    let names = deployed_resources(&endpoint, &stack).await?;
    let (signer, tokens) = test_keys(ISSUER, AUDIENCE);
    let organizer = format!("bench-organizer-{}", ulid::Ulid::generate());
    let tag = format!(
        "b{}",
        ulid::Ulid::generate().to_string()[16..].to_lowercase()
    );
    let token = signer
        .issue(&UserId::parse("sub", &organizer)?, unix_now())
        .token;

    // Arrange, unrecorded: a page of events for GET /events, one of them to fetch, and a
    // follower of the organizer for notifications.
    let plain = Wired::new(
        &sdk_config(https_client(TrustedRoots::from_env()), &endpoint),
        &names,
        &tokens,
    );
    for _ in 0..10 {
        Scenario::PostEvents
            .run(&plain, &Scenario::PostEvents.input(&token))
            .await?;
    }
    let fetched = ulid::Ulid::generate().to_string();
    let post = Scenario::PostEvents.fresh_input(&token, &fetched, &organizer, &tag);
    Scenario::PostEvents.run(&plain, &post).await?;
    eprintln!("posted 11 events; waiting for the read model");
    let created = wait_for_projection(&plain, &token).await?;
    eprintln!("projected; a follower for {organizer}");
    follow(&plain, &organizer).await?;

    // `record <part of a name>` re-records only the scenarios whose name contains it, leaving
    // the other recordings (and their diffs) alone.
    let only = std::env::args().nth(1).unwrap_or_default();
    for scenario in Scenario::ALL {
        if !scenario.name().contains(&only) {
            continue;
        }
        let recorder = Recorder::new(https_client(TrustedRoots::from_env()));
        let wired = Wired::new(
            &sdk_config(SharedHttpClient::new(recorder.clone()), &endpoint),
            &names,
            &tokens,
        );
        let event_id = match scenario {
            Scenario::GetEvent => created.clone(),
            _ => ulid::Ulid::generate().to_string(),
        };
        let input = scenario.fresh_input(&token, &event_id, &organizer, &tag);
        eprintln!("recording {}", scenario.name());
        scenario
            .run(&wired, &input)
            .await
            .map_err(|e| format!("{}: {e}", scenario.name()))?;
        let recording = recorder.recording().renamed(&names, &Resources::replayed());
        let path = recordings_dir().join(format!("{}.json", scenario.name()));
        std::fs::write(&path, serde_json::to_string_pretty(&recording)? + "\n")?;
        let calls = recording.len();
        println!(
            "{:<36} {calls} call(s) -> {}",
            scenario.name(),
            path.display()
        );
    }
    Ok(())
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Polls GET /events until the newest event is projected, and returns its id.
async fn wait_for_projection(wired: &Wired, token: &str) -> Result<String, Box<dyn Error>> {
    for _ in 0..60 {
        let request = lambda_http::request::from_str(&Scenario::GetEvents.input(token))?;
        let response = wired.events_api.handle(request).await;
        if let lambda_http::Body::Text(text) = response.body() {
            let page: Value = serde_json::from_str(text)?;
            let items = page["items"].as_array().map(Vec::len).unwrap_or(0);
            if items >= 10
                && let Some(id) = page["items"][0]["id"].as_str()
            {
                return Ok(id.to_owned());
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err("the local pipeline projected nothing in 30 s: is the stack up (`make up`)?".into())
}

async fn follow(wired: &Wired, organizer: &str) -> Result<(), Box<dyn Error>> {
    let name = format!(
        "follower-{}",
        ulid::Ulid::generate().to_string().to_lowercase()
    );
    let user = User::create(
        Email::parse("email", &format!("{name}@example.com"))?,
        DisplayName::parse("display_name", "Bench follower")?,
        Timestamp::now(),
    );
    let envelope = DomainEvent::UserCreated(user.clone()).into_envelope(
        "/evently/bench",
        CorrelationId::generate(),
        Timestamp::now(),
    );
    wired
        .notifier
        .follows
        .create(&user, "not-a-hash", &envelope)
        .await?;
    let target = FollowTarget::Organizer(UserId::parse("organizer", organizer)?);
    wired.notifier.follows.follow(&user, &target).await?;
    // Mailed before, as a follower usually is: the unsubscribe token a first mail makes exists,
    // so every recording takes the usual path whichever scenario runs first.
    wired
        .notifier
        .follows
        .make_unsubscribe_token(&user.id)
        .await?;
    Ok(())
}

/// Table names, topic and sender from the deployed functions' environments.
async fn deployed_resources(endpoint: &str, stack: &str) -> Result<Resources, Box<dyn Error>> {
    let sdk = sdk_config(https_client(TrustedRoots::from_env()), endpoint);
    let lambda = aws_sdk_lambda::Client::new(&sdk);
    let mut env: HashMap<String, String> = HashMap::new();
    for function in ["events-api", "notifications", "outbox-relay"] {
        let name = format!("{stack}-{function}");
        let config = lambda
            .get_function_configuration()
            .function_name(&name)
            .send()
            .await
            .map_err(|e| format!("{name}: {}", aws_sdk_lambda::error::DisplayErrorContext(e)))?;
        if let Some(variables) = config.environment().and_then(|e| e.variables()) {
            env.extend(variables.clone());
        }
    }
    let get = |name: &str| {
        env.get(name)
            .cloned()
            .ok_or_else(|| format!("the deployed functions do not set {name}"))
    };
    Ok(Resources {
        events_table: get("EVENTS_TABLE")?,
        read_model_table: get("READ_MODEL_TABLE")?,
        analytics_table: get("ANALYTICS_TABLE")?,
        idempotency_table: get("IDEMPOTENCY_TABLE")?,
        users_table: get("USERS_TABLE")?,
        topic_arn: get("EVENTS_TOPIC_ARN")?,
        mail_from: get("MAIL_FROM")?,
        unsubscribe_url: get("UNSUBSCRIBE_URL")?,
    })
}
