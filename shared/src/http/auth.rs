//! Who is calling: the `Authorization: Bearer` header, checked by a [`TokenVerifier`].

use lambda_http::Request;
use lambda_http::http::header;

use super::ApiError;
use crate::domain::UserId;
use crate::tokens::{Subject, TokenError, TokenVerifier};

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: UserId,
    pub roles: Vec<String>,
}

impl Caller {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

impl From<Subject> for Caller {
    fn from(subject: Subject) -> Self {
        Self {
            user_id: subject.user_id,
            roles: subject.roles,
        }
    }
}

fn bearer(request: &Request) -> Result<&str, TokenError> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or(TokenError::Missing)?
        .to_str()
        .map_err(|_| TokenError::Invalid)?;
    let (scheme, token) = value.split_once(' ').ok_or(TokenError::Invalid)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(TokenError::Invalid);
    }
    Ok(token)
}

fn unauthenticated(error: TokenError) -> ApiError {
    ApiError::Unauthenticated(error.public_reason())
}

/// The caller of a route that requires a token.
pub fn caller(verifier: &TokenVerifier, request: &Request) -> Result<Caller, ApiError> {
    let token = bearer(request).map_err(unauthenticated)?;
    Ok(verifier.verify(token).map_err(unauthenticated)?.into())
}

/// The caller of a route anyone may call: no header means anonymous, a bad token is an error.
pub fn optional_caller(
    verifier: &TokenVerifier,
    request: &Request,
) -> Result<Option<Caller>, ApiError> {
    match bearer(request) {
        Err(TokenError::Missing) => Ok(None),
        Err(error) => Err(unauthenticated(error)),
        Ok(token) => Ok(Some(
            verifier.verify(token).map_err(unauthenticated)?.into(),
        )),
    }
}
