use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;

use super::batch::get_all;
use super::dynamo::{Item, condition_failures, next_resume, outbox_put, put_new, resume_key, s};
use crate::domain::{Email, Timestamp, User, UserId};
use crate::envelope::Envelope;
use crate::ports::{
    Credentials, FollowTarget, Follows, LoginGate, LoginThrottle, MailSettings, Preferences,
    Recipient, RecipientPage, SignUpError, StoreError, UserStore,
};

/// How long failed logins are remembered, and how many lock the account for the rest of it.
pub const LOGIN_WINDOW_SECONDS: i64 = 15 * 60;
pub const MAX_FAILED_LOGINS: i64 = 5;

fn key(pk: String, sk: &str) -> Item {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

/// The partition of everything kept per user: profile, preferences, follows.
fn user_pk(user: &UserId) -> String {
    format!("USER#{user}")
}

fn profile_key(id: &UserId) -> Item {
    key(user_pk(id), "PROFILE")
}

fn credentials_key(email: &Email) -> Item {
    key(format!("EMAIL#{email}"), "CREDENTIALS")
}

fn login_key(email: &Email) -> Item {
    key(format!("LOGIN#{email}"), "ATTEMPTS")
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn number(item: &Item, name: &str) -> Option<i64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

/// Users live in their own table: a profile per id, and per email the credentials, whose
/// conditional put is what keeps an address to one account. The outbox item goes to the
/// events table in the same transaction.
#[derive(Debug, Clone)]
pub struct DynamoUserStore {
    client: Client,
    users_table: String,
    events_table: String,
}

impl DynamoUserStore {
    pub fn new(
        client: Client,
        users_table: impl Into<String>,
        events_table: impl Into<String>,
    ) -> Self {
        Self {
            client,
            users_table: users_table.into(),
            events_table: events_table.into(),
        }
    }

    async fn get(&self, key: Item) -> Result<Option<Item>, StoreError> {
        Ok(self
            .client
            .get_item()
            .table_name(&self.users_table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::unavailable(e.into_service_error()))?
            .item)
    }
}

#[async_trait]
impl UserStore for DynamoUserStore {
    async fn create(
        &self,
        user: &User,
        password_hash: &str,
        envelope: &Envelope,
    ) -> Result<(), SignUpError> {
        let corrupt = |e: serde_dynamo::Error| StoreError::Corrupt(e.to_string());
        let mut profile: Item = serde_dynamo::to_item(user).map_err(corrupt)?;
        profile.extend(profile_key(&user.id));
        let mut credentials = credentials_key(&user.email);
        credentials.insert("user_id".into(), s(user.id.as_str()));
        credentials.insert("password_hash".into(), s(password_hash));

        let result = self
            .client
            .transact_write_items()
            .transact_items(put_new(&self.users_table, profile)?)
            .transact_items(put_new(&self.users_table, credentials)?)
            .transact_items(outbox_put(&self.events_table, envelope)?)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) => {
                let error = error.into_service_error();
                if condition_failures(&error).contains(&1) {
                    Err(SignUpError::EmailTaken)
                } else {
                    Err(StoreError::unavailable(error).into())
                }
            }
        }
    }

    async fn credentials(&self, email: &Email) -> Result<Option<Credentials>, StoreError> {
        let Some(item) = self.get(credentials_key(email)).await? else {
            return Ok(None);
        };
        let field = |name: &str| {
            item.get(name)
                .and_then(|v| v.as_s().ok())
                .cloned()
                .ok_or_else(|| StoreError::Corrupt(format!("credentials without {name}")))
        };
        Ok(Some(Credentials {
            user_id: UserId::parse("user_id", &field("user_id")?)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            password_hash: field("password_hash")?,
        }))
    }

    async fn profile(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        let Some(mut item) = self.get(profile_key(id)).await? else {
            return Ok(None);
        };
        item.remove("pk");
        item.remove("sk");
        serde_dynamo::from_item(item)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(e.to_string()))
    }
}

/// Failed logins per account in a fixed window that starts at the first failure; the item
/// carries a TTL so DynamoDB removes it after the window, and the window is checked in code
/// as well because TTL deletion is lazy.
#[derive(Debug, Clone)]
pub struct DynamoLoginThrottle {
    client: Client,
    table: String,
}

impl DynamoLoginThrottle {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

#[async_trait]
impl LoginThrottle for DynamoLoginThrottle {
    async fn gate(&self, email: &Email, now: Timestamp) -> Result<LoginGate, StoreError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(login_key(email)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::unavailable(e.into_service_error()))?
            .item;
        let Some(item) = item else {
            return Ok(LoginGate::Open);
        };
        let failures = number(&item, "failures").unwrap_or(0);
        let window_ends = number(&item, "window_start").unwrap_or(0) + LOGIN_WINDOW_SECONDS;
        if failures >= MAX_FAILED_LOGINS && window_ends > now.unix_seconds() {
            Ok(LoginGate::Locked {
                retry_after_seconds: window_ends - now.unix_seconds(),
            })
        } else {
            Ok(LoginGate::Open)
        }
    }

    async fn record_failure(&self, email: &Email, now: Timestamp) -> Result<(), StoreError> {
        let now = now.unix_seconds();
        // Count into the current window, or, if it has passed, start a new one.
        let counted = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(login_key(email)))
            .update_expression(
                "SET failures = if_not_exists(failures, :zero) + :one, \
                 window_start = if_not_exists(window_start, :now), \
                 expires_at = if_not_exists(expires_at, :expires)",
            )
            .condition_expression("attribute_not_exists(pk) OR window_start > :floor")
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":expires", n(now + LOGIN_WINDOW_SECONDS))
            .expression_attribute_values(":floor", n(now - LOGIN_WINDOW_SECONDS))
            .send()
            .await;
        match counted {
            Ok(_) => Ok(()),
            Err(error) => {
                let error = error.into_service_error();
                if !error.is_conditional_check_failed_exception() {
                    return Err(StoreError::unavailable(error));
                }
                let mut item = login_key(email);
                item.insert("failures".into(), n(1));
                item.insert("window_start".into(), n(now));
                item.insert("expires_at".into(), n(now + LOGIN_WINDOW_SECONDS));
                self.client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .send()
                    .await
                    .map_err(|e| StoreError::unavailable(e.into_service_error()))?;
                Ok(())
            }
        }
    }

    async fn reset(&self, email: &Email) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(login_key(email)))
            .send()
            .await
            .map_err(|e| StoreError::unavailable(e.into_service_error()))?;
        Ok(())
    }
}

fn follow_key(user: &UserId, target: &FollowTarget) -> Item {
    key(user_pk(user), &format!("FOLLOW#{}", target.key()))
}

fn follower_key(target: &FollowTarget, user: &UserId) -> Item {
    key(
        format!("FOLLOWERS#{}", target.key()),
        &format!("USER#{user}"),
    )
}

/// `users` without repeats, in their first order.
fn distinct(users: &[UserId]) -> Vec<&UserId> {
    let mut seen = std::collections::HashSet::with_capacity(users.len());
    users.iter().filter(|user| seen.insert(*user)).collect()
}

/// What a preferences item says; a user who never set any wants mail and has no token yet.
fn settings_of(item: Option<&Item>) -> MailSettings {
    let attribute = |name: &str| item.and_then(|i| i.get(name));
    MailSettings {
        preferences: Preferences {
            notifications: attribute("notifications")
                .and_then(|v| v.as_bool().ok())
                .copied()
                .unwrap_or(true),
        },
        unsubscribe_token: attribute("unsubscribe_token")
            .and_then(|v| v.as_s().ok())
            .cloned(),
    }
}

fn preferences_key(user: &UserId) -> Item {
    key(user_pk(user), "PREFERENCES")
}

fn unsubscribe_key(token: &str) -> Item {
    key(format!("UNSUBSCRIBE#{token}"), "TOKEN")
}

/// 128 random bits, URL-safe.
fn new_token() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system RNG works");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Follows are stored twice in one transaction: under the user (what do I follow?) and under
/// the target (who follows it?, with the follower's email, so notifying needs no extra reads).
#[async_trait]
impl Follows for DynamoUserStore {
    async fn follow(&self, user: &User, target: &FollowTarget) -> Result<bool, StoreError> {
        let mut follower = follower_key(target, &user.id);
        follower.insert("user_id".into(), s(user.id.as_str()));
        follower.insert("email".into(), s(user.email.as_str()));
        let result = self
            .client
            .transact_write_items()
            .transact_items(put_new(&self.users_table, follow_key(&user.id, target))?)
            .transact_items(put_new(&self.users_table, follower)?)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) => {
                let error = error.into_service_error();
                if condition_failures(&error).is_empty() {
                    Err(StoreError::unavailable(error))
                } else {
                    Ok(false)
                }
            }
        }
    }

    async fn unfollow(&self, user: &UserId, target: &FollowTarget) -> Result<bool, StoreError> {
        use aws_sdk_dynamodb::types::{Delete, TransactWriteItem};
        let delete = |key: Item, must_exist: bool| -> Result<TransactWriteItem, StoreError> {
            let mut builder = Delete::builder()
                .table_name(&self.users_table)
                .set_key(Some(key));
            if must_exist {
                builder = builder.condition_expression("attribute_exists(pk)");
            }
            Ok(TransactWriteItem::builder()
                .delete(builder.build().map_err(StoreError::unavailable)?)
                .build())
        };
        let result = self
            .client
            .transact_write_items()
            .transact_items(delete(follow_key(user, target), true)?)
            .transact_items(delete(follower_key(target, user), false)?)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) => {
                let error = error.into_service_error();
                if condition_failures(&error).contains(&0) {
                    Ok(false)
                } else {
                    Err(StoreError::unavailable(error))
                }
            }
        }
    }

    async fn followers(
        &self,
        target: &FollowTarget,
        resume: Option<String>,
        limit: u16,
    ) -> Result<RecipientPage, StoreError> {
        let pk = format!("FOLLOWERS#{}", target.key());
        let output = self
            .client
            .query()
            .table_name(&self.users_table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(&pk))
            .set_exclusive_start_key(resume_key(&pk, resume))
            .limit(i32::from(limit))
            .send()
            .await
            .map_err(|e| StoreError::unavailable(e.into_service_error()))?;
        let next = next_resume(output.last_evaluated_key.as_ref());
        let recipients = output
            .items
            .unwrap_or_default()
            .iter()
            .filter_map(|item| {
                let user = item.get("user_id")?.as_s().ok()?;
                let email = item.get("email")?.as_s().ok()?;
                Some(Recipient {
                    user_id: UserId::parse("user_id", user).ok()?,
                    email: Email::parse("email", email).ok()?,
                })
            })
            .collect();
        Ok((recipients, next))
    }

    async fn preferences(&self, user: &UserId) -> Result<Preferences, StoreError> {
        Ok(self.mail_settings(user).await?.preferences)
    }

    async fn mail_settings(&self, user: &UserId) -> Result<MailSettings, StoreError> {
        Ok(settings_of(self.get(preferences_key(user)).await?.as_ref()))
    }

    async fn mail_settings_each(&self, users: &[UserId]) -> Result<Vec<MailSettings>, StoreError> {
        // BatchGetItem refuses a request that names one key twice.
        let keys = distinct(users).into_iter().map(preferences_key).collect();
        let items = get_all(&self.client, &self.users_table, keys, true, "mail settings").await?;
        let by_pk: HashMap<&str, &Item> = items
            .iter()
            .filter_map(|item| Some((item.get("pk")?.as_s().ok()?.as_str(), item)))
            .collect();
        Ok(users
            .iter()
            .map(|user| settings_of(by_pk.get(user_pk(user).as_str()).copied()))
            .collect())
    }

    async fn set_preferences(
        &self,
        user: &UserId,
        preferences: Preferences,
    ) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.users_table)
            .set_key(Some(preferences_key(user)))
            .update_expression("SET notifications = :n")
            .expression_attribute_values(":n", AttributeValue::Bool(preferences.notifications))
            .send()
            .await
            .map_err(|e| StoreError::unavailable(e.into_service_error()))?;
        Ok(())
    }

    async fn make_unsubscribe_token(&self, user: &UserId) -> Result<String, StoreError> {
        // Two racing first mails may both make a token; the conditional write keeps one, and
        // the loser reads it back.
        let token = new_token();
        let mut reverse = unsubscribe_key(&token);
        reverse.insert("user_id".into(), s(user.as_str()));
        let claimed = self
            .client
            .update_item()
            .table_name(&self.users_table)
            .set_key(Some(preferences_key(user)))
            .update_expression("SET unsubscribe_token = :t")
            .condition_expression("attribute_not_exists(unsubscribe_token)")
            .expression_attribute_values(":t", s(&token))
            .send()
            .await;
        match claimed {
            Ok(_) => {
                self.client
                    .put_item()
                    .table_name(&self.users_table)
                    .set_item(Some(reverse))
                    .send()
                    .await
                    .map_err(|e| StoreError::unavailable(e.into_service_error()))?;
                Ok(token)
            }
            Err(error) => {
                let error = error.into_service_error();
                if !error.is_conditional_check_failed_exception() {
                    return Err(StoreError::unavailable(error));
                }
                self.mail_settings(user)
                    .await?
                    .unsubscribe_token
                    .ok_or_else(|| StoreError::Corrupt("unsubscribe token vanished".into()))
            }
        }
    }

    async fn unsubscribe(&self, token: &str) -> Result<bool, StoreError> {
        let Some(user) = self
            .get(unsubscribe_key(token))
            .await?
            .and_then(|item| item.get("user_id")?.as_s().ok().cloned())
        else {
            return Ok(false);
        };
        let user =
            UserId::parse("user_id", &user).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.set_preferences(
            &user,
            Preferences {
                notifications: false,
            },
        )
        .await?;
        Ok(true)
    }

    async fn recipients(&self, users: &[UserId]) -> Result<Vec<Recipient>, StoreError> {
        // One read per hundred users, not one per user; a page of attendees is 25.
        let distinct = distinct(users);
        let keys = distinct.iter().map(|user| profile_key(user)).collect();
        let items = get_all(&self.client, &self.users_table, keys, true, "profiles").await?;
        let mut profiles: HashMap<UserId, Recipient> = HashMap::with_capacity(items.len());
        for mut item in items {
            item.remove("pk");
            item.remove("sk");
            let user: User =
                serde_dynamo::from_item(item).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            profiles.insert(
                user.id.clone(),
                Recipient {
                    user_id: user.id,
                    email: user.email,
                },
            );
        }
        // In the order asked for, as the attendees' page lists them.
        Ok(distinct
            .into_iter()
            .filter_map(|user| profiles.remove(user))
            .collect())
    }
}
