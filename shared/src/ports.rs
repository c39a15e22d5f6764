//! The capabilities the use cases need, one small trait each. AWS adapters live in
//! [`crate::aws`]; in-memory ones for unit tests in [`crate::fakes`] (feature `fakes`).

use async_trait::async_trait;

use crate::domain::{Event, EventId, Timestamp};
use crate::envelope::Envelope;

/// Where in the `starts_at` order a page ends; the next page starts after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub starts_at: Timestamp,
    pub id: EventId,
}

/// A request for one page of upcoming public events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// Only events starting strictly after this instant are listed.
    pub after: Timestamp,
    pub limit: u16,
    pub cursor: Option<Cursor>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Present only when more items may follow.
    pub next: Option<Cursor>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    Eventual,
    Strong,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A conditional write found the item already there.
    #[error("the item already exists")]
    AlreadyExists,
    /// The store did not answer usefully: throttled, missing table, network, ... Worth a retry
    /// or a fallback, never worth showing to a client.
    #[error("store unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// An item is there but does not parse: a bug or a manual edit, never the client's fault.
    #[error("stored item is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    pub fn unavailable(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Unavailable(Box::new(error))
    }
}

/// Reading events: both the events table and the read model can answer these.
#[async_trait]
pub trait EventReader: Send + Sync {
    async fn get(
        &self,
        id: &EventId,
        consistency: Consistency,
    ) -> Result<Option<Event>, StoreError>;

    /// Upcoming public events in `starts_at` order (ties by id), through an index.
    async fn list_upcoming(&self, page: PageRequest) -> Result<Page<Event>, StoreError>;
}

/// The system of record for events.
#[async_trait]
pub trait EventStore: EventReader {
    /// Stores a new event and the envelope announcing it in one transaction, so the event
    /// is never saved without its announcement, nor announced without being saved.
    async fn create(&self, event: &Event, envelope: &Envelope) -> Result<(), StoreError>;
}

/// Whether a projection write changed anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Changed,
    /// The stored projection is as new or newer: a replay or an out-of-order delivery.
    Stale,
}

/// The query-side copy of events that GET /events serves.
#[async_trait]
pub trait ReadModel: EventReader {
    /// Upserts the projection only if `event.version` is newer than the stored one.
    async fn apply(&self, event: &Event) -> Result<Applied, StoreError>;
}

/// One envelope ready to publish, with the attributes subscribers filter on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    pub body: String,
    pub event_type: String,
    pub correlation_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("publishing failed: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The outcome of one message of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    Accepted,
    Rejected { code: String, message: String },
}

/// Sends envelopes to the domain-event topic.
#[async_trait]
pub trait Publisher: Send + Sync {
    /// The most messages one call accepts (SNS PublishBatch takes ten).
    const MAX_BATCH: usize;

    /// Publishes up to [`Self::MAX_BATCH`] messages; returns one outcome per message, in order.
    async fn publish(&self, batch: &[OutgoingMessage]) -> Result<Vec<Published>, PublishError>;
}
