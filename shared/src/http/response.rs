use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, Response};
use serde::Serialize;

use crate::envelope::CorrelationId;

pub const CORRELATION_HEADER: &str = "x-correlation-id";

/// The path the client asked for, as the gateway received it.
///
/// The gateway's raw path, not `uri().path()`: the URI is rebuilt from the raw path, and an
/// emulator that hands over a decoded raw path turns an encoded `?` or `#` in an id into the
/// start of a query or fragment, which would route `DELETE /events/%3F` as `DELETE /events`.
/// Requests built without the gateway (tests) have no raw path and use the URI's.
pub fn request_path(request: &Request) -> &str {
    use lambda_http::RequestExt;
    match request.raw_http_path() {
        "" => request.uri().path(),
        raw => raw,
    }
}

/// The request's correlation id: the caller's if sane, else a fresh one.
pub fn correlation_id_of(request: &Request) -> CorrelationId {
    CorrelationId::from_header(
        request
            .headers()
            .get(CORRELATION_HEADER)
            .and_then(|v| v.to_str().ok()),
    )
}

/// What every response of one request carries, whatever its status.
#[derive(Debug, Clone)]
pub struct ResponseContext {
    pub correlation_id: CorrelationId,
}

impl ResponseContext {
    /// 204 with no body, still carrying the correlation id.
    pub fn no_content(&self) -> Response<Body> {
        let mut response = Response::new(Body::Empty);
        *response.status_mut() = StatusCode::NO_CONTENT;
        if let Ok(value) = HeaderValue::from_str(self.correlation_id.as_str()) {
            response.headers_mut().insert(CORRELATION_HEADER, value);
        }
        response
    }

    pub fn json(&self, status: StatusCode, body: &impl Serialize) -> Response<Body> {
        self.json_with_type(status, body, HeaderValue::from_static("application/json"))
    }

    pub fn json_with_type(
        &self,
        status: StatusCode,
        body: &impl Serialize,
        content_type: HeaderValue,
    ) -> Response<Body> {
        let body = serde_json::to_string(body).expect("response bodies always serialise");
        let mut response = Response::new(Body::Text(body));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, content_type);
        if let Ok(value) = HeaderValue::from_str(self.correlation_id.as_str()) {
            headers.insert(CORRELATION_HEADER, value);
        }
        response
    }
}

impl ResponseContext {
    pub fn for_request(request: &Request) -> Self {
        Self {
            correlation_id: correlation_id_of(request),
        }
    }
}

/// Runs one request's `route` future inside a span carrying the correlation id, turns an error
/// into its problem response, and logs the outcome. Every API function answers through this.
pub async fn serve(
    request: &Request,
    ctx: &ResponseContext,
    route: impl std::future::Future<Output = Result<Response<Body>, super::ApiError>>,
) -> Response<Body> {
    use tracing::Instrument;
    let span = tracing::info_span!(
        "request",
        correlation_id = %ctx.correlation_id,
        method = %request.method(),
        path = %request_path(request),
    );
    async {
        let started = std::time::Instant::now();
        let response = match route.await {
            Ok(response) => response,
            Err(error) => error.into_response(ctx),
        };
        let status = response.status();
        tracing::info!(status = status.as_u16(), "request handled");
        crate::metrics::request(
            status.is_server_error(),
            started,
            Some(ctx.correlation_id.as_str()),
        );
        response
    }
    .instrument(span)
    .await
}
