//! The route table of `events-api` and the request-to-use-case glue, with its tests.

use evently_shared::app::events::{self, ReadSource};
use evently_shared::domain::{
    Capacity, Description, EventDraft, EventId, FieldError, FieldErrors, Schedule, Tag, Tags,
    Timestamp, Title, Venue, Visibility,
};
use evently_shared::http::{
    ApiError, Body, JsonObject, QueryParams, Recorded, Request, Response, ResponseContext, caller,
    encode_cursor, json_object, optional_caller, serve,
};
use evently_shared::ports::{EventReader, EventStore, PageRequest};
use evently_shared::tokens::TokenVerifier;
use lambda_http::http::{HeaderValue, Method, StatusCode, header};
use serde::Serialize;
use serde_json::{Map, Value};

/// The function's dependencies, as ports, so tests can run it against in-memory ones.
pub struct App<S, R> {
    pub store: S,
    pub read_model: R,
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

impl<S: EventStore, R: EventReader> App<S, R> {
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
        let path = request.uri().path();
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        match (request.method(), segments.as_slice()) {
            (&Method::POST, ["events"]) => self.create(request, ctx).await,
            (&Method::GET, ["events"]) => self.list(request, ctx).await,
            (_, ["events"]) => Err(ApiError::MethodNotAllowed { allow: "GET, POST" }),
            (&Method::GET, ["events", id]) => self.get(request, ctx, id).await,
            (_, ["events", _]) => Err(ApiError::MethodNotAllowed { allow: "GET" }),
            _ => Err(ApiError::NotFound),
        }
    }

    async fn create(
        &self,
        request: &Request,
        ctx: &ResponseContext,
    ) -> Result<Response<Body>, ApiError> {
        let caller = caller(&self.tokens, request)?;
        let now = Timestamp::now();
        let draft = parse_draft(json_object(request)?, now)?;
        let (event, envelope) = events::create_event(
            &self.store,
            draft,
            caller.user_id,
            ctx.correlation_id.clone(),
            now,
        )
        .await
        .map_err(ApiError::internal)?;
        tracing::info!(event_id = %event.id, envelope_id = %envelope.id, "event created");
        let mut response = ctx.json(StatusCode::CREATED, &event);
        if let Ok(location) = HeaderValue::from_str(&format!("/events/{}", event.id)) {
            response.headers_mut().insert(header::LOCATION, location);
        }
        Ok(response)
    }

    async fn list(
        &self,
        request: &Request,
        ctx: &ResponseContext,
    ) -> Result<Response<Body>, ApiError> {
        let query = QueryParams::parse(request)?;
        let page = PageRequest {
            after: Timestamp::now(),
            limit: query.limit,
            cursor: query.cursor,
        };
        let (page, source) = events::list_events(&self.read_model, &self.store, page)
            .await
            .map_err(ApiError::internal)?;
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
        // A malformed id cannot name an event: same answer as an unknown one.
        let id = EventId::parse("id", raw_id).map_err(|_| ApiError::NotFound)?;
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
        Ok(with_source(ctx.json(StatusCode::OK, &event), source))
    }
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
    use evently_shared::domain::UserId;
    use evently_shared::fakes::{InMemoryEvents, Unavailable, schema_violations, test_keys};
    use evently_shared::ports::ReadModel;
    use evently_shared::tokens::TokenSigner;
    use lambda_http::RequestExt;
    use lambda_http::http;
    use serde_json::json;

    use super::*;

    const ISSUER: &str = "https://auth.evently.test";
    const AUDIENCE: &str = "evently-api";

    struct Harness<R> {
        app: App<InMemoryEvents, R>,
        signer: TokenSigner,
    }

    fn harness_with<R>(read_model: R) -> Harness<R> {
        let (signer, config) = test_keys(ISSUER, AUDIENCE);
        Harness {
            app: App {
                store: InMemoryEvents::default(),
                read_model,
                tokens: TokenVerifier::new(&config).unwrap(),
            },
            signer,
        }
    }

    fn harness() -> Harness<InMemoryEvents> {
        harness_with(InMemoryEvents::default())
    }

    impl<R> Harness<R> {
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
        assert_eq!(outbox[0].data, body);
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
}
