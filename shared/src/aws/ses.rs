use async_trait::async_trait;
use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::operation::send_bulk_email::SendBulkEmailError;
use aws_sdk_sesv2::operation::send_email::SendEmailError;
use aws_sdk_sesv2::types::{
    Body, BulkEmailContent, BulkEmailEntry, BulkEmailStatus, Content, Destination, EmailContent,
    EmailTemplateContent, Message, ReplacementEmailContent, ReplacementTemplate, Template,
};

use crate::ports::{Addressed, BulkMailer, Mail, MailError, MailTemplate, Mailer};

/// SES takes at most this many destinations per `SendBulkEmail`.
const BULK_LIMIT: usize = 50;

/// Sends mail with SES v2 from one configured sender identity: `SendEmail` for one mail,
/// `SendBulkEmail` with the template's content inline for one template to many.
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

/// [`classify`] for a bulk send that failed as a whole.
fn classify_bulk(error: SendBulkEmailError) -> MailError {
    let text = error.to_string();
    match error {
        SendBulkEmailError::TooManyRequestsException(_)
        | SendBulkEmailError::LimitExceededException(_) => MailError::Throttled(text),
        SendBulkEmailError::MessageRejected(_) | SendBulkEmailError::BadRequestException(_) => {
            MailError::Rejected(text)
        }
        _ => MailError::Unavailable(text),
    }
}

/// What one destination's status in a bulk send means, as [`classify`] decides for one mail.
fn entry_result(
    status: Option<&BulkEmailStatus>,
    error: Option<&str>,
    message_id: Option<&str>,
) -> Result<String, MailError> {
    let reason = || {
        format!(
            "{}: {}",
            status.map_or("no status", BulkEmailStatus::as_str),
            error.unwrap_or("no reason given")
        )
    };
    match status {
        Some(BulkEmailStatus::Success) => Ok(message_id.unwrap_or_default().to_owned()),
        Some(BulkEmailStatus::MessageRejected | BulkEmailStatus::InvalidParameter) => {
            Err(MailError::Rejected(reason()))
        }
        Some(BulkEmailStatus::AccountThrottled | BulkEmailStatus::TransientFailure) => {
            Err(MailError::Throttled(reason()))
        }
        _ => Err(MailError::Unavailable(reason())),
    }
}

#[async_trait]
impl BulkMailer for SesMailer {
    async fn send_each(
        &self,
        template: &MailTemplate,
        recipients: &[Addressed],
    ) -> Vec<Result<String, MailError>> {
        let mut results = Vec::with_capacity(recipients.len());
        for chunk in recipients.chunks(BULK_LIMIT) {
            results.extend(self.send_chunk(template, chunk).await);
        }
        results
    }
}

impl SesMailer {
    async fn send_chunk(
        &self,
        template: &MailTemplate,
        recipients: &[Addressed],
    ) -> Vec<Result<String, MailError>> {
        let all = |error: MailError| -> Vec<Result<String, MailError>> {
            recipients.iter().map(|_| Err(error.clone())).collect()
        };
        let content = EmailTemplateContent::builder()
            .subject(&template.subject)
            .text(&template.text)
            .html(&template.html)
            .build();
        let template = Template::builder()
            .template_content(content)
            .template_data("{}")
            .build();
        let mut entries = Vec::with_capacity(recipients.len());
        for recipient in recipients {
            let values: serde_json::Map<String, serde_json::Value> = recipient
                .values
                .iter()
                .map(|(name, value)| ((*name).to_owned(), value.clone().into()))
                .collect();
            let replacement = ReplacementTemplate::builder()
                .replacement_template_data(serde_json::Value::Object(values).to_string())
                .build();
            entries.push(
                BulkEmailEntry::builder()
                    .destination(Destination::builder().to_addresses(&recipient.to).build())
                    .replacement_email_content(
                        ReplacementEmailContent::builder()
                            .replacement_template(replacement)
                            .build(),
                    )
                    .build(),
            );
        }
        let sent = self
            .client
            .send_bulk_email()
            .from_email_address(&self.from)
            .default_content(BulkEmailContent::builder().template(template).build())
            .set_bulk_email_entries(Some(entries))
            .send()
            .await;
        let output = match sent {
            Ok(output) => output,
            Err(error) => return all(classify_bulk(error.into_service_error())),
        };
        let answered = output.bulk_email_entry_results();
        if answered.len() != recipients.len() {
            return all(MailError::Unavailable(format!(
                "SES answered for {} of {} destinations",
                answered.len(),
                recipients.len()
            )));
        }
        answered
            .iter()
            .map(|r| entry_result(r.status(), r.error(), r.message_id()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_bulk_status_is_classified_as_a_single_send_would_be() {
        let result = |status| entry_result(Some(&status), Some("why"), Some("id-1"));

        assert_eq!(result(BulkEmailStatus::Success).unwrap(), "id-1");
        assert!(matches!(
            result(BulkEmailStatus::MessageRejected),
            Err(MailError::Rejected(_))
        ));
        assert!(matches!(
            result(BulkEmailStatus::AccountThrottled),
            Err(MailError::Throttled(_))
        ));
        assert!(matches!(
            result(BulkEmailStatus::AccountSendingPaused),
            Err(MailError::Unavailable(_))
        ));
        assert!(matches!(
            entry_result(None, None, None),
            Err(MailError::Unavailable(_))
        ));
    }
}
