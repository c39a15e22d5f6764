//! Creating and reading events.

use crate::domain::{Event, EventDraft, EventId, Timestamp, UserId};
use crate::envelope::{CorrelationId, DomainEvent, Envelope};
use crate::ports::{Consistency, EventReader, EventStore, Page, PageRequest, StoreError};

/// The CloudEvents `source` of everything the events API emits.
pub const SOURCE: &str = "/evently/events-api";

/// Which table answered a read; sent to clients as `X-Read-Source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadSource {
    ReadModel,
    Primary,
}

impl ReadSource {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::ReadModel => "read-model",
            Self::Primary => "primary",
        }
    }
}

/// Stores a new event together with its `EventCreated` envelope in the outbox. Publishing is
/// the relay's job: if this function dies right after the commit, the event still goes out.
pub async fn create_event(
    store: &impl EventStore,
    draft: EventDraft,
    organizer: UserId,
    correlation_id: CorrelationId,
    now: Timestamp,
) -> Result<(Event, Envelope), StoreError> {
    let event = Event::create(draft, organizer, now);
    let envelope =
        DomainEvent::EventCreated(event.clone()).into_envelope(SOURCE, correlation_id, now);
    store.create(&event, &envelope).await?;
    Ok((event, envelope))
}

/// Lists upcoming public events from the read model, or from the events table when the read
/// model cannot answer (missing, throttled, failing): a degraded read beats an error.
pub async fn list_events(
    read_model: &impl EventReader,
    primary: &impl EventReader,
    page: PageRequest,
) -> Result<(Page<Event>, ReadSource), StoreError> {
    match read_model.list_upcoming(page).await {
        Ok(found) => Ok((found, ReadSource::ReadModel)),
        Err(error) => {
            tracing::warn!(%error, "read model unavailable; listing from the events table");
            let found = primary.list_upcoming(page).await?;
            Ok((found, ReadSource::Primary))
        }
    }
}

/// One event as `viewer` may see it. A private event that is not the viewer's is reported
/// exactly like a missing one, so ids of private events cannot be probed.
pub async fn get_event(
    read_model: &impl EventReader,
    primary: &impl EventReader,
    id: &EventId,
    consistency: Consistency,
    viewer: Option<&UserId>,
) -> Result<Option<(Event, ReadSource)>, StoreError> {
    let found = match consistency {
        Consistency::Strong => primary
            .get(id, Consistency::Strong)
            .await?
            .map(|e| (e, ReadSource::Primary)),
        Consistency::Eventual => match read_model.get(id, Consistency::Eventual).await {
            Ok(Some(event)) => Some((event, ReadSource::ReadModel)),
            // Not projected yet (the relay runs behind the write), or the read model is down:
            // the events table has the answer either way.
            Ok(None) => primary
                .get(id, Consistency::Eventual)
                .await?
                .map(|e| (e, ReadSource::Primary)),
            Err(error) => {
                tracing::warn!(%error, "read model unavailable; reading the events table");
                primary
                    .get(id, Consistency::Eventual)
                    .await?
                    .map(|e| (e, ReadSource::Primary))
            }
        },
    };
    Ok(found.filter(|(event, _)| event.is_visible_to(viewer)))
}
