//! Who hears about what, and exactly once.
//!
//! - `EventCreated` (public): followers of the organizer and of each of the event's tags.
//! - `EventUpdated` that moves the time or the venue, and `EventCancelled`: every attendee.
//!
//! A batch's envelopes are served together, in rounds: each round reads pages of every
//! unfinished audience until it has a page's worth of recipients or the audience ends (the
//! first page of one follow target is read once per batch, however many of its events name
//! the target), then mails the round's recipients with one read of their settings, one claim
//! call, one bulk send and one completion call. Each recipient's mail is guarded by an
//! idempotency record keyed by (recipient, event, entity version), so a redelivery, a retry
//! after a failure, or a run that stopped at its time budget resumes by skipping everyone
//! already mailed: no recipient is mailed twice and none is skipped.
//! Recipients who turned notifications off are not mailed.

use std::collections::{HashMap, HashSet};

use aws_lambda_events::event::sqs::SqsBatchResponse;
use evently_shared::consumer::{self, Handled, MessageError, SqsBatch};
use evently_shared::domain::{Event, Timestamp, UserId};
use evently_shared::envelope::{DomainEvent, Envelope};
use evently_shared::idempotency::lease_until;
use evently_shared::ports::{
    Addressed, Begun, BulkMailer, Claim, EventStore, FollowTarget, Follows, Idempotency, MailError,
    MailSettings, Recipient, RecipientPage, StoreError,
};
use lambda_runtime::Error;

use crate::mail::{About, Reason, template};

pub const SCOPE: &str = "notifications";
/// Recipients per page: bounded work between checks of the time budget.
const PAGE: u16 = 25;
/// Stop starting new rounds when less than this is left of the invocation (or a quarter of
/// the invocation, for short timeouts).
const RESERVE_MS: i64 = 3_000;
const REMEMBER_SECONDS: i64 = 15 * 24 * 60 * 60;

/// The fields whose change attendees are told about.
const NOTIFIED_CHANGES: &[&str] = &["starts_at", "ends_at", "venue"];

pub struct Notifier<E, F, M, I> {
    pub events: E,
    pub follows: F,
    pub mailer: M,
    pub idempotency: I,
    /// Base of the unsubscribe link; the user's token is appended as `?token=`.
    pub unsubscribe_url: String,
}

enum Audience {
    Followers(Vec<FollowTarget>),
    Attendees,
}

/// What one envelope asks for: who hears about which event, and why.
pub struct Notice {
    event: Event,
    reason: Reason,
    audience: Audience,
    correlation_id: String,
}

fn notice_of(envelope: &Envelope) -> Result<Option<Notice>, MessageError> {
    let domain = envelope
        .domain_event()
        .map_err(|e| MessageError::Permanent(e.to_string()))?;
    let (event, reason, audience) = match domain {
        DomainEvent::EventCreated(event) if event.is_listed_publicly() => {
            let mut targets = vec![FollowTarget::Organizer(event.organizer_id.clone())];
            targets.extend(event.tags.iter().cloned().map(FollowTarget::Tag));
            (event, Reason::NewEvent, Audience::Followers(targets))
        }
        DomainEvent::EventUpdated(change)
            if change
                .changed
                .iter()
                .any(|c| NOTIFIED_CHANGES.contains(&c.as_str())) =>
        {
            (change.event, Reason::Changed, Audience::Attendees)
        }
        DomainEvent::EventCancelled(event) => (event, Reason::Cancelled, Audience::Attendees),
        _ => return Ok(None),
    };
    Ok(Some(Notice {
        event,
        reason,
        audience,
        correlation_id: envelope.correlationid.to_string(),
    }))
}

/// One notice's way through its audience.
struct Walk {
    notice: Notice,
    about: About,
    /// The next page to read: the target's index (0 for attendees) and where its page starts;
    /// `None` once the audience is read.
    next: Option<(usize, Option<String>)>,
    /// Everyone this notice has reached so far, mailed or not: someone who follows both the
    /// organizer and a tag gets one mail, not two.
    seen: HashSet<UserId>,
    sent: usize,
    skipped: usize,
    /// Why the notice stopped; the rest goes out on the redelivery.
    failed: Option<MessageError>,
}

impl Walk {
    fn new(notice: Notice) -> Self {
        Self {
            about: About::new(notice.reason, &notice.event),
            notice,
            next: Some((0, None)),
            seen: HashSet::new(),
            sent: 0,
            skipped: 0,
            failed: None,
        }
    }

    fn is_open(&self) -> bool {
        self.next.is_some() && self.failed.is_none()
    }

    fn fail(&mut self, error: MessageError) {
        if self.failed.is_none() {
            self.failed = Some(error);
        }
    }

    /// Moves past the page just read, whose next page starts at `resume`.
    fn advance(&mut self, resume: Option<String>) {
        let Some((target, _)) = self.next.take() else {
            return;
        };
        let targets = match &self.notice.audience {
            Audience::Followers(targets) => targets.len(),
            Audience::Attendees => 1,
        };
        self.next = match resume {
            Some(resume) => Some((target, Some(resume))),
            None if target + 1 < targets => Some((target + 1, None)),
            None => None,
        };
    }

    /// Whether `recipient` is someone this notice still has to consider: not the organizer
    /// (no mail about their own event) and not reached already.
    fn reaches(&mut self, recipient: &Recipient) -> bool {
        if recipient.user_id == self.notice.event.organizer_id
            || !self.seen.insert(recipient.user_id.clone())
        {
            self.skipped += 1;
            return false;
        }
        true
    }

    fn outcome(self) -> Result<Handled, MessageError> {
        let Self {
            notice,
            sent,
            skipped,
            failed,
            ..
        } = self;
        match failed {
            Some(error) => Err(error),
            None => {
                tracing::info!(
                    correlation_id = %notice.correlation_id,
                    event_id = %notice.event.id,
                    sent,
                    skipped,
                    "notifications done"
                );
                Ok("notifications done".into())
            }
        }
    }
}

/// A recipient of one walk in this round, and the key of their record.
struct Due {
    walk: usize,
    recipient: Recipient,
    key: String,
}

fn retry(error: StoreError) -> MessageError {
    MessageError::Retryable(error.to_string())
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl<E: EventStore, F: Follows, M: BulkMailer, I: Idempotency> Notifier<E, F, M, I> {
    pub async fn handle_batch(
        &self,
        event: SqsBatch,
        deadline_ms: i64,
    ) -> Result<SqsBatchResponse, Error> {
        let reserve = RESERVE_MS.min((deadline_ms - now_ms()).max(0) / 4);
        let stop_at = deadline_ms - reserve;
        let lease = lease_until(u64::try_from(deadline_ms).ok());
        consumer::process_together(event, notice_of, |notices| {
            self.notify(notices, stop_at, lease)
        })
        .await
    }

    /// `stop_at`: no new round starts after this instant (ms since the epoch).
    /// `lease`: when this invocation's idempotency claims lapse (its deadline).
    async fn notify(
        &self,
        notices: Vec<(String, Notice)>,
        stop_at: i64,
        lease: Timestamp,
    ) -> Vec<Result<Handled, MessageError>> {
        let mut walks: Vec<Walk> = notices
            .into_iter()
            .map(|(_, notice)| Walk::new(notice))
            .collect();
        // First pages of follower lists, by target: the same for every event that names the
        // target, so each is read once per batch. Only first pages: most audiences fit in
        // one, and keeping every page of a large one would hold it all in memory.
        let mut pages: HashMap<String, RecipientPage> = HashMap::new();
        while walks.iter().any(Walk::is_open) {
            if now_ms() >= stop_at {
                for walk in walks.iter_mut().filter(|w| w.is_open()) {
                    // Everyone mailed so far is recorded: the redelivery picks up from there.
                    walk.fail(MessageError::Retryable(
                        "time budget spent; the rest goes out on redelivery".into(),
                    ));
                }
                break;
            }
            let mut due = Vec::new();
            for (at, walk) in walks.iter_mut().enumerate() {
                // Pages until this walk has a page's worth due or its audience is read: a new
                // event's organizer and tags then take one round, not one each.
                let mut found = 0;
                while walk.is_open() && found < usize::from(PAGE) {
                    match self.page(walk, &mut pages).await {
                        Ok((recipients, resume)) => {
                            walk.advance(resume);
                            for recipient in recipients {
                                if walk.reaches(&recipient) {
                                    let event = &walk.notice.event;
                                    let key = format!(
                                        "{}#{}#{}",
                                        recipient.user_id, event.id, event.version
                                    );
                                    due.push(Due {
                                        walk: at,
                                        recipient,
                                        key,
                                    });
                                    found += 1;
                                }
                            }
                        }
                        Err(error) => walk.fail(retry(error)),
                    }
                }
            }
            self.mail_round(&mut walks, due, lease).await;
        }
        walks.into_iter().map(Walk::outcome).collect()
    }

    /// The walk's next page of recipients, and where the one after starts.
    async fn page(
        &self,
        walk: &Walk,
        pages: &mut HashMap<String, RecipientPage>,
    ) -> Result<RecipientPage, StoreError> {
        let Some((target, resume)) = walk.next.clone() else {
            return Ok((Vec::new(), None));
        };
        match &walk.notice.audience {
            Audience::Followers(targets) => {
                let target = &targets[target];
                if resume.is_some() {
                    return self.follows.followers(target, resume, PAGE).await;
                }
                let key = target.key();
                if let Some(page) = pages.get(&key) {
                    return Ok(page.clone());
                }
                let page = self.follows.followers(target, None, PAGE).await?;
                pages.insert(key, page.clone());
                Ok(page)
            }
            Audience::Attendees => {
                let (users, next) = self
                    .events
                    .attendees(&walk.notice.event.id, resume, PAGE)
                    .await?;
                Ok((self.follows.recipients(&users).await?, next))
            }
        }
    }

    /// Mails a round's recipients: their settings in one read, their claims in one call, one
    /// bulk send, their completions in one call. A failure stops the walk it belongs to, never
    /// another's.
    async fn mail_round(&self, walks: &mut [Walk], due: Vec<Due>, lease: Timestamp) {
        if due.is_empty() {
            return;
        }
        let users: Vec<UserId> = {
            let mut distinct = HashSet::with_capacity(due.len());
            due.iter()
                .filter(|d| distinct.insert(&d.recipient.user_id))
                .map(|d| d.recipient.user_id.clone())
                .collect()
        };
        let mut settings: HashMap<UserId, MailSettings> =
            match self.follows.mail_settings_each(&users).await {
                Ok(settings) if settings.len() == users.len() => {
                    users.into_iter().zip(settings).collect()
                }
                answered => {
                    // Without a recipient's settings nobody can tell whether they want mail:
                    // the round goes again on the redelivery.
                    let error = match answered {
                        Err(error) => retry(error),
                        Ok(settings) => MessageError::Retryable(format!(
                            "settings came back for {} of {} recipients",
                            settings.len(),
                            users.len()
                        )),
                    };
                    for d in &due {
                        walks[d.walk].fail(error.clone());
                    }
                    return;
                }
            };

        // Opted out: not mailed. One envelope twice under two ids: one mail.
        let mut keys: HashSet<&str> = HashSet::with_capacity(due.len());
        let mut wanted = Vec::with_capacity(due.len());
        for d in &due {
            let wants = settings
                .get(&d.recipient.user_id)
                .is_some_and(|s| s.preferences.notifications);
            if wants && keys.insert(d.key.as_str()) {
                wanted.push(d);
            } else {
                walks[d.walk].skipped += 1;
            }
        }
        if wanted.is_empty() {
            return;
        }
        let now = Timestamp::now();
        let claim_keys: Vec<&str> = wanted.iter().map(|d| d.key.as_str()).collect();
        let begun = self
            .idempotency
            .begin_each(SCOPE, &claim_keys, now, lease)
            .await;
        let mut claimed = Vec::with_capacity(wanted.len());
        for (d, begun) in wanted.into_iter().zip(begun) {
            match begun {
                Ok(Begun::Started) => claimed.push(d),
                Ok(Begun::AlreadyDone(_)) => walks[d.walk].skipped += 1,
                Ok(Begun::InProgressElsewhere) => walks[d.walk].fail(MessageError::Retryable(
                    "another invocation is mailing this recipient".into(),
                )),
                Err(error) => walks[d.walk].fail(retry(error)),
            }
        }

        // A recipient's first mail makes their token, once claimed, so that nobody who is
        // never mailed gets one.
        let mut addressed: Vec<Addressed> = Vec::with_capacity(claimed.len());
        let mut sending = Vec::with_capacity(claimed.len());
        for d in claimed {
            let user = &d.recipient.user_id;
            let token = match settings.get(user).and_then(|s| s.unsubscribe_token.clone()) {
                Some(token) => token,
                None => match self.follows.make_unsubscribe_token(user).await {
                    Ok(token) => {
                        if let Some(s) = settings.get_mut(user) {
                            s.unsubscribe_token = Some(token.clone());
                        }
                        token
                    }
                    Err(error) => {
                        self.release(d, walks).await;
                        walks[d.walk].fail(retry(error));
                        continue;
                    }
                },
            };
            let link = format!("{}?token={token}", self.unsubscribe_url);
            addressed.push(walks[d.walk].about.to(d.recipient.email.as_str(), &link));
            sending.push(d);
        }
        if sending.is_empty() {
            return;
        }

        let sent = self.mailer.send_each(template(), &addressed).await;
        let mut done = Vec::with_capacity(sending.len());
        let mut answered = 0;
        let mut mailed = 0;
        for (d, sent) in sending.iter().zip(sent) {
            answered += 1;
            let walk = &mut walks[d.walk];
            match sent {
                Ok(_) => {
                    mailed += 1;
                    walk.sent += 1;
                    done.push(d);
                }
                Err(MailError::Rejected(reason)) => {
                    // Logged and counted, never retried: the address will not accept mail.
                    tracing::warn!(
                        correlation_id = %walk.notice.correlation_id,
                        user_id = %d.recipient.user_id,
                        %reason,
                        rejected_recipients = 1,
                        "notification rejected"
                    );
                    walk.skipped += 1;
                    done.push(d);
                }
                Err(error @ (MailError::Throttled(_) | MailError::Unavailable(_))) => {
                    self.release(d, walks).await;
                    walks[d.walk].fail(MessageError::Retryable(error.to_string()));
                }
            }
        }
        evently_shared::metrics::mails_sent(mailed);
        for d in &sending[answered..] {
            self.release(d, walks).await;
            walks[d.walk].fail(MessageError::Retryable(
                "the mail service answered for fewer mails than were sent".into(),
            ));
        }

        if done.is_empty() {
            return;
        }
        let done_keys: Vec<&str> = done.iter().map(|d| d.key.as_str()).collect();
        let done_until = now.plus_seconds(REMEMBER_SECONDS);
        if let Err(error) = self
            .idempotency
            .complete_each(SCOPE, &done_keys, done_until)
            .await
        {
            // The mails are out: from here on, a failure must not lead to second ones.
            for d in &done {
                tracing::error!(
                    correlation_id = %walks[d.walk].notice.correlation_id,
                    %error,
                    "mail sent but not recorded; the claim blocks a resend until it lapses"
                );
            }
        }
    }

    /// Gives up `due`'s claim after its mail could not go out, so the retry can go ahead.
    async fn release(&self, due: &Due, walks: &[Walk]) {
        if let Err(error) = self.idempotency.release(Claim::new(SCOPE, &due.key)).await {
            tracing::warn!(
                correlation_id = %walks[due.walk].notice.correlation_id,
                %error,
                "claim not released; it lapses with its lease"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use evently_shared::domain::{
        Capacity, Description, DisplayName, Email, EventDraft, Schedule, Tag, Tags, Title, User,
        Venue, Visibility,
    };
    use evently_shared::envelope::{CorrelationId, EventChange};
    use evently_shared::fakes::{
        InMemoryEvents, InMemoryIdempotency, InMemoryUsers, RecordingMailer,
    };
    use evently_shared::ports::{Preferences, UserStore};
    use serde_json::json;
    use std::sync::atomic::Ordering;

    use super::*;

    type App = Notifier<InMemoryEvents, InMemoryUsers, RecordingMailer, InMemoryIdempotency>;

    fn app() -> App {
        Notifier {
            events: InMemoryEvents::default(),
            follows: InMemoryUsers::default(),
            mailer: RecordingMailer::default(),
            idempotency: InMemoryIdempotency::default(),
            unsubscribe_url: "https://api.example.com/unsubscribe".into(),
        }
    }

    async fn user(app: &App, name: &str) -> User {
        let user = User::create(
            Email::parse("email", &format!("{name}@example.com")).unwrap(),
            DisplayName::parse("display_name", name).unwrap(),
            Timestamp::now(),
        );
        let envelope = envelope(DomainEvent::UserCreated(user.clone()));
        app.follows.create(&user, "hash", &envelope).await.unwrap();
        user
    }

    async fn meetup(app: &App, organizer: &User, tags: &[&str]) -> Event {
        let now = Timestamp::now();
        let draft = EventDraft {
            title: Title::parse("title", "Rust <night>").unwrap(),
            description: Description::parse("d", "").unwrap(),
            schedule: Schedule::upcoming(now.plus_seconds(86_400), now.plus_seconds(90_000), now)
                .unwrap(),
            venue: Venue::parse("venue", "Hall").unwrap(),
            tags: Tags::new(tags.iter().map(|t| Tag::parse("t", t).unwrap()).collect()).unwrap(),
            visibility: Visibility::Public,
            capacity: Some(Capacity::new("capacity", 100).unwrap()),
        };
        let event = Event::create(draft, organizer.id.clone(), now);
        let envelope = DomainEvent::EventCreated(event.clone()).into_envelope(
            "/t",
            CorrelationId::generate(),
            now,
        );
        app.events.create(&event, &envelope).await.unwrap();
        event
    }

    /// `count` new users RSVP to `event`.
    async fn attend(app: &App, event: &Event, prefix: &str, count: usize) {
        for i in 0..count {
            let attendee = user(app, &format!("{prefix}{i:02}")).await;
            let rsvp = evently_shared::envelope::Rsvp {
                event_id: event.id,
                user_id: attendee.id.clone(),
                at: Timestamp::now(),
            };
            let envelope = envelope(DomainEvent::RsvpCreated(rsvp));
            app.events
                .rsvp(event, &attendee.id, Timestamp::now(), &envelope)
                .await
                .unwrap();
        }
    }

    async fn mute(app: &App, user: &User) {
        app.follows
            .set_preferences(
                &user.id,
                Preferences {
                    notifications: false,
                },
            )
            .await
            .unwrap();
    }

    fn envelope(event: DomainEvent) -> Envelope {
        event.into_envelope("/t", CorrelationId::generate(), Timestamp::now())
    }

    fn batch(envelope: &Envelope) -> SqsBatch {
        serde_json::from_value(
            json!({ "Records": [{ "messageId": "m1", "body": envelope.to_json() }] }),
        )
        .unwrap()
    }

    /// One SQS batch of `envelopes`, message `m<i>` for the i-th.
    fn batch_of(envelopes: &[&Envelope]) -> SqsBatch {
        let records: Vec<serde_json::Value> = envelopes
            .iter()
            .enumerate()
            .map(|(i, e)| json!({ "messageId": format!("m{i}"), "body": e.to_json() }))
            .collect();
        serde_json::from_value(json!({ "Records": records })).unwrap()
    }

    fn far_deadline() -> i64 {
        now_ms() + 60_000
    }

    fn mailed(app: &App) -> Vec<String> {
        let mut to: Vec<String> = app.mailer.sent().into_iter().map(|m| m.to).collect();
        to.sort();
        to
    }

    #[tokio::test]
    async fn a_new_event_mails_each_follower_once_and_respects_preferences() {
        let app = app();
        let organizer = user(&app, "org").await;
        let (both, tag_only, muted) = (
            user(&app, "both").await,
            user(&app, "tag").await,
            user(&app, "muted").await,
        );
        app.follows
            .follow(&both, &FollowTarget::Organizer(organizer.id.clone()))
            .await
            .unwrap();
        app.follows
            .follow(&both, &FollowTarget::Tag(Tag::parse("t", "rust").unwrap()))
            .await
            .unwrap();
        app.follows
            .follow(
                &tag_only,
                &FollowTarget::Tag(Tag::parse("t", "rust").unwrap()),
            )
            .await
            .unwrap();
        app.follows
            .follow(&muted, &FollowTarget::Tag(Tag::parse("t", "rust").unwrap()))
            .await
            .unwrap();
        mute(&app, &muted).await;
        let event = meetup(&app, &organizer, &["rust"]).await;
        let created = envelope(DomainEvent::EventCreated(event));

        for _ in 0..3 {
            let response = app
                .handle_batch(batch(&created), far_deadline())
                .await
                .unwrap();
            assert!(response.batch_item_failures.is_empty());
        }

        assert_eq!(mailed(&app), ["both@example.com", "tag@example.com"]);
        let mail = &app.mailer.sent()[0];
        assert!(
            mail.text
                .contains("https://api.example.com/unsubscribe?token=")
        );
        assert!(mail.html.contains("Rust &lt;night&gt;"));
    }

    #[tokio::test]
    async fn a_batch_reads_each_follow_target_once_and_mails_every_follower_in_one_send() {
        let app = app();
        let organizer = user(&app, "org").await;
        let (fan, rustacean) = (user(&app, "fan").await, user(&app, "rustacean").await);
        app.follows
            .follow(&fan, &FollowTarget::Organizer(organizer.id.clone()))
            .await
            .unwrap();
        app.follows
            .follow(
                &rustacean,
                &FollowTarget::Tag(Tag::parse("t", "rust").unwrap()),
            )
            .await
            .unwrap();
        let mut created = Vec::new();
        for _ in 0..3 {
            let event = meetup(&app, &organizer, &["rust", "lambda"]).await;
            created.push(envelope(DomainEvent::EventCreated(event)));
        }

        let response = app
            .handle_batch(
                batch_of(&created.iter().collect::<Vec<_>>()),
                far_deadline(),
            )
            .await
            .unwrap();

        assert!(response.batch_item_failures.is_empty());
        let to = mailed(&app);
        assert_eq!(to.iter().filter(|t| *t == "fan@example.com").count(), 3);
        assert_eq!(
            to.iter().filter(|t| *t == "rustacean@example.com").count(),
            3
        );
        assert_eq!(to.len(), 6);
        assert_eq!(app.mailer.bulk_sends.load(Ordering::SeqCst), 1);
        // The organizer, "rust" and "lambda": three targets, each read once for three events.
        assert_eq!(app.follows.follower_reads(), 3);
    }

    #[tokio::test]
    async fn a_batch_shares_only_first_pages_and_mails_every_follower_of_a_long_list() {
        let app = app();
        let organizer = user(&app, "org").await;
        let rust = FollowTarget::Tag(Tag::parse("t", "rust").unwrap());
        for i in 0..30 {
            let fan = user(&app, &format!("fan{i:02}")).await;
            app.follows.follow(&fan, &rust).await.unwrap();
        }
        let first = envelope(DomainEvent::EventCreated(
            meetup(&app, &organizer, &["rust"]).await,
        ));
        let second = envelope(DomainEvent::EventCreated(
            meetup(&app, &organizer, &["rust"]).await,
        ));

        let response = app
            .handle_batch(batch_of(&[&first, &second]), far_deadline())
            .await
            .unwrap();

        assert!(response.batch_item_failures.is_empty());
        let to = mailed(&app);
        assert_eq!(to.len(), 60);
        assert_eq!(
            to.iter().collect::<HashSet<_>>().len(),
            30,
            "each fan twice"
        );
        // The organizer's and the tag's first pages once for both events; the tag's second
        // page once for each.
        assert_eq!(app.follows.follower_reads(), 4);
    }

    #[tokio::test]
    async fn a_notice_held_elsewhere_fails_alone_and_the_rest_of_its_batch_is_mailed() {
        let app = app();
        let organizer = user(&app, "org").await;
        let fan = user(&app, "fan").await;
        app.follows
            .follow(&fan, &FollowTarget::Organizer(organizer.id.clone()))
            .await
            .unwrap();
        let held = meetup(&app, &organizer, &[]).await;
        let free = meetup(&app, &organizer, &[]).await;
        let key = format!("{}#{}#{}", fan.id, held.id, held.version);
        let now = Timestamp::now();
        app.idempotency
            .begin(Claim::new(SCOPE, &key), now, now.plus_seconds(60))
            .await
            .unwrap();
        let free_event = free.clone();
        let (held, free) = (
            envelope(DomainEvent::EventCreated(held)),
            envelope(DomainEvent::EventCreated(free)),
        );

        let response = app
            .handle_batch(batch_of(&[&held, &free]), far_deadline())
            .await
            .unwrap();

        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, ["m0"]);
        assert_eq!(mailed(&app), ["fan@example.com"]);
        let free_key = format!("{}#{}#{}", fan.id, free_event.id, free_event.version);
        let again = app
            .idempotency
            .begin(Claim::new(SCOPE, &free_key), now, now.plus_seconds(60))
            .await
            .unwrap();
        assert!(matches!(again, Begun::AlreadyDone(_)), "{again:?}");
    }

    #[tokio::test]
    async fn a_follower_gets_an_unsubscribe_token_with_their_first_mail_and_keeps_it() {
        let app = app();
        let organizer = user(&app, "org").await;
        let (follower, muted) = (user(&app, "fan").await, user(&app, "muted").await);
        for who in [&follower, &muted] {
            app.follows
                .follow(who, &FollowTarget::Organizer(organizer.id.clone()))
                .await
                .unwrap();
        }
        mute(&app, &muted).await;
        let follows = &app.follows;
        let token = |user: &User| {
            let id = user.id.clone();
            async move { follows.mail_settings(&id).await.unwrap().unsubscribe_token }
        };
        assert_eq!(token(&follower).await, None);

        for tags in [["rust"], ["lambda"]] {
            let event = meetup(&app, &organizer, &tags).await;
            let created = envelope(DomainEvent::EventCreated(event));
            let response = app
                .handle_batch(batch(&created), far_deadline())
                .await
                .unwrap();
            assert!(response.batch_item_failures.is_empty());
        }

        let made = token(&follower).await.expect("made by the first mail");
        let links: Vec<bool> = app
            .mailer
            .sent()
            .iter()
            .map(|mail| mail.text.contains(&format!("?token={made}")))
            .collect();
        assert_eq!(links, [true, true]);
        assert_eq!(token(&muted).await, None, "nobody unmailed gets a token");
    }

    #[tokio::test]
    async fn a_first_mail_reads_the_recipients_settings_once_though_it_makes_their_token() {
        let app = app();
        let organizer = user(&app, "org").await;
        let follower = user(&app, "fan").await;
        app.follows
            .follow(&follower, &FollowTarget::Organizer(organizer.id.clone()))
            .await
            .unwrap();
        let created = envelope(DomainEvent::EventCreated(
            meetup(&app, &organizer, &["rust"]).await,
        ));

        let response = app
            .handle_batch(batch(&created), far_deadline())
            .await
            .unwrap();

        assert!(response.batch_item_failures.is_empty());
        assert_eq!(app.mailer.sent().len(), 1);
        let made = app.follows.mail_settings(&follower.id).await.unwrap();
        assert!(made.unsubscribe_token.is_some(), "made by this first mail");
        // One read in the handler, one by this test.
        assert_eq!(app.follows.settings_reads(), 2);
    }

    #[tokio::test]
    async fn a_venue_change_mails_every_attendee_once_across_many_pages() {
        let app = app();
        let organizer = user(&app, "org").await;
        let event = meetup(&app, &organizer, &[]).await;
        attend(&app, &event, "a", 60).await;
        let mut moved = event.clone();
        moved.venue = Venue::parse("venue", "Library").unwrap();
        moved.version = 2;
        let change = envelope(DomainEvent::EventUpdated(EventChange {
            event: moved,
            changed: vec!["venue".into()],
        }));

        app.handle_batch(batch(&change), far_deadline())
            .await
            .unwrap();
        app.handle_batch(batch(&change), far_deadline())
            .await
            .unwrap();

        let to = mailed(&app);
        assert_eq!(to.len(), 60);
        assert_eq!(to.iter().collect::<HashSet<_>>().len(), 60, "nobody twice");
    }

    #[tokio::test]
    async fn a_run_without_time_left_defers_everything_to_the_redelivery() {
        let app = app();
        let organizer = user(&app, "org").await;
        let event = meetup(&app, &organizer, &[]).await;
        attend(&app, &event, "p", 30).await;
        let cancelled = envelope(DomainEvent::EventCancelled(event.cancelled()));
        let out_of_time = now_ms() - 1;

        let stopped = app
            .handle_batch(batch(&cancelled), out_of_time)
            .await
            .unwrap();
        let resumed = app
            .handle_batch(batch(&cancelled), far_deadline())
            .await
            .unwrap();

        assert_eq!(
            stopped.batch_item_failures.len(),
            1,
            "stopped for lack of time"
        );
        assert!(resumed.batch_item_failures.is_empty());
        assert_eq!(mailed(&app).len(), 30);
    }

    #[tokio::test]
    async fn a_mail_outage_midway_resumes_without_repeats_or_gaps() {
        let app = app();
        let organizer = user(&app, "org").await;
        let event = meetup(&app, &organizer, &[]).await;
        attend(&app, &event, "q", 30).await;
        let cancelled = envelope(DomainEvent::EventCancelled(event.cancelled()));
        *app.mailer.fail_after.lock().unwrap() = Some(10);

        let failed = app
            .handle_batch(batch(&cancelled), far_deadline())
            .await
            .unwrap();
        assert_eq!(mailed(&app).len(), 10, "the outage hit after ten mails");
        *app.mailer.fail_after.lock().unwrap() = None;
        let retried = app
            .handle_batch(batch(&cancelled), far_deadline())
            .await
            .unwrap();

        assert_eq!(failed.batch_item_failures.len(), 1);
        assert!(retried.batch_item_failures.is_empty());
        let to = mailed(&app);
        assert_eq!(to.len(), 30);
        assert_eq!(to.iter().collect::<HashSet<_>>().len(), 30, "nobody twice");
    }

    #[tokio::test]
    async fn a_title_fix_mails_nobody() {
        let app = app();
        let organizer = user(&app, "org").await;
        let event = meetup(&app, &organizer, &[]).await;
        attend(&app, &event, "att", 1).await;
        let mut renamed = event.clone();
        renamed.title = Title::parse("title", "Typo fixed").unwrap();
        renamed.version = 2;
        let change = envelope(DomainEvent::EventUpdated(EventChange {
            event: renamed,
            changed: vec!["title".into()],
        }));

        app.handle_batch(batch(&change), far_deadline())
            .await
            .unwrap();

        assert!(app.mailer.sent().is_empty());
    }
}
