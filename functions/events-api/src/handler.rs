//! The route table of `events-api` and the request-to-use-case glue, with its tests.

use evently_shared::app::events::{self, ChangeError, ReadSource};
use evently_shared::domain::{
    Capacity, Description, EventDraft, EventId, EventPatch, FieldError, FieldErrors, Schedule,
    SearchQuery, Tag, Tags, Timestamp, Title, UserId, Venue, Visibility,
};
use evently_shared::http::{
    ApiError, Body, JsonObject, KeyScope, QueryParams, Recorded, Request, Response,
    ResponseContext, caller, encode_cursor, idempotent, json_object, optional_caller, request_path,
    serve,
};
use evently_shared::metrics;
use evently_shared::ports::{
    Analytics, Consistency, EventReader, EventStore, Idempotency, PageRequest, RsvpOutcome,
    SearchIndex,
};
use evently_shared::tokens::TokenVerifier;
use lambda_http::http::{HeaderValue, Method, StatusCode, header};
use serde::Serialize;
use serde_json::{Map, Value};

/// The function's dependencies, as ports, so tests can run it against in-memory ones.
pub struct App<S, R, A, X, I> {
    pub store: S,
    pub read_model: R,
    pub analytics: A,
    pub search: X,
    /// `Idempotency-Key` records for POST /events and POST /events/{id}/rsvp.
    pub idempotency: I,
    pub tokens: TokenVerifier,
}

const READ_SOURCE_HEADER: &str = "x-read-source";

const CREATE_FIELDS: &[&str] = &[
    "title",
    "description",
    "starts_at",
    "ends_at",
    "venue",
    "tags",
    "visibility",
    "capacity",
];

#[derive(Serialize)]
struct EventList<'a, T: Serialize> {
    items: &'a [T],
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

impl<S, R, A, X, I> App<S, R, A, X, I>
where
    S: EventStore,
    R: EventReader,
    A: Analytics,
    X: SearchIndex,
    I: Idempotency,
{
    /// Answers one request. Never fails: every error becomes a problem+json response.
    pub async fn handle(&self, request: Request) -> Response<Body> {
        let ctx = ResponseContext::for_request(&request);
        serve(&request, &ctx, self.route(&request, &ctx)).await
    }

    async fn route(
        &self,
        request: &Request,
        ctx: &ResponseContext,
    ) -> Result<Response<Body>, ApiError> {
        let path = request_path(request);
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        match (request.method(), segments.as_slice()) {
            (&Method::POST, ["events"]) => self.create(request, ctx).await,
            (&Method::GET, ["events"]) => self.list(request, ctx).await,
            (_, ["events"]) => Err(ApiError::MethodNotAllowed { allow: "GET, POST" }),
            (&Method::GET, ["events", id]) => self.get(request, ctx, id).await,
            (&Method::PATCH, ["events", id]) => self.patch(request, ctx, id).await,
            (&Method::DELETE, ["events", id]) => self.cancel(request, ctx, id).await,
            (_, ["events", _]) => Err(ApiError::MethodNotAllowed {
                allow: "GET, PATCH, DELETE",
            }),
            (&Method::POST, ["events", id, "rsvp"]) => self.rsvp(request, ctx, id).await,
            (&Method::DELETE, ["events", id, "rsvp"]) => self.unrsvp(request, ctx, id).await,
            (_, ["events", _, "rsvp"]) => Err(ApiError::MethodNotAllowed {
                allow: "POST, DELETE",
            }),
            (&Method::GET, ["me", "rsvps"]) => self.my_rsvps(request, ctx).await,
            (&Method::GET, ["events", id, "stats"]) => self.stats(request, ctx, id).await,
            (_, ["events", _, "stats"]) => Err(ApiError::MethodNotAllowed { allow: "GET" }),
            (&Method::GET, ["analytics", "daily"]) => self.daily(request, ctx).await,
            (_, ["analytics", "daily"]) => Err(ApiError::MethodNotAllowed { allow: "GET" }),
            (_, ["me", "rsvps"]) => Err(ApiError::MethodNotAllowed { allow: "GET" }),
            _ => Err(ApiError::NotFound),
        }
    }

    async fn create(
        &self,
        request: &Request,
        ctx: &ResponseContext,
    ) -> Result<Response<Body>, ApiError> {
        let caller = caller(&self.tokens, request)?;
        let write = async {
            let now = Timestamp::now();
            let draft = parse_draft(json_object(request)?, now)?;
            let (event, envelope) = events::create_event(
                &self.store,
                draft,
                caller.user_id.clone(),
                ctx.correlation_id.clone(),
                now,
            )
            .await
            .map_err(ApiError::internal)?;
            tracing::info!(event_id = %event.id, envelope_id = %envelope.id, "event created");
            metrics::count(
                metrics::name::EVENTS_CREATED,
                Some(ctx.correlation_id.as_str()),
            );
            let mut response = with_etag(ctx.json(StatusCode::CREATED, &event), event.version);
            if let Ok(location) = HeaderValue::from_str(&format!("/events/{}", event.id)) {
                response.headers_mut().insert(header::LOCATION, location);
            }
            Ok(response)
        };
        let keys = KeyScope {
            store: &self.idempotency,
            scope: "POST /events",
            owner: caller.user_id.as_str(),
            pepper: b"",
        };
        idempotent(keys, request, ctx, write).await
    }

    async fn list(
        &self,
        request: &Request,
        ctx: &ResponseContext,
    ) -> Result<Response<Body>, ApiError> {
        let query = QueryParams::parse(request)?;
        let search = search_query(request)?;
        let page = PageRequest {
            after: Timestamp::now(),
            limit: query.limit,
            cursor: query.cursor,
        };
        let (page, source) = if search.is_empty() {
            events::list_events(&self.read_model, &self.store, page)
                .await
                .map_err(ApiError::internal)?
        } else {
            // Search has no fallback: only the read-model table holds its indexes.
            let found = events::search_events(&self.search, &self.read_model, &search, page)
                .await
                .and_then(|found| found.render())
                .map_err(ApiError::internal)?;
            (found, ReadSource::ReadModel)
        };
        let body = EventList {
            items: &page.items,
            next_cursor: page.next.as_ref().map(encode_cursor),
        };
        Ok(with_source(ctx.json(StatusCode::OK, &body), source))
    }

    async fn get(
        &self,
        request: &Request,
        ctx: &ResponseContext,
        raw_id: &str,
    ) -> Result<Response<Body>, ApiError> {
        let id = event_id(raw_id)?;
        let query = QueryParams::parse(request)?;
        let viewer = optional_caller(&self.tokens, request)?;
        let found = events::get_event(
            &self.read_model,
            &self.store,
            &id,
            query.consistency,
            viewer.as_ref().map(|c| &c.user_id),
        )
        .await
        .map_err(ApiError::internal)?;
        let (event, source) = found.ok_or(ApiError::NotFound)?;
        Ok(with_etag(
            with_source(ctx.json(StatusCode::OK, &event.view), source),
            event.version,
        ))
    }

    async fn patch(
        &self,
        request: &Request,
        ctx: &ResponseContext,
        raw_id: &str,
    ) -> Result<Response<Body>, ApiError> {
        let caller = caller(&self.tokens, request)?;
        let id = event_id(raw_id)?;
        let expected = match if_match(request)? {
            Some(expected) => expected,
            None => {
                return Err(ApiError::PreconditionRequired(
                    "send If-Match with the ETag of the version you read",
                ));
            }
        };
        let patch = parse_patch(json_object(request)?)?;
        let event = events::update_event(
            &self.store,
            &id,
            &caller.user_id,
            expected,
            patch,
            ctx.correlation_id.clone(),
            Timestamp::now(),
        )
        .await
        .map_err(change_error)?;
        Ok(with_etag(ctx.json(StatusCode::OK, &event), event.version))
    }

    async fn cancel(
        &self,
        request: &Request,
        ctx: &ResponseContext,
        raw_id: &str,
    ) -> Result<Response<Body>, ApiError> {
        let caller = caller(&self.tokens, request)?;
        let id = event_id(raw_id)?;
        let expected = if_match(request)?.flatten();
        let event = events::cancel_event(
            &self.store,
            &id,
            &caller.user_id,
            expected,
            ctx.correlation_id.clone(),
            Timestamp::now(),
        )
        .await
        .map_err(change_error)?;
        Ok(with_etag(ctx.json(StatusCode::OK, &event), event.version))
    }

    async fn rsvp(
        &self,
        request: &Request,
        ctx: &ResponseContext,
        raw_id: &str,
    ) -> Result<Response<Body>, ApiError> {
        let caller = caller(&self.tokens, request)?;
        let write = async {
            let id = event_id(raw_id)?;
            let (outcome, rsvp) = events::rsvp(
                &self.store,
                &id,
                &caller.user_id,
                ctx.correlation_id.clone(),
                Timestamp::now(),
            )
            .await
            .map_err(change_error)?;
            let status = match outcome {
                RsvpOutcome::Created => StatusCode::CREATED,
                RsvpOutcome::AlreadyGoing => StatusCode::OK,
            };
            Ok(ctx.json(status, &rsvp))
        };
        let keys = KeyScope {
            store: &self.idempotency,
            scope: "POST /events/{id}/rsvp",
            owner: caller.user_id.as_str(),
            pepper: b"",
        };
        idempotent(keys, request, ctx, write).await
    }

    async fn unrsvp(
        &self,
        request: &Request,
        ctx: &ResponseContext,
        raw_id: &str,
    ) -> Result<Response<Body>, ApiError> {
        let caller = caller(&self.tokens, request)?;
        let id = event_id(raw_id)?;
        let removed = events::cancel_rsvp(
            &self.store,
            &id,
            &caller.user_id,
            ctx.correlation_id.clone(),
            Timestamp::now(),
        )
        .await
        .map_err(change_error)?;
        tracing::info!(removed, "rsvp withdrawn");
        Ok(ctx.no_content())
    }

    async fn my_rsvps(
        &self,
        request: &Request,
        ctx: &ResponseContext,
    ) -> Result<Response<Body>, ApiError> {
        let caller = caller(&self.tokens, request)?;
        let query = QueryParams::parse(request)?;
        let events = events::my_rsvps(&self.store, &caller.user_id, Timestamp::now(), query.limit)
            .await
            .map_err(ApiError::internal)?;
        let body = EventList {
            items: &events,
            next_cursor: None,
        };
        Ok(ctx.json(StatusCode::OK, &body))
    }
}

impl<S, R, A, X, I> App<S, R, A, X, I>
where
    S: EventStore,
    R: EventReader,
    A: Analytics,
    X: SearchIndex,
    I: Idempotency,
{
    async fn stats(
        &self,
        request: &Request,
        ctx: &ResponseContext,
        raw_id: &str,
    ) -> Result<Response<Body>, ApiError> {
        let caller = caller(&self.tokens, request)?;
        let id = event_id(raw_id)?;
        let event = self
            .store
            .get(&id, Consistency::Eventual)
            .await
            .map_err(ApiError::internal)?
            .filter(|e| e.is_visible_to(Some(&caller.user_id)))
            .ok_or(ApiError::NotFound)?;
        if event.organizer_id != caller.user_id {
            return Err(ApiError::Forbidden(
                "only the organizer may see an event's stats",
            ));
        }
        let stats = self
            .analytics
            .event_stats(&id)
            .await
            .map_err(ApiError::internal)?;
        Ok(ctx.json(
            StatusCode::OK,
            &serde_json::json!({
                "event_id": id,
                "going": stats.going,
                "rsvps_created": stats.rsvps_created,
                "rsvps_cancelled": stats.rsvps_cancelled,
            }),
        ))
    }

    async fn daily(
        &self,
        request: &Request,
        ctx: &ResponseContext,
    ) -> Result<Response<Body>, ApiError> {
        let caller = caller(&self.tokens, request)?;
        if !caller.has_role("admin") {
            return Err(ApiError::Forbidden("daily analytics are for admins"));
        }
        let (from, to) = date_range(request)?;
        let days = self
            .analytics
            .daily(&from, &to)
            .await
            .map_err(ApiError::internal)?;
        Ok(ctx.json(
            StatusCode::OK,
            &serde_json::json!({ "from": from, "to": to, "days": days }),
        ))
    }
}

/// The search parameters of GET /events: `q`, `tag`, `organizer`, `from`, `to`.
fn search_query(request: &Request) -> Result<SearchQuery, ApiError> {
    use lambda_http::RequestExt;
    let params = request.query_string_parameters();
    let mut errors = FieldErrors::default();
    let mut query = SearchQuery::default();
    if let Some((words, prefix)) = params
        .first("q")
        .and_then(|raw| errors.collect(SearchQuery::parse_q(raw)))
    {
        query.words = words;
        query.prefix = prefix;
    }
    if let Some(raw) = params.first("tag") {
        query.tag = errors.collect(Tag::parse("tag", raw));
    }
    if let Some(raw) = params.first("organizer") {
        query.organizer = errors.collect(UserId::parse("organizer", raw));
    }
    if let Some(raw) = params.first("from") {
        query.from = errors.collect(Timestamp::parse("from", raw));
    }
    if let Some(raw) = params.first("to") {
        query.to = errors.collect(Timestamp::parse("to", raw));
    }
    if query.from.zip(query.to).is_some_and(|(from, to)| from > to) {
        errors.push(FieldError::new("from", "must not be after to"));
    }
    if errors.is_empty() {
        Ok(query)
    } else {
        Err(errors.into())
    }
}

/// The longest range GET /analytics/daily answers, in days.
const MAX_DAYS: i64 = 92;

/// `from` and `to` (`YYYY-MM-DD`, inclusive); by default the last seven days.
fn date_range(request: &Request) -> Result<(String, String), ApiError> {
    use lambda_http::RequestExt;
    let query = request.query_string_parameters();
    let parse = |field: &'static str| -> Result<Option<chrono::NaiveDate>, FieldError> {
        query
            .first(field)
            .map(|raw| {
                chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d")
                    .map_err(|_| FieldError::new(field, "must be a date like 2027-03-01"))
            })
            .transpose()
    };
    let mut errors = FieldErrors::default();
    let to = errors.collect(parse("to")).flatten();
    let from = errors.collect(parse("from")).flatten();
    if !errors.is_empty() {
        return Err(errors.into());
    }
    let to = to.unwrap_or_else(|| chrono::Utc::now().date_naive());
    let from = from.unwrap_or(to - chrono::Duration::days(6));
    if from > to {
        return Err(FieldError::new("from", "must not be after to").into());
    }
    if (to - from).num_days() >= MAX_DAYS {
        return Err(
            FieldError::new("from", format!("the range is at most {MAX_DAYS} days")).into(),
        );
    }
    Ok((from.to_string(), to.to_string()))
}

/// The event id in a path. A malformed id cannot name an event: same answer as an unknown one.
fn event_id(raw: &str) -> Result<EventId, ApiError> {
    EventId::parse("id", raw).map_err(|_| ApiError::NotFound)
}

/// The one place that turns a refused change into an HTTP answer.
fn change_error(error: ChangeError) -> ApiError {
    match error {
        ChangeError::NotFound => ApiError::NotFound,
        ChangeError::Forbidden => ApiError::Forbidden("only the organizer may change this event"),
        ChangeError::Stale { current } => ApiError::PreconditionFailed(format!(
            "the event is now at version {current}; read it again and retry"
        )),
        ChangeError::Conflict(detail) => ApiError::Conflict(detail.to_owned()),
        ChangeError::Invalid(error) => error.into(),
        ChangeError::Store(error) => ApiError::internal(error),
    }
}

/// The strong validator of an event's representation: its version.
fn with_etag(mut response: Response<Body>, version: u64) -> Response<Body> {
    if let Ok(value) = HeaderValue::from_str(&format!("\"{version}\"")) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// `If-Match`: `None` if absent, `Some(None)` for `*`, `Some(Some(v))` for one strong ETag.
/// Weak or malformed validators cannot match a strong comparison: 412.
fn if_match(request: &Request) -> Result<Option<Option<u64>>, ApiError> {
    let Some(value) = request.headers().get(header::IF_MATCH) else {
        return Ok(None);
    };
    let raw = value.to_str().unwrap_or_default().trim();
    if raw == "*" {
        return Ok(Some(None));
    }
    raw.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .and_then(|v| v.parse::<u64>().ok())
        .map(|v| Some(Some(v)))
        .ok_or_else(|| {
            ApiError::PreconditionFailed("If-Match must be one strong ETag such as \"3\"".into())
        })
}

fn with_source(mut response: Response<Body>, source: ReadSource) -> Response<Body> {
    response.headers_mut().insert(
        READ_SOURCE_HEADER,
        HeaderValue::from_static(source.as_str()),
    );
    response
}

/// The POST /events body, parsed into a draft; every violation is reported, by field.
fn parse_draft(body: Map<String, Value>, now: Timestamp) -> Result<EventDraft, FieldErrors> {
    let mut object = JsonObject::new(body, CREATE_FIELDS);

    let title = object
        .required_str("title")
        .and_then(|raw| object.errors().collect(Title::parse("title", &raw)));
    let description = match object.optional_str("description") {
        Ok(raw) => object.errors().collect(Description::parse(
            "description",
            raw.as_deref().unwrap_or(""),
        )),
        Err(Recorded) => None,
    };
    let venue = object
        .required_str("venue")
        .and_then(|raw| object.errors().collect(Venue::parse("venue", &raw)));
    let starts_at = object
        .required_str("starts_at")
        .and_then(|raw| object.errors().collect(Timestamp::parse("starts_at", &raw)));
    let ends_at = object
        .required_str("ends_at")
        .and_then(|raw| object.errors().collect(Timestamp::parse("ends_at", &raw)));
    let schedule = match (starts_at, ends_at) {
        (Some(starts_at), Some(ends_at)) => object
            .errors()
            .collect(Schedule::upcoming(starts_at, ends_at, now)),
        _ => None,
    };
    let tags = match object.optional_str_list("tags") {
        Ok(raw) => match parse_tags(raw.unwrap_or_default()) {
            Ok(tags) => Some(tags),
            Err(errors) => {
                for error in errors.into_vec() {
                    object.errors().push(error);
                }
                None
            }
        },
        Err(Recorded) => None,
    };
    let visibility = match object.optional_str("visibility") {
        Ok(None) => Some(Visibility::Public),
        Ok(Some(raw)) => object
            .errors()
            .collect(Visibility::parse("visibility", &raw)),
        Err(Recorded) => None,
    };
    let capacity = match object.optional_u64("capacity") {
        Ok(None) => Some(None),
        Ok(Some(n)) => object
            .errors()
            .collect(Capacity::new("capacity", n).map(Some)),
        Err(Recorded) => None,
    };

    object.finish()?;
    match (
        title,
        description,
        schedule,
        venue,
        tags,
        visibility,
        capacity,
    ) {
        (
            Some(title),
            Some(description),
            Some(schedule),
            Some(venue),
            Some(tags),
            Some(visibility),
            Some(capacity),
        ) => Ok(EventDraft {
            title,
            description,
            schedule,
            venue,
            tags,
            visibility,
            capacity,
        }),
        // Every `None` above recorded an error, so `finish` has already returned them; this
        // arm only keeps a future slip from becoming a panic.
        _ => Err(FieldError::new("body", "is invalid").into()),
    }
}

/// The PATCH /events/{id} body: any subset of the creation fields; `capacity: null` removes
/// the limit. Schedule rules are checked against the merged result, in the domain.
fn parse_patch(body: Map<String, Value>) -> Result<EventPatch, FieldErrors> {
    let mut object = JsonObject::new(body, CREATE_FIELDS);
    let mut patch = EventPatch::default();
    if let Ok(Some(raw)) = object.optional_str("title") {
        patch.title = object.errors().collect(Title::parse("title", &raw));
    }
    if let Ok(Some(raw)) = object.optional_str("description") {
        patch.description = object
            .errors()
            .collect(Description::parse("description", &raw));
    }
    if let Ok(Some(raw)) = object.optional_str("venue") {
        patch.venue = object.errors().collect(Venue::parse("venue", &raw));
    }
    if let Ok(Some(raw)) = object.optional_str("starts_at") {
        patch.starts_at = object.errors().collect(Timestamp::parse("starts_at", &raw));
    }
    if let Ok(Some(raw)) = object.optional_str("ends_at") {
        patch.ends_at = object.errors().collect(Timestamp::parse("ends_at", &raw));
    }
    if let Ok(Some(raw)) = object.optional_str("visibility") {
        patch.visibility = object
            .errors()
            .collect(Visibility::parse("visibility", &raw));
    }
    if let Ok(Some(raw)) = object.optional_str_list("tags") {
        match parse_tags(raw) {
            Ok(tags) => patch.tags = Some(tags),
            Err(errors) => {
                for error in errors.into_vec() {
                    object.errors().push(error);
                }
            }
        }
    }
    match object.nullable_u64("capacity") {
        Ok(Some(None)) => patch.capacity = Some(None),
        Ok(Some(Some(n))) => {
            patch.capacity = object
                .errors()
                .collect(Capacity::new("capacity", n))
                .map(Some);
        }
        Ok(None) | Err(Recorded) => {}
    }
    object.finish()?;
    Ok(patch)
}

fn parse_tags(raw: Vec<String>) -> Result<Tags, FieldErrors> {
    if raw.len() > Tags::MAX {
        return Err(
            FieldError::new("tags", format!("must hold at most {} tags", Tags::MAX)).into(),
        );
    }
    let mut errors = FieldErrors::default();
    let tags: Vec<Tag> = raw
        .iter()
        .enumerate()
        .filter_map(|(i, tag)| errors.collect(Tag::parse(&format!("tags[{i}]"), tag)))
        .collect();
    if !errors.is_empty() {
        return Err(errors);
    }
    Tags::new(tags).map_err(FieldErrors::from)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use evently_shared::domain::Event;
    use evently_shared::envelope::DomainEvent;
    use evently_shared::fakes::{
        InMemoryAnalytics, InMemoryEvents, InMemoryIdempotency, InMemorySearch, Unavailable,
        schema_violations, test_keys,
    };
    use evently_shared::ports::{Claim, ReadModel};
    use evently_shared::tokens::TokenSigner;
    use lambda_http::RequestExt;
    use lambda_http::http;
    use serde_json::json;

    use super::*;

    const ISSUER: &str = "https://auth.evently.test";
    const AUDIENCE: &str = "evently-api";

    struct Harness<R, S = InMemoryEvents> {
        app: App<S, R, InMemoryAnalytics, InMemorySearch, InMemoryIdempotency>,
        signer: TokenSigner,
    }

    fn harness_with<R>(read_model: R) -> Harness<R> {
        harness_of(InMemoryEvents::default(), read_model)
    }

    fn harness_of<S, R>(store: S, read_model: R) -> Harness<R, S> {
        let (signer, config) = test_keys(ISSUER, AUDIENCE);
        Harness {
            app: App {
                store,
                read_model,
                analytics: InMemoryAnalytics::default(),
                search: InMemorySearch::default(),
                idempotency: InMemoryIdempotency::default(),
                tokens: TokenVerifier::new(&config).unwrap(),
            },
            signer,
        }
    }

    fn harness() -> Harness<InMemoryEvents> {
        harness_with(InMemoryEvents::default())
    }

    impl<R, S> Harness<R, S> {
        fn token(&self, sub: &str) -> String {
            let user = UserId::parse("sub", sub).unwrap();
            self.signer
                .issue(&user, chrono::Utc::now().timestamp())
                .token
        }
    }

    fn in_days(days: i64, hours: i64) -> String {
        Timestamp::now()
            .plus_seconds(days * 86_400 + hours * 3_600)
            .to_string()
    }

    fn valid_body() -> Value {
        json!({
            "title": "Rust & Lambda night",
            "description": "Talks and pizza",
            "starts_at": in_days(7, 0),
            "ends_at": in_days(7, 3),
            "venue": "Town hall",
            "tags": ["rust", "aws-lambda"],
            "visibility": "public",
            "capacity": 40
        })
    }

    fn post(token: Option<&str>, body: &Value) -> Request {
        let mut builder = http::Request::builder()
            .method("POST")
            .uri("/events")
            .header("content-type", "application/json")
            .header("x-correlation-id", "test-corr-1");
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        builder.body(Body::Text(body.to_string())).unwrap()
    }

    fn get(uri: &str, query: &[(&str, &str)], token: Option<&str>) -> Request {
        let mut builder = http::Request::builder().method("GET").uri(uri);
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        let params: HashMap<String, String> = query
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        builder
            .body(Body::Empty)
            .unwrap()
            .with_query_string_parameters(params)
    }

    fn json_of(response: &Response<Body>) -> Value {
        match response.body() {
            Body::Text(text) => serde_json::from_str(text).unwrap(),
            other => panic!("expected a text body, got {other:?}"),
        }
    }

    fn header<'a>(response: &'a Response<Body>, name: &str) -> &'a str {
        response.headers().get(name).unwrap().to_str().unwrap()
    }

    fn problem_fields(response: &Response<Body>) -> Vec<String> {
        assert_eq!(header(response, "content-type"), "application/problem+json");
        json_of(response)["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap().to_owned())
            .collect()
    }

    async fn create<R: EventReader>(h: &Harness<R>, sub: &str, body: Value) -> Event {
        let response = h.app.handle(post(Some(&h.token(sub)), &body)).await;
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "{:?}",
            response.body()
        );
        serde_json::from_value(json_of(&response)).unwrap()
    }

    #[tokio::test]
    async fn create_event_returns_201_with_location_and_writes_the_outbox() {
        let h = harness();

        let response = h
            .app
            .handle(post(Some(&h.token("user-1")), &valid_body()))
            .await;

        assert_eq!(response.status(), StatusCode::CREATED);
        let body = json_of(&response);
        let id = body["id"].as_str().unwrap();
        assert_eq!(header(&response, "location"), format!("/events/{id}"));
        assert_eq!(header(&response, "x-correlation-id"), "test-corr-1");
        assert_eq!(body["organizer_id"], "user-1");
        assert_eq!(body["version"], 1);
        let outbox = h.app.store.outbox();
        assert_eq!(outbox.len(), 1);
        assert_eq!(outbox[0].event_type, "evently.event.created.v1");
        assert_eq!(outbox[0].subject, id);
        assert_eq!(outbox[0].correlationid.as_str(), "test-corr-1");
        assert_eq!(outbox[0].data.to_value(), body);
        let violations = schema_violations(&serde_json::to_value(&outbox[0]).unwrap());
        assert!(violations.is_empty(), "{violations:?}");
    }

    #[tokio::test]
    async fn create_event_without_a_token_is_401_with_a_bearer_challenge() {
        let h = harness();

        let response = h.app.handle(post(None, &valid_body())).await;

        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(header(&response, "www-authenticate").starts_with("Bearer"));
        assert_eq!(
            header(&response, "content-type"),
            "application/problem+json"
        );
        assert!(h.app.store.events().is_empty());
    }

    #[tokio::test]
    async fn create_event_with_a_token_from_another_key_is_401() {
        let h = harness();
        let (other_signer, _) = test_keys(ISSUER, AUDIENCE);
        let user = UserId::parse("sub", "user-1").unwrap();
        let forged = other_signer
            .issue(&user, chrono::Utc::now().timestamp())
            .token;

        let response = h.app.handle(post(Some(&forged), &valid_body())).await;

        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn create_event_names_every_invalid_field() {
        let h = harness();
        let body = json!({
            "title": "",
            "starts_at": "tomorrow",
            "ends_at": in_days(1, 0),
            "venue": 42,
            "tags": ["Rust", "ok", "-bad"],
            "visibility": "secret",
            "capacity": 0
        });

        let response = h.app.handle(post(Some(&h.token("user-1")), &body)).await;

        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let mut fields = problem_fields(&response);
        fields.sort();
        assert_eq!(
            fields,
            [
                "capacity",
                "starts_at",
                "tags[0]",
                "tags[2]",
                "title",
                "venue",
                "visibility"
            ]
        );
    }

    #[tokio::test]
    async fn create_event_rejects_fields_the_server_owns() {
        let h = harness();
        let mut body = valid_body();
        body["organizer_id"] = json!("someone-else");
        body["version"] = json!(9);

        let response = h.app.handle(post(Some(&h.token("user-1")), &body)).await;

        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(problem_fields(&response), ["organizer_id", "version"]);
        assert!(h.app.store.events().is_empty());
    }

    #[tokio::test]
    async fn create_event_rejects_a_start_in_the_past_and_an_end_before_the_start() {
        let h = harness();
        let mut past = valid_body();
        past["starts_at"] = json!(in_days(-1, 0));
        let mut backwards = valid_body();
        backwards["ends_at"] = json!(in_days(6, 0));

        let past = h.app.handle(post(Some(&h.token("u")), &past)).await;
        let backwards = h.app.handle(post(Some(&h.token("u")), &backwards)).await;

        assert_eq!(problem_fields(&past), ["starts_at"]);
        assert_eq!(problem_fields(&backwards), ["ends_at"]);
    }

    #[tokio::test]
    async fn create_event_rejects_eleven_tags() {
        let h = harness();
        let mut body = valid_body();
        body["tags"] = json!((0..11).map(|i| format!("t{i}")).collect::<Vec<_>>());

        let response = h.app.handle(post(Some(&h.token("u")), &body)).await;

        assert_eq!(problem_fields(&response), ["tags"]);
    }

    #[tokio::test]
    async fn list_events_serves_upcoming_public_events_in_start_order_with_a_cursor() {
        let h = harness();
        let mut created = Vec::new();
        for day in [5, 3, 4] {
            let mut body = valid_body();
            body["starts_at"] = json!(in_days(day, 0));
            body["ends_at"] = json!(in_days(day, 2));
            created.push(create(&h, "user-1", body).await);
        }
        let mut private = valid_body();
        private["visibility"] = json!("private");
        created.push(create(&h, "user-1", private).await);
        for event in &created {
            h.app.read_model.apply(event).await.unwrap();
        }

        let first = h.app.handle(get("/events", &[("limit", "2")], None)).await;
        let cursor = json_of(&first)["next_cursor"].as_str().unwrap().to_owned();
        let second = h
            .app
            .handle(get("/events", &[("limit", "2"), ("cursor", &cursor)], None))
            .await;

        assert_eq!(header(&first, "x-read-source"), "read-model");
        let titles_by_start: Vec<String> = [&first, &second]
            .iter()
            .flat_map(|r| json_of(r)["items"].as_array().unwrap().clone())
            .map(|e| e["starts_at"].as_str().unwrap().to_owned())
            .collect();
        let mut expected: Vec<String> = created[..3]
            .iter()
            .map(|e| e.starts_at.to_string())
            .collect();
        expected.sort();
        assert_eq!(titles_by_start, expected);
        assert!(json_of(&second).get("next_cursor").is_none());
    }

    #[tokio::test]
    async fn list_events_falls_back_to_the_events_table_when_the_read_model_is_down() {
        let h = harness_with(Unavailable);
        let event = create(&h, "user-1", valid_body()).await;

        let response = h.app.handle(get("/events", &[], None)).await;

        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "x-read-source"), "primary");
        assert_eq!(json_of(&response)["items"][0]["id"], event.id.to_string());
    }

    #[tokio::test]
    async fn a_store_outage_is_an_opaque_500_problem_carrying_only_the_correlation_id() {
        let h = harness_of(Unavailable, InMemoryEvents::default());

        let response = h
            .app
            .handle(post(Some(&h.token("user-1")), &valid_body()))
            .await;

        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            header(&response, "content-type"),
            "application/problem+json"
        );
        let problem = json_of(&response);
        assert_eq!(
            problem,
            json!({
                "type": "/problems/internal",
                "title": "Internal error",
                "status": 500,
                "correlation_id": "test-corr-1",
            }),
            "the cause belongs in the log, not in the answer"
        );
    }

    #[tokio::test]
    async fn list_events_rejects_a_limit_out_of_range_and_a_forged_cursor() {
        let h = harness();
        for (name, value) in [
            ("limit", "0"),
            ("limit", "101"),
            ("limit", "-5"),
            ("limit", "99999999999"),
            ("cursor", "abc"),
        ] {
            let response = h.app.handle(get("/events", &[(name, value)], None)).await;
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{name}={value}");
            assert_eq!(problem_fields(&response), [name]);
        }
    }

    #[tokio::test]
    async fn get_event_reads_the_events_table_when_asked_for_strong_consistency() {
        let h = harness();
        let event = create(&h, "user-1", valid_body()).await;
        h.app.read_model.apply(&event).await.unwrap();
        let uri = format!("/events/{}", event.id);

        let default = h.app.handle(get(&uri, &[], None)).await;
        let strong = h
            .app
            .handle(get(&uri, &[("consistency", "strong")], None))
            .await;

        assert_eq!(header(&default, "x-read-source"), "read-model");
        assert_eq!(header(&strong, "x-read-source"), "primary");
        assert_eq!(json_of(&strong)["id"], event.id.to_string());
    }

    #[tokio::test]
    async fn get_event_shows_a_private_event_only_to_its_organizer() {
        let h = harness();
        let mut body = valid_body();
        body["visibility"] = json!("private");
        let event = create(&h, "owner", body).await;
        let uri = format!("/events/{}", event.id);

        let owner = h.app.handle(get(&uri, &[], Some(&h.token("owner")))).await;
        let stranger = h
            .app
            .handle(get(&uri, &[], Some(&h.token("stranger"))))
            .await;
        let anonymous = h.app.handle(get(&uri, &[], None)).await;

        assert_eq!(owner.status(), StatusCode::OK);
        assert_eq!(stranger.status(), StatusCode::NOT_FOUND);
        assert_eq!(anonymous.status(), StatusCode::NOT_FOUND);
        assert_eq!(json_of(&stranger), {
            let mut unknown = json_of(
                &h.app
                    .handle(get("/events/01ARZ3NDEKTSV4RRFFQ69G5FAV", &[], None))
                    .await,
            );
            unknown["correlation_id"] = json_of(&stranger)["correlation_id"].clone();
            unknown
        });
    }

    #[tokio::test]
    async fn unknown_routes_and_methods_get_problems() {
        let h = harness();
        let missing = h.app.handle(get("/nope", &[], None)).await;
        let wrong_method = h
            .app
            .handle(
                http::Request::builder()
                    .method("DELETE")
                    .uri("/events")
                    .body(Body::Empty)
                    .unwrap(),
            )
            .await;

        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        assert_eq!(wrong_method.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(header(&wrong_method, "allow"), "GET, POST");
    }

    fn with_method(
        method: &str,
        uri: &str,
        token: &str,
        if_match: Option<&str>,
        body: Option<Value>,
    ) -> Request {
        let mut builder = http::Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json");
        if let Some(tag) = if_match {
            builder = builder.header("if-match", tag);
        }
        let body = body
            .map(|b| Body::Text(b.to_string()))
            .unwrap_or(Body::Empty);
        builder.body(body).unwrap()
    }

    #[tokio::test]
    async fn patch_requires_if_match_and_refuses_a_stale_one() {
        let h = harness();
        let event = create(&h, "owner", valid_body()).await;
        let uri = format!("/events/{}", event.id);
        let change = json!({ "venue": "Library" });

        let missing = h
            .app
            .handle(with_method(
                "PATCH",
                &uri,
                &h.token("owner"),
                None,
                Some(change.clone()),
            ))
            .await;
        let stale = h
            .app
            .handle(with_method(
                "PATCH",
                &uri,
                &h.token("owner"),
                Some("\"7\""),
                Some(change.clone()),
            ))
            .await;
        let weak = h
            .app
            .handle(with_method(
                "PATCH",
                &uri,
                &h.token("owner"),
                Some("W/\"1\""),
                Some(change),
            ))
            .await;

        assert_eq!(missing.status(), StatusCode::PRECONDITION_REQUIRED);
        assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
        assert_eq!(weak.status(), StatusCode::PRECONDITION_FAILED);
        assert_eq!(
            h.app.store.outbox().len(),
            1,
            "nothing but the creation was announced"
        );
    }

    #[tokio::test]
    async fn patch_by_the_organizer_bumps_the_version_and_announces_what_changed() {
        let h = harness();
        let event = create(&h, "owner", valid_body()).await;
        let uri = format!("/events/{}", event.id);

        let response = h
            .app
            .handle(with_method(
                "PATCH",
                &uri,
                &h.token("owner"),
                Some("\"1\""),
                Some(json!({ "venue": "Library", "capacity": null })),
            ))
            .await;

        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "etag"), "\"2\"");
        let body = json_of(&response);
        assert_eq!(body["venue"], "Library");
        assert!(body.get("capacity").is_none());
        let outbox = h.app.store.outbox();
        let update = outbox.last().unwrap();
        assert_eq!(update.event_type, "evently.event.updated.v1");
        assert_eq!(update.entityversion, 2);
        assert_eq!(
            update.data.to_value()["changed"],
            json!(["venue", "capacity"])
        );
        let violations = schema_violations(&serde_json::to_value(update).unwrap());
        assert!(violations.is_empty(), "{violations:?}");
    }

    #[tokio::test]
    async fn only_the_organizer_may_change_an_event() {
        let h = harness();
        let public = create(&h, "owner", valid_body()).await;
        let mut private_body = valid_body();
        private_body["visibility"] = json!("private");
        let private = create(&h, "owner", private_body).await;
        let change = Some(json!({ "title": "Mine now" }));

        let on_public = h
            .app
            .handle(with_method(
                "PATCH",
                &format!("/events/{}", public.id),
                &h.token("intruder"),
                Some("\"1\""),
                change.clone(),
            ))
            .await;
        let on_private = h
            .app
            .handle(with_method(
                "PATCH",
                &format!("/events/{}", private.id),
                &h.token("intruder"),
                Some("\"1\""),
                change,
            ))
            .await;
        let cancel = h
            .app
            .handle(with_method(
                "DELETE",
                &format!("/events/{}", public.id),
                &h.token("intruder"),
                None,
                None,
            ))
            .await;

        assert_eq!(on_public.status(), StatusCode::FORBIDDEN);
        assert_eq!(on_private.status(), StatusCode::NOT_FOUND);
        assert_eq!(cancel.status(), StatusCode::FORBIDDEN);
    }

    #[tokio::test]
    async fn cancelling_keeps_the_event_hides_it_from_listings_and_announces_it_once() {
        let h = harness();
        let event = create(&h, "owner", valid_body()).await;
        let uri = format!("/events/{}", event.id);

        let first = h
            .app
            .handle(with_method("DELETE", &uri, &h.token("owner"), None, None))
            .await;
        let again = h
            .app
            .handle(with_method("DELETE", &uri, &h.token("owner"), None, None))
            .await;
        for envelope in h.app.store.outbox() {
            if let Ok(DomainEvent::EventCancelled(cancelled)) = envelope.domain_event() {
                h.app.read_model.apply(&cancelled).await.unwrap();
            }
        }
        let listing = h.app.handle(get("/events", &[], None)).await;
        let single = h.app.handle(get(&uri, &[], None)).await;

        assert_eq!(json_of(&first)["status"], "cancelled");
        assert_eq!(again.status(), StatusCode::OK);
        let cancellations = h
            .app
            .store
            .outbox()
            .iter()
            .filter(|e| e.event_type == "evently.event.cancelled.v1")
            .count();
        assert_eq!(cancellations, 1);
        assert!(json_of(&listing)["items"].as_array().unwrap().is_empty());
        assert_eq!(json_of(&single)["status"], "cancelled");
        let patch = h
            .app
            .handle(with_method(
                "PATCH",
                &uri,
                &h.token("owner"),
                Some("*"),
                Some(json!({ "title": "Back on" })),
            ))
            .await;
        assert_eq!(patch.status(), StatusCode::CONFLICT);
    }

    #[tokio::test]
    async fn rsvp_is_idempotent_and_respects_capacity() {
        let h = harness();
        let mut body = valid_body();
        body["capacity"] = json!(1);
        let event = create(&h, "owner", body).await;
        let uri = format!("/events/{}/rsvp", event.id);

        let first = h
            .app
            .handle(with_method("POST", &uri, &h.token("ada"), None, None))
            .await;
        let repeat = h
            .app
            .handle(with_method("POST", &uri, &h.token("ada"), None, None))
            .await;
        let full = h
            .app
            .handle(with_method("POST", &uri, &h.token("bob"), None, None))
            .await;
        let withdraw = h
            .app
            .handle(with_method("DELETE", &uri, &h.token("ada"), None, None))
            .await;
        let now_free = h
            .app
            .handle(with_method("POST", &uri, &h.token("bob"), None, None))
            .await;

        assert_eq!(first.status(), StatusCode::CREATED);
        assert_eq!(repeat.status(), StatusCode::OK);
        assert_eq!(full.status(), StatusCode::CONFLICT);
        assert_eq!(withdraw.status(), StatusCode::NO_CONTENT);
        assert_eq!(now_free.status(), StatusCode::CREATED);
        let types: Vec<String> = h
            .app
            .store
            .outbox()
            .iter()
            .map(|e| e.event_type.clone())
            .collect();
        assert_eq!(
            types
                .iter()
                .filter(|t| *t == "evently.rsvp.created.v1")
                .count(),
            2
        );
        assert_eq!(
            types
                .iter()
                .filter(|t| *t == "evently.rsvp.cancelled.v1")
                .count(),
            1
        );
        for envelope in h.app.store.outbox() {
            assert!(schema_violations(&serde_json::to_value(&envelope).unwrap()).is_empty());
        }
    }

    #[tokio::test]
    async fn rsvp_to_a_cancelled_event_is_a_conflict() {
        let h = harness();
        let event = create(&h, "owner", valid_body()).await;
        h.app
            .handle(with_method(
                "DELETE",
                &format!("/events/{}", event.id),
                &h.token("owner"),
                None,
                None,
            ))
            .await;

        let response = h
            .app
            .handle(with_method(
                "POST",
                &format!("/events/{}/rsvp", event.id),
                &h.token("ada"),
                None,
                None,
            ))
            .await;

        assert_eq!(response.status(), StatusCode::CONFLICT);
    }

    #[tokio::test]
    async fn my_rsvps_lists_upcoming_events_by_start() {
        let h = harness();
        let mut later = valid_body();
        later["starts_at"] = json!(in_days(9, 0));
        later["ends_at"] = json!(in_days(9, 2));
        let second = create(&h, "owner", later).await;
        let first = create(&h, "owner", valid_body()).await;
        for event in [&second, &first] {
            h.app
                .handle(with_method(
                    "POST",
                    &format!("/events/{}/rsvp", event.id),
                    &h.token("ada"),
                    None,
                    None,
                ))
                .await;
        }

        let response = h
            .app
            .handle(with_method("GET", "/me/rsvps", &h.token("ada"), None, None))
            .await;

        assert_eq!(
            listed_ids(&response),
            [first.id.to_string(), second.id.to_string()]
        );
    }

    #[tokio::test]
    async fn stats_are_for_the_organizer_and_daily_analytics_for_admins() {
        let h = harness();
        let event = create(&h, "owner", valid_body()).await;
        let uri = format!("/events/{}/stats", event.id);
        let admin = h
            .signer
            .issue_with_roles(
                &UserId::parse("sub", "boss").unwrap(),
                &["admin".to_owned()],
                chrono::Utc::now().timestamp(),
            )
            .token;

        let owner = h
            .app
            .handle(with_method("GET", &uri, &h.token("owner"), None, None))
            .await;
        let stranger = h
            .app
            .handle(with_method("GET", &uri, &h.token("stranger"), None, None))
            .await;
        let daily_user = h
            .app
            .handle(with_method(
                "GET",
                "/analytics/daily",
                &h.token("owner"),
                None,
                None,
            ))
            .await;
        let daily_admin = h
            .app
            .handle(with_method("GET", "/analytics/daily", &admin, None, None))
            .await;

        assert_eq!(owner.status(), StatusCode::OK);
        assert_eq!(json_of(&owner)["going"], 0);
        assert_eq!(stranger.status(), StatusCode::FORBIDDEN);
        assert_eq!(daily_user.status(), StatusCode::FORBIDDEN);
        assert_eq!(daily_admin.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn a_bad_date_range_names_the_field() {
        let h = harness();
        let admin = h
            .signer
            .issue_with_roles(
                &UserId::parse("sub", "boss").unwrap(),
                &["admin".to_owned()],
                chrono::Utc::now().timestamp(),
            )
            .token;
        let request = |query: &[(&str, &str)]| {
            let params: HashMap<String, String> = query
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            with_method("GET", "/analytics/daily", &admin, None, None)
                .with_query_string_parameters(params)
        };

        let bad = h.app.handle(request(&[("from", "yesterday")])).await;
        let backwards = h
            .app
            .handle(request(&[("from", "2027-02-01"), ("to", "2027-01-01")]))
            .await;
        let too_long = h
            .app
            .handle(request(&[("from", "2026-01-01"), ("to", "2027-01-01")]))
            .await;

        assert_eq!(problem_fields(&bad), ["from"]);
        assert_eq!(problem_fields(&backwards), ["from"]);
        assert_eq!(problem_fields(&too_long), ["from"]);
    }

    /// The ids of a listing's events, in order.
    fn listed_ids(response: &Response<Body>) -> Vec<String> {
        json_of(response)["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect()
    }

    #[tokio::test]
    async fn search_combines_words_prefix_tag_and_dates_and_names_bad_parameters() {
        let h = harness();
        let mut cafe = valid_body();
        cafe["title"] = json!("Café Rust meetup");
        cafe["tags"] = json!(["rust"]);
        let cafe = create(&h, "owner", cafe).await;
        let mut other = valid_body();
        other["title"] = json!("Python evening");
        other["tags"] = json!(["python"]);
        let other = create(&h, "owner", other).await;
        for event in [&cafe, &other] {
            h.app.read_model.apply(event).await.unwrap();
            h.app.search.index(event).await.unwrap();
        }

        let by_words = h
            .app
            .handle(get("/events", &[("q", "CAFE ru")], None))
            .await;
        let by_tag = h
            .app
            .handle(get("/events", &[("tag", "python")], None))
            .await;
        let none = h
            .app
            .handle(get("/events", &[("q", "cafe"), ("tag", "python")], None))
            .await;
        let too_late = h
            .app
            .handle(get(
                "/events",
                &[("q", "rust"), ("to", &in_days(1, 0))],
                None,
            ))
            .await;
        let bad = h
            .app
            .handle(get(
                "/events",
                &[("tag", "Not A Slug"), ("from", "soon")],
                None,
            ))
            .await;

        assert_eq!(listed_ids(&by_words), [cafe.id.to_string()]);
        assert_eq!(listed_ids(&by_tag), [other.id.to_string()]);
        assert!(listed_ids(&none).is_empty());
        assert!(listed_ids(&too_late).is_empty());
        let mut fields = problem_fields(&bad);
        fields.sort();
        assert_eq!(fields, ["from", "tag"]);
    }

    #[tokio::test]
    async fn a_search_no_index_partition_narrows_reads_the_listing_and_checks_each_event() {
        // Arrange: two listed events, the later one a day after; the index has neither, so
        // only the listing can answer.
        let h = harness();
        let mut rust = valid_body();
        rust["title"] = json!("The Rust meetup");
        let rust = create(&h, "owner", rust).await;
        let mut python = valid_body();
        python["title"] = json!("Python evening");
        python["starts_at"] = json!(in_days(8, 0));
        python["ends_at"] = json!(in_days(8, 3));
        let python = create(&h, "owner", python).await;
        for event in [&rust, &python] {
            h.app.read_model.apply(event).await.unwrap();
        }
        let window = [("from", in_days(6, 0)), ("to", in_days(9, 0))];
        let window: Vec<(&str, &str)> = window.iter().map(|(k, v)| (*k, v.as_str())).collect();

        // Act
        let short = h.app.handle(get("/events", &[("q", "py")], None)).await;
        let stop_word = h.app.handle(get("/events", &[("q", "the")], None)).await;
        let dates = h.app.handle(get("/events", &window, None)).await;
        let first = h
            .app
            .handle(get(
                "/events",
                &[&window[..], &[("limit", "1")]].concat(),
                None,
            ))
            .await;
        let cursor = json_of(&first)["next_cursor"].as_str().unwrap().to_owned();
        let second = h
            .app
            .handle(get(
                "/events",
                &[&window[..], &[("limit", "1"), ("cursor", &cursor)]].concat(),
                None,
            ))
            .await;
        let too_early = h
            .app
            .handle(get("/events", &[("to", &in_days(6, 0))], None))
            .await;

        // Assert
        assert_eq!(listed_ids(&short), [python.id.to_string()]);
        assert_eq!(listed_ids(&stop_word), [rust.id.to_string()]);
        assert_eq!(
            listed_ids(&dates),
            [rust.id.to_string(), python.id.to_string()]
        );
        assert_eq!(listed_ids(&first), [rust.id.to_string()]);
        assert_eq!(listed_ids(&second), [python.id.to_string()]);
        assert!(listed_ids(&too_early).is_empty());
    }

    async fn post_keyed<R: EventReader>(
        h: &Harness<R>,
        token: &str,
        body: &Value,
        key: &str,
    ) -> Response<Body> {
        h.app.handle(with_key(post(Some(token), body), key)).await
    }

    fn with_key(mut request: Request, key: &str) -> Request {
        request
            .headers_mut()
            .insert("idempotency-key", key.parse().unwrap());
        request
    }

    #[tokio::test]
    async fn a_retried_create_with_the_same_idempotency_key_replays_the_first_response() {
        let h = harness();
        let token = h.token("organizer-1");
        let body = valid_body();

        let first = post_keyed(&h, &token, &body, "k-1").await;
        let retry = post_keyed(&h, &token, &body, "k-1").await;

        assert_eq!(first.status(), StatusCode::CREATED);
        assert_eq!(retry.status(), StatusCode::CREATED);
        assert_eq!(json_of(&retry), json_of(&first));
        assert_eq!(header(&retry, "location"), header(&first, "location"));
        assert_eq!(header(&retry, "etag"), header(&first, "etag"));
        assert_eq!(header(&retry, "idempotent-replayed"), "true");
        assert!(first.headers().get("idempotent-replayed").is_none());
        assert_eq!(h.app.store.events().len(), 1, "one event, not two");
        assert_eq!(h.app.store.outbox().len(), 1, "one EventCreated, not two");
    }

    #[tokio::test]
    async fn an_idempotency_key_reused_with_another_body_is_a_422() {
        let h = harness();
        let token = h.token("organizer-1");
        let mut other = valid_body();
        other["title"] = json!("Another night");

        let first = post_keyed(&h, &token, &valid_body(), "k-2").await;
        let reused = post_keyed(&h, &token, &other, "k-2").await;

        assert_eq!(first.status(), StatusCode::CREATED);
        assert_eq!(reused.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(header(&reused, "content-type"), "application/problem+json");
        assert_eq!(
            json_of(&reused)["type"],
            json!("/problems/idempotency-key-reused")
        );
        assert_eq!(h.app.store.events().len(), 1);
    }

    #[tokio::test]
    async fn a_duplicate_arriving_while_the_first_still_runs_is_a_409() {
        let h = harness();
        let token = h.token("organizer-1");
        let body = valid_body();
        // The first request holds the key: its claim is in progress, its write not yet done.
        let request = with_key(post(Some(&token), &body), "k-3");
        let print = evently_shared::idempotency::fingerprint(&[
            b"POST",
            b"/events",
            request.body().as_ref(),
        ]);
        let now = Timestamp::now();
        h.app
            .idempotency
            .begin(
                Claim::new("POST /events", "organizer-1:k-3").with_fingerprint(&print),
                now,
                now.plus_seconds(30),
            )
            .await
            .unwrap();

        let duplicate = h.app.handle(request).await;

        assert_eq!(duplicate.status(), StatusCode::CONFLICT);
        assert!(
            h.app.store.events().is_empty(),
            "the duplicate wrote nothing"
        );
    }

    #[tokio::test]
    async fn idempotency_keys_belong_to_their_caller() {
        let h = harness();
        let body = valid_body();

        let mine = post_keyed(&h, &h.token("organizer-1"), &body, "same").await;
        let theirs = post_keyed(&h, &h.token("organizer-2"), &body, "same").await;

        assert_eq!(mine.status(), StatusCode::CREATED);
        assert_eq!(theirs.status(), StatusCode::CREATED);
        assert!(theirs.headers().get("idempotent-replayed").is_none());
        assert_ne!(json_of(&mine)["id"], json_of(&theirs)["id"]);
    }

    #[tokio::test]
    async fn a_rejected_body_is_replayed_as_the_same_400() {
        let h = harness();
        let token = h.token("organizer-1");
        let bad = json!({"title": ""});

        let first = post_keyed(&h, &token, &bad, "k-4").await;
        let retry = post_keyed(&h, &token, &bad, "k-4").await;

        assert_eq!(first.status(), StatusCode::BAD_REQUEST);
        assert_eq!(retry.status(), StatusCode::BAD_REQUEST);
        assert_eq!(header(&retry, "idempotent-replayed"), "true");
        assert_eq!(problem_fields(&retry), problem_fields(&first));
    }

    #[tokio::test]
    async fn a_malformed_idempotency_key_is_a_400_naming_the_header() {
        let h = harness();
        let token = h.token("organizer-1");

        let empty = post_keyed(&h, &token, &valid_body(), " ").await;
        let long = post_keyed(&h, &token, &valid_body(), &"k".repeat(256)).await;

        for response in [empty, long] {
            assert_eq!(response.status(), StatusCode::BAD_REQUEST);
            assert_eq!(problem_fields(&response), ["Idempotency-Key"]);
        }
        assert!(h.app.store.events().is_empty());
    }

    #[tokio::test]
    async fn an_id_holding_a_decoded_question_mark_is_routed_as_an_id_not_a_query() {
        use lambda_http::RequestExt;
        let h = harness();
        // What the gateway sends for DELETE /events/%3F%C3%B6%2C when it decodes the raw path.
        let request = http::Request::builder()
            .method("DELETE")
            .uri("/events/")
            .body(Body::Empty)
            .unwrap()
            .with_raw_http_path("/events/?ö,");
        let mut request = request;
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {}", h.token("organizer-1"))
                .parse()
                .unwrap(),
        );

        let response = h.app.handle(request).await;

        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
}
