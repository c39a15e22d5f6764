use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::FieldError;

/// An instant in UTC, always rendered as `YYYY-MM-DDTHH:MM:SSZ`.
///
/// Seconds precision and a fixed width make the text form sort like the instant itself,
/// which the `starts_at#id` index keys depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    pub fn now() -> Self {
        Self::from_datetime(Utc::now())
    }

    pub fn from_datetime(at: DateTime<Utc>) -> Self {
        // Drop sub-second precision so the stored text and the value agree exactly.
        let secs = at.timestamp();
        Self(DateTime::from_timestamp(secs, 0).unwrap_or(at))
    }

    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        DateTime::parse_from_rfc3339(raw)
            .map(|at| Self::from_datetime(at.with_timezone(&Utc)))
            .map_err(|_| {
                FieldError::new(
                    field,
                    "must be an RFC 3339 date-time with an offset, e.g. 2027-03-01T18:30:00Z",
                )
            })
    }

    pub fn as_datetime(&self) -> DateTime<Utc> {
        self.0
    }

    pub fn unix_seconds(&self) -> i64 {
        self.0.timestamp()
    }

    pub fn plus_seconds(&self, seconds: i64) -> Self {
        Self(self.0 + chrono::Duration::seconds(seconds))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::Secs, true))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse("timestamp", &raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timestamp_with_an_offset_is_normalised_to_utc_seconds() {
        let parsed = Timestamp::parse("starts_at", "2027-03-01T19:30:00.250+01:00").unwrap();
        assert_eq!(parsed.to_string(), "2027-03-01T18:30:00Z");
    }

    #[test]
    fn a_timestamp_without_an_offset_is_rejected_naming_the_field() {
        let error = Timestamp::parse("ends_at", "2027-03-01T18:30:00").unwrap_err();
        assert_eq!(error.field, "ends_at");
    }

    #[test]
    fn text_order_matches_time_order() {
        let early = Timestamp::parse("t", "2027-03-01T09:00:00Z").unwrap();
        let late = Timestamp::parse("t", "2027-03-01T10:00:00+00:00").unwrap();
        assert!(early < late);
        assert!(early.to_string() < late.to_string());
    }
}
