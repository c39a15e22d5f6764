use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
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

    /// The transaction entry that writes the record of `(scope, key)` as `state`, on the
    /// claim's own condition, so it fails where [`Idempotency::begin`] would not start; the
    /// failure carries the record it met ([`Self::done`] reads it).
    pub(crate) fn record(
        &self,
        scope: &str,
        key_of_work: &str,
        now: Timestamp,
        state: RecordAs,
    ) -> Result<TransactWriteItem, StoreError> {
        let put = self.record_put(Claim::new(scope, key_of_work), now, state)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// The conditional put of a claim's record, alone ([`Idempotency::begin`]) or in a
    /// transaction ([`Self::record`]).
    fn record_put(
        &self,
        claim: Claim<'_>,
        now: Timestamp,
        state: RecordAs,
    ) -> Result<Put, StoreError> {
        let mut item = key(claim.scope, claim.key);
        match state {
            RecordAs::Done { until } => {
                item.insert("status".into(), s(COMPLETED));
                item.insert("expires_at".into(), n(until.unix_seconds()));
            }
            RecordAs::InProgress { until } => {
                item.insert("status".into(), s(IN_PROGRESS));
                item.insert("in_progress_expiry".into(), n(until.unix_seconds()));
                // An abandoned claim is cleaned up by TTL a day after its lease.
                item.insert("expires_at".into(), n(until.unix_seconds() + 86_400));
            }
        }
        if let Some(fingerprint) = claim.fingerprint {
            item.insert("fingerprint".into(), s(fingerprint));
        }
        Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(CLAIMABLE)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":now", n(now.unix_seconds()))
            .expression_attribute_values(":in_progress", s(IN_PROGRESS))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(StoreError::unavailable)
    }

    /// What a record that refused a claim says: done (with what it remembered), or `None`
    /// for in progress elsewhere.
    pub(crate) fn done(record: Option<&Item>) -> Option<Completed> {
        let record = record?;
        let text = |name: &str| record.get(name).and_then(|v| v.as_s().ok()).cloned();
        (text("status").as_deref() == Some(COMPLETED)).then(|| Completed {
            fingerprint: text("fingerprint"),
            outcome: text("outcome"),
        })
    }

    /// The update that marks a held claim done until `expires_at`, keeping an `outcome` to
    /// replay when there is one.
    fn completion(
        &self,
        scope: &str,
        key_of_work: &str,
        outcome: Option<&str>,
        expires_at: Timestamp,
    ) -> aws_sdk_dynamodb::types::builders::UpdateBuilder {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(scope, key_of_work)))
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":completed", s(COMPLETED))
            .expression_attribute_values(":expires", n(expires_at.unix_seconds()));
        match outcome {
            Some(outcome) => update
                .update_expression(
                    "SET #status = :completed, expires_at = :expires, outcome = :outcome \
                     REMOVE in_progress_expiry",
                )
                .expression_attribute_values(":outcome", s(outcome)),
            None => update.update_expression(
                "SET #status = :completed, expires_at = :expires REMOVE in_progress_expiry",
            ),
        }
    }
}

/// How [`DynamoIdempotency::record`] writes a record.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RecordAs {
    /// Done, remembered until `until`: for an effect written in the same transaction.
    Done { until: Timestamp },
    /// Claimed in progress until `until` (the lease), as [`Idempotency::begin`] claims.
    InProgress { until: Timestamp },
}

#[async_trait]
impl Idempotency for DynamoIdempotency {
    async fn begin(
        &self,
        claim: Claim<'_>,
        now: Timestamp,
        in_progress_until: Timestamp,
    ) -> Result<Begun, StoreError> {
        let until = in_progress_until;
        let put = self.record_put(claim, now, RecordAs::InProgress { until })?;
        let claimed = self
            .client
            .put_item()
            .table_name(put.table_name)
            .set_item(Some(put.item))
            .set_condition_expression(put.condition_expression)
            .set_expression_attribute_names(put.expression_attribute_names)
            .set_expression_attribute_values(put.expression_attribute_values)
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
                    .item;
                Ok(match Self::done(existing.as_ref()) {
                    Some(done) => Begun::AlreadyDone(done),
                    None => Begun::InProgressElsewhere,
                })
            }
        }
    }

    async fn complete(
        &self,
        claim: Claim<'_>,
        outcome: Option<&str>,
        expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        let update = self
            .completion(claim.scope, claim.key, outcome, expires_at)
            .build()
            .map_err(StoreError::unavailable)?;
        self.client
            .update_item()
            .table_name(update.table_name)
            .set_key(Some(update.key))
            .update_expression(update.update_expression)
            .set_expression_attribute_names(update.expression_attribute_names)
            .set_expression_attribute_values(update.expression_attribute_values)
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

    async fn begin_each(
        &self,
        scope: &str,
        keys: &[&str],
        now: Timestamp,
        in_progress_until: Timestamp,
    ) -> Vec<Result<Begun, StoreError>> {
        // A transaction costs twice the write units of a lone conditional put.
        if let [key] = keys {
            return vec![
                self.begin(Claim::new(scope, key), now, in_progress_until)
                    .await,
            ];
        }
        let entries: Vec<super::once::Entry<'_>> = keys
            .iter()
            .map(|key| super::once::Entry {
                key,
                writes: Vec::new(),
            })
            .collect();
        let state = RecordAs::InProgress {
            until: in_progress_until,
        };
        super::once::write_once(self, scope, now, state, &entries)
            .await
            .into_iter()
            .map(|fate| {
                fate.map(|fate| match fate {
                    super::once::Fate::AlreadyDone(done) => Begun::AlreadyDone(done),
                    super::once::Fate::InProgressElsewhere => Begun::InProgressElsewhere,
                    super::once::Fate::Written | super::once::Fate::Refused => Begun::Started,
                })
            })
            .collect()
    }

    async fn complete_each(
        &self,
        scope: &str,
        keys: &[&str],
        expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        if let [key] = keys {
            return self
                .complete(Claim::new(scope, key), None, expires_at)
                .await;
        }
        // Up to a hundred per transaction (DynamoDB's limit); a batch is ten.
        for chunk in keys.chunks(100) {
            let mut updates = Vec::with_capacity(chunk.len());
            for key in chunk {
                let update = self
                    .completion(scope, key, None, expires_at)
                    .build()
                    .map_err(StoreError::unavailable)?;
                updates.push(TransactWriteItem::builder().update(update).build());
            }
            self.client
                .transact_write_items()
                .set_transact_items(Some(updates))
                .send()
                .await
                .map_err(|e| StoreError::unavailable(e.into_service_error()))?;
        }
        Ok(())
    }
}
