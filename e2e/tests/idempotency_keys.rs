//! `Idempotency-Key` through the deployed gateway, on DynamoDB: retries replay, reuse with
//! another body is a 422, concurrent duplicates make one effect.

use std::collections::BTreeSet;

use evently_e2e::{Stack, now_ms, upcoming_event};
use serde_json::{Value, json};

fn event_body(title: &str) -> Value {
    let mut body = upcoming_event(title, "Retry hall", 25);
    body["capacity"] = json!(10);
    body
}

async fn post(
    stack: &Stack,
    path: &str,
    token: Option<&str>,
    key: &str,
    body: &Value,
) -> reqwest::Response {
    let mut request = stack
        .http
        .post(stack.url(path))
        .header("idempotency-key", key)
        .json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

fn replayed(response: &reqwest::Response) -> bool {
    response.headers().get("idempotent-replayed").is_some()
}

#[tokio::test]
async fn a_retried_event_creation_replays_the_first_response() {
    let stack = Stack::load().await;
    let token = stack.token("retrying-organizer");
    let key = format!("create-{}", now_ms());
    let body = event_body("Created once");

    let first = post(&stack, "/events", Some(&token), &key, &body).await;
    let (first_status, first_replayed) = (first.status(), replayed(&first));
    let first: Value = first.json().await.unwrap();
    let retry = post(&stack, "/events", Some(&token), &key, &body).await;
    let (retry_status, retry_replayed) = (retry.status(), replayed(&retry));
    let retry: Value = retry.json().await.unwrap();
    let reused = post(
        &stack,
        "/events",
        Some(&token),
        &key,
        &event_body("Something else"),
    )
    .await;

    assert_eq!(first_status, 201);
    assert!(!first_replayed);
    assert_eq!(retry_status, 201);
    assert!(retry_replayed);
    assert_eq!(retry, first, "the same event, not a second one");
    assert_eq!(reused.status(), 422);
}

#[tokio::test]
async fn concurrent_duplicates_create_one_event() {
    let stack = Stack::load().await;
    let token = stack.token("hasty-organizer");
    let key = format!("burst-{}", now_ms());
    let body = event_body("Burst");

    let responses = futures::future::join_all(
        (0..6).map(|_| post(&stack, "/events", Some(&token), &key, &body)),
    )
    .await;

    let mut ids = BTreeSet::new();
    let mut statuses = Vec::new();
    for response in responses {
        statuses.push(response.status().as_u16());
        if response.status() == 201 {
            let created: Value = response.json().await.unwrap();
            ids.insert(created["id"].as_str().unwrap().to_owned());
        }
    }
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 409),
        "{statuses:?}"
    );
    eprintln!("concurrent duplicates answered {statuses:?}");
    assert_eq!(
        ids.len(),
        1,
        "one event whatever the interleaving: {statuses:?}"
    );
}

#[tokio::test]
async fn a_retried_signup_and_rsvp_replay_instead_of_conflicting() {
    let stack = Stack::load().await;
    let email = format!("retry-{}@example.com", now_ms());
    let signup =
        json!({ "email": email, "password": "a long enough passphrase", "display_name": "Retry" });
    let key = format!("signup-{}", now_ms());

    let first = post(&stack, "/signup", None, &key, &signup).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let again = post(&stack, "/signup", None, &key, &signup).await;
    assert_eq!(again.status(), 201, "a retry is not a duplicate email");
    assert!(replayed(&again));
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"]);

    let created: Value = post(
        &stack,
        "/events",
        Some(&stack.token("rsvp-host")),
        &format!("rsvp-event-{}", now_ms()),
        &event_body("Go once"),
    )
    .await
    .json()
    .await
    .unwrap();
    let path = format!("/events/{}/rsvp", created["id"].as_str().unwrap());
    let guest = stack.token("rsvp-retrier");
    let rsvp_key = format!("rsvp-{}", now_ms());
    let going = post(&stack, &path, Some(&guest), &rsvp_key, &json!({})).await;
    let retried = post(&stack, &path, Some(&guest), &rsvp_key, &json!({})).await;
    assert_eq!(going.status(), 201);
    assert_eq!(
        retried.status(),
        201,
        "the first answer, not 'already going'"
    );
    assert!(replayed(&retried));
}
