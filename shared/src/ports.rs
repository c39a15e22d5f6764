//! The capabilities the use cases need, one small trait each. AWS adapters live in
//! [`crate::aws`]; in-memory ones for unit tests in [`crate::fakes`] (feature `fakes`).

use async_trait::async_trait;

use crate::domain::{Event, EventId, Timestamp, UserId, Visibility};
use crate::envelope::Envelope;

/// Where in the `starts_at` order a page ends; the next page starts after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub starts_at: Timestamp,
    pub id: EventId,
}

/// A request for one page of upcoming public events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// Only events starting strictly after this instant are listed.
    pub after: Timestamp,
    pub limit: u16,
    pub cursor: Option<Cursor>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Present only when more items may follow.
    pub next: Option<Cursor>,
}

impl Page<Event> {
    /// Each event as its [`EventView`].
    pub fn render(&self) -> Result<Page<EventView>, StoreError> {
        Ok(Page {
            items: self
                .items
                .iter()
                .map(render_view)
                .collect::<Result<_, _>>()?,
            next: self.next,
        })
    }
}

/// One event as GET /events lists it: its JSON. A store that keeps it rendered (the read
/// model, written once per change) lets a page be spliced together without building an
/// [`Event`] per item: most of a listing's CPU went to parsing attributes into events and
/// serialising them back (BENCHMARKS.md, "Warm CPU").
pub type EventView = Box<serde_json::value::RawValue>;

/// One event as GET /events/{id} serves it: its view, and what its ETag and the decision
/// of who may see it need.
#[derive(Debug)]
pub struct ViewedEvent {
    pub view: EventView,
    pub version: u64,
    pub visibility: Visibility,
    pub organizer_id: UserId,
}

impl ViewedEvent {
    pub fn of(event: &Event) -> Result<Self, StoreError> {
        Ok(Self {
            view: render_view(event)?,
            version: event.version,
            visibility: event.visibility,
            organizer_id: event.organizer_id.clone(),
        })
    }

    pub fn is_visible_to(&self, viewer: Option<&UserId>) -> bool {
        self.visibility.lets_see(&self.organizer_id, viewer)
    }
}

pub fn render_view(event: &Event) -> Result<EventView, StoreError> {
    serde_json::value::to_raw_value(event).map_err(|e| StoreError::Corrupt(e.to_string()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    Eventual,
    Strong,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A conditional write found the item already there.
    #[error("the item already exists")]
    AlreadyExists,
    /// The store did not answer usefully: throttled, missing table, network, ... Worth a retry
    /// or a fallback, never worth showing to a client.
    #[error("store unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// An item is there but does not parse: a bug or a manual edit, never the client's fault.
    #[error("stored item is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    pub fn unavailable(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Unavailable(Box::new(error))
    }
}

/// Reading events: both the events table and the read model can answer these.
#[async_trait]
pub trait EventReader: Send + Sync {
    async fn get(
        &self,
        id: &EventId,
        consistency: Consistency,
    ) -> Result<Option<Event>, StoreError>;

    /// The events among `ids` that exist, in no particular order (one batch read).
    async fn get_many(&self, ids: &[EventId]) -> Result<Vec<Event>, StoreError>;

    /// Upcoming public events in `starts_at` order (ties by id), through an index.
    async fn list_upcoming(&self, page: PageRequest) -> Result<Page<Event>, StoreError>;

    /// [`Self::get`] as the view GET /events/{id} serves. Rendered here unless the store keeps
    /// it rendered.
    async fn get_view(
        &self,
        id: &EventId,
        consistency: Consistency,
    ) -> Result<Option<ViewedEvent>, StoreError> {
        self.get(id, consistency)
            .await?
            .as_ref()
            .map(ViewedEvent::of)
            .transpose()
    }

    /// The same page as [`Self::list_upcoming`], as views. Rendered here unless the store
    /// keeps them rendered.
    async fn list_upcoming_views(&self, page: PageRequest) -> Result<Page<EventView>, StoreError> {
        self.list_upcoming(page).await?.render()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// Someone else changed the event since the caller read it.
    #[error("the event changed since it was read")]
    VersionMismatch,
    /// The new capacity is below the number of people already going.
    #[error("more people are going than the new capacity allows")]
    CapacityBelowAttendees,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RsvpOutcome {
    Created,
    /// The caller was already going: nothing changed, nothing announced.
    AlreadyGoing,
}

#[derive(Debug, thiserror::Error)]
pub enum RsvpError {
    #[error("the event is full")]
    Full,
    #[error("the event is cancelled or has already started")]
    Closed,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The system of record for events. Every write that other services must hear about stores
/// its envelope in the outbox in the same transaction, so nothing is saved without its
/// announcement, nor announced without being saved.
#[async_trait]
pub trait EventStore: EventReader {
    async fn create(&self, event: &Event, envelope: &Envelope) -> Result<(), StoreError>;

    /// Replaces the event's fields with `event`'s, only if the stored version is still
    /// `expected_version` (optimistic concurrency); attendance is left as it is.
    async fn update(
        &self,
        event: &Event,
        expected_version: u64,
        envelope: &Envelope,
    ) -> Result<(), UpdateError>;

    /// Adds `user` to the event's attendees, atomically with the capacity check: the seat
    /// count and the RSVP are one transaction, so concurrent RSVPs never overbook.
    async fn rsvp(
        &self,
        event: &Event,
        user: &UserId,
        now: Timestamp,
        envelope: &Envelope,
    ) -> Result<RsvpOutcome, RsvpError>;

    /// Removes `user`'s RSVP; `false` if there was none (nothing announced then).
    async fn cancel_rsvp(
        &self,
        event: &EventId,
        user: &UserId,
        envelope: &Envelope,
    ) -> Result<bool, StoreError>;

    /// Ids of the events `user` has RSVPed to (at most `limit`, newest RSVPs first).
    async fn rsvps_of(&self, user: &UserId, limit: u16) -> Result<Vec<EventId>, StoreError>;

    /// One page of the people going to `event`, and where the next page starts.
    async fn attendees(
        &self,
        event: &EventId,
        resume: Option<String>,
        limit: u16,
    ) -> Result<(Vec<UserId>, Option<String>), StoreError>;
}

/// Whether a projection write changed anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Changed,
    /// The stored projection is as new or newer: a replay or an out-of-order delivery.
    Stale,
}

/// The query-side copy of events that GET /events serves.
#[async_trait]
pub trait ReadModel: EventReader {
    /// Upserts the projection only if `event.version` is newer than the stored one.
    async fn apply(&self, event: &Event) -> Result<Applied, StoreError>;
}

/// What an exactly-once write did with one entry of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled<T> {
    /// The entry's effect was decided now (`T` says how), and its key recorded as done.
    Done(T),
    /// The key was recorded as done by an earlier delivery: nothing was written.
    AlreadyDone,
    /// Another invocation holds the key in progress: retry later.
    InProgressElsewhere,
}

/// [`ReadModel::apply`] for a consumer, exactly once per `(scope, key)`: each projection is
/// written in one transaction with the idempotency kit's completed record for its key (the
/// same record, table and claim condition as [`Idempotency`]), and a batch's entries share
/// their transactions. Only projection writes that commit are remembered, so the record can
/// never say done for an effect that is not in place. One result per entry, in order.
#[async_trait]
pub trait ProjectOnce: Send + Sync {
    async fn apply_once(
        &self,
        scope: &str,
        batch: &[(&str, &Event)],
    ) -> Vec<Result<Settled<Applied>, StoreError>>;
}

/// One envelope ready to publish, with the attributes subscribers filter on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    pub body: String,
    pub event_type: String,
    pub correlation_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("publishing failed: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The outcome of one message of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    Accepted,
    Rejected { code: String, message: String },
}

/// Sends envelopes to the domain-event topic.
#[async_trait]
pub trait Publisher: Send + Sync {
    /// The most messages one call accepts (SNS PublishBatch takes ten).
    const MAX_BATCH: usize;

    /// Publishes up to [`Self::MAX_BATCH`] messages; returns one outcome per message, in order.
    async fn publish(&self, batch: &[OutgoingMessage]) -> Result<Vec<Published>, PublishError>;
}

// ---- Accounts -------------------------------------------------------------------------

/// What is stored to log someone in: their id and the PHC string of their password hash.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user_id: crate::domain::UserId,
    pub password_hash: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SignUpError {
    #[error("the email address is already registered")]
    EmailTaken,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Users, their credentials, and the email claims that keep addresses unique.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Stores the profile, claims the email and writes the envelope to the outbox, all in one
    /// transaction: a taken email fails the whole write.
    async fn create(
        &self,
        user: &crate::domain::User,
        password_hash: &str,
        envelope: &Envelope,
    ) -> Result<(), SignUpError>;

    async fn credentials(
        &self,
        email: &crate::domain::Email,
    ) -> Result<Option<Credentials>, StoreError>;

    async fn profile(
        &self,
        id: &crate::domain::UserId,
    ) -> Result<Option<crate::domain::User>, StoreError>;
}

/// Whether an account may try to log in now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginGate {
    Open,
    Locked { retry_after_seconds: i64 },
}

/// Failed-login bookkeeping per account, expiring by itself.
#[async_trait]
pub trait LoginThrottle: Send + Sync {
    async fn gate(
        &self,
        email: &crate::domain::Email,
        now: Timestamp,
    ) -> Result<LoginGate, StoreError>;
    async fn record_failure(
        &self,
        email: &crate::domain::Email,
        now: Timestamp,
    ) -> Result<(), StoreError>;
    async fn reset(&self, email: &crate::domain::Email) -> Result<(), StoreError>;
}

/// The signing key ring, kept in a secret store.
#[async_trait]
pub trait KeyVault: Send + Sync {
    /// The stored secret text, if any.
    async fn read(&self) -> Result<Option<String>, StoreError>;
    async fn write(&self, secret: &str) -> Result<(), StoreError>;
}

// ---- Mail ------------------------------------------------------------------------------

/// One mail, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum MailError {
    /// Sending rate exceeded: try again later.
    #[error("mail throttled: {0}")]
    Throttled(String),
    /// This recipient or message will never be accepted: do not retry.
    #[error("mail rejected: {0}")]
    Rejected(String),
    #[error("mail service unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait Mailer: Send + Sync {
    /// Sends one mail; returns the provider's message id.
    async fn send(&self, mail: &Mail) -> Result<String, MailError>;
}

/// A mail whose parts hold `{{name}}` placeholders, which the mail service fills in for each
/// recipient. It does not escape what it fills in: each part gets values made safe for it
/// ([`crate::mail::escape_html`] for `html`, [`crate::mail::header_safe`] for `subject`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailTemplate {
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl MailTemplate {
    /// From its parts as a template file holds them: the subject without its line end.
    pub fn new(subject: &str, text: &str, html: &str) -> Self {
        Self {
            subject: subject.trim().to_owned(),
            text: text.to_owned(),
            html: html.to_owned(),
        }
    }
}

/// One recipient of a [`MailTemplate`], with the values of its placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addressed {
    pub to: String,
    pub values: Vec<(&'static str, String)>,
}

/// Sending one template to many recipients, in as few calls as the mail service allows.
#[async_trait]
pub trait BulkMailer: Send + Sync {
    /// One result per recipient, in order: the provider's message id, or why that mail was not
    /// sent. A failure of the whole call is every recipient's.
    async fn send_each(
        &self,
        template: &MailTemplate,
        recipients: &[Addressed],
    ) -> Vec<Result<String, MailError>>;
}

// ---- Idempotency -----------------------------------------------------------------------

/// What [`Idempotency::begin`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begun {
    /// No live record: the caller now owns the work until `in_progress_until`.
    Started,
    /// The work was done already (and the record has not expired).
    AlreadyDone(Completed),
    /// Another invocation holds the work and its lease has not run out.
    InProgressElsewhere,
}

/// What a completed record remembers besides the fact that the work is done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Completed {
    /// The fingerprint of the request that did the work, when the caller gave one.
    pub fingerprint: Option<String>,
    /// The outcome to replay (an HTTP response, serialised), when the caller stored one.
    pub outcome: Option<String>,
}

/// One unit of work to do once: `key` within `scope` (a consumer name, an HTTP route), and
/// optionally the fingerprint of the request that asked for it, so a reused key with another
/// request can be told apart from a retry.
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    pub scope: &'a str,
    pub key: &'a str,
    pub fingerprint: Option<&'a str>,
}

impl<'a> Claim<'a> {
    pub fn new(scope: &'a str, key: &'a str) -> Self {
        Self {
            scope,
            key,
            fingerprint: None,
        }
    }

    pub fn with_fingerprint(self, fingerprint: &'a str) -> Self {
        Self {
            fingerprint: Some(fingerprint),
            ..self
        }
    }
}

/// Exactly-once effects over at-least-once delivery, in the spirit of Powertools' idempotency
/// utility: a record per (scope, key) that is in progress until a lease runs out, then complete
/// until it expires. The lease should end with the invocation (see
/// [`crate::idempotency::lease_until`]), so a crashed holder frees the work as soon as it can no
/// longer be running.
#[async_trait]
pub trait Idempotency: Send + Sync {
    /// Claims the work until `in_progress_until`, unless it is done or held elsewhere.
    async fn begin(
        &self,
        claim: Claim<'_>,
        now: Timestamp,
        in_progress_until: Timestamp,
    ) -> Result<Begun, StoreError>;

    /// Marks the work done, with an outcome to replay; the record short-circuits repeats until
    /// `expires_at`.
    async fn complete(
        &self,
        claim: Claim<'_>,
        outcome: Option<&str>,
        expires_at: Timestamp,
    ) -> Result<(), StoreError>;

    /// Gives the claim up after a failure, so a retry can start at once.
    async fn release(&self, claim: Claim<'_>) -> Result<(), StoreError>;

    /// [`Self::begin`] for several keys of one scope (without fingerprints), in one call where
    /// the store allows; one result per key, in order.
    async fn begin_each(
        &self,
        scope: &str,
        keys: &[&str],
        now: Timestamp,
        in_progress_until: Timestamp,
    ) -> Vec<Result<Begun, StoreError>> {
        let mut begun = Vec::with_capacity(keys.len());
        for key in keys {
            begun.push(
                self.begin(Claim::new(scope, key), now, in_progress_until)
                    .await,
            );
        }
        begun
    }

    /// [`Self::complete`] for several keys of one scope (no outcome to replay), in one call
    /// where the store allows.
    async fn complete_each(
        &self,
        scope: &str,
        keys: &[&str],
        expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        for key in keys {
            self.complete(Claim::new(scope, key), None, expires_at)
                .await?;
        }
        Ok(())
    }
}

/// Walking every event in the system of record, page by page: for rebuilds, never for requests.
#[async_trait]
pub trait EventScan: Send + Sync {
    /// One page of events after `resume` (an opaque token from the previous page), and the
    /// token for the next page if there is one.
    async fn scan_page(
        &self,
        resume: Option<String>,
    ) -> Result<(Vec<Event>, Option<String>), StoreError>;
}

// ---- Analytics -------------------------------------------------------------------------

/// One counter increment that an envelope stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Count {
    EventCreated { day: String },
    Signup { day: String },
    RsvpCreated { event: EventId },
    RsvpCancelled { event: EventId },
}

/// Counters per event.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct EventStats {
    /// RSVPs made minus RSVPs withdrawn.
    pub going: i64,
    pub rsvps_created: i64,
    pub rsvps_cancelled: i64,
}

/// Counters per UTC day (`YYYY-MM-DD`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DailyCounts {
    pub day: String,
    pub events_created: i64,
    pub signups: i64,
}

/// Counters an envelope moves at most once, however often it arrives.
#[async_trait]
pub trait CountOnce: Send + Sync {
    /// Applies each entry's count unless its key is recorded as done in `scope`: the counters
    /// move in one transaction with the idempotency kit's completed records (as
    /// [`ProjectOnce`]), and the entries of a batch that add to one counter add together. One
    /// result per entry, in order.
    async fn record_once(
        &self,
        scope: &str,
        batch: &[(&str, &Count)],
    ) -> Vec<Result<Settled<()>, StoreError>>;
}

/// The counters, as the API reads them.
#[async_trait]
pub trait Analytics: Send + Sync {
    async fn event_stats(&self, event: &EventId) -> Result<EventStats, StoreError>;
    /// Days from `from` to `to` inclusive (`YYYY-MM-DD`), only those with counts.
    async fn daily(&self, from: &str, to: &str) -> Result<Vec<DailyCounts>, StoreError>;
}

// ---- Follows, preferences, notifications ------------------------------------------------

/// What a user can follow to hear about new events.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FollowTarget {
    Organizer(UserId),
    Tag(crate::domain::Tag),
}

impl FollowTarget {
    /// The stable text form used in keys: `organizer#<id>` or `tag#<slug>`.
    pub fn key(&self) -> String {
        match self {
            Self::Organizer(id) => format!("organizer#{id}"),
            Self::Tag(tag) => format!("tag#{}", tag.as_str()),
        }
    }
}

/// Someone to mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub user_id: UserId,
    pub email: crate::domain::Email,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Preferences {
    /// Mail about new events from followed organizers or tags, and changes to RSVPed events.
    pub notifications: bool,
}

impl Default for Preferences {
    fn default() -> Self {
        Self {
            notifications: true,
        }
    }
}

/// What mailing one user takes, read at once: whether they want mail, and their unsubscribe
/// token if it has been made (by their first mail).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailSettings {
    pub preferences: Preferences,
    pub unsubscribe_token: Option<String>,
}

/// One page of a recipient list, and where the next page starts.
pub type RecipientPage = (Vec<Recipient>, Option<String>);

#[async_trait]
pub trait Follows: Send + Sync {
    /// `false` if already following.
    async fn follow(
        &self,
        user: &crate::domain::User,
        target: &FollowTarget,
    ) -> Result<bool, StoreError>;
    /// `false` if not following.
    async fn unfollow(&self, user: &UserId, target: &FollowTarget) -> Result<bool, StoreError>;
    async fn followers(
        &self,
        target: &FollowTarget,
        resume: Option<String>,
        limit: u16,
    ) -> Result<RecipientPage, StoreError>;
    async fn preferences(&self, user: &UserId) -> Result<Preferences, StoreError>;
    /// The preferences and the unsubscribe token in one read: a mail to each follower costs
    /// one read fewer than asking for them apart.
    async fn mail_settings(&self, user: &UserId) -> Result<MailSettings, StoreError>;
    /// [`Self::mail_settings`] of several users, in one read where the store allows;
    /// one answer per user, in order.
    async fn mail_settings_each(&self, users: &[UserId]) -> Result<Vec<MailSettings>, StoreError> {
        let mut settings = Vec::with_capacity(users.len());
        for user in users {
            settings.push(self.mail_settings(user).await?);
        }
        Ok(settings)
    }
    async fn set_preferences(
        &self,
        user: &UserId,
        preferences: Preferences,
    ) -> Result<(), StoreError>;
    /// The user's unsubscribe token, made on first use. It is a capability: whoever holds the
    /// link may turn that user's notification mail off, and nothing else.
    async fn unsubscribe_token(&self, user: &UserId) -> Result<String, StoreError> {
        match self.mail_settings(user).await?.unsubscribe_token {
            Some(token) => Ok(token),
            None => self.make_unsubscribe_token(user).await,
        }
    }
    /// Makes the user's unsubscribe token without reading first, for a caller whose
    /// `mail_settings` just showed none: a first mail then costs one read, not two. If another
    /// made one meanwhile, that one is returned.
    async fn make_unsubscribe_token(&self, user: &UserId) -> Result<String, StoreError>;
    /// Turns notification mail off for the token's user; `false` for an unknown token.
    async fn unsubscribe(&self, token: &str) -> Result<bool, StoreError>;
    /// Profiles of `users` that exist, as recipients.
    async fn recipients(&self, users: &[UserId]) -> Result<Vec<Recipient>, StoreError>;
}

// ---- Search ------------------------------------------------------------------------------

/// The search entries in the read-model table.
#[async_trait]
pub trait SearchIndex: Send + Sync {
    /// Files `event` under its current terms and removes what its older version was filed
    /// under; a version not newer than the indexed one changes nothing.
    async fn index(&self, event: &Event) -> Result<Applied, StoreError>;

    /// Ids of matching events starting after `after`, in start order, from `cursor` on.
    async fn search(
        &self,
        query: &crate::domain::SearchQuery,
        after: Timestamp,
        limit: u16,
        cursor: Option<Cursor>,
    ) -> Result<Page<EventId>, StoreError>;
}

/// [`SearchIndex::index`] for a consumer, exactly once per `(scope, key)`: a batch's manifests
/// are read together, its entries written together, and each newer manifest goes in one
/// transaction with the idempotency kit's completed record for its key (as [`ProjectOnce`]). An
/// event's version older than one already indexed, or than another of the same batch, is
/// `Done(Applied::Stale)` and writes nothing. One result per entry, in order.
#[async_trait]
pub trait IndexOnce: Send + Sync {
    async fn index_once(
        &self,
        scope: &str,
        batch: &[(&str, &Event)],
    ) -> Vec<Result<Settled<Applied>, StoreError>>;
}
