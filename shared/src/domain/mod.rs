//! The meetup domain: plain data that is valid by construction.
//!
//! Nothing here knows about AWS, HTTP or Lambda. Wire DTOs become these types at the
//! boundary (`parse`), so code further in never re-checks a title's length or a tag's shape.

mod event;
mod field;
mod time;

pub use event::{
    Capacity, Description, Event, EventDraft, EventId, Schedule, Tag, Tags, Title, UserId, Venue,
    Visibility,
};
pub use field::{FieldError, FieldErrors};
pub use time::Timestamp;
