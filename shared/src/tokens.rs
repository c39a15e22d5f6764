//! Access tokens: EdDSA (Ed25519) JWTs, the key ring they are signed with, and their checks.
//!
//! The key ring holds the current signing key and the previous one. Tokens are signed with the
//! current key and name it in their `kid` header; verifiers accept either key, so a rotation
//! never invalidates tokens issued just before it. Private keys never leave [`KeyRing`] and
//! [`TokenSigner`], and neither prints them.

use std::fmt;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::domain::UserId;

/// Longest lifetime a token may be issued with.
pub const MAX_TOKEN_TTL_SECONDS: i64 = 3600;
/// Clock skew tolerated between the issuer and a verifier.
const LEEWAY_SECONDS: u64 = 30;

/// A public key as verifiers know it: the key id and the JWK `x` value (base64url).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKey {
    pub kid: String,
    pub x: String,
}

/// Parses `kid:x,kid:x` (the `JWT_PUBLIC_KEYS` format): short, one line, safe in an env var.
pub fn parse_public_keys(raw: &str) -> Result<Vec<PublicKey>, BadKey> {
    let keys: Vec<PublicKey> = raw
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (kid, x) = part.split_once(':').ok_or(BadKey)?;
            if kid.is_empty() || URL_SAFE_NO_PAD.decode(x).map(|b| b.len()) != Ok(32) {
                return Err(BadKey);
            }
            Ok(PublicKey {
                kid: kid.to_owned(),
                x: x.to_owned(),
            })
        })
        .collect::<Result<_, _>>()?;
    if keys.is_empty() {
        return Err(BadKey);
    }
    Ok(keys)
}

pub fn format_public_keys(keys: &[PublicKey]) -> String {
    keys.iter()
        .map(|k| format!("{}:{}", k.kid, k.x))
        .collect::<Vec<_>>()
        .join(",")
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a token key is malformed")]
pub struct BadKey;

/// One Ed25519 key pair as stored in the secret. The private half is PKCS#8 DER, base64.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredKey {
    pub kid: String,
    pub private_key: String,
    pub public_key: String,
}

impl fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .field("public_key", &self.public_key)
            .field("private_key", &"<redacted>")
            .finish()
    }
}

impl StoredKey {
    /// A fresh key pair from the system's secure random source.
    pub fn generate() -> Self {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("the system RNG works");
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("a fresh key parses");
        let public_key = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
        // The key id is derived from the public key, so it can be recomputed and never collides.
        let kid = public_key.chars().take(16).collect();
        Self {
            kid,
            private_key: STANDARD.encode(pkcs8.as_ref()),
            public_key,
        }
    }

    pub fn public(&self) -> PublicKey {
        PublicKey {
            kid: self.kid.clone(),
            x: self.public_key.clone(),
        }
    }

    fn pkcs8(&self) -> Result<Vec<u8>, BadKey> {
        let der = STANDARD.decode(&self.private_key).map_err(|_| BadKey)?;
        // Refuse a private key that does not match the public key it is filed under.
        let pair = Ed25519KeyPair::from_pkcs8(&der).map_err(|_| BadKey)?;
        if URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()) != self.public_key {
            return Err(BadKey);
        }
        Ok(der)
    }
}

/// The signing keys, as kept in Secrets Manager: the current one and the one before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRing {
    pub current: StoredKey,
    #[serde(default)]
    pub previous: Option<StoredKey>,
}

impl KeyRing {
    pub fn generate() -> Self {
        Self {
            current: StoredKey::generate(),
            previous: None,
        }
    }

    /// A new current key; the old current key is kept as previous, the older one dropped.
    pub fn rotate(self) -> Self {
        Self {
            current: StoredKey::generate(),
            previous: Some(self.current),
        }
    }

    pub fn from_json(raw: &str) -> Result<Self, BadKey> {
        let ring: Self = serde_json::from_str(raw).map_err(|_| BadKey)?;
        ring.current.pkcs8()?;
        if let Some(previous) = &ring.previous {
            previous.pkcs8()?;
        }
        Ok(ring)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a key ring always serialises")
    }

    pub fn public_keys(&self) -> Vec<PublicKey> {
        std::iter::once(&self.current)
            .chain(self.previous.as_ref())
            .map(StoredKey::public)
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub iss: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    /// Extra powers, e.g. `admin`. Absent for ordinary users.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

/// Who a verified token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub user_id: UserId,
    pub roles: Vec<String>,
}

impl Subject {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

/// What verifying functions need: the issuer's public keys and the expected `iss` and `aud`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenConfig {
    pub public_keys: Vec<PublicKey>,
    pub issuer: String,
    pub audience: String,
}

impl TokenConfig {
    /// `JWT_PUBLIC_KEYS`, `JWT_ISSUER` and `JWT_AUDIENCE`, as every verifying function reads them.
    pub fn from_env() -> Result<Self, crate::config::ConfigError> {
        use crate::config::{ConfigError, required};
        Ok(Self {
            public_keys: parse_public_keys(&required("JWT_PUBLIC_KEYS")?).map_err(|e| {
                ConfigError::Invalid {
                    name: "JWT_PUBLIC_KEYS",
                    reason: e.to_string(),
                }
            })?,
            issuer: required("JWT_ISSUER")?,
            audience: required("JWT_AUDIENCE")?,
        })
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("a bearer token is required")]
    Missing,
    #[error("the token is invalid")]
    Invalid,
    #[error("the token has expired")]
    Expired,
}

impl TokenError {
    /// What the client is told: nothing about which check failed, beyond expiry.
    pub fn public_reason(&self) -> &'static str {
        match self {
            Self::Missing => "a bearer token is required",
            Self::Invalid => "the token is invalid",
            Self::Expired => "the token has expired",
        }
    }
}

/// Checks tokens. EdDSA is pinned here, never taken from the token, so `alg: none` and
/// HMAC-keyed-with-the-public-key forgeries fail; the key is chosen by `kid` among ours only.
#[derive(Clone)]
pub struct TokenVerifier {
    keys: Vec<(String, DecodingKey)>,
    validation: Validation,
}

impl fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kids: Vec<&str> = self.keys.iter().map(|(kid, _)| kid.as_str()).collect();
        f.debug_struct("TokenVerifier")
            .field("kids", &kids)
            .finish()
    }
}

impl TokenVerifier {
    pub fn new(config: &TokenConfig) -> Result<Self, BadKey> {
        if config.public_keys.is_empty() {
            return Err(BadKey);
        }
        let keys = config
            .public_keys
            .iter()
            .map(|key| {
                if URL_SAFE_NO_PAD.decode(&key.x).map(|b| b.len()) != Ok(32) {
                    return Err(BadKey);
                }
                let decoding = DecodingKey::from_ed_components(&key.x).map_err(|_| BadKey)?;
                Ok((key.kid.clone(), decoding))
            })
            .collect::<Result<_, _>>()?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub", "nbf"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECONDS;
        Ok(Self { keys, validation })
    }

    pub fn verify(&self, token: &str) -> Result<Subject, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Invalid);
        }
        let kid = header.kid.ok_or(TokenError::Invalid)?;
        let (_, key) = self
            .keys
            .iter()
            .find(|(known, _)| *known == kid)
            .ok_or(TokenError::Invalid)?;
        let data =
            jsonwebtoken::decode::<Claims>(token, key, &self.validation).map_err(|error| {
                match error.kind() {
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                    _ => TokenError::Invalid,
                }
            })?;
        let user_id = UserId::parse("sub", &data.claims.sub).map_err(|_| TokenError::Invalid)?;
        Ok(Subject {
            user_id,
            roles: data.claims.roles,
        })
    }
}

/// Issues tokens with the current key of a [`KeyRing`].
pub struct TokenSigner {
    key: EncodingKey,
    kid: String,
    issuer: String,
    audience: String,
    ttl_seconds: i64,
}

impl fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSigner")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// A freshly issued token and how long it lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    pub token: String,
    pub expires_in: i64,
}

impl TokenSigner {
    pub fn new(
        key: &StoredKey,
        issuer: &str,
        audience: &str,
        ttl_seconds: i64,
    ) -> Result<Self, BadKey> {
        Ok(Self {
            key: EncodingKey::from_ed_der(&key.pkcs8()?),
            kid: key.kid.clone(),
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            ttl_seconds: ttl_seconds.clamp(1, MAX_TOKEN_TTL_SECONDS),
        })
    }

    /// A token for `sub`, valid from `now` (Unix seconds).
    pub fn issue(&self, sub: &UserId, now: i64) -> IssuedToken {
        self.issue_with_roles(sub, &[], now)
    }

    pub fn issue_with_roles(&self, sub: &UserId, roles: &[String], now: i64) -> IssuedToken {
        let mut claims = self.claims_for(sub.as_str(), now);
        claims.roles = roles.to_vec();
        IssuedToken {
            token: self.sign(&claims),
            expires_in: self.ttl_seconds,
        }
    }

    /// Signs arbitrary claims; tests use it to build expired or mis-addressed tokens.
    pub fn sign(&self, claims: &Claims) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).expect("an Ed25519 key always signs")
    }

    /// The claims [`Self::issue`] would sign for `sub` at `now`.
    pub fn claims_for(&self, sub: &str, now: i64) -> Claims {
        Claims {
            sub: sub.to_owned(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            exp: now + self.ttl_seconds,
            iat: now,
            nbf: now,
            jti: ulid::Ulid::generate().to_string(),
            roles: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISS: &str = "https://issuer.test";
    const AUD: &str = "evently-api";

    fn setup() -> (KeyRing, TokenSigner, TokenVerifier) {
        let ring = KeyRing::generate();
        let signer = TokenSigner::new(&ring.current, ISS, AUD, 600).unwrap();
        let verifier = TokenVerifier::new(&TokenConfig {
            public_keys: ring.public_keys(),
            issuer: ISS.into(),
            audience: AUD.into(),
        })
        .unwrap();
        (ring, signer, verifier)
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    fn b64(value: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(value.to_string())
    }

    #[test]
    fn a_token_issued_by_the_current_key_verifies() {
        let (_, signer, verifier) = setup();
        let user = UserId::parse("sub", "user-1").unwrap();

        let issued = signer.issue(&user, now());

        assert_eq!(verifier.verify(&issued.token).map(|s| s.user_id), Ok(user));
        assert_eq!(issued.expires_in, 600);
    }

    #[test]
    fn roles_travel_in_the_token() {
        let (_, signer, verifier) = setup();
        let user = UserId::parse("sub", "boss").unwrap();

        let admin = signer.issue_with_roles(&user, &["admin".to_owned()], now());
        let plain = signer.issue(&user, now());

        assert!(verifier.verify(&admin.token).unwrap().has_role("admin"));
        assert!(!verifier.verify(&plain.token).unwrap().has_role("admin"));
    }

    #[test]
    fn tokens_signed_before_a_rotation_still_verify_after_it() {
        let (ring, old_signer, _) = setup();
        let rotated = ring.rotate();
        let verifier = TokenVerifier::new(&TokenConfig {
            public_keys: rotated.public_keys(),
            issuer: ISS.into(),
            audience: AUD.into(),
        })
        .unwrap();
        let new_signer = TokenSigner::new(&rotated.current, ISS, AUD, 600).unwrap();
        let user = UserId::parse("sub", "u").unwrap();

        assert!(
            verifier
                .verify(&old_signer.issue(&user, now()).token)
                .is_ok()
        );
        assert!(
            verifier
                .verify(&new_signer.issue(&user, now()).token)
                .is_ok()
        );
        assert_eq!(rotated.public_keys().len(), 2);
    }

    #[test]
    fn expired_not_yet_valid_wrong_issuer_and_wrong_audience_are_rejected() {
        let (_, signer, verifier) = setup();
        let t = now();
        let mut expired = signer.claims_for("u", t - 7200);
        expired.exp = t - 3600;
        let mut early = signer.claims_for("u", t + 3600);
        early.exp = t + 7200;
        let mut issuer = signer.claims_for("u", t);
        issuer.iss = "https://evil.test".into();
        let mut audience = signer.claims_for("u", t);
        audience.aud = "another-api".into();

        assert_eq!(
            verifier.verify(&signer.sign(&expired)),
            Err(TokenError::Expired)
        );
        assert_eq!(
            verifier.verify(&signer.sign(&early)),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            verifier.verify(&signer.sign(&issuer)),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            verifier.verify(&signer.sign(&audience)),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn alg_none_and_hmac_with_the_public_key_are_rejected() {
        let (ring, signer, verifier) = setup();
        let claims = serde_json::to_value(signer.claims_for("u", now())).unwrap();
        let kid = ring.current.kid.clone();
        let none = format!(
            "{}.{}.",
            b64(&serde_json::json!({"alg": "none", "typ": "JWT", "kid": kid})),
            b64(&claims)
        );
        let hmac_header = Header {
            kid: Some(kid),
            ..Header::new(Algorithm::HS256)
        };
        let confused = jsonwebtoken::encode(
            &hmac_header,
            &claims,
            &EncodingKey::from_secret(ring.current.public_key.as_bytes()).unwrap(),
        )
        .unwrap();

        assert_eq!(verifier.verify(&none), Err(TokenError::Invalid));
        assert_eq!(verifier.verify(&confused), Err(TokenError::Invalid));
    }

    #[test]
    fn a_tampered_signature_or_payload_is_rejected() {
        let (_, signer, verifier) = setup();
        let token = signer
            .issue(&UserId::parse("sub", "u").unwrap(), now())
            .token;
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let forged_claims = serde_json::to_value(signer.claims_for("admin", now())).unwrap();
        parts[1] = b64(&forged_claims);

        assert_eq!(verifier.verify(&parts.join(".")), Err(TokenError::Invalid));
        assert_eq!(verifier.verify("not.a.token"), Err(TokenError::Invalid));
    }

    #[test]
    fn a_token_from_an_unknown_key_is_rejected() {
        let (_, _, verifier) = setup();
        let stranger = TokenSigner::new(&StoredKey::generate(), ISS, AUD, 600).unwrap();

        let token = stranger
            .issue(&UserId::parse("sub", "u").unwrap(), now())
            .token;

        assert_eq!(verifier.verify(&token), Err(TokenError::Invalid));
    }

    #[test]
    fn public_keys_round_trip_through_their_env_format_and_bad_ones_are_refused() {
        let ring = KeyRing::generate().rotate();
        let raw = format_public_keys(&ring.public_keys());

        assert_eq!(parse_public_keys(&raw).unwrap(), ring.public_keys());
        assert_eq!(parse_public_keys(""), Err(BadKey));
        assert_eq!(parse_public_keys("kid-without-key"), Err(BadKey));
        assert_eq!(parse_public_keys("k:c2hvcnQ"), Err(BadKey));
    }

    #[test]
    fn a_key_ring_never_prints_a_private_key() {
        let ring = KeyRing::generate();
        let printed = format!("{ring:?}");
        assert!(!printed.contains(&ring.current.private_key));
        assert!(KeyRing::from_json(&ring.to_json()).is_ok());
    }

    #[test]
    fn a_key_ring_with_a_mismatched_key_pair_is_refused() {
        let mut ring = KeyRing::generate();
        ring.current.public_key = StoredKey::generate().public_key;
        assert_eq!(KeyRing::from_json(&ring.to_json()), Err(BadKey));
    }

    #[test]
    fn a_token_lifetime_is_capped_at_one_hour() {
        let signer = TokenSigner::new(&StoredKey::generate(), ISS, AUD, 86_400).unwrap();
        assert_eq!(
            signer
                .issue(&UserId::parse("sub", "u").unwrap(), now())
                .expires_in,
            3600
        );
    }
}
