//! Hostile requests through the deployed gateway: every one is refused with a 4xx
//! problem+json that names what was wrong, never a 5xx, and nothing is written.

use evently_e2e::{Stack, upcoming_event};
use reqwest::{Method, Response};
use serde_json::{Value, json};

fn event_body(visibility: &str) -> Value {
    let mut body = upcoming_event("Hostile input target", "Somewhere", 20);
    body["visibility"] = json!(visibility);
    body
}

async fn create(stack: &Stack, owner: &str, visibility: &str) -> (String, String) {
    let response = stack
        .http
        .post(stack.url("/events"))
        .bearer_auth(stack.token(owner))
        .json(&event_body(visibility))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    (body["id"].as_str().unwrap().to_owned(), etag)
}

/// Asserts a problem+json 4xx with `status`; returns the problem document.
async fn problem(response: Response, status: u16, case: &str) -> Value {
    let got = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = response.text().await.unwrap();
    assert_eq!(got, status, "{case}: {text}");
    assert_eq!(
        content_type.as_deref(),
        Some("application/problem+json"),
        "{case}"
    );
    let document: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(document["status"], status, "{case}");
    document
}

fn fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| e["field"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

async fn raw(
    stack: &Stack,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Vec<u8>,
) -> Response {
    let mut request = stack
        .http
        .request(method, stack.url(path))
        .header("content-type", "application/json")
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn another_users_private_event_is_not_found_and_their_event_cannot_be_changed() {
    let stack = Stack::load().await;
    let (private_id, _) = create(&stack, "hostile-owner", "private").await;
    let (public_id, etag) = create(&stack, "hostile-owner", "public").await;
    let intruder = stack.token("hostile-intruder");

    let peek = stack
        .http
        .get(stack.url(&format!("/events/{private_id}?consistency=strong")))
        .bearer_auth(&intruder)
        .send()
        .await
        .unwrap();
    let patch = stack
        .http
        .patch(stack.url(&format!("/events/{public_id}")))
        .bearer_auth(&intruder)
        .header("if-match", &etag)
        .json(&json!({ "title": "Mine now" }))
        .send()
        .await
        .unwrap();
    let cancel = stack
        .http
        .delete(stack.url(&format!("/events/{public_id}")))
        .bearer_auth(&intruder)
        .send()
        .await
        .unwrap();

    problem(peek, 404, "another user's private event").await;
    problem(patch, 403, "PATCH of someone else's event").await;
    problem(cancel, 403, "DELETE of someone else's event").await;
    let unchanged: Value = stack
        .http
        .get(stack.url(&format!("/events/{public_id}?consistency=strong")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(unchanged["title"], "Hostile input target");
    assert_eq!(unchanged["status"], "scheduled");
}

#[tokio::test]
async fn server_owned_fields_in_a_body_are_rejected_by_name() {
    let stack = Stack::load().await;
    let token = stack.token("hostile-mass-assigner");
    let (id, etag) = create(&stack, "hostile-mass-assigner", "public").await;

    for (field, value) in [
        ("organizer_id", json!("someone-else")),
        ("version", json!(99)),
        ("status", json!("cancelled")),
        ("id", json!("01JXXXXXXXXXXXXXXXXXXXXXXX")),
    ] {
        let mut body = event_body("public");
        body[field] = value.clone();
        let created = stack
            .http
            .post(stack.url("/events"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let patched = stack
            .http
            .patch(stack.url(&format!("/events/{id}")))
            .bearer_auth(&token)
            .header("if-match", &etag)
            .json(&json!({ field: value }))
            .send()
            .await
            .unwrap();

        let on_create = problem(created, 400, &format!("POST with {field}")).await;
        let on_patch = problem(patched, 400, &format!("PATCH with {field}")).await;
        assert_eq!(fields(&on_create), [field], "POST with {field}");
        assert_eq!(fields(&on_patch), [field], "PATCH with {field}");
    }
}

#[tokio::test]
async fn malformed_bodies_are_client_errors() {
    let stack = Stack::load().await;
    let token = stack.token("hostile-body-sender");
    let nested = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let mut oversized = event_body("public");
    oversized["description"] = json!("x".repeat(300 * 1024));

    let too_large = raw(
        &stack,
        Method::POST,
        "/events",
        Some(&token),
        oversized.to_string().into_bytes(),
    )
    .await;
    let deep = raw(
        &stack,
        Method::POST,
        "/events",
        Some(&token),
        nested.into_bytes(),
    )
    .await;
    let not_utf8 = raw(
        &stack,
        Method::POST,
        "/events",
        Some(&token),
        b"{\"title\": \"\xff\xfe\"}".to_vec(),
    )
    .await;
    let not_an_object = raw(&stack, Method::POST, "/signup", None, b"[1, 2, 3]".to_vec()).await;
    let truncated = raw(
        &stack,
        Method::POST,
        "/signup",
        None,
        b"{\"email\": ".to_vec(),
    )
    .await;

    problem(too_large, 413, "body over the limit").await;
    problem(deep, 400, "deeply nested JSON").await;
    problem(not_utf8, 400, "invalid UTF-8").await;
    problem(not_an_object, 400, "a JSON array instead of an object").await;
    problem(truncated, 400, "truncated JSON").await;
}

#[tokio::test]
async fn out_of_range_limits_and_forged_cursors_are_rejected_naming_the_parameter() {
    let stack = Stack::load().await;
    let forged = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        r#"{"pk":"USER#admin","sk":"SECRET"}"#,
    );

    for (query, field) in [
        ("limit=-1", "limit"),
        ("limit=0", "limit"),
        ("limit=1000000", "limit"),
        ("limit=99999999999999999999999", "limit"),
        ("limit=ten", "limit"),
        ("cursor=not-base64!", "cursor"),
        (&format!("cursor={forged}") as &str, "cursor"),
    ] {
        let response = stack
            .http
            .get(stack.url(&format!("/events?{query}")))
            .send()
            .await
            .unwrap();
        let document = problem(response, 400, query).await;
        assert_eq!(fields(&document), [field], "{query}");
    }
}
