//! Metrics in CloudWatch Embedded Metric Format (EMF): one JSON line on stdout per record,
//! which CloudWatch Logs turns into metrics. No API call, no agent, no extra latency: the cost
//! is a log line.
//!
//! Every record is in the `Evently` namespace with the dimension `service` (the function's
//! name), carries the correlation id of the request or message it belongs to as a plain
//! property, and, on a function's first record after a cold start, `ColdStart = 1`.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

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

/// The EMF document for `values` at `timestamp_ms`, as one JSON line. Pure, so it can be
/// checked. Serialized straight from the borrowed values: a record is written on every request
/// and message, and building a `serde_json::Value` tree first cost about a tenth of a warm
/// GET /events/{id} (BENCHMARKS.md, "What changed in this round").
pub fn document(
    service: &str,
    values: &[(&str, Unit, f64)],
    correlation_id: Option<&str>,
    cold_start: bool,
    timestamp_ms: i64,
) -> String {
    let record = Record {
        service,
        values,
        correlation_id,
        cold_start,
        timestamp_ms,
    };
    let mut line = serde_json::to_string(&record).expect("an EMF record serializes");
    line.push('\n');
    line
}

struct Record<'a> {
    service: &'a str,
    values: &'a [(&'a str, Unit, f64)],
    correlation_id: Option<&'a str>,
    cold_start: bool,
    timestamp_ms: i64,
}

impl Serialize for Record<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut root = serializer.serialize_map(None)?;
        for (name, _, value) in self.values {
            root.serialize_entry(name, value)?;
        }
        if self.cold_start {
            root.serialize_entry(name::COLD_START, &1)?;
        }
        root.serialize_entry("_aws", &Metadata(self))?;
        root.serialize_entry("service", self.service)?;
        if let Some(id) = self.correlation_id {
            root.serialize_entry("correlation_id", id)?;
        }
        root.end()
    }
}

/// `_aws`: which root members are metrics, in which namespace, under which dimension.
struct Metadata<'a>(&'a Record<'a>);

impl Serialize for Metadata<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut aws = serializer.serialize_map(Some(2))?;
        aws.serialize_entry("Timestamp", &self.0.timestamp_ms)?;
        aws.serialize_entry("CloudWatchMetrics", &[Directive(self.0)])?;
        aws.end()
    }
}

struct Directive<'a>(&'a Record<'a>);

impl Serialize for Directive<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut directive = serializer.serialize_map(Some(3))?;
        directive.serialize_entry("Namespace", NAMESPACE)?;
        directive.serialize_entry("Dimensions", &[["service"]])?;
        directive.serialize_entry("Metrics", &Definitions(self.0))?;
        directive.end()
    }
}

struct Definitions<'a>(&'a Record<'a>);

impl Serialize for Definitions<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let cold = self.0.cold_start.then_some((name::COLD_START, Unit::Count));
        let definitions = self.0.values.iter().map(|(name, unit, _)| (*name, *unit));
        serializer.collect_seq(definitions.chain(cold).map(|(name, unit)| Definition {
            name,
            unit: unit.as_str(),
        }))
    }
}

#[derive(Serialize)]
struct Definition<'a> {
    #[serde(rename = "Name")]
    name: &'a str,
    #[serde(rename = "Unit")]
    unit: &'static str,
}

/// Writes one EMF record to stdout (where Lambda sends it to CloudWatch Logs), in one write so
/// lines from concurrent tasks never interleave.
pub fn record(values: &[(&str, Unit, f64)], correlation_id: Option<&str>) {
    let cold_start = COLD.swap(false, Ordering::Relaxed);
    let line = document(
        service(),
        values,
        correlation_id,
        cold_start,
        chrono::Utc::now().timestamp_millis(),
    );
    // A closed stdout must not fail the request the metric describes.
    let _ = std::io::stdout().lock().write_all(line.as_bytes());
}

/// One counter, counted once.
pub fn count(name: &str, correlation_id: Option<&str>) {
    record(&[(name, Unit::Count, 1.0)], correlation_id);
}

/// The mails one bulk send got out, as one record (none when it got none out). The messages'
/// own log lines already say, under their correlation ids, which mails they sent
/// (welcome-email's carries the mail's id, notifications' counts them), so a record per mail
/// added nothing but a line, a JSON document and a write each (BENCHMARKS.md, "The SDK without
/// stalled-stream protection; one mail record per bulk send").
pub fn mails_sent(sent: usize) {
    if sent > 0 {
        record(&[(name::MAILS_SENT, Unit::Count, sent as f64)], None);
    }
}

/// The record a request-driven function writes per request (the API functions, and jwt-keys
/// per CloudFormation request), so one dashboard reads them all alike.
pub fn request(server_error: bool, started: Instant, correlation_id: Option<&str>) {
    record(
        &[
            (name::REQUESTS, Unit::Count, 1.0),
            (
                name::SERVER_ERRORS,
                Unit::Count,
                f64::from(u8::from(server_error)),
            ),
            (
                name::REQUEST_LATENCY,
                Unit::Milliseconds,
                millis_since(started),
            ),
        ],
        correlation_id,
    );
}

/// The record a batch-driven function writes per batch (the queue consumers per SQS batch, the
/// outbox relay per stream batch, where a message is an outbox record). A batch carries many
/// correlation ids, so the record carries none; each message's own lines do.
pub fn batch(processed: usize, failed: usize, started: Instant) {
    record(
        &[
            (name::MESSAGES_PROCESSED, Unit::Count, processed as f64),
            (name::MESSAGES_FAILED, Unit::Count, failed as f64),
            (
                name::BATCH_LATENCY,
                Unit::Milliseconds,
                millis_since(started),
            ),
        ],
        None,
    );
}

fn millis_since(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn parsed(line: String) -> Value {
        assert!(line.ends_with('\n'), "one line: {line:?}");
        assert_eq!(line.matches('\n').count(), 1, "one line: {line:?}");
        serde_json::from_str(&line).expect("JSON")
    }

    #[test]
    fn a_record_declares_every_value_it_carries_under_the_service_dimension() {
        let doc = parsed(document(
            "Evently-events-api",
            &[
                (name::REQUESTS, Unit::Count, 1.0),
                (name::REQUEST_LATENCY, Unit::Milliseconds, 3.5),
            ],
            Some("corr-1"),
            false,
            1_800_000_000_000,
        ));

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
        let doc = parsed(document(
            "f",
            &[(name::REQUESTS, Unit::Count, 1.0)],
            None,
            true,
            0,
        ));

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
