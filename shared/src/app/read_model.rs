//! Keeping the read model in step with domain events.

use crate::domain::Event;
use crate::envelope::{DomainEvent, Envelope, EnvelopeError};

/// The projection an envelope asks for; `None` for types the read model does not project (the
/// subscription filter normally keeps them away; if it lets one through, skipping it is
/// correct). Writing it is [`crate::ports::ProjectOnce`]'s, whose version guard makes a
/// redelivery or a late, older envelope change nothing.
pub fn projection_of(envelope: &Envelope) -> Result<Option<Event>, EnvelopeError> {
    match envelope.domain_event()? {
        DomainEvent::EventCreated(event) | DomainEvent::EventCancelled(event) => Ok(Some(event)),
        DomainEvent::EventUpdated(change) => Ok(Some(change.event)),
        DomainEvent::RsvpCreated(_)
        | DomainEvent::RsvpCancelled(_)
        | DomainEvent::UserCreated(_) => Ok(None),
    }
}

/// Whether the `at`-th of a batch's events has a newer version in the same batch (or an equal
/// one earlier): writing it would be undone at once, so a consumer that writes the batch
/// together writes only the newest.
pub fn superseded_in_batch(batch: &[(&str, &Event)], at: usize) -> bool {
    let event = batch[at].1;
    batch.iter().enumerate().any(|(other, (_, e))| {
        e.id == event.id
            && (e.version > event.version || (e.version == event.version && other < at))
    })
}
