//! `Idempotency-Key` on HTTP writes, as in the IETF draft: a client that retries a POST with
//! the same key gets the first response again instead of a second effect.
//!
//! Keys are per caller (an account's key never replays another account's response) and per
//! route. Only deterministic outcomes are remembered: a 2xx, or a 4xx the same request would
//! get again. A 5xx, a 409 or a 429 releases the key, because a retry may succeed.

use lambda_http::RequestExt;
use lambda_http::http::{HeaderName, HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};

use super::{ApiError, Body, Request, Response, ResponseContext};
use crate::domain::{FieldError, Timestamp};
use crate::idempotency::{keyed_fingerprint, lease_until};
use crate::ports::{Begun, Claim, Idempotency};

pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// Set on a response that is a replay of the first one.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
/// How long a key is remembered: a day, as clients retry within minutes, not weeks.
const REMEMBER_SECONDS: i64 = 24 * 60 * 60;
const MAX_KEY_LENGTH: usize = 255;
/// The response headers worth replaying; the correlation id is the new request's own.
const REPLAYED_HEADERS: [HeaderName; 3] = [header::CONTENT_TYPE, header::LOCATION, header::ETAG];

/// What is remembered of a response.
#[derive(Debug, Serialize, Deserialize)]
struct StoredResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

/// The request's `Idempotency-Key`, if it sent one: 1 to 255 visible ASCII characters.
pub fn idempotency_key(request: &Request) -> Result<Option<&str>, ApiError> {
    let Some(value) = request.headers().get(IDEMPOTENCY_KEY_HEADER) else {
        return Ok(None);
    };
    let invalid = || {
        ApiError::from(FieldError::new(
            "Idempotency-Key",
            "must be 1 to 255 visible ASCII characters",
        ))
    };
    let key = value.to_str().map_err(|_| invalid())?;
    if key.is_empty() || key.len() > MAX_KEY_LENGTH || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid());
    }
    Ok(Some(key))
}

/// Where a write's `Idempotency-Key` records live and whose they are.
#[derive(Clone, Copy)]
pub struct KeyScope<'a, I: ?Sized> {
    pub store: &'a I,
    /// The route, e.g. `POST /events`.
    pub scope: &'a str,
    /// The caller's id; keys of different callers never meet.
    pub owner: &'a str,
    /// A server-side secret for routes whose bodies hold secrets; empty otherwise.
    pub pepper: &'a [u8],
}

/// Runs `write` once per (`scope`, `owner`, key) when the request carries an
/// `Idempotency-Key`, and at every call when it does not.
///
/// - the same key with the same request replays the first response (`Idempotent-Replayed`);
/// - the same key with another request (method, path or body) is a 422;
/// - the same key while the first request still runs is a 409.
pub async fn idempotent<I: Idempotency + ?Sized>(
    keys: KeyScope<'_, I>,
    request: &Request,
    ctx: &ResponseContext,
    write: impl Future<Output = Result<Response<Body>, ApiError>>,
) -> Result<Response<Body>, ApiError> {
    let Some(key) = idempotency_key(request)? else {
        return write.await;
    };
    let KeyScope {
        store,
        scope,
        owner,
        pepper,
    } = keys;
    let record = format!("{owner}:{key}");
    let print = keyed_fingerprint(
        pepper,
        &[
            request.method().as_str().as_bytes(),
            super::request_path(request).as_bytes(),
            request.body().as_ref(),
        ],
    );
    let claim = Claim::new(scope, &record).with_fingerprint(&print);
    let now = Timestamp::now();
    let lease = lease_until(request.lambda_context_ref().map(|c| c.deadline));
    match store
        .begin(claim, now, lease)
        .await
        .map_err(ApiError::internal)?
    {
        Begun::Started => {}
        Begun::InProgressElsewhere => {
            return Err(ApiError::Conflict(
                "a request with this Idempotency-Key is still being processed; retry later".into(),
            ));
        }
        Begun::AlreadyDone(done) => {
            if done.fingerprint.as_deref() != Some(print.as_str()) {
                return Err(ApiError::IdempotencyKeyReused);
            }
            let stored: StoredResponse = done
                .outcome
                .as_deref()
                .and_then(|json| serde_json::from_str(json).ok())
                .ok_or_else(|| ApiError::internal(UnreadableRecord))?;
            tracing::info!(
                status = stored.status,
                "response replayed for Idempotency-Key"
            );
            return Ok(replay(stored, ctx));
        }
    }

    let response = match write.await {
        Ok(response) => response,
        Err(error) if remembered(error.status()) => error.into_response(ctx),
        Err(error) => {
            release(store, claim).await;
            return Err(error);
        }
    };
    if !remembered(response.status()) {
        release(store, claim).await;
        return Ok(response);
    }
    let stored = StoredResponse {
        status: response.status().as_u16(),
        headers: REPLAYED_HEADERS
            .iter()
            .filter_map(|name| {
                let value = response.headers().get(name)?.to_str().ok()?;
                Some((name.as_str().to_owned(), value.to_owned()))
            })
            .collect(),
        body: String::from_utf8_lossy(response.body().as_ref()).into_owned(),
    };
    let outcome = serde_json::to_string(&stored).expect("a stored response always serialises");
    if let Err(error) = store
        .complete(claim, Some(&outcome), now.plus_seconds(REMEMBER_SECONDS))
        .await
    {
        // The write is done: answer it. A retry meets the in-progress claim (409) until the
        // lease lapses, and never repeats the effect before then.
        tracing::error!(%error, "write done but its Idempotency-Key was not recorded");
    }
    Ok(response)
}

fn remembered(status: StatusCode) -> bool {
    !(status.is_server_error()
        || status == StatusCode::CONFLICT
        || status == StatusCode::TOO_MANY_REQUESTS)
}

async fn release<I: Idempotency + ?Sized>(store: &I, claim: Claim<'_>) {
    if let Err(error) = store.release(claim).await {
        tracing::warn!(%error, "Idempotency-Key not released; it frees itself when its lease lapses");
    }
}

fn replay(stored: StoredResponse, ctx: &ResponseContext) -> Response<Body> {
    let mut response = ctx.no_content();
    *response.status_mut() =
        StatusCode::from_u16(stored.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    *response.body_mut() = if stored.body.is_empty() {
        Body::Empty
    } else {
        Body::Text(stored.body)
    };
    let headers = response.headers_mut();
    for (name, value) in stored.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            headers.insert(name, value);
        }
    }
    headers.insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    response
}

#[derive(Debug, thiserror::Error)]
#[error("the idempotency record holds no readable response")]
struct UnreadableRecord;

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use lambda_http::http;

    use super::*;
    use crate::fakes::InMemoryIdempotency;

    fn keys(store: &InMemoryIdempotency) -> KeyScope<'_, InMemoryIdempotency> {
        KeyScope {
            store,
            scope: "s",
            owner: "anyone",
            pepper: b"",
        }
    }

    fn request(key: &str) -> Request {
        http::Request::builder()
            .method("POST")
            .uri("/signup")
            .header(IDEMPOTENCY_KEY_HEADER, key)
            .body(Body::Text("{}".into()))
            .unwrap()
    }

    #[tokio::test]
    async fn a_write_that_fails_on_our_side_frees_its_key_for_the_retry() {
        let store = InMemoryIdempotency::default();
        let ctx = ResponseContext::for_request(&request("k"));
        let runs = AtomicUsize::new(0);
        let write = |fail: bool| {
            let runs = &runs;
            let ctx = &ctx;
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                if fail {
                    Err(ApiError::internal(UnreadableRecord))
                } else {
                    Ok(ctx.json(StatusCode::CREATED, &"made"))
                }
            }
        };

        let failed = idempotent(keys(&store), &request("k"), &ctx, write(true)).await;
        let retried = idempotent(keys(&store), &request("k"), &ctx, write(false)).await;
        let replayed = idempotent(keys(&store), &request("k"), &ctx, write(false)).await;

        assert!(matches!(failed, Err(ApiError::Internal(_))));
        assert_eq!(retried.unwrap().status(), StatusCode::CREATED);
        let replayed = replayed.unwrap();
        assert_eq!(replayed.status(), StatusCode::CREATED);
        assert_eq!(replayed.headers()[REPLAYED_HEADER], "true");
        assert_eq!(runs.load(Ordering::SeqCst), 2, "the replay ran nothing");
    }

    #[tokio::test]
    async fn a_conflict_is_not_remembered_because_a_retry_may_succeed() {
        let store = InMemoryIdempotency::default();
        let ctx = ResponseContext::for_request(&request("k"));

        let conflict = idempotent(keys(&store), &request("k"), &ctx, async {
            Err(ApiError::Conflict("taken".into()))
        })
        .await;
        let retried = idempotent(keys(&store), &request("k"), &ctx, async {
            Ok(ctx.json(StatusCode::CREATED, &"made"))
        })
        .await;

        assert!(matches!(conflict, Err(ApiError::Conflict(_))));
        let retried = retried.unwrap();
        assert_eq!(retried.status(), StatusCode::CREATED);
        assert!(retried.headers().get(REPLAYED_HEADER).is_none());
    }

    #[tokio::test]
    async fn without_a_key_every_call_runs() {
        let store = InMemoryIdempotency::default();
        let plain = http::Request::builder()
            .method("POST")
            .uri("/signup")
            .body(Body::Empty)
            .unwrap();
        let ctx = ResponseContext::for_request(&plain);
        let runs = AtomicUsize::new(0);

        for _ in 0..2 {
            idempotent(keys(&store), &plain, &ctx, async {
                runs.fetch_add(1, Ordering::SeqCst);
                Ok(ctx.no_content())
            })
            .await
            .unwrap();
        }

        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }
}
