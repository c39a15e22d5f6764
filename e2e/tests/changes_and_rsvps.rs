//! Event changes and RSVPs end to end through the locally deployed stack.

use std::time::Duration;

use evently_e2e::{Stack, correlation_id, eventually};
use serde_json::{Value, json};

const PROPAGATION: Duration = Duration::from_secs(30);

fn body(capacity: Option<u32>) -> Value {
    let start = chrono::Utc::now() + chrono::Duration::days(15);
    let mut body = json!({
        "title": "Changes and RSVPs",
        "starts_at": start.to_rfc3339(),
        "ends_at": (start + chrono::Duration::hours(2)).to_rfc3339(),
        "venue": "Hall A",
        "tags": ["e2e"]
    });
    if let Some(capacity) = capacity {
        body["capacity"] = json!(capacity);
    }
    body
}

async fn create(stack: &Stack, owner: &str, body: Value) -> Value {
    let response = stack
        .http
        .post(stack.url("/events"))
        .bearer_auth(stack.token(owner))
        .header("x-correlation-id", correlation_id("changes"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

async fn rsvp(stack: &Stack, user: &str, id: &str) -> u16 {
    stack
        .http
        .post(stack.url(&format!("/events/{id}/rsvp")))
        .bearer_auth(stack.token(user))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn withdraw(stack: &Stack, user: &str, id: &str) -> u16 {
    stack
        .http
        .delete(stack.url(&format!("/events/{id}/rsvp")))
        .bearer_auth(stack.token(user))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn read_model_view(stack: &Stack, id: &str) -> Option<Value> {
    let response = stack
        .http
        .get(stack.url(&format!("/events/{id}")))
        .send()
        .await
        .unwrap();
    let from_read_model = response.headers()["x-read-source"] == "read-model";
    let body: Value = response.json().await.unwrap();
    from_read_model.then_some(body)
}

async fn listed(stack: &Stack, id: &str) -> bool {
    let mut cursor: Option<String> = None;
    for _ in 0..50 {
        let mut request = stack
            .http
            .get(stack.url("/events"))
            .query(&[("limit", "100")]);
        if let Some(c) = &cursor {
            request = request.query(&[("cursor", c)]);
        }
        let page: Value = request.send().await.unwrap().json().await.unwrap();
        if page["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["id"] == id)
        {
            return true;
        }
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            return false;
        }
    }
    panic!("more than 50 pages of upcoming events; the test stack needs a reset");
}

#[tokio::test]
async fn two_users_racing_for_the_last_seat_never_overbook() {
    let stack = Stack::load().await;
    let mut outcomes = Vec::new();

    for round in 0..5 {
        let event = create(&stack, "organizer", body(Some(1))).await;
        let id = event["id"].as_str().unwrap();
        let (racer_a, racer_b) = (format!("racer-a-{round}"), format!("racer-b-{round}"));
        let (a, b) = tokio::join!(rsvp(&stack, &racer_a, id), rsvp(&stack, &racer_b, id));
        let mut pair = [a, b];
        pair.sort();
        outcomes.push(pair);
    }

    assert!(
        outcomes.iter().all(|pair| *pair == [201, 409]),
        "{outcomes:?}"
    );
}

#[tokio::test]
async fn an_rsvp_is_idempotent_and_listed_under_me() {
    let stack = Stack::load().await;
    let user = format!("attendee-{}", ulid::Ulid::generate());
    let event = create(&stack, "organizer", body(Some(10))).await;
    let id = event["id"].as_str().unwrap();

    let first = rsvp(&stack, &user, id).await;
    let again = rsvp(&stack, &user, id).await;
    let mine: Value = stack
        .http
        .get(stack.url("/me/rsvps"))
        .bearer_auth(stack.token(&user))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let withdrawn = withdraw(&stack, &user, id).await;

    assert_eq!((first, again), (201, 200));
    assert_eq!(mine["items"][0]["id"], id);
    assert_eq!(withdrawn, 204);
}

#[tokio::test]
async fn a_patch_needs_the_current_etag_and_reaches_the_read_model() {
    let stack = Stack::load().await;
    let event = create(&stack, "editor", body(None)).await;
    let id = event["id"].as_str().unwrap().to_owned();
    let uri = stack.url(&format!("/events/{id}"));
    let read = stack
        .http
        .get(&uri)
        .query(&[("consistency", "strong")])
        .send()
        .await
        .unwrap();
    let etag = read.headers()["etag"].to_str().unwrap().to_owned();

    let patch = |tag: Option<String>, venue: &str| {
        let mut request = stack
            .http
            .patch(&uri)
            .bearer_auth(stack.token("editor"))
            .json(&json!({ "venue": venue }));
        if let Some(tag) = tag {
            request = request.header("if-match", tag);
        }
        request.send()
    };
    let without = patch(None, "Hall B").await.unwrap();
    let applied = patch(Some(etag.clone()), "Hall B").await.unwrap();
    let stale = patch(Some(etag), "Hall C").await.unwrap();
    let by_stranger = stack
        .http
        .patch(&uri)
        .bearer_auth(stack.token("stranger"))
        .header("if-match", "*")
        .json(&json!({ "venue": "Mine" }))
        .send()
        .await
        .unwrap();

    assert_eq!(without.status(), 428);
    assert_eq!(applied.status(), 200);
    assert_eq!(applied.headers()["etag"], "\"2\"");
    assert_eq!(stale.status(), 412);
    assert_eq!(by_stranger.status(), 403);
    let projected = eventually("the new venue in the read model", PROPAGATION, || async {
        read_model_view(&stack, &id)
            .await
            .filter(|e| e["version"] == 2)
    })
    .await;
    assert_eq!(projected["venue"], "Hall B");
}

#[tokio::test]
async fn a_cancelled_event_disappears_from_listings_but_stays_readable() {
    let stack = Stack::load().await;
    let event = create(&stack, "canceller", body(None)).await;
    let id = event["id"].as_str().unwrap().to_owned();
    eventually("the event in the listing", PROPAGATION, || async {
        listed(&stack, &id).await.then_some(())
    })
    .await;

    let cancelled = stack
        .http
        .delete(stack.url(&format!("/events/{id}")))
        .bearer_auth(stack.token("canceller"))
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), 200);

    eventually("the event gone from the listing", PROPAGATION, || async {
        (!listed(&stack, &id).await).then_some(())
    })
    .await;
    let view = eventually(
        "the cancellation in the read model",
        PROPAGATION,
        || async {
            read_model_view(&stack, &id)
                .await
                .filter(|e| e["status"] == "cancelled")
        },
    )
    .await;
    assert_eq!(view["id"], id.as_str());
    assert_eq!(rsvp(&stack, "late-comer", &id).await, 409);
}

#[tokio::test]
async fn analytics_count_each_rsvp_once_even_when_it_arrives_three_times() {
    let stack = Stack::load().await;
    let config = evently_e2e::sdk_config().await;
    let logs = aws_sdk_cloudwatchlogs::Client::new(&config);
    let event = create(&stack, "counter-owner", body(None)).await;
    let id = event["id"].as_str().unwrap().to_owned();
    let correlation = correlation_id("count");
    let since = evently_e2e::now_ms() - 1_000;

    let first = stack
        .http
        .post(stack.url(&format!("/events/{id}/rsvp")))
        .bearer_auth(stack.token("counter-a"))
        .header("x-correlation-id", &correlation)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 201);
    assert_eq!(rsvp(&stack, "counter-b", &id).await, 201);
    assert_eq!(withdraw(&stack, "counter-b", &id).await, 204);
    let envelope = evently_e2e::outbox_envelope(&stack, &correlation).await;
    evently_e2e::redeliver(
        &stack,
        &envelope,
        "evently.rsvp.created.v1",
        &correlation,
        2,
    )
    .await;

    eventually(
        "two redeliveries skipped by analytics",
        PROPAGATION,
        || async {
            let lines = stack.log_lines(&logs, "AnalyticsFunctionName", since).await;
            let skipped = lines
                .iter()
                .filter(|l| {
                    // Skipped by the idempotency kit's record, or as a repeat within one batch.
                    l.contains(&correlation) && l.contains("already handled")
                })
                .count();
            (skipped >= 2).then_some(())
        },
    )
    .await;
    let stats = eventually("exact counts", PROPAGATION, || async {
        let stats: Value = stack
            .http
            .get(stack.url(&format!("/events/{id}/stats")))
            .bearer_auth(stack.token("counter-owner"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (stats["rsvps_cancelled"] == 1).then_some(stats)
    })
    .await;
    assert_eq!(
        (stats["going"].as_i64(), stats["rsvps_created"].as_i64()),
        (Some(1), Some(2))
    );
    let not_owner = stack
        .http
        .get(stack.url(&format!("/events/{id}/stats")))
        .bearer_auth(stack.token("counter-a"))
        .send()
        .await
        .unwrap();
    assert_eq!(not_owner.status(), 403);
}

#[tokio::test]
async fn daily_analytics_are_for_admins_only() {
    let stack = Stack::load().await;
    create(&stack, "daily-owner", body(None)).await;
    let admin = evently_shared::domain::UserId::parse("sub", "e2e-admin").unwrap();
    let admin_token = stack
        .signer
        .issue_with_roles(
            &admin,
            &["admin".to_owned()],
            chrono::Utc::now().timestamp(),
        )
        .token;
    let today = chrono::Utc::now().date_naive().to_string();

    let as_user = stack
        .http
        .get(stack.url("/analytics/daily"))
        .bearer_auth(stack.token("daily-owner"))
        .send()
        .await
        .unwrap();
    let counted = eventually("today's event count", PROPAGATION, || async {
        let daily: Value = stack
            .http
            .get(stack.url("/analytics/daily"))
            .bearer_auth(&admin_token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        daily["days"]
            .as_array()?
            .iter()
            .find(|d| d["day"] == today.as_str() && d["events_created"].as_i64() > Some(0))
            .cloned()
    })
    .await;

    assert_eq!(as_user.status(), 403);
    assert!(counted["events_created"].as_i64().unwrap() >= 1);
}
