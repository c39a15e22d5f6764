use evently_shared::config::{ConfigError, required};

/// Everything `welcome-email` reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    pub idempotency_table: String,
    /// The verified SES identity mail is sent from.
    pub mail_from: String,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            idempotency_table: required("IDEMPOTENCY_TABLE")?,
            mail_from: required("MAIL_FROM")?,
        })
    }
}
