use evently_shared::config::{ConfigError, required};

/// Everything `read-model-updater` reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    pub read_model_table: String,
    pub idempotency_table: String,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            read_model_table: required("READ_MODEL_TABLE")?,
            idempotency_table: required("IDEMPOTENCY_TABLE")?,
        })
    }
}
