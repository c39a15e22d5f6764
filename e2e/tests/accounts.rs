//! Accounts end to end through the locally deployed stack: signup, the welcome mail (exactly
//! once), login, tokens accepted and refused by the events API, and login lockout.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use evently_e2e::{
    Stack, correlation_id, eventually, mail_to, now_ms, outbox_envelope, redeliver, sdk_config,
};
use evently_shared::tokens::{KeyRing, TokenSigner};
use serde_json::{Value, json};

const PROPAGATION: Duration = Duration::from_secs(30);
const PASSWORD: &str = "correct horse battery staple";

fn unique_email() -> String {
    format!(
        "e2e-{}@example.com",
        ulid::Ulid::generate().to_string().to_lowercase()
    )
}

async fn sign_up(stack: &Stack, email: &str, correlation: &str) -> reqwest::Response {
    stack
        .http
        .post(stack.url("/signup"))
        .header("x-correlation-id", correlation)
        .json(&json!({ "email": email, "password": PASSWORD, "display_name": "Ada <Lovelace>" }))
        .send()
        .await
        .unwrap()
}

async fn log_in(stack: &Stack, email: &str, password: &str) -> reqwest::Response {
    stack
        .http
        .post(stack.url("/login"))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .unwrap()
}

fn event_body() -> Value {
    let start = chrono::Utc::now() + chrono::Duration::days(20);
    json!({
        "title": "Made with a real login",
        "starts_at": start.to_rfc3339(),
        "ends_at": (start + chrono::Duration::hours(1)).to_rfc3339(),
        "venue": "Online"
    })
}

async fn create_event_with(stack: &Stack, token: &str) -> reqwest::Response {
    stack
        .http
        .post(stack.url("/events"))
        .bearer_auth(token)
        .json(&event_body())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn signup_sends_one_welcome_mail_and_login_gives_a_token_that_creates_events() {
    let stack = Stack::load().await;
    let logs = aws_sdk_cloudwatchlogs::Client::new(&sdk_config().await);
    let email = unique_email();
    let correlation = correlation_id("signup");
    let since = now_ms() - 1_000;

    let signup = sign_up(&stack, &email, &correlation).await;
    assert_eq!(signup.status(), 201);
    let user: Value = signup.json().await.unwrap();
    assert_eq!(user["email"], email.as_str());
    assert!(user.get("password_hash").is_none());

    let mail = eventually("the welcome mail", PROPAGATION, || async {
        let mail = mail_to(&stack.http, &email).await;
        (!mail.is_empty()).then_some(mail)
    })
    .await;
    eventually("welcome-email to log the send", PROPAGATION, || async {
        let lines = stack
            .log_lines(&logs, "WelcomeEmailFunctionName", since)
            .await;
        lines
            .iter()
            .any(|l| l.contains(&correlation) && l.contains("welcome mail sent"))
            .then_some(())
    })
    .await;
    let counted = eventually("welcome-email to count the mail", PROPAGATION, || async {
        let lines = stack
            .log_lines(&logs, "WelcomeEmailFunctionName", since)
            .await;
        let records: Vec<Value> = lines
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|r| r.get("MailsSent").is_some())
            .collect();
        (!records.is_empty()).then_some(records)
    })
    .await;
    // One metric record per bulk send, counting its mails: which message a mail answered is
    // its message's log line (checked above for the correlation id), which carries its id.
    assert!(
        counted
            .iter()
            .all(|r| r["MailsSent"].as_f64() >= Some(1.0) && r.get("correlation_id").is_none()),
        "{counted:?}"
    );
    assert_eq!(mail.len(), 1, "exactly one welcome mail");
    assert_eq!(mail[0].subject, "Welcome to Evently, Ada <Lovelace>");
    assert!(
        mail[0].html.contains("Ada &lt;Lovelace&gt;"),
        "display name escaped in HTML"
    );
    assert!(mail[0].text.contains("Hi Ada <Lovelace>,"));

    let login = log_in(&stack, &email, PASSWORD).await;
    assert_eq!(login.status(), 200);
    let token: Value = login.json().await.unwrap();
    assert_eq!(token["token_type"], "Bearer");
    assert!(token["expires_in"].as_i64().unwrap() <= 3600);
    let access = token["access_token"].as_str().unwrap();

    let me: Value = stack
        .http
        .get(stack.url("/me"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["id"], user["id"]);
    let created = create_event_with(&stack, access).await;
    assert_eq!(created.status(), 201);
    let event: Value = created.json().await.unwrap();
    assert_eq!(event["organizer_id"], user["id"]);
}

#[tokio::test]
async fn the_same_user_created_delivered_three_times_still_yields_one_mail() {
    let stack = Stack::load().await;
    let config = sdk_config().await;
    let logs = aws_sdk_cloudwatchlogs::Client::new(&config);
    let email = unique_email();
    let correlation = correlation_id("welcome-dup");
    assert_eq!(sign_up(&stack, &email, &correlation).await.status(), 201);
    eventually("the first welcome mail", PROPAGATION, || async {
        (!mail_to(&stack.http, &email).await.is_empty()).then_some(())
    })
    .await;
    let envelope = outbox_envelope(&stack, &correlation).await;
    let since = now_ms() - 1_000;

    redeliver(
        &stack,
        &envelope,
        "evently.user.created.v1",
        &correlation,
        2,
    )
    .await;

    eventually(
        "two skipped redeliveries in the consumer log",
        PROPAGATION,
        || async {
            let lines = stack
                .log_lines(&logs, "WelcomeEmailFunctionName", since)
                .await;
            let skipped = lines
                .iter()
                .filter(|l| {
                    // Skipped by the idempotency kit's record, or as a repeat within one batch.
                    l.contains(&correlation)
                        && (l.contains("already sent; envelope skipped")
                            || l.contains("already handled in this batch; envelope skipped"))
                })
                .count();
            (skipped >= 2).then_some(())
        },
    )
    .await;
    assert_eq!(mail_to(&stack.http, &email).await.len(), 1);
}

#[tokio::test]
async fn forged_expired_and_misaddressed_tokens_are_refused() {
    let stack = Stack::load().await;
    let now = chrono::Utc::now().timestamp();
    let issuer = stack.signer.claims_for("u", now).iss;
    let audience = stack.signer.claims_for("u", now).aud;

    let stranger = TokenSigner::new(&KeyRing::generate().current, &issuer, &audience, 600).unwrap();
    let other_key = stranger.sign(&stranger.claims_for("e2e-user", now));
    let mut expired = stack.signer.claims_for("e2e-user", now - 7200);
    expired.exp = now - 3600;
    let expired = stack.signer.sign(&expired);
    let mut wrong_audience = stack.signer.claims_for("e2e-user", now);
    wrong_audience.aud = "someone-else".into();
    let wrong_audience = stack.signer.sign(&wrong_audience);
    let mut wrong_issuer = stack.signer.claims_for("e2e-user", now);
    wrong_issuer.iss = "https://issuer.evil.example".into();
    let wrong_issuer = stack.signer.sign(&wrong_issuer);
    let mut not_yet_valid = stack.signer.claims_for("e2e-user", now + 3600);
    not_yet_valid.nbf = now + 3600;
    let not_yet_valid = stack.signer.sign(&not_yet_valid);
    let valid = stack.token("e2e-user");
    let (signed_part, signature) = valid.rsplit_once('.').unwrap();
    let mut flipped: Vec<u8> = URL_SAFE_NO_PAD.decode(signature).unwrap();
    flipped[0] ^= 0x01;
    let tampered_signature = format!("{signed_part}.{}", URL_SAFE_NO_PAD.encode(flipped));
    let (header_part, _) = signed_part.split_once('.').unwrap();
    let mut escalated = serde_json::to_value(stack.signer.claims_for("e2e-user", now)).unwrap();
    escalated["sub"] = json!("someone-else");
    escalated["roles"] = json!(["admin"]);
    let tampered_payload = format!(
        "{header_part}.{}.{signature}",
        URL_SAFE_NO_PAD.encode(escalated.to_string())
    );
    let claims = serde_json::to_value(stack.signer.claims_for("e2e-user", now)).unwrap();
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let kid = stack.ring.current.kid.clone();
    let alg_none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "kid": kid})),
        b64(&claims)
    );
    let hmac = jsonwebtoken::encode(
        &jsonwebtoken::Header {
            kid: Some(kid),
            ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256)
        },
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(stack.ring.current.public_key.as_bytes()).unwrap(),
    )
    .unwrap();

    for (name, token) in [
        ("another key", other_key),
        ("expired", expired),
        ("wrong audience", wrong_audience),
        ("wrong issuer", wrong_issuer),
        ("not yet valid", not_yet_valid),
        ("tampered signature", tampered_signature),
        ("tampered payload", tampered_payload),
        ("alg none", alg_none),
        ("HS256 keyed with the public key", hmac),
    ] {
        let response = create_event_with(&stack, &token).await;
        assert_eq!(response.status(), 401, "{name}");
        assert!(
            response.headers().contains_key("www-authenticate"),
            "{name}"
        );
    }
    let valid = create_event_with(&stack, &stack.token("e2e-user")).await;
    assert_eq!(valid.status(), 201, "the control token is accepted");
}

#[tokio::test]
async fn a_duplicate_signup_conflicts_and_failed_logins_lock_the_account() {
    let stack = Stack::load().await;
    let email = unique_email();
    assert_eq!(
        sign_up(&stack, &email, &correlation_id("lock"))
            .await
            .status(),
        201
    );

    let again = sign_up(&stack, &email.to_uppercase(), &correlation_id("lock")).await;
    let unknown = log_in(&stack, &unique_email(), "not the password").await;
    let mut wrong = Vec::new();
    for _ in 0..5 {
        wrong.push(log_in(&stack, &email, "not the password").await);
    }
    let locked = log_in(&stack, &email, PASSWORD).await;

    assert_eq!(again.status(), 409);
    assert_eq!(again.headers()["content-type"], "application/problem+json");
    assert_eq!(unknown.status(), 401);
    let unknown_body: Value = unknown.json().await.unwrap();
    for response in wrong {
        assert_eq!(response.status(), 401);
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body["detail"], unknown_body["detail"],
            "same answer as an unknown email"
        );
    }
    assert_eq!(locked.status(), 429);
    let retry_after: i64 = locked.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry_after));
}

#[tokio::test]
async fn jwks_publishes_the_key_the_tokens_are_signed_with() {
    let stack = Stack::load().await;

    let jwks: Value = stack
        .http
        .get(stack.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    let keys = jwks["keys"].as_array().unwrap();
    let current = keys
        .iter()
        .find(|k| k["kid"] == stack.ring.current.kid.as_str())
        .expect("the current key is published");
    assert_eq!(current["x"], stack.ring.current.public_key.as_str());
    assert!(keys.iter().all(|k| k.get("d").is_none()));
}
