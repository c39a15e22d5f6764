use async_trait::async_trait;
use aws_sdk_sns::Client;
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};

use crate::ports::{OutgoingMessage, PublishError, Published, Publisher};

/// Publishes envelopes to the domain-event topic with the attributes subscriptions filter on.
#[derive(Debug, Clone)]
pub struct SnsPublisher {
    client: Client,
    topic_arn: String,
}

impl SnsPublisher {
    pub fn new(client: Client, topic_arn: impl Into<String>) -> Self {
        Self {
            client,
            topic_arn: topic_arn.into(),
        }
    }
}

fn string_attribute(value: &str) -> Result<MessageAttributeValue, PublishError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| PublishError::Unavailable(Box::new(e)))
}

#[async_trait]
impl Publisher for SnsPublisher {
    const MAX_BATCH: usize = 10;

    async fn publish(&self, batch: &[OutgoingMessage]) -> Result<Vec<Published>, PublishError> {
        let entries = batch
            .iter()
            .enumerate()
            .map(|(i, message)| {
                PublishBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message(&message.body)
                    .message_attributes("type", string_attribute(&message.event_type)?)
                    .message_attributes("correlationid", string_attribute(&message.correlation_id)?)
                    .build()
                    .map_err(|e| PublishError::Unavailable(Box::new(e)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let output = self
            .client
            .publish_batch()
            .topic_arn(&self.topic_arn)
            .set_publish_batch_request_entries(Some(entries))
            .send()
            .await
            .map_err(|e| PublishError::Unavailable(Box::new(e.into_service_error())))?;

        // An entry counts as published only if SNS names it among the successes; anything it
        // does not mention is treated as failed, so nothing is dropped silently.
        let mut outcomes = vec![
            Published::Rejected {
                code: "Missing".to_owned(),
                message: "not reported by PublishBatch".to_owned(),
            };
            batch.len()
        ];
        for ok in output.successful() {
            if let Some(outcome) = ok
                .id()
                .and_then(|id| id.parse::<usize>().ok())
                .and_then(|slot| outcomes.get_mut(slot))
            {
                *outcome = Published::Accepted;
            }
        }
        for failed in output.failed() {
            if let Some(outcome) = failed
                .id()
                .parse::<usize>()
                .ok()
                .and_then(|i| outcomes.get_mut(i))
            {
                *outcome = Published::Rejected {
                    code: failed.code().to_owned(),
                    message: failed.message().unwrap_or_default().to_owned(),
                };
            }
        }
        Ok(outcomes)
    }
}
