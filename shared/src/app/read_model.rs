//! Keeping the read model in step with domain events.

use crate::envelope::{DomainEvent, Envelope, EnvelopeError};
use crate::ports::{Applied, ReadModel, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Applies one envelope. The version guard in [`ReadModel::apply`] makes this idempotent under
/// redelivery and safe under reordering: an older or repeated envelope changes nothing.
/// Types the read model does not project give `None` (the subscription filter normally keeps
/// them away; if it lets one through, skipping it is correct).
pub async fn apply_envelope(
    read_model: &impl ReadModel,
    envelope: &Envelope,
) -> Result<Option<Applied>, ProjectionError> {
    match envelope.domain_event()? {
        DomainEvent::EventCreated(event) | DomainEvent::EventCancelled(event) => {
            Ok(Some(read_model.apply(&event).await?))
        }
        DomainEvent::EventUpdated(change) => Ok(Some(read_model.apply(&change.event).await?)),
        DomainEvent::RsvpCreated(_)
        | DomainEvent::RsvpCancelled(_)
        | DomainEvent::UserCreated(_) => Ok(None),
    }
}
