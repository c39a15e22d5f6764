use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use lambda_http::Request;
use lambda_http::http::header;
use serde::{Deserialize, Serialize};

use crate::domain::UserId;

/// What verifying functions need to check a token: the issuer's Ed25519 public key (the JWK
/// `x` value, base64url) and the expected issuer and audience.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenConfig {
    pub public_key: String,
    pub issuer: String,
    pub audience: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub iss: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: UserId,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("a bearer token is required")]
    Missing,
    #[error("the token is invalid")]
    Invalid,
    #[error("the token has expired")]
    Expired,
}

impl AuthError {
    /// A reason safe to show the client: no hint of which check failed beyond expiry.
    pub fn public_reason(&self) -> &'static str {
        match self {
            Self::Missing => "a bearer token is required",
            Self::Invalid => "the token is invalid",
            Self::Expired => "the token has expired",
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the token public key is not a base64url Ed25519 key")]
pub struct BadPublicKey;

/// Checks bearer tokens. Only EdDSA is accepted: the algorithm is pinned here, never read from
/// the token, so `alg: none` and HMAC-with-the-public-key forgeries fail.
#[derive(Clone)]
pub struct TokenVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier").finish_non_exhaustive()
    }
}

/// Clock skew tolerated between the issuer and us.
const LEEWAY_SECONDS: u64 = 30;

impl TokenVerifier {
    pub fn new(config: &TokenConfig) -> Result<Self, BadPublicKey> {
        let key = DecodingKey::from_ed_components(&config.public_key).map_err(|_| BadPublicKey)?;
        if base64_len(&config.public_key) != Some(32) {
            return Err(BadPublicKey);
        }
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub", "nbf"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECONDS;
        Ok(Self { key, validation })
    }

    pub fn verify_token(&self, token: &str) -> Result<Caller, AuthError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(
            |error| match error.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid,
            },
        )?;
        let user_id = UserId::parse("sub", &data.claims.sub).map_err(|_| AuthError::Invalid)?;
        Ok(Caller { user_id })
    }

    /// The caller named by the request's `Authorization: Bearer` header.
    pub fn verify(&self, request: &Request) -> Result<Caller, AuthError> {
        let value = request
            .headers()
            .get(header::AUTHORIZATION)
            .ok_or(AuthError::Missing)?
            .to_str()
            .map_err(|_| AuthError::Invalid)?;
        let (scheme, token) = value.split_once(' ').ok_or(AuthError::Invalid)?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(AuthError::Invalid);
        }
        self.verify_token(token.trim())
    }

    /// For routes anyone may call: no header means anonymous, a bad token is still an error.
    pub fn verify_optional(&self, request: &Request) -> Result<Option<Caller>, AuthError> {
        match self.verify(request) {
            Ok(caller) => Ok(Some(caller)),
            Err(AuthError::Missing) => Ok(None),
            Err(error) => Err(error),
        }
    }
}

fn base64_len(raw: &str) -> Option<usize> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw.trim_end_matches('='))
        .ok()
        .map(|b| b.len())
}

/// Signs tokens with an Ed25519 private key (PKCS#8). The issuing side of [`TokenVerifier`].
pub struct TokenSigner {
    key: EncodingKey,
    kid: String,
    issuer: String,
    audience: String,
}

impl TokenSigner {
    pub fn from_pkcs8_der(der: &[u8], kid: &str, issuer: &str, audience: &str) -> Self {
        Self {
            key: EncodingKey::from_ed_der(der),
            kid: kid.to_owned(),
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
        }
    }

    pub fn from_pem(pem: &[u8], kid: &str, issuer: &str, audience: &str) -> Option<Self> {
        Some(Self {
            key: EncodingKey::from_ed_pem(pem).ok()?,
            kid: kid.to_owned(),
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
        })
    }

    /// A token for `sub`, valid from `now` for `ttl_seconds`.
    pub fn issue(&self, sub: &str, now: i64, ttl_seconds: i64) -> String {
        let claims = Claims {
            sub: sub.to_owned(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            exp: now + ttl_seconds,
            iat: now,
            nbf: now,
            jti: Some(ulid::Ulid::generate().to_string()),
        };
        self.sign(&claims)
    }

    pub fn sign(&self, claims: &Claims) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).expect("an Ed25519 key always signs")
    }
}
