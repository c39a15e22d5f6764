use evently_shared::config::{ConfigError, required};
use evently_shared::tokens::TokenConfig;

/// Everything `events-api` reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    pub events_table: String,
    pub read_model_table: String,
    pub analytics_table: String,
    pub idempotency_table: String,
    pub tokens: TokenConfig,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            events_table: required("EVENTS_TABLE")?,
            read_model_table: required("READ_MODEL_TABLE")?,
            analytics_table: required("ANALYTICS_TABLE")?,
            idempotency_table: required("IDEMPOTENCY_TABLE")?,
            tokens: TokenConfig::from_env()?,
        })
    }
}
