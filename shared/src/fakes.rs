//! In-memory port implementations and test keys, for unit tests of pure logic only.
//! Everything that talks to AWS is tested against the emulator instead.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::domain::{Event, EventId};
use crate::envelope::Envelope;
use crate::http::{TokenConfig, TokenSigner};
use crate::ports::{
    Applied, Consistency, Cursor, EventReader, EventStore, OutgoingMessage, Page, PageRequest,
    PublishError, Published, Publisher, ReadModel, StoreError,
};

/// Events kept in memory in listing order, with the outbox beside them.
#[derive(Debug, Default)]
pub struct InMemoryEvents {
    events: Mutex<BTreeMap<EventId, Event>>,
    outbox: Mutex<Vec<Envelope>>,
}

impl InMemoryEvents {
    pub fn outbox(&self) -> Vec<Envelope> {
        self.outbox.lock().unwrap().clone()
    }

    pub fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().values().cloned().collect()
    }
}

#[async_trait]
impl EventReader for InMemoryEvents {
    async fn get(&self, id: &EventId, _: Consistency) -> Result<Option<Event>, StoreError> {
        Ok(self.events.lock().unwrap().get(id).cloned())
    }

    async fn list_upcoming(&self, page: PageRequest) -> Result<Page<Event>, StoreError> {
        let mut listed: Vec<Event> = self
            .events
            .lock()
            .unwrap()
            .values()
            .filter(|e| e.is_listed_publicly() && e.starts_at > page.after)
            .filter(|e| match page.cursor {
                Some(c) => (e.starts_at, e.id) > (c.starts_at, c.id),
                None => true,
            })
            .cloned()
            .collect();
        listed.sort_by_key(|e| (e.starts_at, e.id));
        let more = listed.len() > usize::from(page.limit);
        listed.truncate(usize::from(page.limit));
        let next = more.then(|| {
            let last = listed.last().expect("a full page has a last item");
            Cursor {
                starts_at: last.starts_at,
                id: last.id,
            }
        });
        Ok(Page {
            items: listed,
            next,
        })
    }
}

#[async_trait]
impl EventStore for InMemoryEvents {
    async fn create(&self, event: &Event, envelope: &Envelope) -> Result<(), StoreError> {
        let mut events = self.events.lock().unwrap();
        if events.contains_key(&event.id) {
            return Err(StoreError::AlreadyExists);
        }
        events.insert(event.id, event.clone());
        self.outbox.lock().unwrap().push(envelope.clone());
        Ok(())
    }
}

#[async_trait]
impl ReadModel for InMemoryEvents {
    async fn apply(&self, event: &Event) -> Result<Applied, StoreError> {
        let mut events = self.events.lock().unwrap();
        match events.get(&event.id) {
            Some(stored) if stored.version >= event.version => Ok(Applied::Stale),
            _ => {
                events.insert(event.id, event.clone());
                Ok(Applied::Changed)
            }
        }
    }
}

/// A store that is down: every call fails as unavailable.
#[derive(Debug, Default)]
pub struct Unavailable;

#[derive(Debug, thiserror::Error)]
#[error("simulated outage")]
struct Outage;

#[async_trait]
impl EventReader for Unavailable {
    async fn get(&self, _: &EventId, _: Consistency) -> Result<Option<Event>, StoreError> {
        Err(StoreError::unavailable(Outage))
    }

    async fn list_upcoming(&self, _: PageRequest) -> Result<Page<Event>, StoreError> {
        Err(StoreError::unavailable(Outage))
    }
}

#[async_trait]
impl EventStore for Unavailable {
    async fn create(&self, _: &Event, _: &Envelope) -> Result<(), StoreError> {
        Err(StoreError::unavailable(Outage))
    }
}

#[async_trait]
impl ReadModel for Unavailable {
    async fn apply(&self, _: &Event) -> Result<Applied, StoreError> {
        Err(StoreError::unavailable(Outage))
    }
}

/// Records what was published; rejects messages whose body contains `reject_marker`.
#[derive(Debug, Default)]
pub struct RecordingPublisher {
    pub calls: Mutex<Vec<Vec<OutgoingMessage>>>,
    pub reject_marker: Option<String>,
    pub fail_calls: bool,
}

impl RecordingPublisher {
    pub fn published(&self) -> Vec<OutgoingMessage> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .flatten()
            .cloned()
            .collect()
    }
}

#[async_trait]
impl Publisher for RecordingPublisher {
    const MAX_BATCH: usize = 10;

    async fn publish(&self, batch: &[OutgoingMessage]) -> Result<Vec<Published>, PublishError> {
        assert!(
            batch.len() <= Self::MAX_BATCH,
            "batch larger than the publisher allows"
        );
        if self.fail_calls {
            return Err(PublishError::Unavailable(Box::new(Outage)));
        }
        self.calls.lock().unwrap().push(batch.to_vec());
        Ok(batch
            .iter()
            .map(|m| match &self.reject_marker {
                Some(marker) if m.body.contains(marker.as_str()) => Published::Rejected {
                    code: "InternalError".into(),
                    message: "simulated".into(),
                },
                _ => Published::Accepted,
            })
            .collect())
    }
}

/// A fresh Ed25519 key pair for tests: the signer and the matching verifier config.
pub fn test_keys(issuer: &str, audience: &str) -> (TokenSigner, TokenConfig) {
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
    use base64::Engine;
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new())
        .expect("key generation");
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("a generated key parses");
    let public_key =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
    let signer = TokenSigner::from_pkcs8_der(pkcs8.as_ref(), "test", issuer, audience);
    let config = TokenConfig {
        public_key,
        issuer: issuer.to_owned(),
        audience: audience.to_owned(),
    };
    (signer, config)
}

/// Checks an envelope against its JSON Schema in `events-fixtures/schemas/`, returning every
/// violation. An envelope of a type without a schema is itself a violation.
pub fn schema_violations(envelope: &serde_json::Value) -> Vec<String> {
    let event_type = envelope["type"].as_str().unwrap_or_default();
    let Some(schema) = crate::envelope::EventType::parse(event_type).map(schema_for) else {
        return vec![format!("no schema for event type {event_type:?}")];
    };
    let schema: serde_json::Value = serde_json::from_str(schema).expect("schemas are JSON");
    let validator = jsonschema::validator_for(&schema).expect("schemas are valid JSON Schema");
    validator
        .iter_errors(envelope)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

fn schema_for(event_type: crate::envelope::EventType) -> &'static str {
    use crate::envelope::EventType;
    match event_type {
        EventType::EventCreated => {
            include_str!("../../events-fixtures/schemas/evently.event.created.v1.json")
        }
    }
}
