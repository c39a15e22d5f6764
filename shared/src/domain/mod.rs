//! The domain (meetups and the people who run and attend them): plain data that is valid by
//! construction.
//!
//! Nothing here knows about AWS, HTTP or Lambda. Wire DTOs become these types at the
//! boundary (`parse`), so code further in never re-checks a title's length or a tag's shape.

/// Serialises a newtype over a `String` as its text, borrowed: `#[serde(into = "String")]`
/// cloned every value first, for every event or user serialised.
macro_rules! serialize_as_text {
    ($name:ident) => {
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }
    };
}

/// A text newtype that is checked once, at the boundary, and trusted afterwards.
macro_rules! bounded_text {
    ($(#[$doc:meta])* $name:ident, allows_empty = $allows_empty:expr, max = $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
        #[serde(try_from = "String")]
        pub struct $name(String);

        serialize_as_text!($name);

        impl $name {
            pub const MAX_CHARS: usize = $max;
            const ALLOWS_EMPTY: bool = $allows_empty;

            /// Trims surrounding whitespace, then checks the length in characters.
            pub fn parse(field: &str, raw: &str) -> Result<Self, $crate::domain::FieldError> {
                Self::checked(field, raw).map(|trimmed| Self(trimmed.to_owned()))
            }

            /// `raw` trimmed, if it is acceptable.
            fn checked<'a>(field: &str, raw: &'a str) -> Result<&'a str, $crate::domain::FieldError> {
                let trimmed = raw.trim();
                let chars = trimmed.chars().count();
                if !Self::ALLOWS_EMPTY && chars == 0 {
                    return Err($crate::domain::FieldError::new(field, "must not be empty"));
                }
                if chars > Self::MAX_CHARS {
                    return Err($crate::domain::FieldError::new(
                        field,
                        format!("must be at most {} characters", $max),
                    ));
                }
                if trimmed.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
                    return Err($crate::domain::FieldError::new(field, "must not contain control characters"));
                }
                Ok(trimmed)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = $crate::domain::FieldError;
            /// Keeps `raw` when it needs no trimming, as stored and published text never does.
            fn try_from(raw: String) -> Result<Self, Self::Error> {
                let trimmed = Self::checked(stringify!($name), &raw)?;
                if trimmed.len() == raw.len() {
                    return Ok(Self(raw));
                }
                Ok(Self(trimmed.to_owned()))
            }
        }
    };
}

mod event;
mod field;
mod search;
mod time;
mod user;

pub use event::{
    Capacity, Description, Event, EventDraft, EventId, EventPatch, EventStatus, Schedule, Tag,
    Tags, Title, UserId, Venue, Visibility,
};
pub use field::{FieldError, FieldErrors};
pub use search::{SEARCH_LAYOUT, SearchEntry, SearchQuery};
pub use time::Timestamp;
pub use user::{DisplayName, Email, Password, User};
