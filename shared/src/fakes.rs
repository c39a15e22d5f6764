//! In-memory port implementations and test keys, for unit tests of pure logic only.
//! Everything that talks to AWS is tested against the emulator instead.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use async_trait::async_trait;

use crate::domain::{Event, EventId};
use crate::envelope::Envelope;
use crate::ports::{
    Applied, Consistency, Cursor, EventReader, EventStore, OutgoingMessage, Page, PageRequest,
    PublishError, Published, Publisher, ReadModel, StoreError,
};
use crate::tokens::{KeyRing, TokenConfig, TokenSigner};

/// Events kept in memory in listing order, with the outbox beside them.
#[derive(Debug, Default)]
pub struct InMemoryEvents {
    events: Mutex<BTreeMap<EventId, Event>>,
    outbox: Mutex<Vec<Envelope>>,
    /// (event, user) pairs in RSVP order.
    rsvps: Mutex<Vec<(EventId, crate::domain::UserId)>>,
    /// `<scope>#<key>` of every projection applied through [`crate::ports::ProjectOnce`].
    projected: Mutex<BTreeSet<String>>,
}

impl InMemoryEvents {
    pub fn outbox(&self) -> Vec<Envelope> {
        self.outbox.lock().unwrap().clone()
    }

    pub fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().values().cloned().collect()
    }
}

#[async_trait]
impl EventReader for InMemoryEvents {
    async fn get(&self, id: &EventId, _: Consistency) -> Result<Option<Event>, StoreError> {
        Ok(self.events.lock().unwrap().get(id).cloned())
    }

    async fn get_many(&self, ids: &[EventId]) -> Result<Vec<Event>, StoreError> {
        let events = self.events.lock().unwrap();
        Ok(ids
            .iter()
            .filter_map(|id| events.get(id).cloned())
            .collect())
    }

    async fn list_upcoming(&self, page: PageRequest) -> Result<Page<Event>, StoreError> {
        let mut listed: Vec<Event> = self
            .events
            .lock()
            .unwrap()
            .values()
            .filter(|e| e.is_listed_publicly() && e.starts_at > page.after)
            .filter(|e| match page.cursor {
                Some(c) => (e.starts_at, e.id) > (c.starts_at, c.id),
                None => true,
            })
            .cloned()
            .collect();
        listed.sort_by_key(|e| (e.starts_at, e.id));
        let more = listed.len() > usize::from(page.limit);
        listed.truncate(usize::from(page.limit));
        let next = more.then(|| {
            let last = listed.last().expect("a full page has a last item");
            Cursor {
                starts_at: last.starts_at,
                id: last.id,
            }
        });
        Ok(Page {
            items: listed,
            next,
        })
    }
}

#[async_trait]
impl EventStore for InMemoryEvents {
    async fn create(&self, event: &Event, envelope: &Envelope) -> Result<(), StoreError> {
        let mut events = self.events.lock().unwrap();
        if events.contains_key(&event.id) {
            return Err(StoreError::AlreadyExists);
        }
        events.insert(event.id, event.clone());
        self.outbox.lock().unwrap().push(envelope.clone());
        Ok(())
    }

    async fn update(
        &self,
        event: &Event,
        expected_version: u64,
        envelope: &Envelope,
    ) -> Result<(), crate::ports::UpdateError> {
        let mut events = self.events.lock().unwrap();
        match events.get(&event.id) {
            Some(stored) if stored.version == expected_version => {}
            _ => return Err(crate::ports::UpdateError::VersionMismatch),
        }
        let going = self.going(&event.id);
        if event.capacity.is_some_and(|c| (c.get() as usize) < going) {
            return Err(crate::ports::UpdateError::CapacityBelowAttendees);
        }
        events.insert(event.id, event.clone());
        self.outbox.lock().unwrap().push(envelope.clone());
        Ok(())
    }

    async fn rsvp(
        &self,
        event: &Event,
        user: &crate::domain::UserId,
        now: crate::domain::Timestamp,
        envelope: &Envelope,
    ) -> Result<crate::ports::RsvpOutcome, crate::ports::RsvpError> {
        let events = self.events.lock().unwrap();
        let stored = events
            .get(&event.id)
            .ok_or(crate::ports::RsvpError::Closed)?;
        let mut rsvps = self.rsvps.lock().unwrap();
        if rsvps.iter().any(|(e, u)| *e == event.id && u == user) {
            return Ok(crate::ports::RsvpOutcome::AlreadyGoing);
        }
        if stored.is_cancelled() || stored.starts_at <= now {
            return Err(crate::ports::RsvpError::Closed);
        }
        let going = rsvps.iter().filter(|(e, _)| *e == event.id).count();
        if stored.capacity.is_some_and(|c| going >= c.get() as usize) {
            return Err(crate::ports::RsvpError::Full);
        }
        rsvps.push((event.id, user.clone()));
        self.outbox.lock().unwrap().push(envelope.clone());
        Ok(crate::ports::RsvpOutcome::Created)
    }

    async fn cancel_rsvp(
        &self,
        event: &EventId,
        user: &crate::domain::UserId,
        envelope: &Envelope,
    ) -> Result<bool, StoreError> {
        let mut rsvps = self.rsvps.lock().unwrap();
        let before = rsvps.len();
        rsvps.retain(|(e, u)| !(e == event && u == user));
        let removed = rsvps.len() < before;
        if removed {
            self.outbox.lock().unwrap().push(envelope.clone());
        }
        Ok(removed)
    }

    async fn attendees(
        &self,
        event: &EventId,
        resume: Option<String>,
        limit: u16,
    ) -> Result<(Vec<crate::domain::UserId>, Option<String>), StoreError> {
        let going: Vec<crate::domain::UserId> = self
            .rsvps
            .lock()
            .unwrap()
            .iter()
            .filter(|(e, _)| e == event)
            .map(|(_, u)| u.clone())
            .collect();
        Ok(page_of(going, resume, limit))
    }

    async fn rsvps_of(
        &self,
        user: &crate::domain::UserId,
        limit: u16,
    ) -> Result<Vec<EventId>, StoreError> {
        Ok(self
            .rsvps
            .lock()
            .unwrap()
            .iter()
            .rev()
            .filter(|(_, u)| u == user)
            .map(|(e, _)| *e)
            .take(usize::from(limit))
            .collect())
    }
}

impl InMemoryEvents {
    fn going(&self, event: &EventId) -> usize {
        self.rsvps
            .lock()
            .unwrap()
            .iter()
            .filter(|(e, _)| e == event)
            .count()
    }
}

#[async_trait]
impl ReadModel for InMemoryEvents {
    async fn apply(&self, event: &Event) -> Result<Applied, StoreError> {
        let mut events = self.events.lock().unwrap();
        match events.get(&event.id) {
            Some(stored) if stored.version >= event.version => Ok(Applied::Stale),
            _ => {
                events.insert(event.id, event.clone());
                Ok(Applied::Changed)
            }
        }
    }
}

/// As the DynamoDB adapter: a key is remembered only with a projection that was written, and
/// entries are applied in order.
#[async_trait]
impl crate::ports::ProjectOnce for InMemoryEvents {
    async fn apply_once(
        &self,
        scope: &str,
        batch: &[(&str, &Event)],
    ) -> Vec<Result<crate::ports::Settled<Applied>, StoreError>> {
        use crate::ports::Settled;
        let mut settled = Vec::with_capacity(batch.len());
        for (key, event) in batch {
            let record = format!("{scope}#{key}");
            if self.projected.lock().unwrap().contains(&record) {
                settled.push(Ok(Settled::AlreadyDone));
                continue;
            }
            let applied = ReadModel::apply(self, event).await;
            if matches!(applied, Ok(Applied::Changed)) {
                self.projected.lock().unwrap().insert(record);
            }
            settled.push(applied.map(Settled::Done));
        }
        settled
    }
}

/// A store that is down: every call fails as unavailable.
#[derive(Debug, Default)]
pub struct Unavailable;

#[derive(Debug, thiserror::Error)]
#[error("simulated outage")]
struct Outage;

#[async_trait]
impl EventReader for Unavailable {
    async fn get(&self, _: &EventId, _: Consistency) -> Result<Option<Event>, StoreError> {
        Err(StoreError::unavailable(Outage))
    }

    async fn get_many(&self, _: &[EventId]) -> Result<Vec<Event>, StoreError> {
        Err(StoreError::unavailable(Outage))
    }

    async fn list_upcoming(&self, _: PageRequest) -> Result<Page<Event>, StoreError> {
        Err(StoreError::unavailable(Outage))
    }
}

#[async_trait]
impl EventStore for Unavailable {
    async fn create(&self, _: &Event, _: &Envelope) -> Result<(), StoreError> {
        Err(StoreError::unavailable(Outage))
    }

    async fn update(
        &self,
        _: &Event,
        _: u64,
        _: &Envelope,
    ) -> Result<(), crate::ports::UpdateError> {
        Err(StoreError::unavailable(Outage).into())
    }

    async fn rsvp(
        &self,
        _: &Event,
        _: &crate::domain::UserId,
        _: crate::domain::Timestamp,
        _: &Envelope,
    ) -> Result<crate::ports::RsvpOutcome, crate::ports::RsvpError> {
        Err(StoreError::unavailable(Outage).into())
    }

    async fn cancel_rsvp(
        &self,
        _: &EventId,
        _: &crate::domain::UserId,
        _: &Envelope,
    ) -> Result<bool, StoreError> {
        Err(StoreError::unavailable(Outage))
    }

    async fn rsvps_of(
        &self,
        _: &crate::domain::UserId,
        _: u16,
    ) -> Result<Vec<EventId>, StoreError> {
        Err(StoreError::unavailable(Outage))
    }

    async fn attendees(
        &self,
        _: &EventId,
        _: Option<String>,
        _: u16,
    ) -> Result<(Vec<crate::domain::UserId>, Option<String>), StoreError> {
        Err(StoreError::unavailable(Outage))
    }
}

#[async_trait]
impl ReadModel for Unavailable {
    async fn apply(&self, _: &Event) -> Result<Applied, StoreError> {
        Err(StoreError::unavailable(Outage))
    }
}

/// One outage per entry of a batch.
fn down_for<T, U>(batch: &[T]) -> Vec<Result<U, StoreError>> {
    batch
        .iter()
        .map(|_| Err(StoreError::unavailable(Outage)))
        .collect()
}

#[async_trait]
impl crate::ports::ProjectOnce for Unavailable {
    async fn apply_once(
        &self,
        _: &str,
        batch: &[(&str, &Event)],
    ) -> Vec<Result<crate::ports::Settled<Applied>, StoreError>> {
        down_for(batch)
    }
}

#[async_trait]
impl crate::ports::IndexOnce for Unavailable {
    async fn index_once(
        &self,
        _: &str,
        batch: &[(&str, &Event)],
    ) -> Vec<Result<crate::ports::Settled<Applied>, StoreError>> {
        down_for(batch)
    }
}

#[async_trait]
impl crate::ports::CountOnce for Unavailable {
    async fn record_once(
        &self,
        _: &str,
        batch: &[(&str, &crate::ports::Count)],
    ) -> Vec<Result<crate::ports::Settled<()>, StoreError>> {
        down_for(batch)
    }
}

/// Records what was published; rejects messages whose body contains `reject_marker`.
#[derive(Debug, Default)]
pub struct RecordingPublisher {
    pub calls: Mutex<Vec<Vec<OutgoingMessage>>>,
    pub reject_marker: Option<String>,
    pub fail_calls: bool,
}

impl RecordingPublisher {
    pub fn published(&self) -> Vec<OutgoingMessage> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .flatten()
            .cloned()
            .collect()
    }
}

#[async_trait]
impl Publisher for RecordingPublisher {
    const MAX_BATCH: usize = 10;

    async fn publish(&self, batch: &[OutgoingMessage]) -> Result<Vec<Published>, PublishError> {
        assert!(
            batch.len() <= Self::MAX_BATCH,
            "batch larger than the publisher allows"
        );
        if self.fail_calls {
            return Err(PublishError::Unavailable(Box::new(Outage)));
        }
        self.calls.lock().unwrap().push(batch.to_vec());
        Ok(batch
            .iter()
            .map(|m| match &self.reject_marker {
                Some(marker) if m.body.contains(marker.as_str()) => Published::Rejected {
                    code: "InternalError".into(),
                    message: "simulated".into(),
                },
                _ => Published::Accepted,
            })
            .collect())
    }
}

/// A fresh key ring for tests: a signer with its current key and the matching verifier config.
pub fn test_keys(issuer: &str, audience: &str) -> (TokenSigner, TokenConfig) {
    let ring = KeyRing::generate();
    let signer = TokenSigner::new(&ring.current, issuer, audience, 600).expect("a fresh key");
    let config = TokenConfig {
        public_keys: ring.public_keys(),
        issuer: issuer.to_owned(),
        audience: audience.to_owned(),
    };
    (signer, config)
}

/// Checks an envelope against its JSON Schema in `events-fixtures/schemas/`, returning every
/// violation. An envelope of a type without a schema is itself a violation.
pub fn schema_violations(envelope: &serde_json::Value) -> Vec<String> {
    let event_type = envelope["type"].as_str().unwrap_or_default();
    let Some(schema) = crate::envelope::EventType::parse(event_type).map(schema_for) else {
        return vec![format!("no schema for event type {event_type:?}")];
    };
    let schema: serde_json::Value = serde_json::from_str(schema).expect("schemas are JSON");
    let validator = jsonschema::validator_for(&schema).expect("schemas are valid JSON Schema");
    validator
        .iter_errors(envelope)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

fn schema_for(event_type: crate::envelope::EventType) -> &'static str {
    use crate::envelope::EventType;
    match event_type {
        EventType::EventCreated => {
            include_str!("../../events-fixtures/schemas/evently.event.created.v1.json")
        }
        EventType::EventUpdated => {
            include_str!("../../events-fixtures/schemas/evently.event.updated.v1.json")
        }
        EventType::EventCancelled => {
            include_str!("../../events-fixtures/schemas/evently.event.cancelled.v1.json")
        }
        EventType::RsvpCreated => {
            include_str!("../../events-fixtures/schemas/evently.rsvp.created.v1.json")
        }
        EventType::RsvpCancelled => {
            include_str!("../../events-fixtures/schemas/evently.rsvp.cancelled.v1.json")
        }
        EventType::UserCreated => {
            include_str!("../../events-fixtures/schemas/evently.user.created.v1.json")
        }
    }
}

/// A page of `items` after the position in `resume` (an index), and the next position.
fn page_of<T>(items: Vec<T>, resume: Option<String>, limit: u16) -> (Vec<T>, Option<String>) {
    let start = resume.and_then(|r| r.parse::<usize>().ok()).unwrap_or(0);
    let end = start + usize::from(limit);
    let next = (end < items.len()).then(|| end.to_string());
    (
        items
            .into_iter()
            .skip(start)
            .take(usize::from(limit))
            .collect(),
        next,
    )
}

/// Users, credentials, follows, preferences, the outbox and failed-login counts, in memory.
#[derive(Debug, Default)]
pub struct InMemoryUsers {
    follows: Mutex<Vec<(crate::ports::FollowTarget, crate::domain::User)>>,
    preferences: Mutex<BTreeMap<String, crate::ports::Preferences>>,
    /// Users whose unsubscribe token has been made (it is `token-<user id>`).
    tokens: Mutex<BTreeSet<String>>,
    /// How many times `mail_settings` was asked, to count a consumer's reads.
    settings_reads: AtomicUsize,
    /// How many pages of followers were asked for.
    follower_reads: AtomicUsize,
    users: Mutex<BTreeMap<String, (crate::domain::User, String)>>,
    failures: Mutex<BTreeMap<String, (i64, i64)>>,
    outbox: Mutex<Vec<Envelope>>,
}

impl InMemoryUsers {
    /// How many times the mail settings (preferences and token) were read.
    pub fn settings_reads(&self) -> usize {
        self.settings_reads.load(Ordering::Relaxed)
    }

    /// How many pages of followers were read.
    pub fn follower_reads(&self) -> usize {
        self.follower_reads.load(Ordering::Relaxed)
    }

    pub fn outbox(&self) -> Vec<Envelope> {
        self.outbox.lock().unwrap().clone()
    }

    pub fn stored_hash(&self, email: &crate::domain::Email) -> Option<String> {
        self.users
            .lock()
            .unwrap()
            .get(email.as_str())
            .map(|(_, hash)| hash.clone())
    }
}

#[async_trait]
impl crate::ports::UserStore for InMemoryUsers {
    async fn create(
        &self,
        user: &crate::domain::User,
        password_hash: &str,
        envelope: &Envelope,
    ) -> Result<(), crate::ports::SignUpError> {
        let mut users = self.users.lock().unwrap();
        if users.contains_key(user.email.as_str()) {
            return Err(crate::ports::SignUpError::EmailTaken);
        }
        users.insert(
            user.email.as_str().to_owned(),
            (user.clone(), password_hash.to_owned()),
        );
        self.outbox.lock().unwrap().push(envelope.clone());
        Ok(())
    }

    async fn credentials(
        &self,
        email: &crate::domain::Email,
    ) -> Result<Option<crate::ports::Credentials>, StoreError> {
        Ok(self
            .users
            .lock()
            .unwrap()
            .get(email.as_str())
            .map(|(user, hash)| crate::ports::Credentials {
                user_id: user.id.clone(),
                password_hash: hash.clone(),
            }))
    }

    async fn profile(
        &self,
        id: &crate::domain::UserId,
    ) -> Result<Option<crate::domain::User>, StoreError> {
        Ok(self
            .users
            .lock()
            .unwrap()
            .values()
            .find(|(user, _)| &user.id == id)
            .map(|(user, _)| user.clone()))
    }
}

#[async_trait]
impl crate::ports::LoginThrottle for InMemoryUsers {
    async fn gate(
        &self,
        email: &crate::domain::Email,
        now: crate::domain::Timestamp,
    ) -> Result<crate::ports::LoginGate, StoreError> {
        use crate::aws::{LOGIN_WINDOW_SECONDS, MAX_FAILED_LOGINS};
        let failures = self.failures.lock().unwrap();
        Ok(match failures.get(email.as_str()) {
            Some((count, start))
                if *count >= MAX_FAILED_LOGINS
                    && start + LOGIN_WINDOW_SECONDS > now.unix_seconds() =>
            {
                crate::ports::LoginGate::Locked {
                    retry_after_seconds: start + LOGIN_WINDOW_SECONDS - now.unix_seconds(),
                }
            }
            _ => crate::ports::LoginGate::Open,
        })
    }

    async fn record_failure(
        &self,
        email: &crate::domain::Email,
        now: crate::domain::Timestamp,
    ) -> Result<(), StoreError> {
        let mut failures = self.failures.lock().unwrap();
        let entry = failures
            .entry(email.as_str().to_owned())
            .or_insert((0, now.unix_seconds()));
        if entry.1 + crate::aws::LOGIN_WINDOW_SECONDS <= now.unix_seconds() {
            *entry = (0, now.unix_seconds());
        }
        entry.0 += 1;
        Ok(())
    }

    async fn reset(&self, email: &crate::domain::Email) -> Result<(), StoreError> {
        self.failures.lock().unwrap().remove(email.as_str());
        Ok(())
    }
}

/// Builds the error a failing mailer returns, e.g. `MailError::Throttled`.
pub type MailFailure = fn(String) -> crate::ports::MailError;

/// Records sent mail; can be told to fail every send with a given error kind.
#[derive(Debug, Default)]
pub struct RecordingMailer {
    pub sent: Mutex<Vec<crate::ports::Mail>>,
    pub fail_with: Mutex<Option<MailFailure>>,
    /// Once this many mails are out, every further send fails as throttled.
    pub fail_after: Mutex<Option<usize>>,
    /// How many bulk sends were asked for.
    pub bulk_sends: AtomicUsize,
}

impl RecordingMailer {
    pub fn sent(&self) -> Vec<crate::ports::Mail> {
        self.sent.lock().unwrap().clone()
    }
}

#[async_trait]
impl crate::ports::Mailer for RecordingMailer {
    async fn send(&self, mail: &crate::ports::Mail) -> Result<String, crate::ports::MailError> {
        if let Some(fail) = *self.fail_with.lock().unwrap() {
            return Err(fail("simulated".to_owned()));
        }
        let mut sent = self.sent.lock().unwrap();
        if self
            .fail_after
            .lock()
            .unwrap()
            .is_some_and(|n| sent.len() >= n)
        {
            return Err(crate::ports::MailError::Throttled("simulated".to_owned()));
        }
        sent.push(mail.clone());
        Ok(format!("message-{}", sent.len()))
    }
}

/// Renders each mail as the mail service would and sends it as [`crate::ports::Mailer::send`]
/// does, failing as it is told to.
#[async_trait]
impl crate::ports::BulkMailer for RecordingMailer {
    async fn send_each(
        &self,
        template: &crate::ports::MailTemplate,
        recipients: &[crate::ports::Addressed],
    ) -> Vec<Result<String, crate::ports::MailError>> {
        use crate::ports::Mailer;
        self.bulk_sends.fetch_add(1, Ordering::SeqCst);
        let mut results = Vec::with_capacity(recipients.len());
        for to in recipients {
            results.push(self.send(&crate::mail::render(template, to)).await);
        }
        results
    }
}

/// A secret in memory: it counts its reads and can be taken down.
#[derive(Debug, Default)]
pub struct InMemoryVault {
    secret: Mutex<Option<String>>,
    reads: AtomicUsize,
    down: AtomicBool,
}

impl InMemoryVault {
    pub fn holding(secret: impl Into<String>) -> Self {
        Self {
            secret: Mutex::new(Some(secret.into())),
            ..Self::default()
        }
    }

    pub fn secret(&self) -> Option<String> {
        self.secret.lock().unwrap().clone()
    }

    /// How many reads were asked for, failed ones included.
    pub fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }

    /// While down, every call fails as unavailable.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    fn check_up(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::unavailable(Outage));
        }
        Ok(())
    }
}

#[async_trait]
impl crate::ports::KeyVault for InMemoryVault {
    async fn read(&self) -> Result<Option<String>, StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.check_up()?;
        Ok(self.secret())
    }

    async fn write(&self, secret: &str) -> Result<(), StoreError> {
        self.check_up()?;
        *self.secret.lock().unwrap() = Some(secret.to_owned());
        Ok(())
    }
}

/// Idempotency records in memory, with the same state machine as the DynamoDB adapter.
#[derive(Debug, Default)]
pub struct InMemoryIdempotency {
    records: Mutex<BTreeMap<String, MemoryRecord>>,
}

#[derive(Debug, Clone)]
struct MemoryRecord {
    completed: Option<crate::ports::Completed>,
    /// The lease (in progress) or the expiry (completed), in Unix seconds.
    until: i64,
    fingerprint: Option<String>,
}

#[async_trait]
impl crate::ports::Idempotency for InMemoryIdempotency {
    async fn begin(
        &self,
        claim: crate::ports::Claim<'_>,
        now: crate::domain::Timestamp,
        in_progress_until: crate::domain::Timestamp,
    ) -> Result<crate::ports::Begun, StoreError> {
        use crate::ports::Begun;
        let mut records = self.records.lock().unwrap();
        let id = format!("{}#{}", claim.scope, claim.key);
        match records.get(&id) {
            Some(record) if record.until >= now.unix_seconds() => Ok(match &record.completed {
                Some(done) => Begun::AlreadyDone(done.clone()),
                None => Begun::InProgressElsewhere,
            }),
            _ => {
                records.insert(
                    id,
                    MemoryRecord {
                        completed: None,
                        until: in_progress_until.unix_seconds(),
                        fingerprint: claim.fingerprint.map(str::to_owned),
                    },
                );
                Ok(Begun::Started)
            }
        }
    }

    async fn complete(
        &self,
        claim: crate::ports::Claim<'_>,
        outcome: Option<&str>,
        expires_at: crate::domain::Timestamp,
    ) -> Result<(), StoreError> {
        let mut records = self.records.lock().unwrap();
        let id = format!("{}#{}", claim.scope, claim.key);
        let fingerprint = records.get(&id).and_then(|r| r.fingerprint.clone());
        records.insert(
            id,
            MemoryRecord {
                completed: Some(crate::ports::Completed {
                    fingerprint: fingerprint.clone(),
                    outcome: outcome.map(str::to_owned),
                }),
                until: expires_at.unix_seconds(),
                fingerprint,
            },
        );
        Ok(())
    }

    async fn release(&self, claim: crate::ports::Claim<'_>) -> Result<(), StoreError> {
        let mut records = self.records.lock().unwrap();
        let id = format!("{}#{}", claim.scope, claim.key);
        if matches!(records.get(&id), Some(record) if record.completed.is_none()) {
            records.remove(&id);
        }
        Ok(())
    }
}

#[async_trait]
impl crate::ports::EventScan for InMemoryEvents {
    async fn scan_page(
        &self,
        resume: Option<String>,
    ) -> Result<(Vec<Event>, Option<String>), StoreError> {
        // Pages of two, so tests exercise the resume path.
        let events = self.events();
        let start = resume.and_then(|r| r.parse::<usize>().ok()).unwrap_or(0);
        let page: Vec<Event> = events.iter().skip(start).take(2).cloned().collect();
        let next = (start + 2 < events.len()).then(|| (start + 2).to_string());
        Ok((page, next))
    }
}

/// Counters in memory, exactly once per `(scope, key)`.
#[derive(Debug, Default)]
pub struct InMemoryAnalytics {
    seen: Mutex<std::collections::BTreeSet<String>>,
    stats: Mutex<BTreeMap<EventId, crate::ports::EventStats>>,
    daily: Mutex<BTreeMap<String, crate::ports::DailyCounts>>,
}

#[async_trait]
impl crate::ports::CountOnce for InMemoryAnalytics {
    async fn record_once(
        &self,
        scope: &str,
        batch: &[(&str, &crate::ports::Count)],
    ) -> Vec<Result<crate::ports::Settled<()>, StoreError>> {
        use crate::ports::{Count, Settled};
        let mut settled = Vec::with_capacity(batch.len());
        for (key, count) in batch {
            if !self.seen.lock().unwrap().insert(format!("{scope}#{key}")) {
                settled.push(Ok(Settled::AlreadyDone));
                continue;
            }
            let mut daily = self.daily.lock().unwrap();
            let mut stats = self.stats.lock().unwrap();
            match count {
                Count::EventCreated { day } => daily_entry(&mut daily, day).events_created += 1,
                Count::Signup { day } => daily_entry(&mut daily, day).signups += 1,
                Count::RsvpCreated { event } => {
                    let s = stats.entry(*event).or_default();
                    s.going += 1;
                    s.rsvps_created += 1;
                }
                Count::RsvpCancelled { event } => {
                    let s = stats.entry(*event).or_default();
                    s.going -= 1;
                    s.rsvps_cancelled += 1;
                }
            }
            settled.push(Ok(Settled::Done(())));
        }
        settled
    }
}

#[async_trait]
impl crate::ports::Analytics for InMemoryAnalytics {
    async fn event_stats(&self, event: &EventId) -> Result<crate::ports::EventStats, StoreError> {
        Ok(self
            .stats
            .lock()
            .unwrap()
            .get(event)
            .cloned()
            .unwrap_or_default())
    }

    async fn daily(
        &self,
        from: &str,
        to: &str,
    ) -> Result<Vec<crate::ports::DailyCounts>, StoreError> {
        Ok(self
            .daily
            .lock()
            .unwrap()
            .range(from.to_owned()..=to.to_owned())
            .map(|(_, v)| v.clone())
            .collect())
    }
}

fn daily_entry<'a>(
    daily: &'a mut BTreeMap<String, crate::ports::DailyCounts>,
    day: &str,
) -> &'a mut crate::ports::DailyCounts {
    daily
        .entry(day.to_owned())
        .or_insert_with(|| crate::ports::DailyCounts {
            day: day.to_owned(),
            ..Default::default()
        })
}

#[async_trait]
impl crate::ports::Follows for InMemoryUsers {
    async fn follow(
        &self,
        user: &crate::domain::User,
        target: &crate::ports::FollowTarget,
    ) -> Result<bool, StoreError> {
        let mut follows = self.follows.lock().unwrap();
        if follows.iter().any(|(t, u)| t == target && u.id == user.id) {
            return Ok(false);
        }
        follows.push((target.clone(), user.clone()));
        Ok(true)
    }

    async fn unfollow(
        &self,
        user: &crate::domain::UserId,
        target: &crate::ports::FollowTarget,
    ) -> Result<bool, StoreError> {
        let mut follows = self.follows.lock().unwrap();
        let before = follows.len();
        follows.retain(|(t, u)| !(t == target && &u.id == user));
        Ok(follows.len() < before)
    }

    async fn followers(
        &self,
        target: &crate::ports::FollowTarget,
        resume: Option<String>,
        limit: u16,
    ) -> Result<crate::ports::RecipientPage, StoreError> {
        self.follower_reads.fetch_add(1, Ordering::Relaxed);
        let all: Vec<crate::ports::Recipient> = self
            .follows
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _)| t == target)
            .map(|(_, u)| crate::ports::Recipient {
                user_id: u.id.clone(),
                email: u.email.clone(),
            })
            .collect();
        Ok(page_of(all, resume, limit))
    }

    async fn preferences(
        &self,
        user: &crate::domain::UserId,
    ) -> Result<crate::ports::Preferences, StoreError> {
        Ok(self
            .preferences
            .lock()
            .unwrap()
            .get(user.as_str())
            .copied()
            .unwrap_or_default())
    }

    async fn mail_settings(
        &self,
        user: &crate::domain::UserId,
    ) -> Result<crate::ports::MailSettings, StoreError> {
        self.settings_reads.fetch_add(1, Ordering::Relaxed);
        Ok(crate::ports::MailSettings {
            preferences: self.preferences(user).await?,
            unsubscribe_token: self
                .tokens
                .lock()
                .unwrap()
                .contains(user.as_str())
                .then(|| format!("token-{user}")),
        })
    }

    async fn set_preferences(
        &self,
        user: &crate::domain::UserId,
        preferences: crate::ports::Preferences,
    ) -> Result<(), StoreError> {
        self.preferences
            .lock()
            .unwrap()
            .insert(user.as_str().to_owned(), preferences);
        Ok(())
    }

    async fn make_unsubscribe_token(
        &self,
        user: &crate::domain::UserId,
    ) -> Result<String, StoreError> {
        self.tokens.lock().unwrap().insert(user.as_str().to_owned());
        Ok(format!("token-{user}"))
    }

    async fn unsubscribe(&self, token: &str) -> Result<bool, StoreError> {
        let Some(user) = token.strip_prefix("token-") else {
            return Ok(false);
        };
        self.preferences.lock().unwrap().insert(
            user.to_owned(),
            crate::ports::Preferences {
                notifications: false,
            },
        );
        Ok(true)
    }

    async fn recipients(
        &self,
        users: &[crate::domain::UserId],
    ) -> Result<Vec<crate::ports::Recipient>, StoreError> {
        let all = self.users.lock().unwrap();
        Ok(users
            .iter()
            .filter_map(|id| all.values().find(|(u, _)| &u.id == id))
            .map(|(u, _)| crate::ports::Recipient {
                user_id: u.id.clone(),
                email: u.email.clone(),
            })
            .collect())
    }
}

/// An indexed event: its version, what it is filed under (if listed), and the event.
type Indexed = (u64, Option<crate::domain::SearchEntry>, Event);

/// The search index in memory, using the same entries and matching as the real one.
#[derive(Debug, Default)]
pub struct InMemorySearch {
    entries: Mutex<BTreeMap<EventId, Indexed>>,
    /// `<scope>#<key>` of every event indexed through [`crate::ports::IndexOnce`].
    indexed: Mutex<BTreeSet<String>>,
}

/// As the DynamoDB adapter: a version the index already covers, or one superseded in its batch,
/// is stale before the key is looked at, and a key is remembered only with an index change.
#[async_trait]
impl crate::ports::IndexOnce for InMemorySearch {
    async fn index_once(
        &self,
        scope: &str,
        batch: &[(&str, &Event)],
    ) -> Vec<Result<crate::ports::Settled<Applied>, StoreError>> {
        use crate::ports::{SearchIndex, Settled};
        let mut settled = Vec::with_capacity(batch.len());
        for (at, (key, event)) in batch.iter().enumerate() {
            let covered = self
                .entries
                .lock()
                .unwrap()
                .get(&event.id)
                .is_some_and(|(v, _, _)| *v >= event.version);
            if covered || crate::app::read_model::superseded_in_batch(batch, at) {
                settled.push(Ok(Settled::Done(Applied::Stale)));
                continue;
            }
            let record = format!("{scope}#{key}");
            if self.indexed.lock().unwrap().contains(&record) {
                settled.push(Ok(Settled::AlreadyDone));
                continue;
            }
            let applied = self.index(event).await;
            if matches!(applied, Ok(Applied::Changed)) {
                self.indexed.lock().unwrap().insert(record);
            }
            settled.push(applied.map(Settled::Done));
        }
        settled
    }
}

#[async_trait]
impl crate::ports::SearchIndex for InMemorySearch {
    async fn index(&self, event: &Event) -> Result<Applied, StoreError> {
        let mut entries = self.entries.lock().unwrap();
        if entries
            .get(&event.id)
            .is_some_and(|(v, _, _)| *v >= event.version)
        {
            return Ok(Applied::Stale);
        }
        entries.insert(
            event.id,
            (
                event.version,
                crate::domain::SearchEntry::of(event),
                event.clone(),
            ),
        );
        Ok(Applied::Changed)
    }

    async fn search(
        &self,
        query: &crate::domain::SearchQuery,
        after: crate::domain::Timestamp,
        limit: u16,
        cursor: Option<Cursor>,
    ) -> Result<Page<EventId>, StoreError> {
        let Some(partition) = query.partition() else {
            return Err(StoreError::Corrupt(
                "a query no partition narrows reads the listing, not the index".to_owned(),
            ));
        };
        let entries = self.entries.lock().unwrap();
        let mut found: Vec<&Event> = entries
            .values()
            .filter_map(|(_, entry, event)| {
                let entry = entry.as_ref()?;
                let partition_ok = entry.partitions.contains(&partition);
                let in_range = event.starts_at > after
                    && query.from.is_none_or(|f| event.starts_at >= f)
                    && query.to.is_none_or(|t| event.starts_at <= t)
                    && cursor.is_none_or(|c| (event.starts_at, event.id) > (c.starts_at, c.id));
                (partition_ok && in_range && query.matches(&entry.words, &entry.tags))
                    .then_some(event)
            })
            .collect();
        found.sort_by_key(|e| (e.starts_at, e.id));
        let more = found.len() > usize::from(limit);
        found.truncate(usize::from(limit));
        let next = more.then(|| {
            let last = found.last().expect("a full page has a last item");
            Cursor {
                starts_at: last.starts_at,
                id: last.id,
            }
        });
        Ok(Page {
            items: found.iter().map(|e| e.id).collect(),
            next,
        })
    }
}
