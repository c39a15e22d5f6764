//! The route table of `auth-api`, with its tests.

use evently_shared::app::accounts::{self, AccountError};
use evently_shared::domain::{
    DisplayName, Email, FieldError, FieldErrors, Password, Tag, Timestamp, User, UserId,
};
use evently_shared::http::{
    ApiError, Body, JsonObject, KeyScope, Request, Response, ResponseContext, caller,
    idempotency_key, idempotent, json_object, request_path, serve,
};
use evently_shared::metrics;
use evently_shared::password::PasswordHasher;
use evently_shared::ports::{
    FollowTarget, Follows, Idempotency, KeyVault, LoginThrottle, Preferences, UserStore,
};
use evently_shared::tokens::{PublicKey, TokenVerifier};
use lambda_http::http::{HeaderValue, Method, StatusCode, header};
use serde::Serialize;
use serde_json::{Value, json};

use crate::keys::{Signing, SigningKeys};

/// The function's dependencies, as ports.
pub struct App<U, T, I, V> {
    pub users: U,
    pub throttle: T,
    /// `Idempotency-Key` records for POST /signup.
    pub idempotency: I,
    /// The private key: the signer of POST /login and the pepper of keyed signups.
    pub keys: SigningKeys<V>,
    pub hasher: PasswordHasher,
    pub verifier: TokenVerifier,
    pub public_keys: Vec<PublicKey>,
    /// Addresses whose tokens carry the admin role.
    pub admins: Vec<Email>,
}

#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: i64,
}

/// The public profile; never the hash.
#[derive(Serialize)]
struct Profile<'a> {
    id: &'a str,
    email: &'a str,
    display_name: &'a str,
    created_at: String,
}

impl<'a> From<&'a User> for Profile<'a> {
    fn from(user: &'a User) -> Self {
        Self {
            id: user.id.as_str(),
            email: user.email.as_str(),
            display_name: user.display_name.as_str(),
            created_at: user.created_at.to_string(),
        }
    }
}

fn account_error(error: AccountError) -> ApiError {
    match error {
        AccountError::EmailTaken => {
            ApiError::Conflict("an account with this email address already exists".into())
        }
        AccountError::InvalidCredentials => ApiError::Unauthenticated("invalid email or password"),
        AccountError::Locked {
            retry_after_seconds,
        } => ApiError::TooManyRequests {
            retry_after_seconds,
        },
        AccountError::Store(error) => ApiError::internal(error),
        AccountError::Hash(error) => ApiError::internal(error),
    }
}

impl<U: UserStore + Follows, T: LoginThrottle, I: Idempotency, V: KeyVault> App<U, T, I, V> {
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
        let path = request_path(request).trim_end_matches('/');
        match (request.method(), path) {
            (&Method::POST, "/signup") => self.sign_up(request, ctx).await,
            (&Method::POST, "/login") => self.log_in(request, ctx).await,
            (&Method::GET, "/me") => self.me(request, ctx).await,
            (&Method::GET, "/.well-known/jwks.json") => Ok(self.jwks(ctx)),
            (&Method::POST, "/me/follows") => self.follow(request, ctx, true).await,
            (&Method::DELETE, "/me/follows") => self.follow(request, ctx, false).await,
            (&Method::GET, "/me/preferences") => self.preferences(request, ctx).await,
            (&Method::PUT, "/me/preferences") => self.set_preferences(request, ctx).await,
            (&Method::GET, "/unsubscribe") => self.unsubscribe(request, ctx).await,
            (_, "/me/follows") => Err(ApiError::MethodNotAllowed {
                allow: "POST, DELETE",
            }),
            (_, "/me/preferences") => Err(ApiError::MethodNotAllowed { allow: "GET, PUT" }),
            (_, "/unsubscribe") => Err(ApiError::MethodNotAllowed { allow: "GET" }),
            (_, "/signup" | "/login") => Err(ApiError::MethodNotAllowed { allow: "POST" }),
            (_, "/me" | "/.well-known/jwks.json") => {
                Err(ApiError::MethodNotAllowed { allow: "GET" })
            }
            _ => Err(ApiError::NotFound),
        }
    }

    /// The private key's material; an instance that cannot read it answers an opaque 500 (the
    /// cause is logged) on the routes that need it, and keeps serving the others.
    async fn signing(&self) -> Result<&Signing, ApiError> {
        self.keys.get().await.map_err(ApiError::internal)
    }

    async fn sign_up(
        &self,
        request: &Request,
        ctx: &ResponseContext,
    ) -> Result<Response<Body>, ApiError> {
        let write = async {
            let mut body = JsonObject::new(
                json_object(request)?,
                &["email", "password", "display_name"],
            );
            let email = body
                .required_str("email")
                .and_then(|raw| body.errors().collect(Email::parse("email", &raw)));
            let password = body.required_str("password").and_then(|raw| {
                body.errors()
                    .collect(Password::new_for(&raw, email.as_ref()))
            });
            let display_name = body.required_str("display_name").and_then(|raw| {
                body.errors()
                    .collect(DisplayName::parse("display_name", &raw))
            });
            body.finish()?;
            let (Some(email), Some(password), Some(display_name)) = (email, password, display_name)
            else {
                return Err(FieldErrors::from(evently_shared::domain::FieldError::new(
                    "body",
                    "is invalid",
                ))
                .into());
            };
            let user = accounts::sign_up(
                &self.users,
                &self.hasher,
                email,
                password,
                display_name,
                ctx.correlation_id.clone(),
                Timestamp::now(),
            )
            .await
            .map_err(account_error)?;
            tracing::info!(user_id = %user.id, "account created");
            metrics::count(metrics::name::SIGNUPS, Some(ctx.correlation_id.as_str()));
            let mut response = ctx.json(StatusCode::CREATED, &Profile::from(&user));
            response
                .headers_mut()
                .insert(header::LOCATION, HeaderValue::from_static("/me"));
            Ok(response)
        };
        // Only a keyed signup fingerprints its body, so only it waits for the private key.
        let pepper: &[u8] = match idempotency_key(request)? {
            Some(_) => &self.signing().await?.idempotency_pepper,
            None => b"",
        };
        let keys = KeyScope {
            store: &self.idempotency,
            scope: "POST /signup",
            // Nobody is signed in yet: every signup shares one key space, and the fingerprint
            // (peppered: the body holds a password) tells a retry from a stranger's request.
            owner: "anonymous",
            pepper,
        };
        idempotent(keys, request, ctx, write).await
    }

    async fn log_in(
        &self,
        request: &Request,
        ctx: &ResponseContext,
    ) -> Result<Response<Body>, ApiError> {
        let mut body = JsonObject::new(json_object(request)?, &["email", "password"]);
        let email = body
            .required_str("email")
            .and_then(|raw| body.errors().collect(Email::parse("email", &raw)));
        let password = body
            .required_str("password")
            .and_then(|raw| body.errors().collect(Password::offered(&raw)));
        body.finish()?;
        let (Some(email), Some(password)) = (email, password) else {
            return Err(FieldErrors::from(evently_shared::domain::FieldError::new(
                "body",
                "is invalid",
            ))
            .into());
        };
        let now = Timestamp::now();
        // On a new instance the key may still be on its way: it arrives while the password is
        // checked. A wrong password is a 401 whether or not the key could be read.
        let (signing, authenticated) = tokio::join!(
            self.signing(),
            accounts::authenticate(
                &self.users,
                &self.throttle,
                &self.hasher,
                &self.admins,
                email,
                password,
                now,
            )
        );
        let issued = authenticated
            .map_err(account_error)?
            .token(&signing?.signer, now);
        let mut response = ctx.json(
            StatusCode::OK,
            &TokenResponse {
                access_token: &issued.token,
                token_type: "Bearer",
                expires_in: issued.expires_in,
            },
        );
        // Tokens must not be cached by anything between us and the client.
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Ok(response)
    }

    async fn me(
        &self,
        request: &Request,
        ctx: &ResponseContext,
    ) -> Result<Response<Body>, ApiError> {
        let caller = caller(&self.verifier, request)?;
        let user = accounts::profile(&self.users, &caller.user_id)
            .await
            .map_err(account_error)?
            .ok_or(ApiError::NotFound)?;
        Ok(ctx.json(StatusCode::OK, &Profile::from(&user)))
    }

    async fn follow(
        &self,
        request: &Request,
        ctx: &ResponseContext,
        follow: bool,
    ) -> Result<Response<Body>, ApiError> {
        let caller = caller(&self.verifier, request)?;
        let target = parse_follow_target(json_object(request)?)?;
        let changed = if follow {
            let user = self
                .users
                .profile(&caller.user_id)
                .await
                .map_err(ApiError::internal)?
                .ok_or(ApiError::NotFound)?;
            self.users.follow(&user, &target).await
        } else {
            self.users.unfollow(&caller.user_id, &target).await
        }
        .map_err(ApiError::internal)?;
        let status = if follow && changed {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Ok(ctx.json(
            status,
            &json!({ "following": follow, "target": target.key(), "changed": changed }),
        ))
    }

    async fn preferences(
        &self,
        request: &Request,
        ctx: &ResponseContext,
    ) -> Result<Response<Body>, ApiError> {
        let caller = caller(&self.verifier, request)?;
        let preferences = self
            .users
            .preferences(&caller.user_id)
            .await
            .map_err(ApiError::internal)?;
        Ok(ctx.json(StatusCode::OK, &preferences))
    }

    async fn set_preferences(
        &self,
        request: &Request,
        ctx: &ResponseContext,
    ) -> Result<Response<Body>, ApiError> {
        let caller = caller(&self.verifier, request)?;
        let mut body = JsonObject::new(json_object(request)?, &["notifications"]);
        let notifications = body.required_bool("notifications");
        body.finish()?;
        let preferences = Preferences {
            notifications: notifications.unwrap_or(true),
        };
        self.users
            .set_preferences(&caller.user_id, preferences)
            .await
            .map_err(ApiError::internal)?;
        Ok(ctx.json(StatusCode::OK, &preferences))
    }

    /// The link in every notification mail: a capability token, no login needed.
    async fn unsubscribe(
        &self,
        request: &Request,
        ctx: &ResponseContext,
    ) -> Result<Response<Body>, ApiError> {
        use lambda_http::RequestExt;
        let query = request.query_string_parameters();
        let token = query
            .first("token")
            .filter(|t| !t.is_empty() && t.len() <= 64)
            .ok_or_else(|| ApiError::from(FieldError::new("token", "is required")))?;
        let known = self
            .users
            .unsubscribe(token)
            .await
            .map_err(ApiError::internal)?;
        if !known {
            return Err(ApiError::NotFound);
        }
        Ok(ctx.json(
            StatusCode::OK,
            &json!({ "notifications": false, "detail": "You will no longer get notification mail." }),
        ))
    }

    fn jwks(&self, ctx: &ResponseContext) -> Response<Body> {
        let keys: Vec<Value> = self
            .public_keys
            .iter()
            .map(|key| {
                json!({
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "alg": "EdDSA",
                    "use": "sig",
                    "kid": key.kid,
                    "x": key.x,
                })
            })
            .collect();
        let mut response = ctx.json(StatusCode::OK, &json!({ "keys": keys }));
        response.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=300"),
        );
        response
    }
}

/// `{"organizer_id": "..."}` or `{"tag": "..."}`: exactly one of them.
fn parse_follow_target(body: serde_json::Map<String, Value>) -> Result<FollowTarget, ApiError> {
    let mut object = JsonObject::new(body, &["organizer_id", "tag"]);
    let organizer = object.optional_str("organizer_id").ok().flatten();
    let tag = object.optional_str("tag").ok().flatten();
    let target = match (organizer, tag) {
        (Some(raw), None) => object
            .errors()
            .collect(UserId::parse("organizer_id", &raw))
            .map(FollowTarget::Organizer),
        (None, Some(raw)) => object
            .errors()
            .collect(Tag::parse("tag", &raw))
            .map(FollowTarget::Tag),
        _ => {
            object.errors().push(FieldError::new(
                "organizer_id",
                "give exactly one of organizer_id or tag",
            ));
            None
        }
    };
    object.finish()?;
    target.ok_or_else(|| FieldErrors::from(FieldError::new("body", "is invalid")).into())
}

#[cfg(test)]
mod tests {
    use evently_shared::fakes::{
        InMemoryIdempotency, InMemoryUsers, InMemoryVault, schema_violations,
    };
    use std::collections::HashMap;

    use evently_shared::tokens::{KeyRing, TokenConfig};
    use lambda_http::RequestExt;
    use lambda_http::http;

    use super::*;

    const ISSUER: &str = "https://auth.evently.test";
    const AUDIENCE: &str = "evently-api";

    type TestApp = App<InMemoryUsers, InMemoryUsers, InMemoryIdempotency, InMemoryVault>;

    fn app() -> TestApp {
        let ring = KeyRing::generate().rotate();
        let config = TokenConfig {
            public_keys: ring.public_keys(),
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
        };
        App {
            users: InMemoryUsers::default(),
            throttle: InMemoryUsers::default(),
            idempotency: InMemoryIdempotency::default(),
            keys: SigningKeys::new(
                InMemoryVault::holding(serde_json::to_string(&ring).unwrap()),
                config.clone(),
                900,
            ),
            hasher: PasswordHasher::default(),
            verifier: TokenVerifier::new(&config).unwrap(),
            public_keys: ring.public_keys(),
            admins: vec![Email::parse("email", "boss@example.com").unwrap()],
        }
    }

    fn post(path: &str, body: Value) -> Request {
        http::Request::builder()
            .method("POST")
            .uri(path)
            .header("content-type", "application/json")
            .body(Body::Text(body.to_string()))
            .unwrap()
    }

    fn get(path: &str, token: Option<&str>) -> Request {
        let mut builder = http::Request::builder().method("GET").uri(path);
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        builder.body(Body::Empty).unwrap()
    }

    fn json_of(response: &Response<Body>) -> Value {
        match response.body() {
            Body::Text(text) => serde_json::from_str(text).unwrap(),
            other => panic!("expected text, got {other:?}"),
        }
    }

    async fn log_in(app: &TestApp, email: &str, password: &str) -> Response<Body> {
        app.handle(post(
            "/login",
            json!({ "email": email, "password": password }),
        ))
        .await
    }

    fn fields(response: &Response<Body>) -> Vec<String> {
        json_of(response)["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap().to_owned())
            .collect()
    }

    fn signup_body(email: &str) -> Value {
        json!({ "email": email, "password": "correct horse battery", "display_name": "Ada" })
    }

    #[tokio::test]
    async fn signup_creates_the_account_without_the_hash_and_announces_it() {
        let app = app();

        let response = app
            .handle(post("/signup", signup_body("  Ada@Example.com ")))
            .await;

        assert_eq!(response.status(), StatusCode::CREATED);
        let body = json_of(&response);
        assert_eq!(body["email"], "ada@example.com");
        assert!(body.get("password_hash").is_none() && body.get("password").is_none());
        let outbox = app.users.outbox();
        assert_eq!(outbox.len(), 1);
        assert_eq!(outbox[0].event_type, "evently.user.created.v1");
        assert_eq!(outbox[0].subject, body["id"].as_str().unwrap());
        let violations = schema_violations(&serde_json::to_value(&outbox[0]).unwrap());
        assert!(violations.is_empty(), "{violations:?}");
        let email = Email::parse("email", "ada@example.com").unwrap();
        assert!(
            app.users
                .stored_hash(&email)
                .unwrap()
                .starts_with("$argon2id$")
        );
    }

    #[tokio::test]
    async fn signup_rejects_a_duplicate_email() {
        let app = app();
        app.handle(post("/signup", signup_body("ada@example.com")))
            .await;

        let response = app
            .handle(post("/signup", signup_body("ADA@example.com")))
            .await;

        assert_eq!(response.status(), StatusCode::CONFLICT);
        assert_eq!(app.users.outbox().len(), 1);
    }

    #[tokio::test]
    async fn signup_names_every_invalid_field() {
        let app = app();
        let body =
            json!({ "email": "nope", "password": "short", "display_name": "", "role": "admin" });

        let response = app.handle(post("/signup", body)).await;

        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let mut fields = fields(&response);
        fields.sort();
        assert_eq!(fields, ["display_name", "email", "password", "role"]);
    }

    #[tokio::test]
    async fn signup_rejects_the_email_as_password() {
        let app = app();
        let body = json!({ "email": "ada.lovelace@example.com", "password": "ada.lovelace@example.com", "display_name": "Ada" });

        let response = app.handle(post("/signup", body)).await;

        assert_eq!(fields(&response), ["password"]);
    }

    #[tokio::test]
    async fn login_issues_a_bearer_token_that_opens_me() {
        let app = app();
        app.handle(post("/signup", signup_body("ada@example.com")))
            .await;

        let login = log_in(&app, "ada@example.com", "correct horse battery").await;

        assert_eq!(login.status(), StatusCode::OK);
        assert_eq!(login.headers()["cache-control"], "no-store");
        let body = json_of(&login);
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 900);
        let me = app.handle(get("/me", body["access_token"].as_str())).await;
        assert_eq!(me.status(), StatusCode::OK);
        assert_eq!(json_of(&me)["email"], "ada@example.com");
    }

    #[tokio::test]
    async fn unknown_email_and_wrong_password_get_the_same_answer() {
        let app = app();
        app.handle(post("/signup", signup_body("ada@example.com")))
            .await;

        let wrong = log_in(&app, "ada@example.com", "not the password").await;
        let unknown = log_in(&app, "bob@example.com", "not the password").await;

        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
        let strip = |mut v: Value| {
            v.as_object_mut().unwrap().remove("correlation_id");
            v
        };
        assert_eq!(strip(json_of(&wrong)), strip(json_of(&unknown)));
    }

    #[tokio::test]
    async fn five_failures_lock_the_account_with_retry_after() {
        let app = app();
        app.handle(post("/signup", signup_body("ada@example.com")))
            .await;
        for _ in 0..5 {
            let response = log_in(&app, "ada@example.com", "not the password").await;
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        }

        let locked = log_in(&app, "ada@example.com", "correct horse battery").await;

        assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry_after: i64 = locked.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=900).contains(&retry_after), "{retry_after}");
    }

    #[tokio::test]
    async fn me_requires_a_token() {
        let app = app();

        let response = app.handle(get("/me", None)).await;

        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(response.headers().contains_key("www-authenticate"));
    }

    #[tokio::test]
    async fn jwks_serves_the_current_and_previous_public_keys() {
        let app = app();

        let response = app.handle(get("/.well-known/jwks.json", None)).await;

        let keys = json_of(&response)["keys"].as_array().unwrap().clone();
        assert_eq!(keys.len(), 2);
        for (key, expected) in keys.iter().zip(&app.public_keys) {
            assert_eq!(key["kty"], "OKP");
            assert_eq!(key["crv"], "Ed25519");
            assert_eq!(key["kid"], expected.kid.as_str());
            assert_eq!(key["x"], expected.x.as_str());
            assert!(key.get("d").is_none(), "never the private part");
        }
    }

    fn with_token(method: &str, path: &str, token: &str, body: Option<Value>) -> Request {
        http::Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(
                body.map(|b| Body::Text(b.to_string()))
                    .unwrap_or(Body::Empty),
            )
            .unwrap()
    }

    async fn token_for(app: &TestApp, email: &str) -> String {
        app.handle(post("/signup", signup_body(email))).await;
        let login = log_in(app, email, "correct horse battery").await;
        json_of(&login)["access_token"].as_str().unwrap().to_owned()
    }

    #[tokio::test]
    async fn following_is_idempotent_and_names_a_bad_target() {
        let app = app();
        let token = token_for(&app, "ada@example.com").await;

        let first = app
            .handle(with_token(
                "POST",
                "/me/follows",
                &token,
                Some(json!({ "tag": "rust" })),
            ))
            .await;
        let again = app
            .handle(with_token(
                "POST",
                "/me/follows",
                &token,
                Some(json!({ "tag": "rust" })),
            ))
            .await;
        let both = app
            .handle(with_token(
                "POST",
                "/me/follows",
                &token,
                Some(json!({ "tag": "rust", "organizer_id": "x" })),
            ))
            .await;
        let bad_tag = app
            .handle(with_token(
                "POST",
                "/me/follows",
                &token,
                Some(json!({ "tag": "Not A Slug" })),
            ))
            .await;
        let unfollow = app
            .handle(with_token(
                "DELETE",
                "/me/follows",
                &token,
                Some(json!({ "tag": "rust" })),
            ))
            .await;

        assert_eq!(first.status(), StatusCode::CREATED);
        assert_eq!(again.status(), StatusCode::OK);
        assert_eq!(both.status(), StatusCode::BAD_REQUEST);
        assert_eq!(fields(&bad_tag), ["tag"]);
        assert_eq!(json_of(&unfollow)["changed"], true);
    }

    #[tokio::test]
    async fn preferences_can_be_read_set_and_unsubscribed_by_link() {
        let app = app();
        let token = token_for(&app, "ada@example.com").await;
        let me = app.verifier.verify(&token).unwrap().user_id;

        let default = app
            .handle(with_token("GET", "/me/preferences", &token, None))
            .await;
        let bad = app
            .handle(with_token(
                "PUT",
                "/me/preferences",
                &token,
                Some(json!({ "notifications": "no" })),
            ))
            .await;
        let off = app
            .handle(with_token(
                "PUT",
                "/me/preferences",
                &token,
                Some(json!({ "notifications": false })),
            ))
            .await;
        app.handle(with_token(
            "PUT",
            "/me/preferences",
            &token,
            Some(json!({ "notifications": true })),
        ))
        .await;
        let link = app
            .handle(
                get(&format!("/unsubscribe?token=token-{me}"), None).with_query_string_parameters(
                    HashMap::from([("token".to_owned(), format!("token-{me}"))]),
                ),
            )
            .await;
        let after = app
            .handle(with_token("GET", "/me/preferences", &token, None))
            .await;
        let forged = app
            .handle(
                get("/unsubscribe", None).with_query_string_parameters(HashMap::from([(
                    "token".to_owned(),
                    "forged".to_owned(),
                )])),
            )
            .await;

        assert_eq!(json_of(&default)["notifications"], true);
        assert_eq!(fields(&bad), ["notifications"]);
        assert_eq!(json_of(&off)["notifications"], false);
        assert_eq!(link.status(), StatusCode::OK);
        assert_eq!(json_of(&after)["notifications"], false);
        assert_eq!(forged.status(), StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn admins_get_the_admin_role_and_others_do_not() {
        let app = app();
        for email in ["boss@example.com", "ada@example.com"] {
            app.handle(post("/signup", signup_body(email))).await;
        }
        let role_of = |email: &'static str| {
            let app = &app;
            async move {
                let login = log_in(app, email, "correct horse battery").await;
                let token = json_of(&login)["access_token"].as_str().unwrap().to_owned();
                app.verifier.verify(&token).unwrap().has_role("admin")
            }
        };

        assert!(role_of("boss@example.com").await);
        assert!(!role_of("ada@example.com").await);
    }

    fn keyed(mut request: Request, key: &str) -> Request {
        request
            .headers_mut()
            .insert("idempotency-key", key.parse().unwrap());
        request
    }

    /// POST /signup of `email` with `Idempotency-Key: key`.
    async fn keyed_signup(app: &TestApp, email: &str, key: &str) -> Response<Body> {
        app.handle(keyed(post("/signup", signup_body(email)), key))
            .await
    }

    #[tokio::test]
    async fn while_the_key_secret_is_unreadable_only_login_and_keyed_signup_fail() {
        let app = app();
        app.keys.vault.set_down(true);

        let signup = app
            .handle(post("/signup", signup_body("ada@example.com")))
            .await;
        let signup_with_key = keyed_signup(&app, "bob@example.com", "s-1").await;
        let login = log_in(&app, "ada@example.com", "correct horse battery").await;
        let wrong_password = log_in(&app, "ada@example.com", "not the password").await;
        let jwks = app.handle(get("/.well-known/jwks.json", None)).await;
        app.keys.vault.set_down(false);
        let login_after = log_in(&app, "ada@example.com", "correct horse battery").await;

        assert_eq!(signup.status(), StatusCode::CREATED);
        assert_eq!(jwks.status(), StatusCode::OK);
        assert_eq!(wrong_password.status(), StatusCode::UNAUTHORIZED);
        for failed in [&signup_with_key, &login] {
            assert_eq!(failed.status(), StatusCode::INTERNAL_SERVER_ERROR);
            let body = json_of(failed);
            assert_eq!(body["status"], 500);
            assert!(
                body.get("detail").is_none(),
                "the cause is only logged: {body}"
            );
        }
        assert_eq!(login_after.status(), StatusCode::OK);
        let me = app
            .handle(get("/me", json_of(&login_after)["access_token"].as_str()))
            .await;
        assert_eq!(me.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn a_retried_signup_with_the_same_key_replays_the_201_instead_of_a_409() {
        let app = app();

        let first = keyed_signup(&app, "ada@example.com", "s-1").await;
        let retry = keyed_signup(&app, "ada@example.com", "s-1").await;

        assert_eq!(first.status(), StatusCode::CREATED);
        assert_eq!(retry.status(), StatusCode::CREATED);
        assert_eq!(json_of(&retry), json_of(&first));
        assert_eq!(retry.headers()["idempotent-replayed"], "true");
        assert_eq!(app.users.outbox().len(), 1, "one UserCreated");
    }

    #[tokio::test]
    async fn a_signup_key_reused_with_another_password_is_a_422() {
        let app = app();
        let mut other = signup_body("ada@example.com");
        other["password"] = json!("another long passphrase");

        keyed_signup(&app, "ada@example.com", "s-2").await;
        let reused = app.handle(keyed(post("/signup", other), "s-2")).await;

        assert_eq!(reused.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(json_of(&reused)["type"], "/problems/idempotency-key-reused");
    }

    #[tokio::test]
    async fn a_signup_without_a_key_still_meets_the_duplicate_email_409() {
        let app = app();

        app.handle(post("/signup", signup_body("ada@example.com")))
            .await;
        let again = app
            .handle(post("/signup", signup_body("ada@example.com")))
            .await;

        assert_eq!(again.status(), StatusCode::CONFLICT);
    }
}
