//! `api/openapi.json` is kept true: through the deployed gateway, every status it lists for an
//! operation is served by a scenario below, and every scenario's status is listed. Only 500 is
//! exempt (it needs a fault, see the fault-injection suite). Error bodies are problem+json.
//!
//! The routes themselves are compared with the gateway's in `infra/test/stack.test.ts`;
//! schemathesis checks response bodies against the schemas (`make schemathesis`).

use std::collections::{BTreeMap, BTreeSet};

use evently_e2e::{Stack, now_ms, repo_root, sdk_config, upcoming_event};
use evently_shared::aws::{DynamoIdempotency, DynamoUserStore};
use evently_shared::domain::{Timestamp, UserId};
use evently_shared::ports::{Claim, Follows, Idempotency};
use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};

/// (operationId, status) pairs seen, in order.
#[derive(Default)]
struct Seen(BTreeMap<String, BTreeSet<u16>>);

struct Api<'a> {
    stack: &'a Stack,
    spec: Value,
}

impl Api<'_> {
    /// The operationId of `method path` in the spec (`path` as templated there).
    fn operation(&self, method: &Method, template: &str) -> String {
        self.spec["paths"][template][method.as_str().to_lowercase()]["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {template} is not in api/openapi.json"))
            .to_owned()
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.stack.http.request(method, self.stack.url(path))
    }

    /// Sends, checks the status is the expected one and is listed, records it.
    async fn expect(
        &self,
        seen: &mut Seen,
        template: &str,
        request: RequestBuilder,
        status: u16,
        case: &str,
    ) -> Value {
        let built = request.build().unwrap();
        let method = built.method().clone();
        let operation = self.operation(&method, template);
        let response = self.stack.http.execute(built).await.unwrap();
        let got = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        let text = response.text().await.unwrap();
        assert_eq!(got, status, "{operation}: {case}: {text}");
        let listed = &self.spec["paths"][template][method.as_str().to_lowercase()]["responses"];
        assert!(
            listed.get(status.to_string()).is_some(),
            "{operation} answered {status} ({case}), which api/openapi.json does not list"
        );
        if status >= 400 {
            assert_eq!(
                content_type.as_deref(),
                Some("application/problem+json"),
                "{operation}: {case}"
            );
        }
        seen.0.entry(operation).or_default().insert(status);
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        }
    }
}

fn event_body(title: &str, capacity: u32) -> Value {
    let mut body = upcoming_event(title, "Spec hall", 33);
    body["capacity"] = json!(capacity);
    body
}

fn big_body() -> String {
    json!({ "title": "x".repeat(70 * 1024) }).to_string()
}

#[tokio::test]
async fn every_listed_status_is_served_and_every_served_status_is_listed() {
    let stack = Stack::load().await;
    let spec: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("api/openapi.json")).unwrap(),
    )
    .unwrap();
    let api = Api {
        stack: &stack,
        spec: spec.clone(),
    };
    let mut seen = Seen::default();
    let run = now_ms();
    let email = format!("openapi-{run}@example.com");
    let password = "a passphrase for the spec";
    let intruder = stack.token("openapi-intruder");
    let ghost = stack.token(&format!("openapi-ghost-{run}"));
    let admin = stack
        .signer
        .issue_with_roles(
            &UserId::parse("sub", "openapi-admin").unwrap(),
            &["admin".to_owned()],
            chrono::Utc::now().timestamp(),
        )
        .token;
    let bad_token = "not.a.token";

    // ---- accounts ----
    let signup = json!({ "email": email, "password": password, "display_name": "Spec" });
    let key = format!("openapi-signup-{run}");
    let profile = api
        .expect(
            &mut seen,
            "/signup",
            api.request(Method::POST, "/signup")
                .header("idempotency-key", &key)
                .json(&signup),
            201,
            "new account",
        )
        .await;
    let user_id = profile["id"].as_str().unwrap().to_owned();
    api.expect(&mut seen, "/signup", api.request(Method::POST, "/signup").header("idempotency-key", &key).json(&json!({ "email": email, "password": "another passphrase!", "display_name": "Spec" })), 422, "key reused").await;
    api.expect(
        &mut seen,
        "/signup",
        api.request(Method::POST, "/signup").json(&signup),
        409,
        "email taken",
    )
    .await;
    api.expect(
        &mut seen,
        "/signup",
        api.request(Method::POST, "/signup")
            .json(&json!({ "email": "nope" })),
        400,
        "invalid",
    )
    .await;
    api.expect(
        &mut seen,
        "/signup",
        api.request(Method::POST, "/signup")
            .header("content-type", "application/json")
            .body(big_body()),
        413,
        "too large",
    )
    .await;
    api.expect(
        &mut seen,
        "/signup",
        api.request(Method::POST, "/signup")
            .header("content-type", "text/plain")
            .body("hello"),
        415,
        "not JSON",
    )
    .await;

    let login = api
        .expect(
            &mut seen,
            "/login",
            api.request(Method::POST, "/login")
                .json(&json!({ "email": email, "password": password })),
            200,
            "right password",
        )
        .await;
    let token = login["access_token"].as_str().unwrap().to_owned();
    api.expect(
        &mut seen,
        "/login",
        api.request(Method::POST, "/login")
            .json(&json!({ "email": email })),
        400,
        "no password",
    )
    .await;
    api.expect(
        &mut seen,
        "/login",
        api.request(Method::POST, "/login")
            .header("content-type", "application/json")
            .body(big_body()),
        413,
        "too large",
    )
    .await;
    api.expect(
        &mut seen,
        "/login",
        api.request(Method::POST, "/login")
            .header("content-type", "text/plain")
            .body("x"),
        415,
        "not JSON",
    )
    .await;
    let locked_email = format!("openapi-locked-{run}@example.com");
    for _ in 0..5 {
        api.expect(
            &mut seen,
            "/login",
            api.request(Method::POST, "/login")
                .json(&json!({ "email": locked_email, "password": "wrong wrong wrong" })),
            401,
            "wrong password",
        )
        .await;
    }
    api.expect(
        &mut seen,
        "/login",
        api.request(Method::POST, "/login")
            .json(&json!({ "email": locked_email, "password": "wrong wrong wrong" })),
        429,
        "locked",
    )
    .await;

    api.expect(
        &mut seen,
        "/me",
        api.request(Method::GET, "/me").bearer_auth(&token),
        200,
        "own profile",
    )
    .await;
    api.expect(
        &mut seen,
        "/me",
        api.request(Method::GET, "/me"),
        401,
        "no token",
    )
    .await;
    api.expect(
        &mut seen,
        "/me",
        api.request(Method::GET, "/me").bearer_auth(&ghost),
        404,
        "no account",
    )
    .await;
    api.expect(
        &mut seen,
        "/.well-known/jwks.json",
        api.request(Method::GET, "/.well-known/jwks.json"),
        200,
        "keys",
    )
    .await;

    let follows = "/me/follows";
    let tag = json!({ "tag": format!("spec-{run}") });
    api.expect(
        &mut seen,
        follows,
        api.request(Method::POST, follows)
            .bearer_auth(&token)
            .json(&tag),
        201,
        "follow",
    )
    .await;
    api.expect(
        &mut seen,
        follows,
        api.request(Method::POST, follows)
            .bearer_auth(&token)
            .json(&tag),
        200,
        "follow again",
    )
    .await;
    api.expect(
        &mut seen,
        follows,
        api.request(Method::POST, follows)
            .bearer_auth(&token)
            .json(&json!({})),
        400,
        "no target",
    )
    .await;
    api.expect(
        &mut seen,
        follows,
        api.request(Method::POST, follows).json(&tag),
        401,
        "no token",
    )
    .await;
    api.expect(
        &mut seen,
        follows,
        api.request(Method::POST, follows)
            .bearer_auth(&ghost)
            .json(&tag),
        404,
        "no account",
    )
    .await;
    api.expect(
        &mut seen,
        follows,
        api.request(Method::POST, follows)
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(big_body()),
        413,
        "too large",
    )
    .await;
    api.expect(
        &mut seen,
        follows,
        api.request(Method::POST, follows)
            .bearer_auth(&token)
            .header("content-type", "text/plain")
            .body("x"),
        415,
        "not JSON",
    )
    .await;
    api.expect(
        &mut seen,
        follows,
        api.request(Method::DELETE, follows)
            .bearer_auth(&token)
            .json(&tag),
        200,
        "unfollow",
    )
    .await;
    api.expect(
        &mut seen,
        follows,
        api.request(Method::DELETE, follows)
            .bearer_auth(&token)
            .json(&json!({ "tag": "Not A Tag" })),
        400,
        "bad tag",
    )
    .await;
    api.expect(
        &mut seen,
        follows,
        api.request(Method::DELETE, follows).json(&tag),
        401,
        "no token",
    )
    .await;
    api.expect(
        &mut seen,
        follows,
        api.request(Method::DELETE, follows)
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(big_body()),
        413,
        "too large",
    )
    .await;
    api.expect(
        &mut seen,
        follows,
        api.request(Method::DELETE, follows)
            .bearer_auth(&token)
            .header("content-type", "text/plain")
            .body("x"),
        415,
        "not JSON",
    )
    .await;

    let prefs = "/me/preferences";
    api.expect(
        &mut seen,
        prefs,
        api.request(Method::GET, prefs).bearer_auth(&token),
        200,
        "read",
    )
    .await;
    api.expect(
        &mut seen,
        prefs,
        api.request(Method::GET, prefs),
        401,
        "no token",
    )
    .await;
    api.expect(
        &mut seen,
        prefs,
        api.request(Method::PUT, prefs)
            .bearer_auth(&token)
            .json(&json!({ "notifications": true })),
        200,
        "write",
    )
    .await;
    api.expect(
        &mut seen,
        prefs,
        api.request(Method::PUT, prefs)
            .bearer_auth(&token)
            .json(&json!({ "notifications": "yes" })),
        400,
        "not a bool",
    )
    .await;
    api.expect(
        &mut seen,
        prefs,
        api.request(Method::PUT, prefs)
            .json(&json!({ "notifications": true })),
        401,
        "no token",
    )
    .await;
    api.expect(
        &mut seen,
        prefs,
        api.request(Method::PUT, prefs)
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(big_body()),
        413,
        "too large",
    )
    .await;
    api.expect(
        &mut seen,
        prefs,
        api.request(Method::PUT, prefs)
            .bearer_auth(&token)
            .header("content-type", "text/plain")
            .body("x"),
        415,
        "not JSON",
    )
    .await;

    let users = DynamoUserStore::new(
        aws_sdk_dynamodb::Client::new(&sdk_config().await),
        stack.output("UsersTableName"),
        stack.output("EventsTableName"),
    );
    let unsubscribe = users
        .unsubscribe_token(&UserId::parse("id", &user_id).unwrap())
        .await
        .unwrap();
    api.expect(
        &mut seen,
        "/unsubscribe",
        api.request(Method::GET, &format!("/unsubscribe?token={unsubscribe}")),
        200,
        "known token",
    )
    .await;
    api.expect(
        &mut seen,
        "/unsubscribe",
        api.request(Method::GET, "/unsubscribe"),
        400,
        "no token",
    )
    .await;
    api.expect(
        &mut seen,
        "/unsubscribe",
        api.request(Method::GET, "/unsubscribe?token=unknown-token"),
        404,
        "unknown token",
    )
    .await;

    // ---- events ----
    api.expect(
        &mut seen,
        "/events",
        api.request(Method::GET, "/events?limit=5"),
        200,
        "list",
    )
    .await;
    api.expect(
        &mut seen,
        "/events",
        api.request(Method::GET, "/events?limit=0"),
        400,
        "bad limit",
    )
    .await;
    let create_key = format!("openapi-create-{run}");
    let event = api
        .expect(
            &mut seen,
            "/events",
            api.request(Method::POST, "/events")
                .bearer_auth(&token)
                .header("idempotency-key", &create_key)
                .json(&event_body("Spec night", 1)),
            201,
            "create",
        )
        .await;
    let id = event["id"].as_str().unwrap().to_owned();
    api.expect(
        &mut seen,
        "/events",
        api.request(Method::POST, "/events")
            .bearer_auth(&token)
            .header("idempotency-key", &create_key)
            .json(&event_body("Other night", 1)),
        422,
        "key reused",
    )
    .await;
    let idempotency = DynamoIdempotency::new(
        aws_sdk_dynamodb::Client::new(&sdk_config().await),
        stack.output("IdempotencyTableName"),
    );
    let busy_key = format!("openapi-busy-{run}");
    let now = Timestamp::now();
    let record = format!("{user_id}:{busy_key}");
    idempotency
        .begin(
            Claim::new("POST /events", &record),
            now,
            now.plus_seconds(60),
        )
        .await
        .unwrap();
    api.expect(
        &mut seen,
        "/events",
        api.request(Method::POST, "/events")
            .bearer_auth(&token)
            .header("idempotency-key", &busy_key)
            .json(&event_body("Busy", 1)),
        409,
        "same key in flight",
    )
    .await;
    api.expect(
        &mut seen,
        "/events",
        api.request(Method::POST, "/events")
            .bearer_auth(&token)
            .json(&json!({ "title": "" })),
        400,
        "invalid",
    )
    .await;
    api.expect(
        &mut seen,
        "/events",
        api.request(Method::POST, "/events")
            .json(&event_body("x", 1)),
        401,
        "no token",
    )
    .await;
    api.expect(
        &mut seen,
        "/events",
        api.request(Method::POST, "/events")
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(big_body()),
        413,
        "too large",
    )
    .await;
    api.expect(
        &mut seen,
        "/events",
        api.request(Method::POST, "/events")
            .bearer_auth(&token)
            .header("content-type", "text/plain")
            .body("x"),
        415,
        "not JSON",
    )
    .await;

    let one = "/events/{id}";
    let at = format!("/events/{id}");
    let missing = "/events/01JZZZZZZZZZZZZZZZZZZZZZZZ";
    api.expect(
        &mut seen,
        one,
        api.request(Method::GET, &format!("{at}?consistency=strong")),
        200,
        "read",
    )
    .await;
    api.expect(
        &mut seen,
        one,
        api.request(Method::GET, &format!("{at}?consistency=sometimes")),
        400,
        "bad consistency",
    )
    .await;
    api.expect(
        &mut seen,
        one,
        api.request(Method::GET, &at).bearer_auth(bad_token),
        401,
        "bad token",
    )
    .await;
    api.expect(
        &mut seen,
        one,
        api.request(Method::GET, missing),
        404,
        "missing",
    )
    .await;

    let etag = "\"1\"";
    api.expect(
        &mut seen,
        one,
        api.request(Method::PATCH, &at)
            .bearer_auth(&token)
            .header("if-match", etag)
            .json(&json!({ "title": "Spec night, renamed" })),
        200,
        "change",
    )
    .await;
    api.expect(
        &mut seen,
        one,
        api.request(Method::PATCH, &at)
            .bearer_auth(&token)
            .header("if-match", "\"2\"")
            .json(&json!({ "version": 3 })),
        400,
        "server-owned field",
    )
    .await;
    api.expect(
        &mut seen,
        one,
        api.request(Method::PATCH, &at)
            .header("if-match", "\"2\"")
            .json(&json!({ "title": "t" })),
        401,
        "no token",
    )
    .await;
    api.expect(
        &mut seen,
        one,
        api.request(Method::PATCH, &at)
            .bearer_auth(&intruder)
            .header("if-match", "\"2\"")
            .json(&json!({ "title": "t" })),
        403,
        "not the organizer",
    )
    .await;
    api.expect(
        &mut seen,
        one,
        api.request(Method::PATCH, missing)
            .bearer_auth(&token)
            .header("if-match", "\"1\"")
            .json(&json!({ "title": "t" })),
        404,
        "missing",
    )
    .await;
    api.expect(
        &mut seen,
        one,
        api.request(Method::PATCH, &at)
            .bearer_auth(&token)
            .header("if-match", etag)
            .json(&json!({ "title": "t" })),
        412,
        "stale",
    )
    .await;
    api.expect(
        &mut seen,
        one,
        api.request(Method::PATCH, &at)
            .bearer_auth(&token)
            .header("if-match", "\"2\"")
            .header("content-type", "application/json")
            .body(big_body()),
        413,
        "too large",
    )
    .await;
    api.expect(
        &mut seen,
        one,
        api.request(Method::PATCH, &at)
            .bearer_auth(&token)
            .header("if-match", "\"2\"")
            .header("content-type", "text/plain")
            .body("x"),
        415,
        "not JSON",
    )
    .await;
    api.expect(
        &mut seen,
        one,
        api.request(Method::PATCH, &at)
            .bearer_auth(&token)
            .json(&json!({ "title": "t" })),
        428,
        "no If-Match",
    )
    .await;

    let rsvp = "/events/{id}/rsvp";
    let rsvp_at = format!("{at}/rsvp");
    let guest_key = format!("openapi-rsvp-{run}");
    api.expect(
        &mut seen,
        rsvp,
        api.request(Method::POST, &rsvp_at)
            .bearer_auth(&intruder)
            .header("idempotency-key", &guest_key),
        201,
        "going",
    )
    .await;
    api.expect(
        &mut seen,
        rsvp,
        api.request(Method::POST, &rsvp_at).bearer_auth(&intruder),
        200,
        "already going",
    )
    .await;
    api.expect(
        &mut seen,
        rsvp,
        api.request(Method::POST, &rsvp_at).bearer_auth(&ghost),
        409,
        "full",
    )
    .await;
    api.expect(
        &mut seen,
        rsvp,
        api.request(Method::POST, &rsvp_at),
        401,
        "no token",
    )
    .await;
    api.expect(
        &mut seen,
        rsvp,
        api.request(Method::POST, &rsvp_at)
            .bearer_auth(&intruder)
            .header("idempotency-key", "has spaces"),
        400,
        "malformed Idempotency-Key",
    )
    .await;
    api.expect(
        &mut seen,
        rsvp,
        api.request(Method::POST, &format!("{missing}/rsvp"))
            .bearer_auth(&intruder),
        404,
        "missing",
    )
    .await;
    api.expect(
        &mut seen,
        rsvp,
        api.request(Method::POST, &format!("{missing}/rsvp"))
            .bearer_auth(&intruder)
            .header("idempotency-key", &guest_key),
        422,
        "key reused on another event",
    )
    .await;

    let stats = "/events/{id}/stats";
    api.expect(
        &mut seen,
        stats,
        api.request(Method::GET, &format!("{at}/stats"))
            .bearer_auth(&token),
        200,
        "organizer",
    )
    .await;
    api.expect(
        &mut seen,
        stats,
        api.request(Method::GET, &format!("{at}/stats")),
        401,
        "no token",
    )
    .await;
    api.expect(
        &mut seen,
        stats,
        api.request(Method::GET, &format!("{at}/stats"))
            .bearer_auth(&intruder),
        403,
        "not the organizer",
    )
    .await;
    api.expect(
        &mut seen,
        stats,
        api.request(Method::GET, &format!("{missing}/stats"))
            .bearer_auth(&token),
        404,
        "missing",
    )
    .await;

    api.expect(
        &mut seen,
        "/me/rsvps",
        api.request(Method::GET, "/me/rsvps").bearer_auth(&intruder),
        200,
        "mine",
    )
    .await;
    api.expect(
        &mut seen,
        "/me/rsvps",
        api.request(Method::GET, "/me/rsvps?limit=-1")
            .bearer_auth(&intruder),
        400,
        "bad limit",
    )
    .await;
    api.expect(
        &mut seen,
        "/me/rsvps",
        api.request(Method::GET, "/me/rsvps"),
        401,
        "no token",
    )
    .await;

    api.expect(
        &mut seen,
        rsvp,
        api.request(Method::DELETE, &rsvp_at).bearer_auth(&intruder),
        204,
        "withdraw",
    )
    .await;
    api.expect(
        &mut seen,
        rsvp,
        api.request(Method::DELETE, &rsvp_at),
        401,
        "no token",
    )
    .await;
    api.expect(
        &mut seen,
        rsvp,
        api.request(Method::DELETE, &format!("{missing}/rsvp"))
            .bearer_auth(&intruder),
        404,
        "missing",
    )
    .await;

    api.expect(
        &mut seen,
        one,
        api.request(Method::DELETE, &at),
        401,
        "no token",
    )
    .await;
    api.expect(
        &mut seen,
        one,
        api.request(Method::DELETE, &at).bearer_auth(&intruder),
        403,
        "not the organizer",
    )
    .await;
    api.expect(
        &mut seen,
        one,
        api.request(Method::DELETE, missing).bearer_auth(&token),
        404,
        "missing",
    )
    .await;
    api.expect(
        &mut seen,
        one,
        api.request(Method::DELETE, &at)
            .bearer_auth(&token)
            .header("if-match", "\"1\""),
        412,
        "stale",
    )
    .await;
    api.expect(
        &mut seen,
        one,
        api.request(Method::DELETE, &at).bearer_auth(&token),
        200,
        "cancel",
    )
    .await;
    api.expect(
        &mut seen,
        one,
        api.request(Method::PATCH, &at)
            .bearer_auth(&token)
            .header("if-match", "*")
            .json(&json!({ "title": "t" })),
        409,
        "a cancelled event cannot change",
    )
    .await;

    let daily = "/analytics/daily";
    api.expect(
        &mut seen,
        daily,
        api.request(Method::GET, daily).bearer_auth(&admin),
        200,
        "admin",
    )
    .await;
    api.expect(
        &mut seen,
        daily,
        api.request(Method::GET, &format!("{daily}?from=yesterday"))
            .bearer_auth(&admin),
        400,
        "bad date",
    )
    .await;
    api.expect(
        &mut seen,
        daily,
        api.request(Method::GET, daily),
        401,
        "no token",
    )
    .await;
    api.expect(
        &mut seen,
        daily,
        api.request(Method::GET, daily).bearer_auth(&token),
        403,
        "not an admin",
    )
    .await;

    // ---- both directions ----
    let mut listed: BTreeMap<String, BTreeSet<u16>> = BTreeMap::new();
    for (_, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if method == "parameters" {
                continue;
            }
            let statuses = operation["responses"]
                .as_object()
                .unwrap()
                .keys()
                .map(|s| s.parse::<u16>().unwrap())
                .filter(|s| *s != 500)
                .collect();
            listed.insert(
                operation["operationId"].as_str().unwrap().to_owned(),
                statuses,
            );
        }
    }
    assert_eq!(
        seen.0, listed,
        "statuses served by the scenarios (left) and listed in api/openapi.json (right)"
    );
}
