use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};

use super::dynamo::{Item, s};
use crate::domain::Timestamp;
use crate::ports::{Begun, Claim, Completed, Idempotency, StoreError};

const IN_PROGRESS: &str = "IN_PROGRESS";
const COMPLETED: &str = "COMPLETED";

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn key(scope: &str, key: &str) -> Item {
    HashMap::from([("pk".to_owned(), s(format!("{scope}#{key}")))])
}

/// When a claim may be taken: no record, an expired one, or an in-progress one whose lease ran
/// out (its holder died).
const CLAIMABLE: &str = "attribute_not_exists(pk) OR expires_at < :now \
                         OR (#status = :in_progress AND in_progress_expiry < :now)";

/// Idempotency records in their own table (`pk` = `<scope>#<key>`, TTL on `expires_at`).
///
/// The claim is one conditional put, as in Powertools: it succeeds when there is no record,
/// when the record has expired, or when an in-progress record's lease has run out (the
/// invocation that held it died). Expiry is checked in the condition, not left to TTL, which
/// deletes lazily.
#[derive(Debug, Clone)]
pub struct DynamoIdempotency {
    client: Client,
    table: String,
}

impl DynamoIdempotency {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// The transaction entry that records `(scope, key)` as done until `expires_at`, on the
    /// claim's own condition, so it fails where [`Idempotency::begin`] would not start; the
    /// failure carries the record it met ([`Self::is_done`] reads it).
    pub(crate) fn completed(
        &self,
        scope: &str,
        key_of_work: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut item = key(scope, key_of_work);
        item.insert("status".into(), s(COMPLETED));
        item.insert("expires_at".into(), n(expires_at.unix_seconds()));
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(CLAIMABLE)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":now", n(now.unix_seconds()))
            .expression_attribute_values(":in_progress", s(IN_PROGRESS))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(StoreError::unavailable)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Whether a record that refused a claim says the work is done (rather than in progress
    /// elsewhere).
    pub(crate) fn is_done(record: Option<&Item>) -> bool {
        record
            .and_then(|r| r.get("status"))
            .and_then(|v| v.as_s().ok())
            .is_some_and(|status| status == COMPLETED)
    }
}

#[async_trait]
impl Idempotency for DynamoIdempotency {
    async fn begin(
        &self,
        claim: Claim<'_>,
        now: Timestamp,
        in_progress_until: Timestamp,
    ) -> Result<Begun, StoreError> {
        let mut item = key(claim.scope, claim.key);
        item.insert("status".into(), s(IN_PROGRESS));
        item.insert(
            "in_progress_expiry".into(),
            n(in_progress_until.unix_seconds()),
        );
        // An abandoned claim is cleaned up by TTL a day after its lease.
        item.insert(
            "expires_at".into(),
            n(in_progress_until.unix_seconds() + 86_400),
        );
        if let Some(fingerprint) = claim.fingerprint {
            item.insert("fingerprint".into(), s(fingerprint));
        }
        let claimed = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(CLAIMABLE)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":now", n(now.unix_seconds()))
            .expression_attribute_values(":in_progress", s(IN_PROGRESS))
            .send()
            .await;
        match claimed {
            Ok(_) => Ok(Begun::Started),
            Err(error) => {
                let error = error.into_service_error();
                if !error.is_conditional_check_failed_exception() {
                    return Err(StoreError::unavailable(error));
                }
                let existing = self
                    .client
                    .get_item()
                    .table_name(&self.table)
                    .set_key(Some(key(claim.scope, claim.key)))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(|e| StoreError::unavailable(e.into_service_error()))?
                    .item
                    .unwrap_or_default();
                let text = |name: &str| existing.get(name).and_then(|v| v.as_s().ok()).cloned();
                match text("status").as_deref() {
                    Some(COMPLETED) => Ok(Begun::AlreadyDone(Completed {
                        fingerprint: text("fingerprint"),
                        outcome: text("outcome"),
                    })),
                    _ => Ok(Begun::InProgressElsewhere),
                }
            }
        }
    }

    async fn complete(
        &self,
        claim: Claim<'_>,
        outcome: Option<&str>,
        expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(claim.scope, claim.key)))
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":completed", s(COMPLETED))
            .expression_attribute_values(":expires", n(expires_at.unix_seconds()));
        update = match outcome {
            Some(outcome) => update
                .update_expression(
                    "SET #status = :completed, expires_at = :expires, outcome = :outcome \
                     REMOVE in_progress_expiry",
                )
                .expression_attribute_values(":outcome", s(outcome)),
            None => update.update_expression(
                "SET #status = :completed, expires_at = :expires REMOVE in_progress_expiry",
            ),
        };
        update
            .send()
            .await
            .map_err(|e| StoreError::unavailable(e.into_service_error()))?;
        Ok(())
    }

    async fn release(&self, claim: Claim<'_>) -> Result<(), StoreError> {
        let released = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(claim.scope, claim.key)))
            // Never undo completed work.
            .condition_expression("#status = :in_progress")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":in_progress", s(IN_PROGRESS))
            .send()
            .await;
        match released {
            Ok(_) => Ok(()),
            Err(error) => {
                let error = error.into_service_error();
                if error.is_conditional_check_failed_exception() {
                    Ok(())
                } else {
                    Err(StoreError::unavailable(error))
                }
            }
        }
    }
}
