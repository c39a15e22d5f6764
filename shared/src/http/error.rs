use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Response};
use serde::Serialize;

use super::response::ResponseContext;
use crate::domain::{FieldError, FieldErrors};

/// Everything that can go wrong at the HTTP boundary. [`ApiError::into_response`] is the one
/// place that turns these into statuses and RFC 9457 problem documents.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid request")]
    Validation(FieldErrors),
    #[error("request body larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("unauthenticated: {0}")]
    Unauthenticated(&'static str),
    #[error("not found")]
    NotFound,
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error("precondition failed: {0}")]
    PreconditionFailed(String),
    #[error("precondition required: {0}")]
    PreconditionRequired(&'static str),
    #[error("method not allowed")]
    MethodNotAllowed { allow: &'static str },
    #[error("conflict: {0}")]
    Conflict(String),
    /// An `Idempotency-Key` already used for a different request.
    #[error("idempotency key reused for a different request")]
    IdempotencyKeyReused,
    #[error("too many requests; retry in {retry_after_seconds} s")]
    TooManyRequests { retry_after_seconds: i64 },
    /// Ours, not the client's. The detail is logged, never sent.
    #[error("internal error: {0}")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    title: &'a str,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    errors: &'a [FieldError],
    correlation_id: &'a str,
}

impl From<FieldError> for ApiError {
    fn from(error: FieldError) -> Self {
        Self::Validation(error.into())
    }
}

impl From<FieldErrors> for ApiError {
    fn from(errors: FieldErrors) -> Self {
        Self::Validation(errors)
    }
}

impl ApiError {
    pub fn internal(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(error))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Validation(_) => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            Self::PreconditionRequired(_) => StatusCode::PRECONDITION_REQUIRED,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn kind_and_title(&self) -> (&'static str, &'static str) {
        match self {
            Self::Validation(_) => ("/problems/invalid-request", "The request is invalid"),
            Self::PayloadTooLarge { .. } => {
                ("/problems/payload-too-large", "The body is too large")
            }
            Self::UnsupportedMediaType => (
                "/problems/unsupported-media-type",
                "The body must be application/json",
            ),
            Self::Unauthenticated(_) => ("/problems/unauthenticated", "Authentication required"),
            Self::NotFound => ("/problems/not-found", "Not found"),
            Self::Forbidden(_) => ("/problems/forbidden", "Forbidden"),
            Self::PreconditionFailed(_) => ("/problems/precondition-failed", "Precondition failed"),
            Self::PreconditionRequired(_) => {
                ("/problems/precondition-required", "Precondition required")
            }
            Self::MethodNotAllowed { .. } => ("/problems/method-not-allowed", "Method not allowed"),
            Self::Conflict(_) => ("/problems/conflict", "Conflict"),
            Self::IdempotencyKeyReused => (
                "/problems/idempotency-key-reused",
                "Idempotency-Key already used for another request",
            ),
            Self::TooManyRequests { .. } => ("/problems/too-many-requests", "Too many requests"),
            Self::Internal(_) => ("/problems/internal", "Internal error"),
        }
    }

    fn detail(&self) -> Option<String> {
        match self {
            Self::Validation(errors) => Some(
                errors
                    .as_slice()
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            Self::PayloadTooLarge { limit } => Some(format!("the limit is {limit} bytes")),
            Self::Unauthenticated(reason) => Some((*reason).to_owned()),
            Self::Conflict(detail) | Self::PreconditionFailed(detail) => Some(detail.clone()),
            Self::Forbidden(detail) | Self::PreconditionRequired(detail) => {
                Some((*detail).to_owned())
            }
            Self::TooManyRequests {
                retry_after_seconds,
            } => Some(format!("retry in {retry_after_seconds} seconds")),
            // Opaque on purpose: the cause is in the log under the same correlation id.
            Self::Internal(_) => None,
            Self::IdempotencyKeyReused => Some(
                "send a new Idempotency-Key for a new request; reuse a key only to retry the same one"
                    .into(),
            ),
            Self::UnsupportedMediaType | Self::NotFound | Self::MethodNotAllowed { .. } => None,
        }
    }

    pub fn into_response(self, ctx: &ResponseContext) -> Response<Body> {
        let status = self.status();
        if let Self::Internal(cause) = &self {
            tracing::error!(error = %cause, status = status.as_u16(), "request failed");
        } else {
            tracing::info!(error = %self, status = status.as_u16(), "request rejected");
        }
        let (kind, title) = self.kind_and_title();
        let errors = match &self {
            Self::Validation(errors) => errors.as_slice(),
            _ => &[],
        };
        let problem = Problem {
            kind,
            title,
            status: status.as_u16(),
            detail: self.detail(),
            errors,
            correlation_id: ctx.correlation_id.as_str(),
        };
        let mut response = ctx.json_with_type(
            status,
            &problem,
            HeaderValue::from_static("application/problem+json"),
        );
        let headers = response.headers_mut();
        match &self {
            Self::Unauthenticated(_) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"evently\""),
                );
            }
            Self::MethodNotAllowed { allow } => {
                headers.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            Self::TooManyRequests {
                retry_after_seconds,
            } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_seconds));
            }
            _ => {}
        }
        response
    }
}
