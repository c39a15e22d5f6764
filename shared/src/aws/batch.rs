//! DynamoDB's batch calls, with what they leave unprocessed sent again.
//!
//! BatchGetItem and BatchWriteItem succeed while leaving part of a request undone when a
//! partition is throttled or a response would pass 16 MB; the caller must ask again for the
//! rest. Every batch read goes through [`get_all`]; the search index's BatchWriteItem loop uses
//! the same [`ATTEMPTS`] and [`back_off`], so none gives up sooner or later than the others.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::KeysAndAttributes;

use super::dynamo::Item;
use crate::ports::StoreError;

/// Calls per chunk before its leftovers are given up on.
pub(crate) const ATTEMPTS: u32 = 6;

/// Keys per BatchGetItem (DynamoDB's limit).
const GET_LIMIT: usize = 100;

/// The pause before a chunk's `attempt`-th call (none before the first): 100 ms doubling, about
/// 3 s over [`ATTEMPTS`], for DynamoDB to make room for what it left unprocessed.
pub(crate) async fn back_off(attempt: u32) {
    if attempt > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(50 << attempt)).await;
    }
}

/// BatchGetItem's unprocessed keys were still unprocessed after its retries: throttling, worth
/// the caller's retry.
#[derive(Debug, thiserror::Error)]
#[error("{what} left unread after {attempts} attempts")]
pub(crate) struct Unread {
    pub what: &'static str,
    pub attempts: u32,
}

/// The items of `keys` (distinct) in `table` that exist, in no particular order: one
/// BatchGetItem per 100 keys, strongly consistent if `consistent`. `what` names the items in
/// the error when some stay unread.
pub(crate) async fn get_all(
    client: &Client,
    table: &str,
    keys: Vec<Item>,
    consistent: bool,
    what: &'static str,
) -> Result<Vec<Item>, StoreError> {
    let mut found = Vec::with_capacity(keys.len());
    let mut keys = keys.into_iter().peekable();
    while keys.peek().is_some() {
        let mut pending: Vec<Item> = keys.by_ref().take(GET_LIMIT).collect();
        for attempt in 0..ATTEMPTS {
            if pending.is_empty() {
                break;
            }
            back_off(attempt).await;
            let request = KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut pending)))
                .consistent_read(consistent)
                .build()
                .map_err(StoreError::unavailable)?;
            let output = client
                .batch_get_item()
                .request_items(table, request)
                .send()
                .await
                .map_err(|e| StoreError::unavailable(e.into_service_error()))?;
            found.extend(
                output
                    .responses
                    .and_then(|mut r| r.remove(table))
                    .unwrap_or_default(),
            );
            pending = output
                .unprocessed_keys
                .and_then(|mut m| m.remove(table))
                .map(|k| k.keys)
                .unwrap_or_default();
        }
        if !pending.is_empty() {
            return Err(StoreError::unavailable(Unread {
                what,
                attempts: ATTEMPTS,
            }));
        }
    }
    Ok(found)
}
