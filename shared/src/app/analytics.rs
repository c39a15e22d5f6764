//! What each domain event counts for.

use crate::envelope::{DomainEvent, Envelope, EnvelopeError};
use crate::ports::Count;

/// The UTC day of an instant, `YYYY-MM-DD`.
fn day(at: crate::domain::Timestamp) -> String {
    at.to_string()[..10].to_owned()
}

/// What one envelope counts for; `None` for types that count nothing. Counting it exactly
/// once is [`crate::ports::CountOnce`]'s.
pub fn count_of(envelope: &Envelope) -> Result<Option<Count>, EnvelopeError> {
    Ok(Some(match envelope.domain_event()? {
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
    }))
}
