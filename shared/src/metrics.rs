//! Metrics in CloudWatch Embedded Metric Format (EMF): one JSON line on stdout per record,
//! which CloudWatch Logs turns into metrics. No API call, no agent, no extra latency: the cost
//! is a log line.
//!
//! Every record is in the `Evently` namespace with the dimension `service` (the function's
//! name), carries the correlation id of the request or message it belongs to as a plain
//! property, and, on a function's first record after a cold start, `ColdStart = 1`.

use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Map, Value, json};

pub const NAMESPACE: &str = "Evently";

static COLD: AtomicBool = AtomicBool::new(true);

/// A metric's unit, as CloudWatch names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Milliseconds => "Milliseconds",
        }
    }
}

/// Business counters and latencies the functions record.
pub mod name {
    pub const EVENTS_CREATED: &str = "EventsCreated";
    pub const SIGNUPS: &str = "Signups";
    pub const MAILS_SENT: &str = "MailsSent";
    pub const MESSAGES_PROCESSED: &str = "MessagesProcessed";
    pub const MESSAGES_FAILED: &str = "MessagesFailed";
    pub const BATCH_LATENCY: &str = "BatchLatency";
    pub const REQUESTS: &str = "Requests";
    pub const SERVER_ERRORS: &str = "ServerErrors";
    pub const REQUEST_LATENCY: &str = "RequestLatency";
    pub const COLD_START: &str = "ColdStart";
}

/// The function's name, as Lambda sets it (the service dimension), read once per process.
fn service() -> &'static str {
    static SERVICE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SERVICE.get_or_init(|| {
        std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "local".to_owned())
    })
}

/// The EMF document for `values` at `timestamp_ms`. Pure, so it can be checked.
pub fn document(
    service: &str,
    values: &[(&str, Unit, f64)],
    correlation_id: Option<&str>,
    cold_start: bool,
    timestamp_ms: i64,
) -> Value {
    let mut definitions: Vec<Value> = values
        .iter()
        .map(|(name, unit, _)| json!({ "Name": name, "Unit": unit.as_str() }))
        .collect();
    let mut root = Map::new();
    for (name, _, value) in values {
        root.insert((*name).to_owned(), json!(value));
    }
    if cold_start {
        definitions.push(json!({ "Name": name::COLD_START, "Unit": "Count" }));
        root.insert(name::COLD_START.to_owned(), json!(1));
    }
    root.insert(
        "_aws".to_owned(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["service"]],
                "Metrics": definitions,
            }],
        }),
    );
    root.insert("service".to_owned(), json!(service));
    if let Some(id) = correlation_id {
        root.insert("correlation_id".to_owned(), json!(id));
    }
    Value::Object(root)
}

/// Writes one EMF record to stdout (where Lambda sends it to CloudWatch Logs).
pub fn record(values: &[(&str, Unit, f64)], correlation_id: Option<&str>) {
    let cold_start = COLD.swap(false, Ordering::Relaxed);
    let line = document(
        service(),
        values,
        correlation_id,
        cold_start,
        chrono::Utc::now().timestamp_millis(),
    );
    println!("{line}");
}

/// One counter, counted once.
pub fn count(name: &str, correlation_id: Option<&str>) {
    record(&[(name, Unit::Count, 1.0)], correlation_id);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_declares_every_value_it_carries_under_the_service_dimension() {
        let doc = document(
            "Evently-events-api",
            &[
                (name::REQUESTS, Unit::Count, 1.0),
                (name::REQUEST_LATENCY, Unit::Milliseconds, 3.5),
            ],
            Some("corr-1"),
            false,
            1_800_000_000_000,
        );

        let declared = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(declared["Namespace"], "Evently");
        assert_eq!(declared["Dimensions"], json!([["service"]]));
        assert_eq!(
            declared["Metrics"],
            json!([
                { "Name": "Requests", "Unit": "Count" },
                { "Name": "RequestLatency", "Unit": "Milliseconds" }
            ])
        );
        assert_eq!(doc["Requests"], 1.0);
        assert_eq!(doc["RequestLatency"], 3.5);
        assert_eq!(doc["service"], "Evently-events-api");
        assert_eq!(doc["correlation_id"], "corr-1");
        assert_eq!(doc["_aws"]["Timestamp"], 1_800_000_000_000_i64);
        assert!(doc.get("ColdStart").is_none());
    }

    #[test]
    fn the_cold_start_record_says_so() {
        let doc = document("f", &[(name::REQUESTS, Unit::Count, 1.0)], None, true, 0);

        assert_eq!(doc["ColdStart"], 1);
        assert!(
            doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["Name"] == "ColdStart")
        );
    }
}
