use evently_shared::config::{ConfigError, required};
use evently_shared::http::TokenConfig;

/// Everything `events-api` reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    pub events_table: String,
    pub read_model_table: String,
    pub tokens: TokenConfig,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            events_table: required("EVENTS_TABLE")?,
            read_model_table: required("READ_MODEL_TABLE")?,
            tokens: TokenConfig {
                public_key: required("JWT_PUBLIC_KEY")?,
                issuer: required("JWT_ISSUER")?,
                audience: required("JWT_AUDIENCE")?,
            },
        })
    }
}
