use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lambda_http::{Request, RequestExt};

use crate::domain::{EventId, FieldError, FieldErrors, Timestamp};
use crate::ports::{Consistency, Cursor};

const CURSOR_VERSION: &str = "v1";

/// Turns a page position into an opaque token. Clients must not build these, so the format can
/// change; the version prefix lets a later format reject an old token cleanly.
pub fn encode_cursor(cursor: &Cursor) -> String {
    URL_SAFE_NO_PAD.encode(format!(
        "{CURSOR_VERSION}|{}|{}",
        cursor.starts_at.unix_seconds(),
        cursor.id
    ))
}

/// Reads a token made by [`encode_cursor`]. A forged token can only name a position in the
/// listing, never anything else, so a well-formed forgery is as harmless as a real one.
pub fn decode_cursor(raw: &str) -> Result<Cursor, FieldError> {
    let invalid = || FieldError::new("cursor", "is not a cursor this API issued");
    if raw.len() > 128 {
        return Err(invalid());
    }
    let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let mut parts = text.split('|');
    let (Some(CURSOR_VERSION), Some(seconds), Some(id), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid());
    };
    let seconds: i64 = seconds.parse().map_err(|_| invalid())?;
    let starts_at = chrono::DateTime::from_timestamp(seconds, 0)
        .map(Timestamp::from_datetime)
        .ok_or_else(invalid)?;
    let id = EventId::parse("cursor", id).map_err(|_| invalid())?;
    Ok(Cursor { starts_at, id })
}

/// The query parameters the listing and reading routes understand, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryParams {
    pub limit: u16,
    pub cursor: Option<Cursor>,
    pub consistency: Consistency,
}

impl QueryParams {
    pub const DEFAULT_LIMIT: u16 = 20;
    pub const MAX_LIMIT: u16 = 100;

    pub fn parse(request: &Request) -> Result<Self, FieldErrors> {
        let query = request.query_string_parameters();
        let mut errors = FieldErrors::default();
        let limit = match query.first("limit") {
            None => Some(Self::DEFAULT_LIMIT),
            Some(raw) => errors.collect(
                raw.parse::<u16>()
                    .ok()
                    .filter(|n| (1..=Self::MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        FieldError::new(
                            "limit",
                            format!("must be an integer from 1 to {}", Self::MAX_LIMIT),
                        )
                    }),
            ),
        };
        let cursor = match query.first("cursor") {
            None => Some(None),
            Some(raw) => errors.collect(decode_cursor(raw).map(Some)),
        };
        let consistency = match query.first("consistency") {
            None | Some("eventual") => Some(Consistency::Eventual),
            Some("strong") => Some(Consistency::Strong),
            Some(_) => errors.collect(Err(FieldError::new(
                "consistency",
                "must be 'eventual' or 'strong'",
            ))),
        };
        match (limit, cursor, consistency) {
            (Some(limit), Some(cursor), Some(consistency)) if errors.is_empty() => Ok(Self {
                limit,
                cursor,
                consistency,
            }),
            _ => Err(errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_survives_encoding() {
        let cursor = Cursor {
            starts_at: Timestamp::parse("t", "2027-05-01T10:00:00Z").unwrap(),
            id: EventId::generate(),
        };
        assert_eq!(decode_cursor(&encode_cursor(&cursor)).unwrap(), cursor);
    }

    #[test]
    fn forged_cursors_are_rejected_naming_the_cursor() {
        let forged = [
            "",
            "not-base64!",
            &URL_SAFE_NO_PAD.encode("v2|1|01ARZ3NDEKTSV4RRFFQ69G5FAV"),
            &URL_SAFE_NO_PAD.encode("v1|x|01ARZ3NDEKTSV4RRFFQ69G5FAV"),
            &URL_SAFE_NO_PAD.encode("v1|1|not-an-id"),
            &URL_SAFE_NO_PAD.encode("v1|1|01ARZ3NDEKTSV4RRFFQ69G5FAV|extra"),
            &URL_SAFE_NO_PAD.encode("v1|99999999999999999|01ARZ3NDEKTSV4RRFFQ69G5FAV"),
            &"A".repeat(4096),
        ];
        for raw in forged {
            assert_eq!(decode_cursor(raw).unwrap_err().field, "cursor", "{raw}");
        }
    }
}
