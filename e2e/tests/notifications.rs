//! Follows, notification mail and unsubscribing, end to end through the local stack.

use std::time::Duration;

use evently_e2e::{
    Stack, correlation_id, eventually, mail_to, now_ms, outbox_envelope, redeliver, sdk_config,
};
use serde_json::{Value, json};

const PROPAGATION: Duration = Duration::from_secs(30);
const PASSWORD: &str = "correct horse battery staple";

/// Signs up and logs in a fresh account; returns (email, access token, user id).
async fn account(stack: &Stack, prefix: &str) -> (String, String, String) {
    let email = format!(
        "{prefix}-{}@example.com",
        ulid::Ulid::generate().to_string().to_lowercase()
    );
    let signup = stack
        .http
        .post(stack.url("/signup"))
        .json(&json!({ "email": email, "password": PASSWORD, "display_name": prefix }))
        .send()
        .await
        .unwrap();
    assert_eq!(signup.status(), 201);
    let user: Value = signup.json().await.unwrap();
    let login: Value = stack
        .http
        .post(stack.url("/login"))
        .json(&json!({ "email": email, "password": PASSWORD }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        email,
        login["access_token"].as_str().unwrap().to_owned(),
        user["id"].as_str().unwrap().to_owned(),
    )
}

fn event_body(title: &str, tag: &str) -> Value {
    let start = chrono::Utc::now() + chrono::Duration::days(12);
    json!({
        "title": title,
        "starts_at": start.to_rfc3339(),
        "ends_at": (start + chrono::Duration::hours(2)).to_rfc3339(),
        "venue": "Hall N",
        "tags": [tag]
    })
}

#[tokio::test]
async fn a_follower_of_a_tag_gets_one_mail_for_a_new_event_and_can_unsubscribe_by_link() {
    let stack = Stack::load().await;
    let config = sdk_config().await;
    let logs = aws_sdk_cloudwatchlogs::Client::new(&config);
    let tag = format!("t{}", ulid::Ulid::generate().to_string().to_lowercase());
    let (email, token, _) = account(&stack, "follower").await;
    let follow = stack
        .http
        .post(stack.url("/me/follows"))
        .bearer_auth(&token)
        .json(&json!({ "tag": tag }))
        .send()
        .await
        .unwrap();
    assert_eq!(follow.status(), 201);
    let correlation = correlation_id("follow");
    let since = now_ms() - 1_000;

    let created = stack
        .http
        .post(stack.url("/events"))
        .bearer_auth(stack.token("tag-organizer"))
        .header("x-correlation-id", &correlation)
        .json(&event_body("Followed tag night", &tag))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);

    let mail = eventually("the notification", PROPAGATION, || async {
        let mail: Vec<_> = mail_to(&stack.http, &email)
            .await
            .into_iter()
            .filter(|m| m.subject == "New meetup: Followed tag night")
            .collect();
        (!mail.is_empty()).then_some(mail)
    })
    .await;
    // Deliver the same EventCreated twice more: still one mail.
    let envelope = outbox_envelope(&stack, &correlation).await;
    redeliver(
        &stack,
        &envelope,
        "evently.event.created.v1",
        &correlation,
        2,
    )
    .await;
    eventually("three notification runs", PROPAGATION, || async {
        let lines = stack
            .log_lines(&logs, "NotificationsFunctionName", since)
            .await;
        let runs = lines
            .iter()
            .filter(|l| l.contains(&correlation) && l.contains("notifications done"))
            .count();
        (runs >= 3).then_some(())
    })
    .await;
    let all: Vec<_> = mail_to(&stack.http, &email)
        .await
        .into_iter()
        .filter(|m| m.subject == "New meetup: Followed tag night")
        .collect();
    assert_eq!(all.len(), 1, "one mail for three deliveries");

    let link_token = mail[0]
        .text
        .split("?token=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("an unsubscribe link")
        .to_owned();
    let unsubscribed = stack
        .http
        .get(stack.url("/unsubscribe"))
        .query(&[("token", &link_token)])
        .send()
        .await
        .unwrap();
    assert_eq!(unsubscribed.status(), 200);
    let preferences: Value = stack
        .http
        .get(stack.url("/me/preferences"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(preferences["notifications"], false);
}

#[tokio::test]
async fn a_venue_change_mails_every_attendee_once() {
    let stack = Stack::load().await;
    let mut attendees = Vec::new();
    for i in 0..3 {
        attendees.push(account(&stack, &format!("attendee{i}")).await);
    }
    let organizer = stack.token("venue-organizer");
    let created: Value = stack
        .http
        .post(stack.url("/events"))
        .bearer_auth(&organizer)
        .json(&event_body("Moving meetup", "moving"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    for (_, token, _) in &attendees {
        let rsvp = stack
            .http
            .post(stack.url(&format!("/events/{id}/rsvp")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(rsvp.status(), 201);
    }

    let patched = stack
        .http
        .patch(stack.url(&format!("/events/{id}")))
        .bearer_auth(&organizer)
        .header("if-match", "\"1\"")
        .json(&json!({ "venue": "Hall M" }))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);

    for (email, _, _) in &attendees {
        let mail = eventually("the change notice", PROPAGATION, || async {
            let mail: Vec<_> = mail_to(&stack.http, email)
                .await
                .into_iter()
                .filter(|m| m.subject == "Changed: Moving meetup")
                .collect();
            (!mail.is_empty()).then_some(mail)
        })
        .await;
        assert_eq!(mail.len(), 1, "{email} mailed once");
        assert!(mail[0].text.contains("Where: Hall M"));
    }
}

#[tokio::test]
async fn follows_and_preferences_round_trip_through_the_gateway() {
    let stack = Stack::load().await;
    let (_, token, _) = account(&stack, "prefs").await;
    let call = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut request = stack
            .http
            .request(method, stack.url(path))
            .bearer_auth(&token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send()
    };

    let follow = call(
        reqwest::Method::POST,
        "/me/follows",
        Some(json!({ "organizer_id": "someone" })),
    )
    .await
    .unwrap();
    let unfollow = call(
        reqwest::Method::DELETE,
        "/me/follows",
        Some(json!({ "organizer_id": "someone" })),
    )
    .await
    .unwrap();
    let unfollow_again = call(
        reqwest::Method::DELETE,
        "/me/follows",
        Some(json!({ "organizer_id": "someone" })),
    )
    .await
    .unwrap();
    let off = call(
        reqwest::Method::PUT,
        "/me/preferences",
        Some(json!({ "notifications": false })),
    )
    .await
    .unwrap();
    let read: Value = call(reqwest::Method::GET, "/me/preferences", None)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bad = call(
        reqwest::Method::PUT,
        "/me/preferences",
        Some(json!({ "notifications": 1 })),
    )
    .await
    .unwrap();

    assert_eq!(follow.status(), 201);
    assert_eq!(unfollow.json::<Value>().await.unwrap()["changed"], true);
    assert_eq!(
        unfollow_again.json::<Value>().await.unwrap()["changed"],
        false
    );
    assert_eq!(off.status(), 200);
    assert_eq!(read["notifications"], false);
    assert_eq!(bad.status(), 400);
}
