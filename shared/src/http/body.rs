use lambda_http::http::header;
use lambda_http::{Body, Request};
use serde_json::{Map, Value};

use super::ApiError;
use crate::domain::{FieldError, FieldErrors};

/// The largest request body any route accepts.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Reads the body as one JSON object, enforcing size, media type and syntax, in that order.
pub fn json_object(request: &Request) -> Result<Map<String, Value>, ApiError> {
    let bytes: &[u8] = match request.body() {
        Body::Empty => &[],
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => &[],
    };
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence != "application/json" && !essence.ends_with("+json") {
        return Err(ApiError::UnsupportedMediaType);
    }
    if bytes.is_empty() {
        return Err(FieldError::new("body", "must be a JSON object").into());
    }
    // serde_json bounds nesting depth (128), so deeply nested input fails here, not the stack.
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(FieldError::new("body", "must be a JSON object").into()),
        Err(error) if error.is_eof() || error.is_syntax() => Err(FieldError::new(
            "body",
            format!(
                "is not valid JSON (line {}, column {})",
                error.line(),
                error.column()
            ),
        )
        .into()),
        Err(error) => Err(FieldError::new("body", format!("is not valid JSON: {error}")).into()),
    }
}

/// A field was present but malformed; the error is already in the object's list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded;

/// Reads fields out of a JSON object, collecting every violation instead of stopping at the
/// first. Fields not in `allowed` are rejected by name: they are typos or attempts to set what
/// the server decides (`organizer_id`, `version`, ...).
pub struct JsonObject {
    map: Map<String, Value>,
    errors: FieldErrors,
}

impl JsonObject {
    pub fn new(map: Map<String, Value>, allowed: &[&str]) -> Self {
        let mut errors = FieldErrors::default();
        let mut unknown: Vec<&String> = map
            .keys()
            .filter(|k| !allowed.contains(&k.as_str()))
            .collect();
        unknown.sort();
        for key in unknown {
            errors.push(FieldError::new(
                truncate_field_name(key),
                "is not a field of this request",
            ));
        }
        Self { map, errors }
    }

    pub fn errors(&mut self) -> &mut FieldErrors {
        &mut self.errors
    }

    /// Ends reading: every recorded violation, or nothing.
    pub fn finish(self) -> Result<(), FieldErrors> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(self.errors)
        }
    }

    fn take(&mut self, field: &str) -> Option<Value> {
        match self.map.remove(field) {
            Some(Value::Null) | None => None,
            Some(value) => Some(value),
        }
    }

    pub fn required_str(&mut self, field: &str) -> Option<String> {
        match self.take(field) {
            Some(Value::String(s)) => Some(s),
            Some(_) => {
                self.errors.push(FieldError::new(field, "must be a string"));
                None
            }
            None => {
                self.errors.push(FieldError::new(field, "is required"));
                None
            }
        }
    }

    pub fn required_bool(&mut self, field: &str) -> Option<bool> {
        match self.take(field) {
            Some(Value::Bool(b)) => Some(b),
            Some(_) => {
                self.errors
                    .push(FieldError::new(field, "must be true or false"));
                None
            }
            None => {
                self.errors.push(FieldError::new(field, "is required"));
                None
            }
        }
    }

    /// `Ok(None)` when absent or null; `Err(Recorded)` when present but not a string.
    pub fn optional_str(&mut self, field: &str) -> Result<Option<String>, Recorded> {
        match self.take(field) {
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => {
                self.errors.push(FieldError::new(field, "must be a string"));
                Err(Recorded)
            }
            None => Ok(None),
        }
    }

    pub fn optional_u64(&mut self, field: &str) -> Result<Option<u64>, Recorded> {
        match self.take(field) {
            Some(Value::Number(n)) => match n.as_u64() {
                Some(n) => Ok(Some(n)),
                None => {
                    self.errors
                        .push(FieldError::new(field, "must be a non-negative integer"));
                    Err(Recorded)
                }
            },
            Some(_) => {
                self.errors
                    .push(FieldError::new(field, "must be an integer"));
                Err(Recorded)
            }
            None => Ok(None),
        }
    }

    /// `Ok(None)` when absent, `Ok(Some(None))` when explicitly `null` (clear the field),
    /// `Ok(Some(Some(n)))` for a non-negative integer.
    pub fn nullable_u64(&mut self, field: &str) -> Result<Option<Option<u64>>, Recorded> {
        if matches!(self.map.get(field), Some(Value::Null)) {
            self.map.remove(field);
            return Ok(Some(None));
        }
        Ok(self.optional_u64(field)?.map(Some))
    }

    /// A list of strings; each element that is not a string is named by its index.
    pub fn optional_str_list(&mut self, field: &str) -> Result<Option<Vec<String>>, Recorded> {
        match self.take(field) {
            Some(Value::Array(values)) => {
                let mut out = Vec::with_capacity(values.len());
                let mut ok = true;
                for (i, value) in values.into_iter().enumerate() {
                    match value {
                        Value::String(s) => out.push(s),
                        _ => {
                            ok = false;
                            self.errors
                                .push(FieldError::new(format!("{field}[{i}]"), "must be a string"));
                        }
                    }
                }
                if ok { Ok(Some(out)) } else { Err(Recorded) }
            }
            Some(_) => {
                self.errors
                    .push(FieldError::new(field, "must be a list of strings"));
                Err(Recorded)
            }
            None => Ok(None),
        }
    }
}

/// Echoing an attacker's megabyte-long key back in an error would make errors an amplifier.
fn truncate_field_name(key: &str) -> String {
    const MAX: usize = 64;
    if key.chars().count() <= MAX {
        key.to_owned()
    } else {
        let mut short: String = key.chars().take(MAX).collect();
        short.push('…');
        short
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::http;

    fn request(content_type: Option<&str>, body: Body) -> Request {
        let mut builder = http::Request::builder().method("POST").uri("/events");
        if let Some(ct) = content_type {
            builder = builder.header("content-type", ct);
        }
        builder.body(body).unwrap()
    }

    #[test]
    fn a_body_over_the_limit_is_too_large() {
        let big = format!("{{\"title\":\"{}\"}}", "x".repeat(MAX_BODY_BYTES));
        let error = json_object(&request(Some("application/json"), Body::Text(big))).unwrap_err();
        assert!(matches!(error, ApiError::PayloadTooLarge { .. }));
    }

    #[test]
    fn a_body_that_is_not_json_names_the_body() {
        let error =
            json_object(&request(Some("application/json"), Body::Text("{".into()))).unwrap_err();
        let ApiError::Validation(errors) = error else {
            panic!("{error:?}")
        };
        assert_eq!(errors.as_slice()[0].field, "body");
    }

    #[test]
    fn invalid_utf8_is_a_client_error() {
        let body = Body::Binary(vec![b'{', b'"', 0xff, 0xfe, b'"', b':', b'1', b'}']);
        let error = json_object(&request(Some("application/json"), body)).unwrap_err();
        assert!(matches!(error, ApiError::Validation(_)));
    }

    #[test]
    fn deeply_nested_json_is_a_client_error_not_a_crash() {
        let body = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let error = json_object(&request(Some("application/json"), Body::Text(body))).unwrap_err();
        assert!(matches!(error, ApiError::Validation(_)));
    }

    #[test]
    fn a_non_json_media_type_is_refused() {
        let error = json_object(&request(Some("text/plain"), Body::Text("{}".into()))).unwrap_err();
        assert!(matches!(error, ApiError::UnsupportedMediaType));
        assert!(
            json_object(&request(
                Some("application/json; charset=utf-8"),
                Body::Text("{}".into())
            ))
            .is_ok()
        );
    }

    #[test]
    fn unknown_fields_are_named() {
        let map = serde_json::from_str(r#"{"title":"x","organizer_id":"me"}"#).unwrap();
        let object = JsonObject::new(map, &["title"]);
        let errors = object.finish().unwrap_err();
        assert_eq!(errors.as_slice()[0].field, "organizer_id");
    }
}
