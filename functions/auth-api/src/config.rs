use evently_shared::config::{ConfigError, parsed_or, required};
use evently_shared::domain::Email;
use evently_shared::tokens::{MAX_TOKEN_TTL_SECONDS, TokenConfig};

/// Everything `auth-api` reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    pub users_table: String,
    pub events_table: String,
    pub idempotency_table: String,
    /// The Secrets Manager secret holding the signing key ring (ARN or name).
    pub key_secret_id: String,
    pub tokens: TokenConfig,
    pub token_ttl_seconds: i64,
    /// Addresses whose tokens carry the admin role (`ADMIN_EMAILS`, comma-separated).
    pub admins: Vec<Email>,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let token_ttl_seconds = parsed_or("TOKEN_TTL_SECONDS", 900_i64)?;
        if !(60..=MAX_TOKEN_TTL_SECONDS).contains(&token_ttl_seconds) {
            return Err(ConfigError::Invalid {
                name: "TOKEN_TTL_SECONDS",
                reason: format!("must be 60 to {MAX_TOKEN_TTL_SECONDS}"),
            });
        }
        Ok(Self {
            users_table: required("USERS_TABLE")?,
            events_table: required("EVENTS_TABLE")?,
            idempotency_table: required("IDEMPOTENCY_TABLE")?,
            key_secret_id: required("JWT_KEY_SECRET_ID")?,
            tokens: TokenConfig::from_env()?,
            token_ttl_seconds,
            admins: std::env::var("ADMIN_EMAILS")
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|raw| !raw.is_empty())
                .map(|raw| {
                    Email::parse("ADMIN_EMAILS", raw).map_err(|e| ConfigError::Invalid {
                        name: "ADMIN_EMAILS",
                        reason: e.to_string(),
                    })
                })
                .collect::<Result<_, _>>()?,
        })
    }
}
