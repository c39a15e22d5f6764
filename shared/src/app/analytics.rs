//! What each domain event counts for.

use crate::envelope::{DomainEvent, Envelope, EnvelopeError};
use crate::ports::{Analytics, Count, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum CountError {
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The UTC day of an instant, `YYYY-MM-DD`.
fn day(at: crate::domain::Timestamp) -> String {
    at.to_string()[..10].to_owned()
}

/// Counts one envelope, exactly once. `Ok(None)`: nothing to count for this type;
/// `Ok(Some(false))`: already counted (a redelivery).
pub async fn count_envelope(
    analytics: &impl Analytics,
    envelope: &Envelope,
) -> Result<Option<bool>, CountError> {
    let count = match envelope.domain_event()? {
        DomainEvent::EventCreated(event) => Count::EventCreated {
            day: day(event.created_at),
        },
        DomainEvent::UserCreated(user) => Count::Signup {
            day: day(user.created_at),
        },
        DomainEvent::RsvpCreated(rsvp) => Count::RsvpCreated {
            event: rsvp.event_id,
        },
        DomainEvent::RsvpCancelled(rsvp) => Count::RsvpCancelled {
            event: rsvp.event_id,
        },
        DomainEvent::EventUpdated(_) | DomainEvent::EventCancelled(_) => return Ok(None),
    };
    Ok(Some(analytics.record(&envelope.id, &count).await?))
}
