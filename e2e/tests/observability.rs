//! Metrics in CloudWatch Embedded Metric Format, read back from the functions' log groups as
//! CloudWatch Logs would see them.

use std::time::Duration;

use evently_e2e::{Stack, correlation_id, eventually, now_ms, sdk_config, upcoming_event};
use serde_json::{Value, json};

/// The EMF records (log lines with an `_aws` member) among `lines`.
fn emf_records(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("_aws").is_some())
        .collect()
}

/// The per-batch EMF records of a batch-driven function (by its stack output) written since
/// `since` that counted at least one message, once there are any.
async fn batch_records(
    stack: &Stack,
    logs: &aws_sdk_cloudwatchlogs::Client,
    function_output: &str,
    since: i64,
) -> Vec<Value> {
    let what = format!("{function_output}'s batch records");
    eventually(&what, Duration::from_secs(30), || async {
        let batches: Vec<Value> = emf_records(&stack.log_lines(logs, function_output, since).await)
            .into_iter()
            .filter(|r| r["MessagesProcessed"].as_f64() >= Some(1.0))
            .collect();
        (!batches.is_empty()).then_some(batches)
    })
    .await
}

#[tokio::test]
async fn a_created_event_is_counted_and_timed_in_emf_on_every_hop() {
    let stack = Stack::load().await;
    let logs = aws_sdk_cloudwatchlogs::Client::new(&sdk_config().await);
    let since = now_ms();
    let correlation = correlation_id("emf");
    let response = stack
        .http
        .post(stack.url("/events"))
        .bearer_auth(stack.token("emf-organizer"))
        .header("x-correlation-id", &correlation)
        .json(&upcoming_event("Counted", "Metrics hall", 12))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);

    let api_records = eventually("the API's EMF records", Duration::from_secs(30), || async {
        let records = emf_records(&stack.log_lines(&logs, "EventsApiFunctionName", since).await);
        let mine: Vec<Value> = records
            .into_iter()
            .filter(|r| r["correlation_id"] == correlation.as_str())
            .collect();
        (mine.len() >= 2).then_some(mine)
    })
    .await;
    // The relay's records are per stream batch, so they carry no correlation id: any batch
    // since the request will do.
    let relay_records = batch_records(&stack, &logs, "OutboxRelayFunctionName", since).await;
    let consumer_records =
        batch_records(&stack, &logs, "ReadModelUpdaterFunctionName", since).await;

    let created = api_records
        .iter()
        .find(|r| r.get("EventsCreated").is_some())
        .expect("an EventsCreated record");
    assert_eq!(created["EventsCreated"], 1.0);
    let request = api_records
        .iter()
        .find(|r| r.get("RequestLatency").is_some())
        .expect("a request record");
    assert!(request["RequestLatency"].as_f64().unwrap() > 0.0);
    assert_eq!(request["ServerErrors"], 0.0);
    for record in api_records
        .iter()
        .chain(&relay_records)
        .chain(&consumer_records)
    {
        let declared = &record["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(declared["Namespace"], "Evently");
        assert_eq!(declared["Dimensions"], json!([["service"]]));
        assert!(record["service"].as_str().unwrap().starts_with("Evently-"));
        for metric in declared["Metrics"].as_array().unwrap() {
            let name = metric["Name"].as_str().unwrap();
            assert!(
                record[name].is_number(),
                "{name} declared but not set: {record}"
            );
        }
    }
    assert!(
        relay_records
            .iter()
            .any(|r| r["MessagesFailed"] == 0.0 && r.get("BatchLatency").is_some())
    );
    assert!(
        consumer_records.iter().any(
            |r| r["MessagesProcessed"].as_f64() >= Some(1.0) && r.get("BatchLatency").is_some()
        )
    );
}

#[tokio::test]
async fn the_key_ring_custom_resource_records_its_deploy_request_in_emf() {
    let stack = Stack::load().await;
    let logs = aws_sdk_cloudwatchlogs::Client::new(&sdk_config().await);

    // jwt-keys runs only when the stack is deployed, so its lines are read from the start.
    let lines = stack.log_lines(&logs, "JwtKeysFunctionName", 0).await;
    let records = emf_records(&lines);

    let request = records
        .iter()
        .find(|r| r.get("Requests").is_some())
        .unwrap_or_else(|| {
            panic!(
                "no request record among {} EMF records; jwt-keys writes one when CloudFormation \
                 creates or updates the key ring, so a log group older than its retention has none",
                records.len()
            )
        });
    assert_eq!(request["Requests"], 1.0);
    assert_eq!(request["ServerErrors"], 0.0);
    assert!(request["RequestLatency"].as_f64().unwrap() > 0.0);
    let request_id = request["correlation_id"].as_str().unwrap();
    assert!(
        !request_id.is_empty(),
        "CloudFormation's request id: {request}"
    );
    assert!(request["service"].as_str().unwrap().starts_with("Evently-"));
    let ready = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["message"] == "key ring ready")
        .expect("a key ring ready line");
    assert!(
        ready["spans"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["correlation_id"] == request_id),
        "the line carries the request's id: {ready}"
    );
}
