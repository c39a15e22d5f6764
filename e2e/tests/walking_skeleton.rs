//! End to end through the locally deployed stack: API Gateway -> events-api -> DynamoDB
//! (event + outbox) -> stream -> outbox-relay -> SNS -> SQS -> read-model-updater -> read model.

use std::time::Duration;

use evently_e2e::{Stack, correlation_id, eventually, now_ms, sdk_config};
use serde_json::{Value, json};

const PROPAGATION: Duration = Duration::from_secs(30);

fn event_body(title: &str) -> Value {
    let start = chrono::Utc::now() + chrono::Duration::days(30);
    json!({
        "title": title,
        "description": "End-to-end",
        "starts_at": start.to_rfc3339(),
        "ends_at": (start + chrono::Duration::hours(2)).to_rfc3339(),
        "venue": "Emulator hall",
        "tags": ["e2e"],
        "visibility": "public"
    })
}

async fn create_event(stack: &Stack, correlation: &str, title: &str) -> Value {
    let response = stack
        .http
        .post(stack.url("/events"))
        .bearer_auth(stack.token("e2e-organizer"))
        .header("x-correlation-id", correlation)
        .json(&event_body(title))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{:?}", response.text().await);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(response.headers()["x-correlation-id"], correlation);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        location,
        format!("/events/{}", body["id"].as_str().unwrap())
    );
    body
}

/// Walks GET /events page by page; returns the page's read source if `id` is listed.
async fn listed_source(stack: &Stack, id: &str) -> Option<String> {
    let mut cursor: Option<String> = None;
    for _ in 0..50 {
        let mut request = stack
            .http
            .get(stack.url("/events"))
            .query(&[("limit", "100")]);
        if let Some(c) = &cursor {
            request = request.query(&[("cursor", c)]);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        let source = response.headers()["x-read-source"]
            .to_str()
            .unwrap()
            .to_owned();
        let page: Value = response.json().await.unwrap();
        if page["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["id"] == id)
        {
            return Some(source);
        }
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        cursor.as_ref()?;
    }
    None
}

#[tokio::test]
async fn a_created_event_reaches_the_read_model_and_its_correlation_id_every_hop() {
    let stack = Stack::load().await;
    let logs = aws_sdk_cloudwatchlogs::Client::new(&sdk_config().await);
    let correlation = correlation_id("create");
    let since = now_ms() - 1_000;

    let created = create_event(&stack, &correlation, "Walking skeleton").await;
    let id = created["id"].as_str().unwrap().to_owned();

    let source = eventually("the event in GET /events", PROPAGATION, || async {
        listed_source(&stack, &id)
            .await
            .filter(|s| s == "read-model")
    })
    .await;
    assert_eq!(source, "read-model");
    let single = stack
        .http
        .get(stack.url(&format!("/events/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(single.headers()["x-read-source"], "read-model");
    assert_eq!(single.json::<Value>().await.unwrap(), created);

    for function in [
        "EventsApiFunctionName",
        "OutboxRelayFunctionName",
        "ReadModelUpdaterFunctionName",
    ] {
        eventually(
            &format!("{correlation} in the logs of {function}"),
            PROPAGATION,
            || async {
                let lines = stack.log_lines(&logs, function, since).await;
                lines.iter().any(|l| l.contains(&correlation)).then_some(())
            },
        )
        .await;
    }
}

#[tokio::test]
async fn strong_consistency_reads_the_events_table_right_after_the_write() {
    let stack = Stack::load().await;
    let created = create_event(&stack, &correlation_id("strong"), "Strong read").await;
    let id = created["id"].as_str().unwrap();

    let response = stack
        .http
        .get(stack.url(&format!("/events/{id}")))
        .query(&[("consistency", "strong")])
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-read-source"], "primary");
    assert_eq!(response.json::<Value>().await.unwrap(), created);
}

#[tokio::test]
async fn bad_input_through_the_gateway_gets_problem_json_naming_the_field() {
    let stack = Stack::load().await;
    let mut body = event_body("x");
    body["organizer_id"] = json!("someone-else");
    body["capacity"] = json!(-1);

    let bad = stack
        .http
        .post(stack.url("/events"))
        .bearer_auth(stack.token("e2e-organizer"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let unknown = stack
        .http
        .get(stack.url("/events/01ARZ3NDEKTSV4RRFFQ69G5FAV"))
        .send()
        .await
        .unwrap();
    let too_large = stack
        .http
        .post(stack.url("/events"))
        .bearer_auth(stack.token("e2e-organizer"))
        .header("content-type", "application/json")
        .body(format!("{{\"title\":\"{}\"}}", "x".repeat(70 * 1024)))
        .send()
        .await
        .unwrap();

    assert_eq!(bad.status(), 400);
    assert_eq!(bad.headers()["content-type"], "application/problem+json");
    let problem: Value = bad.json().await.unwrap();
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["organizer_id", "capacity"]);
    assert_eq!(unknown.status(), 404);
    assert_eq!(
        unknown.headers()["content-type"],
        "application/problem+json"
    );
    assert_eq!(too_large.status(), 413);
}

#[tokio::test]
async fn a_poison_message_reaches_the_dead_letter_queue() {
    let stack = Stack::load().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk_config().await);
    let marker = correlation_id("poison");

    sqs.send_message()
        .queue_url(stack.output("ReadModelQueueUrl"))
        .message_body(format!(
            "{{\"not\":\"an envelope\",\"marker\":\"{marker}\"}}"
        ))
        .send()
        .await
        .unwrap();

    // maxReceiveCount 5 with the local 5 s visibility timeout: about 25 s.
    let dlq = stack.output("ReadModelDlqUrl");
    let found = eventually(
        "the poison message in the DLQ",
        Duration::from_secs(90),
        || async {
            let out = sqs
                .receive_message()
                .queue_url(&dlq)
                .max_number_of_messages(10)
                .visibility_timeout(0)
                .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
                .send()
                .await
                .unwrap();
            out.messages
                .unwrap_or_default()
                .into_iter()
                .find(|m| m.body().is_some_and(|b| b.contains(&marker)))
        },
    )
    .await;
    let receives: u32 = found
        .attributes()
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount)
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(receives >= 5, "moved after {receives} receives");
    sqs.delete_message()
        .queue_url(&dlq)
        .receipt_handle(found.receipt_handle().unwrap())
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_duplicated_delivery_leaves_the_read_model_unchanged() {
    let stack = Stack::load().await;
    let config = sdk_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    let logs = aws_sdk_cloudwatchlogs::Client::new(&config);
    let correlation = correlation_id("duplicate");
    let created = create_event(&stack, &correlation, "Delivered twice").await;
    let id = created["id"].as_str().unwrap().to_owned();
    let key = |id: &str| {
        [
            (
                "pk".to_owned(),
                aws_sdk_dynamodb::types::AttributeValue::S(format!("EVENT#{id}")),
            ),
            (
                "sk".to_owned(),
                aws_sdk_dynamodb::types::AttributeValue::S("EVENT".into()),
            ),
        ]
        .into_iter()
        .collect::<std::collections::HashMap<_, _>>()
    };
    let read_model_table = stack.output("ReadModelTableName");
    let projection = || async {
        dynamo
            .get_item()
            .table_name(&read_model_table)
            .set_key(Some(key(&id)))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
    };
    let before = eventually("the projection", PROPAGATION, projection).await;
    // The envelope exactly as the relay published it, from the outbox item.
    let envelope = evently_e2e::outbox_envelope(&stack, &correlation).await;
    // Same entity version, different content: a broken version guard would let this through.
    let mut tampered: Value = serde_json::from_str(&envelope).unwrap();
    tampered["data"]["title"] = json!("Overwritten by a duplicate");
    let since = now_ms() - 1_000;

    for body in [envelope.clone(), envelope, tampered.to_string()] {
        evently_e2e::redeliver(&stack, &body, "evently.event.created.v1", &correlation, 1).await;
    }

    eventually(
        "three skipped duplicates in the consumer log",
        PROPAGATION,
        || async {
            let lines = stack
                .log_lines(&logs, "ReadModelUpdaterFunctionName", since)
                .await;
            let skipped = lines
                .iter()
                .filter(|l| l.contains(&correlation) && l.contains("envelope skipped"))
                .count();
            (skipped >= 3).then_some(())
        },
    )
    .await;
    assert_eq!(projection().await, Some(before));
}
