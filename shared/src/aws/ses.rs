use async_trait::async_trait;
use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::operation::send_email::SendEmailError;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};

use crate::ports::{Mail, MailError, Mailer};

/// Sends mail with SES v2 `SendEmail` from one configured sender identity.
#[derive(Debug, Clone)]
pub struct SesMailer {
    client: Client,
    from: String,
}

impl SesMailer {
    pub fn new(client: Client, from: impl Into<String>) -> Self {
        Self {
            client,
            from: from.into(),
        }
    }
}

fn content(data: &str) -> Result<Content, MailError> {
    Content::builder()
        .data(data)
        .charset("UTF-8")
        .build()
        .map_err(|e| MailError::Rejected(e.to_string()))
}

/// The one place that decides which SES failures a retry can fix.
fn classify(error: SendEmailError) -> MailError {
    let text = error.to_string();
    match error {
        SendEmailError::TooManyRequestsException(_) | SendEmailError::LimitExceededException(_) => {
            MailError::Throttled(text)
        }
        SendEmailError::MessageRejected(_) | SendEmailError::BadRequestException(_) => {
            MailError::Rejected(text)
        }
        // Sending paused, account suspended, sender domain not verified: operator problems
        // that a retry after the fix will get through.
        _ => MailError::Unavailable(text),
    }
}

#[async_trait]
impl Mailer for SesMailer {
    async fn send(&self, mail: &Mail) -> Result<String, MailError> {
        let message = Message::builder()
            .subject(content(&mail.subject)?)
            .body(
                Body::builder()
                    .text(content(&mail.text)?)
                    .html(content(&mail.html)?)
                    .build(),
            )
            .build();
        let output = self
            .client
            .send_email()
            .from_email_address(&self.from)
            .destination(Destination::builder().to_addresses(&mail.to).build())
            .content(EmailContent::builder().simple(message).build())
            .send()
            .await
            .map_err(|e| classify(e.into_service_error()))?;
        Ok(output.message_id.unwrap_or_default())
    }
}
