//! The CloudEvents 1.0 envelope every domain event travels in, from the outbox to the consumers.
//!
//! `correlationid` and `entityversion` are CloudEvents extension attributes: the first ties
//! every log line of every hop to the request that caused it, the second lets consumers apply
//! changes to an entity in order and ignore replays.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use ulid::Ulid;

use crate::domain::{Event, EventId, Timestamp, User, UserId};

pub const SPEC_VERSION: &str = "1.0";
pub const JSON: &str = "application/json";

/// The kinds of domain event. The wire name is versioned so a breaking change gets a new type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    EventCreated,
    EventUpdated,
    EventCancelled,
    RsvpCreated,
    RsvpCancelled,
    UserCreated,
}

impl EventType {
    pub const ALL: &'static [EventType] = &[
        EventType::EventCreated,
        EventType::EventUpdated,
        EventType::EventCancelled,
        EventType::RsvpCreated,
        EventType::RsvpCancelled,
        EventType::UserCreated,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::EventCreated => "evently.event.created.v1",
            Self::EventUpdated => "evently.event.updated.v1",
            Self::EventCancelled => "evently.event.cancelled.v1",
            Self::RsvpCreated => "evently.rsvp.created.v1",
            Self::RsvpCancelled => "evently.rsvp.cancelled.v1",
            Self::UserCreated => "evently.user.created.v1",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|t| t.as_str() == raw)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Ties together everything one request caused. Taken from `X-Correlation-Id` when the caller
/// sends a sane one, generated otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CorrelationId(String);

impl CorrelationId {
    pub const MAX_LEN: usize = 128;

    pub fn generate() -> Self {
        Self(Ulid::generate().to_string())
    }

    /// Accepts a caller's id only if it is short printable ASCII: it ends up in every log line
    /// and header, so nothing that could forge a log field or a header gets through.
    pub fn from_header(raw: Option<&str>) -> Self {
        match raw {
            Some(value) if Self::is_acceptable(value) => Self(value.to_owned()),
            _ => Self::generate(),
        }
    }

    pub fn is_acceptable(value: &str) -> bool {
        !value.is_empty()
            && value.len() <= Self::MAX_LEN
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A CloudEvents 1.0 structured-mode JSON event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    pub specversion: String,
    pub id: String,
    pub source: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub subject: String,
    pub time: Timestamp,
    pub datacontenttype: String,
    pub correlationid: CorrelationId,
    pub entityversion: u64,
    pub data: Payload,
}

/// An envelope's `data`, kept as the JSON text the producer wrote. A consumer reads it once,
/// straight into the typed payload ([`Envelope::domain_event`]): parsed as a tree first, every
/// field was allocated as a tree node, then read again from the tree and freed, for every
/// message. Two payloads are equal when their text is, which holds for envelopes written by
/// the same serialiser.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Payload(Box<RawValue>);

impl Payload {
    /// Any serialisable value as a payload.
    pub fn of(value: &impl Serialize) -> Result<Self, serde_json::Error> {
        serde_json::value::to_raw_value(value).map(Self)
    }

    /// The payload's JSON text, as written.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// The payload as a JSON tree, for callers that inspect it field by field (tests, tools).
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(self.get()).expect("a payload is valid JSON by construction")
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

/// The payload of `EventUpdated`: the whole new state, and which fields changed (so consumers
/// such as notifications can tell a new venue from a fixed typo).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventChange {
    pub event: Event,
    pub changed: Vec<String>,
}

/// The payload of the RSVP events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rsvp {
    pub event_id: EventId,
    pub user_id: UserId,
    pub at: Timestamp,
}

/// A domain event with its typed payload.
#[derive(Debug, Clone, PartialEq)]
pub enum DomainEvent {
    EventCreated(Event),
    EventUpdated(EventChange),
    EventCancelled(Event),
    RsvpCreated(Rsvp),
    RsvpCancelled(Rsvp),
    UserCreated(User),
}

#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("not a CloudEvents JSON envelope: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("unsupported specversion {0:?}")]
    SpecVersion(String),
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    #[error("data does not match {event_type}: {source}")]
    Data {
        event_type: EventType,
        source: serde_json::Error,
    },
    #[error("subject {subject:?} does not match the data's id {id:?}")]
    SubjectMismatch { subject: String, id: String },
}

impl DomainEvent {
    pub fn event_type(&self) -> EventType {
        match self {
            Self::EventCreated(_) => EventType::EventCreated,
            Self::EventUpdated(_) => EventType::EventUpdated,
            Self::EventCancelled(_) => EventType::EventCancelled,
            Self::RsvpCreated(_) => EventType::RsvpCreated,
            Self::RsvpCancelled(_) => EventType::RsvpCancelled,
            Self::UserCreated(_) => EventType::UserCreated,
        }
    }

    fn subject(&self) -> String {
        match self {
            Self::EventCreated(event) | Self::EventCancelled(event) => event.id.to_string(),
            Self::EventUpdated(change) => change.event.id.to_string(),
            Self::RsvpCreated(rsvp) | Self::RsvpCancelled(rsvp) => rsvp.event_id.to_string(),
            Self::UserCreated(user) => user.id.to_string(),
        }
    }

    fn entity_version(&self) -> u64 {
        match self {
            Self::EventCreated(event) | Self::EventCancelled(event) => event.version,
            Self::EventUpdated(change) => change.event.version,
            // RSVPs and users are not versioned: each envelope is a fact of its own.
            Self::RsvpCreated(_) | Self::RsvpCancelled(_) | Self::UserCreated(_) => 1,
        }
    }

    fn data(&self) -> Payload {
        // Serialising our own types cannot fail: every field is a string, number or list.
        match self {
            Self::EventCreated(event) | Self::EventCancelled(event) => Payload::of(event),
            Self::EventUpdated(change) => Payload::of(change),
            Self::RsvpCreated(rsvp) | Self::RsvpCancelled(rsvp) => Payload::of(rsvp),
            Self::UserCreated(user) => Payload::of(user),
        }
        .expect("domain payloads always serialise")
    }

    /// Wraps this event for the outbox. `source` names the producing service.
    pub fn into_envelope(
        self,
        source: &str,
        correlation_id: CorrelationId,
        time: Timestamp,
    ) -> Envelope {
        Envelope {
            specversion: SPEC_VERSION.to_owned(),
            id: Ulid::generate().to_string(),
            source: source.to_owned(),
            event_type: self.event_type().as_str().to_owned(),
            subject: self.subject(),
            time,
            datacontenttype: JSON.to_owned(),
            correlationid: correlation_id,
            entityversion: self.entity_version(),
            data: self.data(),
        }
    }
}

impl Envelope {
    pub fn from_json(raw: &str) -> Result<Self, EnvelopeError> {
        let envelope: Self = serde_json::from_str(raw)?;
        if envelope.specversion != SPEC_VERSION {
            return Err(EnvelopeError::SpecVersion(envelope.specversion));
        }
        Ok(envelope)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an Envelope always serialises")
    }

    /// The typed event inside, checked against the envelope's own attributes.
    pub fn domain_event(&self) -> Result<DomainEvent, EnvelopeError> {
        let event_type = EventType::parse(&self.event_type)
            .ok_or_else(|| EnvelopeError::UnknownType(self.event_type.clone()))?;
        let data = |source| EnvelopeError::Data { event_type, source };
        let payload = self.data.get();
        let event = match event_type {
            EventType::EventCreated => {
                DomainEvent::EventCreated(serde_json::from_str(payload).map_err(data)?)
            }
            EventType::EventUpdated => {
                DomainEvent::EventUpdated(serde_json::from_str(payload).map_err(data)?)
            }
            EventType::EventCancelled => {
                DomainEvent::EventCancelled(serde_json::from_str(payload).map_err(data)?)
            }
            EventType::RsvpCreated => {
                DomainEvent::RsvpCreated(serde_json::from_str(payload).map_err(data)?)
            }
            EventType::RsvpCancelled => {
                DomainEvent::RsvpCancelled(serde_json::from_str(payload).map_err(data)?)
            }
            EventType::UserCreated => {
                DomainEvent::UserCreated(serde_json::from_str(payload).map_err(data)?)
            }
        };
        if event.subject() != self.subject {
            return Err(EnvelopeError::SubjectMismatch {
                subject: self.subject.clone(),
                id: event.subject(),
            });
        }
        Ok(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_correlation_id_is_kept_when_it_is_sane() {
        assert_eq!(
            CorrelationId::from_header(Some("req-42.a:b")).as_str(),
            "req-42.a:b"
        );
    }

    #[test]
    fn a_hostile_correlation_id_is_replaced() {
        for hostile in ["", "has space", "new\nline", "\"quote", &"x".repeat(129)] {
            let id = CorrelationId::from_header(Some(hostile));
            assert_ne!(id.as_str(), hostile);
            assert_eq!(id.as_str().len(), 26, "a fresh ULID replaces {hostile:?}");
        }
    }

    #[test]
    fn an_unknown_event_type_is_reported() {
        let raw = r#"{"specversion":"1.0","id":"1","source":"/x","type":"evently.nope.v1",
            "subject":"s","time":"2027-01-01T00:00:00Z","datacontenttype":"application/json",
            "correlationid":"c","entityversion":1,"data":{}}"#;
        let envelope = Envelope::from_json(raw).unwrap();
        assert!(matches!(
            envelope.domain_event(),
            Err(EnvelopeError::UnknownType(_))
        ));
    }

    const CREATED: &str = include_str!("../../events-fixtures/envelope-event-created.json");

    fn created_envelope() -> String {
        CREATED.to_owned()
    }

    #[test]
    fn a_payload_is_read_into_its_type_and_travels_on_as_written() {
        let raw = created_envelope();
        let envelope = Envelope::from_json(&raw).unwrap();

        let event = envelope.domain_event().unwrap();
        let again = Envelope::from_json(&envelope.to_json()).unwrap();

        let DomainEvent::EventCreated(event) = event else {
            panic!("an EventCreated fixture gave {event:?}");
        };
        assert_eq!(event.id.to_string(), envelope.subject);
        let written: serde_json::Value = serde_json::from_str(&raw).unwrap();
        assert_eq!(envelope.data.to_value(), written["data"]);
        assert_eq!(again, envelope);
    }

    #[test]
    fn a_payload_that_does_not_fit_its_type_is_reported() {
        let mut envelope: serde_json::Value = serde_json::from_str(&created_envelope()).unwrap();
        envelope["data"]["capacity"] = serde_json::json!("many");
        let envelope = Envelope::from_json(&envelope.to_string()).unwrap();

        let read = envelope.domain_event();

        assert!(
            matches!(
                read,
                Err(EnvelopeError::Data {
                    event_type: EventType::EventCreated,
                    ..
                })
            ),
            "{read:?}"
        );
    }

    #[test]
    fn a_wrong_spec_version_is_rejected() {
        let raw = r#"{"specversion":"0.3","id":"1","source":"/x","type":"evently.event.created.v1",
            "subject":"s","time":"2027-01-01T00:00:00Z","datacontenttype":"application/json",
            "correlationid":"c","entityversion":1,"data":{}}"#;
        assert!(matches!(
            Envelope::from_json(raw),
            Err(EnvelopeError::SpecVersion(_))
        ));
    }
}
