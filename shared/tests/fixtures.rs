//! Contract tests for `events-fixtures/`: every fixture parses into the type its name promises
//! and survives a round trip; every envelope in them matches its JSON Schema.

use std::path::{Path, PathBuf};

use aws_lambda_events::event::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::event::cloudformation::CloudFormationCustomResourceRequest;
use aws_lambda_events::event::dynamodb::Event as DynamoDbEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use evently_shared::consumer::SqsBatch;
use evently_shared::domain::{
    Description, EventDraft, Schedule, Tags, Timestamp, Title, UserId, Venue, Visibility,
};
use evently_shared::envelope::{CorrelationId, DomainEvent, Envelope};
use evently_shared::fakes::schema_violations;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../events-fixtures")
}

fn fixture_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

/// Parses into `T`, serialises, parses again: both typed readings must agree.
fn round_trips<T: DeserializeOwned + Serialize>(raw: &str) -> Value {
    let first: T = serde_json::from_str(raw).unwrap();
    let as_value = serde_json::to_value(&first).unwrap();
    let second: T = serde_json::from_value(as_value.clone()).unwrap();
    assert_eq!(serde_json::to_value(&second).unwrap(), as_value);
    as_value
}

fn assert_schema_valid(envelope: &Value, origin: &str) {
    let violations = schema_violations(envelope);
    assert!(violations.is_empty(), "{origin}: {violations:#?}");
}

#[test]
fn every_fixture_parses_into_its_lambda_event_type_and_round_trips() {
    let files = fixture_files();
    assert!(files.len() >= 6, "fixtures went missing: {files:?}");
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let raw = std::fs::read_to_string(&path).unwrap();
        let source = name.split('-').next().unwrap();
        match source {
            "apigw" => {
                let value = round_trips::<ApiGatewayV2httpRequest>(&raw);
                assert_eq!(value["version"], "2.0", "{name}: payload format 2.0");
            }
            "dynamodb" => {
                let event: DynamoDbEvent = serde_json::from_str(&raw).unwrap();
                round_trips::<DynamoDbEvent>(&raw);
                for record in &event.records {
                    if let Some(serde_dynamo::AttributeValue::S(body)) =
                        record.change.new_image.get("envelope")
                    {
                        assert_schema_valid(&serde_json::from_str(body).unwrap(), &name);
                    }
                }
            }
            "sqs" => {
                let event: SqsEvent = serde_json::from_str(&raw).unwrap();
                round_trips::<SqsEvent>(&raw);
                // The consumers read the same records through the kit's leaner type.
                let lean: SqsBatch = serde_json::from_str(&raw).unwrap();
                assert_eq!(lean.records.len(), event.records.len(), "{name}");
                for (lean, full) in lean.records.iter().zip(&event.records) {
                    assert_eq!(lean.message_id, full.message_id, "{name}");
                    assert_eq!(lean.body, full.body, "{name}");
                }
                for message in &event.records {
                    let body = message.body.as_deref().unwrap_or_default();
                    if name.contains("malformed") {
                        assert!(
                            Envelope::from_json(body).is_err(),
                            "{name} must stay malformed"
                        );
                    } else {
                        assert_schema_valid(&serde_json::from_str(body).unwrap(), &name);
                    }
                }
            }
            "cloudformation" => {
                let value = round_trips::<CloudFormationCustomResourceRequest>(&raw);
                assert!(
                    value["ResourceProperties"]["Generation"].is_string(),
                    "{name}"
                );
            }
            "envelope" => {
                let value = round_trips::<Envelope>(&raw);
                assert_schema_valid(&value, &name);
            }
            other => panic!(
                "{name}: unknown fixture source {other:?}; name files <source>-<variant>.json"
            ),
        }
    }
}

#[test]
fn a_produced_event_created_envelope_matches_its_schema() {
    let now = Timestamp::now();
    let draft = EventDraft {
        title: Title::parse("title", "Schema check").unwrap(),
        description: Description::parse("description", "").unwrap(),
        schedule: Schedule::upcoming(now.plus_seconds(3600), now.plus_seconds(7200), now).unwrap(),
        venue: Venue::parse("venue", "Online").unwrap(),
        tags: Tags::default(),
        visibility: Visibility::Private,
        capacity: None,
    };
    let event =
        evently_shared::domain::Event::create(draft, UserId::parse("sub", "u-1").unwrap(), now);
    let envelope = DomainEvent::EventCreated(event).into_envelope(
        evently_shared::app::events::SOURCE,
        CorrelationId::generate(),
        now,
    );

    assert_schema_valid(
        &serde_json::to_value(&envelope).unwrap(),
        "produced envelope",
    );
}

#[test]
fn the_schema_rejects_an_envelope_that_breaks_it() {
    let raw = std::fs::read_to_string(fixtures_dir().join("envelope-event-created.json")).unwrap();
    let mut envelope: Value = serde_json::from_str(&raw).unwrap();
    envelope["data"]["tags"] = serde_json::json!(["Not A Slug"]);
    envelope["entityversion"] = serde_json::json!(0);

    assert_eq!(schema_violations(&envelope).len(), 2);
}
