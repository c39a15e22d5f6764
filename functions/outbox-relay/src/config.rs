use evently_shared::config::{ConfigError, required};

/// Everything `outbox-relay` reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    pub topic_arn: String,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            topic_arn: required("EVENTS_TOPIC_ARN")?,
        })
    }
}
