//! Signing up, logging in, and reading one's own profile.

use crate::domain::{DisplayName, Email, Password, Timestamp, User, UserId};
use crate::envelope::{CorrelationId, DomainEvent};
use crate::password::{HashError, PasswordHasher};
use crate::ports::{LoginGate, LoginThrottle, SignUpError, StoreError, UserStore};
use crate::tokens::{IssuedToken, TokenSigner};

/// The CloudEvents `source` of everything the auth API emits.
pub const SOURCE: &str = "/evently/auth-api";

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("the email address is already registered")]
    EmailTaken,
    /// Unknown email and wrong password are one error, so callers cannot tell them apart.
    #[error("invalid email or password")]
    InvalidCredentials,
    #[error("too many failed logins; retry in {retry_after_seconds} s")]
    Locked { retry_after_seconds: i64 },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Hash(#[from] HashError),
}

impl From<SignUpError> for AccountError {
    fn from(error: SignUpError) -> Self {
        match error {
            SignUpError::EmailTaken => Self::EmailTaken,
            SignUpError::Store(error) => Self::Store(error),
        }
    }
}

/// Creates an account and announces it (`UserCreated`) through the outbox, atomically.
pub async fn sign_up(
    store: &impl UserStore,
    hasher: &PasswordHasher,
    email: Email,
    password: Password,
    display_name: DisplayName,
    correlation_id: CorrelationId,
    now: Timestamp,
) -> Result<User, AccountError> {
    let hash = hasher.hash(password).await?;
    let user = User::create(email, display_name, now);
    let envelope =
        DomainEvent::UserCreated(user.clone()).into_envelope(SOURCE, correlation_id, now);
    store.create(&user, &hash, &envelope).await?;
    Ok(user)
}

/// The role that unlocks operator views such as daily analytics.
pub const ADMIN_ROLE: &str = "admin";

/// Who a correct password proved the caller to be, with the roles their token carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    pub user_id: UserId,
    pub roles: Vec<String>,
}

impl Authenticated {
    /// The access token for this caller, valid from `now`.
    pub fn token(&self, signer: &TokenSigner, now: Timestamp) -> IssuedToken {
        signer.issue_with_roles(&self.user_id, &self.roles, now.unix_seconds())
    }
}

/// Checks the password (with the admin role for addresses in `admins`). Five failures within
/// the window lock the account until the window ends; a success clears the count. Signing is
/// left to the caller ([`Authenticated::token`]), so that it can fetch its key meanwhile.
pub async fn authenticate(
    store: &impl UserStore,
    throttle: &impl LoginThrottle,
    hasher: &PasswordHasher,
    admins: &[Email],
    email: Email,
    password: Password,
    now: Timestamp,
) -> Result<Authenticated, AccountError> {
    if let LoginGate::Locked {
        retry_after_seconds,
    } = throttle.gate(&email, now).await?
    {
        return Err(AccountError::Locked {
            retry_after_seconds,
        });
    }
    let credentials = store.credentials(&email).await?;
    let stored_hash = credentials.as_ref().map(|c| c.password_hash.clone());
    // Runs for unknown addresses too (against a dummy hash): equal cost, equal answer.
    let valid = hasher.verify(password, stored_hash).await;
    match credentials {
        Some(credentials) if valid => {
            throttle.reset(&email).await?;
            let roles: Vec<String> = if admins.contains(&email) {
                vec![ADMIN_ROLE.to_owned()]
            } else {
                Vec::new()
            };
            Ok(Authenticated {
                user_id: credentials.user_id,
                roles,
            })
        }
        _ => {
            throttle.record_failure(&email, now).await?;
            Err(AccountError::InvalidCredentials)
        }
    }
}

pub async fn profile(store: &impl UserStore, id: &UserId) -> Result<Option<User>, AccountError> {
    Ok(store.profile(id).await?)
}
