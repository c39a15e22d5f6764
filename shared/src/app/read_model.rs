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
pub async fn apply_envelope(
    read_model: &impl ReadModel,
    envelope: &Envelope,
) -> Result<Applied, ProjectionError> {
    match envelope.domain_event()? {
        DomainEvent::EventCreated(event) => Ok(read_model.apply(&event).await?),
    }
}
