use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;

use crate::ports::{KeyVault, StoreError};

/// The token key ring in a Secrets Manager secret.
#[derive(Debug, Clone)]
pub struct SecretsManagerVault {
    client: Client,
    secret_id: String,
}

impl SecretsManagerVault {
    pub fn new(client: Client, secret_id: impl Into<String>) -> Self {
        Self {
            client,
            secret_id: secret_id.into(),
        }
    }
}

#[async_trait]
impl KeyVault for SecretsManagerVault {
    async fn read(&self) -> Result<Option<String>, StoreError> {
        match self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .send()
            .await
        {
            Ok(output) => Ok(output.secret_string),
            Err(error) => {
                let error = error.into_service_error();
                if error.is_resource_not_found_exception() {
                    Ok(None)
                } else {
                    Err(StoreError::unavailable(error))
                }
            }
        }
    }

    async fn write(&self, secret: &str) -> Result<(), StoreError> {
        self.client
            .put_secret_value()
            .secret_id(&self.secret_id)
            .secret_string(secret)
            .send()
            .await
            .map_err(|e| StoreError::unavailable(e.into_service_error()))?;
        Ok(())
    }
}
